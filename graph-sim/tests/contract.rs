//! Graph's contract as the simulator serves it, checked over HTTP.

use std::collections::HashSet;

use graph_sim::{Fault, Licence, Profile, SimConfig, SimHandle, TenantSource};
use serde_json::{json, Value};

async fn start(users: usize, tweak: impl FnOnce(&mut SimConfig)) -> SimHandle {
    let mut c = SimConfig {
        tenant: TenantSource::Generated {
            users,
            seed: 3,
            profile: Profile::Realistic,
        },
        ..SimConfig::default()
    };
    tweak(&mut c);
    graph_sim::start(c, ([127, 0, 0, 1], 0).into())
        .await
        .expect("sim")
}

/// Asks the token endpoint for a token with `secret`: (status, body).
async fn request_token(sim: &SimHandle, secret: &str) -> (u16, Value) {
    let form = [
        ("client_id", sim.client_id()),
        ("client_secret", secret),
        ("grant_type", "client_credentials"),
        ("scope", "https://graph.microsoft.com/.default"),
    ];
    let url = format!("{}/{}/oauth2/v2.0/token", sim.base_url(), sim.tenant_id());
    let r = reqwest::Client::new()
        .post(url)
        .form(&form)
        .send()
        .await
        .expect("token");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json"))
}

async fn token(sim: &SimHandle) -> String {
    let (status, v) = request_token(sim, sim.client_secret()).await;
    assert_eq!(status, 200);
    v["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

async fn get(sim: &SimHandle, token: &str, url: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let url = if url.starts_with("http") {
        url.to_string()
    } else {
        format!("{}{url}", sim.base_url())
    };
    let r = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("get");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

#[tokio::test]
async fn paging_returns_every_user_once_with_only_the_selected_fields() {
    let sim = start(2345, |_| {}).await;
    let t = token(&sim).await;
    let mut url = "/v1.0/users?$select=id,userPrincipalName&$top=999".to_string();
    let mut seen = HashSet::new();
    let mut pages = 0;
    loop {
        let (status, headers, body) = get(&sim, &t, &url).await;
        assert_eq!(status, 200);
        assert_eq!(
            headers
                .get("x-ms-resource-unit")
                .and_then(|v| v.to_str().ok()),
            Some("1"),
            "GET users with $select costs 1 RU"
        );
        pages += 1;
        for u in body["value"].as_array().expect("value") {
            let keys: HashSet<&str> = u
                .as_object()
                .expect("object")
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(keys, HashSet::from(["id", "userPrincipalName"]));
            assert!(
                seen.insert(u["id"].as_str().expect("id").to_string()),
                "a user twice"
            );
        }
        match body["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (2345, 3));
}

#[tokio::test]
async fn the_registration_report_omits_disabled_users() {
    let sim = start(1500, |_| {}).await;
    let t = token(&sim).await;
    let (status, _, body) = get(
        &sim,
        &t,
        "/v1.0/reports/authenticationMethods/userRegistrationDetails",
    )
    .await;
    assert_eq!(status, 200);
    let rows = body["value"].as_array().expect("rows");
    let enabled = sim
        .ground_truth()
        .users
        .iter()
        .filter(|u| u.account_enabled)
        .count();
    assert!(enabled < 1500);
    assert_eq!(rows.len(), enabled.min(1000));
    assert!(body["@odata.nextLink"].is_string());
}

#[tokio::test]
async fn the_reports_bucket_throttles_the_sixth_request_with_retry_after() {
    let sim = start(100, |_| {}).await;
    let t = token(&sim).await;
    for _ in 0..5 {
        assert_eq!(get(&sim, &t, "/v1.0/auditLogs/signIns").await.0, 200);
    }
    let (status, headers, body) = get(&sim, &t, "/v1.0/auditLogs/signIns").await;
    assert_eq!(status, 429);
    let wait: f64 = headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("decimal seconds");
    assert!(wait > 1.5 && wait <= 2.0, "{wait}");
    assert_eq!(body["error"]["code"], "TooManyRequests");
}

#[tokio::test]
async fn conditional_access_429s_carry_no_retry_after() {
    let sim = start(10, |_| {}).await;
    let t = token(&sim).await;
    assert_eq!(
        get(&sim, &t, "/v1.0/identity/conditionalAccess/policies")
            .await
            .0,
        200
    );
    let (status, headers, _) = get(&sim, &t, "/v1.0/identity/conditionalAccess/policies").await;
    assert_eq!(status, 429);
    assert!(headers.get("retry-after").is_none());
}

#[tokio::test]
async fn permissions_licences_and_tokens_are_enforced() {
    let sim = start(50, |c| {
        c.granted_roles
            .retain(|r| r != "UserAuthenticationMethod.Read.All");
        c.licence = Licence::Free;
    })
    .await;
    let t = token(&sim).await;
    let id = sim.ground_truth().users[0].id.clone();
    let (status, _, body) = get(
        &sim,
        &t,
        &format!("/v1.0/users/{id}/authentication/methods"),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("Authorization_RequestDenied"))
    );
    let (status, _, body) = get(
        &sim,
        &t,
        "/v1.0/reports/authenticationMethods/userRegistrationDetails",
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (
            403,
            Some("Authentication_RequestFromNonPremiumTenantOrB2CTenant")
        )
    );
    let (status, _, body) = get(&sim, &t, "/v1.0/users").await.clone();
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = get(&sim, "not.a.token", "/v1.0/users").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("InvalidAuthenticationToken"))
    );
    let (status, _, _) = get(&sim, &t, "/v1.0/nothing/here").await;
    assert_eq!(status, 404);
    let (status, _, body) = get(&sim, &t, "/v1.0/users?$filter=startswith(displayName,'a')").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("Request_UnsupportedQuery"))
    );
}

#[tokio::test]
async fn a_bad_secret_gets_aadsts7000215() {
    let sim = start(5, |_| {}).await;
    let (status, v) = request_token(&sim, "wrong").await;
    assert_eq!(status, 401);
    assert_eq!(v["error"], "invalid_client");
    assert_eq!(v["error_codes"], json!([7000215]));
    assert!(v["error_description"]
        .as_str()
        .is_some_and(|d| d.starts_with("AADSTS7000215:")));
}

#[tokio::test]
async fn batch_limits_and_per_item_faults() {
    let sim = start(40, |c| {
        c.faults = vec![Fault::Throttle {
            endpoint: "temporaryAccessPassMethods".into(),
            count: Some(2),
            retry_after: Some(0.5),
        }]
    })
    .await;
    let t = token(&sim).await;
    let ids: Vec<String> = sim
        .ground_truth()
        .users
        .iter()
        .map(|u| u.id.clone())
        .collect();
    let post = |body: Value| {
        let url = format!("{}/v1.0/$batch", sim.base_url());
        let t = t.clone();
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .bearer_auth(t)
                .json(&body)
                .send()
                .await
                .expect("batch");
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let too_many: Vec<Value> = (0..21).map(|i| json!({"id": i.to_string(), "method": "GET", "url": format!("/users/{}/authentication/methods", ids[i])})).collect();
    assert_eq!(post(json!({"requests": too_many})).await.0, 400);
    let dup = json!({"requests": [{"id": "a", "method": "GET", "url": "/users"}, {"id": "A", "method": "GET", "url": "/users"}]});
    assert_eq!(post(dup).await.0, 400);
    let items: Vec<Value> = (0..5).map(|i| json!({"id": i.to_string(), "method": "GET", "url": format!("/users/{}/authentication/temporaryAccessPassMethods", ids[i])})).collect();
    let (status, body) = post(json!({"requests": items})).await;
    assert_eq!(status, 200);
    let responses = body["responses"].as_array().expect("responses");
    assert_eq!(responses.len(), 5);
    let throttled: Vec<&Value> = responses.iter().filter(|r| r["status"] == 429).collect();
    assert_eq!(throttled.len(), 2);
    assert_eq!(throttled[0]["headers"]["Retry-After"], "0.500");
    assert_eq!(sim.stats().count("temporaryAccessPassMethods", 429), 2);
}

#[tokio::test]
async fn a_next_link_loop_points_back() {
    let sim = start(300, |c| {
        c.faults = vec![Fault::NextlinkLoop {
            endpoint: "users".into(),
            after_page: 2,
        }]
    })
    .await;
    let t = token(&sim).await;
    let (_, _, p1) = get(&sim, &t, "/v1.0/users?$top=100").await;
    let (_, _, p2) = get(&sim, &t, p1["@odata.nextLink"].as_str().expect("next")).await;
    let (_, _, back) = get(&sim, &t, p2["@odata.nextLink"].as_str().expect("next")).await;
    assert_eq!(
        back["value"][0]["id"], p1["value"][0]["id"],
        "page 2 links back to the start"
    );
}

#[tokio::test]
async fn directory_audits_filter_like_graph_and_list_every_tap_issued() {
    let sim = start(1500, |_| {}).await;
    let t = token(&sim).await;
    let truth = sim.ground_truth();
    // Every TAP an admin issued, fresh or not, within the window.
    let since = truth.now - chrono::Duration::days(7);
    let filter = format!(
        "activityDisplayName%20eq%20%27Admin%20registered%20security%20info%27%20and%20activityDateTime%20ge%20{}",
        since.format("%Y-%m-%dT%H:%M:%SZ")
    );
    let mut url = format!("/v1.0/auditLogs/directoryAudits?$filter={filter}&$top=50");
    let mut taps: HashSet<String> = HashSet::new();
    let mut last: Option<String> = None;
    loop {
        let (status, _, body) = get(&sim, &t, &url).await;
        assert_eq!(status, 200, "{body}");
        for e in body["value"].as_array().expect("value") {
            assert_eq!(e["activityDisplayName"], "Admin registered security info");
            assert_eq!(e["loggedByService"], "Authentication Methods");
            assert_eq!(e["category"], "UserManagement");
            let at = e["activityDateTime"].as_str().expect("time").to_string();
            assert!(last.as_ref().is_none_or(|l| *l >= at), "newest first");
            last = Some(at);
            if e["resultReason"] == "Admin registered temporary access pass method for user" {
                let target = &e["targetResources"][0];
                assert_eq!(target["type"], "User");
                taps.insert(target["id"].as_str().expect("id").to_string());
            }
        }
        match body["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => break,
        }
    }
    let want: HashSet<String> = truth
        .users
        .iter()
        .filter(|u| u.tap.as_ref().is_some_and(|tap| tap.issued() >= since))
        .map(|u| u.id.clone())
        .collect();
    assert!(truth
        .users
        .iter()
        .any(|u| u.tap.as_ref().is_some_and(|t| t.fresh)));
    assert_eq!(taps, want);
    // A fresh TAP is not in the lagging report yet.
    let fresh = truth
        .users
        .iter()
        .find(|u| u.account_enabled && u.tap.as_ref().is_some_and(|t| t.fresh))
        .expect("a fresh TAP");
    let (_, _, report) = get(
        &sim,
        &t,
        "/v1.0/reports/authenticationMethods/userRegistrationDetails?$filter=methodsRegistered/any(m:m%20eq%20%27temporaryAccessPass%27)",
    )
    .await;
    let listed: HashSet<&str> = report["value"]
        .as_array()
        .expect("value")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert!(!listed.contains(fresh.id.as_str()));
    // Forms Graph does not document are refused like Graph refuses them.
    let (status, _, body) = get(
        &sim,
        &t,
        "/v1.0/auditLogs/directoryAudits?$filter=resultReason%20eq%20%27x%27",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "Request_UnsupportedQuery");
}
