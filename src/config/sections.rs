//! The sections of `config.toml` that are the configuration's own: `[tenant]` (and its cloud),
//! `[graph]` and `[graph.pacing]`, `[break_glass]`, `[schedule]`, `[storage]`, `[http]` and
//! `[metrics]`. One struct each; every key has a doc comment, and every default is in the
//! struct's `Default`. (`[scope]`, `[rules.<id>]` and `[[exceptions]]` belong to `evaluate`,
//! `[alerting]` to `alerting`.)

use std::path::PathBuf;

use serde::Deserialize;

use crate::collect::CollectOptions;
use crate::evaluate::exceptions::ExceptionConfig;
use crate::evaluate::scope::ScopeConfig;
use crate::evaluate::RulesConfig;
use crate::graph::Pacing;

/// The national clouds (REFERENCE §2), or `custom` base URLs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cloud {
    #[default]
    Global,
    Usgov,
    UsgovDod,
    China,
    Custom,
}

impl Cloud {
    /// (login host, Graph host) of a national cloud.
    pub(super) fn hosts(self) -> Option<(&'static str, &'static str)> {
        match self {
            Cloud::Global => Some((
                "https://login.microsoftonline.com",
                "https://graph.microsoft.com",
            )),
            Cloud::Usgov => Some((
                "https://login.microsoftonline.us",
                "https://graph.microsoft.us",
            )),
            Cloud::UsgovDod => Some((
                "https://login.microsoftonline.us",
                "https://dod-graph.microsoft.us",
            )),
            Cloud::China => Some((
                "https://login.partner.microsoftonline.cn",
                "https://microsoftgraph.chinacloudapi.cn",
            )),
            Cloud::Custom => None,
        }
    }
}

/// `[tenant]`, or one `[[tenants]]` entry: which tenant, which cloud, which app, and where its
/// credential is; an entry may also override the shared `scope`, `rules`, `exceptions`,
/// `break_glass` and `schedule` (see `tenants.rs`). In a resolved [`Config`](super::Config)
/// the overrides have been applied and these fields are empty.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// A short name for the tenant in pages, metrics (`tenant_name`) and messages; the tenant id
    /// when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// The tenant: its GUID or a verified domain (`contoso.onmicrosoft.com`).
    pub tenant_id: String,
    /// `global`, `usgov` (GCC High), `usgov-dod`, `china`, or `custom` with `graph_url` and `login_url`.
    #[serde(default)]
    pub cloud: Cloud,
    /// Graph base URL, `custom` only (plain `http` only for loopback hosts).
    pub graph_url: Option<String>,
    /// Login (token) base URL, `custom` only (plain `http` only for loopback hosts).
    pub login_url: Option<String>,
    /// The app registration's application (client) id; may be omitted only with a plain managed
    /// identity (`managed_identity` / `managed_identity_client_id`), whose token is its own.
    #[serde(default)]
    pub client_id: String,
    /// `[[tenants]]` entries only: `[tenants.scope]` replaces `[scope]` for this tenant (keys it
    /// leaves out take their defaults, not the shared values).
    #[serde(default)]
    pub scope: Option<ScopeConfig>,
    /// `[[tenants]]` entries only: `[tenants.rules.<id>]` replaces `[rules.<id>]` for this
    /// tenant, rule by rule; the rules it does not name keep the shared settings.
    #[serde(default)]
    pub rules: Option<RulesConfig>,
    /// `[[tenants]]` entries only: `[[tenants.exceptions]]` are this tenant's exceptions, in
    /// addition to the shared `[[exceptions]]`.
    #[serde(default)]
    pub exceptions: Vec<ExceptionConfig>,
    /// `[[tenants]]` entries only: `[tenants.break_glass]` replaces `[break_glass]`.
    #[serde(default)]
    pub break_glass: Option<BreakGlassConfig>,
    /// `[[tenants]]` entries only: `[tenants.schedule]` replaces `[schedule]` (keys it leaves
    /// out take their defaults).
    #[serde(default)]
    pub schedule: Option<ScheduleConfig>,
    /// File holding the client secret; relative paths resolve against `$CREDENTIALS_DIRECTORY`.
    pub client_secret_file: Option<PathBuf>,
    /// Environment variable holding the client secret.
    pub client_secret_env: Option<String>,
    /// PEM certificate registered on the app (certificate credential).
    pub certificate_file: Option<PathBuf>,
    /// PEM private key of that certificate.
    pub private_key_file: Option<PathBuf>,
    /// Workload identity federation with the token file named by `$AZURE_FEDERATED_TOKEN_FILE`
    /// (AKS workload identity sets it), read again at every token request.
    #[serde(default)]
    pub workload_identity: bool,
    /// Workload identity federation with this token file (a GitHub OIDC token, another issuer's),
    /// read again at every token request.
    pub federated_token_file: Option<PathBuf>,
    /// Sign in as the host's system-assigned managed identity (IMDS, App Service, Arc: found from
    /// the environment).
    #[serde(default)]
    pub managed_identity: bool,
    /// Sign in as this user-assigned managed identity (its client id).
    pub managed_identity_client_id: Option<String>,
    /// Sign in as the app (`client_id`) with a managed identity's token as its client assertion
    /// (the app trusts the identity through a federated identity credential); the identity is
    /// `managed_identity_client_id` when set, else the system-assigned one.
    #[serde(default)]
    pub managed_identity_assertion: bool,
}

/// `[graph.pacing]`: the client-side budget per throttle class (REFERENCE §3.6).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PacingConfig {
    /// Directory resource units per 10 s (users, roles, policies).
    pub directory_ru_per_10s: f64,
    /// Reports requests per 10 s (registration report, sign-ins).
    pub reports_per_10s: f64,
    /// Conditional Access requests per second.
    pub conditional_access_per_second: f64,
    /// Per-user authentication-method requests per 10 s.
    pub auth_methods_per_10s: f64,
    /// Share of each budget mfa-auditor uses, in (0, 1]; the rest is left to other apps.
    pub headroom: f64,
    /// Only against a time-scaled Graph simulator (graph-sim `--time-scale N`): its throttle
    /// windows are N times shorter, so the budgets refill N times faster while each burst stays
    /// Graph's. Always 1 against Graph.
    pub simulator_time_scale: f64,
}

impl Default for PacingConfig {
    fn default() -> Self {
        let p = Pacing::default();
        PacingConfig {
            directory_ru_per_10s: p.directory_ru_per_10s,
            reports_per_10s: p.reports_per_10s,
            conditional_access_per_second: p.conditional_access_per_s,
            auth_methods_per_10s: p.auth_methods_per_10s,
            headroom: p.headroom,
            simulator_time_scale: 1.0,
        }
    }
}

/// Which users get their legacy per-user MFA state read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PerUserMfaSetting {
    Off,
    #[default]
    Admins,
    All,
}

/// `[graph]`: how Graph is read.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GraphConfig {
    /// Requests in flight at once, 1–64.
    pub max_concurrency: usize,
    /// Timeout of one request, in seconds (1–600).
    pub request_timeout_seconds: u64,
    /// Retries of one request on 429, 5xx or a network error (0–20).
    pub max_retries: u32,
    /// An audit's deadline, in seconds from its start (1–86,400): a wait for Graph
    /// (`Retry-After`, backoff, pacing) that would pass it fails that sweep at once, and the
    /// audit is incomplete. Throttled per-user `$batch` items are retried until it.
    pub audit_timeout_seconds: u64,
    /// Read Conditional Access policies.
    pub conditional_access: bool,
    /// Read failed MFA sign-ins.
    pub sign_ins: bool,
    /// How far back failed MFA sign-ins are read, in hours (1–720).
    pub sign_in_window_hours: u32,
    /// Sign-in error codes that count as a failed MFA (500121: strong authentication failed).
    pub mfa_failure_codes: Vec<i32>,
    /// Read TAP detail for users holding a Temporary Access Pass.
    pub tap_detail: bool,
    /// Read the full method list of admins (fresher than the report).
    pub admin_method_detail: bool,
    /// Per-user MFA state (beta API): `off`, `admins` or `all`.
    pub per_user_mfa: PerUserMfaSetting,
    pub pacing: PacingConfig,
}

impl Default for GraphConfig {
    fn default() -> Self {
        let c = CollectOptions::default();
        GraphConfig {
            max_concurrency: 8,
            request_timeout_seconds: 60,
            max_retries: 6,
            audit_timeout_seconds: 3000,
            conditional_access: c.conditional_access,
            sign_ins: c.sign_ins,
            sign_in_window_hours: 24,
            mfa_failure_codes: c.mfa_failure_codes,
            tap_detail: c.tap_detail,
            admin_method_detail: c.admin_method_detail,
            per_user_mfa: PerUserMfaSetting::Admins,
            pacing: PacingConfig::default(),
        }
    }
}

/// `[break_glass]`: emergency-access accounts.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BreakGlassConfig {
    /// Their user principal names; their methods are always read in detail.
    pub accounts: Vec<String>,
}

/// `[schedule]`: when the daemon audits.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// Cron expression with a seconds field: `sec min hour day-of-month month day-of-week`.
    pub cron: String,
    /// Audit once at start, before the first scheduled time.
    pub run_at_start: bool,
    /// `/readyz` fails when the last complete audit is older than this many seconds.
    pub stale_after_seconds: u64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            cron: "0 0 * * * *".into(),
            run_at_start: true,
            stale_after_seconds: 7200,
        }
    }
}

/// `[daemon]`: how the daemon runs its tenants' audits side by side.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Audits of different tenants running at once; the others wait for a slot.
    pub max_concurrent_audits: usize,
    /// Consecutive failed audits of a tenant before it is backed off.
    pub failures_before_backoff: u32,
    /// The first back-off; it doubles with each further failure.
    pub backoff_initial_seconds: u64,
    /// The longest back-off.
    pub backoff_max_seconds: u64,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            max_concurrent_audits: 16,
            failures_before_backoff: 2,
            backoff_initial_seconds: 300,
            backoff_max_seconds: 6 * 3600,
        }
    }
}

/// `[storage]`: the state database.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// SQLite file; a relative path resolves against `$STATE_DIRECTORY` (systemd `StateDirectory=`)
    /// or, without it, the working directory.
    pub path: PathBuf,
    /// Audit runs kept (older ones, and findings resolved before them, are pruned).
    pub keep_audits: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            path: PathBuf::from("state.db"),
            keep_audits: 2000,
        }
    }
}

/// `[http]`: the metrics and API listener.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on.
    pub listen: String,
    /// Largest page of `/api/v1/findings`.
    pub max_page_size: usize,
    /// A Prometheus-style `web.yml` with `tls_server_config` and `basic_auth_users`.
    pub web_config_file: Option<PathBuf>,
    /// How people reach this daemon (behind a proxy, by name): the base of every link in alerts
    /// and webhook messages. Default: `http://` + `listen`.
    pub external_url: Option<String>,
    /// How long a client has to send a request's headers (and to finish a TLS handshake); also
    /// how long a kept-alive connection may wait for its next request.
    pub header_read_timeout_seconds: u64,
    /// How long one request may take in its handler before it is answered 408.
    pub request_timeout_seconds: u64,
    /// A connection on which no byte moves for this long is closed (a client that stopped
    /// reading its response). Longer than `request_timeout_seconds`.
    pub idle_timeout_seconds: u64,
    /// Connections open at once. Over it, the connection idle the longest (no request in
    /// flight) is closed for the new one; when every one is busy, the new one is closed.
    /// Keep it well under the process's file limit (`LimitNOFILE=` in the unit).
    pub max_connections: usize,
    /// On SIGTERM, how long requests in flight may take to finish before every connection is
    /// dropped.
    pub shutdown_grace_seconds: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:9717".into(),
            max_page_size: 1000,
            web_config_file: None,
            external_url: None,
            header_read_timeout_seconds: 10,
            request_timeout_seconds: 30,
            idle_timeout_seconds: 60,
            max_connections: 256,
            shutdown_grace_seconds: 5,
        }
    }
}

/// `[metrics]`: what `/metrics` publishes beyond the tenant's figures.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Publish one series per user with a critical finding (`entra_mfa_finding_user`). User names
    /// in labels are personal data and cardinality: off unless asked for.
    pub per_user_series: bool,
    /// At most this many per-user series; the rest are counted in `entra_mfa_finding_user_dropped`.
    pub per_user_max: Option<usize>,
}

/// `[watcher]`: the sign-in watcher (issue 12) and its lockout classifier's thresholds.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WatcherConfig {
    /// Watch sign-ins for lockouts between audits.
    pub enabled: bool,
    /// Seconds between two reads of the sign-in log (10–3600).
    pub interval_seconds: u64,
    /// Each read starts this many seconds before the last one's watermark (0–86,400): Entra
    /// writes a sign-in to the log minutes after it happened, sometimes later, so a read from the
    /// exact watermark would miss those that arrive late. Sign-ins read twice are deduplicated by
    /// id. Less than `retention_hours`.
    pub overlap_seconds: u64,
    /// MFA failures (500121, 50088, 50053, 53004) within `window_minutes` that make a user
    /// `locked-out` (1–100).
    pub lockout_failures: u32,
    /// Minutes (1–1440).
    pub window_minutes: u32,
    /// Sign-ins stuck at MFA registration (50079, 50072, 53004) that make `registration-blocked`
    /// (1–100).
    pub registration_failures: u32,
    /// Push notifications denied or unanswered within `bombing_window_minutes` that make
    /// `mfa-prompt-bombing` (2–100).
    pub bombing_pushes: u32,
    /// Minutes (1–240).
    pub bombing_window_minutes: u32,
    /// Hours a user's recent sign-ins are kept (1–720); longer than both windows and the overlap.
    pub retention_hours: u32,
    /// The most of Graph's reports budget (5 requests / 10 s, shared with the audit's
    /// registration sweep) one run may spend, in percent (5–90): the page caps of a run are
    /// derived from it and `interval_seconds` (`WatchOptions::for_share`). 50 % at 120 s reads up
    /// to 26 pages of sign-ins a run, 13,000 a minute.
    pub reports_percent: u64,
}

impl Default for WatcherConfig {
    fn default() -> Self {
        let t = crate::watch::classify::Thresholds::default();
        WatcherConfig {
            enabled: true,
            interval_seconds: 120,
            overlap_seconds: 600,
            lockout_failures: t.lockout_failures,
            window_minutes: t.window.num_minutes() as u32,
            registration_failures: t.registration_failures,
            bombing_pushes: t.bombing_pushes,
            bombing_window_minutes: t.bombing_window.num_minutes() as u32,
            retention_hours: t.retention.num_hours() as u32,
            reports_percent: 50,
        }
    }
}

impl WatcherConfig {
    /// How the reader reads: the overlap, and page caps derived from `reports_percent` of the
    /// client's reports budget over `interval_seconds`.
    pub fn watch_options(&self, pacing: &crate::graph::Pacing) -> crate::collect::WatchOptions {
        crate::collect::WatchOptions {
            overlap: chrono::Duration::seconds(self.overlap_seconds as i64),
            ..crate::collect::WatchOptions::for_share(
                std::time::Duration::from_secs(self.interval_seconds),
                pacing,
                self.reports_percent as f64 / 100.0,
            )
        }
    }

    /// The classifier's thresholds.
    pub fn thresholds(&self) -> crate::watch::classify::Thresholds {
        crate::watch::classify::Thresholds {
            lockout_failures: self.lockout_failures,
            window: chrono::Duration::minutes(i64::from(self.window_minutes)),
            registration_failures: self.registration_failures,
            bombing_pushes: self.bombing_pushes,
            bombing_window: chrono::Duration::minutes(i64::from(self.bombing_window_minutes)),
            retention: chrono::Duration::hours(i64::from(self.retention_hours)),
        }
    }
}
