//! The watcher's API on the real daemon binary (graph-sim behind it): detections and
//! security-info events seeded into its store through `Store::record_watch` before it starts,
//! read back through `/api/v1/detections`, `/api/v1/security-events`, a user's page and the
//! overview page; bad parameters are a 400 that names them.

use chrono::{DateTime, Duration, Utc};
use graph_sim::Profile;
use mfa_auditor::snapshot::ObjectId;
use mfa_auditor::state::{DetectionChange, NotedSecurityEvent, Store, WatchRecord};
use mfa_auditor::watch::{Detection, LockoutState, SecurityInfoActivity, SecurityInfoEvent};
use serde_json::Value;

mod common;

use common::daemon::{get, wait_for, write_config, Daemon};

fn uid(i: u32) -> ObjectId {
    ObjectId::parse(&format!("{i:08x}-3161-4c6b-9b50-d488572f2bb7")).expect("id")
}

fn upn(i: u32) -> String {
    format!("watched{i}@contoso.com")
}

fn detection(i: u32, state: LockoutState, at: DateTime<Utc>) -> Detection {
    Detection {
        user: uid(i),
        upn: upn(i).into(),
        state,
        codes: vec![(500121, 6)],
        first_seen: at - Duration::minutes(6),
        last_seen: at,
        detail: format!("{} <b>failed</b> 6 times", upn(i)),
    }
}

fn event(i: u32, n: i64, at: DateTime<Utc>, notable: bool) -> NotedSecurityEvent {
    NotedSecurityEvent {
        event: SecurityInfoEvent {
            id: format!("ev-{i}-{n}").into(),
            created: at + Duration::seconds(n),
            activity: SecurityInfoActivity::Deleted,
            activity_name: "User deleted security info".into(),
            by_admin: false,
            initiated_by: upn(i).into(),
            user: uid(i),
            upn: upn(i).into(),
            method: Some("Mobile Phone SMS".into()),
        },
        detail: format!("{} deleted a phone number", upn(i)),
        notable: notable.then_some(mfa_auditor::evaluate::Severity::Medium),
    }
}

/// Seeds: users 0..3 locked out (user 1 then resolved), user 7 fraud-reported, four security
/// events of user 0 (two notable) and one of user 7.
fn seed(store: &Store, tenant: &str) {
    let base = Utc::now() - Duration::hours(1);
    let record =
        |at: DateTime<Utc>, changes: &[DetectionChange], security: &[NotedSecurityEvent]| {
            store
                .record_watch(&WatchRecord {
                    tenant,
                    at,
                    changes,
                    security,
                    watermarks: &[],
                    subscribers: &[],
                    classifier: None,
                    remediation: &|_| String::new(),
                })
                .expect("recorded");
        };
    for i in 0..3u32 {
        let at = base + Duration::minutes(i.into());
        record(
            at,
            &[DetectionChange::Opened(detection(
                i,
                LockoutState::LockedOut,
                at,
            ))],
            &[],
        );
    }
    let later = base + Duration::minutes(10);
    let events: Vec<_> = (0..4)
        .map(|n| event(0, n, later, n % 2 == 0))
        .chain([event(7, 9, later, true)])
        .collect();
    record(
        later,
        &[
            DetectionChange::Resolved {
                user: uid(1),
                state: LockoutState::LockedOut,
                at: later,
            },
            DetectionChange::Opened(detection(7, LockoutState::MfaFraudReported, later)),
        ],
        &events,
    );
}

async fn json(url: &str) -> Value {
    let (status, body) = get(url).await;
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).expect("JSON")
}

fn upns(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|d| d["upn"].as_str().expect("upn").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detections_and_security_events_are_served_paged_and_filtered() {
    let sim = common::sim(200, 53, Profile::Realistic, |_| {}).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    let state = dir.path().join("state.db");
    // The seeded runs are the only ones: the daemon's own watcher stays off.
    write_config(&config, &sim, &state, 0, "\n[watcher]\nenabled = false\n");
    {
        let store = Store::open(&state).expect("state");
        seed(&store, sim.tenant_id());
    }
    let daemon = Daemon::start(&config, sim.client_secret());
    let base = daemon.base.clone();
    wait_for("/healthz", 30, async || {
        get(&format!("{base}/healthz")).await.0 == 200
    })
    .await;

    // Open ones by default, newest first, paged by cursor.
    let first = json(&format!("{base}/api/v1/detections?page_size=2")).await;
    assert_eq!(first["total"], 3, "{first}");
    assert_eq!(upns(&first), [upn(7), upn(2)]);
    let next = first["next"].as_str().expect("a next link");
    assert!(next.starts_with("/api/v1/detections?"), "{next}");
    let second = json(&format!("{base}{next}")).await;
    assert_eq!(upns(&second), [upn(0)]);
    assert_eq!(second["next"], Value::Null);
    // By state; resolved ones too with open=false.
    let locked = json(&format!("{base}/api/v1/detections?state=locked-out")).await;
    assert_eq!(upns(&locked), [upn(2), upn(0)]);
    let all = json(&format!(
        "{base}/api/v1/detections?state=locked-out&open=false"
    ))
    .await;
    assert_eq!(upns(&all), [upn(2), upn(1), upn(0)]);
    assert!(all["items"][1]["resolved_at"].is_string(), "{all}");
    let paged = json(&format!(
        "{base}/api/v1/detections?open=false&page=2&page_size=3"
    ))
    .await;
    assert_eq!(upns(&paged), [upn(0)]);

    // Bad parameters name themselves (and the allowed values).
    for (query, parameter, names) in [
        ("state=frozen", "state", "locked-out"),
        ("open=maybe", "open", "true or false"),
        ("colour=red", "colour", "state"),
        ("page_size=0", "page_size", "between"),
        ("cursor=garbage", "cursor", "cursor"),
    ] {
        let (status, body) = get(&format!("{base}/api/v1/detections?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body.contains(&format!("\"parameter\":\"{parameter}\"")) && body.contains(names),
            "{query}: {body}"
        );
    }

    // Security events: newest first, by user and notability.
    let notable = json(&format!(
        "{base}/api/v1/security-events?user={}&notable=true",
        upn(0).to_uppercase()
    ))
    .await;
    assert_eq!(notable["total"], 2, "{notable}");
    let ids: Vec<&str> = notable["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["event_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["ev-0-2", "ev-0-0"]);
    let everyone = json(&format!("{base}/api/v1/security-events")).await;
    assert_eq!(everyone["total"], 5);
    let (status, body) = get(&format!("{base}/api/v1/security-events?notable=yes")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"parameter\":\"notable\""), "{body}");

    // A user's page: no finding, yet the detections (resolved included) and events.
    let user = json(&format!("{base}/api/v1/users/{}", upn(1))).await;
    assert_eq!(
        user["detections"].as_array().map(Vec::len),
        Some(1),
        "{user}"
    );
    assert!(user["detections"][0]["resolved_at"].is_string());
    let user = json(&format!("{base}/api/v1/users/{}", uid(0))).await;
    assert_eq!(
        user["security_events"].as_array().map(Vec::len),
        Some(4),
        "{user}"
    );
    assert_eq!(user["detections"][0]["state"], "locked-out");
    let (status, _) = get(&format!("{base}/api/v1/users/nobody@contoso.com")).await;
    assert_eq!(status, 404);

    // The overview: open detections by state, linking to the API, who is locked out, and the
    // last watch run.
    let (status, page) = get(&format!("{base}/")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains(
            "<tr data-state=\"locked-out\"><td><a href=\"/api/v1/detections?state=locked-out\">locked-out</a></td><td class=\"num\">2</td>"
        ),
        "{page}"
    );
    assert!(
        page.contains("mfa-fraud-reported</a></td><td class=\"num\">1</td>"),
        "{page}"
    );
    assert!(page.contains("id=\"locked-out-users\""), "{page}");
    assert!(page.contains("Last watch run:"), "{page}");
    assert!(
        page.contains("1 opened, 0 updated, 1 resolved, 5 security-info events"),
        "{page}"
    );
}
