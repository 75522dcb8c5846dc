//! Alerting: per-user findings pushed to Alertmanager, and new and resolved findings sent to
//! webhooks. Both run beside the audits, never inside them: the daemon hands over what an audit
//! recorded and goes on, and a receiver that is down is retried with backoff while audits go on.
//!
//! - [`alertmanager`] holds the set of open per-user findings as alerts and pushes it to
//!   Alertmanager's v2 API after every audit and every `resend_interval_seconds` between them,
//!   with `endsAt` a few intervals ahead (as Prometheus does). An alert that leaves the set
//!   (resolved, excepted, filtered out) is sent once more with `endsAt` = now, so it resolves at
//!   once; a daemon that stops lets its alerts expire on their own.
//! - [`webhook`] delivers the state store's outbox: one message per new and per resolved finding
//!   (above `batch_above` an audit: batches for machines, one summary for people), queued in
//!   the transaction that recorded the audit and removed only once delivered, so none is lost
//!   (at least once: a crash after a receiver's 2xx re-sends; ids are unique, deduplicate on them).
//!
//! Receiver URLs and credentials are [`Secret`]s: no log line or error shows them.

pub mod alertmanager;
pub mod webhook;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{watch, Notify};
use url::Url;

use crate::config::{is_loopback, read_secret_file, Config, ConfigError};
use crate::evaluate::{Severity, CATALOGUE};
use crate::metrics::AlertingMetrics;
use crate::secret::Secret;
use crate::state::{Store, StoredFinding, Subscriber, SECURITY_INFO_RULE};

/// `[alerting]`: where findings go besides the metrics.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {
    /// `[alerting.alertmanager]`: push open per-user findings as alerts.
    pub alertmanager: Option<AlertmanagerConfig>,
    /// `[[alerting.webhook]]`: a message per new and per resolved finding.
    pub webhook: Vec<WebhookConfig>,
}

/// `[alerting.alertmanager]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Alertmanager's base URL; alerts go to `{url}/api/v2/alerts`.
    pub url: String,
    /// Findings of this severity and above become alerts.
    #[serde(default = "default_min_severity")]
    pub min_severity: Severity,
    /// Re-push the open set this often between audits; each alert's `endsAt` is four intervals
    /// ahead, so the alerts of a daemon that stopped resolve on their own.
    #[serde(default = "default_resend_interval")]
    pub resend_interval_seconds: u64,
    /// Timeout of one push.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// At most this many alerts, the most severe and then the oldest first; the rest are counted
    /// in `mfa_auditor_alertmanager_alerts_dropped` (and stay in the findings API).
    #[serde(default = "default_max_alerts")]
    pub max_alerts: usize,
    /// HTTP basic auth user; the password comes from `basic_auth_password_file`.
    pub basic_auth_username: Option<String>,
    /// Relative paths resolve against `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`).
    pub basic_auth_password_file: Option<PathBuf>,
    /// A bearer token file, instead of basic auth.
    pub bearer_token_file: Option<PathBuf>,
}

/// A webhook's message format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// `{"event": "new"|"resolved", "findings": [...]}`, documented in the README.
    #[default]
    Generic,
    /// A Slack incoming webhook (`{"text": ...}` in Slack's mrkdwn).
    Slack,
    /// A Microsoft Teams workflow webhook (an Adaptive Card).
    Teams,
}

/// `[[alerting.webhook]]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Names the webhook in logs and metrics (letters, digits, `-`, `_`, `.`); unique.
    pub name: String,
    #[serde(default)]
    pub format: WebhookFormat,
    /// The URL, when it holds no secret (Slack and Teams URLs do: use `url_file` or `url_env`).
    pub url: Option<String>,
    /// A file holding the URL; relative paths resolve against `$CREDENTIALS_DIRECTORY`.
    pub url_file: Option<PathBuf>,
    /// An environment variable holding the URL.
    pub url_env: Option<String>,
    /// Findings of this severity and above are sent.
    #[serde(default = "default_min_severity")]
    pub min_severity: Severity,
    /// An audit with more new (or resolved) findings than this sends them in batches of up to
    /// 100 (generic) or as one summary (Slack, Teams) instead of one message each.
    #[serde(default = "default_batch_above")]
    pub batch_above: usize,
    /// Timeout of one delivery.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

fn default_min_severity() -> Severity {
    Severity::Info
}
fn default_resend_interval() -> u64 {
    60
}
fn default_timeout() -> u64 {
    10
}
fn default_max_alerts() -> usize {
    10_000
}
fn default_batch_above() -> usize {
    10
}

/// Parses a receiver URL: http or https; plain http only on loopback when `secret_over_http`
/// would travel in clear.
fn receiver_url(text: &str, secret_over_http: bool) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("is not a URL: {e}"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if !secret_over_http || is_loopback(&url) => Ok(url),
        "http" => Err("plain http would send credentials in clear; use https (http is only allowed on loopback)".into()),
        other => Err(format!("has scheme {other:?}; use http or https")),
    }
}

/// A request error as one line with its causes (`error sending request: … : Connection refused`,
/// or that it timed out), and never the URL (a webhook's URL may be its secret).
pub fn request_error(e: reqwest::Error) -> String {
    let timed_out = e.is_timeout();
    let e = e.without_url();
    let mut out = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    if timed_out && !out.to_ascii_lowercase().contains("timed out") {
        out.push_str(" (timed out)");
    }
    out
}

/// `url` with any userinfo (`user:password@`) replaced by `***`, for messages and pages; an
/// unparsable URL loses whatever stands where userinfo would.
pub fn redact_url(text: &str) -> String {
    if let Ok(mut url) = Url::parse(text) {
        if url.username().is_empty() && url.password().is_none() {
            return text.to_string();
        }
        if url.set_password(None).is_ok() && url.set_username("***").is_ok() {
            return url.to_string();
        }
    }
    let (scheme, rest) = text.split_once("://").unwrap_or(("", text));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) if scheme.is_empty() => format!("***@{}", &rest[at + 1..]),
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => text.to_string(),
    }
}

impl AlertingConfig {
    /// Checks what can be checked without reading secrets; errors are (key path, message).
    pub fn validate(&self) -> Result<(), (String, String)> {
        if let Some(am) = &self.alertmanager {
            let key = |k: &str| format!("alerting.alertmanager.{k}");
            let userinfo = redact_url(&am.url) != am.url;
            let has_auth =
                am.basic_auth_username.is_some() || am.bearer_token_file.is_some() || userinfo;
            receiver_url(&am.url, has_auth)
                .map_err(|m| (key("url"), format!("{:?} {m}", redact_url(&am.url))))?;
            if !(1..=3600).contains(&am.resend_interval_seconds) {
                return Err((
                    key("resend_interval_seconds"),
                    "must be between 1 and 3600".into(),
                ));
            }
            if !(1..=300).contains(&am.timeout_seconds) {
                return Err((key("timeout_seconds"), "must be between 1 and 300".into()));
            }
            if !(1..=1_000_000).contains(&am.max_alerts) {
                return Err((key("max_alerts"), "must be between 1 and 1000000".into()));
            }
            match (
                &am.basic_auth_username,
                &am.basic_auth_password_file,
                &am.bearer_token_file,
            ) {
                (Some(_), None, _) => {
                    return Err((
                        key("basic_auth_password_file"),
                        "basic_auth_username needs a password file".into(),
                    ))
                }
                (None, Some(_), _) => {
                    return Err((
                        key("basic_auth_username"),
                        "basic_auth_password_file needs a user name".into(),
                    ))
                }
                (Some(_), Some(_), Some(_)) => {
                    return Err((
                        key("bearer_token_file"),
                        "use basic auth or a bearer token, not both".into(),
                    ))
                }
                _ => {}
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, w) in self.webhook.iter().enumerate() {
            let key = |k: &str| format!("alerting.webhook[{i}].{k}");
            if w.name.is_empty()
                || !w
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err((
                    key("name"),
                    format!(
                        "{:?} is not a name of letters, digits, '-', '_' and '.'",
                        w.name
                    ),
                ));
            }
            if !names.insert(w.name.as_str()) {
                return Err((key("name"), format!("{:?} names two webhooks", w.name)));
            }
            let sources = [w.url.is_some(), w.url_file.is_some(), w.url_env.is_some()];
            if sources.iter().filter(|s| **s).count() != 1 {
                return Err((
                    key("url"),
                    "set exactly one of url, url_file and url_env".into(),
                ));
            }
            if let Some(url) = &w.url {
                // The URL may itself be the secret (Slack, Teams): never echo it.
                receiver_url(url, true).map_err(|m| (key("url"), format!("the URL {m}")))?;
            }
            if !(1..=10_000).contains(&w.batch_above) {
                return Err((key("batch_above"), "must be between 1 and 10000".into()));
            }
            if !(1..=300).contains(&w.timeout_seconds) {
                return Err((key("timeout_seconds"), "must be between 1 and 300".into()));
            }
        }
        Ok(())
    }

    /// Whether anything is configured.
    pub fn is_empty(&self) -> bool {
        self.alertmanager.is_none() && self.webhook.is_empty()
    }

    /// The outbox subscribers: one per webhook.
    pub fn subscribers(&self) -> Vec<Subscriber> {
        self.webhook
            .iter()
            .map(|w| Subscriber {
                webhook: w.name.clone(),
                min_severity: w.min_severity,
            })
            .collect()
    }
}

/// The tenant an [`Alerting`] serves: its id (the state store's key and the `tenant` label)
/// and its short name (the `tenant_name` label; the id when it has none). Every alert and
/// message names both, so a receiver shared by many tenants tells them apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantRef {
    pub id: String,
    pub name: String,
}

impl TenantRef {
    pub fn new(id: &str, name: &str) -> TenantRef {
        TenantRef {
            id: id.into(),
            name: name.into(),
        }
    }

    /// The tenant of a (resolved, per-tenant) configuration.
    pub fn of(config: &Config) -> TenantRef {
        TenantRef::new(&config.tenant.tenant_id, config.tenant_name())
    }

    /// `contoso (0f3c…)` for people; the id alone when the tenant has no other name.
    pub fn display(&self) -> String {
        if self.name == self.id {
            self.id.clone()
        } else {
            format!("{} ({})", self.name, self.id)
        }
    }
}

/// Where people reach this daemon's API: the target of every link in alerts and messages.
/// A named tenant's links say which tenant (`?tenant=<name>`), as the API of a daemon that
/// audits many expects.
#[derive(Clone, Debug)]
pub struct Links {
    base: Url,
    tenant: Option<String>,
}

impl Links {
    pub fn new(base: Url) -> Links {
        Links { base, tenant: None }
    }

    /// Links that name `tenant` in their query (`tenant=…`).
    pub fn for_tenant(base: Url, tenant: &str) -> Links {
        Links {
            base,
            tenant: Some(tenant.into()),
        }
    }

    /// `{base}/users/{upn}`, the helpdesk's page of the user (which links the JSON), the UPN
    /// escaped as one path segment.
    pub fn user(&self, upn: &str) -> String {
        self.api(&["users", upn], None)
    }

    /// `{base}/api/v1/findings?rule={rule}`.
    pub fn rule(&self, rule: &str) -> String {
        self.api(&["api", "v1", "findings"], Some(("rule", rule)))
    }

    fn api(&self, segments: &[&str], query: Option<(&str, &str)>) -> String {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if let Some((k, v)) = query {
            url.query_pairs_mut().append_pair(k, v);
        }
        if let Some(t) = &self.tenant {
            url.query_pairs_mut().append_pair("tenant", t);
        }
        url.to_string()
    }
}

/// Resolves once `stop` turns true (or its sender is gone). Holds no borrow of the channel
/// across an await, unlike `wait_for`'s guard, so the tasks stay `Send`.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

/// The title of a rule id, for messages: the catalogue's rules, the sign-in watcher's lockout
/// states and its security-info events.
pub fn rule_title(rule: &str) -> &'static str {
    match rule {
        "locked-out" => "User locked out of MFA",
        "mfa-fraud-reported" => "User reported an MFA prompt as fraud",
        "registration-blocked" => "User blocked at MFA registration",
        "mfa-prompt-bombing" => "MFA prompt bombing",
        SECURITY_INFO_RULE => "Security info changed",
        _ => CATALOGUE
            .iter()
            .find(|r| r.id == rule)
            .map_or("MFA finding", |r| r.title),
    }
}

/// Whether a rule id is the sign-in watcher's (a lockout state or `security-info`), not an
/// audit rule's.
pub fn is_watcher_rule(rule: &str) -> bool {
    rule == SECURITY_INFO_RULE || crate::watch::LockoutState::parse(rule).is_some()
}

/// A finding about one user (not the tenant).
pub fn is_user_finding(f: &StoredFinding) -> bool {
    !crate::evaluate::is_tenant_subject(&f.subject)
}

/// The running alerting: the Alertmanager pusher and the webhook worker, if configured.
pub struct Alerting {
    settings: Settings,
    desired: Option<watch::Sender<Arc<Vec<alertmanager::Alert>>>>,
    wake: Arc<Notify>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// What handing over an audit needs: which findings become alerts, and who the outbox serves.
struct Settings {
    alert_filter: Severity,
    max_alerts: usize,
    metrics: AlertingMetrics,
    links: Links,
    tenant: TenantRef,
    subscribers: Vec<Subscriber>,
    store: Arc<Store>,
}

/// The receivers of a configuration with their secrets read, not yet started: a reload
/// prepares the new ones first, so a bad secret keeps the running alerting untouched.
pub struct Prepared {
    settings: Settings,
    pusher: Option<alertmanager::Pusher>,
    worker: Option<webhook::Worker>,
    webhooks: Vec<String>,
    store: Arc<Store>,
}

impl Alerting {
    /// Reads the receivers' secrets, with the process environment.
    pub fn prepare(
        config: &Config,
        store: Arc<Store>,
        metrics: AlertingMetrics,
    ) -> Result<Prepared, ConfigError> {
        let dir = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        Alerting::prepare_with(config, store, metrics, dir.as_deref(), &|name| {
            std::env::var(name).ok()
        })
    }

    /// [`Alerting::prepare`] with an explicit credentials directory and environment.
    pub fn prepare_with(
        config: &Config,
        store: Arc<Store>,
        metrics: AlertingMetrics,
        credentials_dir: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Prepared, ConfigError> {
        let a = &config.alerting;
        let fail = |key: String, message: String| ConfigError {
            origin: "alerting".into(),
            position: None,
            key,
            message,
        };
        let tenant = TenantRef::of(config);
        // A tenant with a name may be one of many: its links say which.
        let links = match &config.tenant.name {
            Some(name) => Links::for_tenant(config.external_url(), name),
            None => Links::new(config.external_url()),
        };
        let mut pusher = None;
        if let Some(am) = &a.alertmanager {
            let key = |k: &str| format!("alerting.alertmanager.{k}");
            let auth = match (
                &am.basic_auth_username,
                &am.basic_auth_password_file,
                &am.bearer_token_file,
            ) {
                (Some(user), Some(p), _) => alertmanager::Auth::Basic {
                    user: user.clone(),
                    password: read_secret_file(
                        &key("basic_auth_password_file"),
                        p,
                        credentials_dir,
                    )?,
                },
                (_, _, Some(p)) => alertmanager::Auth::Bearer(read_secret_file(
                    &key("bearer_token_file"),
                    p,
                    credentials_dir,
                )?),
                _ => alertmanager::Auth::None,
            };
            let url = Url::parse(&am.url).map_err(|e| fail(key("url"), e.to_string()))?;
            pusher = Some(
                alertmanager::Pusher::new(
                    &url,
                    auth,
                    Duration::from_secs(am.resend_interval_seconds),
                    Duration::from_secs(am.timeout_seconds),
                    metrics.clone(),
                )
                .map_err(|m| fail(key("url"), m))?,
            );
        }
        let mut sinks = Vec::new();
        for (i, w) in a.webhook.iter().enumerate() {
            let key = |k: &str| format!("alerting.webhook[{i}].{k}");
            let url = match (&w.url, &w.url_file, &w.url_env) {
                (Some(u), _, _) => Secret::new(u.clone()),
                (_, Some(p), _) => read_secret_file(&key("url_file"), p, credentials_dir)?,
                (_, _, Some(name)) => match env(name) {
                    Some(v) if !v.trim().is_empty() => Secret::new(v.trim()),
                    _ => {
                        return Err(fail(
                            key("url_env"),
                            format!("environment variable {name} is not set or empty"),
                        ))
                    }
                },
                _ => return Err(fail(key("url"), "no URL".into())),
            };
            let parsed = receiver_url(url.expose().trim(), true)
                .map_err(|m| fail(key("url"), format!("the URL {m}")))?;
            sinks.push(webhook::Sink::new(w, parsed, &metrics));
        }
        let worker = (!sinks.is_empty()).then(|| {
            webhook::Worker::new(
                sinks,
                store.clone(),
                metrics.clone(),
                links.clone(),
                tenant.clone(),
            )
        });
        Ok(Prepared {
            settings: Settings {
                alert_filter: a
                    .alertmanager
                    .as_ref()
                    .map_or(Severity::Critical, |am| am.min_severity),
                max_alerts: a.alertmanager.as_ref().map_or(0, |am| am.max_alerts),
                metrics,
                links,
                tenant,
                subscribers: a.subscribers(),
                store: store.clone(),
            },
            pusher,
            worker,
            webhooks: a.webhook.iter().map(|w| w.name.clone()).collect(),
            store,
        })
    }
}

impl Prepared {
    /// Starts the tasks (inside a tokio runtime), after dropping the queued messages of
    /// webhooks no longer configured.
    pub fn start(self) -> Alerting {
        let names: Vec<&str> = self.webhooks.iter().map(String::as_str).collect();
        match self
            .store
            .outbox_forget_except(&self.settings.tenant.id, &names)
        {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                dropped = n,
                "dropped the queued messages of webhooks no longer configured"
            ),
            Err(e) => tracing::error!("outbox: {e}"),
        }
        let (stop, stop_rx) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        let mut tasks = Vec::new();
        let mut desired = None;
        if let Some(pusher) = self.pusher {
            let (tx, rx) = watch::channel(Arc::new(Vec::new()));
            tasks.push(tokio::spawn(pusher.run(rx, stop_rx.clone())));
            desired = Some(tx);
        }
        if let Some(worker) = self.worker {
            tasks.push(tokio::spawn(worker.run(wake.clone(), stop_rx)));
        }
        Alerting {
            settings: self.settings,
            desired,
            wake,
            stop,
            tasks: Mutex::new(tasks),
        }
    }
}

impl Alerting {
    /// Who the outbox queues messages for: pass to [`Store::record_with`].
    pub fn subscribers(&self) -> &[Subscriber] {
        &self.settings.subscribers
    }

    /// After an audit or a watcher run was recorded (or at start): reads from the store the
    /// alerts to hold and nudges the webhook worker. The alerts: one per open lockout detection
    /// of the watcher first (people locked out now), then the open findings at `min_severity`
    /// or above in the room left, at most `max_alerts` in all, the most severe and oldest first
    /// (the store sorts the findings, nothing else is read). Blocks on the store: call it off the
    /// async threads.
    pub fn published(&self) {
        if let Some(tx) = &self.desired {
            let s = &self.settings;
            let detections = match s.store.open_detections(&s.tenant.id) {
                Ok(open) => {
                    alertmanager::detection_alerts(&open, &s.tenant, s.max_alerts, &s.links)
                }
                Err(e) => {
                    // The alerts held stay as they were: better stale than none.
                    tracing::error!("reading the open detections for Alertmanager: {e}");
                    self.wake.notify_one();
                    return;
                }
            };
            let (mut alerts, detections_dropped) = detections;
            let room = s.max_alerts.saturating_sub(alerts.len());
            let findings = if room == 0 {
                s.store
                    .alertable(&s.tenant.id, s.alert_filter, 1)
                    .map(|(_, total)| (Vec::new(), total))
            } else {
                s.store.alertable(&s.tenant.id, s.alert_filter, room)
            };
            match findings {
                Ok((open, total)) => {
                    let (found, _) =
                        alertmanager::alerts_for(&open, &s.tenant, s.alert_filter, room, &s.links);
                    let dropped = total.saturating_sub(found.len()) + detections_dropped;
                    alerts.extend(found);
                    if dropped > 0 {
                        tracing::warn!(
                            dropped,
                            kept = alerts.len(),
                            "more open findings than [alerting.alertmanager] max_alerts; the least severe are not pushed"
                        );
                    }
                    s.metrics.alertmanager_alerts_dropped.set(dropped as i64);
                    tx.send_replace(Arc::new(alerts));
                }
                // The alerts held stay as they were: better stale than none.
                Err(e) => tracing::error!("reading the open findings for Alertmanager: {e}"),
            }
        }
        self.wake.notify_one();
    }

    /// Stops the tasks: a delivery in flight gets `grace` to finish (so it is not sent twice).
    pub async fn shutdown(&self, grace: Duration) {
        let _ = self.stop.send(true);
        let tasks: Vec<_> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for mut task in tasks {
            if tokio::time::timeout(grace, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}

/// Serves `app` on a free loopback port, for the receivers the tests stand in for.
#[cfg(test)]
async fn serve_on_loopback(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml_text: &str) -> Result<(), (String, String)> {
        let c: AlertingConfig = toml::from_str(toml_text).expect("parses");
        c.validate()
    }

    #[tokio::test]
    async fn request_errors_keep_their_cause() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = closed.local_addr().expect("addr").port();
        drop(closed);
        let http = reqwest::Client::new();
        let refused = http
            .post(format!("http://127.0.0.1:{port}/T0/s3cr3t"))
            .send()
            .await
            .expect_err("nothing listens");
        let text = request_error(refused);
        assert!(
            text.to_ascii_lowercase().contains("connection refused"),
            "{text}"
        );
        assert!(!text.contains("s3cr3t"), "{text}");
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = silent.local_addr().expect("addr");
        let _held = tokio::spawn(async move {
            let _conn = silent.accept().await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let slow = http
            .post(format!("http://{addr}/hook"))
            .timeout(Duration::from_millis(200))
            .send()
            .await
            .expect_err("never answers");
        let text = request_error(slow);
        assert!(text.contains("timed out"), "{text}");
    }

    #[test]
    fn receivers_are_checked_with_their_key() {
        assert_eq!(
            check("[alertmanager]\nurl = \"http://127.0.0.1:9093\"\n"),
            Ok(())
        );
        assert_eq!(
            check("[alertmanager]\nurl = \"http://am.example:9093\"\n"),
            Ok(()),
            "no credentials: plain http is allowed"
        );
        let (key, msg) = check("[alertmanager]\nurl = \"http://am.example\"\nbasic_auth_username = \"u\"\nbasic_auth_password_file = \"p\"\n").unwrap_err();
        assert_eq!(key, "alerting.alertmanager.url");
        assert!(msg.contains("in clear"), "{msg}");
        let (key, _) = check("[alertmanager]\nurl = \"https://am\"\nbasic_auth_username = \"u\"\n")
            .unwrap_err();
        assert_eq!(key, "alerting.alertmanager.basic_auth_password_file");
        let (key, _) = check("[alertmanager]\nurl = \"ftp://am\"\n").unwrap_err();
        assert_eq!(key, "alerting.alertmanager.url");
        for url in [
            "ftp://ops:hunter2@am",
            "http://ops:hunter2@am.example:9093/",
        ] {
            let (key, msg) = check(&format!("[alertmanager]\nurl = \"{url}\"\n")).unwrap_err();
            assert_eq!(key, "alerting.alertmanager.url");
            assert!(
                !msg.contains("hunter2") && !msg.contains("ops:") && msg.contains("***@am"),
                "userinfo is a credential: {msg}"
            );
        }
        assert_eq!(
            redact_url("https://ops:hunter2@am.example/"),
            "https://***@am.example/"
        );
        assert_eq!(
            redact_url("https://am.example:9093"),
            "https://am.example:9093"
        );
        assert_eq!(redact_url("not a url ops:pw@host/x"), "***@host/x");
        let (key, _) = check("[alertmanager]\nurl = \"https://am\"\nresend_interval_seconds = 0\n")
            .unwrap_err();
        assert_eq!(key, "alerting.alertmanager.resend_interval_seconds");
        let two = "[[webhook]]\nname = \"a\"\nurl = \"https://x\"\n[[webhook]]\nname = \"a\"\nurl_env = \"X\"\n";
        assert_eq!(check(two).unwrap_err().0, "alerting.webhook[1].name");
        let both = "[[webhook]]\nname = \"a\"\nurl = \"https://x\"\nurl_env = \"X\"\n";
        assert_eq!(check(both).unwrap_err().0, "alerting.webhook[0].url");
        let (key, msg) =
            check("[[webhook]]\nname = \"a\"\nurl = \"http://hooks.example/T0/B0/s3cr3t\"\n")
                .unwrap_err();
        assert_eq!(key, "alerting.webhook[0].url");
        assert!(!msg.contains("s3cr3t"), "the URL may be the secret: {msg}");
        assert_eq!(
            check("[[webhook]]\nname = \"bad name\"\nurl_env = \"X\"\n")
                .unwrap_err()
                .0,
            "alerting.webhook[0].name"
        );
        assert_eq!(
            check("[[webhook]]\nname = \"a\"\nurl_env = \"X\"\nbatch_above = 0\n")
                .unwrap_err()
                .0,
            "alerting.webhook[0].batch_above"
        );
    }

    #[test]
    fn links_escape_the_user_principal_name() {
        let links = Links::new(Url::parse("https://auditor.example:9717/mfa/").expect("url"));
        assert_eq!(
            links.user("ann_fabrikam.com#EXT#@contoso.onmicrosoft.com"),
            "https://auditor.example:9717/mfa/users/ann_fabrikam.com%23EXT%23@contoso.onmicrosoft.com"
        );
        assert_eq!(
            links.rule("no-backup-method"),
            "https://auditor.example:9717/mfa/api/v1/findings?rule=no-backup-method"
        );
    }

    #[test]
    fn secrets_come_from_the_credentials_directory_or_the_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("am-password"), "pw\n").expect("write");
        std::fs::write(
            dir.path().join("hook-url"),
            "https://hooks.example/T/B/secret\n",
        )
        .expect("write");
        let text = "[tenant]\ntenant_id = \"contoso.onmicrosoft.com\"\nclient_id = \"5a1e3c9d-7b2f-4e6a-8c0d-2f4b6d8e0a1c\"\nclient_secret_env = \"S\"\n\n\
            [alerting.alertmanager]\nurl = \"https://am.example\"\nbasic_auth_username = \"mfa\"\nbasic_auth_password_file = \"am-password\"\n\n\
            [[alerting.webhook]]\nname = \"files\"\nurl_file = \"hook-url\"\n\n\
            [[alerting.webhook]]\nname = \"env\"\nformat = \"teams\"\nurl_env = \"TEAMS_URL\"\n";
        let config = Config::parse(text, "c.toml").expect("valid");
        let store = || Arc::new(Store::in_memory().expect("store"));
        let metrics = || crate::metrics::Metrics::new("t").alerting();
        let env =
            |name: &str| (name == "TEAMS_URL").then(|| "https://teams.example/w/1".to_string());
        let prepared = Alerting::prepare_with(&config, store(), metrics(), Some(dir.path()), &env)
            .expect("every secret is read");
        assert!(prepared.pusher.is_some() && prepared.worker.is_some());
        assert_eq!(prepared.webhooks, ["files", "env"]);
        let err = Alerting::prepare_with(&config, store(), metrics(), Some(dir.path()), &|_| None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            err,
            "alerting: alerting.webhook[1].url_env: environment variable TEAMS_URL is not set or empty"
        );
        let err = Alerting::prepare_with(&config, store(), metrics(), None, &env)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("credential: alerting.alertmanager.basic_auth_password_file: cannot read am-password"),
            "relative to the credentials directory, which is not set: {err}"
        );
    }

    #[tokio::test]
    async fn open_detections_are_held_as_alerts_within_max_alerts_and_leave_when_resolved() {
        use crate::state::{DetectionChange, WatchRecord};
        use crate::watch::{Detection, LockoutState};
        let text = "[tenant]\ntenant_id = \"contoso.onmicrosoft.com\"\nclient_id = \"5a1e3c9d-7b2f-4e6a-8c0d-2f4b6d8e0a1c\"\nclient_secret_env = \"S\"\n\n\
            [alerting.alertmanager]\nurl = \"http://127.0.0.1:9\"\nmax_alerts = 2\n";
        let config = Config::parse(text, "c.toml").expect("valid");
        let store = Arc::new(Store::in_memory().expect("store"));
        let metrics = crate::metrics::Metrics::new("contoso.onmicrosoft.com");
        let alerting =
            Alerting::prepare_with(&config, store.clone(), metrics.alerting(), None, &|_| None)
                .expect("prepared")
                .start();
        let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().expect("time");
        let user = |n: u8| {
            crate::snapshot::ObjectId::parse(&format!("{n}f0e98f5-3161-4c6b-9b50-d488572f2bb7"))
                .expect("id")
        };
        let detection = |n: u8, upn: &str, state: LockoutState, first: &str| Detection {
            user: user(n),
            upn: upn.into(),
            state,
            codes: vec![(500121, 6)],
            first_seen: at(first),
            last_seen: at(first),
            detail: format!("{upn}: 6 failed MFA sign-ins, none succeeded"),
        };
        let record = |changes: &[DetectionChange]| {
            store
                .record_watch(&WatchRecord {
                    tenant: "contoso.onmicrosoft.com",
                    at: at("2026-12-03T10:10:00Z"),
                    changes,
                    security: &[],
                    watermarks: &[],
                    subscribers: &[],
                    remediation: &|d: &Detection| format!("TAP for {}", d.upn),
                    classifier: None,
                })
                .expect("recorded")
        };
        record(&[
            DetectionChange::Opened(detection(
                1,
                "ann@contoso.com",
                LockoutState::RegistrationBlocked,
                "2026-12-03T09:00:00Z",
            )),
            DetectionChange::Opened(detection(
                2,
                "bob@contoso.com",
                LockoutState::LockedOut,
                "2026-12-03T10:00:00Z",
            )),
            DetectionChange::Opened(detection(
                3,
                "cy@contoso.com",
                LockoutState::MfaFraudReported,
                "2026-12-03T10:05:00Z",
            )),
        ]);
        let held = |a: &Alerting| -> Vec<(String, String, String)> {
            a.published();
            let desired = a.desired.as_ref().expect("a pusher").borrow().clone();
            desired
                .iter()
                .map(|a| {
                    (
                        a.labels["alertname"].clone(),
                        a.labels["user"].clone(),
                        a.annotations["remediation"].clone(),
                    )
                })
                .collect()
        };
        let alert = |user: &str| {
            (
                "EntraUserLockout".to_string(),
                user.to_string(),
                format!("TAP for {user}"),
            )
        };
        assert_eq!(
            held(&alerting),
            vec![alert("cy@contoso.com"), alert("bob@contoso.com")],
            "the most severe two of three"
        );
        assert_eq!(metrics.alerting().alertmanager_alerts_dropped.get(), 1);

        record(&[DetectionChange::Resolved {
            user: user(3),
            state: LockoutState::MfaFraudReported,
            at: at("2026-12-03T10:09:00Z"),
        }]);
        assert_eq!(
            held(&alerting),
            vec![alert("bob@contoso.com"), alert("ann@contoso.com")],
            "a resolved detection leaves the set (the pusher ends its alert)"
        );
        assert_eq!(metrics.alerting().alertmanager_alerts_dropped.get(), 0);
        alerting
            .shutdown(std::time::Duration::from_millis(100))
            .await;
    }

    /// What a shared receiver got: (when, path, body), for Alertmanager and a webhook alike.
    #[derive(Default)]
    struct Received(Mutex<Vec<(chrono::DateTime<chrono::Utc>, String, serde_json::Value)>>);

    impl Received {
        fn all(&self) -> Vec<(chrono::DateTime<chrono::Utc>, String, serde_json::Value)> {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_tenant_alerts_and_messages_its_own_and_never_ends_anothers_alerts() {
        use crate::state::{DetectionChange, WatchRecord};
        use crate::watch::{Detection, LockoutState};
        let got = Arc::new(Received::default());
        let app = axum::Router::new()
            .route(
                "/{*path}",
                axum::routing::post(
                    |axum::extract::State(r): axum::extract::State<Arc<Received>>,
                     uri: axum::http::Uri,
                     axum::Json(body): axum::Json<serde_json::Value>| async move {
                        r.0.lock().unwrap_or_else(|e| e.into_inner()).push((
                            chrono::Utc::now(),
                            uri.path().to_string(),
                            body,
                        ));
                        axum::http::StatusCode::OK
                    },
                ),
            )
            .with_state(got.clone());
        let addr = serve_on_loopback(app).await;
        let store = Arc::new(Store::in_memory().expect("store"));
        let tenants = [
            ("contoso", "0c0c0c0c-1111-4222-8333-444455556666"),
            ("fabrikam", "0f0f0f0f-1111-4222-8333-444455556666"),
        ];
        let mut running = Vec::new();
        for (name, id) in tenants {
            let text = format!(
                "[tenant]\nname = \"{name}\"\ntenant_id = \"{id}\"\nclient_id = \"5a1e3c9d-7b2f-4e6a-8c0d-2f4b6d8e0a1c\"\nclient_secret_env = \"S\"\n\n\
                 [alerting.alertmanager]\nurl = \"http://{addr}/am\"\nresend_interval_seconds = 1\n\n\
                 [[alerting.webhook]]\nname = \"hook\"\nurl = \"http://{addr}/hook\"\n"
            );
            let config = Config::parse(&text, "c.toml").expect("valid");
            let metrics = crate::metrics::Metrics::new(id);
            let alerting =
                Alerting::prepare_with(&config, store.clone(), metrics.alerting(), None, &|_| None)
                    .expect("prepared")
                    .start();
            running.push((name, id, alerting));
        }
        let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().expect("time");
        let user = |n: u8| {
            crate::snapshot::ObjectId::parse(&format!("{n}f0e98f5-3161-4c6b-9b50-d488572f2bb7"))
                .expect("id")
        };
        let record = |tenant: &str, subscribers: &[Subscriber], changes: &[DetectionChange]| {
            store
                .record_watch(&WatchRecord {
                    tenant,
                    at: at("2026-12-03T10:10:00Z"),
                    changes,
                    security: &[],
                    watermarks: &[],
                    subscribers,
                    remediation: &|d: &Detection| format!("TAP for {}", d.upn),
                    classifier: None,
                })
                .expect("recorded")
        };
        // The same user id in both tenants (ids are only unique within a tenant).
        for (n, (name, id, alerting)) in running.iter().enumerate() {
            record(
                id,
                alerting.subscribers(),
                &[DetectionChange::Opened(Detection {
                    user: user(1),
                    upn: format!("ann{n}@{name}.com").into(),
                    state: LockoutState::LockedOut,
                    codes: vec![(500121, 6)],
                    first_seen: at("2026-12-03T10:00:00Z"),
                    last_seen: at("2026-12-03T10:00:00Z"),
                    detail: "6 failed MFA sign-ins".into(),
                })],
            );
        }
        for (_, _, alerting) in &running {
            alerting.published();
        }
        let pushes_of = |tenant: &str| -> Vec<(chrono::DateTime<chrono::Utc>, serde_json::Value)> {
            got.all()
                .into_iter()
                .filter(|(_, path, _)| path == "/am/api/v2/alerts")
                .flat_map(|(when, _, body)| {
                    body.as_array()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .map(move |a| (when, a))
                })
                .filter(|(_, a)| a["labels"]["tenant"] == tenant)
                .collect()
        };
        for _ in 0..100 {
            let delivered = store.outbox_counts().expect("counts").is_empty();
            if delivered && tenants.iter().all(|(_, id)| !pushes_of(id).is_empty()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Each tenant's worker delivered its own rows, named by its name and id.
        let messages: Vec<serde_json::Value> = got
            .all()
            .into_iter()
            .filter(|(_, path, _)| path == "/hook")
            .map(|(_, _, body)| body)
            .collect();
        let mut heard: Vec<(String, String, String)> = messages
            .iter()
            .map(|m| {
                (
                    m["tenant"].as_str().unwrap_or("").to_string(),
                    m["tenant_name"].as_str().unwrap_or("").to_string(),
                    m["findings"][0]["user_principal_name"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
            })
            .collect();
        heard.sort();
        assert_eq!(
            heard,
            vec![
                (
                    tenants[0].1.into(),
                    "contoso".into(),
                    "ann0@contoso.com".into()
                ),
                (
                    tenants[1].1.into(),
                    "fabrikam".into(),
                    "ann1@fabrikam.com".into()
                ),
            ],
            "one message per tenant, each about its own user"
        );
        assert!(
            messages[0]["findings"][0]["url"]
                .as_str()
                .is_some_and(|u| u.ends_with("?tenant=contoso") || u.ends_with("?tenant=fabrikam")),
            "{messages:?}"
        );
        // Each tenant's alert carries its id and name.
        for (name, id) in tenants {
            let pushed = pushes_of(id);
            let (_, alert) = pushed.first().expect("pushed");
            assert_eq!(alert["labels"]["tenant_name"], name);
            assert!(alert["labels"]["user"]
                .as_str()
                .is_some_and(|u| u.ends_with(&format!("@{name}.com"))));
        }

        // Contoso's user is back in: contoso ends its alert; fabrikam's stays active.
        let (_, contoso, alerting) = &running[0];
        record(
            contoso,
            alerting.subscribers(),
            &[DetectionChange::Resolved {
                user: user(1),
                state: LockoutState::LockedOut,
                at: at("2026-12-03T10:20:00Z"),
            }],
        );
        alerting.published();
        let ended = |(when, a): &(chrono::DateTime<chrono::Utc>, serde_json::Value)| {
            a["endsAt"]
                .as_str()
                .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
                .is_some_and(|ends| ends <= *when)
        };
        for _ in 0..100 {
            if pushes_of(contoso).iter().any(ended) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            pushes_of(contoso).iter().any(ended),
            "contoso's alert ended"
        );
        // Fabrikam's pushes go on (every second): none ever ended its alert.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let fabrikam = pushes_of(tenants[1].1);
        assert!(fabrikam.len() >= 2, "{fabrikam:?}");
        assert!(
            !fabrikam.iter().any(ended),
            "another tenant's push never ends fabrikam's alert: {fabrikam:?}"
        );
        for (_, _, alerting) in &running {
            alerting.shutdown(Duration::from_millis(100)).await;
        }
    }
}
