//! Read-only queries over the watcher's memory for the HTTP API and the helpdesk pages: detections
//! and security-info events a page at a time (newest first, keyset cursors), and the last watch
//! run. Kept apart from `watch.rs` (the recording side).
//!
//! The row readers repeat `watch.rs`'s columns: a column added there must be added here too.

use rusqlite::{params, OptionalExtension};

use super::watch::{
    detection_row, security_row, DETECTION_COLUMNS, DETECTION_COLUMN_COUNT, SECURITY_COLUMNS,
    SECURITY_COLUMN_COUNT,
};
use super::*;
use crate::watch::LockoutState;

/// Which detections a page holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DetectionFilter {
    /// Only this state.
    pub state: Option<LockoutState>,
    /// Only open ones (the default of the API); `false`: resolved ones too.
    pub open_only: bool,
    /// Only this user (object id or UPN, case-insensitive).
    pub user: Option<String>,
}

/// Which security-info events a page holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecurityEventFilter {
    /// Only this user (object id or UPN, case-insensitive).
    pub user: Option<String>,
    /// Only the notable ones (those that queued a message).
    pub notable_only: bool,
}

/// One page of a watcher query, newest first.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchPage<T> {
    pub items: Vec<T>,
    /// Where the next page starts ([`Cursor`] of (time, row id)); `None` on the last page.
    pub next_cursor: Option<String>,
    /// Rows the filter selects in all.
    pub total: u64,
}

/// The last watch run of a tenant: when, and what it recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WatchRunSummary {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub opened: i64,
    pub updated: i64,
    pub resolved: i64,
    pub security_events: i64,
    pub queued: i64,
}

/// The watcher's row readers (`watch.rs`), each row's id after its columns (the cursor's tie-break).
fn with_id<T>(
    read: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    id_at: usize,
) -> impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<(T, i64)> {
    move |r| Ok((read(r)?, r.get(id_at)?))
}

use rusqlite::types::Value;

/// Where a page starts: after a cursor, or at an offset (slower for deep pages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageStart {
    Cursor(Cursor),
    Offset(usize),
}

/// One page of `table` (newest first by `time_col`, then row id) under `wheres`.
#[allow(clippy::too_many_arguments)]
fn page_of<T>(
    conn: &rusqlite::Connection,
    columns: &str,
    table: &str,
    time_col: &str,
    mut wheres: Vec<String>,
    mut args: Vec<Value>,
    start: Option<&PageStart>,
    page_size: usize,
    row: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<(T, i64)>,
    time_of: fn(&T) -> DateTime<Utc>,
) -> Result<WatchPage<T>, StateError> {
    let total: i64 = conn.query_row(
        &format!(
            "SELECT COUNT(*) FROM {table} WHERE {}",
            wheres.join(" AND ")
        ),
        rusqlite::params_from_iter(args.iter()),
        |r| r.get(0),
    )?;
    let mut offset = 0usize;
    match start {
        Some(PageStart::Cursor(c)) => {
            let id: i64 = c.subject.parse().map_err(|_| {
                StateError::Invariant(
                    "not a cursor of this list (pass next_cursor back unchanged)".into(),
                )
            })?;
            let n = args.len();
            wheres.push(format!(
                "({time_col} < ?{a} OR ({time_col} = ?{a} AND id < ?{b}))",
                a = n + 1,
                b = n + 2
            ));
            args.push(Value::Text(c.rule.clone()));
            args.push(Value::Integer(id));
        }
        Some(PageStart::Offset(o)) => offset = *o,
        None => {}
    }
    let mut q = conn.prepare(&format!(
        "SELECT {columns} FROM {table} WHERE {} ORDER BY {time_col} DESC, id DESC LIMIT {} OFFSET {offset}",
        wheres.join(" AND "),
        page_size.saturating_add(1)
    ))?;
    let mut rows: Vec<(T, i64)> = q
        .query_map(rusqlite::params_from_iter(args.iter()), row)?
        .collect::<Result<_, _>>()?;
    let more = rows.len() > page_size;
    rows.truncate(page_size);
    let next_cursor = match rows.last() {
        Some((item, id)) if more => Some(
            Cursor {
                rule: ts(time_of(item)),
                subject: id.to_string(),
            }
            .encode(),
        ),
        _ => None,
    };
    Ok(WatchPage {
        items: rows.into_iter().map(|(t, _)| t).collect(),
        next_cursor,
        total: total.max(0) as u64,
    })
}

fn user_clause(wheres: &mut Vec<String>, args: &mut Vec<Value>, user: &Option<String>) {
    if let Some(u) = user {
        let n = args.len() + 1;
        wheres.push(format!(
            "(user_id = lower(?{n}) OR upn = ?{n} COLLATE NOCASE)"
        ));
        args.push(Value::Text(u.clone()));
    }
}

impl Store {
    /// One page of `tenant`'s detections under `filter`, newest opened first.
    pub fn detections_page(
        &self,
        tenant: &str,
        filter: &DetectionFilter,
        start: Option<&PageStart>,
        page_size: usize,
    ) -> Result<WatchPage<StoredDetection>, StateError> {
        let conn = self.reader()?;
        let mut wheres = vec!["tenant = ?1".to_string()];
        let mut args = vec![Value::Text(tenant.into())];
        if filter.open_only {
            wheres.push("resolved_at IS NULL".into());
        }
        if let Some(s) = filter.state {
            wheres.push(format!("state = ?{}", args.len() + 1));
            args.push(Value::Text(s.as_str().into()));
        }
        user_clause(&mut wheres, &mut args, &filter.user);
        page_of(
            &conn,
            &format!("{DETECTION_COLUMNS}, id"),
            "detections",
            "opened_at",
            wheres,
            args,
            start,
            page_size,
            with_id(detection_row, DETECTION_COLUMN_COUNT),
            |d| d.opened_at,
        )
    }

    /// One page of `tenant`'s security-info events under `filter`, newest first.
    pub fn security_events_page(
        &self,
        tenant: &str,
        filter: &SecurityEventFilter,
        start: Option<&PageStart>,
        page_size: usize,
    ) -> Result<WatchPage<StoredSecurityEvent>, StateError> {
        let conn = self.reader()?;
        let mut wheres = vec!["tenant = ?1".to_string()];
        let mut args = vec![Value::Text(tenant.into())];
        if filter.notable_only {
            wheres.push("notable IS NOT NULL".into());
        }
        user_clause(&mut wheres, &mut args, &filter.user);
        page_of(
            &conn,
            &format!("{SECURITY_COLUMNS}, id"),
            "security_events",
            "created",
            wheres,
            args,
            start,
            page_size,
            with_id(security_row, SECURITY_COLUMN_COUNT),
            |e| e.created,
        )
    }

    /// `tenant`'s last watch run, if any.
    pub fn last_watch_run(&self, tenant: &str) -> Result<Option<WatchRunSummary>, StateError> {
        let conn = self.reader()?;
        let run = conn
            .query_row(
                "SELECT id, at, opened, updated, resolved, security_events, queued FROM watch_runs
                 WHERE tenant = ?1 ORDER BY id DESC LIMIT 1",
                params![tenant],
                |r| {
                    Ok(WatchRunSummary {
                        id: r.get(0)?,
                        at: parse_ts(r.get(1)?)?,
                        opened: r.get(2)?,
                        updated: r.get(3)?,
                        resolved: r.get(4)?,
                        security_events: r.get(5)?,
                        queued: r.get(6)?,
                    })
                },
            )
            .optional()?;
        Ok(run)
    }
}

#[cfg(test)]
#[path = "watch_query_tests.rs"]
mod tests;
