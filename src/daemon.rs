//! The daemon: audits on the cron schedule (and once at start), one at a time, and publishes each
//! audit to the state store and the metrics; serves HTTP; reloads a validated config on SIGHUP
//! (a bad one is logged and the old one kept); stops cleanly on SIGTERM, cancelling an audit in
//! flight (the store's transactions keep it consistent). Speaks systemd's `sd_notify`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use tokio::sync::watch;

use crate::alerting::Alerting;
use crate::config::Config;
use crate::evaluate::exceptions::Judged;
use crate::graph::GraphClient;
use crate::metrics::Metrics;
use crate::report::Report;
use crate::snapshot::DataSet;
use crate::state::{RunHead, Store};

/// What the HTTP handlers and the scheduler share.
pub struct Shared {
    pub config: RwLock<Arc<Config>>,
    pub client: RwLock<GraphClient>,
    pub store: Arc<Store>,
    pub metrics: Metrics,
    pub alerting: RwLock<Arc<Alerting>>,
    pub last_audit: RwLock<Option<Arc<AuditSummary>>>,
    pub running: AtomicBool,
    /// Set on SIGTERM: an audit being recorded rolls back instead of holding the stop.
    pub stopping: AtomicBool,
    pub skipped_runs: AtomicU64,
    config_path: PathBuf,
}

impl Shared {
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    pub fn client(&self) -> GraphClient {
        self.client
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    pub fn alerting(&self) -> Arc<Alerting> {
        self.alerting
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    pub fn last_audit(&self) -> Option<Arc<AuditSummary>> {
        self.last_audit
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// What the overview shows of the last audit: counts and reasons, never its findings (a
/// report of a large tenant is hundreds of MB; this is a few hundred bytes per rule).
#[derive(Clone, Debug, PartialEq)]
pub struct AuditSummary {
    pub finished_at: chrono::DateTime<Utc>,
    pub complete: bool,
    pub users_in_scope: usize,
    pub open: usize,
    pub excepted: usize,
    /// Open findings by rule.
    pub by_rule: Vec<(String, usize)>,
    /// Rules the audit could not judge, and why.
    pub skipped: Vec<crate::state::SkippedRule>,
    pub incomplete_reasons: Vec<String>,
}

impl AuditSummary {
    /// Reads only the report's summary, skipped rules, reasons and scalar fields.
    pub fn of(report: &Report) -> AuditSummary {
        AuditSummary {
            finished_at: report.finished_at,
            complete: report.complete,
            users_in_scope: report.users_in_scope,
            open: report.summary.by_severity.values().sum(),
            excepted: report.summary.excepted,
            by_rule: report
                .summary
                .by_rule
                .iter()
                .map(|(rule, n)| (rule.to_string(), *n))
                .collect(),
            skipped: report
                .skipped
                .iter()
                .map(|s| crate::state::SkippedRule {
                    rule: s.rule.to_string(),
                    reason: s.reason.clone(),
                })
                .collect(),
            incomplete_reasons: report.incomplete_reasons.clone(),
        }
    }
}

/// Tells systemd (when it is listening) about our state. Best effort: no socket, no message.
pub fn notify(state: &str) {
    #[cfg(unix)]
    {
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
            return;
        };
        let Ok(socket) = std::os::unix::net::UnixDatagram::unbound() else {
            return;
        };
        let bytes = path.as_encoded_bytes();
        let sent = if let Some(abstract_name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)
                .and_then(|addr| socket.send_to_addr(state.as_bytes(), &addr))
        } else {
            socket.send_to(state.as_bytes(), Path::new(&path))
        };
        if let Err(e) = sent {
            tracing::debug!("sd_notify: {e}");
        }
    }
}

fn build_client(config: &Config) -> anyhow::Result<GraphClient> {
    let credential = config.credential()?;
    Ok(GraphClient::new(config.client_config(), credential)?)
}

/// One scheduled audit, unless one is running already (then it is skipped and counted).
fn trigger(shared: &Arc<Shared>, tasks: &mut tokio::task::JoinSet<()>) {
    if shared.running.swap(true, Ordering::SeqCst) {
        let n = shared.skipped_runs.fetch_add(1, Ordering::Relaxed) + 1;
        shared.metrics.audit_skipped();
        tracing::warn!(
            skipped = n,
            "an audit is still running; this run is skipped"
        );
        return;
    }
    let shared = shared.clone();
    tasks.spawn(async move {
        let config = shared.config();
        let client = shared.client();
        notify("STATUS=auditing");
        tracing::info!("audit started");
        // Fresh TAPs are looked up in the directory audit log since the last complete audit.
        let previous = shared
            .store
            .last_complete(&config.tenant.tenant_id)
            .ok()
            .flatten()
            .map(|r| r.started_at);
        let reading = Instant::now();
        let read = crate::audit::read_tenant(&config, &client, previous).await;
        shared.metrics.audit_phase("read", reading.elapsed());
        let requests: u64 = client.stats().requests_by_endpoint().values().sum();
        // Judging, recording and publishing are CPU and SQLite work: off the async threads, so
        // HTTP answers while a million users' findings are written.
        let worker = shared.clone();
        let done = tokio::task::spawn_blocking(move || {
            record_and_publish(&worker, &config, read, requests)
        })
        .await;
        match done {
            Ok(Ok(report)) => {
                if report.complete {
                    notify(&format!(
                        "STATUS=last audit complete: {} findings",
                        report.open_count()
                    ));
                } else {
                    tracing::warn!("audit incomplete: {}", report.incomplete_reasons.join("; "));
                    notify("STATUS=last audit INCOMPLETE");
                }
                *shared.last_audit.write().unwrap_or_else(|e| e.into_inner()) =
                    Some(Arc::new(AuditSummary::of(&report)));
            }
            Ok(Err(e)) => tracing::error!("recording the audit failed: {e:#}"),
            Err(e) => tracing::error!("recording the audit failed: {e}"),
        }
        shared.running.store(false, Ordering::SeqCst);
    });
}

/// Judges what an audit read, streaming its findings into the store (one transaction), then
/// publishes: metrics, alerting, the posture kept for restarts, pruning. Blocks.
fn record_and_publish(
    shared: &Shared,
    config: &Config,
    read: crate::audit::Read,
    requests: u64,
) -> anyhow::Result<Report> {
    let alerting = shared.alerting();
    let tenant = config.tenant.tenant_id.as_str();
    let head = RunHead {
        tenant,
        started_at: read.started_at,
        complete: read.snapshot.is_complete(),
        graph_requests: requests,
    };
    let recording = Instant::now();
    let critical_cap = config.per_user_series().unwrap_or(0);
    let mut users: Option<crate::state::UserChanges> = None;
    // Drift between audits needs a previous audit that recorded users.
    let previous = shared.store.last_complete(tenant)?.map(|r| r.started_at);
    let (report, changes) =
        shared.store.record_audit(
            &head,
            alerting.subscribers(),
            &mut |sink| {
                let report = crate::audit::judge_into(config, &read, critical_cap, &mut |judged| {
                    match &judged {
                        Judged::Open(f) => sink(f, false),
                        Judged::Excepted(e) => sink(&e.finding, true),
                    }
                });
                // Stopping: roll the audit back rather than hold SIGTERM for the commit.
                if shared.stopping.load(Ordering::SeqCst) {
                    return Err(crate::state::StateError::Stopped);
                }
                Ok(report)
            },
            &mut |tx, audit_id| {
                // Each user's posture, only when their methods were read (else every user
                // would read as changed to unknown, or as gone).
                let coverage = &read.snapshot.coverage;
                let methods_read = coverage.has(DataSet::Registration)
                    || (coverage.licence_fallback && coverage.has(DataSet::MethodDetail));
                if coverage.has(DataSet::Users) && methods_read {
                    users = Some(crate::state::record_users_tx(
                        tx,
                        tenant,
                        audit_id,
                        read.started_at,
                        &read.snapshot.users,
                    )?);
                }
                Ok(())
            },
        )?;
    drop(read);
    let record_took = recording.elapsed();
    shared.metrics.audit_phase("record", record_took);
    let publishing = Instant::now();
    let oldest = shared.store.oldest_open_by_rule(tenant)?;
    shared
        .metrics
        .observe_with(&report, &config.rules, &oldest, config.per_user_series());
    if let (Some(_), Some(previous)) = (&users, previous) {
        match crate::watch::run::record_drift(
            &shared.store,
            tenant,
            changes.audit_id,
            head.started_at,
            previous,
            alerting.subscribers(),
        ) {
            Ok(Some(r)) => tracing::info!(
                security_events = r.security_events,
                notable = r.notable,
                "recovery families lost since the previous audit noted"
            ),
            Ok(None) => {}
            Err(e) => tracing::error!("noting drift since the previous audit: {e}"),
        }
    }
    alerting.published();
    if report.complete {
        if let Some(record) = shared.metrics.posture_record() {
            let json = serde_json::to_string(&*record)?;
            shared
                .store
                .save_posture(tenant, changes.audit_id, record.finished_at, &json)?;
        }
    }
    shared.store.prune(tenant, config.storage.keep_audits)?;
    shared.store.checkpoint()?;
    let publish_took = publishing.elapsed();
    shared.metrics.audit_phase("publish", publish_took);
    release_free_memory();
    if !report.skipped.is_empty() {
        let rules: Vec<&str> = report.skipped.iter().map(|s| s.rule).collect();
        tracing::warn!(
            kept_open = changes.kept,
            "rules skipped for lack of data, their findings kept as they were: {}",
            rules.join(", ")
        );
    }
    if let Some(l) = report
        .posture
        .smart_lockout
        .as_ref()
        .filter(|l| l.source == "default")
    {
        tracing::info!(
            threshold = l.threshold,
            duration_seconds = l.duration_seconds,
            "smart lockout: the tenant has no \"Password Rule Settings\" object, Entra's defaults apply"
        );
    }
    tracing::info!(
        complete = report.complete,
        findings = report.open_count(),
        new = changes.new,
        resolved = changes.resolved,
        rows_written = changes.written,
        users_written = users.as_ref().map_or(0, |u| u.written),
        users_method_changes = users.as_ref().map_or(0, |u| u.method_changes),
        skipped_rules = report.skipped.len(),
        record_seconds = record_took.as_secs_f64(),
        publish_seconds = publish_took.as_secs_f64(),
        "audit recorded"
    );
    Ok(report)
}

/// Hands the heap's free pages back to the kernel after an audit. glibc keeps what an audit
/// freed (the snapshot, a rule's map) in per-thread arenas: without this the resident size
/// creeps up audit after audit although nothing is held (measured: +110 MiB over 3 audits at
/// 1,000,000 users). `malloc_trim` is glibc's own call for it; elsewhere this does nothing.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::os::raw::c_int;
        }
        // SAFETY: malloc_trim only returns unused heap pages to the kernel; it takes no pointer
        // and is safe to call from any thread at any time (glibc locks each arena it trims).
        unsafe {
            malloc_trim(0);
        }
    }
}

/// How long a webhook delivery in flight may take to finish when alerting stops or reloads.
const ALERTING_GRACE: Duration = Duration::from_secs(15);

/// Reloads the configuration: a valid one replaces the old (with its client and its alerting,
/// whose secrets are read before anything is replaced), a bad one is logged.
async fn reload(shared: &Shared) {
    let prepared = Config::load(&shared.config_path)
        .map_err(anyhow::Error::from)
        .and_then(|c| build_client(&c).map(|client| (c, client)))
        .and_then(|(c, client)| {
            let alerting = Alerting::prepare(&c, shared.store.clone(), shared.metrics.alerting())?;
            Ok((c, client, alerting))
        });
    match prepared {
        Ok((config, client, alerting)) => {
            // The old webhook worker stops before the new one starts, so no message goes twice.
            shared.alerting().shutdown(ALERTING_GRACE).await;
            let alerting = Arc::new(alerting.start());
            seed_alerts(&alerting);
            *shared.alerting.write().unwrap_or_else(|e| e.into_inner()) = alerting;
            *shared.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
            *shared.client.write().unwrap_or_else(|e| e.into_inner()) = client;
            tracing::info!("configuration reloaded");
            notify("STATUS=configuration reloaded");
        }
        Err(e) => {
            tracing::error!("configuration not reloaded, keeping the running one: {e:#}");
            notify("STATUS=reload refused: bad configuration");
        }
    }
}

/// Publishes the posture of the last complete audit kept in the store, so `/metrics` and
/// `/readyz` tell the truth from the start, even while Graph fails.
fn republish(shared: &Shared) {
    let config = shared.config();
    let tenant = &config.tenant.tenant_id;
    let kept = match shared.store.posture(tenant) {
        Ok(Some(kept)) => kept,
        Ok(None) => return,
        Err(e) => return tracing::error!("reading the last published posture: {e}"),
    };
    let record = match serde_json::from_str::<crate::metrics::PostureRecord>(&kept.record) {
        Ok(r) => r,
        Err(e) => {
            return tracing::warn!(
                "the posture kept from audit {} cannot be read ({e}); the next complete audit publishes one",
                kept.audit_id
            )
        }
    };
    match shared.store.oldest_open_by_rule(tenant) {
        Ok(oldest) => {
            shared
                .metrics
                .restore(record, &config.rules, &oldest, config.per_user_series());
            tracing::info!(
                audit = kept.audit_id,
                finished_at = %kept.finished_at,
                "republished the posture of the last complete audit"
            );
        }
        Err(e) => tracing::error!("reading the open findings' ages to republish the posture: {e}"),
    }
}

/// Has a freshly started alerting read the store's open findings, so the alerts of the last
/// complete audit stay active across a restart or a reload.
fn seed_alerts(alerting: &Alerting) {
    alerting.published();
}

/// Runs the daemon until SIGTERM or SIGINT. `ready` receives the bound HTTP address.
pub async fn run(
    config_path: &Path,
    ready: Option<tokio::sync::oneshot::Sender<std::net::SocketAddr>>,
) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let client = build_client(&config)?;
    let state_path = config.state_path();
    // The store's errors name the file; the key says where it comes from.
    let store = Arc::new(Store::open(&state_path).context("storage.path")?);
    let listen: std::net::SocketAddr = config.http.listen.parse().context("http.listen")?;
    let metrics = Metrics::new(&config.tenant.tenant_id);
    let alerting = Alerting::prepare(&config, store.clone(), metrics.alerting())?.start();
    let shared = Arc::new(Shared {
        metrics,
        alerting: RwLock::new(Arc::new(alerting)),
        config: RwLock::new(Arc::new(config)),
        client: RwLock::new(client),
        store,
        last_audit: RwLock::new(None),
        running: AtomicBool::new(false),
        stopping: AtomicBool::new(false),
        skipped_runs: AtomicU64::new(0),
        config_path: config_path.to_path_buf(),
    });
    republish(&shared);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let web = match &shared.config().http.web_config_file {
        Some(path) => crate::web_config::WebConfig::load(path)
            .map_err(|e| anyhow::anyhow!("http.web_config_file: {e}"))?,
        None => crate::web_config::WebConfig::default(),
    };
    let tls = web.tls.clone();
    let app = crate::http::router(shared.clone(), web);
    let limits = crate::serve::Limits::from_config(&shared.config().http);
    let server = tokio::spawn(crate::serve::serve(
        listener,
        tls,
        app,
        limits,
        shared.metrics.http(),
        stop_rx.clone(),
    ));
    tracing::info!(%addr, "listening");
    if let Some(tx) = ready {
        let _ = tx.send(addr);
    }
    notify("READY=1\nSTATUS=started");

    seed_alerts(&shared.alerting());
    // The sign-in watcher: its own task and schedule, beside the audits.
    let watcher = tokio::spawn(crate::watch::run::run_loop(shared.clone(), stop_rx.clone()));
    let mut tasks = tokio::task::JoinSet::new();
    if shared.config().schedule.run_at_start {
        trigger(&shared, &mut tasks);
    }
    let watchdog = std::env::var("WATCHDOG_USEC")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(|us| Duration::from_micros(us / 2));
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let next = shared.config().cron().upcoming(Utc).next();
        let until_next = next.map_or(Duration::from_secs(3600), |t| {
            (t - Utc::now()).to_std().unwrap_or(Duration::ZERO)
        });
        let tick = watchdog.map_or(until_next, |w| w.min(until_next));
        tokio::select! {
            _ = tokio::time::sleep(tick) => {
                if watchdog.is_some() {
                    notify("WATCHDOG=1");
                }
                if next.is_some_and(|t| t <= Utc::now()) {
                    trigger(&shared, &mut tasks);
                }
            }
            _ = hup.recv() => reload(&shared).await,
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            Some(_) = tasks.join_next() => {}
        }
    }
    notify("STOPPING=1\nSTATUS=stopping");
    tracing::info!("stopping: cancelling any audit in flight");
    shared.stopping.store(true, Ordering::SeqCst);
    // The listener stops accepting at once and drains while the rest stops.
    let _ = stop_tx.send(true);
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let _ = watcher.await;
    shared.alerting().shutdown(ALERTING_GRACE).await;
    let _ = server.await;
    drop(stop_rx);
    Ok(())
}
