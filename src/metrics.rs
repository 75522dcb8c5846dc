//! Prometheus metrics (DESIGN §6): `entra_*` for the tenant's posture, `mfa_auditor_*` for the
//! daemon itself; every series carries `tenant`.
//!
//! The posture lives in a registry of its own, rebuilt from each **complete** audit and swapped
//! in whole: a scrape sees one audit's figures or the next one's, never a mix, and an incomplete
//! audit changes only the daemon's own metrics (failure counter, freshness).
//!
//! The sign-in watcher's figures ([`WatcherMetrics`]) are not the audit's posture: they live
//! beside the daemon's own (the open detections in a small registry of their own, swapped whole
//! after each watcher run), so neither an incomplete audit nor a posture swap touches them. They
//! appear once the watcher takes its handle ([`Metrics::watcher`]).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use prometheus::proto::{LabelPair, MetricFamily};
use prometheus::{
    Encoder, Gauge, GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};
use serde::{Deserialize, Serialize};

use crate::evaluate::predict::PolicyLockouts;
use crate::evaluate::{RulesConfig, SsprReadiness, CATALOGUE};
use crate::graph::GraphStats;
use crate::report::{Report, SmartLockoutFigures};
use crate::watch::LockoutState;

/// The daemon's metrics and the current posture.
pub struct Metrics {
    tenant: String,
    daemon: Registry,
    alerting: AlertingMetrics,
    http: HttpMetrics,
    audits: IntCounterVec,
    skipped: prometheus::IntCounter,
    last_success: Gauge,
    last_attempt: Gauge,
    duration: Gauge,
    phases: GaugeVec,
    posture: RwLock<Arc<Registry>>,
    record: RwLock<Option<Arc<PostureRecord>>>,
    watcher: WatcherMetrics,
    tenant_info: IntGaugeVec,
    consecutive_failures: prometheus::IntGauge,
    backoff_until: Gauge,
}

/// The families that describe the process, not a tenant: in a scrape of many tenants
/// ([`render_many`]) they appear once, without the `tenant` label.
const PROCESS_WIDE: [&str; 4] = [
    "mfa_auditor_build_info",
    "mfa_auditor_http_connections",
    "mfa_auditor_http_connections_shed_total",
    "mfa_auditor_http_accept_errors_total",
];

/// What the posture registry is built from: the figures of the last complete audit, where a rule
/// it skipped or a data set it could not read keeps the figures last known (a skipped rule is not
/// a passing one, and a permission lost for an hour must not read as a tenant gone clean). Kept
/// in the state store as JSON, so a restart republishes it before Graph answers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PostureRecord {
    /// When the complete audit these figures come from finished.
    pub finished_at: DateTime<Utc>,
    pub users_in_scope: u64,
    pub users_by_mfa_families: [u64; 4],
    pub users_with_method: BTreeMap<String, u64>,
    pub unknown_methods: BTreeMap<String, u64>,
    pub tap_policy_enabled: Option<bool>,
    pub tap_policy_usable_once: Option<bool>,
    pub tap_policy_lifetime_minutes: BTreeMap<String, u32>,
    pub tap_active: [u64; 2],
    pub auth_methods_enabled: BTreeMap<String, bool>,
    pub security_defaults_enabled: Option<bool>,
    pub mfa_failures_by_code: BTreeMap<i32, u64>,
    pub tenant_rules_passing: BTreeMap<String, bool>,
    /// Open findings (not excepted) and excepted ones, by rule: only rules judged at least once.
    pub findings_by_rule: BTreeMap<String, u64>,
    pub excepted_by_rule: BTreeMap<String, u64>,
    /// Open critical findings of users: (rule, user principal name), at most the per-user cap.
    pub critical_users: Vec<(String, String)>,
    /// Open critical findings of users by rule (all of them, beyond the cap).
    #[serde(default)]
    pub critical_by_rule: BTreeMap<String, u64>,
    /// When each rule was last judged.
    pub rule_judged_at: BTreeMap<String, DateTime<Utc>>,
    /// Rules the audit skipped, with the reason: their series are the last known ones.
    pub skipped_rules: BTreeMap<String, String>,
    /// Data sets the audit could not read, with the reason: their figures are the last known ones.
    pub carried: BTreeMap<String, String>,
    /// Service principals holding each tracked role; `None` when roles were never read.
    #[serde(default)]
    pub role_service_principals: Option<BTreeMap<String, u64>>,
    /// Per Conditional Access policy, users it would lock out; `None` before the policy rules
    /// were first judged (or while they are turned off).
    #[serde(default)]
    pub ca_policy_lockouts: Option<Vec<PolicyLockouts>>,
    /// In-scope users by SSPR readiness; `None` when never read.
    #[serde(default)]
    pub sspr: Option<SsprReadiness>,
    /// Smart lockout (the tenant's or Entra's defaults); `None` when never read.
    #[serde(default)]
    pub smart_lockout: Option<SmartLockoutFigures>,
}

/// The figure groups each data set feeds, for carrying them when it is unread.
const FROM_USERS: &str = "users";
const FROM_METHODS: [&str; 3] = ["registration", "method-detail", "users"];

impl PostureRecord {
    /// The record of `report` (complete), with what it could not judge taken from `prev`.
    pub fn of(report: &Report, prev: Option<&PostureRecord>) -> PostureRecord {
        let p = &report.posture;
        let skipped: BTreeMap<String, String> = report
            .skipped
            .iter()
            .map(|s| (s.rule.to_string(), s.reason.clone()))
            .collect();
        let owned =
            |m: &BTreeMap<&'static str, u64>| m.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let mut rec = PostureRecord {
            finished_at: report.finished_at,
            users_in_scope: report.users_in_scope as u64,
            users_by_mfa_families: p.users_by_mfa_families,
            users_with_method: owned(&p.users_with_method),
            unknown_methods: p.unknown_methods.clone(),
            tap_policy_enabled: p.tap_policy_enabled,
            tap_policy_usable_once: p.tap_policy_usable_once,
            tap_policy_lifetime_minutes: p
                .tap_policy_lifetime_minutes
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            tap_active: p.tap_active,
            auth_methods_enabled: p.auth_methods_enabled.clone(),
            security_defaults_enabled: p.security_defaults_enabled,
            mfa_failures_by_code: p.mfa_failures_by_code.clone(),
            tenant_rules_passing: p
                .tenant_rules_passing
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            findings_by_rule: BTreeMap::new(),
            excepted_by_rule: BTreeMap::new(),
            critical_users: Vec::new(),
            critical_by_rule: BTreeMap::new(),
            rule_judged_at: BTreeMap::new(),
            skipped_rules: skipped.clone(),
            carried: BTreeMap::new(),
            role_service_principals: p
                .role_service_principals
                .as_ref()
                .map(|m| m.iter().map(|(k, v)| (k.to_string(), *v)).collect()),
            ca_policy_lockouts: report.summary.predicted_lockouts.clone(),
            sspr: p.sspr,
            smart_lockout: p.smart_lockout.clone(),
        };
        let sum = &report.summary;
        for rule in CATALOGUE.iter().filter(|r| !skipped.contains_key(r.id)) {
            let n = sum.by_rule.get(rule.id).copied().unwrap_or(0);
            let x = sum.excepted_by_rule.get(rule.id).copied().unwrap_or(0);
            rec.findings_by_rule.insert(rule.id.into(), n as u64);
            rec.excepted_by_rule.insert(rule.id.into(), x as u64);
            rec.critical_by_rule.insert(
                rule.id.into(),
                sum.critical_by_rule.get(rule.id).copied().unwrap_or(0) as u64,
            );
            rec.rule_judged_at
                .insert(rule.id.into(), report.finished_at);
        }
        rec.critical_users = sum
            .critical_users
            .iter()
            .map(|(rule, upn)| (rule.to_string(), upn.clone()))
            .collect();
        let Some(prev) = prev else {
            return rec;
        };
        // A skipped rule keeps what it last found.
        for rule in skipped.keys() {
            for (from, to) in [
                (&prev.findings_by_rule, &mut rec.findings_by_rule),
                (&prev.excepted_by_rule, &mut rec.excepted_by_rule),
                (&prev.critical_by_rule, &mut rec.critical_by_rule),
            ] {
                if let Some(n) = from.get(rule) {
                    to.insert(rule.clone(), *n);
                }
            }
            if let Some(ok) = prev.tenant_rules_passing.get(rule) {
                rec.tenant_rules_passing.insert(rule.clone(), *ok);
            }
            if let Some(t) = prev.rule_judged_at.get(rule) {
                rec.rule_judged_at.insert(rule.clone(), *t);
            }
            rec.critical_users.extend(
                prev.critical_users
                    .iter()
                    .filter(|(r, _)| r == rule)
                    .cloned(),
            );
        }
        // The policy rules skipped for lack of data: the predicted lockouts are the last known.
        if rec.ca_policy_lockouts.is_none() && skipped.contains_key("policy-unsatisfiable") {
            rec.ca_policy_lockouts = prev.ca_policy_lockouts.clone();
        }
        // An unread data set keeps the figures drawn from it.
        for (set, why) in &p.unread {
            let carried = match *set {
                "registration" | FROM_USERS if rec.sspr.is_none() => {
                    rec.sspr = prev.sspr;
                    prev.sspr.is_some()
                }
                "directory-settings" => {
                    rec.smart_lockout = prev.smart_lockout.clone();
                    true
                }
                _ => false,
            };
            if carried {
                rec.carried.insert(set.to_string(), why.clone());
            }
            let carried = match *set {
                FROM_USERS => {
                    rec.users_in_scope = prev.users_in_scope;
                    true
                }
                _ => false,
            };
            let carried = carried
                | match *set {
                    s if FROM_METHODS.contains(&s) => {
                        rec.users_by_mfa_families = prev.users_by_mfa_families;
                        rec.users_with_method = prev.users_with_method.clone();
                        rec.unknown_methods = prev.unknown_methods.clone();
                        true
                    }
                    "methods-policy" => {
                        rec.tap_policy_enabled = prev.tap_policy_enabled;
                        rec.tap_policy_usable_once = prev.tap_policy_usable_once;
                        rec.tap_policy_lifetime_minutes = prev.tap_policy_lifetime_minutes.clone();
                        rec.auth_methods_enabled = prev.auth_methods_enabled.clone();
                        true
                    }
                    "tap-detail" => {
                        rec.tap_active = prev.tap_active;
                        true
                    }
                    "security-defaults" => {
                        rec.security_defaults_enabled = prev.security_defaults_enabled;
                        true
                    }
                    "sign-ins" => {
                        rec.mfa_failures_by_code = prev.mfa_failures_by_code.clone();
                        true
                    }
                    "roles" => {
                        rec.role_service_principals = prev.role_service_principals.clone();
                        true
                    }
                    _ => false,
                };
            if carried {
                rec.carried.insert(set.to_string(), why.clone());
            }
        }
        rec
    }
}

/// What the Alertmanager pusher and the webhook worker count; cheap to clone (shared counters).
#[derive(Clone)]
pub struct AlertingMetrics {
    /// `mfa_auditor_alertmanager_pushes_total{result}`.
    pub alertmanager_pushes: IntCounterVec,
    /// `mfa_auditor_alertmanager_alerts`: active alerts in the last successful push.
    pub alertmanager_alerts: prometheus::IntGauge,
    /// `mfa_auditor_alertmanager_alerts_dropped`: findings left out by `max_alerts`.
    pub alertmanager_alerts_dropped: prometheus::IntGauge,
    /// `mfa_auditor_webhook_messages_total{webhook,result}`.
    pub webhook_messages: IntCounterVec,
    /// `mfa_auditor_webhook_pending_events{webhook}`: queued, not yet delivered.
    pub webhook_pending: IntGaugeVec,
}

fn opts(name: &str, help: &str, tenant: &str) -> Opts {
    Opts::new(name, help).const_label("tenant", tenant)
}

/// Registers a metric; names are fixed at compile time, so a clash is a programming error.
fn register<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    if let Err(e) = registry.register(Box::new(metric.clone())) {
        unreachable!("metric registration: {e}");
    }
    metric
}

/// A metric of type `$ty` with the tenant label, registered in `$reg`: `with_opts` for a plain
/// one, `new` with `[labels]` for a vector.
macro_rules! metric {
    ($ty:ty, $reg:expr, $tenant:expr, $name:literal, $help:literal) => {
        register(
            $reg,
            <$ty>::with_opts(opts($name, $help, $tenant)).unwrap_or_else(|e| unreachable!("{e}")),
        )
    };
    ($ty:ty, $reg:expr, $tenant:expr, $name:literal, $help:literal, [$($label:literal),*]) => {
        register(
            $reg,
            <$ty>::new(opts($name, $help, $tenant), &[$($label),*])
                .unwrap_or_else(|e| unreachable!("{e}")),
        )
    };
}

impl AlertingMetrics {
    fn new(registry: &Registry, tenant: &str) -> AlertingMetrics {
        let alertmanager_pushes = metric!(
            IntCounterVec,
            registry,
            tenant,
            "mfa_auditor_alertmanager_pushes_total",
            "Pushes of the open per-user findings to Alertmanager, by result.",
            ["result"]
        );
        for result in ["success", "failure"] {
            alertmanager_pushes.with_label_values(&[result]);
        }
        AlertingMetrics {
            alertmanager_pushes,
            alertmanager_alerts: metric!(
                prometheus::IntGauge,
                registry,
                tenant,
                "mfa_auditor_alertmanager_alerts",
                "Active alerts in the last successful push to Alertmanager."
            ),
            alertmanager_alerts_dropped: metric!(
                prometheus::IntGauge,
                registry,
                tenant,
                "mfa_auditor_alertmanager_alerts_dropped",
                "Open findings not pushed to Alertmanager because of [alerting.alertmanager] max_alerts."
            ),
            webhook_messages: metric!(
                IntCounterVec,
                registry,
                tenant,
                "mfa_auditor_webhook_messages_total",
                "Webhook messages sent, by webhook and result (a failure is retried).",
                ["webhook", "result"]
            ),
            webhook_pending: metric!(
                IntGaugeVec,
                registry,
                tenant,
                "mfa_auditor_webhook_pending_events",
                "Findings queued for a webhook and not yet delivered.",
                ["webhook"]
            ),
        }
    }
}

/// What the HTTP listener counts; cheap to clone (shared counters).
#[derive(Clone)]
pub struct HttpMetrics {
    /// `mfa_auditor_http_connections`: connections open now.
    pub connections: prometheus::IntGauge,
    /// `mfa_auditor_http_connections_shed_total{action}`: at the connection cap, an idle
    /// connection closed for a new one (`evicted`) or the new one closed (`refused`).
    pub shed: IntCounterVec,
    /// `mfa_auditor_http_accept_errors_total`: accept failures (out of file descriptors...).
    pub accept_errors: prometheus::IntCounter,
}

impl HttpMetrics {
    fn new(registry: &Registry, tenant: &str) -> HttpMetrics {
        let shed = metric!(
            IntCounterVec,
            registry,
            tenant,
            "mfa_auditor_http_connections_shed_total",
            "Connections closed at the connection cap: an idle one for a newcomer (evicted) or the newcomer (refused).",
            ["action"]
        );
        for action in ["evicted", "refused"] {
            shed.with_label_values(&[action]);
        }
        HttpMetrics {
            connections: metric!(
                prometheus::IntGauge,
                registry,
                tenant,
                "mfa_auditor_http_connections",
                "HTTP connections open."
            ),
            shed,
            accept_errors: metric!(
                prometheus::IntCounter,
                registry,
                tenant,
                "mfa_auditor_http_accept_errors_total",
                "Failures to accept an HTTP connection (such as running out of file descriptors)."
            ),
        }
    }
}

/// The sign-in watcher's figures; cheap to clone (shared counters and the shared detections
/// registry). Made by [`Metrics::watcher`].
#[derive(Clone)]
pub struct WatcherMetrics {
    tenant: Arc<str>,
    /// `mfa_auditor_watcher_reads_total{stream,result}`.
    reads: IntCounterVec,
    /// `mfa_auditor_watcher_last_success_timestamp_seconds{stream}`.
    last_success: GaugeVec,
    /// `mfa_auditor_watcher_lag_seconds{stream}`.
    lag: GaugeVec,
    /// `mfa_auditor_watcher_behind{stream}`.
    behind: IntGaugeVec,
    /// `entra_lockout_detections_opened_total{state}`.
    opened: IntCounterVec,
    /// `entra_lockout_detections_resolved_total{state}`.
    resolved: IntCounterVec,
    /// `entra_security_info_events_total{notable}`.
    security: IntCounterVec,
    /// The open detections (`entra_users_locked_out`, `entra_lockout_detections`,
    /// `entra_lockout_detection_error_codes`): rebuilt and swapped whole by `detections`, so a
    /// code no longer seen disappears and a scrape never sees half an update. `None` until the
    /// watcher takes its handle.
    open: Arc<RwLock<Option<Arc<Registry>>>>,
}

/// The streams the watcher reads (`crate::state::WatchStream::as_str`).
const WATCH_STREAMS: [&str; 2] = ["sign-ins", "directory-audits"];

impl WatcherMetrics {
    fn new(registry: &Registry, tenant: &str) -> WatcherMetrics {
        WatcherMetrics {
            tenant: tenant.into(),
            reads: metric!(
                IntCounterVec,
                registry,
                tenant,
                "mfa_auditor_watcher_reads_total",
                "Reads of a Graph event stream by the sign-in watcher, by stream and result (success or failure).",
                ["stream", "result"]
            ),
            last_success: metric!(
                GaugeVec,
                registry,
                tenant,
                "mfa_auditor_watcher_last_success_timestamp_seconds",
                "When the watcher last read the stream successfully (Unix time); absent before the first.",
                ["stream"]
            ),
            lag: metric!(
                GaugeVec,
                registry,
                tenant,
                "mfa_auditor_watcher_lag_seconds",
                "Seconds from the newest event the last successful read returned to the read; 0 when it returned none (caught up).",
                ["stream"]
            ),
            behind: metric!(
                IntGaugeVec,
                registry,
                tenant,
                "mfa_auditor_watcher_behind",
                "1 when the last successful read of the stream stopped at its page cap (events left for the next run), else 0.",
                ["stream"]
            ),
            opened: metric!(
                IntCounterVec,
                registry,
                tenant,
                "entra_lockout_detections_opened_total",
                "Lockout detections opened by the sign-in watcher, by state.",
                ["state"]
            ),
            resolved: metric!(
                IntCounterVec,
                registry,
                tenant,
                "entra_lockout_detections_resolved_total",
                "Lockout detections resolved (a successful MFA sign-in since), by state.",
                ["state"]
            ),
            security: metric!(
                IntCounterVec,
                registry,
                tenant,
                "entra_security_info_events_total",
                "Security-info changes read from the directory audits (methods registered, deleted, reset), by whether they are notable (true: a method deleted or reset by someone else, a lone method removed).",
                ["notable"]
            ),
            open: Arc::new(RwLock::new(None)),
        }
    }

    /// Makes the watcher's series exist (at 0), once; idempotent. Not the last success's: it
    /// appears with the first successful read, so a watcher that never ran (disabled) reads as
    /// none rather than as one that stopped succeeding in 1970.
    fn start(&self) {
        for stream in WATCH_STREAMS {
            for result in ["success", "failure"] {
                self.reads.with_label_values(&[stream, result]);
            }
            self.lag.with_label_values(&[stream]);
            self.behind.with_label_values(&[stream]);
        }
        for state in LockoutState::ALL {
            self.opened.with_label_values(&[state.as_str()]);
            self.resolved.with_label_values(&[state.as_str()]);
        }
        for notable in ["true", "false"] {
            self.security.with_label_values(&[notable]);
        }
        let mut open = self.open.write().unwrap_or_else(|e| e.into_inner());
        if open.is_none() {
            *open = Some(Arc::new(self.open_registry(&[], &[], 0)));
        }
    }

    /// One stream's read finished (`stream`: "sign-ins" | "directory-audits",
    /// `crate::state::WatchStream::as_str`). `lag`: seconds from the newest event read to now,
    /// `None` when the read returned no event (the lag reads 0: nothing is waiting). `events`:
    /// new events (counted by the store, not here). `behind`: stopped at its page cap. A failed
    /// read leaves the lag, the freshness and `behind` as they were.
    pub fn read(&self, stream: &str, ok: bool, events: u64, lag: Option<f64>, behind: bool) {
        let _ = events;
        let result = if ok { "success" } else { "failure" };
        self.reads.with_label_values(&[stream, result]).inc();
        if !ok {
            return;
        }
        self.last_success
            .with_label_values(&[stream])
            .set(Utc::now().timestamp_millis() as f64 / 1000.0);
        self.lag
            .with_label_values(&[stream])
            .set(lag.unwrap_or(0.0).max(0.0));
        self.behind
            .with_label_values(&[stream])
            .set(i64::from(behind));
    }

    /// After each watcher run that recorded (and at start, from the store): the open detections.
    /// `by_state`: open detections per state (a state left out reads 0); `by_code`: open
    /// detections per error code; `locked_out_users`: distinct users with an open `locked-out`
    /// detection.
    pub fn detections(
        &self,
        by_state: &[(LockoutState, i64)],
        by_code: &[(i32, i64)],
        locked_out_users: i64,
    ) {
        let fresh = Arc::new(self.open_registry(by_state, by_code, locked_out_users));
        *self.open.write().unwrap_or_else(|e| e.into_inner()) = Some(fresh);
    }

    /// A run's recorded changes (counters by state) and security events (`notable` of them
    /// notable, the rest not).
    pub fn recorded(
        &self,
        opened: &[(LockoutState, u64)],
        resolved: &[(LockoutState, u64)],
        security_events: u64,
        notable: u64,
    ) {
        for (state, n) in opened {
            self.opened.with_label_values(&[state.as_str()]).inc_by(*n);
        }
        for (state, n) in resolved {
            self.resolved
                .with_label_values(&[state.as_str()])
                .inc_by(*n);
        }
        let notable = notable.min(security_events);
        self.security.with_label_values(&["true"]).inc_by(notable);
        self.security
            .with_label_values(&["false"])
            .inc_by(security_events - notable);
    }

    fn open_registry(
        &self,
        by_state: &[(LockoutState, i64)],
        by_code: &[(i32, i64)],
        locked_out_users: i64,
    ) -> Registry {
        let r = Registry::new();
        let t = &*self.tenant;
        metric!(
            prometheus::IntGauge,
            &r,
            t,
            "entra_users_locked_out",
            "Users with an open locked-out detection now (repeated MFA failures and no successful sign-in since)."
        )
        .set(locked_out_users);
        let states = metric!(
            IntGaugeVec,
            &r,
            t,
            "entra_lockout_detections",
            "Open lockout detections of the sign-in watcher, by state (every state present, 0 when none).",
            ["state"]
        );
        for state in LockoutState::ALL {
            let n = by_state
                .iter()
                .filter(|(s, _)| *s == state)
                .map(|(_, n)| *n)
                .sum();
            states.with_label_values(&[state.as_str()]).set(n);
        }
        let codes = metric!(
            IntGaugeVec,
            &r,
            t,
            "entra_lockout_detection_error_codes",
            "Open lockout detections by the sign-in error code that made them (a detection with several codes counts under each; the codes the watcher classifies are always present).",
            ["code"]
        );
        // The codes the watcher classifies are always present (0 when no open detection has
        // them), so a dashboard shows them before the first lockout.
        for known in crate::watch::classify::ERROR_CODES {
            codes.with_label_values(&[&known.code.to_string()]);
        }
        for (code, n) in by_code {
            codes.with_label_values(&[&code.to_string()]).add(*n);
        }
        r
    }
}

macro_rules! gauge_vec {
    ($reg:expr, $tenant:expr, $name:literal, $help:literal, [$($label:literal),*]) => {
        register($reg, GaugeVec::new(opts($name, $help, $tenant), &[$($label),*]).unwrap_or_else(|e| unreachable!("{e}")))
    };
}

macro_rules! gauge {
    ($reg:expr, $tenant:expr, $name:literal, $help:literal) => {
        register(
            $reg,
            Gauge::with_opts(opts($name, $help, $tenant)).unwrap_or_else(|e| unreachable!("{e}")),
        )
    };
}

impl Metrics {
    pub fn new(tenant: &str) -> Metrics {
        let daemon = Registry::new();
        let audits = register(
            &daemon,
            IntCounterVec::new(
                opts(
                    "mfa_auditor_audits_total",
                    "Audits run, by result (complete or incomplete).",
                    tenant,
                ),
                &["result"],
            )
            .unwrap_or_else(|e| unreachable!("{e}")),
        );
        for result in ["complete", "incomplete"] {
            audits.with_label_values(&[result]);
        }
        let skipped = register(
            &daemon,
            prometheus::IntCounter::with_opts(opts(
                "mfa_auditor_audits_skipped_total",
                "Scheduled audits skipped because the previous one was still running.",
                tenant,
            ))
            .unwrap_or_else(|e| unreachable!("{e}")),
        );
        let last_success = gauge!(
            &daemon,
            tenant,
            "mfa_auditor_audit_last_success_timestamp_seconds",
            "When the last complete audit finished (Unix time); 0 before the first."
        );
        let last_attempt = gauge!(
            &daemon,
            tenant,
            "mfa_auditor_audit_last_attempt_timestamp_seconds",
            "When the last audit, complete or not, finished (Unix time)."
        );
        let duration = gauge!(
            &daemon,
            tenant,
            "mfa_auditor_audit_duration_seconds",
            "How long the last audit took."
        );
        let phases = gauge_vec!(
            &daemon,
            tenant,
            "mfa_auditor_audit_phase_seconds",
            "How long each phase of the last audit took: read (Graph), record (rules judged and the findings written to the store, one transaction), publish (metrics and alerting).",
            ["phase"]
        );
        let build = register(
            &daemon,
            IntGaugeVec::new(
                opts(
                    "mfa_auditor_build_info",
                    "Build information; always 1.",
                    tenant,
                ),
                &["version"],
            )
            .unwrap_or_else(|e| unreachable!("{e}")),
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let alerting = AlertingMetrics::new(&daemon, tenant);
        let http = HttpMetrics::new(&daemon, tenant);
        let watcher = WatcherMetrics::new(&daemon, tenant);
        let tenant_info = metric!(
            IntGaugeVec,
            &daemon,
            tenant,
            "mfa_auditor_tenant_info",
            "The tenant this daemon audits, with its short name (tenant_name); always 1.",
            ["tenant_name"]
        );
        tenant_info.with_label_values(&[tenant]).set(1);
        let consecutive_failures = metric!(
            prometheus::IntGauge,
            &daemon,
            tenant,
            "mfa_auditor_tenant_consecutive_failures",
            "Audits of the tenant that failed in a row (0 after a complete one)."
        );
        let backoff_until = gauge!(
            &daemon,
            tenant,
            "mfa_auditor_tenant_backoff_until_timestamp_seconds",
            "While the tenant is backed off after repeated failed audits, until when (Unix time); 0 when it is not."
        );
        Metrics {
            tenant: tenant.into(),
            daemon,
            alerting,
            http,
            audits,
            skipped,
            last_success,
            last_attempt,
            duration,
            phases,
            posture: RwLock::new(Arc::new(Registry::new())),
            record: RwLock::new(None),
            watcher,
            tenant_info,
            consecutive_failures,
            backoff_until,
        }
    }

    /// Cheap clone handle for the watcher's figures; the first call makes its series exist (at
    /// 0: every stream, state and `notable`; the last success only once there is one), so a
    /// daemon that never takes the handle publishes none.
    pub fn watcher(&self) -> WatcherMetrics {
        self.watcher.start();
        self.watcher.clone()
    }

    /// The posture now published (to keep in the state store), if any.
    pub fn posture_record(&self) -> Option<Arc<PostureRecord>> {
        self.record
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How long a phase of the last audit took (`read`, `record`, `publish`).
    pub fn audit_phase(&self, phase: &str, took: std::time::Duration) {
        self.phases
            .with_label_values(&[phase])
            .set(took.as_secs_f64());
    }

    /// Whether a posture is published (after a complete audit, or restored from the store).
    pub fn has_posture(&self) -> bool {
        self.posture_record().is_some()
    }

    /// Publishes a posture kept in the state store (at start, before any audit), with the
    /// age of each rule's oldest open finding.
    pub fn restore(
        &self,
        record: PostureRecord,
        rules: &RulesConfig,
        oldest_open: &BTreeMap<String, DateTime<Utc>>,
        per_user: Option<usize>,
    ) {
        self.last_success
            .set(record.finished_at.timestamp_millis() as f64 / 1000.0);
        self.publish(record, rules, oldest_open, per_user);
    }

    fn publish(
        &self,
        record: PostureRecord,
        rules: &RulesConfig,
        oldest_open: &BTreeMap<String, DateTime<Utc>>,
        per_user: Option<usize>,
    ) {
        let fresh = Arc::new(self.posture_registry(&record, rules, oldest_open, per_user));
        *self.posture.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        *self.record.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(record));
    }

    /// The alerting counters, for the Alertmanager pusher and the webhook worker.
    pub fn alerting(&self) -> AlertingMetrics {
        self.alerting.clone()
    }

    /// The HTTP listener's counters.
    pub fn http(&self) -> HttpMetrics {
        self.http.clone()
    }

    /// Counts a scheduled audit skipped because one was still running.
    pub fn audit_skipped(&self) {
        self.skipped.inc();
    }

    /// Takes in one audit: always the daemon's own figures; the posture only when it is complete.
    /// `oldest_open` is when the store's oldest open finding of each rule was first seen (for its age).
    pub fn observe(
        &self,
        report: &Report,
        rules: &RulesConfig,
        oldest_open: &BTreeMap<String, DateTime<Utc>>,
    ) {
        self.observe_with(report, rules, oldest_open, None)
    }

    /// [`Metrics::observe`], with per-user series for critical findings capped at `per_user`.
    pub fn observe_with(
        &self,
        report: &Report,
        rules: &RulesConfig,
        oldest_open: &BTreeMap<String, DateTime<Utc>>,
        per_user: Option<usize>,
    ) {
        let finished = report.finished_at.timestamp_millis() as f64 / 1000.0;
        let took = (report.finished_at - report.started_at)
            .num_milliseconds()
            .max(0) as f64
            / 1000.0;
        self.last_attempt.set(finished);
        self.duration.set(took);
        if !report.complete {
            self.audits.with_label_values(&["incomplete"]).inc();
            return;
        }
        self.audits.with_label_values(&["complete"]).inc();
        let record = PostureRecord::of(report, self.posture_record().as_deref());
        self.publish(record, rules, oldest_open, per_user);
        self.last_success.set(finished);
    }

    fn posture_registry(
        &self,
        p: &PostureRecord,
        rules: &RulesConfig,
        oldest_open: &BTreeMap<String, DateTime<Utc>>,
        per_user: Option<usize>,
    ) -> Registry {
        let r = Registry::new();
        let t = self.tenant.as_str();
        gauge!(&r, t, "entra_users", "Users in scope of the user rules.")
            .set(p.users_in_scope as f64);
        let families = gauge_vec!(
            &r,
            t,
            "entra_users_by_mfa_families",
            "In-scope users by the recovery families their MFA methods span.",
            ["families"]
        );
        for (i, label) in ["0", "1", "2", "3+"].iter().enumerate() {
            families
                .with_label_values(&[label])
                .set(p.users_by_mfa_families[i] as f64);
        }
        let with_method = gauge_vec!(
            &r,
            t,
            "entra_users_with_method",
            "In-scope users with each authentication method registered.",
            ["method"]
        );
        for kind in crate::snapshot::MethodKind::ALL {
            with_method
                .with_label_values(&[kind.name()])
                .set(p.users_with_method.get(kind.name()).copied().unwrap_or(0) as f64);
        }
        let skipped_rule = gauge_vec!(
            &r,
            t,
            "entra_rule_skipped",
            "1 when the last complete audit could not judge a rule (a permission or licence is missing; see /api/v1/audits): its series are the last known ones, not this audit's.",
            ["rule"]
        );
        let judged_at = gauge_vec!(
            &r,
            t,
            "entra_rule_last_judged_timestamp_seconds",
            "When the rule was last judged (Unix time): older than the last audit when it was skipped since.",
            ["rule"]
        );
        let carried = gauge_vec!(
            &r,
            t,
            "entra_data_set_carried",
            "1 when the last complete audit could not read a data set it normally reads: the figures drawn from it are the last known ones.",
            ["data_set"]
        );
        for set in p.carried.keys() {
            carried.with_label_values(&[set]).set(1.0);
        }
        let unknown = gauge_vec!(
            &r,
            t,
            "entra_method_unknown_users",
            "Users with a method string or type this version does not know.",
            ["method"]
        );
        for (m, n) in &p.unknown_methods {
            unknown.with_label_values(&[m]).set(*n as f64);
        }
        let findings = gauge_vec!(
            &r,
            t,
            "entra_mfa_findings",
            "Open findings (not excepted), by rule and severity.",
            ["rule", "severity"]
        );
        let excepted = gauge_vec!(
            &r,
            t,
            "entra_mfa_findings_excepted",
            "Findings accepted by an unexpired exception, by rule.",
            ["rule"]
        );
        let oldest = gauge_vec!(
            &r,
            t,
            "entra_mfa_finding_oldest_seconds",
            "Age of the oldest open finding of each rule.",
            ["rule"]
        );
        let passing = gauge_vec!(
            &r,
            t,
            "entra_rule_passing",
            "1 when a tenant rule found nothing, 0 when it did (rules not judged are absent).",
            ["rule"]
        );
        let now = Utc::now();
        for rule in CATALOGUE {
            let Some(toggle) = rules.toggle(rule.id) else {
                continue;
            };
            if !toggle.enabled() {
                continue;
            }
            skipped_rule
                .with_label_values(&[rule.id])
                .set(f64::from(u8::from(p.skipped_rules.contains_key(rule.id))));
            // A rule never judged has no figures to show; one skipped since shows its last ones.
            let (Some(n), Some(judged)) = (
                p.findings_by_rule.get(rule.id),
                p.rule_judged_at.get(rule.id),
            ) else {
                continue;
            };
            judged_at
                .with_label_values(&[rule.id])
                .set(judged.timestamp() as f64);
            let severity = toggle.severity().unwrap_or(rule.severity);
            findings
                .with_label_values(&[rule.id, severity.as_str()])
                .set(*n as f64);
            excepted
                .with_label_values(&[rule.id])
                .set(p.excepted_by_rule.get(rule.id).copied().unwrap_or(0) as f64);
            let first = oldest_open.get(rule.id);
            oldest
                .with_label_values(&[rule.id])
                .set(first.map_or(0.0, |f| (now - *f).num_seconds().max(0) as f64));
        }
        if let Some(cap) = per_user {
            let series = gauge_vec!(
                &r,
                t,
                "entra_mfa_finding_user",
                "1 per user with an open critical finding (opt-in, capped).",
                ["rule", "user"]
            );
            let critical = &p.critical_users;
            for (rule, upn) in critical.iter().take(cap) {
                series.with_label_values(&[rule, upn]).set(1.0);
            }
            gauge!(
                &r,
                t,
                "entra_mfa_finding_user_dropped",
                "Critical user findings left out of entra_mfa_finding_user by the cap."
            )
            .set(
                p.critical_by_rule
                    .values()
                    .sum::<u64>()
                    .max(critical.len() as u64)
                    .saturating_sub(critical.len().min(cap) as u64) as f64,
            );
        }
        for (rule, ok) in &p.tenant_rules_passing {
            passing
                .with_label_values(&[rule])
                .set(f64::from(u8::from(*ok)));
        }
        if let Some(enabled) = p.tap_policy_enabled {
            gauge!(
                &r,
                t,
                "entra_tap_policy_enabled",
                "1 when the Temporary Access Pass method is enabled."
            )
            .set(f64::from(u8::from(enabled)));
        }
        if let Some(once) = p.tap_policy_usable_once {
            gauge!(
                &r,
                t,
                "entra_tap_policy_usable_once",
                "1 when the TAP policy makes every pass one-time."
            )
            .set(f64::from(u8::from(once)));
        }
        // Base units: DESIGN's `_minutes` fails promtool's lint, so the policy is published in seconds.
        let lifetime = gauge_vec!(
            &r,
            t,
            "entra_tap_policy_lifetime_seconds",
            "TAP policy lifetimes (default, minimum, maximum).",
            ["kind"]
        );
        for (k, v) in &p.tap_policy_lifetime_minutes {
            lifetime.with_label_values(&[k]).set(f64::from(*v) * 60.0);
        }
        let active = gauge_vec!(
            &r,
            t,
            "entra_tap_active",
            "Usable Temporary Access Passes held, by one-time or not.",
            ["usable_once"]
        );
        active
            .with_label_values(&["false"])
            .set(p.tap_active[0] as f64);
        active
            .with_label_values(&["true"])
            .set(p.tap_active[1] as f64);
        let methods = gauge_vec!(
            &r,
            t,
            "entra_auth_method_enabled",
            "1 when a method is enabled in the authentication-methods policy.",
            ["method"]
        );
        for (m, on) in &p.auth_methods_enabled {
            methods
                .with_label_values(&[m])
                .set(f64::from(u8::from(*on)));
        }
        if let Some(on) = p.security_defaults_enabled {
            gauge!(
                &r,
                t,
                "entra_security_defaults_enabled",
                "1 when security defaults are on."
            )
            .set(f64::from(u8::from(on)));
        }
        if let Some(by_role) = &p.role_service_principals {
            let sps = gauge_vec!(
                &r,
                t,
                "entra_role_service_principals",
                "Service principals holding each tracked directory role tenant-wide (not users: outside the user rules).",
                ["role"]
            );
            for (role, n) in by_role {
                sps.with_label_values(&[role]).set(*n as f64);
            }
        }
        if let Some(policies) = &p.ca_policy_lockouts {
            let lockouts = gauge_vec!(
                &r,
                t,
                "entra_ca_policy_predicted_lockouts",
                "Users a Conditional Access policy (enabled, or report-only: enabledForReportingButNotEnforced) would lock out at their next sign-in: it applies to them and none of their policy-allowed methods satisfies its strength.",
                ["policy_id", "policy", "state"]
            );
            let applies = gauge_vec!(
                &r,
                t,
                "entra_ca_policy_applies_users",
                "In-scope users a Conditional Access policy requiring MFA applies to (enabled or report-only).",
                ["policy_id", "policy", "state"]
            );
            for c in policies {
                let labels = [c.policy_id.as_str(), c.policy.as_str(), c.state.as_str()];
                lockouts.with_label_values(&labels).set(c.locked_out as f64);
                applies.with_label_values(&labels).set(c.applies_to as f64);
            }
        }
        if let Some(sspr) = &p.sspr {
            let users = gauge_vec!(
                &r,
                t,
                "entra_sspr_users",
                "In-scope users by self-service password reset readiness: enabled, registered, capable, and not_ready (enabled but not registered or not capable).",
                ["state"]
            );
            for (state, n) in [
                ("enabled", sspr.enabled),
                ("registered", sspr.registered),
                ("capable", sspr.capable),
                ("not_ready", sspr.not_ready),
            ] {
                users.with_label_values(&[state]).set(n as f64);
            }
        }
        if let Some(l) = &p.smart_lockout {
            gauge_vec!(
                &r,
                t,
                "entra_smart_lockout_threshold",
                "Failed sign-ins before smart lockout locks an account; source=default when the tenant has no Password Rule Settings and Entra's defaults apply.",
                ["source"]
            )
            .with_label_values(&[&l.source])
            .set(f64::from(l.threshold));
            gauge_vec!(
                &r,
                t,
                "entra_smart_lockout_duration_seconds",
                "Smart lockout's first lockout duration; source=default when Entra's defaults apply.",
                ["source"]
            )
            .with_label_values(&[&l.source])
            .set(f64::from(l.duration_seconds));
        }
        let failures = gauge_vec!(
            &r,
            t,
            "entra_mfa_failures",
            "Failed MFA sign-ins in the collection window, by error code.",
            ["error_code"]
        );
        for (code, n) in &p.mfa_failures_by_code {
            failures
                .with_label_values(&[&code.to_string()])
                .set(*n as f64);
        }
        r
    }

    /// A tenant's place in the daemon: its name (`mfa_auditor_tenant_info{tenant_name}`, the
    /// tenant id until this is called), its consecutive failed audits and, while it is backed
    /// off, until when (`mfa_auditor_tenant_backoff_until_timestamp_seconds`, Unix time; 0 when not).
    pub fn tenant_state(
        &self,
        name: &str,
        consecutive_failures: u32,
        backoff_until: Option<DateTime<Utc>>,
    ) {
        if self.tenant_info.with_label_values(&[name]).get() != 1 {
            // A renamed tenant: one info series, under its new name.
            self.tenant_info.reset();
            self.tenant_info.with_label_values(&[name]).set(1);
        }
        self.consecutive_failures
            .set(i64::from(consecutive_failures));
        self.backoff_until
            .set(backoff_until.map_or(0.0, |t| t.timestamp_millis() as f64 / 1000.0));
    }

    /// The tenant id these metrics carry as their `tenant` label.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The exposition text: the daemon's metrics, the Graph client's counters, and the posture of
    /// the last complete audit.
    pub fn render(&self, graph: Option<&GraphStats>) -> String {
        encode(self.families(graph))
    }

    /// Every family of this tenant, sorted by name.
    fn families(&self, graph: Option<&GraphStats>) -> Vec<MetricFamily> {
        let mut families = self.daemon.gather();
        if let Some(stats) = graph {
            families.extend(self.graph_registry(stats).gather());
        }
        let posture = self
            .posture
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        families.extend(posture.gather());
        let open = self
            .watcher
            .open
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(open) = open {
            families.extend(open.gather());
        }
        families.sort_by(|a, b| a.get_name().cmp(b.get_name()));
        families
    }

    fn graph_registry(&self, stats: &GraphStats) -> Registry {
        let r = Registry::new();
        let t = self.tenant.as_str();
        let requests = register(
            &r,
            IntCounterVec::new(
                opts(
                    "mfa_auditor_graph_requests_total",
                    "Graph requests answered, by endpoint and HTTP status (0: no answer).",
                    t,
                ),
                &["endpoint", "status"],
            )
            .unwrap_or_else(|e| unreachable!("{e}")),
        );
        for ((endpoint, status), n) in stats.snapshot() {
            requests
                .with_label_values(&[endpoint, &status.to_string()])
                .inc_by(n);
        }
        let throttled = register(
            &r,
            IntCounterVec::new(
                opts(
                    "mfa_auditor_graph_throttled_total",
                    "Graph answers with status 429, by endpoint.",
                    t,
                ),
                &["endpoint"],
            )
            .unwrap_or_else(|e| unreachable!("{e}")),
        );
        // Every endpoint asked has a throttle count, 0 until Graph answers it with a 429.
        for ((endpoint, _), _) in stats.snapshot() {
            throttled.with_label_values(&[endpoint]);
        }
        for (endpoint, n) in stats.throttled() {
            throttled.with_label_values(&[endpoint]).inc_by(n);
        }
        register(&r, stats.durations().clone());
        if let Some(ratio) = stats.throttle_limit_ratio() {
            gauge!(
                &r,
                t,
                "mfa_auditor_graph_throttle_limit_ratio",
                "Last x-ms-throttle-limit-percentage Graph sent (1.0: at the limit)."
            )
            .set(ratio);
        }
        r
    }
}

fn encode(families: Vec<MetricFamily>) -> String {
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
        return format!("# encoding failed: {e}\n");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// The exposition text of many tenants' metrics in one scrape: each family once (one `# HELP`
/// and `# TYPE`), holding every tenant's series in the order given; every series of a tenant
/// carries its `tenant` label. The process-wide families ([`PROCESS_WIDE`]: build info, the
/// HTTP listener's counters) come from the first part only (the daemon counts its listener
/// there) and, when there are several tenants, without the `tenant` label: they are no
/// tenant's. One part renders exactly as [`Metrics::render`].
pub fn render_many<'a>(
    parts: impl IntoIterator<Item = (&'a Metrics, Option<&'a GraphStats>)>,
) -> String {
    let parts: Vec<_> = parts.into_iter().collect();
    if let [(m, g)] = parts.as_slice() {
        return m.render(*g);
    }
    let mut merged: BTreeMap<String, MetricFamily> = BTreeMap::new();
    for (i, (m, g)) in parts.iter().enumerate() {
        for mut family in m.families(*g) {
            let process_wide = PROCESS_WIDE.contains(&family.get_name());
            if process_wide && i > 0 {
                continue;
            }
            let mut series = family.take_metric();
            for s in series.iter_mut() {
                let mut labels: Vec<LabelPair> = s
                    .take_label()
                    .into_iter()
                    .filter(|l| l.get_name() != "tenant")
                    .collect();
                if !process_wide {
                    let mut t = LabelPair::default();
                    t.set_name("tenant".into());
                    t.set_value(m.tenant.clone());
                    labels.push(t);
                    labels.sort_by(|a, b| a.get_name().cmp(b.get_name()));
                }
                s.set_label(labels);
            }
            match merged.get_mut(family.get_name()) {
                Some(into) => into.mut_metric().extend(series),
                None => {
                    family.set_metric(series);
                    merged.insert(family.get_name().to_string(), family);
                }
            }
        }
    }
    encode(
        merged
            .into_values()
            .filter(|f| !f.get_metric().is_empty())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::{Finding, Severity};
    use crate::report::{Posture, Summary};

    fn report(complete: bool, findings: usize) -> Report {
        let t = Utc::now();
        let mut posture = Posture {
            users_by_mfa_families: [3, 5, 7, 1],
            ..Posture::default()
        };
        posture.users_with_method.insert("mobilePhone", 9);
        posture
            .tenant_rules_passing
            .insert("tap-policy-disabled", true);
        posture.tap_policy_enabled = Some(true);
        Report {
            tenant: "t1".into(),
            complete,
            started_at: t - chrono::Duration::seconds(3),
            finished_at: t,
            users_in_scope: 16,
            findings: (0..findings)
                .map(|i| Finding {
                    rule: "phone-only",
                    severity: Severity::Medium,
                    subject: format!("u{i}"),
                    user_id: None,
                    user_principal_name: None,
                    detail: "d".into(),
                    remediation: "r".into(),
                })
                .collect(),
            excepted: vec![],
            skipped: vec![],
            incomplete_reasons: vec![],
            summary: Summary::default(),
            posture,
        }
    }

    /// The report with its counts taken from its findings, as an audit tallies them.
    fn tallied(r: &Report) -> Report {
        let mut tally = crate::report::Tally::new(usize::MAX);
        r.findings.iter().for_each(|f| tally.open(f));
        r.excepted.iter().for_each(|e| tally.excepted(&e.finding));
        Report {
            summary: crate::report::Summary {
                // The evaluation's, not the findings'.
                predicted_lockouts: r.summary.predicted_lockouts.clone(),
                ..tally.into_summary()
            },
            ..r.clone()
        }
    }

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
    }

    #[test]
    fn posture_switches_only_on_complete_audits() {
        let m = Metrics::new("t1");
        let before = m.render(None);
        assert_eq!(
            value(
                &before,
                "mfa_auditor_audit_last_success_timestamp_seconds{tenant=\"t1\"}"
            ),
            Some(0.0)
        );
        assert!(
            !before.contains("entra_users"),
            "no posture before the first complete audit"
        );
        m.observe(
            &tallied(&report(true, 4)),
            &RulesConfig::default(),
            &BTreeMap::new(),
        );
        let first = m.render(None);
        assert_eq!(value(&first, "entra_users{tenant=\"t1\"}"), Some(16.0));
        assert_eq!(
            value(
                &first,
                "entra_users_by_mfa_families{families=\"3+\",tenant=\"t1\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &first,
                "entra_mfa_findings{rule=\"phone-only\",severity=\"medium\",tenant=\"t1\"}"
            ),
            Some(4.0)
        );
        assert_eq!(
            value(
                &first,
                "entra_mfa_findings{rule=\"no-mfa-method\",severity=\"high\",tenant=\"t1\"}"
            ),
            Some(0.0)
        );
        assert_eq!(
            value(
                &first,
                "entra_mfa_findings{rule=\"method-not-allowed\",severity=\"high\",tenant=\"t1\"}"
            ),
            Some(0.0),
            "every judged rule has its series, the alerts' too"
        );
        assert_eq!(
            value(
                &first,
                "entra_users_with_method{method=\"mobilePhone\",tenant=\"t1\"}"
            ),
            Some(9.0)
        );
        assert_eq!(
            value(
                &first,
                "entra_rule_passing{rule=\"tap-policy-disabled\",tenant=\"t1\"}"
            ),
            Some(1.0)
        );
        // An incomplete audit: posture untouched, the failure counted.
        m.observe(
            &tallied(&report(false, 0)),
            &RulesConfig::default(),
            &BTreeMap::new(),
        );
        let second = m.render(None);
        let posture = |t: &str| {
            t.lines()
                .filter(|l| l.starts_with("entra_"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(posture(&first), posture(&second));
        assert_eq!(
            value(
                &second,
                "mfa_auditor_audits_total{result=\"incomplete\",tenant=\"t1\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &second,
                "mfa_auditor_audits_total{result=\"complete\",tenant=\"t1\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &first,
                "mfa_auditor_audit_last_success_timestamp_seconds{tenant=\"t1\"}"
            ),
            value(
                &second,
                "mfa_auditor_audit_last_success_timestamp_seconds{tenant=\"t1\"}"
            )
        );
    }

    #[test]
    fn a_skipped_rule_and_an_unread_data_set_keep_their_last_series_marked() {
        let m = Metrics::new("t1");
        m.observe(
            &tallied(&report(true, 4)),
            &RulesConfig::default(),
            &BTreeMap::new(),
        );
        let first = m.render(None);
        // The report could not be read: phone-only skipped, the method figures not this audit's.
        let mut lost = report(true, 0);
        lost.skipped.push(crate::evaluate::Skipped {
            rule: "phone-only",
            reason: "registration needs the AuditLog.Read.All permission".into(),
        });
        lost.posture.users_by_mfa_families = [0, 0, 0, 0];
        lost.posture.users_with_method.clear();
        lost.posture.unread.insert(
            "registration",
            "needs the AuditLog.Read.All permission".into(),
        );
        m.observe(&tallied(&lost), &RulesConfig::default(), &BTreeMap::new());
        let second = m.render(None);
        for series in [
            "entra_mfa_findings{rule=\"phone-only\",severity=\"medium\",tenant=\"t1\"}",
            "entra_users_by_mfa_families{families=\"3+\",tenant=\"t1\"}",
            "entra_users_with_method{method=\"mobilePhone\",tenant=\"t1\"}",
        ] {
            assert_eq!(value(&second, series), value(&first, series), "{series}");
            assert!(value(&second, series).is_some_and(|v| v > 0.0), "{series}");
        }
        assert_eq!(
            value(
                &second,
                "entra_rule_skipped{rule=\"phone-only\",tenant=\"t1\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &second,
                "entra_rule_skipped{rule=\"no-mfa-method\",tenant=\"t1\"}"
            ),
            Some(0.0)
        );
        assert_eq!(
            value(
                &second,
                "entra_data_set_carried{data_set=\"registration\",tenant=\"t1\"}"
            ),
            Some(1.0)
        );
        let judged = |t: &str, rule: &str| {
            value(
                t,
                &format!(
                    "entra_rule_last_judged_timestamp_seconds{{rule=\"{rule}\",tenant=\"t1\"}}"
                ),
            )
        };
        assert_eq!(judged(&second, "phone-only"), judged(&first, "phone-only"));
        // The record survives a restart through JSON.
        let record = m.posture_record().expect("published");
        let json = serde_json::to_string(&*record).expect("json");
        let back: PostureRecord = serde_json::from_str(&json).expect("parses");
        let restarted = Metrics::new("t1");
        restarted.restore(back, &RulesConfig::default(), &BTreeMap::new(), None);
        let posture = |t: &str| {
            t.lines()
                .filter(|l| l.starts_with("entra_"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(posture(&restarted.render(None)), posture(&second));
    }

    #[test]
    fn per_user_series_are_opt_in_critical_only_and_capped() {
        let mut r = report(true, 0);
        for (i, sev) in [
            Severity::Critical,
            Severity::Critical,
            Severity::Critical,
            Severity::High,
        ]
        .iter()
        .enumerate()
        {
            r.findings.push(Finding {
                rule: "break-glass-weak",
                severity: *sev,
                subject: format!("g{i}"),
                user_id: None,
                user_principal_name: Some(format!("glass{i}@contoso.com")),
                detail: "d".into(),
                remediation: "r".into(),
            });
        }
        let m = Metrics::new("t1");
        m.observe(&tallied(&r), &RulesConfig::default(), &BTreeMap::new());
        assert!(
            !m.render(None).contains("entra_mfa_finding_user"),
            "off by default"
        );
        m.observe_with(
            &tallied(&r),
            &RulesConfig::default(),
            &BTreeMap::new(),
            Some(2),
        );
        let text = m.render(None);
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("entra_mfa_finding_user{"))
                .count(),
            2
        );
        assert_eq!(
            value(&text, "entra_mfa_finding_user_dropped{tenant=\"t1\"}"),
            Some(1.0)
        );
        assert!(
            !text.contains("glass3@"),
            "high findings never get a per-user series"
        );
    }

    #[test]
    fn role_service_principals_are_published_per_role_only_when_roles_were_read() {
        let m = Metrics::new("t1");
        m.observe(
            &tallied(&report(true, 0)),
            &RulesConfig::default(),
            &BTreeMap::new(),
        );
        assert!(
            !m.render(None).contains("entra_role_service_principals"),
            "absent when roles were not read"
        );
        let mut r = report(true, 0);
        r.posture.role_service_principals = Some(
            [("Global Administrator", 2), ("Security Administrator", 0)]
                .into_iter()
                .collect(),
        );
        m.observe(&tallied(&r), &RulesConfig::default(), &BTreeMap::new());
        let text = m.render(None);
        assert_eq!(
            value(
                &text,
                "entra_role_service_principals{role=\"Global Administrator\",tenant=\"t1\"}"
            ),
            Some(2.0)
        );
        assert_eq!(
            value(
                &text,
                "entra_role_service_principals{role=\"Security Administrator\",tenant=\"t1\"}"
            ),
            Some(0.0)
        );
    }

    /// A complete report carrying the figures of issue 11: predicted lockouts per policy, SSPR
    /// readiness, smart lockout.
    fn with_policy_figures() -> Report {
        let mut r = report(true, 0);
        r.summary.predicted_lockouts = Some(vec![
            crate::evaluate::predict::PolicyLockouts {
                policy_id: "p-1".into(),
                policy: "Admins phishing-resistant".into(),
                state: "enabled".into(),
                applies_to: 12,
                locked_out: 3,
                undecided: 0,
            },
            crate::evaluate::predict::PolicyLockouts {
                policy_id: "p-2".into(),
                policy: "Everyone passwordless".into(),
                state: "enabledForReportingButNotEnforced".into(),
                applies_to: 16,
                locked_out: 9,
                undecided: 1,
            },
        ]);
        r.posture.sspr = Some(SsprReadiness {
            enabled: 16,
            registered: 10,
            capable: 9,
            not_ready: 7,
        });
        r.posture.smart_lockout = Some(SmartLockoutFigures {
            threshold: 10,
            duration_seconds: 60,
            source: "default".into(),
        });
        r
    }

    #[test]
    fn predicted_lockouts_sspr_and_smart_lockout_are_published_and_kept_when_unread() {
        let m = Metrics::new("t1");
        m.observe(
            &tallied(&with_policy_figures()),
            &RulesConfig::default(),
            &BTreeMap::new(),
        );
        let first = m.render(None);
        let series = [
            ("entra_ca_policy_predicted_lockouts{policy=\"Admins phishing-resistant\",policy_id=\"p-1\",state=\"enabled\",tenant=\"t1\"}", 3.0),
            ("entra_ca_policy_predicted_lockouts{policy=\"Everyone passwordless\",policy_id=\"p-2\",state=\"enabledForReportingButNotEnforced\",tenant=\"t1\"}", 9.0),
            ("entra_ca_policy_applies_users{policy=\"Admins phishing-resistant\",policy_id=\"p-1\",state=\"enabled\",tenant=\"t1\"}", 12.0),
            ("entra_sspr_users{state=\"not_ready\",tenant=\"t1\"}", 7.0),
            ("entra_sspr_users{state=\"registered\",tenant=\"t1\"}", 10.0),
            ("entra_smart_lockout_threshold{source=\"default\",tenant=\"t1\"}", 10.0),
            ("entra_smart_lockout_duration_seconds{source=\"default\",tenant=\"t1\"}", 60.0),
        ];
        for (s, v) in series {
            assert_eq!(value(&first, s), Some(v), "{s}\n{first}");
        }
        // The next audit could not judge the policy rules (Conditional Access unread) nor read
        // the registration report or the directory settings: the last figures stay, marked.
        let mut lost = report(true, 0);
        for rule in ["policy-unsatisfiable", "policy-unsatisfiable-report-only"] {
            lost.skipped.push(crate::evaluate::Skipped {
                rule,
                reason: "conditional-access needs the Policy.Read.All permission".into(),
            });
        }
        lost.posture.unread.insert(
            "registration",
            "needs the AuditLog.Read.All permission".into(),
        );
        lost.posture.unread.insert(
            "directory-settings",
            "needs the Directory.Read.All permission".into(),
        );
        m.observe(&tallied(&lost), &RulesConfig::default(), &BTreeMap::new());
        let second = m.render(None);
        for (s, v) in series {
            assert_eq!(value(&second, s), Some(v), "{s} kept");
        }
        assert_eq!(
            value(
                &second,
                "entra_data_set_carried{data_set=\"directory-settings\",tenant=\"t1\"}"
            ),
            Some(1.0)
        );
        // And a restart republishes them from the stored record.
        let record = m.posture_record().expect("published");
        let back: PostureRecord =
            serde_json::from_str(&serde_json::to_string(&*record).expect("json")).expect("parses");
        let restarted = Metrics::new("t1");
        restarted.restore(back, &RulesConfig::default(), &BTreeMap::new(), None);
        let third = restarted.render(None);
        for (s, v) in series {
            assert_eq!(value(&third, s), Some(v), "{s} after a restart");
        }
        // A record written before these figures existed still loads, without them.
        let old: PostureRecord = serde_json::from_str(
            r#"{"finished_at":"2026-11-24T12:00:00Z","users_in_scope":1,"users_by_mfa_families":[0,1,0,0],
            "users_with_method":{},"unknown_methods":{},"tap_policy_enabled":null,"tap_policy_usable_once":null,
            "tap_policy_lifetime_minutes":{},"tap_active":[0,0],"auth_methods_enabled":{},
            "security_defaults_enabled":null,"mfa_failures_by_code":{},"tenant_rules_passing":{},
            "findings_by_rule":{},"excepted_by_rule":{},"critical_users":[],"rule_judged_at":{},
            "skipped_rules":{},"carried":{}}"#,
        )
        .expect("an old record parses");
        assert_eq!(
            (old.ca_policy_lockouts, old.sspr, old.smart_lockout),
            (None, None, None)
        );
        // The tenant sets its own: the source says so, and the defaults' series are gone.
        let mut own = with_policy_figures();
        own.posture.smart_lockout = Some(SmartLockoutFigures {
            threshold: 5,
            duration_seconds: 120,
            source: "tenant".into(),
        });
        m.observe(&tallied(&own), &RulesConfig::default(), &BTreeMap::new());
        let fourth = m.render(None);
        assert_eq!(
            value(
                &fourth,
                "entra_smart_lockout_threshold{source=\"tenant\",tenant=\"t1\"}"
            ),
            Some(5.0)
        );
        assert!(!fourth.contains("source=\"default\""));
    }

    #[test]
    fn skipped_audits_are_counted() {
        let m = Metrics::new("t1");
        assert_eq!(
            value(
                &m.render(None),
                "mfa_auditor_audits_skipped_total{tenant=\"t1\"}"
            ),
            Some(0.0)
        );
        m.audit_skipped();
        m.audit_skipped();
        assert_eq!(
            value(
                &m.render(None),
                "mfa_auditor_audits_skipped_total{tenant=\"t1\"}"
            ),
            Some(2.0)
        );
    }

    #[test]
    fn graph_counters_come_from_the_client() {
        let stats = GraphStats::default();
        stats.record("users", 200);
        stats.record("users", 200);
        stats.record("userRegistrationDetails", 429);
        let text = Metrics::new("t1").render(Some(&stats));
        assert_eq!(
            value(
                &text,
                "mfa_auditor_graph_requests_total{endpoint=\"users\",status=\"200\",tenant=\"t1\"}"
            ),
            Some(2.0)
        );
        assert_eq!(value(&text, "mfa_auditor_graph_throttled_total{endpoint=\"userRegistrationDetails\",tenant=\"t1\"}"), Some(1.0));
        assert!(text.contains("# TYPE mfa_auditor_graph_requests_total counter"));
        stats.record_duration("users", std::time::Duration::from_millis(300));
        let text = Metrics::new("t1").render(Some(&stats));
        assert!(
            text.contains("# TYPE mfa_auditor_graph_request_duration_seconds histogram"),
            "{text}"
        );
        assert_eq!(value(&text, "mfa_auditor_graph_request_duration_seconds_bucket{endpoint=\"users\",tenant=\"\",le=\"0.5\"}"), Some(1.0));
        assert_eq!(value(&text, "mfa_auditor_graph_request_duration_seconds_bucket{endpoint=\"users\",tenant=\"\",le=\"0.25\"}"), Some(0.0));
    }

    #[test]
    fn watcher_figures_appear_with_its_handle_and_survive_the_posture() {
        let m = Metrics::new("t1");
        assert!(
            !m.render(None).contains("mfa_auditor_watcher_reads_total"),
            "no watcher series before the watcher takes its handle"
        );
        let w = m.watcher();
        let zero = m.render(None);
        for state in LockoutState::ALL {
            assert_eq!(
                value(
                    &zero,
                    &format!(
                        "entra_lockout_detections{{state=\"{}\",tenant=\"t1\"}}",
                        state.as_str()
                    )
                ),
                Some(0.0),
                "{state:?}"
            );
        }
        assert_eq!(
            value(&zero, "entra_users_locked_out{tenant=\"t1\"}"),
            Some(0.0)
        );
        assert_eq!(
            value(
                &zero,
                "mfa_auditor_watcher_reads_total{result=\"failure\",stream=\"directory-audits\",tenant=\"t1\"}"
            ),
            Some(0.0)
        );
        assert!(
            !zero.contains("mfa_auditor_watcher_last_success_timestamp_seconds{"),
            "no last success before one"
        );

        w.read("sign-ins", true, 12, Some(42.5), true);
        w.read("sign-ins", false, 0, None, false);
        w.read("directory-audits", true, 0, None, false);
        w.detections(
            &[
                (LockoutState::LockedOut, 3),
                (LockoutState::MfaPromptBombing, 1),
            ],
            &[(500121, 2), (50088, 1), (50158, 1)],
            2,
        );
        assert_eq!(
            value(
                &m.render(None),
                "entra_lockout_detection_error_codes{code=\"50158\",tenant=\"t1\"}"
            ),
            Some(1.0),
            "a code outside the known ones appears while open"
        );
        w.recorded(
            &[
                (LockoutState::LockedOut, 3),
                (LockoutState::MfaPromptBombing, 1),
            ],
            &[(LockoutState::LockedOut, 1)],
            5,
            2,
        );
        // A complete audit and an incomplete one swap or keep the posture: the watcher's
        // figures are untouched either way.
        for complete in [true, false] {
            m.observe(
                &tallied(&report(complete, 2)),
                &RulesConfig::default(),
                &BTreeMap::new(),
            );
        }
        assert!(
            m.render(None).contains("entra_users{"),
            "a posture published"
        );
        let text = m.render(None);
        let v = |s: &str| value(&text, s);
        assert_eq!(v("entra_users_locked_out{tenant=\"t1\"}"), Some(2.0));
        assert_eq!(
            v("entra_lockout_detections{state=\"locked-out\",tenant=\"t1\"}"),
            Some(3.0)
        );
        assert_eq!(
            v("entra_lockout_detections{state=\"mfa-fraud-reported\",tenant=\"t1\"}"),
            Some(0.0)
        );
        assert_eq!(
            v("entra_lockout_detection_error_codes{code=\"500121\",tenant=\"t1\"}"),
            Some(2.0)
        );
        assert_eq!(
            v("entra_lockout_detections_opened_total{state=\"locked-out\",tenant=\"t1\"}"),
            Some(3.0)
        );
        assert_eq!(
            v("entra_lockout_detections_resolved_total{state=\"locked-out\",tenant=\"t1\"}"),
            Some(1.0)
        );
        assert_eq!(
            v("entra_lockout_detections_resolved_total{state=\"mfa-prompt-bombing\",tenant=\"t1\"}"),
            Some(0.0)
        );
        assert_eq!(
            v("entra_security_info_events_total{notable=\"true\",tenant=\"t1\"}"),
            Some(2.0)
        );
        assert_eq!(
            v("entra_security_info_events_total{notable=\"false\",tenant=\"t1\"}"),
            Some(3.0)
        );
        assert_eq!(
            v("mfa_auditor_watcher_reads_total{result=\"success\",stream=\"sign-ins\",tenant=\"t1\"}"),
            Some(1.0)
        );
        assert_eq!(
            v("mfa_auditor_watcher_reads_total{result=\"failure\",stream=\"sign-ins\",tenant=\"t1\"}"),
            Some(1.0)
        );
        // The failed read kept the successful one's lag and `behind`.
        assert_eq!(
            v("mfa_auditor_watcher_lag_seconds{stream=\"sign-ins\",tenant=\"t1\"}"),
            Some(42.5)
        );
        assert_eq!(
            v("mfa_auditor_watcher_behind{stream=\"sign-ins\",tenant=\"t1\"}"),
            Some(1.0)
        );
        assert_eq!(
            v("mfa_auditor_watcher_lag_seconds{stream=\"directory-audits\",tenant=\"t1\"}"),
            Some(0.0)
        );
        let fresh = v(
            "mfa_auditor_watcher_last_success_timestamp_seconds{stream=\"sign-ins\",tenant=\"t1\"}",
        )
        .expect("freshness");
        assert!(
            (fresh - Utc::now().timestamp() as f64).abs() < 60.0,
            "{fresh}"
        );

        // The next run: the codes no longer open are gone, the states still all present; a
        // second handle shares the figures.
        m.watcher()
            .detections(&[(LockoutState::RegistrationBlocked, 1)], &[(50079, 1)], 0);
        let text = m.render(None);
        assert_eq!(
            value(
                &text,
                "entra_lockout_detection_error_codes{code=\"500121\",tenant=\"t1\"}"
            ),
            Some(0.0),
            "a known code no longer open reads 0"
        );
        assert_eq!(
            value(
                &text,
                "entra_lockout_detection_error_codes{code=\"50079\",tenant=\"t1\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &text,
                "entra_lockout_detections{state=\"locked-out\",tenant=\"t1\"}"
            ),
            Some(0.0)
        );
        assert_eq!(
            value(&text, "entra_users_locked_out{tenant=\"t1\"}"),
            Some(0.0)
        );
        assert_eq!(
            value(
                &text,
                "entra_lockout_detections_opened_total{state=\"locked-out\",tenant=\"t1\"}"
            ),
            Some(3.0),
            "taking a handle again resets nothing"
        );
    }

    /// Lines of `text` for one family: its samples (not its comments).
    fn samples<'a>(text: &'a str, family: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|l| {
                l.strip_prefix(family)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .collect()
    }

    #[test]
    fn many_tenants_render_each_family_once_with_every_tenants_series() {
        let tenants = ["t1", "t2", "t3"];
        let metrics: Vec<Metrics> = tenants.iter().map(|t| Metrics::new(t)).collect();
        let stats: Vec<GraphStats> = tenants.iter().map(|t| GraphStats::for_tenant(t)).collect();
        // Posture for two of them (the third never completed an audit), Graph traffic for all.
        for (i, m) in metrics.iter().take(2).enumerate() {
            m.observe(
                &tallied(&report(true, 4 + i)),
                &RulesConfig::default(),
                &BTreeMap::new(),
            );
        }
        for (i, s) in stats.iter().enumerate() {
            s.record("users", 200);
            s.record_duration(
                "users",
                std::time::Duration::from_millis(40 * (i as u64 + 1)),
            );
        }
        metrics[0].http().connections.set(3);
        let text = render_many(metrics.iter().zip(stats.iter().map(Some)));

        let mut helps = std::collections::HashSet::new();
        let mut types = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap_or_default();
                assert!(helps.insert(name.to_string()), "HELP of {name} twice");
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap_or_default();
                assert!(types.insert(name.to_string()), "TYPE of {name} twice");
            }
        }
        assert_eq!(helps, types);
        assert!(helps.contains("entra_mfa_findings") && helps.contains("mfa_auditor_tenant_info"));

        // Each tenant's own figures under its own label.
        for (t, n) in [("t1", 4.0), ("t2", 5.0)] {
            assert_eq!(
                value(
                    &text,
                    &format!("entra_mfa_findings{{rule=\"phone-only\",severity=\"medium\",tenant=\"{t}\"}}")
                ),
                Some(n)
            );
        }
        assert!(!text.contains("tenant=\"t3\"}} 16"), "t3 has no posture");
        assert_eq!(samples(&text, "entra_users").len(), 2, "{text}");
        for t in tenants {
            for family in [
                "mfa_auditor_audits_total",
                "mfa_auditor_audit_last_success_timestamp_seconds",
                "mfa_auditor_graph_requests_total",
                "mfa_auditor_graph_request_duration_seconds_count",
                "mfa_auditor_tenant_info",
                "mfa_auditor_tenant_consecutive_failures",
            ] {
                assert!(
                    samples(&text, family)
                        .iter()
                        .any(|l| l.contains(&format!("tenant=\"{t}\""))),
                    "{family} of {t}:\n{text}"
                );
            }
        }
        // A family's series stay together, tenant after tenant.
        let first = text.find("mfa_auditor_audits_total{").unwrap_or(0);
        let block: Vec<&str> = text[first..]
            .lines()
            .take_while(|l| l.starts_with("mfa_auditor_audits_total{"))
            .collect();
        assert_eq!(block.len(), 6, "{block:?}");

        // The process's own series: once, no tenant's.
        assert_eq!(
            samples(&text, "mfa_auditor_build_info"),
            vec![format!(
                "mfa_auditor_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )]
        );
        assert_eq!(
            samples(&text, "mfa_auditor_http_connections"),
            vec!["mfa_auditor_http_connections 3"]
        );
        assert_eq!(
            samples(&text, "mfa_auditor_http_connections_shed_total").len(),
            2
        );
    }

    #[test]
    fn one_tenant_renders_as_before() {
        let m = Metrics::new("t1");
        m.observe(
            &tallied(&report(true, 2)),
            &RulesConfig::default(),
            &BTreeMap::new(),
        );
        let stats = GraphStats::for_tenant("t1");
        stats.record("users", 200);
        assert_eq!(render_many([(&m, Some(&stats))]), m.render(Some(&stats)));
        assert!(m
            .render(None)
            .contains("mfa_auditor_build_info{tenant=\"t1\","));
    }

    #[test]
    fn tenant_state_names_the_tenant_and_says_when_it_is_backed_off() {
        let m = Metrics::new("0f3c-guid");
        let text = m.render(None);
        assert_eq!(
            value(
                &text,
                "mfa_auditor_tenant_info{tenant=\"0f3c-guid\",tenant_name=\"0f3c-guid\"}"
            ),
            Some(1.0),
            "named by its id until told its name"
        );
        assert_eq!(
            value(
                &text,
                "mfa_auditor_tenant_backoff_until_timestamp_seconds{tenant=\"0f3c-guid\"}"
            ),
            Some(0.0)
        );
        let until = DateTime::parse_from_rfc3339("2026-12-03T12:30:00Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("time");
        m.tenant_state("contoso", 3, Some(until));
        let text = m.render(None);
        assert_eq!(
            samples(&text, "mfa_auditor_tenant_info"),
            vec!["mfa_auditor_tenant_info{tenant=\"0f3c-guid\",tenant_name=\"contoso\"} 1"],
            "one info series, under the name"
        );
        assert_eq!(
            value(
                &text,
                "mfa_auditor_tenant_consecutive_failures{tenant=\"0f3c-guid\"}"
            ),
            Some(3.0)
        );
        assert_eq!(
            value(
                &text,
                "mfa_auditor_tenant_backoff_until_timestamp_seconds{tenant=\"0f3c-guid\"}"
            ),
            Some(until.timestamp() as f64)
        );
        // Recovered: no failures, not backed off.
        m.tenant_state("contoso", 0, None);
        let text = m.render(None);
        assert_eq!(
            value(
                &text,
                "mfa_auditor_tenant_consecutive_failures{tenant=\"0f3c-guid\"}"
            ),
            Some(0.0)
        );
        assert_eq!(
            value(
                &text,
                "mfa_auditor_tenant_backoff_until_timestamp_seconds{tenant=\"0f3c-guid\"}"
            ),
            Some(0.0)
        );
    }
}
