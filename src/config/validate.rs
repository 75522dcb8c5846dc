//! What serde cannot check: the meaning of the values. The tenant and app ids, the cloud's
//! endpoints (plain http only to loopback), exactly one credential, the ranges of `[graph]`,
//! break-glass names, scope patterns and groups, the cron schedule (it must fire), the ranges of
//! the rules' parameters, `[http]`, `[storage]`, `[alerting]` and each exception. Every error
//! names its key, and `at` finds its line.

use std::net::IpAddr;

use url::Url;

use super::locate::did_you_mean;
use super::{Config, ConfigError, Endpoints, Resolved};
use crate::evaluate::exceptions::Exception;
use crate::evaluate::scope::UserScope;
use crate::evaluate::CATALOGUE;

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
    pub(super) fn validate(
        &self,
        at: &dyn Fn(&str, String) -> ConfigError,
    ) -> Result<Endpoints, ConfigError> {
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
        // A plain managed identity signs in as itself: no app, so no client id needed.
        let plain_mi = (t.managed_identity || t.managed_identity_client_id.is_some())
            && !t.managed_identity_assertion;
        if t.client_id.is_empty() && !plain_mi {
            return Err(at(
                "tenant.client_id",
                "missing: the app registration's application id (only a plain managed_identity may omit it)".into(),
            ));
        }
        if !t.client_id.is_empty() && !is_guid(&t.client_id) {
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
        // Exactly one credential. Each entry: (is it set, the key an error names).
        let sources = [
            (t.client_secret_file.is_some(), "tenant.client_secret_file"),
            (t.client_secret_env.is_some(), "tenant.client_secret_env"),
            (
                t.certificate_file.is_some() || t.private_key_file.is_some(),
                if t.certificate_file.is_some() {
                    "tenant.certificate_file"
                } else {
                    "tenant.private_key_file"
                },
            ),
            (t.workload_identity, "tenant.workload_identity"),
            (
                t.federated_token_file.is_some(),
                "tenant.federated_token_file",
            ),
            (
                t.managed_identity_assertion,
                "tenant.managed_identity_assertion",
            ),
            (plain_mi, "tenant.managed_identity"),
        ];
        let set: Vec<&str> = sources.iter().filter(|s| s.0).map(|s| s.1).collect();
        match set.as_slice() {
            [] => {
                return Err(at(
                    "tenant",
                    "no credential: set client_secret_file, client_secret_env, certificate_file with private_key_file, workload_identity, federated_token_file, managed_identity (or managed_identity_client_id), or managed_identity_assertion".into(),
                ))
            }
            [_] => {}
            [first, second, ..] => {
                let name = |k: &str| k.trim_start_matches("tenant.").to_string();
                return Err(at(
                    second,
                    format!(
                        "more than one credential is set ({} and {}); keep exactly one",
                        name(first),
                        name(second)
                    ),
                ));
            }
        }
        if t.managed_identity_assertion && t.managed_identity {
            return Err(at(
                "tenant.managed_identity",
                "managed_identity_assertion already uses the managed identity (the system-assigned one, or managed_identity_client_id); remove managed_identity".into(),
            ));
        }
        if let Some(id) = &t.managed_identity_client_id {
            if !is_guid(id) {
                return Err(at(
                    "tenant.managed_identity_client_id",
                    format!("{id:?} is not a GUID (the user-assigned identity's client id)"),
                ));
            }
        }
        if let Some(p) = &t.federated_token_file {
            if p.as_os_str().is_empty() {
                return Err(at("tenant.federated_token_file", "an empty path".into()));
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
        range(
            "graph.pacing.simulator_time_scale",
            p.simulator_time_scale.is_finite() && p.simulator_time_scale >= 1.0,
            "must be 1 or more (1 against Graph; N against graph-sim --time-scale N)",
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

    /// Compiles the scope (unless `compiled` is this `[scope]` already compiled: tenants that
    /// share it share one) and checks the exceptions.
    pub(super) fn resolve(
        &self,
        at: &dyn Fn(&str, String) -> ConfigError,
        compiled: Option<UserScope>,
    ) -> Result<Resolved, ConfigError> {
        let scope = match compiled {
            Some(scope) => scope,
            None => UserScope::new(&self.scope).map_err(|(key, i, e)| {
                at(
                    &format!("scope.{key}"),
                    format!("pattern {} is not a valid regex: {e}", i + 1),
                )
            })?,
        };
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
        self.validate_watcher(at)?;
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
        let h = &self.http;
        for (key, value, max) in [
            (
                "header_read_timeout_seconds",
                h.header_read_timeout_seconds,
                3600,
            ),
            ("request_timeout_seconds", h.request_timeout_seconds, 3600),
            ("idle_timeout_seconds", h.idle_timeout_seconds, 7200),
        ] {
            if !(1..=max).contains(&value) {
                return Err(at(
                    &format!("http.{key}"),
                    format!("must be between 1 and {max}"),
                ));
            }
        }
        if h.idle_timeout_seconds <= h.request_timeout_seconds {
            return Err(at(
                "http.idle_timeout_seconds",
                format!(
                    "must be longer than http.request_timeout_seconds ({} s), or a slow handler's connection is closed as idle",
                    h.request_timeout_seconds
                ),
            ));
        }
        if !(1..=100_000).contains(&h.max_connections) {
            return Err(at(
                "http.max_connections",
                "must be between 1 and 100000 (and under the process's file limit)".into(),
            ));
        }
        if h.shutdown_grace_seconds > 25 {
            return Err(at(
                "http.shutdown_grace_seconds",
                "must be at most 25 (the unit's TimeoutStopSec is 30 s)".into(),
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
}

/// Rule parameters outside what can mean anything (`min_families = 0` flags nobody, a TAP
/// lifetime outside Entra ID's 10 – 43,200 minutes can never be set): (key path, message).
fn rule_param_ranges(r: &crate::evaluate::RulesConfig) -> Result<(), (String, String)> {
    // entra-docs howto-authentication-temporary-access-pass.md: lifetimes are 10 – 43,200 minutes.
    const TAP_MINUTES: std::ops::RangeInclusive<u32> = 10..=43_200;
    let checks: [(&str, &str, u32, std::ops::RangeInclusive<u32>, &str); 10] = [
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
        (
            "smart-lockout-weak",
            "max_threshold",
            r.smart_lockout_weak.max_threshold,
            1..=1000,
            "failed sign-ins",
        ),
        (
            "smart-lockout-weak",
            "min_duration_seconds",
            r.smart_lockout_weak.min_duration_seconds,
            1..=86_400,
            "seconds (a day at most)",
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

impl Config {
    /// `[watcher]`: ranges, and the retention longer than what it must cover.
    fn validate_watcher(
        &self,
        at: &dyn Fn(&str, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let w = &self.watcher;
        for (key, value, min, max) in [
            ("interval_seconds", w.interval_seconds, 10, 3600),
            ("overlap_seconds", w.overlap_seconds, 0, 86_400),
            ("lockout_failures", u64::from(w.lockout_failures), 1, 100),
            ("window_minutes", u64::from(w.window_minutes), 1, 1440),
            (
                "registration_failures",
                u64::from(w.registration_failures),
                1,
                100,
            ),
            ("bombing_pushes", u64::from(w.bombing_pushes), 2, 100),
            (
                "bombing_window_minutes",
                u64::from(w.bombing_window_minutes),
                1,
                240,
            ),
            ("retention_hours", u64::from(w.retention_hours), 1, 720),
            ("reports_percent", w.reports_percent, 5, 90),
        ] {
            if !(min..=max).contains(&value) {
                return Err(at(
                    &format!("watcher.{key}"),
                    format!("must be between {min} and {max}"),
                ));
            }
        }
        let retention_minutes = u64::from(w.retention_hours) * 60;
        for (key, minutes) in [
            ("window_minutes", u64::from(w.window_minutes)),
            (
                "bombing_window_minutes",
                u64::from(w.bombing_window_minutes),
            ),
            ("overlap_seconds", w.overlap_seconds.div_ceil(60)),
        ] {
            if minutes >= retention_minutes {
                return Err(at(
                    &format!("watcher.{key}"),
                    format!(
                        "must be shorter than watcher.retention_hours ({} h): sign-ins older than the retention are forgotten",
                        w.retention_hours
                    ),
                ));
            }
        }
        Ok(())
    }
}
