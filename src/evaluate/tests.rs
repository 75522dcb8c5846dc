//! Every rule at its boundaries, on hand-built snapshots.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::snapshot::{
    AuthenticatorFeatures, CaPolicy, DefaultMethod, FeatureState, Gap, MethodConfig, MethodKind,
    MethodSet, MethodsPolicy, ObjectId, PerUserMfa, Role, Tap, TapPolicy, User,
};

use MethodKind::*;

pub(super) fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z")
        .map(|d| d.with_timezone(&Utc))
        .expect("date")
}

pub(super) fn user(n: u128, methods: &[MethodKind]) -> User {
    let mut u = User::new(ObjectId(n), &format!("user{n}@contoso.com"));
    u.methods = Some(methods.iter().copied().collect::<MethodSet>());
    u.created = Some(now() - Duration::days(365));
    u.mfa_failures = Some(0);
    u
}

pub(super) fn sound_policy() -> MethodsPolicy {
    MethodsPolicy {
        migration_state: "migrationComplete".into(),
        registration_campaign: FeatureState::Enabled,
        system_preferred_mfa: Some(FeatureState::Enabled),
        methods: vec![
            MethodConfig {
                id: "MicrosoftAuthenticator".into(),
                enabled: true,
                include_targets: vec!["all_users".into()],
                exclude_targets: vec![],
            },
            MethodConfig {
                id: "Sms".into(),
                enabled: false,
                include_targets: vec![],
                exclude_targets: vec![],
            },
        ],
        tap: Some(TapPolicy {
            enabled: true,
            default_lifetime_minutes: Some(60),
            minimum_lifetime_minutes: Some(60),
            maximum_lifetime_minutes: Some(480),
            default_length: Some(8),
            usable_once: true,
            include_targets: vec!["all_users".into()],
            exclude_targets: vec![],
        }),
        authenticator: Some(AuthenticatorFeatures {
            number_matching: FeatureState::Enabled,
            app_information: FeatureState::Enabled,
            location_information: FeatureState::Enabled,
        }),
        report_suspicious_activity: Some(FeatureState::Enabled),
        fido2: None,
    }
}

/// An enabled policy requiring MFA (the built-in control) of all users for all apps.
pub(crate) fn mfa_for_all() -> CaPolicy {
    CaPolicy {
        id: "p".into(),
        display_name: "MFA for all".into(),
        state: "enabled".into(),
        include_users: vec!["All".into()],
        exclude_users: vec![],
        include_groups: vec![],
        exclude_groups: vec![],
        include_roles: vec![],
        exclude_roles: vec![],
        include_applications: vec!["All".into()],
        requires_mfa: true,
        mfa_is_optional: false,
        exclude_applications: vec![],
        excludes_guests: false,
        narrowing: vec![],
        includes_guests: false,
        builtin_mfa: true,
        strength: None,
    }
}

/// Two well-equipped recovery admins, so tenant rules stay quiet unless a test says otherwise.
fn admins() -> Vec<User> {
    (1..=2)
        .map(|n| {
            let mut u = user(1000 + n, &[AuthenticatorPush, Fido2SecurityKey]);
            u.roles.insert(Role::AuthenticationAdministrator);
            u
        })
        .collect()
}

pub(super) fn snapshot(mut users: Vec<User>) -> Snapshot {
    users.extend(admins());
    users.sort_by_key(|u| u.id);
    Snapshot {
        users,
        methods_policy: Some(sound_policy()),
        security_defaults_enabled: Some(false),
        conditional_access: Some(vec![mfa_for_all()]),
        ..Snapshot::empty("t", now())
    }
}

pub(super) fn run(s: &Snapshot, params: &RulesConfig, glass: &[&str]) -> Evaluation {
    let glass: Vec<String> = glass.iter().map(|s| s.to_string()).collect();
    evaluate(s, params, &AllEnabled, &glass, now())
}

/// The subjects a rule flags.
pub(super) fn flagged(s: &Snapshot, rule: &str) -> Vec<String> {
    flagged_with(s, rule, &RulesConfig::default())
}

pub(super) fn flagged_with(s: &Snapshot, rule: &str, params: &RulesConfig) -> Vec<String> {
    run(s, params, &["glass1@contoso.com", "glass2@contoso.com"])
        .findings
        .into_iter()
        .filter(|f| f.rule == rule)
        .map(|f| f.user_principal_name.unwrap_or(f.subject))
        .collect()
}

#[test]
fn catalogue_ids_are_unique_and_each_has_parameters() {
    let mut ids: Vec<&str> = CATALOGUE.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 31);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 31, "duplicate rule id");
    let params = RulesConfig::default();
    for r in CATALOGUE {
        assert!(
            params.toggle(r.id).is_some(),
            "{} has no [rules.{}] entry",
            r.id,
            r.id
        );
        assert!(!r.rationale.is_empty() && !r.remediation.is_empty());
        if r.kind == RuleKind::User && r.id != "break-glass-weak" {
            assert!(
                r.remediation.contains("{upn}"),
                "{} names no user in its remediation",
                r.id
            );
        }
    }
}

#[test]
fn a_sound_tenant_has_no_findings() {
    let s = snapshot(vec![user(1, &[AuthenticatorPush, MobilePhone])]);
    let e = run(
        &s,
        &RulesConfig::default(),
        &["user1001@contoso.com", "user1002@contoso.com"],
    );
    assert!(e.findings.is_empty(), "{:#?}", e.findings);
    assert!(e.skipped.is_empty());
}

#[test]
fn no_mfa_method_fires_after_the_grace_period_only() {
    let mut fresh = user(1, &[Email]);
    fresh.created = Some(now() - Duration::days(13));
    let mut due = user(2, &[Email]);
    due.created = Some(now() - Duration::days(14));
    let unknown_age = {
        let mut u = user(3, &[]);
        u.created = None;
        u
    };
    let s = snapshot(vec![fresh, due, unknown_age, user(4, &[MobilePhone])]);
    assert_eq!(
        flagged(&s, "no-mfa-method"),
        vec!["user2@contoso.com", "user3@contoso.com"]
    );
    // A user with none is not also told to add a backup.
    assert!(flagged(&s, "no-backup-method")
        .iter()
        .all(|u| u != "user2@contoso.com"));
}

#[test]
fn no_backup_method_counts_recovery_families() {
    let s = snapshot(vec![
        user(1, &[AuthenticatorPush, SoftwareOtp]),
        user(2, &[AuthenticatorPush, MobilePhone]),
        user(3, &[Fido2SecurityKey]),
        user(4, &[Fido2SecurityKey, PasskeyDeviceBound, Email]),
    ]);
    assert_eq!(
        flagged(&s, "no-backup-method"),
        vec![
            "user1@contoso.com",
            "user3@contoso.com",
            "user4@contoso.com"
        ]
    );
    let mut three = RulesConfig::default();
    three.no_backup_method.min_families = 3;
    assert!(flagged_with(&s, "no-backup-method", &three).contains(&"user2@contoso.com".to_string()));
}

#[test]
fn phone_only_means_every_mfa_method_is_a_phone() {
    let s = snapshot(vec![
        user(1, &[MobilePhone, AlternateMobilePhone, Email]),
        user(2, &[MobilePhone, AuthenticatorPush]),
        user(3, &[Email]),
    ]);
    assert_eq!(flagged(&s, "phone-only"), vec!["user1@contoso.com"]);
}

#[test]
fn admins_need_a_phishing_resistant_method() {
    let mut weak = user(1, &[AuthenticatorPush, MobilePhone]);
    weak.roles.insert(Role::GlobalAdministrator);
    let mut flagged_by_report = user(2, &[AuthenticatorPush]);
    flagged_by_report.is_admin = true;
    let mut strong = user(3, &[WindowsHello]);
    strong.roles.insert(Role::SecurityAdministrator);
    let s = snapshot(vec![
        weak,
        flagged_by_report,
        strong,
        user(4, &[MobilePhone]),
    ]);
    let mut hits = flagged(&s, "admin-not-phishing-resistant");
    hits.retain(|u| !u.starts_with("user100"));
    assert_eq!(hits, vec!["user1@contoso.com", "user2@contoso.com"]);
}

fn with_tap(n: u128, lifetime: u32, once: bool, usable: bool) -> User {
    let mut u = user(n, &[AuthenticatorPush, MobilePhone, TemporaryAccessPass]);
    u.tap = Some(Box::new(Tap {
        start: Some(now()),
        lifetime_minutes: lifetime,
        usable_once: once,
        usable,
        usability_reason: if usable { "EnabledByPolicy" } else { "Expired" }.into(),
    }));
    u
}

#[test]
fn tap_rules_look_at_usable_passes_only() {
    let s = snapshot(vec![
        with_tap(1, 480, true, true),
        with_tap(2, 481, true, true),
        with_tap(3, 43200, false, false),
        with_tap(4, 60, false, true),
    ]);
    assert_eq!(flagged(&s, "tap-long-lived"), vec!["user2@contoso.com"]);
    assert_eq!(flagged(&s, "tap-multi-use"), vec!["user4@contoso.com"]);
}

#[test]
fn without_the_directory_audit_log_tap_rules_judge_the_reported_passes_and_say_so() {
    let mut s = snapshot(vec![with_tap(4, 60, false, true)]);
    s.coverage.gaps.insert(
        DataSet::DirectoryAudit,
        Gap::MissingPermission("AuditLog.Read.All".into()),
    );
    let e = run(&s, &RulesConfig::default(), &[]);
    assert!(e.findings.iter().any(|f| f.rule == "tap-multi-use"
        && f.user_principal_name.as_deref() == Some("user4@contoso.com")));
    assert!(!e.skipped.iter().any(|k| k.rule.starts_with("tap-")));
    let partial: Vec<&str> = e.partial.iter().map(|p| p.rule).collect();
    assert_eq!(partial, vec!["tap-long-lived", "tap-multi-use"]);
    assert!(e
        .partial
        .iter()
        .all(|p| p.reason.contains("AuditLog.Read.All")));
}

#[test]
fn mfa_failures_fire_at_the_threshold() {
    let mut four = user(1, &[AuthenticatorPush, MobilePhone]);
    four.mfa_failures = Some(4);
    let mut five = user(2, &[AuthenticatorPush, MobilePhone]);
    five.mfa_failures = Some(5);
    let s = snapshot(vec![four, five]);
    assert_eq!(flagged(&s, "mfa-failures"), vec!["user2@contoso.com"]);
}

#[test]
fn per_user_mfa_enabled_or_enforced_is_legacy() {
    let mut a = user(1, &[AuthenticatorPush, MobilePhone]);
    a.per_user_mfa = Some(PerUserMfa::Enforced);
    let mut b = user(2, &[AuthenticatorPush, MobilePhone]);
    b.per_user_mfa = Some(PerUserMfa::Disabled);
    let mut c = user(3, &[AuthenticatorPush, MobilePhone]);
    c.per_user_mfa = Some(PerUserMfa::Enabled);
    assert_eq!(
        flagged(&snapshot(vec![a, b, c]), "per-user-mfa-legacy"),
        vec!["user1@contoso.com", "user3@contoso.com"]
    );
}

#[test]
fn weak_default_method_needs_a_stronger_one_and_system_preferred_off() {
    let mk = |n, methods: &[MethodKind], default, system_preferred| {
        let mut u = user(n, methods);
        u.default_method = Some(default);
        u.system_preferred_mfa = Some(system_preferred);
        u
    };
    let s = snapshot(vec![
        mk(
            1,
            &[AuthenticatorPush, MobilePhone],
            DefaultMethod::Sms,
            false,
        ),
        mk(
            2,
            &[AuthenticatorPush, MobilePhone],
            DefaultMethod::Sms,
            true,
        ),
        mk(
            3,
            &[MobilePhone, OfficePhone],
            DefaultMethod::VoiceMobile,
            false,
        ),
        mk(
            4,
            &[AuthenticatorPush, MobilePhone],
            DefaultMethod::Push,
            false,
        ),
    ]);
    assert_eq!(
        flagged(&s, "weak-default-method"),
        vec!["user1@contoso.com"]
    );
}

#[test]
fn break_glass_accounts_are_judged_only_by_their_own_rules() {
    let mut g1 = user(1, &[Email]);
    g1.upn = "glass1@contoso.com".into();
    let mut g2 = user(2, &[Fido2SecurityKey]);
    g2.upn = "Glass2@Contoso.com".into();
    g2.account_enabled = false;
    let s = snapshot(vec![g1, g2]);
    let e = run(
        &s,
        &RulesConfig::default(),
        &[
            "glass1@contoso.com",
            "glass2@contoso.com",
            "glass3@contoso.com",
        ],
    );
    let glass: Vec<(&str, String)> = e
        .findings
        .iter()
        .filter(|f| f.rule == "break-glass-weak")
        .map(|f| (f.subject.as_str(), f.detail.clone()))
        .collect();
    assert_eq!(glass.len(), 3, "{glass:?}");
    assert!(glass[0].1.contains("no phishing-resistant method"));
    assert!(glass[1].1.contains("disabled"));
    assert!(
        glass[2].0 == "tenant:glass3@contoso.com"
            && glass[2].1.contains("glass3@contoso.com does not exist")
    );
    assert!(
        !e.findings.iter().any(|f| f.rule == "no-mfa-method"),
        "break-glass accounts are out of user rules"
    );
    assert_eq!(e.users_out_of_scope.get("break-glass"), Some(&2));
    assert_eq!(flagged(&s, "break-glass-count"), Vec::<String>::new());
    let e = run(&s, &RulesConfig::default(), &["glass1@contoso.com"]);
    assert!(e
        .findings
        .iter()
        .any(|f| f.rule == "break-glass-count" && f.detail.starts_with("1 emergency-access")));
}

#[test]
fn tap_policy_rules() {
    let mut s = snapshot(vec![]);
    assert!(flagged(&s, "tap-policy-disabled").is_empty());
    if let Some(t) = s.methods_policy.as_mut().and_then(|p| p.tap.as_mut()) {
        t.usable_once = false;
        t.default_lifetime_minutes = Some(61);
        t.maximum_lifetime_minutes = Some(480);
        t.include_targets = vec!["group-a".into()];
    }
    assert_eq!(flagged(&s, "tap-policy-multi-use"), vec!["tenant"]);
    assert_eq!(
        flagged(&s, "tap-policy-lifetime"),
        vec!["tenant:default"],
        "61 > 60, 480 is not > 480"
    );
    assert_eq!(flagged(&s, "tap-policy-scope"), vec!["tenant"]);
    let mut groups = RulesConfig::default();
    groups.tap_policy_scope.groups = vec!["group-a".into()];
    assert!(flagged_with(&s, "tap-policy-scope", &groups).is_empty());
    if let Some(p) = s.methods_policy.as_mut() {
        p.tap = Some(TapPolicy {
            enabled: false,
            ..p.tap.clone().expect("tap")
        });
    }
    assert_eq!(flagged(&s, "tap-policy-disabled"), vec!["tenant"]);
    assert!(
        flagged(&s, "tap-policy-multi-use").is_empty(),
        "a disabled TAP allows no passes at all"
    );
}

#[test]
fn method_policy_rules() {
    let mut s = snapshot(vec![]);
    if let Some(p) = s.methods_policy.as_mut() {
        p.methods[1].enabled = true;
        p.registration_campaign = FeatureState::Default;
        p.migration_state = "migrationInProgress".into();
        p.system_preferred_mfa = Some(FeatureState::Disabled);
        p.authenticator = Some(AuthenticatorFeatures {
            number_matching: FeatureState::Default,
            app_information: FeatureState::Enabled,
            location_information: FeatureState::Disabled,
        });
    }
    let e = run(
        &s,
        &RulesConfig::default(),
        &["user1001@contoso.com", "user1002@contoso.com"],
    );
    let details: BTreeMap<&str, &str> = e
        .findings
        .iter()
        .map(|f| (f.rule, f.detail.as_str()))
        .collect();
    assert_eq!(
        details.get("weak-methods-enabled"),
        Some(&"Sms is enabled in the authentication-methods policy")
    );
    assert_eq!(
        details.get("registration-campaign-off"),
        Some(&"the registration campaign (nudge) is default")
    );
    assert!(details
        .get("migration-incomplete")
        .is_some_and(|d| d.contains("migrationInProgress")));
    assert_eq!(
        details.get("system-preferred-mfa-off"),
        Some(&"system-preferred mfa is disabled")
    );
    assert_eq!(
        details.get("authenticator-context-off"),
        Some(&"Microsoft Authenticator does not show geographic location")
    );
}

#[test]
fn no_mfa_enforcement_needs_security_defaults_or_a_strict_ca_policy() {
    let mut s = snapshot(vec![]);
    assert!(flagged(&s, "no-mfa-enforcement").is_empty());
    let report_only = CaPolicy {
        state: "enabledForReportingButNotEnforced".into(),
        ..mfa_for_all()
    };
    let optional = CaPolicy {
        mfa_is_optional: true,
        ..mfa_for_all()
    };
    let some_apps = CaPolicy {
        include_applications: vec!["Office365".into()],
        ..mfa_for_all()
    };
    s.conditional_access = Some(vec![report_only, optional, some_apps]);
    assert_eq!(flagged(&s, "no-mfa-enforcement"), vec!["tenant"]);
    s.security_defaults_enabled = Some(true);
    assert!(flagged(&s, "no-mfa-enforcement").is_empty());
}

#[test]
fn an_mfa_policy_counts_only_unconditionally_and_the_finding_names_what_it_leaves_out() {
    let mut s = snapshot(vec![]);
    let detail = |s: &Snapshot, glass: &[String]| -> Option<String> {
        let glass: Vec<&str> = glass.iter().map(String::as_str).collect();
        run(s, &RulesConfig::default(), &glass)
            .findings
            .into_iter()
            .find(|f| f.rule == "no-mfa-enforcement")
            .map(|f| f.detail)
    };
    // An admin of the fixture, excluded: only fine while configured as break-glass.
    let admin = s.users[0].clone();
    let excluded = CaPolicy {
        exclude_users: vec![admin.id.to_string().into_boxed_str()],
        ..mfa_for_all()
    };
    s.conditional_access = Some(vec![excluded.clone()]);
    let d = detail(&s, &[]).expect("an excluded admin is left out");
    assert!(
        d.contains(&format!("'MFA for all' excludes user {}", admin.upn)),
        "{d}"
    );
    assert_eq!(
        detail(&s, &[admin.upn.to_uppercase()]),
        None,
        "break-glass may be excluded"
    );
    // Every narrowing condition and exclusion is named.
    let narrowed = CaPolicy {
        exclude_groups: vec!["g-1".into()],
        narrowing: vec!["sign-in risk high".into()],
        ..mfa_for_all()
    };
    s.conditional_access = Some(vec![narrowed]);
    let d = detail(&s, &[]).expect("narrowed");
    assert!(
        d.ends_with("'MFA for all' excludes group g-1 and applies only to sign-in risk high"),
        "{d}"
    );
    let guests = CaPolicy {
        excludes_guests: true,
        exclude_roles: vec!["62e90394-69f5-4237-9190-012177145e10".into()],
        ..mfa_for_all()
    };
    s.conditional_access = Some(vec![guests, mfa_for_all()]);
    assert_eq!(detail(&s, &[]), None, "one unconditional policy is enough");
    s.conditional_access.as_mut().map(|v| v.pop());
    let d = detail(&s, &[]).expect("guests and a role left out");
    assert!(
        d.contains("excludes role Global Administrator and excludes guests and external users"),
        "{d}"
    );
}

#[test]
fn recovery_admins_must_be_enabled_and_have_a_backup() {
    let mut s = snapshot(vec![]);
    assert!(flagged(&s, "too-few-recovery-admins").is_empty());
    s.users[1].methods = Some([AuthenticatorPush].into_iter().collect());
    assert_eq!(flagged(&s, "too-few-recovery-admins"), vec!["tenant"]);
    let mut helpdesk = user(5, &[AuthenticatorPush, MobilePhone]);
    helpdesk.roles.insert(Role::HelpdeskAdministrator);
    s.users.push(helpdesk);
    assert_eq!(
        flagged(&s, "too-few-recovery-admins"),
        vec!["tenant"],
        "helpdesk admins cannot issue a TAP"
    );
    let mut global = user(6, &[AuthenticatorPush, MobilePhone]);
    global.roles.insert(Role::GlobalAdministrator);
    s.users.push(global);
    assert!(flagged(&s, "too-few-recovery-admins").is_empty());
}

#[test]
fn eligible_recovery_admins_count_and_are_named_so() {
    let mut s = snapshot(vec![]);
    // One of the two standing recovery admins loses their backup: one is left.
    s.users[1].methods = Some([AuthenticatorPush].into_iter().collect());
    assert_eq!(flagged(&s, "too-few-recovery-admins"), vec!["tenant"]);
    // A user eligible in PIM for Authentication Administrator can activate it to let users back in.
    let mut eligible = user(7, &[AuthenticatorPush, MobilePhone]);
    eligible
        .eligible_roles
        .insert(Role::AuthenticationAdministrator);
    s.users.push(eligible.clone());
    assert!(flagged(&s, "too-few-recovery-admins").is_empty());
    // With a third needed, the finding says how many of the ready ones are only eligible.
    let mut params = RulesConfig::default();
    params.too_few_recovery_admins.min = 3;
    let e = run_with(&s, &params);
    let f = e
        .findings
        .iter()
        .find(|f| f.rule == "too-few-recovery-admins")
        .expect("finding");
    assert!(
        f.detail.starts_with("2 enabled admin(s)")
            && f.detail.contains("1 of them only after activating"),
        "{}",
        f.detail
    );
    assert!(e.partial.is_empty(), "{:?}", e.partial);
    // Eligibility not read: active admins are judged, and the finding and evaluation say so.
    s.users.retain(|u| u.id != eligible.id);
    s.coverage.gaps.insert(
        DataSet::RoleEligibility,
        Gap::Unlicensed("PIM eligibility needs Entra ID P2".into()),
    );
    let e = run_with(&s, &RulesConfig::default());
    let f = e
        .findings
        .iter()
        .find(|f| f.rule == "too-few-recovery-admins")
        .expect("still judged");
    assert!(
        f.detail.contains("PIM eligibility was not read"),
        "{}",
        f.detail
    );
    let partial: Vec<&str> = e.partial.iter().map(|p| p.rule).collect();
    assert!(
        partial.contains(&"too-few-recovery-admins")
            && partial.contains(&"admin-not-phishing-resistant"),
        "{partial:?}"
    );
    assert!(e
        .skipped
        .iter()
        .all(|k| k.rule != "too-few-recovery-admins"));
}

#[test]
fn eligible_admins_face_the_admin_rule_marked_eligible() {
    let mut both = user(1, &[AuthenticatorPush, MobilePhone]);
    both.roles.insert(Role::SecurityAdministrator);
    both.eligible_roles.insert(Role::GlobalAdministrator);
    let mut strong = user(2, &[Fido2SecurityKey]);
    strong.eligible_roles.insert(Role::GlobalAdministrator);
    let s = snapshot(vec![both, strong]);
    let e = run_with(&s, &RulesConfig::default());
    let hits: Vec<&Finding> = e
        .findings
        .iter()
        .filter(|f| f.rule == "admin-not-phishing-resistant")
        .collect();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(
        hits[0].user_principal_name.as_deref(),
        Some("user1@contoso.com")
    );
    assert!(
        hits[0]
            .detail
            .starts_with("holds Security Administrator, Global Administrator (eligible) without"),
        "{}",
        hits[0].detail
    );
}

fn run_with(s: &Snapshot, params: &RulesConfig) -> Evaluation {
    let glass: Vec<String> = vec![];
    evaluate(s, params, &AllEnabled, &glass, now())
}

#[test]
fn a_rule_without_its_data_is_skipped_with_the_reason_never_passed() {
    let mut s = snapshot(vec![user(1, &[Email])]);
    s.coverage.gaps.insert(
        DataSet::Registration,
        Gap::MissingPermission("AuditLog.Read.All".into()),
    );
    s.coverage
        .gaps
        .insert(DataSet::SignIns, Gap::Unlicensed("no P1/P2".into()));
    let e = run(&s, &RulesConfig::default(), &[]);
    let skipped: BTreeMap<&str, &str> = e
        .skipped
        .iter()
        .map(|k| (k.rule, k.reason.as_str()))
        .collect();
    assert_eq!(
        skipped.get("no-mfa-method"),
        Some(&"registration needs the AuditLog.Read.All permission")
    );
    assert_eq!(
        skipped.get("mfa-failures"),
        Some(&"sign-ins is unavailable: no P1/P2")
    );
    assert!(!e.findings.iter().any(|f| f.rule == "no-mfa-method"));
}

#[test]
fn rules_can_be_disabled_and_their_severity_overridden() {
    let s = snapshot(vec![user(1, &[MobilePhone])]);
    let mut params = RulesConfig::default();
    params.phone_only.enabled = false;
    params.no_backup_method.severity = Some(Severity::Critical);
    let e = run(
        &s,
        &params,
        &["user1001@contoso.com", "user1002@contoso.com"],
    );
    assert!(!e.findings.iter().any(|f| f.rule == "phone-only"));
    let f = e
        .findings
        .iter()
        .find(|f| f.rule == "no-backup-method")
        .expect("finding");
    assert_eq!(f.severity, Severity::Critical);
    assert!(
        f.remediation.contains("user1@contoso.com"),
        "{}",
        f.remediation
    );
}

#[test]
fn disabled_users_are_out_of_scope_and_counted() {
    let mut off = user(1, &[]);
    off.account_enabled = false;
    let s = snapshot(vec![off]);
    let e = run(&s, &RulesConfig::default(), &[]);
    assert_eq!(e.users_out_of_scope.get("disabled"), Some(&1));
    assert!(!e.findings.iter().any(|f| f.rule == "no-mfa-method"));
}

pub(super) fn config(id: &str, enabled: bool, include: &[&str], exclude: &[&str]) -> MethodConfig {
    MethodConfig {
        id: id.into(),
        enabled,
        include_targets: include.iter().map(|s| (*s).into()).collect(),
        exclude_targets: exclude.iter().map(|s| (*s).into()).collect(),
    }
}

#[test]
fn method_not_allowed_flags_users_whose_every_method_the_policy_disallows() {
    const PILOT: &str = "9a0c0000-0000-4000-8000-000000000003";
    const OTHER: &str = "9a0c0000-0000-4000-8000-000000000009";
    let only_hw = user(1, &[HardwareOtp, Email]);
    let hw_and_app = user(2, &[HardwareOtp, AuthenticatorPush]);
    let key_excluded = user(3, &[Fido2SecurityKey]);
    let key_in_pilot = user(4, &[Fido2SecurityKey]);
    let cert = user(5, &[Certificate]);
    let mut sms_unknown = user(6, &[MobilePhone]);
    sms_unknown.mfa_capable = Some(false);
    let mut sms_unknown_capable = user(7, &[MobilePhone]);
    sms_unknown_capable.mfa_capable = Some(true);
    let hello = user(8, &[WindowsHello]);
    let nothing = user(9, &[Email]);
    let mut s = snapshot(vec![
        only_hw,
        hw_and_app,
        key_excluded,
        key_in_pilot,
        cert,
        sms_unknown,
        sms_unknown_capable,
        hello,
        nothing,
    ]);
    let policy = s.methods_policy.as_mut().expect("policy");
    policy.methods = vec![
        config("MicrosoftAuthenticator", true, &["all_users"], &[]),
        config("HardwareOath", false, &["all_users"], &[]),
        config("Fido2", true, &["all_users"], &[PILOT]),
        config("X509Certificate", true, &[PILOT], &[]),
        config("Sms", true, &[OTHER], &[]),
        config("Voice", false, &["all_users"], &[]),
    ];
    // The pilot group is read (the scope names it); OTHER is not.
    s.groups
        .insert(PILOT.into(), vec![ObjectId(3), ObjectId(1000)]);
    let e = run(&s, &RulesConfig::default(), &[]);
    let hits: BTreeMap<String, String> = e
        .findings
        .iter()
        .filter(|f| f.rule == "method-not-allowed")
        .map(|f| {
            (
                f.user_principal_name.clone().unwrap_or_default(),
                f.detail.clone(),
            )
        })
        .collect();
    let flagged: Vec<&str> = hits.keys().map(String::as_str).collect();
    assert_eq!(
        flagged,
        vec![
            "user1@contoso.com",
            "user3@contoso.com",
            "user5@contoso.com",
            "user6@contoso.com"
        ],
        "{hits:#?}"
    );
    assert!(
        hits["user1@contoso.com"].contains("hardwareOneTimePasscode (HardwareOath is disabled)")
    );
    assert!(hits["user3@contoso.com"].contains("Fido2 excludes the user"));
    assert!(
        !hits.contains_key("user4@contoso.com"),
        "outside the excluded group"
    );
    assert!(hits["user5@contoso.com"].contains("X509Certificate does not target the user"));
    assert!(
        hits["user6@contoso.com"].contains("isMfaCapable is false")
            && hits["user6@contoso.com"].contains("Sms targets groups this audit does not read")
            && hits["user6@contoso.com"].contains("Voice is disabled"),
        "{}",
        hits["user6@contoso.com"]
    );
    let f = e
        .findings
        .iter()
        .find(|f| f.rule == "method-not-allowed")
        .expect("finding");
    assert_eq!(f.severity, Severity::High);
    assert!(f.remediation.contains("user1@contoso.com"));

    // Before the migration completes, the legacy MFA policy may still allow them: only the
    // report's isMfaCapable can say.
    s.methods_policy.as_mut().expect("policy").migration_state = "preMigration".into();
    assert_eq!(
        flagged_with(&s, "method-not-allowed", &RulesConfig::default()),
        vec!["user6@contoso.com"]
    );
}

#[test]
fn a_free_tenant_judges_the_method_rules_from_per_user_detail_and_skips_the_default_method() {
    let mut s = snapshot(vec![user(1, &[MobilePhone]), user(2, &[Email])]);
    s.coverage.licence_fallback = true;
    s.coverage.gaps.insert(
        DataSet::Registration,
        Gap::Unlicensed("no Entra ID P1/P2: methods are read per user instead".into()),
    );
    let e = run(&s, &RulesConfig::default(), &[]);
    let skipped: BTreeMap<&str, &str> = e
        .skipped
        .iter()
        .map(|k| (k.rule, k.reason.as_str()))
        .collect();
    for rule in [
        "no-mfa-method",
        "no-backup-method",
        "phone-only",
        "admin-not-phishing-resistant",
        "too-few-recovery-admins",
        "method-not-allowed",
    ] {
        assert!(!skipped.contains_key(rule), "{rule} skipped: {skipped:?}");
    }
    assert!(
        skipped
            .get("weak-default-method")
            .is_some_and(|r| r.contains("P1/P2") && r.contains("more of the registration report")),
        "{skipped:?}"
    );
    let got: BTreeSet<(&str, String)> = e
        .findings
        .iter()
        .filter_map(|f| f.user_principal_name.clone().map(|u| (f.rule, u)))
        .collect();
    for want in [
        ("phone-only", "user1@contoso.com"),
        ("no-backup-method", "user1@contoso.com"),
        ("no-mfa-method", "user2@contoso.com"),
    ] {
        assert!(
            got.contains(&(want.0, want.1.to_string())),
            "{want:?} in {got:?}"
        );
    }

    // Without the detail there is nothing to judge from: skipped with the detail's reason.
    s.coverage.gaps.insert(
        DataSet::MethodDetail,
        Gap::MissingPermission("UserAuthenticationMethod.Read.All".into()),
    );
    let e = run(&s, &RulesConfig::default(), &[]);
    assert!(e.skipped.iter().any(
        |k| k.rule == "no-mfa-method" && k.reason.contains("UserAuthenticationMethod.Read.All")
    ));
}

#[test]
fn each_thing_a_tenant_rule_finds_is_its_own_stable_subject() {
    let mut s = snapshot(vec![]);
    if let Some(p) = s.methods_policy.as_mut() {
        for id in ["Sms", "Voice"] {
            p.methods.retain(|m| m.id.as_ref() != id);
            p.methods.push(MethodConfig {
                id: id.into(),
                enabled: true,
                include_targets: vec!["all_users".into()],
                exclude_targets: vec![],
            });
        }
        if let Some(t) = p.tap.as_mut() {
            t.default_lifetime_minutes = Some(120);
            t.maximum_lifetime_minutes = Some(600);
        }
    }
    let mut subjects = flagged(&s, "weak-methods-enabled");
    subjects.sort();
    assert_eq!(subjects, ["tenant:Sms", "tenant:Voice"]);
    assert_eq!(
        flagged(&s, "tap-policy-lifetime"),
        ["tenant:default", "tenant:maximum"]
    );
    assert!(subjects.iter().all(|s| is_tenant_subject(s)));
    assert!(!is_tenant_subject("tenantx") && is_tenant_subject("tenant"));
    let missing = run(&s, &RulesConfig::default(), &["nobody@contoso.com"]);
    let glass: Vec<&str> = missing
        .findings
        .iter()
        .filter(|f| f.rule == "break-glass-weak")
        .map(|f| f.subject.as_str())
        .collect();
    assert_eq!(glass, ["tenant:nobody@contoso.com"]);
}
