//! The real daemon binary against graph-sim: posture on `/metrics` matches the ground truth; a
//! failing audit moves only the daemon's own figures and `/readyz` goes stale; SIGHUP with a
//! broken config keeps the old one; SIGTERM stops it; a restart keeps every first-seen time.

use std::time::{Duration, Instant};

use graph_sim::{Fault, Profile};

mod common;

use common::daemon::{get, installed, prometheus, value, wait_for, write_config, Daemon};

fn posture(metrics: &str) -> Vec<String> {
    // entra_mfa_finding_oldest_seconds grows with time by design; everything else must not move.
    metrics
        .lines()
        .filter(|l| l.starts_with("entra_") && !l.starts_with("entra_mfa_finding_oldest_seconds"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_publishes_complete_audits_only_and_survives_faults_reloads_and_restarts() {
    let sim = common::sim(1200, 41, Profile::Realistic, |_| {}).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    let state = dir.path().join("state.db");
    write_config(&config, &sim, &state, 0, "");
    let daemon = Daemon::start(&config, sim.client_secret());
    let base = daemon.base.clone();
    wait_for("/readyz", 30, async || {
        get(&format!("{base}/readyz")).await.0 == 200
    })
    .await;

    // Posture matches the ground truth.
    let truth = sim.ground_truth();
    let in_scope = truth
        .users
        .iter()
        .filter(|t| {
            t.account_enabled
                && t.user_type == "Member"
                && !t.upn.contains("#EXT#")
                && !t.upn.starts_with("package_")
                && !t.upn.starts_with("Sync_")
        })
        .count();
    let (_, metrics) = get(&format!("{base}/metrics")).await;
    let tenant = sim.tenant_id();
    assert_eq!(
        value(&metrics, &format!("entra_users{{tenant=\"{tenant}\"}}")),
        Some(in_scope as f64),
        "{metrics}"
    );
    assert_eq!(
        value(
            &metrics,
            &format!("entra_tap_policy_enabled{{tenant=\"{tenant}\"}}")
        ),
        Some(f64::from(u8::from(truth.policy.tap_enabled)))
    );
    let (status, body) = get(&format!(
        "{base}/api/v1/findings?rule=no-backup-method&page_size=5"
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(5));
    assert!(page["total"].as_u64().is_some_and(|t| t > 5));
    let (status, body) = get(&format!("{base}/api/v1/findings?severity=apocalyptic")).await;
    assert_eq!(status, 400);
    assert!(body.contains("\"parameter\":\"severity\""), "{body}");
    let first_upn = page["items"][0]["user_principal_name"]
        .as_str()
        .expect("upn")
        .to_string();
    let (status, body) = get(&format!("{base}/api/v1/users/{first_upn}")).await;
    assert_eq!(status, 200, "{body}");
    let first_seen_before = serde_json::from_str::<serde_json::Value>(&body).expect("JSON")
        ["findings"][0]["first_seen"]
        .clone();

    // A failing sweep: posture stays exactly as it was, the failure counter rises, /readyz goes stale.
    let complete_posture = posture(&get(&format!("{base}/metrics")).await.1);
    sim.set_faults(vec![Fault::Status {
        endpoint: "users".into(),
        status: 500,
        count: None,
        retry_after: None,
    }]);
    let incomplete =
        format!("mfa_auditor_audits_total{{result=\"incomplete\",tenant=\"{tenant}\"}}");
    wait_for("a failed audit", 20, async || {
        value(&get(&format!("{base}/metrics")).await.1, &incomplete).is_some_and(|n| n >= 2.0)
    })
    .await;
    assert_eq!(
        posture(&get(&format!("{base}/metrics")).await.1),
        complete_posture
    );
    wait_for("/readyz to go stale", 20, async || {
        let (status, body) = get(&format!("{base}/readyz")).await;
        status == 503 && body.starts_with("stale")
    })
    .await;

    // SIGHUP with a broken config: logged, and the old one keeps running.
    std::fs::write(&config, "[tenant]\ntenant_id = 42\n").expect("break config");
    daemon.signal("HUP");
    wait_for("the refused reload in the log", 10, async || {
        daemon.log().contains("configuration not reloaded")
    })
    .await;
    assert!(
        daemon.log().contains("tenant.tenant_id"),
        "{}",
        daemon.log()
    );
    assert_eq!(get(&format!("{base}/healthz")).await.0, 200);

    // SIGTERM stops it cleanly.
    daemon.signal("TERM");
    let mut daemon = daemon;
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = daemon.child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "SIGTERM did not stop the daemon");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");

    // A restart keeps every finding's first-seen time.
    sim.set_faults(vec![]);
    write_config(&config, &sim, &state, 0, "");
    let again = Daemon::start(&config, sim.client_secret());
    let base = again.base.clone();
    wait_for("/readyz after the restart", 30, async || {
        get(&format!("{base}/readyz")).await.0 == 200
    })
    .await;
    let (_, body) = get(&format!("{base}/api/v1/users/{first_upn}")).await;
    let first_seen_after = serde_json::from_str::<serde_json::Value>(&body).expect("JSON")
        ["findings"][0]["first_seen"]
        .clone();
    assert_eq!(first_seen_before, first_seen_after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_daemon() {
    if !installed("prometheus") {
        return;
    }
    let sim = common::sim(900, 42, Profile::Realistic, |_| {}).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    write_config(&config, &sim, &dir.path().join("state.db"), 0, "");
    let daemon = Daemon::start(&config, sim.client_secret());
    let target = daemon.base.trim_start_matches("http://").to_string();
    let base = daemon.base.clone();
    wait_for("/readyz", 30, async || {
        get(&format!("{base}/readyz")).await.0 == 200
    })
    .await;
    let (_, metrics) = get(&format!("{base}/metrics")).await;
    let tenant = sim.tenant_id();
    let expected =
        value(&metrics, &format!("entra_users{{tenant=\"{tenant}\"}}")).expect("entra_users");

    let (prometheus, prom) = prometheus(
        dir.path(),
        &format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: mfa-auditor\n    static_configs:\n      - targets: ['{target}']\n"),
    );
    let query = format!("{prom}/api/v1/query?query=entra_users");
    let mut seen = None;
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline && seen.is_none() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (status, body) = get(&query).await;
        if status != 200 {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        seen = v["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|s| s.parse::<f64>().ok());
    }
    let up = get(&format!(
        "{prom}/api/v1/query?query=up%7Bjob%3D%22mfa-auditor%22%7D"
    ))
    .await
    .1;
    drop(prometheus);
    assert_eq!(seen, Some(expected), "Prometheus's entra_users; up = {up}");
    assert!(up.contains("\"1\""), "the target is up: {up}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_basic_auth_come_from_web_yml() {
    let sim = common::sim(300, 43, Profile::Realistic, |_| {}).await;
    let dir = tempfile::tempdir().expect("tempdir");
    common::self_signed(dir.path());
    let hash = bcrypt::hash("scrape-me", 4).expect("hash");
    std::fs::write(
        dir.path().join("web.yml"),
        format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  prometheus: {hash}\n"),
    )
    .expect("web.yml");
    let config = dir.path().join("config.toml");
    write_config(&config, &sim, &dir.path().join("state.db"), 0, "");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(&format!(
        "web_config_file = \"{}\"\n",
        dir.path().join("web.yml").display()
    ));
    std::fs::write(&config, text).expect("config");
    let daemon = Daemon::start(&config, sim.client_secret());
    let https = daemon.base.replace("http://", "https://");
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client");
    let anonymous = client
        .get(format!("{https}/metrics"))
        .send()
        .await
        .expect("TLS works");
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers().get("www-authenticate").is_some());
    let wrong = client
        .get(format!("{https}/metrics"))
        .basic_auth("prometheus", Some("nope"))
        .send()
        .await
        .expect("TLS");
    assert_eq!(wrong.status(), 401);
    let ok = client
        .get(format!("{https}/metrics"))
        .basic_auth("prometheus", Some("scrape-me"))
        .send()
        .await
        .expect("TLS");
    assert_eq!(ok.status(), 200);
    assert!(ok
        .text()
        .await
        .expect("body")
        .contains("mfa_auditor_build_info"));
    assert_eq!(
        get(&format!("{}/metrics", daemon.base)).await.0,
        0,
        "plain HTTP gets no answer"
    );
}
