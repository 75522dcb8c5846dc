//! Configuration: `config.toml` → a validated [`Config`].
//!
//! The structs are the documentation: every key has a doc comment and its default lives in one
//! `default_*` function. Unknown keys are errors, and every error names the file, the line and
//! column, and the key path (`config.toml:7:1: tenant.cloud: …`), whether serde found it (wrong
//! type, unknown key) or validation did (http to a remote host, two credentials, …).
//!
//! Secrets never live in the file: `client_secret_file` (systemd `LoadCredential=`, resolved
//! against `$CREDENTIALS_DIRECTORY`), `client_secret_env`, or a certificate and its key file.
//! They are read by [`Config::credential`] into [`Secret`]s and never logged.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;
use url::Url;

use crate::alerting::AlertingConfig;
use crate::collect::{CollectOptions, PerUserMfaScope};
use crate::evaluate::exceptions::{Exception, ExceptionConfig};
use crate::evaluate::scope::{ScopeConfig, UserScope};
use crate::evaluate::{RulesConfig, CATALOGUE};
use crate::graph::{ClientConfig, Credential, Pacing};
use crate::secret::Secret;

/// A configuration problem: where it is and what is wrong.
#[derive(Debug, Error, PartialEq)]
pub struct ConfigError {
    /// The file (or `<string>`).
    pub origin: String,
    /// 1-based line and column, when the problem is at a place in the file.
    pub position: Option<(usize, usize)>,
    /// The key path, e.g. `tenant.graph_url` (empty for the whole file).
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some((line, col)) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

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
    fn hosts(self) -> Option<(&'static str, &'static str)> {
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

/// `[tenant]`: which tenant, which cloud, which app, and where its credential is.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// The tenant: its GUID or a verified domain (`contoso.onmicrosoft.com`).
    pub tenant_id: String,
    /// `global`, `usgov` (GCC High), `usgov-dod`, `china`, or `custom` with `graph_url` and `login_url`.
    #[serde(default)]
    pub cloud: Cloud,
    /// Graph base URL, `custom` only (plain `http` only for loopback hosts).
    pub graph_url: Option<String>,
    /// Login (token) base URL, `custom` only (plain `http` only for loopback hosts).
    pub login_url: Option<String>,
    /// The app registration's application (client) id.
    pub client_id: String,
    /// File holding the client secret; relative paths resolve against `$CREDENTIALS_DIRECTORY`.
    pub client_secret_file: Option<PathBuf>,
    /// Environment variable holding the client secret.
    pub client_secret_env: Option<String>,
    /// PEM certificate registered on the app (certificate credential).
    pub certificate_file: Option<PathBuf>,
    /// PEM private key of that certificate.
    pub private_key_file: Option<PathBuf>,
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
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:9717".into(),
            max_page_size: 1000,
            web_config_file: None,
            external_url: None,
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

/// The whole configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub tenant: TenantConfig,
    #[serde(default)]
    pub graph: GraphConfig,
    #[serde(default)]
    pub break_glass: BreakGlassConfig,
    /// Which users the user rules judge.
    #[serde(default)]
    pub scope: ScopeConfig,
    /// `[rules.<id>]`: each rule's `enabled`, `severity` and parameters.
    #[serde(default)]
    pub rules: RulesConfig,
    /// `[[exceptions]]`: accepted findings, each with a reason and an expiry date.
    #[serde(default)]
    pub exceptions: Vec<ExceptionConfig>,
    #[serde(default)]
    pub schedule: ScheduleConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// `[alerting]`: Alertmanager and webhooks.
    #[serde(default)]
    pub alerting: AlertingConfig,
    /// Resolved by validation.
    #[serde(skip)]
    endpoints: Option<Endpoints>,
    #[serde(skip)]
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

/// Finds where a key path is in the file, for errors found after parsing.
struct Locator<'a> {
    doc: Option<toml_edit::ImDocument<&'a str>>,
    text: &'a str,
}

impl<'a> Locator<'a> {
    fn new(text: &'a str) -> Locator<'a> {
        Locator {
            doc: toml_edit::ImDocument::parse(text).ok(),
            text,
        }
    }

    fn position(&self, path: &str) -> Option<(usize, usize)> {
        let doc = self.doc.as_ref()?;
        let mut table: &dyn toml_edit::TableLike = doc.as_table();
        let mut span = None;
        let parts: Vec<&str> = path.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let (name, index) = match part.split_once('[') {
                Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
                None => (*part, None),
            };
            let (key, item) = table.get_key_value(name)?;
            span = key.span().or_else(|| item.span());
            let item = match index {
                Some(n) => {
                    let t = item.as_array_of_tables()?.get(n)?;
                    span = t.span().or(span);
                    if i + 1 == parts.len() {
                        break;
                    }
                    table = t;
                    continue;
                }
                None => item,
            };
            if i + 1 < parts.len() {
                table = item.as_table_like()?;
            }
        }
        span.map(|s| line_col(self.text, s.start))
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, col)
}

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
fn did_you_mean<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    }
    candidates
        .iter()
        .map(|c| (distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min()
        .map(|(_, c)| c)
}

/// Rewrites serde's "unknown field `x`, expected one of `a`, `b`" with a suggestion.
fn explain(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_string();
    };
    let Some((field, tail)) = rest.split_once('`') else {
        return message.to_string();
    };
    let expected: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
    match did_you_mean(field, &expected) {
        Some(s) => format!("unknown key (did you mean {s}?)"),
        None if !expected.is_empty() => {
            format!("unknown key (known keys: {})", expected.join(", "))
        }
        None => "unknown key".to_string(),
    }
}

/// Whether a URL names this machine (localhost, 127.0.0.0/8, ::1).
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

fn is_guid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok() && s.len() == 36
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            position: None,
            key: String::new(),
            message: format!("cannot read the file: {e}"),
        })?;
        Config::parse(&text, &origin)
    }

    /// Parses and validates configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let err = |position, key: String, message: String| ConfigError {
            origin: origin.to_string(),
            position,
            key,
            message,
        };
        let de = toml::Deserializer::new(text);
        let mut config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let position = inner.span().map(|s| line_col(text, s.start));
            let message = explain(inner.message());
            // For an unknown key serde's path names its table; name the key itself.
            let key = match (message.starts_with("unknown key"), inner.span()) {
                (true, Some(span)) => {
                    let k = text
                        .get(span.clone())
                        .unwrap_or("")
                        .trim()
                        .trim_matches('"');
                    if path == k || path.ends_with(&format!(".{k}")) {
                        path
                    } else if path == "." || path.is_empty() {
                        k.to_string()
                    } else {
                        format!("{path}.{k}")
                    }
                }
                _ if path == "." => String::new(),
                _ => path,
            };
            err(position, key, message)
        })?;
        let locate = Locator::new(text);
        let at = |key: &str, message: String| err(locate.position(key), key.to_string(), message);
        config.endpoints = Some(config.validate(&at)?);
        config.resolved = Some(config.resolve(&at)?);
        Ok(config)
    }

    fn validate(&self, at: &dyn Fn(&str, String) -> ConfigError) -> Result<Endpoints, ConfigError> {
        let t = &self.tenant;
        if t.tenant_id.trim().is_empty()
            || t.tenant_id.contains(char::is_whitespace)
            || (!is_guid(&t.tenant_id) && !t.tenant_id.contains('.'))
        {
            return Err(at(
                "tenant.tenant_id",
                format!("{:?} is neither a GUID nor a domain name", t.tenant_id),
            ));
        }
        if !is_guid(&t.client_id) {
            return Err(at(
                "tenant.client_id",
                format!("{:?} is not a GUID (the app's application id)", t.client_id),
            ));
        }
        let url = |key: &str, value: &Option<String>| -> Result<Url, ConfigError> {
            let value = value
                .as_deref()
                .ok_or_else(|| at("tenant.cloud", format!("cloud = \"custom\" needs {key}")))?;
            let full = format!("tenant.{key}");
            let u =
                Url::parse(value).map_err(|e| at(&full, format!("{value:?} is not a URL: {e}")))?;
            match u.scheme() {
                "https" => {}
                "http" if is_loopback(&u) => {}
                "http" => {
                    return Err(at(
                        &full,
                        format!(
                        "plain http is allowed only for loopback hosts, not {value:?}; use https"
                    ),
                    ))
                }
                other => return Err(at(&full, format!("scheme {other:?} is not http(s)"))),
            }
            if u.query().is_some() || u.fragment().is_some() {
                return Err(at(&full, "a base URL takes no query or fragment".into()));
            }
            Ok(u)
        };
        let (login, graph) = match t.cloud.hosts() {
            Some((login, graph)) => {
                for (key, value) in [("graph_url", &t.graph_url), ("login_url", &t.login_url)] {
                    if value.is_some() {
                        return Err(at(
                            &format!("tenant.{key}"),
                            format!(
                                "only for cloud = \"custom\"; cloud {:?} has fixed endpoints",
                                t.cloud
                            ),
                        ));
                    }
                }
                (Url::parse(login), Url::parse(graph))
            }
            None => (
                Ok(url("login_url", &t.login_url)?),
                Ok(url("graph_url", &t.graph_url)?),
            ),
        };
        let (Ok(login), Ok(graph)) = (login, graph) else {
            return Err(at("tenant.cloud", "internal: bad cloud URL".into()));
        };
        let sources = [
            t.client_secret_file.is_some(),
            t.client_secret_env.is_some(),
            t.certificate_file.is_some() || t.private_key_file.is_some(),
        ];
        match sources.iter().filter(|s| **s).count() {
            0 => {
                return Err(at(
                    "tenant",
                    "no credential: set client_secret_file, client_secret_env, or certificate_file with private_key_file".into(),
                ))
            }
            1 => {}
            _ => {
                let key = if t.client_secret_env.is_some() { "tenant.client_secret_env" } else { "tenant.certificate_file" };
                return Err(at(key, "more than one credential is set; keep exactly one".into()));
            }
        }
        if t.certificate_file.is_some() != t.private_key_file.is_some() {
            let key = if t.certificate_file.is_some() {
                "tenant.certificate_file"
            } else {
                "tenant.private_key_file"
            };
            return Err(at(
                key,
                "a certificate credential needs both certificate_file and private_key_file".into(),
            ));
        }
        if let Some(name) = &t.client_secret_env {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                return Err(at(
                    "tenant.client_secret_env",
                    format!("{name:?} is not an environment variable name"),
                ));
            }
        }
        let g = &self.graph;
        let range = |key: &str, ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(at(key, what.to_string()))
            }
        };
        range(
            "graph.max_concurrency",
            (1..=64).contains(&g.max_concurrency),
            "must be between 1 and 64",
        )?;
        range(
            "graph.request_timeout_seconds",
            (1..=600).contains(&g.request_timeout_seconds),
            "must be between 1 and 600",
        )?;
        range(
            "graph.max_retries",
            g.max_retries <= 20,
            "must be at most 20",
        )?;
        range(
            "graph.audit_timeout_seconds",
            (1..=86_400).contains(&g.audit_timeout_seconds),
            "must be between 1 and 86400 (a day)",
        )?;
        range(
            "graph.sign_in_window_hours",
            (1..=720).contains(&g.sign_in_window_hours),
            "must be between 1 and 720 (30 days, the P1/P2 retention)",
        )?;
        range(
            "graph.mfa_failure_codes",
            !(g.sign_ins && g.mfa_failure_codes.is_empty()),
            "must list at least one code while sign_ins = true",
        )?;
        let p = &g.pacing;
        for (key, v) in [
            ("graph.pacing.directory_ru_per_10s", p.directory_ru_per_10s),
            ("graph.pacing.reports_per_10s", p.reports_per_10s),
            (
                "graph.pacing.conditional_access_per_second",
                p.conditional_access_per_second,
            ),
            ("graph.pacing.auth_methods_per_10s", p.auth_methods_per_10s),
        ] {
            range(key, v.is_finite() && v > 0.0, "must be a positive number")?;
        }
        range(
            "graph.pacing.headroom",
            p.headroom > 0.0 && p.headroom <= 1.0,
            "must be in (0, 1]",
        )?;
        for (i, upn) in self.break_glass.accounts.iter().enumerate() {
            if !upn.contains('@') {
                return Err(at(
                    "break_glass.accounts",
                    format!("entry {} ({upn:?}) is not a user principal name", i + 1),
                ));
            }
        }
        let scope = format!("{}/.default", graph.as_str().trim_end_matches('/'));
        Ok(Endpoints {
            graph,
            login,
            scope,
        })
    }

    /// Compiles the scope and checks the exceptions.
    fn resolve(&self, at: &dyn Fn(&str, String) -> ConfigError) -> Result<Resolved, ConfigError> {
        let scope = UserScope::new(&self.scope).map_err(|(key, i, e)| {
            at(
                &format!("scope.{key}"),
                format!("pattern {} is not a valid regex: {e}", i + 1),
            )
        })?;
        for (key, list) in [
            ("scope.include_groups", &self.scope.include_groups),
            ("scope.exclude_groups", &self.scope.exclude_groups),
        ] {
            if let Some((i, g)) = list.iter().enumerate().find(|(_, g)| !is_guid(g)) {
                return Err(at(
                    key,
                    format!("entry {} ({g:?}) is not a group object id (a GUID)", i + 1),
                ));
            }
        }
        match self.schedule.cron.parse::<cron::Schedule>() {
            Err(e) => return Err(at(
                "schedule.cron",
                format!("{:?} is not a cron expression with a seconds field (sec min hour day month weekday): {e}", self.schedule.cron),
            )),
            // A date that never comes (30 February) parses, and the daemon would wait forever.
            Ok(s) if s.upcoming(chrono::Utc).next().is_none() => {
                return Err(at(
                    "schedule.cron",
                    format!(
                        "{:?} never fires: no date matches it (a day the month never has?)",
                        self.schedule.cron
                    ),
                ))
            }
            Ok(_) => {}
        }
        rule_param_ranges(&self.rules).map_err(|(key, message)| at(&key, message))?;
        if self.schedule.stale_after_seconds == 0 {
            return Err(at(
                "schedule.stale_after_seconds",
                "must be at least 1".into(),
            ));
        }
        if self.http.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(at(
                "http.listen",
                format!(
                    "{:?} is not an address:port such as 127.0.0.1:9717",
                    self.http.listen
                ),
            ));
        }
        if !(1..=100_000).contains(&self.http.max_page_size) {
            return Err(at(
                "http.max_page_size",
                "must be between 1 and 100000".into(),
            ));
        }
        if let Some(u) = &self.http.external_url {
            match Url::parse(u) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {}
                _ => {
                    return Err(at(
                        "http.external_url",
                        format!(
                            "{u:?} is not an http(s) URL such as https://mfa-auditor.example.com/"
                        ),
                    ))
                }
            }
        }
        self.alerting
            .validate()
            .map_err(|(key, message)| at(&key, message))?;
        if self.storage.keep_audits == 0 {
            return Err(at("storage.keep_audits", "must be at least 1".into()));
        }
        let mut exceptions = Vec::with_capacity(self.exceptions.len());
        for (i, e) in self.exceptions.iter().enumerate() {
            let key = |k: &str| format!("exceptions[{i}].{k}");
            if !CATALOGUE.iter().any(|r| r.id == e.rule) {
                let ids: Vec<&str> = CATALOGUE.iter().map(|r| r.id).collect();
                let hint = did_you_mean(&e.rule, &ids)
                    .map(|s| format!(" (did you mean {s}?)"))
                    .unwrap_or_default();
                return Err(at(
                    &key("rule"),
                    format!(
                        "{:?} is not a rule id{hint}; `mfa-auditor rules` lists them",
                        e.rule
                    ),
                ));
            }
            if e.user.trim().is_empty() {
                return Err(at(
                    &key("user"),
                    "names no user (a UPN, an object id, or \"tenant\")".into(),
                ));
            }
            if e.reason.trim().is_empty() {
                return Err(at(&key("reason"), "an exception needs a reason".into()));
            }
            let expires = match (e.expires.date, e.expires.time) {
                (Some(d), None) => chrono::NaiveDate::from_ymd_opt(
                    i32::from(d.year),
                    u32::from(d.month),
                    u32::from(d.day),
                ),
                _ => None,
            }
            .ok_or_else(|| {
                at(
                    &key("expires"),
                    format!("{} is not a plain date like 2026-12-31", e.expires),
                )
            })?;
            exceptions.push(Exception {
                rule: e.rule.clone(),
                subject: e.user.trim().to_string(),
                reason: e.reason.clone(),
                expires,
            });
        }
        Ok(Resolved { scope, exceptions })
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
            time_scale: 1.0,
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

    /// Reads the credential from where the file says, with the process environment.
    pub fn credential(&self) -> Result<Credential, ConfigError> {
        let dir = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        self.credential_with(dir.as_deref(), &|name| std::env::var(name).ok())
    }

    /// Reads the credential, with `credentials_dir` for relative paths and `env` for variables.
    pub fn credential_with(
        &self,
        credentials_dir: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Credential, ConfigError> {
        let t = &self.tenant;
        let fail = |key: &str, message: String| ConfigError {
            origin: "credential".into(),
            position: None,
            key: key.into(),
            message,
        };
        let read = |key: &str, p: &Path| -> Result<String, ConfigError> {
            let path = credential_path(p, credentials_dir);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::InvalidData {
                    fail(key, format!("{} is not text, so not PEM (a DER file? `openssl x509 -inform der -in FILE -out FILE.pem` converts a certificate)", path.display()))
                } else {
                    fail(key, format!("cannot read {}: {e}", path.display()))
                }
            })?;
            warn_if_readable_by_others(&path);
            Ok(text)
        };
        if let Some(p) = &t.client_secret_file {
            return read_secret_file("tenant.client_secret_file", p, credentials_dir)
                .map(Credential::Secret);
        }
        if let Some(name) = &t.client_secret_env {
            return match env(name) {
                Some(v) if !v.is_empty() => Ok(Credential::Secret(Secret::new(v))),
                _ => Err(fail(
                    "tenant.client_secret_env",
                    format!("environment variable {name} is not set or empty"),
                )),
            };
        }
        if let (Some(c), Some(k)) = (&t.certificate_file, &t.private_key_file) {
            let certificate_pem = read("tenant.certificate_file", c)?;
            let key = read("tenant.private_key_file", k)?;
            // Checked here, where the key and the file are known (the client only sees text).
            for (name, p, text, wanted) in [
                (
                    "tenant.certificate_file",
                    c,
                    &certificate_pem,
                    "CERTIFICATE",
                ),
                ("tenant.private_key_file", k, &key, "PRIVATE KEY"),
            ] {
                let path = credential_path(p, credentials_dir);
                match pem::parse(text.as_bytes()) {
                    Ok(block) if block.tag().ends_with(wanted) => {}
                    Ok(block) => {
                        return Err(fail(
                            name,
                            format!(
                                "{} holds a PEM {:?}, not a {wanted}",
                                path.display(),
                                block.tag()
                            ),
                        ))
                    }
                    Err(e) => {
                        return Err(fail(
                            name,
                            format!(
                                "{} is not PEM (-----BEGIN {wanted}-----): {e}",
                                path.display()
                            ),
                        ))
                    }
                }
            }
            return Ok(Credential::Certificate {
                certificate_pem,
                private_key_pem: Secret::new(key),
            });
        }
        Err(fail("tenant", "no credential configured".into()))
    }
}

/// A credential's path: relative ones resolve against `credentials_dir` (`$CREDENTIALS_DIRECTORY`).
fn credential_path(p: &Path, credentials_dir: Option<&Path>) -> PathBuf {
    match credentials_dir {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p.to_path_buf(),
    }
}

/// Rule parameters outside what can mean anything (`min_families = 0` flags nobody, a TAP
/// lifetime outside Entra ID's 10 – 43,200 minutes can never be set): (key path, message).
fn rule_param_ranges(r: &crate::evaluate::RulesConfig) -> Result<(), (String, String)> {
    // entra-docs howto-authentication-temporary-access-pass.md: lifetimes are 10 – 43,200 minutes.
    const TAP_MINUTES: std::ops::RangeInclusive<u32> = 10..=43_200;
    let checks: [(&str, &str, u32, std::ops::RangeInclusive<u32>, &str); 8] = [
        (
            "no-mfa-method",
            "grace_days",
            r.no_mfa_method.grace_days,
            0..=3650,
            "days",
        ),
        (
            "no-backup-method",
            "min_families",
            r.no_backup_method.min_families,
            1..=10,
            "recovery families (there are 10)",
        ),
        (
            "tap-long-lived",
            "max_lifetime_minutes",
            r.tap_long_lived.max_lifetime_minutes,
            TAP_MINUTES,
            "minutes (a TAP lives 10 – 43,200 minutes)",
        ),
        (
            "mfa-failures",
            "threshold",
            r.mfa_failures.threshold,
            1..=u32::MAX,
            "failed sign-ins",
        ),
        (
            "tap-policy-lifetime",
            "max_default_minutes",
            r.tap_policy_lifetime.max_default_minutes,
            TAP_MINUTES,
            "minutes (a TAP lives 10 – 43,200 minutes)",
        ),
        (
            "tap-policy-lifetime",
            "max_lifetime_minutes",
            r.tap_policy_lifetime.max_lifetime_minutes,
            TAP_MINUTES,
            "minutes (a TAP lives 10 – 43,200 minutes)",
        ),
        (
            "too-few-recovery-admins",
            "min",
            r.too_few_recovery_admins.min,
            1..=u32::MAX,
            "admins",
        ),
        (
            "break-glass-count",
            "expected",
            r.break_glass_count.expected,
            1..=u32::MAX,
            "accounts (Microsoft recommends two; turn the rule off instead of expecting none)",
        ),
    ];
    for (rule, param, value, range, unit) in checks {
        if !range.contains(&value) {
            let bounds = if *range.end() == u32::MAX {
                format!("at least {}", range.start())
            } else {
                format!("between {} and {}", range.start(), range.end())
            };
            return Err((
                format!("rules.{rule}.{param}"),
                format!("{value} is out of range: must be {bounds} {unit}"),
            ));
        }
    }
    if let Some((i, g)) = r
        .tap_policy_scope
        .groups
        .iter()
        .enumerate()
        .find(|(_, g)| !is_guid(g))
    {
        return Err((
            "rules.tap-policy-scope.groups".into(),
            format!("entry {} ({g:?}) is not a group object id (a GUID)", i + 1),
        ));
    }
    Ok(())
}

/// Reads a one-line secret file (a client secret, a password, a webhook URL): one trailing
/// newline is dropped; an empty file is an error naming `key`.
pub(crate) fn read_secret_file(
    key: &str,
    p: &Path,
    credentials_dir: Option<&Path>,
) -> Result<Secret, ConfigError> {
    let path = credential_path(p, credentials_dir);
    let fail = |message: String| ConfigError {
        origin: "credential".into(),
        position: None,
        key: key.into(),
        message,
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
    warn_if_readable_by_others(&path);
    let secret = text
        .strip_suffix('\n')
        .map(|s| s.strip_suffix('\r').unwrap_or(s))
        .unwrap_or(&text);
    if secret.is_empty() {
        return Err(fail(format!("{} is empty", path.display())));
    }
    Ok(Secret::new(secret))
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the secret file is readable by group or others; chmod 600 it");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[tenant]
tenant_id = "contoso.onmicrosoft.com"
client_id = "5a1e3c9d-7b2f-4e6a-8c0d-2f4b6d8e0a1c"
client_secret_env = "MFA_SECRET"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "config.toml")
    }

    fn error(text: &str) -> String {
        parse(text).expect_err("should be refused").to_string()
    }

    #[test]
    fn each_cloud_has_its_endpoints_and_scope() {
        for (cloud, graph, login) in [
            (
                "global",
                "https://graph.microsoft.com/",
                "https://login.microsoftonline.com/",
            ),
            (
                "usgov",
                "https://graph.microsoft.us/",
                "https://login.microsoftonline.us/",
            ),
            (
                "usgov-dod",
                "https://dod-graph.microsoft.us/",
                "https://login.microsoftonline.us/",
            ),
            (
                "china",
                "https://microsoftgraph.chinacloudapi.cn/",
                "https://login.partner.microsoftonline.cn/",
            ),
        ] {
            let text = GOOD.replace("[tenant]", &format!("[tenant]\ncloud = \"{cloud}\""));
            let c = parse(&text).expect("valid").client_config();
            assert_eq!(c.graph_base.as_str(), graph);
            assert_eq!(c.login_base.as_str(), login);
            assert_eq!(c.scope, format!("{}/.default", graph.trim_end_matches('/')));
        }
    }

    #[test]
    fn custom_cloud_allows_http_only_on_loopback() {
        let custom = |g: &str| {
            GOOD.replace("[tenant]", &format!("[tenant]\ncloud = \"custom\"\ngraph_url = \"{g}\"\nlogin_url = \"http://127.0.0.1:9\""))
        };
        assert!(parse(&custom("http://127.0.0.1:8089")).is_ok());
        assert!(parse(&custom("http://localhost:8089")).is_ok());
        assert!(parse(&custom("https://graph.contoso.example")).is_ok());
        let e = error(&custom("http://graph.contoso.example"));
        assert_eq!(e, "config.toml:4:1: tenant.graph_url: plain http is allowed only for loopback hosts, not \"http://graph.contoso.example\"; use https");
        let e = error(&GOOD.replace("[tenant]", "[tenant]\ncloud = \"custom\""));
        assert!(
            e.contains("tenant.cloud: cloud = \"custom\" needs login_url"),
            "{e}"
        );
        let e = error(&GOOD.replace("[tenant]", "[tenant]\ngraph_url = \"https://x.example\""));
        assert!(
            e.starts_with("config.toml:3:1: tenant.graph_url: only for cloud = \"custom\""),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_name_the_key_the_line_and_a_suggestion() {
        let e = error(&format!("{GOOD}\n[graph]\nmax_concurency = 4\n"));
        assert_eq!(
            e,
            "config.toml:8:1: graph.max_concurency: unknown key (did you mean max_concurrency?)"
        );
        let e = error(&format!("{GOOD}\n[grahp]\n"));
        assert!(
            e.starts_with("config.toml:7:2: grahp: unknown key (did you mean graph?)"),
            "{e}"
        );
    }

    #[test]
    fn the_audit_deadline_is_range_checked_and_defaults_below_an_hour() {
        let c = parse(GOOD).expect("good");
        assert_eq!(c.audit_timeout(), Duration::from_secs(3000));
        for bad in ["0", "86401"] {
            let e = error(&format!("{GOOD}\n[graph]\naudit_timeout_seconds = {bad}\n"));
            assert_eq!(
                e,
                "config.toml:8:1: graph.audit_timeout_seconds: must be between 1 and 86400 (a day)"
            );
        }
        let c = parse(&format!("{GOOD}\n[graph]\naudit_timeout_seconds = 600\n")).expect("ok");
        assert_eq!(c.audit_timeout(), Duration::from_secs(600));
    }

    #[test]
    fn wrong_types_and_variants_name_the_key_and_line() {
        let e = error(&format!("{GOOD}\n[graph]\nmax_concurrency = \"eight\"\n"));
        assert!(
            e.starts_with(
                "config.toml:8:19: graph.max_concurrency: invalid type: string \"eight\""
            ),
            "{e}"
        );
        let e = error(&GOOD.replace("[tenant]", "[tenant]\ncloud = \"azure\""));
        assert!(
            e.starts_with("config.toml:3:9: tenant.cloud: unknown variant `azure`"),
            "{e}"
        );
    }

    #[test]
    fn ranges_are_checked() {
        let e = error(&format!("{GOOD}\n[graph]\nmax_concurrency = 0\n"));
        assert_eq!(
            e,
            "config.toml:8:1: graph.max_concurrency: must be between 1 and 64"
        );
        let e = error(&format!("{GOOD}\n[graph.pacing]\nheadroom = 1.5\n"));
        assert_eq!(
            e,
            "config.toml:8:1: graph.pacing.headroom: must be in (0, 1]"
        );
    }

    #[test]
    fn exactly_one_credential() {
        let none = GOOD.replace("client_secret_env = \"MFA_SECRET\"\n", "");
        assert!(
            error(&none).contains("tenant: no credential"),
            "{}",
            error(&none)
        );
        let two = format!("{GOOD}client_secret_file = \"secret\"\n");
        assert!(error(&two).contains("tenant.client_secret_env: more than one credential"));
        let half = GOOD.replace(
            "client_secret_env = \"MFA_SECRET\"",
            "certificate_file = \"c.pem\"",
        );
        assert!(
            error(&half).contains("tenant.certificate_file: a certificate credential needs both")
        );
    }

    #[test]
    fn a_certificate_or_key_that_is_not_pem_names_its_key_and_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = GOOD.replace(
            "client_secret_env = \"MFA_SECRET\"",
            "certificate_file = \"c.pem\"\nprivate_key_file = \"k.pem\"",
        );
        let config = parse(&text).expect("valid");
        std::fs::write(dir.path().join("c.pem"), [0x30u8, 0x82, 0x01, 0x0a]).expect("der");
        std::fs::write(
            dir.path().join("k.pem"),
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIFBAW4dCJc4=\n-----END PRIVATE KEY-----\n",
        )
        .expect("key");
        let e = config
            .credential_with(Some(dir.path()), &|_| None)
            .expect_err("DER is not PEM")
            .to_string();
        assert!(
            e.contains("tenant.certificate_file")
                && e.contains(&format!(
                    "{} is not text, so not PEM",
                    dir.path().join("c.pem").display()
                )),
            "{e}"
        );
        std::fs::write(dir.path().join("c.pem"), "MIIBCgKCAQEA\n").expect("base64 alone");
        let e = config
            .credential_with(Some(dir.path()), &|_| None)
            .expect_err("no PEM armour")
            .to_string();
        assert!(
            e.contains("tenant.certificate_file")
                && e.contains(&format!(
                    "{} is not PEM",
                    dir.path().join("c.pem").display()
                )),
            "{e}"
        );
        std::fs::write(
            dir.path().join("c.pem"),
            "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",
        )
        .expect("cert");
        std::fs::write(dir.path().join("k.pem"), "not a key").expect("key");
        let e = config
            .credential_with(Some(dir.path()), &|_| None)
            .expect_err("not a key")
            .to_string();
        assert!(
            e.contains("tenant.private_key_file") && e.contains("k.pem is not PEM"),
            "{e}"
        );
    }

    #[test]
    fn secrets_come_from_the_credentials_directory_and_never_show() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("client-secret"), "s3cr3t-value\n").expect("write");
        let text = GOOD.replace(
            "client_secret_env = \"MFA_SECRET\"",
            "client_secret_file = \"client-secret\"",
        );
        let config = parse(&text).expect("valid");
        let cred = config
            .credential_with(Some(dir.path()), &|_| None)
            .expect("read");
        match &cred {
            Credential::Secret(s) => assert_eq!(s.expose(), "s3cr3t-value"),
            other => panic!("{other:?}"),
        }
        assert!(!format!("{cred:?}{config:?}").contains("s3cr3t"));
        let missing = config
            .credential_with(None, &|_| None)
            .expect_err("no such file here");
        assert!(
            missing
                .to_string()
                .contains("tenant.client_secret_file: cannot read client-secret"),
            "{missing}"
        );
        std::fs::write(dir.path().join("client-secret"), "\n").expect("write");
        assert!(
            config.credential_with(Some(dir.path()), &|_| None).is_err(),
            "an empty secret is refused"
        );
    }

    #[test]
    fn the_secret_env_var_must_be_set() {
        let config = parse(GOOD).expect("valid");
        assert!(config
            .credential_with(None, &|_| None)
            .expect_err("unset")
            .to_string()
            .contains("MFA_SECRET is not set"));
        let cred = config
            .credential_with(None, &|n| (n == "MFA_SECRET").then(|| "x".to_string()))
            .expect("set");
        assert!(matches!(cred, Credential::Secret(_)));
    }

    #[test]
    fn rules_scope_and_exceptions_are_checked_with_their_line() {
        let e = error(&format!(
            "{GOOD}\n[rules.no-bakup-method]\nmin_families = 3\n"
        ));
        assert!(e.starts_with("config.toml:7:8: rules.no-bakup-method: unknown key (did you mean no-backup-method?)"), "{e}");
        let e = error(&format!(
            "{GOOD}\n[rules.no-backup-method]\nmin_families = \"two\"\n"
        ));
        assert!(
            e.starts_with("config.toml:8:16: rules.no-backup-method.min_families: invalid type"),
            "{e}"
        );
        let e = error(&format!(
            "{GOOD}\n[scope]\nexclude_upn_patterns = [\"^svc-\", \"(oops\"]\n"
        ));
        assert!(
            e.starts_with(
                "config.toml:8:1: scope.exclude_upn_patterns: pattern 2 is not a valid regex"
            ),
            "{e}"
        );
        let exception = |body: &str| {
            format!("{GOOD}\n[[exceptions]]\nrule = \"no-backup-method\"\nuser = \"ann@contoso.com\"\nreason = \"travel phone\"\nexpires = 2026-12-31\n\n[[exceptions]]\n{body}\n")
        };
        let ok = parse(&exception("rule = \"phone-only\"\nuser = \"bob@contoso.com\"\nreason = \"r\"\nexpires = 2027-01-01")).expect("valid");
        assert_eq!(ok.exception_list().len(), 2);
        assert_eq!(ok.exception_list()[1].expires.to_string(), "2027-01-01");
        let e = error(&exception(
            "rule = \"phone-only\"\nuser = \"bob@contoso.com\"\nreason = \"r\"",
        ));
        assert!(
            e.starts_with("config.toml:13:1: exceptions[1]: missing field `expires`"),
            "{e}"
        );
        let e = error(&exception("rule = \"phone-olny\"\nuser = \"bob@contoso.com\"\nreason = \"r\"\nexpires = 2027-01-01"));
        assert!(e.starts_with("config.toml:14:1: exceptions[1].rule: \"phone-olny\" is not a rule id (did you mean phone-only?)"), "{e}");
        let e = error(&exception("rule = \"phone-only\"\nuser = \"bob@contoso.com\"\nreason = \"r\"\nexpires = 2027-01-01T10:00:00Z"));
        assert!(
            e.starts_with(
                "config.toml:17:1: exceptions[1].expires: 2027-01-01T10:00:00Z is not a plain date"
            ),
            "{e}"
        );
    }

    #[test]
    fn scope_groups_must_be_object_ids_and_are_read_by_collect() {
        let e = error(&format!(
            "{GOOD}\n[scope]\ninclude_groups = [\"All Staff\"]\n"
        ));
        assert_eq!(e, "config.toml:8:1: scope.include_groups: entry 1 (\"All Staff\") is not a group object id (a GUID)");
        let text = format!(
            "{GOOD}\n[scope]\ninclude_groups = [\"9a0c0000-0000-4000-8000-000000000001\"]\nexclude_groups = [\"9a0c0000-0000-4000-8000-000000000003\"]\n"
        );
        let options = parse(&text).expect("valid").collect_options();
        assert_eq!(
            options.groups,
            vec![
                "9a0c0000-0000-4000-8000-000000000001",
                "9a0c0000-0000-4000-8000-000000000003"
            ]
        );
    }

    #[test]
    fn schedule_http_and_storage_are_checked() {
        let e = error(&format!("{GOOD}\n[schedule]\ncron = \"0 * * * *\"\n"));
        assert!(e.starts_with("config.toml:8:1: schedule.cron: \"0 * * * *\" is not a cron expression with a seconds field"), "{e}");
        let e = error(&format!("{GOOD}\n[http]\nlisten = \"localhost\"\n"));
        assert!(
            e.starts_with("config.toml:8:1: http.listen: \"localhost\" is not an address:port"),
            "{e}"
        );
        let c = parse(&format!("{GOOD}\n[schedule]\ncron = \"*/5 * * * * *\"\n")).expect("valid");
        let now = chrono::Utc::now();
        let next: Vec<_> = c.cron().after(&now).take(2).collect();
        assert_eq!((next[1] - next[0]).num_seconds(), 5);
    }

    #[test]
    fn the_sample_alerting_blocks_parse_to_the_codes_defaults() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"))
            .expect("sample");
        let start = text
            .find("# Per-user alerts")
            .expect("the alerting section");
        let end = text
            .find("# Accepted findings")
            .expect("the exceptions section");
        let block: String = text[start..end]
            .lines()
            .filter_map(|l| l.strip_prefix("## "))
            .map(|l| l.split("  #").next().unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let c = parse(&format!("{GOOD}\n{block}\n")).unwrap_or_else(|e| panic!("{e}\n{block}"));
        let am = c.alerting.alertmanager.expect("alertmanager");
        let defaults: crate::alerting::AlertmanagerConfig =
            toml::from_str(&format!("url = {:?}", am.url)).expect("defaults");
        assert_eq!(
            (
                am.min_severity,
                am.resend_interval_seconds,
                am.timeout_seconds,
                am.max_alerts
            ),
            (
                defaults.min_severity,
                defaults.resend_interval_seconds,
                defaults.timeout_seconds,
                defaults.max_alerts
            )
        );
        let w = &c.alerting.webhook[0];
        let defaults: crate::alerting::WebhookConfig =
            toml::from_str("name = \"x\"\nurl_env = \"X\"").expect("defaults");
        assert_eq!(
            (w.batch_above, w.timeout_seconds),
            (defaults.batch_above, defaults.timeout_seconds)
        );
        assert_eq!(w.format, crate::alerting::WebhookFormat::Slack);
    }

    #[test]
    fn alerting_errors_name_the_key_and_line() {
        let e = error(&format!(
            "{GOOD}\n[[alerting.webhook]]\nname = \"a\"\nformat = \"discord\"\nurl_env = \"X\"\n"
        ));
        assert!(
            e.starts_with("config.toml:9:10: alerting.webhook[0].format: "),
            "{e}"
        );
        let e = error(&format!(
            "{GOOD}\n[[alerting.webhook]]\nname = \"a\"\nurl_env = \"X\"\n\n[[alerting.webhook]]\nname = \"a\"\nurl_env = \"Y\"\n"
        ));
        assert!(
            e.starts_with("config.toml:12:1: alerting.webhook[1].name: \"a\" names two webhooks"),
            "{e}"
        );
        let e = error(&format!("{GOOD}\n[http]\nexternal_url = \"mfa.example\"\n"));
        assert!(e.starts_with("config.toml:8:1: http.external_url: "), "{e}");
    }

    #[test]
    fn the_sample_config_is_valid_and_its_defaults_match_the_code() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"))
            .expect("sample");
        let config = parse(&text).expect("the sample config validates");
        assert_eq!(config.graph, GraphConfig::default());
        assert_eq!(config.client_config().pacing, Pacing::default());
        // Every commented default in the sample, uncommented, still parses to the defaults.
        let uncommented: String = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest)
                    if rest.contains(" = ")
                        && !rest.starts_with("client_secret_env")
                        && !rest.starts_with("certificate_file")
                        && !rest.starts_with("private_key_file")
                        && !rest.starts_with("graph_url")
                        && !rest.starts_with("login_url") =>
                {
                    rest
                }
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let full = parse(&uncommented).unwrap_or_else(|e| panic!("uncommented sample: {e}"));
        assert_eq!(full.graph, GraphConfig::default());
        assert_eq!(full.break_glass, BreakGlassConfig::default());
        assert_eq!(full.scope, ScopeConfig::default());
        assert_eq!(
            full.rules,
            RulesConfig::default(),
            "every documented rule default is the code's"
        );
        assert!(full.exceptions.is_empty());
    }

    #[test]
    fn a_cron_that_never_fires_is_refused_naming_the_key_and_line() {
        let e = error(&format!("{GOOD}\n[schedule]\ncron = \"0 0 0 30 2 *\"\n"));
        assert!(
            e.starts_with("config.toml:8:1: schedule.cron: \"0 0 0 30 2 *\" never fires"),
            "{e}"
        );
        assert!(
            parse(&format!("{GOOD}\n[schedule]\ncron = \"0 0 0 29 2 *\"\n")).is_ok(),
            "29 February comes"
        );
    }

    #[test]
    fn rule_parameters_out_of_range_are_refused_naming_the_key_and_line() {
        for (table, key, value, says) in [
            ("no-backup-method", "min_families", "0", "between 1 and 10"),
            ("mfa-failures", "threshold", "0", "at least 1"),
            (
                "tap-long-lived",
                "max_lifetime_minutes",
                "5",
                "between 10 and 43200",
            ),
            (
                "tap-policy-lifetime",
                "max_lifetime_minutes",
                "50000",
                "between 10 and 43200",
            ),
            ("too-few-recovery-admins", "min", "0", "at least 1"),
            ("break-glass-count", "expected", "0", "at least 1"),
            (
                "tap-policy-scope",
                "groups",
                "[\"admins\"]",
                "not a group object id",
            ),
        ] {
            let e = error(&format!("{GOOD}\n[rules.{table}]\n{key} = {value}\n"));
            assert!(
                e.starts_with(&format!("config.toml:8:1: rules.{table}.{key}: "))
                    && e.contains(says),
                "{table}.{key} = {value}: {e}"
            );
        }
        assert!(parse(&format!(
            "{GOOD}\n[rules.no-backup-method]\nmin_families = 3\n"
        ))
        .is_ok());
    }
}
