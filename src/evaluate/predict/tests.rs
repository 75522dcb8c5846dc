//! The prediction tables and functions, on hand-built snapshots.

use chrono::{DateTime, Utc};

use super::*;
use crate::snapshot::{Gap, MethodConfig, ObjectId, Role};

use MethodKind::*;

const GA: &str = "62e90394-69f5-4237-9190-012177145e10";
const ADMINS: &str = "a0000000-0000-4000-8000-000000000001";
const UNREAD: &str = "a0000000-0000-4000-8000-000000000002";

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z")
        .map(|d| d.with_timezone(&Utc))
        .expect("date")
}

fn user(n: u128, methods: &[MethodKind]) -> User {
    let mut u = User::new(ObjectId(n), &format!("user{n}@contoso.com"));
    u.methods = Some(methods.iter().copied().collect());
    u
}

fn policy(name: &str) -> CaPolicy {
    CaPolicy {
        id: format!("id-{name}").into(),
        display_name: name.into(),
        ..crate::evaluate::tests::mfa_for_all()
    }
}

fn strength(id: &str, combos: &[&str]) -> AuthStrength {
    AuthStrength {
        id: id.into(),
        display_name: "".into(),
        policy_type: "custom".into(),
        allowed_combinations: combos.iter().map(|c| (*c).into()).collect(),
    }
}

fn set(kinds: &[MethodKind]) -> MethodSet {
    kinds.iter().copied().collect()
}

fn builtin(id_tail: char) -> Requirement {
    let id = format!("00000000-0000-0000-0000-00000000000{id_tail}");
    let b = BUILTIN_STRENGTHS
        .iter()
        .find(|b| b.id == id)
        .expect("built-in");
    Requirement::builtin(b)
}

#[test]
fn every_mode_a_method_contributes_is_a_graph_mode() {
    for k in MethodKind::ALL {
        for m in modes(k) {
            assert!(Modes::named(m).is_some(), "{k:?} → {m}");
        }
    }
    assert_eq!(modes(MobilePhone), ["sms", "voice"]);
    assert_eq!(modes(OfficePhone), ["voice"]);
    assert_eq!(modes(PasskeySynced), ["fido2"]);
    assert_eq!(modes(MacOsSecureEnclaveKey), ["windowsHelloForBusiness"]);
    assert!(modes(Email).is_empty() && modes(ExternalMfa).is_empty());
    // The password is always there; federated modes never are.
    assert!(Modes::combination("password")
        .is_some_and(|c| c.within(Modes::available(MethodSet::EMPTY))));
    let everything = Modes::available(MethodKind::ALL.into_iter().collect());
    assert!(Modes::combination("federatedMultiFactor").is_some_and(|c| !c.within(everything)));
}

#[test]
fn the_built_in_strengths_are_graphs_own() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/graph/fixtures/authenticationStrengthPolicies_list.json"
    );
    let text = std::fs::read_to_string(path).expect("fixture");
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    let listed = json["value"].as_array().expect("value");
    for b in BUILTIN_STRENGTHS {
        let p = listed
            .iter()
            .find(|p| p["id"] == b.id)
            .unwrap_or_else(|| panic!("{} not in the fixture", b.id));
        let combos: Vec<&str> = p["allowedCombinations"]
            .as_array()
            .expect("combinations")
            .iter()
            .filter_map(|c| c.as_str())
            .collect();
        assert_eq!(combos, b.combinations, "{}", b.name);
        assert_eq!(p["displayName"], b.name, "Graph's own display name");
        // Every mode they name is known.
        for c in b.combinations {
            assert!(Modes::combination(c).is_some(), "{c}");
        }
    }
}

#[test]
fn a_strength_is_met_when_every_mode_of_one_combination_is_available() {
    let mfa = builtin('2');
    let passwordless = builtin('3');
    let pr = builtin('4');
    assert!(mfa.satisfied_by(set(&[AuthenticatorPush])));
    assert!(mfa.satisfied_by(set(&[OfficePhone])), "password,voice");
    assert!(!mfa.satisfied_by(set(&[Email])));
    assert!(!mfa.satisfied_by(MethodSet::EMPTY));
    assert!(!pr.satisfied_by(set(&[AuthenticatorPush, SoftwareOtp, MobilePhone])));
    assert!(pr.satisfied_by(set(&[PasskeySynced])));
    assert!(pr.satisfied_by(set(&[Certificate])));
    assert!(!pr.satisfied_by(set(&[CertificateSingleFactor])));
    assert!(passwordless.satisfied_by(set(&[AuthenticatorPasswordless])));
    assert!(!passwordless.satisfied_by(set(&[AuthenticatorPush])));
    assert!(pr.phishing_resistant_only());
    assert!(!passwordless.phishing_resistant_only());
    assert!(!mfa.phishing_resistant_only());
    // A combination naming a mode nobody can have is never met.
    let odd = Requirement::new("x", "odd", vec!["password,telepathy".into()]);
    assert!(!odd.satisfied_by(MethodKind::ALL.into_iter().collect()));
    // Two modes: both needed.
    let both = Requirement::new("y", "both", vec!["fido2,hardwareOath".into()]);
    assert!(!both.satisfied_by(set(&[Fido2SecurityKey])));
    assert!(both.satisfied_by(set(&[Fido2SecurityKey, HardwareOtp])));
    let met = pr.met_by();
    assert!(met.contains(Fido2SecurityKey) && met.contains(WindowsHello));
    assert!(!met.contains(AuthenticatorPush) && !met.contains(TemporaryAccessPass));
}

#[test]
fn a_policys_strength_is_inline_or_looked_up_by_id_or_built_in() {
    let mut s = Snapshot::empty("t", now());
    let mut p = policy("p");
    assert_eq!(
        requirements(&s, &p).map(|r| r.iter().map(|r| r.id.clone()).collect::<Vec<_>>()),
        Some(vec![BUILTIN_MFA.to_string()])
    );
    // Inline combinations.
    p.builtin_mfa = false;
    p.strength = Some(strength("custom-1", &["password,hardwareOath"]));
    let r = requirements(&s, &p).expect("inline");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].combinations, ["password,hardwareOath"]);
    // By id, from the strengths read.
    p.strength = Some(strength("custom-2", &[]));
    assert_eq!(requirements(&s, &p), None, "not found: not judged");
    s.strengths = Some(vec![AuthStrength {
        display_name: "Hardware tokens".into(),
        ..strength("CUSTOM-2", &["password,hardwareOath", "fido2"])
    }]);
    let r = requirements(&s, &p).expect("looked up");
    assert_eq!(r[0].name, "Hardware tokens");
    assert_eq!(r[0].combinations, ["password,hardwareOath", "fido2"]);
    // A built-in id without combinations and without the strengths read: the built-in table.
    s.strengths = None;
    p.strength = Some(strength("00000000-0000-0000-0000-000000000004", &[]));
    let r = requirements(&s, &p).expect("built in");
    assert_eq!(r[0].name, "Phishing resistant MFA");
    // Both the mfa control and a strength: both must be met.
    p.builtin_mfa = true;
    assert_eq!(requirements(&s, &p).map(|r| r.len()), Some(2));
}

fn snapshot_with(users: Vec<User>, policies: Vec<CaPolicy>) -> Snapshot {
    let mut s = Snapshot::empty("t", now());
    s.users = users;
    s.users.sort_by_key(|u| u.id);
    s.conditional_access = Some(policies);
    s.groups
        .insert(ADMINS.into(), vec![ObjectId(1), ObjectId(3)]);
    s
}

#[test]
fn a_policy_applies_by_users_guests_groups_and_active_roles_less_exclusions() {
    let mut admin = user(1, &[AuthenticatorPush]);
    admin.roles.insert(Role::GlobalAdministrator);
    let mut eligible = user(2, &[AuthenticatorPush]);
    eligible.eligible_roles.insert(Role::GlobalAdministrator);
    let member = user(3, &[AuthenticatorPush]);
    let mut guest = user(4, &[AuthenticatorPush]);
    guest.user_type = UserType::Guest;
    let s = snapshot_with(vec![admin, eligible, member, guest], vec![]);
    let u = |n: u128| s.user(ObjectId(n)).expect("user");
    let applies = |p: &CaPolicy, n: u128| policy_applies(&s, p, u(n), true);

    let all = policy("all");
    assert!((1..=4).all(|n| applies(&all, n) == Some(true)));

    let mut roles = policy("roles");
    roles.include_users = vec![];
    roles.include_roles = vec![GA.into()];
    assert_eq!(applies(&roles, 1), Some(true));
    assert_eq!(applies(&roles, 2), Some(false), "eligible is not active");
    assert_eq!(applies(&roles, 3), Some(false));
    assert_eq!(
        policy_applies(&s, &roles, u(3), false),
        None,
        "roles not read: undecided"
    );

    let mut guests = policy("guests");
    guests.include_users = vec![];
    guests.includes_guests = true;
    assert_eq!(applies(&guests, 4), Some(true));
    assert_eq!(applies(&guests, 3), Some(false));

    let mut groups = policy("groups");
    groups.include_users = vec![];
    groups.include_groups = vec![ADMINS.to_uppercase().into()];
    assert_eq!(applies(&groups, 3), Some(true));
    assert_eq!(applies(&groups, 2), Some(false));
    groups.include_groups.push(UNREAD.into());
    assert_eq!(
        applies(&groups, 3),
        Some(true),
        "one known include suffices"
    );
    assert_eq!(applies(&groups, 2), None, "an unread group: undecided");

    let mut ex = policy("exclusions");
    ex.exclude_users = vec![ObjectId(2).to_string().into()];
    ex.excludes_guests = true;
    ex.exclude_groups = vec![ADMINS.into()];
    assert_eq!(applies(&ex, 1), Some(false), "excluded by group");
    assert_eq!(applies(&ex, 2), Some(false), "excluded by id");
    assert_eq!(applies(&ex, 4), Some(false), "guests excluded");
    let mut ex_role = policy("exclude role");
    ex_role.exclude_roles = vec![GA.into()];
    assert_eq!(applies(&ex_role, 1), Some(false));
    assert_eq!(applies(&ex_role, 2), Some(true));
    let mut ex_unread = policy("exclude unread");
    ex_unread.exclude_groups = vec![UNREAD.into()];
    assert_eq!(applies(&ex_unread, 3), None);

    // A role this audit does not track: whether anyone holds it is unknown.
    let mut untracked = policy("untracked role");
    untracked.exclude_roles = vec!["69091246-20e8-4a56-aa4d-066075b2a7a8".into()];
    assert_eq!(applies(&untracked, 3), None);
    untracked.include_users = vec![];
    untracked.exclude_roles = vec![];
    untracked.include_roles = vec!["69091246-20e8-4a56-aa4d-066075b2a7a8".into(), GA.into()];
    assert_eq!(applies(&untracked, 1), Some(true), "a tracked role decides");
    assert_eq!(applies(&untracked, 3), None);

    let mut optional = policy("optional");
    optional.mfa_is_optional = true;
    assert_eq!(applies(&optional, 1), Some(false));
    let mut no_mfa = policy("block");
    no_mfa.requires_mfa = false;
    no_mfa.builtin_mfa = false;
    assert_eq!(applies(&no_mfa, 1), Some(false));
}

fn config(id: &str, enabled: bool, include: &[&str]) -> MethodConfig {
    MethodConfig {
        id: id.into(),
        enabled,
        include_targets: include.iter().map(|s| (*s).into()).collect(),
        exclude_targets: vec![],
    }
}

#[test]
fn policy_allowed_methods_follow_the_methods_policy_its_unknowns_and_its_migration() {
    let u = user(
        3,
        &[
            MobilePhone,
            HardwareOtp,
            SoftwareOtp,
            Email,
            TemporaryAccessPass,
        ],
    );
    let mut s = snapshot_with(vec![u.clone()], vec![]);
    // No methods policy read: every MFA-capable registered method counts.
    let m = policy_allowed_methods(&s, &u, u.methods.expect("methods"));
    assert_eq!(m.allowed, set(&[MobilePhone, HardwareOtp, SoftwareOtp]));
    s.methods_policy = Some(crate::snapshot::MethodsPolicy {
        migration_state: "migrationComplete".into(),
        registration_campaign: crate::snapshot::FeatureState::Enabled,
        system_preferred_mfa: None,
        methods: vec![
            config("Sms", false, &["all_users"]),
            config("Voice", true, &[ADMINS]),
            config("HardwareOath", false, &["all_users"]),
            config("SoftwareOath", true, &[UNREAD]),
        ],
        tap: None,
        authenticator: None,
        report_suspicious_activity: None,
        fido2: None,
    });
    let m = policy_allowed_methods(&s, &u, u.methods.expect("methods"));
    // Voice through the admins group; software OATH through a group not read (unknown: allowed).
    assert_eq!(m.allowed, set(&[MobilePhone, SoftwareOtp]));
    assert_eq!(m.not_allowed.len(), 1);
    assert_eq!(m.not_allowed[0].0, HardwareOtp);
    assert!(m
        .describe()
        .contains("hardwareOneTimePasscode (HardwareOath is disabled)"));
    // While the migration is incomplete, the legacy policy may allow what this one does not.
    if let Some(p) = s.methods_policy.as_mut() {
        p.migration_state = "migrationInProgress".into();
    }
    let m = policy_allowed_methods(&s, &u, u.methods.expect("methods"));
    assert_eq!(m.allowed, set(&[MobilePhone, HardwareOtp, SoftwareOtp]));
}

#[test]
fn predicted_lockouts_count_per_policy_the_users_it_applies_to_and_locks_out() {
    let mut admin_push = user(1, &[AuthenticatorPush]);
    admin_push.roles.insert(Role::GlobalAdministrator);
    let mut admin_key = user(2, &[Fido2SecurityKey]);
    admin_key.roles.insert(Role::GlobalAdministrator);
    let member = user(3, &[MobilePhone]);
    let nothing = user(4, &[Email]);
    let mut pr = policy("Admins phishing-resistant");
    pr.include_users = vec![];
    pr.include_roles = vec![GA.into()];
    pr.builtin_mfa = false;
    pr.strength = Some(strength("00000000-0000-0000-0000-000000000004", &[]));
    let mut report_only = policy("Everyone passwordless");
    report_only.state = STATE_REPORT_ONLY.into();
    report_only.builtin_mfa = false;
    report_only.strength = Some(strength("00000000-0000-0000-0000-000000000003", &[]));
    let mut off = policy("Off");
    off.state = "disabled".into();
    let mut nobody = policy("Nobody");
    nobody.include_users = vec!["None".into()];
    let mut groups = policy("Unread group");
    groups.include_users = vec![];
    groups.include_groups = vec![UNREAD.into()];
    let s = snapshot_with(
        vec![admin_push, admin_key, member, nothing],
        vec![pr, report_only, off, nobody, groups, policy("MFA for all")],
    );
    let users: Vec<&User> = s.users.iter().collect();
    let got = predict_lockouts(&s, &users);
    let row = |name: &str| got.iter().find(|c| c.policy == name).cloned();
    let pr = row("Admins phishing-resistant").expect("pr");
    assert_eq!(
        (pr.applies_to, pr.locked_out, pr.state.as_str()),
        (2, 1, "enabled")
    );
    let ro = row("Everyone passwordless").expect("report-only");
    assert_eq!(
        (ro.applies_to, ro.locked_out, ro.state.as_str()),
        (4, 2, STATE_REPORT_ONLY),
        "push and phone; the email-only user is sent to registration, not locked out"
    );
    let all = row("MFA for all").expect("all");
    assert_eq!(
        (all.applies_to, all.locked_out),
        (4, 0),
        "everyone with a method meets MFA; the email-only user registers"
    );
    assert_eq!(row("Off"), None, "disabled policies are not judged");
    assert_eq!(row("Nobody"), None, "applies to no one");
    assert_eq!(row("Unread group"), None, "undecided for everyone");
    // Without the roles, the role policy is undecided.
    let mut no_roles = s.clone();
    no_roles.coverage.gaps.insert(
        DataSet::Roles,
        Gap::MissingPermission("RoleManagement.Read.Directory".into()),
    );
    let got = predict_lockouts(&no_roles, &users);
    assert!(got.iter().all(|c| c.policy != "Admins phishing-resistant"));
}
