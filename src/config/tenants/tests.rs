//! `[[tenants]]`: each entry resolved with its overrides, and every error naming the entry, the
//! key and the line.

use super::*;
use std::path::Path;

const APP: &str = "5a1e3c9d-7b2f-4e6a-8c0d-2f4b6d8e0a1c";

fn two_tenants(extra_a: &str, extra_b: &str) -> String {
    format!(
        r#"[scope]
exclude_upn_patterns = ["^svc-"]

[rules.no-backup-method]
min_families = 3

[rules.mfa-failures]
threshold = 7

[[exceptions]]
rule = "phone-only"
user = "ceo@contoso.com"
reason = "travels"
expires = 2099-01-01

[[tenants]]
name = "contoso"
tenant_id = "contoso.onmicrosoft.com"
client_id = "{APP}"
client_secret_env = "MFA_SECRET"
{extra_a}
[[tenants]]
name = "fabrikam"
tenant_id = "0b0e3f2c-1d4a-4c7e-9a8b-3c2d1e0f9a8b"
client_id = "{APP}"
client_secret_env = "MFA_SECRET"
{extra_b}"#
    )
}

fn parse(text: &str) -> Result<ConfigFile, ConfigError> {
    ConfigFile::parse(text, "config.toml")
}

fn error(text: &str) -> String {
    parse(text).expect_err("should be refused").to_string()
}

#[test]
fn a_tenant_file_is_one_tenant_named_by_its_id() {
    let file = parse(crate::config::tests::GOOD).expect("valid");
    assert_eq!(file.tenants().len(), 1);
    let c = file.select(None).expect("one tenant needs no --tenant");
    assert_eq!(c.tenant_name(), "contoso.onmicrosoft.com");
    assert!(c.is_tenant("CONTOSO.onmicrosoft.com"));
}

#[test]
fn each_entry_is_a_tenant_selected_by_name_or_id() {
    let file = parse(&two_tenants("", "")).expect("valid");
    let names: Vec<&str> = file.tenants().iter().map(|c| c.tenant_name()).collect();
    assert_eq!(names, ["contoso", "fabrikam"]);
    let e = file.select(None).expect_err("two tenants need --tenant");
    assert!(
        e.contains("name one with --tenant (contoso, fabrikam)"),
        "{e}"
    );
    let f = file
        .select(Some("0B0E3F2C-1D4A-4C7E-9A8B-3C2D1E0F9A8B"))
        .expect("by id");
    assert_eq!(f.tenant_name(), "fabrikam");
    assert_eq!(
        file.select(Some("contoso"))
            .expect("by name")
            .tenant
            .tenant_id,
        "contoso.onmicrosoft.com"
    );
    let e = file.select(Some("northwind")).expect_err("unknown");
    assert!(e.contains("no tenant \"northwind\""), "{e}");
    // Without overrides every tenant has the shared sections.
    for c in file.tenants() {
        assert_eq!(c.rules.no_backup_method.min_families, 3);
        assert_eq!(c.scope.exclude_upn_patterns, ["^svc-"]);
        assert_eq!(c.exception_list().len(), 1);
        assert!(c.tenant.scope.is_none() && c.tenant.rules.is_none());
    }
}

#[test]
fn overrides_replace_sections_merge_rules_by_id_and_add_exceptions() {
    let b = r#"
[tenants.scope]
include_disabled = true

[tenants.rules.no-backup-method]
enabled = false

[tenants.break_glass]
accounts = ["bg1@fabrikam.com", "bg2@fabrikam.com"]

[tenants.schedule]
cron = "0 30 2 * * *"

[[tenants.exceptions]]
rule = "no-mfa-method"
user = "kiosk@fabrikam.com"
reason = "shared kiosk, no phone"
expires = 2099-06-30
"#;
    let file = parse(&two_tenants("", b)).expect("valid");
    let (a, b) = (&file.tenants()[0], &file.tenants()[1]);
    // scope: replaced whole (the shared exclude pattern is not inherited).
    assert!(b.scope.include_disabled);
    assert!(b.scope.exclude_upn_patterns.is_empty());
    assert_eq!(a.scope.exclude_upn_patterns, ["^svc-"]);
    // rules: the named rule replaced (its min_families back to the default), the others shared.
    assert!(!b.rules.no_backup_method.enabled);
    assert_eq!(b.rules.no_backup_method.min_families, 2);
    assert_eq!(b.rules.mfa_failures.threshold, 7);
    assert!(a.rules.no_backup_method.enabled);
    assert_eq!(a.rules.no_backup_method.min_families, 3);
    // break glass and schedule: replaced.
    assert_eq!(b.break_glass.accounts.len(), 2);
    assert!(a.break_glass.accounts.is_empty());
    assert_eq!(b.schedule.cron, "0 30 2 * * *");
    assert_eq!(a.schedule.cron, ScheduleConfig::default().cron);
    // exceptions: the shared ones, then the tenant's.
    let rules: Vec<&str> = b.exception_list().iter().map(|e| e.rule.as_str()).collect();
    assert_eq!(rules, ["phone-only", "no-mfa-method"]);
    assert_eq!(a.exception_list().len(), 1);
    // The break-glass accounts are read in detail by that tenant's collection only.
    assert_eq!(b.collect_options().break_glass_upns.len(), 2);
    assert!(a.collect_options().break_glass_upns.is_empty());
    // The resolved tenant carries no overrides of its own.
    assert!(b.tenant.scope.is_none() && b.tenant.exceptions.is_empty());
}

#[test]
fn errors_in_an_entry_name_the_entry_key_and_line() {
    let e = error(&two_tenants("", "cloud = \"azure\"\n"));
    assert!(
        e.starts_with("config.toml:27:9: tenants[1].cloud: unknown variant `azure`"),
        "{e}"
    );
    let text = two_tenants("", "").replace(
        "tenant_id = \"0b0e3f2c-1d4a-4c7e-9a8b-3c2d1e0f9a8b\"",
        "tenant_id = \"fabrikam\"",
    );
    assert_eq!(
        error(&text),
        "config.toml:24:1: tenants[1].tenant_id: \"fabrikam\" is neither a GUID nor a domain name"
    );
    let e = error(&two_tenants("colud = \"global\"\n", ""));
    assert!(
        e.starts_with("config.toml:21:1: tenants[0].colud: unknown key (did you mean cloud?)"),
        "{e}"
    );
    let e = error(&two_tenants(
        "",
        "[tenants.rules.no-bakup-method]\nenabled = false\n",
    ));
    assert!(
        e.starts_with("config.toml:27:16: tenants[1].rules.no-bakup-method: unknown key (did you mean no-backup-method?)"),
        "{e}"
    );
    let e = error(&two_tenants("", "client_secret_file = \"s\"\n"));
    assert!(
        e.contains("tenants[1].client_secret_env: more than one credential"),
        "{e}"
    );
}

#[test]
fn errors_in_an_override_point_at_the_override_and_shared_errors_at_the_shared_key() {
    let bad_group = "[tenants.scope]\ninclude_groups = [\"sales\"]\n";
    let e = error(&two_tenants("", bad_group));
    assert_eq!(
        e,
        "config.toml:28:1: tenants[1].scope.include_groups: entry 1 (\"sales\") is not a group object id (a GUID)"
    );
    let bad_rule = "[tenants.rules.tap-long-lived]\nmax_lifetime_minutes = 5\n";
    let e = error(&two_tenants(bad_rule, ""));
    assert!(
        e.starts_with("config.toml:22:1: tenants[0].rules.tap-long-lived.max_lifetime_minutes: 5 is out of range"),
        "{e}"
    );
    let bad_exception =
        "[[tenants.exceptions]]\nrule = \"no-mfa-methd\"\nuser = \"x@y\"\nreason = \"r\"\nexpires = 2099-01-01\n";
    let e = error(&two_tenants("", bad_exception));
    assert!(
        e.starts_with("config.toml:28:1: tenants[1].exceptions[0].rule: \"no-mfa-methd\" is not a rule id (did you mean no-mfa-method?)"),
        "{e}"
    );
    let bad_cron = "[tenants.schedule]\ncron = \"every hour\"\n";
    let e = error(&two_tenants(bad_cron, ""));
    assert!(
        e.starts_with("config.toml:22:1: tenants[0].schedule.cron: "),
        "{e}"
    );
    // A shared error names the shared key, whichever tenant found it.
    let text = two_tenants("", "").replace("min_families = 3", "min_families = 0");
    assert!(
        error(&text)
            .starts_with("config.toml:5:1: rules.no-backup-method.min_families: 0 is out of range"),
        "{}",
        error(&text)
    );
}

#[test]
fn duplicate_ids_and_names_are_refused_naming_both() {
    let text = two_tenants("", "").replace(
        "0b0e3f2c-1d4a-4c7e-9a8b-3c2d1e0f9a8b",
        "CONTOSO.onmicrosoft.com",
    );
    assert_eq!(
        error(&text),
        "config.toml:24:1: tenants[1].tenant_id: \"CONTOSO.onmicrosoft.com\" is already tenants[0].tenant_id (line 18): each tenant is configured once"
    );
    let text = two_tenants("", "").replace("name = \"fabrikam\"", "name = \"contoso\"");
    assert_eq!(
        error(&text),
        "config.toml:23:1: tenants[1].name: \"contoso\" is already tenants[0].name (line 17): names are unique"
    );
    let text =
        two_tenants("", "").replace("name = \"fabrikam\"", "name = \"contoso.onmicrosoft.com\"");
    assert!(
        error(&text).contains("tenants[1].name: \"contoso.onmicrosoft.com\" is the tenant id of tenants[0].tenant_id (line 18)"),
        "{}",
        error(&text)
    );
}

#[test]
fn names_are_label_and_url_safe() {
    for bad in ["Contoso", "-x", "a b", "a/b", ""] {
        let text = two_tenants("", "").replace("name = \"fabrikam\"", &format!("name = {bad:?}"));
        let e = error(&text);
        assert!(
            e.starts_with("config.toml:23:1: tenants[1].name: ")
                && e.contains("is not a tenant name"),
            "{bad}: {e}"
        );
    }
    for good in ["fabrikam", "0-eu.prod_2"] {
        let text = two_tenants("", "").replace("name = \"fabrikam\"", &format!("name = {good:?}"));
        assert!(parse(&text).is_ok(), "{good}");
    }
}

#[test]
fn one_of_tenant_or_tenants_and_overrides_only_in_entries() {
    let both = format!("{}\n{}", crate::config::tests::GOOD, two_tenants("", ""));
    let e = error(&both);
    assert!(
        e.contains(
            "tenants: a file configures one tenant ([tenant]) or many ([[tenants]]), not both"
        ),
        "{e}"
    );
    let e = error("[graph]\nmax_retries = 2\n");
    assert!(
        e.contains("tenant: no tenant: add a [tenant] section"),
        "{e}"
    );
    let e = error("tenants = []\n");
    assert_eq!(e, "config.toml:1:1: tenants: lists no tenant");
    let e = error(&format!(
        "{}\n[tenant.scope]\ninclude_disabled = true\n",
        crate::config::tests::GOOD
    ));
    assert!(
        e.starts_with("config.toml:7:9: tenant.scope: only [[tenants]] entries override"),
        "{e}"
    );
}

#[test]
fn config_parse_takes_one_tenant_and_refuses_many_naming_them() {
    let e = Config::parse(&two_tenants("", ""), "config.toml")
        .expect_err("two tenants")
        .to_string();
    assert!(
        e.starts_with(
            "config.toml:16:3: tenants: this file configures 2 tenants (contoso, fabrikam)"
        ),
        "{e}"
    );
    let one = two_tenants("", "");
    let one = &one[..one.rfind("[[tenants]]").expect("second entry")];
    let c = Config::parse(one, "config.toml").expect("one entry");
    assert_eq!(c.tenant_name(), "contoso");
}

#[test]
fn daemon_values_are_checked() {
    let g = crate::config::tests::GOOD;
    let e = error(&format!("{g}\n[daemon]\nmax_concurrent_audits = 0\n"));
    assert_eq!(
        e,
        "config.toml:8:1: daemon.max_concurrent_audits: must be between 1 and 1000"
    );
    let e = error(&format!(
        "{g}\n[daemon]\nbackoff_initial_seconds = 600\nbackoff_max_seconds = 60\n"
    ));
    assert_eq!(e, "config.toml:9:1: daemon.backoff_max_seconds: must be at least daemon.backoff_initial_seconds (600 s) and at most 604800 (a week)");
    let e = error(&format!("{g}\n[daemon]\nfailures_before_backoff = 0\n"));
    assert!(
        e.contains("daemon.failures_before_backoff: must be between 1 and 100"),
        "{e}"
    );
    let file = parse(&format!("{g}\n[daemon]\nmax_concurrent_audits = 4\n")).expect("ok");
    assert_eq!(file.daemon().daemon.max_concurrent_audits, 4);
    assert_eq!(file.daemon().daemon.backoff_max_seconds, 21_600);
}

#[test]
fn the_sample_tenants_config_is_valid() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.tenants.toml"))
        .expect("sample");
    let file = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert!(file.tenants().len() >= 2);
    for c in file.tenants() {
        assert!(c.tenant.name.is_some());
        assert_eq!(c.tenant.client_id, file.tenants()[0].tenant.client_id);
    }
}

#[test]
fn the_admin_consent_url_is_on_the_tenants_cloud() {
    let file = parse(&two_tenants("cloud = \"china\"\n", "")).expect("valid");
    assert_eq!(
        file.tenants()[0].admin_consent_url().as_str(),
        format!("https://login.partner.microsoftonline.cn/contoso.onmicrosoft.com/adminconsent?client_id={APP}")
    );
    assert_eq!(
        file.tenants()[1].admin_consent_url().as_str(),
        format!("https://login.microsoftonline.com/0b0e3f2c-1d4a-4c7e-9a8b-3c2d1e0f9a8b/adminconsent?client_id={APP}")
    );
}

const DEFAULTS: &str = r#"[tenant_defaults]
client_id = "5a1e3c9d-7b2f-4e6a-8c0d-2f4b6d8e0a1c"
client_secret_file = "client-secret"

[[tenants]]
name = "contoso"
tenant_id = "contoso.onmicrosoft.com"

[[tenants]]
name = "fabrikam"
tenant_id = "0b0e3f2c-1d4a-4c7e-9a8b-3c2d1e0f9a8b"
certificate_file = "f.pem"
private_key_file = "f.key"

[[tenants]]
name = "northwind"
tenant_id = "northwind.onmicrosoft.us"
cloud = "usgov"
client_id = "6b2f4d0e-8c3a-4f7b-9d1e-3a5c7e9f1b2d"
"#;

#[test]
fn tenant_defaults_give_every_entry_the_app_and_its_credential_unless_it_sets_its_own() {
    let file = parse(DEFAULTS).unwrap_or_else(|e| panic!("{e}"));
    let t: Vec<&TenantConfig> = file.tenants().iter().map(|c| &c.tenant).collect();
    assert_eq!(t[0].client_id, APP);
    assert_eq!(
        t[0].client_secret_file.as_deref(),
        Some(Path::new("client-secret"))
    );
    // An entry's own credential replaces the default one whole.
    assert!(t[1].client_secret_file.is_none());
    assert_eq!(t[1].certificate_file.as_deref(), Some(Path::new("f.pem")));
    assert_eq!(t[1].client_id, APP);
    // An entry's own key wins.
    assert_eq!(t[2].client_id, "6b2f4d0e-8c3a-4f7b-9d1e-3a5c7e9f1b2d");
    assert_eq!(
        file.tenants()[2].client_config().login_base.as_str(),
        "https://login.microsoftonline.us/"
    );
}

#[test]
fn tenant_defaults_errors_point_at_the_default_or_the_entry_as_written() {
    // A bad inherited value is the default's line.
    let e = error(&DEFAULTS.replace("client_id = \"5a1e", "client_id = \"xx5a1e"));
    assert!(
        e.starts_with("config.toml:2:1: tenant_defaults.client_id: \"xx5a1e"),
        "{e}"
    );
    let e = error(&DEFAULTS.replace(
        "[tenant_defaults]\n",
        "[tenant_defaults]\ncolud = \"usgov\"\n",
    ));
    assert!(
        e.starts_with("config.toml:2:1: tenant_defaults.colud: unknown key (did you mean cloud?)"),
        "{e}"
    );
    // An entry's own error is still its line in the file as written.
    let e = error(&DEFAULTS.replace("cloud = \"usgov\"", "cloud = \"azure\""));
    assert!(
        e.starts_with("config.toml:18:1: tenants[2].cloud: unknown variant `azure`"),
        "{e}"
    );
    let e = error(&DEFAULTS.replace(
        "0b0e3f2c-1d4a-4c7e-9a8b-3c2d1e0f9a8b",
        "contoso.onmicrosoft.com",
    ));
    assert!(
        e.starts_with("config.toml:11:1: tenants[1].tenant_id: \"contoso.onmicrosoft.com\" is already tenants[0].tenant_id (line 7)"),
        "{e}"
    );
    let e = error(&DEFAULTS.replace(
        "[tenant_defaults]\n",
        "[tenant_defaults]\ntenant_id = \"x.com\"\n",
    ));
    assert!(
        e.starts_with("config.toml:2:1: tenant_defaults.tenant_id: tenant_id is each tenant's own"),
        "{e}"
    );
    let e = error(&format!(
        "[tenant_defaults]\ncloud = \"usgov\"\n\n{}",
        crate::config::tests::GOOD
    ));
    assert!(
        e.starts_with("config.toml:1:2: tenant_defaults: is for [[tenants]] entries"),
        "{e}"
    );
    let e = error(&format!("[tenant_default]\n{}", &DEFAULTS[18..]));
    assert!(e.contains("did you mean tenant_defaults?"), "{e}");
}

#[test]
fn a_thousand_tenants_parse_each_resolved() {
    let mut text = String::from("[tenant_defaults]\nclient_id = \"5a1e3c9d-7b2f-4e6a-8c0d-2f4b6d8e0a1c\"\nclient_secret_env = \"S\"\n\n[scope]\nexclude_upn_patterns = [\"^svc-\"]\n");
    for i in 0..1000 {
        text.push_str(&format!(
            "\n[[tenants]]\nname = \"t{i}\"\ntenant_id = \"t{i}.onmicrosoft.com\"\n"
        ));
    }
    let file = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(file.tenants().len(), 1000);
    assert_eq!(file.tenants()[999].tenant_name(), "t999");
    assert_eq!(
        file.select(Some("t500.onmicrosoft.com"))
            .expect("by id")
            .tenant_name(),
        "t500"
    );
}
