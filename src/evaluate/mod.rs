//! Evaluate: pure functions from a snapshot (and the audit time) to findings. No I/O, no clock.
//!
//! Every rule is one row of [`CATALOGUE`]: a stable id, a title, a default severity, the data
//! sets it needs, a rationale, a remediation naming the exact Graph call or Microsoft Graph
//! PowerShell command, and its check function. A rule whose data is missing (permission, licence,
//! sweep disabled) is **skipped with the reason**, never passed.

pub mod exceptions;
mod params;
mod policy_rules;
pub mod predict;
mod rules;
pub mod scope;

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use params::*;
pub use rules::{CATALOGUE, JUDGED_WITHOUT};

use crate::snapshot::{DataSet, Gap, ObjectId, Snapshot, User};

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "info" => Ok(Severity::Info),
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            other => Err(format!(
                "unknown severity {other:?} (info, low, medium, high, critical)"
            )),
        }
    }
}

/// Whether a rule judges users one by one or the tenant as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleKind {
    User,
    Tenant,
}

/// One entry of the catalogue.
pub struct Rule {
    pub id: &'static str,
    pub title: &'static str,
    pub kind: RuleKind,
    pub severity: Severity,
    /// Data sets the rule cannot be judged without.
    pub needs: &'static [DataSet],
    pub rationale: &'static str,
    pub remediation: &'static str,
    pub check: fn(&Ctx) -> Vec<Hit>,
}

/// What a check reports: the user it concerns (none for tenant rules) and the detail.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    pub user: Option<ObjectId>,
    pub detail: String,
    /// For a tenant rule that may find several things: what this hit is about (its subject is
    /// then `tenant:<key>`, stable from one audit to the next).
    pub key: Option<String>,
}

impl Hit {
    pub fn user(u: &User, detail: impl Into<String>) -> Hit {
        Hit {
            user: Some(u.id),
            detail: detail.into(),
            key: None,
        }
    }
    pub fn tenant(detail: impl Into<String>) -> Hit {
        Hit {
            user: None,
            detail: detail.into(),
            key: None,
        }
    }
    /// A tenant finding about one of several things a rule checks (a method, a lifetime, an
    /// account name): its subject is `tenant:<key>`.
    pub fn tenant_about(key: impl Into<String>, detail: impl Into<String>) -> Hit {
        Hit {
            user: None,
            detail: detail.into(),
            key: Some(key.into()),
        }
    }
}

/// One finding: (rule, subject) with severity, detail and remediation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    /// `tenant`, or the user's object id.
    pub subject: String,
    pub user_id: Option<String>,
    pub user_principal_name: Option<String>,
    pub detail: String,
    pub remediation: String,
}

/// The subject of a tenant finding: `tenant`, or `tenant:<key>` when the rule may find several.
pub const TENANT_SUBJECT: &str = "tenant";

/// Whether a finding's subject is the tenant (not a user).
pub fn is_tenant_subject(subject: &str) -> bool {
    subject == TENANT_SUBJECT
        || subject
            .strip_prefix(TENANT_SUBJECT)
            .is_some_and(|rest| rest.starts_with(':'))
}

/// A rule that could not be judged, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Skipped {
    pub rule: &'static str,
    pub reason: String,
}

/// The input of every check.
pub struct Ctx<'a> {
    pub snapshot: &'a Snapshot,
    pub params: &'a RulesConfig,
    /// Users the user rules judge (in scope, break-glass accounts excluded), with known methods.
    pub users: &'a [&'a User],
    /// The configured break-glass UPNs (lower case) and the users they name, if found.
    pub break_glass: &'a [(String, Option<&'a User>)],
    pub now: DateTime<Utc>,
}

/// The findings of one evaluation, and what could not be judged.
#[derive(Debug, Default)]
pub struct Evaluation {
    pub findings: Vec<Finding>,
    pub skipped: Vec<Skipped>,
    /// Users in scope, and users left out by scope with the reason.
    pub users_in_scope: usize,
    /// In-scope users with known methods, by the recovery families their MFA methods span
    /// (0, 1, 2, 3 or more).
    pub users_by_mfa_families: [u64; 4],
    /// In-scope users having each method kind (by its name).
    pub users_with_method: BTreeMap<&'static str, u64>,
    pub users_out_of_scope: BTreeMap<String, usize>,
    /// Rules judged on part of their data, and what they were judged without.
    pub partial: Vec<Skipped>,
    /// Per Conditional Access policy (enabled or report-only) that applies to a judged user,
    /// how many it would lock out; `None` when the policy rules were not judged (disabled, or
    /// their data missing).
    pub predicted_lockouts: Option<Vec<predict::PolicyLockouts>>,
    /// Self-service password reset readiness of the in-scope users the registration report
    /// lists; `None` when it listed none of them.
    pub sspr: Option<SsprReadiness>,
}

/// In-scope users by self-service password reset readiness (`isSsprEnabled`,
/// `isSsprRegistered`, `isSsprCapable` of the registration report).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SsprReadiness {
    pub enabled: u64,
    pub registered: u64,
    pub capable: u64,
    /// Enabled, but not registered or not capable (`sspr-not-ready`).
    pub not_ready: u64,
}

fn gap_reason(set: DataSet, gap: &Gap) -> String {
    match gap {
        Gap::Disabled => format!("{} is not read (turned off in [graph])", set.as_str()),
        Gap::MissingPermission(p) => format!("{} needs the {p} permission", set.as_str()),
        Gap::Unlicensed(why) => format!("{} is unavailable: {why}", set.as_str()),
        Gap::Failed { endpoint, reason } => format!(
            "{} could not be read from {endpoint}: {reason}",
            set.as_str()
        ),
    }
}

/// Why `rule` cannot be judged, if it cannot. On a free tenant (no registration report, every
/// user's methods read per user instead) a rule that needs only the methods is judged from the
/// per-user detail; one that needs more of the report (the default method) is skipped, saying so.
fn blocking_gap(rule: &Rule, coverage: &crate::snapshot::Coverage) -> Option<String> {
    let fallback = coverage.licence_fallback;
    for set in rule.needs {
        let Some(gap) = coverage.gaps.get(set) else {
            continue;
        };
        if *set != DataSet::Registration || !fallback {
            return Some(gap_reason(*set, gap));
        }
        if !rules::JUDGED_FROM_DETAIL.contains(&rule.id) {
            return Some(format!(
                "{} (this rule needs more of the registration report than each user's methods)",
                gap_reason(*set, gap)
            ));
        }
        if let Some(detail_gap) = coverage.gaps.get(&DataSet::MethodDetail) {
            return Some(gap_reason(DataSet::MethodDetail, detail_gap));
        }
    }
    None
}

/// Which users the user rules judge.
pub trait Scope {
    /// `None` when the user is in scope; otherwise the reason it is not (counted, not forgotten).
    fn exclusion(&self, user: &User, snapshot: &Snapshot) -> Option<&'static str>;
    /// Whether the scope depends on group membership (then it needs the groups data set).
    fn needs_groups(&self) -> bool {
        false
    }
}

/// Everyone enabled.
pub struct AllEnabled;

impl Scope for AllEnabled {
    fn exclusion(&self, user: &User, _: &Snapshot) -> Option<&'static str> {
        (!user.account_enabled).then_some("disabled")
    }
}

/// Runs every enabled rule of the catalogue over the snapshot.
pub fn evaluate(
    snapshot: &Snapshot,
    params: &RulesConfig,
    scope: &dyn Scope,
    break_glass: &[String],
    now: DateTime<Utc>,
) -> Evaluation {
    let mut findings = Vec::new();
    let mut out = evaluate_into(snapshot, params, scope, break_glass, now, &mut |f| {
        findings.push(f)
    });
    out.findings = findings;
    out
}

/// [`evaluate`], handing each finding to `sink` as its rule is judged instead of collecting them
/// (the returned evaluation's `findings` is empty): a million users' findings need not be held.
pub fn evaluate_into(
    snapshot: &Snapshot,
    params: &RulesConfig,
    scope: &dyn Scope,
    break_glass: &[String],
    now: DateTime<Utc>,
    sink: &mut dyn FnMut(Finding),
) -> Evaluation {
    let glass: Vec<String> = break_glass.iter().map(|u| u.to_ascii_lowercase()).collect();
    let mut out = Evaluation::default();
    let mut users: Vec<&User> = Vec::with_capacity(snapshot.users.len());
    for u in &snapshot.users {
        if glass.contains(&u.upn.to_ascii_lowercase()) {
            *out.users_out_of_scope
                .entry("break-glass".into())
                .or_default() += 1;
            continue;
        }
        match scope.exclusion(u, snapshot) {
            Some(reason) => *out.users_out_of_scope.entry(reason.into()).or_default() += 1,
            None => users.push(u),
        }
    }
    out.users_in_scope = users.len();
    for m in users.iter().filter_map(|u| u.methods) {
        out.users_by_mfa_families[m.mfa_families().min(3)] += 1;
        for k in m.iter() {
            *out.users_with_method.entry(k.name()).or_default() += 1;
        }
    }
    for s in users.iter().filter_map(|u| u.sspr) {
        let r = out.sspr.get_or_insert_with(SsprReadiness::default);
        r.enabled += u64::from(s.enabled);
        r.registered += u64::from(s.registered);
        r.capable += u64::from(s.capable);
        r.not_ready += u64::from(s.enabled && !(s.registered && s.capable));
    }
    let glass_users: Vec<(String, Option<&User>)> = glass
        .iter()
        .map(|upn| {
            (
                upn.clone(),
                snapshot
                    .users
                    .iter()
                    .find(|u| u.upn.eq_ignore_ascii_case(upn)),
            )
        })
        .collect();
    let ctx = Ctx {
        snapshot,
        params,
        users: &users,
        break_glass: &glass_users,
        now,
    };
    // Collect sorts the users by id; a snapshot built otherwise (tests) gets an index.
    let by_id: Option<BTreeMap<ObjectId, &User>> = (!snapshot.users.is_sorted_by_key(|u| u.id))
        .then(|| snapshot.users.iter().map(|u| (u.id, u)).collect());
    let find = |id: ObjectId| match &by_id {
        Some(map) => map.get(&id).copied(),
        None => snapshot.user(id),
    };
    // Without the groups it names, the scope is unknown: user rules cannot be judged.
    let scope_gap = snapshot
        .coverage
        .gaps
        .get(&DataSet::Groups)
        .filter(|_| scope.needs_groups());
    out.predicted_lockouts = predicted_lockouts(snapshot, params, scope_gap.is_some(), &users);
    for rule in CATALOGUE {
        let Some(toggle) = params.toggle(rule.id) else {
            continue;
        };
        if !toggle.enabled() {
            continue;
        }
        if let (Some(gap), RuleKind::User) = (scope_gap, rule.kind) {
            let reason = format!(
                "the scope names groups, but {}",
                gap_reason(DataSet::Groups, gap)
            );
            out.skipped.push(Skipped {
                rule: rule.id,
                reason,
            });
            continue;
        }
        if let Some(reason) = blocking_gap(rule, &snapshot.coverage) {
            out.skipped.push(Skipped {
                rule: rule.id,
                reason,
            });
            continue;
        }
        for (_, set) in JUDGED_WITHOUT.iter().filter(|(id, _)| *id == rule.id) {
            if let Some(gap) = snapshot.coverage.gaps.get(set) {
                out.partial.push(Skipped {
                    rule: rule.id,
                    reason: gap_reason(*set, gap),
                });
            }
        }
        let severity = toggle.severity().unwrap_or(rule.severity);
        for hit in (rule.check)(&ctx) {
            let user = hit.user.and_then(find);
            sink(Finding {
                rule: rule.id,
                severity,
                subject: match (hit.user, &hit.key) {
                    (Some(id), _) => id.to_string(),
                    (None, Some(key)) => format!("{TENANT_SUBJECT}:{key}"),
                    (None, None) => TENANT_SUBJECT.to_string(),
                },
                user_id: hit.user.map(|id| id.to_string()),
                user_principal_name: user.map(|u| u.upn.to_string()),
                detail: hit.detail,
                remediation: user.map_or_else(
                    || rule.remediation.to_string(),
                    |u| rule.remediation.replace("{upn}", &u.upn),
                ),
            });
        }
    }
    out
}

/// The per-policy lockout counts, when a policy rule is enabled and can be judged.
fn predicted_lockouts(
    snapshot: &Snapshot,
    params: &RulesConfig,
    scope_unknown: bool,
    users: &[&User],
) -> Option<Vec<predict::PolicyLockouts>> {
    let rule = CATALOGUE.iter().find(|r| r.id == "policy-unsatisfiable")?;
    let on = ["policy-unsatisfiable", "policy-unsatisfiable-report-only"]
        .iter()
        .any(|id| params.toggle(id).is_some_and(|t| t.enabled()));
    if !on || scope_unknown || blocking_gap(rule, &snapshot.coverage).is_some() {
        return None;
    }
    Some(predict::predict_lockouts(snapshot, users))
}

#[cfg(test)]
mod policy_tests;
#[cfg(test)]
pub(crate) mod tests;
