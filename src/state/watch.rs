//! The watcher's memory (issue 12): where each stream has read to, the lockout detections, the
//! security-info events, and their webhook messages.
//!
//! [`Store::record_watch`] is one transaction: the detections it opens, updates and resolves,
//! the security events it keeps, the outbox messages of each new detection, each resolution and
//! each notable security event, and the streams' watermarks. A message is queued if and only if
//! its change is recorded, and recording is idempotent on what it is given: a detection already
//! open is updated (no second message), a resolution of nothing open is nothing, a security event
//! already kept (by Graph's event id) is skipped. So a watcher that crashes before saving its
//! watermark and hands the same changes again after a restart sends nothing twice.
//!
//! Watcher messages go to the same outbox as the audit's, as their own groups: `audit_id` is the
//! negated id of the watch run that queued them (audits' ids are positive), `rule` the lockout
//! state (`locked-out`, …) or `security-info`, `subject` the user's object id.

use rusqlite::{params, OptionalExtension, Transaction};
use serde::de::DeserializeOwned;

use super::*;
use crate::watch::{Detection, LockoutState, SecurityInfoActivity, SecurityInfoEvent};

/// One of the watcher's incremental streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WatchStream {
    SignIns,
    DirectoryAudits,
}

impl WatchStream {
    pub fn as_str(self) -> &'static str {
        match self {
            WatchStream::SignIns => "sign-ins",
            WatchStream::DirectoryAudits => "directory-audits",
        }
    }
}

/// What the classifier decided about one user's lockout state: its own `Change`, recorded as is.
pub use crate::watch::classify::Change as DetectionChange;

/// A security-info event to keep, with its words joined with the user's posture ("bob deleted
/// his phone number; he now has no backup method") and, when it is worth a message, how severe.
#[derive(Clone, Debug, PartialEq)]
pub struct NotedSecurityEvent {
    pub event: SecurityInfoEvent,
    pub detail: String,
    /// `Some`: queue a webhook message at this severity.
    pub notable: Option<Severity>,
}

/// One watcher run's changes, recorded together.
pub struct WatchRecord<'a> {
    pub tenant: &'a str,
    /// When the run recorded them (a detection's `opened_at`, a resolution's default time).
    pub at: DateTime<Utc>,
    pub changes: &'a [DetectionChange],
    pub security: &'a [NotedSecurityEvent],
    /// The streams' watermarks after the reads these changes came from (JSON), saved with them.
    pub watermarks: &'a [(WatchStream, String)],
    pub subscribers: &'a [Subscriber],
    /// The way back in for a detection (the recovery step with its command), for its message
    /// and its row (`detections.remediation`).
    pub remediation: &'a dyn Fn(&Detection) -> String,
    /// The classifier's state after these changes (JSON), saved with them; `None`: unchanged.
    pub classifier: Option<&'a str>,
}

/// What [`Store::record_watch`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchRecorded {
    pub run_id: i64,
    pub opened: usize,
    pub updated: usize,
    pub resolved: usize,
    pub security_events: usize,
    /// Outbox messages queued (one per subscriber and message).
    pub queued: usize,
    /// The states of the detections opened / resolved (one entry each), for the counters.
    pub opened_states: Vec<LockoutState>,
    pub resolved_states: Vec<LockoutState>,
    /// Security events kept that were notable.
    pub notable: usize,
}

impl WatchRecorded {
    /// Whether the run changed what is open or kept (so alerts and figures are recomputed).
    pub fn changed(&self) -> bool {
        self.opened + self.updated + self.resolved + self.security_events > 0
    }
}

/// A detection as the store knows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredDetection {
    pub tenant: String,
    pub user: String,
    pub upn: String,
    pub state: String,
    pub codes: Vec<(i32, u32)>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub opened_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub detail: String,
    /// The way back in when it was opened: the recovery's first step (title, exact command, and
    /// the warning of a destructive one); empty when none was given.
    pub remediation: String,
}

/// A security-info event as the store knows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredSecurityEvent {
    pub tenant: String,
    pub event_id: String,
    pub created: DateTime<Utc>,
    pub activity: String,
    pub activity_name: String,
    pub by_admin: bool,
    pub initiated_by: String,
    pub user: String,
    pub upn: String,
    pub method: Option<String>,
    pub detail: String,
    pub notable: Option<String>,
}

/// The severity of a detection's message.
pub fn detection_severity(state: LockoutState) -> Severity {
    match state {
        LockoutState::MfaFraudReported => Severity::Critical,
        LockoutState::LockedOut | LockoutState::MfaPromptBombing => Severity::High,
        LockoutState::RegistrationBlocked => Severity::Medium,
    }
}

/// The label of a security-info activity in the store.
pub fn activity_label(a: SecurityInfoActivity) -> &'static str {
    match a {
        SecurityInfoActivity::Registered => "registered",
        SecurityInfoActivity::Updated => "updated",
        SecurityInfoActivity::Deleted => "deleted",
        SecurityInfoActivity::DefaultChanged => "default-changed",
        SecurityInfoActivity::TapIssued => "tap-issued",
        SecurityInfoActivity::Other => "other",
    }
}

/// The outbox `rule` of a security-info message.
pub const SECURITY_INFO_RULE: &str = "security-info";

fn codes_json(codes: &[(i32, u32)]) -> String {
    serde_json::to_string(codes).unwrap_or_else(|_| "[]".into())
}

pub(super) fn detection_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredDetection> {
    let codes: String = r.get(4)?;
    Ok(StoredDetection {
        tenant: r.get(0)?,
        user: r.get(1)?,
        upn: r.get(2)?,
        state: r.get(3)?,
        codes: serde_json::from_str(&codes).unwrap_or_default(),
        first_seen: parse_ts(r.get(5)?)?,
        last_seen: parse_ts(r.get(6)?)?,
        opened_at: parse_ts(r.get(7)?)?,
        resolved_at: r.get::<_, Option<String>>(8)?.map(parse_ts).transpose()?,
        detail: r.get(9)?,
        remediation: r.get(10)?,
    })
}

pub(super) const DETECTION_COLUMNS: &str =
    "tenant, user_id, upn, state, codes, first_seen, last_seen, opened_at, resolved_at, detail, remediation";
pub(super) const DETECTION_COLUMN_COUNT: usize = 11;

pub(super) fn security_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredSecurityEvent> {
    Ok(StoredSecurityEvent {
        tenant: r.get(0)?,
        event_id: r.get(1)?,
        created: parse_ts(r.get(2)?)?,
        activity: r.get(3)?,
        activity_name: r.get(4)?,
        by_admin: r.get(5)?,
        initiated_by: r.get(6)?,
        user: r.get(7)?,
        upn: r.get(8)?,
        method: r.get(9)?,
        detail: r.get(10)?,
        notable: r.get(11)?,
    })
}

pub(super) const SECURITY_COLUMNS: &str = "tenant, event_id, created, activity, activity_name, by_admin, initiated_by, user_id, upn, method, detail, notable";
pub(super) const SECURITY_COLUMN_COUNT: usize = 12;

/// One outbox message of the watcher.
struct Message<'a> {
    kind: EventKind,
    rule: &'a str,
    subject: &'a str,
    upn: &'a str,
    severity: Severity,
    detail: &'a str,
    remediation: &'a str,
    first_seen: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
}

fn enqueue(
    tx: &Transaction<'_>,
    tenant: &str,
    group: i64,
    subscribers: &[Subscriber],
    m: &Message<'_>,
) -> Result<usize, StateError> {
    let mut q = tx.prepare_cached(
        "INSERT INTO outbox (webhook, tenant, audit_id, kind, rule, subject, user_principal_name, severity, detail, remediation, first_seen, resolved_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    let mut n = 0;
    for s in subscribers.iter().filter(|s| m.severity >= s.min_severity) {
        q.execute(params![
            s.webhook,
            tenant,
            group,
            m.kind.as_str(),
            m.rule,
            m.subject,
            m.upn,
            m.severity.as_str(),
            m.detail,
            m.remediation,
            ts(m.first_seen),
            m.resolved_at.map(ts),
        ])?;
        n += 1;
    }
    Ok(n)
}

impl Store {
    /// The watermark saved for `tenant`'s `stream` (the watcher's own type, kept as JSON).
    pub fn load_watermark<T: DeserializeOwned>(
        &self,
        tenant: &str,
        stream: WatchStream,
    ) -> Result<Option<T>, StateError> {
        let conn = self.reader()?;
        let raw: Option<String> = conn
            .query_row(
                "SELECT record FROM watch_watermarks WHERE tenant = ?1 AND stream = ?2",
                params![tenant, stream.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        raw.map(|s| {
            serde_json::from_str(&s).map_err(|e| {
                StateError::Invariant(format!(
                    "the {} watermark of {tenant} is unreadable: {e}",
                    stream.as_str()
                ))
            })
        })
        .transpose()
    }

    /// Saves `tenant`'s `stream` watermark on its own (a run that found nothing to record).
    pub fn save_watermark<T: Serialize>(
        &self,
        tenant: &str,
        stream: WatchStream,
        watermark: &T,
        at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let json = serde_json::to_string(watermark)
            .map_err(|e| StateError::Invariant(format!("watermark: {e}")))?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        save_watermark_tx(&tx, tenant, stream, &json, at)?;
        tx.commit()?;
        Ok(())
    }

    /// Records one watcher run (module doc): one transaction.
    pub fn record_watch(&self, w: &WatchRecord<'_>) -> Result<WatchRecorded, StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO watch_runs (tenant, at) VALUES (?1, ?2)",
            params![w.tenant, ts(w.at)],
        )?;
        let run_id = tx.last_insert_rowid();
        let group = -run_id;
        let mut done = WatchRecorded {
            run_id,
            ..WatchRecorded::default()
        };
        for change in w.changes {
            match change {
                DetectionChange::Opened(d) | DetectionChange::Updated(d) => {
                    let user = d.user.to_string();
                    let updated = tx.execute(
                        "UPDATE detections SET upn = ?4, codes = ?5, first_seen = MIN(first_seen, ?6),
                            last_seen = MAX(last_seen, ?7), detail = ?8
                         WHERE tenant = ?1 AND user_id = ?2 AND state = ?3 AND resolved_at IS NULL",
                        params![
                            w.tenant,
                            user,
                            d.state.as_str(),
                            &*d.upn,
                            codes_json(&d.codes),
                            ts(d.first_seen),
                            ts(d.last_seen),
                            d.detail
                        ],
                    )?;
                    if updated > 0 {
                        done.updated += 1;
                        continue;
                    }
                    let remediation = (w.remediation)(d);
                    tx.execute(
                        "INSERT INTO detections (tenant, user_id, upn, state, codes, first_seen, last_seen, opened_at, resolved_at, detail, remediation)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, ?9, ?10)",
                        params![
                            w.tenant,
                            user,
                            &*d.upn,
                            d.state.as_str(),
                            codes_json(&d.codes),
                            ts(d.first_seen),
                            ts(d.last_seen),
                            ts(w.at),
                            d.detail,
                            remediation
                        ],
                    )?;
                    done.opened += 1;
                    done.opened_states.push(d.state);
                    done.queued += enqueue(
                        &tx,
                        w.tenant,
                        group,
                        w.subscribers,
                        &Message {
                            kind: EventKind::New,
                            rule: d.state.as_str(),
                            subject: &user,
                            upn: &d.upn,
                            severity: detection_severity(d.state),
                            detail: &d.detail,
                            remediation: &remediation,
                            first_seen: d.first_seen,
                            resolved_at: None,
                        },
                    )?;
                }
                DetectionChange::Resolved { user, state, at } => {
                    let user = user.to_string();
                    let open: Option<(i64, String, String, String)> = tx
                        .query_row(
                            "SELECT id, upn, detail, first_seen FROM detections
                             WHERE tenant = ?1 AND user_id = ?2 AND state = ?3 AND resolved_at IS NULL",
                            params![w.tenant, user, state.as_str()],
                            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                        )
                        .optional()?;
                    let Some((id, upn, detail, first_seen)) = open else {
                        continue;
                    };
                    tx.execute(
                        "UPDATE detections SET resolved_at = ?1 WHERE id = ?2",
                        params![ts(*at), id],
                    )?;
                    done.resolved += 1;
                    done.resolved_states.push(*state);
                    done.queued += enqueue(
                        &tx,
                        w.tenant,
                        group,
                        w.subscribers,
                        &Message {
                            kind: EventKind::Resolved,
                            rule: state.as_str(),
                            subject: &user,
                            upn: &upn,
                            severity: detection_severity(*state),
                            detail: &detail,
                            remediation: "",
                            first_seen: parse_ts(first_seen)?,
                            resolved_at: Some(*at),
                        },
                    )?;
                }
            }
        }
        for s in w.security {
            let e = &s.event;
            let user = e.user.to_string();
            let inserted = tx.execute(
                "INSERT INTO security_events (tenant, event_id, created, activity, activity_name, by_admin, initiated_by, user_id, upn, method, detail, notable)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (tenant, event_id) DO NOTHING",
                params![
                    w.tenant,
                    &*e.id,
                    ts(e.created),
                    activity_label(e.activity),
                    &*e.activity_name,
                    e.by_admin,
                    &*e.initiated_by,
                    user,
                    &*e.upn,
                    e.method.as_deref(),
                    s.detail,
                    s.notable.map(|n| n.as_str()),
                ],
            )?;
            if inserted == 0 {
                continue;
            }
            done.security_events += 1;
            if let Some(severity) = s.notable {
                done.notable += 1;
                done.queued += enqueue(
                    &tx,
                    w.tenant,
                    group,
                    w.subscribers,
                    &Message {
                        kind: EventKind::New,
                        rule: SECURITY_INFO_RULE,
                        subject: &user,
                        upn: &e.upn,
                        severity,
                        detail: &s.detail,
                        remediation: "",
                        first_seen: e.created,
                        resolved_at: None,
                    },
                )?;
            }
        }
        for (stream, json) in w.watermarks {
            save_watermark_tx(&tx, w.tenant, *stream, json, w.at)?;
        }
        if let Some(json) = w.classifier {
            tx.execute(
                "INSERT INTO watch_classifier (tenant, record, saved_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant) DO UPDATE SET record = excluded.record, saved_at = excluded.saved_at",
                params![w.tenant, json, ts(w.at)],
            )?;
        }
        tx.execute(
            "UPDATE watch_runs SET opened = ?2, updated = ?3, resolved = ?4, security_events = ?5, queued = ?6 WHERE id = ?1",
            params![
                run_id,
                done.opened as i64,
                done.updated as i64,
                done.resolved as i64,
                done.security_events as i64,
                done.queued as i64
            ],
        )?;
        tx.commit()?;
        Ok(done)
    }

    /// Forgets `tenant`'s watcher history older than `before`: detections resolved before it,
    /// security events created before it, and watch runs before it (their queued messages stay
    /// until delivered). Open detections are kept however old. Returns the rows deleted.
    pub fn prune_watch(&self, tenant: &str, before: DateTime<Utc>) -> Result<usize, StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let cut = ts(before);
        let mut n = tx.execute(
            "DELETE FROM detections WHERE tenant = ?1 AND resolved_at IS NOT NULL AND resolved_at < ?2",
            params![tenant, cut],
        )?;
        n += tx.execute(
            "DELETE FROM security_events WHERE tenant = ?1 AND created < ?2",
            params![tenant, cut],
        )?;
        n += tx.execute(
            "DELETE FROM watch_runs WHERE tenant = ?1 AND at < ?2",
            params![tenant, cut],
        )?;
        tx.commit()?;
        Ok(n)
    }

    /// The lockout classifier's state saved by the last [`Store::record_watch`] (JSON).
    pub fn load_classifier(&self, tenant: &str) -> Result<Option<String>, StateError> {
        let conn = self.reader()?;
        Ok(conn
            .query_row(
                "SELECT record FROM watch_classifier WHERE tenant = ?1",
                [tenant],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Open detections of `tenant` counted by error code (a detection counts once per code).
    pub fn detection_code_counts(&self, tenant: &str) -> Result<Vec<(i32, i64)>, StateError> {
        let mut by_code: std::collections::BTreeMap<i32, i64> = Default::default();
        for d in self.open_detections(tenant)? {
            for (code, _) in &d.codes {
                *by_code.entry(*code).or_default() += 1;
            }
        }
        Ok(by_code.into_iter().collect())
    }

    /// Distinct users of `tenant` with an open `locked-out` detection.
    pub fn locked_out_users(&self, tenant: &str) -> Result<i64, StateError> {
        let conn = self.reader()?;
        Ok(conn.query_row(
            "SELECT COUNT(DISTINCT user_id) FROM detections WHERE tenant = ?1 AND state = ?2 AND resolved_at IS NULL",
            params![tenant, LockoutState::LockedOut.as_str()],
            |r| r.get(0),
        )?)
    }

    /// Every open detection of `tenant` (for metrics and alerts), by state then user.
    pub fn open_detections(&self, tenant: &str) -> Result<Vec<StoredDetection>, StateError> {
        let conn = self.reader()?;
        let mut q = conn.prepare(&format!(
            "SELECT {DETECTION_COLUMNS} FROM detections WHERE tenant = ?1 AND resolved_at IS NULL
             ORDER BY state, upn, user_id"
        ))?;
        let rows = q.query_map([tenant], detection_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A user's detections (open and resolved), newest first; `user` is an object id or a UPN
    /// (case-insensitive).
    pub fn user_detections(
        &self,
        tenant: &str,
        user: &str,
    ) -> Result<Vec<StoredDetection>, StateError> {
        let conn = self.reader()?;
        let mut q = conn.prepare(&format!(
            "SELECT {DETECTION_COLUMNS} FROM detections
             WHERE tenant = ?1 AND (user_id = lower(?2) OR upn = ?2 COLLATE NOCASE)
             ORDER BY opened_at DESC, id DESC"
        ))?;
        let rows = q.query_map(params![tenant, user], detection_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A user's security-info events, newest first; `user` as for [`Store::user_detections`].
    pub fn user_security_events(
        &self,
        tenant: &str,
        user: &str,
    ) -> Result<Vec<StoredSecurityEvent>, StateError> {
        let conn = self.reader()?;
        let mut q = conn.prepare(&format!(
            "SELECT {SECURITY_COLUMNS} FROM security_events
             WHERE tenant = ?1 AND (user_id = lower(?2) OR upn = ?2 COLLATE NOCASE)
             ORDER BY created DESC, id DESC"
        ))?;
        let rows = q.query_map(params![tenant, user], security_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Open detections of `tenant` counted by state (every state, zero included).
    pub fn detection_counts(&self, tenant: &str) -> Result<Vec<(LockoutState, i64)>, StateError> {
        let conn = self.reader()?;
        let mut q = conn.prepare(
            "SELECT state, COUNT(*) FROM detections WHERE tenant = ?1 AND resolved_at IS NULL GROUP BY state",
        )?;
        let counted: Vec<(String, i64)> = q
            .query_map([tenant], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(LockoutState::ALL
            .into_iter()
            .map(|s| {
                let n = counted
                    .iter()
                    .find(|(label, _)| label == s.as_str())
                    .map_or(0, |(_, n)| *n);
                (s, n)
            })
            .collect())
    }
}

fn save_watermark_tx(
    tx: &Transaction<'_>,
    tenant: &str,
    stream: WatchStream,
    json: &str,
    at: DateTime<Utc>,
) -> Result<(), StateError> {
    tx.execute(
        "INSERT INTO watch_watermarks (tenant, stream, record, saved_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tenant, stream) DO UPDATE SET record = excluded.record, saved_at = excluded.saved_at",
        params![tenant, stream.as_str(), json, ts(at)],
    )?;
    Ok(())
}

#[cfg(test)]
#[path = "watch_tests.rs"]
mod tests;
