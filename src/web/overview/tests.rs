//! The overview's pure parts: tallies, the trend, and hostile strings escaped.

use askama::Template;
use chrono::{TimeZone, Utc};

use super::*;
use crate::state::SkippedRule;

const HOSTILE: &str = "<script>alert(1)</script>\"'&ann_contoso.com#EXT#@x.onmicrosoft.com";

fn chrome() -> Chrome {
    Chrome {
        tenant: HOSTILE.into(),
        tenant_param: String::new(),
        all_tenants: false,
        title: "Overview".into(),
        nav: "overview",
        query: HOSTILE.into(),
        version: "test",
    }
}

fn count(rule: &str, severity: &str, excepted: bool, open: i64) -> FindingCount {
    FindingCount {
        rule: rule.into(),
        severity: severity.into(),
        excepted,
        open,
        resolved: 1,
    }
}

fn run(id: i64, findings: i64, complete: bool) -> AuditRun {
    let t = Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap() + chrono::Duration::hours(id);
    AuditRun {
        id,
        tenant: "t".into(),
        started_at: t,
        finished_at: t + chrono::Duration::minutes(3),
        complete,
        reason: (!complete).then(|| HOSTILE.to_string()),
        users_in_scope: 10,
        findings,
        excepted: 1,
        graph_requests: 5,
        skipped: vec![SkippedRule {
            rule: "no-mfa-method".into(),
            reason: HOSTILE.into(),
        }],
        kept_open: 2,
    }
}

#[test]
fn tally_counts_excepted_apart_and_orders_by_severity() {
    let counts = [
        count("no-backup-method", "medium", false, 5),
        count("no-backup-method", "medium", true, 2),
        count("no-mfa-method", "high", false, 3),
        count("phone-only", "medium", false, 0),
        count("phone-only", "medium", true, 0),
    ];
    let (sev, rules, open, excepted) = tally(&counts);
    assert_eq!((open, excepted), (8, 2));
    let sev: Vec<_> = sev.iter().map(|r| (r.severity, r.open)).collect();
    assert_eq!(sev, [("high", 3), ("medium", 5)]);
    let rules: Vec<_> = rules
        .iter()
        .map(|r| (r.id.as_str(), r.open, r.excepted))
        .collect();
    assert_eq!(
        rules,
        [("no-mfa-method", 3, 0), ("no-backup-method", 5, 2)],
        "a rule with nothing open is left out"
    );
}

#[test]
fn a_rule_gone_from_the_catalogue_keeps_its_counts_but_links_no_page() {
    let (_, rules, open, _) = tally(&[
        count("no-backup-method", "medium", false, 2),
        count("retired-rule", "low", false, 4),
    ]);
    assert_eq!(open, 6);
    let links: Vec<_> = rules
        .iter()
        .map(|r| (r.id.as_str(), r.href.as_deref()))
        .collect();
    assert_eq!(
        links,
        [
            ("no-backup-method", Some("/rules/no-backup-method")),
            ("retired-rule", None)
        ]
    );
}

#[test]
fn trend_is_newest_first_in_the_table_and_oldest_left_in_the_chart() {
    let runs: Vec<_> = (1..=40)
        .rev()
        .map(|id| run(id, id * 10, id != 39))
        .collect();
    let (rows, bars) = trend(&runs);
    assert_eq!(rows.len(), TREND_AUDITS);
    assert_eq!(rows[0].id, 40);
    assert_eq!(bars.len(), TREND_AUDITS);
    assert!(bars[0].title.starts_with("audit 11 "), "{}", bars[0].title);
    assert!(bars[TREND_AUDITS - 1].title.starts_with("audit 40 "));
    assert_eq!(
        bars[TREND_AUDITS - 1].height,
        "118.0",
        "the highest fills the chart"
    );
    assert!(bars.iter().any(|b| b.class == "bar incomplete"));
    assert_eq!(bars[0].x, "2.0", "a full chart starts at the left edge");
    assert_eq!(trend(&[]).1.len(), 0);
    let (_, few) = trend(&runs[..2]);
    assert_eq!(few[1].x, "582.0", "the newest at the right edge");
}

#[test]
fn hostile_strings_are_escaped() {
    let (by_severity, by_rule, _, _) = tally(&[count(HOSTILE, "high", false, 1)]);
    let runs = [run(2, 3, false), run(1, 2, true)];
    let (trend, bars) = trend(&runs);
    let page = Overview {
        chrome: chrome(),
        cards: vec![Card {
            metric: "open-findings",
            label: "Open findings",
            value: 1,
            note: HOSTILE.into(),
        }],
        by_severity,
        by_rule,
        trend,
        bars,
        chart_width: 600,
        chart_height: 120,
        detection_states: vec![("locked-out".into(), 1)],
        detections: vec![DetectionRow {
            upn: HOSTILE.into(),
            href: format!("/users/{}", crate::web::encode(HOSTILE)),
            state: "locked-out".into(),
            since: "x".into(),
            since_at: "x".into(),
            codes: "50053 ×2".into(),
        }],
        detections_total: 1,
        last: Some(LastAudit {
            id: 2,
            finished: "x".into(),
            finished_at: "x".into(),
            complete: false,
            reasons: vec![HOSTILE.into()],
            users: 1,
            findings: 1,
            excepted: 0,
            graph_requests: 1,
            skipped_runs: 0,
        }),
        skipped: Some(Skipped {
            finished: "x".into(),
            finished_at: "x".into(),
            kept_open: 1,
            rules: vec![(HOSTILE.into(), rule_href(HOSTILE), HOSTILE.into())],
        }),
        watcher_enabled: true,
        watch_run: None,
        alertmanager: Some(AlertmanagerView {
            url: crate::alerting::redact_url("http://ops:hunter2@am.example:9093/"),
            min_severity: "high".into(),
            alerts: 1,
            pushes: 1,
            failed: 0,
        }),
        webhooks: vec![WebhookView {
            name: HOSTILE.into(),
            format: "slack".into(),
            min_severity: "high".into(),
            queued: 0,
            failed: 0,
        }],
    };
    let html = page.render().expect("renders");
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(!html.contains("\"'&ann"), "{html}");
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{html}"
    );
    assert!(html.contains("href=\"/rules/%3Cscript%3E"), "{html}");
    assert!(!html.contains("hunter2"), "{html}");
    assert!(html.contains("data-complete=\"false\""));
    assert!(html.contains("id=\"skipped-rules\""));
    assert!(html.contains("id=\"locked-out-users\""));
    assert!(html.contains("/users/%3Cscript%3E"), "{html}");
    assert!(
        !html.contains(" style="),
        "no inline style: the CSP forbids it"
    );
    assert_eq!(html.matches("<h1>").count(), 1);
}
