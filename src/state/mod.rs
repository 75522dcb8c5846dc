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
    #[error("state database: {0}")]
    Invariant(String),
    #[error("the daemon is stopping: the audit was rolled back, not recorded")]
    Stopped,
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
#[cfg(test)]
mod paging_tests;
mod query;
mod record;
pub use record::{AlsoInTransaction, RunHead};
#[cfg(test)]
mod tests;
mod users;
mod watch;
mod watch_query;

use migrations::MIGRATIONS;
pub(crate) use query::refresh_counts_tx;
pub(crate) use users::record_users_tx;
pub use users::{StoredMethod, StoredTap, StoredUser, UserChange, UserChanges};
pub use watch::{
    activity_label, detection_severity, DetectionChange, NotedSecurityEvent, StoredDetection,
    StoredSecurityEvent, WatchRecord, WatchRecorded, WatchStream, SECURITY_INFO_RULE,
};
pub use watch_query::{
    DetectionFilter, PageStart, SecurityEventFilter, WatchPage, WatchRunSummary,
};

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

/// Which findings a page holds, by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StateFilter {
    #[default]
    Open,
    Resolved,
    All,
}

/// What the findings API selects: every field narrows (none: every open finding).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FindingFilter {
    pub state: StateFilter,
    pub rule: Option<String>,
    pub severity: Option<Severity>,
    /// A user principal name (case-insensitive) or object id.
    pub user: Option<String>,
}

/// Where a page of findings starts: after the finding with this (rule, subject). Clients see it
/// only encoded ([`Cursor::encode`]), as an opaque token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub rule: String,
    pub subject: String,
}

impl Cursor {
    /// base64url (no padding) of the JSON `[rule, subject]`.
    pub fn encode(&self) -> String {
        use base64::Engine;
        let json = serde_json::json!([self.rule, self.subject]).to_string();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    /// Reads a token made by [`Cursor::encode`]; the error says what is wrong with it.
    pub fn decode(token: &str) -> Result<Cursor, String> {
        use base64::Engine;
        if token.len() > 4096 {
            return Err(format!(
                "{} characters; a cursor is far shorter",
                token.len()
            ));
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.trim_end_matches('='))
            .map_err(|e| format!("not a cursor this API gave out (not base64url: {e})"))?;
        let (rule, subject): (String, String) = serde_json::from_slice(&bytes).map_err(|_| {
            "not a cursor this API gave out (pass next_cursor back unchanged)".to_string()
        })?;
        Ok(Cursor { rule, subject })
    }
}

/// One page of findings.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Page {
    pub items: Vec<StoredFinding>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<String>,
    /// Findings the filter selects in all (every page).
    pub total: u64,
}

/// Open and resolved findings of one (rule, severity, excepted), as the last audit left them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FindingCount {
    pub rule: String,
    pub severity: String,
    pub excepted: bool,
    pub open: i64,
    pub resolved: i64,
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

/// What a complete audit changed: findings new (or back after being resolved), resolved, and
/// rows written in all (an open finding that did not change is not written).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Changes {
    pub audit_id: i64,
    pub new: usize,
    pub resolved: usize,
    pub written: usize,
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

/// A finding's remediation: the catalogue's for its rule, filled in for the user, unless the row
/// stored its own (rows written before remediations were taken from the catalogue).
pub(crate) fn remediation_or_catalogue(rule: &str, upn: Option<&str>, stored: String) -> String {
    if !stored.is_empty() {
        return stored;
    }
    crate::evaluate::CATALOGUE
        .iter()
        .find(|r| r.id == rule)
        .map(|r| match upn {
            Some(upn) => r.remediation.replace("{upn}", upn),
            None => r.remediation.to_string(),
        })
        .unwrap_or_default()
}

/// Runs `f` on the store from async code, on the blocking pool: an audit being recorded holds
/// the writer for seconds, and the async threads must go on serving HTTP meanwhile.
pub async fn off_async<T, F>(store: &std::sync::Arc<Store>, f: F) -> Result<T, StateError>
where
    T: Send + 'static,
    F: FnOnce(&Store) -> Result<T, StateError> + Send + 'static,
{
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .unwrap_or_else(|e| Err(StateError::Invariant(format!("store task: {e}"))))
}

/// The store: one writer connection (recording, the outbox) and, for a database file, a small
/// pool of read-only connections for queries. In WAL mode a reader never waits for the writer:
/// it reads the last committed state while an audit is being recorded.
pub struct Store {
    conn: Mutex<Connection>,
    readers: Option<Readers>,
}

/// How many read-only connections a file store keeps (HTTP handlers and the publisher share them).
const READERS: usize = 4;

/// A bounded pool of read-only connections to the database file, opened as they are first needed.
struct Readers {
    path: std::path::PathBuf,
    pool: Mutex<Pool>,
    returned: std::sync::Condvar,
}

#[derive(Default)]
struct Pool {
    idle: Vec<Connection>,
    /// Connections opened so far (idle or lent), at most [`READERS`].
    opened: usize,
}

/// A connection to read from: one of the pool's, or the writer's for an in-memory store.
enum Reader<'a> {
    Writer(std::sync::MutexGuard<'a, Connection>),
    Pooled(&'a Readers, Option<Connection>),
}

impl std::ops::Deref for Reader<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match self {
            Reader::Writer(c) => c,
            Reader::Pooled(_, c) => c.as_ref().expect("a lent connection is held until drop"),
        }
    }
}

impl std::ops::DerefMut for Reader<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        match self {
            Reader::Writer(c) => c,
            Reader::Pooled(_, c) => c.as_mut().expect("a lent connection is held until drop"),
        }
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Reader::Pooled(readers, conn) = self {
            if let Some(conn) = conn.take() {
                readers.lock().idle.push(conn);
                readers.returned.notify_one();
            }
        }
    }
}

impl Readers {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self) -> Result<Reader<'_>, StateError> {
        let mut pool = self.lock();
        loop {
            if let Some(conn) = pool.idle.pop() {
                return Ok(Reader::Pooled(self, Some(conn)));
            }
            if pool.opened < READERS {
                pool.opened += 1;
                drop(pool);
                return match self.open() {
                    Ok(conn) => Ok(Reader::Pooled(self, Some(conn))),
                    Err(e) => {
                        self.lock().opened -= 1;
                        Err(e)
                    }
                };
            }
            pool = self.returned.wait(pool).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn open(&self) -> Result<Connection, StateError> {
        use rusqlite::OpenFlags;
        let at = |cause| StateError::Open {
            path: self.path.display().to_string(),
            cause,
        };
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(at)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(at)?;
        Ok(conn)
    }
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
        let mut store = Store::init(conn, &name)?;
        store.check_writable(&name)?;
        store.readers = Some(Readers {
            path: path.to_path_buf(),
            pool: Mutex::new(Pool::default()),
            returned: std::sync::Condvar::new(),
        });
        Ok(store)
    }

    /// An in-memory store (tests, the demo). It reads through its one connection: a private
    /// memory database cannot be opened twice, and a shared-cache one locks tables rather than
    /// keeping WAL snapshots, so its readers would wait for the writer all the same.
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
        // A first audit of a large tenant writes hundreds of MB in one transaction: once it is
        // checkpointed, the WAL file shrinks back to this instead of staying that large.
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
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
            readers: None,
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection for queries: a pooled read-only one (it sees the last committed state and
    /// never waits for a recording in progress), or the writer's for an in-memory store.
    /// It blocks while every pooled connection is lent: call it off the async threads.
    fn reader(&self) -> Result<Reader<'_>, StateError> {
        match &self.readers {
            Some(pool) => pool.get(),
            None => Ok(Reader::Writer(self.conn())),
        }
    }
}
