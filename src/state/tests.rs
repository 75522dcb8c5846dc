use super::*;
use crate::evaluate::{Finding, Severity};
use crate::report::Summary;

fn finding(rule: &'static str, subject: &str) -> Finding {
    Finding {
        rule,
        severity: Severity::Medium,
        subject: subject.into(),
        user_id: Some(subject.into()),
        user_principal_name: Some(format!("{subject}@contoso.com")),
        detail: "d".into(),
        remediation: "r".into(),
    }
}

fn report(at: &str, complete: bool, findings: Vec<Finding>) -> Report {
    let t: DateTime<Utc> = at.parse().expect("time");
    Report {
        tenant: "t1".into(),
        complete,
        started_at: t,
        finished_at: t,
        users_in_scope: 10,
        findings,
        excepted: vec![],
        skipped: vec![],
        incomplete_reasons: if complete {
            vec![]
        } else {
            vec!["users (users): HTTP 500".into()]
        },
        summary: Summary::default(),
        posture: Default::default(),
    }
}

#[test]
fn only_what_changed_is_written() {
    let store = Store::in_memory().expect("store");
    let both = || {
        vec![
            finding("phone-only", "ann"),
            finding("no-mfa-method", "bob"),
        ]
    };
    let first = store
        .record(&report("2026-11-01T10:00:00Z", true, both()), 1)
        .expect("record");
    assert_eq!(first.written, 2);
    let same = store
        .record(&report("2026-11-01T11:00:00Z", true, both()), 1)
        .expect("record");
    assert_eq!((same.new, same.resolved, same.written), (0, 0, 0));
    let mut changed = both();
    changed[1].detail = "now with more detail".into();
    let again = store
        .record(&report("2026-11-01T12:00:00Z", true, changed), 1)
        .expect("record");
    assert_eq!((again.new, again.resolved, again.written), (0, 0, 1));
    let open = store.findings("t1", false).expect("findings");
    let bob = open.iter().find(|f| f.subject == "bob").expect("bob");
    assert_eq!(bob.detail, "now with more detail");
    // Unwritten rows still read as seen by the last audit, first seen as they were.
    for f in &open {
        assert_eq!(f.last_seen.to_rfc3339(), "2026-11-01T12:00:00+00:00");
        assert_eq!(f.first_seen.to_rfc3339(), "2026-11-01T10:00:00+00:00");
    }
}

#[test]
fn findings_must_come_grouped_by_rule() {
    let store = Store::in_memory().expect("store");
    let head = RunHead {
        tenant: "t1",
        started_at: "2026-11-01T10:00:00Z".parse().expect("time"),
        complete: true,
        graph_requests: 1,
    };
    let r = report("2026-11-01T10:00:00Z", true, vec![]);
    let (a, b, a2) = (
        finding("phone-only", "ann"),
        finding("no-mfa-method", "bob"),
        finding("phone-only", "cy"),
    );
    let err = store
        .record_audit(
            &head,
            &[],
            &mut |sink| {
                sink(&a, false);
                sink(&b, false);
                sink(&a2, false);
                Ok(r.counts_only())
            },
            &mut |_, _| Ok(()),
        )
        .expect_err("split rule");
    assert!(err.to_string().contains("phone-only"), "{err}");
    // Rolled back whole: nothing recorded, not even the run.
    assert!(store.findings("t1", true).expect("findings").is_empty());
    assert!(store.audits("t1", 10).expect("audits").is_empty());
}

#[test]
fn findings_keep_their_first_seen_and_resolve_when_gone() {
    let store = Store::in_memory().expect("store");
    let c1 = store
        .record(
            &report(
                "2026-11-01T10:00:00Z",
                true,
                vec![
                    finding("phone-only", "ann"),
                    finding("no-mfa-method", "bob"),
                ],
            ),
            5,
        )
        .expect("record");
    assert_eq!((c1.new, c1.resolved), (2, 0));
    let c2 = store
        .record(
            &report(
                "2026-11-01T11:00:00Z",
                true,
                vec![finding("phone-only", "ann")],
            ),
            5,
        )
        .expect("record");
    assert_eq!((c2.new, c2.resolved), (0, 1));
    // Ann did not change: only Bob's row was written (resolved).
    assert_eq!(c2.written, 1);
    let open = store.findings("t1", false).expect("findings");
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].first_seen.to_rfc3339(), "2026-11-01T10:00:00+00:00");
    assert_eq!(open[0].last_seen.to_rfc3339(), "2026-11-01T11:00:00+00:00");
    let all = store.findings("t1", true).expect("findings");
    let bob = all.iter().find(|f| f.subject == "bob").expect("bob");
    assert_eq!(
        bob.resolved_at.map(|t| t.to_rfc3339()),
        Some("2026-11-01T11:00:00+00:00".into())
    );
    // Last seen by the audit before the one that found it gone.
    assert_eq!(bob.last_seen.to_rfc3339(), "2026-11-01T10:00:00+00:00");
    // Back again: new, with a fresh first_seen.
    let c3 = store
        .record(
            &report(
                "2026-11-01T12:00:00Z",
                true,
                vec![
                    finding("phone-only", "ann"),
                    finding("no-mfa-method", "bob"),
                ],
            ),
            5,
        )
        .expect("record");
    assert_eq!((c3.new, c3.resolved), (1, 0));
    let bob = store
        .findings("t1", false)
        .expect("findings")
        .into_iter()
        .find(|f| f.subject == "bob")
        .expect("bob");
    assert_eq!(
        (bob.first_seen.to_rfc3339(), bob.resolved_at),
        ("2026-11-01T12:00:00+00:00".into(), None)
    );
}

#[test]
fn an_incomplete_audit_changes_no_finding() {
    let store = Store::in_memory().expect("store");
    store
        .record(
            &report(
                "2026-11-01T10:00:00Z",
                true,
                vec![finding("phone-only", "ann")],
            ),
            5,
        )
        .expect("record");
    let c = store
        .record(&report("2026-11-01T11:00:00Z", false, vec![]), 2)
        .expect("record");
    assert!(c.new == 0 && c.resolved == 0);
    let open = store.findings("t1", false).expect("findings");
    assert_eq!(open.len(), 1, "a half-read tenant resolves nothing");
    assert_eq!(open[0].last_seen.to_rfc3339(), "2026-11-01T10:00:00+00:00");
    let runs = store.audits("t1", 10).expect("audits");
    assert_eq!(runs.len(), 2);
    assert!(!runs[0].complete && runs[0].reason.as_deref() == Some("users (users): HTTP 500"));
    assert!(runs[1].complete);
}

#[test]
fn state_survives_a_restart_and_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    {
        let store = Store::open(&path).expect("open");
        store
            .record(
                &report(
                    "2026-11-01T10:00:00Z",
                    true,
                    vec![finding("phone-only", "ann")],
                ),
                5,
            )
            .expect("record");
    }
    let store = Store::open(&path).expect("reopen");
    let c = store
        .record(
            &report(
                "2026-11-02T10:00:00Z",
                true,
                vec![finding("phone-only", "ann")],
            ),
            5,
        )
        .expect("record");
    assert_eq!(c.new, 0, "known after a restart");
    assert_eq!(
        store.findings("t1", false).expect("findings")[0]
            .first_seen
            .to_rfc3339(),
        "2026-11-01T10:00:00+00:00"
    );
    drop(store);
    let conn = Connection::open(&path).expect("raw");
    conn.pragma_update(None, "user_version", 99).expect("bump");
    drop(conn);
    let err = Store::open(&path)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains(&format!(
            "schema version 99, newer than this binary knows ({})",
            MIGRATIONS.len()
        )),
        "{err}"
    );
}

#[test]
fn the_outbox_queues_each_change_once_per_subscriber_in_the_audits_transaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    let subs = [
        Subscriber {
            webhook: "all".into(),
            min_severity: Severity::Info,
        },
        Subscriber {
            webhook: "high".into(),
            min_severity: Severity::High,
        },
    ];
    let mut high = finding("no-mfa-method", "bob");
    high.severity = Severity::High;
    {
        let store = Store::open(&path).expect("open");
        let mut first = report(
            "2026-11-01T10:00:00Z",
            true,
            vec![finding("phone-only", "ann"), high.clone()],
        );
        first.excepted.push(crate::evaluate::exceptions::Excepted {
            finding: finding("phone-only", "cy"),
            exception_reason: "accepted".into(),
            exception_expires: chrono::NaiveDate::from_ymd_opt(2027, 1, 1).expect("date"),
        });
        store.record_with(&first, 1, &subs).expect("record");
        let all = store.outbox_pending("t1", "all", 100).expect("pending");
        let keys: Vec<String> = all
            .iter()
            .map(|e| format!("{:?}/{}/{}", e.kind, e.rule, e.subject))
            .collect();
        assert_eq!(
            keys,
            ["New/phone-only/ann", "New/no-mfa-method/bob"],
            "an excepted finding is an accepted risk: no message"
        );
        let high_only = store.outbox_pending("t1", "high", 100).expect("pending");
        assert_eq!(high_only.len(), 1);
        assert_eq!(high_only[0].subject, "bob");
        // Delivered events go; a failed one stays, with its attempt counted.
        store.outbox_delivered(&[all[0].id]).expect("delivered");
        store
            .outbox_failed(&[all[1].id], "HTTP 503")
            .expect("failed");
        // Seen again: nothing new is queued.
        let again = report(
            "2026-11-01T11:00:00Z",
            true,
            vec![finding("phone-only", "ann"), high.clone()],
        );
        store.record_with(&again, 1, &subs).expect("record");
        // An incomplete audit queues nothing, even though bob is missing from it.
        store
            .record_with(&report("2026-11-01T11:30:00Z", false, vec![]), 1, &subs)
            .expect("record");
    }
    // After a restart the undelivered event is still there, and bob's resolution queues.
    let store = Store::open(&path).expect("reopen");
    let left = store.outbox_pending("t1", "all", 100).expect("pending");
    assert_eq!(left.len(), 1);
    assert_eq!((left[0].subject.as_str(), left[0].attempts), ("bob", 1));
    store
        .record_with(
            &report(
                "2026-11-01T12:00:00Z",
                true,
                vec![finding("phone-only", "ann")],
            ),
            1,
            &subs,
        )
        .expect("record");
    let all = store.outbox_pending("t1", "all", 100).expect("pending");
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].kind, EventKind::Resolved);
    assert_eq!(all[1].subject, "bob");
    assert_eq!(all[1].first_seen.to_rfc3339(), "2026-11-01T10:00:00+00:00");
    assert_eq!(
        all[1].resolved_at.map(|t| t.to_rfc3339()),
        Some("2026-11-01T12:00:00+00:00".into())
    );
    assert_eq!(
        store.outbox_counts().expect("counts"),
        [("all".to_string(), 2), ("high".to_string(), 2)]
    );
    let last = all[1].audit_id;
    assert_eq!(
        store
            .outbox_group("t1", "high", last, EventKind::Resolved)
            .expect("group"),
        [("no-mfa-method".to_string(), "high".to_string(), 1)]
    );
    assert_eq!(
        store
            .outbox_delivered_group("t1", "high", last, EventKind::Resolved)
            .expect("delivered"),
        1
    );
    assert_eq!(
        store.outbox_counts().expect("counts"),
        [("all".to_string(), 2), ("high".to_string(), 1)]
    );
    assert_eq!(
        store.outbox_forget_except("t1", &["all"]).expect("forget"),
        1
    );
    assert_eq!(
        store.outbox_counts().expect("counts"),
        [("all".to_string(), 2)]
    );
}

fn skipping(mut r: Report, rule: &'static str) -> Report {
    r.skipped.push(crate::evaluate::Skipped {
        rule,
        reason: "registration needs the AuditLog.Read.All permission".into(),
    });
    r
}

#[test]
fn a_skipped_rule_leaves_its_findings_exactly_as_they_were() {
    let store = Store::in_memory().expect("store");
    let subs = [Subscriber {
        webhook: "all".into(),
        min_severity: Severity::Info,
    }];
    let both = vec![
        finding("phone-only", "ann"),
        finding("no-mfa-method", "bob"),
    ];
    store
        .record_with(
            &report("2026-11-01T10:00:00Z", true, both.clone()),
            1,
            &subs,
        )
        .expect("record");
    let before = store.findings("t1", false).expect("findings");
    let queued = store.outbox_pending("t1", "all", 100).expect("pending");
    store
        .outbox_delivered(&queued.iter().map(|e| e.id).collect::<Vec<_>>())
        .expect("delivered");
    // no-mfa-method could not be judged: complete audit, but its finding is not resolved.
    let c = store
        .record_with(
            &skipping(
                report(
                    "2026-11-01T11:00:00Z",
                    true,
                    vec![finding("phone-only", "ann")],
                ),
                "no-mfa-method",
            ),
            1,
            &subs,
        )
        .expect("record");
    assert!(c.new == 0 && c.resolved == 0, "{c:?}");
    assert_eq!(c.kept, 1);
    assert_eq!(store.audits("t1", 1).expect("audits")[0].kept_open, 1);
    assert!(store
        .outbox_pending("t1", "all", 100)
        .expect("pending")
        .is_empty());
    let during = store.findings("t1", true).expect("findings");
    let bob = |v: &[StoredFinding]| v.iter().find(|f| f.subject == "bob").cloned().expect("bob");
    assert_eq!(bob(&during), bob(&before), "first and last seen untouched");
    let runs = store.audits("t1", 1).expect("audits");
    assert_eq!(
        runs[0].skipped,
        [SkippedRule {
            rule: "no-mfa-method".into(),
            reason: "registration needs the AuditLog.Read.All permission".into()
        }]
    );
    // Judged again and still there: no event, first_seen kept.
    let c = store
        .record_with(&report("2026-11-01T12:00:00Z", true, both), 1, &subs)
        .expect("record");
    assert!(c.new == 0 && c.resolved == 0, "{c:?}");
    assert!(store
        .outbox_pending("t1", "all", 100)
        .expect("pending")
        .is_empty());
    let after = bob(&store.findings("t1", false).expect("findings"));
    assert_eq!(after.first_seen, bob(&before).first_seen);
    assert_eq!(after.last_seen.to_rfc3339(), "2026-11-01T12:00:00+00:00");
}

#[test]
fn webhook_event_ids_are_never_reused_even_after_the_outbox_drains() {
    let store = Store::in_memory().expect("store");
    let subs = [Subscriber {
        webhook: "all".into(),
        min_severity: Severity::Info,
    }];
    let mut seen = std::collections::BTreeSet::new();
    for (i, who) in ["ann", "bob", "cy"].iter().enumerate() {
        store
            .record_with(
                &report(
                    &format!("2026-11-01T1{i}:00:00Z"),
                    true,
                    vec![finding("phone-only", who)],
                ),
                1,
                &subs,
            )
            .expect("record");
        let queued = store.outbox_pending("t1", "all", 100).expect("pending");
        assert!(!queued.is_empty());
        for e in &queued {
            assert!(seen.insert(e.id), "event id {} given out twice", e.id);
        }
        store
            .outbox_delivered(&queued.iter().map(|e| e.id).collect::<Vec<_>>())
            .expect("delivered");
    }
}

/// A store as version 2 of the schema left it: the rows of a tenant rule under one subject,
/// and an outbox that drained after giving out ids.
#[test]
fn an_old_store_migrates_its_tenant_subjects_and_its_outbox_sequence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    {
        let mut conn = Connection::open(&path).expect("raw");
        let tx = conn.transaction().expect("tx");
        for sql in &MIGRATIONS[..2] {
            tx.execute_batch(sql).expect("old schema");
        }
        tx.pragma_update(None, "user_version", 2).expect("version");
        tx.execute_batch(
                "INSERT INTO audits VALUES (1, 't1', '2026-11-01T10:00:00Z', '2026-11-01T10:00:00Z', 'complete', NULL, 1, 3, 0, 1);
                 INSERT INTO findings VALUES ('t1', 'weak-methods-enabled', 'tenant', NULL, 'medium', 'Voice is enabled in the authentication-methods policy', 'r', 0, '2026-11-01T10:00:00Z', '2026-11-01T10:00:00Z', NULL, 1);
                 INSERT INTO findings VALUES ('t1', 'tap-policy-lifetime', 'tenant', NULL, 'low', 'maximum TAP lifetime is 600 minutes (more than 480)', 'r', 0, '2026-11-01T10:00:00Z', '2026-11-01T10:00:00Z', NULL, 1);
                 INSERT INTO findings VALUES ('t1', 'break-glass-weak', 'tenant', NULL, 'critical', 'emergency-access account glass9@contoso.com does not exist', 'r', 0, '2026-11-01T10:00:00Z', '2026-11-01T10:00:00Z', NULL, 1);
                 INSERT INTO outbox (id, webhook, tenant, audit_id, kind, rule, subject, severity, detail, remediation, first_seen) VALUES (7, 'all', 't1', 1, 'new', 'r', 's', 'low', 'd', 'r', '2026-11-01T10:00:00Z');
                 DELETE FROM outbox;",
            )
            .expect("old rows");
        tx.commit().expect("commit");
    }
    let store = Store::open(&path).expect("migrates");
    let subjects: Vec<String> = store
        .findings("t1", false)
        .expect("findings")
        .into_iter()
        .map(|f| format!("{}/{}", f.rule, f.subject))
        .collect();
    assert_eq!(
        subjects,
        [
            "break-glass-weak/tenant:glass9@contoso.com",
            "tap-policy-lifetime/tenant:maximum",
            "weak-methods-enabled/tenant:Voice"
        ]
    );
    let subs = [Subscriber {
        webhook: "all".into(),
        min_severity: Severity::Info,
    }];
    store
        .record_with(
            &report(
                "2026-11-02T10:00:00Z",
                true,
                vec![finding("phone-only", "ann")],
            ),
            1,
            &subs,
        )
        .expect("record");
    let ids: Vec<i64> = store
        .outbox_pending("t1", "all", 100)
        .expect("pending")
        .iter()
        .map(|e| e.id)
        .collect();
    assert!(
        ids.iter().all(|id| *id > 1_000_000_000_000),
        "an upgraded store starts above any id the old rowids gave out: {ids:?}"
    );
}

#[test]
fn a_read_only_database_is_refused_when_opened() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.db");
    // A file that is not yet a database (the schema cannot be written) and one that is.
    std::fs::write(&path, "").expect("empty file");
    let uri = std::path::PathBuf::from(format!("file:{}?mode=ro", path.display()));
    let err = Store::open(&uri)
        .err()
        .map(|e| format!("{:#}", anyhow::Error::from(e)))
        .unwrap_or_default();
    assert!(
        err.contains("is not writable") && err.contains("storage.path"),
        "{err}"
    );
    assert_eq!(
        err.matches("readonly database").count(),
        1,
        "the cause is said once, even by a chain printer: {err}"
    );
    drop(Store::open(&path).expect("create"));
    // SQLite opens what it cannot write read-only without a word: as a read-only mount
    // (or a URI asking for one, which root cannot override) does.
    let uri = std::path::PathBuf::from(format!("file:{}?mode=ro", path.display()));
    let err = Store::open(&uri)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("is not writable") && err.contains("storage.path"),
        "{err}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).expect("chmod");
    if std::fs::OpenOptions::new().write(true).open(&path).is_ok() {
        eprintln!("running as root: file modes do not stop us, the URI case above is the test");
        return;
    }
    let err = Store::open(&path)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains(&format!(
            "state database {} is not writable",
            path.display()
        )) && err.contains("storage.path"),
        "{err}"
    );
    assert_eq!(err.matches("state database").count(), 1, "{err}");
}

#[test]
fn prune_keeps_recent_runs_and_open_findings() {
    let store = Store::in_memory().expect("store");
    store
        .record(
            &report(
                "2026-11-01T00:00:00Z",
                true,
                vec![
                    finding("phone-only", "ann"),
                    finding("no-mfa-method", "bob"),
                ],
            ),
            1,
        )
        .expect("r");
    for h in 1..6 {
        store
            .record(
                &report(
                    &format!("2026-11-01T0{h}:00:00Z"),
                    true,
                    vec![finding("phone-only", "ann")],
                ),
                1,
            )
            .expect("r");
    }
    let deleted = store.prune("t1", 2).expect("prune");
    // Ann's row was last written by the first run (she never changed): that run stays.
    assert_eq!(deleted, 3);
    let kept: Vec<i64> = store
        .audits("t1", 100)
        .expect("audits")
        .iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(kept, [6, 5, 1]);
    let all = store.findings("t1", true).expect("findings");
    assert_eq!(all.len(), 1, "bob was resolved before the oldest kept run");
    assert_eq!(all[0].first_seen.to_rfc3339(), "2026-11-01T00:00:00+00:00");
}
