//! Alerts and dashboards end to end, with real parts only: graph-sim, the daemon binary,
//! Debian's Prometheus (loading `alerts/mfa-auditor.rules.yml`) and Alertmanager on loopback,
//! and a webhook receiver in this test.
//!
//! What it shows: Alertmanager holds exactly one alert per open per-user finding, with the
//! right labels; fixing a user in the simulator resolves its alert after the next audit; the
//! webhook receiver gets each new and each resolved finding exactly once although it fails
//! for a while, the daemon restarts with messages still queued, and reloads; the posture alerts fire
//! for the simulated tenant as its findings say they should; and every query of every panel
//! of every dashboard returns data from that Prometheus.
//!
//! Time is the one thing shortened: the rules' hold times (`for:`) are cut to 1 s, and the
//! no-backup-method findings are aged by 8 days in the state store while the daemon is
//! stopped, as if a week had passed. The expressions are the shipped ones.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use graph_sim::{Fault, Profile};
use serde_json::Value;

mod common;

use common::daemon::{
    alertmanager, free_port, get, installed, prometheus_alerting, query, value, wait_for,
    write_config, Daemon,
};

/// The webhook receiver: accepts `accept_first` messages, then answers 503 until `recovered`.
#[derive(Default)]
struct Hook {
    messages: Mutex<Vec<Value>>,
    accept_first: usize,
    answered: AtomicUsize,
    recovered: AtomicBool,
}

impl Hook {
    fn messages(&self) -> Vec<Value> {
        self.messages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every (event, rule, subject) received, in order, one per finding (the sign-in
    /// watcher's messages aside: `tests/watch_daemon.rs` follows those).
    fn events(&self) -> Vec<(String, String, String)> {
        self.messages()
            .iter()
            .filter(|m| m["origin"] != "watcher")
            .flat_map(|m| {
                let event = m["event"].as_str().unwrap_or("").to_string();
                m["findings"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |f| {
                        (
                            event.clone(),
                            f["rule"].as_str().unwrap_or("").to_string(),
                            f["subject"].as_str().unwrap_or("").to_string(),
                        )
                    })
            })
            .collect()
    }
}

async fn hook(State(h): State<Arc<Hook>>, Json(body): Json<Value>) -> StatusCode {
    let n = h.answered.fetch_add(1, Ordering::SeqCst);
    if n >= h.accept_first && !h.recovered.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    h.messages
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(body);
    StatusCode::OK
}

async fn json(url: &str) -> Value {
    let (status, body) = get(url).await;
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
}

/// The daemon's findings (`state` open or all), every page.
async fn findings(base: &str, state: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for page in 1.. {
        let v = json(&format!(
            "{base}/api/v1/findings?state={state}&page_size=1000&page={page}"
        ))
        .await;
        let items = v["items"].as_array().cloned().unwrap_or_default();
        let last = items.len() < 1000;
        out.extend(items);
        if last {
            break;
        }
    }
    out
}

fn s(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or("").to_string()
}

/// (rule, user, severity) of the open per-user findings, as Alertmanager should hold them.
fn expected_alerts(open: &[Value]) -> BTreeSet<(String, String, String)> {
    open.iter()
        .filter(|f| {
            !mfa_auditor::evaluate::is_tenant_subject(&s(f, "subject"))
                && f["excepted"] != Value::Bool(true)
        })
        .map(|f| (s(f, "rule"), s(f, "user_principal_name"), s(f, "severity")))
        .collect()
}

/// (rule, user, severity) of Alertmanager's active per-user alerts; checks their tenant.
async fn alertmanager_alerts(am: &str, tenant: &str) -> BTreeSet<(String, String, String)> {
    let url = format!("{am}/api/v2/alerts?active=true&silenced=true&inhibited=true&filter=alertname%3D%22EntraUserMfaFinding%22");
    let v = json(&url).await;
    v.as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|a| a["status"]["state"] == "active")
        .map(|a| {
            let l = &a["labels"];
            assert_eq!(s(l, "tenant"), tenant, "{a}");
            assert!(
                a["annotations"]["finding_url"]
                    .as_str()
                    .is_some_and(|u| u.contains("/users/") && !u.contains("/api/")),
                "{a}"
            );
            (s(l, "rule"), s(l, "user"), s(l, "severity"))
        })
        .collect()
}

/// Ages the open findings of `rule` by `days` in the state store (the daemon must be stopped).
fn age(state: &Path, rule: &str, days: i64) -> usize {
    let conn = rusqlite::Connection::open(state).expect("state");
    let when = (chrono::Utc::now() - chrono::Duration::days(days))
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    conn.execute(
        "UPDATE findings SET first_seen = ?1 WHERE rule = ?2 AND resolved_at IS NULL",
        rusqlite::params![when, rule],
    )
    .expect("age")
}

/// A weak policy: TAP disabled, nothing enforcing MFA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weak_policy_tenant_end_to_end() {
    end_to_end(Profile::WeakPolicy, 44).await;
}

/// A realistic tenant: TAP on but multi-use, Conditional Access enforcing MFA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_realistic_tenant_end_to_end() {
    end_to_end(Profile::Realistic, 45).await;
}

async fn end_to_end(profile: Profile, seed: u64) {
    if !installed("prometheus") || !installed("prometheus-alertmanager") {
        return;
    }
    let sim = common::sim(400, seed, profile, |_| {}).await;
    let tenant = sim.tenant_id().to_string();
    let dir = tempfile::tempdir().expect("tempdir");

    // The webhook receiver.
    let receiver = Arc::new(Hook {
        accept_first: 1,
        ..Hook::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook_addr = listener.local_addr().expect("addr");
    let slack = Arc::new(Hook {
        accept_first: usize::MAX,
        ..Hook::default()
    });
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(receiver.clone())
        .merge(
            Router::new()
                .route("/slack", post(hook))
                .with_state(slack.clone()),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });

    // Alertmanager.
    let (_alertmanager, am, am_port) = alertmanager(dir.path()).await;

    // The daemon, on a port of its own that Prometheus scrapes across the restart.
    let port = free_port();
    let config = dir.path().join("config.toml");
    let state = dir.path().join("state.db");
    let extra = format!(
        "\n[metrics]\nper_user_series = true\n\n[rules.no-mfa-method]\nseverity = \"critical\"\n\n\
         [alerting.alertmanager]\nurl = \"{am}\"\nresend_interval_seconds = 2\n\n\
         [[alerting.webhook]]\nname = \"test-hook\"\nurl = \"http://{hook_addr}/hook\"\nbatch_above = 5\n\n\
         [[alerting.webhook]]\nname = \"people\"\nformat = \"slack\"\nurl = \"http://{hook_addr}/slack\"\n"
    );
    write_config(&config, &sim, &state, port, &extra);
    let daemon = Daemon::start(&config, sim.client_secret());
    let base = daemon.base.clone();
    wait_for("a complete audit", 60, async || {
        get(&format!("{base}/readyz")).await.0 == 200
    })
    .await;

    // Prometheus, with the shipped rules and Alertmanager.
    let (_prometheus, prom) = prometheus_alerting(dir.path(), am_port, port);
    wait_for("Prometheus to scrape the daemon", 30, async || {
        query(&prom, "up{job=\"mfa-auditor\"} == 1")
            .await
            .is_ok_and(|r| !r.is_empty())
    })
    .await;

    // Alertmanager holds one alert per open per-user finding.
    let open = findings(&base, "open").await;
    let expected = expected_alerts(&open);
    assert!(
        expected.len() > 50,
        "the tenant has per-user findings: {}",
        expected.len()
    );
    let mut held = BTreeSet::new();
    wait_for(
        "Alertmanager to hold every per-user finding",
        30,
        async || {
            held = alertmanager_alerts(&am, &tenant).await;
            held == expected
        },
    )
    .await;

    // The receiver took one message and now fails: deliveries are retried and counted.
    wait_for("a failed webhook delivery", 30, async || {
        let (_, m) = get(&format!("{base}/metrics")).await;
        value(
            &m,
            &format!(
                "mfa_auditor_webhook_messages_total{{result=\"failure\",tenant=\"{tenant}\",webhook=\"test-hook\"}}"
            ),
        )
        .is_some_and(|v| v >= 1.0)
    })
    .await;
    let (_, m) = get(&format!("{base}/metrics")).await;
    let pending = value(
        &m,
        &format!("mfa_auditor_webhook_pending_events{{tenant=\"{tenant}\",webhook=\"test-hook\"}}"),
    )
    .unwrap_or(0.0);
    assert!(
        pending > 0.0,
        "messages are queued while the receiver fails"
    );
    assert_eq!(receiver.messages().len(), 1);
    assert!(
        !daemon.log().contains(&format!("{hook_addr}/hook")),
        "a webhook URL (often the secret itself) is never logged"
    );

    // Restart with messages still queued, a week later for the no-backup-method findings.
    daemon.signal("TERM");
    let mut daemon = daemon;
    let _ = daemon.child.wait();
    drop(daemon);
    let aged = age(&state, "no-backup-method", 8);
    assert!(aged > 0, "there are no-backup-method findings to age");
    receiver.recovered.store(true, Ordering::SeqCst);
    let daemon = Daemon::start(&config, sim.client_secret());
    let base = daemon.base.clone();
    assert_eq!(base, format!("http://127.0.0.1:{port}"));
    wait_for("the queue to drain after the restart", 60, async || {
        let (_, m) = get(&format!("{base}/metrics")).await;
        value(
            &m,
            &format!(
                "mfa_auditor_webhook_pending_events{{tenant=\"{tenant}\",webhook=\"test-hook\"}}"
            ),
        ) == Some(0.0)
            && value(
                &m,
                &format!("mfa_auditor_audits_total{{result=\"complete\",tenant=\"{tenant}\"}}"),
            )
            .is_some_and(|n| n >= 1.0)
    })
    .await;

    let (_, page) = get(&format!("{base}/")).await;
    assert!(
        page.contains("Webhook <code>test-hook</code>: 0 findings queued")
            && page.contains(&format!("Alertmanager <code>{am}</code>: ")),
        "the overview says where findings go: {page}"
    );

    // A reload restarts the alerting (the old worker stops before the new one starts).
    daemon.signal("HUP");
    wait_for("the reload", 20, async || {
        daemon.log().contains("configuration reloaded")
    })
    .await;

    // One 429 from Graph in the next audit: the daemon's throttling alert fires (once
    // Prometheus has seen the counter at 0).
    wait_for("Prometheus to see no throttling yet", 30, async || {
        query(
            &prom,
            "mfa_auditor_graph_throttled_total{endpoint=\"users\"} == 0",
        )
        .await
        .is_ok_and(|r| !r.is_empty())
    })
    .await;
    sim.set_faults(vec![Fault::Throttle {
        endpoint: "users".into(),
        count: Some(1),
        retry_after: Some(0.2),
    }]);

    // Fix one user who has no backup method: give them a passkey and the app.
    let fixed = open
        .iter()
        .find(|f| {
            s(f, "rule") == "no-backup-method"
                && !open.iter().any(|g| {
                    s(g, "subject") == s(f, "subject") && s(g, "rule") != "no-backup-method"
                })
        })
        .expect("a user whose only finding is no-backup-method")
        .clone();
    let (id, upn) = (s(&fixed, "subject"), s(&fixed, "user_principal_name"));
    let patched = reqwest::Client::new()
        .patch(format!("{}/_sim/users/{id}", sim.base_url()))
        .json(&serde_json::json!({"methods": ["fido2SecurityKey", "microsoftAuthenticatorPush"]}))
        .send()
        .await
        .expect("patch");
    assert!(patched.status().is_success());
    wait_for("the fixed user's alert to resolve", 60, async || {
        !alertmanager_alerts(&am, &tenant)
            .await
            .iter()
            .any(|(_, user, _)| *user == upn)
    })
    .await;
    let user = json(&format!("{base}/api/v1/users/{upn}")).await;
    assert!(
        user["findings"]
            .as_array()
            .is_some_and(|f| f.iter().all(|f| !f["resolved_at"].is_null())),
        "every finding of {upn} is resolved: {user}"
    );
    let open = findings(&base, "open").await;
    assert_eq!(
        alertmanager_alerts(&am, &tenant).await,
        expected_alerts(&open),
        "the other alerts stay"
    );

    // Every finding ever opened reached the webhook once as new; every resolved one once as
    // resolved; nothing twice, across the failures and the restart.
    wait_for("the resolution to reach the webhook", 30, async || {
        receiver
            .events()
            .iter()
            .any(|(e, r, sub)| e == "resolved" && r == "no-backup-method" && *sub == id)
    })
    .await;
    let all = findings(&base, "all").await;
    let events = receiver.events();
    let unique: BTreeSet<_> = events.iter().cloned().collect();
    assert_eq!(unique.len(), events.len(), "no message was delivered twice");
    let expected_new: BTreeSet<_> = all
        .iter()
        .map(|f| ("new".to_string(), s(f, "rule"), s(f, "subject")))
        .collect();
    let expected_resolved: BTreeSet<_> = all
        .iter()
        .filter(|f| !f["resolved_at"].is_null())
        .map(|f| ("resolved".to_string(), s(f, "rule"), s(f, "subject")))
        .collect();
    let got_new: BTreeSet<_> = unique.iter().filter(|e| e.0 == "new").cloned().collect();
    let got_resolved: BTreeSet<_> = unique
        .iter()
        .filter(|e| e.0 == "resolved")
        .cloned()
        .collect();
    assert_eq!(got_new, expected_new, "each new finding exactly once");
    assert_eq!(got_resolved, expected_resolved);
    assert!(
        receiver
            .messages()
            .iter()
            .any(|m| m["findings"].as_array().is_some_and(|f| f.len() > 1)),
        "an audit with more than batch_above findings sends batches"
    );

    // People get one summary for the first audit, not hundreds of messages, then one message
    // for the fixed user.
    let texts: Vec<String> = slack
        .messages()
        .iter()
        .map(|m| m["text"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        texts[0].starts_with(&format!(
            "*{} new MFA findings in {tenant}*",
            expected_new.len()
        )),
        "{texts:?}"
    );
    assert!(
        texts.contains(&format!(
            "*Resolved: User has no backup MFA method (medium) for {upn}*\n_Tenant: {tenant}_\n• <{base}/users/{upn}|{upn}> User has no backup MFA method (medium): {}",
            s(&fixed, "detail")
        )),
        "{texts:?}"
    );
    assert_eq!(texts.len(), 2, "{texts:?}");

    // The posture alerts fire as the tenant's findings say they should.
    let open_rules: BTreeSet<String> = open.iter().map(|f| s(f, "rule")).collect();
    let mut want: BTreeSet<&str> = BTreeSet::from(["EntraUsersWithoutBackupMethod"]);
    for (rule, alert) in [
        ("no-mfa-method", "EntraUsersWithoutMfa"),
        (
            "admin-not-phishing-resistant",
            "EntraAdminsNotPhishingResistant",
        ),
        ("method-not-allowed", "EntraUsersLockedOutByMethodsPolicy"),
        (
            "policy-unsatisfiable-report-only",
            "EntraReportOnlyPolicyWouldLockOut",
        ),
        ("tap-policy-disabled", "EntraTapPolicyDisabled"),
        ("tap-policy-multi-use", "EntraTapPolicyMultiUse"),
        ("no-mfa-enforcement", "EntraNoMfaEnforcement"),
    ] {
        if open_rules.contains(rule) {
            want.insert(alert);
        }
    }
    assert!(
        want.len() >= 4,
        "the tenant trips most posture alerts: {want:?}"
    );
    // Of the daemon's own alerts, only throttling (and unknown methods, if the tenant has
    // some); the failing webhook's cleared when its queue drained.
    want.insert("MfaAuditorGraphThrottled");
    let (_, m) = get(&format!("{base}/metrics")).await;
    if m.lines()
        .filter(|l| l.starts_with("entra_method_unknown_users{"))
        .any(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) > Some(0.0))
    {
        want.insert("MfaAuditorUnknownMethods");
    }
    // An enabled Conditional Access policy predicted to lock users out, if the tenant has one.
    if m.lines()
        .filter(|l| {
            l.starts_with("entra_ca_policy_predicted_lockouts{") && l.contains("state=\"enabled\"")
        })
        .any(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) > Some(0.0))
    {
        want.insert("EntraCaPolicyWillLockOutUsers");
    }
    // And a rule skipped for lack of data, if the simulated tenant's setup skips one.
    if m.lines()
        .filter(|l| l.starts_with("entra_rule_skipped{"))
        .any(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) == Some(1.0))
    {
        want.insert("MfaAuditorRuleSkipped");
    }
    // The sign-in watcher's alerts, if its first read found someone locked out in the
    // simulator's sign-ins.
    let positive = |prefix: &str| {
        m.lines()
            .filter(|l| l.starts_with(prefix))
            .any(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) > Some(0.0))
    };
    for (series, alert) in [
        ("entra_users_locked_out{", "EntraUsersLockedOut"),
        (
            "entra_lockout_detections{state=\"mfa-fraud-reported\"",
            "EntraMfaFraudReported",
        ),
        (
            "entra_lockout_detections{state=\"mfa-prompt-bombing\"",
            "EntraMfaPromptBombing",
        ),
        (
            "entra_lockout_detections{state=\"registration-blocked\"",
            "EntraUsersRegistrationBlocked",
        ),
        ("mfa_auditor_watcher_behind{", "MfaAuditorWatcherBehind"),
    ] {
        if positive(series) {
            want.insert(alert);
        }
    }
    let want: BTreeSet<String> = want.into_iter().map(str::to_owned).collect();
    let mut firing = BTreeSet::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        firing = query(&prom, "ALERTS{alertstate=\"firing\"}")
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|(l, _)| l.get("tenant") == Some(&tenant))
            .filter_map(|(l, _)| l.get("alertname").cloned())
            .collect::<BTreeSet<String>>();
        if firing == want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    // EntraMfaFailureSpike compares with a day's average: a fresh Prometheus has none.
    assert_eq!(
        firing, want,
        "exactly the alerts the findings and the faults imply"
    );

    // Every query of every dashboard panel returns data.
    let dashboards = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards"))
        .expect("dashboards/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect::<Vec<_>>();
    assert!(dashboards.len() >= 4, "{dashboards:?}");
    let mut queries = 0;
    for path in &dashboards {
        let d: Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("JSON");
        for panel in d["panels"].as_array().cloned().unwrap_or_default() {
            for target in panel["targets"].as_array().cloned().unwrap_or_default() {
                let expr = target["expr"].as_str().expect("expr");
                let q = expr
                    .replace("$tenant", &tenant)
                    .replace("$rule", ".+")
                    .replace("$__rate_interval", "1m")
                    .replace("$__interval", "15s");
                let mut result = Err(String::new());
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
                while std::time::Instant::now() < deadline {
                    result = query(&prom, &q).await;
                    if result.as_ref().is_ok_and(|r| !r.is_empty()) {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
                let rows = result.unwrap_or_else(|e| {
                    panic!("{}: {:?}: {q}: {e}", path.display(), panel["title"])
                });
                assert!(
                    !rows.is_empty(),
                    "{}: panel {:?} returns no data: {q}",
                    path.display(),
                    panel["title"]
                );
                queries += 1;
            }
        }
    }
    assert!(queries >= 30, "{queries} queries");
    eprintln!(
        "{profile:?}: alertmanager held {} per-user alerts; the webhook got {} messages for {} events; \
         firing: {firing:?}; {queries} dashboard queries returned data",
        expected.len(),
        receiver.messages().len(),
        events.len()
    );
    drop(daemon);
}

/// Two tenants push to one real Alertmanager, each from its own `Alerting` (as the daemon of
/// many tenants runs them): the same user name locked out in both makes two alerts told apart by
/// `tenant` and `tenant_name`; one tenant's user back in ends that tenant's alert only, and the
/// other's stays active across that tenant's pushes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenants_push_never_ends_another_tenants_alerts_in_a_real_alertmanager() {
    use mfa_auditor::alerting::Alerting;
    use mfa_auditor::state::{DetectionChange, Store, WatchRecord};
    use mfa_auditor::watch::{Detection, LockoutState};
    if !installed("prometheus-alertmanager") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (_alertmanager, am, _) = alertmanager(dir.path()).await;
    let store = Arc::new(Store::in_memory().expect("store"));
    let tenants = [
        ("contoso", "0c0c0c0c-1111-4222-8333-444455556666"),
        ("fabrikam", "0f0f0f0f-1111-4222-8333-444455556666"),
    ];
    let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().expect("time");
    let user =
        mfa_auditor::snapshot::ObjectId::parse("1f0e98f5-3161-4c6b-9b50-d488572f2bb7").expect("id");
    let record = |tenant: &str, change: DetectionChange| {
        store
            .record_watch(&WatchRecord {
                tenant,
                at: at("2026-12-03T10:10:00Z"),
                changes: &[change],
                security: &[],
                watermarks: &[],
                subscribers: &[],
                remediation: &|d: &Detection| format!("TAP for {}", d.upn),
                classifier: None,
            })
            .expect("recorded")
    };
    let mut running = Vec::new();
    for (name, id) in tenants {
        let text = format!(
            "[tenant]\nname = \"{name}\"\ntenant_id = \"{id}\"\nclient_id = \"5a1e3c9d-7b2f-4e6a-8c0d-2f4b6d8e0a1c\"\nclient_secret_env = \"S\"\n\n\
             [alerting.alertmanager]\nurl = \"{am}\"\nresend_interval_seconds = 1\n"
        );
        let config = mfa_auditor::config::Config::parse(&text, "c.toml").expect("valid");
        let metrics = mfa_auditor::metrics::Metrics::new(id);
        let alerting =
            Alerting::prepare_with(&config, store.clone(), metrics.alerting(), None, &|_| None)
                .expect("prepared")
                .start();
        record(
            id,
            DetectionChange::Opened(Detection {
                user,
                upn: "ann@example.com".into(),
                state: LockoutState::LockedOut,
                codes: vec![(500121, 6)],
                first_seen: at("2026-12-03T10:00:00Z"),
                last_seen: at("2026-12-03T10:00:00Z"),
                detail: "6 failed MFA sign-ins".into(),
            }),
        );
        alerting.published();
        running.push(alerting);
    }
    let active = async || -> BTreeSet<(String, String, String)> {
        let (_, body) = get(&format!(
            "{am}/api/v2/alerts?active=true&filter=alertname%3D%22EntraUserLockout%22"
        ))
        .await;
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        v.as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|a| a["status"]["state"] == "active")
            .map(|a| {
                let l = |k: &str| a["labels"][k].as_str().unwrap_or("").to_string();
                (l("tenant"), l("tenant_name"), l("user"))
            })
            .collect()
    };
    let both: BTreeSet<(String, String, String)> = tenants
        .iter()
        .map(|(name, id)| {
            (
                id.to_string(),
                name.to_string(),
                "ann@example.com".to_string(),
            )
        })
        .collect();
    let mut held = BTreeSet::new();
    for _ in 0..100 {
        held = active().await;
        if held == both {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(held, both, "one alert per tenant, told apart by tenant");

    // Contoso's Ann is back in: contoso ends its alert, fabrikam's stays.
    record(
        tenants[0].1,
        DetectionChange::Resolved {
            user,
            state: LockoutState::LockedOut,
            at: at("2026-12-03T10:20:00Z"),
        },
    );
    running[0].published();
    let fabrikam: BTreeSet<(String, String, String)> = both
        .iter()
        .filter(|(_, name, _)| name == "fabrikam")
        .cloned()
        .collect();
    for _ in 0..100 {
        held = active().await;
        if held == fabrikam {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(held, fabrikam, "contoso's alert ended, fabrikam's kept");
    // Several more pushes of both (every second): fabrikam's alert is still active.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(active().await, fabrikam);
    for alerting in &running {
        alerting
            .shutdown(std::time::Duration::from_millis(100))
            .await;
    }
}
