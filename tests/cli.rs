//! The command line, run as a user would: the real binary against graph-sim.

use std::path::Path;
use std::process::Output;

use graph_sim::{SimConfig, SimHandle, TenantSource};

const BIN: &str = env!("CARGO_BIN_EXE_mfa-auditor");

async fn sim(tweak: impl FnOnce(&mut SimConfig)) -> SimHandle {
    let mut config = SimConfig {
        tenant: TenantSource::Generated {
            users: 60,
            seed: 4,
            profile: graph_sim::Profile::Realistic,
        },
        ..SimConfig::default()
    };
    tweak(&mut config);
    graph_sim::start(config, ([127, 0, 0, 1], 0).into())
        .await
        .expect("simulator")
}

/// Writes a config for the simulator (or any base URL) with the secret in a file beside it.
fn write_config(
    dir: &Path,
    base: &str,
    tenant: &str,
    client: &str,
    secret: &str,
) -> std::path::PathBuf {
    std::fs::write(dir.join("secret"), format!("{secret}\n")).expect("secret");
    let path = dir.join("config.toml");
    let text = format!(
        "[tenant]\ntenant_id = \"{tenant}\"\nclient_id = \"{client}\"\ncloud = \"custom\"\ngraph_url = \"{base}\"\nlogin_url = \"{base}\"\nclient_secret_file = \"{}\"\n\n[graph]\nmax_retries = 1\nrequest_timeout_seconds = 5\n",
        dir.join("secret").display()
    );
    std::fs::write(&path, text).expect("config");
    path
}

async fn run(args: &[&str]) -> Output {
    tokio::process::Command::new(BIN)
        .args(args)
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .await
        .expect("the binary runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_passes_with_every_permission() {
    // The simulator's default grant and Directory.Read.All (smart lockout's directory settings).
    let sim = sim(|c| c.granted_roles.push("Directory.Read.All".into())).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &sim.base_url(),
        sim.tenant_id(),
        sim.client_id(),
        sim.client_secret(),
    );
    let out = run(&["check-config", "--config", config.to_str().expect("utf-8")]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("token: OK") && t.contains("registration         OK"),
        "{t}"
    );
    assert!(t.contains("UserAuthenticationMethod.Read.All"), "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_reads_the_alerting_secrets_and_names_the_one_missing() {
    let sim = sim(|c| c.granted_roles.push("Directory.Read.All".into())).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &sim.base_url(),
        sim.tenant_id(),
        sim.client_id(),
        sim.client_secret(),
    );
    let hook = dir.path().join("slack-url");
    std::fs::write(
        &hook,
        "https://hooks.slack.example/services/T0/B0/very-secret-part\n",
    )
    .expect("url file");
    let base = std::fs::read_to_string(&config).expect("config");
    let alerting = format!(
        "\n[alerting.alertmanager]\nurl = \"http://127.0.0.1:9093\"\nmin_severity = \"high\"\n\n\
         [[alerting.webhook]]\nname = \"secops\"\nformat = \"slack\"\nurl_file = \"{}\"\n",
        hook.display()
    );
    std::fs::write(&config, format!("{base}{alerting}")).expect("config");
    let out = run(&["check-config", "--config", config.to_str().expect("utf-8")]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains(
            "alerting: Alertmanager at http://127.0.0.1:9093 (findings of severity high and above)"
        ),
        "{t}"
    );
    assert!(t.contains("alerting: webhook secops"), "{t}");
    assert!(!t.contains("very-secret-part"), "{t}");
    std::fs::remove_file(&hook).expect("remove");
    let out = run(&["check-config", "--config", config.to_str().expect("utf-8")]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("alerting.webhook[0].url_file: cannot read"),
        "{t}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_names_a_missing_permission_and_exits_1() {
    // UserAuthenticationMethod.Read.All also grants the report: without both, it is missing.
    let sim = sim(|c| {
        c.granted_roles
            .retain(|r| r != "AuditLog.Read.All" && r != "UserAuthenticationMethod.Read.All")
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &sim.base_url(),
        sim.tenant_id(),
        sim.client_id(),
        sim.client_secret(),
    );
    let out = run(&["check-config", "--config", config.to_str().expect("utf-8")]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("registration         MISSING: grant AuditLog.Read.All"),
        "{t}"
    );
    assert!(
        t.contains("sign-ins             MISSING: grant AuditLog.Read.All"),
        "{t}"
    );
    assert!(
        t.contains("licence              RECOMMENDED: grant Directory.Read.All"),
        "{t}"
    );
    // Where the tenant's admin grants what is missing, on the tenant's login host.
    let consent = format!(
        "{}/{}/adminconsent?client_id={}",
        sim.base_url().trim_end_matches('/'),
        sim.tenant_id(),
        sim.client_id()
    );
    assert!(t.contains(&consent), "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_reports_a_refused_secret_without_showing_it() {
    let sim = sim(|_| {}).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &sim.base_url(),
        sim.tenant_id(),
        sim.client_id(),
        "not-the-secret-xyz",
    );
    let out = run(&["check-config", "--config", config.to_str().expect("utf-8")]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("cannot sign in to tenant") && t.contains("AADSTS7000215"),
        "{t}"
    );
    assert!(!t.contains("not-the-secret-xyz"), "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_on_an_unreachable_endpoint_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Port 9 (discard) on loopback: nothing listens there.
    let config = write_config(
        dir.path(),
        "http://127.0.0.1:9",
        "contoso.onmicrosoft.com",
        "5a1e3c9d-7b2f-4e6a-8c0d-2f4b6d8e0a1c",
        "s",
    );
    let out = run(&["check-config", "--config", config.to_str().expect("utf-8")]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("token: transport error"), "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_names_the_key_and_line_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "[tenant]\ntenant_id = \"contoso.onmicrosoft.com\"\nclient_id = \"5a1e3c9d-7b2f-4e6a-8c0d-2f4b6d8e0a1c\"\nclient_secret_env = \"X\"\n\n[graph]\nmax_retries = \"many\"\n").expect("write");
    let out = run(&["check-config", "--config", path.to_str().expect("utf-8")]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("config.toml:7:15: graph.max_retries: invalid type: string \"many\""),
        "{t}"
    );
    let out = run(&["check-config", "--config", "/nonexistent/config.toml"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("/nonexistent/config.toml: cannot read the file"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_refuses_a_missing_config_and_exits_2() {
    let out = run(&["run", "--config", "/nonexistent/x.toml"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("/nonexistent/x.toml: cannot read the file"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_lists_the_whole_catalogue_with_parameters() {
    let out = run(&["rules"]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0));
    for id in mfa_auditor::evaluate::CATALOGUE.iter().map(|r| r.id) {
        assert!(
            t.contains(&format!("\n{id}  [")) || t.starts_with(&format!("{id}  [")),
            "{id} missing"
        );
    }
    assert!(
        t.contains("[rules.no-backup-method]  enabled = true; min_families = 2"),
        "{t}"
    );
    assert!(
        t.contains("microsoftAuthenticatorPush"),
        "the classification table is shown"
    );
    assert!(
        t.contains("modes: sms, voice")
            && t.contains("Phishing resistant MFA (00000000-0000-0000-0000-000000000004): windowsHelloForBusiness | fido2 | x509CertificateMultiFactor"),
        "the method modes and the built-in strengths are shown"
    );
    assert!(
        t.contains("[rules.smart-lockout-weak]  enabled = true; max_threshold = 10; min_duration_seconds = 60"),
        "{t}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_exit_status_follows_fail_on_and_completeness() {
    let sim = sim(|_| {}).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &sim.base_url(),
        sim.tenant_id(),
        sim.client_id(),
        sim.client_secret(),
    );
    let c = config.to_str().expect("utf-8");
    let out = run(&["audit", "--config", c, "--format", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(report["complete"], true);
    assert!(
        report["findings"].as_array().is_some_and(|f| !f.is_empty()),
        "a realistic tenant has findings"
    );
    let worst = report["findings"][0]["severity"]
        .as_str()
        .expect("severity")
        .to_string();
    let out = run(&[
        "audit",
        "--config",
        c,
        "--format",
        "json",
        "--fail-on",
        &worst,
    ])
    .await;
    assert_eq!(out.status.code(), Some(1), "a finding at --fail-on exits 1");
    let out = run(&[
        "audit",
        "--config",
        c,
        "--fail-on",
        "critical",
        "--format",
        "csv",
        "--output",
        dir.path().join("r.csv").to_str().expect("utf-8"),
    ])
    .await;
    let csv = std::fs::read_to_string(dir.path().join("r.csv")).expect("written");
    assert!(
        csv.starts_with("rule,severity,subject,user_id,user_principal_name,detail,remediation\r\n"),
        "{csv}"
    );
    assert!(matches!(out.status.code(), Some(0) | Some(1)));
    sim.set_faults(vec![graph_sim::Fault::Status {
        endpoint: "users".into(),
        status: 500,
        count: None,
        retry_after: None,
    }]);
    let out = run(&["audit", "--config", c, "--format", "json"]).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "an incomplete audit never exits 0"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(report["complete"], false);
    assert!(
        text(&out).contains("users (users): users: HTTP 500"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_collects_the_simulated_tenant() {
    let out = run(&["demo", "--users", "1500", "--once"]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("1500 users") && t.contains("audit complete") && t.contains("(0 throttled)"),
        "{t}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_refuses_bad_rules_scope_and_exceptions_with_key_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let head = "[tenant]\ntenant_id = \"contoso.onmicrosoft.com\"\nclient_id = \"5a1e3c9d-7b2f-4e6a-8c0d-2f4b6d8e0a1c\"\nclient_secret_env = \"X\"\n\n";
    let cases = [
        ("[rules.phone-only]\nenabled = \"yes\"\n", "config.toml:7:11: rules.phone-only.enabled: invalid type: string \"yes\", expected a boolean"),
        ("[rules.phone-olny]\n", "config.toml:6:8: rules.phone-olny: unknown key (did you mean phone-only?)"),
        ("[scope]\nexclude_upn_patterns = [\"[a-\"]\n", "config.toml:7:1: scope.exclude_upn_patterns: pattern 1 is not a valid regex"),
        (
            "[[exceptions]]\nrule = \"phone-only\"\nuser = \"ann@contoso.com\"\nreason = \"r\"\n",
            "config.toml:6:1: exceptions[0]: missing field `expires`",
        ),
    ];
    for (body, want) in cases {
        let path = dir.path().join("config.toml");
        std::fs::write(&path, format!("{head}{body}")).expect("write");
        let out = run(&[
            "audit",
            "--config",
            path.to_str().expect("utf-8"),
            "--format",
            "json",
        ])
        .await;
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{t}");
        assert!(t.contains(want), "expected {want:?} in {t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_the_daemon_and_prints_where() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(BIN)
        .args(["demo", "--users", "800", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("demo starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(url) = line.strip_prefix("mfa-auditor daemon: ") {
                let _ = tx.send(url.split_whitespace().next().unwrap_or("").to_string());
            }
        }
    });
    let url = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the demo prints the daemon's URL");
    let mut ready = false;
    for _ in 0..150 {
        if reqwest::get(format!("{url}readyz"))
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let metrics = reqwest::get(format!("{url}metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    // SIGTERM, so the demo stops its daemon and removes its temporary state.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().expect("the demo exits");
    assert!(ready, "the demo's daemon never became ready");
    assert!(
        status.success(),
        "the demo stops cleanly on SIGTERM: {status:?}"
    );
    assert!(metrics.contains("entra_users{"), "{metrics}");
}

/// The simulator's throttle buckets refill this many times faster than Graph's.
const SCALE: f64 = 50.0;

/// The demo's tenant (the realistic profile, the demo's seed), smaller, at a fast time scale.
async fn demo_sim() -> SimHandle {
    sim(|c| {
        c.tenant = TenantSource::Generated {
            users: 400,
            seed: 2026,
            profile: graph_sim::Profile::Realistic,
        };
        c.time_scale = SCALE;
    })
    .await
}

/// A config for `sim` whose pacing is Graph's budget, as many times faster as the simulator's.
fn demo_config(dir: &Path, sim: &SimHandle) -> std::path::PathBuf {
    let config = write_config(
        dir,
        &sim.base_url(),
        sim.tenant_id(),
        sim.client_id(),
        sim.client_secret(),
    );
    let base = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        format!(
            "{base}\n[graph.pacing]\ndirectory_ru_per_10s = {d}\nreports_per_10s = {r}\nconditional_access_per_second = {SCALE}\nauth_methods_per_10s = {d}\n",
            d = 8000.0 * SCALE,
            r = 5.0 * SCALE,
        ),
    )
    .expect("config");
    config
}

/// The default `[scope]`: enabled members, no `#EXT#`, `package_` or directory-sync accounts.
fn in_default_scope(u: &graph_sim::TruthUser) -> bool {
    use mfa_auditor::evaluate::scope::{PRESET_GUESTS, PRESET_PACKAGE, PRESET_SYNC};
    u.account_enabled
        && u.user_type == "Member"
        && ![PRESET_GUESTS, PRESET_PACKAGE, PRESET_SYNC]
            .iter()
            .any(|p| regex::Regex::new(p).expect("preset").is_match(&u.upn))
}

/// In-scope users of the ground truth (the default [scope]: enabled members, no `#EXT#`,
/// `package_` or sync accounts) whose MFA-capable methods the methods policy allows with every
/// configuration in `enabled` on, but not once `disabled` are switched off: the users a what-if
/// must list as newly left with no allowed method.
fn left_with_no_allowed_method(
    truth: &graph_sim::GroundTruth,
    disabled: &[&str],
) -> std::collections::BTreeSet<String> {
    use graph_sim::tenant::{method_index, METHODS};
    assert_eq!(
        truth.policy.migration_state, "migrationComplete",
        "before the migration completes the legacy policy still allows what this one disables"
    );
    let before: Vec<&str> = truth
        .policy
        .enabled_methods
        .iter()
        .map(String::as_str)
        .collect();
    let after: Vec<&str> = before
        .iter()
        .copied()
        .filter(|m| !disabled.iter().any(|d| d.eq_ignore_ascii_case(m)))
        .collect();
    let allowed = allowed_by;
    truth
        .users
        .iter()
        .filter(|u| in_default_scope(u))
        .filter(|u| {
            let mfa: Vec<&str> = u
                .methods
                .iter()
                .map(String::as_str)
                .filter(|m| method_index(m).is_some_and(|i| METHODS[i].mfa_capable))
                .filter(|m| *m != "temporaryAccessPass")
                .collect();
            mfa.iter().any(|m| allowed(m, &before)) && !mfa.iter().any(|m| allowed(m, &after))
        })
        .map(|u| u.upn.to_ascii_lowercase())
        .collect()
}

/// Whether the methods policy with the configurations `enabled` lets one use the method
/// `name` (a `methodsRegistered` string): graph-sim's own table of which configurations allow it.
fn allowed_by(name: &str, enabled: &[&str]) -> bool {
    let configs = graph_sim::tenant::method_configs(name);
    configs.is_empty()
        || configs
            .iter()
            .any(|c| enabled.iter().any(|e| e.eq_ignore_ascii_case(c)))
}

/// Runs `what-if` with `args` and parses the JSON it prints.
async fn what_if_json(args: &[&str]) -> (Output, serde_json::Value) {
    let out = run(args).await;
    let answer = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("JSON on stdout ({e}): {}", text(&out)));
    (out, answer)
}

/// The UPNs a what-if JSON answer lists under `rule`.
fn listed(answer: &serde_json::Value, rule: &str) -> std::collections::BTreeSet<String> {
    answer["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter(|g| g["rule"] == rule)
        .flat_map(|g| g["users"].as_array().expect("users").iter())
        .map(|u| {
            u["user_principal_name"]
                .as_str()
                .expect("upn")
                .to_ascii_lowercase()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_if_disable_sms_on_the_demo_tenant_lists_exactly_those_left_with_nothing() {
    // The demo's tenant: the realistic profile, the demo's seed.
    let sim = demo_sim().await;
    let truth = sim.ground_truth();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = demo_config(dir.path(), &sim);
    let c = config.to_str().expect("utf-8");

    // SMS off: mobilePhone is still allowed by Voice, so whoever the ground truth names (nobody,
    // on this tenant, unless someone's every method needs Sms alone) is exactly who is listed.
    let (out, answer) = what_if_json(&[
        "what-if",
        "--config",
        c,
        "--disable-method",
        "sms",
        "--format",
        "json",
    ])
    .await;
    assert_eq!(answer["complete"], true, "{}", text(&out));
    let expected = left_with_no_allowed_method(&truth, &["Sms"]);
    eprintln!(
        "SMS off leaves {} user(s) with no allowed method",
        expected.len()
    );
    assert_eq!(listed(&answer, "method-not-allowed"), expected);
    let all: std::collections::BTreeSet<String> = answer["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter(|g| g["report_only"] == false)
        .flat_map(|g| g["users"].as_array().expect("users").iter())
        .map(|u| {
            u["user_principal_name"]
                .as_str()
                .expect("upn")
                .to_ascii_lowercase()
        })
        .collect();
    assert_eq!(
        out.status.code(),
        Some(if all.is_empty() { 0 } else { 1 }),
        "{}",
        text(&out)
    );
    assert_eq!(answer["changes"][0], "disable the Sms method configuration");

    // SMS and voice off: the phone-only users (and office-phone ones whose hardware token is not
    // allowed) have nothing left. Exactly those, each with their methods.
    let (out, answer) = what_if_json(&[
        "what-if",
        "--config",
        c,
        "--disable-method",
        "SMS",
        "--disable-method",
        "voice",
        "--format",
        "json",
    ])
    .await;
    let expected = left_with_no_allowed_method(&truth, &["Sms", "Voice"]);
    assert!(
        expected.len() >= 10,
        "the realistic tenant has phone-only users: {expected:?}"
    );
    assert_eq!(listed(&answer, "method-not-allowed"), expected);
    assert_eq!(out.status.code(), Some(1), "someone would be locked out");
    let group = answer["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["rule"] == "method-not-allowed")
        .expect("a method-not-allowed group");
    assert_eq!(
        group["reason"],
        "authentication-methods policy: Sms, Voice disabled"
    );
    let first = &group["users"][0];
    assert!(first["methods"].as_array().is_some_and(|m| !m.is_empty()));
    assert!(first["display_name"]
        .as_str()
        .is_some_and(|n| !n.is_empty()));

    // The other formats carry the same users.
    let out = run(&[
        "what-if",
        "--config",
        c,
        "--disable-method",
        "sms",
        "--disable-method",
        "voice",
        "--format",
        "csv",
    ])
    .await;
    let csv = String::from_utf8_lossy(&out.stdout);
    let rows = csv
        .lines()
        .filter(|l| l.starts_with("method-not-allowed,"))
        .count();
    assert_eq!(rows, expected.len(), "{csv}");
    let out = run(&[
        "what-if",
        "--config",
        c,
        "--disable-method",
        "sms",
        "--disable-method",
        "voice",
        "--format",
        "sarif",
    ])
    .await;
    let sarif: serde_json::Value = serde_json::from_slice(&out.stdout).expect("SARIF");
    assert_eq!(
        sarif["runs"][0]["results"]
            .as_array()
            .expect("results")
            .iter()
            .filter(|r| r["ruleId"] == "method-not-allowed")
            .count(),
        expected.len()
    );
    let out = run(&[
        "what-if",
        "--config",
        c,
        "--disable-method",
        "sms",
        "--disable-method",
        "voice",
        "--format",
        "table",
    ])
    .await;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("would be newly locked out"), "{table}");
    let some = expected.iter().next().expect("one");
    assert!(
        table.to_ascii_lowercase().contains(some.as_str()),
        "{table}"
    );

    // An incomplete read never says nobody.
    sim.set_faults(vec![graph_sim::Fault::Status {
        endpoint: "users".into(),
        status: 500,
        count: None,
        retry_after: None,
    }]);
    let out = run(&[
        "what-if",
        "--config",
        c,
        "--disable-method",
        "sms",
        "--format",
        "table",
    ])
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("INCOMPLETE"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_if_refuses_bad_flags_before_reading_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Nothing listens here: a flag error must come before any read.
    let config = write_config(dir.path(), "http://127.0.0.1:9", "contoso", "app", "secret");
    let c = config.to_str().expect("utf-8");
    let cases: &[(&[&str], &str)] = &[
        (
            &["--disable-method", "pigeon"],
            "--disable-method: unknown method \"pigeon\"; valid: sms, voice, email, fido2, authenticator, software-oath, hardware-oath, tap, certificate, qr-code-pin",
        ),
        (
            &["--require-strength", "mfa"],
            "each --require-strength needs a --for (got 1 --require-strength and 0 --for)",
        ),
        (
            &["--require-strength", "mfa", "--for", "everyone"],
            "unknown target \"everyone\"; valid: all, group:<group object id>, role:",
        ),
        (
            &["--require-strength", "mfa", "--for", "role:Chief Wizard"],
            "unknown role \"Chief Wizard\"; valid names: Global Administrator",
        ),
        (&[], "nothing to try: give at least one --disable-method or --require-strength"),
    ];
    for (flags, message) in cases {
        let mut args = vec!["what-if", "--config", c];
        args.extend_from_slice(flags);
        let out = run(&args).await;
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {t}");
        assert!(t.contains(message), "{flags:?}: {t}");
        assert!(out.stdout.is_empty(), "{flags:?}: nothing on stdout: {t}");
    }
    let out = run(&[
        "what-if",
        "--config",
        c,
        "--format",
        "yaml",
        "--disable-method",
        "sms",
    ])
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("invalid value 'yaml'"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_if_require_phishing_resistant_for_all_lists_those_whose_allowed_methods_fall_short() {
    use graph_sim::tenant::{method_index, METHODS};
    let sim = demo_sim().await;
    let truth = sim.ground_truth();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = demo_config(dir.path(), &sim);
    let c = config.to_str().expect("utf-8");
    let (out, answer) = what_if_json(&[
        "what-if",
        "--config",
        c,
        "--require-strength",
        "phishing-resistant",
        "--for",
        "all",
        "--format",
        "json",
    ])
    .await;
    assert_eq!(answer["complete"], true, "{}", text(&out));

    // The semantics contract, from the ground truth: in-scope users whose policy-allowed methods
    // satisfy the built-in MFA strength (the tenant's "Require MFA for all users" already
    // applies: whoever fails it is flagged before the change) but hold no allowed fido2,
    // windowsHelloForBusiness or x509CertificateMultiFactor mode.
    let enabled: Vec<&str> = truth
        .policy
        .enabled_methods
        .iter()
        .map(String::as_str)
        .collect();
    let allowed = |name: &str| allowed_by(name, &enabled);
    let phishing_resistant = [
        "fido2SecurityKey",
        "passKeyDeviceBound",
        "passKeySynced",
        "passKeyDeviceBoundAuthenticator",
        "passKeyDeviceBoundWindowsHello",
        "windowsHelloForBusiness",
        "macOsSecureEnclaveKey",
        "platformCredential",
        "x509CertificateMultiFactor",
    ];
    let expected: std::collections::BTreeSet<String> = truth
        .users
        .iter()
        .filter(|u| in_default_scope(u))
        .filter(|u| {
            let usable: Vec<&str> = u
                .methods
                .iter()
                .map(String::as_str)
                .filter(|m| method_index(m).is_some_and(|i| METHODS[i].mfa_capable))
                .filter(|m| *m != "temporaryAccessPass" && allowed(m))
                .collect();
            let mfa = usable.iter().any(|m| *m != "externalAuthMethod");
            let pr = usable.iter().any(|m| phishing_resistant.contains(m));
            mfa && !pr
        })
        .map(|u| u.upn.to_ascii_lowercase())
        .collect();
    assert!(expected.len() >= 50, "{}", expected.len());
    assert_eq!(listed(&answer, "policy-unsatisfiable"), expected);
    assert!(listed(&answer, "method-not-allowed").is_empty());
    assert_eq!(out.status.code(), Some(1));
    let reason = answer["groups"][0]["reason"].as_str().expect("reason");
    assert_eq!(
        reason,
        "Conditional Access 'what-if: require the 'Phishing resistant MFA' authentication strength for all users'"
    );
}

/// Two tenants in one file, each on its own simulator: `alpha` consented with every permission,
/// `beta` a directory where the app was never consented (Entra answers AADSTS700016).
async fn two_tenant_config(dir: &Path) -> (SimHandle, SimHandle, std::path::PathBuf) {
    let alpha = sim(|c| c.granted_roles.push("Directory.Read.All".into())).await;
    let beta = sim(|c| {
        c.tenant_id = "3f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f".into();
        c.client_id = "11111111-2222-4333-8444-555555555555".into();
    })
    .await;
    std::fs::write(dir.join("secret"), alpha.client_secret()).expect("secret");
    let entry = |name: &str, s: &SimHandle| {
        format!(
            "[[tenants]]\nname = \"{name}\"\ntenant_id = \"{}\"\ngraph_url = \"{b}\"\nlogin_url = \"{b}\"\n\n",
            s.tenant_id(),
            b = s.base_url(),
        )
    };
    // One app for both: its client id, credential and cloud given once.
    let text = format!(
        "[graph]\nmax_retries = 1\nrequest_timeout_seconds = 5\n\n[tenant_defaults]\nclient_id = \"{}\"\nclient_secret_file = \"{}\"\ncloud = \"custom\"\n\n{}{}",
        alpha.client_id(),
        dir.join("secret").display(),
        entry("alpha", &alpha),
        entry("beta", &beta)
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).expect("config");
    (alpha, beta, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_checks_every_tenant_and_gives_the_unconsented_one_its_consent_url() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (alpha, beta, config) = two_tenant_config(dir.path()).await;
    let c = config.to_str().expect("utf-8");
    let out = run(&["check-config", "--config", c]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "one tenant cannot sign in: {t}");
    assert!(t.contains("is valid (2 tenants: alpha, beta)"), "{t}");
    assert!(
        t.contains(&format!("tenant alpha ({}, Graph", alpha.tenant_id())),
        "{t}"
    );
    assert!(t.contains("  token: OK"), "{t}");
    assert!(t.contains("    users                OK"), "{t}");
    assert!(
        t.contains(&format!("tenant beta ({}", beta.tenant_id())),
        "{t}"
    );
    assert!(t.contains("AADSTS700016"), "{t}");
    let consent = format!(
        "{}/{}/adminconsent?client_id={}",
        beta.base_url().trim_end_matches('/'),
        beta.tenant_id(),
        alpha.client_id()
    );
    assert!(
        t.contains("the app is not consented in this tenant") && t.contains(&consent),
        "{t}"
    );
    assert!(
        t.contains("1 of 2 tenants need attention: beta (not consented)"),
        "{t}"
    );
    // The report reads in order on stdout: beta's error inside beta's section.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let section = stdout
        .find("tenant beta (")
        .expect("beta's heading on stdout");
    let refusal = stdout.find("AADSTS700016").expect("beta's error on stdout");
    let summary = stdout.find("1 of 2 tenants").expect("summary");
    assert!(section < refusal && refusal < summary, "{stdout}");
    // One tenant at a time, by name or id.
    let out = run(&["check-config", "--config", c, "--tenant", "alpha"]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("token: OK") && !t.contains("tenant beta"), "{t}");
    let out = run(&["check-config", "--config", c, "--tenant", beta.tenant_id()]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains(&consent), "{}", text(&out));
    let out = run(&["check-config", "--config", c, "--tenant", "gamma"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("no tenant \"gamma\" in this file (it has alpha, beta)"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_and_what_if_need_tenant_when_the_file_has_several() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (alpha, _beta, config) = two_tenant_config(dir.path()).await;
    let c = config.to_str().expect("utf-8");
    let out = run(&["audit", "--config", c, "--format", "json"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("this file configures 2 tenants; name one with --tenant (alpha, beta)"),
        "{}",
        text(&out)
    );
    let out = run(&[
        "what-if",
        "--config",
        c,
        "--disable-method",
        "sms",
        "--format",
        "json",
    ])
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("name one with --tenant"),
        "{}",
        text(&out)
    );
    let out = run(&[
        "audit", "--config", c, "--tenant", "alpha", "--format", "json",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(report["complete"], true);
    assert_eq!(report["tenant"], alpha.tenant_id());
}
