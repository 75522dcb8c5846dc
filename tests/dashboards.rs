//! The Grafana dashboards' shape: importable anywhere (a `datasource` variable, no fixed uid),
//! every query scoped to the chosen tenant, unique ids. Whether each query returns data is shown
//! against a real Prometheus in `alerting_e2e.rs`.

use std::collections::BTreeSet;

use serde_json::Value;

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
fn there_are_the_four_dashboards_with_unique_uids() {
    let all = dashboards();
    let uids: BTreeSet<&str> = all.iter().filter_map(|(_, d)| d["uid"].as_str()).collect();
    assert_eq!(
        uids,
        BTreeSet::from([
            "mfa-auditor-daemon-health",
            "mfa-auditor-posture-overview",
            "mfa-auditor-tap-and-methods-policy",
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
        assert!(
            vars.iter().any(|v| v["name"] == "tenant"
                && v["query"]["query"] == "label_values(entra_users, tenant)"),
            "{path}: a tenant variable from entra_users"
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
                        inside.contains("tenant=\"$tenant\"")
                            || inside.contains("tenant=~\"$tenant\""),
                        "{path}: {title}: a selector without the tenant: {expr}"
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
