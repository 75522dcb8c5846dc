//! Issue 14 end to end: one daemon (the real binary) auditing three simulated tenants — a
//! healthy one, a weak one and one that fails (its administrator never consented to the app, so
//! every token request is refused) — with a real Alertmanager and a webhook receiver.
//!
//! Shown: the two good tenants publish and keep publishing; the failing one is reported
//! (`/api/v1/tenants`, the metrics, the overview) and backed off, never holding up the others;
//! findings, alerts and webhook messages carry the right tenant; a request naming no tenant, or
//! an unknown one, is a 400 that says which tenants there are.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use graph_sim::{Profile, SimHandle};
use serde_json::Value;

use common::daemon::{alertmanager, free_port, get, installed, value, wait_for, Daemon};

/// Every message the webhook receiver got.
#[derive(Default)]
struct Hook(Mutex<Vec<Value>>);

async fn hook(State(h): State<Arc<Hook>>, Json(body): Json<Value>) {
    h.0.lock().unwrap_or_else(|e| e.into_inner()).push(body);
}

/// One `[[tenants]]` entry for `sim`, on its own loopback URL (a custom cloud per tenant).
fn entry(name: &str, sim: &SimHandle, client_id: &str) -> String {
    format!(
        "[[tenants]]\nname = \"{name}\"\ntenant_id = \"{t}\"\ncloud = \"custom\"\ngraph_url = \"{b}\"\nlogin_url = \"{b}\"\n\
         client_id = \"{client_id}\"\nclient_secret_env = \"SIM_SECRET\"\n\n",
        t = sim.tenant_id(),
        b = sim.base_url(),
    )
}

async fn json(url: &str) -> (u16, Value) {
    let (status, body) = get(url).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// The UPNs of a simulated tenant's users.
fn upns(sim: &SimHandle) -> BTreeSet<String> {
    sim.ground_truth()
        .users
        .iter()
        .map(|u| u.upn.to_lowercase())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tenants_in_one_daemon_the_failing_one_backed_off() {
    if !installed("prometheus-alertmanager") {
        return;
    }
    let seed_ids = |c: &mut graph_sim::SimConfig, id: &str| c.tenant_id = id.into();
    let healthy = common::sim(150, 141, Profile::Healthy, |c| {
        seed_ids(c, "0b5e2c7a-1d4f-4e8b-9c3a-7f6e5d4c3b2a")
    })
    .await;
    let weak = common::sim(150, 142, Profile::WeakPolicy, |c| {
        seed_ids(c, "1c6f3d8b-2e5a-4f9c-8d4b-8a7f6e5d4c3b")
    })
    .await;
    // Its administrator never consented: the app is not found in that directory (AADSTS700016).
    let failing = common::sim(50, 143, Profile::Realistic, |c| {
        seed_ids(c, "2d7a4e9c-3f6b-4a0d-9e5c-9b8a7f6e5d4c");
        c.client_id = "00000000-0000-4000-8000-00000000dead".into();
    })
    .await;
    let app = healthy.client_id().to_string();
    assert_eq!(weak.client_id(), app, "one multi-tenant app");

    let receiver = Arc::new(Hook::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook_addr = listener.local_addr().expect("addr");
    let routes = Router::new()
        .route("/hook", post(hook))
        .with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, routes).await });

    let dir = tempfile::tempdir().expect("tempdir");
    let (_alertmanager, am, _) = alertmanager(dir.path()).await;
    let s = common::SCALE;
    let config = dir.path().join("config.toml");
    let text = format!(
        "[daemon]\nmax_concurrent_audits = 2\nfailures_before_backoff = 2\nbackoff_initial_seconds = 120\n\n\
         [graph]\nmax_retries = 1\n\n[graph.pacing]\ndirectory_ru_per_10s = {d}\nreports_per_10s = {r}\nconditional_access_per_second = {s}\nauth_methods_per_10s = {d}\n\n\
         [schedule]\ncron = \"*/2 * * * * *\"\nstale_after_seconds = 60\n\n\
         [storage]\npath = \"{state}\"\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n\n\
         [watcher]\nenabled = false\n\n\
         [alerting.alertmanager]\nurl = \"{am}\"\nresend_interval_seconds = 2\n\n\
         [[alerting.webhook]]\nname = \"hook\"\nurl = \"http://{hook_addr}/hook\"\nbatch_above = 1000\n\n\
         {h}{w}{f}",
        d = 8000.0 * s,
        r = 5.0 * s,
        state = dir.path().join("state.db").display(),
        port = free_port(),
        h = entry("healthy", &healthy, &app),
        w = entry("weak", &weak, &app),
        f = entry("failing", &failing, &app),
    );
    std::fs::write(&config, text).expect("config");
    let daemon = Daemon::start(&config, healthy.client_secret());
    let base = daemon.base.clone();

    // The two good tenants publish; the failing one is backed off after two failures.
    let tenants_url = format!("{base}/api/v1/tenants");
    wait_for(
        "both good tenants audited, the failing one backed off",
        90,
        async || {
            let (_, t) = json(&tenants_url).await;
            let state = |name: &str| {
                t["tenants"]
                    .as_array()
                    .and_then(|a| a.iter().find(|x| x["name"] == name))
                    .map(|x| x["state"].as_str().unwrap_or("").to_string())
            };
            state("healthy").as_deref() == Some("ok")
                && state("weak").as_deref() == Some("ok")
                && state("failing").as_deref() == Some("backed-off")
        },
    )
    .await;
    let (status, t) = json(&tenants_url).await;
    assert_eq!(status, 200);
    assert_eq!(t["total"], 3);
    let names: Vec<&str> = t["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .filter_map(|x| x["name"].as_str())
        .collect();
    assert_eq!(names, ["healthy", "weak", "failing"], "in file order");
    let failing_row = &t["tenants"][2];
    assert_eq!(failing_row["tenant_id"], failing.tenant_id());
    assert!(
        failing_row["consecutive_failures"].as_u64() >= Some(2),
        "{failing_row}"
    );
    assert!(failing_row["backoff_until"].is_string(), "{failing_row}");
    assert!(failing_row["last_complete"].is_null());
    let why = failing_row["last_error"].as_str().unwrap_or("");
    assert!(
        why.contains("700016"),
        "the reason names Entra's refusal: {why}"
    );
    assert!(
        t["tenants"][1]["open"].as_i64() > Some(0),
        "the weak tenant has findings"
    );

    // The metrics: each tenant's series labelled with its tenant; the failing one's back-off.
    let (_, metrics) = get(&format!("{base}/metrics")).await;
    let last_success = |tenant: &str| {
        value(
            &metrics,
            &format!("mfa_auditor_audit_last_success_timestamp_seconds{{tenant=\"{tenant}\"}}"),
        )
    };
    assert!(last_success(healthy.tenant_id()) > Some(0.0), "{metrics}");
    assert!(last_success(weak.tenant_id()) > Some(0.0));
    assert_eq!(last_success(failing.tenant_id()), Some(0.0));
    let backoff = metrics
        .lines()
        .find(|l| {
            l.starts_with("mfa_auditor_tenant_backoff_until_timestamp_seconds")
                && l.contains(failing.tenant_id())
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok());
    assert!(
        backoff > Some(0.0),
        "the failing tenant's back-off is a metric:\n{metrics}"
    );
    let help_lines = metrics
        .lines()
        .filter(|l| l.starts_with("# TYPE mfa_auditor_audit_last_success_timestamp_seconds "))
        .count();
    assert_eq!(help_lines, 1, "one family, every tenant's series in it");

    // Backed off, the failing tenant is not tried again while the good ones keep publishing.
    let audits = |m: &str, tenant: &str, result: &str| {
        value(
            m,
            &format!("mfa_auditor_audits_total{{result=\"{result}\",tenant=\"{tenant}\"}}"),
        )
        .unwrap_or(0.0)
    };
    let failed_before = audits(&metrics, failing.tenant_id(), "incomplete");
    let healthy_before = audits(&metrics, healthy.tenant_id(), "complete");
    assert!(failed_before >= 2.0);
    wait_for("three more audits of the healthy tenant", 60, async || {
        let (_, m) = get(&format!("{base}/metrics")).await;
        audits(&m, healthy.tenant_id(), "complete") >= healthy_before + 3.0
    })
    .await;
    let (_, metrics) = get(&format!("{base}/metrics")).await;
    assert_eq!(
        audits(&metrics, failing.tenant_id(), "incomplete"),
        failed_before,
        "no audit of a backed-off tenant"
    );

    // Findings carry the right tenant: the weak tenant's are its users', none the healthy one's.
    let (status, page) = json(&format!(
        "{base}/api/v1/findings?tenant=weak&page_size=1000"
    ))
    .await;
    assert_eq!(status, 200, "{page}");
    let weak_upns = upns(&weak);
    let items = page["items"].as_array().expect("items");
    assert!(!items.is_empty());
    for f in items {
        if let Some(upn) = f["user_principal_name"].as_str() {
            assert!(
                weak_upns.contains(&upn.to_lowercase()),
                "{upn} is the weak tenant's"
            );
        }
    }
    // By tenant id too, case-insensitively.
    let (status, by_id) = json(&format!(
        "{base}/api/v1/findings?tenant={}&page_size=1",
        weak.tenant_id().to_uppercase()
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(by_id["total"], page["total"]);
    let (_, none) = json(&format!("{base}/api/v1/findings?tenant=failing")).await;
    assert_eq!(
        none["total"], 0,
        "nothing was ever recorded for the failing tenant"
    );

    // Which tenants fail a rule: the weak one's most common rule.
    let rule = items[0]["rule"].as_str().expect("rule").to_string();
    let (status, fail) = json(&format!("{tenants_url}?rule={rule}")).await;
    assert_eq!(status, 200);
    let failing_rule: Vec<&str> = fail["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .filter_map(|x| x["name"].as_str())
        .collect();
    assert!(failing_rule.contains(&"weak"), "{fail}");
    assert!(!failing_rule.contains(&"failing"));
    assert!(fail["tenants"][0]["rule_open"].as_i64() > Some(0));

    // No tenant named, or an unknown one: a 400 that lists them.
    let (status, e) = json(&format!("{base}/api/v1/findings")).await;
    assert_eq!(status, 400);
    assert_eq!(e["error"]["parameter"], "tenant");
    let message = e["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("healthy") && message.contains("failing"),
        "{message}"
    );
    let (status, _) = json(&format!("{base}/api/v1/findings?tenant=contoso")).await;
    assert_eq!(status, 400);
    let (status, _) = json(&format!("{tenants_url}?rule=no-such-rule")).await;
    assert_eq!(status, 400);

    // The overview of all tenants, and one tenant's pages.
    let (status, html) = get(&format!("{base}/")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("data-tenant=\"failing\" data-state=\"backed-off\""),
        "{html}"
    );
    assert!(html.contains("data-tenant=\"healthy\" data-state=\"ok\""));
    assert!(
        html.contains(&format!("href=\"/rules/{rule}?tenant=weak\"")),
        "which tenants fail {rule}"
    );
    let (status, html) = get(&format!("{base}/?tenant=weak")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("name=\"tenant\" value=\"weak\""),
        "the search stays on the tenant"
    );
    assert!(html.contains(&format!("href=\"/rules/{rule}?tenant=weak\"")));
    let (status, _) = get(&format!("{base}/users")).await;
    assert_eq!(status, 400, "a per-tenant page names its tenant");

    // /readyz: ready (the good tenants are), each tenant on its line.
    let (status, body) = get(&format!("{base}/readyz")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("failing: not ready"), "{body}");
    let (status, _) = get(&format!("{base}/readyz?tenant=failing")).await;
    assert_eq!(status, 503);

    // Alerts: the weak tenant's findings are in Alertmanager labelled with its tenant; none for
    // the failing tenant.
    wait_for("the weak tenant's alerts in Alertmanager", 30, async || {
        let (_, alerts) = json(&format!("{am}/api/v2/alerts")).await;
        alerts
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["labels"]["tenant"] == weak.tenant_id()))
    })
    .await;
    let (_, alerts) = json(&format!("{am}/api/v2/alerts")).await;
    for a in alerts.as_array().expect("alerts") {
        let tenant = a["labels"]["tenant"].as_str().unwrap_or("");
        assert!(
            tenant == weak.tenant_id() || tenant == healthy.tenant_id(),
            "an alert of an audited tenant: {a}"
        );
        if tenant == weak.tenant_id() {
            if let Some(upn) = a["labels"]["user_principal_name"].as_str() {
                assert!(weak_upns.contains(&upn.to_lowercase()), "{a}");
            }
            let url = a["annotations"]["user_url"].as_str().unwrap_or("");
            if !url.is_empty() {
                assert!(
                    url.contains("tenant=weak"),
                    "the link stays on the tenant: {url}"
                );
            }
        }
    }

    // Webhook messages name their tenant; none comes from the failing tenant.
    wait_for("a webhook message from the weak tenant", 30, async || {
        receiver
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|m| m.to_string().contains(weak.tenant_id()))
    })
    .await;
    for m in receiver.0.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        let text = m.to_string();
        assert!(!text.contains(failing.tenant_id()), "{text}");
        assert!(
            text.contains(weak.tenant_id()) ^ text.contains(healthy.tenant_id()),
            "each message is one tenant's: {text}"
        );
    }

    // The secret never reaches the log.
    assert!(!daemon.log().contains(healthy.client_secret()));
}
