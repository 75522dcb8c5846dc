//! Many tenants in one file: [`ConfigFile`] reads `[tenant]` (one tenant) or `[[tenants]]` (many)
//! and resolves each tenant to its own [`Config`]: the shared sections with the entry's
//! overrides applied, validated as a one-tenant file would be.
//!
//! What an entry overrides (docs/tenants.md says the same to the user):
//! - `[tenants.scope]`, `[tenants.break_glass]`, `[tenants.schedule]` replace the shared section
//!   whole: a key the entry leaves out takes its default, not the shared value.
//! - `[tenants.rules.<id>]` replaces `[rules.<id>]` for that rule only; the other rules keep the
//!   shared settings.
//! - `[[tenants.exceptions]]` are added after the shared `[[exceptions]]`.
//!
//! `[tenant_defaults]` holds `[tenant]` keys every entry inherits unless it sets them (one
//! multi-tenant app: its `client_id` and credential written once); an entry that sets any
//! credential key inherits none. It is applied to a copy of the text before it is read, and
//! every position is still found in the text as written.
//!
//! Everything else (`[graph]`, `[storage]`, `[http]`, `[metrics]`, `[alerting]`, `[watcher]`,
//! `[daemon]`) is daemon-wide. An error in what an entry wrote names the entry and the line
//! (`config.toml:41:1: tenants[2].tenant_id: …`); an error in a shared section names the shared
//! key. Tenant ids and names are unique across entries, and a name never equals another
//! tenant's id (`--tenant`, `?tenant=` take either).

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use super::locate::{deserialize_error, Locator};
use super::{
    BreakGlassConfig, Config, ConfigError, DaemonConfig, GraphConfig, HttpConfig, MetricsConfig,
    ScheduleConfig, StorageConfig, TenantConfig, WatcherConfig,
};
use crate::alerting::AlertingConfig;
use crate::evaluate::exceptions::ExceptionConfig;
use crate::evaluate::scope::{ScopeConfig, UserScope};
use crate::evaluate::RulesConfig;

/// The file as written: one `[tenant]` or `[[tenants]]`, and the shared sections.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileText {
    /// One tenant.
    tenant: Option<TenantConfig>,
    /// Many tenants.
    tenants: Option<Vec<TenantConfig>>,
    /// Applied to the entries before this is read (`apply_tenant_defaults`); here so that a
    /// misspelt top-level key can be told "did you mean tenant_defaults?".
    #[allow(dead_code)]
    tenant_defaults: Option<toml::Table>,
    #[serde(default)]
    graph: GraphConfig,
    #[serde(default)]
    break_glass: BreakGlassConfig,
    #[serde(default)]
    scope: ScopeConfig,
    #[serde(default)]
    rules: RulesConfig,
    #[serde(default)]
    exceptions: Vec<ExceptionConfig>,
    #[serde(default)]
    schedule: ScheduleConfig,
    #[serde(default)]
    storage: StorageConfig,
    #[serde(default)]
    daemon: DaemonConfig,
    #[serde(default)]
    http: HttpConfig,
    #[serde(default)]
    metrics: MetricsConfig,
    #[serde(default)]
    alerting: AlertingConfig,
    #[serde(default)]
    watcher: WatcherConfig,
}

/// A configuration file: one tenant (`[tenant]`) or many (`[[tenants]]`), each resolved to its
/// own [`Config`]: the shared sections with the tenant's overrides applied. The daemon-wide
/// sections (`[graph]`, `[storage]`, `[http]`, `[metrics]`, `[alerting]`, `[watcher]`,
/// `[daemon]`) are the same in every tenant's `Config`.
#[derive(Clone, Debug)]
pub struct ConfigFile {
    tenants: Vec<Arc<Config>>,
    /// For the errors of [`Config::parse`] on a file of many tenants.
    origin: String,
    tenants_at: Option<(usize, usize)>,
}

impl ConfigFile {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            position: None,
            key: String::new(),
            message: format!("cannot read the file: {e}"),
        })?;
        ConfigFile::parse(&text, &origin)
    }

    /// Parses and validates configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<ConfigFile, ConfigError> {
        // Positions are always found in the text as written; `[tenant_defaults]` is applied to
        // a copy that is then read like any file.
        let locate = Locator::new(text);
        let at = |key: &str, message: String| {
            let key = locate.written(key);
            ConfigError {
                origin: origin.to_string(),
                position: locate.position(&key),
                key,
                message,
            }
        };
        let merged = apply_tenant_defaults(text, &at)?;
        let de = toml::Deserializer::new(merged.as_deref().unwrap_or(text));
        let mut file: FileText =
            serde_path_to_error::deserialize(de).map_err(|e| match &merged {
                None => deserialize_error(e, text, origin),
                Some(merged) => {
                    let e = deserialize_error(e, merged, origin);
                    at(&e.key, e.message)
                }
            })?;
        let (entries, many) = match (file.tenant.take(), file.tenants.take()) {
            (Some(_), Some(_)) => return Err(at(
                "tenants",
                "a file configures one tenant ([tenant]) or many ([[tenants]]), not both: make the [tenant] a [[tenants]] entry".into(),
            )),
            (None, None) => {
                return Err(at(
                    "tenant",
                    "no tenant: add a [tenant] section (one tenant) or [[tenants]] entries (many)"
                        .into(),
                ))
            }
            (Some(t), None) => (vec![t], false),
            (None, Some(list)) if list.is_empty() => {
                return Err(at("tenants", "lists no tenant".into()))
            }
            (None, Some(list)) => (list, true),
        };
        validate_daemon(&file.daemon, &at)?;
        let mut tenants = Vec::with_capacity(entries.len());
        // The shared [scope] compiled once (its regexes), for every tenant that keeps it.
        let mut shared_scope = None;
        for (i, entry) in entries.into_iter().enumerate() {
            let index = many.then_some(i);
            let config = resolve(&file, entry, index, &locate, origin, &mut shared_scope)?;
            tenants.push(Arc::new(config));
        }
        check_unique(&tenants, &locate, &at)?;
        Ok(ConfigFile {
            tenants,
            origin: origin.to_string(),
            tenants_at: locate.position("tenants"),
        })
    }

    /// Each tenant's configuration, in file order; never empty.
    pub fn tenants(&self) -> &[Arc<Config>] {
        &self.tenants
    }

    /// The daemon-wide sections (the same in every tenant's `Config`).
    pub fn daemon(&self) -> &Config {
        &self.tenants[0]
    }

    /// One tenant by its name or tenant id; `None` is allowed when the file has one tenant.
    pub fn select(&self, key: Option<&str>) -> Result<Arc<Config>, String> {
        match key {
            None if self.tenants.len() == 1 => Ok(self.tenants[0].clone()),
            None => Err(format!(
                "this file configures {} tenants; name one with --tenant ({})",
                self.tenants.len(),
                self.names().join(", ")
            )),
            Some(k) => self
                .tenants
                .iter()
                .find(|c| c.is_tenant(k))
                .cloned()
                .ok_or_else(|| {
                    format!(
                        "no tenant {k:?} in this file (it has {})",
                        self.names().join(", ")
                    )
                }),
        }
    }

    fn names(&self) -> Vec<&str> {
        self.tenants.iter().map(|c| c.tenant_name()).collect()
    }

    /// The one tenant of a one-tenant file; a file of several is refused, naming them.
    pub(super) fn into_single(mut self) -> Result<Config, ConfigError> {
        if self.tenants.len() == 1 {
            if let Some(c) = self.tenants.pop() {
                return Ok(Arc::try_unwrap(c).unwrap_or_else(|shared| (*shared).clone()));
            }
        }
        Err(ConfigError {
            message: format!(
                "this file configures {} tenants ({}), and this reads one [tenant]: pick one (--tenant) or run the daemon",
                self.tenants.len(),
                self.names().join(", ")
            ),
            origin: self.origin,
            position: self.tenants_at,
            key: "tenants".into(),
        })
    }
}

/// Where a tenant's settings were written: which entry, and which sections it overrides. Maps
/// the key paths validation names (`tenant.client_id`, `scope.include_groups`,
/// `exceptions[3].rule`) to the entry's (`tenants[2].client_id`, …) when that is where the
/// value came from.
struct Place {
    /// The `[[tenants]]` index; `None` for a `[tenant]` file.
    index: Option<usize>,
    scope: bool,
    break_glass: bool,
    schedule: bool,
    /// The rule ids the entry's `[tenants.rules.<id>]` names.
    rules: Vec<String>,
    /// How many of the tenant's exceptions are the shared ones (they come first).
    shared_exceptions: usize,
}

impl Place {
    fn key(&self, key: &str) -> String {
        let Some(i) = self.index else {
            return key.to_string();
        };
        let entry = format!("tenants[{i}]");
        if key == "tenant" {
            return entry;
        }
        if let Some(rest) = key.strip_prefix("tenant.") {
            return format!("{entry}.{rest}");
        }
        if let Some(rest) = key.strip_prefix("exceptions[") {
            let (n, tail) = rest.split_once(']').unwrap_or((rest, ""));
            return match n.parse::<usize>() {
                Ok(n) if n >= self.shared_exceptions => {
                    format!("{entry}.exceptions[{}]{tail}", n - self.shared_exceptions)
                }
                _ => key.to_string(),
            };
        }
        let mut parts = key.split('.');
        let overridden = match parts.next() {
            Some("scope") => self.scope,
            Some("break_glass") => self.break_glass,
            Some("schedule") => self.schedule,
            Some("rules") => parts
                .next()
                .is_some_and(|id| self.rules.iter().any(|r| r == id)),
            _ => false,
        };
        if overridden {
            format!("{entry}.{key}")
        } else {
            key.to_string()
        }
    }
}

/// A tenant name: it goes in URLs, metric labels and file names.
fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
}

/// One tenant's [`Config`]: the shared sections, the entry's overrides, validated.
fn resolve(
    file: &FileText,
    mut tenant: TenantConfig,
    index: Option<usize>,
    locate: &Locator<'_>,
    origin: &str,
    shared_scope: &mut Option<UserScope>,
) -> Result<Config, ConfigError> {
    let scope = tenant.scope.take();
    let rules = tenant.rules.take();
    let exceptions = std::mem::take(&mut tenant.exceptions);
    let break_glass = tenant.break_glass.take();
    let schedule = tenant.schedule.take();
    let rule_ids = match index {
        Some(i) => locate.keys(&format!("tenants[{i}].rules")),
        None => Vec::new(),
    };
    let place = Place {
        index,
        scope: scope.is_some(),
        break_glass: break_glass.is_some(),
        schedule: schedule.is_some(),
        rules: rule_ids,
        shared_exceptions: file.exceptions.len(),
    };
    let at = |key: &str, message: String| {
        let key = locate.written(&place.key(key));
        ConfigError {
            origin: origin.to_string(),
            position: locate.position(&key),
            key,
            message,
        }
    };
    if index.is_none() {
        let written = [
            ("scope", scope.is_some()),
            ("rules", rules.is_some()),
            ("exceptions", !exceptions.is_empty()),
            ("break_glass", break_glass.is_some()),
            ("schedule", schedule.is_some()),
        ];
        if let Some((section, _)) = written.iter().find(|(_, w)| *w) {
            return Err(at(
                &format!("tenant.{section}"),
                format!("only [[tenants]] entries override a shared section; in a [tenant] file write [{section}]"),
            ));
        }
    }
    if let Some(name) = &tenant.name {
        if !is_name(name) {
            return Err(at(
                "tenant.name",
                format!("{name:?} is not a tenant name: lowercase letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63 (it goes in URLs and metric labels)"),
            ));
        }
    }
    let rules = match rules {
        Some(own) => merge_rules(&file.rules, &own, &place.rules).map_err(|e| {
            at(
                "tenant.rules",
                format!("internal: cannot merge the rules: {e}"),
            )
        })?,
        None => file.rules.clone(),
    };
    let mut config = Config {
        tenant,
        graph: file.graph.clone(),
        break_glass: break_glass.unwrap_or_else(|| file.break_glass.clone()),
        scope: scope.unwrap_or_else(|| file.scope.clone()),
        rules,
        exceptions: file.exceptions.iter().cloned().chain(exceptions).collect(),
        schedule: schedule.unwrap_or_else(|| file.schedule.clone()),
        storage: file.storage.clone(),
        daemon: file.daemon.clone(),
        http: file.http.clone(),
        metrics: file.metrics.clone(),
        alerting: file.alerting.clone(),
        watcher: file.watcher.clone(),
        endpoints: None,
        resolved: None,
    };
    config.endpoints = Some(config.validate(&at)?);
    let own_scope = place.scope;
    let compiled = if own_scope {
        None
    } else {
        shared_scope.clone()
    };
    config.resolved = Some(config.resolve(&at, compiled)?);
    if !own_scope && shared_scope.is_none() {
        *shared_scope = Some(config.user_scope().clone());
    }
    Ok(config)
}

/// The shared rules with the tenant's `[tenants.rules.<id>]` in place of theirs, rule by rule.
fn merge_rules(
    shared: &RulesConfig,
    own: &RulesConfig,
    ids: &[String],
) -> Result<RulesConfig, String> {
    let mut merged = toml::Table::try_from(shared).map_err(|e| e.to_string())?;
    let own = toml::Table::try_from(own).map_err(|e| e.to_string())?;
    for id in ids {
        if let Some(v) = own.get(id) {
            merged.insert(id.clone(), v.clone());
        }
    }
    merged
        .try_into()
        .map_err(|e: toml::de::Error| e.to_string())
}

/// Keys of an entry that `[tenant_defaults]` cannot give: each tenant's own, and the overrides
/// (the shared sections are the defaults of those).
const OWN_KEYS: [&str; 7] = [
    "tenant_id",
    "name",
    "scope",
    "rules",
    "exceptions",
    "break_glass",
    "schedule",
];

/// The credential keys: an entry that sets any of them inherits none from `[tenant_defaults]`
/// (its credential replaces the default one whole). Unknown names are harmless here; a key
/// missing from this list is inherited beside the entry's own credential, and the
/// one-credential check refuses the pair.
const CREDENTIAL_KEYS: [&str; 9] = [
    "client_secret_file",
    "client_secret_env",
    "certificate_file",
    "private_key_file",
    "workload_identity",
    "federated_token_file",
    "managed_identity",
    "managed_identity_client_id",
    "managed_identity_assertion",
];

/// `[tenant_defaults]`: the `[tenant]` keys every `[[tenants]]` entry inherits unless it sets
/// them (one multi-tenant app: its `client_id` and credential once, not in every entry). The
/// text with them copied into each entry, or `None` when the file has no `[tenant_defaults]`.
fn apply_tenant_defaults(
    text: &str,
    at: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Option<String>, ConfigError> {
    // A file that does not parse is reported by the deserializer, with its position.
    let Ok(mut doc) = text.parse::<toml_edit::DocumentMut>() else {
        return Ok(None);
    };
    let Some(defaults) = doc.remove("tenant_defaults") else {
        return Ok(None);
    };
    let Some(defaults) = defaults.as_table_like() else {
        return Err(at("tenant_defaults", "must be a table".into()));
    };
    if let Some(key) = OWN_KEYS.iter().find(|k| defaults.contains_key(k)) {
        return Err(at(
            &format!("tenant_defaults.{key}"),
            format!("{key} is each tenant's own: set it in the [[tenants]] entries (shared sections such as [scope] are top-level)"),
        ));
    }
    let Some(entries) = doc
        .get_mut("tenants")
        .and_then(|t| t.as_array_of_tables_mut())
    else {
        return Err(at(
            "tenant_defaults",
            "is for [[tenants]] entries (as tables); this file has none".into(),
        ));
    };
    for entry in entries.iter_mut() {
        let own_credential = CREDENTIAL_KEYS.iter().any(|k| entry.contains_key(k));
        for (key, value) in defaults.iter() {
            if entry.contains_key(key) || (own_credential && CREDENTIAL_KEYS.contains(&key)) {
                continue;
            }
            entry.insert(key, value.clone());
        }
    }
    Ok(Some(doc.to_string()))
}

/// `[daemon]`: values that make sense.
fn validate_daemon(
    d: &DaemonConfig,
    at: &dyn Fn(&str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    if !(1..=1000).contains(&d.max_concurrent_audits) {
        return Err(at(
            "daemon.max_concurrent_audits",
            "must be between 1 and 1000".into(),
        ));
    }
    if !(1..=100).contains(&d.failures_before_backoff) {
        return Err(at(
            "daemon.failures_before_backoff",
            "must be between 1 and 100".into(),
        ));
    }
    if !(1..=86_400).contains(&d.backoff_initial_seconds) {
        return Err(at(
            "daemon.backoff_initial_seconds",
            "must be between 1 and 86400 (a day)".into(),
        ));
    }
    if !(d.backoff_initial_seconds..=7 * 86_400).contains(&d.backoff_max_seconds) {
        return Err(at(
            "daemon.backoff_max_seconds",
            format!(
                "must be at least daemon.backoff_initial_seconds ({} s) and at most 604800 (a week)",
                d.backoff_initial_seconds
            ),
        ));
    }
    Ok(())
}

/// Each tenant once: no two entries with the same tenant id or name, and no name that is
/// another tenant's id (both select a tenant). Linear: files may list thousands.
fn check_unique(
    tenants: &[Arc<Config>],
    locate: &Locator<'_>,
    at: &dyn Fn(&str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    use std::collections::HashMap;
    let line = |key: String| match locate.position(&key) {
        Some((line, _)) => format!("{key} (line {line})"),
        None => key,
    };
    let ids: HashMap<String, usize> = tenants
        .iter()
        .enumerate()
        .rev()
        .map(|(i, c)| (c.tenant.tenant_id.to_ascii_lowercase(), i))
        .collect();
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (j, c) in tenants.iter().enumerate() {
        let t = &c.tenant;
        if let Some(&i) = ids.get(&t.tenant_id.to_ascii_lowercase()) {
            if i != j {
                return Err(at(
                    &format!("tenants[{j}].tenant_id"),
                    format!(
                        "{:?} is already {}: each tenant is configured once",
                        t.tenant_id,
                        line(format!("tenants[{i}].tenant_id"))
                    ),
                ));
            }
        }
        let Some(name) = t.name.as_deref() else {
            continue;
        };
        if let Some(&i) = names.get(name) {
            return Err(at(
                &format!("tenants[{j}].name"),
                format!(
                    "{name:?} is already {}: names are unique",
                    line(format!("tenants[{i}].name"))
                ),
            ));
        }
        names.insert(name, j);
        if let Some(&i) = ids.get(&name.to_ascii_lowercase()) {
            if i != j {
                return Err(at(
                    &format!("tenants[{j}].name"),
                    format!(
                        "{name:?} is the tenant id of {}: a name must not select another tenant",
                        line(format!("tenants[{i}].tenant_id"))
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
