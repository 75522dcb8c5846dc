//! A cloud of many tenants on one listener, as Microsoft Graph is one host for every tenant.
//!
//! Real Graph and Entra ID serve every tenant from the same hosts: a token is asked of
//! `/{tenant}/oauth2/v2.0/token` (the tenant named by id or domain), and a Graph request reaches
//! the tenant its access token was issued in (the token's `tid` claim). Throttling is per app
//! *per tenant* (docs/graph.md, "Many tenants"), so each tenant here keeps its own buckets, token
//! key, faults and counters: it is a whole single-tenant simulator ([`crate::server::State`]),
//! and this module only routes to it.
//!
//! Routing, in order:
//! - `GET /_sim/tenants`: every tenant's id, domain and counters (the cloud's side door);
//!   `/_sim/tenants/{tenant}/…`: that tenant's `/_sim/…`; any other `/_sim/…`: the first tenant's.
//! - `/{tenant}/oauth2/v2.0/token`: the tenant by id or domain (case-insensitive; a domain two
//!   tenants share names the first); unknown: Entra's AADSTS90002 "Tenant not found".
//! - `/v1.0/…`, `/beta/…`: the tenant of the bearer token's `tid`; no token, a token that is not
//!   a JWT or names no tenant served here: Graph's 401 `InvalidAuthenticationToken`. The tenant
//!   then checks the token's signature with its own key, so a token from one tenant relabelled
//!   with another's `tid` is refused too.
//! - anything else (the managed-identity endpoints `/metadata/…`, `/msi/…`, unknown paths): the
//!   first tenant.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde_json::{json, Value};

use crate::server::{self, State};
use crate::{SimConfig, SimTenant, TenantSource};

/// The router's state: every tenant, and how to find one.
struct Cloud {
    tenants: Vec<Arc<State>>,
    /// Lower-cased tenant id or domain → index (ids win over domains; the first domain wins).
    by_key: HashMap<String, usize>,
    /// Graph requests that named no tenant served here (refused before reaching one).
    unrouted: AtomicU64,
}

impl Cloud {
    fn find(&self, key: &str) -> Option<&Arc<State>> {
        self.by_key
            .get(&key.to_ascii_lowercase())
            .and_then(|&i| self.tenants.get(i))
    }
    fn first(&self) -> &Arc<State> {
        // start_cloud refuses an empty cloud.
        &self.tenants[0]
    }
}

/// A running cloud of tenants on one listener.
pub struct CloudHandle {
    cloud: Arc<Cloud>,
    tenants: Vec<SimTenant>,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl CloudHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// `http://127.0.0.1:PORT`: the login base and the Graph base of every tenant.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
    /// Every tenant, in the order of the configs given to [`start_cloud`].
    pub fn tenants(&self) -> &[SimTenant] {
        &self.tenants
    }
    /// Tenant `i` (panics past the end, as indexing does).
    pub fn tenant(&self, i: usize) -> &SimTenant {
        &self.tenants[i]
    }
    /// The tenant with this id or domain.
    pub fn find(&self, key: &str) -> Option<&SimTenant> {
        let state = self.cloud.find(key)?;
        self.tenants.iter().find(|t| Arc::ptr_eq(&t.state, state))
    }
    /// Graph requests refused because they named no tenant served here.
    pub fn unrouted(&self) -> u64 {
        self.cloud.unrouted.load(Ordering::Relaxed)
    }
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for CloudHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Builds every tenant and serves them all on `listen` (loopback only) from a background task.
/// Tenant ids must be distinct; tenants may share one client id and secret (a multi-tenant app).
pub async fn start_cloud(
    configs: Vec<SimConfig>,
    listen: SocketAddr,
) -> anyhow::Result<CloudHandle> {
    if configs.is_empty() {
        anyhow::bail!("graph-sim: a cloud needs at least one tenant");
    }
    let listener = crate::bind(listen).await?;
    let addr = listener.local_addr()?;
    let mut states: Vec<Arc<State>> = Vec::with_capacity(configs.len());
    let mut by_key = HashMap::new();
    for config in configs {
        let id = config.tenant_id.to_ascii_lowercase();
        if by_key.contains_key(&id) {
            anyhow::bail!("graph-sim: tenant id {id} is given twice");
        }
        by_key.insert(id, states.len());
        states.push(Arc::new(crate::build_state(config, addr)?));
    }
    for (i, state) in states.iter().enumerate() {
        let domain = state
            .tenant
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .domain
            .to_ascii_lowercase();
        by_key.entry(domain).or_insert(i);
    }
    let tenants = states
        .iter()
        .map(|state| SimTenant {
            state: state.clone(),
            addr,
        })
        .collect();
    let cloud = Arc::new(Cloud {
        tenants: states,
        by_key,
        unrouted: AtomicU64::new(0),
    });
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(cloud.clone());
    let (stop, task) = crate::serve(listener, app);
    Ok(CloudHandle {
        cloud,
        tenants,
        addr,
        stop: Some(stop),
        task,
    })
}

/// A tenant id for a cloud's tenant generated with `seed`: a version-4-shaped GUID that is the
/// same for the same seed (so a benchmark's or a demo's config can name it before it starts).
pub fn cloud_tenant_id(seed: u64) -> String {
    // splitmix64: two well-mixed words from the seed.
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let (a, b) = (mix(seed), mix(seed ^ 0x5a5a_5a5a_5a5a_5a5a));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// `n` tenants like `template`: a generated tenant's seed becomes seed, seed+1, … seed+n-1, and
/// each tenant's id is [`cloud_tenant_id`] of its seed (of its index for other sources). The
/// client id and secret stay the template's: one multi-tenant app consented in every tenant.
pub fn cloud_configs(template: &SimConfig, n: usize) -> Vec<SimConfig> {
    (0..n)
        .map(|i| {
            let mut c = template.clone();
            c.tenant_id = match &mut c.tenant {
                TenantSource::Generated { seed, .. } => {
                    *seed += i as u64;
                    cloud_tenant_id(*seed)
                }
                _ => cloud_tenant_id(i as u64),
            };
            c
        })
        .collect()
}

/// The `tid` claim of a JWT, unverified (the tenant it names verifies the signature).
fn token_tenant(token: &str) -> Option<String> {
    let claims = token.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&B64.decode(claims).ok()?).ok()?;
    claims.get("tid")?.as_str().map(str::to_owned)
}

fn json_response(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [("content-type", "application/json;charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// Graph's 401 for a request no tenant here can answer.
fn unauthenticated(cloud: &Cloud, message: &str) -> Response {
    cloud.unrouted.fetch_add(1, Ordering::Relaxed);
    let reply = server::graph_error(401, "InvalidAuthenticationToken", message);
    let body = match reply.body {
        server::Body::Json(v) => v,
        server::Body::Text(s) | server::Body::Raw(s) => Value::String(s),
    };
    json_response(401, body)
}

/// `uri` with its path replaced, its query kept.
fn with_path(uri: &Uri, path: &str) -> Uri {
    let text = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    text.parse().unwrap_or_else(|_| uri.clone())
}

async fn handle(
    AxState(cloud): AxState<Arc<Cloud>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["_sim", "tenants"] => {
            let list: Vec<Value> = cloud
                .tenants
                .iter()
                .map(|s| {
                    let domain = s
                        .tenant
                        .read()
                        .unwrap_or_else(|e| e.into_inner())
                        .domain
                        .clone();
                    json!({"tenant_id": s.config.tenant_id, "domain": domain, "stats": s.stats()})
                })
                .collect();
            json_response(
                200,
                json!({"tenants": list, "unrouted": cloud.unrouted.load(Ordering::Relaxed)}),
            )
        }
        ["_sim", "tenants", key, rest @ ..] => match cloud.find(key) {
            Some(state) => {
                let uri = with_path(&uri, &format!("/_sim/{}", rest.join("/")));
                server::respond(state, method, uri, headers, body).await
            }
            None => json_response(
                404,
                json!({"error": {"code": "Request_ResourceNotFound",
                                 "message": format!("no tenant {key:?} in this cloud")}}),
            ),
        },
        [tenant, "oauth2", "v2.0", "token"] => match cloud.find(tenant) {
            Some(state) => server::respond(state, method, uri, headers, body).await,
            // entra-docs reference-error-codes: AADSTS90002 InvalidTenantName.
            None => {
                let (status, body) = crate::auth::aadsts(
                    400,
                    "invalid_request",
                    90002,
                    &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
                );
                json_response(status, body)
            }
        },
        ["v1.0" | "beta", ..] => {
            let bearer = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            let Some(bearer) = bearer else {
                return unauthenticated(&cloud, "Access token is empty.");
            };
            let Some(tid) = token_tenant(bearer) else {
                return unauthenticated(
                    &cloud,
                    "CompactToken parsing failed with error code: 80049217",
                );
            };
            match cloud.find(&tid) {
                Some(state) => server::respond(state, method, uri, headers, body).await,
                None => {
                    unauthenticated(&cloud, "Access token validation failure. Invalid audience.")
                }
            }
        }
        _ => server::respond(cloud.first(), method, uri, headers, body).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_tenant_ids_are_stable_distinct_guids() {
        let a = cloud_tenant_id(1);
        assert_eq!(a, cloud_tenant_id(1));
        assert_ne!(a, cloud_tenant_id(2));
        let parsed = uuid::Uuid::parse_str(&a).expect("a GUID");
        assert_eq!(parsed.get_version_num(), 4);
        let ids: std::collections::HashSet<String> = (0..1000).map(cloud_tenant_id).collect();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn cloud_configs_step_the_seed_and_keep_the_app() {
        let template = SimConfig::default();
        let configs = cloud_configs(&template, 3);
        let seeds: Vec<u64> = configs
            .iter()
            .map(|c| match c.tenant {
                TenantSource::Generated { seed, .. } => seed,
                _ => u64::MAX,
            })
            .collect();
        assert_eq!(seeds, [1, 2, 3]);
        assert_eq!(configs[2].tenant_id, cloud_tenant_id(3));
        assert!(configs.iter().all(|c| c.client_id == template.client_id));
    }

    #[test]
    fn token_tenant_reads_tid_and_refuses_garbage() {
        let token = crate::auth::sign(b"k", &json!({"tid": "abc"}));
        assert_eq!(token_tenant(&token).as_deref(), Some("abc"));
        assert_eq!(token_tenant("not-a-jwt"), None);
        assert_eq!(token_tenant(&crate::auth::sign(b"k", &json!({}))), None);
    }
}
