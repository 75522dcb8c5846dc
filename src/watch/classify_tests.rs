use super::*;
use crate::watch::AuthStep;
use chrono::TimeZone;

const BOB: ObjectId = ObjectId(0xb0b);
const ANN: ObjectId = ObjectId(0xa22);

fn t(min: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 10, 0, 0)
        .single()
        .expect("valid")
        + Duration::minutes(min)
}

fn ev(id: &str, user: ObjectId, min: i64, code: i32, steps: Vec<AuthStep>) -> SignInEvent {
    SignInEvent {
        id: id.into(),
        created: t(min),
        user,
        upn: if user == BOB {
            "bob@contoso.com".into()
        } else {
            "ann@contoso.com".into()
        },
        error_code: code,
        reason: "".into(),
        mfa_required: true,
        steps,
    }
}

fn step(method: &str, ok: bool, detail: &str) -> AuthStep {
    AuthStep {
        method: method.into(),
        succeeded: ok,
        detail: detail.into(),
    }
}

fn fail(id: &str, min: i64) -> SignInEvent {
    ev(
        id,
        BOB,
        min,
        500121,
        vec![step(
            "Text message",
            false,
            "MFA denied; user entered incorrect code",
        )],
    )
}

fn ok(id: &str, min: i64) -> SignInEvent {
    ev(
        id,
        BOB,
        min,
        0,
        vec![step("Text message", true, "MFA successfully completed")],
    )
}

fn push(id: &str, min: i64, declined: bool) -> SignInEvent {
    let d = if declined {
        "MFA denied; user declined the authentication"
    } else {
        "MFA denied; user did not respond to mobile app notification"
    };
    ev(
        id,
        BOB,
        min,
        500121,
        vec![step("Mobile app notification", false, d)],
    )
}

fn fraud(id: &str, min: i64, detail: &str) -> SignInEvent {
    ev(
        id,
        BOB,
        min,
        500121,
        vec![step("Mobile app notification", false, detail)],
    )
}

fn opened(c: &[Change]) -> Vec<LockoutState> {
    c.iter()
        .filter_map(|c| match c {
            Change::Opened(d) => Some(d.state),
            _ => None,
        })
        .collect()
}

fn resolved(c: &[Change]) -> Vec<(LockoutState, DateTime<Utc>)> {
    c.iter()
        .filter_map(|c| match c {
            Change::Resolved { state, at, .. } => Some((*state, *at)),
            _ => None,
        })
        .collect()
}

fn states(c: &Classifier) -> Vec<LockoutState> {
    let mut v: Vec<_> = c.open().map(|d| d.state).collect();
    v.sort();
    v
}

#[test]
fn locked_out_opens_on_exactly_the_threshold_and_resolves_on_success() {
    let mut c = Classifier::new(Thresholds::default());
    assert!(c.observe(&fail("1", 0)).is_empty());
    assert!(
        c.observe(&fail("2", 1)).is_empty(),
        "two failures are one below the threshold"
    );
    let ch = c.observe(&fail("3", 2));
    assert_eq!(opened(&ch), vec![LockoutState::LockedOut]);
    let d = c.open().next().expect("open");
    assert_eq!(d.codes, vec![(500121, 3)]);
    assert_eq!(d.first_seen, t(0));
    assert_eq!(d.upn.as_ref(), "bob@contoso.com");
    assert!(
        d.detail
            .starts_with("3 failed MFA sign-ins (500121 ×3) from 2026-12-03 10:00 to 10:02 UTC"),
        "{}",
        d.detail
    );
    // A fourth updates, not reopens.
    let ch = c.observe(&ev("4", BOB, 3, 50088, vec![]));
    assert!(
        matches!(&ch[..], [Change::Updated(d)] if d.codes == vec![(50088, 1), (500121, 3)]),
        "{ch:?}"
    );
    // A success resolves it.
    let ch = c.observe(&ok("5", 4));
    assert_eq!(resolved(&ch), vec![(LockoutState::LockedOut, t(4))]);
    assert_eq!(c.open().count(), 0);
    // One more failure after the success is not a lockout.
    assert!(opened(&c.observe(&fail("6", 5))).is_empty());
}

#[test]
fn failures_outside_the_window_do_not_lock_out() {
    let th = Thresholds {
        window: Duration::minutes(30),
        ..Thresholds::default()
    };
    let mut c = Classifier::new(th);
    c.observe(&fail("1", 0));
    c.observe(&fail("2", 20));
    assert!(
        opened(&c.observe(&fail("3", 31))).is_empty(),
        "3 failures over 31 min > window 30"
    );
    assert_eq!(
        opened(&c.observe(&fail("4", 35))),
        vec![LockoutState::LockedOut]
    );
    let d = c.open().next().expect("open");
    assert_eq!(d.first_seen, t(20), "the run that reached the threshold");
    assert_eq!(d.codes, vec![(500121, 3)]);
}

#[test]
fn a_single_factor_success_does_not_resolve() {
    let mut c = Classifier::new(Thresholds::default());
    for (i, m) in [("1", 0), ("2", 1), ("3", 2)] {
        c.observe(&fail(i, m));
    }
    let mut s = ok("4", 3);
    s.mfa_required = false;
    assert!(c.observe(&s).is_empty());
    assert_eq!(states(&c), vec![LockoutState::LockedOut]);
}

#[test]
fn duplicates_count_once_and_out_of_order_gives_the_same_result() {
    let mut c = Classifier::new(Thresholds::default());
    c.observe(&fail("1", 0));
    c.observe(&fail("1", 0));
    assert!(c.observe(&fail("2", 2)).is_empty());
    assert!(
        c.observe(&fail("2", 2)).is_empty(),
        "a duplicate is not a third failure"
    );
    assert_eq!(c.open().count(), 0);
    // Out of order: the third arrives with an earlier time.
    assert_eq!(
        opened(&c.observe(&fail("3", 1))),
        vec![LockoutState::LockedOut]
    );
    assert_eq!(c.open().next().map(|d| d.first_seen), Some(t(0)));
    // Duplicate of an event in the open detection: no change.
    assert!(c.observe(&fail("3", 1)).is_empty());
    // A late success older than the detection does not resolve it.
    let mut ann_ok = ok("0", -5);
    ann_ok.user = BOB;
    assert!(resolved(&c.observe(&ann_ok)).is_empty());
    assert_eq!(c.open().count(), 1);
    // A late success between the failures resolves it (there was a success since the first).
    assert_eq!(resolved(&c.observe(&ok("s", 1))).len(), 1);
    assert_eq!(c.open().count(), 0);
    // observe_all sorts: the same sign-ins shuffled give the same open set.
    let evs = [fail("a", 10), fail("b", 11), ok("c", 12), fail("d", 13)];
    let mut x = Classifier::new(Thresholds::default());
    let mut y = Classifier::new(Thresholds::default());
    let cx = x.observe_all(evs.iter());
    let cy = y.observe_all(evs.iter().rev());
    assert_eq!(cx, cy);
    assert_eq!(x.open().count(), 0);
}

#[test]
fn fraud_opens_on_one_event_with_each_microsoft_wording() {
    for detail in [
        "MFA denied; user reported fraud",
        "MFA denied; Phone App Reported Fraud",
        "Fraud code entered",
    ] {
        let mut c = Classifier::new(Thresholds::default());
        let ch = c.observe(&fraud("1", 0, detail));
        assert_eq!(
            opened(&ch),
            vec![LockoutState::MfaFraudReported],
            "{detail}"
        );
        let d = c.open().next().expect("open");
        assert!(
            d.detail.contains(detail) && d.detail.contains("500121 ×1"),
            "{}",
            d.detail
        );
    }
    // A declined push is not fraud.
    let mut c = Classifier::new(Thresholds::default());
    assert!(c.observe(&push("1", 0, true)).is_empty());
}

#[test]
fn fraud_after_a_success_opens_and_a_later_success_resolves() {
    let mut c = Classifier::new(Thresholds::default());
    c.observe(&fail("0", 0));
    c.observe(&ok("1", 1));
    assert_eq!(
        opened(&c.observe(&fraud("2", 2, "MFA denied; user reported fraud"))),
        vec![LockoutState::MfaFraudReported]
    );
    // Fraud does not count as a lockout failure.
    assert_eq!(states(&c), vec![LockoutState::MfaFraudReported]);
    assert_eq!(
        resolved(&c.observe(&ok("3", 3))),
        vec![(LockoutState::MfaFraudReported, t(3))]
    );
    // A fraud report older than a success already seen opens nothing.
    assert!(c.observe(&fraud("4", 2, "Fraud code entered")).is_empty());
}

#[test]
fn registration_blocked_opens_at_two_and_not_one() {
    let mut c = Classifier::new(Thresholds::default());
    assert!(c.observe(&ev("1", ANN, 0, 50079, vec![])).is_empty());
    let ch = c.observe(&ev("2", ANN, 30, 50072, vec![]));
    assert_eq!(opened(&ch), vec![LockoutState::RegistrationBlocked]);
    let d = c.open().next().expect("open");
    assert_eq!(d.codes, vec![(50072, 1), (50079, 1)]);
    assert!(
        d.detail
            .starts_with("2 sign-ins stuck at MFA registration (50072 ×1, 50079 ×1)"),
        "{}",
        d.detail
    );
    let mut s = ev("3", ANN, 40, 0, vec![]);
    s.mfa_required = true;
    assert_eq!(resolved(&c.observe(&s)).len(), 1);
}

#[test]
fn proof_up_blocked_counts_for_both_lockout_and_registration() {
    let mut c = Classifier::new(Thresholds::default());
    c.observe(&ev("1", ANN, 0, 53004, vec![]));
    c.observe(&ev("2", ANN, 1, 53004, vec![]));
    assert_eq!(states(&c), vec![LockoutState::RegistrationBlocked]);
    c.observe(&ev("3", ANN, 2, 53004, vec![]));
    assert_eq!(
        states(&c),
        vec![LockoutState::LockedOut, LockoutState::RegistrationBlocked]
    );
}

#[test]
fn prompt_bombing_window_edges() {
    // Five pushes spanning exactly the window open it; one below does not.
    let mut c = Classifier::new(Thresholds::default());
    for (i, m) in [0, 2, 4, 6].iter().enumerate() {
        c.observe(&push(&format!("p{i}"), *m, true));
    }
    assert!(
        !states(&c).contains(&LockoutState::MfaPromptBombing),
        "four is one below"
    );
    assert!(
        states(&c).is_empty(),
        "declined pushes are not lockout failures"
    );
    let ch = c.observe(&push("p4", 10, false));
    assert_eq!(opened(&ch), vec![LockoutState::MfaPromptBombing]);
    let d = c
        .open()
        .find(|d| d.state == LockoutState::MfaPromptBombing)
        .expect("open");
    assert!(
        d.detail
            .contains("5 push notifications denied or unanswered")
            && d.detail.contains("4 declined, 1 unanswered"),
        "{}",
        d.detail
    );
    // Five pushes spanning one second more than the window do not.
    let mut c = Classifier::new(Thresholds::default());
    for (i, m) in [0, 2, 4, 6].iter().enumerate() {
        c.observe(&push(&format!("p{i}"), *m, true));
    }
    let mut last = push("p4", 10, true);
    last.created += Duration::seconds(1);
    c.observe(&last);
    assert!(c.open().next().is_none());
    // An SMS failure is not a push.
    let mut c = Classifier::new(Thresholds::default());
    for i in 0..5 {
        c.observe(&fail(&format!("f{i}"), i));
    }
    assert_eq!(states(&c), vec![LockoutState::LockedOut]);
    // Unanswered pushes also count as failures (a lost phone).
    let mut c = Classifier::new(Thresholds::default());
    for i in 0..3 {
        c.observe(&push(&format!("t{i}"), i, false));
    }
    assert_eq!(states(&c), vec![LockoutState::LockedOut]);
}

#[test]
fn restart_keeps_open_detections_without_reopening() {
    let mut c = Classifier::new(Thresholds::default());
    for i in 0..3 {
        c.observe(&fail(&format!("f{i}"), i));
    }
    c.observe(&ev("r1", ANN, 0, 50079, vec![]));
    let json = serde_json::to_string(&c.save()).expect("serialise");
    let back: ClassifierState = serde_json::from_str(&json).expect("deserialise");
    let mut r = Classifier::restore(Thresholds::default(), back).expect("restore");
    assert_eq!(r.save(), c.save());
    let mut a: Vec<_> = c.open().cloned().collect();
    let mut b: Vec<_> = r.open().cloned().collect();
    a.sort_by_key(|d| d.state);
    b.sort_by_key(|d| d.state);
    assert_eq!(a, b);
    // The overlap re-reads the same sign-ins: nothing opens again.
    for i in 0..3 {
        assert!(r.observe(&fail(&format!("f{i}"), i)).is_empty());
    }
    // The second registration failure opens; the success resolves the lockout once.
    assert_eq!(
        opened(&r.observe(&ev("r2", ANN, 5, 50072, vec![]))),
        vec![LockoutState::RegistrationBlocked]
    );
    assert_eq!(resolved(&r.observe(&ok("s", 10))).len(), 1);
    assert!(resolved(&r.observe(&ok("s", 10))).is_empty());
    // Garbage is refused, not panicked on.
    let bad: Result<ClassifierState, _> = serde_json::from_str(
        r#"{"version":1,"users":[{"user":"nope","upn":"x","events":[],"last_success":null,"last_event":"2026-12-03T10:00:00Z","open":[]}],"watermark":null}"#,
    );
    let err = Classifier::restore(Thresholds::default(), bad.expect("shape")).expect_err("bad id");
    assert!(err.to_string().contains("not an object id"), "{err}");
}

#[test]
fn state_is_bounded_to_recent_trouble() {
    let th = Thresholds {
        retention: Duration::hours(2),
        ..Thresholds::default()
    };
    let mut c = Classifier::new(th);
    // Successes of untroubled users keep nothing.
    c.observe(&ev("a", ANN, 0, 0, vec![]));
    assert_eq!(c.tracked_users(), 0);
    c.observe(&fail("1", 0));
    assert_eq!(c.tracked_users(), 1);
    // Three hours later, another user's sign-in moves the watermark: bob is forgotten.
    c.observe(&ev("x", ANN, 180, 50079, vec![]));
    assert_eq!(c.tracked_users(), 1);
    // A sign-in older than the retention is ignored.
    assert!(c.observe(&fail("old", 10)).is_empty());
    // An open detection outlives the retention until a success.
    for i in 0..3 {
        c.observe(&fail(&format!("g{i}"), 200 + i));
    }
    c.observe(&ev("y", ANN, 600, 50079, vec![]));
    assert_eq!(states(&c), vec![LockoutState::LockedOut]);
    assert_eq!(resolved(&c.observe(&ok("z", 601))).len(), 1);
    c.observe(&ev("w", ANN, 900, 50079, vec![]));
    assert_eq!(
        c.tracked_users(),
        1,
        "bob forgotten once resolved and quiet"
    );
}

#[test]
fn the_error_code_table_is_consistent() {
    for c in ERROR_CODES {
        assert!(c.lockout || c.registration, "{}", c.code);
        assert!(!c.meaning.is_empty());
    }
    for code in [500121, 50088, 50053, 53004] {
        assert!(error_code(code).is_some_and(|c| c.lockout), "{code}");
    }
    for code in [50079, 50072, 53004] {
        assert!(error_code(code).is_some_and(|c| c.registration), "{code}");
    }
    assert!(
        error_code(50076).is_none(),
        "an MFA interrupt is not a failure"
    );
}

#[test]
fn the_open_set_does_not_depend_on_arrival_order() {
    // Bob is known (an old failure) so a success arriving first is kept.
    let evs = vec![
        fail("a", 0),
        fail("b", 50),
        fail("c", 70),
        ev("d", BOB, 100, 50088, vec![]),
        ok("e", 120),
        push("f", 130, true),
        push("g", 131, false),
        push("h", 132, true),
        push("i", 133, true),
        push("j", 134, true),
        fraud("k", 140, "Fraud code entered"),
        fail("l", 141),
        fail("m", 142),
    ];
    let summary = |c: &Classifier| {
        let mut v: Vec<_> = c
            .open()
            .map(|d| (d.state, d.codes.clone(), d.first_seen))
            .collect();
        v.sort();
        v
    };
    let mut reference = Classifier::new(Thresholds::default());
    for e in &evs {
        reference.observe(e);
    }
    let want = summary(&reference);
    assert_eq!(
        want.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![
            LockoutState::LockedOut,
            LockoutState::MfaFraudReported,
            LockoutState::MfaPromptBombing
        ]
    );
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..200 {
        let mut order: Vec<&SignInEvent> = evs.iter().collect();
        for i in (1..order.len()).rev() {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            order.swap(i, (seed >> 33) as usize % (i + 1));
        }
        let mut c = Classifier::new(Thresholds::default());
        c.observe(&fail("seed", -100));
        for e in order.iter().chain(order.iter()) {
            c.observe(e);
        }
        assert_eq!(
            summary(&c),
            want,
            "order {:?}",
            order.iter().map(|e| &e.id).collect::<Vec<_>>()
        );
    }
}

#[test]
fn expire_forgets_a_quiet_tenant_by_the_wall_clock() {
    let mut c = Classifier::new(Thresholds::default());
    c.observe(&fail("1", 0));
    c.observe(&fail("2", 1));
    assert_eq!(c.tracked_users(), 1);
    c.expire(t(60 * 23));
    assert_eq!(c.tracked_users(), 1);
    c.expire(t(60 * 25));
    assert_eq!(c.tracked_users(), 0);
}
