//! The watcher in the daemon (issue 12): one pass ([`Watcher::run`]) and its loop ([`run_loop`]).
//!
//! A pass reads sign-ins and the directory audit log's security-info entries concurrently
//! through the daemon's [`GraphClient`] (its pacer is the audit's), classifies the sign-ins,
//! plans each detection's way back in from the stored posture, notes the security events, and
//! records all of it with both watermarks and the classifier's state in ONE transaction
//! ([`Store::record_watch`]). The in-memory state (classifier, watermarks) is replaced only once
//! that transaction committed, so a run that fails or is aborted records nothing and changes
//! nothing: the next one reads the same window again, and the store's idempotence (an open
//! detection is updated, a kept event is skipped) sends nothing twice. A restart restores the
//! classifier and the watermarks saved with the last recorded run.
//!
//! A failed stream keeps its watermark; the other still records. Read errors are logged with
//! their endpoint and counted (`WatcherMetrics::read`); the daemon keeps running.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use tokio::sync::watch;

use super::classify::{Classifier, ClassifierState, Thresholds};
use super::posture;
use super::recovery::{self, RecoveryAdmin, TapReadiness};
use super::{Detection, LockoutState};
use crate::collect::{
    read_security_info, read_sign_ins_for, SweepReport, WatchError, WatchOptions, Watermark,
};
use crate::config::Config;
use crate::daemon::Shared;
use crate::graph::GraphClient;
use crate::metrics::{PostureRecord, WatcherMetrics};
use crate::snapshot::ObjectId;
use crate::state::Subscriber;
use crate::state::{
    DetectionChange, NotedSecurityEvent, StateError, Store, StoredUser, WatchRecord, WatchRecorded,
    WatchStream,
};

/// At most this many admins are listed with a detection.
pub const ADMINS_LISTED: usize = 20;

/// The watcher's options from `[watcher]`
/// (`[watcher] reports_percent` of the client's reports budget bounds its pages per run).
pub fn options(config: &Config) -> WatchOptions {
    config.watcher.watch_options(&config.client_config().pacing)
}

/// What one pass needs besides the watcher's own state.
pub struct RunContext<'a> {
    pub client: &'a GraphClient,
    pub store: &'a Arc<Store>,
    pub options: &'a WatchOptions,
    pub subscribers: &'a [Subscriber],
    /// `[break_glass] accounts`.
    pub break_glass: &'a [String],
    /// A group excluded from the MFA policies, for the last-resort step (not configured today).
    pub mfa_exclusion_group: Option<&'a str>,
    pub metrics: &'a WatcherMetrics,
    pub now: DateTime<Utc>,
    /// An audit is in flight (`Shared::running`): the run yields ([`run_options`]).
    pub auditing: bool,
}

/// The options of one run: `options` as configured, or their small budget while an audit is in
/// flight ([`WatchOptions::while_auditing`]: the fresh read at most 2 + 1 pages, the late sweep
/// deferred for at most a few runs), so the audit's registration sweep keeps the reports bucket.
pub fn run_options(options: &WatchOptions, auditing: bool) -> WatchOptions {
    if auditing {
        options.while_auditing()
    } else {
        options.clone()
    }
}

/// One pass's outcome.
#[derive(Debug, Default)]
pub struct RunOutcome {
    /// What was recorded (`None`: nothing read, nothing recorded).
    pub recorded: Option<WatchRecorded>,
    /// The streams whose read failed, with why.
    pub failed: Vec<(WatchStream, String)>,
    /// The sign-in read (benches, logs): the events' times, pages, whether it stopped at its cap,
    /// and its late sweep.
    pub sign_ins: Vec<DateTime<Utc>>,
    pub sign_in_pages: u32,
    pub sign_ins_truncated: bool,
    pub sweep: SweepReport,
    pub audit_pages: u32,
}

/// The watcher's state: the classifier and the two watermarks, as last recorded.
pub struct Watcher {
    tenant: String,
    classifier: Classifier,
    sign_ins: Watermark,
    audits: Watermark,
}

impl Watcher {
    /// The watcher as the store left it for `tenant` (a fresh one when nothing was recorded).
    /// A classifier state that cannot be read is logged and started afresh (its open detections
    /// stay open in the store and are resolved by the next success seen).
    pub fn load(
        store: &Store,
        tenant: &str,
        thresholds: Thresholds,
    ) -> Result<Watcher, StateError> {
        let classifier = match store.load_classifier(tenant)? {
            None => Classifier::new(thresholds),
            Some(json) => match serde_json::from_str::<ClassifierState>(&json)
                .map_err(|e| e.to_string())
                .and_then(|s| Classifier::restore(thresholds.clone(), s).map_err(|e| e.to_string()))
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(
                        "the watcher's saved classifier is unreadable ({e}); starting afresh"
                    );
                    Classifier::new(thresholds)
                }
            },
        };
        Ok(Watcher {
            tenant: tenant.to_string(),
            classifier,
            sign_ins: store
                .load_watermark(tenant, WatchStream::SignIns)?
                .unwrap_or_default(),
            audits: store
                .load_watermark(tenant, WatchStream::DirectoryAudits)?
                .unwrap_or_default(),
        })
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The classifier's thresholds.
    pub fn thresholds(&self) -> &Thresholds {
        self.classifier.thresholds()
    }

    /// The sign-in stream's watermark as last recorded.
    pub fn sign_ins_watermark(&self) -> &Watermark {
        &self.sign_ins
    }

    /// The open detections the classifier holds.
    pub fn open(&self) -> impl Iterator<Item = &Detection> {
        self.classifier.open()
    }

    /// One pass (module doc). Errors are the store's; a failed read is in the outcome.
    pub async fn run(&mut self, cx: &RunContext<'_>) -> Result<RunOutcome, StateError> {
        let options = run_options(cx.options, cx.auditing);
        let users: Vec<String> = self
            .classifier
            .sweep_users(options.max_sweep_users)
            .iter()
            .map(ToString::to_string)
            .collect();
        let (signs, audits) = tokio::join!(
            read_sign_ins_for(cx.client, &self.sign_ins, &options, &users, cx.now),
            read_security_info(cx.client, &self.audits, &options, cx.now)
        );
        let mut outcome = RunOutcome::default();
        let mut failed = |stream: WatchStream, e: &WatchError| {
            tracing::warn!(
                endpoint = e.endpoint(),
                stream = stream.as_str(),
                "watcher read failed: {e}"
            );
            cx.metrics.read(stream.as_str(), false, 0, None, false);
            outcome.failed.push((stream, e.to_string()));
        };
        let lag = |newest: Option<DateTime<Utc>>| {
            newest.map(|t| ((cx.now - t).num_milliseconds() as f64 / 1000.0).max(0.0))
        };
        match &signs {
            Ok(r) => {
                if r.sweep.pages > 0 || r.sweep.pending > 0 || r.sweep.deferred {
                    tracing::info!(
                        pages = r.sweep.pages,
                        late = r.sweep.late,
                        pending = r.sweep.pending,
                        deferred = r.sweep.deferred,
                        auditing = cx.auditing,
                        "watcher late sweep"
                    );
                }
                cx.metrics.read(
                    WatchStream::SignIns.as_str(),
                    true,
                    r.events.len() as u64,
                    lag(r.events.iter().map(|e| e.created).max()),
                    r.truncated,
                )
            }
            Err(e) => failed(WatchStream::SignIns, e),
        }
        match &audits {
            Ok(r) => cx.metrics.read(
                WatchStream::DirectoryAudits.as_str(),
                true,
                r.events.len() as u64,
                lag(r.events.iter().map(|e| e.created).max()),
                r.truncated,
            ),
            Err(e) => failed(WatchStream::DirectoryAudits, e),
        }
        if let Ok(r) = &signs {
            outcome.sign_ins = r.events.iter().map(|e| e.created).collect();
            outcome.sign_in_pages = r.pages;
            outcome.sign_ins_truncated = r.truncated;
            outcome.sweep = r.sweep.clone();
        }
        if let Ok(r) = &audits {
            outcome.audit_pages = r.pages;
        }
        if signs.is_err() && audits.is_err() {
            return Ok(outcome);
        }

        // Work on copies: the watcher's state changes only once the record committed.
        let mut classifier = self.classifier.clone();
        let mut changes: Vec<DetectionChange> = Vec::new();
        let mut watermarks: Vec<(WatchStream, Watermark)> = Vec::new();
        if let Ok(r) = signs {
            changes = classifier.observe_all(&r.events);
            watermarks.push((WatchStream::SignIns, r.watermark));
        }
        classifier.expire(cx.now);
        let security_events = match audits {
            Ok(r) => {
                watermarks.push((WatchStream::DirectoryAudits, r.watermark));
                r.events
            }
            Err(_) => Vec::new(),
        };
        let classifier_json = serde_json::to_string(&classifier.save())
            .map_err(|e| StateError::Invariant(format!("classifier state: {e}")))?;
        let watermark_json = watermarks
            .iter()
            .map(|(s, w)| {
                serde_json::to_string(w)
                    .map(|j| (*s, j))
                    .map_err(|e| StateError::Invariant(format!("watermark: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;

        let store = cx.store.clone();
        let tenant = self.tenant.clone();
        let subscribers = cx.subscribers.to_vec();
        let break_glass = cx.break_glass.to_vec();
        let group = cx.mfa_exclusion_group.map(str::to_string);
        let now = cx.now;
        let recorded = tokio::task::spawn_blocking(move || {
            let remediations = plan_all(&store, &tenant, &changes, group.as_deref())?;
            let noted: Vec<NotedSecurityEvent> = security_events
                .into_iter()
                .map(|e| {
                    let user = store.user(&tenant, &e.user.to_string()).ok().flatten();
                    let mut n = posture::note_security_event(e, user.as_ref(), &break_glass);
                    if n.notable.is_some() && told_by_drift(&store, &tenant, &n) {
                        n.notable = None;
                        n.detail.push_str(" (already told: the audit saw the loss)");
                    }
                    n
                })
                .collect();
            let remediation = |d: &Detection| {
                remediations
                    .get(&(d.user, d.state))
                    .cloned()
                    .unwrap_or_default()
            };
            store.record_watch(&WatchRecord {
                tenant: &tenant,
                at: now,
                changes: &changes,
                security: &noted,
                watermarks: &watermark_json,
                subscribers: &subscribers,
                remediation: &remediation,
                classifier: Some(&classifier_json),
            })
        })
        .await
        .map_err(|e| StateError::Invariant(format!("recording the watcher's run: {e}")))??;

        self.classifier = classifier;
        for (stream, w) in watermarks {
            match stream {
                WatchStream::SignIns => self.sign_ins = w,
                WatchStream::DirectoryAudits => self.audits = w,
            }
        }
        let by_state = |states: &[LockoutState]| -> Vec<(LockoutState, u64)> {
            LockoutState::ALL
                .into_iter()
                .map(|s| (s, states.iter().filter(|x| **x == s).count() as u64))
                .collect()
        };
        cx.metrics.recorded(
            &by_state(&recorded.opened_states),
            &by_state(&recorded.resolved_states),
            recorded.security_events as u64,
            recorded.notable as u64,
        );
        outcome.recorded = Some(recorded);
        Ok(outcome)
    }
}

/// Whether an audit's drift already told of this deletion (a notable `drift:` event of the same
/// user, from an audit that started after it): a loss is told once, by whichever saw it first.
fn told_by_drift(store: &Store, tenant: &str, n: &NotedSecurityEvent) -> bool {
    n.event.activity == super::SecurityInfoActivity::Deleted
        && store
            .user_security_events(tenant, &n.event.user.to_string())
            .is_ok_and(|events| {
                events.iter().any(|e| {
                    e.event_id.starts_with("drift:")
                        && e.notable.is_some()
                        && e.created >= n.event.created
                })
            })
}

/// The TAP policy of the last published posture kept in the store (also the user page's).
pub fn stored_tap(store: &Store, tenant: &str) -> Option<TapReadiness> {
    let kept = store.posture(tenant).ok().flatten()?;
    let record: PostureRecord = serde_json::from_str(&kept.record).ok()?;
    posture::tap_readiness(&record)
}

/// Each opened (or updated: after a restart it may not be open in the store) detection's
/// remediation text, from its plan on the stored posture.
fn plan_all(
    store: &Store,
    tenant: &str,
    changes: &[DetectionChange],
    mfa_exclusion_group: Option<&str>,
) -> Result<HashMap<(ObjectId, LockoutState), String>, StateError> {
    let detections: Vec<&Detection> = changes
        .iter()
        .filter_map(|c| match c {
            DetectionChange::Opened(d) | DetectionChange::Updated(d) => Some(d),
            DetectionChange::Resolved { .. } => None,
        })
        .collect();
    let mut out = HashMap::new();
    if detections.is_empty() {
        return Ok(out);
    }
    let tap = stored_tap(store, tenant);
    let admins: Vec<RecoveryAdmin> = posture::recovery_admins(&store.users_with_active_roles(
        tenant,
        &posture::MFA_RESET_ROLES,
        ADMINS_LISTED,
    )?);
    let mut users: HashMap<ObjectId, Option<StoredUser>> = HashMap::new();
    for d in detections {
        let user = match users.entry(d.user) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(store.user(tenant, &d.user.to_string())?)
            }
        }
        .as_ref();
        let p = posture::posture(user, tap.as_ref(), &admins, mfa_exclusion_group);
        out.insert(
            (d.user, d.state),
            posture::remediation(&recovery::plan(d, &p)),
        );
    }
    Ok(out)
}

/// Publishes the store's open detections to the metrics (at start and after each change).
pub fn publish_detections(store: &Store, tenant: &str, metrics: &WatcherMetrics) {
    let figures = store.detection_counts(tenant).and_then(|by_state| {
        Ok((
            by_state,
            store.detection_code_counts(tenant)?,
            store.locked_out_users(tenant)?,
        ))
    });
    match figures {
        Ok((by_state, by_code, users)) => metrics.detections(&by_state, &by_code, users),
        Err(e) => tracing::error!("reading the open detections for the metrics: {e}"),
    }
}

/// How often watch history is pruned.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);
/// How long the loop waits to look again while the watcher is disabled.
const DISABLED_POLL: std::time::Duration = std::time::Duration::from_secs(30);

/// The watcher's loop: a first run at once, then one every `[watcher] interval_seconds` after
/// the previous ended (never two at once), each with the config and client of its start (a
/// reload is picked up at the next run). Returns when `stop` turns true, between runs, or
/// abandons a run in flight (nothing of it is recorded unless its transaction committed).
pub async fn run_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut watcher: Option<Watcher> = None;
    let mut last_prune: Option<std::time::Instant> = None;
    let metrics = shared.metrics.watcher();
    let first = shared.config();
    tracing::info!(
        enabled = first.watcher.enabled,
        interval_seconds = first.watcher.interval_seconds,
        "sign-in watcher started"
    );
    publish_detections(&shared.store, &shared.config().tenant.tenant_id, &metrics);
    loop {
        if *stop.borrow() {
            return;
        }
        let config = shared.config();
        let wait = if config.watcher.enabled {
            let pass = pass(&shared, &config, &mut watcher, &metrics, &mut last_prune);
            tokio::select! {
                _ = pass => {}
                _ = stop.changed() => return,
            }
            std::time::Duration::from_secs(config.watcher.interval_seconds.max(1))
        } else {
            DISABLED_POLL
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn pass(
    shared: &Arc<Shared>,
    config: &Config,
    watcher: &mut Option<Watcher>,
    metrics: &WatcherMetrics,
    last_prune: &mut Option<std::time::Instant>,
) {
    let tenant = config.tenant.tenant_id.as_str();
    let thresholds = config.watcher.thresholds();
    // A reload that changed the tenant or the thresholds restores from the store anew.
    if watcher
        .as_ref()
        .is_none_or(|w| w.tenant() != tenant || *w.thresholds() != thresholds)
    {
        match Watcher::load(&shared.store, tenant, thresholds) {
            Ok(w) => *watcher = Some(w),
            Err(e) => return tracing::error!("loading the watcher's state: {e}"),
        }
    }
    let Some(w) = watcher.as_mut() else { return };
    let client = shared.client();
    let alerting = shared.alerting();
    let options = options(config);
    let cx = RunContext {
        client: &client,
        store: &shared.store,
        options: &options,
        subscribers: alerting.subscribers(),
        break_glass: &config.break_glass.accounts,
        mfa_exclusion_group: None,
        metrics,
        now: Utc::now(),
        auditing: shared.running.load(std::sync::atomic::Ordering::SeqCst),
    };
    match w.run(&cx).await {
        Ok(outcome) => {
            if let Some(r) = outcome.recorded.as_ref().filter(|r| r.changed()) {
                publish_detections(&shared.store, tenant, metrics);
                alerting.published();
                tracing::info!(
                    opened = r.opened,
                    resolved = r.resolved,
                    updated = r.updated,
                    security_events = r.security_events,
                    queued = r.queued,
                    "watcher recorded"
                );
            }
        }
        Err(e) => tracing::error!("recording the watcher's run failed: {e}"),
    }
    if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
        *last_prune = Some(std::time::Instant::now());
        let before = Utc::now() - Duration::hours(i64::from(config.watcher.retention_hours));
        let store = shared.store.clone();
        let tenant = tenant.to_string();
        match tokio::task::spawn_blocking(move || store.prune_watch(&tenant, before)).await {
            Ok(Ok(n)) if n > 0 => tracing::info!(rows = n, "watch history pruned"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!("pruning watch history: {e}"),
            Err(e) => tracing::error!("pruning watch history: {e}"),
        }
    }
}

/// How far before the previous audit's start a told security event still counts as telling of
/// this audit's drift (clock skew between Graph's log and this host).
const DRIFT_SLACK: Duration = Duration::minutes(5);

/// Per-user drift between two audits, recorded as security events (issue 12 §4): each user of
/// `audit_id`'s changes who lost a recovery family. Called after an audit recorded its users,
/// not for the first audit ever. A user whose loss the directory audit log already told of (a
/// notable security-info event since `previous`, the previous audit's start) is not told of
/// twice. Blocks (SQLite).
pub fn record_drift(
    store: &Store,
    tenant: &str,
    audit_id: i64,
    at: DateTime<Utc>,
    previous: DateTime<Utc>,
    subscribers: &[Subscriber],
) -> Result<Option<WatchRecorded>, StateError> {
    let mut changes = store.audit_user_changes(tenant, audit_id, 1_000_000)?;
    changes.retain(|c| !c.families_lost.is_empty());
    let mut told = Vec::new();
    for c in &changes {
        let noted = store
            .user_security_events(tenant, &c.user_id)?
            .iter()
            .any(|e| {
                e.notable.is_some()
                    && e.created >= previous - DRIFT_SLACK
                    && !e.event_id.starts_with("drift:")
            });
        if noted {
            told.push(c.user_id.clone());
        }
    }
    changes.retain(|c| !told.contains(&c.user_id));
    let upn_of = |id: &str| {
        store
            .user(tenant, id)
            .ok()
            .flatten()
            .map(|u| u.user_principal_name)
    };
    let events = posture::drift_events(audit_id, at, &changes, &upn_of);
    if events.is_empty() {
        return Ok(None);
    }
    let none = |_: &Detection| String::new();
    store
        .record_watch(&WatchRecord {
            tenant,
            at,
            changes: &[],
            security: &events,
            watermarks: &[],
            subscribers,
            remediation: &none,
            classifier: None,
        })
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_beside_a_running_audit_yields_the_reports_bucket() {
        let pacing = crate::graph::Pacing::default();
        let o = WatchOptions::for_share(std::time::Duration::from_secs(120), &pacing, 0.5);
        let idle = run_options(&o, false);
        assert_eq!(idle, o);
        let busy = run_options(&o, true);
        assert_eq!((busy.max_sign_in_pages, busy.max_audit_pages), (2, 1));
        assert!(busy.defer_sweep && !idle.defer_sweep);
        let interval = std::time::Duration::from_secs(120);
        assert!(busy.reports_share(interval, &pacing) < 0.06);
        assert!(o.reports_share(interval, &pacing) > 0.45);
    }
}
