//! The watcher's reads against graph-sim, kept to what it serves today (minimal sign-in rows:
//! no `authenticationDetails`; security-info audit entries for TAPs and registrations).

use chrono::{Duration, Utc};
use graph_sim::Profile;
use mfa_auditor::collect::{
    choose_sweep, read_security_info, read_sign_ins, read_sign_ins_for, SweepChoice, WatchOptions,
    Watermark,
};
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

/// 10,000 sign-ins a minute for the two minutes before `now` (graph-sim's traffic generator): the
/// old fixed cap (4 pages a run) stops a fifth of the way through one 120-s interval's sign-ins;
/// the caps derived from half the reports budget read them all in one run, none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_from_half_the_reports_budget_read_two_minutes_of_10000_a_minute_in_one_run() {
    let start = Utc::now() - Duration::minutes(2);
    let sim = common::sim(200, 11, Profile::Realistic, |c| {
        c.traffic = Some(graph_sim::Traffic {
            per_minute: 10_000,
            seed: 3,
            start: Some(start),
        })
    })
    .await;
    let client = common::client(&sim, |_| {});
    let now = Utc::now();
    let from = Watermark {
        start: Some(start),
        ..Watermark::default()
    };
    let fixed = read_sign_ins(&client, &from, &WatchOptions::default(), now)
        .await
        .expect("sign-ins");
    assert!(fixed.truncated, "the fixed cap stops early");
    assert_eq!(fixed.pages, 4);
    let shared = WatchOptions::for_share(
        std::time::Duration::from_secs(120),
        &mfa_auditor::graph::Pacing::default(),
        0.5,
    );
    let all = read_sign_ins(&client, &from, &shared, now)
        .await
        .expect("sign-ins");
    assert!(!all.truncated, "read to the end: {} pages", all.pages);
    assert!(
        all.pages > 20 && all.pages <= shared.max_sign_in_pages,
        "{}",
        all.pages
    );
    let generated = all.events.len();
    assert!(
        (19_000..=21_000).contains(&generated),
        "{generated} sign-ins in 2 min at 10,000/min"
    );
    let mut ids: Vec<&str> = all.events.iter().map(|e| &*e.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), generated, "none twice");
    assert!(fixed.events.len() <= 4000 && fixed.events.len() * 4 < generated);
}

/// 10,000 sign-ins a minute for the two minutes before the first read; then failures Graph
/// ingests late (made 90 s before, listed only now) inside the overlap. The second run reads the
/// fresh window plus the late sweep (one query per known code, one per tracked user) within its
/// page budget, instead of the overlap's 20 pages again; it finds the late failures and returns
/// none of the first run's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_10000_a_minute_the_late_sweep_finds_late_failures_within_the_budget_none_twice() {
    let start = Utc::now() - Duration::minutes(2);
    let sim = common::sim(200, 13, Profile::Realistic, |c| {
        c.traffic = Some(graph_sim::Traffic {
            per_minute: 10_000,
            seed: 5,
            start: Some(start),
        })
    })
    .await;
    let client = common::client(&sim, |_| {});
    let options = WatchOptions::for_share(
        std::time::Duration::from_secs(120),
        &mfa_auditor::graph::Pacing::default(),
        0.5,
    );
    let from = Watermark {
        start: Some(start),
        ..Watermark::default()
    };
    let first = read_sign_ins(&client, &from, &options, Utc::now())
        .await
        .expect("first read");
    assert!(!first.truncated, "{} pages", first.pages);
    assert!(first.watermark.seen.len() > 15_000);
    let codes = mfa_auditor::watch::classify::ERROR_CODES.len();
    assert_eq!(
        choose_sweep(&first.watermark, &options, 1),
        SweepChoice::Sweep,
        "{} rows in the overlap",
        first.watermark.seen.len()
    );
    let victim = first
        .events
        .iter()
        .find(|e| e.upn.contains('@'))
        .expect("a user signed in");
    let (victim_id, victim_upn) = (victim.user.to_string(), victim.upn.to_string());
    let newest = first.watermark.newest.expect("newest");
    let late = sim.user_fails_mfa(&victim_upn, 3, newest - Duration::seconds(90), 50088);
    assert_eq!(late.len(), 3);

    let second = read_sign_ins_for(
        &client,
        &first.watermark,
        &options,
        std::slice::from_ref(&victim_id),
        Utc::now(),
    )
    .await
    .expect("second read");
    assert!(
        second.pages <= options.max_sign_in_pages,
        "{} pages of {}",
        second.pages,
        options.max_sign_in_pages
    );
    assert!(
        second.sweep.pages as usize > codes,
        "a query per code and the user: {:?}",
        second.sweep
    );
    assert_eq!(second.sweep.pending, 0, "the sweep finished");
    assert!(
        second.pages < 15,
        "far fewer than the overlap whole: {}",
        second.pages
    );
    let got: Vec<&str> = second.events.iter().map(|e| &*e.id).collect();
    for id in &late {
        assert!(got.contains(&id.as_str()), "late failure {id} found");
    }
    assert!(second.sweep.late >= 3, "{:?}", second.sweep);
    let firsts: std::collections::HashSet<&str> = first.events.iter().map(|e| &*e.id).collect();
    assert!(
        got.iter().all(|id| !firsts.contains(id)),
        "none of the first read twice"
    );
    let mut unique = got.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), got.len(), "none twice within the read");
}
