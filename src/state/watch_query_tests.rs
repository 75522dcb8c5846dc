use super::*;
use crate::snapshot::ObjectId;
use crate::watch::{Detection, SecurityInfoActivity, SecurityInfoEvent};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .expect("date")
}

/// User `i`'s object id.
fn uid(i: u32) -> ObjectId {
    ObjectId::parse(&format!("{i:08x}-3161-4c6b-9b50-d488572f2bb7")).expect("id")
}

fn detection(i: u32, state: LockoutState) -> Detection {
    Detection {
        user: uid(i),
        upn: format!("user{i}@contoso.com").into(),
        state,
        codes: vec![(500121, 6)],
        first_seen: t("2026-12-03T10:00:00Z"),
        last_seen: t("2026-12-03T10:06:00Z"),
        detail: format!("user{i}: 6 failed MFA sign-ins"),
    }
}

fn event(i: u32, n: u32, notable: bool) -> NotedSecurityEvent {
    NotedSecurityEvent {
        event: SecurityInfoEvent {
            id: format!("ev-{i}-{n}").into(),
            created: t("2026-12-03T10:00:00Z") + chrono::Duration::minutes(n.into()),
            activity: SecurityInfoActivity::Deleted,
            activity_name: "User deleted security info".into(),
            by_admin: false,
            initiated_by: format!("user{i}@contoso.com").into(),
            user: uid(i),
            upn: format!("user{i}@contoso.com").into(),
            method: Some("Mobile Phone SMS".into()),
        },
        detail: format!("user{i} deleted a phone number ({n})"),
        notable: notable.then_some(Severity::Medium),
    }
}

fn record(store: &Store, at: &str, changes: &[DetectionChange], security: &[NotedSecurityEvent]) {
    store
        .record_watch(&WatchRecord {
            tenant: "contoso",
            at: t(at),
            changes,
            security,
            watermarks: &[],
            subscribers: &[],
            remediation: &|_| String::new(),
            classifier: None,
        })
        .expect("recorded");
}

/// Five locked-out users opened a minute apart (user 4 newest), user 1 resolved, user 9
/// registration-blocked.
fn seeded() -> Store {
    let store = Store::in_memory().expect("store");
    for i in 0..5u32 {
        let at = format!("2026-12-03T10:1{i}:00Z");
        record(
            &store,
            &at,
            &[DetectionChange::Opened(detection(
                i,
                LockoutState::LockedOut,
            ))],
            &[],
        );
    }
    record(
        &store,
        "2026-12-03T10:20:00Z",
        &[
            DetectionChange::Resolved {
                user: uid(1),
                state: LockoutState::LockedOut,
                at: t("2026-12-03T10:19:00Z"),
            },
            DetectionChange::Opened(detection(9, LockoutState::RegistrationBlocked)),
        ],
        &[],
    );
    store
}

fn upns(items: &[StoredDetection]) -> Vec<&str> {
    items.iter().map(|d| d.upn.as_str()).collect()
}

#[test]
fn detections_are_paged_newest_first_by_cursor_and_offset_with_filters() {
    let store = seeded();
    let open_locked = DetectionFilter {
        state: Some(LockoutState::LockedOut),
        open_only: true,
        user: None,
    };
    let first = store
        .detections_page("contoso", &open_locked, None, 2)
        .expect("page");
    assert_eq!(first.total, 4, "5 locked out, 1 resolved");
    assert_eq!(
        upns(&first.items),
        ["user4@contoso.com", "user3@contoso.com"]
    );
    let cursor = Cursor::decode(first.next_cursor.as_deref().expect("more")).expect("cursor");
    let second = store
        .detections_page("contoso", &open_locked, Some(&PageStart::Cursor(cursor)), 2)
        .expect("page");
    assert_eq!(
        upns(&second.items),
        ["user2@contoso.com", "user0@contoso.com"]
    );
    assert_eq!(second.next_cursor, None, "last page");
    let at = store
        .detections_page("contoso", &open_locked, Some(&PageStart::Offset(2)), 2)
        .expect("page");
    assert_eq!(at.items, second.items, "offset 2 is the second page");

    let all = store
        .detections_page("contoso", &DetectionFilter::default(), None, 100)
        .expect("page");
    assert_eq!(all.total, 6);
    assert_eq!(all.items[0].upn, "user9@contoso.com");
    assert!(all.items.iter().any(|d| d.resolved_at.is_some()));

    let mine = store
        .detections_page(
            "contoso",
            &DetectionFilter {
                user: Some("USER1@contoso.com".into()),
                ..DetectionFilter::default()
            },
            None,
            10,
        )
        .expect("page");
    assert_eq!(upns(&mine.items), ["user1@contoso.com"]);
    let other = store
        .detections_page("fabrikam", &DetectionFilter::default(), None, 10)
        .expect("page");
    assert_eq!(other.total, 0, "tenants are apart");
}

#[test]
fn security_events_are_paged_newest_first_and_filtered_by_user_and_notability() {
    let store = Store::in_memory().expect("store");
    let events: Vec<_> = (0..4)
        .map(|n| event(1, n, n % 2 == 1))
        .chain([event(2, 9, true)])
        .collect();
    record(&store, "2026-12-03T10:30:00Z", &[], &events);
    let notable = SecurityEventFilter {
        user: Some(uid(1).to_string()),
        notable_only: true,
    };
    let first = store
        .security_events_page("contoso", &notable, None, 1)
        .expect("page");
    assert_eq!(first.total, 2);
    assert_eq!(first.items[0].event_id, "ev-1-3");
    let cursor = Cursor::decode(first.next_cursor.as_deref().expect("more")).expect("cursor");
    let second = store
        .security_events_page("contoso", &notable, Some(&PageStart::Cursor(cursor)), 1)
        .expect("page");
    assert_eq!(second.items[0].event_id, "ev-1-1");
    assert_eq!(second.next_cursor, None);
    let everyone = store
        .security_events_page("contoso", &SecurityEventFilter::default(), None, 10)
        .expect("page");
    assert_eq!(everyone.total, 5);
    assert_eq!(everyone.items[0].event_id, "ev-2-9", "newest first");
}

#[test]
fn the_last_watch_run_is_the_newest_with_its_counts() {
    let store = Store::in_memory().expect("store");
    assert_eq!(store.last_watch_run("contoso").expect("query"), None);
    let store = seeded();
    let last = store
        .last_watch_run("contoso")
        .expect("query")
        .expect("a run");
    assert_eq!(last.at, t("2026-12-03T10:20:00Z"));
    assert_eq!((last.opened, last.resolved), (1, 1));
    assert_eq!(store.last_watch_run("fabrikam").expect("query"), None);
}
