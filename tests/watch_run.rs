//! The watcher's pass (`watch::run`) against graph-sim in-process: a user failing MFA six times
//! is one `locked-out` detection carrying the TAP command, a success resolves it, a deleted phone
//! that leaves no backup is exactly one notable event, and neither a second run over the same
//! window nor a restart (a new `Watcher` on the same store) opens or queues anything twice.

use std::sync::Arc;

use chrono::{Duration, Utc};
use graph_sim::Profile;
use mfa_auditor::collect::{WatchOptions, Watermark};
use mfa_auditor::evaluate::Severity;
use mfa_auditor::metrics::{Metrics, PostureRecord};
use mfa_auditor::snapshot::MethodKind;
use mfa_auditor::state::{EventKind, Store, Subscriber, WatchStream};
use mfa_auditor::watch::run::{record_drift, RunContext, Watcher};
use mfa_auditor::watch::LockoutState;

mod common;

fn subscribers() -> Vec<Subscriber> {
    vec![Subscriber {
        webhook: "helpdesk".into(),
        min_severity: Severity::Info,
    }]
}

#[tokio::test]
async fn a_run_opens_resolves_and_notes_once_across_reruns_and_a_restart() {
    let sim = common::sim(200, 11, Profile::Realistic, |_| {}).await;
    let config = common::config(&sim, "");
    let client = common::client_with(&sim, config.client_config());
    let tenant = config.tenant.tenant_id.clone();
    let store = Arc::new(Store::in_memory().expect("store"));

    // The posture of a last audit: the users with their methods, and a TAP policy.
    let read = mfa_auditor::audit::read_tenant(&config, &client, None).await;
    store
        .record_users(&tenant, 1, read.started_at, &read.snapshot.users)
        .expect("users recorded");
    let record = PostureRecord {
        tap_policy_enabled: Some(true),
        tap_policy_usable_once: Some(true),
        tap_policy_lifetime_minutes: [("maximum".to_string(), 60)].into_iter().collect(),
        ..PostureRecord::default()
    };
    store
        .save_posture(
            &tenant,
            1,
            read.started_at,
            &serde_json::to_string(&record).expect("json"),
        )
        .expect("posture saved");

    let metrics = Metrics::new(&tenant);
    let watcher_metrics = metrics.watcher();
    let subs = subscribers();
    let options = WatchOptions::default();
    let break_glass: Vec<String> = Vec::new();
    let cx = |now| RunContext {
        client: &client,
        store: &store,
        options: &options,
        subscribers: &subs,
        break_glass: &break_glass,
        mfa_exclusion_group: None,
        metrics: &watcher_metrics,
        now,
        auditing: false,
    };
    let mut watcher = Watcher::load(&store, &tenant, config.watcher.thresholds()).expect("load");
    let baseline = watcher.run(&cx(Utc::now())).await.expect("run");
    assert!(baseline.failed.is_empty(), "{:?}", baseline.failed);

    // Bob: a plain member with the Authenticator and a mobile phone only, nothing open.
    let open_before = store.open_detections(&tenant).expect("open");
    let bob = common::plain_member_with_phone(&store, &tenant, &read.snapshot.users, |id| {
        open_before.iter().any(|d| d.user == id)
    });
    let queued = |store: &Store| {
        store
            .outbox_pending(&tenant, "helpdesk", 10_000)
            .expect("outbox")
    };
    let bobs = |store: &Store| {
        queued(store)
            .into_iter()
            .filter(|m| m.subject == bob.id)
            .collect::<Vec<_>>()
    };

    let now = Utc::now();
    // 50088 (telecom limit): an MFA failure. graph-sim words 500121 as a declined push, which the
    // classifier counts for prompt bombing, not as a lockout (the user has the phone).
    sim.user_fails_mfa(
        &bob.user_principal_name,
        6,
        now - Duration::minutes(5),
        50088,
    );
    let first = watcher.run(&cx(Utc::now())).await.expect("run");
    assert!(first.failed.is_empty(), "{:?}", first.failed);
    let open: Vec<_> = store
        .open_detections(&tenant)
        .expect("open")
        .into_iter()
        .filter(|d| d.user == bob.id)
        .collect();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].state, LockoutState::LockedOut.as_str());
    assert!(
        open[0].remediation.contains(&format!(
            "New-MgUserAuthenticationTemporaryAccessPassMethod -UserId '{}' -IsUsableOnce:$true",
            bob.user_principal_name
        )),
        "{}",
        open[0].remediation
    );
    let msgs = bobs(&store);
    assert_eq!(msgs.len(), 1, "one message for the detection");
    assert_eq!(msgs[0].rule, "locked-out");
    assert_eq!(msgs[0].remediation, open[0].remediation);

    // The same window again, then a restart from the store: nothing new.
    let again = watcher.run(&cx(Utc::now())).await.expect("run");
    let again = again.recorded.expect("recorded");
    assert_eq!((again.opened, again.queued), (0, 0), "{again:?}");
    let mut restarted =
        Watcher::load(&store, &tenant, config.watcher.thresholds()).expect("reload");
    let after = restarted.run(&cx(Utc::now())).await.expect("run");
    let after = after.recorded.expect("recorded");
    assert_eq!((after.opened, after.queued), (0, 0), "{after:?}");
    assert_eq!(bobs(&store).len(), 1);
    assert!(
        restarted
            .open()
            .any(|d| d.upn.as_ref() == bob.user_principal_name),
        "the restored classifier still holds the detection"
    );

    // A success resolves it: one resolution message.
    sim.user_succeeds_mfa(&bob.user_principal_name, Utc::now() - Duration::seconds(10));
    let resolved = restarted.run(&cx(Utc::now())).await.expect("run");
    let resolved = resolved.recorded.expect("recorded");
    assert!(resolved.resolved_states.contains(&LockoutState::LockedOut));
    assert!(store
        .open_detections(&tenant)
        .expect("open")
        .iter()
        .all(|d| d.user != bob.id));
    let msgs = bobs(&store);
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1].kind, EventKind::Resolved);

    // Bob deletes his phone: the Authenticator is all he has left; one notable event, once.
    // Not backdated: it happens after the "previous audit" read above (drift compares with it).
    sim.user_deletes_phone(&bob.user_principal_name, Utc::now());
    restarted.run(&cx(Utc::now())).await.expect("run");
    let events = store
        .user_security_events(&tenant, &bob.id)
        .expect("events");
    let notable: Vec<_> = events.iter().filter(|e| e.notable.is_some()).collect();
    assert_eq!(notable.len(), 1, "{events:?}");
    assert!(
        notable[0]
            .detail
            .contains("no backup method: only Microsoft Authenticator"),
        "{}",
        notable[0].detail
    );
    let msgs = bobs(&store);
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[2].rule, "security-info");
    let mut restarted =
        Watcher::load(&store, &tenant, config.watcher.thresholds()).expect("reload");
    restarted.run(&cx(Utc::now())).await.expect("run");
    watcher.run(&cx(Utc::now())).await.expect("run");
    assert_eq!(bobs(&store).len(), 3, "nothing queued twice");

    // The next audit sees bob and carol without their phones. Bob's loss was told by the audit
    // log: not again. Carol's is told by the drift between the two audits, once.
    let carol = read
        .snapshot
        .users
        .iter()
        .filter_map(|u| store.user(&tenant, &u.id.to_string()).ok().flatten())
        .find(|u| {
            u.id != bob.id
                && u.mfa_families.as_deref() == Some(&["mobile-app", "mobile-number"][..])
                && u.methods
                    .as_ref()
                    .is_some_and(|m| m.iter().any(|m| m.name == "mobilePhone"))
        })
        .expect("another member with the Authenticator and a mobile phone only");
    let mut users = read.snapshot.users.clone();
    for u in users
        .iter_mut()
        .filter(|u| [&bob.id, &carol.id].contains(&&u.id.to_string()))
    {
        u.methods = u.methods.map(|m| {
            m.iter()
                .filter(|k| {
                    !matches!(
                        k,
                        MethodKind::MobilePhone
                            | MethodKind::AlternateMobilePhone
                            | MethodKind::OfficePhone
                    )
                })
                .collect()
        });
    }
    let second = Utc::now();
    store
        .record_users(&tenant, 2, second, &users)
        .expect("second audit's users");
    let drift = record_drift(&store, &tenant, 2, second, read.started_at, &subs)
        .expect("drift")
        .expect("something noted");
    assert_eq!(
        (drift.security_events, drift.notable),
        (1, 1),
        "{drift:?} {:?} {}",
        store.user_security_events(&tenant, &bob.id),
        read.started_at
    );
    let carols = store
        .user_security_events(&tenant, &carol.id)
        .expect("events");
    assert_eq!(carols.len(), 1);
    assert_eq!(carols[0].event_id, format!("drift:2:{}", carol.id));
    assert_eq!(
        carols[0].detail,
        format!(
            "{} lost Mobile phone since the previous audit; now no backup method",
            carol.user_principal_name
        )
    );
    assert_eq!(bobs(&store).len(), 3, "bob's loss is not told twice");
    let again = record_drift(&store, &tenant, 2, second, read.started_at, &subs)
        .expect("drift")
        .expect("recorded");
    assert_eq!((again.security_events, again.queued), (0, 0));
}

#[tokio::test]
async fn a_failed_stream_keeps_its_watermark_and_the_other_still_records() {
    let sim = common::sim(120, 5, Profile::Realistic, |_| {}).await;
    let config = common::config(&sim, "");
    let client = common::client_with(&sim, config.client_config());
    let tenant = config.tenant.tenant_id.clone();
    let store = Arc::new(Store::in_memory().expect("store"));
    let metrics = Metrics::new(&tenant).watcher();
    let subs = subscribers();
    let options = WatchOptions {
        first_lookback: Duration::days(7),
        ..WatchOptions::default()
    };
    let cx = |now| RunContext {
        client: &client,
        store: &store,
        options: &options,
        subscribers: &subs,
        break_glass: &[],
        mfa_exclusion_group: None,
        metrics: &metrics,
        now,
        auditing: false,
    };
    sim.set_faults(vec![graph_sim::Fault::Status {
        endpoint: "signIns".into(),
        status: 403,
        count: None,
        retry_after: None,
    }]);
    // A user fails MFA while the sign-ins cannot be read.
    let read = mfa_auditor::audit::read_tenant(&config, &client, None).await;
    let dave = read
        .snapshot
        .users
        .iter()
        .find(|u| u.account_enabled && u.roles.is_empty() && u.upn.contains('@'))
        .expect("a user");
    sim.user_fails_mfa(&dave.upn, 6, Utc::now() - Duration::minutes(5), 50088);
    let mut watcher = Watcher::load(&store, &tenant, config.watcher.thresholds()).expect("load");
    let run = watcher.run(&cx(Utc::now())).await.expect("run");
    assert_eq!(run.failed.len(), 1, "{:?}", run.failed);
    assert_eq!(run.failed[0].0, WatchStream::SignIns);
    assert!(
        run.failed[0].1.contains("watchSignIns"),
        "{}",
        run.failed[0].1
    );
    let recorded = run.recorded.expect("the audit log still recorded");
    assert!(recorded.security_events > 0, "{recorded:?}");
    assert_eq!(recorded.opened, 0);
    let sign_ins: Option<Watermark> = store
        .load_watermark(&tenant, WatchStream::SignIns)
        .expect("load");
    assert_eq!(sign_ins, None, "the failed stream's watermark is not moved");
    let audits: Option<Watermark> = store
        .load_watermark(&tenant, WatchStream::DirectoryAudits)
        .expect("load");
    assert!(audits.is_some_and(|w| w.newest.is_some()));

    // Graph answers again: the sign-ins are read from where they were never read.
    sim.set_faults(vec![]);
    let run = watcher.run(&cx(Utc::now())).await.expect("run");
    assert!(run.failed.is_empty(), "{:?}", run.failed);
    let recorded = run.recorded.expect("recorded");
    assert_eq!(recorded.security_events, 0, "nothing kept twice");
    assert!(store
        .load_watermark::<Watermark>(&tenant, WatchStream::SignIns)
        .expect("load")
        .is_some());
    assert!(
        store
            .open_detections(&tenant)
            .expect("open")
            .iter()
            .any(|d| d.user == dave.id.to_string() && d.state == "locked-out"),
        "the failures made while Graph refused are read afterwards: {recorded:?}"
    );
}
