//! The Graph client proper. (Interface stub: the implementation is being written.)

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use url::Url;

use super::{Credential, GraphError, GraphStats, ThrottleClass};

/// Which Graph API version a `$batch` goes to (a batch fixes the version of all its items).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiVersion {
    V1,
    Beta,
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
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            directory_ru_per_10s: 8000.0,
            reports_per_10s: 5.0,
            conditional_access_per_s: 1.0,
            auth_methods_per_10s: 8000.0,
            headroom: 0.95,
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
}

/// A Graph client. Cheap to clone; clones share the token cache, pacers and counters.
#[derive(Clone)]
pub struct GraphClient {
    inner: Arc<Inner>,
}

struct Inner {
    _config: ClientConfig,
    _credential: Credential,
    stats: GraphStats,
}

impl GraphClient {
    pub fn new(config: ClientConfig, credential: Credential) -> Result<GraphClient, GraphError> {
        Ok(GraphClient {
            inner: Arc::new(Inner {
                _config: config,
                _credential: credential,
                stats: GraphStats::default(),
            }),
        })
    }

    pub fn stats(&self) -> &GraphStats {
        &self.inner.stats
    }

    pub async fn granted_roles(&self) -> Result<Vec<String>, GraphError> {
        todo!()
    }

    pub async fn get_json<T: DeserializeOwned>(
        &self,
        _class: ThrottleClass,
        _endpoint: &'static str,
        _url: &str,
    ) -> Result<T, GraphError> {
        todo!()
    }

    pub async fn get_pages<T, F>(
        &self,
        _class: ThrottleClass,
        _endpoint: &'static str,
        _first_url: &str,
        _on_page: F,
    ) -> Result<(), GraphError>
    where
        T: DeserializeOwned,
        F: FnMut(Vec<T>) -> Result<(), GraphError>,
    {
        todo!()
    }

    pub async fn batch_get<T: DeserializeOwned>(
        &self,
        _class: ThrottleClass,
        _endpoint: &'static str,
        _version: ApiVersion,
        _items: Vec<BatchItem>,
    ) -> Vec<(String, Result<T, GraphError>)> {
        todo!()
    }
}
