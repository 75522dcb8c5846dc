//! Reading what the store holds: findings, audit runs, the published posture.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::*;

impl Store {
    /// Findings of `tenant`: open ones only, or all.
    pub fn findings(
        &self,
        tenant: &str,
        include_resolved: bool,
    ) -> Result<Vec<StoredFinding>, StateError> {
        let conn = self.conn();
        let mut q = conn.prepare(
            "SELECT tenant, rule, subject, user_principal_name, severity, detail, remediation, excepted, first_seen, last_seen, resolved_at
             FROM findings WHERE tenant = ?1 AND (?2 OR resolved_at IS NULL) ORDER BY rule, subject",
        )?;
        let rows = q.query_map(params![tenant, include_resolved], |r| {
            Ok(StoredFinding {
                tenant: r.get(0)?,
                rule: r.get(1)?,
                subject: r.get(2)?,
                user_principal_name: r.get(3)?,
                severity: r.get(4)?,
                detail: r.get(5)?,
                remediation: r.get(6)?,
                excepted: r.get(7)?,
                first_seen: parse_ts(r.get(8)?)?,
                last_seen: parse_ts(r.get(9)?)?,
                resolved_at: r.get::<_, Option<String>>(10)?.map(parse_ts).transpose()?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The most recent audit runs, newest first.
    pub fn audits(&self, tenant: &str, limit: usize) -> Result<Vec<AuditRun>, StateError> {
        let conn = self.conn();
        let mut q = conn.prepare(
            "SELECT id, tenant, started_at, finished_at, result, reason, users_in_scope, findings, excepted, graph_requests, skipped, kept_open
             FROM audits WHERE tenant = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = q.query_map(params![tenant, limit as i64], audit_run)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest complete audit run of `tenant`, if any.
    pub fn last_complete(&self, tenant: &str) -> Result<Option<AuditRun>, StateError> {
        let conn = self.conn();
        Ok(conn
            .query_row(
                "SELECT id, tenant, started_at, finished_at, result, reason, users_in_scope, findings, excepted, graph_requests, skipped, kept_open
                 FROM audits WHERE tenant = ?1 AND result = 'complete' ORDER BY id DESC LIMIT 1",
                [tenant],
                audit_run,
            )
            .optional()?)
    }

    /// Keeps the posture published from the complete audit `audit_id` (one per tenant).
    pub fn save_posture(
        &self,
        tenant: &str,
        audit_id: i64,
        finished_at: DateTime<Utc>,
        record: &str,
    ) -> Result<(), StateError> {
        self.conn().execute(
            "INSERT INTO posture (tenant, audit_id, finished_at, record) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (tenant) DO UPDATE SET audit_id = excluded.audit_id,
                finished_at = excluded.finished_at, record = excluded.record",
            params![tenant, audit_id, ts(finished_at), record],
        )?;
        Ok(())
    }

    /// The posture last published for `tenant`, if any.
    pub fn posture(&self, tenant: &str) -> Result<Option<StoredPosture>, StateError> {
        let conn = self.conn();
        Ok(conn
            .query_row(
                "SELECT audit_id, finished_at, record FROM posture WHERE tenant = ?1",
                [tenant],
                |r| {
                    Ok(StoredPosture {
                        audit_id: r.get(0)?,
                        finished_at: parse_ts(r.get(1)?)?,
                        record: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }
}

fn audit_run(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRun> {
    Ok(AuditRun {
        id: r.get(0)?,
        tenant: r.get(1)?,
        started_at: parse_ts(r.get(2)?)?,
        finished_at: parse_ts(r.get(3)?)?,
        complete: r.get::<_, String>(4)? == "complete",
        reason: r.get(5)?,
        users_in_scope: r.get(6)?,
        findings: r.get(7)?,
        excepted: r.get(8)?,
        graph_requests: r.get(9)?,
        skipped: serde_json::from_str(&r.get::<_, String>(10)?).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(10, rusqlite::types::Type::Text, Box::new(e))
        })?,
        kept_open: r.get(11)?,
    })
}
