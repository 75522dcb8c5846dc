//! Watcher benchmark (issue 12): the daemon's pass, `watch::run::Watcher::run` (the fresh read and
//! the late sweep, the directory audits, the classifier, the plans, one `Store::record_watch`
//! transaction) on one `GraphClient`, against graph-sim's traffic
//! generator (10,000 sign-ins a minute, real time: Graph's documented limits, unscaled) with a
//! lockout planted every minute, for a few minutes of watcher runs.
//!
//! `cargo bench --bench watch -- [SECONDS] [INTERVAL] [PER_MINUTE] [--shared-only]` (defaults
//! 180 60 10000; `--shared-only`: the 50 % mode alone).
//! Runs three times, each on a fresh simulator: with the old fixed cap (4 pages of sign-ins a
//! run), with the caps derived from 50 % of the reports budget (`WatchOptions::for_share`), and
//! with those caps and a 2-minute overlap instead of 15 (the overlap is re-read every run).
//!
//! Prints: sign-ins read per minute; lag from an event's `createdDateTime` to its recording
//! (p50/p99/max) and whether the watcher fell behind (runs stopped at their cap, and how far the
//! watermark trails the clock at the end); CPU seconds per minute of traffic (utime + stime of
//! this process from /proc/self/stat, as getrusage(RUSAGE_SELF) gives them; the simulator is a
//! child process); RSS; requests and 429s.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use mfa_auditor::collect::WatchOptions;
use mfa_auditor::graph::{GraphClient, Pacing};
use mfa_auditor::metrics::Metrics;
use mfa_auditor::state::Store;
use mfa_auditor::watch::classify::Thresholds;
use mfa_auditor::watch::run::{RunContext, Watcher};

/// Seconds after the simulator starts of the first planted lockout, then one a minute.
const FIRST_PLANT_S: u64 = 20;

/// In the child: a 2,000-user realistic tenant with `per_minute` sign-ins of traffic (real
/// time), and every minute from [`FIRST_PLANT_S`] one user failing MFA 6 times, the last failure
/// now (50088: graph-sim words 500121 as a declined push, which is prompt bombing, not a
/// lockout). Serves until standard input closes.
fn sim_child(per_minute: u32) -> ! {
    let config = graph_sim::SimConfig {
        tenant: graph_sim::TenantSource::Generated {
            users: 2000,
            seed: 1,
            profile: graph_sim::Profile::Realistic,
        },
        traffic: Some(graph_sim::Traffic {
            per_minute,
            seed: 7,
            start: None,
        }),
        ..graph_sim::SimConfig::default()
    };
    common::serve_sim_child(config, async |sim| {
        let people: Vec<String> = sim
            .ground_truth()
            .users
            .iter()
            .filter(|u| u.account_enabled && u.user_type == "Member" && !u.upn.contains("#EXT#"))
            .map(|u| u.id.clone())
            .collect();
        tokio::time::sleep(Duration::from_secs(FIRST_PLANT_S)).await;
        for i in 0.. {
            if let Some(user) = people.get(i * 37 % people.len().max(1)) {
                // 30 s apart: the first 150 s ago, the last now (never in the future).
                sim.user_fails_mfa(user, 6, Utc::now() - chrono::Duration::seconds(150), 50088);
            }
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    })
}

/// utime + stime of this process, seconds (/proc/self/stat fields 14 and 15, clock ticks of
/// 1/100 s: what getrusage(RUSAGE_SELF) reports).
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = f.get(11)?.parse().ok()?;
            let stime: f64 = f.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(f64::NAN)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// What one mode measured.
struct Figures {
    sign_ins: u64,
    lags: Vec<f64>,
    truncated_runs: u32,
    last_truncated: bool,
    runs: u32,
    trailing_s: f64,
    opened_locked_out: u64,
    /// Sign-ins found by the late sweep.
    late: u64,
}

/// The watcher's loop for `secs`, every `interval`, reading with `options`.
async fn watch_for(
    client: &GraphClient,
    options: &WatchOptions,
    secs: u64,
    interval: Duration,
) -> Figures {
    let store = Arc::new(Store::in_memory().unwrap_or_else(|e| panic!("store: {e}")));
    let metrics = Metrics::new("bench");
    let watcher_metrics = metrics.watcher();
    let mut watcher = Watcher::load(&store, "bench", Thresholds::default())
        .unwrap_or_else(|e| panic!("watcher: {e}"));
    let mut f = Figures {
        sign_ins: 0,
        lags: Vec::new(),
        truncated_runs: 0,
        last_truncated: false,
        runs: 0,
        trailing_s: 0.0,
        opened_locked_out: 0,
        late: 0,
    };
    let started = Instant::now();
    let bench_start = Utc::now();
    while started.elapsed() < Duration::from_secs(secs) {
        let tick = Instant::now();
        let now = Utc::now();
        // The daemon's pass (read, classify, plan, record in one transaction).
        let cx = RunContext {
            client,
            store: &store,
            options,
            subscribers: &[],
            break_glass: &[],
            mfa_exclusion_group: None,
            metrics: &watcher_metrics,
            now,
            auditing: false,
        };
        let s = watcher
            .run(&cx)
            .await
            .unwrap_or_else(|e| panic!("watcher run: {e}"));
        assert!(s.failed.is_empty(), "read failed: {:?}", s.failed);
        let recorded = Utc::now();
        // Lag of the traffic and planted sign-ins (those made while the bench ran), not of the
        // tenant's sign-ins of the hour before (the first read's lookback).
        for e in s.sign_ins.iter().filter(|e| **e >= bench_start) {
            f.lags
                .push((recorded - *e).num_milliseconds() as f64 / 1000.0);
        }
        let opened = s.recorded.as_ref().map_or(0, |r| {
            r.opened_states
                .iter()
                .filter(|x| **x == mfa_auditor::watch::LockoutState::LockedOut)
                .count() as u64
        });
        f.opened_locked_out += opened;
        f.late += s.sweep.late;
        f.sign_ins += s.sign_ins.len() as u64;
        f.runs += 1;
        f.truncated_runs += u32::from(s.sign_ins_truncated);
        f.last_truncated = s.sign_ins_truncated;
        println!(
            "  run {:>2} at {:>5.0} s: {:>6} sign-ins in {:>2} pages{} (sweep: {} pages, {} late, {} queries left{}) ({:.1} s), {} opened",
            f.runs,
            started.elapsed().as_secs_f64(),
            s.sign_ins.len(),
            s.sign_in_pages,
            if s.sign_ins_truncated {
                ", stopped at the cap"
            } else {
                ""
            },
            s.sweep.pages,
            s.sweep.late,
            s.sweep.pending,
            if s.sweep.deferred { ", deferred" } else { "" },
            tick.elapsed().as_secs_f64(),
            s.recorded.as_ref().map_or(0, |r| r.opened)
        );
        f.trailing_s = watcher.sign_ins_watermark().newest.map_or(f64::NAN, |n| {
            (Utc::now() - n).num_milliseconds() as f64 / 1000.0
        });
        let left = interval.saturating_sub(tick.elapsed());
        tokio::time::sleep(left).await;
    }
    f
}

async fn bench_mode(
    name: &str,
    options: &WatchOptions,
    secs: u64,
    interval: Duration,
    per_minute: u32,
) {
    let sim = common::SimChild::spawn(&["--watch-sim-child", &per_minute.to_string()], &[]);
    let client = sim.client(Pacing::default());
    let cpu0 = cpu_seconds();
    let wall = Instant::now();
    let mut f = watch_for(&client, options, secs, interval).await;
    let minutes = wall.elapsed().as_secs_f64() / 60.0;
    let cpu = cpu_seconds() - cpu0;
    let stats = sim.stats().await;
    f.lags.sort_by(f64::total_cmp);
    let planted = secs.saturating_sub(FIRST_PLANT_S).div_ceil(60);
    println!(
        "{name}: {} sign-in pages + {} audit pages a run at most, every {} s, for {:.1} min of {per_minute}/min traffic",
        options.max_sign_in_pages,
        options.max_audit_pages,
        interval.as_secs(),
        minutes
    );
    println!(
        "  read {:.0} sign-ins a minute ({} in {} runs); lag of those made during the run: p50 {:.1} s, p99 {:.1} s, max {:.1} s",
        f.sign_ins as f64 / minutes,
        f.sign_ins,
        f.runs,
        percentile(&f.lags, 0.5),
        percentile(&f.lags, 0.99),
        f.lags.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "  behind: {} of {} runs stopped at the cap; at the end the watermark trails the clock by {:.0} s{}",
        f.truncated_runs,
        f.runs,
        f.trailing_s,
        if f.last_truncated {
            " (FELL BEHIND: the last run still stopped at its cap)"
        } else {
            " (kept up: the last run read to the end)"
        }
    );
    println!(
        "  locked-out detections opened: {} (about {planted} planted; traffic may add its own); {} sign-ins found by the late sweep",
        f.opened_locked_out, f.late
    );
    println!(
        "  CPU {:.2} s per minute of traffic; RSS {:.1} MiB (peak {:.1} MiB)",
        cpu / minutes,
        common::status_mib("VmRSS:"),
        common::peak_rss_mib()
    );
    println!(
        "  requests: signIns {} (429: {}), directoryAudits {} (429: {}); all 429s: {}",
        stats.total("signIns"),
        stats.count("signIns", 429),
        stats.total("directoryAudits"),
        stats.count("directoryAudits", 429),
        stats.throttled()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--watch-sim-child") {
        let n = args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(10_000);
        sim_child(n);
    }
    let nums: Vec<u64> = args.iter().skip(1).filter_map(|a| a.parse().ok()).collect();
    let secs = nums.first().copied().unwrap_or(180);
    let interval = Duration::from_secs(nums.get(1).copied().unwrap_or(60));
    let per_minute = nums.get(2).copied().unwrap_or(10_000) as u32;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    rt.block_on(async {
        println!("Graph's documented limits, unscaled (reports: 5 requests / 10 s, 95 % headroom)");
        let only_short = args.iter().any(|a| a == "--short-overlap-only");
        let only_shared = args.iter().any(|a| a == "--shared-only");
        if !only_short && !only_shared {
            bench_mode(
                "fixed cap",
                &WatchOptions::default(),
                secs,
                interval,
                per_minute,
            )
            .await;
        }
        let shared = WatchOptions::for_share(interval, &Pacing::default(), 0.5);
        if !only_short {
            bench_mode(
                "50 % of the reports budget",
                &shared,
                secs,
                interval,
                per_minute,
            )
            .await;
        }
        if only_shared {
            return;
        }
        // Before the late sweep the overlap was re-read every run that was not catching up (at
        // 10,000 a minute a 15-min overlap is 150 pages); now it is swept. A 2-min overlap:
        let short = WatchOptions {
            overlap: chrono::Duration::minutes(2),
            ..shared
        };
        bench_mode(
            "50 % of the reports budget, 2-min overlap",
            &short,
            secs,
            interval,
            per_minute,
        )
        .await;
    });
}
