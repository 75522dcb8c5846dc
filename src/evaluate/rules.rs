//! The rule catalogue (DESIGN §4): data plus a pure function each. Adding a rule is adding a row
//! here, its parameters in `params.rs`, and a case in the catalogue test.

use chrono::Duration;

use super::policy_rules::*;
use super::predict::{allowed, Allowed};
use super::{Ctx, Hit, Rule, RuleKind, Severity};
use crate::snapshot::{
    CaPolicy, DataSet, FeatureState, MethodKind, MethodSet, ObjectId, PerUserMfa, User, ROLE_TABLE,
};

const PHONE: [MethodKind; 3] = [
    MethodKind::MobilePhone,
    MethodKind::AlternateMobilePhone,
    MethodKind::OfficePhone,
];

/// Method kinds in words, `none` for none.
pub(super) fn names(set: MethodSet) -> String {
    let v: Vec<&str> = set.iter().map(MethodKind::name).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Users in scope whose methods are known.
pub(super) fn known<'a>(ctx: &'a Ctx) -> impl Iterator<Item = (&'a User, MethodSet)> + 'a {
    ctx.users.iter().filter_map(|u| u.methods.map(|m| (*u, m)))
}

/// Holds a tracked role, can activate one through PIM, or the report calls them an admin.
fn is_privileged(u: &User) -> bool {
    !u.admin_roles().is_empty() || u.is_admin
}

/// The user's tracked roles in words: active ones, then the PIM-eligible ones marked so.
fn role_names(u: &User) -> String {
    let mut names: Vec<String> = u
        .roles
        .iter()
        .map(|r| r.display_name().to_string())
        .collect();
    names.extend(
        u.eligible_roles
            .iter()
            .map(|r| format!("{} (eligible)", r.display_name())),
    );
    if names.is_empty() {
        "an admin role".to_string()
    } else {
        names.join(", ")
    }
}

/// Rules judged even when these data sets are missing, on what was read (the report says so).
pub static JUDGED_WITHOUT: &[(&str, DataSet)] = &[
    ("admin-not-phishing-resistant", DataSet::RoleEligibility),
    ("too-few-recovery-admins", DataSet::RoleEligibility),
    ("per-user-mfa-legacy", DataSet::RoleEligibility),
    ("tap-long-lived", DataSet::DirectoryAudit),
    ("tap-multi-use", DataSet::DirectoryAudit),
    // Without the methods policy every registered method counts as allowed; without the
    // strengths the built-in ones and the policies' inline combinations are judged (a custom
    // strength not found leaves its policy unjudged); without the roles or the groups a policy
    // naming them is undecided for the users it might concern (no finding).
    ("policy-unsatisfiable", DataSet::MethodsPolicy),
    ("policy-unsatisfiable", DataSet::AuthStrengths),
    ("policy-unsatisfiable", DataSet::Roles),
    ("policy-unsatisfiable", DataSet::PolicyTargets),
    ("policy-unsatisfiable-report-only", DataSet::MethodsPolicy),
    ("policy-unsatisfiable-report-only", DataSet::AuthStrengths),
    ("policy-unsatisfiable-report-only", DataSet::Roles),
    ("policy-unsatisfiable-report-only", DataSet::PolicyTargets),
    ("admin-no-recovery-contact", DataSet::RoleEligibility),
    // Without Conditional Access, only the passkey profiles are judged; without the roles or
    // the groups, users a policy or profile might concern are not counted.
    ("passkey-policy-blocks", DataSet::ConditionalAccess),
    ("passkey-policy-blocks", DataSet::AuthStrengths),
    ("passkey-policy-blocks", DataSet::Roles),
    ("passkey-policy-blocks", DataSet::PolicyTargets),
];

/// A usable TAP: usable now by Graph's word.
fn usable_tap(u: &User) -> Option<&crate::snapshot::Tap> {
    u.tap.as_deref().filter(|t| t.usable)
}

fn no_mfa_method(ctx: &Ctx) -> Vec<Hit> {
    let grace = Duration::days(i64::from(ctx.params.no_mfa_method.grace_days));
    known(ctx)
        .filter(|(_, m)| m.mfa_capable().is_empty())
        .filter(|(u, _)| u.created.is_none_or(|c| ctx.now - c >= grace))
        .map(|(u, m)| {
            Hit::user(
                u,
                format!("no MFA-capable method registered (methods: {})", names(m)),
            )
        })
        .collect()
}

fn no_backup_method(ctx: &Ctx) -> Vec<Hit> {
    let min = ctx.params.no_backup_method.min_families as usize;
    known(ctx)
        .filter(|(_, m)| !m.mfa_capable().is_empty() && m.mfa_families() < min)
        .map(|(u, m)| {
            Hit::user(
                u,
                format!(
                    "MFA methods span {} recovery family, fewer than {min}: {}",
                    m.mfa_families(),
                    names(m.mfa_capable())
                ),
            )
        })
        .collect()
}

fn phone_only(ctx: &Ctx) -> Vec<Hit> {
    known(ctx)
        .filter(|(_, m)| {
            let mfa = m.mfa_capable();
            !mfa.is_empty() && mfa.iter().all(|k| PHONE.contains(&k))
        })
        .map(|(u, m)| {
            Hit::user(
                u,
                format!(
                    "every MFA method is SMS or voice: {}",
                    names(m.mfa_capable())
                ),
            )
        })
        .collect()
}

fn admin_not_phishing_resistant(ctx: &Ctx) -> Vec<Hit> {
    known(ctx)
        .filter(|(u, m)| is_privileged(u) && !m.has_phishing_resistant())
        .map(|(u, m)| {
            Hit::user(
                u,
                format!(
                    "holds {} without a phishing-resistant method (has: {})",
                    role_names(u),
                    names(m.mfa_capable())
                ),
            )
        })
        .collect()
}

fn tap_long_lived(ctx: &Ctx) -> Vec<Hit> {
    let max = ctx.params.tap_long_lived.max_lifetime_minutes;
    ctx.users
        .iter()
        .filter_map(|u| usable_tap(u).map(|t| (*u, t)))
        .filter(|(_, t)| t.lifetime_minutes > max)
        .map(|(u, t)| {
            Hit::user(
                u,
                format!(
                    "a usable Temporary Access Pass lives {} minutes (more than {max})",
                    t.lifetime_minutes
                ),
            )
        })
        .collect()
}

fn tap_multi_use(ctx: &Ctx) -> Vec<Hit> {
    ctx.users
        .iter()
        .filter_map(|u| usable_tap(u).map(|t| (*u, t)))
        .filter(|(_, t)| !t.usable_once)
        .map(|(u, t)| {
            Hit::user(
                u,
                format!(
                    "a usable Temporary Access Pass is multi-use ({} minutes)",
                    t.lifetime_minutes
                ),
            )
        })
        .collect()
}

fn mfa_failures(ctx: &Ctx) -> Vec<Hit> {
    let threshold = ctx.params.mfa_failures.threshold;
    ctx.users
        .iter()
        .filter_map(|u| u.mfa_failures.map(|n| (*u, n)))
        .filter(|(_, n)| *n >= threshold.max(1))
        .map(|(u, n)| {
            Hit::user(
                u,
                format!("{n} failed MFA sign-ins in the collection window (threshold {threshold})"),
            )
        })
        .collect()
}

fn per_user_mfa_legacy(ctx: &Ctx) -> Vec<Hit> {
    ctx.users
        .iter()
        .filter(|u| {
            matches!(
                u.per_user_mfa,
                Some(PerUserMfa::Enabled | PerUserMfa::Enforced)
            )
        })
        .map(|u| {
            Hit::user(
                u,
                format!(
                    "legacy per-user MFA is {:?}",
                    u.per_user_mfa.unwrap_or(PerUserMfa::Unknown)
                )
                .to_lowercase(),
            )
        })
        .collect()
}

fn weak_default_method(ctx: &Ctx) -> Vec<Hit> {
    known(ctx)
        .filter(|(u, _)| u.system_preferred_mfa == Some(false))
        .filter(|(u, _)| u.default_method.is_some_and(|d| d.is_phone()))
        .filter(|(_, m)| m.mfa_capable().iter().any(|k| !PHONE.contains(&k)))
        .map(|(u, m)| {
            let stronger: MethodSet = m
                .mfa_capable()
                .iter()
                .filter(|k| !PHONE.contains(k))
                .collect();
            Hit::user(
                u,
                format!(
                    "the default method is {:?} while {} is registered",
                    u.default_method
                        .unwrap_or(crate::snapshot::DefaultMethod::Unknown),
                    names(stronger)
                ),
            )
        })
        .collect()
}

fn break_glass_weak(ctx: &Ctx) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (upn, user) in ctx.break_glass {
        match user {
            None => hits.push(Hit::tenant_about(
                upn.clone(),
                format!("emergency-access account {upn} does not exist"),
            )),
            Some(u) if !u.account_enabled => {
                hits.push(Hit::user(u, "emergency-access account is disabled"))
            }
            Some(u) => match u.methods {
                Some(m) if m.has_phishing_resistant() => {}
                Some(m) => hits.push(Hit::user(
                    u,
                    format!(
                        "emergency-access account has no phishing-resistant method (has: {})",
                        names(m)
                    ),
                )),
                None => hits.push(Hit::user(
                    u,
                    "emergency-access account's methods could not be read",
                )),
            },
        }
    }
    hits
}

fn tap_policy<'a>(ctx: &Ctx<'a>) -> Option<&'a crate::snapshot::TapPolicy> {
    ctx.snapshot
        .methods_policy
        .as_ref()
        .and_then(|p| p.tap.as_ref())
}

fn tap_policy_disabled(ctx: &Ctx) -> Vec<Hit> {
    match tap_policy(ctx) {
        Some(t) if t.enabled => vec![],
        Some(_) => vec![Hit::tenant("the Temporary Access Pass method is disabled")],
        None => vec![Hit::tenant(
            "the authentication-methods policy has no Temporary Access Pass configuration",
        )],
    }
}

fn tap_policy_multi_use(ctx: &Ctx) -> Vec<Hit> {
    match tap_policy(ctx) {
        Some(t) if t.enabled && !t.usable_once => vec![Hit::tenant(
            "the TAP policy allows multi-use passes (isUsableOnce is false)",
        )],
        _ => vec![],
    }
}

fn tap_policy_lifetime(ctx: &Ctx) -> Vec<Hit> {
    let p = &ctx.params.tap_policy_lifetime;
    let Some(t) = tap_policy(ctx).filter(|t| t.enabled) else {
        return vec![];
    };
    let mut hits = Vec::new();
    if let Some(d) = t
        .default_lifetime_minutes
        .filter(|d| *d > p.max_default_minutes)
    {
        hits.push(Hit::tenant_about(
            "default",
            format!(
                "default TAP lifetime is {d} minutes (more than {})",
                p.max_default_minutes
            ),
        ));
    }
    if let Some(m) = t
        .maximum_lifetime_minutes
        .filter(|m| *m > p.max_lifetime_minutes)
    {
        hits.push(Hit::tenant_about(
            "maximum",
            format!(
                "maximum TAP lifetime is {m} minutes (more than {})",
                p.max_lifetime_minutes
            ),
        ));
    }
    hits
}

fn tap_policy_scope(ctx: &Ctx) -> Vec<Hit> {
    let Some(t) = tap_policy(ctx).filter(|t| t.enabled) else {
        return vec![];
    };
    let groups = &ctx.params.tap_policy_scope.groups;
    let includes = |id: &str| t.include_targets.iter().any(|x| x.eq_ignore_ascii_case(id));
    let all = includes("all_users");
    let covered = if groups.is_empty() {
        all
    } else {
        all || groups.iter().all(|g| includes(g))
    };
    let excluded = !t.exclude_targets.is_empty();
    match (covered, excluded) {
        (true, false) => vec![],
        (true, true) => vec![Hit::tenant(format!(
            "TAP excludes {} target(s): those users cannot be let back in with a TAP",
            t.exclude_targets.len()
        ))],
        (false, _) => vec![Hit::tenant(format!(
            "TAP is usable only by {}",
            t.include_targets
                .iter()
                .map(|s| s.as_ref())
                .collect::<Vec<&str>>()
                .join(", ")
        ))],
    }
}

fn weak_methods_enabled(ctx: &Ctx) -> Vec<Hit> {
    let Some(policy) = &ctx.snapshot.methods_policy else {
        return vec![];
    };
    let weak = &ctx.params.weak_methods_enabled.methods;
    policy
        .methods
        .iter()
        .filter(|m| m.enabled && weak.iter().any(|w| w.eq_ignore_ascii_case(&m.id)))
        .map(|m| {
            Hit::tenant_about(
                m.id.to_string(),
                format!("{} is enabled in the authentication-methods policy", m.id),
            )
        })
        .collect()
}

fn authenticator_context_off(ctx: &Ctx) -> Vec<Hit> {
    let Some(a) = ctx
        .snapshot
        .methods_policy
        .as_ref()
        .and_then(|p| p.authenticator.as_ref())
    else {
        return vec![];
    };
    // Number matching is enforced by Microsoft for every push since 2023: only "disabled" is off.
    let mut off = Vec::new();
    if a.number_matching == FeatureState::Disabled {
        off.push("number matching");
    }
    if a.app_information != FeatureState::Enabled {
        off.push("application name");
    }
    if a.location_information != FeatureState::Enabled {
        off.push("geographic location");
    }
    if off.is_empty() {
        vec![]
    } else {
        vec![Hit::tenant(format!(
            "Microsoft Authenticator does not show {}",
            off.join(", ")
        ))]
    }
}

fn system_preferred_mfa_off(ctx: &Ctx) -> Vec<Hit> {
    match ctx
        .snapshot
        .methods_policy
        .as_ref()
        .and_then(|p| p.system_preferred_mfa)
    {
        Some(FeatureState::Enabled) | None => vec![],
        Some(state) => vec![Hit::tenant(
            format!("system-preferred MFA is {state:?}").to_lowercase(),
        )],
    }
}

fn registration_campaign_off(ctx: &Ctx) -> Vec<Hit> {
    match ctx
        .snapshot
        .methods_policy
        .as_ref()
        .map(|p| p.registration_campaign)
    {
        Some(FeatureState::Enabled) | None => vec![],
        Some(state) => vec![Hit::tenant(
            format!("the registration campaign (nudge) is {state:?}").to_lowercase(),
        )],
    }
}

fn migration_incomplete(ctx: &Ctx) -> Vec<Hit> {
    match ctx
        .snapshot
        .methods_policy
        .as_ref()
        .map(|p| p.migration_state.as_ref())
    {
        Some("migrationComplete") | None => vec![],
        Some(state) => vec![Hit::tenant(format!(
            "policyMigrationState is {state}: legacy MFA and SSPR policies still apply"
        ))],
    }
}

fn no_mfa_enforcement(ctx: &Ctx) -> Vec<Hit> {
    if ctx.snapshot.security_defaults_enabled == Some(true) {
        return vec![];
    }
    // Enabled policies that require MFA (not as one OR'ed choice) of all users for all apps;
    // report-only and disabled ones enforce nothing.
    let candidates: Vec<&CaPolicy> = ctx
        .snapshot
        .conditional_access
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|p| {
            p.state.as_ref() == "enabled"
                && p.requires_mfa
                && !p.mfa_is_optional
                && p.include_users
                    .iter()
                    .any(|u| u.eq_ignore_ascii_case("All"))
                && p.include_applications
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case("All"))
        })
        .collect();
    // Each one counts only if it applies unconditionally and leaves out nobody but the
    // break-glass accounts; otherwise say what it leaves out.
    let mut gaps: Vec<String> = Vec::new();
    for p in &candidates {
        let left_out = ca_left_out(ctx, p);
        if left_out.is_empty() {
            return vec![];
        }
        gaps.push(format!("'{}' {}", p.display_name, left_out.join(" and ")));
    }
    let base = "security defaults are off and no enabled Conditional Access policy requires MFA for all users and all apps";
    if gaps.is_empty() {
        vec![Hit::tenant(base)]
    } else {
        vec![Hit::tenant(format!(
            "{base} unconditionally: {}",
            gaps.join("; ")
        ))]
    }
}

/// What an all-users, all-apps MFA policy leaves out, in words: exclusions beyond the
/// break-glass accounts, and the conditions that narrow it. Empty: it covers everyone.
fn ca_left_out(ctx: &Ctx, p: &CaPolicy) -> Vec<String> {
    let glass: Vec<ObjectId> = ctx
        .break_glass
        .iter()
        .filter_map(|(_, u)| u.map(|u| u.id))
        .collect();
    let mut out: Vec<String> = Vec::new();
    let users: Vec<String> = p
        .exclude_users
        .iter()
        .filter(|x| !x.eq_ignore_ascii_case("GuestsOrExternalUsers"))
        .filter_map(|x| match ObjectId::parse(x) {
            // An id that is no user (deleted since) leaves nobody out.
            Some(id) if glass.contains(&id) => None,
            Some(id) => ctx.snapshot.user(id).map(|u| u.upn.to_string()),
            None => Some(x.to_string()),
        })
        .collect();
    let list = |what: &str, v: &[String]| {
        format!(
            "excludes {what}{} {}",
            if v.len() == 1 { "" } else { "s" },
            v.join(", ")
        )
    };
    if !users.is_empty() {
        out.push(list("user", &users));
    }
    let groups: Vec<String> = p
        .exclude_groups
        .iter()
        .filter(|g| {
            // A group read for the scope whose members are all break-glass accounts is fine.
            ctx.snapshot
                .groups
                .get(&g.to_ascii_lowercase())
                .is_none_or(|members| !members.iter().all(|m| glass.contains(m)))
        })
        .map(|g| g.to_string())
        .collect();
    if !groups.is_empty() {
        out.push(list("group", &groups));
    }
    let roles: Vec<String> = p
        .exclude_roles
        .iter()
        .map(|r| {
            ROLE_TABLE
                .iter()
                .find(|(_, id, _)| id.eq_ignore_ascii_case(r))
                .map_or_else(|| r.to_string(), |(_, _, name)| name.to_string())
        })
        .collect();
    if !roles.is_empty() {
        out.push(list("role", &roles));
    }
    if p.excludes_guests {
        out.push("excludes guests and external users".into());
    }
    let apps: Vec<String> = p
        .exclude_applications
        .iter()
        .map(|a| a.to_string())
        .collect();
    if !apps.is_empty() {
        out.push(list("application", &apps));
    }
    if !p.narrowing.is_empty() {
        let n: Vec<&str> = p.narrowing.iter().map(|n| n.as_ref()).collect();
        out.push(format!("applies only to {}", n.join(", ")));
    }
    out
}

fn too_few_recovery_admins(ctx: &Ctx) -> Vec<Hit> {
    let min = ctx.params.too_few_recovery_admins.min as usize;
    // PIM-eligible admins count: they can activate the role to let a user back in. How many of
    // the ready ones could only do so after activating is said.
    let ready: Vec<&User> = ctx
        .snapshot
        .users
        .iter()
        .filter(|u| u.account_enabled && u.admin_roles().can_reset_mfa())
        .filter(|u| u.methods.is_some_and(|m| m.mfa_families() >= 2))
        .collect();
    if ready.len() >= min {
        return vec![];
    }
    let only_eligible = ready.iter().filter(|u| !u.roles.can_reset_mfa()).count();
    let mut detail = format!(
        "{} enabled admin(s) can reset MFA and issue a TAP while holding a backup method",
        ready.len()
    );
    if only_eligible > 0 {
        detail.push_str(&format!(
            " ({only_eligible} of them only after activating an eligible role in PIM)"
        ));
    }
    detail.push_str(&format!("; at least {min} are needed"));
    if !ctx.snapshot.coverage.has(DataSet::RoleEligibility) {
        detail.push_str("; PIM eligibility was not read, so eligible admins are not counted");
    }
    vec![Hit::tenant(detail)]
}

fn break_glass_count(ctx: &Ctx) -> Vec<Hit> {
    let expected = ctx.params.break_glass_count.expected as usize;
    let n = ctx.break_glass.len();
    if n == expected {
        vec![]
    } else {
        vec![Hit::tenant(format!(
            "{n} emergency-access account(s) configured in [break_glass]; {expected} expected"
        ))]
    }
}

fn method_not_allowed(ctx: &Ctx) -> Vec<Hit> {
    let Some(policy) = &ctx.snapshot.methods_policy else {
        return vec![];
    };
    // Until the migration completes, the legacy MFA policy can still allow what this one disables.
    let legacy = policy.migration_state.as_ref() != "migrationComplete";
    let mut hits = Vec::new();
    for (u, m) in known(ctx) {
        let mfa = m.mfa_capable();
        if mfa.is_empty() {
            continue;
        }
        let mut no = Vec::new();
        let mut unknown = Vec::new();
        let mut usable = false;
        for k in mfa.iter() {
            match allowed(ctx.snapshot, policy, u, k) {
                Allowed::Yes => usable = true,
                Allowed::No(why) if !legacy => no.push(format!("{} ({why})", k.name())),
                Allowed::No(why) => unknown.push(format!(
                    "{} ({why}, but the legacy MFA policy still applies: policyMigrationState is {})",
                    k.name(),
                    policy.migration_state
                )),
                Allowed::Unknown(why) => unknown.push(format!("{} ({why})", k.name())),
            }
        }
        if usable {
            continue;
        }
        if unknown.is_empty() {
            let mut detail = format!(
                "registered MFA methods, none allowed by the authentication-methods policy: {}",
                no.join("; ")
            );
            if u.mfa_capable == Some(true) {
                detail.push_str(" (the registration report, hours behind, still says MFA-capable)");
            }
            hits.push(Hit::user(u, detail));
        } else if u.mfa_capable == Some(false) {
            let mut parts = no;
            parts.extend(unknown);
            hits.push(Hit::user(
                u,
                format!(
                    "registered MFA methods, but the registration report's isMfaCapable is false (no method allowed by policy): {}",
                    parts.join("; ")
                ),
            ));
        }
    }
    hits
}

/// Rules whose need of the registration report is only each user's methods: on a free tenant
/// (no report, methods read per user for everyone) they are judged from per-user detail.
pub(super) const JUDGED_FROM_DETAIL: &[&str] = &[
    "no-mfa-method",
    "no-backup-method",
    "phone-only",
    "admin-not-phishing-resistant",
    "too-few-recovery-admins",
    "method-not-allowed",
    "policy-unsatisfiable",
    "policy-unsatisfiable-report-only",
    "passkey-policy-blocks",
];

use DataSet::*;

pub static CATALOGUE: &[Rule] = &[
    Rule {
        id: "no-mfa-method",
        title: "User has no MFA method",
        kind: RuleKind::User,
        severity: Severity::High,
        needs: &[Users, Registration],
        rationale: "A user with no MFA-capable method is prompted to register at the next sign-in that needs MFA: whoever holds the password registers first. Past the grace period for new users, this is an open door, not a pending task.",
        remediation: "Have {upn} register two methods at https://aka.ms/mysecurityinfo, or issue a one-time TAP for a guided registration: New-MgUserAuthenticationTemporaryAccessPassMethod -UserId {upn} -IsUsableOnce:$true -LifetimeInMinutes 60 (POST /users/{upn}/authentication/temporaryAccessPassMethods).",
        check: no_mfa_method,
    },
    Rule {
        id: "no-backup-method",
        title: "User has no backup MFA method",
        kind: RuleKind::User,
        severity: Severity::Medium,
        needs: &[Users, Registration],
        rationale: "All of the user's MFA methods live on one thing (one phone's apps, one key): losing or replacing it locks them out until an admin intervenes. Methods count by recovery family; Authenticator plus SMS counts as two because a replacement phone keeps the number.",
        remediation: "Ask {upn} to add a method from another family (a phone number, a FIDO2 key, Windows Hello) at https://aka.ms/mysecurityinfo, or add one for them: New-MgUserAuthenticationPhoneMethod -UserId {upn} -PhoneType mobile -PhoneNumber '+1 5555550100' (POST /users/{upn}/authentication/phoneMethods).",
        check: no_backup_method,
    },
    Rule {
        id: "phone-only",
        title: "User's MFA is SMS or voice only",
        kind: RuleKind::User,
        severity: Severity::Medium,
        needs: &[Users, Registration],
        rationale: "SMS and voice are the weakest MFA (SIM swap, interception), and a lost or ported number removes every method at once.",
        remediation: "Have {upn} register Microsoft Authenticator or a passkey at https://aka.ms/mysecurityinfo; a one-time TAP helps: New-MgUserAuthenticationTemporaryAccessPassMethod -UserId {upn} -IsUsableOnce:$true.",
        check: phone_only,
    },
    Rule {
        id: "admin-not-phishing-resistant",
        title: "Admin without a phishing-resistant method",
        kind: RuleKind::User,
        severity: Severity::High,
        needs: &[Users, Registration, Roles],
        rationale: "Privileged accounts are phished first; push, OTP and SMS can all be relayed by an adversary in the middle. Only FIDO2 keys, passkeys, Windows Hello and certificates resist it.",
        remediation: "Register a FIDO2 security key or passkey for {upn} (a one-time TAP lets them do it: New-MgUserAuthenticationTemporaryAccessPassMethod -UserId {upn} -IsUsableOnce:$true), then require the built-in 'Phishing-resistant MFA' authentication strength for admin roles in Conditional Access.",
        check: admin_not_phishing_resistant,
    },
    Rule {
        id: "method-not-allowed",
        title: "User's registered methods are not allowed by policy",
        kind: RuleKind::User,
        severity: Severity::High,
        needs: &[Users, Registration, MethodsPolicy],
        rationale: "The user has registered MFA methods but the authentication-methods policy allows none of them to this user (method disabled, user outside includeTargets or inside excludeTargets): registered is not usable, and at the next MFA prompt they are locked out. Cross-checked with the registration report's isMfaCapable where group membership is not read.",
        remediation: "Enable a method {upn} has, or bring them into its targets: Update-MgPolicyAuthenticationMethodPolicyAuthenticationMethodConfiguration -AuthenticationMethodConfigurationId <id, e.g. HardwareOath> -BodyParameter @{'@odata.type'='#microsoft.graph.<type>AuthenticationMethodConfiguration'; state='enabled'} (PATCH /policies/authenticationMethodsPolicy/authenticationMethodConfigurations/{id}); or let them register an allowed method with a one-time TAP: New-MgUserAuthenticationTemporaryAccessPassMethod -UserId {upn} -IsUsableOnce:$true.",
        check: method_not_allowed,
    },
    Rule {
        id: "tap-long-lived",
        title: "Long-lived Temporary Access Pass",
        kind: RuleKind::User,
        severity: Severity::Medium,
        needs: &[Users, TapDetail],
        rationale: "A TAP is a password that satisfies MFA. One that lives for days is a standing bypass of MFA for anyone who learns it.",
        remediation: "Delete it: Remove-MgUserAuthenticationTemporaryAccessPassMethod -UserId {upn} -TemporaryAccessPassAuthenticationMethodId <id> (DELETE /users/{upn}/authentication/temporaryAccessPassMethods/{id}); issue short one-time passes instead.",
        check: tap_long_lived,
    },
    Rule {
        id: "tap-multi-use",
        title: "Multi-use Temporary Access Pass",
        kind: RuleKind::User,
        severity: Severity::Low,
        needs: &[Users, TapDetail],
        rationale: "A multi-use TAP can be replayed for its whole lifetime; a one-time pass is spent by the registration it was issued for.",
        remediation: "Replace it with a one-time pass: New-MgUserAuthenticationTemporaryAccessPassMethod -UserId {upn} -IsUsableOnce:$true (a new TAP replaces the old one).",
        check: tap_multi_use,
    },
    Rule {
        id: "mfa-failures",
        title: "Repeated failed MFA sign-ins",
        kind: RuleKind::User,
        severity: Severity::Medium,
        needs: &[Users, SignIns],
        rationale: "Repeated MFA failures (500121: strong authentication failed) mean a user who cannot complete MFA (lost phone, new number, throttled) or someone bombarding them with prompts. Either way they are about to be locked out or talked into approving.",
        remediation: "Contact {upn} out of band. If their method is lost, verify identity and issue a one-time TAP: New-MgUserAuthenticationTemporaryAccessPassMethod -UserId {upn} -IsUsableOnce:$true; if not, reset their password and review sign-ins: Get-MgAuditLogSignIn -Filter \"userPrincipalName eq '{upn}'\".",
        check: mfa_failures,
    },
    Rule {
        id: "per-user-mfa-legacy",
        title: "Legacy per-user MFA in use",
        kind: RuleKind::User,
        severity: Severity::Low,
        needs: &[Users, PerUserMfa],
        rationale: "Per-user MFA predates Conditional Access, ignores its conditions and exclusions, and is being retired; a user enforced there can be prompted where policy says they should not, and vice versa.",
        remediation: "Move the user to Conditional Access, then: Invoke-MgGraphRequest -Method PATCH -Uri 'https://graph.microsoft.com/beta/users/{upn}/authentication/requirements' -Body '{\"perUserMfaState\":\"disabled\"}'.",
        check: per_user_mfa_legacy,
    },
    Rule {
        id: "weak-default-method",
        title: "Phone is the default while a stronger method is registered",
        kind: RuleKind::User,
        severity: Severity::Low,
        needs: &[Users, Registration],
        rationale: "With system-preferred MFA off, the user's chosen default is what they are asked for: SMS or voice although they have Authenticator or a passkey.",
        remediation: "Enable system-preferred MFA in the authentication-methods policy, or set the user's preference: Invoke-MgGraphRequest -Method PATCH -Uri 'https://graph.microsoft.com/beta/users/{upn}/authentication/signInPreferences' -Body '{\"userPreferredMethodForSecondaryAuthentication\":\"push\"}'.",
        check: weak_default_method,
    },
    Rule {
        id: "break-glass-weak",
        title: "Emergency-access account is weak or missing",
        kind: RuleKind::User,
        severity: Severity::Critical,
        needs: &[Users, MethodDetail],
        rationale: "Break-glass accounts are the way back in when everything else fails. One that is missing, disabled or protected by a phishable method fails exactly when it is needed.",
        remediation: "Enable the account and register two FIDO2 security keys stored apart (a one-time TAP lets you register them: New-MgUserAuthenticationTemporaryAccessPassMethod -UserId {upn} -IsUsableOnce:$true); see https://learn.microsoft.com/entra/identity/role-based-access-control/security-emergency-access.",
        check: break_glass_weak,
    },
    Rule {
        id: "tap-policy-disabled",
        title: "Temporary Access Pass is disabled",
        kind: RuleKind::Tenant,
        severity: Severity::High,
        needs: &[MethodsPolicy],
        rationale: "Without TAP, the only way to let in a user who lost every method is to turn MFA off for them.",
        remediation: "Enable TAP, one-time, short-lived: Update-MgPolicyAuthenticationMethodPolicyAuthenticationMethodConfiguration -AuthenticationMethodConfigurationId TemporaryAccessPass with state enabled (PATCH /policies/authenticationMethodsPolicy/authenticationMethodConfigurations/TemporaryAccessPass).",
        check: tap_policy_disabled,
    },
    Rule {
        id: "tap-policy-multi-use",
        title: "TAP policy allows multi-use passes",
        kind: RuleKind::Tenant,
        severity: Severity::Medium,
        needs: &[MethodsPolicy],
        rationale: "When multi-use passes are allowed, each admin decides per pass; making every pass one-time removes replay for good.",
        remediation: "PATCH /policies/authenticationMethodsPolicy/authenticationMethodConfigurations/TemporaryAccessPass with {\"@odata.type\":\"#microsoft.graph.temporaryAccessPassAuthenticationMethodConfiguration\",\"isUsableOnce\":true}.",
        check: tap_policy_multi_use,
    },
    Rule {
        id: "tap-policy-lifetime",
        title: "TAP lifetimes are long",
        kind: RuleKind::Tenant,
        severity: Severity::Low,
        needs: &[MethodsPolicy],
        rationale: "Long default or maximum TAP lifetimes turn a recovery tool into a standing MFA bypass.",
        remediation: "PATCH /policies/authenticationMethodsPolicy/authenticationMethodConfigurations/TemporaryAccessPass with defaultLifetimeInMinutes 60 and maximumLifetimeInMinutes 480 (or less).",
        check: tap_policy_lifetime,
    },
    Rule {
        id: "tap-policy-scope",
        title: "TAP is not usable by everyone",
        kind: RuleKind::Tenant,
        severity: Severity::Medium,
        needs: &[MethodsPolicy],
        rationale: "Only users in the TAP policy's targets can sign in with a TAP: anyone outside them who loses every method cannot be let back in without turning MFA off.",
        remediation: "Target all users (or the configured groups) in PATCH /policies/authenticationMethodsPolicy/authenticationMethodConfigurations/TemporaryAccessPass: includeTargets [{\"id\":\"all_users\",\"targetType\":\"group\"}], no excludeTargets.",
        check: tap_policy_scope,
    },
    Rule {
        id: "weak-methods-enabled",
        title: "Weak methods are enabled",
        kind: RuleKind::Tenant,
        severity: Severity::Medium,
        needs: &[MethodsPolicy],
        rationale: "SMS, voice and email one-time codes can be intercepted or redirected; while enabled, users keep choosing them.",
        remediation: "Disable them once users have stronger methods: PATCH /policies/authenticationMethodsPolicy/authenticationMethodConfigurations/Sms (and Voice, Email) with {\"state\":\"disabled\"}; watch no-backup-method first so nobody is left with nothing.",
        check: weak_methods_enabled,
    },
    Rule {
        id: "authenticator-context-off",
        title: "Authenticator shows no sign-in context",
        kind: RuleKind::Tenant,
        severity: Severity::Medium,
        needs: &[MethodsPolicy],
        rationale: "Showing the application and location in Authenticator prompts lets users spot a push they did not start (MFA fatigue attacks).",
        remediation: "PATCH /policies/authenticationMethodsPolicy/authenticationMethodConfigurations/MicrosoftAuthenticator: featureSettings displayAppInformationRequiredState and displayLocationInformationRequiredState with state enabled for all_users.",
        check: authenticator_context_off,
    },
    Rule {
        id: "system-preferred-mfa-off",
        title: "System-preferred MFA is off",
        kind: RuleKind::Tenant,
        severity: Severity::Low,
        needs: &[MethodsPolicy],
        rationale: "System-preferred MFA asks each user for their strongest registered method instead of the default they once picked.",
        remediation: "PATCH https://graph.microsoft.com/beta/policies/authenticationMethodsPolicy with {\"systemCredentialPreferences\":{\"state\":\"enabled\",\"includeTargets\":[{\"id\":\"all_users\",\"targetType\":\"group\"}]}}.",
        check: system_preferred_mfa_off,
    },
    Rule {
        id: "registration-campaign-off",
        title: "Registration campaign is off",
        kind: RuleKind::Tenant,
        severity: Severity::Low,
        needs: &[MethodsPolicy],
        rationale: "The registration campaign nudges users still on SMS or voice to set up Authenticator at sign-in: backup methods get registered before they are needed.",
        remediation: "PATCH /policies/authenticationMethodsPolicy with registrationEnforcement.authenticationMethodsRegistrationCampaign.state \"enabled\" for all_users.",
        check: registration_campaign_off,
    },
    Rule {
        id: "migration-incomplete",
        title: "Authentication-methods migration is incomplete",
        kind: RuleKind::Tenant,
        severity: Severity::Low,
        needs: &[MethodsPolicy],
        rationale: "Until the migration is complete, the legacy MFA and SSPR policies still apply beside the authentication-methods policy: what this audit reads is not the whole truth.",
        remediation: "Finish the migration in the Entra admin center (Authentication methods > Manage migration), then PATCH /policies/authenticationMethodsPolicy with {\"policyMigrationState\":\"migrationComplete\"}.",
        check: migration_incomplete,
    },
    Rule {
        id: "no-mfa-enforcement",
        title: "Nothing enforces MFA",
        kind: RuleKind::Tenant,
        severity: Severity::Critical,
        needs: &[SecurityDefaults, ConditionalAccess],
        rationale: "Registered methods protect nobody unless sign-ins require them: with security defaults off, an enabled Conditional Access policy must require MFA for all users and apps unconditionally: no risk, location, platform, device, client-app or authentication-flow condition, and no exclusion but the break-glass accounts.",
        remediation: "Create a Conditional Access policy: New-MgIdentityConditionalAccessPolicy with users All (excluding the break-glass accounts), applications All, grantControls builtInControls ['mfa'], state enabled (POST /identity/conditionalAccess/policies).",
        check: no_mfa_enforcement,
    },
    Rule {
        id: "too-few-recovery-admins",
        title: "Too few admins can let users back in",
        kind: RuleKind::Tenant,
        severity: Severity::High,
        needs: &[Users, Registration, Roles],
        rationale: "Issuing a TAP or resetting MFA takes a Global, Privileged Authentication or Authentication Administrator. Fewer than two such enabled admins, each with a backup method, is one lost phone away from nobody.",
        remediation: "Assign Authentication Administrator to another trusted admin: New-MgRoleManagementDirectoryRoleAssignment -PrincipalId <user id> -RoleDefinitionId c4e39bd9-1100-46d3-8c65-fb160da0071f -DirectoryScopeId '/'; make sure each has two recovery families.",
        check: too_few_recovery_admins,
    },
    Rule {
        id: "break-glass-count",
        title: "Unexpected number of emergency-access accounts",
        kind: RuleKind::Tenant,
        severity: Severity::Medium,
        needs: &[],
        rationale: "Microsoft recommends two cloud-only emergency-access accounts: one can fail, and more widen the attack surface.",
        remediation: "List the tenant's emergency-access accounts under [break_glass] accounts in config.toml; create missing ones as cloud-only Global Administrators excluded from Conditional Access, with FIDO2 keys.",
        check: break_glass_count,
    },
    Rule {
        id: "policy-unsatisfiable",
        title: "An enabled Conditional Access policy demands what the user cannot give",
        kind: RuleKind::User,
        severity: Severity::Critical,
        needs: &[Users, Registration, ConditionalAccess],
        rationale: "An enabled Conditional Access policy that applies to the user (users, groups, active roles, guests, exclusions) requires MFA or an authentication strength, and none of the methods the authentication-methods policy lets this user use satisfies any of its allowed combinations: at the next sign-in it covers, the user is locked out. Strengths are the built-in ones and the tenant's custom ones; applications and conditions narrow when, not whether, it applies (they are named).",
        remediation: "Let {upn} register a method that meets the strength with a one-time TAP (a TAP meets the built-in MFA strength, and lets them register a passkey): New-MgUserAuthenticationTemporaryAccessPassMethod -UserId {upn} -IsUsableOnce:$true (POST /users/{upn}/authentication/temporaryAccessPassMethods); or allow a method they hold: Update-MgPolicyAuthenticationMethodPolicyAuthenticationMethodConfiguration -AuthenticationMethodConfigurationId <id> (PATCH /policies/authenticationMethodsPolicy/authenticationMethodConfigurations/{id}); or change the policy's strength or exclusions: Update-MgIdentityConditionalAccessPolicy -ConditionalAccessPolicyId <policy id> (PATCH /identity/conditionalAccess/policies/{id}). Check the strength's combinations with Get-MgPolicyAuthenticationStrengthPolicy -AuthenticationStrengthPolicyId <id>.",
        check: policy_unsatisfiable,
    },
    Rule {
        id: "policy-unsatisfiable-report-only",
        title: "A report-only Conditional Access policy would lock the user out",
        kind: RuleKind::User,
        severity: Severity::Medium,
        needs: &[Users, Registration, ConditionalAccess],
        rationale: "A report-only Conditional Access policy applies to the user and requires MFA or a strength none of their policy-allowed methods satisfies: the day someone turns it on, the user is locked out. Fix the users before enabling the policy.",
        remediation: "Before turning the policy on, let {upn} register a method that meets its strength (New-MgUserAuthenticationTemporaryAccessPassMethod -UserId {upn} -IsUsableOnce:$true, then https://aka.ms/mysecurityinfo), or exclude them: Update-MgIdentityConditionalAccessPolicy -ConditionalAccessPolicyId <policy id> (PATCH /identity/conditionalAccess/policies/{id}); keep it in state enabledForReportingButNotEnforced until this rule is quiet.",
        check: policy_unsatisfiable_report_only,
    },
    Rule {
        id: "policy-target-missing",
        title: "A policy targets a user or group that no longer exists",
        kind: RuleKind::Tenant,
        severity: Severity::High,
        needs: &[PolicyTargets],
        rationale: "A Conditional Access policy or an authentication-methods configuration names a group or user that was deleted (Maester MT.1067): its members silently lost the method, the policy or the exclusion, and nothing in the portal says so.",
        remediation: "Replace the deleted id in each policy named: Update-MgIdentityConditionalAccessPolicy -ConditionalAccessPolicyId <id> (PATCH /identity/conditionalAccess/policies/{id}) or Update-MgPolicyAuthenticationMethodPolicyAuthenticationMethodConfiguration -AuthenticationMethodConfigurationId <id> (PATCH /policies/authenticationMethodsPolicy/authenticationMethodConfigurations/{id}) with includeTargets/excludeTargets naming an existing group; a group deleted less than 30 days ago can be restored: Restore-MgDirectoryDeletedItem -DirectoryObjectId <id> (POST /directory/deletedItems/{id}/restore).",
        check: policy_target_missing,
    },
    Rule {
        id: "smart-lockout-weak",
        title: "Smart lockout is weak",
        kind: RuleKind::Tenant,
        severity: Severity::Medium,
        needs: &[DirectorySettings],
        rationale: "Smart lockout slows password guessing: a threshold above 10 failed sign-ins or a first lockout under 60 seconds lets a spray try more passwords before MFA is even asked. Without a \"Password Rule Settings\" object Entra's defaults apply (10 attempts, 60 s), and the metrics say so.",
        remediation: "Set the tenant's Password Rule Settings (Entra ID P1): Update-MgBetaDirectorySetting -DirectorySettingId <id> -Values @(@{Name='LockoutThreshold';Value='10'},@{Name='LockoutDurationInSeconds';Value='60'}) (PATCH https://graph.microsoft.com/beta/settings/{id}), or in the portal: Authentication methods > Password protection.",
        check: smart_lockout_weak,
    },
    Rule {
        id: "sspr-not-ready",
        title: "Self-service password reset enabled but the user cannot use it",
        kind: RuleKind::User,
        severity: Severity::Low,
        needs: &[Users, Registration],
        rationale: "SSPR is enabled for the user (isSsprEnabled) but they are not registered or not capable (isSsprRegistered, isSsprCapable): the day they forget their password, the helpdesk is the only way back.",
        remediation: "Ask {upn} to register SSPR methods at https://aka.ms/ssprsetup, or turn on the registration interrupt (Password reset > Registration: require users to register when signing in); check with Get-MgReportAuthenticationMethodUserRegistrationDetail -UserRegistrationDetailsId <user id>.",
        check: sspr_not_ready,
    },
    Rule {
        id: "admin-no-recovery-contact",
        title: "Global Administrator without an alternate email",
        kind: RuleKind::User,
        severity: Severity::Medium,
        needs: &[Users, Roles],
        rationale: "A Global Administrator (active or eligible) with no alternate email (otherMails) cannot be reached out of band when they lose their methods, and admin SSPR has one fewer way to verify them.",
        remediation: "Add an alternate email for {upn}: Update-MgUser -UserId {upn} -OtherMails @('name@example.org') (PATCH /users/{upn} with {\"otherMails\":[\"name@example.org\"]}; updating an admin takes a Privileged Authentication Administrator or Global Administrator).",
        check: admin_no_recovery_contact,
    },
    Rule {
        id: "passkey-policy-blocks",
        title: "The passkey policy blocks what users hold or need",
        kind: RuleKind::Tenant,
        severity: Severity::Medium,
        needs: &[Users, Registration, MethodsPolicy],
        rationale: "FIDO2 (passkeys) is disabled or targets nobody while an enabled Conditional Access policy requires a phishing-resistant strength of admin roles; or a passkey profile (or the deprecated top-level FIDO2 settings) refuses what users hold: attestation enforced while they hold synced passkeys (which cannot be attested), passkey types excluding synced or device-bound ones they hold, key restrictions that leave out Microsoft Authenticator's AAGUIDs while they hold passkeys in Authenticator. Each problem is its own finding, with the users it affects counted.",
        remediation: "Enable FIDO2 for the admins: Update-MgPolicyAuthenticationMethodPolicyAuthenticationMethodConfiguration -AuthenticationMethodConfigurationId Fido2 -BodyParameter @{'@odata.type'='#microsoft.graph.fido2AuthenticationMethodConfiguration'; state='enabled'} (PATCH /policies/authenticationMethodsPolicy/authenticationMethodConfigurations/Fido2); fix the profile named: PATCH https://graph.microsoft.com/beta/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/Fido2 with passkeyProfiles [{id, attestationEnforcement 'disabled' or passkeyTypes 'deviceBound,synced' or keyRestrictions.aaGuids adding 90a3ccdf-635c-4729-a248-9b709135078f and de1e552d-db1d-4423-a619-566b625cdc84}].",
        check: passkey_policy_blocks,
    },
    Rule {
        id: "suspicious-activity-reporting-off",
        title: "Users cannot report suspicious MFA prompts",
        kind: RuleKind::Tenant,
        severity: Severity::Low,
        needs: &[MethodsPolicy],
        rationale: "With reportSuspiciousActivitySettings off (disabled or left at Microsoft's default), a user who gets an MFA prompt they did not start can only deny it; reporting it marks them high user risk, so risk-based policies and the SOC see the attack.",
        remediation: "PATCH https://graph.microsoft.com/beta/policies/authenticationMethodsPolicy with {\"reportSuspiciousActivitySettings\":{\"state\":\"enabled\",\"includeTarget\":{\"targetType\":\"group\",\"id\":\"all_users\"},\"voiceReportingCode\":0}} (Invoke-MgGraphRequest -Method PATCH -Uri 'https://graph.microsoft.com/beta/policies/authenticationMethodsPolicy' -Body $body).",
        check: suspicious_activity_reporting_off,
    },
];
