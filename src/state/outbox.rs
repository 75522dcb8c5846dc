//! Pruning old runs, and the webhook outbox.

use rusqlite::{params, OptionalExtension};

use super::*;

impl Store {
    /// Keeps the newest `keep` audit runs of `tenant` (and every run that last wrote a finding
    /// still kept: a finding that never changed points at the run that first found it);
    /// findings resolved before the oldest kept run are dropped, and so are per-user changes of
    /// older runs and users deleted before it. Returns the runs deleted.
    pub fn prune(&self, tenant: &str, keep: usize) -> Result<usize, StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let cutoff: Option<(i64, String)> = tx
            .query_row(
                "SELECT id, started_at FROM audits WHERE tenant = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2",
                params![tenant, keep.saturating_sub(1) as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((oldest_kept, oldest_time)) = cutoff else {
            return Ok(0);
        };
        let forgotten = tx.execute(
            "DELETE FROM findings WHERE tenant = ?1 AND resolved_at IS NOT NULL AND resolved_at < ?2",
            params![tenant, oldest_time],
        )?;
        if forgotten > 0 {
            refresh_counts_tx(&tx, tenant)?;
        }
        users::prune_users_tx(&tx, tenant, oldest_kept, parse_ts(oldest_time.clone())?)?;
        let deleted = tx.execute(
            "DELETE FROM audits WHERE tenant = ?1 AND id < ?2 AND id NOT IN (SELECT last_audit FROM findings)",
            params![tenant, oldest_kept],
        )?;
        tx.commit()?;
        Ok(deleted)
    }

    /// Copies the WAL into the database and truncates it, after an audit is recorded. Best
    /// effort: a reader still on an older snapshot leaves the rest for the next checkpoint.
    pub fn checkpoint(&self) -> Result<(), StateError> {
        let conn = self.conn();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// The oldest `limit` undelivered events of `tenant` for `webhook`, in the order they were
    /// queued. Each tenant's webhook worker reads only its own (a range of the index).
    pub fn outbox_pending(
        &self,
        tenant: &str,
        webhook: &str,
        limit: usize,
    ) -> Result<Vec<OutboxEvent>, StateError> {
        let conn = self.conn();
        let mut q = conn.prepare(
            "SELECT id, webhook, tenant, audit_id, kind, rule, subject, user_principal_name, severity, detail, remediation, first_seen, resolved_at, attempts
             FROM outbox WHERE tenant = ?1 AND webhook = ?2 ORDER BY id LIMIT ?3",
        )?;
        let rows = q.query_map(params![tenant, webhook, limit as i64], |r| {
            Ok(OutboxEvent {
                id: r.get(0)?,
                webhook: r.get(1)?,
                tenant: r.get(2)?,
                audit_id: r.get(3)?,
                kind: if r.get::<_, String>(4)? == "new" {
                    EventKind::New
                } else {
                    EventKind::Resolved
                },
                rule: r.get(5)?,
                subject: r.get(6)?,
                user_principal_name: r.get(7)?,
                severity: r.get(8)?,
                detail: r.get(9)?,
                remediation: r.get(10)?,
                first_seen: parse_ts(r.get(11)?)?,
                resolved_at: r.get::<_, Option<String>>(12)?.map(parse_ts).transpose()?,
                attempts: r.get(13)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes delivered events from the outbox.
    pub fn outbox_delivered(&self, ids: &[i64]) -> Result<(), StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut delete = tx.prepare("DELETE FROM outbox WHERE id = ?1")?;
            for id in ids {
                delete.execute([id])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The events of one audit and kind of `tenant` queued for `webhook`, counted by (rule,
    /// severity), largest first.
    pub fn outbox_group(
        &self,
        tenant: &str,
        webhook: &str,
        audit_id: i64,
        kind: EventKind,
    ) -> Result<Vec<(String, String, i64)>, StateError> {
        let conn = self.conn();
        let mut q = conn.prepare(
            "SELECT rule, severity, COUNT(*) AS n FROM outbox WHERE tenant = ?1 AND webhook = ?2 AND audit_id = ?3 AND kind = ?4
             GROUP BY rule, severity ORDER BY n DESC, rule",
        )?;
        let rows = q.query_map(params![tenant, webhook, audit_id, kind.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes every event of one audit and kind of `tenant` for `webhook` (delivered as one
    /// summary).
    pub fn outbox_delivered_group(
        &self,
        tenant: &str,
        webhook: &str,
        audit_id: i64,
        kind: EventKind,
    ) -> Result<usize, StateError> {
        Ok(self.conn().execute(
            "DELETE FROM outbox WHERE tenant = ?1 AND webhook = ?2 AND audit_id = ?3 AND kind = ?4",
            params![tenant, webhook, audit_id, kind.as_str()],
        )?)
    }

    /// Counts a failed delivery attempt of these events and keeps its reason.
    pub fn outbox_failed(&self, ids: &[i64], error: &str) -> Result<(), StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut update = tx.prepare(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
            )?;
            for id in ids {
                update.execute(params![id, error])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Undelivered events by webhook, of every tenant.
    pub fn outbox_counts(&self) -> Result<Vec<(String, i64)>, StateError> {
        let conn = self.reader()?;
        let mut q =
            conn.prepare("SELECT webhook, COUNT(*) FROM outbox GROUP BY webhook ORDER BY webhook")?;
        let rows = q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Undelivered events of `tenant` by webhook.
    pub fn outbox_counts_of(&self, tenant: &str) -> Result<Vec<(String, i64)>, StateError> {
        let conn = self.reader()?;
        let mut q = conn.prepare(
            "SELECT webhook, COUNT(*) FROM outbox WHERE tenant = ?1 GROUP BY webhook ORDER BY webhook",
        )?;
        let rows = q.query_map([tenant], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Drops `tenant`'s events for webhooks no longer configured; returns how many. Another
    /// tenant's queue is its own worker's business.
    pub fn outbox_forget_except(
        &self,
        tenant: &str,
        webhooks: &[&str],
    ) -> Result<usize, StateError> {
        let conn = self.conn();
        let list = serde_json::to_string(webhooks).unwrap_or_else(|_| "[]".into());
        Ok(conn.execute(
            "DELETE FROM outbox WHERE tenant = ?1 AND webhook NOT IN (SELECT value FROM json_each(?2))",
            params![tenant, list],
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::{Finding, Severity};

    /// A complete audit of `tenant` finding `users` (one finding each).
    fn audit(tenant: &str, users: &[&str]) -> Report {
        let t: DateTime<Utc> = "2026-12-03T10:00:00Z".parse().expect("time");
        Report {
            tenant: tenant.into(),
            complete: true,
            started_at: t,
            finished_at: t,
            users_in_scope: users.len(),
            findings: users
                .iter()
                .map(|u| Finding {
                    rule: "phone-only",
                    severity: Severity::Medium,
                    subject: (*u).into(),
                    user_id: Some((*u).into()),
                    user_principal_name: Some(format!("{u}@{tenant}.com")),
                    detail: "d".into(),
                    remediation: "r".into(),
                })
                .collect(),
            excepted: vec![],
            skipped: vec![],
            incomplete_reasons: vec![],
            summary: Default::default(),
            posture: Default::default(),
        }
    }

    #[test]
    fn each_tenant_reads_groups_counts_and_forgets_only_its_own_outbox() {
        let store = Store::in_memory().expect("store");
        let subs = [
            Subscriber {
                webhook: "hook".into(),
                min_severity: Severity::Info,
            },
            Subscriber {
                webhook: "old".into(),
                min_severity: Severity::Info,
            },
        ];
        store
            .record_with(&audit("contoso", &["ann", "bob"]), 0, &subs)
            .expect("record");
        store
            .record_with(&audit("fabrikam", &["cy"]), 0, &subs)
            .expect("record");
        let contoso = store
            .outbox_pending("contoso", "hook", 100)
            .expect("pending");
        assert_eq!(
            contoso
                .iter()
                .map(|e| (e.tenant.as_str(), e.subject.as_str()))
                .collect::<Vec<_>>(),
            [("contoso", "ann"), ("contoso", "bob")]
        );
        let fabrikam = store
            .outbox_pending("fabrikam", "hook", 100)
            .expect("pending");
        assert_eq!(fabrikam.len(), 1);
        assert_eq!(
            store
                .outbox_group("contoso", "hook", contoso[0].audit_id, EventKind::New)
                .expect("group"),
            [("phone-only".to_string(), "medium".to_string(), 2)]
        );
        assert_eq!(
            store.outbox_counts_of("fabrikam").expect("counts"),
            [("hook".to_string(), 1), ("old".to_string(), 1)]
        );
        // Contoso's configuration dropped `old`: fabrikam's queue for it is its own business.
        assert_eq!(
            store
                .outbox_forget_except("contoso", &["hook"])
                .expect("forget"),
            2
        );
        assert_eq!(
            store.outbox_counts_of("fabrikam").expect("counts"),
            [("hook".to_string(), 1), ("old".to_string(), 1)]
        );
        // Contoso's summary delivered: fabrikam's events stay.
        store
            .outbox_delivered_group("contoso", "hook", contoso[0].audit_id, EventKind::New)
            .expect("delivered");
        assert!(store
            .outbox_counts_of("contoso")
            .expect("counts")
            .is_empty());
        assert_eq!(store.outbox_counts().expect("counts").len(), 2);
    }

    #[test]
    fn a_tenants_outbox_queries_are_ranges_of_an_index() {
        let store = Store::in_memory().expect("store");
        let conn = store.conn();
        for (sql, index) in [
            (
                "SELECT id FROM outbox WHERE tenant = 't' AND webhook = 'w' ORDER BY id LIMIT 10",
                "outbox_pending",
            ),
            (
                "SELECT rule, severity, COUNT(*) FROM outbox WHERE tenant = 't' AND webhook = 'w' AND audit_id = 1 AND kind = 'new' GROUP BY rule, severity",
                "outbox_group",
            ),
            (
                "SELECT webhook, COUNT(*) FROM outbox WHERE tenant = 't' GROUP BY webhook",
                "outbox_",
            ),
        ] {
            let mut q = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("plan");
            let plan: Vec<String> = q
                .query_map([], |r| r.get::<_, String>(3))
                .expect("plan")
                .collect::<Result<_, _>>()
                .expect("plan");
            let plan = plan.join("; ");
            assert!(
                plan.contains("SEARCH outbox USING") && plan.contains(index),
                "{sql}: {plan}"
            );
            assert!(!plan.contains("TEMP B-TREE FOR ORDER BY"), "{sql}: {plan}");
        }
    }
}
