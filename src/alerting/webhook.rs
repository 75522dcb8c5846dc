//! The webhook worker: delivers the state store's outbox. Each webhook's queued events go out in
//! the order they were queued, a group (one audit's new, or its resolved, findings) at a time:
//! one message per finding while the group holds at most `batch_above`; above it, for machines
//! (generic JSON) batches of [`PER_BATCH`] findings, and for people (Slack, Teams) **one**
//! summary of the whole group (counts by rule, a few users, links to the findings API), so the
//! first audit of a large tenant is one message, not thousands. A delivered message's events
//! leave the outbox in one transaction; a failed one stays, is counted, and the webhook is
//! retried with backoff (2 s, doubling, up to 10 min) while the others go on.
//!
//! Delivery is at least once: only a crash between a receiver's 2xx and the commit after it,
//! or a stop that cannot wait for a hung receiver, sends a message twice. Generic messages carry
//! each event's `id` so a receiver can tell.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use url::Url;

use super::{is_watcher_rule, rule_title, Links, TenantRef, WebhookConfig, WebhookFormat};
use crate::metrics::AlertingMetrics;
use crate::secret::Secret;
use crate::state::{off_async, EventKind, OutboxEvent, Store};

/// Findings in one batched generic message at most.
pub const PER_BATCH: usize = 100;

/// Users a summary names as examples.
const EXAMPLES: usize = 10;

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

/// What one message carries.
#[derive(Debug, PartialEq)]
pub enum Message<'a> {
    /// These findings, each in full.
    Findings(&'a [OutboxEvent]),
    /// A whole group of `total` findings: counts by (rule, severity), and the first few.
    Summary {
        total: i64,
        by_rule: &'a [(String, String, i64)],
        examples: &'a [OutboxEvent],
    },
}

/// The events a message shows in full (a summary's examples).
fn events_of<'a>(message: &Message<'a>) -> &'a [OutboxEvent] {
    match message {
        Message::Findings(e) => e,
        Message::Summary { examples, .. } => examples,
    }
}

impl Message<'_> {
    fn first(&self) -> Option<&OutboxEvent> {
        match self {
            Message::Findings(e) => e.first(),
            Message::Summary { examples, .. } => examples.first(),
        }
    }
}

/// The leading group of `events`: those of the first event's audit and kind.
pub fn leading_group(events: &[OutboxEvent]) -> &[OutboxEvent] {
    let Some(first) = events.first() else {
        return events;
    };
    let n = events
        .iter()
        .take_while(|e| e.audit_id == first.audit_id && e.kind == first.kind)
        .count();
    &events[..n]
}

/// The messages for `run`, the leading part of a group whose counts by rule are `by_rule`.
pub fn plan<'a>(
    format: WebhookFormat,
    run: &'a [OutboxEvent],
    by_rule: &'a [(String, String, i64)],
    batch_above: usize,
) -> Vec<Message<'a>> {
    let total: i64 = by_rule.iter().map(|r| r.2).sum();
    // The watcher's groups: one message per detection or security event, however many (each
    // is one person to let back in, with its own command).
    if total <= batch_above as i64 || run.first().is_some_and(is_watch_event) {
        return run.chunks(1).map(Message::Findings).collect();
    }
    match format {
        WebhookFormat::Generic => run.chunks(PER_BATCH).map(Message::Findings).collect(),
        WebhookFormat::Slack | WebhookFormat::Teams => vec![Message::Summary {
            total,
            by_rule,
            examples: &run[..run.len().min(EXAMPLES)],
        }],
    }
}

/// An event the sign-in watcher queued (a lockout detection or a security-info event): its
/// group's `audit_id` is the negated watch run id (`state/watch.rs`).
pub fn is_watch_event(e: &OutboxEvent) -> bool {
    e.audit_id < 0 || is_watcher_rule(&e.rule)
}

/// The body of one message in `format`, about `tenant`'s findings (named by its name and id:
/// one receiver may hear from many tenants).
pub fn render(
    format: WebhookFormat,
    message: &Message,
    links: &Links,
    tenant: &TenantRef,
) -> Value {
    let Some(first) = message.first() else {
        return json!({});
    };
    let watched = is_watch_event(first);
    let (verb, marker) = match (first.kind, watched) {
        (EventKind::New, false) => ("new", "Open"),
        (EventKind::New, true) => ("new", "Detected"),
        (EventKind::Resolved, _) => ("resolved", "Resolved"),
    };
    // The command that lets the user back in, shown as is (a watcher's new detection only).
    let command = match events_of(message) {
        [one] if watched && first.kind == EventKind::New && !one.remediation.trim().is_empty() => {
            Some(one.remediation.as_str())
        }
        _ => None,
    };
    let who = |e: &OutboxEvent| {
        e.user_principal_name
            .clone()
            .unwrap_or_else(|| e.subject.clone())
    };
    let link = |e: &OutboxEvent| {
        if crate::evaluate::is_tenant_subject(&e.subject) {
            links.rule(&e.rule)
        } else {
            links.user(&who(e))
        }
    };
    let finding = |e: &OutboxEvent| {
        json!({
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
        })
    };
    let (events, summary) = match message {
        Message::Findings(events) => (*events, None),
        Message::Summary {
            total,
            by_rule,
            examples,
        } => (*examples, Some((*total, *by_rule))),
    };
    let heading = match (events, summary) {
        ([one], None) => format!(
            "{marker}: {} ({}) for {}",
            rule_title(&one.rule),
            one.severity,
            who(one)
        ),
        (_, Some((total, _))) => format!("{total} {verb} MFA findings in {}", tenant.name),
        (many, None) => format!("{} {verb} MFA findings in {}", many.len(), tenant.name),
    };
    let tenant_line = format!("Tenant: {}", tenant.display());
    let single = events.len() == 1 && summary.is_none();
    match format {
        WebhookFormat::Generic => {
            let mut body = json!({
                "source": "mfa-auditor",
                "version": 1,
                "tenant": tenant.id,
                "tenant_name": tenant.name,
                "event": verb,
                "audit_id": first.audit_id,
                "findings": events.iter().map(finding).collect::<Vec<_>>(),
            });
            if watched {
                // Not an audit's: the watch run that queued it, by its own (positive) id.
                if let Some(map) = body.as_object_mut() {
                    map.remove("audit_id");
                    map.insert("origin".into(), json!("watcher"));
                    map.insert("watch_run_id".into(), json!(first.audit_id.unsigned_abs()));
                }
            }
            if let Some((total, by_rule)) = summary {
                body["summary"] = json!({
                    "total": total,
                    "by_rule": by_rule.iter().map(|(r, sev, n)| json!({"rule": r, "severity": sev, "count": n})).collect::<Vec<_>>(),
                });
            }
            body
        }
        WebhookFormat::Slack => {
            let esc = |s: &str| {
                s.replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;")
            };
            let mut text = format!("*{}*\n_{}_", esc(&heading), esc(&tenant_line));
            match summary {
                None => {
                    for e in events {
                        text.push_str(&format!(
                            "\n• <{}|{}> {} ({}): {}",
                            link(e),
                            esc(&who(e)),
                            esc(rule_title(&e.rule)),
                            e.severity,
                            esc(&e.detail)
                        ));
                    }
                    if let Some(command) = command {
                        // Verbatim in a code block (Slack escapes only &, < and > there).
                        text.push_str(&format!("\n_Way back in:_\n```{}```", esc(command)));
                    } else if let (true, false, Some(e)) = (
                        single && first.kind == EventKind::New,
                        watched,
                        events.first(),
                    ) {
                        text.push_str(&format!("\n_Fix:_ {}", esc(&e.remediation)));
                    }
                }
                Some((_, by_rule)) => {
                    for (rule, severity, n) in by_rule {
                        text.push_str(&format!(
                            "\n• {n} × <{}|{}> ({severity})",
                            links.rule(rule),
                            esc(rule_title(rule))
                        ));
                    }
                    let names: Vec<String> = events.iter().map(|e| esc(&who(e))).collect();
                    text.push_str(&format!("\nAmong them: {}", names.join(", ")));
                }
            }
            json!({ "text": text })
        }
        WebhookFormat::Teams => {
            let mut body = vec![json!({
                "type": "TextBlock", "text": heading, "weight": "Bolder", "size": "Medium", "wrap": true,
            })];
            match summary {
                None => {
                    for e in events {
                        body.push(json!({
                            "type": "TextBlock", "wrap": true, "separator": true,
                            "text": format!("[{}]({}) · {} ({}): {}", who(e), link(e), rule_title(&e.rule), e.severity, e.detail),
                        }));
                    }
                    if let Some(command) = command {
                        // A TextRun is not markdown: the command reads exactly as it must be run.
                        body.push(json!({"type": "TextBlock", "wrap": true, "isSubtle": true, "text": "Way back in:"}));
                        body.push(json!({
                            "type": "RichTextBlock",
                            "inlines": [{"type": "TextRun", "text": command, "fontType": "Monospace"}],
                        }));
                    } else if let (true, false, Some(e)) = (
                        single && first.kind == EventKind::New,
                        watched,
                        events.first(),
                    ) {
                        body.push(json!({"type": "TextBlock", "wrap": true, "isSubtle": true, "text": format!("Fix: {}", e.remediation)}));
                    }
                }
                Some((_, by_rule)) => {
                    body.push(json!({
                        "type": "FactSet",
                        "facts": by_rule.iter().map(|(rule, severity, n)| json!({
                            "title": format!("{} ({severity})", rule_title(rule)),
                            "value": format!("[{n}]({})", links.rule(rule)),
                        })).collect::<Vec<_>>(),
                    }));
                    let names: Vec<String> = events.iter().map(who).collect();
                    body.push(json!({"type": "TextBlock", "wrap": true, "isSubtle": true, "text": format!("Among them: {}", names.join(", "))}));
                }
            }
            body.push(json!({"type": "TextBlock", "text": tenant_line, "isSubtle": true, "wrap": true, "separator": true}));
            let open = match summary {
                Some((_, [(rule, _, _), ..])) => links.rule(rule),
                _ => link(first),
            };
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
                        "actions": [{"type": "Action.OpenUrl", "title": "Open in mfa-auditor", "url": open}],
                    },
                }],
            })
        }
    }
}

/// One tenant's webhook worker: delivers that tenant's outbox rows only (each tenant's
/// `Alerting` runs its own).
pub struct Worker {
    sinks: Vec<Sink>,
    store: Arc<Store>,
    metrics: AlertingMetrics,
    links: Links,
    tenant: TenantRef,
    http: reqwest::Client,
}

impl Worker {
    pub fn new(
        sinks: Vec<Sink>,
        store: Arc<Store>,
        metrics: AlertingMetrics,
        links: Links,
        tenant: TenantRef,
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
            tenant,
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
            self.count_pending().await;
            let until = next_retry.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep_until(until) => {}
                _ = super::stopped(&mut stop) => return,
            }
        }
    }

    async fn count_pending(&self) {
        let tenant = self.tenant.id.clone();
        match off_async(&self.store, move |s| s.outbox_counts_of(&tenant)).await {
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
        let name = self.sinks[i].name.clone();
        let outbox = |e: crate::state::StateError| {
            tracing::error!(webhook = %name, "outbox: {e}");
            Some(Instant::now() + BACKOFF_FIRST)
        };
        let tenant = self.tenant.id.clone();
        loop {
            let (pending, of) = (name.clone(), tenant.clone());
            let events = match off_async(&self.store, move |s| {
                s.outbox_pending(&of, &pending, 1000)
            })
            .await
            {
                Ok(e) => e,
                Err(e) => return outbox(e),
            };
            let run = leading_group(&events);
            // An empty queue: drained, nothing to retry.
            let first = run.first()?;
            let (pending, of, audit_id, kind) =
                (name.clone(), tenant.clone(), first.audit_id, first.kind);
            let by_rule = match off_async(&self.store, move |s| {
                s.outbox_group(&of, &pending, audit_id, kind)
            })
            .await
            {
                Ok(g) => g,
                Err(e) => return outbox(e),
            };
            let sink = &self.sinks[i];
            for message in plan(sink.format, run, &by_rule, sink.batch_above) {
                if *stop.borrow() {
                    return None;
                }
                let sink = &self.sinks[i];
                let body = render(sink.format, &message, &self.links, &self.tenant);
                let sent = send(&self.http, sink, &body).await;
                let ids: Vec<i64> = match &message {
                    Message::Findings(e) | Message::Summary { examples: e, .. } => {
                        e.iter().map(|e| e.id).collect()
                    }
                };
                let sink = &mut self.sinks[i];
                let Err(e) = sent else {
                    self.metrics
                        .webhook_messages
                        .with_label_values(&[&name, "success"])
                        .inc();
                    sink.backoff = BACKOFF_FIRST;
                    sink.retry_at = None;
                    let removed = match message {
                        Message::Findings(_) => {
                            off_async(&self.store, move |s| s.outbox_delivered(&ids)).await
                        }
                        Message::Summary { .. } => {
                            let (pending, of, audit_id, kind) =
                                (name.clone(), tenant.clone(), first.audit_id, first.kind);
                            off_async(&self.store, move |s| {
                                s.outbox_delivered_group(&of, &pending, audit_id, kind)
                                    .map(|_| ())
                            })
                            .await
                        }
                    };
                    if let Err(e) = removed {
                        return outbox(e);
                    }
                    continue;
                };
                self.metrics
                    .webhook_messages
                    .with_label_values(&[&name, "failure"])
                    .inc();
                let wait = e.retry_after.map_or(sink.backoff, |r| r.max(sink.backoff));
                let at = Instant::now() + wait;
                tracing::warn!(webhook = %name, events = ids.len(), retry_in = ?wait, "webhook delivery failed: {}", e.reason);
                sink.retry_at = Some(at);
                sink.backoff = (sink.backoff * 2).min(BACKOFF_CAP);
                let e = e.reason;
                if let Err(e) = off_async(&self.store, move |s| s.outbox_failed(&ids, &e)).await {
                    tracing::error!(webhook = %name, "outbox: {e}");
                }
                return Some(at);
            }
        }
    }
}

/// A failed delivery: why, and how long the receiver asked us to wait (`Retry-After`).
struct Failed {
    reason: String,
    retry_after: Option<Duration>,
}

/// Posts one message; the URL never appears in the error.
async fn send(http: &reqwest::Client, sink: &Sink, body: &Value) -> Result<(), Failed> {
    let resp = http
        .post(sink.url.expose())
        .timeout(sink.timeout)
        .json(body)
        .send()
        .await
        .map_err(|e| Failed {
            reason: super::request_error(e),
            retry_after: None,
        })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    // Slack and Teams answer 429 with Retry-After (seconds, or an HTTP date): as Graph does.
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::graph::retry::parse_retry_after)
        .map(|d| d.min(BACKOFF_CAP));
    let text = resp.text().await.unwrap_or_default();
    Err(Failed {
        reason: format!(
            "HTTP {status}: {}",
            text.chars().take(200).collect::<String>().trim()
        ),
        retry_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t1() -> TenantRef {
        TenantRef::new("t1", "t1")
    }

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

    /// A detection of the watcher's run 7, as record_watch queues it.
    fn detection_event(id: i64, kind: EventKind, state: &str, upn: &str) -> OutboxEvent {
        OutboxEvent {
            audit_id: -7,
            rule: state.into(),
            subject: format!("0000-{upn}"),
            user_principal_name: Some(upn.into()),
            severity: "high".into(),
            detail: format!("{upn}: 5 MFA failures (500121) and no sign-in since"),
            remediation: format!(
                "New-MgUserAuthenticationTemporaryAccessPassMethod -UserId '{upn}' -BodyParameter @{{isUsableOnce=$true; lifetimeInMinutes=60}} # a_b <x>"
            ),
            ..event(id, -7, kind, upn)
        }
    }

    #[test]
    fn the_watchers_detections_go_one_message_each_with_the_command_verbatim() {
        let links = Links::new(Url::parse("http://127.0.0.1:9717").expect("url"));
        let run: Vec<OutboxEvent> = ["ann", "bob", "cy"]
            .iter()
            .enumerate()
            .map(|(i, u)| detection_event(i as i64, EventKind::New, "locked-out", u))
            .collect();
        let by_rule = [("locked-out".to_string(), "high".to_string(), 3)];
        for format in [
            WebhookFormat::Generic,
            WebhookFormat::Slack,
            WebhookFormat::Teams,
        ] {
            assert_eq!(
                sizes(&plan(format, &run, &by_rule, 1)),
                vec!["1", "1", "1"],
                "{format:?}: above batch_above, still one message per detection"
            );
        }
        let one = Message::Findings(&run[1..2]);
        let command = run[1].remediation.as_str();

        let generic = render(WebhookFormat::Generic, &one, &links, &t1());
        assert_eq!(generic["origin"], "watcher");
        assert_eq!(generic["watch_run_id"], 7);
        assert!(generic.get("audit_id").is_none(), "{generic}");
        assert_eq!(generic["findings"][0]["rule"], "locked-out");
        assert_eq!(generic["findings"][0]["title"], "User locked out of MFA");
        assert_eq!(generic["findings"][0]["remediation"], command);
        assert_eq!(
            generic["findings"][0]["url"],
            "http://127.0.0.1:9717/users/bob"
        );

        let slack = render(WebhookFormat::Slack, &one, &links, &t1());
        let text = slack["text"].as_str().expect("text");
        assert!(
            text.starts_with("*Detected: User locked out of MFA (high) for bob*"),
            "{text}"
        );
        let escaped = command.replace('<', "&lt;").replace('>', "&gt;");
        assert!(
            text.ends_with(&format!("_Way back in:_\n```{escaped}```")),
            "{text}"
        );

        let teams = render(WebhookFormat::Teams, &one, &links, &t1());
        let body = &teams["attachments"][0]["content"]["body"];
        let blocks = body.as_array().expect("body");
        let code = blocks
            .iter()
            .find(|b| b["type"] == "RichTextBlock")
            .expect("the command block");
        assert_eq!(code["inlines"][0]["text"], command);
        assert_eq!(code["inlines"][0]["fontType"], "Monospace");
        assert_eq!(
            blocks[0]["text"],
            "Detected: User locked out of MFA (high) for bob"
        );

        // Resolved: no command; each state and security-info has its own title.
        let resolved = [detection_event(
            9,
            EventKind::Resolved,
            "mfa-prompt-bombing",
            "cy",
        )];
        let slack = render(
            WebhookFormat::Slack,
            &Message::Findings(&resolved),
            &links,
            &t1(),
        );
        let text = slack["text"].as_str().expect("text");
        assert!(
            text.starts_with("*Resolved: MFA prompt bombing (high) for cy*"),
            "{text}"
        );
        assert!(!text.contains("```"), "{text}");
        for (rule, title) in [
            ("mfa-fraud-reported", "User reported an MFA prompt as fraud"),
            ("registration-blocked", "User blocked at MFA registration"),
            ("security-info", "Security info changed"),
        ] {
            let e = [detection_event(1, EventKind::New, rule, "dee")];
            let teams = render(WebhookFormat::Teams, &Message::Findings(&e), &links, &t1());
            assert_eq!(
                teams["attachments"][0]["content"]["body"][0]["text"],
                format!("Detected: {title} (high) for dee")
            );
        }
    }

    fn sizes(messages: &[Message]) -> Vec<String> {
        messages
            .iter()
            .map(|m| match m {
                Message::Findings(e) => e.len().to_string(),
                Message::Summary {
                    total, examples, ..
                } => format!("summary {total} ({})", examples.len()),
            })
            .collect()
    }

    #[test]
    fn a_group_goes_one_by_one_up_to_batch_above_then_in_batches_or_one_summary() {
        let mut events: Vec<OutboxEvent> =
            (0..3).map(|i| event(i, 1, EventKind::New, "a")).collect();
        events.extend((3..253).map(|i| event(i, 2, EventKind::New, "b")));
        let run = leading_group(&events);
        assert_eq!(run.len(), 3, "the first audit's new findings");
        let small = [("no-backup-method".to_string(), "medium".to_string(), 3)];
        for format in [
            WebhookFormat::Generic,
            WebhookFormat::Slack,
            WebhookFormat::Teams,
        ] {
            assert_eq!(sizes(&plan(format, run, &small, 10)), ["1", "1", "1"]);
        }
        let run = leading_group(&events[3..]);
        assert_eq!(run.len(), 250);
        // The whole group may be larger than what was fetched of it: its counts decide.
        let large = [
            ("no-backup-method".to_string(), "medium".to_string(), 900),
            ("phone-only".to_string(), "medium".to_string(), 100),
        ];
        let generic = plan(WebhookFormat::Generic, run, &large, 10);
        assert_eq!(sizes(&generic), ["100", "100", "50"]);
        let ids: Vec<i64> = generic
            .iter()
            .flat_map(|m| match m {
                Message::Findings(e) => e.iter().map(|e| e.id).collect::<Vec<_>>(),
                Message::Summary { .. } => vec![],
            })
            .collect();
        assert_eq!(
            ids,
            (3..253).collect::<Vec<_>>(),
            "every event once, in order"
        );
        assert_eq!(
            sizes(&plan(WebhookFormat::Slack, run, &large, 10)),
            ["summary 1000 (10)"]
        );
        assert_eq!(
            sizes(&plan(WebhookFormat::Teams, run, &large, 10)),
            ["summary 1000 (10)"]
        );
    }

    #[test]
    fn each_format_names_the_user_the_rule_and_links_the_finding() {
        let links = Links::new(Url::parse("http://127.0.0.1:9717").expect("url"));
        let one = [event(7, 3, EventKind::New, "ann")];
        let one = Message::Findings(&one);
        let g = render(WebhookFormat::Generic, &one, &links, &t1());
        assert_eq!(g["event"], "new");
        assert_eq!(g["findings"][0]["id"], 7);
        assert_eq!(g["findings"][0]["user_principal_name"], "ann@contoso.com");
        assert_eq!(
            g["findings"][0]["url"],
            "http://127.0.0.1:9717/users/ann@contoso.com"
        );
        let s = render(WebhookFormat::Slack, &one, &links, &t1());
        let text = s["text"].as_str().expect("text");
        assert!(
            text.starts_with("*Open: User has no backup MFA method (medium) for ann@contoso.com*"),
            "{text}"
        );
        assert!(
            text.contains("<http://127.0.0.1:9717/users/ann@contoso.com|ann@contoso.com>"),
            "{text}"
        );
        assert!(
            text.contains("one family: &lt;phone&gt;"),
            "Slack's control characters are escaped: {text}"
        );
        assert!(text.contains("_Fix:_ register a passkey"), "{text}");
        let t = render(WebhookFormat::Teams, &one, &links, &t1());
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
        let g = render(
            WebhookFormat::Generic,
            &Message::Findings(&resolved),
            &links,
            &t1(),
        );
        assert_eq!(g["event"], "resolved");
        assert_eq!(g["findings"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            g["findings"][1]["url"],
            "http://127.0.0.1:9717/api/v1/findings?rule=no-backup-method"
        );
    }

    #[test]
    fn a_summary_counts_by_rule_links_each_rule_and_names_a_few_users() {
        let links = Links::new(Url::parse("http://127.0.0.1:9717").expect("url"));
        let examples: Vec<OutboxEvent> = ["ann", "bob"]
            .iter()
            .enumerate()
            .map(|(i, u)| event(i as i64, 5, EventKind::New, u))
            .collect();
        let by_rule = [
            ("no-backup-method".to_string(), "medium".to_string(), 4120),
            ("no-mfa-method".to_string(), "high".to_string(), 37),
        ];
        let m = Message::Summary {
            total: 4157,
            by_rule: &by_rule,
            examples: &examples,
        };
        let s = render(WebhookFormat::Slack, &m, &links, &t1());
        let text = s["text"].as_str().expect("text");
        assert!(text.starts_with("*4157 new MFA findings in t1*"), "{text}");
        assert!(text.contains("• 4120 × <http://127.0.0.1:9717/api/v1/findings?rule=no-backup-method|User has no backup MFA method> (medium)"), "{text}");
        assert!(text.contains("• 37 × <http://127.0.0.1:9717/api/v1/findings?rule=no-mfa-method|User has no MFA method> (high)"), "{text}");
        assert!(
            text.ends_with("Among them: ann@contoso.com, bob@contoso.com"),
            "{text}"
        );
        let t = render(WebhookFormat::Teams, &m, &links, &t1());
        let content = &t["attachments"][0]["content"];
        assert_eq!(content["body"][0]["text"], "4157 new MFA findings in t1");
        assert_eq!(
            content["body"][1]["facts"][0]["value"],
            "[4120](http://127.0.0.1:9717/api/v1/findings?rule=no-backup-method)"
        );
        assert_eq!(
            content["actions"][0]["url"],
            "http://127.0.0.1:9717/api/v1/findings?rule=no-backup-method"
        );
        let g = render(WebhookFormat::Generic, &m, &links, &t1());
        assert_eq!(g["summary"]["total"], 4157);
        assert_eq!(g["summary"]["by_rule"][1]["count"], 37);
    }

    #[test]
    fn every_format_names_the_tenant_by_name_and_id_and_links_to_it() {
        let contoso = TenantRef::new("0f3c5a8e-1111-4222-8333-444455556666", "contoso");
        let links = Links::for_tenant(
            Url::parse("http://127.0.0.1:9717").expect("url"),
            &contoso.name,
        );
        let mut one = event(7, 3, EventKind::New, "ann");
        one.tenant = contoso.id.clone();
        let one = [one];
        let m = Message::Findings(&one);
        let g = render(WebhookFormat::Generic, &m, &links, &contoso);
        assert_eq!(g["tenant"], contoso.id.as_str());
        assert_eq!(g["tenant_name"], "contoso");
        assert_eq!(
            g["findings"][0]["url"],
            "http://127.0.0.1:9717/users/ann@contoso.com?tenant=contoso"
        );
        let s = render(WebhookFormat::Slack, &m, &links, &contoso);
        let text = s["text"].as_str().expect("text");
        assert!(
            text.contains("\n_Tenant: contoso (0f3c5a8e-1111-4222-8333-444455556666)_\n"),
            "{text}"
        );
        let t = render(WebhookFormat::Teams, &m, &links, &contoso);
        let body = t["attachments"][0]["content"]["body"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            body.iter()
                .any(|b| b["text"] == "Tenant: contoso (0f3c5a8e-1111-4222-8333-444455556666)"),
            "{body:?}"
        );
        // A summary is headed by the tenant's name.
        let by_rule = [("no-backup-method".to_string(), "medium".to_string(), 40)];
        let sum = Message::Summary {
            total: 40,
            by_rule: &by_rule,
            examples: &one,
        };
        let s = render(WebhookFormat::Slack, &sum, &links, &contoso);
        let text = s["text"].as_str().expect("text");
        assert!(
            text.starts_with("*40 new MFA findings in contoso*"),
            "{text}"
        );
        assert!(
            text.contains("findings?rule=no-backup-method&tenant=contoso|"),
            "{text}"
        );
    }

    /// A receiver that answers 429 with `Retry-After: 3` once, then 200; it keeps when each
    /// request came and what it held.
    #[derive(Default)]
    struct Receiver {
        got: std::sync::Mutex<Vec<(std::time::Instant, Value)>>,
    }

    async fn receive(
        axum::extract::State(r): axum::extract::State<Arc<Receiver>>,
        axum::Json(body): axum::Json<Value>,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let mut got = r.got.lock().unwrap_or_else(|e| e.into_inner());
        got.push((std::time::Instant::now(), body));
        if got.len() == 1 {
            (
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "3")],
                "slow down",
            )
                .into_response()
        } else {
            axum::http::StatusCode::OK.into_response()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_worker_honours_retry_after_and_empties_the_outbox_in_order() {
        let r = Arc::new(Receiver::default());
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(r.clone());
        let addr = crate::alerting::serve_on_loopback(app).await;

        let store = Arc::new(Store::in_memory().expect("store"));
        let subscribers = [crate::state::Subscriber {
            webhook: "w".into(),
            min_severity: crate::evaluate::Severity::Info,
        }];
        let finding = |subject: &str| crate::evaluate::Finding {
            rule: "no-backup-method",
            severity: crate::evaluate::Severity::Medium,
            subject: subject.into(),
            user_id: None,
            user_principal_name: Some(format!("{subject}@contoso.com")),
            detail: "d".into(),
            remediation: "r".into(),
        };
        let now = chrono::Utc::now();
        let report = crate::report::Report {
            tenant: "t1".into(),
            complete: true,
            started_at: now,
            finished_at: now,
            users_in_scope: 2,
            findings: vec![finding("ann"), finding("bob")],
            excepted: vec![],
            skipped: vec![],
            incomplete_reasons: vec![],
            summary: Default::default(),
            posture: Default::default(),
        };
        store.record_with(&report, 0, &subscribers).expect("record");

        let config: WebhookConfig =
            toml::from_str("name = \"w\"\nurl_env = \"X\"").expect("config");
        let url = Url::parse(&format!("http://{addr}/hook")).expect("url");
        let metrics = crate::metrics::Metrics::new("t1").alerting();
        let links = Links::new(Url::parse("http://127.0.0.1:9717").expect("url"));
        let worker = Worker::new(
            vec![Sink::new(&config, url, &metrics)],
            store.clone(),
            metrics.clone(),
            links,
            t1(),
        );
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(worker.run(Arc::new(Notify::new()), stop_rx));
        for _ in 0..100 {
            if store.outbox_counts().expect("counts").is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = stop.send(true);
        task.await.expect("the worker stops");
        let got = r.got.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let users: Vec<&str> = got
            .iter()
            .map(|(_, b)| {
                b["findings"][0]["user_principal_name"]
                    .as_str()
                    .unwrap_or("")
            })
            .collect();
        assert_eq!(
            users,
            ["ann@contoso.com", "ann@contoso.com", "bob@contoso.com"]
        );
        assert!(
            got[1].0 - got[0].0 >= Duration::from_secs(3),
            "Retry-After is honoured: {:?}",
            got[1].0 - got[0].0
        );
        assert_eq!(
            metrics
                .webhook_messages
                .with_label_values(&["w", "failure"])
                .get(),
            1
        );
        assert_eq!(
            metrics
                .webhook_messages
                .with_label_values(&["w", "success"])
                .get(),
            2
        );
        assert!(store.outbox_counts().expect("counts").is_empty());
    }
}
