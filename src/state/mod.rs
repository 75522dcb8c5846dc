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
use rusqlite::Connection;
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

mod migrations;
mod outbox;
mod query;
mod record;
#[cfg(test)]
mod tests;
mod users;

use migrations::MIGRATIONS;
pub use users::{StoredMethod, StoredTap, StoredUser, UserChange, UserChanges};

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
}
