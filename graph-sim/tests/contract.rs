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

/// The ids a list answers, every page followed.
async fn ids(sim: &SimHandle, token: &str, url: &str) -> Vec<String> {
    let mut url = url.to_string();
    let mut out = Vec::new();
    loop {
        let (status, _, body) = get(sim, token, &url).await;
        assert_eq!(status, 200, "{url}: {body}");
        for row in body["value"].as_array().expect("value") {
            let id = row["targetResources"][0]["id"]
                .as_str()
                .or(row["id"].as_str())
                .expect("id");
            out.push(id.to_string());
        }
        match body["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => return out,
        }
    }
}

#[tokio::test]
async fn what_the_reports_answer_follows_changes_to_the_tenant() {
    // The simulator keeps the report's rows and the audit log between requests: a change to
    // the tenant must show in the very next answer, filtered or not.
    let sim = start(40, |c| {
        c.registration_page_size = 15;
        // Many report reads in a row: the reports bucket (5 / 10 s) refills at once.
        c.time_scale = 1e6;
    })
    .await;
    let t = token(&sim).await;
    let report = "/v1.0/reports/authenticationMethods/userRegistrationDetails";
    let fido = "/v1.0/reports/authenticationMethods/userRegistrationDetails?$filter=methodsRegistered/any(m:m%20eq%20'fido2SecurityKey')";
    let audits = "/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName%20eq%20'Admin%20registered%20security%20info'";
    let before = ids(&sim, &t, report).await;
    let with_fido = ids(&sim, &t, fido).await;
    let logged = ids(&sim, &t, audits).await;
    let truth = sim.ground_truth();
    let user = truth
        .users
        .iter()
        .find(|u| u.account_enabled && !with_fido.contains(&u.id) && !logged.contains(&u.id))
        .expect("an enabled user without a security key or an audit event");
    assert!(before.contains(&user.id));

    assert!(sim.update_user(&user.id, |u| {
        u.set_methods(&["fido2SecurityKey".to_string()]);
        u.tap = Some(Box::new(graph_sim::SimTap {
            start: chrono::Utc::now(),
            lifetime_minutes: 60,
            usable_once: false,
            usable: true,
            reason: "EnabledByPolicy".into(),
            fresh: false,
        }));
    }));
    let mut expected = with_fido.clone();
    expected.push(user.id.clone());
    let mut now_fido = ids(&sim, &t, fido).await;
    expected.sort();
    now_fido.sort();
    assert_eq!(now_fido, expected);
    let now_logged = ids(&sim, &t, audits).await;
    assert_eq!(now_logged.len(), logged.len() + 1);
    assert!(now_logged.contains(&user.id));

    assert!(sim.update_user(&user.id, |u| u.enabled = false));
    let after = ids(&sim, &t, report).await;
    assert_eq!(after.len(), before.len() - 1);
    assert!(!after.contains(&user.id));
}

#[tokio::test]
async fn method_lists_hold_only_their_versions_types_and_the_report_knows_policy() {
    let sim = start(50, |_| {}).await;
    let id = sim.ground_truth().users[0].id.clone();
    let names: Vec<String> = [
        "hardwareOneTimePasscode",
        "x509CertificateMultiFactor",
        "passKeyDeviceBoundWindowsHello",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert!(sim.update_user(&id, |u| {
        u.set_methods(&names);
        u.enabled = true;
        u.tap = None;
        u.unknown_method = None;
    }));
    let t = token(&sim).await;
    let types = |body: &Value| -> Vec<(String, String)> {
        body["value"]
            .as_array()
            .expect("value")
            .iter()
            .map(|m| {
                (
                    m["@odata.type"].as_str().unwrap_or("").to_string(),
                    m["aaGuid"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let hello = (
        "#microsoft.graph.fido2AuthenticationMethod".to_string(),
        "08987058-cadc-4b81-b6e1-30de50dcbe96".to_string(),
    );
    let hardware = (
        "#microsoft.graph.hardwareOathAuthenticationMethod".to_string(),
        String::new(),
    );
    let password = (
        "#microsoft.graph.passwordAuthenticationMethod".to_string(),
        String::new(),
    );
    let (status, _, v1) = get(
        &sim,
        &t,
        &format!("/v1.0/users/{id}/authentication/methods"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        types(&v1),
        vec![password.clone(), hello.clone()],
        "v1.0 has no hardware OATH type, and CBA has no object"
    );
    let (status, _, beta) = get(
        &sim,
        &t,
        &format!("/beta/users/{id}/authentication/methods"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(types(&beta), vec![password, hardware, hello]);

    // isMfaCapable: registered and allowed by the policy. The realistic policy disables
    // HardwareOath and X509Certificate but enables Fido2, so the passkey keeps the user capable;
    // without it, nothing registered is allowed.
    let row = |body: &Value| -> Value {
        body["value"]
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r["id"] == id.as_str())
            .cloned()
            .expect("row")
    };
    let report = "/v1.0/reports/authenticationMethods/userRegistrationDetails";
    let r = row(&get(&sim, &t, report).await.2);
    assert_eq!(
        (r["isMfaRegistered"].clone(), r["isMfaCapable"].clone()),
        (json!(true), json!(true))
    );
    let names: Vec<String> = names[..2].to_vec();
    assert!(sim.update_user(&id, |u| u.set_methods(&names)));
    let r = row(&get(&sim, &t, report).await.2);
    assert_eq!(
        (r["isMfaRegistered"].clone(), r["isMfaCapable"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(
        r["methodsRegistered"],
        json!(["hardwareOneTimePasscode", "x509CertificateMultiFactor"])
    );
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
async fn subscribed_skus_carry_the_entra_plans_of_the_licence_and_need_organization_read() {
    let plans = |body: &Value| -> Vec<String> {
        body["value"]
            .as_array()
            .expect("value")
            .iter()
            .flat_map(|s| s["servicePlans"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| p["servicePlanName"].as_str().map(String::from))
            .collect()
    };
    for (licence, expected) in [
        (Licence::Free, vec![]),
        (Licence::P1, vec!["AAD_PREMIUM"]),
        (Licence::P2, vec!["AAD_PREMIUM", "AAD_PREMIUM_P2"]),
    ] {
        let sim = start(5, |c| {
            c.licence = licence;
            c.granted_roles.push("Organization.Read.All".into());
        })
        .await;
        let t = token(&sim).await;
        let (status, _, body) = get(&sim, &t, "/v1.0/subscribedSkus").await;
        assert_eq!(status, 200, "{body}");
        let names = plans(&body);
        let entra: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| n.starts_with("AAD_PREMIUM"))
            .collect();
        assert_eq!(entra, expected, "{licence:?}");
        assert!(body.get("@odata.nextLink").is_none(), "no paging");
    }
    // The default grant (no Organization.Read.All / Directory.Read.All) cannot read it.
    let sim = start(5, |_| {}).await;
    let t = token(&sim).await;
    let (status, _, body) = get(&sim, &t, "/v1.0/subscribedSkus").await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "Authorization_RequestDenied");
}

#[tokio::test]
async fn an_intermittent_licence_fault_refuses_the_first_requests_only() {
    let sim = start(5, |c| {
        c.faults = vec![Fault::LicenceIntermittent {
            endpoint: "signIns".into(),
            count: Some(2),
        }]
    })
    .await;
    let t = token(&sim).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (status, _, body) = get(&sim, &t, "/v1.0/auditLogs/signIns").await;
        if status == 403 {
            assert_eq!(
                body["error"]["code"],
                "Authentication_RequestFromNonPremiumTenantOrB2CTenant"
            );
        }
        statuses.push(status);
    }
    assert_eq!(statuses, vec![403, 403, 200]);
}

#[tokio::test]
async fn route_permissions_follow_the_docs() {
    // (granted, url, expected status): docs-contrib permission includes.
    let cases: &[(&[&str], &str, u16)] = &[
        (
            &["UserAuthenticationMethod.Read.All"],
            "/v1.0/reports/authenticationMethods/userRegistrationDetails",
            200,
        ),
        (&["Directory.Read.All"], "/v1.0/auditLogs/signIns", 200),
        (
            &["Policy.ReadWrite.ConditionalAccess"],
            "/beta/identity/conditionalAccess/policies",
            403,
        ),
        (
            &["Policy.Read.All"],
            "/beta/identity/conditionalAccess/policies",
            200,
        ),
        (&["Directory.Read.All"], "/v1.0/subscribedSkus", 200),
    ];
    for (granted, url, expected) in cases {
        let sim = start(5, |c| {
            c.granted_roles = granted.iter().map(|s| s.to_string()).collect()
        })
        .await;
        let t = token(&sim).await;
        let (status, _, body) = get(&sim, &t, url).await;
        assert_eq!(status, *expected, "{granted:?} {url}: {body}");
    }
}

#[tokio::test]
async fn faults_aimed_at_batch_and_token_fire_and_revoke_removes_a_role_from_new_tokens() {
    let sim = start(50, |_| {}).await;
    let t = token(&sim).await;
    sim.set_faults(vec![
        Fault::Status {
            endpoint: "$batch".into(),
            status: 503,
            count: Some(1),
            retry_after: Some(1.0),
        },
        Fault::Throttle {
            endpoint: "token".into(),
            count: Some(1),
            retry_after: Some(2.0),
        },
    ]);
    let batch = json!({"requests": [{"id": "1", "method": "GET", "url": "/users?$select=id"}]});
    let post = || async {
        let r = reqwest::Client::new()
            .post(format!("{}/v1.0/$batch", sim.base_url()))
            .bearer_auth(&t)
            .json(&batch)
            .send()
            .await
            .expect("batch");
        let retry = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (
            r.status().as_u16(),
            retry,
            r.json::<Value>().await.unwrap_or(Value::Null),
        )
    };
    let (status, retry, body) = post().await;
    assert_eq!((status, retry.as_deref()), (503, Some("1")), "{body}");
    assert_eq!(body["error"]["code"], "serviceNotAvailable");
    let (status, _, body) = post().await;
    assert_eq!(status, 200, "the counted fault is spent: {body}");
    let (status, body) = request_token(&sim, sim.client_secret()).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(body["error_codes"][0], 90024);
    // A permission removed by an admin: tokens issued from now on lack it, Graph refuses.
    // Either permission reads the report (docs-contrib): both go.
    sim.set_faults(vec![
        Fault::Revoke {
            permission: "AuditLog.Read.All".into(),
        },
        Fault::Revoke {
            permission: "UserAuthenticationMethod.Read.All".into(),
        },
    ]);
    let (status, _, _) = get(
        &sim,
        &t,
        "/v1.0/reports/authenticationMethods/userRegistrationDetails",
    )
    .await;
    assert_eq!(
        status, 200,
        "a token issued before keeps its roles until it expires"
    );
    let fresh = token(&sim).await;
    let (status, _, body) = get(
        &sim,
        &fresh,
        "/v1.0/reports/authenticationMethods/userRegistrationDetails",
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // The reports service names the permission it wanted; the directory would say
    // Authorization_RequestDenied.
    assert_eq!(
        body["error"]["code"],
        "Authentication_MSGraphPermissionMissing"
    );
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("AuditLog.Read.All")));
    let (status, _, _) = get(&sim, &fresh, "/v1.0/users?$select=id").await;
    assert_eq!(status, 200, "only the revoked permission is gone");
    // Faults that could never fire there are refused, over HTTP too.
    let r = reqwest::Client::new()
        .post(format!("{}/_sim/faults", sim.base_url()))
        .json(&json!([{"kind": "licence", "endpoint": "$batch"}]))
        .send()
        .await
        .expect("control");
    assert_eq!(r.status().as_u16(), 400);
    assert!(r
        .text()
        .await
        .unwrap_or_default()
        .contains("never on $batch"));
}

#[tokio::test]
async fn role_principals_are_typed_and_pim_eligibility_needs_p2() {
    let mut tenant = graph_sim::generate(300, 3, Profile::Realistic);
    tenant.add_privileged_access(3);
    let sim = start(0, |c| {
        c.tenant = TenantSource::Given(Box::new(tenant.clone()))
    })
    .await;
    let t = token(&sim).await;
    let (status, _, v) = get(
        &sim,
        &t,
        "/v1.0/roleManagement/directory/roleAssignments?$filter=roleDefinitionId%20eq%20%2762e90394-69f5-4237-9190-012177145e10%27&$expand=principal",
    )
    .await;
    assert_eq!(status, 200);
    let types: HashSet<String> = v["value"]
        .as_array()
        .expect("value")
        .iter()
        .filter_map(|a| a["principal"]["@odata.type"].as_str().map(str::to_owned))
        .collect();
    for want in [
        "#microsoft.graph.user",
        "#microsoft.graph.group",
        "#microsoft.graph.servicePrincipal",
    ] {
        assert!(types.contains(want), "{want} in {types:?}");
    }
    let group = v["value"]
        .as_array()
        .expect("value")
        .iter()
        .find(|a| a["principal"]["@odata.type"] == "#microsoft.graph.group")
        .and_then(|a| a["principalId"].as_str())
        .expect("a group holds Global Administrator")
        .to_string();
    let (status, _, members) = get(
        &sim,
        &t,
        &format!("/v1.0/groups/{group}/transitiveMembers?$select=id&$top=999"),
    )
    .await;
    assert_eq!(status, 200);
    let kinds: Vec<&str> = members["value"]
        .as_array()
        .expect("value")
        .iter()
        .filter_map(|m| m["@odata.type"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "#microsoft.graph.user",
            "#microsoft.graph.user",
            "#microsoft.graph.servicePrincipal"
        ]
    );
    // The user cast is an advanced query: refused without ConsistencyLevel and $count=true.
    let cast =
        format!("/v1.0/groups/{group}/transitiveMembers/microsoft.graph.user?$select=id&$top=999");
    let (status, _, body) = get(&sim, &t, &cast).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "Request_UnsupportedQuery");
    let r = reqwest::Client::new()
        .get(format!("{}{cast}&$count=true", sim.base_url()))
        .bearer_auth(&t)
        .header("ConsistencyLevel", "eventual")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 200);
    let users: Value = r.json().await.expect("json");
    assert_eq!(users["value"].as_array().map(Vec::len), Some(2));

    let url = "/v1.0/roleManagement/directory/roleEligibilityScheduleInstances?$expand=principal";
    let (status, _, v) = get(&sim, &t, url).await;
    assert_eq!(status, 200);
    assert_eq!(v["value"].as_array().map(Vec::len), Some(3), "{v}");
    assert!(v["value"][0]["startDateTime"].is_string() && v["value"][0]["memberType"] == "Direct");
    // Only eq/ne on roleDefinitionId, as documented.
    let (status, _, v) = get(
        &sim,
        &t,
        "/v1.0/roleManagement/directory/roleEligibilityScheduleInstances?$filter=roleDefinitionId%20in%20(%27x%27)",
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("Request_UnsupportedQuery"))
    );

    let p1 = start(0, |c| {
        c.tenant = TenantSource::Given(Box::new(tenant));
        c.licence = Licence::P1;
    })
    .await;
    let t = token(&p1).await;
    let (status, _, v) = get(&p1, &t, url).await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["code"], "AadPremiumLicenseRequired");
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

#[tokio::test]
async fn v1_omits_conditional_access_policies_that_use_beta_features() {
    let sim = start(5, |c| c.time_scale = 100.0).await;
    sim.update_policy(|p| p.conditional_access[0].beta_only = true);
    let t = token(&sim).await;
    let ids = |body: &Value| -> Vec<String> {
        body["value"]
            .as_array()
            .expect("value")
            .iter()
            .filter_map(|p| p["id"].as_str().map(String::from))
            .collect()
    };
    let (status, _, v1) = get(&sim, &t, "/v1.0/identity/conditionalAccess/policies").await;
    assert_eq!(status, 200);
    // Conditional Access allows 1 request/s per tenant (here 100 times faster): wait for the bucket.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let (status, _, beta) = get(&sim, &t, "/beta/identity/conditionalAccess/policies").await;
    assert_eq!(status, 200);
    let hidden = sim.ground_truth().policy.conditional_access[0].id.clone();
    assert!(!ids(&v1).contains(&hidden), "{v1}");
    assert!(ids(&beta).contains(&hidden), "{beta}");
    assert_eq!(ids(&beta).len(), ids(&v1).len() + 1);
    let p = beta["value"]
        .as_array()
        .and_then(|v| v.iter().find(|p| p["id"] == hidden.as_str()))
        .expect("listed on beta");
    assert_eq!(
        p["sessionControls"]["continuousAccessEvaluation"]["mode"],
        "strictEnforcement"
    );
}

async fn post(sim: &SimHandle, token: &str, url: &str, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}{url}", sim.base_url()))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("post");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_lockout_endpoints_answer_as_graph_documents_them() {
    let sim = start(300, |c| {
        c.tenant = TenantSource::Generated {
            users: 300,
            seed: 11,
            profile: Profile::PolicyLockouts,
        };
        c.granted_roles.push("Directory.Read.All".into());
    })
    .await;
    let t = token(&sim).await;
    let truth = sim.ground_truth();

    // Strengths: the three built-in ones, then the tenant's custom one.
    let (status, _, body) = get(&sim, &t, "/v1.0/policies/authenticationStrengthPolicies").await;
    assert_eq!(status, 200, "{body}");
    let kinds: Vec<(&str, &str)> = body["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap_or(""),
                s["policyType"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(kinds.len(), 4);
    assert_eq!(
        kinds[2],
        ("00000000-0000-0000-0000-000000000004", "builtIn")
    );
    assert_eq!(kinds[3].1, "custom");

    // Directory settings: beta only; "Password Rule Settings" holds the lockout.
    let (status, _, _) = get(&sim, &t, "/v1.0/settings").await;
    assert_eq!(status, 404, "v1.0 renamed it groupSettings");
    let (status, _, body) = get(&sim, &t, "/beta/settings").await;
    assert_eq!(status, 200, "{body}");
    let rules = body["value"]
        .as_array()
        .expect("value")
        .iter()
        .find(|s| s["templateId"] == "5cf42378-d67d-4f36-ba46-e8b86229381d")
        .expect("password rule settings");
    let threshold = rules["values"]
        .as_array()
        .expect("values")
        .iter()
        .find(|v| v["name"] == "LockoutThreshold")
        .expect("threshold");
    assert_eq!(threshold["value"], "20", "values are strings");

    // getByIds: POST only; returns the ids that exist, of the types asked.
    let (status, _, _) = get(&sim, &t, "/v1.0/directoryObjects/getByIds").await;
    assert_eq!(status, 405);
    let user = &truth.users[0].id;
    let group = &truth.groups[0].id;
    let gone = "0e1d0000-0000-4000-8000-00000000dead";
    let (status, body) = post(
        &sim,
        &t,
        "/v1.0/directoryObjects/getByIds",
        &json!({"ids": [user, group, gone], "types": ["user", "group"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let found: Vec<(&str, &str)> = body["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|o| {
            (
                o["@odata.type"].as_str().unwrap_or(""),
                o["id"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            ("#microsoft.graph.user", user.as_str()),
            ("#microsoft.graph.group", group.as_str())
        ]
    );
    let (status, _) = post(
        &sim,
        &t,
        "/v1.0/directoryObjects/getByIds",
        &json!({"ids": [user], "types": ["group"]}),
    )
    .await;
    assert_eq!(status, 200);
    let many: Vec<String> = (0..1001).map(|_| user.clone()).collect();
    let (status, _) = post(
        &sim,
        &t,
        "/v1.0/directoryObjects/getByIds",
        &json!({"ids": many}),
    )
    .await;
    assert_eq!(status, 400, "at most 1,000 ids");

    // The policy's new parts: beta's suspicious-activity reporting, passkey profiles, targets.
    let (_, _, policy) = get(&sim, &t, "/beta/policies/authenticationMethodsPolicy").await;
    assert_eq!(
        policy["reportSuspiciousActivitySettings"]["state"],
        "disabled"
    );
    let (_, _, v1) = get(&sim, &t, "/v1.0/policies/authenticationMethodsPolicy").await;
    assert!(v1.get("reportSuspiciousActivitySettings").is_none());
    let fido2 = policy["authenticationMethodConfigurations"]
        .as_array()
        .expect("configs")
        .iter()
        .find(|c| c["id"] == "Fido2")
        .expect("fido2");
    assert_eq!(
        fido2["passkeyProfiles"][0]["attestationEnforcement"],
        "registrationOnly"
    );
    assert_eq!(
        fido2["includeTargets"][0]["allowedPasskeyProfiles"][0],
        fido2["defaultPasskeyProfile"]
    );
    assert_eq!(fido2["excludeTargets"].as_array().map(Vec::len), Some(1));

    // Conditional Access: the strength inline, whole.
    let (_, _, ca) = get(&sim, &t, "/beta/identity/conditionalAccess/policies").await;
    let admins = &ca["value"][0]["grantControls"];
    assert_eq!(
        admins["authenticationStrength"]["allowedCombinations"],
        json!([
            "windowsHelloForBusiness",
            "fido2",
            "x509CertificateMultiFactor"
        ])
    );
    assert!(admins["authenticationStrength@odata.context"].is_string());

    // Without Directory.Read.All: settings and getByIds are refused as the directory does.
    let plain = start(5, |_| {}).await;
    let t = token(&plain).await;
    let (status, _, body) = get(&plain, &t, "/beta/settings").await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "Authorization_RequestDenied");
    let (status, _) = post(
        &plain,
        &t,
        "/v1.0/directoryObjects/getByIds",
        &json!({"ids": [user]}),
    )
    .await;
    assert_eq!(status, 403);
}
