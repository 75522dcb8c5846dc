//! A cloud of tenants on one listener, as Graph serves every tenant from one host: tokens asked
//! by path tenant, Graph requests routed by the token's `tid`, throttling per app per tenant.

use std::collections::BTreeSet;

use base64::Engine;
use graph_sim::{CloudHandle, Profile, SimConfig, TenantSource};
use serde_json::{json, Value};

const B64: base64::engine::general_purpose::GeneralPurpose =
    base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Two tenants sharing one app (client id and secret): A with 120 users, B with 80 and its own
/// domain `fabrikam.onmicrosoft.com`.
async fn two_tenants() -> CloudHandle {
    let a = SimConfig {
        tenant: TenantSource::Generated {
            users: 120,
            seed: 11,
            profile: Profile::Realistic,
        },
        tenant_id: graph_sim::cloud_tenant_id(11),
        ..SimConfig::default()
    };
    let mut b_tenant = graph_sim::generate(80, 12, Profile::Realistic);
    b_tenant.domain = "fabrikam.onmicrosoft.com".into();
    let b = SimConfig {
        tenant: TenantSource::Given(Box::new(b_tenant)),
        tenant_id: graph_sim::cloud_tenant_id(12),
        ..SimConfig::default()
    };
    graph_sim::start_cloud(vec![a, b], ([127, 0, 0, 1], 0).into())
        .await
        .expect("cloud")
}

/// Asks `/{path_tenant}/oauth2/v2.0/token` for a Graph token: (status, body).
async fn request_token(cloud: &CloudHandle, path_tenant: &str) -> (u16, Value) {
    let app = cloud.tenant(0);
    let form = [
        ("client_id", app.client_id()),
        ("client_secret", app.client_secret()),
        ("grant_type", "client_credentials"),
        ("scope", "https://graph.microsoft.com/.default"),
    ];
    let r = reqwest::Client::new()
        .post(format!(
            "{}/{path_tenant}/oauth2/v2.0/token",
            cloud.base_url()
        ))
        .form(&form)
        .send()
        .await
        .expect("token");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json"))
}

async fn token(cloud: &CloudHandle, path_tenant: &str) -> String {
    let (status, body) = request_token(cloud, path_tenant).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// The claims of a JWT, unverified.
fn claims(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&B64.decode(part).expect("base64url")).expect("JSON")
}

async fn get(cloud: &CloudHandle, token: Option<&str>, path: &str) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(format!("{}{path}", cloud.base_url()));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("get");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Every user id a token reads from `/v1.0/users`, pages followed.
async fn user_ids(cloud: &CloudHandle, token: &str) -> BTreeSet<String> {
    let mut url = "/v1.0/users?$select=id&$top=50".to_string();
    let mut ids = BTreeSet::new();
    loop {
        let (status, body) = get(cloud, Some(token), &url).await;
        assert_eq!(status, 200, "{body}");
        for u in body["value"].as_array().expect("value") {
            ids.insert(u["id"].as_str().expect("id").to_string());
        }
        match body["@odata.nextLink"].as_str() {
            Some(next) => url = next.trim_start_matches(&cloud.base_url()).to_string(),
            None => return ids,
        }
    }
}

fn truth_ids(cloud: &CloudHandle, i: usize) -> BTreeSet<String> {
    cloud
        .tenant(i)
        .ground_truth()
        .users
        .iter()
        .map(|u| u.id.clone())
        .collect()
}

#[tokio::test]
async fn a_tenants_token_reads_that_tenants_users_only() {
    let cloud = two_tenants().await;
    let (a, b) = (cloud.tenant(0), cloud.tenant(1));
    assert_eq!(a.base_url(), b.base_url(), "one listener");
    assert_eq!(a.client_id(), b.client_id(), "one multi-tenant app");

    let token_a = token(&cloud, a.tenant_id()).await;
    let token_b = token(&cloud, b.tenant_id()).await;
    assert_eq!(claims(&token_a)["tid"], a.tenant_id());
    assert_eq!(claims(&token_b)["tid"], b.tenant_id());

    let (read_a, read_b) = (
        user_ids(&cloud, &token_a).await,
        user_ids(&cloud, &token_b).await,
    );
    assert_eq!(read_a, truth_ids(&cloud, 0));
    assert_eq!(read_b, truth_ids(&cloud, 1));
    assert_eq!((read_a.len(), read_b.len()), (120, 80));
    assert!(read_a.is_disjoint(&read_b));
    assert!(a.stats().total("users") >= 3 && b.stats().total("users") >= 2);
}

#[tokio::test]
async fn token_requests_are_routed_by_the_path_tenant_id_or_domain() {
    let cloud = two_tenants().await;
    let b = cloud.tenant(1);
    // By domain, in any case: the token is B's.
    let by_domain = token(&cloud, "Fabrikam.onmicrosoft.com").await;
    assert_eq!(claims(&by_domain)["tid"], b.tenant_id());
    assert_eq!(
        cloud
            .find("fabrikam.onmicrosoft.com")
            .map(|t| t.tenant_id()),
        Some(b.tenant_id())
    );
    // A's domain is the generated default.
    let by_a_domain = token(&cloud, "contoso.onmicrosoft.com").await;
    assert_eq!(claims(&by_a_domain)["tid"], cloud.tenant(0).tenant_id());
    assert_eq!(
        (
            cloud.tenant(0).stats().tokens_issued,
            b.stats().tokens_issued
        ),
        (1, 1)
    );

    // A tenant the cloud does not serve: Entra's AADSTS90002.
    let (status, body) = request_token(&cloud, &graph_sim::cloud_tenant_id(99)).await;
    assert_eq!(status, 400);
    assert_eq!(body["error_codes"], json!([90002]));
    assert!(body["error_description"]
        .as_str()
        .is_some_and(|d| d.starts_with("AADSTS90002: Tenant '")));
}

#[tokio::test]
async fn one_tenants_load_leaves_the_others_throttle_bucket_untouched() {
    let cloud = two_tenants().await;
    let (a, b) = (cloud.tenant(0), cloud.tenant(1));
    let token_a = token(&cloud, a.tenant_id()).await;
    let token_b = token(&cloud, b.tenant_id()).await;
    // The reports service: 5 requests / 10 s per app per tenant. A spends its 5 and is refused.
    for _ in 0..5 {
        assert_eq!(
            get(&cloud, Some(&token_a), "/v1.0/auditLogs/signIns")
                .await
                .0,
            200
        );
    }
    let (status, body) = get(&cloud, Some(&token_a), "/v1.0/auditLogs/signIns").await;
    assert_eq!(status, 429, "{body}");
    // B, same app, same moment: its whole budget is there.
    for _ in 0..5 {
        assert_eq!(
            get(&cloud, Some(&token_b), "/v1.0/auditLogs/signIns")
                .await
                .0,
            200
        );
    }
    assert_eq!((a.stats().throttled(), b.stats().throttled()), (1, 0));
    assert_eq!(b.stats().count("signIns", 200), 5);
}

#[tokio::test]
async fn graph_refuses_a_token_that_names_no_tenant_here() {
    let cloud = two_tenants().await;
    let (a, b) = (cloud.tenant(0), cloud.tenant(1));
    // No token.
    let (status, body) = get(&cloud, None, "/v1.0/users").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("InvalidAuthenticationToken"))
    );
    // Not a JWT.
    let (status, _) = get(&cloud, Some("opaque"), "/v1.0/users").await;
    assert_eq!(status, 401);
    // A well-formed token for a tenant the cloud does not serve.
    let stranger = {
        let now = chrono::Utc::now().timestamp();
        let claims = json!({"tid": graph_sim::cloud_tenant_id(99), "roles": ["User.Read.All"],
                            "exp": now + 600, "nbf": now});
        graph_sim::auth::sign(b"someone else's key", &claims)
    };
    let (status, body) = get(&cloud, Some(&stranger), "/v1.0/users").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("InvalidAuthenticationToken"))
    );
    assert_eq!(cloud.unrouted(), 3);
    // A's token relabelled as B's: routed to B, whose key refuses it.
    let token_a = token(&cloud, a.tenant_id()).await;
    let mut parts: Vec<String> = token_a.split('.').map(str::to_owned).collect();
    let mut c = claims(&token_a);
    c["tid"] = json!(b.tenant_id());
    parts[1] = B64.encode(c.to_string());
    let (status, _) = get(&cloud, Some(&parts.join(".")), "/v1.0/users").await;
    assert_eq!(status, 401);
    assert_eq!(b.stats().count("users", 401), 1);
    assert_eq!(a.stats().total("users"), 0, "nothing reached A");
}

#[tokio::test]
async fn the_side_door_names_each_tenant() {
    let cloud = two_tenants().await;
    let b = cloud.tenant(1);
    let token_b = token(&cloud, b.tenant_id()).await;
    assert_eq!(get(&cloud, Some(&token_b), "/v1.0/users").await.0, 200);
    let (status, list) = get(&cloud, None, "/_sim/tenants").await;
    assert_eq!(status, 200);
    let tenants = list["tenants"].as_array().expect("tenants");
    assert_eq!(tenants.len(), 2);
    assert_eq!(tenants[1]["tenant_id"], b.tenant_id());
    assert_eq!(tenants[1]["domain"], "fabrikam.onmicrosoft.com");
    assert_eq!(tenants[1]["stats"]["requests"]["users"]["200"], 1);
    assert_eq!(tenants[0]["stats"]["requests"], json!({}));
    // One tenant's side door by id; the plain one is the first tenant's.
    let (_, stats_b) = get(
        &cloud,
        None,
        &format!("/_sim/tenants/{}/stats", b.tenant_id()),
    )
    .await;
    assert_eq!(stats_b["requests"]["users"]["200"], 1);
    let (_, stats_first) = get(&cloud, None, "/_sim/stats").await;
    assert_eq!(stats_first["tokens_issued"], 0);
    let (status, _) = get(&cloud, None, "/_sim/tenants/nobody/stats").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_cloud_refuses_duplicate_tenant_ids_and_no_tenants() {
    let one = SimConfig {
        tenant: TenantSource::Generated {
            users: 5,
            seed: 1,
            profile: Profile::Healthy,
        },
        ..SimConfig::default()
    };
    let dup = graph_sim::start_cloud(vec![one.clone(), one], ([127, 0, 0, 1], 0).into()).await;
    assert!(dup
        .err()
        .is_some_and(|e| e.to_string().contains("given twice")));
    assert!(
        graph_sim::start_cloud(Vec::new(), ([127, 0, 0, 1], 0).into())
            .await
            .is_err()
    );
}

#[test]
fn the_binary_serves_n_tenants_and_prints_their_ids() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_graph-sim"))
        .args(["--listen", "127.0.0.1:0", "--tenants", "3", "--users", "20"])
        .args(["--seed", "40"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("graph-sim");
    let lines: Vec<String> = BufReader::new(child.stdout.take().expect("stdout"))
        .lines()
        .take(4)
        .map(|l| l.expect("line"))
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    assert!(lines[0].starts_with("http://127.0.0.1:"), "{lines:?}");
    let expected: Vec<String> = (40..43).map(graph_sim::cloud_tenant_id).collect();
    assert_eq!(lines[1..], expected[..]);
}
