//! Configuration: `config.toml` → a validated [`Config`].
//!
//! The structs are the documentation: every key has a doc comment and its default lives in one
//! `default_*` function. Unknown keys are errors, and every error names the file, the line and
//! column, and the key path (`config.toml:7:1: tenant.cloud: …`), whether serde found it (wrong
//! type, unknown key) or validation did (http to a remote host, two credentials, …).
//!
//! Secrets never live in the file: `client_secret_file` (systemd `LoadCredential=`, resolved
//! against `$CREDENTIALS_DIRECTORY`), `client_secret_env`, or a certificate and its key file.
//! They are read by [`Config::credential`] into [`Secret`](crate::secret::Secret)s and never
//! logged.
//!
//! A file configures one tenant (`[tenant]`) or many (`[[tenants]]`, each entry may override
//! the shared `scope`, `rules`, `exceptions`, `break_glass` and `schedule`): [`ConfigFile`]
//! resolves each tenant to its own validated [`Config`] (`tenants.rs`).
//!
//! Here: [`Config`], its one-tenant entry points (`load`, `parse`) and what it gives the rest of
//! the crate. `sections.rs` holds the section structs and their defaults, `locate.rs` the error type and
//! where an error is in the file, `validate.rs` the checks beyond types, `secrets.rs` reading the
//! credential.

mod locate;
mod secrets;
mod sections;
mod tenants;
mod validate;

use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use crate::alerting::AlertingConfig;
use crate::collect::{CollectOptions, PerUserMfaScope};
use crate::evaluate::exceptions::{Exception, ExceptionConfig};
use crate::evaluate::scope::{ScopeConfig, UserScope};
use crate::evaluate::RulesConfig;
use crate::graph::{ClientConfig, Pacing};
pub use locate::ConfigError;
pub(crate) use secrets::read_secret_file;
pub use sections::{
    BreakGlassConfig, Cloud, DaemonConfig, GraphConfig, HttpConfig, MetricsConfig, PacingConfig,
    PerUserMfaSetting, ScheduleConfig, StorageConfig, TenantConfig, WatcherConfig,
};
pub use tenants::ConfigFile;
pub(crate) use validate::is_loopback;

/// One tenant's whole configuration: its `[tenant]` (or `[[tenants]]` entry) and the shared
/// sections with that tenant's overrides applied. Built only by [`ConfigFile::parse`] (and
/// [`Config::parse`] for a one-tenant file), which validates it.
#[derive(Clone, Debug)]
pub struct Config {
    pub tenant: TenantConfig,
    pub graph: GraphConfig,
    pub break_glass: BreakGlassConfig,
    /// Which users the user rules judge.
    pub scope: ScopeConfig,
    /// `[rules.<id>]`: each rule's `enabled`, `severity` and parameters.
    pub rules: RulesConfig,
    /// `[[exceptions]]`: accepted findings, each with a reason and an expiry date (the shared
    /// ones, then the tenant's own).
    pub exceptions: Vec<ExceptionConfig>,
    pub schedule: ScheduleConfig,
    pub storage: StorageConfig,
    /// `[daemon]`: many tenants side by side.
    pub daemon: DaemonConfig,
    pub http: HttpConfig,
    pub metrics: MetricsConfig,
    /// `[alerting]`: Alertmanager and webhooks.
    pub alerting: AlertingConfig,
    /// `[watcher]`: the sign-in watcher and its lockout thresholds.
    pub watcher: WatcherConfig,
    /// Resolved by validation.
    endpoints: Option<Endpoints>,
    resolved: Option<Resolved>,
}

/// What validation compiles once.
#[derive(Clone, Debug)]
struct Resolved {
    scope: UserScope,
    exceptions: Vec<Exception>,
}

#[derive(Clone, Debug)]
struct Endpoints {
    graph: Url,
    login: Url,
    scope: String,
}

impl Config {
    /// The tenant's short name: `name`, or its tenant id.
    pub fn tenant_name(&self) -> &str {
        self.tenant
            .name
            .as_deref()
            .unwrap_or(&self.tenant.tenant_id)
    }

    /// Whether `key` names this tenant (its name or its tenant id, case-insensitive).
    pub fn is_tenant(&self, key: &str) -> bool {
        key.eq_ignore_ascii_case(&self.tenant.tenant_id)
            || self
                .tenant
                .name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(key))
    }

    /// Reads and validates a one-tenant configuration file (`[tenant]`, or `[[tenants]]` with
    /// a single entry); a file with several tenants is refused, naming them.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        ConfigFile::load(path)?.into_single()
    }

    /// Parses and validates one-tenant configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        ConfigFile::parse(text, origin)?.into_single()
    }

    /// The cap on per-user series, or `None` when they are off.
    pub fn per_user_series(&self) -> Option<usize> {
        self.metrics
            .per_user_series
            .then(|| self.metrics.per_user_max.unwrap_or(500))
    }

    /// The base of links to this daemon's API: `[http] external_url`, or `http://` + `listen`.
    pub fn external_url(&self) -> Url {
        let text = self
            .http
            .external_url
            .clone()
            .unwrap_or_else(|| format!("http://{}/", self.http.listen));
        Url::parse(&text).unwrap_or_else(|_| unreachable!("validated in Config::parse"))
    }

    /// The schedule, parsed.
    pub fn cron(&self) -> cron::Schedule {
        // Validated in `parse`; the default is a valid expression.
        self.schedule
            .cron
            .parse()
            .unwrap_or_else(|_| unreachable!("validated in Config::parse"))
    }

    /// The state database path, resolved against `$STATE_DIRECTORY` when relative.
    pub fn state_path(&self) -> PathBuf {
        match std::env::var_os("STATE_DIRECTORY") {
            Some(dir) if self.storage.path.is_relative() => {
                PathBuf::from(dir).join(&self.storage.path)
            }
            _ => self.storage.path.clone(),
        }
    }

    /// The compiled `[scope]`.
    pub fn user_scope(&self) -> &UserScope {
        &self.resolved().scope
    }

    /// The validated `[[exceptions]]`.
    pub fn exception_list(&self) -> &[Exception] {
        &self.resolved().exceptions
    }

    fn resolved(&self) -> &Resolved {
        self.resolved
            .as_ref()
            .unwrap_or_else(|| unreachable!("Config is only built by Config::parse"))
    }

    fn endpoints(&self) -> &Endpoints {
        // Only `parse` builds a Config, and it always resolves the endpoints.
        self.endpoints
            .as_ref()
            .unwrap_or_else(|| unreachable!("Config is only built by Config::parse"))
    }

    /// The Graph base URL in use.
    pub fn graph_url(&self) -> &Url {
        &self.endpoints().graph
    }

    /// Where an admin of this tenant grants the app tenant-wide admin consent, on the tenant's
    /// cloud: `{login}/{tenant}/adminconsent?client_id={app}` (Microsoft Learn, "Grant
    /// tenant-wide admin consent to an application": construct the URL). For a multi-tenant
    /// app, consenting creates its service principal in the tenant and grants the application
    /// permissions the registration lists.
    pub fn admin_consent_url(&self) -> Url {
        let login = &self.endpoints().login;
        let mut url = login
            .join(&format!("{}/adminconsent", self.tenant.tenant_id))
            .unwrap_or_else(|_| login.clone());
        url.query_pairs_mut()
            .append_pair("client_id", &self.tenant.client_id);
        url
    }

    /// The Graph client's settings.
    pub fn client_config(&self) -> ClientConfig {
        let e = self.endpoints();
        let g = &self.graph;
        let mut c = ClientConfig::new(
            e.graph.clone(),
            e.login.clone(),
            &self.tenant.tenant_id,
            &self.tenant.client_id,
        );
        c.scope = e.scope.clone();
        c.max_concurrency = g.max_concurrency;
        c.request_timeout = Duration::from_secs(g.request_timeout_seconds);
        c.max_retries = g.max_retries;
        c.pacing = Pacing {
            directory_ru_per_10s: g.pacing.directory_ru_per_10s,
            reports_per_10s: g.pacing.reports_per_10s,
            conditional_access_per_s: g.pacing.conditional_access_per_second,
            auth_methods_per_10s: g.pacing.auth_methods_per_10s,
            headroom: g.pacing.headroom,
            time_scale: g.pacing.simulator_time_scale,
        };
        c
    }

    /// An audit's deadline (`graph.audit_timeout_seconds`).
    pub fn audit_timeout(&self) -> Duration {
        Duration::from_secs(self.graph.audit_timeout_seconds)
    }

    /// What a collection reads.
    pub fn collect_options(&self) -> CollectOptions {
        let g = &self.graph;
        CollectOptions {
            conditional_access: g.conditional_access,
            sign_ins: g.sign_ins,
            sign_in_window: chrono::Duration::hours(i64::from(g.sign_in_window_hours)),
            mfa_failure_codes: g.mfa_failure_codes.clone(),
            tap_detail: g.tap_detail,
            admin_method_detail: g.admin_method_detail,
            per_user_mfa: match g.per_user_mfa {
                PerUserMfaSetting::Off => PerUserMfaScope::Off,
                PerUserMfaSetting::Admins => PerUserMfaScope::Admins,
                PerUserMfaSetting::All => PerUserMfaScope::All,
            },
            break_glass_upns: self.break_glass.accounts.clone(),
            groups: self
                .scope
                .include_groups
                .iter()
                .chain(&self.scope.exclude_groups)
                .cloned()
                .collect(),
            ..CollectOptions::default()
        }
    }
}

#[cfg(test)]
mod tests;
