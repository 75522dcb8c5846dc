//! HTTP: `/metrics`, `/healthz`, `/readyz`, the findings API and the tenants API; the pages (`/`
//! among them) are [`crate::web`]'s, merged into the same router. The router is built in one
//! function from small handlers sharing the `Arc<Daemon>`; a handler about one tenant takes the
//! [`Tenant`] extractor (`?tenant=` by name or tenant id; optional when the daemon audits one
//! tenant). Requests are bounded in size and time; a bad query parameter is a 400 that names it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use serde_json::json;

use crate::daemon::{Daemon, Shared};
use crate::evaluate::Severity;
use crate::state::{Cursor, FindingFilter, StateFilter};

pub mod tenants;
mod watch;

/// The tenant a request is about: `?tenant=` (its name or tenant id, case-insensitive), or the
/// only tenant of a single-tenant daemon. Otherwise a 400 naming `tenant` and listing them.
pub struct Tenant(pub Arc<Shared>);

/// The `tenant` query parameter of a request, decoded.
pub fn tenant_param(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "tenant")
        .map(|(_, v)| v.into_owned())
}

impl axum::extract::FromRequestParts<Arc<Daemon>> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        daemon: &Arc<Daemon>,
    ) -> Result<Tenant, ApiError> {
        let key = tenant_param(parts.uri.query());
        daemon
            .tenant(key.as_deref())
            .map(Tenant)
            .map_err(|e| bad_request("tenant", e.to_string()))
    }
}

pub fn router(daemon: Arc<Daemon>, web: crate::web_config::WebConfig) -> Router {
    let request_timeout = Duration::from_secs(daemon.config().http.request_timeout_seconds);
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/v1/findings", get(findings))
        .route("/api/v1/users/{upn}", get(user))
        .route("/api/v1/audits", get(audits))
        .route("/api/v1/tenants", get(tenants::list))
        .route("/api/v1/detections", get(watch::detections))
        .route("/api/v1/security-events", get(watch::security_events))
        .merge(crate::web::routes())
        .layer(axum::middleware::from_fn_with_state(
            web,
            crate::web_config::basic_auth,
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(16 * 1024))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .with_state(daemon)
}

/// An API error: a bad parameter (named) or a failure of the store (logged, not shown).
pub enum ApiError {
    BadParameter { parameter: String, message: String },
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::BadParameter { parameter, message } => (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": {"parameter": parameter, "message": message}})),
            )
                .into_response(),
            ApiError::Internal(e) => {
                tracing::error!("API: {e}");
                let body =
                    json!({"error": {"message": "the state store failed; see the daemon's log"}});
                (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
            }
        }
    }
}

impl From<crate::state::StateError> for ApiError {
    fn from(e: crate::state::StateError) -> ApiError {
        ApiError::Internal(e.to_string())
    }
}

fn bad_request(parameter: &str, message: String) -> ApiError {
    ApiError::BadParameter {
        parameter: parameter.into(),
        message,
    }
}

/// Runs `f` (which reads the store) on tokio's blocking pool: a query never holds an async worker
/// thread, so `/healthz` and `/metrics` answer while an audit is recorded.
async fn blocking<T: Send + 'static>(
    s: &Arc<Shared>,
    f: impl FnOnce(&Shared) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let s = s.clone();
    tokio::task::spawn_blocking(move || f(&s))
        .await
        .map_err(|e| ApiError::Internal(format!("a state store query did not finish: {e}")))?
}

/// Every tenant's metrics in one scrape (each series labelled `tenant`).
async fn metrics(State(d): State<Arc<Daemon>>) -> Response {
    let tenants = d.tenants();
    let clients: Vec<_> = tenants.iter().map(|t| t.client()).collect();
    let body = crate::metrics::render_many(
        tenants
            .iter()
            .zip(&clients)
            .map(|(t, c)| (&t.metrics, Some(c.stats()))),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Ready when the posture of a complete audit is published and that audit (the last complete one
/// in the store) is fresher than `[schedule] stale_after_seconds`. With several tenants and no
/// `?tenant=`: ready when at least one tenant is (a failing tenant is reported, on
/// `/api/v1/tenants` and in the metrics, but does not take the others out of service); the body
/// has one line per tenant.
async fn readyz(
    State(d): State<Arc<Daemon>>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Response, ApiError> {
    let key = tenant_param(query.as_deref());
    if key.is_some() || !d.multi() {
        let s = d
            .tenant(key.as_deref())
            .map_err(|e| bad_request("tenant", e.to_string()))?;
        return ready_one(s).await.map(|(ok, body)| {
            let status = if ok {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (status, body).into_response()
        });
    }
    let mut any = false;
    let mut body = String::new();
    for s in d.tenants().iter() {
        let name = s.config().tenant_name().to_string();
        let (ok, line) = ready_one(s.clone()).await?;
        any |= ok;
        body.push_str(&format!("{name}: {line}"));
    }
    let status = if any {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((status, body).into_response())
}

/// One tenant's readiness and the line saying why.
async fn ready_one(s: Arc<Shared>) -> Result<(bool, String), ApiError> {
    let config = s.config();
    let tenant = config.tenant.tenant_id.clone();
    let last = blocking(&s, move |s| Ok(s.store.last_complete(&tenant)?)).await?;
    let max_age = config.schedule.stale_after_seconds as i64;
    Ok(match last {
        None => (false, "not ready: no complete audit yet\n".into()),
        Some(_) if !s.metrics.has_posture() => (
            false,
            "not ready: no posture published on /metrics yet\n".into(),
        ),
        Some(run) => {
            let age = (Utc::now() - run.finished_at).num_seconds();
            if age > max_age {
                (
                    false,
                    format!(
                        "stale: the last complete audit finished {age} s ago (limit {max_age} s)\n"
                    ),
                )
            } else {
                (true, format!("ready: last complete audit {age} s ago\n"))
            }
        }
    })
}

fn parse<T: std::str::FromStr>(
    q: &HashMap<String, String>,
    name: &str,
) -> Result<Option<T>, ApiError>
where
    T::Err: std::fmt::Display,
{
    q.get(name)
        .map(|v| {
            v.parse::<T>()
                .map_err(|e| bad_request(name, format!("{v:?}: {e}")))
        })
        .transpose()
}

/// `GET /api/v1/findings?rule=&severity=&user=&state=open|resolved|all&page_size=100&cursor=`
/// (or `page=N`, slower for deep pages): one page in (rule, subject) order, its `total`, and
/// `next_cursor` / `next` for the following page (null on the last).
async fn findings(
    Tenant(s): Tenant,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    const KNOWN: [&str; 8] = [
        "tenant",
        "rule",
        "severity",
        "user",
        "state",
        "page",
        "page_size",
        "cursor",
    ];
    if let Some(k) = q.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(bad_request(
            k,
            format!("unknown parameter; known: {}", KNOWN.join(", ")),
        ));
    }
    let config = s.config();
    let state = match q.get("state").map(String::as_str).unwrap_or("open") {
        "open" => StateFilter::Open,
        "resolved" => StateFilter::Resolved,
        "all" => StateFilter::All,
        other => {
            return Err(bad_request(
                "state",
                format!("{other:?} is not open, resolved or all"),
            ))
        }
    };
    let filter = FindingFilter {
        state,
        rule: q.get("rule").cloned(),
        severity: parse::<Severity>(&q, "severity")?,
        user: q.get("user").cloned(),
    };
    let page = parse::<usize>(&q, "page")?;
    let cursor = q
        .get("cursor")
        .map(|c| Cursor::decode(c).map_err(|e| bad_request("cursor", e)))
        .transpose()?;
    if cursor.is_some() && page.is_some() {
        return Err(bad_request(
            "cursor",
            "give cursor or page, not both (cursor is the faster)".into(),
        ));
    }
    let max = config.http.max_page_size;
    let page_size = match parse::<usize>(&q, "page_size")? {
        Some(n) if n == 0 || n > max => {
            return Err(bad_request(
                "page_size",
                format!("must be between 1 and {max}"),
            ))
        }
        other => other.unwrap_or(100.min(max)),
    };
    let tenant = config.tenant.tenant_id.clone();
    let query = filter.clone();
    let result = blocking(&s, move |s| {
        Ok(match (&cursor, page) {
            (Some(c), _) => s.store.findings_page(&tenant, &query, Some(c), page_size)?,
            (None, Some(n)) => {
                let offset = (n.max(1) - 1).saturating_mul(page_size);
                s.store
                    .findings_page_at(&tenant, &query, offset, page_size)?
            }
            (None, None) => s.store.findings_page(&tenant, &query, None, page_size)?,
        })
    })
    .await?;
    let page = match (&q.get("cursor"), page) {
        (Some(_), _) => None,
        (None, n) => Some(n.unwrap_or(1).max(1)),
    };
    Ok(page_json(
        "/api/v1/findings",
        &q,
        &["tenant", "state", "rule", "severity", "user"],
        page_size,
        page,
        result.into(),
    ))
}

/// One page of results, whatever they are.
pub(super) struct PageOf<T> {
    pub total: u64,
    pub items: T,
    pub next_cursor: Option<String>,
}

impl From<crate::state::Page> for PageOf<Vec<crate::state::StoredFinding>> {
    fn from(p: crate::state::Page) -> Self {
        PageOf {
            total: p.total,
            items: p.items,
            next_cursor: p.next_cursor,
        }
    }
}

impl<T> From<crate::state::WatchPage<T>> for PageOf<Vec<T>> {
    fn from(p: crate::state::WatchPage<T>) -> Self {
        PageOf {
            total: p.total,
            items: p.items,
            next_cursor: p.next_cursor,
        }
    }
}

/// The JSON of one page of `path`, with the link to the next (the `filters` kept).
pub(super) fn page_json<T: serde::Serialize>(
    path: &str,
    q: &HashMap<String, String>,
    filters: &[&str],
    page_size: usize,
    page: Option<usize>,
    result: PageOf<T>,
) -> Response {
    let PageOf {
        total,
        items,
        next_cursor,
    } = result;
    let next = next_cursor.as_ref().map(|c| {
        let mut link = url::form_urlencoded::Serializer::new(String::new());
        for key in filters {
            if let Some(v) = q.get(*key) {
                link.append_pair(key, v);
            }
        }
        link.append_pair("page_size", &page_size.to_string());
        link.append_pair("cursor", c);
        format!("{path}?{}", link.finish())
    });
    Json(json!({
        "total": total,
        "page": page,
        "page_size": page_size,
        "items": items,
        "next_cursor": next_cursor,
        "next": next,
    }))
    .into_response()
}

/// `GET /api/v1/users/{upn}`: every finding (open and resolved) of one user, by user principal
/// name (case-insensitive) or object id, with the watcher's detections (open, and resolved ones
/// of the last [`watch::RECENT_DAYS`] days) and security-info events (the latest
/// [`watch::USER_EVENTS`]).
async fn user(Tenant(s): Tenant, Path(upn): Path<String>) -> Result<Response, ApiError> {
    let tenant = s.config().tenant.tenant_id.clone();
    let who = upn.clone();
    let (mine, detections, events) = blocking(&s, move |s| {
        Ok((
            s.store.user_findings(&tenant, &who)?,
            s.store.user_detections(&tenant, &who)?,
            s.store.user_security_events(&tenant, &who)?,
        ))
    })
    .await?;
    let detections = watch::recent_detections(detections, Utc::now());
    let events: Vec<_> = events.into_iter().take(watch::USER_EVENTS).collect();
    if mine.is_empty() && detections.is_empty() && events.is_empty() {
        let body = json!({"error": {"message": format!("no finding, lockout detection or security-info event has ever concerned {upn}")}});
        return Ok((StatusCode::NOT_FOUND, Json(body)).into_response());
    }
    Ok(Json(json!({
        "user_principal_name": upn,
        "findings": mine,
        "detections": detections,
        "security_events": events,
    }))
    .into_response())
}

/// `GET /api/v1/audits?limit=50`: the latest audit runs.
async fn audits(
    Tenant(s): Tenant,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let limit = parse::<usize>(&q, "limit")?.unwrap_or(50).clamp(1, 1000);
    let tenant = s.config().tenant.tenant_id.clone();
    let runs = blocking(&s, move |s| Ok(s.store.audits(&tenant, limit)?)).await?;
    let skipped = s.skipped_runs.load(std::sync::atomic::Ordering::Relaxed);
    Ok(Json(json!({"audits": runs, "skipped_runs": skipped})).into_response())
}
