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

    /// The oldest `limit` undelivered events for `webhook`, in the order they were queued.
    pub fn outbox_pending(
        &self,
        webhook: &str,
        limit: usize,
    ) -> Result<Vec<OutboxEvent>, StateError> {
        let conn = self.conn();
        let mut q = conn.prepare(
            "SELECT id, webhook, tenant, audit_id, kind, rule, subject, user_principal_name, severity, detail, remediation, first_seen, resolved_at, attempts
             FROM outbox WHERE webhook = ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = q.query_map(params![webhook, limit as i64], |r| {
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

    /// The events of one audit and kind queued for `webhook`, counted by (rule, severity),
    /// largest first.
    pub fn outbox_group(
        &self,
        webhook: &str,
        audit_id: i64,
        kind: EventKind,
    ) -> Result<Vec<(String, String, i64)>, StateError> {
        let conn = self.conn();
        let mut q = conn.prepare(
            "SELECT rule, severity, COUNT(*) AS n FROM outbox WHERE webhook = ?1 AND audit_id = ?2 AND kind = ?3
             GROUP BY rule, severity ORDER BY n DESC, rule",
        )?;
        let rows = q.query_map(params![webhook, audit_id, kind.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes every event of one audit and kind for `webhook` (delivered as one summary).
    pub fn outbox_delivered_group(
        &self,
        webhook: &str,
        audit_id: i64,
        kind: EventKind,
    ) -> Result<usize, StateError> {
        Ok(self.conn().execute(
            "DELETE FROM outbox WHERE webhook = ?1 AND audit_id = ?2 AND kind = ?3",
            params![webhook, audit_id, kind.as_str()],
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

    /// Undelivered events by webhook.
    pub fn outbox_counts(&self) -> Result<Vec<(String, i64)>, StateError> {
        let conn = self.reader()?;
        let mut q =
            conn.prepare("SELECT webhook, COUNT(*) FROM outbox GROUP BY webhook ORDER BY webhook")?;
        let rows = q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Drops the events of webhooks no longer configured; returns how many.
    pub fn outbox_forget_except(&self, webhooks: &[&str]) -> Result<usize, StateError> {
        let conn = self.conn();
        let list = serde_json::to_string(webhooks).unwrap_or_else(|_| "[]".into());
        Ok(conn.execute(
            "DELETE FROM outbox WHERE webhook NOT IN (SELECT value FROM json_each(?1))",
            [list],
        )?)
    }
}
