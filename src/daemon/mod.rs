//! The daemon: audits each of its tenants on the tenant's cron schedule (and once at start),
//! several tenants at once under `[daemon] max_concurrent_audits` but one audit per tenant at a
//! time, and publishes each audit to the state store, the metrics and alerting; serves HTTP;
//! reloads a validated config on SIGHUP (a bad one is logged and the old one kept; tenants added
//! start, tenants removed stop); stops cleanly on SIGTERM, cancelling audits in flight (the
//! store's transactions keep it consistent). Speaks systemd's `sd_notify`.
//!
//! A tenant whose audits keep failing is backed off by its breaker (`breaker.rs`) and reported
//! (metrics, `/api/v1/tenants`, the overview): it never holds up the others, which have their own
//! clients, pacers and token caches (`tenant.rs`).

mod breaker;
mod tenant;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio::sync::{watch, Semaphore};

use crate::alerting::Alerting;
use crate::config::{Config, ConfigFile};
use crate::state::Store;

pub use breaker::{Breaker, TenantState};
use tenant::{build_client, republish, seed_alerts};
pub use tenant::{trigger, AuditSummary, Shared};

/// The daemon: its tenants, in file order, and what they share.
pub struct Daemon {
    tenants: RwLock<Arc<Vec<Arc<Shared>>>>,
    file: RwLock<Arc<ConfigFile>>,
    pub store: Arc<Store>,
    /// `[daemon] max_concurrent_audits` permits; replaced (not resized) on a reload.
    slots: RwLock<Arc<Semaphore>>,
    /// Each tenant's watcher: its stop signal and task, by tenant id.
    watchers: Mutex<BTreeMap<String, (watch::Sender<bool>, tokio::task::JoinHandle<()>)>>,
    config_path: PathBuf,
}

/// Why a request names no tenant the daemon audits.
#[derive(Debug, PartialEq, Eq)]
pub enum TenantError {
    /// Several tenants and none named.
    Ambiguous(Vec<String>),
    /// No tenant by that name or id.
    Unknown(String, Vec<String>),
}

impl std::fmt::Display for TenantError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TenantError::Ambiguous(names) => write!(
                f,
                "this daemon audits {} tenants; name one (by name or tenant id): {}",
                names.len(),
                names.join(", ")
            ),
            TenantError::Unknown(key, names) => write!(
                f,
                "no tenant {key:?} here; the tenants are: {}",
                names.join(", ")
            ),
        }
    }
}

impl Daemon {
    /// Every tenant, in file order.
    pub fn tenants(&self) -> Arc<Vec<Arc<Shared>>> {
        self.tenants
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The daemon-wide configuration (`[http]`, `[storage]`, `[daemon]` … the same in every
    /// tenant's `Config`).
    pub fn config(&self) -> Arc<Config> {
        let file = self.file.read().unwrap_or_else(|e| e.into_inner()).clone();
        file.tenants()[0].clone()
    }

    /// Whether the daemon audits more than one tenant.
    pub fn multi(&self) -> bool {
        self.tenants().len() > 1
    }

    /// The tenant `key` names (its name or tenant id, case-insensitive); with no key, the only
    /// tenant of a single-tenant daemon.
    pub fn tenant(&self, key: Option<&str>) -> Result<Arc<Shared>, TenantError> {
        let tenants = self.tenants();
        let names = || {
            tenants
                .iter()
                .map(|t| t.config().tenant_name().to_string())
                .collect()
        };
        match key {
            None if tenants.len() == 1 => Ok(tenants[0].clone()),
            None => Err(TenantError::Ambiguous(names())),
            Some(k) => tenants
                .iter()
                .find(|t| t.config().is_tenant(k))
                .cloned()
                .ok_or_else(|| TenantError::Unknown(k.to_string(), names())),
        }
    }

    fn slots(&self) -> Arc<Semaphore> {
        self.slots.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Starts a tenant's watcher (its own task and schedule, beside the audits).
    fn start_watcher(&self, shared: &Arc<Shared>) {
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(crate::watch::run::run_loop(shared.clone(), rx));
        let old = self
            .watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(shared.tenant_id(), (tx, task));
        if let Some((stop, _)) = old {
            let _ = stop.send(true);
        }
    }

    /// Stops a tenant's watcher and waits for it.
    async fn stop_watcher(&self, tenant_id: &str) {
        let old = self
            .watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(tenant_id);
        if let Some((stop, task)) = old {
            let _ = stop.send(true);
            let _ = task.await;
        }
    }

    /// Triggers the audits of the tenants `due` says are due.
    fn trigger_due(&self, due: impl Fn(&Config) -> bool, tasks: &mut tokio::task::JoinSet<()>) {
        let slots = self.slots();
        let daemon = self.config().daemon.clone();
        for shared in self.tenants().iter() {
            if due(&shared.config()) {
                trigger(shared, slots.clone(), daemon.clone(), tasks);
            }
        }
    }

    /// The next time any tenant's schedule fires after `after`.
    fn next_due(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.tenants()
            .iter()
            .filter_map(|t| t.config().cron().after(&after).next())
            .min()
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

/// How long a webhook delivery in flight may take to finish when alerting stops or reloads.
const ALERTING_GRACE: Duration = Duration::from_secs(15);

/// Reloads the configuration. Everything is prepared first (each tenant's client and alerting,
/// their secrets read); a bad file or a tenant that cannot be prepared refuses the whole reload
/// and keeps the running one. Then tenants kept take their new configuration, tenants added start
/// (posture republished, alerts seeded, watcher started) and tenants removed stop (their watcher
/// and alerting; an audit in flight finishes and is recorded).
async fn reload(daemon: &Daemon) {
    match prepare_reload(daemon) {
        Ok((file, plan)) => {
            let multi = file.tenants().len() > 1;
            let old = daemon.tenants();
            let mut tenants = Vec::with_capacity(plan.len());
            for step in plan {
                match step {
                    Step::Keep(shared, config, client, alerting) => {
                        // The old webhook worker stops before the new one starts: no message twice.
                        shared.alerting().shutdown(ALERTING_GRACE).await;
                        let alerting = Arc::new(alerting.start());
                        seed_alerts(&alerting);
                        *shared.alerting.write().unwrap_or_else(|e| e.into_inner()) = alerting;
                        *shared.config.write().unwrap_or_else(|e| e.into_inner()) = config;
                        *shared.client.write().unwrap_or_else(|e| e.into_inner()) = client;
                        shared.multi.store(multi, Ordering::Relaxed);
                        tenants.push(shared);
                    }
                    Step::Add(shared) => {
                        shared.multi.store(multi, Ordering::Relaxed);
                        tracing::info!(tenant = %shared.config().tenant_name(), "tenant added");
                        tenants.push(shared);
                    }
                }
            }
            for gone in old
                .iter()
                .filter(|o| !tenants.iter().any(|t| Arc::ptr_eq(t, o)))
            {
                tracing::info!(tenant = %gone.config().tenant_name(), "tenant removed; its watcher and alerting stop");
                daemon.stop_watcher(&gone.tenant_id()).await;
                gone.alerting().shutdown(ALERTING_GRACE).await;
            }
            let added: Vec<Arc<Shared>> = tenants
                .iter()
                .filter(|t| !old.iter().any(|o| Arc::ptr_eq(t, o)))
                .cloned()
                .collect();
            let cap = file.daemon().daemon.max_concurrent_audits.max(1);
            *daemon.slots.write().unwrap_or_else(|e| e.into_inner()) =
                Arc::new(Semaphore::new(cap));
            *daemon.tenants.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(tenants);
            *daemon.file.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(file);
            for shared in added {
                republish(&shared);
                seed_alerts(&shared.alerting());
                daemon.start_watcher(&shared);
            }
            tracing::info!("configuration reloaded");
            notify("STATUS=configuration reloaded");
        }
        Err(e) => {
            tracing::error!("configuration not reloaded, keeping the running one: {e:#}");
            notify("STATUS=reload refused: bad configuration");
        }
    }
}

/// What a reload does to one tenant of the new file.
enum Step {
    Keep(
        Arc<Shared>,
        Arc<Config>,
        crate::graph::GraphClient,
        crate::alerting::Prepared,
    ),
    Add(Arc<Shared>),
}

fn prepare_reload(daemon: &Daemon) -> anyhow::Result<(ConfigFile, Vec<Step>)> {
    let file = ConfigFile::load(&daemon.config_path)?;
    let multi = file.tenants().len() > 1;
    let old = daemon.tenants();
    let mut plan = Vec::new();
    for config in file.tenants() {
        let name = config.tenant_name().to_string();
        let step = match old
            .iter()
            .find(|o| o.tenant_id() == config.tenant.tenant_id)
        {
            Some(shared) => {
                let client = build_client(config).with_context(|| format!("tenant {name}"))?;
                let alerting =
                    Alerting::prepare(config, daemon.store.clone(), shared.metrics.alerting())
                        .with_context(|| format!("tenant {name}"))?;
                Step::Keep(shared.clone(), config.clone(), client, alerting)
            }
            None => Step::Add(Arc::new(
                Shared::new(config.clone(), daemon.store.clone(), multi)
                    .with_context(|| format!("tenant {name}"))?,
            )),
        };
        plan.push(step);
    }
    Ok((file, plan))
}

/// Runs the daemon until SIGTERM or SIGINT. `ready` receives the bound HTTP address.
pub async fn run(
    config_path: &Path,
    ready: Option<tokio::sync::oneshot::Sender<std::net::SocketAddr>>,
) -> anyhow::Result<()> {
    let file = ConfigFile::load(config_path)?;
    let config = file.daemon().clone();
    let state_path = config.state_path();
    // The store's errors name the file; the key says where it comes from.
    let store = Arc::new(Store::open(&state_path).context("storage.path")?);
    let listen: std::net::SocketAddr = config.http.listen.parse().context("http.listen")?;
    let multi = file.tenants().len() > 1;
    let mut tenants = Vec::with_capacity(file.tenants().len());
    for c in file.tenants() {
        let shared = Shared::new(c.clone(), store.clone(), multi)
            .with_context(|| format!("tenant {}", c.tenant_name()))?;
        tenants.push(Arc::new(shared));
    }
    let daemon = Arc::new(Daemon {
        tenants: RwLock::new(Arc::new(tenants)),
        slots: RwLock::new(Arc::new(Semaphore::new(
            config.daemon.max_concurrent_audits.max(1),
        ))),
        file: RwLock::new(Arc::new(file)),
        store,
        watchers: Mutex::new(BTreeMap::new()),
        config_path: config_path.to_path_buf(),
    });
    for shared in daemon.tenants().iter() {
        republish(shared);
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let web = match &config.http.web_config_file {
        Some(path) => crate::web_config::WebConfig::load(path)
            .map_err(|e| anyhow::anyhow!("http.web_config_file: {e}"))?,
        None => crate::web_config::WebConfig::default(),
    };
    let tls = web.tls.clone();
    let app = crate::http::router(daemon.clone(), web);
    let limits = crate::serve::Limits::from_config(&config.http);
    // The listener's own figures live with the first tenant's (its `tenant` label names it).
    let http_metrics = daemon.tenants()[0].metrics.http();
    let server = tokio::spawn(crate::serve::serve(
        listener,
        tls,
        app,
        limits,
        http_metrics,
        stop_rx.clone(),
    ));
    tracing::info!(%addr, tenants = daemon.tenants().len(), "listening");
    if let Some(tx) = ready {
        let _ = tx.send(addr);
    }
    notify("READY=1\nSTATUS=started");

    for shared in daemon.tenants().iter() {
        seed_alerts(&shared.alerting());
        daemon.start_watcher(shared);
    }
    let mut tasks = tokio::task::JoinSet::new();
    daemon.trigger_due(|c| c.schedule.run_at_start, &mut tasks);
    let watchdog = std::env::var("WATCHDOG_USEC")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(|us| Duration::from_micros(us / 2));
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // Each tenant's schedule fires when one of its times falls in (last, now].
    let mut last = Utc::now();
    loop {
        let next = daemon.next_due(last);
        let until_next = next.map_or(Duration::from_secs(3600), |t| {
            (t - Utc::now()).to_std().unwrap_or(Duration::ZERO)
        });
        let tick = watchdog.map_or(until_next, |w| w.min(until_next));
        tokio::select! {
            _ = tokio::time::sleep(tick) => {
                if watchdog.is_some() {
                    notify("WATCHDOG=1");
                }
                let now = Utc::now();
                if next.is_some_and(|t| t <= now) {
                    daemon.trigger_due(
                        |c| c.cron().after(&last).next().is_some_and(|t| t <= now),
                        &mut tasks,
                    );
                    last = now;
                }
            }
            _ = hup.recv() => reload(&daemon).await,
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            Some(_) = tasks.join_next() => {}
        }
    }
    notify("STOPPING=1\nSTATUS=stopping");
    tracing::info!("stopping: cancelling any audit in flight");
    for shared in daemon.tenants().iter() {
        shared.stopping.store(true, Ordering::SeqCst);
    }
    // The listener stops accepting at once and drains while the rest stops.
    let _ = stop_tx.send(true);
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let ids: Vec<String> = daemon.tenants().iter().map(|t| t.tenant_id()).collect();
    for id in ids {
        daemon.stop_watcher(&id).await;
    }
    for shared in daemon.tenants().iter() {
        shared.alerting().shutdown(ALERTING_GRACE).await;
    }
    let _ = server.await;
    drop(stop_rx);
    Ok(())
}
