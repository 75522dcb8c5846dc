//! The helpdesk's pages (issue 13): server-rendered HTML for the person taking the lockout call
//! and for the identity team. Grafana serves the trends; these pages serve one tenant, one rule,
//! one user.
//!
//! - Rendered by the daemon from [askama] templates (`templates/`, compiled into the binary,
//!   every value HTML-escaped unless a template says otherwise, which none does), with the CSS and
//!   the little JavaScript embedded (`assets/`): no CDN, nothing fetched from elsewhere, and every
//!   page works with JavaScript off (the search is a GET form; the script only enhances it).
//! - Links are stable and shareable: every page is a GET of a path and query parameters
//!   (`/users/{upn}`, `/rules/{id}?severity=high`), never session state.
//! - Behind the same `web.yml` TLS and basic auth as the API (the router's layers). Each page
//!   carries a strict Content-Security-Policy (scripts and styles from this origin only, no
//!   inline script), `no-store` (pages name people and their phones) and `no-referrer` (a UPN in
//!   a URL does not leave with a click to Microsoft's docs).
//! - Each page reads the store on tokio's blocking pool, like the API, and says how long it took
//!   in a `Server-Timing` header (`db` for the store, `total` for the whole page): the benchmark
//!   and the browser tests read it.
//!
//! Pages: `/` the overview (`overview.rs`), `/rules/{id}` a rule and its findings with
//! `/rules/{id}/findings.csv` (`rules.rs`), `/users?q=` the search and `/users/{key}` one user
//! with the playbook for them (`users.rs`), `/audits` the history (`audits.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use askama::Template;
use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};

use crate::daemon::{Daemon, Shared};

mod audits;
mod overview;
mod rules;
mod tenants;
mod users;

/// The tenant a page is about: `?tenant=` (name or tenant id), or the only tenant of a
/// single-tenant daemon; otherwise a 400 page listing the tenants.
pub struct Tenant(pub Arc<Shared>);

impl axum::extract::FromRequestParts<Arc<Daemon>> for Tenant {
    type Rejection = WebError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        daemon: &Arc<Daemon>,
    ) -> Result<Tenant, WebError> {
        let key = crate::http::tenant_param(parts.uri.query());
        daemon
            .tenant(key.as_deref())
            .map(Tenant)
            .map_err(|e| bad_parameter("tenant", e.to_string()))
    }
}

/// The pages' routes, merged into the API's router (and so behind its auth, limits and timeout).
pub fn routes() -> Router<Arc<Daemon>> {
    Router::new()
        .route("/", get(tenants::home))
        .route("/rules/{id}", get(rules::page))
        .route("/rules/{id}/findings.csv", get(rules::csv))
        .route("/users", get(users::search))
        .route("/users/{key}", get(users::page))
        .route("/audits", get(audits::page))
        .route("/assets/{file}", get(asset))
}

/// What every page's frame shows: the tenant, the page's title, which tab is current.
pub struct Chrome {
    pub tenant: String,
    /// The tenant's name when the daemon audits several (every link and form carries it as
    /// `?tenant=`); empty otherwise.
    pub tenant_param: String,
    /// The page is about every tenant (the multi-tenant overview): no per-tenant navigation.
    pub all_tenants: bool,
    pub title: String,
    /// `overview`, `users`, `audits` or `` (a rule's page is reached from the overview).
    pub nav: &'static str,
    /// What the search box holds (the user page and the search page keep the query).
    pub query: String,
    pub version: &'static str,
}

impl Chrome {
    pub fn new(s: &Shared, title: impl Into<String>, nav: &'static str) -> Chrome {
        let config = s.config();
        let multi = s.multi.load(std::sync::atomic::Ordering::Relaxed);
        Chrome {
            tenant: config.tenant.tenant_id.clone(),
            tenant_param: if multi {
                config.tenant_name().to_string()
            } else {
                String::new()
            },
            all_tenants: false,
            title: title.into(),
            nav,
            query: String::new(),
            version: env!("CARGO_PKG_VERSION"),
        }
    }

    /// `path` with `tenant=` added when the daemon audits several tenants.
    pub fn link(&self, path: impl AsRef<str>) -> String {
        with_tenant(&self.tenant_param, path.as_ref())
    }

    /// [`Chrome::link`] of `prefix` followed by `value`, percent-encoded (templates build a
    /// query this way: `chrome.link_to("/api/v1/detections?state=", state)`).
    pub fn link_to(&self, prefix: &str, value: impl std::fmt::Display) -> String {
        self.link(&format!("{prefix}{}", encode(&value.to_string())))
    }
}

/// `path` (which may hold a query) with `tenant=<name>` added when `name` is not empty.
pub fn with_tenant(name: &str, path: &str) -> String {
    if name.is_empty() {
        return path.to_string();
    }
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}tenant={}", encode(name))
}

/// Why a page could not be shown. Rendered as a page of its own (not JSON: a person reads it).
#[derive(Debug)]
pub enum WebError {
    /// A query parameter or path segment is wrong: 400, naming it and what it accepts.
    BadParameter { parameter: String, message: String },
    /// Nothing by that name: 404, saying what was looked for.
    NotFound(String),
    /// The store or a template failed: 500; the cause is logged, not shown.
    Internal(String),
}

impl From<crate::state::StateError> for WebError {
    fn from(e: crate::state::StateError) -> WebError {
        WebError::Internal(e.to_string())
    }
}

impl From<askama::Error> for WebError {
    fn from(e: askama::Error) -> WebError {
        WebError::Internal(format!("a page template failed: {e}"))
    }
}

pub fn bad_parameter(parameter: &str, message: impl Into<String>) -> WebError {
    WebError::BadParameter {
        parameter: parameter.into(),
        message: message.into(),
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    chrome: Chrome,
    status: u16,
    heading: &'a str,
    message: String,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, heading, message) = match self {
            WebError::BadParameter { parameter, message } => (
                StatusCode::BAD_REQUEST,
                "Bad request",
                format!("The parameter {parameter:?} is wrong: {message}"),
            ),
            WebError::NotFound(what) => (StatusCode::NOT_FOUND, "Not found", what),
            WebError::Internal(e) => {
                tracing::error!("web page: {e}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The page failed",
                    "The state store or a template failed; see the daemon's log.".to_string(),
                )
            }
        };
        let page = ErrorPage {
            chrome: Chrome {
                tenant: String::new(),
                tenant_param: String::new(),
                all_tenants: false,
                title: heading.to_string(),
                nav: "",
                query: String::new(),
                version: env!("CARGO_PKG_VERSION"),
            },
            status: status.as_u16(),
            heading,
            message,
        };
        let body = page.render().unwrap_or_else(|_| format!("{heading}\n"));
        with_headers(status, body, None).into_response()
    }
}

/// Runs `f` (which reads the store and renders) on tokio's blocking pool, and answers with the
/// page and its `Server-Timing`: `db` is the time `f` reports spending in the store, `total`
/// the whole of it, queueing on the pool included.
pub async fn page<C: Send + Sync + 'static, T: Template + Send + 'static>(
    s: &Arc<C>,
    f: impl FnOnce(&C, &mut Timing) -> Result<T, WebError> + Send + 'static,
) -> Result<Response, WebError> {
    let s = s.clone();
    let start = Instant::now();
    let (body, timing) = tokio::task::spawn_blocking(move || {
        let mut timing = Timing::default();
        let t = f(&s, &mut timing)?;
        let body = t.render()?;
        Ok::<_, WebError>((body, timing))
    })
    .await
    .map_err(|e| WebError::Internal(format!("a page did not finish: {e}")))??;
    let server_timing = format!(
        "db;dur={:.3}, total;dur={:.3}",
        ms(timing.db),
        ms(start.elapsed())
    );
    Ok(with_headers(StatusCode::OK, body, Some(server_timing)).into_response())
}

/// Time spent in the store while building one page.
#[derive(Default)]
pub struct Timing {
    pub db: Duration,
}

impl Timing {
    /// Runs one store query, adding its time to `db`.
    pub fn db<T>(&mut self, q: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = q();
        self.db += start.elapsed();
        out
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The Content-Security-Policy of every page: nothing from elsewhere, no inline script or style,
/// no framing, forms post only here; the script fetches only from here (the search as you type).
pub const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

fn with_headers(status: StatusCode, body: String, server_timing: Option<String>) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(t) = server_timing.and_then(|t| HeaderValue::from_str(&t).ok()) {
        h.insert("server-timing", t);
    }
    r
}

/// The embedded CSS and script, by name; cached for a day (their names do not change with
/// their content, so not longer).
async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "style.css" => (
            include_str!("../../assets/style.css"),
            "text/css; charset=utf-8",
        ),
        "app.js" => (
            include_str!("../../assets/app.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return WebError::NotFound(format!("no asset named {file:?}")).into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=86400"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// A time as pages show it: `2026-12-03 08:22 UTC` (the `<time>` element carries the exact
/// RFC 3339 value in `datetime`).
pub fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// RFC 3339 to the second, for `<time datetime>` and CSV.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A path segment or query value, percent-encoded (a guest's UPN such as
/// `ann_contoso.com#EXT#@fabrikam.onmicrosoft.com` holds a `#`). A space is `%20`, never `+`,
/// so the same text serves a path segment and a query value.
pub fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
