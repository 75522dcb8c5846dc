//! Publishing benchmark: what the daemon does with one audit of a large tenant after collection.
//! Recording it in the state store with two webhook subscribers (findings, outbox), reading the
//! open findings back, turning them into Alertmanager alerts (capped by `max_alerts`), and
//! planning the first audit's webhook messages; then a second audit that resolves a tenth.
//!
//! `cargo bench --bench publish` (100,000 and 600,000 open findings, about what a 1,000,000-user
//! tenant has) or `cargo bench --bench publish -- 100000`.

use std::time::Instant;

use chrono::{Duration, Utc};
use mfa_auditor::alerting::alertmanager::alerts_for;
use mfa_auditor::alerting::webhook::{leading_group, plan};
use mfa_auditor::alerting::{Links, WebhookFormat};
use mfa_auditor::evaluate::{Finding, Severity};
use mfa_auditor::report::{Report, Summary};
use mfa_auditor::state::{Store, Subscriber};

const RULES: [(&str, Severity); 4] = [
    ("no-backup-method", Severity::Medium),
    ("phone-only", Severity::Medium),
    ("no-mfa-method", Severity::High),
    ("weak-default-method", Severity::Low),
];

fn report(findings: usize, skip_every: usize) -> Report {
    let now = Utc::now();
    Report {
        tenant: "bench".into(),
        complete: true,
        started_at: now - Duration::seconds(60),
        finished_at: now,
        users_in_scope: findings * 10 / 6,
        findings: (0..findings)
            .filter(|i| skip_every == 0 || i % skip_every != 0)
            .map(|i| {
                let (rule, severity) = RULES[i % RULES.len()];
                Finding {
                    rule,
                    severity,
                    subject: format!("{:032x}", i as u128 * 0x9e37_79b9),
                    user_id: None,
                    user_principal_name: Some(format!("user{i}@contoso.onmicrosoft.com")),
                    detail: "Every MFA-capable method is in one recovery family: mobile phone."
                        .into(),
                    remediation: "Register a second method from another family.".into(),
                }
            })
            .collect(),
        excepted: vec![],
        skipped: vec![],
        incomplete_reasons: vec![],
        summary: Summary::default(),
        posture: Default::default(),
    }
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn bench(n: usize) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let store = Store::open(&dir.path().join("state.db")).unwrap_or_else(|e| panic!("{e}"));
    let subscribers = [
        Subscriber {
            webhook: "siem".into(),
            min_severity: Severity::Info,
        },
        Subscriber {
            webhook: "slack".into(),
            min_severity: Severity::High,
        },
    ];
    let first = report(n, 0);
    let t = Instant::now();
    store
        .record_with(&first, 0, &subscribers)
        .unwrap_or_else(|e| panic!("{e}"));
    let record = t.elapsed();
    let t = Instant::now();
    // What publishing reads back: the alerts to hold (the store sorts and caps) and each rule's
    // oldest open finding.
    let (open, total) = store
        .alertable("bench", Severity::Info, 10_000)
        .unwrap_or_else(|e| panic!("{e}"));
    let oldest = store
        .oldest_open_by_rule("bench")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!oldest.is_empty());
    let read = t.elapsed();
    let links =
        Links::new(url::Url::parse("http://127.0.0.1:9717/").unwrap_or_else(|e| panic!("{e}")));
    let t = Instant::now();
    let (alerts, _) = alerts_for(&open, "bench", Severity::Info, 10_000, &links);
    let dropped = total - alerts.len();
    let alerting = t.elapsed();
    let t = Instant::now();
    let queued = store
        .outbox_pending("siem", 1000)
        .unwrap_or_else(|e| panic!("{e}"));
    let group = store
        .outbox_group("siem", queued[0].audit_id, queued[0].kind)
        .unwrap_or_else(|e| panic!("{e}"));
    let messages = plan(WebhookFormat::Slack, leading_group(&queued), &group, 10).len();
    let planning = t.elapsed();
    let outbox: i64 = store
        .outbox_counts()
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|c| c.1)
        .sum();
    let second = report(n, 10);
    let t = Instant::now();
    let changes = store
        .record_with(&second, 0, &subscribers)
        .unwrap_or_else(|e| panic!("{e}"));
    let record2 = t.elapsed();
    println!(
        "{n:>7} open findings | record {:>6.2} s ({} outbox events) | read back {:>5.2} s | \
         alerts {:>5.2} s ({} kept, {} over max_alerts) | plan {:>5.3} s ({} Slack message for the audit) | \
         next audit {:>6.2} s ({} resolved) | peak RSS {:.0} MiB",
        record.as_secs_f64(),
        outbox,
        read.as_secs_f64(),
        alerting.as_secs_f64(),
        alerts.len(),
        dropped,
        planning.as_secs_f64(),
        messages,
        record2.as_secs_f64(),
        changes.resolved,
        peak_rss_mib()
    );
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![100_000, 600_000]
    } else {
        sizes
    };
    for n in sizes {
        bench(n);
    }
}
