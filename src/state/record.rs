//! Recording one audit: the findings it moved and the outbox messages, in one transaction.

use rusqlite::{params, OptionalExtension};

use super::*;

impl Store {
    /// Records one audit. A complete one updates findings and returns what changed; an
    /// incomplete one is recorded as a run only.
    pub fn record(&self, report: &Report, graph_requests: u64) -> Result<Changes, StateError> {
        self.record_with(report, graph_requests, &[])
    }

    /// [`Store::record`], queueing in the same transaction one outbox event per subscriber for
    /// each new and each resolved finding at or above its severity (excepted findings are
    /// accepted risks: they queue nothing).
    pub fn record_with(
        &self,
        report: &Report,
        graph_requests: u64,
        subscribers: &[Subscriber],
    ) -> Result<Changes, StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let reason = (!report.complete).then(|| report.incomplete_reasons.join("; "));
        let skipped: Vec<SkippedRule> = report
            .skipped
            .iter()
            .map(|s| SkippedRule {
                rule: s.rule.to_string(),
                reason: s.reason.clone(),
            })
            .collect();
        let skipped_json = serde_json::to_string(&skipped).unwrap_or_else(|_| "[]".into());
        let skipped_rules =
            serde_json::to_string(&skipped.iter().map(|s| s.rule.as_str()).collect::<Vec<_>>())
                .unwrap_or_else(|_| "[]".into());
        tx.execute(
            "INSERT INTO audits (tenant, started_at, finished_at, result, reason, users_in_scope, findings, excepted, graph_requests, skipped)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                report.tenant,
                ts(report.started_at),
                ts(report.finished_at),
                if report.complete { "complete" } else { "incomplete" },
                reason,
                report.users_in_scope as i64,
                report.findings.len() as i64,
                report.excepted.len() as i64,
                graph_requests as i64,
                skipped_json,
            ],
        )?;
        let audit_id = tx.last_insert_rowid();
        let mut changes = Changes {
            audit_id,
            ..Changes::default()
        };
        if !report.complete {
            tx.commit()?;
            return Ok(changes);
        }
        let seen = ts(report.started_at);
        {
            let mut prior = tx.prepare("SELECT resolved_at IS NULL FROM findings WHERE tenant = ?1 AND rule = ?2 AND subject = ?3")?;
            let mut upsert = tx.prepare(
                "INSERT INTO findings (tenant, rule, subject, user_principal_name, severity, detail, remediation, excepted, first_seen, last_seen, resolved_at, last_audit)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, NULL, ?10)
                 ON CONFLICT (tenant, rule, subject) DO UPDATE SET
                    user_principal_name = excluded.user_principal_name, severity = excluded.severity,
                    detail = excluded.detail, remediation = excluded.remediation, excepted = excluded.excepted,
                    first_seen = CASE WHEN findings.resolved_at IS NULL THEN findings.first_seen ELSE excluded.first_seen END,
                    last_seen = excluded.last_seen, resolved_at = NULL, last_audit = excluded.last_audit",
            )?;
            let mut enqueue = tx.prepare(
                "INSERT INTO outbox (webhook, tenant, audit_id, kind, rule, subject, user_principal_name, severity, detail, remediation, first_seen, resolved_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?;
            let open = report.findings.iter().map(|f| (f, false));
            let excepted = report.excepted.iter().map(|e| (&e.finding, true));
            for (f, is_excepted) in open.chain(excepted) {
                let was_open: Option<bool> = prior
                    .query_row(params![report.tenant, f.rule, f.subject], |r| r.get(0))
                    .optional()?;
                upsert.execute(params![
                    report.tenant,
                    f.rule,
                    f.subject,
                    f.user_principal_name,
                    f.severity.as_str(),
                    f.detail,
                    f.remediation,
                    is_excepted,
                    seen,
                    audit_id
                ])?;
                if was_open != Some(true) {
                    changes.new.push((f.rule.to_string(), f.subject.clone()));
                    if !is_excepted {
                        for s in subscribers.iter().filter(|s| f.severity >= s.min_severity) {
                            enqueue.execute(params![
                                s.webhook,
                                report.tenant,
                                audit_id,
                                EventKind::New.as_str(),
                                f.rule,
                                f.subject,
                                f.user_principal_name,
                                f.severity.as_str(),
                                f.detail,
                                f.remediation,
                                seen,
                                Option::<String>::None,
                            ])?;
                        }
                    }
                }
            }
            // A rule skipped for lack of data did not look: its findings stay exactly as they
            // were (open, first and last seen unchanged, no message).
            changes.kept = tx.query_row(
                "SELECT COUNT(*) FROM findings WHERE tenant = ?1 AND resolved_at IS NULL
                 AND rule IN (SELECT value FROM json_each(?2))",
                params![report.tenant, skipped_rules],
                |r| r.get::<_, i64>(0),
            )? as usize;
            tx.execute(
                "UPDATE audits SET kept_open = ?1 WHERE id = ?2",
                params![changes.kept as i64, audit_id],
            )?;
            let mut gone = tx.prepare(
                "SELECT rule, subject, user_principal_name, severity, detail, remediation, excepted, first_seen
                 FROM findings WHERE tenant = ?1 AND resolved_at IS NULL AND last_audit <> ?2
                 AND rule NOT IN (SELECT value FROM json_each(?3))",
            )?;
            let rows = gone.query_map(params![report.tenant, audit_id, skipped_rules], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, bool>(6)?,
                    r.get::<_, String>(7)?,
                ))
            })?;
            for row in rows {
                let (rule, subject, upn, severity, detail, remediation, excepted, first_seen) =
                    row?;
                let level = severity.parse::<Severity>().unwrap_or(Severity::Critical);
                if !excepted {
                    for s in subscribers.iter().filter(|s| level >= s.min_severity) {
                        enqueue.execute(params![
                            s.webhook,
                            report.tenant,
                            audit_id,
                            EventKind::Resolved.as_str(),
                            rule,
                            subject,
                            upn,
                            severity,
                            detail,
                            remediation,
                            first_seen,
                            seen,
                        ])?;
                    }
                }
                changes.resolved.push((rule, subject));
            }
        }
        tx.execute(
            "UPDATE findings SET resolved_at = ?1 WHERE tenant = ?2 AND resolved_at IS NULL AND last_audit <> ?3
             AND rule NOT IN (SELECT value FROM json_each(?4))",
            params![seen, report.tenant, audit_id, skipped_rules],
        )?;
        refresh_counts_tx(&tx, &report.tenant)?;
        tx.commit()?;
        Ok(changes)
    }
}
