//! Publishing benchmark: what the daemon does with one audit of a large tenant after collection.
//! Recording it in the state store with two webhook subscribers (findings, outbox), reading the
//! open findings back, turning them into Alertmanager alerts (capped by `max_alerts`), and
//! planning the first audit's webhook messages; then a second audit that resolves a tenth.
//!
//! Then the findings API's store side: p50/p99 of one page (100 findings) at a deep cursor
//! with each filter, of `page=N` at the same depth, of a user's findings, and of pages read
//! while the next audit is being recorded (read-only connections do not wait for it).
//!
//! `cargo bench --bench publish` (100,000 and 600,000 open findings, about what a 1,000,000-user
//! tenant has) or `cargo bench --bench publish -- 100000`.

mod common;

use std::time::Instant;

use chrono::{Duration, Utc};
use mfa_auditor::alerting::alertmanager::alerts_for;
use mfa_auditor::alerting::webhook::{leading_group, plan};
use mfa_auditor::alerting::{Links, TenantRef, WebhookFormat};
use mfa_auditor::evaluate::{Finding, Severity};
use mfa_auditor::report::{Report, Summary};
use mfa_auditor::state::{Cursor, FindingFilter, StateFilter, Store, Subscriber};

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
    let (alerts, _) = alerts_for(
        &open,
        &TenantRef::new("bench", "bench"),
        Severity::Info,
        10_000,
        &links,
    );
    let dropped = total - alerts.len();
    let alerting = t.elapsed();
    let t = Instant::now();
    let queued = store
        .outbox_pending("bench", "siem", 1000)
        .unwrap_or_else(|e| panic!("{e}"));
    let group = store
        .outbox_group("bench", "siem", queued[0].audit_id, queued[0].kind)
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
    // Pages read while the second audit is recorded, from another thread.
    let (changes, record2, during) = std::thread::scope(|scope| {
        let recording = scope.spawn(|| {
            let t = Instant::now();
            let changes = store
                .record_with(&second, 0, &subscribers)
                .unwrap_or_else(|e| panic!("{e}"));
            (changes, t.elapsed())
        });
        let mut during = vec![];
        let filter = FindingFilter::default();
        let mut cursor: Option<Cursor> = None;
        while !recording.is_finished() {
            let t = Instant::now();
            let page = store
                .findings_page("bench", &filter, cursor.as_ref(), 100)
                .unwrap_or_else(|e| panic!("{e}"));
            during.push(t.elapsed().as_secs_f64());
            cursor = page.next_cursor.and_then(|c| Cursor::decode(&c).ok());
        }
        let (changes, record2) = recording.join().unwrap_or_else(|_| panic!("recording"));
        (changes, record2, during)
    });
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
        common::peak_rss_mib()
    );
    let (p50, p99) = percentiles(during.clone());
    println!(
        "{n:>7} findings | {} pages of 100 read while the next audit was recorded: p50 {p50:.1} ms, p99 {p99:.1} ms",
        during.len()
    );
    api_pages(&store, n);
}

/// p50 and p99 of durations in seconds, in milliseconds.
fn percentiles(mut s: Vec<f64>) -> (f64, f64) {
    if s.is_empty() {
        return (0.0, 0.0);
    }
    s.sort_by(f64::total_cmp);
    let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize] * 1000.0;
    (at(0.5), at(0.99))
}

/// The findings API's queries after the second audit: a page of 100 at a cursor nine tenths
/// deep, for each filter; the same depth by `page=N`; one user's findings.
fn api_pages(store: &Store, n: usize) {
    let filter = |state, rule: Option<&str>, severity, user: Option<String>| FindingFilter {
        state,
        rule: rule.map(str::to_owned),
        severity,
        user,
    };
    let upn = format!("USER{}@contoso.onmicrosoft.com", n * 9 / 10 + 1);
    let filters = [
        ("open", filter(StateFilter::Open, None, None, None)),
        ("resolved", filter(StateFilter::Resolved, None, None, None)),
        ("all", filter(StateFilter::All, None, None, None)),
        (
            "open rule",
            filter(StateFilter::Open, Some("phone-only"), None, None),
        ),
        (
            "open severity",
            filter(StateFilter::Open, None, Some(Severity::Medium), None),
        ),
        (
            "all rule+severity",
            filter(
                StateFilter::All,
                Some("no-backup-method"),
                Some(Severity::Medium),
                None,
            ),
        ),
        (
            "resolved severity",
            filter(StateFilter::Resolved, None, Some(Severity::High), None),
        ),
        (
            "all user",
            filter(StateFilter::All, None, None, Some(upn.clone())),
        ),
    ];
    for (name, f) in &filters {
        let total = store
            .findings_page("bench", f, None, 1)
            .unwrap_or_else(|e| panic!("{e}"))
            .total as usize;
        let depth = total * 9 / 10;
        let t = Instant::now();
        let deep = store
            .findings_page_at("bench", f, depth.saturating_sub(1), 1)
            .unwrap_or_else(|e| panic!("{e}"));
        let by_offset = t.elapsed().as_secs_f64() * 1000.0;
        let cursor = deep.items.last().map(|i| Cursor {
            rule: i.rule.clone(),
            subject: i.subject.clone(),
        });
        let mut times = vec![];
        for _ in 0..300 {
            let t = Instant::now();
            let page = store
                .findings_page("bench", f, cursor.as_ref(), 100)
                .unwrap_or_else(|e| panic!("{e}"));
            times.push(t.elapsed().as_secs_f64());
            assert!(page.items.len() <= 100);
        }
        let (p50, p99) = percentiles(times);
        println!(
            "{n:>7} findings | page of 100 at {depth:>6} of {total:>6} ({name:<17}): cursor p50 {p50:>5.2} ms, p99 {p99:>5.2} ms | by page=N {by_offset:>7.1} ms"
        );
    }
    let mut times = vec![];
    for _ in 0..300 {
        let t = Instant::now();
        let mine = store
            .user_findings("bench", &upn)
            .unwrap_or_else(|e| panic!("{e}"));
        times.push(t.elapsed().as_secs_f64());
        assert!(!mine.is_empty(), "{upn} has findings");
    }
    let (p50, p99) = percentiles(times);
    println!("{n:>7} findings | one user's findings ({upn}): p50 {p50:.2} ms, p99 {p99:.2} ms");
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
