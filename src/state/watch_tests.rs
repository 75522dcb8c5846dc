use super::*;
use crate::collect::Watermark;
use crate::snapshot::ObjectId;
use crate::watch::SecurityInfoActivity;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .expect("date")
}

const BOB: &str = "1f0e98f5-3161-4c6b-9b50-d488572f2bb7";
const EVE: &str = "2f0e98f5-3161-4c6b-9b50-d488572f2bb7";

fn id(s: &str) -> ObjectId {
    ObjectId::parse(s).expect("id")
}

fn detection(user: &str, upn: &str, state: LockoutState, n: u32) -> Detection {
    Detection {
        user: id(user),
        upn: upn.into(),
        state,
        codes: vec![(500121, n)],
        first_seen: t("2026-12-03T10:00:00Z"),
        last_seen: t("2026-12-03T10:06:00Z"),
        detail: format!("{n} failed MFA sign-ins (500121 ×{n}) since 10:00, none succeeded"),
    }
}

fn deletion(event_id: &str, notable: Option<Severity>) -> NotedSecurityEvent {
    NotedSecurityEvent {
        event: SecurityInfoEvent {
            id: event_id.into(),
            created: t("2026-12-03T10:03:00Z"),
            activity: SecurityInfoActivity::Deleted,
            activity_name: "User deleted security info".into(),
            by_admin: false,
            initiated_by: "bob@contoso.com".into(),
            user: id(BOB),
            upn: "bob@contoso.com".into(),
            method: Some("Mobile Phone SMS".into()),
        },
        detail: "bob deleted his phone number; he now has no backup method".into(),
        notable,
    }
}

fn subscribers() -> Vec<Subscriber> {
    vec![
        Subscriber {
            webhook: "helpdesk".into(),
            min_severity: Severity::Medium,
        },
        Subscriber {
            webhook: "pager".into(),
            min_severity: Severity::Critical,
        },
    ]
}

fn remediation(d: &Detection) -> String {
    format!("Issue a one-time TAP for {}", d.upn)
}

fn record(
    store: &Store,
    at: &str,
    changes: &[DetectionChange],
    security: &[NotedSecurityEvent],
    watermarks: &[(WatchStream, String)],
) -> WatchRecorded {
    let subs = subscribers();
    store
        .record_watch(&WatchRecord {
            tenant: "contoso",
            at: t(at),
            changes,
            security,
            watermarks,
            subscribers: &subs,
            remediation: &remediation,
            classifier: None,
        })
        .expect("recorded")
}

fn pending(store: &Store, webhook: &str) -> Vec<OutboxEvent> {
    store
        .outbox_pending("contoso", webhook, 100)
        .expect("outbox")
}

#[test]
fn a_detection_is_opened_updated_and_resolved_with_one_message_each_way() {
    let store = Store::in_memory().expect("store");
    let opened = DetectionChange::Opened(detection(
        BOB,
        "bob@contoso.com",
        LockoutState::LockedOut,
        6,
    ));
    let done = record(
        &store,
        "2026-12-03T10:07:00Z",
        std::slice::from_ref(&opened),
        &[],
        &[],
    );
    assert_eq!(
        (done.opened, done.queued),
        (1, 1),
        "helpdesk only: high < critical"
    );
    let msgs = pending(&store, "helpdesk");
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(
        (m.kind, m.rule.as_str(), m.subject.as_str()),
        (EventKind::New, "locked-out", BOB)
    );
    assert_eq!(m.audit_id, -done.run_id, "watcher groups are negative");
    assert_eq!(m.severity, "high");
    assert_eq!(m.remediation, "Issue a one-time TAP for bob@contoso.com");
    assert!(pending(&store, "pager").is_empty());

    // Seen again (opened once more, or updated): one open row, no second message.
    let again = DetectionChange::Updated(detection(
        BOB,
        "bob@contoso.com",
        LockoutState::LockedOut,
        8,
    ));
    let done = record(
        &store,
        "2026-12-03T10:09:00Z",
        &[opened.clone(), again],
        &[],
        &[],
    );
    assert_eq!((done.opened, done.updated, done.queued), (0, 2, 0));
    let open = store.open_detections("contoso").expect("open");
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].codes, vec![(500121, 8)]);
    assert_eq!(open[0].opened_at, t("2026-12-03T10:07:00Z"));
    assert_eq!(
        open[0].remediation, "Issue a one-time TAP for bob@contoso.com",
        "the way back in is kept with the detection"
    );
    assert_eq!(
        store.detection_code_counts("contoso").expect("codes"),
        vec![(500121, 1)]
    );
    assert_eq!(store.locked_out_users("contoso").expect("users"), 1);
    let counts = store.detection_counts("contoso").expect("counts");
    assert_eq!(counts.len(), LockoutState::ALL.len());
    assert!(counts.contains(&(LockoutState::LockedOut, 1)));
    assert!(counts.contains(&(LockoutState::MfaPromptBombing, 0)));

    let resolved = DetectionChange::Resolved {
        user: id(BOB),
        state: LockoutState::LockedOut,
        at: t("2026-12-03T10:12:00Z"),
    };
    let done = record(
        &store,
        "2026-12-03T10:13:00Z",
        std::slice::from_ref(&resolved),
        &[],
        &[],
    );
    assert_eq!((done.resolved, done.queued), (1, 1));
    let msgs = pending(&store, "helpdesk");
    assert_eq!(msgs[1].kind, EventKind::Resolved);
    assert_eq!(msgs[1].resolved_at, Some(t("2026-12-03T10:12:00Z")));
    assert!(store.open_detections("contoso").expect("open").is_empty());
    // Resolving what is not open is nothing.
    let done = record(&store, "2026-12-03T10:14:00Z", &[resolved], &[], &[]);
    assert_eq!((done.resolved, done.queued), (0, 0));
    // A new lockout after the resolution is a new detection, with its message.
    let done = record(&store, "2026-12-03T11:00:00Z", &[opened], &[], &[]);
    assert_eq!((done.opened, done.queued), (1, 1));
    let history = store
        .user_detections("contoso", "BOB@contoso.com")
        .expect("history");
    assert_eq!(history.len(), 2);
    assert!(history[0].resolved_at.is_none() && history[1].resolved_at.is_some());
    assert_eq!(
        store.user_detections("contoso", BOB).expect("by id").len(),
        2
    );
}

#[test]
fn security_events_are_kept_once_by_event_id_and_only_notable_ones_queue() {
    let store = Store::in_memory().expect("store");
    let fraud = DetectionChange::Opened(detection(
        EVE,
        "eve@contoso.com",
        LockoutState::MfaFraudReported,
        1,
    ));
    let done = record(
        &store,
        "2026-12-03T10:07:00Z",
        &[fraud],
        &[
            deletion("ev-1", Some(Severity::High)),
            deletion("ev-2", None),
        ],
        &[],
    );
    assert_eq!(done.security_events, 2);
    // fraud (critical): helpdesk and pager; the deletion (high): helpdesk.
    assert_eq!(done.queued, 3);
    assert_eq!(pending(&store, "pager").len(), 1);
    let helpdesk = pending(&store, "helpdesk");
    assert!(helpdesk
        .iter()
        .any(|m| m.rule == SECURITY_INFO_RULE && m.detail.contains("no backup method")));
    let done = record(
        &store,
        "2026-12-03T10:09:00Z",
        &[],
        &[deletion("ev-1", Some(Severity::High))],
        &[],
    );
    assert_eq!((done.security_events, done.queued), (0, 0));
    let events = store
        .user_security_events("contoso", "bob@contoso.com")
        .expect("events");
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].activity, "deleted");
    assert_eq!(events[0].method.as_deref(), Some("Mobile Phone SMS"));
    // Another tenant's event of the same id is its own.
    let subs = subscribers();
    let other = store
        .record_watch(&WatchRecord {
            tenant: "fabrikam",
            at: t("2026-12-03T10:09:00Z"),
            changes: &[],
            security: &[deletion("ev-1", None)],
            watermarks: &[],
            subscribers: &subs,
            remediation: &remediation,
            classifier: None,
        })
        .expect("recorded");
    assert_eq!(other.security_events, 1);
}

#[test]
fn a_run_is_one_transaction_with_its_watermark() {
    let store = Store::in_memory().expect("store");
    let mut wm = Watermark::default();
    wm.admit("s1", t("2026-12-03T10:00:00Z"), None);
    let json = serde_json::to_string(&wm).expect("json");
    let subs = subscribers();
    let calls = std::cell::Cell::new(0);
    let failing = |d: &Detection| {
        calls.set(calls.get() + 1);
        if calls.get() == 2 {
            panic!("the recovery step failed for {}", d.upn);
        }
        String::new()
    };
    let changes = [
        DetectionChange::Opened(detection(
            BOB,
            "bob@contoso.com",
            LockoutState::LockedOut,
            6,
        )),
        DetectionChange::Opened(detection(
            EVE,
            "eve@contoso.com",
            LockoutState::LockedOut,
            6,
        )),
    ];
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store.record_watch(&WatchRecord {
            tenant: "contoso",
            at: t("2026-12-03T10:07:00Z"),
            changes: &changes,
            security: &[deletion("ev-1", Some(Severity::High))],
            watermarks: &[(WatchStream::SignIns, json.clone())],
            subscribers: &subs,
            remediation: &failing,
            classifier: None,
        })
    }));
    assert!(outcome.is_err(), "the run failed half-way");
    assert!(store.open_detections("contoso").expect("open").is_empty());
    assert!(
        pending(&store, "helpdesk").is_empty(),
        "no message without its change"
    );
    assert_eq!(
        store
            .load_watermark::<Watermark>("contoso", WatchStream::SignIns)
            .expect("load"),
        None,
        "the watermark did not move either"
    );
    // Done again whole: everything, watermark included.
    record(
        &store,
        "2026-12-03T10:08:00Z",
        &changes,
        &[],
        &[(WatchStream::SignIns, json)],
    );
    assert_eq!(store.open_detections("contoso").expect("open").len(), 2);
    assert_eq!(
        store
            .load_watermark::<Watermark>("contoso", WatchStream::SignIns)
            .expect("load"),
        Some(wm)
    );
    assert_eq!(
        store
            .load_watermark::<Watermark>("contoso", WatchStream::DirectoryAudits)
            .expect("load"),
        None
    );
}

#[test]
fn nothing_is_queued_twice_across_a_reopen_and_event_ids_are_never_reused() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("state.db");
    let changes = [DetectionChange::Opened(detection(
        BOB,
        "bob@contoso.com",
        LockoutState::LockedOut,
        6,
    ))];
    let security = [deletion("ev-1", Some(Severity::High))];
    let first_ids: Vec<i64> = {
        let store = Store::open(&path).expect("open");
        let mut wm = Watermark::default();
        wm.admit("s1", t("2026-12-03T10:00:00Z"), None);
        store
            .save_watermark(
                "contoso",
                WatchStream::DirectoryAudits,
                &wm,
                t("2026-12-03T10:07:00Z"),
            )
            .expect("saved");
        let done = record(&store, "2026-12-03T10:07:00Z", &changes, &security, &[]);
        assert_eq!(done.queued, 2);
        let ids: Vec<i64> = pending(&store, "helpdesk").iter().map(|m| m.id).collect();
        store.outbox_delivered(&ids).expect("delivered");
        ids
    };
    let store = Store::open(&path).expect("reopen");
    // The watcher restarted before saving its sign-in watermark and hands the same changes again.
    let done = record(&store, "2026-12-03T10:09:00Z", &changes, &security, &[]);
    assert_eq!((done.opened, done.security_events, done.queued), (0, 0, 0));
    assert!(pending(&store, "helpdesk").is_empty());
    let wm: Option<Watermark> = store
        .load_watermark("contoso", WatchStream::DirectoryAudits)
        .expect("load");
    assert_eq!(
        wm.map(|w| w.seen.len()),
        Some(1),
        "the watermark survived the reopen"
    );
    // A new message after the outbox drained gets a new id.
    record(
        &store,
        "2026-12-03T10:11:00Z",
        &[DetectionChange::Opened(detection(
            EVE,
            "eve@contoso.com",
            LockoutState::LockedOut,
            6,
        ))],
        &[],
        &[],
    );
    let next = pending(&store, "helpdesk");
    assert_eq!(next.len(), 1);
    assert!(
        next[0].id > *first_ids.iter().max().expect("ids"),
        "{} reused",
        next[0].id
    );
}

#[test]
fn the_migration_keeps_one_open_detection_per_user_and_state() {
    let store = Store::in_memory().expect("store");
    let conn = store.conn();
    let insert = |resolved: Option<&str>| {
        conn.execute(
            "INSERT INTO detections (tenant, user_id, upn, state, codes, first_seen, last_seen, opened_at, resolved_at, detail)
             VALUES ('contoso', ?1, 'bob@contoso.com', 'locked-out', '[]', 'x', 'x', 'x', ?2, '')",
            params![BOB, resolved],
        )
    };
    insert(Some("2026-12-03T10:00:00Z")).expect("a resolved row");
    insert(None).expect("one open row");
    assert!(insert(None).is_err(), "a second open row is refused");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(version as usize, super::super::MIGRATIONS.len());
}

#[test]
fn pruning_forgets_old_history_but_not_open_detections() {
    let store = Store::in_memory().expect("store");
    record(
        &store,
        "2026-11-01T10:07:00Z",
        &[
            DetectionChange::Opened(detection(
                BOB,
                "bob@contoso.com",
                LockoutState::LockedOut,
                6,
            )),
            DetectionChange::Opened(detection(
                EVE,
                "eve@contoso.com",
                LockoutState::LockedOut,
                6,
            )),
            DetectionChange::Resolved {
                user: id(EVE),
                state: LockoutState::LockedOut,
                at: t("2026-11-01T10:30:00Z"),
            },
        ],
        &[deletion("ev-1", None)],
        &[],
    );
    let deleted = store
        .prune_watch("contoso", t("2026-12-04T00:00:00Z"))
        .expect("pruned");
    assert_eq!(deleted, 3, "eve's resolved detection, the event, the run");
    assert_eq!(store.open_detections("contoso").expect("open").len(), 1);
    assert!(store
        .user_security_events("contoso", BOB)
        .expect("events")
        .is_empty());
}

#[test]
fn the_classifier_is_saved_with_the_run_that_changed_it() {
    let store = Store::in_memory().expect("store");
    assert_eq!(store.load_classifier("contoso").expect("load"), None);
    let subs = subscribers();
    let save = |json: Option<&str>| {
        store
            .record_watch(&WatchRecord {
                tenant: "contoso",
                at: t("2026-12-03T10:00:00Z"),
                changes: &[],
                security: &[],
                watermarks: &[],
                subscribers: &subs,
                remediation: &remediation,
                classifier: json,
            })
            .expect("recorded")
    };
    save(Some("{\"version\":1}"));
    save(None);
    assert_eq!(
        store.load_classifier("contoso").expect("load").as_deref(),
        Some("{\"version\":1}"),
        "None leaves the saved state"
    );
    save(Some("{\"version\":2}"));
    assert_eq!(
        store.load_classifier("contoso").expect("load").as_deref(),
        Some("{\"version\":2}")
    );
    assert_eq!(store.load_classifier("fabrikam").expect("load"), None);
}
