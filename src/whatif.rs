//! What-if: who would be locked out by a policy change, before an admin makes it.
//!
//! Pure: a snapshot and a list of [`Change`]s in, a [`WhatIf`] out. The changes are applied to a
//! copy of the snapshot (a method configuration disabled; a synthetic, enabled Conditional
//! Access policy requiring an authentication strength), both copies are judged by the lockout
//! rules ([`LOCKOUT_RULES`], with the same scope as `audit`), and the users for whom a lockout
//! rule fires *after* but not *before* are listed, grouped by the rule and what caused it. The
//! break-glass accounts, which `audit`'s user rules never judge, are judged apart by the same
//! rules and listed first: a change that locks out the way back in matters most.
//!
//! Written against rule ids, not rule code: a lockout rule that is not in the catalogue yet is
//! left out, and one that could not be judged (its data not read) makes the answer incomplete,
//! never "nobody".
//!
//! Exceptions (`[[exceptions]]`) are not applied: an exception accepts a finding someone has
//! looked at today; it does not let a user sign in after the change. Hiding a lockout behind an
//! exception granted for a different situation is exactly what this command exists to prevent.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use crate::evaluate::predict::BUILTIN_STRENGTHS;
use crate::evaluate::{self, Finding, RuleKind, RulesConfig, Scope, Severity, Skipped, CATALOGUE};
use crate::snapshot::{
    AuthStrength, CaPolicy, MethodConfig, MethodKind, ObjectId, Role, Snapshot, ROLE_TABLE,
};

/// The rules whose firing means a user cannot complete their next sign-in. `no-mfa-method` is
/// not among them: no change here touches what users registered, so it cannot newly fire.
pub const LOCKOUT_RULES: &[&str] = &[
    "method-not-allowed",
    "policy-unsatisfiable",
    "policy-unsatisfiable-report-only",
];

/// Rules that predict a lockout only once someone turns a report-only policy on: listed, but
/// they do not make `what-if` exit 1.
pub const REPORT_ONLY_RULES: &[&str] = &["policy-unsatisfiable-report-only"];

/// `--disable-method` names and the `authenticationMethodConfigurations` id each means. Which
/// method kinds a configuration allows is the rules' own table
/// ([`crate::evaluate::predict::policy_configs`]).
pub static METHOD_NAMES: &[(&str, &str)] = &[
    ("sms", "Sms"),
    ("voice", "Voice"),
    ("email", "Email"),
    ("fido2", "Fido2"),
    ("authenticator", "MicrosoftAuthenticator"),
    ("software-oath", "SoftwareOath"),
    ("hardware-oath", "HardwareOath"),
    ("tap", "TemporaryAccessPass"),
    ("certificate", "X509Certificate"),
    ("qr-code-pin", "QRCodePin"),
];

/// Whether switching off configuration `config` takes `k` away from someone.
fn governs(config: &str, k: MethodKind) -> bool {
    crate::evaluate::predict::policy_configs(k)
        .iter()
        .any(|c| c.eq_ignore_ascii_case(config))
}

/// Who a required strength is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    All,
    /// A group's object id (lower case).
    Group(String),
    /// A directory role's template id (lower case).
    Role(String),
}

impl Target {
    /// `all`, `group:<object id>`, `role:<template id or role name>`.
    pub fn parse(s: &str) -> Result<Target, WhatIfError> {
        let bad = || WhatIfError::BadTarget(s.to_string());
        if s.eq_ignore_ascii_case("all") {
            return Ok(Target::All);
        }
        let (kind, value) = s.split_once(':').ok_or_else(bad)?;
        let value = value.trim();
        match kind.to_ascii_lowercase().as_str() {
            "group" => ObjectId::parse(value)
                .map(|_| Target::Group(value.to_ascii_lowercase()))
                .ok_or_else(bad),
            "role" => {
                if let Some(r) = Role::from_template_id(value) {
                    return Ok(Target::Role(r.template_id().to_string()));
                }
                if ObjectId::parse(value).is_some() {
                    return Err(WhatIfError::UntrackedRole(value.to_string()));
                }
                ROLE_TABLE
                    .iter()
                    .find(|(_, _, name)| name.eq_ignore_ascii_case(value))
                    .map(|(_, id, _)| Target::Role(id.to_string()))
                    .ok_or_else(|| WhatIfError::UnknownRole(value.to_string()))
            }
            _ => Err(bad()),
        }
    }

    fn describe(&self) -> String {
        match self {
            Target::All => "all users".into(),
            Target::Group(id) => format!("group {id}"),
            Target::Role(id) => match Role::from_template_id(id) {
                Some(r) => format!("role {}", r.display_name()),
                None => format!("role {id}"),
            },
        }
    }
}

/// One change to try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Switch off a method configuration (its `authenticationMethodConfigurations` id).
    DisableMethod(&'static str),
    /// Require an authentication strength (a name or id) of everyone in `target`.
    RequireStrength { strength: String, target: Target },
}

impl Change {
    /// `--disable-method NAME`: a flag name or a configuration id, any case.
    pub fn disable(name: &str) -> Result<Change, WhatIfError> {
        METHOD_NAMES
            .iter()
            .find(|(flag, id)| flag.eq_ignore_ascii_case(name) || id.eq_ignore_ascii_case(name))
            .map(|(_, id)| Change::DisableMethod(id))
            .ok_or_else(|| WhatIfError::UnknownMethod(name.to_string()))
    }

    /// `--require-strength NAME --for TARGET`.
    pub fn require(strength: &str, target: &str) -> Result<Change, WhatIfError> {
        if strength.trim().is_empty() {
            return Err(WhatIfError::UnknownStrength {
                name: strength.to_string(),
                known: String::new(),
            });
        }
        Ok(Change::RequireStrength {
            strength: strength.trim().to_string(),
            target: Target::parse(target)?,
        })
    }
}

/// Why a what-if cannot be answered as asked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WhatIfError {
    #[error("unknown method {0:?}; valid: sms, voice, email, fido2, authenticator, software-oath, hardware-oath, tap, certificate, qr-code-pin (or a configuration id such as Sms)")]
    UnknownMethod(String),
    #[error("unknown target {0:?}; valid: all, group:<group object id>, role:<role template id or name, e.g. role:'Global Administrator'>")]
    BadTarget(String),
    #[error("unknown role {0:?}; valid names: {names}", names = role_names())]
    UnknownRole(String),
    #[error("role {0} is not one this auditor tracks (it reads only the roles listed by `mfa-auditor rules`), so who holds it is unknown; valid: {names}", names = role_names())]
    UntrackedRole(String),
    #[error("unknown authentication strength {name:?}; valid: {known}")]
    UnknownStrength { name: String, known: String },
    #[error("the authentication strength {0:?} lists no allowedCombinations: nothing can be judged against it")]
    EmptyStrength(String),
    #[error("nothing to try: give at least one --disable-method or --require-strength … --for …")]
    NoChange,
    #[error(
        "the authentication-methods policy was not read ({0}): disabling a method cannot be judged"
    )]
    NoMethodsPolicy(String),
    #[error("the members of group {0} were not read (only groups that the policies or [scope] name are read), so who it holds is unknown; name the group in [scope] include_groups or pick another target")]
    GroupNotRead(String),
}

fn role_names() -> String {
    ROLE_TABLE
        .iter()
        .map(|(_, _, n)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `Phishing resistant MFA`, `phishing-resistant mfa` and `Phishing-resistant MFA` are one name.
fn same_name(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.chars()
            .map(|c| if c == '-' || c == '_' { ' ' } else { c })
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    norm(a) == norm(b)
}

/// A strength by alias (`mfa`, `passwordless`, `phishing-resistant`), display name or id: the
/// tenant's strengths first (custom ones live only there), then the built-in table.
pub fn resolve_strength(snapshot: &Snapshot, name: &str) -> Result<AuthStrength, WhatIfError> {
    let alias = BUILTIN_STRENGTHS
        .iter()
        .find(|b| same_name(b.alias, name))
        .map(|b| b.id);
    let wanted = |id: &str, display: &str| {
        alias.is_some_and(|a| a.eq_ignore_ascii_case(id))
            || id.eq_ignore_ascii_case(name)
            || same_name(display, name)
    };
    let found = snapshot
        .strengths
        .iter()
        .flatten()
        .find(|s| wanted(&s.id, &s.display_name))
        .cloned()
        .or_else(|| {
            BUILTIN_STRENGTHS
                .iter()
                .find(|b| wanted(b.id, b.name))
                .map(|b| AuthStrength {
                    id: b.id.into(),
                    display_name: b.name.into(),
                    policy_type: "builtIn".into(),
                    allowed_combinations: b.combinations.iter().map(|c| (*c).into()).collect(),
                })
        });
    let mut strength = found.ok_or_else(|| {
        let mut known: Vec<String> = BUILTIN_STRENGTHS
            .iter()
            .map(|b| format!("{} ({})", b.alias, b.name))
            .collect();
        known.extend(
            snapshot
                .strengths
                .iter()
                .flatten()
                .filter(|s| !BUILTIN_STRENGTHS.iter().any(|b| b.id == &*s.id))
                .map(|s| format!("{:?} ({})", s.display_name, s.id)),
        );
        WhatIfError::UnknownStrength {
            name: name.to_string(),
            known: known.join(", "),
        }
    })?;
    if strength.allowed_combinations.is_empty() {
        // A built-in strength read without its combinations: the table has them.
        if let Some(b) = BUILTIN_STRENGTHS
            .iter()
            .find(|b| b.id.eq_ignore_ascii_case(&strength.id))
        {
            strength.allowed_combinations = b.combinations.iter().map(|c| (*c).into()).collect();
        } else {
            return Err(WhatIfError::EmptyStrength(
                strength.display_name.to_string(),
            ));
        }
    }
    Ok(strength)
}

/// The prefix of every synthetic policy's display name (and id).
pub const SYNTHETIC_PREFIX: &str = "what-if";

/// The snapshot as it would be after `changes`, and each change in words.
pub fn apply(
    snapshot: &Snapshot,
    changes: &[Change],
) -> Result<(Snapshot, Vec<String>), WhatIfError> {
    if changes.is_empty() {
        return Err(WhatIfError::NoChange);
    }
    let mut after = snapshot.clone();
    let mut described = Vec::new();
    for (i, change) in changes.iter().enumerate() {
        match change {
            Change::DisableMethod(id) => {
                let Some(policy) = after.methods_policy.as_mut() else {
                    let why = snapshot
                        .coverage
                        .gaps
                        .get(&crate::snapshot::DataSet::MethodsPolicy)
                        .map_or_else(|| "absent".to_string(), |g| format!("{g:?}"));
                    return Err(WhatIfError::NoMethodsPolicy(why));
                };
                match policy
                    .methods
                    .iter_mut()
                    .find(|c| c.id.eq_ignore_ascii_case(id))
                {
                    Some(c) => c.enabled = false,
                    // Not in the policy read: now it is, disabled.
                    None => policy.methods.push(MethodConfig {
                        id: (*id).into(),
                        enabled: false,
                        include_targets: Vec::new(),
                        exclude_targets: Vec::new(),
                    }),
                }
                if id.eq_ignore_ascii_case("TemporaryAccessPass") {
                    if let Some(t) = policy.tap.as_mut() {
                        t.enabled = false;
                    }
                }
                described.push(format!("disable the {id} method configuration"));
            }
            Change::RequireStrength { strength, target } => {
                let strength = resolve_strength(snapshot, strength)?;
                if let Target::Group(g) = target {
                    if !snapshot.groups.contains_key(g) {
                        return Err(WhatIfError::GroupNotRead(g.clone()));
                    }
                }
                let text = format!(
                    "require the '{}' authentication strength for {}",
                    strength.display_name,
                    target.describe()
                );
                let all = || vec![Box::<str>::from("All")];
                let policy = CaPolicy {
                    id: format!("{SYNTHETIC_PREFIX}-{}", i + 1).into(),
                    display_name: format!("{SYNTHETIC_PREFIX}: {text}").into(),
                    state: "enabled".into(),
                    include_users: if *target == Target::All {
                        all()
                    } else {
                        Vec::new()
                    },
                    exclude_users: Vec::new(),
                    include_groups: match target {
                        Target::Group(g) => vec![g.as_str().into()],
                        _ => Vec::new(),
                    },
                    exclude_groups: Vec::new(),
                    include_roles: match target {
                        Target::Role(r) => vec![r.as_str().into()],
                        _ => Vec::new(),
                    },
                    exclude_roles: Vec::new(),
                    include_applications: all(),
                    requires_mfa: true,
                    mfa_is_optional: false,
                    exclude_applications: Vec::new(),
                    excludes_guests: false,
                    narrowing: Vec::new(),
                    includes_guests: false,
                    builtin_mfa: false,
                    strength: Some(strength),
                };
                after
                    .conditional_access
                    .get_or_insert_with(Vec::new)
                    .push(policy);
                described.push(text);
            }
        }
    }
    // The registration report's isMfaCapable describes today's methods policy, not a changed
    // one: the rules must not lean on it after a method is switched off. (A required strength
    // leaves the methods policy, and so isMfaCapable, as it is.)
    if changes
        .iter()
        .any(|c| matches!(c, Change::DisableMethod(_)))
    {
        for u in &mut after.users {
            u.mfa_capable = None;
        }
    }
    Ok((after, described))
}

/// One user who would be locked out.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LockedOut {
    pub user_id: String,
    pub user_principal_name: String,
    pub display_name: String,
    /// Registered methods, by name.
    pub methods: Vec<&'static str>,
    /// The rule's detail after the change.
    pub detail: String,
}

/// The users one rule would newly flag for one cause.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LockoutGroup {
    pub rule: &'static str,
    pub severity: Severity,
    /// What causes it: the method configurations switched off, or the policies named.
    pub reason: String,
    /// True for report-only policies: locked out once someone turns the policy on.
    pub report_only: bool,
    /// The users are the configured break-glass accounts (judged apart: `audit` never judges
    /// them by the user rules, but losing them is losing the way back in).
    pub break_glass: bool,
    pub users: Vec<LockedOut>,
}

/// The answer.
#[derive(Clone, Debug, Serialize)]
pub struct WhatIf {
    pub tenant: String,
    /// False when the read was incomplete or a lockout rule could not be judged: then the list
    /// is not the whole truth and must not be read as "nobody".
    pub complete: bool,
    pub incomplete_reasons: Vec<String>,
    pub read_at: DateTime<Utc>,
    pub changes: Vec<String>,
    /// What the reader must know to read the answer right (a legacy policy still applying, a
    /// change that locks nobody out but removes the way back in).
    pub notes: Vec<String>,
    pub users_in_scope: usize,
    /// The lockout rules judged (those in the catalogue).
    pub rules: Vec<&'static str>,
    /// Users each lockout rule already flags today (not caused by the change).
    pub already: BTreeMap<&'static str, usize>,
    pub groups: Vec<LockoutGroup>,
}

impl WhatIf {
    /// Users newly locked out by enforced policy (report-only groups left out), each once.
    pub fn locked_out(&self) -> BTreeSet<&str> {
        self.groups
            .iter()
            .filter(|g| !g.report_only)
            .flat_map(|g| g.users.iter().map(|u| u.user_id.as_str()))
            .collect()
    }

    /// 0 nobody would be locked out, 1 someone would be, 2 the answer is incomplete.
    pub fn exit_code(&self) -> u8 {
        if !self.complete {
            2
        } else if self.locked_out().is_empty() {
            0
        } else {
            1
        }
    }
}

/// The lockout rules that exist in the catalogue.
pub fn lockout_rules() -> Vec<&'static str> {
    LOCKOUT_RULES
        .iter()
        .copied()
        .filter(|id| {
            CATALOGUE
                .iter()
                .any(|r| r.id == *id && r.kind == RuleKind::User)
        })
        .collect()
}

/// `params` with the lockout rules on (a rule switched off in config would hide a lockout) and
/// every other rule off (they do not answer the question and cost time).
fn lockout_params(params: &RulesConfig) -> RulesConfig {
    let Ok(mut table) = toml::Table::try_from(params) else {
        return params.clone();
    };
    let lockout = lockout_rules();
    for (id, value) in table.iter_mut() {
        if let Some(t) = value.as_table_mut() {
            t.insert(
                "enabled".into(),
                toml::Value::Boolean(lockout.contains(&id.as_str())),
            );
        }
    }
    table.try_into().unwrap_or_else(|_| params.clone())
}

/// Judges `snapshot` before and after `changes` and lists who would be newly locked out.
pub fn what_if(
    snapshot: &Snapshot,
    changes: &[Change],
    params: &RulesConfig,
    scope: &dyn Scope,
    break_glass: &[String],
    now: DateTime<Utc>,
) -> Result<WhatIf, WhatIfError> {
    let (after, described) = apply(snapshot, changes)?;
    let params = lockout_params(params);
    let rules = lockout_rules();
    let judge = |s: &Snapshot| evaluate::evaluate(s, &params, scope, break_glass, now);
    let before_eval = judge(snapshot);
    let after_eval = judge(&after);

    let mut incomplete_reasons = crate::report::incomplete_reasons(snapshot);
    let mut seen_skip = BTreeSet::new();
    for Skipped { rule, reason } in before_eval.skipped.iter().chain(&after_eval.skipped) {
        if rules.contains(rule) && seen_skip.insert(*rule) {
            incomplete_reasons.push(format!("{rule} could not be judged: {reason}"));
        }
    }
    let requires = changes
        .iter()
        .any(|c| matches!(c, Change::RequireStrength { .. }));
    if requires && !rules.contains(&"policy-unsatisfiable") {
        incomplete_reasons.push(
            "policy-unsatisfiable is not in this build's rule catalogue: a required authentication strength cannot be judged".to_string(),
        );
    }
    for rule in &rules {
        let enabled = params.toggle(rule).is_some_and(|t| t.enabled());
        if !enabled {
            incomplete_reasons.push(format!("{rule} has no [rules] entry: it was not judged"));
        }
    }

    let is_lockout = |f: &&Finding| rules.contains(&f.rule) && f.user_id.is_some();
    let mut already: BTreeMap<&'static str, usize> = rules.iter().map(|r| (*r, 0)).collect();
    for f in before_eval.findings.iter().filter(is_lockout) {
        *already.entry(f.rule).or_default() += 1;
    }
    // The break-glass accounts, which the audit's user rules never judge, judged on their own:
    // a change that locks out the way back in matters most of all.
    let glass = BreakGlass(break_glass.iter().map(|u| u.to_ascii_lowercase()).collect());
    let glass_judge = |s: &Snapshot| evaluate::evaluate(s, &params, &glass, &[], now);
    let glass_evals = if glass.0.is_empty() {
        None
    } else {
        Some((glass_judge(snapshot), glass_judge(&after)))
    };
    let pairs = [
        Some((&before_eval, &after_eval, false)),
        glass_evals.as_ref().map(|(b, a)| (b, a, true)),
    ];

    let mut grouped: BTreeMap<(bool, usize, String), LockoutGroup> = BTreeMap::new();
    for (before_eval, after_eval, is_glass) in pairs.into_iter().flatten() {
        let before: BTreeSet<(&'static str, &str)> = before_eval
            .findings
            .iter()
            .filter(is_lockout)
            .map(|f| (f.rule, f.subject.as_str()))
            .collect();
        for f in after_eval.findings.iter().filter(is_lockout) {
            if before.contains(&(f.rule, f.subject.as_str())) {
                continue;
            }
            let Some(user) = ObjectId::parse(&f.subject).and_then(|id| find_user(&after, id))
            else {
                continue;
            };
            let reason = cause(f, user, changes, &after);
            let order = rules
                .iter()
                .position(|r| *r == f.rule)
                .unwrap_or(usize::MAX);
            let group = grouped
                .entry((!is_glass, order, reason.clone()))
                .or_insert_with(|| LockoutGroup {
                    rule: f.rule,
                    severity: f.severity,
                    reason,
                    report_only: REPORT_ONLY_RULES.contains(&f.rule),
                    break_glass: is_glass,
                    users: Vec::new(),
                });
            group.users.push(LockedOut {
                user_id: f.subject.clone(),
                user_principal_name: user.upn.to_string(),
                display_name: user.display_name.to_string(),
                methods: user
                    .methods
                    .map(|m| m.iter().map(MethodKind::name).collect())
                    .unwrap_or_default(),
                detail: f.detail.clone(),
            });
        }
    }
    let mut groups: Vec<LockoutGroup> = grouped.into_values().collect();
    for g in &mut groups {
        g.users
            .sort_by(|a, b| a.user_principal_name.cmp(&b.user_principal_name));
    }
    Ok(WhatIf {
        tenant: snapshot.tenant_id.clone(),
        complete: incomplete_reasons.is_empty(),
        incomplete_reasons,
        read_at: snapshot.taken_at,
        notes: notes(snapshot, changes),
        changes: described,
        users_in_scope: after_eval.users_in_scope,
        rules,
        already,
        groups,
    })
}

/// Caveats of the answer, in words.
fn notes(snapshot: &Snapshot, changes: &[Change]) -> Vec<String> {
    let mut out = Vec::new();
    let disables = changes
        .iter()
        .any(|c| matches!(c, Change::DisableMethod(_)));
    if let Some(p) = &snapshot.methods_policy {
        if disables && p.migration_state.as_ref() != "migrationComplete" {
            out.push(format!(
                "policyMigrationState is {}: the legacy MFA and SSPR policies still allow methods this policy disables, so a method switched off here is not counted as lost; finish the migration for a firm answer",
                p.migration_state
            ));
        }
    }
    if changes.contains(&Change::DisableMethod("TemporaryAccessPass")) {
        out.push("nobody signs in with a Temporary Access Pass day to day, so disabling it locks no one out now; but it is how a user who lost every method is let back in (see the tap-policy-disabled rule)".to_string());
    }
    out
}

/// A scope of the enabled break-glass accounts only.
struct BreakGlass(Vec<String>);

impl Scope for BreakGlass {
    fn exclusion(&self, user: &crate::snapshot::User, _: &Snapshot) -> Option<&'static str> {
        let listed = self.0.iter().any(|u| u.eq_ignore_ascii_case(&user.upn));
        (!listed || !user.account_enabled).then_some("not a break-glass account")
    }
}

fn find_user(s: &Snapshot, id: ObjectId) -> Option<&crate::snapshot::User> {
    s.user(id).or_else(|| s.users.iter().find(|u| u.id == id))
}

/// What caused one new finding, in words: for the methods policy, the switched-off
/// configurations that allowed one of the user's methods; for a Conditional Access rule, the
/// policies its detail names.
fn cause(
    f: &Finding,
    user: &crate::snapshot::User,
    changes: &[Change],
    after: &Snapshot,
) -> String {
    if f.rule == "method-not-allowed" {
        let methods = user.methods.unwrap_or_default();
        let off: Vec<&str> = changes
            .iter()
            .filter_map(|c| match c {
                Change::DisableMethod(id) => Some(*id),
                Change::RequireStrength { .. } => None,
            })
            .filter(|id| methods.iter().any(|k| governs(id, k)))
            .collect();
        return if off.is_empty() {
            "authentication-methods policy".to_string()
        } else {
            format!("authentication-methods policy: {} disabled", off.join(", "))
        };
    }
    let named: Vec<String> = after
        .conditional_access
        .iter()
        .flatten()
        .filter(|p| !p.display_name.is_empty() && f.detail.contains(&*p.display_name))
        .map(|p| format!("Conditional Access '{}'", p.display_name))
        .collect();
    if named.is_empty() {
        "Conditional Access".to_string()
    } else {
        named.join(", ")
    }
}

// ---- formats ----

impl WhatIf {
    pub fn to_json(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_else(|e| json!({"error": e.to_string()}));
        if let Some(o) = v.as_object_mut() {
            o.insert("locked_out".into(), json!(self.locked_out().len()));
        }
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }

    /// One row per (group, user), RFC 4180 quoting.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "rule,severity,reason,report_only,break_glass,user_id,user_principal_name,display_name,methods,detail\r\n",
        );
        for g in &self.groups {
            for u in &g.users {
                let flag = |b: bool| if b { "true" } else { "false" };
                let methods = u.methods.join(" ");
                let row = [
                    g.rule,
                    g.severity.as_str(),
                    &g.reason,
                    flag(g.report_only),
                    flag(g.break_glass),
                    &u.user_id,
                    &u.user_principal_name,
                    &u.display_name,
                    &methods,
                    &u.detail,
                ];
                let cells: Vec<String> = row.iter().map(|c| crate::report::csv_cell(c)).collect();
                out.push_str(&cells.join(","));
                out.push_str("\r\n");
            }
        }
        out
    }

    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "tenant {}  {}  read {}  {} users in scope",
            self.tenant,
            if self.complete {
                "complete"
            } else {
                "INCOMPLETE"
            },
            self.read_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            self.users_in_scope
        );
        for c in &self.changes {
            let _ = writeln!(out, "  what if: {c}");
        }
        for r in &self.incomplete_reasons {
            let _ = writeln!(out, "  not judged: {r}");
        }
        for n in &self.notes {
            let _ = writeln!(out, "  note: {n}");
        }
        let n = self.locked_out().len();
        let _ = writeln!(
            out,
            "\n{}",
            match (self.complete, n) {
                (false, 0) => "no user found who would be locked out, but the answer is INCOMPLETE (see above): this is not \"nobody\"".to_string(),
                (true, 0) => "nobody would be newly locked out".to_string(),
                (_, n) => format!("{n} user(s) would be newly locked out"),
            }
        );
        for g in &self.groups {
            let _ = writeln!(
                out,
                "\n{}{} [{}{}] {}: {} user(s)",
                if g.break_glass {
                    "BREAK-GLASS ACCOUNTS: "
                } else {
                    ""
                },
                g.rule,
                g.severity,
                if g.report_only {
                    ", report-only: once the policy is turned on"
                } else {
                    ""
                },
                g.reason,
                g.users.len()
            );
            for u in &g.users {
                let _ = writeln!(
                    out,
                    "  {}  ({})  methods: {}\n    {}",
                    u.user_principal_name,
                    u.display_name,
                    if u.methods.is_empty() {
                        "none".to_string()
                    } else {
                        u.methods.join(", ")
                    },
                    u.detail
                );
            }
        }
        let already: Vec<String> = self
            .already
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(r, n)| format!("{n} {r}"))
            .collect();
        if !already.is_empty() {
            let _ = writeln!(
                out,
                "\nalready flagged today, before the change (see `mfa-auditor audit`): {}",
                already.join(", ")
            );
        }
        out
    }

    /// SARIF 2.1.0: one result per (group, user), rules from the catalogue.
    pub fn to_sarif(&self) -> String {
        let level = crate::report::sarif_level;
        let rules: Vec<serde_json::Value> = self
            .rules
            .iter()
            .filter_map(|id| CATALOGUE.iter().find(|r| r.id == *id))
            .map(crate::report::sarif_rule)
            .collect();
        let mut results = Vec::new();
        for g in &self.groups {
            let index = self.rules.iter().position(|r| *r == g.rule).unwrap_or(0);
            for u in &g.users {
                results.push(json!({
                    "ruleId": g.rule,
                    "ruleIndex": index,
                    "level": level(g.severity),
                    "message": {"text": format!("What if {}: {} would be locked out ({}). {}", self.changes.join("; "), u.user_principal_name, g.reason, u.detail)},
                    "locations": [{"logicalLocations": [{"name": u.user_principal_name, "fullyQualifiedName": format!("{}/{}", self.tenant, u.user_id), "kind": "user"}]}],
                    "partialFingerprints": {"mfaAuditorWhatIf/v1": format!("{}/{}/{}", self.tenant, g.rule, u.user_id)},
                    "properties": {"severity": g.severity.as_str(), "reason": g.reason, "reportOnly": g.report_only, "breakGlass": g.break_glass}
                }));
            }
        }
        let doc = json!({
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [{
                "tool": {"driver": {
                    "name": "mfa-auditor what-if",
                    "version": env!("CARGO_PKG_VERSION"),
                    "informationUri": "https://github.com/mfa-auditor/mfa-auditor",
                    "rules": rules
                }},
                "invocations": [{
                    "executionSuccessful": self.complete,
                    "toolExecutionNotifications": self.incomplete_reasons.iter().map(|r| json!({"level": "error", "message": {"text": r}})).collect::<Vec<_>>()
                }],
                "results": results
            }]
        });
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
