//! Report: the immutable result of one audit — findings, what was excepted or skipped, scope
//! counts, coverage, timings, and whether it is complete — and its output formats (table, JSON,
//! CSV, SARIF 2.1.0).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use crate::evaluate::exceptions::Excepted;
use crate::evaluate::predict::PolicyLockouts;
use crate::evaluate::{Finding, RuleKind, Severity, Skipped, SsprReadiness, CATALOGUE};
use crate::snapshot::{Gap, Snapshot};

/// Counts for the summary line.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Summary {
    pub by_severity: BTreeMap<Severity, usize>,
    pub by_rule: BTreeMap<&'static str, usize>,
    pub excepted: usize,
    pub skipped: usize,
    pub users_out_of_scope: BTreeMap<String, usize>,
    /// Rules judged on part of their data (e.g. admins without PIM eligibility), and what was missing.
    pub partial: Vec<Skipped>,
    /// Excepted findings by rule.
    #[serde(skip)]
    pub excepted_by_rule: BTreeMap<&'static str, usize>,
    /// Open critical findings of users, by rule.
    #[serde(skip)]
    pub critical_by_rule: BTreeMap<&'static str, usize>,
    /// Open critical findings of users as (rule, user principal name): at most the cap the
    /// audit was tallied with (the opt-in per-user series).
    #[serde(skip)]
    pub critical_users: Vec<(&'static str, String)>,
    /// Per Conditional Access policy (enabled or report-only) that applies to a judged user, how
    /// many users it would lock out at their next sign-in (the evaluation's count, exceptions
    /// aside); absent when the policy rules were not judged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted_lockouts: Option<Vec<PolicyLockouts>>,
}

/// What an audit's findings add up to, gathered one finding at a time, so an audit whose findings
/// go straight to the store (the daemon) still reports its counts.
#[derive(Debug)]
pub struct Tally {
    summary: Summary,
    critical_cap: usize,
}

impl Tally {
    /// Keeps at most `critical_cap` (rule, user) pairs of open critical user findings.
    pub fn new(critical_cap: usize) -> Tally {
        Tally {
            summary: Summary::default(),
            critical_cap,
        }
    }

    pub fn open(&mut self, f: &Finding) {
        let s = &mut self.summary;
        *s.by_severity.entry(f.severity).or_default() += 1;
        *s.by_rule.entry(f.rule).or_default() += 1;
        if f.severity == Severity::Critical {
            if let Some(upn) = &f.user_principal_name {
                *s.critical_by_rule.entry(f.rule).or_default() += 1;
                if s.critical_users.len() < self.critical_cap {
                    s.critical_users.push((f.rule, upn.clone()));
                }
            }
        }
    }

    pub fn excepted(&mut self, f: &Finding) {
        self.summary.excepted += 1;
        *self.summary.excepted_by_rule.entry(f.rule).or_default() += 1;
    }

    /// The counts (scope, skipped and partial rules are the evaluation's: see [`Report::from_tally`]).
    pub fn into_summary(self) -> Summary {
        self.summary
    }

    /// Open findings counted so far.
    pub fn open_count(&self) -> usize {
        self.summary.by_severity.values().sum()
    }
}

/// The tenant's posture figures of one audit (what the metrics publish).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Posture {
    /// In-scope users with known methods by MFA recovery families: 0, 1, 2, 3 or more.
    pub users_by_mfa_families: [u64; 4],
    pub users_with_method: BTreeMap<&'static str, u64>,
    /// Users per method string or type nobody knows.
    pub unknown_methods: BTreeMap<String, u64>,
    pub tap_policy_enabled: Option<bool>,
    pub tap_policy_usable_once: Option<bool>,
    /// `default`, `minimum`, `maximum` lifetimes of the TAP policy, in minutes.
    pub tap_policy_lifetime_minutes: BTreeMap<&'static str, u32>,
    /// Usable TAPs held: [multi-use, one-time].
    pub tap_active: [u64; 2],
    /// Method configurations of the authentication-methods policy and whether each is enabled.
    pub auth_methods_enabled: BTreeMap<String, bool>,
    pub security_defaults_enabled: Option<bool>,
    pub mfa_failures_by_code: BTreeMap<i32, u64>,
    /// Tenant rules that were judged: true when they found nothing (excepted findings included).
    pub tenant_rules_passing: BTreeMap<&'static str, bool>,
    /// Service principals holding each tracked role (by display name); `None` when roles were
    /// not read.
    pub role_service_principals: Option<BTreeMap<&'static str, u64>>,
    /// Data sets this audit could not read although they are normally read (a permission that
    /// is missing now), with the reason: the figures drawn from them are not this audit's, so
    /// the metrics carry the last ones known instead of publishing zeros.
    pub unread: BTreeMap<&'static str, String>,
    /// In-scope users by SSPR readiness; `None` when the registration report listed none.
    pub sspr: Option<SsprReadiness>,
    /// Smart lockout as the tenant sets it, or Entra's defaults; `None` when not read.
    pub smart_lockout: Option<SmartLockoutFigures>,
}

/// Smart lockout's figures and where they come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SmartLockoutFigures {
    pub threshold: u32,
    pub duration_seconds: u32,
    /// `tenant` (a "Password Rule Settings" object) or `default` (none: Entra's defaults apply).
    pub source: String,
}

/// One audit's result.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub tenant: String,
    /// False when any sweep failed: then the findings are not the whole truth.
    pub complete: bool,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub users_in_scope: usize,
    pub findings: Vec<Finding>,
    pub excepted: Vec<Excepted>,
    pub skipped: Vec<Skipped>,
    /// Why the audit is incomplete, one line per failed sweep.
    pub incomplete_reasons: Vec<String>,
    pub summary: Summary,
    pub posture: Posture,
}

impl Report {
    pub fn new(
        snapshot: &Snapshot,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
        evaluation: crate::evaluate::Evaluation,
        findings: Vec<Finding>,
        excepted: Vec<Excepted>,
    ) -> Report {
        let mut findings = findings;
        findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(a.rule.cmp(b.rule))
                .then(a.subject.cmp(&b.subject))
        });
        let mut tally = Tally::new(usize::MAX);
        findings.iter().for_each(|f| tally.open(f));
        excepted.iter().for_each(|e| tally.excepted(&e.finding));
        let mut report = Report::from_tally(snapshot, started_at, finished_at, evaluation, tally);
        report.findings = findings;
        report.excepted = excepted;
        report
    }

    /// A report of counts only: its findings went elsewhere as they were judged (the daemon
    /// streams them to the store) and `findings` and `excepted` are empty.
    pub fn from_tally(
        snapshot: &Snapshot,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
        evaluation: crate::evaluate::Evaluation,
        tally: Tally,
    ) -> Report {
        let summary = Summary {
            skipped: evaluation.skipped.len(),
            users_out_of_scope: evaluation.users_out_of_scope.clone(),
            partial: evaluation.partial.clone(),
            predicted_lockouts: evaluation.predicted_lockouts.clone(),
            ..tally.summary
        };
        let incomplete_reasons = incomplete_reasons(snapshot);
        let posture = posture(snapshot, &evaluation, &summary);
        Report {
            posture,
            tenant: snapshot.tenant_id.clone(),
            complete: snapshot.is_complete(),
            started_at,
            finished_at,
            users_in_scope: evaluation.users_in_scope,
            findings: Vec::new(),
            excepted: Vec::new(),
            skipped: evaluation.skipped,
            incomplete_reasons,
            summary,
        }
    }

    /// The report without its findings (counts, posture, what was skipped).
    pub fn counts_only(&self) -> Report {
        Report {
            tenant: self.tenant.clone(),
            complete: self.complete,
            started_at: self.started_at,
            finished_at: self.finished_at,
            users_in_scope: self.users_in_scope,
            findings: Vec::new(),
            excepted: Vec::new(),
            skipped: self.skipped.clone(),
            incomplete_reasons: self.incomplete_reasons.clone(),
            summary: self.summary.clone(),
            posture: self.posture.clone(),
        }
    }

    /// Open findings (not excepted).
    pub fn open_count(&self) -> usize {
        self.summary.by_severity.values().sum()
    }

    /// The highest severity among the open findings.
    pub fn worst(&self) -> Option<Severity> {
        self.summary.by_severity.keys().next_back().copied()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// CSV with a header row (RFC 4180 quoting).
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "rule,severity,subject,user_id,user_principal_name,detail,remediation\r\n",
        );
        for f in &self.findings {
            let row = [
                f.rule,
                f.severity.as_str(),
                &f.subject,
                f.user_id.as_deref().unwrap_or(""),
                f.user_principal_name.as_deref().unwrap_or(""),
                &f.detail,
                &f.remediation,
            ];
            let cells: Vec<String> = row.iter().map(|c| csv_cell(c)).collect();
            out.push_str(&cells.join(","));
            out.push_str("\r\n");
        }
        out
    }

    /// SARIF 2.1.0: one rule per catalogue entry, one result per open finding.
    pub fn to_sarif(&self) -> String {
        let level = sarif_level;
        let rules: Vec<serde_json::Value> = CATALOGUE.iter().map(sarif_rule).collect();
        let results: Vec<serde_json::Value> = self
            .findings
            .iter()
            .map(|f| {
                let index = CATALOGUE.iter().position(|r| r.id == f.rule).unwrap_or(0);
                let (name, kind) = match &f.user_principal_name {
                    Some(upn) => (upn.clone(), "user"),
                    None => (self.tenant.clone(), "tenant"),
                };
                json!({
                    "ruleId": f.rule,
                    "ruleIndex": index,
                    "level": level(f.severity),
                    "message": {"text": format!("{}. {}", f.detail, f.remediation)},
                    "locations": [{"logicalLocations": [{"name": name, "fullyQualifiedName": format!("{}/{}", self.tenant, f.subject), "kind": kind}]}],
                    "partialFingerprints": {"mfaAuditorFinding/v1": format!("{}/{}/{}", self.tenant, f.rule, f.subject)},
                    "properties": {"severity": f.severity.as_str()}
                })
            })
            .collect();
        let doc = json!({
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [{
                "tool": {"driver": {
                    "name": "mfa-auditor",
                    "version": env!("CARGO_PKG_VERSION"),
                    "informationUri": "https://github.com/mfa-auditor/mfa-auditor",
                    "rules": rules
                }},
                "invocations": [{
                    "executionSuccessful": self.complete,
                    "startTimeUtc": self.started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "endTimeUtc": self.finished_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "toolExecutionNotifications": self.incomplete_reasons.iter().map(|r| json!({"level": "error", "message": {"text": r}})).collect::<Vec<_>>()
                }],
                "results": results
            }]
        });
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    }

    /// A table for a terminal.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "tenant {}  {}  {} users in scope  {} findings ({} excepted, {} rules skipped)",
            self.tenant,
            if self.complete {
                "complete"
            } else {
                "INCOMPLETE"
            },
            self.users_in_scope,
            self.findings.len(),
            self.excepted.len(),
            self.skipped.len()
        );
        for r in &self.incomplete_reasons {
            let _ = writeln!(out, "  not read: {r}");
        }
        if !self.findings.is_empty() {
            let w = self
                .findings
                .iter()
                .map(|f| f.user_principal_name.as_deref().unwrap_or("tenant").len())
                .max()
                .unwrap_or(6)
                .clamp(6, 48);
            let _ = writeln!(
                out,
                "\n{:<8}  {:<28}  {:<w$}  DETAIL",
                "SEVERITY", "RULE", "SUBJECT"
            );
            for f in &self.findings {
                let subject = f.user_principal_name.as_deref().unwrap_or("tenant");
                let _ = writeln!(
                    out,
                    "{:<8}  {:<28}  {:<w$}  {}",
                    f.severity.as_str(),
                    f.rule,
                    subject,
                    f.detail
                );
            }
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(out, "\nskipped (not passed):");
            for s in &self.skipped {
                let _ = writeln!(out, "  {:<28}  {}", s.rule, s.reason);
            }
        }
        if !self.summary.partial.is_empty() {
            let _ = writeln!(out, "\njudged on part of their data:");
            for s in &self.summary.partial {
                let _ = writeln!(out, "  {:<28}  without {}", s.rule, s.reason);
            }
        }
        if let Some(policies) = self
            .summary
            .predicted_lockouts
            .as_ref()
            .filter(|p| p.iter().any(|c| c.locked_out > 0))
        {
            let _ = writeln!(out, "\npredicted lockouts by Conditional Access policy:");
            for c in policies.iter().filter(|c| c.locked_out > 0) {
                let _ = writeln!(
                    out,
                    "  {:<40}  {:<34}  {} of {} users",
                    c.policy, c.state, c.locked_out, c.applies_to
                );
            }
        }
        if let Some(l) = self
            .posture
            .smart_lockout
            .as_ref()
            .filter(|l| l.source == "default")
        {
            let _ = writeln!(
                out,
                "\nsmart lockout: no \"Password Rule Settings\" object, Entra's defaults apply ({} attempts, {} s)",
                l.threshold, l.duration_seconds
            );
        }
        if !self.summary.users_out_of_scope.is_empty() {
            let parts: Vec<String> = self
                .summary
                .users_out_of_scope
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect();
            let _ = writeln!(out, "\nout of scope: {}", parts.join(", "));
        }
        out
    }
}

fn posture(
    snapshot: &Snapshot,
    evaluation: &crate::evaluate::Evaluation,
    summary: &Summary,
) -> Posture {
    let policy = snapshot.methods_policy.as_ref();
    let tap = policy.and_then(|p| p.tap.as_ref());
    let mut lifetimes = BTreeMap::new();
    if let Some(t) = tap {
        for (k, v) in [
            ("default", t.default_lifetime_minutes),
            ("minimum", t.minimum_lifetime_minutes),
            ("maximum", t.maximum_lifetime_minutes),
        ] {
            if let Some(v) = v {
                lifetimes.insert(k, v);
            }
        }
    }
    let mut tap_active = [0u64; 2];
    for t in snapshot
        .users
        .iter()
        .filter_map(|u| u.tap.as_deref())
        .filter(|t| t.usable)
    {
        tap_active[usize::from(t.usable_once)] += 1;
    }
    let skipped: Vec<&str> = evaluation.skipped.iter().map(|s| s.rule).collect();
    let fired =
        |id: &str| summary.by_rule.contains_key(id) || summary.excepted_by_rule.contains_key(id);
    let tenant_rules_passing = CATALOGUE
        .iter()
        .filter(|r| r.kind == RuleKind::Tenant && !skipped.contains(&r.id))
        .map(|r| (r.id, !fired(r.id)))
        .collect();
    Posture {
        users_by_mfa_families: evaluation.users_by_mfa_families,
        users_with_method: evaluation.users_with_method.clone(),
        unknown_methods: snapshot.unknown_methods.clone(),
        tap_policy_enabled: tap.map(|t| t.enabled),
        tap_policy_usable_once: tap.map(|t| t.usable_once),
        tap_policy_lifetime_minutes: lifetimes,
        tap_active,
        auth_methods_enabled: policy
            .map(|p| {
                p.methods
                    .iter()
                    .map(|m| (m.id.to_string(), m.enabled))
                    .collect()
            })
            .unwrap_or_default(),
        security_defaults_enabled: snapshot.security_defaults_enabled,
        mfa_failures_by_code: snapshot.mfa_failures_by_code.clone(),
        tenant_rules_passing,
        role_service_principals: snapshot.coverage.has(crate::snapshot::DataSet::Roles).then(
            || {
                snapshot
                    .role_service_principals
                    .iter()
                    .map(|(r, n)| (r.display_name(), u64::from(*n)))
                    .collect()
            },
        ),
        sspr: evaluation.sspr,
        smart_lockout: snapshot.lockout.map(|l| SmartLockoutFigures {
            threshold: l.threshold,
            duration_seconds: l.duration_seconds,
            source: if l.defaults { "default" } else { "tenant" }.to_string(),
        }),
        unread: snapshot
            .coverage
            .gaps
            .iter()
            .filter_map(|(set, gap)| match gap {
                Gap::MissingPermission(p) => {
                    Some((set.as_str(), format!("needs the {p} permission")))
                }
                Gap::Failed { endpoint, reason } => {
                    Some((set.as_str(), format!("{endpoint}: {reason}")))
                }
                _ => None,
            })
            .collect(),
    }
}

/// Why a snapshot is incomplete: one line per failed sweep.
pub fn incomplete_reasons(snapshot: &Snapshot) -> Vec<String> {
    snapshot
        .coverage
        .gaps
        .iter()
        .filter_map(|(set, gap)| match gap {
            Gap::Failed { endpoint, reason } => {
                Some(format!("{} ({endpoint}): {reason}", set.as_str()))
            }
            _ => None,
        })
        .collect()
}

/// A severity as a SARIF result level.
pub(crate) fn sarif_level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// A catalogue rule as a SARIF `reportingDescriptor`.
pub(crate) fn sarif_rule(r: &crate::evaluate::Rule) -> serde_json::Value {
    let score = match r.severity {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "0.0",
    };
    json!({
        "id": r.id,
        "name": r.title,
        "shortDescription": {"text": r.title},
        "fullDescription": {"text": r.rationale},
        "help": {"text": r.remediation.replace("{upn}", "<user>")},
        "defaultConfiguration": {"level": sarif_level(r.severity)},
        "properties": {"security-severity": score, "tags": ["security", "mfa", if r.kind == RuleKind::User { "user" } else { "tenant" }]}
    })
}

pub(crate) fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_only_when_needed() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a, b"), "\"a, b\"");
        assert_eq!(csv_cell("say \"hi\"\nnow"), "\"say \"\"hi\"\"\nnow\"");
    }

    #[test]
    fn predicted_lockouts_sspr_and_smart_lockout_reach_the_json_and_the_table() {
        use crate::snapshot::{
            CaPolicy, MethodKind, MethodSet, ObjectId, SmartLockout, Sspr, User,
        };
        let now = Utc::now();
        let mut s = Snapshot::empty("t", now);
        let mut push = User::new(ObjectId(1), "push@contoso.com");
        push.methods = Some(
            [MethodKind::AuthenticatorPush]
                .into_iter()
                .collect::<MethodSet>(),
        );
        push.sspr = Some(Sspr {
            enabled: true,
            registered: false,
            capable: false,
        });
        let mut none = User::new(ObjectId(2), "none@contoso.com");
        none.methods = Some(MethodSet::EMPTY);
        s.users = vec![push, none];
        s.lockout = Some(SmartLockout {
            threshold: 10,
            duration_seconds: 60,
            defaults: true,
        });
        // Phishing-resistant MFA (built in): push does not meet it; a user with no method is
        // sent to registration, not locked out.
        s.conditional_access = Some(vec![CaPolicy {
            id: "p-1".into(),
            strength: Some(crate::snapshot::AuthStrength {
                id: "00000000-0000-0000-0000-000000000004".into(),
                ..Default::default()
            }),
            ..crate::evaluate::tests::mfa_for_all()
        }]);
        let mut tally = Tally::new(0);
        let evaluation = crate::evaluate::evaluate_into(
            &s,
            &crate::evaluate::RulesConfig::default(),
            &crate::evaluate::AllEnabled,
            &[],
            now,
            &mut |f| tally.open(&f),
        );
        let report = Report::from_tally(&s, now, now, evaluation, tally);
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("json");
        assert_eq!(
            json["summary"]["predicted_lockouts"],
            serde_json::json!([{"policy_id": "p-1", "policy": "MFA for all", "state": "enabled",
                "applies_to": 2, "locked_out": 1, "undecided": 0}])
        );
        assert_eq!(
            json["posture"]["sspr"],
            serde_json::json!({"enabled": 1, "registered": 0, "capable": 0, "not_ready": 1})
        );
        assert_eq!(
            json["posture"]["smart_lockout"],
            serde_json::json!({"threshold": 10, "duration_seconds": 60, "source": "default"})
        );
        assert_eq!(report.summary.by_rule.get("policy-unsatisfiable"), Some(&1));
        let table = report.to_table();
        assert!(
            table.contains("predicted lockouts by Conditional Access policy"),
            "{table}"
        );
        assert!(table.contains("1 of 2 users"), "{table}");
        assert!(
            table.contains("Entra's defaults apply (10 attempts, 60 s)"),
            "{table}"
        );
    }
}
