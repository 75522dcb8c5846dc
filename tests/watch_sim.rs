//! The watcher's reads against graph-sim, kept to what it serves today (minimal sign-in rows:
//! no `authenticationDetails`; security-info audit entries for TAPs and registrations).

use chrono::{Duration, Utc};
use graph_sim::Profile;
use mfa_auditor::collect::{read_security_info, read_sign_ins, WatchOptions, Watermark};
use mfa_auditor::watch::SecurityInfoActivity;

mod common;

#[tokio::test]
async fn the_watcher_reads_graph_sims_sign_ins_and_security_info_once() {
    let sim = common::sim(200, 7, Profile::Realistic, |_| {}).await;
    let client = common::client(&sim, |_| {});
    let options = WatchOptions {
        first_lookback: Duration::days(7),
        ..WatchOptions::default()
    };
    let now = Utc::now();
    let first = read_sign_ins(&client, &Watermark::default(), &options, now)
        .await
        .expect("sign-ins");
    assert!(
        !first.events.is_empty(),
        "graph-sim serves failed MFA sign-ins"
    );
    assert!(first.events.iter().all(|e| !e.upn.is_empty()));
    // Read again at once: the overlap's rows come back and none is returned twice. (graph-sim
    // numbers a row's id by its place in the answer; while no sign-in is added both reads agree.)
    let again = read_sign_ins(&client, &first.watermark, &options, now)
        .await
        .expect("sign-ins again");
    let audits = read_security_info(&client, &Watermark::default(), &options, now)
        .await
        .expect("audits");
    let again_audits = read_security_info(&client, &audits.watermark, &options, now)
        .await
        .expect("audits again");
    let mut activities: Vec<_> = audits.events.iter().map(|e| e.activity).collect();
    activities.sort();
    activities.dedup();
    assert_eq!(
        activities,
        vec![
            SecurityInfoActivity::Registered,
            SecurityInfoActivity::TapIssued
        ],
        "graph-sim logs registrations and TAPs issued by an admin"
    );
    assert!(audits
        .events
        .iter()
        .filter(|e| e.activity == SecurityInfoActivity::TapIssued)
        .all(|e| e.by_admin));
    assert!(again.events.is_empty(), "{:?}", again.events.first());
    assert!(again_audits.events.is_empty());
}
