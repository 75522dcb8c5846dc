//! The Grafana dashboards' shape: importable anywhere (a `datasource` variable, no fixed uid),
//! every query scoped to the chosen tenants (a multi-select `tenant` variable), unique ids. Whether
//! each query returns data is shown against a real Prometheus here for two tenants in one scrape
//! (`render_many`, as a daemon of many tenants serves it), and in `alerting_e2e.rs` for one
//! tenant through the daemon.

use std::collections::BTreeSet;

use serde_json::Value;

mod common;

/// The tenant variable: the daemon's tenants, shown by name, valued by id (Grafana's
/// `query_result` and a regex with `text` and `value` groups).
const TENANT_QUERY: &str = "query_result(max by (tenant, tenant_name) (mfa_auditor_tenant_info))";
const TENANT_REGEX: &str = r#"/tenant="(?<value>[^"]+)".*tenant_name="(?<text>[^"]+)"/"#;

fn dashboards() -> Vec<(String, Value)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(dir)
        .expect("dashboards/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read");
            let v = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()));
            (p.display().to_string(), v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Every `datasource` value anywhere in `v`.
fn datasources<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "datasource" {
                    out.push(x);
                }
                datasources(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| datasources(x, out)),
        _ => {}
    }
}

#[test]
fn there_are_the_five_dashboards_with_unique_uids() {
    let all = dashboards();
    let uids: BTreeSet<&str> = all.iter().filter_map(|(_, d)| d["uid"].as_str()).collect();
    assert_eq!(
        uids,
        BTreeSet::from([
            "mfa-auditor-daemon-health",
            "mfa-auditor-posture-overview",
            "mfa-auditor-tap-and-methods-policy",
            "mfa-auditor-tenants",
            "mfa-auditor-users-at-risk",
        ])
    );
    for (path, d) in &all {
        assert!(d["id"].is_null(), "{path}: an exported dashboard has no id");
        assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()), "{path}");
    }
}

#[test]
fn no_datasource_uid_is_hard_coded() {
    for (path, d) in dashboards() {
        let vars = d["templating"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let ds = vars
            .iter()
            .find(|v| v["name"] == "datasource")
            .unwrap_or_else(|| panic!("{path}: no datasource variable"));
        assert_eq!(ds["type"], "datasource", "{path}");
        assert_eq!(ds["query"], "prometheus", "{path}");
        let mut found = Vec::new();
        datasources(&d, &mut found);
        assert!(!found.is_empty(), "{path}");
        for x in found {
            assert_eq!(
                x,
                &serde_json::json!({"type": "prometheus", "uid": "${datasource}"}),
                "{path}: every datasource is the variable"
            );
        }
    }
}

#[test]
fn every_panel_queries_the_chosen_tenant_and_has_a_unique_id() {
    for (path, d) in dashboards() {
        let vars = d["templating"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let tenant = vars
            .iter()
            .find(|v| v["name"] == "tenant")
            .unwrap_or_else(|| panic!("{path}: no tenant variable"));
        assert_eq!(tenant["query"]["query"], TENANT_QUERY, "{path}");
        assert_eq!(tenant["regex"], TENANT_REGEX, "{path}");
        assert!(
            tenant["multi"] == true && tenant["includeAll"] == true,
            "{path}: one tenant, several or all"
        );
        let panels = d["panels"].as_array().cloned().unwrap_or_default();
        assert!(panels.len() >= 8, "{path}: {} panels", panels.len());
        let mut ids = BTreeSet::new();
        for p in &panels {
            let title = p["title"].as_str().unwrap_or("?");
            assert!(
                ids.insert(p["id"].as_i64().expect("id")),
                "{path}: {title}: id twice"
            );
            assert!(p["gridPos"].is_object(), "{path}: {title}: gridPos");
            let targets = p["targets"].as_array().cloned().unwrap_or_default();
            assert!(!targets.is_empty(), "{path}: {title}: no query");
            for t in &targets {
                let expr = t["expr"].as_str().expect("expr");
                assert!(t["refId"].is_string(), "{path}: {title}: refId");
                // Each metric selector `{...}` names the tenant.
                for selector in expr.split('{').skip(1) {
                    let inside = selector.split('}').next().unwrap_or("");
                    if inside.starts_with("__") {
                        continue;
                    }
                    assert!(
                        inside.contains("tenant=~\"$tenant\""),
                        "{path}: {title}: a selector without the chosen tenants (a regex: several may be chosen): {expr}"
                    );
                }
                assert!(
                    !expr.contains("[1") && !expr.contains("[5") && !expr.contains("[6"),
                    "{path}: {title}: fixed windows instead of $__rate_interval: {expr}"
                );
            }
        }
    }
}

#[test]
fn findings_links_point_at_the_api_under_auditor_url() {
    let (_, d) = dashboards()
        .into_iter()
        .find(|(p, _)| p.ends_with("users-at-risk.json"))
        .expect("users at risk");
    let text = d.to_string();
    assert!(
        d["templating"]["list"]
            .as_array()
            .is_some_and(|l| l.iter().any(|v| v["name"] == "auditor_url")),
        "an auditor_url variable"
    );
    assert!(
        text.contains("${auditor_url}/api/v1/findings?rule="),
        "links to the findings of a rule"
    );
    assert!(
        text.contains("${auditor_url}/users/"),
        "links to a user's page"
    );
}

/// Two tenants' metrics in one scrape, as a daemon of many serves them: two simulated tenants
/// audited for real (one weak, one realistic), with the watcher's and the alerting's figures,
/// and the weak one failing and backed off.
/// Returns each tenant's (id, name, rules with open findings) and the scrape's text.
async fn two_tenants() -> (Vec<(String, &'static str, BTreeSet<String>)>, String) {
    use mfa_auditor::metrics::{render_many, Metrics};
    use mfa_auditor::state::Store;
    let mut tenants = Vec::new();
    let mut parts = Vec::new();
    for (seed, profile, name, id) in [
        (
            44,
            graph_sim::Profile::WeakPolicy,
            "contoso",
            "0c0c0c0c-5f4e-4c3b-9a2d-1e0f9c8b7a65",
        ),
        (
            45,
            graph_sim::Profile::Realistic,
            "fabrikam",
            "0f0f0f0f-5f4e-4c3b-9a2d-1e0f9c8b7a65",
        ),
    ] {
        let sim = common::sim(300, seed, profile, |c| c.tenant_id = id.into()).await;
        // Users without MFA are critical here, so the per-user series exist (as in alerting_e2e).
        let config = common::config(&sim, "[rules.no-mfa-method]\nseverity = \"critical\"\n");
        let client = common::client_with(&sim, config.client_config());
        let report = mfa_auditor::audit::run(&config, &client).await;
        assert!(report.complete, "{:?}", report.incomplete_reasons);
        let id = config.tenant.tenant_id.clone();
        let store = Store::in_memory().expect("store");
        store.record(&report, 0).expect("record");
        let metrics = Metrics::new(&id);
        metrics.observe_with(
            &report,
            &config.rules,
            &store.oldest_open_by_rule(&id).expect("oldest"),
            Some(100),
        );
        let watcher = metrics.watcher();
        watcher.read("sign-ins", true, 3, Some(12.0), false);
        watcher.read("directory-audits", true, 1, Some(3.0), false);
        let locked = [(mfa_auditor::watch::LockoutState::LockedOut, 1)];
        watcher.detections(&locked, &[(500121, 1)], 1);
        watcher.recorded(
            &[(mfa_auditor::watch::LockoutState::LockedOut, 1)],
            &[],
            2,
            1,
        );
        let hook: mfa_auditor::alerting::WebhookConfig =
            toml::from_str("name = \"siem\"\nurl_env = \"X\"").expect("webhook");
        let url = url::Url::parse("https://siem.example/hook").expect("url");
        let _ = mfa_auditor::alerting::webhook::Sink::new(&hook, url, &metrics.alerting());
        let backed_off = name == "contoso";
        metrics.tenant_state(
            name,
            if backed_off { 3 } else { 0 },
            backed_off.then(|| chrono::Utc::now() + chrono::Duration::hours(1)),
        );
        let failing: BTreeSet<String> = report
            .summary
            .by_rule
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(r, _)| r.to_string())
            .collect();
        tenants.push((id, name, failing));
        parts.push((metrics, client, sim));
    }
    let text = render_many(parts.iter().map(|(m, c, _)| (m, Some(c.stats()))));
    (tenants, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_returns_data_for_two_tenants_from_a_real_prometheus() {
    use common::daemon::{installed, prometheus, query};
    if !installed("prometheus") {
        return;
    }
    let (tenants, text) = two_tenants().await;
    // The scrape: the same text every time (counters that do not move are still series).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let text = text.clone();
            async move { text }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = tempfile::tempdir().expect("tempdir");
    let (_prometheus, prom) = prometheus(
        dir.path(),
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: mfa-auditor\n    static_configs:\n      - targets: ['{addr}']\n"
        ),
    );

    // The tenant variable lists both, by name, valued by id, as Grafana reads `query_result`.
    let inner = TENANT_QUERY
        .strip_prefix("query_result(")
        .and_then(|q| q.strip_suffix(')'))
        .expect("query_result(...)");
    let mut rows = Vec::new();
    for _ in 0..60 {
        rows = query(&prom, inner).await.unwrap_or_default();
        if rows.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let pattern = regex::Regex::new(TENANT_REGEX.trim_matches('/')).expect("regex");
    let mut options: Vec<(String, String)> = rows
        .iter()
        .map(|(labels, _)| {
            // Grafana's text of a `query_result` row: {k="v",...} value timestamp.
            let line = format!(
                "{{{}}} 1 0",
                labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{v}\""))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let c = pattern.captures(&line).expect("the regex matches");
            (c["text"].to_string(), c["value"].to_string())
        })
        .collect();
    options.sort();
    let mut want: Vec<(String, String)> = tenants
        .iter()
        .map(|(id, name, _)| (name.to_string(), id.clone()))
        .collect();
    want.sort();
    assert_eq!(options, want);

    // Both tenants chosen, as Grafana writes a multi-value regex; every rule for $rule.
    let chosen = format!(
        "({})",
        tenants
            .iter()
            .map(|(id, _, _)| id.as_str())
            .collect::<Vec<_>>()
            .join("|")
    );
    let mut queries = 0;
    for (path, d) in dashboards() {
        for panel in d["panels"].as_array().cloned().unwrap_or_default() {
            for target in panel["targets"].as_array().cloned().unwrap_or_default() {
                let expr = target["expr"].as_str().expect("expr");
                let q = expr
                    .replace("$tenant", &chosen)
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
                let rows =
                    result.unwrap_or_else(|e| panic!("{path}: {:?}: {q}: {e}", panel["title"]));
                assert!(
                    !rows.is_empty(),
                    "{path}: panel {:?} returns no data: {q}",
                    panel["title"]
                );
                // The cross-tenant view shows each tenant on its own row, by name.
                if path.ends_with("tenants.json") && expr.contains("group_left (tenant_name)") {
                    let named: BTreeSet<&str> = rows
                        .iter()
                        .filter_map(|(l, _)| l.get("tenant_name").map(String::as_str))
                        .collect();
                    let failing_rule = panel["title"]
                        .as_str()
                        .is_some_and(|t| t.contains("fail rule"));
                    if !failing_rule {
                        assert_eq!(
                            named,
                            BTreeSet::from(["contoso", "fabrikam"]),
                            "{path}: {:?}: {q}",
                            panel["title"]
                        );
                    } else {
                        assert!(
                            named.contains("contoso"),
                            "the weak tenant fails rules: {rows:?}"
                        );
                    }
                }
                queries += 1;
            }
        }
    }
    assert!(queries >= 60, "{queries} queries");

    // Which tenants fail a rule, and which tenant is backed off: the weak one.
    let backed_off = query(
        &prom,
        &format!(
            "mfa_auditor_tenant_backoff_until_timestamp_seconds{{tenant=~\"{chosen}\"}} > time()"
        ),
    )
    .await
    .expect("query");
    let contoso = &tenants[0].0;
    assert_eq!(
        backed_off
            .iter()
            .map(|(l, _)| l["tenant"].as_str())
            .collect::<Vec<_>>(),
        [contoso.as_str()]
    );
    // Which tenants fail rule X: exactly those with open findings of X.
    let (_, which) = dashboards()
        .into_iter()
        .find(|(p, _)| p.ends_with("tenants.json"))
        .expect("the tenants dashboard");
    let which = which["panels"]
        .as_array()
        .and_then(|p| {
            p.iter()
                .find(|p| p["title"] == "Which tenants fail rule $rule")
        })
        .and_then(|p| p["targets"][0]["expr"].as_str())
        .expect("the panel")
        .to_string();
    let rules: BTreeSet<&String> = tenants.iter().flat_map(|(_, _, f)| f).collect();
    assert!(rules.len() >= 3, "{rules:?}");
    let differ = rules
        .iter()
        .filter(|r| tenants.iter().filter(|(_, _, f)| f.contains(**r)).count() == 1)
        .count();
    assert!(
        differ >= 1,
        "a rule only one of the tenants fails: {tenants:?}"
    );
    for rule in rules {
        let rows = query(
            &prom,
            &which.replace("$tenant", &chosen).replace("$rule", rule),
        )
        .await
        .expect("query");
        let got: BTreeSet<&str> = rows
            .iter()
            .filter_map(|(l, _)| l.get("tenant_name").map(String::as_str))
            .collect();
        let want: BTreeSet<&str> = tenants
            .iter()
            .filter(|(_, _, f)| f.contains(rule))
            .map(|(_, n, _)| *n)
            .collect();
        assert_eq!(got, want, "{rule}");
    }
    // Process-wide series once, not per tenant.
    let build = query(&prom, "mfa_auditor_build_info").await.expect("query");
    assert_eq!(build.len(), 1, "{build:?}");
    assert!(!build[0].0.contains_key("tenant"), "{build:?}");
}
