//! The webhook worker: delivers the state store's outbox. Each webhook's queued events go out in
//! the order they were queued, one message per finding, or in batched messages of up to
//! [`PER_MESSAGE`] when one audit queued more than `batch_above` of a kind. A delivered message's
//! events leave the outbox in one transaction; a failed one stays, is counted, and the webhook
//! is retried with backoff (2 s, doubling, up to 10 min) while the others go on.
//!
//! Delivery is at least once: only a crash between a receiver's 2xx and the commit after it
//! sends a message twice. Generic messages carry each event's `id` so a receiver can tell.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use url::Url;

use super::{rule_title, Links, WebhookConfig, WebhookFormat};
use crate::metrics::AlertingMetrics;
use crate::secret::Secret;
use crate::state::{EventKind, OutboxEvent, Store};

/// Findings in one batched message at most (Teams cards are limited to 28 KB).
pub const PER_MESSAGE: usize = 25;

const BACKOFF_FIRST: Duration = Duration::from_secs(2);
const BACKOFF_CAP: Duration = Duration::from_secs(600);

/// One configured webhook and its retry state.
pub struct Sink {
    name: String,
    format: WebhookFormat,
    url: Secret,
    batch_above: usize,
    timeout: Duration,
    backoff: Duration,
    retry_at: Option<Instant>,
}

impl Sink {
    pub fn new(config: &WebhookConfig, url: Url, metrics: &AlertingMetrics) -> Sink {
        for result in ["success", "failure"] {
            metrics
                .webhook_messages
                .with_label_values(&[&config.name, result]);
        }
        metrics.webhook_pending.with_label_values(&[&config.name]);
        Sink {
            name: config.name.clone(),
            format: config.format,
            url: Secret::new(url.to_string()),
            batch_above: config.batch_above,
            timeout: Duration::from_secs(config.timeout_seconds),
            backoff: BACKOFF_FIRST,
            retry_at: None,
        }
    }
}

/// Splits queued events into messages: consecutive events of one audit and kind stay one
/// message each up to `batch_above`, and are batched by [`PER_MESSAGE`] above it.
pub fn plan(events: &[OutboxEvent], batch_above: usize) -> Vec<&[OutboxEvent]> {
    let mut messages = Vec::new();
    let mut rest = events;
    while let Some(first) = rest.first() {
        let run = rest
            .iter()
            .take_while(|e| e.audit_id == first.audit_id && e.kind == first.kind)
            .count();
        let (group, tail) = rest.split_at(run);
        if group.len() > batch_above {
            messages.extend(group.chunks(PER_MESSAGE));
        } else {
            messages.extend(group.chunks(1));
        }
        rest = tail;
    }
    messages
}

/// The body of one message in `format`.
pub fn render(format: WebhookFormat, events: &[OutboxEvent], links: &Links) -> Value {
    let Some(first) = events.first() else {
        return json!({});
    };
    let (verb, marker) = match first.kind {
        EventKind::New => ("new", "Open"),
        EventKind::Resolved => ("resolved", "Resolved"),
    };
    let who = |e: &OutboxEvent| {
        e.user_principal_name
            .clone()
            .unwrap_or_else(|| e.subject.clone())
    };
    let link = |e: &OutboxEvent| {
        if e.subject == "tenant" {
            links.rule(&e.rule)
        } else {
            links.user(&who(e))
        }
    };
    let heading = if events.len() == 1 {
        format!(
            "{marker}: {} ({}) for {}",
            rule_title(&first.rule),
            first.severity,
            who(first)
        )
    } else {
        format!("{} {verb} MFA findings in {}", events.len(), first.tenant)
    };
    match format {
        WebhookFormat::Generic => json!({
            "source": "mfa-auditor",
            "version": 1,
            "tenant": first.tenant,
            "event": verb,
            "audit_id": first.audit_id,
            "findings": events.iter().map(|e| json!({
                "id": e.id,
                "rule": e.rule,
                "title": rule_title(&e.rule),
                "severity": e.severity,
                "subject": e.subject,
                "user_principal_name": e.user_principal_name,
                "detail": e.detail,
                "remediation": e.remediation,
                "first_seen": e.first_seen,
                "resolved_at": e.resolved_at,
                "url": link(e),
            })).collect::<Vec<_>>(),
        }),
        WebhookFormat::Slack => {
            let esc = |s: &str| {
                s.replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;")
            };
            let mut text = format!("*{}*", esc(&heading));
            for e in events {
                text.push_str(&format!(
                    "\n• <{}|{}> {} ({}): {}",
                    link(e),
                    esc(&who(e)),
                    esc(rule_title(&e.rule)),
                    e.severity,
                    esc(&e.detail)
                ));
                if e.kind == EventKind::New && events.len() == 1 {
                    text.push_str(&format!("\n_Fix:_ {}", esc(&e.remediation)));
                }
            }
            json!({ "text": text })
        }
        WebhookFormat::Teams => {
            let mut body = vec![json!({
                "type": "TextBlock", "text": heading, "weight": "Bolder", "size": "Medium", "wrap": true,
            })];
            for e in events {
                body.push(json!({
                    "type": "TextBlock", "wrap": true, "separator": true,
                    "text": format!("[{}]({}) · {} ({}): {}", who(e), link(e), rule_title(&e.rule), e.severity, e.detail),
                }));
                if e.kind == EventKind::New && events.len() == 1 {
                    body.push(json!({"type": "TextBlock", "wrap": true, "isSubtle": true, "text": format!("Fix: {}", e.remediation)}));
                }
            }
            json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": body,
                        "actions": [{"type": "Action.OpenUrl", "title": "Open in mfa-auditor", "url": link(first)}],
                    },
                }],
            })
        }
    }
}

pub struct Worker {
    sinks: Vec<Sink>,
    store: Arc<Store>,
    metrics: AlertingMetrics,
    links: Links,
    http: reqwest::Client,
}

impl Worker {
    pub fn new(
        sinks: Vec<Sink>,
        store: Arc<Store>,
        metrics: AlertingMetrics,
        links: Links,
    ) -> Worker {
        let http = reqwest::Client::builder()
            .user_agent(concat!("mfa-auditor/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Worker {
            sinks,
            store,
            metrics,
            links,
            http,
        }
    }

    /// Delivers until `stop` turns true, waking on `wake` (an audit recorded) or a retry time.
    /// `stop` is looked at between messages, never inside one.
    pub async fn run(mut self, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
        loop {
            let mut next_retry: Option<Instant> = None;
            for i in 0..self.sinks.len() {
                if *stop.borrow() {
                    return;
                }
                if let Some(at) = self.sinks[i].retry_at {
                    if at > Instant::now() {
                        next_retry = Some(next_retry.map_or(at, |n| n.min(at)));
                        continue;
                    }
                }
                if let Some(at) = self.drain(i, &stop).await {
                    next_retry = Some(next_retry.map_or(at, |n| n.min(at)));
                }
            }
            self.count_pending();
            let until = next_retry.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep_until(until) => {}
                _ = super::stopped(&mut stop) => return,
            }
        }
    }

    fn count_pending(&self) {
        match self.store.outbox_counts() {
            Ok(counts) => {
                for sink in &self.sinks {
                    let n = counts
                        .iter()
                        .find(|(w, _)| *w == sink.name)
                        .map_or(0, |(_, n)| *n);
                    self.metrics
                        .webhook_pending
                        .with_label_values(&[&sink.name])
                        .set(n);
                }
            }
            Err(e) => tracing::error!("outbox: {e}"),
        }
    }

    /// Sends sink `i`'s queue until it is empty (None) or a delivery fails (the retry time).
    async fn drain(&mut self, i: usize, stop: &watch::Receiver<bool>) -> Option<Instant> {
        loop {
            let name = self.sinks[i].name.clone();
            let events = match self.store.outbox_pending(&name, 1000) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(webhook = %name, "outbox: {e}");
                    return Some(Instant::now() + BACKOFF_FIRST);
                }
            };
            if events.is_empty() {
                return None;
            }
            for message in plan(&events, self.sinks[i].batch_above) {
                if *stop.borrow() {
                    return None;
                }
                let ids: Vec<i64> = message.iter().map(|e| e.id).collect();
                let sink = &self.sinks[i];
                let body = render(sink.format, message, &self.links);
                let sent = send(&self.http, sink, &body).await;
                let sink = &mut self.sinks[i];
                match sent {
                    Ok(()) => {
                        self.metrics
                            .webhook_messages
                            .with_label_values(&[&name, "success"])
                            .inc();
                        sink.backoff = BACKOFF_FIRST;
                        sink.retry_at = None;
                        if let Err(e) = self.store.outbox_delivered(&ids) {
                            tracing::error!(webhook = %name, "outbox: {e}");
                            return Some(Instant::now() + BACKOFF_FIRST);
                        }
                    }
                    Err(e) => {
                        self.metrics
                            .webhook_messages
                            .with_label_values(&[&name, "failure"])
                            .inc();
                        let at = Instant::now() + sink.backoff;
                        tracing::warn!(webhook = %name, events = ids.len(), retry_in = ?sink.backoff, "webhook delivery failed: {e}");
                        sink.retry_at = Some(at);
                        sink.backoff = (sink.backoff * 2).min(BACKOFF_CAP);
                        if let Err(e) = self.store.outbox_failed(&ids, &e) {
                            tracing::error!(webhook = %name, "outbox: {e}");
                        }
                        return Some(at);
                    }
                }
            }
        }
    }
}

/// Posts one message; the URL never appears in the error.
async fn send(http: &reqwest::Client, sink: &Sink, body: &Value) -> Result<(), String> {
    let resp = http
        .post(sink.url.expose())
        .timeout(sink.timeout)
        .json(body)
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let text = resp.text().await.unwrap_or_default();
    Err(format!(
        "HTTP {status}: {}",
        text.chars().take(200).collect::<String>().trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: i64, audit_id: i64, kind: EventKind, subject: &str) -> OutboxEvent {
        OutboxEvent {
            id,
            webhook: "w".into(),
            tenant: "t1".into(),
            audit_id,
            kind,
            rule: "no-backup-method".into(),
            subject: subject.into(),
            user_principal_name: Some(format!("{subject}@contoso.com")),
            severity: "medium".into(),
            detail: "one family: <phone>".into(),
            remediation: "register a passkey".into(),
            first_seen: "2026-11-01T10:00:00Z".parse().expect("time"),
            resolved_at: None,
            attempts: 0,
        }
    }

    #[test]
    fn small_groups_go_one_by_one_and_large_ones_in_batches() {
        let mut events: Vec<OutboxEvent> =
            (0..3).map(|i| event(i, 1, EventKind::New, "a")).collect();
        events.extend((3..63).map(|i| event(i, 2, EventKind::New, "b")));
        events.push(event(63, 2, EventKind::Resolved, "c"));
        let sizes: Vec<usize> = plan(&events, 10).iter().map(|m| m.len()).collect();
        assert_eq!(sizes, [1, 1, 1, 25, 25, 10, 1]);
        let ids: Vec<i64> = plan(&events, 10)
            .iter()
            .flat_map(|m| m.iter().map(|e| e.id))
            .collect();
        assert_eq!(
            ids,
            (0..64).collect::<Vec<_>>(),
            "every event once, in order"
        );
    }

    #[test]
    fn each_format_names_the_user_the_rule_and_links_the_finding() {
        let links = Links::new(Url::parse("http://127.0.0.1:9717").expect("url"));
        let one = [event(7, 3, EventKind::New, "ann")];
        let g = render(WebhookFormat::Generic, &one, &links);
        assert_eq!(g["event"], "new");
        assert_eq!(g["findings"][0]["id"], 7);
        assert_eq!(g["findings"][0]["user_principal_name"], "ann@contoso.com");
        assert_eq!(
            g["findings"][0]["url"],
            "http://127.0.0.1:9717/api/v1/users/ann@contoso.com"
        );
        let s = render(WebhookFormat::Slack, &one, &links);
        let text = s["text"].as_str().expect("text");
        assert!(
            text.starts_with("*Open: User has no backup MFA method (medium) for ann@contoso.com*"),
            "{text}"
        );
        assert!(
            text.contains("<http://127.0.0.1:9717/api/v1/users/ann@contoso.com|ann@contoso.com>"),
            "{text}"
        );
        assert!(
            text.contains("one family: &lt;phone&gt;"),
            "Slack's control characters are escaped: {text}"
        );
        let t = render(WebhookFormat::Teams, &one, &links);
        let card = &t["attachments"][0];
        assert_eq!(
            card["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(card["content"]["type"], "AdaptiveCard");
        assert!(card["content"]["body"][1]["text"]
            .as_str()
            .expect("text")
            .contains("ann@contoso.com"));
        let mut resolved: Vec<OutboxEvent> = (0..2)
            .map(|i| event(i, 4, EventKind::Resolved, "bob"))
            .collect();
        resolved[1].subject = "tenant".into();
        resolved[1].user_principal_name = None;
        let g = render(WebhookFormat::Generic, &resolved, &links);
        assert_eq!(g["event"], "resolved");
        assert_eq!(g["findings"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            g["findings"][1]["url"],
            "http://127.0.0.1:9717/api/v1/findings?rule=no-backup-method"
        );
        let s = render(WebhookFormat::Slack, &resolved, &links);
        assert!(s["text"]
            .as_str()
            .expect("text")
            .starts_with("*2 resolved MFA findings in t1*"));
    }
}
