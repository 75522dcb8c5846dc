//! One tenant in the daemon: what its audits, its watcher and the HTTP handlers share
//! ([`Shared`]), one audit of it (scheduled under the daemon's cap on concurrent audits, the
//! tenant's breaker told how it went), and its publication: store, metrics, alerting.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use chrono::Utc;

use super::breaker::Breaker;
use super::notify;
use crate::alerting::Alerting;
use crate::config::Config;
use crate::evaluate::exceptions::Judged;
use crate::graph::GraphClient;
use crate::metrics::Metrics;
use crate::report::Report;
use crate::snapshot::DataSet;
use crate::state::{RunHead, Store};

/// One tenant: what its scheduled audits, its watcher and the HTTP handlers share. The store is
/// the daemon's (one file, every table keyed by tenant); the rest is the tenant's own: its
/// configuration (shared defaults with its overrides), its Graph client (token cache and pacers:
/// Graph throttles per app per tenant), its metrics (labelled `tenant`), its alerting, and its
/// breaker.
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
    /// Failed audits in a row and the back-off they earned.
    pub breaker: Mutex<Breaker>,
    /// The daemon audits more than one tenant: links and pages name this one (`?tenant=`).
    pub multi: AtomicBool,
}

impl Shared {
    /// A tenant ready to audit: its client and alerting prepared from `config`, its metrics new.
    pub fn new(config: Arc<Config>, store: Arc<Store>, multi: bool) -> anyhow::Result<Shared> {
        let client = build_client(&config)?;
        let metrics = Metrics::new(&config.tenant.tenant_id);
        let alerting = Alerting::prepare(&config, store.clone(), metrics.alerting())?.start();
        let breaker = Breaker::default();
        metrics.tenant_state(config.tenant_name(), 0, None);
        Ok(Shared {
            metrics,
            alerting: RwLock::new(Arc::new(alerting)),
            config: RwLock::new(config),
            client: RwLock::new(client),
            store,
            last_audit: RwLock::new(None),
            running: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            skipped_runs: AtomicU64::new(0),
            breaker: Mutex::new(breaker),
            multi: AtomicBool::new(multi),
        })
    }

    /// The tenant id (the store's key).
    pub fn tenant_id(&self) -> String {
        self.config().tenant.tenant_id.clone()
    }

    /// The breaker's state now.
    pub fn breaker(&self) -> Breaker {
        self.breaker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

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

pub(super) fn build_client(config: &Config) -> anyhow::Result<GraphClient> {
    let credential = config.credential()?;
    Ok(GraphClient::new(config.client_config(), credential)?)
}

/// One scheduled audit of this tenant, unless it is backed off (skipped quietly: the breaker
/// says when it is tried again) or one is running or waiting for a slot already (skipped and
/// counted). The audit waits for one of the daemon's `slots` (`[daemon] max_concurrent_audits`),
/// so a thousand tenants due at once never run a thousand audits at once.
pub fn trigger(
    shared: &Arc<Shared>,
    slots: Arc<tokio::sync::Semaphore>,
    daemon: crate::config::DaemonConfig,
    tasks: &mut tokio::task::JoinSet<()>,
) {
    let name = shared.config().tenant_name().to_string();
    let breaker = shared.breaker();
    if breaker.holds(Utc::now()) {
        tracing::debug!(tenant = %name, until = ?breaker.backoff_until, "backed off; this run is skipped");
        return;
    }
    if shared.running.swap(true, Ordering::SeqCst) {
        let n = shared.skipped_runs.fetch_add(1, Ordering::Relaxed) + 1;
        shared.metrics.audit_skipped();
        tracing::warn!(
            tenant = %name,
            skipped = n,
            "an audit is still running; this run is skipped"
        );
        return;
    }
    let shared = shared.clone();
    let span = tracing::info_span!("audit", tenant = %name);
    tasks.spawn(tracing::Instrument::instrument(
        async move {
            // Closed only when the daemon stops, and then this task is aborted anyway.
            let Ok(_slot) = slots.acquire_owned().await else {
                shared.running.store(false, Ordering::SeqCst);
                return;
            };
            let outcome = audit(&shared).await;
            let now = Utc::now();
            let config = shared.config();
            let mut breaker = shared.breaker.lock().unwrap_or_else(|e| e.into_inner());
            // A lone tenant is never backed off: there are no others to keep going, and its
            // operator wants the first good audit as soon as the cause is mended.
            let policy = if shared.multi.load(Ordering::Relaxed) {
                daemon
            } else {
                crate::config::DaemonConfig {
                    failures_before_backoff: u32::MAX,
                    ..daemon
                }
            };
            match outcome {
                Ok(()) => breaker.succeeded(now),
                Err(why) => {
                    if let Some(backoff) = breaker.failed(now, why.clone(), &policy) {
                        tracing::error!(
                            failures = breaker.consecutive_failures,
                            backoff_seconds = backoff.as_secs(),
                            "the tenant's audits keep failing; backed off: {why}"
                        );
                    }
                }
            }
            shared.metrics.tenant_state(
                config.tenant_name(),
                breaker.consecutive_failures,
                breaker.backoff_until,
            );
            drop(breaker);
            shared.running.store(false, Ordering::SeqCst);
        },
        span,
    ));
}

/// One audit: read, then judge, record and publish off the async threads. `Err` says why the
/// tenant failed (an incomplete audit, or one that could not be recorded).
async fn audit(shared: &Arc<Shared>) -> Result<(), String> {
    let config = shared.config();
    let client = shared.client();
    let multi = shared.multi.load(Ordering::Relaxed);
    if !multi {
        notify("STATUS=auditing");
    }
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
    let done =
        tokio::task::spawn_blocking(move || record_and_publish(&worker, &config, read, requests))
            .await;
    match done {
        Ok(Ok(report)) => {
            let complete = report.complete;
            let reasons = report.incomplete_reasons.join("; ");
            if complete {
                if !multi {
                    notify(&format!(
                        "STATUS=last audit complete: {} findings",
                        report.open_count()
                    ));
                }
            } else {
                tracing::warn!("audit incomplete: {reasons}");
                if !multi {
                    notify("STATUS=last audit INCOMPLETE");
                }
            }
            *shared.last_audit.write().unwrap_or_else(|e| e.into_inner()) =
                Some(Arc::new(AuditSummary::of(&report)));
            if complete {
                Ok(())
            } else {
                Err(format!("audit incomplete: {reasons}"))
            }
        }
        Ok(Err(e)) => {
            tracing::error!("recording the audit failed: {e:#}");
            Err(format!("recording the audit failed: {e:#}"))
        }
        Err(e) => {
            tracing::error!("recording the audit failed: {e}");
            Err(format!("recording the audit failed: {e}"))
        }
    }
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

/// Publishes the posture of the last complete audit kept in the store, so `/metrics` and
/// `/readyz` tell the truth from the start, even while Graph fails.
pub(super) fn republish(shared: &Shared) {
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
pub(super) fn seed_alerts(alerting: &Alerting) {
    alerting.published();
}
