//! The Alertmanager pusher: holds the open per-user findings as alerts and posts them to
//! `{url}/api/v2/alerts`, the way Prometheus does for its own alerts: the whole active set on
//! every change and every resend interval, each alert's `endsAt` four intervals ahead. An alert
//! that leaves the set is posted once more with `endsAt` = now so it resolves at once, and kept
//! for the next push until one succeeds. A push that fails is retried with backoff (1 s,
//! doubling, up to the resend interval); the audits never wait for it.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;
use url::Url;

use super::{is_user_finding, rule_title, Links, TenantRef};
use crate::evaluate::Severity;
use crate::metrics::AlertingMetrics;
use crate::secret::Secret;
use crate::state::{detection_severity, StoredDetection, StoredFinding};
use crate::watch::LockoutState;

/// The alert name of every per-user finding (its `rule` label says which).
pub const ALERT_NAME: &str = "EntraUserMfaFinding";

/// The alert name of every open lockout detection of the sign-in watcher (its `state` label
/// says which: `locked-out`, `mfa-fraud-reported`, `registration-blocked`,
/// `mfa-prompt-bombing`). One name, so one Alertmanager route catches them all and a route on
/// `state` splits them; the name differs from [`ALERT_NAME`] because a detection is something
/// happening to a user now, not a standing weakness of their methods.
pub const LOCKOUT_ALERT_NAME: &str = "EntraUserLockout";

/// Alerts posted in one request at most.
const CHUNK: usize = 1000;

/// One alert: an open finding about one user.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// alertname, tenant, tenant_name, rule, severity, user: the alert's identity in
    /// Alertmanager. The tenant is in it, so one tenant's push (its active set, and the alerts
    /// it ends) never touches another tenant's alerts in a shared Alertmanager.
    pub labels: BTreeMap<&'static str, String>,
    pub annotations: BTreeMap<&'static str, String>,
    pub starts_at: DateTime<Utc>,
    pub generator_url: String,
}

/// Alertmanager's v2 `postableAlert`.
#[derive(Serialize)]
struct Postable<'a> {
    labels: &'a BTreeMap<&'static str, String>,
    annotations: &'a BTreeMap<&'static str, String>,
    #[serde(rename = "startsAt")]
    starts_at: DateTime<Utc>,
    #[serde(rename = "endsAt")]
    ends_at: DateTime<Utc>,
    #[serde(rename = "generatorURL")]
    generator_url: &'a str,
}

/// The alerts for the store's open findings: user findings, not excepted, at `min` or above;
/// at most `max`, the most severe and then the oldest first. Also returns how many were left out.
pub fn alerts_for(
    open: &[StoredFinding],
    tenant: &TenantRef,
    min: Severity,
    max: usize,
    links: &Links,
) -> (Vec<Alert>, usize) {
    let mut wanted: Vec<(Severity, &StoredFinding)> = open
        .iter()
        .filter(|f| !f.excepted && f.resolved_at.is_none() && is_user_finding(f))
        .filter_map(|f| f.severity.parse::<Severity>().ok().map(|s| (s, f)))
        .filter(|(s, _)| *s >= min)
        .collect();
    wanted.sort_by(|(sa, a), (sb, b)| sb.cmp(sa).then(a.first_seen.cmp(&b.first_seen)));
    let dropped = wanted.len().saturating_sub(max);
    wanted.truncate(max);
    let alerts = wanted
        .into_iter()
        .map(|(_, f)| {
            let user = f
                .user_principal_name
                .clone()
                .unwrap_or_else(|| f.subject.clone());
            let link = links.user(&user);
            let labels = BTreeMap::from([
                ("alertname", ALERT_NAME.to_string()),
                ("tenant", tenant.id.clone()),
                ("tenant_name", tenant.name.clone()),
                ("rule", f.rule.clone()),
                ("severity", f.severity.clone()),
                ("user", user.clone()),
            ]);
            let annotations = BTreeMap::from([
                ("summary", format!("{}: {user}", rule_title(&f.rule))),
                ("description", f.detail.clone()),
                ("remediation", f.remediation.clone()),
                ("finding_url", link.clone()),
            ]);
            Alert {
                labels,
                annotations,
                starts_at: f.first_seen,
                generator_url: link,
            }
        })
        .collect();
    (alerts, dropped)
}

/// The alerts for the store's open lockout detections (all of them, whatever `min_severity`: a
/// user locked out now is not a posture finding to rank), at most `max`, the most severe and
/// then the oldest first. Also returns how many were left out. A detection that resolves leaves
/// the set, and the pusher ends its alert (`endsAt` = now) as it does a resolved finding's.
pub fn detection_alerts(
    open: &[StoredDetection],
    tenant: &TenantRef,
    max: usize,
    links: &Links,
) -> (Vec<Alert>, usize) {
    let mut wanted: Vec<(Severity, &StoredDetection)> = open
        .iter()
        .filter(|d| d.resolved_at.is_none())
        .map(|d| {
            let severity = LockoutState::parse(&d.state).map_or(Severity::High, detection_severity);
            (severity, d)
        })
        .collect();
    wanted.sort_by(|(sa, a), (sb, b)| {
        sb.cmp(sa)
            .then(a.first_seen.cmp(&b.first_seen))
            .then(a.user.cmp(&b.user))
    });
    let dropped = wanted.len().saturating_sub(max);
    wanted.truncate(max);
    let alerts = wanted
        .into_iter()
        .map(|(severity, d)| {
            let user = if d.upn.is_empty() { &d.user } else { &d.upn };
            let link = links.user(user);
            let codes = d
                .codes
                .iter()
                .map(|(code, n)| format!("{code} ×{n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let labels = BTreeMap::from([
                ("alertname", LOCKOUT_ALERT_NAME.to_string()),
                ("tenant", tenant.id.clone()),
                ("tenant_name", tenant.name.clone()),
                ("state", d.state.clone()),
                ("severity", severity.as_str().to_string()),
                ("user", user.clone()),
                ("user_id", d.user.clone()),
            ]);
            let annotations = BTreeMap::from([
                ("summary", format!("{}: {user}", rule_title(&d.state))),
                ("description", d.detail.clone()),
                ("remediation", d.remediation.clone()),
                ("error_codes", codes),
                ("user_url", link.clone()),
            ]);
            Alert {
                labels,
                annotations,
                starts_at: d.first_seen,
                generator_url: link,
            }
        })
        .collect();
    (alerts, dropped)
}

/// How the pusher authenticates to Alertmanager.
pub enum Auth {
    None,
    Basic { user: String, password: Secret },
    Bearer(Secret),
}

pub struct Pusher {
    http: reqwest::Client,
    endpoint: Url,
    auth: Auth,
    resend: Duration,
    metrics: AlertingMetrics,
}

impl Pusher {
    pub fn new(
        base: &Url,
        auth: Auth,
        resend: Duration,
        timeout: Duration,
        metrics: AlertingMetrics,
    ) -> Result<Pusher, String> {
        let mut endpoint = base.clone();
        endpoint
            .path_segments_mut()
            .map_err(|_| "is not a base URL".to_string())?
            .pop_if_empty()
            .extend(["api", "v2", "alerts"]);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("mfa-auditor/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Pusher {
            http,
            endpoint,
            auth,
            resend,
            metrics,
        })
    }

    /// Pushes until `stop` turns true: at once, on every change of `desired`, and every resend
    /// interval; after a failure, with backoff.
    pub async fn run(
        self,
        mut desired: watch::Receiver<std::sync::Arc<Vec<Alert>>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut current = desired.borrow_and_update().clone();
        let mut resolving: HashMap<BTreeMap<&'static str, String>, Alert> = HashMap::new();
        let mut next = tokio::time::Instant::now();
        let mut backoff = Duration::from_secs(1);
        loop {
            tokio::select! {
                changed = desired.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let fresh = desired.borrow_and_update().clone();
                    let keep: std::collections::HashSet<_> = fresh.iter().map(|a| &a.labels).collect();
                    for gone in current.iter().filter(|a| !keep.contains(&a.labels)) {
                        resolving.insert(gone.labels.clone(), gone.clone());
                    }
                    resolving.retain(|labels, _| !keep.contains(labels));
                    current = fresh;
                    next = tokio::time::Instant::now();
                }
                _ = tokio::time::sleep_until(next) => {
                    let resolved: Vec<&Alert> = resolving.values().collect();
                    match self.push(&current, &resolved, Utc::now()).await {
                        Ok(()) => {
                            self.metrics.alertmanager_pushes.with_label_values(&["success"]).inc();
                            self.metrics.alertmanager_alerts.set(current.len() as i64);
                            resolving.clear();
                            backoff = Duration::from_secs(1);
                            next = tokio::time::Instant::now() + self.resend;
                        }
                        Err(e) => {
                            self.metrics.alertmanager_pushes.with_label_values(&["failure"]).inc();
                            tracing::warn!(retry_in = ?backoff, "Alertmanager push failed: {e}");
                            next = tokio::time::Instant::now() + backoff;
                            backoff = (backoff * 2).min(self.resend);
                        }
                    }
                }
                _ = super::stopped(&mut stop) => break,
            }
        }
    }

    /// Posts the resolved alerts (ending now) and the active ones (ending four intervals ahead).
    async fn push(
        &self,
        active: &[Alert],
        resolved: &[&Alert],
        now: DateTime<Utc>,
    ) -> Result<(), String> {
        let ahead =
            chrono::Duration::from_std(self.resend * 4).unwrap_or(chrono::Duration::hours(1));
        let body: Vec<Postable> = resolved
            .iter()
            .map(|a| (*a, now))
            .chain(active.iter().map(|a| (a, now + ahead)))
            .map(|(a, ends_at)| Postable {
                labels: &a.labels,
                annotations: &a.annotations,
                starts_at: a.starts_at.min(now),
                ends_at,
                generator_url: &a.generator_url,
            })
            .collect();
        // An empty set is still posted (`[]`): a push that succeeds has reached Alertmanager.
        let chunks: Vec<&[Postable]> = if body.is_empty() {
            vec![&[]]
        } else {
            body.chunks(CHUNK).collect()
        };
        for chunk in chunks {
            let mut req = self.http.post(self.endpoint.clone()).json(chunk);
            req = match &self.auth {
                Auth::None => req,
                Auth::Basic { user, password } => req.basic_auth(user, Some(password.expose())),
                Auth::Bearer(token) => req.bearer_auth(token.expose()),
            };
            let resp = req.send().await.map_err(super::request_error)?;
            let status = resp.status();
            if !status.is_success() {
                let text = resp.text().await.unwrap_or_default();
                let text: String = text.chars().take(300).collect();
                return Err(format!(
                    "{} answered HTTP {status}: {}",
                    super::redact_url(self.endpoint.as_str()),
                    text.trim()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t1() -> TenantRef {
        TenantRef::new("t1", "t1")
    }

    fn stored(rule: &str, subject: &str, severity: &str, excepted: bool) -> StoredFinding {
        StoredFinding {
            tenant: "t1".into(),
            rule: rule.into(),
            subject: subject.into(),
            user_principal_name: (subject != "tenant").then(|| format!("{subject}@contoso.com")),
            severity: severity.into(),
            detail: "only a phone".into(),
            remediation: "register a passkey".into(),
            excepted,
            first_seen: "2026-11-01T10:00:00Z".parse().expect("time"),
            last_seen: "2026-11-01T11:00:00Z".parse().expect("time"),
            resolved_at: None,
        }
    }

    #[test]
    fn open_user_findings_at_or_above_the_threshold_become_alerts() {
        let links = Links::new(Url::parse("http://127.0.0.1:9717").expect("url"));
        let open = [
            stored("phone-only", "ann", "medium", false),
            stored("no-mfa-method", "bob", "high", false),
            stored("no-backup-method", "cy", "low", false),
            stored("phone-only", "dan", "medium", true),
            stored("tap-policy-disabled", "tenant", "critical", false),
        ];
        let (alerts, dropped) = alerts_for(&open, &t1(), Severity::Medium, 100, &links);
        let users: Vec<&str> = alerts.iter().map(|a| a.labels["user"].as_str()).collect();
        assert_eq!(
            (users, dropped),
            (vec!["bob@contoso.com", "ann@contoso.com"], 0),
            "not low, not excepted, not the tenant; the most severe first"
        );
        let bob = &alerts[0];
        assert_eq!(
            bob.labels,
            BTreeMap::from([
                ("alertname", ALERT_NAME.to_string()),
                ("tenant", "t1".into()),
                ("tenant_name", "t1".into()),
                ("rule", "no-mfa-method".into()),
                ("severity", "high".into()),
                ("user", "bob@contoso.com".into()),
            ])
        );
        assert_eq!(
            bob.annotations["summary"],
            "User has no MFA method: bob@contoso.com"
        );
        assert_eq!(bob.annotations["remediation"], "register a passkey");
        assert_eq!(
            bob.generator_url,
            "http://127.0.0.1:9717/users/bob@contoso.com"
        );
        assert_eq!(bob.starts_at.to_rfc3339(), "2026-11-01T10:00:00+00:00");
    }

    #[test]
    fn above_the_cap_the_most_severe_and_oldest_are_kept() {
        let links = Links::new(Url::parse("http://127.0.0.1:9717").expect("url"));
        let mut open: Vec<StoredFinding> = (0..5)
            .map(|i| {
                let mut f = stored("phone-only", &format!("u{i}"), "medium", false);
                f.first_seen -= chrono::Duration::days(i);
                f
            })
            .collect();
        open.push(stored("no-mfa-method", "new-admin", "high", false));
        let (alerts, dropped) = alerts_for(&open, &t1(), Severity::Info, 3, &links);
        let users: Vec<&str> = alerts.iter().map(|a| a.labels["user"].as_str()).collect();
        assert_eq!(
            users,
            ["new-admin@contoso.com", "u4@contoso.com", "u3@contoso.com"]
        );
        assert_eq!(dropped, 3);
    }

    /// Alertmanager's side of the protocol: answers 503 to the first push, 200 after, and keeps
    /// every body and Authorization header it got.
    #[derive(Default)]
    struct Capture {
        pushes: std::sync::Mutex<Vec<(Option<String>, serde_json::Value)>>,
    }

    async fn capture(
        axum::extract::State(c): axum::extract::State<std::sync::Arc<Capture>>,
        headers: axum::http::HeaderMap,
        axum::Json(body): axum::Json<serde_json::Value>,
    ) -> axum::http::StatusCode {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut pushes = c.pushes.lock().unwrap_or_else(|e| e.into_inner());
        pushes.push((auth, body));
        if pushes.len() == 1 {
            axum::http::StatusCode::SERVICE_UNAVAILABLE
        } else {
            axum::http::StatusCode::OK
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_push_is_retried_and_a_gone_alert_is_sent_once_ending_now() {
        let c = std::sync::Arc::new(Capture::default());
        let app = axum::Router::new()
            .route("/am/api/v2/alerts", axum::routing::post(capture))
            .with_state(c.clone());
        let addr = crate::alerting::serve_on_loopback(app).await;
        let metrics = crate::metrics::Metrics::new("t1").alerting();
        let base = Url::parse(&format!("http://{addr}/am/")).expect("url");
        let auth = Auth::Basic {
            user: "mfa".into(),
            password: Secret::new("pw"),
        };
        let resend = Duration::from_secs(2);
        let pusher = Pusher::new(&base, auth, resend, Duration::from_secs(5), metrics.clone())
            .expect("pusher");
        let links = Links::new(Url::parse("http://127.0.0.1:9717").expect("url"));
        let open = [
            stored("phone-only", "ann", "medium", false),
            stored("no-mfa-method", "bob", "high", false),
        ];
        let (both, _) = alerts_for(&open, &t1(), Severity::Info, 100, &links);
        let (tx, rx) = watch::channel(std::sync::Arc::new(both));
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(pusher.run(rx, stop_rx));
        let pushes = || c.pushes.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let wait = |n: usize| async move {
            for _ in 0..100 {
                if pushes().len() >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("no push {n}: {:?}", pushes());
        };
        wait(2).await;
        let got = pushes();
        let labels = |v: &serde_json::Value| -> Vec<serde_json::Value> {
            v.as_array()
                .map(|a| a.iter().map(|x| x["labels"].clone()).collect())
                .unwrap_or_default()
        };
        assert_eq!(
            labels(&got[0].1),
            labels(&got[1].1),
            "the refused push is retried"
        );
        assert_eq!(labels(&got[1].1).len(), 2);
        assert_eq!(
            got[1].0.as_deref(),
            Some("Basic bWZhOnB3"),
            "basic auth: mfa:pw"
        );
        let ends = |v: &serde_json::Value| -> DateTime<Utc> {
            v["endsAt"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("endsAt")
        };
        let now = Utc::now();
        for a in got[1].1.as_array().expect("alerts") {
            assert!(
                ends(a) > now + chrono::Duration::seconds(6),
                "four intervals ahead: {a}"
            );
            assert_eq!(a["startsAt"], "2026-11-01T10:00:00Z");
        }
        assert_eq!(
            metrics
                .alertmanager_pushes
                .with_label_values(&["failure"])
                .get(),
            1
        );

        // Ann is fixed: her alert goes once more ending now, then never again.
        let (only_bob, _) = alerts_for(&open[1..], &t1(), Severity::Info, 100, &links);
        tx.send_replace(std::sync::Arc::new(only_bob));
        wait(3).await;
        let third = &pushes()[2].1;
        let now = Utc::now();
        let by_user = |v: &serde_json::Value, u: &str| {
            v.as_array()
                .and_then(|a| a.iter().find(|x| x["labels"]["user"] == u).cloned())
        };
        let ann = by_user(third, "ann@contoso.com").expect("ann resolves");
        assert!(ends(&ann) <= now, "ends now: {ann}");
        let bob = by_user(third, "bob@contoso.com").expect("bob stays");
        assert!(ends(&bob) > now + chrono::Duration::seconds(6));
        wait(4).await;
        let fourth = &pushes()[3].1;
        assert!(
            by_user(fourth, "ann@contoso.com").is_none(),
            "resolved is sent once"
        );
        assert!(
            by_user(fourth, "bob@contoso.com").is_some(),
            "the open set is re-sent"
        );
        assert_eq!(metrics.alertmanager_alerts.get(), 1);
        let _ = stop.send(true);
        task.await.expect("the pusher stops");
    }

    fn detection(user: &str, upn: &str, state: &str, first_seen: &str) -> StoredDetection {
        StoredDetection {
            tenant: "t1".into(),
            user: user.into(),
            upn: upn.into(),
            state: state.into(),
            codes: vec![(500121, 4), (50088, 1)],
            first_seen: first_seen.parse().expect("time"),
            last_seen: first_seen.parse().expect("time"),
            opened_at: first_seen.parse().expect("time"),
            resolved_at: None,
            detail: format!("{upn} failed MFA 5 times"),
            remediation: format!("New-MgUserAuthenticationTemporaryAccessPassMethod -UserId {user} -IsUsableOnce:$true"),
        }
    }

    #[test]
    fn open_detections_become_lockout_alerts_most_severe_first_and_capped() {
        let links = Links::new(Url::parse("https://auditor.example/").expect("url"));
        let mut resolved = detection(
            "u-4",
            "dee@contoso.com",
            "locked-out",
            "2026-11-01T08:00:00Z",
        );
        resolved.resolved_at = Some("2026-11-01T12:00:00Z".parse().expect("time"));
        let open = [
            detection(
                "u-1",
                "ann@contoso.com",
                "registration-blocked",
                "2026-11-01T09:00:00Z",
            ),
            detection(
                "u-2",
                "bob@contoso.com",
                "locked-out",
                "2026-11-01T11:00:00Z",
            ),
            detection(
                "u-3",
                "cy@contoso.com",
                "mfa-fraud-reported",
                "2026-11-01T10:00:00Z",
            ),
            detection("u-5", "", "locked-out", "2026-11-01T10:30:00Z"),
            resolved,
        ];
        let (alerts, dropped) = detection_alerts(&open, &t1(), 100, &links);
        let order: Vec<(&str, &str)> = alerts
            .iter()
            .map(|a| (a.labels["user"].as_str(), a.labels["severity"].as_str()))
            .collect();
        assert_eq!(
            (order, dropped),
            (
                vec![
                    ("cy@contoso.com", "critical"),
                    ("u-5", "high"),
                    ("bob@contoso.com", "high"),
                    ("ann@contoso.com", "medium"),
                ],
                0
            ),
            "not the resolved one; by severity, then the oldest; no UPN: the object id"
        );
        let bob = &alerts[2];
        assert_eq!(
            bob.labels,
            BTreeMap::from([
                ("alertname", "EntraUserLockout".to_string()),
                ("tenant", "t1".to_string()),
                ("tenant_name", "t1".to_string()),
                ("state", "locked-out".to_string()),
                ("severity", "high".to_string()),
                ("user", "bob@contoso.com".to_string()),
                ("user_id", "u-2".to_string()),
            ])
        );
        assert_eq!(
            bob.annotations["summary"],
            "User locked out of MFA: bob@contoso.com"
        );
        assert_eq!(
            bob.annotations["description"],
            "bob@contoso.com failed MFA 5 times"
        );
        assert_eq!(
            bob.annotations["remediation"],
            "New-MgUserAuthenticationTemporaryAccessPassMethod -UserId u-2 -IsUsableOnce:$true"
        );
        assert_eq!(bob.annotations["error_codes"], "500121 ×4, 50088 ×1");
        assert_eq!(
            bob.annotations["user_url"],
            "https://auditor.example/users/bob@contoso.com"
        );
        assert_eq!(bob.generator_url, bob.annotations["user_url"]);
        assert_eq!(bob.starts_at, open[1].first_seen);

        let (capped, dropped) = detection_alerts(&open, &t1(), 2, &links);
        assert_eq!(
            (capped.len(), dropped, capped[0].labels["state"].as_str()),
            (2, 2, "mfa-fraud-reported")
        );
    }
}
