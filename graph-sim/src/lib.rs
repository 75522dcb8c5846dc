//! graph-sim: a Microsoft Graph simulator for mfa-auditor's tests, benchmarks and demo.
//!
//! It serves Graph's real contract on loopback — the token endpoint, every endpoint mfa-auditor
//! reads, OData paging with `@odata.nextLink`, `$select`, the `$filter`s used, `$batch`, the
//! documented throttle limits (time-scalable), licence and permission errors, Graph's error body —
//! from a tenant that is generated (size, seed, profile) or loaded from JSON. Faults can be
//! injected per endpoint, requests are counted per endpoint and status, and the tenant's
//! [`GroundTruth`] says what a correct collection must find.

pub mod auth;
mod cloud;
pub mod events;
pub mod faults;
pub mod identity;
mod lockouts;
mod render;
mod server;
pub mod tenant;
pub mod throttle;
mod truth;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use cloud::{cloud_configs, cloud_tenant_id, start_cloud, CloudHandle};
pub use events::{
    activity, AuditInitiator, SimAudit, SimAuthStep, Traffic, WatchState, WatchThresholds,
    WatchTruth,
};
pub use faults::Fault;
pub use identity::{FederatedCredential, SimManagedIdentity};
pub use tenant::{
    generate, generate_at, GroundTruth, Profile, SimCaConditions, SimCaPolicy, SimFido2,
    SimKeyRestrictions, SimLockout, SimMethodTargets, SimPasskeyProfile, SimPolicy, SimSignIn,
    SimSspr, SimStrength, SimTap, SimUser, Tenant, TruthServicePrincipal, TruthUser,
    BUILTIN_STRENGTHS,
};
pub use truth::LOCKOUT_RULES;

/// Which licence the simulated tenant has: the registration report, sign-in logs and
/// Conditional Access need Entra ID P1 or P2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Licence {
    Free,
    P1,
    P2,
}

impl Licence {
    pub fn as_str(self) -> &'static str {
        match self {
            Licence::Free => "Free",
            Licence::P1 => "P1",
            Licence::P2 => "P2",
        }
    }
}

impl std::str::FromStr for Licence {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "free" => Ok(Licence::Free),
            "p1" => Ok(Licence::P1),
            "p2" => Ok(Licence::P2),
            other => Err(format!("unknown licence {other:?} (free, p1, p2)")),
        }
    }
}

/// Where the tenant comes from.
#[derive(Clone, Debug)]
pub enum TenantSource {
    Generated {
        users: usize,
        seed: u64,
        profile: Profile,
    },
    /// A ground-truth JSON document ([`GroundTruth`]).
    Json(std::path::PathBuf),
    /// A tenant already built.
    Given(Box<Tenant>),
}

/// Every permission the simulator knows, all read-only: the default grant.
/// (`RoleManagement.Read.Directory` also grants PIM eligibility.)
pub const ALL_READ_PERMISSIONS: &[&str] = &[
    "User.Read.All",
    "AuditLog.Read.All",
    "Policy.Read.All",
    "RoleManagement.Read.Directory",
    "UserAuthenticationMethod.Read.All",
    "GroupMember.Read.All",
];

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub tenant: TenantSource,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// A PEM certificate whose key may sign client assertions.
    pub certificate_pem: Option<String>,
    /// The access token's `roles` claim.
    pub granted_roles: Vec<String>,
    pub licence: Licence,
    /// 1.0 = Graph's real limits; 100 = buckets refill 100 times faster (Retry-After shrinks too).
    pub time_scale: f64,
    /// Added to every response.
    pub latency: Duration,
    pub token_lifetime: Duration,
    pub faults: Vec<Fault>,
    /// Rows per page of the registration report (undocumented in Graph; 1,000 here).
    pub registration_page_size: usize,
    /// Per-user authentication-method requests per 10 s (REFERENCE calls the bucket ambiguous).
    pub auth_methods_per_10s: f64,
    /// How long a sign-in takes to appear in `/auditLogs/signIns` after it happened (or was
    /// pushed, if later). Real Graph: 2 minutes at the 95th percentile, 5 at the 99th
    /// (docs/graph.md); 0 here by default so tests need not wait.
    pub sign_in_delay: Duration,
    /// The same for directory-audit entries pushed while running.
    pub audit_delay: Duration,
    /// Background sign-ins generated on the fly (benchmarks); `None`: none.
    pub traffic: Option<Traffic>,
    /// The app's federated identity credentials (workload identity federation): which issuers'
    /// tokens it accepts as client assertions, for which subjects and audiences.
    pub federated_credentials: Vec<FederatedCredential>,
    /// The host's managed identity, served at the IMDS, App Service and Arc endpoints; `None`:
    /// they answer "Identity not found".
    pub managed_identity: Option<SimManagedIdentity>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            tenant: TenantSource::Generated {
                users: 200,
                seed: 1,
                profile: Profile::Realistic,
            },
            tenant_id: "8d2c7b1a-5f4e-4c3b-9a2d-1e0f9c8b7a65".into(),
            client_id: "5a1e3c9d-7b2f-4e6a-8c0d-2f4b6d8e0a1c".into(),
            client_secret: "sim-secret-not-a-real-one".into(),
            certificate_pem: None,
            granted_roles: ALL_READ_PERMISSIONS.iter().map(|s| s.to_string()).collect(),
            licence: Licence::P2,
            time_scale: 1.0,
            latency: Duration::ZERO,
            token_lifetime: Duration::from_secs(3599),
            faults: Vec::new(),
            registration_page_size: 1000,
            auth_methods_per_10s: 8000.0,
            sign_in_delay: Duration::ZERO,
            audit_delay: Duration::ZERO,
            traffic: None,
            federated_credentials: Vec::new(),
            managed_identity: None,
        }
    }
}

/// Requests served, by endpoint label and status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub requests: BTreeMap<String, BTreeMap<u16, u64>>,
    /// Token requests that succeeded.
    pub tokens_issued: u64,
}

impl Stats {
    pub fn count(&self, endpoint: &str, status: u16) -> u64 {
        self.requests
            .get(endpoint)
            .and_then(|m| m.get(&status))
            .copied()
            .unwrap_or(0)
    }
    pub fn total(&self, endpoint: &str) -> u64 {
        self.requests
            .get(endpoint)
            .map(|m| m.values().sum())
            .unwrap_or(0)
    }
    /// 429s across every endpoint.
    pub fn throttled(&self) -> u64 {
        self.requests.values().filter_map(|m| m.get(&429)).sum()
    }
}

/// A scenario of sign-ins and security-info changes: `SimHandle` methods, or one element of
/// `scenarios` in `POST /_sim/events` (`{"kind": "user_fails_mfa", "user": "…", "count": 6,
/// "at": "2026-12-03T10:00:00Z", "code": 500121}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scenario {
    UserFailsMfa {
        user: String,
        count: u32,
        at: DateTime<Utc>,
        #[serde(default = "default_code")]
        code: i32,
    },
    UserSucceedsMfa {
        user: String,
        at: DateTime<Utc>,
    },
    UserReportsFraud {
        user: String,
        at: DateTime<Utc>,
    },
    PromptBombing {
        user: String,
        count: u32,
        at: DateTime<Utc>,
        #[serde(default = "default_within")]
        within_seconds: u64,
    },
    RegistrationBlocked {
        user: String,
        at: DateTime<Utc>,
    },
    UserDeletesPhone {
        user: String,
        at: DateTime<Utc>,
    },
}

fn default_code() -> i32 {
    500121
}
fn default_within() -> u64 {
    300
}

/// A running simulator: one tenant ([`SimTenant`], whose methods it has through `Deref`) and
/// the server that serves it.
pub struct SimHandle {
    tenant: SimTenant,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::ops::Deref for SimHandle {
    type Target = SimTenant;
    fn deref(&self) -> &SimTenant {
        &self.tenant
    }
}

/// One simulated tenant while it is served, alone ([`SimHandle`]) or in a cloud of many
/// ([`CloudHandle::tenant`]): its ground truth, counters, faults and scenarios.
#[derive(Clone)]
pub struct SimTenant {
    state: Arc<server::State>,
    addr: SocketAddr,
}

impl SimTenant {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// `http://127.0.0.1:PORT`: both the login base and the Graph base.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
    /// The tenant's primary domain (token requests may name the tenant by it).
    pub fn domain(&self) -> String {
        self.state
            .tenant
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .domain
            .clone()
    }
    pub fn tenant_id(&self) -> &str {
        &self.state.config.tenant_id
    }
    pub fn client_id(&self) -> &str {
        &self.state.config.client_id
    }
    pub fn client_secret(&self) -> &str {
        &self.state.config.client_secret
    }
    pub fn ground_truth(&self) -> GroundTruth {
        self.state.ground_truth()
    }
    pub fn stats(&self) -> Stats {
        self.state.stats()
    }
    /// Zeroes the request counters.
    pub fn reset_stats(&self) {
        self.state.reset_stats();
    }
    /// Replaces the injected faults.
    ///
    /// Panics on a fault that could never fire where it is aimed ([`Fault::check`]): a test
    /// that sets one would prove nothing.
    pub fn set_faults(&self, faults: Vec<Fault>) {
        if let Some(e) = faults.iter().find_map(|f| f.check().err()) {
            panic!("graph-sim: {e}");
        }
        self.state.set_faults(faults);
    }
    /// Changes one user (by object id); false if there is no such user.
    pub fn update_user(&self, id: &str, f: impl FnOnce(&mut SimUser)) -> bool {
        let mut t = self.state.tenant_mut();
        match t.find(id) {
            Some(i) => {
                f(&mut t.users[i]);
                true
            }
            None => false,
        }
    }
    /// Changes the tenant's policy.
    pub fn update_policy(&self, f: impl FnOnce(&mut SimPolicy)) {
        let mut t = self.state.tenant_mut();
        f(&mut t.policy);
    }
    /// Adds sign-ins while the simulator runs; each gets an id if it has none and, unless it
    /// says when, becomes visible `sign_in_delay` after it happened or was pushed, whichever is
    /// later. Returns their ids.
    pub fn push_sign_ins(&self, sign_ins: Vec<SimSignIn>) -> Vec<String> {
        self.state.push_sign_ins(sign_ins)
    }
    /// Adds directory-audit entries (target by object id or UPN); returns their ids, or the
    /// error for an unknown target (nothing is added then).
    pub fn push_directory_audits(&self, audits: Vec<SimAudit>) -> Result<Vec<String>, String> {
        self.state.push_audits(audits)
    }
    /// `n` failed MFA sign-ins of `user` (object id or UPN) with `code` (500121, 50088, 50053,
    /// 53004 …), 30 s apart from `at`. Returns their ids; empty for an unknown user.
    pub fn user_fails_mfa(&self, user: &str, n: u32, at: DateTime<Utc>, code: i32) -> Vec<String> {
        self.scenario(&Scenario::UserFailsMfa {
            user: user.into(),
            count: n,
            at,
            code,
        })
    }
    /// One sign-in of `user` that completed MFA (resolves every lockout state).
    pub fn user_succeeds_mfa(&self, user: &str, at: DateTime<Utc>) -> Vec<String> {
        self.scenario(&Scenario::UserSucceedsMfa {
            user: user.into(),
            at,
        })
    }
    /// `user` answered a push with a fraud report.
    pub fn user_reports_fraud(&self, user: &str, at: DateTime<Utc>) -> Vec<String> {
        self.scenario(&Scenario::UserReportsFraud {
            user: user.into(),
            at,
        })
    }
    /// `n` pushes to `user` denied or unanswered, spread over `within` from `at`.
    pub fn prompt_bombing(
        &self,
        user: &str,
        n: u32,
        at: DateTime<Utc>,
        within: std::time::Duration,
    ) -> Vec<String> {
        self.scenario(&Scenario::PromptBombing {
            user: user.into(),
            count: n,
            at,
            within_seconds: within.as_secs(),
        })
    }
    /// `user` is sent to register MFA (50079) and proof-up is blocked (53004).
    pub fn registration_blocked(&self, user: &str, at: DateTime<Utc>) -> Vec<String> {
        self.scenario(&Scenario::RegistrationBlocked {
            user: user.into(),
            at,
        })
    }
    /// `user` deletes their phone methods (mobile, alternate, office): the user's methods change
    /// and a "User deleted security info" entry is logged. Returns the entry's id.
    pub fn user_deletes_phone(&self, user: &str, at: DateTime<Utc>) -> Vec<String> {
        self.scenario(&Scenario::UserDeletesPhone {
            user: user.into(),
            at,
        })
    }
    /// Runs one scenario (the same as `POST /_sim/events`); the ids of what it logged.
    pub fn scenario(&self, s: &Scenario) -> Vec<String> {
        self.state.scenario(s).unwrap_or_default()
    }
    /// Which users are in which lockout state at `at`, over every sign-in pushed, generated
    /// with the tenant or by the traffic generator (ingestion delay ignored: what happened).
    pub fn watch_truth(&self, at: DateTime<Utc>, thresholds: &WatchThresholds) -> WatchTruth {
        self.state.watch_truth(at, thresholds)
    }
}

impl SimHandle {
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Builds the tenant and serves it on `listen` (loopback only) from a background task.
pub async fn start(config: SimConfig, listen: SocketAddr) -> anyhow::Result<SimHandle> {
    let listener = bind(listen).await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(build_state(config, addr)?);
    let (stop, task) = serve(listener, server::router(state.clone()));
    Ok(SimHandle {
        tenant: SimTenant { state, addr },
        stop: Some(stop),
        task,
    })
}

/// A loopback listener on `listen`.
async fn bind(listen: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    if !listen.ip().is_loopback() {
        anyhow::bail!("graph-sim listens on loopback only, not {listen}");
    }
    Ok(tokio::net::TcpListener::bind(listen).await?)
}

/// One tenant's serving state (its tenant built, its own token key and throttle buckets), as
/// served at `addr`.
fn build_state(config: SimConfig, addr: SocketAddr) -> anyhow::Result<server::State> {
    if let Some(e) = config.faults.iter().find_map(|f| f.check().err()) {
        anyhow::bail!("graph-sim: {e}");
    }
    let tenant = match &config.tenant {
        TenantSource::Generated {
            users,
            seed,
            profile,
        } => generate(*users, *seed, *profile),
        TenantSource::Json(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let truth: GroundTruth = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            tenant::from_ground_truth(&truth)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        TenantSource::Given(t) => (**t).clone(),
    };
    let cert = match &config.certificate_pem {
        Some(pem) => Some(auth::RegisteredCert::from_pem(pem)?),
        None => None,
    };
    let buckets = throttle::Buckets::new(
        tenant.directory_ru_per_10s(),
        config.auth_methods_per_10s,
        config.time_scale,
    );
    Ok(server::State {
        base_url: format!("http://{addr}"),
        faults: Mutex::new(
            config
                .faults
                .iter()
                .cloned()
                .map(faults::Armed::new)
                .collect(),
        ),
        buckets: Mutex::new(buckets),
        tenant: RwLock::new(tenant),
        generation: std::sync::atomic::AtomicU64::new(0),
        memo: Mutex::new(render::Memo::default()),
        stats: Mutex::new(Stats::default()),
        key: rand::random::<[u8; 32]>(),
        cert,
        generator: config
            .traffic
            .as_ref()
            .and_then(|t| events::Generator::new(t, chrono::Utc::now())),
        pushed: std::sync::atomic::AtomicU64::new(0),
        config,
    })
}

/// Serves `app` on `listener` from a background task until the sender is used or dropped.
fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(e) = serve.await {
            tracing::error!("graph-sim stopped: {e}");
        }
    });
    (stop, task)
}
