//! The state store: every audit run, and every finding's first seen, last seen and resolution,
//! in SQLite (embedded, WAL, one writer, migrations in the binary).
//!
//! Recording an audit is one transaction: a crash at any point leaves the previous state intact,
//! and a restart continues from it. Only a **complete** audit moves findings (new, still open,
//! resolved); an incomplete or failed one is recorded as a run and changes nothing else, so a
//! half-read tenant never resolves a finding it simply did not see.
//!
//! The same transaction queues each new and each resolved finding in the **outbox**, once per
//! webhook that wants it: a message is queued if and only if its audit is recorded, and stays
//! queued until delivered, so none is lost (delivery is at least once; event ids are never reused).
//!
//! A rule a complete audit skipped for lack of data did not look: its findings stay exactly as
//! they were (open, first and last seen, no message).

use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::evaluate::Severity;
use crate::report::Report;

/// The SQLite error is part of each message, not a separate `source`: a chain printer (`{:#}`)
/// would otherwise say it twice.
#[derive(Debug, Error)]
pub enum StateError {
    #[error("state database {path}: {cause}")]
    Open {
        path: String,
        cause: rusqlite::Error,
    },
    #[error("state database {path} is not writable ({cause}); the daemon records every audit there: check the file's and its directory's permissions, or set storage.path to a writable place")]
    ReadOnly {
        path: String,
        cause: rusqlite::Error,
    },
    #[error("state database: {0}")]
    Sql(rusqlite::Error),
    #[error("state database {path} has schema version {found}, newer than this binary knows ({known}); refusing to touch it")]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
}

impl From<rusqlite::Error> for StateError {
    fn from(e: rusqlite::Error) -> StateError {
        StateError::Sql(e)
    }
}

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE audits (
    id              INTEGER PRIMARY KEY,
    tenant          TEXT NOT NULL,
    started_at      TEXT NOT NULL,
    finished_at     TEXT NOT NULL,
    result          TEXT NOT NULL CHECK (result IN ('complete', 'incomplete')),
    reason          TEXT,
    users_in_scope  INTEGER NOT NULL,
    findings        INTEGER NOT NULL,
    excepted        INTEGER NOT NULL,
    graph_requests  INTEGER NOT NULL
);
CREATE INDEX audits_tenant_time ON audits (tenant, started_at);
CREATE TABLE findings (
    tenant               TEXT NOT NULL,
    rule                 TEXT NOT NULL,
    subject              TEXT NOT NULL,
    user_principal_name  TEXT,
    severity             TEXT NOT NULL,
    detail               TEXT NOT NULL,
    remediation          TEXT NOT NULL,
    excepted             INTEGER NOT NULL DEFAULT 0,
    first_seen           TEXT NOT NULL,
    last_seen            TEXT NOT NULL,
    resolved_at          TEXT,
    last_audit           INTEGER NOT NULL REFERENCES audits (id),
    PRIMARY KEY (tenant, rule, subject)
);
CREATE INDEX findings_open ON findings (tenant, resolved_at);
"#,
    r#"
CREATE TABLE outbox (
    id                   INTEGER PRIMARY KEY,
    webhook              TEXT NOT NULL,
    tenant               TEXT NOT NULL,
    audit_id             INTEGER NOT NULL,
    kind                 TEXT NOT NULL CHECK (kind IN ('new', 'resolved')),
    rule                 TEXT NOT NULL,
    subject              TEXT NOT NULL,
    user_principal_name  TEXT,
    severity             TEXT NOT NULL,
    detail               TEXT NOT NULL,
    remediation          TEXT NOT NULL,
    first_seen           TEXT NOT NULL,
    resolved_at          TEXT,
    attempts             INTEGER NOT NULL DEFAULT 0,
    last_error           TEXT
);
CREATE INDEX outbox_pending ON outbox (webhook, id);
CREATE INDEX outbox_group ON outbox (webhook, audit_id, kind, rule, severity);
"#,
    // Event ids are what receivers deduplicate on: a plain rowid is reused once the outbox
    // drains, so ids come from AUTOINCREMENT's sequence from now on. A store that recorded
    // audits before may have given out any id up to the number of events it ever queued: the
    // sequence then starts above any such id (the migration time in milliseconds, well below
    // 2^53, so JSON receivers keep every digit).
    r#"
CREATE TABLE outbox_v3 (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook              TEXT NOT NULL,
    tenant               TEXT NOT NULL,
    audit_id             INTEGER NOT NULL,
    kind                 TEXT NOT NULL CHECK (kind IN ('new', 'resolved')),
    rule                 TEXT NOT NULL,
    subject              TEXT NOT NULL,
    user_principal_name  TEXT,
    severity             TEXT NOT NULL,
    detail               TEXT NOT NULL,
    remediation          TEXT NOT NULL,
    first_seen           TEXT NOT NULL,
    resolved_at          TEXT,
    attempts             INTEGER NOT NULL DEFAULT 0,
    last_error           TEXT
);
INSERT INTO outbox_v3 SELECT * FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_v3 RENAME TO outbox;
CREATE INDEX outbox_pending ON outbox (webhook, id);
CREATE INDEX outbox_group ON outbox (webhook, audit_id, kind, rule, severity);
DELETE FROM sqlite_sequence WHERE name IN ('outbox', 'outbox_v3');
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'outbox', MAX(
        COALESCE((SELECT MAX(id) FROM outbox), 0),
        CASE WHEN EXISTS (SELECT 1 FROM audits) THEN CAST(strftime('%s', 'now') AS INTEGER) * 1000 ELSE 0 END);
"#,
    // Which rules an audit skipped and why (JSON), and the posture last published from a
    // complete audit, so a restart republishes it before Graph answers.
    r#"
ALTER TABLE audits ADD COLUMN skipped TEXT NOT NULL DEFAULT '[]';
ALTER TABLE audits ADD COLUMN kept_open INTEGER NOT NULL DEFAULT 0;
CREATE TABLE posture (
    tenant       TEXT PRIMARY KEY,
    audit_id     INTEGER NOT NULL,
    finished_at  TEXT NOT NULL,
    record       TEXT NOT NULL
);
"#,
    // A tenant rule may find several things (weak-methods-enabled: Sms and Voice): each is its
    // own subject `tenant:<what>`, which the rules now give. Rows stored under the single
    // subject `tenant` get theirs from their detail text, so they keep their first_seen.
    r#"
UPDATE findings SET subject = 'tenant:' || substr(detail, 1, instr(detail, ' ') - 1)
    WHERE rule = 'weak-methods-enabled' AND subject = 'tenant' AND instr(detail, ' ') > 1;
UPDATE findings SET subject = 'tenant:default'
    WHERE rule = 'tap-policy-lifetime' AND subject = 'tenant' AND detail LIKE 'default TAP lifetime%';
UPDATE findings SET subject = 'tenant:maximum'
    WHERE rule = 'tap-policy-lifetime' AND subject = 'tenant' AND detail LIKE 'maximum TAP lifetime%';
UPDATE findings SET subject = 'tenant:' || lower(substr(detail, 26, instr(detail, ' does not exist') - 26))
    WHERE rule = 'break-glass-weak' AND subject = 'tenant'
      AND detail LIKE 'emergency-access account % does not exist';
"#,
];

/// A finding as the store knows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredFinding {
    pub tenant: String,
    pub rule: String,
    pub subject: String,
    pub user_principal_name: Option<String>,
    pub severity: String,
    pub detail: String,
    pub remediation: String,
    pub excepted: bool,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// One recorded audit run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditRun {
    pub id: i64,
    pub tenant: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub complete: bool,
    pub reason: Option<String>,
    pub users_in_scope: i64,
    pub findings: i64,
    pub excepted: i64,
    pub graph_requests: i64,
    /// Rules the audit could not judge, and why: their findings stayed as they were.
    pub skipped: Vec<SkippedRule>,
    /// Open findings of those rules, kept open as they were (not in `findings`).
    pub kept_open: i64,
}

/// A rule an audit skipped for lack of data, and the reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedRule {
    pub rule: String,
    pub reason: String,
}

/// The posture last published from a complete audit (what `metrics` keeps, as JSON).
#[derive(Clone, Debug, PartialEq)]
pub struct StoredPosture {
    pub audit_id: i64,
    pub finished_at: DateTime<Utc>,
    pub record: String,
}

/// What a complete audit changed: the (rule, subject) of findings that are new (or back after
/// being resolved) and of findings resolved by it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Changes {
    pub audit_id: i64,
    pub new: Vec<(String, String)>,
    pub resolved: Vec<(String, String)>,
    /// Open findings of rules the audit skipped, kept open as they were.
    pub kept: usize,
}

/// A webhook the outbox queues messages for: its name and the least severity it wants.
#[derive(Clone, Debug, PartialEq)]
pub struct Subscriber {
    pub webhook: String,
    pub min_severity: Severity,
}

/// Whether an outbox event tells of a new finding or a resolved one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    New,
    Resolved,
}

impl EventKind {
    fn as_str(self) -> &'static str {
        match self {
            EventKind::New => "new",
            EventKind::Resolved => "resolved",
        }
    }
}

/// One queued webhook message about one finding.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OutboxEvent {
    pub id: i64,
    pub webhook: String,
    pub tenant: String,
    pub audit_id: i64,
    pub kind: EventKind,
    pub rule: String,
    pub subject: String,
    pub user_principal_name: Option<String>,
    pub severity: String,
    pub detail: String,
    pub remediation: String,
    pub first_seen: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub attempts: i64,
}

pub struct Store {
    conn: Mutex<Connection>,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn parse_ts(s: String) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StateError> {
        let name = path.display().to_string();
        let conn = Connection::open(path).map_err(|cause| StateError::Open {
            path: name.clone(),
            cause,
        })?;
        let store = Store::init(conn, &name)?;
        store.check_writable(&name)?;
        Ok(store)
    }

    /// An in-memory store (tests, the demo).
    pub fn in_memory() -> Result<Store, StateError> {
        Store::init(Connection::open_in_memory()?, ":memory:")
    }

    /// Fails now, naming the file, when the database cannot be written (a read-only file or
    /// directory), rather than at the first audit: one real write, rolled back.
    fn check_writable(&self, name: &str) -> Result<(), StateError> {
        let read_only = |cause| StateError::ReadOnly {
            path: name.to_string(),
            cause,
        };
        let mut conn = self.conn();
        if conn
            .is_readonly(rusqlite::DatabaseName::Main)
            .unwrap_or(false)
        {
            return Err(read_only(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY),
                Some("opened read-only".into()),
            )));
        }
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(read_only)?;
        tx.execute("DELETE FROM posture WHERE tenant = ''", [])
            .map_err(read_only)?;
        tx.rollback().map_err(read_only)
    }

    fn init(conn: Connection, name: &str) -> Result<Store, StateError> {
        let at = |cause| StateError::Open {
            path: name.to_string(),
            cause,
        };
        Store::init_schema(conn, name).map_err(|e| match e {
            StateError::Sql(cause)
                if cause.sqlite_error_code() == Some(rusqlite::ErrorCode::ReadOnly) =>
            {
                StateError::ReadOnly {
                    path: name.to_string(),
                    cause,
                }
            }
            StateError::Sql(cause) => at(cause),
            other => other,
        })
    }

    fn init_schema(mut conn: Connection, name: &str) -> Result<Store, StateError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StateError::TooNew {
                path: name.to_string(),
                found: version,
                known,
            });
        }
        let tx = conn.transaction()?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        tx.commit()?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

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
        tx.commit()?;
        Ok(changes)
    }

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

impl Store {
    /// Keeps the newest `keep` audit runs of `tenant` (and every run a finding still points at);
    /// findings resolved before the oldest kept run are dropped. Returns the runs deleted.
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
        tx.execute(
            "DELETE FROM findings WHERE tenant = ?1 AND resolved_at IS NOT NULL AND resolved_at < ?2",
            params![tenant, oldest_time],
        )?;
        let deleted = tx.execute(
            "DELETE FROM audits WHERE tenant = ?1 AND id < ?2 AND id NOT IN (SELECT last_audit FROM findings)",
            params![tenant, oldest_kept],
        )?;
        tx.commit()?;
        Ok(deleted)
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
        let conn = self.conn();
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

#[cfg(test)]
mod tests {
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

    fn keys(v: &[(String, String)]) -> Vec<String> {
        v.iter().map(|(r, s)| format!("{r}/{s}")).collect()
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
        assert_eq!(keys(&c1.new), ["phone-only/ann", "no-mfa-method/bob"]);
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
        assert!(c2.new.is_empty());
        assert_eq!(keys(&c2.resolved), ["no-mfa-method/bob"]);
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
        assert_eq!(keys(&c3.new), ["no-mfa-method/bob"]);
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
        assert!(c.new.is_empty() && c.resolved.is_empty());
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
        assert!(c.new.is_empty(), "known after a restart");
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
            err.contains("schema version 99, newer than this binary knows (5)"),
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
            let all = store.outbox_pending("all", 100).expect("pending");
            let keys: Vec<String> = all
                .iter()
                .map(|e| format!("{:?}/{}/{}", e.kind, e.rule, e.subject))
                .collect();
            assert_eq!(
                keys,
                ["New/phone-only/ann", "New/no-mfa-method/bob"],
                "an excepted finding is an accepted risk: no message"
            );
            let high_only = store.outbox_pending("high", 100).expect("pending");
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
        let left = store.outbox_pending("all", 100).expect("pending");
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
        let all = store.outbox_pending("all", 100).expect("pending");
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
                .outbox_group("high", last, EventKind::Resolved)
                .expect("group"),
            [("no-mfa-method".to_string(), "high".to_string(), 1)]
        );
        assert_eq!(
            store
                .outbox_delivered_group("high", last, EventKind::Resolved)
                .expect("delivered"),
            1
        );
        assert_eq!(
            store.outbox_counts().expect("counts"),
            [("all".to_string(), 2), ("high".to_string(), 1)]
        );
        assert_eq!(store.outbox_forget_except(&["all"]).expect("forget"), 1);
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
        let queued = store.outbox_pending("all", 100).expect("pending");
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
        assert!(c.new.is_empty() && c.resolved.is_empty(), "{c:?}");
        assert_eq!(c.kept, 1);
        assert_eq!(store.audits("t1", 1).expect("audits")[0].kept_open, 1);
        assert!(store
            .outbox_pending("all", 100)
            .expect("pending")
            .is_empty());
        let during = store.findings("t1", true).expect("findings");
        let bob =
            |v: &[StoredFinding]| v.iter().find(|f| f.subject == "bob").cloned().expect("bob");
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
        assert!(c.new.is_empty() && c.resolved.is_empty(), "{c:?}");
        assert!(store
            .outbox_pending("all", 100)
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
            let queued = store.outbox_pending("all", 100).expect("pending");
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
            .outbox_pending("all", 100)
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
        assert_eq!(deleted, 4);
        assert_eq!(store.audits("t1", 100).expect("audits").len(), 2);
        let all = store.findings("t1", true).expect("findings");
        assert_eq!(all.len(), 1, "bob was resolved before the oldest kept run");
        assert_eq!(all[0].first_seen.to_rfc3339(), "2026-11-01T00:00:00+00:00");
    }
}
