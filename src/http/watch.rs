//! The watcher's part of the API (issue 12): `/api/v1/detections` and `/api/v1/security-events`
//! (the overview page shows who is locked out now and the last watch run). Same conventions as
//! the findings API: unknown and bad parameters are a 400 naming them, pages by `cursor` (or `page=N`) with
//! `total`, `next_cursor` and `next`.

use std::collections::HashMap;

use axum::extract::Query;
use axum::response::Response;
use chrono::{DateTime, Utc};

use super::{bad_request, blocking, page_json, parse, ApiError, Tenant};
use crate::daemon::Shared;
use crate::state::{Cursor, DetectionFilter, PageStart, SecurityEventFilter, StoredDetection};
use crate::watch::LockoutState;

/// Resolved detections shown on a user's page: those resolved in the last this many days.
pub const RECENT_DAYS: i64 = 30;
/// Security-info events shown on a user's page: the latest this many.
pub const USER_EVENTS: usize = 50;

/// A user's open detections and those resolved in the last [`RECENT_DAYS`] (newest first, as
/// the store gives them).
pub fn recent_detections(all: Vec<StoredDetection>, now: DateTime<Utc>) -> Vec<StoredDetection> {
    let since = now - chrono::Duration::days(RECENT_DAYS);
    all.into_iter()
        .filter(|d| d.resolved_at.is_none_or(|r| r >= since))
        .collect()
}

fn known(q: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    match q.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(bad_request(
            k,
            format!("unknown parameter; known: {}", known.join(", ")),
        )),
        None => Ok(()),
    }
}

fn boolean(q: &HashMap<String, String>, name: &str, default: bool) -> Result<bool, ApiError> {
    match q.get(name).map(String::as_str) {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(bad_request(name, format!("{other:?} is not true or false"))),
    }
}

/// `page_size`, and where the page starts (`cursor` or `page`), as the findings API reads them.
fn paging(
    s: &Shared,
    q: &HashMap<String, String>,
) -> Result<(usize, Option<PageStart>, Option<usize>), ApiError> {
    let page = parse::<usize>(q, "page")?;
    let cursor = q
        .get("cursor")
        .map(|c| {
            Cursor::decode(c)
                .and_then(|c| match c.subject.parse::<i64>() {
                    Ok(_) => Ok(c),
                    Err(_) => {
                        Err("not a cursor of this list (pass next_cursor back unchanged)".into())
                    }
                })
                .map_err(|e| bad_request("cursor", e))
        })
        .transpose()?;
    if cursor.is_some() && page.is_some() {
        return Err(bad_request(
            "cursor",
            "give cursor or page, not both (cursor is the faster)".into(),
        ));
    }
    let max = s.config().http.max_page_size;
    let page_size = match parse::<usize>(q, "page_size")? {
        Some(n) if n == 0 || n > max => {
            return Err(bad_request(
                "page_size",
                format!("must be between 1 and {max}"),
            ))
        }
        other => other.unwrap_or(100.min(max)),
    };
    let start = match (cursor, page) {
        (Some(c), _) => Some(PageStart::Cursor(c)),
        (None, Some(n)) => Some(PageStart::Offset((n.max(1) - 1).saturating_mul(page_size))),
        (None, None) => None,
    };
    let shown_page = match (q.contains_key("cursor"), page) {
        (true, _) => None,
        (false, n) => Some(n.unwrap_or(1).max(1)),
    };
    Ok((page_size, start, shown_page))
}

fn states() -> String {
    LockoutState::ALL
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `GET /api/v1/detections?state=locked-out|mfa-fraud-reported|registration-blocked|mfa-prompt-bombing&open=true|false&user=&page_size=100&cursor=`
/// (or `page=N`): lockout detections, newest opened first; open ones only unless `open=false`.
pub async fn detections(
    Tenant(s): Tenant,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    const KNOWN: [&str; 7] = [
        "tenant",
        "state",
        "open",
        "user",
        "page",
        "page_size",
        "cursor",
    ];
    known(&q, &KNOWN)?;
    let state = q
        .get("state")
        .map(|v| {
            LockoutState::parse(v)
                .ok_or_else(|| bad_request("state", format!("{v:?} is not one of {}", states())))
        })
        .transpose()?;
    let filter = DetectionFilter {
        state,
        open_only: boolean(&q, "open", true)?,
        user: q.get("user").cloned(),
    };
    let (page_size, start, page) = paging(&s, &q)?;
    let tenant = s.config().tenant.tenant_id.clone();
    let result = blocking(&s, move |s| {
        Ok(s.store
            .detections_page(&tenant, &filter, start.as_ref(), page_size)?)
    })
    .await?;
    Ok(page_json(
        "/api/v1/detections",
        &q,
        &["tenant", "state", "open", "user"],
        page_size,
        page,
        result.into(),
    ))
}

/// `GET /api/v1/security-events?user=&notable=true&page_size=100&cursor=` (or `page=N`):
/// security-info events (methods registered, changed, deleted; TAPs issued), newest first;
/// `notable=true` for those that queued a message.
pub async fn security_events(
    Tenant(s): Tenant,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    const KNOWN: [&str; 6] = ["tenant", "user", "notable", "page", "page_size", "cursor"];
    known(&q, &KNOWN)?;
    let filter = SecurityEventFilter {
        user: q.get("user").cloned(),
        notable_only: boolean(&q, "notable", false)?,
    };
    let (page_size, start, page) = paging(&s, &q)?;
    let tenant = s.config().tenant.tenant_id.clone();
    let result = blocking(&s, move |s| {
        Ok(s.store
            .security_events_page(&tenant, &filter, start.as_ref(), page_size)?)
    })
    .await?;
    Ok(page_json(
        "/api/v1/security-events",
        &q,
        &["tenant", "user", "notable"],
        page_size,
        page,
        result.into(),
    ))
}
