//! Keyset paging, the kept counts and the indexes behind them.

use super::query::explain_page;
use super::*;
use crate::evaluate::exceptions::Excepted;
use crate::evaluate::{Finding, Severity};
use crate::report::Summary;

const RULES: [(&str, Severity); 3] = [
    ("no-backup-method", Severity::Medium),
    ("no-mfa-method", Severity::High),
    ("phone-only", Severity::Low),
];

fn finding(i: usize) -> Finding {
    let (rule, severity) = RULES[i % RULES.len()];
    // Users 0..12 each have findings of several rules; some UPNs in upper case.
    let user = i % 12;
    Finding {
        rule,
        severity,
        subject: format!("{user:04x}-{i:04}"),
        user_id: None,
        user_principal_name: Some(if user % 2 == 0 {
            format!("User{user}@Contoso.com")
        } else {
            format!("user{user}@contoso.com")
        }),
        detail: "d".into(),
        remediation: "r".into(),
    }
}

fn report(at: &str, findings: Vec<Finding>, excepted: Vec<Finding>) -> Report {
    let t: DateTime<Utc> = at.parse().expect("time");
    Report {
        tenant: "t1".into(),
        complete: true,
        started_at: t,
        finished_at: t,
        users_in_scope: 10,
        findings,
        excepted: excepted
            .into_iter()
            .map(|finding| Excepted {
                finding,
                exception_reason: "accepted".into(),
                exception_expires: chrono::NaiveDate::from_ymd_opt(2099, 1, 1).expect("date"),
            })
            .collect(),
        skipped: vec![],
        incomplete_reasons: vec![],
        summary: Summary::default(),
        posture: Default::default(),
    }
}

/// 90 findings; the second audit resolves every fourth, excepts every seventh and adds ten.
fn recorded(store: &Store) {
    store
        .record(
            &report(
                "2026-11-01T00:00:00Z",
                (0..90).map(finding).collect(),
                vec![],
            ),
            1,
        )
        .expect("first audit");
    let open = (0..100)
        .filter(|i| i % 4 != 0 && i % 7 != 0)
        .map(finding)
        .collect();
    let excepted = (0..100)
        .filter(|i| i % 4 != 0 && i % 7 == 0)
        .map(finding)
        .collect();
    store
        .record(&report("2026-11-02T00:00:00Z", open, excepted), 1)
        .expect("second audit");
}

fn filters() -> Vec<FindingFilter> {
    let mut out = vec![];
    for state in [StateFilter::Open, StateFilter::Resolved, StateFilter::All] {
        for rule in [None, Some("no-mfa-method".to_string())] {
            for severity in [None, Some(Severity::High), Some(Severity::Low)] {
                for user in [
                    None,
                    Some("USER4@contoso.COM".to_string()),
                    Some("0005-0005".to_string()),
                ] {
                    out.push(FindingFilter {
                        state,
                        rule: rule.clone(),
                        severity,
                        user,
                    });
                }
            }
        }
    }
    out
}

fn selects(filter: &FindingFilter, f: &StoredFinding) -> bool {
    let state = match filter.state {
        StateFilter::Open => f.resolved_at.is_none(),
        StateFilter::Resolved => f.resolved_at.is_some(),
        StateFilter::All => true,
    };
    let user = filter.user.as_ref().is_none_or(|u| {
        f.subject == u.to_ascii_lowercase()
            || f.user_principal_name
                .as_ref()
                .is_some_and(|p| p.eq_ignore_ascii_case(u))
    });
    state
        && user
        && filter.rule.as_ref().is_none_or(|r| &f.rule == r)
        && filter.severity.is_none_or(|s| f.severity == s.as_str())
}

fn walk(store: &Store, filter: &FindingFilter, limit: usize) -> (Vec<StoredFinding>, u64) {
    let mut seen = vec![];
    let mut cursor: Option<Cursor> = None;
    let mut total = None;
    for _ in 0..1000 {
        let page = store
            .findings_page("t1", filter, cursor.as_ref(), limit)
            .expect("page");
        assert!(page.items.len() <= limit);
        assert!(
            total.is_none_or(|t| t == page.total),
            "{filter:?}: total moved"
        );
        total = Some(page.total);
        seen.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(Cursor::decode(&c).expect("our own cursor")),
            None => return (seen, total.unwrap_or(0)),
        }
    }
    panic!("{filter:?}: the cursor never reached the end");
}

fn check_paging(store: &Store) {
    let everything = store.findings("t1", true).expect("findings");
    assert!(everything.iter().any(|f| f.resolved_at.is_some()));
    assert!(everything.iter().any(|f| f.excepted));
    let mut nonempty = 0;
    for filter in filters() {
        let expected: Vec<_> = everything
            .iter()
            .filter(|f| selects(&filter, f))
            .cloned()
            .collect();
        nonempty += usize::from(!expected.is_empty());
        for limit in [1, 7, 1000] {
            let (got, total) = walk(store, &filter, limit);
            assert_eq!(got, expected, "{filter:?}, {limit} a page");
            assert_eq!(total, expected.len() as u64, "{filter:?}: total");
        }
        // Paging by position gives the same pages.
        let by_page: Vec<_> = (0..)
            .map(|n| {
                store
                    .findings_page_at("t1", &filter, n * 7, 7)
                    .expect("page")
                    .items
            })
            .take_while(|items| !items.is_empty())
            .flatten()
            .collect();
        assert_eq!(by_page, expected, "{filter:?} by position");
    }
    assert!(nonempty > 20, "the filters select something: {nonempty}");
}

#[test]
fn cursors_walk_every_filter_once_in_order_with_kept_totals() {
    let store = Store::in_memory().expect("store");
    recorded(&store);
    check_paging(&store);
}

#[test]
fn a_file_store_pages_through_its_read_only_connections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("state.db")).expect("store");
    recorded(&store);
    check_paging(&store);
    // More readers than the pool holds, at once: each waits its turn and gets its page.
    std::thread::scope(|s| {
        let walks: Vec<_> = (0..3 * READERS)
            .map(|_| s.spawn(|| walk(&store, &FindingFilter::default(), 5).0.len()))
            .collect();
        for w in walks {
            assert_eq!(w.join().expect("walk"), 75);
        }
    });
}

#[test]
fn a_reader_sees_the_last_committed_audit_while_one_is_being_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let store = Store::open(&path).expect("store");
    recorded(&store);
    let before = store
        .findings_page("t1", &FindingFilter::default(), None, 1000)
        .expect("page");
    // A writer holds an open write transaction (as a recording does) with a change in it.
    let mut writer = rusqlite::Connection::open(&path).expect("writer");
    let tx = writer
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .expect("begin");
    tx.execute("UPDATE findings SET resolved_at = last_seen", [])
        .expect("update");
    let during = store
        .findings_page("t1", &FindingFilter::default(), None, 1000)
        .expect("a reader does not wait for the writer");
    assert_eq!(during, before);
    tx.rollback().expect("rollback");
}

#[test]
fn counts_are_kept_per_audit_and_after_pruning() {
    let store = Store::in_memory().expect("store");
    recorded(&store);
    let everything = store.findings("t1", true).expect("findings");
    let counts = store.finding_counts("t1").expect("counts");
    for c in &counts {
        let of = |f: &&StoredFinding| {
            f.rule == c.rule && f.severity == c.severity && f.excepted == c.excepted
        };
        let open = everything
            .iter()
            .filter(of)
            .filter(|f| f.resolved_at.is_none())
            .count();
        let resolved = everything
            .iter()
            .filter(of)
            .filter(|f| f.resolved_at.is_some())
            .count();
        assert_eq!(
            (c.open, c.resolved),
            (open as i64, resolved as i64),
            "{c:?}"
        );
    }
    let counted: i64 = counts.iter().map(|c| c.open + c.resolved).sum();
    assert_eq!(counted, everything.len() as i64);
    assert!(counts.iter().any(|c| c.excepted && c.open > 0));
    // Pruning forgets the resolved findings older than the runs it keeps: their counts go too.
    store
        .record(&report("2026-11-03T00:00:00Z", vec![finding(1)], vec![]), 1)
        .expect("third audit");
    store.prune("t1", 1).expect("prune");
    let resolved: i64 = store
        .finding_counts("t1")
        .expect("counts")
        .iter()
        .map(|c| c.resolved)
        .sum();
    let really = store
        .findings("t1", true)
        .expect("findings")
        .iter()
        .filter(|f| f.resolved_at.is_some())
        .count();
    assert_eq!(resolved, really as i64);
}

#[test]
fn a_cursor_not_given_out_by_the_api_is_refused() {
    let c = Cursor {
        rule: "no-mfa-method".into(),
        subject: "ann/\"x\"".into(),
    };
    assert_eq!(Cursor::decode(&c.encode()), Ok(c));
    for bad in ["", "!!!", "aGVsbG8", "WzFd", &"A".repeat(5000)] {
        let e = Cursor::decode(bad).expect_err(bad);
        assert!(e.contains("cursor"), "{bad}: {e}");
    }
}

#[test]
fn users_are_found_by_upn_in_any_case_or_by_object_id() {
    let store = Store::in_memory().expect("store");
    recorded(&store);
    let by_upn = store
        .user_findings("t1", "USER4@CONTOSO.com")
        .expect("user");
    assert!(!by_upn.is_empty());
    assert!(
        by_upn.iter().any(|f| f.resolved_at.is_some()),
        "resolved ones too"
    );
    assert!(by_upn
        .iter()
        .all(|f| f.user_principal_name.as_deref() == Some("User4@Contoso.com")));
    let by_id = store.user_findings("t1", "0005-0005").expect("user");
    assert_eq!(by_id.len(), 1);
    assert!(store
        .user_findings("t1", "nobody@contoso.com")
        .expect("user")
        .is_empty());
}

/// Every filter is a range of an index in page order: one search bounded by every equality of
/// the filter and by the cursor, no sort; a user's findings are index lookups (by UPN, and by
/// object id under each rule the tenant has findings of). The totals
/// read the kept counts (a user's are counted by the same lookups).
#[test]
fn no_filter_scans_the_findings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("state.db")).expect("store");
    recorded(&store);
    let after = |rule: &str| Cursor {
        rule: rule.into(),
        subject: "0003".into(),
    };
    for filter in filters() {
        let rule = filter.rule.clone().unwrap_or("no-backup-method".into());
        for cursor in [None, Some(after(&rule))] {
            let (plan, total) = explain_page(&store, "t1", &filter, cursor.as_ref()).expect("plan");
            let what = format!("{filter:?}, {cursor:?}: {plan:?} / {total:?}");
            assert!(
                !plan
                    .iter()
                    .chain(&total)
                    .any(|s| s.starts_with("SCAN findings")),
                "{what}"
            );
            if filter.user.is_some() {
                for (index, column) in [
                    ("findings_by_upn", "user_principal_name=?"),
                    ("sqlite_autoindex_findings_1", "rule=? AND subject=?"),
                ] {
                    let search =
                        format!("SEARCH findings USING INDEX {index} (tenant=? AND {column})");
                    assert!(plan.contains(&search), "{what}");
                    assert!(total.contains(&search), "{what}");
                }
                continue;
            }
            let index = match (filter.state, filter.severity.is_some()) {
                (StateFilter::Open, false) => "findings_open_by_rule",
                (StateFilter::Open, true) => "findings_open_by_severity",
                (StateFilter::Resolved, false) => "findings_resolved_by_rule",
                (StateFilter::Resolved, true) => "findings_resolved_by_severity",
                (StateFilter::All, false) => "sqlite_autoindex_findings_1",
                (StateFilter::All, true) => "findings_by_severity",
            };
            let mut bound = vec!["tenant=?"];
            bound.extend(filter.severity.map(|_| "severity=?"));
            bound.extend(filter.rule.as_ref().map(|_| "rule=?"));
            match (&cursor, &filter.rule) {
                (Some(_), Some(_)) => bound.push("subject>?"),
                (Some(_), None) => bound.push("(rule,subject)>(?,?)"),
                (None, _) => {}
            }
            // Besides the page's range, only the last-seen lookup of each row (a primary-key
            // search of rule_judged).
            let (page_plan, last_seen): (Vec<&String>, Vec<&String>) = plan
                .iter()
                .partition(|s| s.starts_with("SEARCH findings") || s.starts_with("SCAN"));
            assert!(
                last_seen
                    .iter()
                    .all(|s| *s == "CORRELATED SCALAR SUBQUERY 1"
                        || *s == "SEARCH j USING PRIMARY KEY (tenant=? AND rule=?)"),
                "{what}: {last_seen:?}"
            );
            let plan = page_plan;
            assert_eq!(plan.len(), 1, "{what}");
            assert!(
                plan[0].starts_with("SEARCH findings USING ")
                    && plan[0].ends_with(&format!("INDEX {index} ({})", bound.join(" AND "))),
                "{what}"
            );
            assert_eq!(total.len(), 1, "{what}");
            assert!(total[0].starts_with("SEARCH finding_counts"), "{what}");
        }
    }
}
