use super::*;
use crate::state::StoredMethod;
use chrono::TimeZone;

const BOB: &str = "00000000-0000-0000-0000-000000000b0b";

fn t() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 10, 0, 0)
        .single()
        .expect("valid")
}

fn method(k: MethodKind) -> StoredMethod {
    let info = &METHOD_TABLE[k as usize];
    StoredMethod {
        name: info.name,
        description: info.description,
        mfa_capable: info.mfa_capable,
        phishing_resistant: info.phishing_resistant,
        family: info.family.as_str(),
    }
}

fn user(upn: &str, methods: Option<Vec<MethodKind>>) -> StoredUser {
    StoredUser {
        id: BOB.into(),
        user_principal_name: upn.into(),
        display_name: "Bob".into(),
        user_type: "member",
        account_enabled: true,
        on_premises_sync: false,
        is_admin: false,
        methods: methods
            .as_ref()
            .map(|m| m.iter().map(|k| method(*k)).collect()),
        mfa_families: None,
        phishing_resistant: Some(false),
        unknown_methods: 0,
        default_method: None,
        system_preferred_mfa: None,
        mfa_capable: Some(true),
        roles: vec![],
        eligible_roles: vec![],
        tap: None,
        per_user_mfa: None,
        mfa_failures: None,
        first_seen: t(),
        changed_at: t(),
        audit_id: 1,
        deleted_at: None,
    }
}

fn event(activity: SecurityInfoActivity, method: Option<&str>) -> SecurityInfoEvent {
    SecurityInfoEvent {
        id: "e1".into(),
        created: t(),
        activity,
        activity_name: "User deleted security info".into(),
        by_admin: false,
        initiated_by: "bob@contoso.com".into(),
        user: ObjectId::parse(BOB).expect("id"),
        upn: "bob@contoso.com".into(),
        method: method.map(Into::into),
    }
}

#[test]
fn a_deleted_phone_leaving_only_the_authenticator_is_notable_in_the_users_words() {
    let bob = user(
        "bob@contoso.com",
        Some(vec![MethodKind::AuthenticatorPush, MethodKind::MobilePhone]),
    );
    let n = note_security_event(
        event(SecurityInfoActivity::Deleted, Some("Mobile Phone SMS")),
        Some(&bob),
        &[],
    );
    assert_eq!(n.notable, Some(Severity::Medium));
    assert_eq!(
        n.detail,
        "bob@contoso.com deleted Mobile phone (Mobile Phone SMS); bob@contoso.com now has no backup method: only Microsoft Authenticator"
    );
    // Graph's generic "Phone method" means every phone: with an office phone left as the only
    // other family, still no backup.
    let carol = user(
        "bob@contoso.com",
        Some(vec![
            MethodKind::AuthenticatorPush,
            MethodKind::MobilePhone,
            MethodKind::OfficePhone,
        ]),
    );
    let n = note_security_event(
        event(SecurityInfoActivity::Deleted, Some("Phone method")),
        Some(&carol),
        &[],
    );
    assert_eq!(n.notable, Some(Severity::Medium), "{}", n.detail);
}

#[test]
fn a_deletion_that_leaves_a_backup_or_is_not_mfa_is_kept_not_notable() {
    let bob = user(
        "bob@contoso.com",
        Some(vec![
            MethodKind::AuthenticatorPush,
            MethodKind::MobilePhone,
            MethodKind::Fido2SecurityKey,
        ]),
    );
    let n = note_security_event(
        event(SecurityInfoActivity::Deleted, Some("Mobile Phone SMS")),
        Some(&bob),
        &[],
    );
    assert_eq!(n.notable, None);
    assert!(n.detail.contains("still has"), "{}", n.detail);
    let lone = user("bob@contoso.com", Some(vec![MethodKind::AuthenticatorPush]));
    let n = note_security_event(
        event(SecurityInfoActivity::Deleted, Some("Email")),
        Some(&lone),
        &[],
    );
    assert_eq!(n.notable, None, "an email is no MFA method");
    // Unknown methods: nothing to judge from.
    let n = note_security_event(
        event(SecurityInfoActivity::Deleted, Some("Mobile Phone SMS")),
        Some(&user("bob@contoso.com", None)),
        &[],
    );
    assert_eq!(n.notable, None);
}

#[test]
fn deleting_the_last_method_is_high() {
    let bob = user("bob@contoso.com", Some(vec![MethodKind::MobilePhone]));
    let n = note_security_event(
        event(SecurityInfoActivity::Deleted, Some("Mobile Phone SMS")),
        Some(&bob),
        &[],
    );
    assert_eq!(n.notable, Some(Severity::High));
    assert!(n.detail.contains("no MFA method at all"), "{}", n.detail);
}

#[test]
fn registrations_on_admins_and_break_glass_and_their_taps_are_notable() {
    let plain = user("bob@contoso.com", Some(vec![MethodKind::AuthenticatorPush]));
    let registered = event(
        SecurityInfoActivity::Registered,
        Some("Microsoft Authenticator"),
    );
    assert_eq!(
        note_security_event(registered.clone(), Some(&plain), &[]).notable,
        None
    );
    let mut eligible = plain.clone();
    eligible.eligible_roles = vec!["Global Administrator"];
    let n = note_security_event(registered.clone(), Some(&eligible), &[]);
    assert_eq!(n.notable, Some(Severity::High));
    assert!(n.detail.contains("Global Administrator"), "{}", n.detail);
    let n = note_security_event(registered, Some(&plain), &["BOB@contoso.com".to_string()]);
    assert_eq!(n.notable, Some(Severity::High));
    assert!(n.detail.contains("break-glass"), "{}", n.detail);
    let mut tap = event(
        SecurityInfoActivity::TapIssued,
        Some("temporary access pass"),
    );
    tap.by_admin = true;
    tap.initiated_by = "helpdesk@contoso.com".into();
    assert_eq!(
        note_security_event(tap.clone(), Some(&plain), &[]).notable,
        None
    );
    let mut admin = plain.clone();
    admin.roles = vec!["User Administrator"];
    let n = note_security_event(tap, Some(&admin), &[]);
    assert_eq!(n.notable, Some(Severity::High));
    assert!(n
        .detail
        .starts_with("helpdesk@contoso.com (admin) for bob@contoso.com"));
}

#[test]
fn admins_who_can_reset_mfa_are_the_enabled_active_holders_of_three_roles() {
    let mut ga = user("ga@contoso.com", None);
    ga.roles = vec!["Global Administrator"];
    let mut aa = user("aa@contoso.com", None);
    aa.roles = vec!["Authentication Administrator"];
    let mut disabled = user("off@contoso.com", None);
    disabled.roles = vec!["Global Administrator"];
    disabled.account_enabled = false;
    let mut eligible = user("pim@contoso.com", None);
    eligible.eligible_roles = vec!["Global Administrator"];
    let mut helpdesk = user("hd@contoso.com", None);
    helpdesk.roles = vec!["Helpdesk Administrator"];
    let admins = recovery_admins(&[ga, aa, disabled, eligible, helpdesk]);
    let upns: Vec<&str> = admins.iter().map(|a| a.upn.as_str()).collect();
    assert_eq!(upns, vec!["aa@contoso.com", "ga@contoso.com"]);
}

#[test]
fn the_tap_policy_comes_from_the_published_posture_without_targets() {
    let mut record = PostureRecord::default();
    assert_eq!(tap_readiness(&record), None);
    record.tap_policy_enabled = Some(true);
    record.tap_policy_usable_once = Some(true);
    record
        .tap_policy_lifetime_minutes
        .insert("maximum".into(), 60);
    let t = tap_readiness(&record).expect("known");
    assert!(t.enabled && t.usable_once_only);
    assert_eq!((t.user_in_targets, t.max_lifetime_minutes), (None, 60));
}

#[test]
fn remediation_is_the_first_step_with_its_command() {
    let bob = user("bob@contoso.com", Some(vec![MethodKind::AuthenticatorPush]));
    let d = super::super::Detection {
        user: ObjectId::parse(BOB).expect("id"),
        upn: "bob@contoso.com".into(),
        state: super::super::LockoutState::LockedOut,
        codes: vec![(500121, 6)],
        first_seen: t(),
        last_seen: t(),
        detail: String::new(),
    };
    let tap = TapReadiness {
        enabled: true,
        user_in_targets: None,
        max_lifetime_minutes: 60,
        usable_once_only: false,
    };
    let plan = super::super::recovery::plan(&d, &posture(Some(&bob), Some(&tap), &[], None));
    let text = remediation(&plan);
    assert!(
        text.contains(
            "New-MgUserAuthenticationTemporaryAccessPassMethod -UserId 'bob@contoso.com'"
        ),
        "{text}"
    );
    // No TAP: the first step is no longer the pass.
    let plan = super::super::recovery::plan(&d, &posture(Some(&bob), None, &[], None));
    assert!(!remediation(&plan).contains("TemporaryAccessPass"));
}

#[test]
fn drift_notes_lost_families_and_is_notable_without_a_backup() {
    let change = |lost: Vec<&'static str>, after: Option<usize>| UserChange {
        user_id: BOB.into(),
        audit_id: 7,
        at: t(),
        methods_before: None,
        methods_after: None,
        families_lost: lost,
        families_gained: vec![],
        mfa_families_after: after,
        roles_before: vec![],
        roles_after: vec![],
        eligible_before: vec![],
        eligible_after: vec![],
    };
    let upn = |_: &str| Some("bob@contoso.com".to_string());
    let events = drift_events(
        7,
        t(),
        &[
            change(vec!["mobile-number"], Some(1)),
            change(vec![], Some(1)),
            change(vec!["office-phone"], Some(2)),
        ],
        &upn,
    );
    assert_eq!(events.len(), 2, "only users who lost a family");
    assert_eq!(&*events[0].event.id, format!("drift:7:{BOB}"));
    assert_eq!(events[0].event.activity, SecurityInfoActivity::Other);
    assert_eq!(
        events[0].detail,
        "bob@contoso.com lost Mobile phone since the previous audit; now no backup method"
    );
    assert_eq!(events[0].notable, Some(Severity::Medium));
    assert_eq!(events[1].notable, None);
}
