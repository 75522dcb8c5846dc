//! What-if on hand-built snapshots: who a change would lock out, and who it would not.

use chrono::{DateTime, Utc};

use super::*;
use crate::evaluate::AllEnabled;
use crate::snapshot::{
    CaPolicy, DataSet, FeatureState, Gap, MethodConfig, MethodKind, MethodSet, MethodsPolicy,
    ObjectId, Role, User, UserType,
};

use MethodKind::*;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z")
        .map(|d| d.with_timezone(&Utc))
        .expect("date")
}

fn user(n: u128, methods: &[MethodKind]) -> User {
    let mut u = User::new(ObjectId(n), &format!("user{n}@contoso.com"));
    u.display_name = format!("User {n}").into();
    u.methods = Some(methods.iter().copied().collect::<MethodSet>());
    u.mfa_capable = Some(true);
    u
}

fn config(id: &str, enabled: bool) -> MethodConfig {
    MethodConfig {
        id: id.into(),
        enabled,
        include_targets: vec!["all_users".into()],
        exclude_targets: vec![],
    }
}

/// Sms, Voice, Authenticator, FIDO2 enabled for all users; HardwareOath disabled.
fn snapshot(users: Vec<User>) -> Snapshot {
    let mut s = Snapshot::empty("contoso", now());
    s.users = users;
    s.users.sort_by_key(|u| u.id);
    s.methods_policy = Some(MethodsPolicy {
        migration_state: "migrationComplete".into(),
        registration_campaign: FeatureState::Enabled,
        system_preferred_mfa: Some(FeatureState::Enabled),
        methods: vec![
            config("Sms", true),
            config("Voice", true),
            config("MicrosoftAuthenticator", true),
            config("Fido2", true),
            config("HardwareOath", false),
        ],
        tap: None,
        authenticator: None,
        report_suspicious_activity: Some(FeatureState::Enabled),
        fido2: None,
    });
    s.conditional_access = Some(vec![]);
    s.strengths = Some(vec![]);
    s
}

fn run(s: &Snapshot, changes: &[Change]) -> WhatIf {
    what_if(s, changes, &RulesConfig::default(), &AllEnabled, &[], now()).expect("what-if")
}

fn upns(w: &WhatIf, rule: &str) -> Vec<String> {
    w.groups
        .iter()
        .filter(|g| g.rule == rule)
        .flat_map(|g| g.users.iter().map(|u| u.user_principal_name.clone()))
        .collect()
}

fn disable(names: &[&str]) -> Vec<Change> {
    names
        .iter()
        .map(|n| Change::disable(n).expect("known method"))
        .collect()
}

#[test]
fn disabling_sms_locks_out_only_those_whose_every_method_needs_it() {
    let s = snapshot(vec![
        // Phone only, Voice still allows it: fine.
        user(1, &[MobilePhone]),
        // Authenticator too: fine.
        user(2, &[MobilePhone, AuthenticatorPush]),
        // Office phone: Voice.
        user(3, &[OfficePhone]),
    ]);
    let w = run(&s, &disable(&["sms"]));
    assert!(w.complete, "{:?}", w.incomplete_reasons);
    assert!(w.locked_out().is_empty(), "{:#?}", w.groups);
    assert_eq!(w.exit_code(), 0);
    assert_eq!(w.changes, vec!["disable the Sms method configuration"]);

    // Voice off as well: the phone-only user has nothing left.
    let w = run(&s, &disable(&["SMS", "voice"]));
    assert_eq!(
        upns(&w, "method-not-allowed"),
        vec!["user1@contoso.com", "user3@contoso.com"]
    );
    assert_eq!(w.exit_code(), 1);
    let g = &w.groups[0];
    assert_eq!(g.rule, "method-not-allowed");
    assert_eq!(
        g.reason,
        "authentication-methods policy: Sms, Voice disabled"
    );
    assert_eq!(g.users[0].display_name, "User 1");
    assert_eq!(g.users[0].methods, vec!["mobilePhone"]);
    assert!(
        g.users[0].detail.contains("Sms is disabled"),
        "{}",
        g.users[0].detail
    );
    assert!(
        !g.users[0].detail.contains("still says MFA-capable"),
        "the report's isMfaCapable describes today's policy, not the changed one: {}",
        g.users[0].detail
    );
}

#[test]
fn users_already_locked_out_are_not_blamed_on_the_change() {
    // Hardware OTP only, HardwareOath already disabled: flagged today, not newly.
    let mut hw = user(1, &[HardwareOtp]);
    hw.mfa_capable = Some(false);
    let s = snapshot(vec![hw, user(2, &[MobilePhone])]);
    let w = run(&s, &disable(&["sms", "voice"]));
    assert_eq!(upns(&w, "method-not-allowed"), vec!["user2@contoso.com"]);
    assert_eq!(w.already["method-not-allowed"], 1);
    let table = w.to_table();
    assert!(table.contains("already flagged today"), "{table}");
}

#[test]
fn scope_disabled_accounts_guests_and_break_glass_are_not_listed() {
    let mut disabled = user(2, &[MobilePhone]);
    disabled.account_enabled = false;
    let mut guest = user(3, &[MobilePhone]);
    guest.user_type = UserType::Guest;
    let glass = user(4, &[MobilePhone]);
    let s = snapshot(vec![user(1, &[MobilePhone]), disabled, guest, glass]);
    let scope = crate::evaluate::scope::UserScope::new(&Default::default()).expect("scope");
    let w = what_if(
        &s,
        &disable(&["sms", "voice"]),
        &RulesConfig::default(),
        &scope,
        &["USER4@contoso.com".to_string()],
        now(),
    )
    .expect("what-if");
    let people: Vec<&str> = w
        .groups
        .iter()
        .filter(|g| !g.break_glass)
        .flat_map(|g| g.users.iter().map(|u| u.user_principal_name.as_str()))
        .collect();
    assert_eq!(people, vec!["user1@contoso.com"]);
    // The break-glass account is judged apart, and listed first: losing it is losing the way in.
    assert!(w.groups[0].break_glass, "{:#?}", w.groups);
    assert_eq!(w.groups[0].rule, "method-not-allowed");
    assert_eq!(
        w.groups[0].users[0].user_principal_name,
        "user4@contoso.com"
    );
    assert_eq!(w.locked_out().len(), 2);
    assert!(
        w.to_table()
            .contains("BREAK-GLASS ACCOUNTS: method-not-allowed"),
        "{}",
        w.to_table()
    );
}

#[test]
fn a_lockout_rule_switched_off_in_config_is_still_judged() {
    let s = snapshot(vec![user(1, &[MobilePhone])]);
    let mut params = RulesConfig::default();
    params.method_not_allowed.enabled = false;
    let w = what_if(
        &s,
        &disable(&["sms", "voice"]),
        &params,
        &AllEnabled,
        &[],
        now(),
    )
    .expect("what-if");
    assert_eq!(upns(&w, "method-not-allowed"), vec!["user1@contoso.com"]);
}

#[test]
fn an_incomplete_read_is_never_nobody() {
    let mut s = snapshot(vec![user(1, &[AuthenticatorPush])]);
    s.coverage.gaps.insert(
        DataSet::Users,
        Gap::Failed {
            endpoint: "users".into(),
            reason: "HTTP 500".into(),
        },
    );
    let w = run(&s, &disable(&["sms"]));
    assert!(!w.complete);
    assert_eq!(w.exit_code(), 2);
    assert!(
        w.to_table().contains("this is not \"nobody\""),
        "{}",
        w.to_table()
    );

    // The registration report unread: method-not-allowed is skipped, so the answer is incomplete.
    let mut s = snapshot(vec![user(1, &[AuthenticatorPush])]);
    s.coverage.gaps.insert(
        DataSet::Registration,
        Gap::MissingPermission("AuditLog.Read.All".into()),
    );
    let w = run(&s, &disable(&["sms"]));
    assert_eq!(w.exit_code(), 2);
    assert!(
        w.incomplete_reasons
            .iter()
            .any(|r| r.starts_with("method-not-allowed could not be judged")),
        "{:?}",
        w.incomplete_reasons
    );
}

#[test]
fn disabling_a_configuration_the_policy_did_not_list_adds_it_disabled() {
    let s = snapshot(vec![user(1, &[QrCodePin, AuthenticatorPush])]);
    let (after, _) = apply(&s, &disable(&["qr-code-pin", "tap"])).expect("applied");
    let policy = after.methods_policy.expect("policy");
    let qr = policy
        .methods
        .iter()
        .find(|c| &*c.id == "QRCodePin")
        .expect("added");
    assert!(!qr.enabled);
    assert!(policy
        .methods
        .iter()
        .any(|c| &*c.id == "TemporaryAccessPass" && !c.enabled));
    let w = run(&s, &disable(&["tap"]));
    assert!(w.locked_out().is_empty());
    assert!(
        w.notes
            .iter()
            .any(|n| n.contains("how a user who lost every method is let back in")),
        "{:?}",
        w.notes
    );
    // The original snapshot is untouched.
    assert_eq!(s.methods_policy.expect("policy").methods.len(), 5);
}

#[test]
fn no_methods_policy_read_is_an_error_not_an_empty_answer() {
    let mut s = snapshot(vec![user(1, &[MobilePhone])]);
    s.methods_policy = None;
    s.coverage
        .gaps
        .insert(DataSet::MethodsPolicy, Gap::Disabled);
    let e = what_if(
        &s,
        &disable(&["sms"]),
        &RulesConfig::default(),
        &AllEnabled,
        &[],
        now(),
    )
    .expect_err("cannot judge");
    assert!(matches!(e, WhatIfError::NoMethodsPolicy(_)), "{e}");
}

#[test]
fn flags_parse_case_insensitively_and_errors_list_what_is_valid() {
    assert_eq!(Change::disable("SMS"), Ok(Change::DisableMethod("Sms")));
    assert_eq!(
        Change::disable("software-oath"),
        Ok(Change::DisableMethod("SoftwareOath"))
    );
    assert_eq!(
        Change::disable("MicrosoftAuthenticator"),
        Ok(Change::DisableMethod("MicrosoftAuthenticator"))
    );
    let e = Change::disable("pigeon").expect_err("unknown").to_string();
    assert!(
        e.contains("\"pigeon\"") && e.contains("qr-code-pin") && e.contains("hardware-oath"),
        "{e}"
    );

    assert_eq!(Target::parse("ALL"), Ok(Target::All));
    assert_eq!(
        Target::parse("role:global administrator"),
        Ok(Target::Role("62e90394-69f5-4237-9190-012177145e10".into()))
    );
    assert_eq!(
        Target::parse("role:62E90394-69F5-4237-9190-012177145E10"),
        Ok(Target::Role("62e90394-69f5-4237-9190-012177145e10".into()))
    );
    assert_eq!(
        Target::parse("group:9A0C0000-0000-4000-8000-000000000001"),
        Ok(Target::Group("9a0c0000-0000-4000-8000-000000000001".into()))
    );
    assert!(matches!(
        Target::parse("group:staff"),
        Err(WhatIfError::BadTarget(_))
    ));
    assert!(matches!(
        Target::parse("everyone"),
        Err(WhatIfError::BadTarget(_))
    ));
    let e = Target::parse("role:Chief Wizard")
        .expect_err("unknown role")
        .to_string();
    assert!(e.contains("Global Administrator"), "{e}");
    assert!(matches!(
        Target::parse("role:f2ef992c-3afb-46b9-b7cf-a126ee74c451"),
        Err(WhatIfError::UntrackedRole(_))
    ));
}

#[test]
fn strengths_resolve_by_alias_name_or_id_and_custom_ones_from_the_tenant() {
    let mut s = snapshot(vec![]);
    let pr = resolve_strength(&s, "phishing-resistant").expect("built in");
    assert_eq!(&*pr.id, "00000000-0000-0000-0000-000000000004");
    assert_eq!(pr.allowed_combinations.len(), 3);
    // Graph's own spelling has no hyphen.
    let pr2 = resolve_strength(&s, "Phishing resistant MFA").expect("by name");
    assert_eq!(pr2.id, pr.id);
    let mfa = resolve_strength(&s, "00000000-0000-0000-0000-000000000002").expect("by id");
    assert!(mfa
        .allowed_combinations
        .iter()
        .any(|c| &**c == "password,sms"));
    s.strengths = Some(vec![AuthStrength {
        id: "c0ffee00-0000-4000-8000-000000000001".into(),
        display_name: "Keys only".into(),
        policy_type: "custom".into(),
        allowed_combinations: vec!["fido2".into()],
    }]);
    let custom = resolve_strength(&s, "keys only").expect("custom by name");
    assert_eq!(&*custom.id, "c0ffee00-0000-4000-8000-000000000001");
    let e = resolve_strength(&s, "Very strong")
        .expect_err("unknown")
        .to_string();
    assert!(
        e.contains("phishing-resistant") && e.contains("Keys only"),
        "{e}"
    );
}

#[test]
fn require_strength_adds_an_enabled_policy_for_the_target() {
    let admin = {
        let mut u = user(1, &[AuthenticatorPush]);
        u.roles.insert(Role::GlobalAdministrator);
        u
    };
    let s = snapshot(vec![admin]);
    let changes =
        vec![Change::require("phishing-resistant", "role:Global Administrator").expect("valid")];
    let (after, described) = apply(&s, &changes).expect("applied");
    let p: &CaPolicy = &after.conditional_access.as_ref().expect("CA")[0];
    assert_eq!(&*p.state, "enabled");
    assert_eq!(
        p.include_roles,
        vec![Box::<str>::from("62e90394-69f5-4237-9190-012177145e10")]
    );
    assert!(p.include_users.is_empty());
    assert_eq!(p.include_applications, vec![Box::<str>::from("All")]);
    assert!(p.requires_mfa && !p.builtin_mfa && !p.mfa_is_optional);
    let strength = p.strength.as_ref().expect("strength");
    assert_eq!(&*strength.display_name, "Phishing resistant MFA");
    assert_eq!(strength.allowed_combinations.len(), 3);
    assert_eq!(
        described,
        vec!["require the 'Phishing resistant MFA' authentication strength for role Global Administrator"]
    );

    let all = apply(&s, &[Change::require("mfa", "all").expect("valid")])
        .expect("applied")
        .0;
    assert_eq!(
        all.conditional_access.expect("CA")[0].include_users,
        vec![Box::<str>::from("All")]
    );

    // A group whose members were not read cannot be judged.
    let e = apply(
        &s,
        &[Change::require("mfa", "group:9a0c0000-0000-4000-8000-000000000001").expect("valid")],
    )
    .expect_err("unread group");
    assert!(matches!(e, WhatIfError::GroupNotRead(_)), "{e}");
}

#[test]
fn a_required_strength_without_the_rule_that_judges_it_is_incomplete_not_nobody() {
    let s = snapshot(vec![user(1, &[AuthenticatorPush])]);
    let w = run(
        &s,
        &[Change::require("phishing-resistant", "all").expect("valid")],
    );
    if lockout_rules().contains(&"policy-unsatisfiable") {
        assert!(w.complete, "{:?}", w.incomplete_reasons);
    } else {
        assert_eq!(w.exit_code(), 2);
        assert!(
            w.incomplete_reasons[0].starts_with("policy-unsatisfiable is not in this build"),
            "{:?}",
            w.incomplete_reasons
        );
    }
}

#[test]
fn requiring_phishing_resistant_for_admins_locks_out_push_only_admins() {
    let mut push_admin = user(1, &[AuthenticatorPush, MobilePhone]);
    push_admin.roles.insert(Role::GlobalAdministrator);
    let mut key_admin = user(2, &[Fido2SecurityKey]);
    key_admin.roles.insert(Role::GlobalAdministrator);
    // Not an admin: the policy does not apply.
    let push_user = user(3, &[AuthenticatorPush]);
    let s = snapshot(vec![push_admin, key_admin, push_user]);
    let w = run(
        &s,
        &[Change::require(
            "phishing-resistant",
            "role:62e90394-69f5-4237-9190-012177145e10",
        )
        .expect("valid")],
    );
    assert!(w.complete, "{:?}", w.incomplete_reasons);
    assert_eq!(upns(&w, "policy-unsatisfiable"), vec!["user1@contoso.com"]);
    assert!(upns(&w, "method-not-allowed").is_empty());
    let g = w
        .groups
        .iter()
        .find(|g| g.rule == "policy-unsatisfiable")
        .expect("group");
    assert!(
        g.reason.starts_with("Conditional Access 'what-if: require"),
        "{}",
        g.reason
    );
    assert_eq!(w.exit_code(), 1);
}

#[test]
fn disabling_sms_breaks_an_existing_strength_only_for_users_with_nothing_else() {
    let mut s = snapshot(vec![
        user(1, &[MobilePhone]),
        user(2, &[MobilePhone, AuthenticatorPush]),
    ]);
    s.conditional_access = Some(vec![CaPolicy {
        id: "p1".into(),
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
    }]);
    let w = run(&s, &disable(&["sms", "voice"]));
    assert_eq!(upns(&w, "policy-unsatisfiable"), vec!["user1@contoso.com"]);
    assert_eq!(upns(&w, "method-not-allowed"), vec!["user1@contoso.com"]);
    assert_eq!(
        w.locked_out().len(),
        1,
        "one user, listed under each reason"
    );
}

#[test]
fn every_format_carries_the_users() {
    let s = snapshot(vec![user(1, &[MobilePhone])]);
    let w = run(&s, &disable(&["sms", "voice"]));
    let v: serde_json::Value = serde_json::from_str(&w.to_json()).expect("JSON");
    assert_eq!(v["locked_out"], 1);
    assert_eq!(v["complete"], true);
    assert_eq!(v["groups"][0]["rule"], "method-not-allowed");
    assert_eq!(
        v["groups"][0]["users"][0]["user_principal_name"],
        "user1@contoso.com"
    );
    assert_eq!(v["groups"][0]["users"][0]["methods"][0], "mobilePhone");
    let csv = w.to_csv();
    let mut lines = csv.split("\r\n");
    assert_eq!(
        lines.next(),
        Some("rule,severity,reason,report_only,break_glass,user_id,user_principal_name,display_name,methods,detail")
    );
    let row = lines.next().expect("a row");
    assert!(
        row.starts_with(
            "method-not-allowed,high,\"authentication-methods policy: Sms, Voice disabled\",false,false,"
        ),
        "{row}"
    );
    assert!(
        row.contains("user1@contoso.com,User 1,mobilePhone,"),
        "{row}"
    );
    let sarif: serde_json::Value = serde_json::from_str(&w.to_sarif()).expect("SARIF JSON");
    assert_eq!(sarif["version"], "2.1.0");
    let results = sarif["runs"][0]["results"].as_array().expect("results");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["ruleId"], "method-not-allowed");
    assert_eq!(
        sarif["runs"][0]["tool"]["driver"]["rules"]
            [results[0]["ruleIndex"].as_u64().expect("index") as usize]["id"],
        "method-not-allowed"
    );
    let table = w.to_table();
    assert!(
        table.contains("1 user(s) would be newly locked out"),
        "{table}"
    );
    assert!(
        table.contains("user1@contoso.com  (User 1)  methods: mobilePhone"),
        "{table}"
    );
}

#[test]
fn before_the_migration_completes_the_answer_says_the_legacy_policy_still_applies() {
    let mut s = snapshot(vec![user(1, &[MobilePhone])]);
    s.methods_policy.as_mut().expect("policy").migration_state = "migrationInProgress".into();
    let w = run(&s, &disable(&["sms", "voice"]));
    assert!(
        w.locked_out().is_empty(),
        "the legacy policy may still allow it"
    );
    assert!(
        w.notes
            .iter()
            .any(|n| n.contains("policyMigrationState is migrationInProgress")),
        "{:?}",
        w.notes
    );
    assert!(
        w.to_table().contains("note: policyMigrationState"),
        "{}",
        w.to_table()
    );
}

#[test]
fn no_change_is_an_error() {
    let s = snapshot(vec![]);
    assert_eq!(
        what_if(&s, &[], &RulesConfig::default(), &AllEnabled, &[], now()).map(|_| ()),
        Err(WhatIfError::NoChange)
    );
}
