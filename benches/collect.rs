//! Collection benchmark: 100,000 and 1,000,000-user simulated tenants read under Graph's
//! documented throttle limits (time-scaled), against the lower bound those limits allow, and the
//! per-user way (one `/authentication/methods` request per user) for comparison.
//!
//! `cargo bench --bench collect` (all sizes) or `cargo bench --bench collect -- 100000` (one).
//! `-- 100000 --with-watcher`: the daemon's watcher pass (`Watcher::run`, told an audit is
//! running, so it yields) reads on the same client (same pacer) every interval while the audit runs, against graph-sim traffic of 1,000 sign-ins a (scaled) minute;
//! the audit's ratio is to the bound of its own requests (the watcher's taken out).
//! The simulator runs in a child process, so the peak RSS printed is the collector's alone.
//!
//! Prints, per tenant: wall time; the throttle-budget lower bound (the binding class's requests
//! at its documented rate, time-scaled); their ratio; requests per endpoint; 429s; peak RSS.

mod common;

use std::time::Instant;

use futures::StreamExt;
use mfa_auditor::collect::{collect_with_report, wire, CollectOptions};
use mfa_auditor::graph::{GraphClient, Pacing, ThrottleClass};

/// Buckets refill this many times faster than Graph's: 1,000 registration pages take ~20 s, not ~33 min.
const SCALE: f64 = 100.0;

/// Resets the peak RSS counter (Linux ≥ 4.0), so each tenant's peak is its own.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The watcher's requests while it ran beside the audit.
#[derive(Default)]
struct WatcherFigures {
    runs: u64,
    sign_in_pages: u64,
    audit_pages: u64,
    sign_ins: u64,
    behind_runs: u64,
    failures: u64,
    /// Pages of the late sweep (in `sign_in_pages` too), runs it was deferred.
    sweep_pages: u64,
    deferred: u64,
}

/// The daemon's watcher pass (`watch::run::Watcher::run`: reads, classifier, plans, store) every
/// `interval` until `stop`, told an audit is running (`RunContext::auditing`, as the daemon's
/// `Shared::running` tells it) so it yields the reports bucket.
async fn watcher_loop(
    client: GraphClient,
    interval: std::time::Duration,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> WatcherFigures {
    use mfa_auditor::state::Store;
    use mfa_auditor::watch::run::{RunContext, Watcher};
    let mut options =
        mfa_auditor::config::WatcherConfig::default().watch_options(&Pacing::default());
    // Graph's late sign-ins are late by Graph time: the overlap scales with the clock.
    options.overlap =
        chrono::Duration::milliseconds((options.overlap.num_milliseconds() as f64 / SCALE) as i64);
    let store = std::sync::Arc::new(Store::in_memory().unwrap_or_else(|e| panic!("store: {e}")));
    let metrics = mfa_auditor::metrics::Metrics::new("bench");
    let watcher_metrics = metrics.watcher();
    let mut watcher = Watcher::load(&store, "bench", Default::default())
        .unwrap_or_else(|e| panic!("watcher: {e}"));
    let mut f = WatcherFigures::default();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let tick = Instant::now();
        let cx = RunContext {
            client: &client,
            store: &store,
            options: &options,
            subscribers: &[],
            break_glass: &[],
            mfa_exclusion_group: None,
            metrics: &watcher_metrics,
            now: chrono::Utc::now(),
            auditing: true,
        };
        f.runs += 1;
        match watcher.run(&cx).await {
            Ok(o) if o.failed.is_empty() => {
                f.sign_in_pages += u64::from(o.sign_in_pages);
                f.audit_pages += u64::from(o.audit_pages);
                f.sweep_pages += u64::from(o.sweep.pages);
                f.deferred += u64::from(o.sweep.deferred);
                f.sign_ins += o.sign_ins.len() as u64;
                f.behind_runs += u64::from(o.sign_ins_truncated);
            }
            _ => f.failures += 1,
        }
        tokio::time::sleep(interval.saturating_sub(tick.elapsed())).await;
    }
    f
}

async fn bench_tenant(users: usize, with_watcher: bool) {
    println!("\n== {users} users: the mfa-auditor way (one paged report sweep + $batch detail for the few who need it){}",
        if with_watcher { ", with the sign-in watcher reading on the same client" } else { "" });
    // 1,000 sign-ins a scaled minute: SCALE times that a wall-clock minute.
    let traffic = if with_watcher {
        (1000.0 * SCALE) as u32
    } else {
        0
    };
    let sim = common::SimChild::spawn(
        &["--sim-child", &users.to_string()],
        &[(common::TRAFFIC_ENV, traffic.to_string())],
    );
    let client = sim.client(Pacing::default().scaled(SCALE));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The daemon's default interval (120 s), scaled.
    let interval = std::time::Duration::from_secs_f64(120.0 / SCALE);
    let watcher =
        with_watcher.then(|| tokio::spawn(watcher_loop(client.clone(), interval, stop.clone())));
    reset_peak_rss();
    let started = Instant::now();
    let report = collect_with_report(
        &client,
        &CollectOptions::default(),
        chrono::Utc::now(),
        &sim.tenant,
    )
    .await;
    let wall = started.elapsed();
    let rss = common::peak_rss_mib();
    let snap = &report.snapshot;
    assert!(
        snap.is_complete(),
        "benchmark collection incomplete: {:?}",
        snap.coverage.gaps
    );
    assert_eq!(snap.users.len(), users);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let watched = match watcher {
        Some(w) => Some(w.await.unwrap_or_else(|e| panic!("watcher: {e}"))),
        None => None,
    };
    let stats = sim.stats().await;
    // The audit's own bound: the watcher's sign-in pages taken out (graph-sim counts both as
    // signIns; directoryAudits is not an audit endpoint).
    let mut audit_stats = stats.clone();
    if let (Some(w), Some(m)) = (&watched, audit_stats.requests.get_mut("signIns")) {
        if let Some(ok) = m.get_mut(&200) {
            *ok = ok.saturating_sub(w.sign_in_pages);
        }
    }
    let (bound_real, binding) = common::throttle_bound_real(&audit_stats);
    let bound = bound_real / SCALE;
    if let Some(w) = &watched {
        println!(
            "watcher              {:>10} runs every {:.1} s (120 s scaled): {} sign-in pages, {} directory-audit pages, {} sign-ins, {} runs at the cap, {} failed; yielding to the audit: sweep {} pages, deferred in {} runs",
            w.runs,
            interval.as_secs_f64(),
            w.sign_in_pages,
            w.audit_pages,
            w.sign_ins,
            w.behind_runs,
            w.failures,
            w.sweep_pages,
            w.deferred
        );
    }
    println!(
        "wall time            {:>10.2} s  (Graph real time ≈ {:.0} s = {:.1} min)",
        wall.as_secs_f64(),
        wall.as_secs_f64() * SCALE,
        wall.as_secs_f64() * SCALE / 60.0
    );
    println!(
        "throttle lower bound {:>10.2} s  (binding class: {binding}; real {:.0} s)",
        bound, bound_real
    );
    println!(
        "ratio                {:>10.3}    (goal ≤ 1.2; ≤ 1.15 with the watcher)",
        wall.as_secs_f64() / bound.max(1e-9)
    );
    println!(
        "429s received        {:>10}      (goal 0)",
        stats.throttled()
    );
    println!(
        "peak RSS             {:>10.1} MiB (goal ≤ 400 at 1,000,000 users)",
        rss
    );
    if watched.is_some() {
        let (all_real, _) = common::throttle_bound_real(&stats);
        println!(
            "ratio, all requests  {:>10.3}    (to the bound of the audit's and the watcher's sign-in pages together)",
            wall.as_secs_f64() / (all_real / SCALE).max(1e-9)
        );
    }
    println!("requests by endpoint:");
    for (endpoint, statuses) in &stats.requests {
        let total: u64 = statuses.values().sum();
        println!("  {endpoint:<42} {total:>8}  {statuses:?}");
    }
    for s in &report.sweeps {
        println!(
            "  sweep {:<20} {:>9} items {:>8.2} s",
            s.name,
            s.items,
            s.duration.as_secs_f64()
        );
    }
}

async fn bench_per_user(users: usize) {
    println!("\n== {users} users: the per-user way (list users, then GET /users/{{id}}/authentication/methods for each, same pacing)");
    let sim = common::SimChild::spawn(&["--sim-child", &users.to_string()], &[]);
    let client = sim.client(Pacing::default().scaled(SCALE));
    let started = Instant::now();
    let mut ids: Vec<String> = Vec::with_capacity(users);
    client
        .get_pages::<wire::User, _>(
            ThrottleClass::Directory,
            "users",
            "/v1.0/users?$select=id&$top=999",
            |page| {
                ids.extend(page.into_iter().filter_map(|u| u.id));
                Ok(())
            },
        )
        .await
        .unwrap_or_else(|e| panic!("users: {e}"));
    let failures = futures::stream::iter(ids.iter())
        .map(|id| {
            let client = &client;
            async move {
                client
                    .get_json::<wire::Page<wire::AuthMethod>>(
                        ThrottleClass::AuthMethods,
                        "authenticationMethods",
                        &format!("/v1.0/users/{id}/authentication/methods"),
                    )
                    .await
                    .is_err()
            }
        })
        .buffer_unordered(8)
        .filter(|failed| futures::future::ready(*failed))
        .count()
        .await;
    let wall = started.elapsed();
    assert_eq!(failures, 0);
    let stats = sim.stats().await;
    let requests: u64 = stats.requests.values().flat_map(|m| m.values()).sum();
    let (bound_real, _) = common::throttle_bound_real(&stats);
    println!("requests             {:>10}", requests);
    println!(
        "wall time            {:>10.2} s  (scaled; throttle bound {:.2} s)",
        wall.as_secs_f64(),
        bound_real / SCALE
    );
    println!("Graph real time, if per-user method reads get the directory-sized budget (8,000 / 10 s): ≥ {:.0} s", bound_real);
    let reports_reading = (users as f64 - 5.0) / 0.5;
    println!(
        "Graph real time, if they fall in the reports bucket (5 / 10 s; REFERENCE §3.6, the literal reading): ≥ {:.0} s = {:.1} h",
        reports_reading,
        reports_reading / 3600.0
    );
    println!("429s received        {:>10}", stats.throttled());
}

fn main() {
    let sizes = common::sim_child_or_sizes(SCALE, &[100_000, 1_000_000]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    rt.block_on(async {
        println!("time scale {SCALE}: every throttle bucket refills {SCALE}x faster than Graph's documented limits");
        let with_watcher = std::env::args().any(|a| a == "--with-watcher");
        for &n in &sizes {
            bench_tenant(n, with_watcher).await;
        }
        if with_watcher {
            return;
        }
        if let Some(&n) = sizes.iter().find(|n| **n <= 100_000).or(sizes.first()) {
            bench_per_user(n).await;
        }
    });
}
