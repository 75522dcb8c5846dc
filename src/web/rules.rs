//! `/rules/{id}`: one rule of the catalogue (what it checks, why, how to fix it) and its
//! findings, filtered (`state`, `user`) and paged by keyset like the API (`cursor`, `page_size`);
//! `/rules/{id}/findings.csv`: every finding of the same filter as CSV, streamed page by page
//! (never all held), each cell safe to open in a spreadsheet.

use std::borrow::Cow;
use std::collections::HashMap;

use askama::Template;
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::{bad_parameter, encode, rfc3339, when, Chrome, Timing, WebError};
use crate::daemon::Shared;
use crate::evaluate::{Rule, RuleKind};
use crate::state::{Cursor, FindingFilter, StateFilter, StoredFinding};

/// The rule of the catalogue with this id.
pub(super) fn rule(id: &str) -> Option<&'static Rule> {
    crate::evaluate::CATALOGUE.iter().find(|r| r.id == id)
}

/// Findings per page unless `page_size` says otherwise (and per store read of the CSV).
pub const DEFAULT_PAGE_SIZE: usize = 100;
const CSV_PAGE: usize = 1000;

/// What the rule page and its CSV select.
#[derive(Clone, Debug, PartialEq)]
pub struct Filters {
    pub state: StateFilter,
    pub user: Option<String>,
    pub page_size: usize,
    pub cursor: Option<Cursor>,
}

pub fn state_name(s: StateFilter) -> &'static str {
    match s {
        StateFilter::Open => "open",
        StateFilter::Resolved => "resolved",
        StateFilter::All => "all",
    }
}

/// Reads the filters of rule `rule` from the query: unknown parameters and bad values are
/// errors naming the parameter (a 400 page). An empty value is no value (an empty form field).
pub fn filters(
    rule: &str,
    q: &HashMap<String, String>,
    known: &[&str],
    max_page_size: usize,
) -> Result<Filters, WebError> {
    if let Some(k) = q.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(bad_parameter(
            k,
            format!("unknown parameter; known: {}", known.join(", ")),
        ));
    }
    let get = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let state = match get("state").unwrap_or("open") {
        "open" => StateFilter::Open,
        "resolved" => StateFilter::Resolved,
        "all" => StateFilter::All,
        other => {
            return Err(bad_parameter(
                "state",
                format!("{other:?} is not open, resolved or all"),
            ))
        }
    };
    let page_size = match get("page_size") {
        None => DEFAULT_PAGE_SIZE.min(max_page_size),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=max_page_size).contains(&n) => n,
            _ => {
                return Err(bad_parameter(
                    "page_size",
                    format!("{v:?} is not a number between 1 and {max_page_size}"),
                ))
            }
        },
    };
    let cursor = get("cursor")
        .map(|c| {
            Cursor::decode(c)
                .and_then(|c| {
                    if c.rule == rule {
                        Ok(c)
                    } else {
                        Err("not a cursor of this rule's findings (follow the next link)".into())
                    }
                })
                .map_err(|e| bad_parameter("cursor", e))
        })
        .transpose()?;
    Ok(Filters {
        state,
        user: get("user").map(str::to_string),
        page_size,
        cursor,
    })
}

/// The query string of these filters (with `extra` after), for links.
fn query(f: &Filters, page_size: bool, extra: &[(&str, &str)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("state", state_name(f.state));
    if let Some(u) = &f.user {
        q.append_pair("user", u);
    }
    if page_size {
        q.append_pair("page_size", &f.page_size.to_string());
    }
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    q.finish().replace('+', "%20")
}

pub struct Row {
    pub subject: String,
    pub user: String,
    /// The user's page; empty for a tenant finding.
    pub user_href: String,
    pub detail: String,
    pub first_seen: String,
    pub first_seen_at: String,
    pub last_seen: String,
    pub last_seen_at: String,
    pub resolved: Option<(String, String)>,
    pub excepted: bool,
}

fn row(f: &StoredFinding) -> Row {
    let (user, user_href) = match &f.user_principal_name {
        Some(upn) => (upn.clone(), format!("/users/{}", encode(upn))),
        None => (String::new(), String::new()),
    };
    Row {
        subject: f.subject.clone(),
        user,
        user_href,
        detail: f.detail.clone(),
        first_seen: when(f.first_seen),
        first_seen_at: rfc3339(f.first_seen),
        last_seen: when(f.last_seen),
        last_seen_at: rfc3339(f.last_seen),
        resolved: f.resolved_at.map(|t| (when(t), rfc3339(t))),
        excepted: f.excepted,
    }
}

#[derive(Template)]
#[template(path = "rule.html")]
pub struct RulePage {
    pub chrome: Chrome,
    pub id: String,
    pub title: String,
    pub severity: String,
    pub kind: &'static str,
    pub needs: Vec<&'static str>,
    pub rationale: String,
    pub remediation: String,
    pub state: &'static str,
    pub user: String,
    pub page_size: usize,
    pub total: u64,
    pub rows: Vec<Row>,
    /// The next page, absent on the last.
    pub next: Option<String>,
    /// The first page, when this is not it.
    pub first: Option<String>,
    pub csv: String,
}

/// `GET /rules/{id}?state=open|resolved|all&user=&page_size=100&cursor=`.
pub async fn page(
    super::Tenant(s): super::Tenant,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, WebError> {
    let r = rule(&id).ok_or_else(|| unknown(&id))?;
    let max = s.config().http.max_page_size;
    let f = filters(r.id, &q, &["state", "user", "page_size", "cursor"], max)?;
    super::page(&s, move |s, t| build(s, t, r, f)).await
}

fn unknown(id: &str) -> WebError {
    WebError::NotFound(format!(
        "No rule has the id {id:?}; the overview lists the rules with findings."
    ))
}

fn build(s: &Shared, t: &mut Timing, r: &'static Rule, f: Filters) -> Result<RulePage, WebError> {
    let config = s.config();
    let tenant = config.tenant.tenant_id.as_str();
    let filter = FindingFilter {
        state: f.state,
        rule: Some(r.id.to_string()),
        severity: None,
        user: f.user.clone(),
    };
    let found = t.db(|| {
        s.store
            .findings_page(tenant, &filter, f.cursor.as_ref(), f.page_size)
    })?;
    Ok(render(
        Chrome::new(s, r.title, ""),
        r,
        &f,
        found.total,
        &found.items,
        found.next_cursor.as_deref(),
    ))
}

/// The page of `items`, `total` in all, with the link to the page after `next_cursor`.
pub fn render(
    chrome: Chrome,
    r: &Rule,
    f: &Filters,
    total: u64,
    items: &[StoredFinding],
    next_cursor: Option<&str>,
) -> RulePage {
    let base = format!("/rules/{}", encode(r.id));
    RulePage {
        chrome,
        id: r.id.to_string(),
        title: r.title.to_string(),
        severity: r.severity.to_string(),
        kind: match r.kind {
            RuleKind::User => "user",
            RuleKind::Tenant => "tenant",
        },
        needs: r.needs.iter().map(|d| d.as_str()).collect(),
        rationale: r.rationale.to_string(),
        remediation: r.remediation.to_string(),
        state: state_name(f.state),
        user: f.user.clone().unwrap_or_default(),
        page_size: f.page_size,
        total,
        rows: items.iter().map(row).collect(),
        next: next_cursor.map(|c| format!("{base}?{}", query(f, true, &[("cursor", c)]))),
        first: f
            .cursor
            .as_ref()
            .map(|_| format!("{base}?{}", query(f, true, &[]))),
        csv: format!("{base}/findings.csv?{}", query(f, false, &[])),
    }
}

/// The CSV's columns.
pub const CSV_HEADER: [&str; 10] = [
    "rule",
    "subject",
    "user_principal_name",
    "severity",
    "detail",
    "remediation",
    "excepted",
    "first_seen",
    "last_seen",
    "resolved_at",
];

/// A cell a spreadsheet will not run: one starting with `=`, `+`, `-`, `@`, a tab or a carriage
/// return is prefixed with `'` (OWASP's advice on CSV injection). Quoting is the writer's.
pub fn cell(s: &str) -> Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{s}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// Appends the CSV records of `items` to `out`.
pub fn csv_rows(out: Vec<u8>, items: &[StoredFinding]) -> Result<Vec<u8>, ::csv::Error> {
    let mut w = ::csv::Writer::from_writer(out);
    for f in items {
        let resolved = f.resolved_at.map(rfc3339).unwrap_or_default();
        let record = [
            cell(&f.rule),
            cell(&f.subject),
            cell(f.user_principal_name.as_deref().unwrap_or("")),
            cell(&f.severity),
            cell(&f.detail),
            cell(&f.remediation),
            Cow::Borrowed(if f.excepted { "true" } else { "false" }),
            Cow::Owned(rfc3339(f.first_seen)),
            Cow::Owned(rfc3339(f.last_seen)),
            Cow::Owned(resolved),
        ];
        w.write_record(record.iter().map(|c| c.as_bytes()))?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

fn csv_header() -> Vec<u8> {
    let mut out = CSV_HEADER.join(",").into_bytes();
    out.extend_from_slice(b"\r\n");
    out
}

/// Reads every finding of `filter` `page` at a time by keyset and hands each page's CSV (the
/// header before the first) to `send`, which says whether to go on (false: the client left).
pub fn write_csv(
    store: &crate::state::Store,
    tenant: &str,
    filter: &FindingFilter,
    page: usize,
    mut send: impl FnMut(Vec<u8>) -> bool,
) -> Result<(), String> {
    let mut cursor: Option<Cursor> = None;
    let mut out = csv_header();
    loop {
        let found = store
            .findings_page(tenant, filter, cursor.as_ref(), page)
            .map_err(|e| e.to_string())?;
        out = csv_rows(out, &found.items).map_err(|e| e.to_string())?;
        if !send(std::mem::take(&mut out)) {
            return Ok(());
        }
        match (&found.next_cursor, found.items.last()) {
            (Some(_), Some(last)) => {
                cursor = Some(Cursor {
                    rule: last.rule.clone(),
                    subject: last.subject.clone(),
                })
            }
            _ => return Ok(()),
        }
    }
}

/// `GET /rules/{id}/findings.csv?state=&user=`: every finding of the filter, read from the store
/// [`CSV_PAGE`] at a time by keyset and sent as each page is read.
pub async fn csv(
    super::Tenant(s): super::Tenant,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, WebError> {
    let r = rule(&id).ok_or_else(|| unknown(&id))?;
    let f = filters(r.id, &q, &["state", "user"], usize::MAX)?;
    let filter = FindingFilter {
        state: f.state,
        rule: Some(r.id.to_string()),
        severity: None,
        user: f.user.clone(),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(2);
    let tenant = s.config().tenant.tenant_id.clone();
    let store = s.clone();
    tokio::task::spawn_blocking(move || {
        let sent = write_csv(&store.store, &tenant, &filter, CSV_PAGE, |chunk| {
            tx.blocking_send(Ok(bytes::Bytes::from(chunk))).is_ok()
        });
        if let Err(e) = sent {
            tracing::error!("findings CSV: {e}");
            let _ = tx.blocking_send(Err(std::io::Error::other(e)));
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let mut response = Body::from_stream(stream).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    let name = format!(
        "attachment; filename=\"mfa-auditor-{}-{}.csv\"",
        r.id,
        state_name(f.state)
    );
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests;
