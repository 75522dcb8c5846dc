//! The Graph client proper: one `reqwest` client, a token source, the pacers, a cap on requests
//! in flight, and the counters.
//!
//! **URL contract.** `get_json` and `get_pages` take a path relative to the Graph base
//! (`/v1.0/users?$select=id`) or an absolute URL (an `@odata.nextLink`, followed verbatim).
//! Callers pass query strings already percent-encoded (`%20` for spaces, `%27` for quotes); the
//! client never re-encodes or decodes them. An absolute URL must point at the configured Graph
//! host: a nextLink elsewhere would receive our bearer token, so it is refused.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use url::Url;

use super::auth::{roles_claim, TokenSource};
use super::pacer::{resource_units, Pacer};
use super::retry::{backoff, is_retryable, parse_retry_after};
use super::{Credential, GraphError, GraphStats, ThrottleClass};

/// Which Graph API version a `$batch` goes to (a batch fixes the version of all its items).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiVersion {
    V1,
    Beta,
}

impl ApiVersion {
    fn segment(self) -> &'static str {
        match self {
            ApiVersion::V1 => "v1.0",
            ApiVersion::Beta => "beta",
        }
    }
}

/// One GET inside a `$batch`: `id` unique within the call, `url` relative to the version root
/// (e.g. `/users/{id}/authentication/methods`).
#[derive(Clone, Debug)]
pub struct BatchItem {
    pub id: String,
    pub url: String,
}

/// The client-side pacing budget per throttle class. Defaults are Graph's documented limits
/// (REFERENCE §3.6); tests against a time-scaled simulator scale them up.
#[derive(Clone, Debug, PartialEq)]
pub struct Pacing {
    /// Directory resource units per 10 s (app + tenant, large tenant: 8,000).
    pub directory_ru_per_10s: f64,
    /// Reports requests per 10 s per tenant (5).
    pub reports_per_10s: f64,
    /// Conditional Access requests per second per tenant (1).
    pub conditional_access_per_s: f64,
    /// Per-user authentication-method requests per 10 s (budgeted like the directory: 8,000).
    pub auth_methods_per_10s: f64,
    /// Fraction of each budget we allow ourselves (0.95 keeps a margin for other apps' use).
    pub headroom: f64,
    /// Windows are this many times shorter than Graph's (1 against Graph; N against a simulator
    /// running N times faster). The burst stays the documented amount; only the refill speeds up.
    pub time_scale: f64,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            directory_ru_per_10s: 8000.0,
            reports_per_10s: 5.0,
            conditional_access_per_s: 1.0,
            auth_methods_per_10s: 8000.0,
            headroom: 0.95,
            time_scale: 1.0,
        }
    }
}

impl Pacing {
    /// The same budget against a simulator whose buckets refill `factor` times faster.
    pub fn scaled(&self, factor: f64) -> Pacing {
        Pacing {
            time_scale: self.time_scale * factor,
            ..self.clone()
        }
    }
}

/// Everything the client needs, already validated by `config`.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// e.g. `https://graph.microsoft.com` (no version segment).
    pub graph_base: Url,
    /// e.g. `https://login.microsoftonline.com`.
    pub login_base: Url,
    pub tenant_id: String,
    pub client_id: String,
    /// e.g. `https://graph.microsoft.com/.default`.
    pub scope: String,
    /// Requests in flight at once, across all sweeps.
    pub max_concurrency: usize,
    pub request_timeout: Duration,
    /// Retries of one request (429, 5xx, transport) before it fails.
    pub max_retries: u32,
    pub pacing: Pacing,
    /// First backoff step when Graph gives no `Retry-After` (doubles per attempt, full jitter).
    pub backoff_base: Duration,
    /// Longest single backoff.
    pub backoff_cap: Duration,
}

impl ClientConfig {
    /// A configuration for the given endpoints with every default.
    pub fn new(graph_base: Url, login_base: Url, tenant_id: &str, client_id: &str) -> ClientConfig {
        let scope = format!("{}/.default", graph_base.as_str().trim_end_matches('/'));
        ClientConfig {
            graph_base,
            login_base,
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            scope,
            max_concurrency: 8,
            request_timeout: Duration::from_secs(60),
            max_retries: 6,
            pacing: Pacing::default(),
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(30),
        }
    }
}

/// A Graph client. Cheap to clone; clones share the token cache, pacers and counters.
#[derive(Clone)]
pub struct GraphClient {
    inner: Arc<Inner>,
    /// When set, no wait (Retry-After, backoff, pacing) may end after it: see [`GraphClient::with_deadline`].
    deadline: Option<Deadline>,
}

/// An audit's deadline: the instant, and the budget it was set from (for the error message).
#[derive(Clone, Copy, Debug)]
struct Deadline {
    at: Instant,
    budget: Duration,
}

struct Inner {
    config: ClientConfig,
    http: reqwest::Client,
    tokens: TokenSource,
    pacer: Pacer,
    in_flight: Semaphore,
    stats: GraphStats,
}

/// What one attempt at a request came to.
enum Attempt {
    Done(bytes::Bytes),
    /// Try again after this long (`None`: back off).
    Retry {
        after: Option<Duration>,
        error: GraphError,
    },
    Fail(GraphError),
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: ErrorDetail,
}

#[derive(Deserialize, Default)]
struct ErrorDetail {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "innerError", alias = "innererror")]
    inner: Option<InnerError>,
}

#[derive(Deserialize, Default)]
struct InnerError {
    #[serde(default, rename = "request-id")]
    request_id: Option<String>,
}

#[derive(Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
    #[serde(default, rename = "@odata.nextLink")]
    next_link: Option<String>,
}

#[derive(Deserialize)]
struct BatchEnvelope {
    #[serde(default)]
    responses: Vec<BatchResponse>,
}

#[derive(Deserialize)]
struct BatchResponse {
    id: String,
    status: u16,
    #[serde(default)]
    headers: HashMap<String, serde_json::Value>,
    #[serde(default)]
    body: Option<Box<serde_json::value::RawValue>>,
}

/// A readable one-line description of a transport error, with its causes.
pub(crate) fn describe_reqwest_error(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

fn http_error(endpoint: &str, status: u16, body: &[u8]) -> GraphError {
    let detail = serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.error)
        .unwrap_or_default();
    let message = detail.message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() {
            "(empty body)".to_string()
        } else {
            text.chars().take(200).collect()
        }
    });
    GraphError::Http {
        endpoint: endpoint.to_string(),
        status,
        code: detail.code.unwrap_or_default(),
        message,
        request_id: detail.inner.and_then(|i| i.request_id),
    }
}

/// The HTTP client every [`GraphClient`] with this request timeout shares: one connection pool
/// and one TLS root store for all of a daemon's tenants (Graph is one host for every tenant; a
/// client per tenant held 200 copies of the roots and 200 pools). Built on first use.
fn http_client(timeout: Duration) -> Result<reqwest::Client, GraphError> {
    static CLIENTS: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<Duration, reqwest::Client>>,
    > = std::sync::OnceLock::new();
    let mut clients = CLIENTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(c) = clients.get(&timeout) {
        return Ok(c.clone());
    }
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10).min(timeout))
        .user_agent(concat!("mfa-auditor/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| GraphError::Config(format!("HTTP client: {e}")))?;
    clients.insert(timeout, client.clone());
    Ok(client)
}

impl GraphClient {
    pub fn new(config: ClientConfig, credential: Credential) -> Result<GraphClient, GraphError> {
        let token_url = config
            .login_base
            .join(&format!("{}/oauth2/v2.0/token", config.tenant_id))
            .map_err(|e| GraphError::Config(format!("token endpoint URL: {e}")))?;
        let tokens = TokenSource::new(
            token_url.to_string(),
            config.client_id.clone(),
            config.scope.clone(),
            &credential,
        )?;
        let http = http_client(config.request_timeout)?;
        Ok(GraphClient {
            inner: Arc::new(Inner {
                pacer: Pacer::new(&config.pacing),
                in_flight: Semaphore::new(config.max_concurrency.max(1)),
                stats: GraphStats::for_tenant(&config.tenant_id),
                config,
                http,
                tokens,
            }),
            deadline: None,
        })
    }

    /// A client sharing this one's tokens, pacers and counters whose requests must all be done
    /// within `budget` from now (an audit's deadline). A wait that would end past it fails the
    /// request at once with [`GraphError::Deadline`]; throttled `$batch` items are retried until
    /// then rather than `max_retries` times.
    pub fn with_deadline(&self, budget: Duration) -> GraphClient {
        GraphClient {
            inner: self.inner.clone(),
            deadline: Some(Deadline {
                at: Instant::now() + budget,
                budget,
            }),
        }
    }

    /// Waits `wait` before a retry the caller decides on (a licence 403 that may be
    /// intermittent), unless that would end past the audit's deadline: then it fails at once with
    /// [`GraphError::Deadline`], as the client's own retries do.
    pub async fn wait_before_retry(
        &self,
        endpoint: &str,
        wait: Duration,
    ) -> Result<(), GraphError> {
        if let Some(e) = self.past_deadline(endpoint, wait) {
            return Err(e);
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// The error for a wait of `wait` that would end past the deadline (`None`: it may wait).
    fn past_deadline(&self, endpoint: &str, wait: Duration) -> Option<GraphError> {
        let d = self.deadline?;
        (Instant::now() + wait > d.at).then(|| GraphError::Deadline {
            endpoint: endpoint.into(),
            wait_seconds: wait.as_secs_f64(),
            budget_seconds: d.budget.as_secs_f64(),
        })
    }

    pub fn stats(&self) -> &GraphStats {
        &self.inner.stats
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Token requests made so far (a refresh mid-run shows here).
    pub fn token_requests(&self) -> u64 {
        self.inner.tokens.requests()
    }

    /// Fetches a token and returns its `roles` claim: the application permissions granted.
    pub async fn granted_roles(&self) -> Result<Vec<String>, GraphError> {
        let token = self.inner.tokens.token(&self.inner.http).await?;
        roles_claim(token.expose())
    }

    /// One GET, paced and retried, deserialized into `T`.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        class: ThrottleClass,
        endpoint: &'static str,
        url: &str,
    ) -> Result<T, GraphError> {
        let url = self.resolve(url)?;
        let body = self
            .request(class, endpoint, reqwest::Method::GET, &url, None, 1.0)
            .await?;
        decode(endpoint, &body)
    }

    /// One POST of a JSON body to a read-only action (such as `directoryObjects/getByIds`),
    /// paced and retried like a GET, its answer deserialized into `T`.
    pub async fn post_json<T: DeserializeOwned>(
        &self,
        class: ThrottleClass,
        endpoint: &'static str,
        url: &str,
        body: &serde_json::Value,
    ) -> Result<T, GraphError> {
        let url = self.resolve(url)?;
        let bytes = self
            .request(
                class,
                endpoint,
                reqwest::Method::POST,
                &url,
                Some(body),
                1.0,
            )
            .await?;
        decode(endpoint, &bytes)
    }

    /// Every page of a collection: `on_page` gets each page's `value`; `@odata.nextLink` is
    /// followed verbatim until absent. A nextLink seen twice is an error (loop guard).
    pub async fn get_pages<T, F>(
        &self,
        class: ThrottleClass,
        endpoint: &'static str,
        first_url: &str,
        mut on_page: F,
    ) -> Result<(), GraphError>
    where
        T: DeserializeOwned,
        F: FnMut(Vec<T>) -> Result<(), GraphError>,
    {
        let mut url = self.resolve(first_url)?;
        let mut seen: HashSet<String> = HashSet::new();
        loop {
            let body = self
                .request(class, endpoint, reqwest::Method::GET, &url, None, 1.0)
                .await?;
            let page: Page<T> = decode(endpoint, &body)?;
            drop(body);
            on_page(page.value)?;
            let Some(next) = page.next_link else {
                return Ok(());
            };
            if !seen.insert(next.clone()) || next == url.as_str() {
                return Err(GraphError::NextLinkLoop {
                    endpoint: endpoint.into(),
                    url: next,
                });
            }
            url = self.resolve(&next)?;
        }
    }

    /// GETs many per-user URLs through `$batch` (≤ 20 per request), each sub-request retried on
    /// its own 429/503/504 after its own `Retry-After`. One result per item, keyed by its id.
    pub async fn batch_get<T: DeserializeOwned>(
        &self,
        class: ThrottleClass,
        endpoint: &'static str,
        version: ApiVersion,
        items: Vec<BatchItem>,
    ) -> Vec<(String, Result<T, GraphError>)> {
        use futures::stream::StreamExt;
        // Graph meters each item on its own: a batch larger than the class's budget burst would
        // be throttled item by item, so batches are no larger than it (≤ 20, Graph's maximum).
        let per_batch = (self.inner.pacer.burst(class).floor() as usize).clamp(1, 20);
        let chunks: Vec<Vec<BatchItem>> = items.chunks(per_batch).map(|c| c.to_vec()).collect();
        let parallel = self.inner.config.max_concurrency.max(1);
        futures::stream::iter(chunks)
            .map(|chunk| self.batch_chunk::<T>(class, endpoint, version, chunk))
            .buffer_unordered(parallel)
            .flat_map(futures::stream::iter)
            .collect()
            .await
    }

    async fn batch_chunk<T: DeserializeOwned>(
        &self,
        class: ThrottleClass,
        endpoint: &'static str,
        version: ApiVersion,
        chunk: Vec<BatchItem>,
    ) -> Vec<(String, Result<T, GraphError>)> {
        let cfg = &self.inner.config;
        let batch_url = match self.resolve(&format!("/{}/$batch", version.segment())) {
            Ok(u) => u,
            Err(e) => {
                return chunk
                    .into_iter()
                    .map(|i| (i.id, Err(GraphError::Config(e.to_string()))))
                    .collect()
            }
        };
        let mut results = Vec::with_capacity(chunk.len());
        let mut pending = chunk;
        let mut attempt: u32 = 0;
        let mut refreshed = false;
        let mut server_error_rounds: u32 = 0;
        while !pending.is_empty() {
            let sent_at = std::time::Instant::now();
            let body = serde_json::json!({
                "requests": pending.iter().map(|i| serde_json::json!({"id": i.id, "method": "GET", "url": i.url})).collect::<Vec<_>>()
            });
            let sent = self
                .request(
                    class,
                    "$batch",
                    reqwest::Method::POST,
                    &batch_url,
                    Some(&body),
                    pending.len() as f64,
                )
                .await
                .and_then(|bytes| decode::<BatchEnvelope>("$batch", &bytes));
            let envelope = match sent {
                Ok(env) => env,
                Err(e) => {
                    // The batch as a whole failed after the request's own retries.
                    results.extend(
                        pending
                            .into_iter()
                            .map(|i| (i.id, Err(rename_endpoint(&e, endpoint)))),
                    );
                    return results;
                }
            };
            let mut by_id: HashMap<String, BatchResponse> = envelope
                .responses
                .into_iter()
                .map(|r| (r.id.to_ascii_lowercase(), r))
                .collect();
            let mut retry: Vec<BatchItem> = Vec::new();
            let mut needs_refresh = false;
            let mut wait: Option<Duration> = None;
            let mut server_error = false;
            for item in pending {
                let Some(resp) = by_id.remove(&item.id.to_ascii_lowercase()) else {
                    retry.push(item);
                    continue;
                };
                self.inner.stats.record(endpoint, resp.status);
                let body = resp
                    .body
                    .as_ref()
                    .map(|b| b.get().as_bytes())
                    .unwrap_or(b"null");
                match resp.status {
                    200..=299 => results.push((item.id, decode::<T>(endpoint, body))),
                    401 if !refreshed
                        && body_code(body).as_deref() == Some("InvalidAuthenticationToken") =>
                    {
                        // The token expired while the batch was in flight: refresh once, retry these items.
                        needs_refresh = true;
                        retry.push(item);
                    }
                    429 | 503 | 504 | 424 => {
                        let after = resp
                            .headers
                            .iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
                            .and_then(|(_, v)| match v {
                                serde_json::Value::String(s) => parse_retry_after(s),
                                serde_json::Value::Number(n) => {
                                    n.as_f64().and_then(|f| parse_retry_after(&f.to_string()))
                                }
                                _ => None,
                            });
                        if let Some(a) = after {
                            wait = Some(wait.map_or(a, |w| w.max(a)));
                        }
                        if resp.status == 429 {
                            self.inner
                                .pacer
                                .pause(class, after.unwrap_or(cfg.backoff_base));
                        }
                        server_error |= matches!(resp.status, 503 | 504);
                        retry.push(item);
                    }
                    status => results.push((item.id, Err(http_error(endpoint, status, body)))),
                }
            }
            if needs_refresh {
                refreshed = true;
                self.inner.tokens.invalidate_fetched_before(sent_at).await;
            }
            if retry.is_empty() {
                break;
            }
            // With an audit deadline, throttled items are retried until it; without, `max_retries`
            // times. A server that keeps failing (503/504) is retried `max_retries` rounds at most,
            // deadline or not: one broken user must not hold the audit until its deadline.
            server_error_rounds += u32::from(server_error);
            if (self.deadline.is_none() && attempt >= cfg.max_retries)
                || server_error_rounds > cfg.max_retries
            {
                let attempts = attempt + 1;
                results.extend(retry.into_iter().map(|i| {
                    (
                        i.id,
                        Err(GraphError::Throttled {
                            endpoint: endpoint.into(),
                            attempts,
                        }),
                    )
                }));
                break;
            }
            let delay = wait.unwrap_or_else(|| backoff(attempt, cfg.backoff_base, cfg.backoff_cap));
            if let Some(e) = self.past_deadline(endpoint, delay) {
                tracing::warn!(
                    endpoint,
                    items = retry.len(),
                    "throttled $batch items not retried: {e}"
                );
                let (wait_seconds, budget_seconds) = match e {
                    GraphError::Deadline {
                        wait_seconds,
                        budget_seconds,
                        ..
                    } => (wait_seconds, budget_seconds),
                    _ => (delay.as_secs_f64(), 0.0),
                };
                results.extend(retry.into_iter().map(|i| {
                    (
                        i.id,
                        Err(GraphError::Deadline {
                            endpoint: endpoint.into(),
                            wait_seconds,
                            budget_seconds,
                        }),
                    )
                }));
                break;
            }
            tokio::time::sleep(delay).await;
            attempt += 1;
            pending = retry;
        }
        results
    }

    fn resolve(&self, url: &str) -> Result<Url, GraphError> {
        let base = &self.inner.config.graph_base;
        if url.starts_with("http://") || url.starts_with("https://") {
            let parsed =
                Url::parse(url).map_err(|e| GraphError::Config(format!("bad URL {url:?}: {e}")))?;
            if parsed.origin() != base.origin() {
                return Err(GraphError::Config(format!(
                    "refusing to follow {url:?}: it is not on the Graph host {}",
                    base.origin().ascii_serialization()
                )));
            }
            return Ok(parsed);
        }
        base.join(url)
            .map_err(|e| GraphError::Config(format!("bad URL {url:?}: {e}")))
    }

    /// Sends one request with pacing, a slot among the requests in flight, a token, and retries.
    async fn request(
        &self,
        class: ThrottleClass,
        endpoint: &'static str,
        method: reqwest::Method,
        url: &Url,
        body: Option<&serde_json::Value>,
        units: f64,
    ) -> Result<bytes::Bytes, GraphError> {
        let cfg = &self.inner.config;
        let cost = if class == ThrottleClass::Directory && method == reqwest::Method::GET {
            resource_units(url)
        } else {
            units
        };
        let mut attempt: u32 = 0;
        let mut refreshed = false;
        loop {
            if let Some(e) = self.past_deadline(endpoint, Duration::ZERO) {
                return Err(e);
            }
            if let Err(wait) = self
                .inner
                .pacer
                .acquire_before(class, cost, self.deadline.map(|d| d.at))
                .await
            {
                // Graph paused the class (Retry-After) or the budget is spent until past the deadline.
                return Err(self
                    .past_deadline(endpoint, wait)
                    .unwrap_or(GraphError::Cancelled));
            }
            let outcome = self
                .attempt(class, endpoint, &method, url, body, &mut refreshed)
                .await;
            match outcome {
                Attempt::Done(bytes) => return Ok(bytes),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry { after, error } => {
                    if attempt >= cfg.max_retries {
                        return Err(match error {
                            GraphError::Http { status: 429, .. } => GraphError::Throttled {
                                endpoint: endpoint.into(),
                                attempts: attempt + 1,
                            },
                            other => other,
                        });
                    }
                    let delay = after
                        .unwrap_or_else(|| backoff(attempt, cfg.backoff_base, cfg.backoff_cap));
                    if let Some(e) = self.past_deadline(endpoint, delay) {
                        tracing::warn!(endpoint, delay_s = delay.as_secs_f64(), %error, "not retrying: {e}");
                        return Err(e);
                    }
                    tracing::debug!(endpoint, attempt, delay_ms = delay.as_millis() as u64, %error, "retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }

    async fn attempt(
        &self,
        class: ThrottleClass,
        endpoint: &'static str,
        method: &reqwest::Method,
        url: &Url,
        body: Option<&serde_json::Value>,
        refreshed: &mut bool,
    ) -> Attempt {
        let inner = &self.inner;
        let Ok(_slot) = inner.in_flight.acquire().await else {
            return Attempt::Fail(GraphError::Cancelled);
        };
        let token = match inner.tokens.token(&inner.http).await {
            Ok(t) => t,
            // A transport failure reaching the token endpoint is worth another try; a refusal is not.
            Err(e @ GraphError::Transport { .. }) => {
                return Attempt::Retry {
                    after: None,
                    error: e,
                }
            }
            Err(e) => return Attempt::Fail(e),
        };
        let mut req = inner
            .http
            .request(method.clone(), url.clone())
            .bearer_auth(token.expose())
            .header("client-request-id", uuid::Uuid::new_v4().to_string())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(b) = body {
            req = req.json(b);
        }
        let started = Instant::now();
        let response = req.send().await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                inner.stats.record(endpoint, 0);
                let error = if e.is_timeout() {
                    GraphError::Timeout {
                        endpoint: endpoint.into(),
                        seconds: inner.config.request_timeout.as_secs_f64(),
                    }
                } else {
                    GraphError::Transport {
                        endpoint: endpoint.into(),
                        message: describe_reqwest_error(&e),
                    }
                };
                return Attempt::Retry { after: None, error };
            }
        };
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let retry_after = header("retry-after").and_then(|v| parse_retry_after(&v));
        if let Some(ratio) =
            header("x-ms-throttle-limit-percentage").and_then(|v| v.trim().parse::<f64>().ok())
        {
            inner.stats.record_throttle_limit(ratio);
        }
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => {
                inner.stats.record(endpoint, 0);
                let error = GraphError::Transport {
                    endpoint: endpoint.into(),
                    message: format!("reading the body: {}", describe_reqwest_error(&e)),
                };
                return Attempt::Retry { after: None, error };
            }
        };
        inner.stats.record_duration(endpoint, started.elapsed());
        if endpoint != "$batch" || !(200..300).contains(&status) {
            inner.stats.record(endpoint, status);
        }
        if (200..300).contains(&status) {
            return Attempt::Done(bytes);
        }
        let error = http_error(endpoint, status, &bytes);
        if status == 401 && error.code() == Some("InvalidAuthenticationToken") && !*refreshed {
            *refreshed = true;
            inner.tokens.invalidate(&token).await;
            return Attempt::Retry {
                after: Some(Duration::ZERO),
                error,
            };
        }
        if status == 429 {
            // Hold the whole class back; without Retry-After (Conditional Access) back off.
            let pause = retry_after
                .unwrap_or_else(|| backoff(1, inner.config.backoff_base, inner.config.backoff_cap));
            inner.pacer.pause(class, pause);
            return Attempt::Retry {
                after: Some(pause),
                error,
            };
        }
        if is_retryable(status) {
            return Attempt::Retry {
                after: retry_after,
                error,
            };
        }
        Attempt::Fail(error)
    }
}

fn rename_endpoint(e: &GraphError, endpoint: &str) -> GraphError {
    let msg = e.to_string();
    match e {
        GraphError::Http {
            status,
            code,
            message,
            request_id,
            ..
        } => GraphError::Http {
            endpoint: endpoint.into(),
            status: *status,
            code: code.clone(),
            message: message.clone(),
            request_id: request_id.clone(),
        },
        GraphError::Throttled { attempts, .. } => GraphError::Throttled {
            endpoint: endpoint.into(),
            attempts: *attempts,
        },
        GraphError::Deadline {
            wait_seconds,
            budget_seconds,
            ..
        } => GraphError::Deadline {
            endpoint: endpoint.into(),
            wait_seconds: *wait_seconds,
            budget_seconds: *budget_seconds,
        },
        _ => GraphError::Transport {
            endpoint: endpoint.into(),
            message: msg,
        },
    }
}

/// `error.code` of a Graph error body, if it is one.
fn body_code(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.error.code)
}

fn decode<T: DeserializeOwned>(endpoint: &str, body: &[u8]) -> Result<T, GraphError> {
    serde_json::from_slice(body).map_err(|e| GraphError::Decode {
        endpoint: endpoint.into(),
        message: if e.is_eof() {
            format!("truncated body ({} bytes): {e}", body.len())
        } else {
            e.to_string()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> GraphClient {
        let cfg = ClientConfig::new(
            Url::parse("https://graph.microsoft.com").expect("url"),
            Url::parse("https://login.microsoftonline.com").expect("url"),
            "contoso.onmicrosoft.com",
            "00000000-0000-0000-0000-000000000001",
        );
        GraphClient::new(cfg, Credential::Secret(crate::secret::Secret::new("x"))).expect("client")
    }

    #[test]
    fn relative_urls_keep_their_encoding_and_foreign_next_links_are_refused() {
        let c = client();
        let u = c
            .resolve("/v1.0/auditLogs/signIns?$filter=createdDateTime%20ge%202024-01-01T00:00:00Z")
            .expect("url");
        assert_eq!(
            u.as_str(),
            "https://graph.microsoft.com/v1.0/auditLogs/signIns?$filter=createdDateTime%20ge%202024-01-01T00:00:00Z"
        );
        assert!(c
            .resolve("https://evil.example/v1.0/users?$skiptoken=x")
            .is_err());
        assert!(c
            .resolve("https://graph.microsoft.com/v1.0/users?$skiptoken=x")
            .is_ok());
    }

    #[test]
    fn error_bodies_name_code_message_and_request_id() {
        let body = br#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation.","innerError":{"request-id":"abc"}}}"#;
        let e = http_error("users", 403, body);
        assert_eq!(e.code(), Some("Authorization_RequestDenied"));
        assert!(e
            .to_string()
            .contains("users: HTTP 403 Authorization_RequestDenied"));
        let e = http_error("users", 502, b"<html>bad gateway</html>");
        assert!(e.to_string().contains("bad gateway"), "{e}");
    }

    #[test]
    fn truncated_bodies_say_so() {
        let e =
            decode::<serde_json::Value>("users", br#"{"value": [{"id": "#).expect_err("truncated");
        assert!(
            e.to_string()
                .contains("users: unreadable response body: truncated"),
            "{e}"
        );
    }
}
