//! Sign-ins and directory-audit entries over time (issue 12), checked over HTTP: keyset paging
//! by createdDateTime windows, v1.0 and beta shapes, the control endpoint, the ingestion delay,
//! the security-info entries.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use graph_sim::{Profile, SimConfig, SimHandle, TenantSource, Traffic, WatchThresholds};
use serde_json::{json, Value};

async fn start(tweak: impl FnOnce(&mut SimConfig)) -> SimHandle {
    let mut c = SimConfig {
        tenant: TenantSource::Generated {
            users: 60,
            seed: 5,
            profile: Profile::Realistic,
        },
        time_scale: 1000.0,
        ..SimConfig::default()
    };
    tweak(&mut c);
    graph_sim::start(c, ([127, 0, 0, 1], 0).into())
        .await
        .expect("sim")
}

async fn token(sim: &SimHandle) -> String {
    let form = [
        ("client_id", sim.client_id()),
        ("client_secret", sim.client_secret()),
        ("grant_type", "client_credentials"),
        ("scope", "https://graph.microsoft.com/.default"),
    ];
    let url = format!("{}/{}/oauth2/v2.0/token", sim.base_url(), sim.tenant_id());
    let v: Value = reqwest::Client::new()
        .post(url)
        .form(&form)
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    v["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

async fn get(sim: &SimHandle, token: &str, url: &str) -> Value {
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
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.expect("json")
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// Every row of a listing, following nextLinks; `between` runs after the first page.
async fn list(
    sim: &SimHandle,
    t: &str,
    first: &str,
    mut between: impl FnMut(),
) -> (Vec<Value>, usize) {
    let mut url = first.to_string();
    let mut rows = Vec::new();
    let mut pages = 0;
    loop {
        let body = get(sim, t, &url).await;
        pages += 1;
        rows.extend(body["value"].as_array().expect("value").iter().cloned());
        if pages == 1 {
            between();
        }
        match body["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => break,
        }
        assert!(pages < 1000, "nextLinks never end");
    }
    (rows, pages)
}

fn created(r: &Value) -> DateTime<Utc> {
    r["createdDateTime"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
        .expect("createdDateTime")
}

#[tokio::test]
async fn sign_ins_page_by_created_windows_exactly_while_rows_arrive() {
    let begin = DateTime::from_timestamp_micros(
        (Utc::now() - chrono::Duration::minutes(10)).timestamp_micros(),
    )
    .expect("an instant");
    let sim = start(|c| {
        c.traffic = Some(Traffic {
            per_minute: 300,
            seed: 9,
            start: Some(begin),
        })
    })
    .await;
    let t = token(&sim).await;
    let end = DateTime::from_timestamp_micros(
        (Utc::now() - chrono::Duration::seconds(1)).timestamp_micros(),
    )
    .expect("an instant");
    let mid = begin + chrono::Duration::minutes(4);
    let url = |from: DateTime<Utc>, to: DateTime<Utc>| {
        format!(
            "/v1.0/auditLogs/signIns?$top=400&$filter={}",
            enc(&format!(
                "createdDateTime ge {} and createdDateTime le {}",
                iso(from),
                iso(to)
            ))
        )
    };
    let user = sim.ground_truth().users[0].id.clone();
    let (all, pages) = list(&sim, &t, &url(begin, end), || {
        // Arrives in the window while the listing is read: the listing's pages stay exact.
        sim.push_sign_ins(vec![graph_sim::SimSignIn::new(
            user.clone(),
            begin + chrono::Duration::minutes(1),
            50126,
        )]);
    })
    .await;
    assert!(pages >= 7, "{pages} pages");
    let ids: Vec<&str> = all.iter().map(|r| r["id"].as_str().expect("id")).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no row twice");
    // 300 a minute for ~10 minutes, plus the tenant's own failures in the window.
    assert!((2900..=3100).contains(&all.len()), "{} rows", all.len());
    assert!(
        all.windows(2).all(|w| created(&w[0]) >= created(&w[1])),
        "newest first"
    );
    assert!(all.iter().all(|r| created(r) >= begin && created(r) <= end));
    // Two windows give the same rows (those at exactly `mid` are in both), plus the late one.
    let (a, _) = list(&sim, &t, &url(begin, mid), || {}).await;
    let (b, _) = list(&sim, &t, &url(mid, end), || {}).await;
    let mut union: HashSet<String> = a
        .iter()
        .chain(b.iter())
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(
        union.len(),
        all.len() + 1,
        "the pushed row appears in a new listing"
    );
    for id in &ids {
        union.remove(*id);
    }
    assert_eq!(union.len(), 1);
    // A code or user filter lists exactly the rows of the whole listing that match it.
    let code_url = format!(
        "/v1.0/auditLogs/signIns?$filter={}",
        enc(&format!(
            "createdDateTime ge {} and createdDateTime le {} and status/errorCode eq 500121",
            iso(begin),
            iso(end)
        ))
    );
    let (failed, _) = list(&sim, &t, &code_url, || {}).await;
    let expect = all
        .iter()
        .filter(|r| r["status"]["errorCode"] == 500121)
        .count();
    assert!(expect > 0);
    assert_eq!(failed.len(), expect);
    let someone = all[0]["userId"].as_str().expect("userId").to_string();
    let user_url = format!(
        "/v1.0/auditLogs/signIns?$filter={}",
        enc(&format!(
            "createdDateTime ge {} and createdDateTime le {} and userId eq '{someone}'",
            iso(begin),
            iso(end)
        ))
    );
    let (theirs, _) = list(&sim, &t, &user_url, || {}).await;
    assert_eq!(
        theirs.len(),
        all.iter().filter(|r| r["userId"] == json!(someone)).count()
    );
    // Oldest first on request.
    let (asc, _) = list(
        &sim,
        &t,
        &format!("{}&$orderby=createdDateTime%20asc", url(begin, mid)),
        || {},
    )
    .await;
    assert_eq!(asc.len(), a.len());
    assert!(asc.windows(2).all(|w| created(&w[0]) <= created(&w[1])));
}

#[tokio::test]
async fn beta_lists_mfa_steps_and_v1_keeps_the_fixture_shape() {
    let sim = start(|_| {}).await;
    let t = token(&sim).await;
    let user = sim.ground_truth().users[1].clone();
    let when = Utc::now() - chrono::Duration::minutes(3);
    let ids = sim.user_fails_mfa(&user.upn, 2, when, 500121);
    assert_eq!(ids.len(), 2);
    sim.user_succeeds_mfa(&user.id, when + chrono::Duration::minutes(2));
    let q = format!(
        "/auditLogs/signIns?$filter={}",
        enc(&format!(
            "createdDateTime ge {} and userId eq '{}'",
            iso(when),
            user.id
        ))
    );
    let v1 = get(&sim, &t, &format!("/v1.0{q}")).await;
    let rows = v1["value"].as_array().expect("value");
    assert_eq!(rows.len(), 3);
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/graph/fixtures/signIns_list.json"
        ))
        .expect("fixture"),
    )
    .expect("fixture JSON");
    let keys = fixture["value"][0].as_object().expect("a row");
    for r in rows {
        for k in keys.keys() {
            assert!(r.get(k).is_some(), "v1.0 row lacks {k}");
        }
        assert!(r.get("authenticationDetails").is_none());
        assert!(r.get("authenticationRequirement").is_none());
    }
    // Newest first: the success, then the two failures.
    assert_eq!(rows[0]["status"]["errorCode"], 0);
    assert_eq!(rows[1]["status"]["errorCode"], 500121);
    assert_eq!(rows[1]["id"], json!(ids[1]));
    let beta = get(&sim, &t, &format!("/beta{q}")).await;
    let rows = beta["value"].as_array().expect("value");
    assert_eq!(
        rows[0]["authenticationRequirement"],
        "multiFactorAuthentication"
    );
    assert_eq!(
        rows[0]["authenticationDetails"][1]["authenticationStepResultDetail"],
        "MFA successfully completed"
    );
    let failed = &rows[1]["authenticationDetails"];
    assert_eq!(
        failed[0]["authenticationStepRequirement"],
        "Primary authentication"
    );
    assert_eq!(failed[1]["authenticationMethod"], "Mobile app notification");
    assert_eq!(failed[1]["succeeded"], false);
    assert_eq!(
        failed[1]["authenticationStepResultDetail"],
        "MFA denied; user declined the authentication"
    );
    assert_eq!(
        rows[1]["status"]["failureReason"],
        "Authentication failed during strong authentication request."
    );
    // The ids are the same in both versions and on every read.
    assert_eq!(rows[1]["id"], json!(ids[1]));
    // The existing collector's filter still works.
    let audit = get(
        &sim,
        &t,
        &format!(
            "/v1.0/auditLogs/signIns?$filter={}&$top=1000",
            enc(&format!(
                "createdDateTime ge {} and status/errorCode eq 500121",
                iso(when)
            ))
        ),
    )
    .await;
    assert!(audit["value"]
        .as_array()
        .expect("value")
        .iter()
        .all(|r| r["status"]["errorCode"] == 500121));
}

#[tokio::test]
async fn the_control_endpoint_pushes_events_that_appear_after_the_delay() {
    let sim = start(|c| c.sign_in_delay = Duration::from_millis(1500)).await;
    let t = token(&sim).await;
    let user = sim.ground_truth().users[2].clone();
    let when = Utc::now() - chrono::Duration::minutes(5);
    let r = reqwest::Client::new()
        .post(format!("{}/_sim/events", sim.base_url()))
        .json(&json!({"scenarios": [
            {"kind": "user_fails_mfa", "user": user.upn, "count": 6, "at": iso(when), "code": 500121},
            {"kind": "user_reports_fraud", "user": user.id, "at": iso(when + chrono::Duration::minutes(4))},
        ]}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["scenarios"][0].as_array().map(Vec::len), Some(6));
    let q = format!(
        "/v1.0/auditLogs/signIns?$filter={}",
        enc(&format!(
            "createdDateTime ge {} and userId eq '{}'",
            iso(when),
            user.id
        ))
    );
    let now = get(&sim, &t, &q).await;
    assert_eq!(
        now["value"].as_array().map(Vec::len),
        Some(0),
        "not ingested yet"
    );
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let later = get(&sim, &t, &q).await;
    assert_eq!(later["value"].as_array().map(Vec::len), Some(7));
    // The ground truth: locked out, fraud reported and (seven pushes refused within three
    // minutes) prompt-bombed, until a success.
    let truth = sim.watch_truth(Utc::now(), &WatchThresholds::default());
    assert_eq!(
        truth.states_of(&user.id),
        ["locked-out", "mfa-fraud-reported", "mfa-prompt-bombing"]
    );
    sim.user_succeeds_mfa(&user.id, Utc::now());
    let truth = sim.watch_truth(
        Utc::now() + chrono::Duration::seconds(1),
        &WatchThresholds::default(),
    );
    assert!(truth.states_of(&user.id).is_empty());
    // Over HTTP too, and an unknown user is refused.
    let r = reqwest::Client::new()
        .post(format!("{}/_sim/watch-truth", sim.base_url()))
        .json(&json!({"at": iso(when + chrono::Duration::minutes(4))}))
        .send()
        .await
        .expect("post");
    let w: Value = r.json().await.expect("json");
    assert!(w["states"]
        .as_array()
        .expect("states")
        .iter()
        .any(|s| s["state"] == "locked-out" && s["user_id"] == json!(user.id)));
    let r = reqwest::Client::new()
        .post(format!("{}/_sim/events", sim.base_url()))
        .json(&json!({"scenarios": [{"kind": "user_succeeds_mfa", "user": "nobody@contoso.onmicrosoft.com", "at": iso(when)}]}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 404);
}

#[tokio::test]
async fn a_deleted_phone_changes_the_methods_and_logs_one_security_info_entry() {
    let sim = start(|_| {}).await;
    let t = token(&sim).await;
    let truth = sim.ground_truth();
    let user = truth
        .users
        .iter()
        .find(|u| u.methods.iter().any(|m| m == "mobilePhone"))
        .expect("a user with a phone")
        .clone();
    let when = Utc::now() - chrono::Duration::seconds(30);
    let ids = sim.user_deletes_phone(&user.upn, when);
    assert_eq!(ids.len(), 1);
    let after = sim.ground_truth();
    let now = after.users.iter().find(|u| u.id == user.id).expect("user");
    assert!(
        !now.methods.iter().any(|m| m.contains("Phone")),
        "{:?}",
        now.methods
    );
    let q = format!(
        "/v1.0/auditLogs/directoryAudits?$filter={}",
        enc(&format!(
            "activityDisplayName eq 'User deleted security info' and activityDateTime ge {}",
            iso(when - chrono::Duration::seconds(1))
        ))
    );
    let body = get(&sim, &t, &q).await;
    let rows = body["value"].as_array().expect("value");
    assert_eq!(rows.len(), 1);
    let e = &rows[0];
    assert_eq!(e["id"], json!(ids[0]));
    assert_eq!(e["category"], "UserManagement");
    assert_eq!(e["loggedByService"], "Authentication Methods");
    assert_eq!(e["operationType"], "Delete");
    assert_eq!(e["result"], "success");
    assert_eq!(e["initiatedBy"]["user"]["id"], json!(user.id));
    assert_eq!(e["targetResources"][0]["id"], json!(user.id));
    assert_eq!(e["targetResources"][0]["type"], "User");
    // The TAP entries the audit reads are still there.
    let taps = get(
        &sim,
        &t,
        &format!(
            "/v1.0/auditLogs/directoryAudits?$filter={}&$top=999",
            enc("activityDisplayName eq 'Admin registered security info'")
        ),
    )
    .await;
    assert!(taps["value"]
        .as_array()
        .expect("value")
        .iter()
        .any(|r| r["resultReason"] == "Admin registered temporary access pass method for user"));
}

#[tokio::test]
async fn pushed_audits_wait_for_their_delay() {
    let sim = start(|c| c.audit_delay = Duration::from_millis(800)).await;
    let t = token(&sim).await;
    let user = sim.ground_truth().users[3].clone();
    let mut a = graph_sim::SimAudit::security_info(
        &user.id,
        Utc::now(),
        graph_sim::activity::ADMIN_DELETED,
        "Admin deleted Phone method for user",
    );
    a.initiated_by = Some(graph_sim::AuditInitiator::App {
        id: "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9".into(),
        name: "Helpdesk automation".into(),
    });
    let ids = sim.push_directory_audits(vec![a]).expect("pushed");
    let q = format!(
        "/v1.0/auditLogs/directoryAudits?$filter={}",
        enc("activityDisplayName eq 'Admin deleted security info'")
    );
    assert_eq!(
        get(&sim, &t, &q).await["value"].as_array().map(Vec::len),
        Some(0)
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let body = get(&sim, &t, &q).await;
    let rows = body["value"].as_array().expect("value");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["id"], json!(ids[0]));
    assert_eq!(
        rows[0]["initiatedBy"]["app"]["displayName"],
        "Helpdesk automation"
    );
    assert!(rows[0]["initiatedBy"]["user"].is_null());
    assert!(sim
        .push_directory_audits(vec![graph_sim::SimAudit::security_info(
            "nobody@contoso.onmicrosoft.com",
            Utc::now(),
            graph_sim::activity::USER_DELETED,
            ""
        )])
        .is_err());
}

#[tokio::test]
async fn pushed_events_survive_the_ground_truth_json_and_its_states_agree() {
    let sim = start(|_| {}).await;
    let user = sim.ground_truth().users[4].clone();
    let when = Utc::now() - chrono::Duration::minutes(20);
    sim.user_fails_mfa(&user.id, 4, when, 50088);
    sim.user_deletes_phone(&user.id, when);
    let at = Utc::now();
    let truth = sim.ground_truth();
    let th = WatchThresholds::default();
    assert_eq!(
        truth.watch_states(at, &th),
        sim.watch_truth(at, &th),
        "no generated traffic: the same states"
    );
    assert_eq!(
        truth.watch_states(at, &th).states_of(&user.id),
        ["locked-out"]
    );
    let text = serde_json::to_string(&truth).expect("json");
    let back: graph_sim::GroundTruth = serde_json::from_str(&text).expect("loads");
    assert_eq!(back.audits.len(), 1);
    let path = std::env::temp_dir().join(format!("graph-sim-watch-{}.json", std::process::id()));
    std::fs::write(&path, &text).expect("write");
    let again = start(|c| c.tenant = TenantSource::Json(path.clone())).await;
    let _ = std::fs::remove_file(&path);
    let t = token(&again).await;
    let q = format!(
        "/beta/auditLogs/signIns?$filter={}",
        enc(&format!(
            "userId eq '{}' and status/errorCode eq 50088",
            user.id
        ))
    );
    let rows = get(&again, &t, &q).await;
    let rows = rows["value"].as_array().expect("value");
    assert_eq!(rows.len(), 4);
    assert_eq!(
        rows[0]["authenticationDetails"][1]["authenticationMethod"],
        "Text message"
    );
}

#[tokio::test]
async fn generated_traffic_has_a_ground_truth_in_reasonable_time() {
    let sim = start(|c| {
        c.traffic = Some(Traffic {
            per_minute: 10_000,
            seed: 2,
            start: Some(Utc::now() - chrono::Duration::minutes(30)),
        })
    })
    .await;
    let began = std::time::Instant::now();
    let truth = sim.watch_truth(Utc::now(), &WatchThresholds::default());
    assert!(
        began.elapsed() < Duration::from_secs(20),
        "{:?}",
        began.elapsed()
    );
    // 300,000 sign-ins of 60 users, 2 % unanswered pushes: every user has succeeded at MFA
    // within the last minutes, so nobody is left locked out for long.
    for s in &truth.states {
        assert!(s.since > Utc::now() - chrono::Duration::minutes(5), "{s:?}");
    }
}
