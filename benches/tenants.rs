//! Many-tenants benchmark (issue 14): one `mfa-auditor run` daemon auditing N tenants of M users
//! each, side by side, against a graph-sim cloud (one listener, every tenant, one multi-tenant
//! app) at Graph's documented limits time-scaled — both in child processes, measured from outside
//! as an operator would.
//!
//! Graph throttles per app *per tenant* (docs/graph.md, "Many tenants"), so a round over N
//! tenants is bounded by its largest tenant's throttle bound, not by the sum. Prints:
//! - the largest tenant's throttle bound (its successful requests per class, each class spending
//!   its burst then refilling at its documented rate, as benches/collect.rs computes it), scaled;
//! - the round's wall time: from spawning the daemon until every tenant has a complete audit
//!   (`mfa_auditor_audit_last_success_timestamp_seconds{tenant=…}` > 0 on `/metrics`), and when
//!   the first, median and last tenant completed;
//! - their ratio (goal ≤ 1.3), the daemon's peak RSS (`VmHWM`, goal ≤ 300 MiB), 429s (goal 0);
//! - before a many-tenant size, the same for one tenant of that size alone, and the round's
//!   ratio to it (what N tenants side by side cost beyond one).
//!
//! `cargo bench --bench tenants` (200 tenants × 5,000 users) or
//! `cargo bench --bench tenants -- 20x1000` (sizes as TENANTSxUSERS, several allowed).
//! `MFA_BENCH_CONCURRENCY=K` sets `[daemon] max_concurrent_audits` (default: every tenant at once).
//! With one tenant (`1x5000`) the config is a plain `[tenant]` file (any daemon can run it).

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// graph-sim's buckets refill this many times faster than Graph's; the daemon is told so
/// (`[graph.pacing] simulator_time_scale`). 1: Graph's own limits. A 5,000-user tenant's audit
/// makes 7 reports requests (5 registration-report pages, sign-ins, directory audits) against a
/// burst of 5 and a refill of 0.5 a second: its throttle bound is about 4 s of Graph time. A
/// bound of tens of seconds would need time slowed down (a scale below 1), which the daemon
/// refuses (`simulator_time_scale` must be 1 or more), so the round is measured at Graph's real
/// limits; the bench also runs one tenant alone first, to show what a round costs beyond one
/// tenant's audit (the daemon's own work, which no time scale shrinks).
const SCALE: f64 = 1.0;
const DAEMON: &str = env!("CARGO_BIN_EXE_mfa-auditor");
const COMPLETE: &str = "mfa_auditor_audit_last_success_timestamp_seconds";
const ATTEMPTED: &str = "mfa_auditor_audit_last_attempt_timestamp_seconds";

/// The daemon binary running `run`, killed on drop; on a panic its log tail is printed first.
struct Daemon {
    child: Child,
    pid: u32,
    /// The last log lines, and the address from its "listening" line.
    log: Arc<Mutex<(VecDeque<String>, Option<String>)>>,
}

impl Daemon {
    fn start(config: &Path, secret: &str) -> Daemon {
        let mut child = Command::new(DAEMON)
            .args([
                "--log-level",
                "info",
                "--log-format",
                "json",
                "run",
                "--config",
            ])
            .arg(config)
            .env("SIM_SECRET", secret)
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {DAEMON}: {e}"));
        let pid = child.id();
        let log = Arc::new(Mutex::new((VecDeque::new(), None)));
        if let Some(stderr) = child.stderr.take() {
            let sink = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let mut log = sink.lock().unwrap_or_else(|e| e.into_inner());
                    if log.1.is_none() {
                        log.1 = listening_addr(&line);
                    }
                    if log.0.len() == 200 {
                        log.0.pop_front();
                    }
                    log.0.push_back(line);
                }
            });
        }
        Daemon { child, pid, log }
    }

    fn addr(&self) -> Option<String> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).1.clone()
    }

    /// Panics (the guard then prints the log tail) if the daemon has exited.
    fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("the daemon exited ({status}) before the round finished");
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "---- the daemon's last {} log lines ----", log.0.len());
            for line in &log.0 {
                let _ = writeln!(err, "{line}");
            }
            let _ = writeln!(err, "---- end of the daemon's log ----");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `addr` of a JSON "listening" log line.
fn listening_addr(line: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = v.get("fields")?;
    (fields.get("message")?.as_str()? == "listening")
        .then(|| fields.get("addr")?.as_str().map(str::to_owned))
        .flatten()
}

/// Every sample of `name` by its `tenant` label.
fn by_tenant(metrics: &str, name: &str) -> BTreeMap<String, f64> {
    metrics
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix('{')?;
            let (labels, value) = rest.rsplit_once("} ")?;
            let tenant = labels.split("tenant=\"").nth(1)?.split('"').next()?;
            Some((tenant.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// The daemon's configuration: every tenant of the cloud with the one app's id and secret
/// (`SIM_SECRET`), the watcher off, one audit at start (the cron is yearly), `cap` audits at once.
fn config_text(cloud: &common::CloudChild, state: &Path, cap: usize) -> String {
    let tenant = |key: &str, name: Option<String>, id: &str| {
        let name = name.map_or(String::new(), |n| format!("name = \"{n}\"\n"));
        format!(
            "[{key}]\n{name}tenant_id = \"{id}\"\nclient_id = \"{c}\"\ncloud = \"custom\"\ngraph_url = \"{b}\"\nlogin_url = \"{b}\"\nclient_secret_env = \"SIM_SECRET\"\n\n",
            c = cloud.client,
            b = cloud.base,
        )
    };
    let tenants: String = if cloud.tenants.len() == 1 {
        tenant("tenant", None, &cloud.tenants[0])
    } else {
        cloud
            .tenants
            .iter()
            .enumerate()
            .map(|(i, id)| tenant("[tenants]", Some(format!("t{:03}", i + 1)), id))
            .collect()
    };
    let daemon = if cloud.tenants.len() == 1 {
        String::new()
    } else {
        format!("[daemon]\nmax_concurrent_audits = {cap}\n\n")
    };
    format!(
        "{tenants}[graph.pacing]\nsimulator_time_scale = {SCALE}\n\n\
         [schedule]\ncron = \"0 0 0 1 1 *\"\nrun_at_start = true\nstale_after_seconds = 86400\n\n\
         [watcher]\nenabled = false\n\n{daemon}\
         [storage]\npath = \"{p}\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n",
        p = state.display(),
    )
}

/// `VmRSS` every 100 ms until `stop`: (the largest sample, the last).
fn sample_rss(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(f64, f64)> {
    std::thread::spawn(move || {
        let (mut max, mut last) = (0.0f64, f64::NAN);
        while !stop.load(Ordering::Relaxed) {
            let (rss, _) = common::process_rss_mib(pid);
            if rss.is_finite() {
                max = max.max(rss);
                last = rss;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        (max, last)
    })
}

/// `wall / bound`, or "n/a" when the bound is nil (every class within its burst: no throttle
/// wait at all, so any wall time is "infinitely" over it and the ratio says nothing).
fn ratio(wall: f64, bound: f64) -> String {
    if bound < 0.05 {
        "n/a".into()
    } else {
        format!("{:.3}", wall / bound)
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// One size's figures, for the closing table.
struct Row {
    tenants: usize,
    users: usize,
    bound: f64,
    wall: f64,
    peak: f64,
    throttled: u64,
    complete: usize,
}

async fn bench(tenants: usize, users: usize) -> Row {
    let cap = std::env::var("MFA_BENCH_CONCURRENCY")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(tenants);
    println!(
        "\n== {tenants} tenants × {users} users, one daemon, max_concurrent_audits = {cap} (load average {})",
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    let t = Instant::now();
    let cloud = common::CloudChild::spawn(tenants, users);
    assert_eq!(cloud.tenants.len(), tenants, "the cloud's tenants");
    println!(
        "graph-sim cloud up in {:.1} s ({} tenants generated, one listener {})",
        t.elapsed().as_secs_f64(),
        tenants,
        cloud.base
    );
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let state = dir.path().join("state.db");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_text(&cloud, &state, cap))
        .unwrap_or_else(|e| panic!("writing {}: {e}", config.display()));

    let started = Instant::now();
    let mut daemon = Daemon::start(&config, &cloud.secret);
    let addr = loop {
        if let Some(a) = daemon.addr() {
            break a;
        }
        daemon.check_alive();
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no \"listening\" line from the daemon in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let listening = started.elapsed().as_secs_f64();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_rss(daemon.pid, stop.clone());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"));

    // Poll /metrics until every tenant has a complete audit, or every tenant has finished one
    // (some incomplete), or the limit. (`/metrics` rather than the lead's `/api/v1/tenants`: it
    // is what an operator's Prometheus sees, and any daemon has it.)
    let limit = Duration::from_secs(600) + Duration::from_millis((tenants * users) as u64);
    let mut done_at: BTreeMap<String, f64> = BTreeMap::new();
    let mut attempted: BTreeMap<String, f64> = BTreeMap::new();
    let mut scrapes = Vec::new();
    loop {
        daemon.check_alive();
        let t = Instant::now();
        if let Ok(text) = async {
            http.get(format!("http://{addr}/metrics"))
                .send()
                .await?
                .text()
                .await
        }
        .await
        {
            scrapes.push(t.elapsed().as_secs_f64() * 1000.0);
            let now = started.elapsed().as_secs_f64();
            for (tenant, v) in by_tenant(&text, COMPLETE) {
                if v > 0.0 {
                    done_at.entry(tenant).or_insert(now);
                }
            }
            for (tenant, v) in by_tenant(&text, ATTEMPTED) {
                if v > 0.0 {
                    attempted.entry(tenant).or_insert(now);
                }
            }
        }
        if done_at.len() >= tenants || attempted.len() >= tenants {
            break;
        }
        if started.elapsed() > limit {
            println!(
                "!! timed out after {:.0} s: {} of {tenants} tenants complete, {} attempted",
                limit.as_secs_f64(),
                done_at.len(),
                attempted.len()
            );
            break;
        }
        // A scrape of many tenants' series costs the daemon CPU: poll at most 10 % of the time.
        let last = Duration::from_secs_f64(scrapes.last().copied().unwrap_or(0.0) / 1000.0);
        tokio::time::sleep(Duration::from_millis(250).max(last * 10)).await;
    }
    // A round that did not finish is at least as long as the wait.
    let wall = if done_at.len() >= tenants {
        done_at.values().copied().fold(0.0, f64::max)
    } else {
        started.elapsed().as_secs_f64()
    };
    let finished = if done_at.len() >= tenants { "" } else { "≥ " };
    stop.store(true, Ordering::Relaxed);
    let (max_rss, last_rss) = sampler.join().unwrap_or((f64::NAN, f64::NAN));
    let (_, hwm) = common::process_rss_mib(daemon.pid);

    let stats = cloud.stats().await;
    let mut bounds: Vec<(f64, &'static str, String)> = stats
        .tenants
        .iter()
        .map(|t| {
            let (b, class) = common::throttle_bound_real(&t.stats);
            (b / SCALE, class, t.tenant_id.clone())
        })
        .collect();
    bounds.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (bound, binding, largest) =
        bounds
            .first()
            .cloned()
            .unwrap_or((f64::NAN, "none", String::new()));
    let throttled: u64 = stats.tenants.iter().map(|t| t.stats.throttled()).sum();
    let requests: u64 = stats
        .tenants
        .iter()
        .flat_map(|t| t.stats.requests.values())
        .flat_map(|m| m.values())
        .sum();
    let tokens: u64 = stats.tenants.iter().map(|t| t.stats.tokens_issued).sum();
    let mut times: Vec<f64> = done_at.values().copied().collect();
    times.sort_by(f64::total_cmp);
    scrapes.sort_by(f64::total_cmp);

    println!("daemon listening   {listening:>9.2} s after spawn");
    println!(
        "complete audits    {:>9} of {tenants} (audits finished: {}; incomplete ones: {})",
        done_at.len(),
        attempted.len(),
        attempted
            .keys()
            .filter(|t| !done_at.contains_key(*t))
            .count()
    );
    println!(
        "tenants complete   first {:.2} s, median {:.2} s, last {:.2} s after spawn",
        quantile(&times, 0.0),
        quantile(&times, 0.5),
        quantile(&times, 1.0)
    );
    println!(
        "throttle bound     {bound:>9.2} s  (largest tenant {largest}, binding class: {binding}; real {:.0} s; ×{SCALE} time scale)",
        bound * SCALE
    );
    println!("round wall time  {finished:>2}{wall:>9.2} s  (spawn → every tenant complete)");
    println!(
        "ratio              {:>9}    (goal ≤ 1.3)",
        ratio(wall, bound)
    );
    println!("peak RSS           {hwm:>9.1} MiB (VmHWM; goal ≤ 300); largest VmRSS sample {max_rss:.1} MiB, at the end {last_rss:.1} MiB");
    println!("429s received      {throttled:>9}      (goal 0)");
    for t in stats.tenants.iter().filter(|t| t.stats.throttled() > 0) {
        let by: Vec<String> = t
            .stats
            .requests
            .iter()
            .filter_map(|(e, m)| m.get(&429).map(|n| format!("{e} {n}")))
            .collect();
        println!("  429s in {}: {}", t.tenant_id, by.join(", "));
    }
    println!(
        "Graph requests     {requests:>9}      ({:.1} a tenant; tokens issued {tokens}; refused for naming no tenant {})",
        requests as f64 / tenants.max(1) as f64,
        stats.unrouted
    );
    println!(
        "/metrics scrape    p50 {:.1} ms, max {:.1} ms over {} scrapes",
        quantile(&scrapes, 0.5),
        quantile(&scrapes, 1.0),
        scrapes.len()
    );
    let mut by_endpoint: BTreeMap<&str, BTreeMap<u16, u64>> = BTreeMap::new();
    for t in &stats.tenants {
        for (endpoint, statuses) in &t.stats.requests {
            let e = by_endpoint.entry(endpoint.as_str()).or_default();
            for (s, n) in statuses {
                *e.entry(*s).or_default() += n;
            }
        }
    }
    println!("requests by endpoint, all tenants:");
    for (endpoint, statuses) in &by_endpoint {
        println!("  {endpoint:<36} {statuses:?}");
    }
    Row {
        tenants,
        users,
        bound,
        wall,
        peak: hwm,
        throttled,
        complete: done_at.len(),
    }
}

/// `TENANTSxUSERS` arguments (e.g. `20x1000`); the default when none.
fn sizes() -> Vec<(usize, usize)> {
    let asked: Vec<(usize, usize)> = std::env::args()
        .skip(1)
        .filter_map(|a| {
            let (t, u) = a.split_once('x')?;
            Some((t.parse().ok()?, u.parse().ok()?))
        })
        .filter(|(t, u)| *t > 0 && *u > 0)
        .collect();
    if asked.is_empty() {
        vec![(200, 5000)]
    } else {
        asked
    }
}

fn main() {
    common::cloud_child_if_asked(SCALE);
    let sizes = sizes();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    rt.block_on(async {
        println!("daemon {DAEMON}; graph-sim cloud, realistic profile, limits ×{SCALE}");
        let mut rows = Vec::new();
        for &(tenants, users) in &sizes {
            let alone = if tenants > 1 {
                Some(bench(1, users).await.wall)
            } else {
                None
            };
            rows.push((bench(tenants, users).await, alone));
        }
        println!("\n| tenants × users | complete | largest tenant's bound | round wall | ratio (≤ 1.3) | one tenant alone | round / alone | peak RSS (≤ 300 MiB) | 429s |");
        println!("|---|---|---|---|---|---|---|---|---|");
        for (r, alone) in rows {
            let alone = alone.map_or(("–".to_string(), "–".to_string()), |a| {
                (format!("{a:.1} s"), format!("{:.2}", r.wall / a.max(1e-9)))
            });
            println!(
                "| {} × {} | {} | {:.1} s | {:.1} s | {} | {} | {} | {:.0} MiB | {} |",
                r.tenants,
                r.users,
                r.complete,
                r.bound,
                r.wall,
                ratio(r.wall, r.bound),
                alone.0,
                alone.1,
                r.peak,
                r.throttled
            );
        }
    });
}
