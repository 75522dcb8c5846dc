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
    let sim = sim(|_| {}).await;
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
    let sim = sim(|_| {}).await;
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
            && t.contains("Phishing-resistant MFA (00000000-0000-0000-0000-000000000004): windowsHelloForBusiness | fido2 | x509CertificateMultiFactor"),
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
