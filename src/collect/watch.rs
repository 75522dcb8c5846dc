//! The watcher's incremental reads (issue 12): beta sign-ins and the directory audit log's
//! security-info entries, each from a [`Watermark`] with an overlap, deduplicated by id.
//!
//! **Watermark.** The newest event time returned so far (it never moves back) and the ids
//! returned within `overlap` of it. An event Graph ingests late (up to `overlap` after a newer
//! one) is still read; its id is what tells it from one already returned. Once an event's time
//! is more than `overlap` behind the newest, its id is dropped, and any event that old is refused
//! whatever its id: a window once read past the overlap is never read again, nothing is returned
//! twice, and memory is the ids of one overlap window. Every row, however read, goes through
//! [`Watermark::admit`].
//!
//! **Fresh read and late sweep (sign-ins).** Re-reading the overlap whole every run costs
//! `rows in the overlap / 1,000` pages: 150 a run at 10,000 sign-ins a minute and a 15-min
//! overlap. So a sign-in read is two parts ([`choose_sweep`]):
//! - the *fresh read*, from `newest` on (the ids at that second are known and deduplicated);
//! - the overlap `[newest - overlap, newest]`, either re-read whole with the fresh read (one
//!   listing from `newest - overlap`, as before: cheap at low volume, and it also sees late
//!   rows the classifier does not care about), or, when that would cost more pages than a
//!   filtered *sweep*, swept: one query per code the classifier knows
//!   ([`crate::watch::classify::ERROR_CODES`], `status/errorCode eq`) and one per user it tracks
//!   (`userId eq`, for their late MFA successes; at most [`WatchOptions::max_sweep_users`], oldest
//!   detection first, and few enough that the sweep stays cheaper: [`sweep_user_count`]), each `createdDateTime ge newest-overlap and le newest`, oldest first. The
//!   whole window's cost is known without asking Graph: the ids kept in `seen` ARE its rows.
//!   A late event the sweep cannot find (a success of an untracked user, a code the classifier
//!   ignores) changes no detection.
//!
//! A sweep is bounded by the run's page budget: the fresh read keeps
//! [`WatchOptions::sweep_pages`] of `max_sign_in_pages` for it, and the sweep takes whatever the
//! fresh read left. Queries not read to their end are kept in the watermark
//! ([`Watermark::sweep`]) and resumed next run, in order, each from the time of its last row read
//! (rows come oldest first; those at that second again are known by id) within the new window; a
//! new sweep starts once all are done. A query that cannot move on (a whole page in one second)
//! is given up, logged and counted (`Sweep::dropped`). While an audit is running
//! ([`WatchOptions::while_auditing`]) the sweep is deferred, at most [`MAX_DEFERRED_SWEEPS`]
//! runs in a row. Limit: a late event is found if it is ingested while its time is still within
//! the overlap of `newest` when the query for its code or user runs.
//!
//! Directory-audit entries are few: that stream is re-read whole from `newest - overlap`.
//!
//! **Failure.** A read works on a copy of the watermark and hands the new one back only with its
//! events: a failed read (403, licence, throttled past retries, a broken page), fresh or sweep,
//! returns a [`WatchError`] naming the endpoint and the caller's watermark is unchanged.
//!
//! **Pacing.** Both streams are in Graph's reports class (5 requests / 10 s per app and tenant),
//! the bucket the audit's registration sweep uses. They go through the same [`GraphClient`] (its
//! pacer is shared by every clone), so the watcher's pages, fresh and sweep, take their tokens
//! from the audit's bucket, in arrival order with the audit's (the pacer is first come, first
//! served: neither can starve the other). The watcher's share is bounded too: a run reads at most
//! `max_sign_in_pages` pages of sign-ins (fresh and sweep together; at least one each) and
//! `max_audit_pages` of directory audits; a fresh read with more to read is marked behind and
//! continues from the newest event read next run, so a burst of sign-ins is read over a few runs
//! rather than in one run that would hold the bucket. Stopping early is only sound when the rows
//! come oldest first (`$orderby` asc, documented for both): a server that sends them in another
//! order is read to the end of the listing, cap or not. [`WatchOptions::reports_share`] gives the
//! bound: with the defaults (4 + 2 pages every 120 s) at most 6 of the 57 requests the client
//! allows itself per 120 s, about 11 %; while an audit runs, 2 + 1.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{convert, encode, wire};
use crate::graph::{GraphClient, GraphError, ThrottleClass};
use crate::watch::classify::ERROR_CODES;
use crate::watch::{SecurityInfoEvent, SignInEvent};

/// The endpoint label of the watcher's sign-in reads (metrics, errors).
pub const SIGN_INS_ENDPOINT: &str = "watchSignIns";
/// The endpoint label of the watcher's directory-audit reads.
pub const SECURITY_INFO_ENDPOINT: &str = "watchDirectoryAudits";
/// The directory audit log's service for security-info changes (`loggedByService`).
pub const AUTHENTICATION_METHODS_SERVICE: &str = "Authentication Methods";

/// Where a stream has read to (module doc). Serialisable: the store keeps one per tenant and
/// stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    /// The newest event time returned so far; never moves back.
    pub newest: Option<DateTime<Utc>>,
    /// Where the first read started (no event returned yet): reads start there until one is.
    pub start: Option<DateTime<Utc>>,
    /// Ids returned whose time is within the overlap of `newest`, with their time.
    pub seen: BTreeMap<String, DateTime<Utc>>,
    /// The last read stopped at its page cap: the next continues from `newest`.
    pub behind: bool,
    /// The late sweep in progress (module doc).
    #[serde(default, skip_serializing_if = "Sweep::is_idle")]
    pub sweep: Sweep,
}

/// The late sweep of the overlap (module doc): the queries not yet read to their end, and
/// counts for the logs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sweep {
    /// Queries of the sweep in progress still to read, in order.
    #[serde(default)]
    pub pending: Vec<SweepQuery>,
    /// Runs in a row the sweep was deferred (an audit running).
    #[serde(default)]
    pub deferred: u32,
    /// Sweeps started and read to their end.
    #[serde(default)]
    pub started: u64,
    #[serde(default)]
    pub completed: u64,
    /// Queries given up (a page of rows in one second: cannot move on by time).
    #[serde(default)]
    pub dropped: u64,
}

impl Sweep {
    fn is_idle(&self) -> bool {
        *self == Sweep::default()
    }
}

/// One query of a sweep: the filter, and where to go on from (the time of the last row read
/// when it stopped at the run's budget).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepQuery {
    pub filter: SweepFilter,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<DateTime<Utc>>,
}

/// What a sweep query asks for besides the window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepFilter {
    /// `status/errorCode eq` a code of the classifier's.
    Code(i32),
    /// `userId eq` a user the classifier tracks.
    User(String),
}

/// What a run's sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Pages the sweep read (counted in [`WatchRead::pages`] too).
    pub pages: u32,
    /// Events found by the sweep (late: never returned before).
    pub late: u64,
    /// Queries left for the next run.
    pub pending: u32,
    /// The sweep was deferred this run.
    pub deferred: bool,
}

impl Watermark {
    /// Events older than this are refused: `newest - overlap`, or the first read's start.
    pub fn cutoff(&self, overlap: Duration) -> Option<DateTime<Utc>> {
        match self.newest {
            Some(n) => Some(n - overlap),
            None => self.start,
        }
    }

    /// The lower bound (`ge`) of the next read.
    pub fn read_from(&self, overlap: Duration) -> Option<DateTime<Utc>> {
        match self.newest {
            Some(n) if self.behind => Some(n),
            Some(n) => Some(n - overlap),
            None => self.start,
        }
    }

    /// Whether the event `id` at `created` was never returned (and is not older than `cutoff`,
    /// fixed for the whole read); if so it is now counted as returned.
    pub fn admit(
        &mut self,
        id: &str,
        created: DateTime<Utc>,
        cutoff: Option<DateTime<Utc>>,
    ) -> bool {
        if cutoff.is_some_and(|c| created < c) || self.seen.contains_key(id) {
            return false;
        }
        self.seen.insert(id.to_string(), created);
        if self.newest.is_none_or(|n| created > n) {
            self.newest = Some(created);
        }
        true
    }

    /// Drops the ids older than the overlap: any such event is refused by its time from now on.
    pub fn prune(&mut self, overlap: Duration) {
        if let Some(c) = self.cutoff(overlap) {
            self.seen.retain(|_, t| *t >= c);
        }
    }
}

/// How the watcher reads.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchOptions {
    /// How far behind the newest event a late one is still read (Graph ingests sign-ins minutes
    /// after they happen, not in order).
    pub overlap: Duration,
    /// How far back the first read of a stream looks.
    pub first_lookback: Duration,
    /// Pages of sign-ins one run reads at most (1,000 each).
    pub max_sign_in_pages: u32,
    /// Pages of directory-audit entries one run reads at most (999 each).
    pub max_audit_pages: u32,
    /// Pages of `max_sign_in_pages` kept from the fresh read for the late sweep (at least 1).
    pub sweep_pages: u32,
    /// Tracked users swept for per run at most (oldest detection first).
    pub max_sweep_users: usize,
    /// Defer the late sweep (an audit is running), at most [`MAX_DEFERRED_SWEEPS`] runs in a row.
    pub defer_sweep: bool,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            overlap: Duration::minutes(15),
            first_lookback: Duration::hours(1),
            max_sign_in_pages: 4,
            max_audit_pages: 2,
            sweep_pages: 1,
            max_sweep_users: 20,
            defer_sweep: false,
        }
    }
}

impl WatchOptions {
    /// The caps for a watcher that runs every `interval` and may spend `share` (0–1) of the
    /// reports budget the client allows itself (`reports_per_10s × headroom`, unscaled: the
    /// caps are in pages per run whatever the time scale): the directory-audit stream keeps its
    /// default 2 pages, the sign-ins take the rest (at least 1). With the defaults (120 s, 50 %):
    /// 26 pages, 13,000 sign-ins a minute; the audit's registration sweep keeps the other half
    /// while sign-ins are that heavy, and all of it when they are not (a run reads only what
    /// there is).
    pub fn for_share(
        interval: std::time::Duration,
        pacing: &crate::graph::Pacing,
        share: f64,
    ) -> WatchOptions {
        let d = WatchOptions::default();
        let per_interval =
            pacing.reports_per_10s * pacing.headroom.clamp(0.01, 1.0) * interval.as_secs_f64()
                / 10.0;
        let pages = (per_interval * share.clamp(0.0, 1.0)).floor() as u32;
        let max_sign_in_pages = pages.saturating_sub(d.max_audit_pages).max(1);
        WatchOptions {
            max_sign_in_pages,
            // A sixth of the sign-in pages for the sweep: 4 of 26 with the defaults.
            sweep_pages: (max_sign_in_pages / 6).max(1),
            ..d
        }
    }

    /// The small budget of a run while an audit is in flight (it shares the reports bucket):
    /// the fresh read at most 2 pages of sign-ins and 1 of directory audits, the late sweep
    /// deferred (at most [`MAX_DEFERRED_SWEEPS`] runs in a row, then one page of it).
    pub fn while_auditing(&self) -> WatchOptions {
        WatchOptions {
            max_sign_in_pages: self.max_sign_in_pages.min(2),
            max_audit_pages: self.max_audit_pages.min(1),
            sweep_pages: 1,
            defer_sweep: true,
            ..self.clone()
        }
    }

    /// The most of the reports budget the watcher can take when it runs every `interval`
    /// against a client allowing `reports_per_10s × headroom` (fraction, may exceed 1 when
    /// the interval is too short for the caps).
    pub fn reports_share(
        &self,
        interval: std::time::Duration,
        pacing: &crate::graph::Pacing,
    ) -> f64 {
        let per_interval =
            pacing.reports_per_10s * pacing.headroom.clamp(0.01, 1.0) * interval.as_secs_f64()
                / 10.0;
        f64::from(self.max_sign_in_pages + self.max_audit_pages)
            / per_interval.max(f64::MIN_POSITIVE)
    }
}

/// One run's read of a stream: the events never returned before, and the watermark to keep
/// once they are recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchRead<T> {
    pub events: Vec<T>,
    pub watermark: Watermark,
    /// Pages requested and rows Graph returned (duplicates included).
    pub pages: u32,
    pub rows: u64,
    /// Stopped at the page cap: there is more to read.
    pub truncated: bool,
    /// The late sweep's part (sign-ins only).
    pub sweep: SweepReport,
}

/// A watcher read that failed; the watermark it started from is unchanged.
#[derive(Debug, Error)]
pub enum WatchError {
    #[error("{endpoint}: Graph refused for want of an Entra ID P1/P2 licence (or could not read it: grant Directory.Read.All): {source}")]
    Unlicensed {
        endpoint: &'static str,
        source: GraphError,
    },
    #[error("{endpoint}: permission refused (the watcher needs AuditLog.Read.All): {source}")]
    Forbidden {
        endpoint: &'static str,
        source: GraphError,
    },
    #[error("{endpoint}: read failed: {source}")]
    Failed {
        endpoint: &'static str,
        source: GraphError,
    },
}

impl WatchError {
    fn from_graph(endpoint: &'static str, source: GraphError) -> WatchError {
        if source.is_licence_error() {
            WatchError::Unlicensed { endpoint, source }
        } else if source.status() == Some(403) {
            WatchError::Forbidden { endpoint, source }
        } else {
            WatchError::Failed { endpoint, source }
        }
    }

    /// The endpoint label of the read that failed.
    pub fn endpoint(&self) -> &'static str {
        match self {
            WatchError::Unlicensed { endpoint, .. }
            | WatchError::Forbidden { endpoint, .. }
            | WatchError::Failed { endpoint, .. } => endpoint,
        }
    }
}

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Beta sign-ins from `since`, oldest first (`createdDateTime` supports `ge` and `$orderby`),
/// 1,000 a page (the documented maximum).
pub fn sign_ins_url(since: DateTime<Utc>) -> String {
    format!(
        "/beta/auditLogs/signIns?$filter={}&$orderby={}&$top=1000",
        encode(&format!("createdDateTime ge {}", at(since))),
        encode("createdDateTime asc")
    )
}

/// Security-info entries of the directory audit log from `since`, oldest first
/// (`activityDateTime` supports `ge` and `$orderby`, `loggedByService` `eq`).
pub fn security_info_url(since: DateTime<Utc>) -> String {
    format!(
        "/v1.0/auditLogs/directoryAudits?$filter={}&$orderby={}&$top=999",
        encode(&format!(
            "activityDateTime ge {} and loggedByService eq '{AUTHENTICATION_METHODS_SERVICE}'",
            at(since)
        )),
        encode("activityDateTime asc")
    )
}

/// How far past the reader's clock an event's time may be and still be taken now.
pub const FUTURE_TOLERANCE: Duration = Duration::minutes(5);

/// A row's id and time.
type Key<W> = fn(&W) -> Option<(&str, DateTime<Utc>)>;

/// What [`read_pages`] read of one listing.
struct PagesRead<E> {
    events: Vec<E>,
    pages: u32,
    rows: u64,
    /// Stopped at the page cap with rows oldest first: there is more from `last` on.
    truncated: bool,
    /// The time of the last row read.
    last: Option<DateTime<Utc>>,
}

/// Reads at most `max_pages` pages (at least one) of the listing at `url`, each row admitted
/// into `wm` (never returned, not older than `cutoff`) then converted.
#[allow(clippy::too_many_arguments)]
async fn read_pages<W, E>(
    client: &GraphClient,
    endpoint: &'static str,
    mut url: String,
    key: Key<W>,
    convert: fn(&W) -> Option<E>,
    wm: &mut Watermark,
    cutoff: Option<DateTime<Utc>>,
    max_pages: u32,
    now: DateTime<Utc>,
) -> Result<PagesRead<E>, WatchError>
where
    W: serde::de::DeserializeOwned,
{
    let mut followed: HashSet<String> = HashSet::new();
    let (mut events, mut pages, mut rows, mut truncated) = (Vec::new(), 0u32, 0u64, false);
    // Whether rows came oldest first, as asked: only then may a read stop at its page cap (it
    // has read a prefix of the window). A server that ignores `$orderby` is read to the end.
    let (mut ascending, mut last): (bool, Option<DateTime<Utc>>) = (true, None);
    loop {
        let page: wire::Page<W> = client
            .get_json(ThrottleClass::Reports, endpoint, &url)
            .await
            .map_err(|e| WatchError::from_graph(endpoint, e))?;
        pages += 1;
        rows += page.value.len() as u64;
        for row in &page.value {
            let Some((id, created)) = key(row) else {
                continue;
            };
            ascending &= last.is_none_or(|l| created >= l);
            last = Some(created);
            // A time past `now` (a clock gone wrong) would move the watermark ahead of events
            // still to come: such a row is left for a later run.
            if created > now + FUTURE_TOLERANCE {
                continue;
            }
            if wm.admit(id, created, cutoff) {
                events.extend(convert(row));
            }
        }
        let Some(next) = page.next_link else {
            break;
        };
        if next == url || !followed.insert(next.clone()) {
            return Err(WatchError::Failed {
                endpoint,
                source: GraphError::NextLinkLoop {
                    endpoint: endpoint.into(),
                    url: next,
                },
            });
        }
        if pages >= max_pages.max(1) {
            if ascending {
                truncated = true;
                break;
            }
            if pages == max_pages.max(1) {
                tracing::warn!(
                    endpoint,
                    "rows are not oldest first ($orderby ignored?): reading past the page cap so none is skipped"
                );
            }
        }
        url = next;
    }
    Ok(PagesRead {
        events,
        pages,
        rows,
        truncated,
        last,
    })
}

/// A stream's watermark with the first read's start set.
fn started(from: &Watermark, first_lookback: Duration, now: DateTime<Utc>) -> Watermark {
    let mut wm = from.clone();
    if wm.newest.is_none() && wm.start.is_none() {
        wm.start = Some(now - first_lookback);
    }
    wm
}

/// Reads one stream whole: at most `max_pages` pages from the watermark's `read_from`.
#[allow(clippy::too_many_arguments)]
async fn read_stream<W, E>(
    client: &GraphClient,
    endpoint: &'static str,
    url_for: fn(DateTime<Utc>) -> String,
    key: Key<W>,
    convert: fn(&W) -> Option<E>,
    from: &Watermark,
    overlap: Duration,
    first_lookback: Duration,
    max_pages: u32,
    now: DateTime<Utc>,
) -> Result<WatchRead<E>, WatchError>
where
    W: serde::de::DeserializeOwned,
{
    let mut wm = started(from, first_lookback, now);
    let since = wm.read_from(overlap).unwrap_or(now - first_lookback);
    let cutoff = wm.cutoff(overlap);
    let read = read_pages(
        client,
        endpoint,
        url_for(since),
        key,
        convert,
        &mut wm,
        cutoff,
        max_pages,
        now,
    )
    .await?;
    wm.behind = read.truncated;
    wm.prune(overlap);
    Ok(WatchRead {
        events: read.events,
        watermark: wm,
        pages: read.pages,
        rows: read.rows,
        truncated: read.truncated,
        sweep: SweepReport::default(),
    })
}

fn sign_in_key(w: &wire::SignIn) -> Option<(&str, DateTime<Utc>)> {
    Some((w.id.as_deref()?, w.created_date_time?))
}

fn audit_key(w: &wire::DirectoryAudit) -> Option<(&str, DateTime<Utc>)> {
    Some((w.id.as_deref()?, w.activity_date_time?))
}

/// The sign-ins since `from` never returned before (beta, for `authenticationDetails`), with
/// no tracked user to sweep for (see [`read_sign_ins_for`]).
pub async fn read_sign_ins(
    client: &GraphClient,
    from: &Watermark,
    options: &WatchOptions,
    now: DateTime<Utc>,
) -> Result<WatchRead<SignInEvent>, WatchError> {
    read_sign_ins_for(client, from, options, &[], now).await
}

/// The sign-ins since `from` never returned before: the fresh read, plus the overlap re-read
/// whole or swept (module doc). `users` are the ids the classifier tracks, oldest detection
/// first (the first [`WatchOptions::max_sweep_users`] are swept for).
pub async fn read_sign_ins_for(
    client: &GraphClient,
    from: &Watermark,
    options: &WatchOptions,
    users: &[String],
    now: DateTime<Utc>,
) -> Result<WatchRead<SignInEvent>, WatchError> {
    let choice = choose_sweep(from, options, users.len());
    let users = &users[..sweep_user_count(from, options, users.len())];
    let Some(newest) = from.newest.filter(|_| choice != SweepChoice::Whole) else {
        let mut read = read_stream(
            client,
            SIGN_INS_ENDPOINT,
            sign_ins_url,
            sign_in_key,
            convert::sign_in_event,
            from,
            options.overlap,
            options.first_lookback,
            options.max_sign_in_pages,
            now,
        )
        .await?;
        // A whole re-read covers whatever a sweep had left.
        read.watermark.sweep = Sweep::default();
        return Ok(read);
    };
    let mut wm = from.clone();
    let cutoff = wm.cutoff(options.overlap);
    let window_from = newest - options.overlap;
    let cap = options.max_sign_in_pages.max(1);
    let deferred = choice == SweepChoice::Deferred;
    let reserve = if deferred {
        0
    } else {
        options.sweep_pages.clamp(1, cap.saturating_sub(1).max(1))
    };
    // The fresh read: from `newest` on (the ids at that second are known), no overlap.
    let fresh = read_pages(
        client,
        SIGN_INS_ENDPOINT,
        sign_ins_url(newest),
        sign_in_key,
        convert::sign_in_event,
        &mut wm,
        cutoff,
        cap.saturating_sub(reserve).max(1),
        now,
    )
    .await?;
    let mut events = fresh.events;
    let (mut pages, mut rows) = (fresh.pages, fresh.rows);
    let mut report = SweepReport {
        deferred,
        ..SweepReport::default()
    };
    if deferred {
        wm.sweep.deferred += 1;
    } else {
        wm.sweep.deferred = 0;
        if wm.sweep.pending.is_empty() {
            wm.sweep.pending = sweep_queries(users);
            wm.sweep.started += 1;
        }
        let mut budget = cap.saturating_sub(fresh.pages).max(1);
        while budget > 0 {
            let Some(q) = wm.sweep.pending.first().cloned() else {
                break;
            };
            let since = q.resume.map_or(window_from, |r| r.max(window_from));
            let read = read_pages(
                client,
                SIGN_INS_ENDPOINT,
                sweep_url(&q.filter, since, newest),
                sign_in_key,
                convert::sign_in_event,
                &mut wm,
                cutoff,
                budget,
                now,
            )
            .await?;
            budget = budget.saturating_sub(read.pages);
            report.pages += read.pages;
            report.late += read.events.len() as u64;
            pages += read.pages;
            rows += read.rows;
            events.extend(read.events);
            match read.last.filter(|_| read.truncated) {
                // Stopped at the budget: the query resumes from its last row next run (rows
                // come oldest first; those at that second again are known by id).
                Some(last) if q.resume != Some(last) => wm.sweep.pending[0].resume = Some(last),
                Some(_) => {
                    tracing::warn!(
                        filter = ?q.filter,
                        "a sweep query made no progress (a page of one second): left"
                    );
                    wm.sweep.pending.remove(0);
                    wm.sweep.dropped += 1;
                }
                None => {
                    wm.sweep.pending.remove(0);
                }
            }
        }
        if wm.sweep.pending.is_empty() {
            wm.sweep.completed += 1;
        }
    }
    report.pending = wm.sweep.pending.len() as u32;
    wm.behind = fresh.truncated;
    wm.prune(options.overlap);
    // The classifier observes oldest first: late rows before fresh ones.
    events.sort_by(|a: &SignInEvent, b: &SignInEvent| {
        a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id))
    });
    Ok(WatchRead {
        events,
        watermark: wm,
        pages,
        rows,
        truncated: fresh.truncated,
        sweep: report,
    })
}

/// How a sign-in read covers the overlap (module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SweepChoice {
    /// Re-read the overlap whole (first read, low volume, or catching up).
    Whole,
    /// The fresh read plus the filtered late sweep.
    Sweep,
    /// The fresh read only: the sweep is deferred (an audit is running), for at most
    /// [`MAX_DEFERRED_SWEEPS`] runs in a row.
    Deferred,
}

/// Runs in a row a sweep may be deferred before it runs anyway.
pub const MAX_DEFERRED_SWEEPS: u32 = 3;

/// Rows a sign-in page holds (`$top`, the documented maximum).
pub const SIGN_IN_PAGE_SIZE: usize = 1000;

/// Pages the overlap would cost read whole: the ids kept in `wm.seen` are exactly its rows.
pub fn overlap_pages(wm: &Watermark) -> usize {
    wm.seen.len().div_ceil(SIGN_IN_PAGE_SIZE).max(1)
}

/// How many of `users` tracked users a new sweep queries: at most
/// [`WatchOptions::max_sweep_users`], and few enough that the sweep (one page at least per code
/// and per user) stays cheaper than the overlap whole.
pub fn sweep_user_count(wm: &Watermark, options: &WatchOptions, users: usize) -> usize {
    users
        .min(options.max_sweep_users)
        .min(overlap_pages(wm).saturating_sub(ERROR_CODES.len() + 1))
}

/// Whether the next read of `wm` re-reads the overlap whole or sweeps it: the whole window is
/// [`overlap_pages`]; a sweep costs at least one page per query (one per known code, one per
/// user of [`sweep_user_count`]). A sweep in progress is carried on while the window is dearer
/// than what it has left.
pub fn choose_sweep(wm: &Watermark, options: &WatchOptions, users: usize) -> SweepChoice {
    if wm.newest.is_none() {
        return SweepChoice::Whole;
    }
    let whole = overlap_pages(wm);
    let queries = if wm.sweep.pending.is_empty() {
        ERROR_CODES.len() + sweep_user_count(wm, options, users)
    } else {
        wm.sweep.pending.len()
    };
    if whole <= queries {
        SweepChoice::Whole
    } else if options.defer_sweep && wm.sweep.deferred < MAX_DEFERRED_SWEEPS {
        SweepChoice::Deferred
    } else {
        SweepChoice::Sweep
    }
}

/// A new sweep's queries: each code the classifier knows, then each user.
fn sweep_queries(users: &[String]) -> Vec<SweepQuery> {
    ERROR_CODES
        .iter()
        .map(|c| SweepFilter::Code(c.code))
        .chain(users.iter().map(|u| SweepFilter::User(u.clone())))
        .map(|filter| SweepQuery {
            filter,
            resume: None,
        })
        .collect()
}

/// One sweep query's listing: `createdDateTime` between `since` and `until` (both inclusive:
/// `ge`, `le`) and the code or user, oldest first (signin-list: `createdDateTime` ge/le,
/// `status/errorCode` eq, `userId` eq, `$orderby createdDateTime`).
pub fn sweep_url(filter: &SweepFilter, since: DateTime<Utc>, until: DateTime<Utc>) -> String {
    let what = match filter {
        SweepFilter::Code(c) => format!("status/errorCode eq {c}"),
        // An object id is a GUID; anything else is refused before it reaches a URL.
        SweepFilter::User(u) => format!("userId eq '{}'", u.replace('\'', "''")),
    };
    format!(
        "/beta/auditLogs/signIns?$filter={}&$orderby={}&$top={SIGN_IN_PAGE_SIZE}",
        encode(&format!(
            "createdDateTime ge {} and createdDateTime le {} and {what}",
            at(since),
            at(until)
        )),
        encode("createdDateTime asc")
    )
}

/// The security-info changes since `from` never returned before (directory audit log, service
/// "Authentication Methods"; failed attempts and entries without a user target are skipped).
pub async fn read_security_info(
    client: &GraphClient,
    from: &Watermark,
    options: &WatchOptions,
    now: DateTime<Utc>,
) -> Result<WatchRead<SecurityInfoEvent>, WatchError> {
    read_stream(
        client,
        SECURITY_INFO_ENDPOINT,
        security_info_url,
        audit_key,
        convert::security_info_event,
        from,
        options.overlap,
        options.first_lookback,
        options.max_audit_pages,
        now,
    )
    .await
}

#[cfg(test)]
#[path = "watch_tests.rs"]
mod tests;
