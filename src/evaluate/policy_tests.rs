//! The rules that predict lockouts from policy (issue 11), each at its boundaries, on
//! hand-built snapshots: who they flag, and who they must not (guests and users a policy
//! excludes, break-glass accounts, users with an allowed method that satisfies it, users whose
//! groups were not read).

use std::collections::{BTreeMap, BTreeSet};

use super::tests::{config, flagged, flagged_with, run, snapshot, user};
use super::*;
use crate::snapshot::{
    AuthStrength, CaPolicy, FeatureState, Fido2Policy, KeyRestrictions, MethodKind, PasskeyProfile,
    Role, SmartLockout, Sspr, UserType,
};

use MethodKind::*;

const GA: &str = "62e90394-69f5-4237-9190-012177145e10";
const PR: &str = "00000000-0000-0000-0000-000000000004";
const EXCLUDED: &str = "e0000000-0000-4000-8000-000000000001";
const NO_FIDO: &str = "e0000000-0000-4000-8000-000000000002";
const UNREAD: &str = "e0000000-0000-4000-8000-000000000003";
const STRICT: &str = "e0000000-0000-4000-8000-000000000004";
const EMPTY: &str = "e0000000-0000-4000-8000-000000000005";
const YUBIKEY: &str = "cb69481e-8ff7-4039-93ec-0a2729a154a8";

fn strength(id: &str, combos: &[&str]) -> AuthStrength {
    AuthStrength {
        id: id.into(),
        display_name: "".into(),
        policy_type: "builtIn".into(),
        allowed_combinations: combos.iter().map(|c| (*c).into()).collect(),
    }
}

/// Phishing-resistant MFA for Global Administrators, guests and a group excluded.
fn admins_pr(state: &str) -> CaPolicy {
    CaPolicy {
        id: "pol-admins".into(),
        display_name: "Admins phishing-resistant".into(),
        state: state.into(),
        include_users: vec![],
        include_roles: vec![GA.into()],
        exclude_groups: vec![EXCLUDED.into()],
        excludes_guests: true,
        builtin_mfa: false,
        strength: Some(strength(PR, &[])),
        ..super::tests::mfa_for_all()
    }
}

fn ga(n: u128, methods: &[MethodKind]) -> User {
    let mut u = user(n, methods);
    u.roles.insert(Role::GlobalAdministrator);
    u
}

/// The users of the policy-unsatisfiable scenario, and the snapshot around them.
fn lockout_tenant(state: &str) -> Snapshot {
    let mut guest = ga(4, &[AuthenticatorPush]);
    guest.user_type = UserType::Guest;
    let mut eligible = user(9, &[AuthenticatorPush]);
    eligible.eligible_roles.insert(Role::GlobalAdministrator);
    let mut s = snapshot(vec![
        ga(1, &[AuthenticatorPush]),
        ga(2, &[Fido2SecurityKey]),
        ga(3, &[Fido2SecurityKey, AuthenticatorPush]),
        guest,
        ga(5, &[AuthenticatorPush]),
        ga(6, &[AuthenticatorPush]),
        user(7, &[AuthenticatorPush]),
        eligible,
    ]);
    let pilot = CaPolicy {
        id: "pol-pilot".into(),
        display_name: "Pilot passwordless".into(),
        include_users: vec![],
        include_groups: vec![UNREAD.into()],
        builtin_mfa: false,
        strength: Some(strength(PR, &[])),
        ..super::tests::mfa_for_all()
    };
    s.conditional_access = Some(vec![super::tests::mfa_for_all(), admins_pr(state), pilot]);
    if let Some(p) = s.methods_policy.as_mut() {
        p.methods
            .push(config("Fido2", true, &["all_users"], &[NO_FIDO]));
    }
    s.groups.insert(EXCLUDED.into(), vec![ObjectId(5)]);
    s.groups.insert(NO_FIDO.into(), vec![ObjectId(3)]);
    s
}

fn findings<'a>(e: &'a Evaluation, rule: &str) -> BTreeMap<String, &'a Finding> {
    e.findings
        .iter()
        .filter(|f| f.rule == rule)
        .map(|f| {
            (
                f.user_principal_name.clone().unwrap_or(f.subject.clone()),
                f,
            )
        })
        .collect()
}

#[test]
fn policy_unsatisfiable_flags_exactly_the_users_an_enabled_policy_locks_out() {
    let s = lockout_tenant("enabled");
    // user6 is a break-glass account: judged by its own rules only.
    let e = run(&s, &RulesConfig::default(), &["user6@contoso.com"]);
    let hits = findings(&e, "policy-unsatisfiable");
    // 1: push only. 3: a key the methods policy excludes them from. Not: 2 (an allowed key),
    // 4 (a guest, excluded), 5 (excluded by group), 6 (break-glass), 7 (not an admin; the pilot
    // group is not read: undecided), 9 (eligible only, not active).
    assert_eq!(
        hits.keys().map(String::as_str).collect::<Vec<_>>(),
        ["user1@contoso.com", "user3@contoso.com"]
    );
    assert!(hits.values().all(|f| f.severity == Severity::Critical));
    assert!(findings(&e, "policy-unsatisfiable-report-only").is_empty());
    let one = &hits["user1@contoso.com"].detail;
    for part in [
        "'Admins phishing-resistant' (enabled; applications All) requires 'Phishing resistant MFA' [windowsHelloForBusiness | fido2 | x509CertificateMultiFactor]",
        "policy-allowed methods: microsoftAuthenticatorPush",
        "would satisfy: 'Phishing resistant MFA' is met by any of: ",
        "fido2SecurityKey",
    ] {
        assert!(one.contains(part), "{part:?} not in {one}");
    }
    assert!(!one.contains("Pilot"), "an undecided policy is not named");
    let three = &hits["user3@contoso.com"].detail;
    assert!(
        three.contains("registered but not allowed: fido2SecurityKey (Fido2 excludes the user)")
            && three.contains("(the user has fido2SecurityKey: allowing it would do)"),
        "{three}"
    );
    assert!(hits["user1@contoso.com"]
        .remediation
        .contains("-UserId user1@contoso.com"));
    // The per-policy counts: the admins policy applies to 1, 2, 3 (5 excluded, 4 a guest,
    // 6 break-glass); it locks out 1 and 3.
    let counts = e.predicted_lockouts.expect("judged");
    let admins = counts
        .iter()
        .find(|c| c.policy_id == "pol-admins")
        .expect("admins policy");
    assert_eq!((admins.applies_to, admins.locked_out), (3, 2));
    let all = counts
        .iter()
        .find(|c| c.policy_id == "p")
        .expect("mfa for all");
    assert_eq!(all.locked_out, 0);
    assert!(counts.iter().all(|c| c.policy_id != "pol-pilot"));
}

#[test]
fn a_report_only_policy_has_its_own_lower_rule_and_a_disabled_one_none() {
    let s = lockout_tenant(STATE_REPORT_ONLY_STR);
    let e = run(&s, &RulesConfig::default(), &["user6@contoso.com"]);
    assert!(findings(&e, "policy-unsatisfiable").is_empty());
    let hits = findings(&e, "policy-unsatisfiable-report-only");
    assert_eq!(
        hits.keys().map(String::as_str).collect::<Vec<_>>(),
        ["user1@contoso.com", "user3@contoso.com"]
    );
    assert!(hits.values().all(|f| f.severity == Severity::Medium));
    assert!(hits["user1@contoso.com"]
        .detail
        .contains("(enabledForReportingButNotEnforced; applications All)"));
    let disabled = lockout_tenant("disabled");
    let e = run(&disabled, &RulesConfig::default(), &["user6@contoso.com"]);
    assert!(findings(&e, "policy-unsatisfiable").is_empty());
    assert!(findings(&e, "policy-unsatisfiable-report-only").is_empty());
}

const STATE_REPORT_ONLY_STR: &str = "enabledForReportingButNotEnforced";

#[test]
fn custom_strengths_are_looked_up_by_id_and_a_strength_not_found_is_not_judged() {
    const HW: &str = "e0000000-0000-4000-8000-0000000000aa";
    let mut s = snapshot(vec![
        user(1, &[HardwareOtp]),
        user(2, &[AuthenticatorPush, MobilePhone]),
        user(3, &[HardwareOtp]),
    ]);
    s.conditional_access = Some(vec![CaPolicy {
        builtin_mfa: false,
        strength: Some(strength("custom-hw", &[])),
        ..super::tests::mfa_for_all()
    }]);
    if let Some(p) = s.methods_policy.as_mut() {
        p.methods.push(config("HardwareOath", true, &[HW], &[]));
    }
    s.groups.insert(HW.into(), vec![ObjectId(1)]);
    s.strengths = Some(vec![AuthStrength {
        id: "CUSTOM-HW".into(),
        display_name: "Hardware tokens only".into(),
        policy_type: "custom".into(),
        allowed_combinations: vec!["password,hardwareOath".into()],
    }]);
    let mut got = flagged(&s, "policy-unsatisfiable");
    got.sort();
    // 3 holds a token the methods policy does not target them for; the two admins have none.
    assert_eq!(
        got,
        [
            "user1001@contoso.com",
            "user1002@contoso.com",
            "user2@contoso.com",
            "user3@contoso.com"
        ]
    );
    let e = run(&s, &RulesConfig::default(), &[]);
    assert!(findings(&e, "policy-unsatisfiable")["user2@contoso.com"]
        .detail
        .contains("requires 'Hardware tokens only' [password,hardwareOath]"));
    // Inline combinations win.
    let mut inline = s.clone();
    if let Some(p) = inline.conditional_access.as_mut() {
        p[0].strength = Some(strength(
            "custom-hw",
            &["password,sms", "password,hardwareOath"],
        ));
    }
    let mut got = flagged(&inline, "policy-unsatisfiable");
    got.sort();
    assert_eq!(
        got,
        [
            "user1001@contoso.com",
            "user1002@contoso.com",
            "user3@contoso.com"
        ],
        "sms counts as allowed: the Sms configuration is disabled but Voice is not read"
    );
    // The strengths not read: the custom one cannot be found, the policy is not judged, and
    // the rule says it was judged without them.
    s.strengths = None;
    s.coverage.gaps.insert(
        DataSet::AuthStrengths,
        Gap::MissingPermission("Policy.Read.All".into()),
    );
    let e = run(&s, &RulesConfig::default(), &[]);
    assert!(findings(&e, "policy-unsatisfiable").is_empty());
    assert!(e
        .partial
        .iter()
        .any(|p| p.rule == "policy-unsatisfiable" && p.reason.contains("auth-strengths")));
    assert!(!e.skipped.iter().any(|p| p.rule == "policy-unsatisfiable"));
}

#[test]
fn the_mfa_control_and_a_strength_together_must_both_be_met() {
    let mut s = snapshot(vec![
        user(1, &[AuthenticatorPush]),
        user(2, &[Fido2SecurityKey]),
        user(3, &[Email]),
    ]);
    if let Some(p) = s.methods_policy.as_mut() {
        p.methods.push(config("Fido2", true, &["all_users"], &[]));
    }
    s.conditional_access = Some(vec![CaPolicy {
        strength: Some(strength(PR, &[])),
        ..super::tests::mfa_for_all()
    }]);
    let mut got = flagged(&s, "policy-unsatisfiable");
    got.sort();
    // The email-only user has no MFA method: sent to registration, no-mfa-method's finding.
    assert_eq!(got, ["user1@contoso.com"]);
    assert_eq!(flagged(&s, "no-mfa-method"), ["user3@contoso.com"]);
}

#[test]
fn without_conditional_access_the_policy_rules_are_skipped_and_nothing_is_predicted() {
    let mut s = lockout_tenant("enabled");
    s.conditional_access = None;
    s.coverage.gaps.insert(
        DataSet::ConditionalAccess,
        Gap::MissingPermission("Policy.Read.All".into()),
    );
    let e = run(&s, &RulesConfig::default(), &[]);
    for rule in ["policy-unsatisfiable", "policy-unsatisfiable-report-only"] {
        assert!(e.skipped.iter().any(|k| k.rule == rule), "{rule}");
    }
    assert_eq!(e.predicted_lockouts, None);
    // Turned off: not predicted either.
    let mut off = RulesConfig::default();
    off.policy_unsatisfiable.enabled = false;
    off.policy_unsatisfiable_report_only.enabled = false;
    let e = run(&lockout_tenant("enabled"), &off, &[]);
    assert_eq!(e.predicted_lockouts, None);
}

#[test]
fn policy_target_missing_names_each_missing_id_with_the_policies_that_name_it() {
    const GONE_GROUP: &str = "d0000000-0000-4000-8000-000000000001";
    const GONE_USER: &str = "d0000000-0000-4000-8000-000000000002";
    let mut s = snapshot(vec![]);
    s.conditional_access = Some(vec![CaPolicy {
        exclude_groups: vec![GONE_GROUP.to_uppercase().into()],
        include_users: vec!["All".into(), GONE_USER.into()],
        ..super::tests::mfa_for_all()
    }]);
    if let Some(p) = s.methods_policy.as_mut() {
        p.methods.push(config("Fido2", true, &[GONE_GROUP], &[]));
    }
    assert!(
        flagged(&s, "policy-target-missing").is_empty(),
        "not read: nothing"
    );
    s.missing_targets = Some(BTreeSet::from([
        GONE_GROUP.to_string(),
        GONE_USER.to_string(),
    ]));
    let e = run(&s, &RulesConfig::default(), &[]);
    let hits = findings(&e, "policy-target-missing");
    assert_eq!(
        hits.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            format!("tenant:{GONE_GROUP}"),
            format!("tenant:{GONE_USER}")
        ]
    );
    let group = &hits[&format!("tenant:{GONE_GROUP}")].detail;
    assert!(
        group.starts_with(&format!("group {GONE_GROUP} no longer exists"))
            && group.contains(
                "Conditional Access policy 'MFA for all' (exclude: no longer excludes its members)"
            )
            && group.contains("methods policy Fido2 (include: its members lost the method)"),
        "{group}"
    );
    assert!(hits[&format!("tenant:{GONE_USER}")]
        .detail
        .starts_with(&format!("user {GONE_USER} no longer exists")));
    assert!(hits.values().all(|f| f.severity == Severity::High));
    s.coverage.gaps.insert(
        DataSet::PolicyTargets,
        Gap::MissingPermission("Directory.Read.All".into()),
    );
    let e = run(&s, &RulesConfig::default(), &[]);
    assert!(e.skipped.iter().any(|k| k.rule == "policy-target-missing"));
}

#[test]
fn smart_lockout_is_weak_above_the_threshold_or_under_the_duration_and_defaults_pass() {
    let with = |threshold, duration_seconds, defaults| {
        let mut s = snapshot(vec![]);
        s.lockout = Some(SmartLockout {
            threshold,
            duration_seconds,
            defaults,
        });
        s
    };
    assert!(
        flagged(&snapshot(vec![]), "smart-lockout-weak").is_empty(),
        "not read"
    );
    assert!(flagged(&with(10, 60, true), "smart-lockout-weak").is_empty());
    assert!(flagged(&with(10, 60, false), "smart-lockout-weak").is_empty());
    let e = run(&with(11, 30, false), &RulesConfig::default(), &[]);
    let f = findings(&e, "smart-lockout-weak");
    let detail = &f["tenant"].detail;
    assert!(
        detail.contains("threshold is 11 failed sign-ins (more than 10)")
            && detail.contains("lasts 30 s (less than 60)"),
        "{detail}"
    );
    assert_eq!(
        flagged(&with(10, 59, false), "smart-lockout-weak"),
        ["tenant"]
    );
    let mut lax = RulesConfig::default();
    lax.smart_lockout_weak.max_threshold = 20;
    lax.smart_lockout_weak.min_duration_seconds = 30;
    assert!(flagged_with(&with(11, 30, false), "smart-lockout-weak", &lax).is_empty());
    // Stricter parameters judge the defaults too, and say they are Entra's.
    let mut strict = RulesConfig::default();
    strict.smart_lockout_weak.max_threshold = 5;
    let e = run(&with(10, 60, true), &strict, &[]);
    assert!(findings(&e, "smart-lockout-weak")["tenant"]
        .detail
        .contains("Entra's defaults apply"));
}

#[test]
fn sspr_not_ready_means_enabled_but_not_registered_or_not_capable() {
    let sspr = |n, enabled, registered, capable| {
        let mut u = user(n, &[AuthenticatorPush, MobilePhone]);
        u.sspr = Some(Sspr {
            enabled,
            registered,
            capable,
        });
        u
    };
    let mut disabled = sspr(5, true, false, false);
    disabled.account_enabled = false;
    let s = snapshot(vec![
        sspr(1, true, true, true),
        sspr(2, true, false, true),
        sspr(3, true, true, false),
        sspr(4, false, false, false),
        disabled,
        user(6, &[AuthenticatorPush]),
    ]);
    let e = run(&s, &RulesConfig::default(), &[]);
    let hits = findings(&e, "sspr-not-ready");
    assert_eq!(
        hits.keys().map(String::as_str).collect::<Vec<_>>(),
        ["user2@contoso.com", "user3@contoso.com"]
    );
    assert!(hits["user2@contoso.com"].detail.contains("not registered"));
    assert!(hits["user3@contoso.com"].detail.contains("not capable"));
    assert_eq!(
        e.sspr,
        Some(SsprReadiness {
            enabled: 3,
            registered: 2,
            capable: 2,
            not_ready: 2
        })
    );
}

#[test]
fn admin_no_recovery_contact_is_a_global_admin_active_or_eligible_without_other_mails() {
    let with = |n, mails: Option<bool>, role: Option<Role>, eligible: bool| {
        let mut u = user(n, &[AuthenticatorPush, MobilePhone]);
        u.has_other_mails = mails;
        if let Some(r) = role {
            if eligible {
                u.eligible_roles.insert(r);
            } else {
                u.roles.insert(r);
            }
        }
        u
    };
    let s = snapshot(vec![
        with(1, Some(false), Some(Role::GlobalAdministrator), false),
        with(2, Some(false), Some(Role::GlobalAdministrator), true),
        with(3, Some(true), Some(Role::GlobalAdministrator), false),
        with(4, None, Some(Role::GlobalAdministrator), false),
        with(5, Some(false), Some(Role::SecurityAdministrator), false),
        with(6, Some(false), None, false),
        with(7, Some(false), Some(Role::GlobalAdministrator), false),
    ]);
    let e = run(&s, &RulesConfig::default(), &["user7@contoso.com"]);
    let hits = findings(&e, "admin-no-recovery-contact");
    assert_eq!(
        hits.keys().map(String::as_str).collect::<Vec<_>>(),
        ["user1@contoso.com", "user2@contoso.com"]
    );
    assert!(hits["user2@contoso.com"]
        .detail
        .starts_with("Global Administrator (eligible)"));
}

#[test]
fn suspicious_activity_reporting_is_off_when_disabled_or_default() {
    let with = |state| {
        let mut s = snapshot(vec![]);
        if let Some(p) = s.methods_policy.as_mut() {
            p.report_suspicious_activity = state;
        }
        s
    };
    let rule = "suspicious-activity-reporting-off";
    assert_eq!(
        flagged(&with(Some(FeatureState::Disabled)), rule),
        ["tenant"]
    );
    assert_eq!(
        flagged(&with(Some(FeatureState::Default)), rule),
        ["tenant"]
    );
    assert!(flagged(&with(Some(FeatureState::Enabled)), rule).is_empty());
    assert!(flagged(&with(None), rule).is_empty(), "not read: nothing");
}

#[test]
fn passkeys_off_while_admins_must_be_phishing_resistant_is_one_finding_counting_them() {
    let mut s = snapshot(vec![ga(1, &[AuthenticatorPush]), ga(2, &[WindowsHello])]);
    s.conditional_access = Some(vec![admins_pr("enabled")]);
    if let Some(p) = s.methods_policy.as_mut() {
        p.methods.push(config("Fido2", false, &["all_users"], &[]));
    }
    s.groups.insert(EXCLUDED.into(), vec![]);
    let e = run(&s, &RulesConfig::default(), &[]);
    let hits = findings(&e, "passkey-policy-blocks");
    let f = hits.get("tenant:fido2").expect("fido2 finding");
    assert!(
        f.detail
            .starts_with("FIDO2 (passkeys) is disabled while 'Admins phishing-resistant'")
            && f.detail.contains(": 2 user(s) it applies to"),
        "{}",
        f.detail
    );
    // Targeting only an empty group is targeting nobody.
    let mut nobody = s.clone();
    if let Some(p) = nobody.methods_policy.as_mut() {
        p.methods.retain(|m| m.id.as_ref() != "Fido2");
        p.methods.push(config("Fido2", true, &[EMPTY], &[]));
    }
    nobody.groups.insert(EMPTY.into(), vec![]);
    let e = run(&nobody, &RulesConfig::default(), &[]);
    assert!(findings(&e, "passkey-policy-blocks")["tenant:fido2"]
        .detail
        .contains("targets nobody"));
    // Enabled for everyone, or no phishing-resistant policy for admins: nothing.
    let mut on = s.clone();
    if let Some(p) = on.methods_policy.as_mut() {
        p.methods.retain(|m| m.id.as_ref() != "Fido2");
        p.methods.push(config("Fido2", true, &["all_users"], &[]));
    }
    assert!(flagged(&on, "passkey-policy-blocks").is_empty());
    let mut mfa_only = s.clone();
    mfa_only.conditional_access = Some(vec![super::tests::mfa_for_all()]);
    assert!(flagged(&mfa_only, "passkey-policy-blocks").is_empty());
}

fn profile(id: &str, types: &[&str], attestation: bool, allow: Option<&[&str]>) -> PasskeyProfile {
    PasskeyProfile {
        id: id.into(),
        name: id.to_uppercase().into(),
        passkey_types: types.iter().map(|t| (*t).into()).collect(),
        attestation_enforced: attestation,
        key_restrictions: allow.map(|a| KeyRestrictions {
            enforced: true,
            allow: true,
            aaguids: a.iter().map(|x| (*x).into()).collect(),
        }),
    }
}

#[test]
fn passkey_profiles_that_refuse_what_users_hold_are_one_finding_each_counting_them() {
    let mut s = snapshot(vec![
        user(1, &[PasskeySynced]),
        user(2, &[PasskeySynced, AuthenticatorPush]),
        user(3, &[PasskeyAuthenticator]),
        user(4, &[Fido2SecurityKey]),
        user(5, &[PasskeySynced]),
    ]);
    if let Some(p) = s.methods_policy.as_mut() {
        p.methods
            .push(config("Fido2", true, &["all_users", STRICT], &[EXCLUDED]));
        p.fido2 = Some(Fido2Policy {
            profiles: vec![
                profile("p1", &["deviceBound", "synced"], true, None),
                profile("p2", &["deviceBound"], false, Some(&[YUBIKEY])),
            ],
            default_profile: Some("p1".into()),
            target_profiles: vec![
                ("all_users".into(), vec![]),
                (STRICT.into(), vec!["p2".into()]),
            ],
            ..Fido2Policy::default()
        });
    }
    s.groups
        .insert(STRICT.into(), vec![ObjectId(2), ObjectId(3)]);
    // user5 is outside FIDO2 altogether (method-not-allowed's business, not this rule's).
    s.groups.insert(EXCLUDED.into(), vec![ObjectId(5)]);
    let e = run(&s, &RulesConfig::default(), &[]);
    let hits = findings(&e, "passkey-policy-blocks");
    // 1 and 2 hold synced passkeys p1 cannot attest (2 is also under p2, which allows no
    // synced ones). 3's Authenticator passkey is refused by p2's allow-list, but p1 takes it.
    assert_eq!(
        hits.keys().map(String::as_str).collect::<Vec<_>>(),
        ["tenant:p1:attestation", "tenant:p2:passkey-types"]
    );
    let p1 = &hits["tenant:p1:attestation"].detail;
    assert!(
        p1.starts_with("passkey profile 'P1' enforces attestation")
            && p1.contains("2 hold synced passkeys"),
        "{p1}"
    );
    assert!(hits["tenant:p2:passkey-types"]
        .detail
        .contains("1 hold synced passkeys"));
    // Without profiles, the deprecated top-level settings are the profile.
    let mut top = s.clone();
    if let Some(f) = top.methods_policy.as_mut().and_then(|p| p.fido2.as_mut()) {
        *f = Fido2Policy {
            attestation_enforced: true,
            key_restrictions: Some(KeyRestrictions {
                enforced: true,
                allow: true,
                aaguids: vec![YUBIKEY.into()],
            }),
            ..Fido2Policy::default()
        };
    }
    let e = run(&top, &RulesConfig::default(), &[]);
    let hits = findings(&e, "passkey-policy-blocks");
    assert_eq!(
        hits.keys().map(String::as_str).collect::<Vec<_>>(),
        ["tenant:fido2:attestation", "tenant:fido2:key-restrictions"]
    );
    let keys = &hits["tenant:fido2:key-restrictions"].detail;
    assert!(
        keys.contains("lists none of Microsoft Authenticator's")
            && keys.contains(": 1 hold passkeys in Microsoft Authenticator"),
        "{keys}"
    );
    // Listing Authenticator's AAGUIDs lets them through.
    if let Some(k) = top
        .methods_policy
        .as_mut()
        .and_then(|p| p.fido2.as_mut())
        .and_then(|f| f.key_restrictions.as_mut())
    {
        k.aaguids
            .push(crate::snapshot::AUTHENTICATOR_PASSKEY_AAGUIDS[0].into());
    }
    let mut got = flagged(&top, "passkey-policy-blocks");
    got.sort();
    assert_eq!(got, ["tenant:fido2:attestation"]);
    // A target group not read: a user who may be in it is counted only if its profile refuses
    // what they hold too (p2 takes no synced passkeys either), and against p1 only.
    let mut unread = s.clone();
    unread.groups.remove(STRICT);
    let e = run(&unread, &RulesConfig::default(), &[]);
    let hits = findings(&e, "passkey-policy-blocks");
    assert_eq!(
        hits.keys().map(String::as_str).collect::<Vec<_>>(),
        ["tenant:p1:attestation"]
    );
    assert!(hits["tenant:p1:attestation"]
        .detail
        .contains("2 hold synced passkeys"));
}

#[test]
fn the_new_tenant_rules_are_quiet_on_a_sound_tenant() {
    let mut s = snapshot(vec![user(1, &[AuthenticatorPush, MobilePhone])]);
    s.lockout = Some(SmartLockout {
        threshold: 10,
        duration_seconds: 60,
        defaults: true,
    });
    s.missing_targets = Some(BTreeSet::new());
    s.strengths = Some(vec![]);
    let e = run(
        &s,
        &RulesConfig::default(),
        &["user1001@contoso.com", "user1002@contoso.com"],
    );
    assert!(e.findings.is_empty(), "{:#?}", e.findings);
}
