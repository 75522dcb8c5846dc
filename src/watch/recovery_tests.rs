use super::*;
use crate::snapshot::ObjectId;
use chrono::{TimeZone, Utc};

const UPN: &str = "bob@contoso.com";

fn user(families: Option<Vec<&'static str>>) -> StoredUser {
    let t = Utc
        .with_ymd_and_hms(2026, 12, 1, 9, 0, 0)
        .single()
        .expect("valid");
    StoredUser {
        id: "00000000-0000-0000-0000-000000000b0b".into(),
        user_principal_name: UPN.into(),
        display_name: "Bob".into(),
        user_type: "member",
        account_enabled: true,
        on_premises_sync: false,
        is_admin: false,
        methods: None,
        mfa_families: families,
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
        first_seen: t,
        changed_at: t,
        audit_id: 1,
        deleted_at: None,
    }
}

fn detection(state: LockoutState, codes: Vec<(i32, u32)>) -> Detection {
    let t = Utc
        .with_ymd_and_hms(2026, 12, 3, 10, 0, 0)
        .single()
        .expect("valid");
    Detection {
        user: ObjectId(0xb0b),
        upn: UPN.into(),
        state,
        codes,
        first_seen: t,
        last_seen: t,
        detail: String::new(),
    }
}

fn tap(enabled: bool, targets: Option<bool>) -> Option<TapReadiness> {
    Some(TapReadiness {
        enabled,
        user_in_targets: targets,
        max_lifetime_minutes: 480,
        usable_once_only: false,
    })
}

fn admins() -> Vec<RecoveryAdmin> {
    vec![
        RecoveryAdmin {
            upn: "helpdesk@contoso.com".into(),
            display_name: "Helpdesk".into(),
        },
        RecoveryAdmin {
            upn: UPN.into(),
            display_name: "Bob".into(),
        },
    ]
}

fn is_tap(s: &Step) -> bool {
    s.command
        .starts_with("New-MgUserAuthenticationTemporaryAccessPassMethod")
}

fn destructive_last_with_warning(r: &Recovery) {
    let first = r
        .steps
        .iter()
        .position(|s| s.destructive)
        .unwrap_or(r.steps.len());
    assert!(
        r.steps[first..]
            .iter()
            .all(|s| s.destructive && s.warning.is_some()),
        "{:#?}",
        r.steps
    );
}

#[test]
fn locked_out_with_tap_starts_with_a_one_time_short_tap() {
    let u = user(Some(vec!["mobile-app", "mobile-number"]));
    let p = Posture {
        user: Some(&u),
        tap: tap(true, Some(true)),
        admins: admins(),
        mfa_exclusion_group: None,
    };
    let r = plan(&detection(LockoutState::LockedOut, vec![(500121, 6)]), &p);
    assert_eq!(
        r.families,
        vec![RecoveryFamily::MobileApp, RecoveryFamily::MobileNumber]
    );
    assert!(r.tap.usable);
    assert_eq!(
        r.steps[0].command,
        "New-MgUserAuthenticationTemporaryAccessPassMethod -UserId 'bob@contoso.com' -IsUsableOnce:$true -LifetimeInMinutes 60"
    );
    // Graph is called by object id (a guest's UPN holds a `#`), the command by UPN.
    assert_eq!(
        r.steps[0].graph.as_deref(),
        Some("POST https://graph.microsoft.com/v1.0/users/00000000-0000-0000-0000-000000000b0b/authentication/temporaryAccessPassMethods {\"isUsableOnce\": true, \"lifetimeInMinutes\": 60}")
    );
    assert!(r
        .steps
        .iter()
        .filter_map(|s| s.graph.as_deref())
        .all(|g| !g.contains(UPN)));
    assert!(
        r.steps[1].title.contains("another method")
            && r.steps[1].title.contains("mobile-app, mobile-number")
    );
    assert!(
        r.steps[2].command.contains("-PhoneType alternateMobile"),
        "has a mobile number already"
    );
    assert!(r.steps[3].destructive && r.steps[3].command.contains("Remove-MgUserAuthentication"));
    assert_eq!(
        r.steps.len(),
        4,
        "no disable-MFA step without per-user MFA or an exclusion group"
    );
    destructive_last_with_warning(&r);
    assert_eq!(
        r.admins.len(),
        1,
        "the user is not their own recovery admin"
    );
    assert!(r.notes.is_empty(), "{:?}", r.notes);
}

#[test]
fn no_tap_when_disabled_or_outside_targets_and_a_short_lifetime_policy_is_kept() {
    let u = user(Some(vec!["mobile-app"]));
    for (t, reason) in [
        (tap(false, Some(true)), "disabled"),
        (tap(true, Some(false)), "outside the TAP policy's targets"),
        (None, "not known"),
    ] {
        let p = Posture {
            user: Some(&u),
            tap: t,
            admins: admins(),
            mfa_exclusion_group: None,
        };
        let r = plan(&detection(LockoutState::LockedOut, vec![(500121, 3)]), &p);
        assert!(
            !r.tap.usable && r.tap.reason.contains(reason),
            "{:?}",
            r.tap
        );
        assert!(!r.steps.iter().any(is_tap), "{reason}");
        assert!(
            r.steps[0].title.starts_with("Add a backup phone"),
            "one family: nothing else to use"
        );
        assert!(r.steps[0].command.contains("-PhoneType mobile "));
    }
    let mut t = tap(true, None);
    if let Some(t) = t.as_mut() {
        t.max_lifetime_minutes = 30;
    }
    let p = Posture {
        user: Some(&u),
        tap: t,
        admins: vec![],
        mfa_exclusion_group: None,
    };
    let r = plan(&detection(LockoutState::LockedOut, vec![(500121, 3)]), &p);
    assert!(r.tap.usable && r.tap.reason.contains("not known"));
    assert!(r.steps[0].command.ends_with("-LifetimeInMinutes 30"));
    assert!(r.notes.iter().any(|n| n.contains("break-glass")));
}

#[test]
fn fraud_never_starts_with_a_tap() {
    let mut u = user(Some(vec!["mobile-app", "mobile-number"]));
    u.on_premises_sync = true;
    let p = Posture {
        user: Some(&u),
        tap: tap(true, Some(true)),
        admins: admins(),
        mfa_exclusion_group: None,
    };
    let r = plan(
        &detection(LockoutState::MfaFraudReported, vec![(500121, 1)]),
        &p,
    );
    let titles: Vec<&str> = r.steps.iter().map(|s| s.title.as_str()).collect();
    assert!(
        titles[0].starts_with("Confirm with bob@contoso.com out of band"),
        "{titles:?}"
    );
    assert!(r.steps[1]
        .command
        .starts_with("Update-MgUser -UserId 'bob@contoso.com' -PasswordProfile"));
    assert!(r.steps[1]
        .warning
        .as_deref()
        .is_some_and(|w| w.contains("on-premises")));
    assert_eq!(
        r.steps[2].command,
        "Revoke-MgUserSignInSession -UserId 'bob@contoso.com'"
    );
    assert!(r.steps[3]
        .command
        .starts_with("Invoke-MgDismissRiskyUser -UserIds '00000000-0000-0000-0000-000000000b0b'"));
    let tap_at = r
        .steps
        .iter()
        .position(is_tap)
        .expect("a TAP, after verification");
    assert!(tap_at > 2, "after confirm, reset and revoke");
    assert!(r.steps[tap_at]
        .title
        .starts_with("Only after identity is verified"));
    assert!(r.steps[tap_at]
        .warning
        .as_deref()
        .is_some_and(|w| w.starts_with("Never before")));
    destructive_last_with_warning(&r);
}

#[test]
fn prompt_bombing_resets_and_revokes_and_never_issues_a_tap() {
    let u = user(Some(vec!["mobile-app"]));
    let p = Posture {
        user: Some(&u),
        tap: tap(true, Some(true)),
        admins: admins(),
        mfa_exclusion_group: Some("11111111-2222-3333-4444-555555555555".into()),
    };
    let r = plan(
        &detection(LockoutState::MfaPromptBombing, vec![(500121, 5)]),
        &p,
    );
    assert!(!r.steps.iter().any(is_tap));
    assert!(r.steps[0]
        .warning
        .as_deref()
        .is_some_and(|w| w.contains("Do not ask the user to approve")));
    assert!(r.steps[1].title.starts_with("Reset"));
    assert!(r.steps[2].command.starts_with("Revoke-MgUserSignInSession"));
    assert!(r.steps[3]
        .command
        .contains("displayLocationInformationRequiredState"));
    assert!(
        r.steps.iter().all(|s| !s.destructive),
        "nothing destructive for an attack the user resists"
    );
}

#[test]
fn registration_blocked_gets_a_tap_to_register_and_risk_first_for_53004() {
    let u = user(Some(vec![]));
    let p = Posture {
        user: Some(&u),
        tap: tap(true, Some(true)),
        admins: admins(),
        mfa_exclusion_group: None,
    };
    let r = plan(
        &detection(LockoutState::RegistrationBlocked, vec![(50079, 2)]),
        &p,
    );
    assert!(is_tap(&r.steps[0]) && r.steps[0].title.contains("to register"));
    let r = plan(
        &detection(LockoutState::RegistrationBlocked, vec![(53004, 2)]),
        &p,
    );
    assert!(r.steps[0].title.contains("53004"));
    assert!(r.steps[1].command.starts_with("Invoke-MgDismissRiskyUser"));
    assert!(is_tap(&r.steps[2]));
}

#[test]
fn disabling_mfa_is_a_flagged_last_resort_only_where_it_applies() {
    let mut u = user(Some(vec!["mobile-app"]));
    u.per_user_mfa = Some("enforced");
    u.is_admin = true;
    u.roles = vec!["Global Administrator"];
    let p = Posture {
        user: Some(&u),
        tap: tap(true, Some(true)),
        admins: admins(),
        mfa_exclusion_group: None,
    };
    let r = plan(&detection(LockoutState::LockedOut, vec![(50088, 3)]), &p);
    let last = r.steps.last().expect("steps");
    assert!(last.destructive && last.command == "Update-MgBetaUserAuthenticationRequirement -UserId 'bob@contoso.com' -PerUserMfaState disabled");
    assert!(last
        .warning
        .as_deref()
        .is_some_and(|w| w.starts_with("LAST RESORT")));
    destructive_last_with_warning(&r);
    assert!(r.notes.iter().any(|n| n.contains("Global Administrator")));
    assert!(r
        .notes
        .iter()
        .any(|n| n.starts_with("50088: the user's SMS and voice calls are throttled")));
    // Through an exclusion group when per-user MFA does not apply.
    u.per_user_mfa = Some("disabled");
    let p = Posture {
        user: Some(&u),
        tap: None,
        admins: admins(),
        mfa_exclusion_group: Some("g1".into()),
    };
    let r = plan(&detection(LockoutState::LockedOut, vec![(50088, 3)]), &p);
    assert!(
        r.steps.last().is_some_and(
            |s| s.destructive && s.command.starts_with("New-MgGroupMember -GroupId 'g1'")
        )
    );
    // A user unknown to the store: still a plan, with a note.
    let p = Posture {
        user: None,
        tap: tap(true, Some(true)),
        admins: admins(),
        mfa_exclusion_group: None,
    };
    let r = plan(&detection(LockoutState::LockedOut, vec![(50088, 3)]), &p);
    assert!(!r.families_known && is_tap(&r.steps[0]));
    assert!(r.notes.iter().any(|n| n.contains("not in the last audit")));
    // A UPN with a quote is quoted for PowerShell.
    let mut d = detection(LockoutState::LockedOut, vec![(50088, 3)]);
    d.upn = "o'neil@contoso.com".into();
    let r = plan(&d, &p);
    assert!(r.steps[0].command.contains("-UserId 'o''neil@contoso.com'"));
    assert!(serde_json::to_string(&r).is_ok_and(|j| j.contains("\"families\":[]")));
}

#[test]
fn a_user_without_a_detection_gets_the_would_be_lockout_plan() {
    let mut u = user(Some(vec!["mobile-app", "mobile-number"]));
    u.per_user_mfa = Some("enforced");
    let p = Posture {
        user: None,
        tap: tap(true, None),
        admins: admins(),
        mfa_exclusion_group: None,
    };
    let r = plan_for_user(&u, &p).expect("plan");
    let as_lockout = plan(
        &detection(LockoutState::LockedOut, vec![]),
        &Posture {
            user: Some(&u),
            ..p.clone()
        },
    );
    assert_eq!(r, as_lockout);
    // TAP first, another family, backup phone, then the destructive ones, last.
    assert!(is_tap(&r.steps[0]), "{:#?}", r.steps);
    assert!(
        r.steps[1].title.contains("another method"),
        "{:#?}",
        r.steps
    );
    assert!(r.steps[2]
        .command
        .starts_with("New-MgUserAuthenticationPhoneMethod"));
    assert!(r.steps[3].destructive && r.steps[4].destructive);
    assert!(r.steps[4].command.contains("-PerUserMfaState disabled"));
    destructive_last_with_warning(&r);
    assert_eq!(r.admins.len(), 1, "never the user themself");
    let mut bad = u.clone();
    bad.id = "not-an-id".into();
    assert!(plan_for_user(&bad, &p).is_none());
}
