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

use super::{is_user_finding, rule_title, Links};
use crate::evaluate::Severity;
use crate::metrics::AlertingMetrics;
use crate::secret::Secret;
use crate::state::StoredFinding;

/// The alert name of every per-user finding (its `rule` label says which).
pub const ALERT_NAME: &str = "EntraUserMfaFinding";

/// Alerts posted in one request at most.
const CHUNK: usize = 1000;

/// One alert: an open finding about one user.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// alertname, tenant, rule, severity, user: the alert's identity in Alertmanager.
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

/// The alerts for the store's open findings: user findings, not excepted, at `min` or above.
pub fn alerts_for(
    open: &[StoredFinding],
    tenant: &str,
    min: Severity,
    links: &Links,
) -> Vec<Alert> {
    open.iter()
        .filter(|f| !f.excepted && f.resolved_at.is_none() && is_user_finding(f))
        .filter(|f| f.severity.parse::<Severity>().is_ok_and(|s| s >= min))
        .map(|f| {
            let user = f
                .user_principal_name
                .clone()
                .unwrap_or_else(|| f.subject.clone());
            let link = links.user(&user);
            let labels = BTreeMap::from([
                ("alertname", ALERT_NAME.to_string()),
                ("tenant", tenant.to_string()),
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
        .collect()
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
            let resp = req.send().await.map_err(|e| e.without_url().to_string())?;
            let status = resp.status();
            if !status.is_success() {
                let text = resp.text().await.unwrap_or_default();
                let text: String = text.chars().take(300).collect();
                return Err(format!(
                    "{} answered HTTP {status}: {}",
                    self.endpoint,
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
        let alerts = alerts_for(&open, "t1", Severity::Medium, &links);
        let users: Vec<&str> = alerts.iter().map(|a| a.labels["user"].as_str()).collect();
        assert_eq!(
            users,
            ["ann@contoso.com", "bob@contoso.com"],
            "not low, not excepted, not the tenant"
        );
        let bob = &alerts[1];
        assert_eq!(
            bob.labels,
            BTreeMap::from([
                ("alertname", ALERT_NAME.to_string()),
                ("tenant", "t1".into()),
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
            "http://127.0.0.1:9717/api/v1/users/bob@contoso.com"
        );
        assert_eq!(bob.starts_at.to_rfc3339(), "2026-11-01T10:00:00+00:00");
    }
}
