//! The real daemon binary against graph-sim: posture on `/metrics` matches the ground truth; a
//! failing audit moves only the daemon's own figures and `/readyz` goes stale; SIGHUP with a
//! broken config keeps the old one; SIGTERM stops it; a restart keeps every first-seen time.

use std::time::{Duration, Instant};

use graph_sim::{Fault, Profile};

mod common;

use common::daemon::{get, installed, prometheus, value, wait_for, write_config, Daemon};

fn posture(metrics: &str) -> Vec<String> {
    // entra_mfa_finding_oldest_seconds grows with time by design, and the sign-in watcher's
    // figures are its own (read as it runs, not an audit's); everything else must not move.
    const NOT_POSTURE: [&str; 4] = [
        "entra_mfa_finding_oldest_seconds",
        "entra_users_locked_out",
        "entra_lockout_detection",
        "entra_security_info_events",
    ];
    metrics
        .lines()
        .filter(|l| l.starts_with("entra_") && !NOT_POSTURE.iter().any(|p| l.starts_with(p)))
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
    // Each user's posture is in the store, found by id and by any case of the UPN.
    let store = mfa_auditor::state::Store::open(&state).expect("state");
    for t in truth.users.iter().step_by(97) {
        let by_id = store.user(tenant, &t.id).expect("user").expect("stored");
        assert_eq!(by_id.user_principal_name, t.upn);
        assert_eq!(by_id.account_enabled, t.account_enabled);
        let by_upn = store
            .user(tenant, &t.upn.to_ascii_uppercase())
            .expect("user")
            .expect("stored by UPN");
        assert_eq!(by_upn.id, by_id.id);
    }
    drop(store);
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
    // The same user by another case of the UPN.
    let (status, body) = get(&format!(
        "{base}/api/v1/users/{}",
        first_upn.to_ascii_uppercase()
    ))
    .await;
    assert_eq!(status, 200, "{body}");

    // Cursors walk every finding once, in (rule, subject) order, as `page=N` does, and the
    // totals agree with what was walked.
    for filter in [
        "state=all",
        "state=open&severity=medium",
        "rule=no-backup-method",
    ] {
        let (walked, total) = walk(&base, &format!("/api/v1/findings?{filter}&page_size=7")).await;
        assert!(walked.len() > 7, "{filter}: {walked:?}");
        assert_eq!(walked.len() as u64, total, "{filter}");
        let mut sorted = walked.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(walked, sorted, "{filter}: each once, in order");
        let mut by_page = vec![];
        for page in 1.. {
            let (status, body) = get(&format!(
                "{base}/api/v1/findings?{filter}&page_size=50&page={page}"
            ))
            .await;
            assert_eq!(status, 200, "{body}");
            let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
            let items = v["items"].as_array().cloned().unwrap_or_default();
            by_page.extend(items.iter().map(key));
            if items.len() < 50 {
                break;
            }
        }
        assert_eq!(walked, by_page, "{filter}: cursor and page agree");
    }
    for bad in [
        "cursor=bm90IGEgY3Vyc29y",
        "cursor=%25%25",
        "cursor=WyJhIiwiYiJd&page=2",
    ] {
        let (status, body) = get(&format!("{base}/api/v1/findings?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("\"parameter\":\"cursor\""), "{bad}: {body}");
    }

    // A failing sweep: posture stays exactly as it was, the failure counter rises, /readyz goes stale.
    sim.set_faults(vec![Fault::Status {
        endpoint: "users".into(),
        status: 500,
        count: None,
        retry_after: None,
    }]);
    let incomplete =
        format!("mfa_auditor_audits_total{{result=\"incomplete\",tenant=\"{tenant}\"}}");
    // An audit already under way when the fault came may still complete: the posture to keep is
    // the one published once the first audit has failed (audits run one at a time).
    wait_for("a failed audit", 20, async || {
        value(&get(&format!("{base}/metrics")).await.1, &incomplete).is_some_and(|n| n >= 1.0)
    })
    .await;
    let complete_posture = posture(&get(&format!("{base}/metrics")).await.1);
    wait_for("two more failed audits", 20, async || {
        value(&get(&format!("{base}/metrics")).await.1, &incomplete).is_some_and(|n| n >= 3.0)
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

/// What the fake Alertmanager and the webhook receiver got.
#[derive(Default)]
struct Received {
    /// Every push to `/api/v2/alerts`, in order.
    pushes: std::sync::Mutex<Vec<serde_json::Value>>,
    /// Every (event, rule, subject) the webhook heard of.
    events: std::sync::Mutex<Vec<(String, String, String)>>,
}

impl Received {
    fn events(&self) -> Vec<(String, String, String)> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    /// (rule, user) of the alerts the last push holds active (ending in the future).
    fn active_alerts(&self) -> std::collections::BTreeSet<(String, String)> {
        let pushes = self.pushes.lock().unwrap_or_else(|e| e.into_inner());
        let now = chrono::Utc::now();
        pushes
            .last()
            .and_then(|p| p.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter(|a| {
                a["endsAt"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .is_some_and(|t| t > now)
            })
            .map(|a| {
                let l = |k: &str| a["labels"][k].as_str().unwrap_or("").to_string();
                (l("rule"), l("user"))
            })
            .collect()
    }
    fn push_count(&self) -> usize {
        self.pushes.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// A fake Alertmanager (`/api/v2/alerts`) and a generic webhook receiver (`/hook`) on loopback.
async fn receivers() -> (std::sync::Arc<Received>, String) {
    use axum::routing::post;
    let got = std::sync::Arc::new(Received::default());
    let (am, hook) = (got.clone(), got.clone());
    let app = axum::Router::new()
        .route(
            "/api/v2/alerts",
            post(
                move |axum::Json(v): axum::Json<serde_json::Value>| async move {
                    am.pushes.lock().unwrap_or_else(|e| e.into_inner()).push(v);
                    "ok"
                },
            ),
        )
        .route(
            "/hook",
            post(
                move |axum::Json(v): axum::Json<serde_json::Value>| async move {
                    let event = v["event"].as_str().unwrap_or("").to_string();
                    let mut events = hook.events.lock().unwrap_or_else(|e| e.into_inner());
                    for f in v["findings"].as_array().cloned().unwrap_or_default() {
                        events.push((
                            event.clone(),
                            f["rule"].as_str().unwrap_or("").to_string(),
                            f["subject"].as_str().unwrap_or("").to_string(),
                        ));
                    }
                    "ok"
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (got, format!("http://{addr}"))
}

fn key(f: &serde_json::Value) -> (String, String) {
    let s = |k: &str| f[k].as_str().unwrap_or("").to_string();
    (s("rule"), s("subject"))
}

/// Follows `next` from `path` to the last page: every (rule, subject) walked, and the total the
/// pages gave.
async fn walk(base: &str, path: &str) -> (Vec<(String, String)>, u64) {
    let mut out = vec![];
    let mut next = Some(path.to_string());
    let mut total = 0;
    while let Some(path) = next {
        let (status, body) = get(&format!("{base}{path}")).await;
        assert_eq!(status, 200, "{path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        out.extend(v["items"].as_array().into_iter().flatten().map(key));
        total = v["total"].as_u64().expect("total");
        next = v["next"].as_str().map(str::to_owned);
        assert_eq!(
            next.is_some(),
            v["next_cursor"].is_string(),
            "{path}: next and next_cursor go together"
        );
    }
    (out, total)
}

/// Every open finding: (rule, subject) → (first_seen, last_seen), walked with cursors.
async fn open_findings(
    base: &str,
) -> std::collections::BTreeMap<(String, String), (String, String)> {
    let mut out = std::collections::BTreeMap::new();
    let mut next = Some("/api/v1/findings?state=open&page_size=1000".to_string());
    while let Some(path) = next {
        let (status, body) = get(&format!("{base}{path}")).await;
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        for f in v["items"].as_array().into_iter().flatten() {
            let s = |k: &str| f[k].as_str().unwrap_or("").to_string();
            out.insert(key(f), (s("first_seen"), s("last_seen")));
        }
        next = v["next"].as_str().map(str::to_owned);
    }
    out
}

async fn audit_runs(base: &str) -> Vec<serde_json::Value> {
    let (_, body) = get(&format!("{base}/api/v1/audits?limit=5")).await;
    serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default()["audits"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The rules an audit run skipped.
fn skipped_rules(run: &serde_json::Value) -> Vec<String> {
    run["skipped"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s["rule"].as_str().map(str::to_owned))
        .collect()
}

/// The posture series that must not move while a rule is skipped (the rule-state gauges say
/// what is carried and are checked on their own).
fn carried_posture(metrics: &str) -> Vec<String> {
    posture(metrics)
        .into_iter()
        .filter(|l| {
            !l.starts_with("entra_rule_skipped")
                && !l.starts_with("entra_rule_last_judged_timestamp_seconds")
                && !l.starts_with("entra_data_set_carried")
        })
        .collect()
}

/// What the audits of a phase must be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Complete, judging every rule as at the start.
    Normal,
    /// Complete, with the report's rules skipped.
    Skips,
    /// Incomplete: nothing moves.
    Incomplete,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_skipped_for_lack_of_data_resolves_nothing_sends_nothing_and_keeps_its_series() {
    let sim = common::sim(600, 44, Profile::Realistic, |_| {}).await;
    let (got, receiver) = receivers().await;
    // Userinfo in the Alertmanager URL is a credential: never on the overview.
    let with_userinfo = receiver.replace("http://", "http://ops:hunter2@");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    let state = dir.path().join("state.db");
    write_config(
        &config,
        &sim,
        &state,
        0,
        &format!(
            "\n[alerting.alertmanager]\nurl = \"{with_userinfo}\"\nresend_interval_seconds = 1\n\n\
             [[alerting.webhook]]\nname = \"hook\"\nurl = \"{receiver}/hook\"\n"
        ),
    );
    // Short-lived tokens, so a permission removed by an admin reaches the daemon's next token.
    let expiry = Fault::TokenExpiry { seconds: 4 };
    sim.set_faults(vec![expiry.clone()]);
    let daemon = Daemon::start(&config, sim.client_secret());
    let base = daemon.base.clone();
    wait_for("/readyz", 40, async || {
        get(&format!("{base}/readyz")).await.0 == 200
    })
    .await;
    let tenant = sim.tenant_id().to_string();
    let pending =
        format!("mfa_auditor_webhook_pending_events{{tenant=\"{tenant}\",webhook=\"hook\"}}");
    // The watcher's first run (at start, beside the first audit) queues its own messages: the
    // baseline is taken once both have recorded and everything queued is delivered.
    let watched = |stream: &str| {
        format!("mfa_auditor_watcher_last_success_timestamp_seconds{{stream=\"{stream}\",tenant=\"{tenant}\"}}")
    };
    wait_for(
        "the first audit's and watch run's messages delivered",
        40,
        async || {
            let text = get(&format!("{base}/metrics")).await.1;
            value(&text, &pending) == Some(0.0)
                && value(&text, &watched("sign-ins")).is_some()
                && value(&text, &watched("directory-audits")).is_some()
                && !got.events().is_empty()
        },
    )
    .await;
    let open = open_findings(&base).await;
    let events = got.events();
    let new_rules: std::collections::BTreeSet<&str> =
        events.iter().map(|(_, r, _)| r.as_str()).collect();
    assert!(
        new_rules.contains("no-mfa-method") && new_rules.contains("no-backup-method"),
        "the tenant has findings of the report's rules: {new_rules:?}"
    );
    let baseline_skipped = skipped_rules(&audit_runs(&base).await[0]);
    let metrics = carried_posture(&get(&format!("{base}/metrics")).await.1);
    let families = format!("entra_users_by_mfa_families{{families=\"0\",tenant=\"{tenant}\"}}");
    assert!(
        metrics.iter().any(|l| l.starts_with(&families)),
        "{metrics:?}"
    );
    wait_for("Alertmanager holds the per-user findings", 20, async || {
        !got.active_alerts().is_empty()
    })
    .await;
    let alerts = got.active_alerts();

    // Each way of losing the report, then the fault cleared: nothing moves.
    let registration = "userRegistrationDetails".to_string();
    let phases = [
        (
            "a 403 on the report (the reports service's Authentication_MSGraphPermissionMissing)",
            vec![
                expiry.clone(),
                Fault::Status {
                    endpoint: registration.clone(),
                    status: 403,
                    count: None,
                    retry_after: None,
                },
            ],
            Outcome::Skips,
        ),
        (
            // Either permission reads the report (docs-contrib): both go.
            "AuditLog.Read.All and UserAuthenticationMethod.Read.All removed from the application",
            vec![
                expiry.clone(),
                Fault::Revoke {
                    permission: "AuditLog.Read.All".into(),
                },
                Fault::Revoke {
                    permission: "UserAuthenticationMethod.Read.All".into(),
                },
            ],
            Outcome::Skips,
        ),
        (
            // A licensed tenant whose report keeps answering the licence 403: a failed sweep,
            // so the audits are incomplete and move nothing.
            "a persistent licence 403 on the report of a licensed tenant",
            vec![
                expiry.clone(),
                Fault::Licence {
                    endpoint: registration.clone(),
                },
            ],
            Outcome::Incomplete,
        ),
        ("the fault cleared", vec![expiry.clone()], Outcome::Normal),
    ];
    // What the published posture says of the report's rules: an incomplete audit publishes
    // nothing, so it still says what the last complete one said.
    let mut published_skips = false;
    for (what, faults, outcome) in phases {
        let skips = outcome == Outcome::Skips;
        if outcome != Outcome::Incomplete {
            published_skips = skips;
        }
        let before = audit_runs(&base).await[0]["id"].as_i64().unwrap_or(0);
        sim.set_faults(faults);
        // Two complete audits after the change, both as expected (a token issued before a
        // permission is removed still carries it: the audits in between are normal ones).
        wait_for(what, 60, async || {
            let runs = audit_runs(&base).await;
            runs.len() >= 2
                && runs[..2].iter().all(|r| {
                    r["id"].as_i64().unwrap_or(0) > before
                        && match outcome {
                            Outcome::Incomplete => r["complete"] == false,
                            _ => {
                                r["complete"] == true
                                    && skipped_rules(r).contains(&"no-mfa-method".to_string())
                                        == skips
                            }
                        }
                })
        })
        .await;
        wait_for("the outbox to drain", 20, async || {
            value(&get(&format!("{base}/metrics")).await.1, &pending) == Some(0.0)
        })
        .await;
        let runs = audit_runs(&base).await;
        if skips {
            let skipped = skipped_rules(&runs[0]);
            assert!(
                skipped.contains(&"no-backup-method".to_string()),
                "{what}: {skipped:?}"
            );
            assert!(
                runs[0]["skipped"][0]["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("permission")),
                "{what}: the audit says why: {}",
                runs[0]["skipped"]
            );
            let kept = open.keys().filter(|(r, _)| skipped.contains(r)).count();
            assert_eq!(
                runs[0]["kept_open"].as_u64(),
                Some(kept as u64),
                "{what}: the run counts the findings it kept open"
            );
            let page = get(&format!("{base}/")).await.1;
            assert!(
                page.contains(" skipped</strong>") && page.contains("no-mfa-method"),
                "{what}: {page}"
            );
            assert!(
                !page.contains("hunter2") && page.contains("http://***@127.0.0.1"),
                "{what}: {page}"
            );
        } else if outcome == Outcome::Normal {
            assert_eq!(skipped_rules(&runs[0]), baseline_skipped, "{what}");
        }
        let now_open = open_findings(&base).await;
        assert_eq!(
            now_open.keys().collect::<Vec<_>>(),
            open.keys().collect::<Vec<_>>(),
            "{what}: the same findings are open"
        );
        for (key, (first_seen, last_seen)) in &now_open {
            assert_eq!(first_seen, &open[key].0, "{what}: first_seen of {key:?}");
            if skips && key.0 == "no-mfa-method" {
                let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok();
                let first_skipping = runs[1]["started_at"].as_str().unwrap_or("");
                assert!(
                    at(last_seen) < at(first_skipping),
                    "{what}: a skipped rule saw nothing, yet {key:?} was last seen at {last_seen} (skipping since {first_skipping})"
                );
            }
        }
        let later = got.events();
        assert_eq!(
            later.get(events.len()..).unwrap_or_default(),
            &[],
            "{what}: no webhook message"
        );
        let text = get(&format!("{base}/metrics")).await.1;
        assert_eq!(
            carried_posture(&text),
            metrics,
            "{what}: the posture series"
        );
        assert_eq!(
            value(
                &text,
                &format!("entra_rule_skipped{{rule=\"no-mfa-method\",tenant=\"{tenant}\"}}")
            ),
            Some(f64::from(u8::from(published_skips))),
            "{what}"
        );
        let pushes = got.push_count();
        wait_for("another Alertmanager push", 10, async || {
            got.push_count() > pushes
        })
        .await;
        assert_eq!(
            got.active_alerts(),
            alerts,
            "{what}: the alerts keep firing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_graph_failing_republishes_the_last_complete_posture_and_judges_its_age() {
    let sim = common::sim(300, 45, Profile::Realistic, |_| {}).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    let state = dir.path().join("state.db");
    write_config(&config, &sim, &state, 0, "");
    let tenant = sim.tenant_id().to_string();
    let last_success =
        format!("mfa_auditor_audit_last_success_timestamp_seconds{{tenant=\"{tenant}\"}}");
    let (complete, success) = {
        let daemon = Daemon::start(&config, sim.client_secret());
        let base = daemon.base.clone();
        wait_for("/readyz", 30, async || {
            get(&format!("{base}/readyz")).await.0 == 200
        })
        .await;
        // Stopped between audits, so the posture read is the one kept.
        sim.set_faults(vec![Fault::Status {
            endpoint: "users".into(),
            status: 500,
            count: None,
            retry_after: None,
        }]);
        let incomplete =
            format!("mfa_auditor_audits_total{{result=\"incomplete\",tenant=\"{tenant}\"}}");
        wait_for("a failed audit", 20, async || {
            value(&get(&format!("{base}/metrics")).await.1, &incomplete).is_some_and(|n| n >= 1.0)
        })
        .await;
        let text = get(&format!("{base}/metrics")).await.1;
        (carried_posture(&text), value(&text, &last_success))
    };
    assert!(
        complete.iter().any(|l| l.starts_with("entra_users{")),
        "{complete:?}"
    );
    // Older than stale_after_seconds (4) by the time the daemon is back.
    std::thread::sleep(Duration::from_secs(5));
    let daemon = Daemon::start(&config, sim.client_secret());
    let base = daemon.base.clone();
    let text = get(&format!("{base}/metrics")).await.1;
    assert_eq!(
        carried_posture(&text),
        complete,
        "the posture of the last complete audit, from the first scrape"
    );
    assert_eq!(value(&text, &last_success), success);
    let (status, body) = get(&format!("{base}/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.starts_with("stale: the last complete audit finished"),
        "{body}"
    );
    assert!(
        daemon
            .log()
            .contains("republished the posture of the last complete audit"),
        "{}",
        daemon.log()
    );
}
