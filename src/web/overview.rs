//! `/`: the tenant at a glance, for the identity team and the helpdesk. Read from aggregates
//! only (the counts kept per audit, the latest audit runs, open detections by an index, the
//! outbox's counts): no scan of users or findings, so the page costs the same at 1,000,000
//! users as at 100. It replaces the old status page and keeps all it showed: the last audit and
//! why it was incomplete, the rules it skipped, the watcher, where alerts go.

use std::collections::BTreeMap;

use askama::Template;
use axum::response::Response;

use super::{rfc3339, when, Chrome, Timing, WebError};
use crate::daemon::Shared;
use crate::evaluate::Severity;
use crate::state::{AuditRun, DetectionFilter, FindingCount, StoredDetection};

/// Audits the trend shows, newest first in the table, oldest left in the chart.
pub const TREND_AUDITS: usize = 30;
/// Open detections listed under "Locked out now" (the rest through the API).
pub const LOCKED_OUT_SHOWN: usize = 50;

/// One posture card.
pub struct Card {
    pub metric: &'static str,
    pub label: &'static str,
    pub value: i64,
    pub note: String,
}

pub struct SeverityRow {
    pub severity: &'static str,
    pub open: i64,
}

pub struct RuleRow {
    pub id: String,
    /// The rule's page; `None` for a rule no longer in the catalogue (its findings outlive it).
    pub href: Option<String>,
    pub title: String,
    pub severity: String,
    pub open: i64,
    pub excepted: i64,
    pub resolved: i64,
}

pub struct TrendRow {
    pub id: i64,
    pub started: String,
    pub started_at: String,
    pub complete: bool,
    pub findings: i64,
    pub excepted: i64,
    pub users: i64,
}

/// One bar of the trend chart, placed in Rust (no inline style: the CSP forbids it).
pub struct Bar {
    pub x: String,
    pub y: String,
    pub width: String,
    pub height: String,
    pub class: &'static str,
    pub title: String,
}

pub struct DetectionRow {
    pub upn: String,
    pub href: String,
    pub state: String,
    pub since: String,
    pub since_at: String,
    pub codes: String,
}

pub struct LastAudit {
    pub id: i64,
    pub finished: String,
    pub finished_at: String,
    pub complete: bool,
    pub reasons: Vec<String>,
    pub users: i64,
    pub findings: i64,
    pub excepted: i64,
    pub graph_requests: i64,
    /// Scheduled audits skipped because one was still running (since the daemon started).
    pub skipped_runs: u64,
}

pub struct Skipped {
    pub finished: String,
    pub finished_at: String,
    pub kept_open: i64,
    /// Rule id, its page, why it was skipped.
    pub rules: Vec<(String, String, String)>,
}

pub struct WatchRun {
    pub at: String,
    pub at_rfc: String,
    pub opened: i64,
    pub updated: i64,
    pub resolved: i64,
    pub security_events: i64,
    pub queued: i64,
}

pub struct AlertmanagerView {
    /// Redacted: userinfo in the URL is a credential.
    pub url: String,
    pub min_severity: String,
    pub alerts: i64,
    pub pushes: u64,
    pub failed: u64,
}

pub struct WebhookView {
    pub name: String,
    pub format: String,
    pub min_severity: String,
    pub queued: i64,
    pub failed: u64,
}

#[derive(Template)]
#[template(path = "overview.html")]
pub struct Overview {
    pub chrome: Chrome,
    pub cards: Vec<Card>,
    pub by_severity: Vec<SeverityRow>,
    pub by_rule: Vec<RuleRow>,
    pub trend: Vec<TrendRow>,
    pub bars: Vec<Bar>,
    pub chart_width: u32,
    pub chart_height: u32,
    pub detection_states: Vec<(String, i64)>,
    pub detections: Vec<DetectionRow>,
    pub detections_total: u64,
    pub last: Option<LastAudit>,
    pub skipped: Option<Skipped>,
    pub watcher_enabled: bool,
    pub watch_run: Option<WatchRun>,
    pub alertmanager: Option<AlertmanagerView>,
    pub webhooks: Vec<WebhookView>,
}

impl Overview {
    pub fn alerting_configured(&self) -> bool {
        self.alertmanager.is_some() || !self.webhooks.is_empty()
    }
}

/// `GET /`.
pub async fn page(super::Tenant(s): super::Tenant) -> Result<Response, WebError> {
    super::page(&s, build).await
}

fn build(s: &Shared, t: &mut Timing) -> Result<Overview, WebError> {
    let config = s.config();
    let tenant = config.tenant.tenant_id.as_str();
    let counts = t.db(|| s.store.finding_counts(tenant))?;
    let runs = t.db(|| s.store.audits(tenant, TREND_AUDITS))?;
    let last_complete = t.db(|| s.store.last_complete(tenant))?;
    let locked_out = t.db(|| s.store.locked_out_users(tenant))?;
    let detection_states = t.db(|| s.store.detection_counts(tenant))?;
    let filter = DetectionFilter {
        state: None,
        open_only: true,
        user: None,
    };
    let open = t.db(|| {
        s.store
            .detections_page(tenant, &filter, None, LOCKED_OUT_SHOWN)
    })?;
    let watch_run = t.db(|| s.store.last_watch_run(tenant))?;
    let queued = if config.alerting.webhook.is_empty() {
        vec![]
    } else {
        t.db(|| s.store.outbox_counts())?
    };

    let (by_severity, by_rule, open_total, excepted_total) = tally(&counts);
    let users = last_complete.as_ref().map_or(0, |r| r.users_in_scope);
    let cards = vec![
        Card {
            metric: "users-in-scope",
            label: "Users in scope",
            value: users,
            note: match &last_complete {
                Some(r) => format!("last complete audit {}", when(r.finished_at)),
                None => "no complete audit yet".into(),
            },
        },
        Card {
            metric: "open-findings",
            label: "Open findings",
            value: open_total,
            note: "not excepted".into(),
        },
        Card {
            metric: "excepted",
            label: "Excepted",
            value: excepted_total,
            note: "open, under an exception".into(),
        },
        Card {
            metric: "locked-out",
            label: "Locked out now",
            value: locked_out,
            note: "users with an open lockout".into(),
        },
    ];
    let (trend, bars) = trend(&runs);
    let summary = s.last_audit();
    let last = runs.first().map(|r| LastAudit {
        id: r.id,
        finished: when(r.finished_at),
        finished_at: rfc3339(r.finished_at),
        complete: r.complete,
        reasons: reasons(r, summary.as_deref()),
        users: r.users_in_scope,
        findings: r.findings,
        excepted: r.excepted,
        graph_requests: r.graph_requests,
        skipped_runs: s.skipped_runs.load(std::sync::atomic::Ordering::Relaxed),
    });
    let skipped = last_complete
        .as_ref()
        .filter(|r| !r.skipped.is_empty())
        .map(|r| Skipped {
            finished: when(r.finished_at),
            finished_at: rfc3339(r.finished_at),
            kept_open: r.kept_open,
            rules: r
                .skipped
                .iter()
                .map(|k| (k.rule.clone(), rule_href(&k.rule), k.reason.clone()))
                .collect(),
        });
    let m = s.metrics.alerting();
    let alertmanager = config.alerting.alertmanager.as_ref().map(|am| {
        let pushes = |r: &str| m.alertmanager_pushes.with_label_values(&[r]).get();
        AlertmanagerView {
            url: crate::alerting::redact_url(&am.url),
            min_severity: am.min_severity.to_string(),
            alerts: m.alertmanager_alerts.get(),
            pushes: pushes("success") + pushes("failure"),
            failed: pushes("failure"),
        }
    });
    let webhooks = config
        .alerting
        .webhook
        .iter()
        .map(|w| WebhookView {
            name: w.name.clone(),
            format: format!("{:?}", w.format).to_lowercase(),
            min_severity: w.min_severity.to_string(),
            queued: queued
                .iter()
                .find(|(name, _)| *name == w.name)
                .map_or(0, |q| q.1),
            failed: m
                .webhook_messages
                .with_label_values(&[&w.name, "failure"])
                .get(),
        })
        .collect();
    Ok(Overview {
        chrome: Chrome::new(s, "Overview", "overview"),
        cards,
        by_severity,
        by_rule,
        trend,
        bars,
        chart_width: CHART_WIDTH,
        chart_height: CHART_HEIGHT,
        detection_states: detection_states
            .into_iter()
            .map(|(state, n)| (state.as_str().to_string(), n))
            .collect(),
        detections: open.items.iter().map(detection_row).collect(),
        detections_total: open.total,
        last,
        skipped,
        watcher_enabled: config.watcher.enabled,
        watch_run: watch_run.map(|r| WatchRun {
            at: when(r.at),
            at_rfc: rfc3339(r.at),
            opened: r.opened,
            updated: r.updated,
            resolved: r.resolved,
            security_events: r.security_events,
            queued: r.queued,
        }),
        alertmanager,
        webhooks,
    })
}

/// Why the run was incomplete: the reason it stored, or the reasons the daemon kept in memory
/// for the same run.
fn reasons(r: &AuditRun, summary: Option<&crate::daemon::AuditSummary>) -> Vec<String> {
    if r.complete {
        return vec![];
    }
    match &r.reason {
        Some(reason) if !reason.is_empty() => vec![reason.clone()],
        _ => summary
            .filter(|a| !a.complete && a.finished_at == r.finished_at)
            .map(|a| a.incomplete_reasons.clone())
            .unwrap_or_default(),
    }
}

/// Open findings by severity (most severe first) and by rule (most severe, then most open
/// first), with the open and excepted totals; excepted findings are counted apart.
pub fn tally(counts: &[FindingCount]) -> (Vec<SeverityRow>, Vec<RuleRow>, i64, i64) {
    let mut by_sev: BTreeMap<String, i64> = BTreeMap::new();
    let mut rules: BTreeMap<String, RuleRow> = BTreeMap::new();
    let (mut open, mut excepted) = (0, 0);
    for c in counts {
        let row = rules.entry(c.rule.clone()).or_insert_with(|| RuleRow {
            id: c.rule.clone(),
            href: super::rules::rule(&c.rule).map(|_| rule_href(&c.rule)),
            title: super::rules::rule(&c.rule)
                .map_or_else(|| c.rule.clone(), |r| r.title.to_string()),
            severity: c.severity.clone(),
            open: 0,
            excepted: 0,
            resolved: 0,
        });
        row.resolved += c.resolved;
        if c.excepted {
            row.excepted += c.open;
            excepted += c.open;
        } else {
            row.open += c.open;
            open += c.open;
            *by_sev.entry(c.severity.clone()).or_default() += c.open;
        }
    }
    let by_severity = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ]
    .into_iter()
    .filter_map(|sev| {
        let n = by_sev.get(sev.as_str()).copied().unwrap_or(0);
        (n > 0).then_some(SeverityRow {
            severity: sev.as_str(),
            open: n,
        })
    })
    .collect();
    let rank = |s: &str| s.parse::<Severity>().map_or(-1, |s| s as i64);
    let mut by_rule: Vec<RuleRow> = rules
        .into_values()
        .filter(|r| r.open > 0 || r.excepted > 0)
        .collect();
    by_rule.sort_by(|a, b| {
        rank(&b.severity)
            .cmp(&rank(&a.severity))
            .then(b.open.cmp(&a.open))
            .then(a.id.cmp(&b.id))
    });
    (by_severity, by_rule, open, excepted)
}

/// A rule's page (its id is the catalogue's, but a stored one is not trusted).
pub fn rule_href(id: &str) -> String {
    format!("/rules/{}", super::encode(id))
}

const CHART_WIDTH: u32 = 600;
const CHART_HEIGHT: u32 = 120;

/// The trend table (newest first) and the chart's bars (oldest left), scaled to the highest.
pub fn trend(runs: &[AuditRun]) -> (Vec<TrendRow>, Vec<Bar>) {
    let rows = runs
        .iter()
        .take(TREND_AUDITS)
        .map(|r| TrendRow {
            id: r.id,
            started: when(r.started_at),
            started_at: rfc3339(r.started_at),
            complete: r.complete,
            findings: r.findings,
            excepted: r.excepted,
            users: r.users_in_scope,
        })
        .collect::<Vec<_>>();
    // A slot per audit the chart can hold, the newest at the right edge: a young daemon's
    // few audits are bars, not slabs.
    let max = rows.iter().map(|r| r.findings).max().unwrap_or(0).max(1) as f64;
    let slot = f64::from(CHART_WIDTH) / TREND_AUDITS as f64;
    let skip = (TREND_AUDITS - rows.len()) as f64;
    let usable = f64::from(CHART_HEIGHT) - 2.0;
    let bars = rows
        .iter()
        .rev()
        .enumerate()
        .map(|(i, r)| {
            let h = (r.findings.max(0) as f64 / max * usable).max(1.0);
            Bar {
                x: format!("{:.1}", (skip + i as f64) * slot + slot * 0.1),
                y: format!("{:.1}", f64::from(CHART_HEIGHT) - h),
                width: format!("{:.1}", slot * 0.8),
                height: format!("{h:.1}"),
                class: if r.complete { "bar" } else { "bar incomplete" },
                title: format!(
                    "audit {} ({}): {} open findings{}",
                    r.id,
                    r.started,
                    r.findings,
                    if r.complete { "" } else { ", incomplete" }
                ),
            }
        })
        .collect();
    (rows, bars)
}

fn detection_row(d: &StoredDetection) -> DetectionRow {
    let key = if d.upn.is_empty() { &d.user } else { &d.upn };
    DetectionRow {
        upn: key.clone(),
        href: format!("/users/{}", super::encode(key)),
        state: d.state.clone(),
        since: when(d.opened_at),
        since_at: rfc3339(d.opened_at),
        codes: d
            .codes
            .iter()
            .map(|(code, n)| format!("{code} ×{n}"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

#[cfg(test)]
mod tests;
