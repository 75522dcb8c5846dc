//! Reading what the store holds: findings, audit runs, the published posture.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::*;

/// The columns [`stored_finding`] reads, from [`FINDING_FROM`]. An open finding was last seen
/// when its rule was last judged; a resolved one keeps its own.
pub(crate) const FINDING_COLUMNS: &str = "f.tenant, f.rule, f.subject, f.user_principal_name, f.severity, f.detail, f.remediation, f.excepted, f.first_seen,
    CASE WHEN f.resolved_at IS NULL THEN COALESCE(j.judged_at, f.last_seen) ELSE f.last_seen END, f.resolved_at";
pub(crate) const FINDING_FROM: &str = "FROM findings f
    LEFT JOIN rule_judged j ON j.tenant = f.tenant AND j.rule = f.rule";
/// A severity's rank (`Severity as i64`), in SQL.
pub(crate) const SEVERITY_RANK: &str = "(CASE f.severity WHEN 'critical' THEN 4 WHEN 'high' THEN 3
    WHEN 'medium' THEN 2 WHEN 'low' THEN 1 ELSE 0 END)";

/// A row of [`FINDING_COLUMNS`].
pub(crate) fn stored_finding(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredFinding> {
    let rule: String = r.get(1)?;
    let upn: Option<String> = r.get(3)?;
    let remediation = remediation_or_catalogue(&rule, upn.as_deref(), r.get(6)?);
    Ok(StoredFinding {
        tenant: r.get(0)?,
        rule,
        subject: r.get(2)?,
        user_principal_name: upn,
        severity: r.get(4)?,
        detail: r.get(5)?,
        remediation,
        excepted: r.get(7)?,
        first_seen: parse_ts(r.get(8)?)?,
        last_seen: parse_ts(r.get(9)?)?,
        resolved_at: r.get::<_, Option<String>>(10)?.map(parse_ts).transpose()?,
    })
}

impl Store {
    /// Findings of `tenant`: open ones only, or all.
    pub fn findings(
        &self,
        tenant: &str,
        include_resolved: bool,
    ) -> Result<Vec<StoredFinding>, StateError> {
        let conn = self.conn();
        let mut q = conn.prepare(&format!(
            "SELECT {FINDING_COLUMNS} {FINDING_FROM}
             WHERE f.tenant = ?1 AND (?2 OR f.resolved_at IS NULL) ORDER BY f.rule, f.subject"
        ))?;
        let rows = q.query_map(params![tenant, include_resolved], stored_finding)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// What Alertmanager is sent: open user findings, not excepted, at `min` or above, the
    /// most severe and then the oldest first, at most `max`; and how many there are in all.
    pub fn alertable(
        &self,
        tenant: &str,
        min: Severity,
        max: usize,
    ) -> Result<(Vec<StoredFinding>, usize), StateError> {
        let conn = self.conn();
        let filter = format!(
            "WHERE f.tenant = ?1 AND f.resolved_at IS NULL AND f.excepted = 0
             AND f.subject <> 'tenant' AND f.subject NOT LIKE 'tenant:%'
             AND {SEVERITY_RANK} >= ?2"
        );
        let rank = min as i64;
        let mut q = conn.prepare(&format!(
            "SELECT {FINDING_COLUMNS} {FINDING_FROM} {filter}
             ORDER BY {SEVERITY_RANK} DESC, f.first_seen, f.rule, f.subject LIMIT ?3"
        ))?;
        let rows: Vec<StoredFinding> = q
            .query_map(params![tenant, rank, max as i64], stored_finding)?
            .collect::<Result<_, _>>()?;
        // Counted only when the cap was reached.
        let total = if rows.len() < max {
            rows.len()
        } else {
            conn.query_row(
                &format!("SELECT COUNT(*) {FINDING_FROM} {filter}"),
                params![tenant, rank],
                |r| r.get::<_, i64>(0),
            )? as usize
        };
        Ok((rows, total))
    }

    /// When the oldest open finding (not excepted) of each rule was first seen.
    pub fn oldest_open_by_rule(
        &self,
        tenant: &str,
    ) -> Result<std::collections::BTreeMap<String, DateTime<Utc>>, StateError> {
        let conn = self.conn();
        let mut q = conn.prepare(
            "SELECT rule, MIN(first_seen) FROM findings INDEXED BY findings_open_rule
             WHERE tenant = ?1 AND resolved_at IS NULL AND excepted = 0 GROUP BY rule",
        )?;
        let rows = q.query_map([tenant], |r| Ok((r.get(0)?, parse_ts(r.get(1)?)?)))?;
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
