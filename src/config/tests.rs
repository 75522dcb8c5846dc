//! `Config::parse` end to end: each validation error names its key and line, and the sample
//! `config.toml` is valid and documents the code's defaults. Also the fixtures (`GOOD`, `parse`,
//! `error`) the other modules' tests share.

use super::*;

pub(super) const GOOD: &str = r#"
[tenant]
tenant_id = "contoso.onmicrosoft.com"
client_id = "5a1e3c9d-7b2f-4e6a-8c0d-2f4b6d8e0a1c"
client_secret_env = "MFA_SECRET"
"#;

pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "config.toml")
}

pub(super) fn error(text: &str) -> String {
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
fn ranges_are_checked() {
    let e = error(&format!("{GOOD}\n[graph]\nmax_concurrency = 0\n"));
    assert_eq!(
        e,
        "config.toml:8:1: graph.max_concurrency: must be between 1 and 64"
    );
    let e = error(&format!(
        "{GOOD}\n[graph.pacing]\nsimulator_time_scale = 0.5\n"
    ));
    assert!(
        e.contains("graph.pacing.simulator_time_scale: must be 1 or more"),
        "{e}"
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
    assert!(error(&half).contains("tenant.certificate_file: a certificate credential needs both"));
}

#[test]
fn rules_scope_and_exceptions_are_checked_with_their_line() {
    let e = error(&format!(
        "{GOOD}\n[rules.no-bakup-method]\nmin_families = 3\n"
    ));
    assert!(
        e.starts_with(
            "config.toml:7:8: rules.no-bakup-method: unknown key (did you mean no-backup-method?)"
        ),
        "{e}"
    );
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
    let ok = parse(&exception(
        "rule = \"phone-only\"\nuser = \"bob@contoso.com\"\nreason = \"r\"\nexpires = 2027-01-01",
    ))
    .expect("valid");
    assert_eq!(ok.exception_list().len(), 2);
    assert_eq!(ok.exception_list()[1].expires.to_string(), "2027-01-01");
    let e = error(&exception(
        "rule = \"phone-only\"\nuser = \"bob@contoso.com\"\nreason = \"r\"",
    ));
    assert!(
        e.starts_with("config.toml:13:1: exceptions[1]: missing field `expires`"),
        "{e}"
    );
    let e = error(&exception(
        "rule = \"phone-olny\"\nuser = \"bob@contoso.com\"\nreason = \"r\"\nexpires = 2027-01-01",
    ));
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
    for (text, message) in [
        (
            "header_read_timeout_seconds = 0",
            "http.header_read_timeout_seconds: must be between 1 and 3600",
        ),
        (
            "request_timeout_seconds = 60",
            "http.idle_timeout_seconds: must be longer than http.request_timeout_seconds (60 s)",
        ),
        (
            "max_connections = 0",
            "http.max_connections: must be between 1 and 100000",
        ),
        (
            "shutdown_grace_seconds = 40",
            "http.shutdown_grace_seconds: must be at most 25",
        ),
    ] {
        let e = error(&format!("{GOOD}\n[http]\n{text}\n"));
        assert!(e.contains(message), "{text}: {e}");
    }
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
                    && !rest.starts_with("federated_token_file")
                    && !rest.starts_with("managed_identity_client_id")
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
    assert_eq!(full.watcher, WatcherConfig::default());
    assert_eq!(config.watcher, WatcherConfig::default());
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
            "smart-lockout-weak",
            "max_threshold",
            "0",
            "between 1 and 1000",
        ),
        (
            "smart-lockout-weak",
            "min_duration_seconds",
            "100000",
            "between 1 and 86400",
        ),
        (
            "tap-policy-scope",
            "groups",
            "[\"admins\"]",
            "not a group object id",
        ),
    ] {
        let e = error(&format!("{GOOD}\n[rules.{table}]\n{key} = {value}\n"));
        assert!(
            e.starts_with(&format!("config.toml:8:1: rules.{table}.{key}: ")) && e.contains(says),
            "{table}.{key} = {value}: {e}"
        );
    }
    assert!(parse(&format!(
        "{GOOD}\n[rules.no-backup-method]\nmin_families = 3\n"
    ))
    .is_ok());
    let lockout = parse(&format!(
        "{GOOD}\n[rules.smart-lockout-weak]\nmax_threshold = 5\nmin_duration_seconds = 120\n"
    ))
    .expect("in range");
    assert_eq!(lockout.rules.smart_lockout_weak.max_threshold, 5);
    assert_eq!(lockout.rules.smart_lockout_weak.min_duration_seconds, 120);
    let e = error(&format!(
        "{GOOD}\n[rules.smart-lockout-weak]\nmax_treshold = 5\n"
    ));
    assert!(
        e.contains("rules.smart-lockout-weak") && e.contains("did you mean max_threshold"),
        "{e}"
    );
}

#[test]
fn the_watcher_defaults_and_errors_name_the_key_and_line() {
    let c = parse(GOOD).expect("valid");
    assert!(c.watcher.enabled);
    assert_eq!(c.watcher.interval_seconds, 120);
    assert_eq!(c.watcher.overlap_seconds, 600);
    assert_eq!(
        c.watcher.thresholds(),
        crate::watch::classify::Thresholds::default()
    );
    let c = parse(&format!(
        "{GOOD}\n[watcher]\nlockout_failures = 6\nbombing_window_minutes = 5\n"
    ))
    .expect("valid");
    assert_eq!(c.watcher.thresholds().lockout_failures, 6);
    assert_eq!(
        c.watcher.thresholds().bombing_window,
        chrono::Duration::minutes(5)
    );
    for (text, message) in [
        ("interval_seconds = 5", "config.toml:8:1: watcher.interval_seconds: must be between 10 and 3600"),
        ("lockout_failures = 0", "config.toml:8:1: watcher.lockout_failures: must be between 1 and 100"),
        ("bombing_pushes = 1", "config.toml:8:1: watcher.bombing_pushes: must be between 2 and 100"),
        ("retention_hours = 0", "config.toml:8:1: watcher.retention_hours: must be between 1 and 720"),
        ("overlap_seconds = 7200\nretention_hours = 2", "config.toml:8:1: watcher.overlap_seconds: must be shorter than watcher.retention_hours (2 h)"),
        ("window_minutes = 120\nretention_hours = 2", "config.toml:8:1: watcher.window_minutes: must be shorter than watcher.retention_hours (2 h)"),
        ("lockout = 3", "watcher.lockout"),
        ("enabled = \"yes\"", "watcher.enabled"),
    ] {
        let e = error(&format!("{GOOD}\n[watcher]\n{text}\n"));
        assert!(e.contains(message), "{text}: {e}");
    }
}

#[test]
fn secretless_credentials_are_exactly_one_and_only_a_plain_managed_identity_omits_the_client_id() {
    let with = |credential: &str| GOOD.replace("client_secret_env = \"MFA_SECRET\"", credential);
    let no_client = |credential: &str| {
        with(credential).replace("client_id = \"5a1e3c9d-7b2f-4e6a-8c0d-2f4b6d8e0a1c\"\n", "")
    };
    for ok in [
        "workload_identity = true",
        "federated_token_file = \"/var/run/secrets/azure/tokens/azure-identity-token\"",
        "managed_identity = true",
        "managed_identity_client_id = \"0b6e2a4c-8d1f-4e3a-9c5b-7a1d3f5e7b9c\"",
        "managed_identity = true\nmanaged_identity_client_id = \"0b6e2a4c-8d1f-4e3a-9c5b-7a1d3f5e7b9c\"",
        "managed_identity_assertion = true",
        "managed_identity_assertion = true\nmanaged_identity_client_id = \"0b6e2a4c-8d1f-4e3a-9c5b-7a1d3f5e7b9c\"",
    ] {
        assert!(parse(&with(ok)).is_ok(), "{ok}: {}", error(&with(ok)));
    }
    // Only a plain managed identity signs in as itself, without an app.
    assert!(parse(&no_client("managed_identity = true")).is_ok());
    assert!(parse(&no_client(
        "managed_identity_client_id = \"0b6e2a4c-8d1f-4e3a-9c5b-7a1d3f5e7b9c\""
    ))
    .is_ok());
    for needs_app in [
        "workload_identity = true",
        "managed_identity_assertion = true",
        "client_secret_env = \"MFA_SECRET\"",
    ] {
        let e = error(&no_client(needs_app));
        assert!(e.contains("tenant.client_id: missing"), "{needs_app}: {e}");
    }
    for (two, key) in [
        ("workload_identity = true\nfederated_token_file = \"/t\"", "tenant.federated_token_file: more than one credential is set (workload_identity and federated_token_file)"),
        ("client_secret_env = \"S\"\nmanaged_identity = true", "tenant.managed_identity: more than one credential is set (client_secret_env and managed_identity)"),
        ("workload_identity = true\nmanaged_identity_assertion = true", "tenant.managed_identity_assertion: more than one credential"),
        ("managed_identity_assertion = true\nmanaged_identity = true", "tenant.managed_identity: managed_identity_assertion already uses the managed identity"),
    ] {
        let e = error(&with(two));
        assert!(e.contains(key), "{two}: {e}");
        assert!(e.starts_with("config.toml:"), "the error has its line: {e}");
    }
    let e = error(&with("managed_identity_client_id = \"my-identity\""));
    assert!(
        e.contains("tenant.managed_identity_client_id: \"my-identity\" is not a GUID"),
        "{e}"
    );
    let e = error(&with("federated_token_file = \"\""));
    assert!(
        e.contains("tenant.federated_token_file: an empty path"),
        "{e}"
    );
    let e = error(&with("workload_identity = \"yes\""));
    assert!(e.contains("tenant.workload_identity"), "{e}");
}

#[test]
fn secretless_credentials_are_read_from_the_environment() {
    use crate::graph::{Credential, ManagedIdentityEndpoint};
    let with = |credential: &str| {
        parse(&GOOD.replace("client_secret_env = \"MFA_SECRET\"", credential)).expect("valid")
    };
    let c = with("workload_identity = true");
    let e = c
        .credential_with(None, &|_| None)
        .expect_err("unset")
        .to_string();
    assert!(
        e.contains("tenant.workload_identity: AZURE_FEDERATED_TOKEN_FILE is not set"),
        "{e}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("token");
    let path = file.display().to_string();
    let env = |n: &str| (n == "AZURE_FEDERATED_TOKEN_FILE").then(|| path.clone());
    let e = c
        .credential_with(None, &env)
        .expect_err("missing")
        .to_string();
    assert!(e.contains("cannot read"), "{e}");
    std::fs::write(&file, "\n").expect("write");
    let e = c
        .credential_with(None, &env)
        .expect_err("empty")
        .to_string();
    assert!(e.contains("is empty"), "{e}");
    std::fs::write(&file, "eyJhbGciOiJSUzI1NiJ9.e30.c2ln\n").expect("write");
    let cred = c.credential_with(None, &env).expect("read");
    assert!(
        matches!(&cred, Credential::FederatedTokenFile(p) if p == &file),
        "{cred:?}"
    );
    assert!(
        !format!("{cred:?}").contains("eyJ"),
        "the token is not read into the credential"
    );

    let c = with("managed_identity_client_id = \"0b6e2a4c-8d1f-4e3a-9c5b-7a1d3f5e7b9c\"");
    let cred = c
        .credential_with(None, &|n| {
            [
                ("IDENTITY_ENDPOINT", "http://127.0.0.1:8081/msi/token"),
                ("IDENTITY_HEADER", "h3ader"),
            ]
            .iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| v.to_string())
        })
        .expect("app service");
    match &cred {
        Credential::ManagedIdentity(mi) => {
            assert_eq!(
                mi.client_id.as_deref(),
                Some("0b6e2a4c-8d1f-4e3a-9c5b-7a1d3f5e7b9c")
            );
            assert!(matches!(
                mi.endpoint,
                ManagedIdentityEndpoint::AppService { .. }
            ));
        }
        other => panic!("{other:?}"),
    }
    assert!(!format!("{cred:?}").contains("h3ader"));
    let e = with("managed_identity = true")
        .credential_with(None, &|n| {
            (n == "IDENTITY_ENDPOINT").then(|| "http://x/".to_string())
        })
        .expect_err("half an endpoint")
        .to_string();
    assert!(
        e.contains("tenant.managed_identity: IDENTITY_ENDPOINT is set without"),
        "{e}"
    );
    let cred = with("managed_identity_assertion = true")
        .credential_with(None, &|_| None)
        .expect("imds");
    assert!(
        matches!(cred, Credential::ManagedIdentityAssertion(_)),
        "{cred:?}"
    );
}
