use super::*;
use crate::snapshot::ObjectId;
use crate::watch::SecurityInfoActivity;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .expect("date")
}

fn min(m: i64) -> Duration {
    Duration::minutes(m)
}

/// One simulated read: admits `rows` against the cutoff fixed at the start, then prunes; returns
/// the ids returned (what `read_stream` does with each page).
fn read(wm: &mut Watermark, overlap: Duration, rows: &[(&str, DateTime<Utc>)]) -> Vec<String> {
    let cutoff = wm.cutoff(overlap);
    let out = rows
        .iter()
        .filter(|(id, at)| wm.admit(id, *at, cutoff))
        .map(|(id, _)| id.to_string())
        .collect();
    wm.prune(overlap);
    out
}

#[test]
fn overlapping_reads_return_each_event_once_and_late_arrivals_within_the_overlap() {
    let base = t("2026-12-03T10:00:00Z");
    let overlap = min(10);
    let mut wm = Watermark {
        start: Some(base - min(60)),
        ..Watermark::default()
    };
    let first = read(&mut wm, overlap, &[("a", base), ("b", base + min(5))]);
    assert_eq!(first, vec!["a", "b"]);
    assert_eq!(wm.newest, Some(base + min(5)));
    // The next read starts `overlap` before the newest: it sees b again, and c which Graph
    // ingested late (older than b), and d.
    assert_eq!(wm.read_from(overlap), Some(base - min(5)));
    let second = read(
        &mut wm,
        overlap,
        &[
            ("b", base + min(5)),
            ("c", base + min(2)),
            ("d", base + min(7)),
        ],
    );
    assert_eq!(second, vec!["c", "d"], "b is not returned twice");
    // A late arrival older than the overlap is refused: that window is never re-read.
    let third = read(
        &mut wm,
        overlap,
        &[("e", base - min(4)), ("f", base + min(8))],
    );
    assert_eq!(third, vec!["f"]);
    // Re-reading the same rows returns nothing.
    let again = read(
        &mut wm,
        overlap,
        &[
            ("a", base),
            ("b", base + min(5)),
            ("c", base + min(2)),
            ("d", base + min(7)),
            ("f", base + min(8)),
        ],
    );
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn the_watermark_never_moves_back_and_keeps_only_the_overlaps_ids() {
    let base = t("2026-12-03T10:00:00Z");
    let overlap = min(10);
    let mut wm = Watermark::default();
    let mut returned = std::collections::HashSet::new();
    // 300 events a minute apart, read in overlapping windows of 20, each window also holding
    // the 10 events before it (already returned) and one late event 3 minutes back.
    for w in 0..15i64 {
        let mut rows: Vec<(String, DateTime<Utc>)> = ((w * 20 - 10).max(0)..(w * 20 + 20))
            .map(|i| (format!("e{i}"), base + min(i)))
            .collect();
        rows.push((format!("late{w}"), base + min(w * 20 + 17)));
        let before = wm.newest;
        let refs: Vec<(&str, DateTime<Utc>)> = rows.iter().map(|(i, a)| (i.as_str(), *a)).collect();
        for id in read(&mut wm, overlap, &refs) {
            assert!(returned.insert(id.clone()), "{id} returned twice");
        }
        assert!(wm.newest >= before, "the watermark moved back");
        assert!(
            wm.seen.len() <= 12,
            "only the overlap's ids are kept: {}",
            wm.seen.len()
        );
        let cutoff = wm.cutoff(overlap).expect("cutoff");
        assert!(wm.seen.values().all(|at| *at >= cutoff));
    }
    assert_eq!(returned.len(), 300 + 15);
    // An older event than anything kept, with a new id, is still refused.
    assert!(read(&mut wm, overlap, &[("old", base)]).is_empty());
    // Serialises and comes back the same (the store keeps it as JSON).
    let json = serde_json::to_string(&wm).expect("json");
    let back: Watermark = serde_json::from_str(&json).expect("back");
    assert_eq!(back, wm);
}

#[test]
fn a_stream_behind_continues_from_its_newest_event() {
    let base = t("2026-12-03T10:00:00Z");
    let wm = Watermark {
        newest: Some(base),
        behind: true,
        ..Watermark::default()
    };
    assert_eq!(wm.read_from(min(10)), Some(base));
    // The cutoff stays the overlap's: a late event is still taken once caught up.
    assert_eq!(wm.cutoff(min(10)), Some(base - min(10)));
    let first = Watermark {
        start: Some(base),
        ..Watermark::default()
    };
    assert_eq!(first.read_from(min(10)), Some(base));
}

#[test]
fn urls_filter_by_time_oldest_first_percent_encoded() {
    let since = t("2026-12-03T10:00:00Z");
    assert_eq!(
        sign_ins_url(since),
        "/beta/auditLogs/signIns?$filter=createdDateTime%20ge%202026-12-03T10%3A00%3A00Z&$orderby=createdDateTime%20asc&$top=1000"
    );
    assert_eq!(
        security_info_url(since),
        "/v1.0/auditLogs/directoryAudits?$filter=activityDateTime%20ge%202026-12-03T10%3A00%3A00Z%20and%20loggedByService%20eq%20%27Authentication%20Methods%27&$orderby=activityDateTime%20asc&$top=999"
    );
}

#[test]
fn the_watchers_share_of_the_reports_budget_is_bounded() {
    let o = WatchOptions::default();
    let share = o.reports_share(
        std::time::Duration::from_secs(120),
        &crate::graph::Pacing::default(),
    );
    // 6 pages of the 57 requests the client allows itself in 120 s.
    assert!((0.10..0.11).contains(&share), "{share}");
}

#[test]
fn the_documented_v1_fixture_converts_without_mfa_steps() {
    let raw = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/graph/fixtures/signIns_list.json"
    ))
    .expect("fixture");
    let page: wire::Page<wire::SignIn> = serde_json::from_str(&raw).expect("page");
    let events: Vec<_> = page
        .value
        .iter()
        .filter_map(convert::sign_in_event)
        .collect();
    assert_eq!(events.len(), page.value.len());
    let e = &events[0];
    assert_eq!(&*e.id, "66ea54eb-6301-4ee5-be62-ff5a759b0100");
    assert_eq!(e.created, t("2020-03-13T19:15:41.6195833Z"));
    assert_eq!(
        e.user,
        ObjectId::parse("26be570a-ae82-4189-b4e2-a37c6808512d").expect("id")
    );
    assert_eq!(&*e.upn, "testaccount1@contoso.com");
    assert_eq!(e.error_code, 0);
    assert!(!e.mfa_required, "v1.0 has no authenticationRequirement");
    assert!(e.steps.is_empty());
}

/// Graph's beta `List signIns` example 1 (docs-contrib `api-reference/beta/api/signin-list.md`),
/// shortened, with its duplicate keys (`homeTenantId`, `uniqueTokenIdentifier`,
/// `isTenantRestricted`) kept.
const BETA_EXAMPLE: &str = r#"{
  "@odata.context": "https://graph.microsoft.com/beta/$metadata#auditLogs/signIns",
  "value": [{
    "id":"1691d37b-8579-43a7-966a-0f35583c1300",
    "createdDateTime":"2021-06-30T16:34:32Z",
    "userDisplayName":"Test contoso",
    "userPrincipalName":"testaccount1@contoso.com",
    "userId":"26be570a-1111-5555-b4e2-a37c6808512d",
    "homeTenantId": "4f7a7bc2-28e2-46a3-b90e-5ade5bc90138",
    "isTenantRestricted": false,
    "homeTenantId":"99081087-73c4-48d1-a112-f60ff75114f7",
    "authenticationMethodsUsed":[],
    "authenticationRequirement":"singleFactorAuthentication",
    "uniqueTokenIdentifier": "ZTE0OTk3YTQtZjg5Mi00YjBiLWIwNTEtZmViZTA1YzJhNDli",
    "uniqueTokenIdentifier": "ZTE0OTk3YTQtZjg5Mi00YjBiLWIwNTEtZmViZTA1YzJhNDli",
    "isTenantRestricted":false,
    "status":{
      "errorCode":50126,
      "failureReason":"Error validating credentials due to invalid username or password.",
      "additionalDetails":"The user didn't enter the right credentials. \u00a0It's expected to see some number of these errors in your logs due to users making mistakes."
    },
    "authenticationDetails":[{
      "authenticationStepDateTime":"2021-06-30T16:34:32Z",
      "authenticationMethod":"Password",
      "authenticationMethodDetail":"Password in the cloud",
      "succeeded":false,
      "authenticationStepResultDetail":"Invalid username or password or Invalid on-premise username or password.",
      "authenticationStepRequirement":"Primary authentication"
    }],
    "authenticationRequirementPolicies":[]
  }]
}"#;

#[test]
fn the_beta_example_converts_and_its_password_step_is_not_an_mfa_step() {
    let page: wire::Page<wire::SignIn> = serde_json::from_str(BETA_EXAMPLE).expect("page");
    let e = convert::sign_in_event(&page.value[0]).expect("event");
    assert_eq!(e.error_code, 50126);
    assert!(!e.mfa_required);
    assert!(e.steps.is_empty(), "{:?}", e.steps);
    assert!(
        e.reason.starts_with("Error validating credentials"),
        "{}",
        e.reason
    );
    assert!(
        e.reason.contains("didn't enter the right credentials"),
        "{}",
        e.reason
    );
}

#[test]
fn mfa_steps_come_from_authentication_details() {
    // The authenticationDetail properties (docs-contrib beta `authenticationdetail.md`); result
    // details as Graph words them for a denied push and a success.
    let raw = r#"{
      "id": "s1", "createdDateTime": "2026-12-03T10:00:00Z",
      "userId": "26be570a-ae82-4189-b4e2-a37c6808512d", "userPrincipalName": "bob@contoso.com",
      "authenticationRequirement": "multiFactorAuthentication",
      "status": {"errorCode": 500121, "failureReason": "Authentication failed during strong authentication request.", "additionalDetails": null},
      "authenticationDetails": [
        {"authenticationMethod": "Password", "succeeded": true, "authenticationStepRequirement": "Primary authentication",
         "authenticationStepResultDetail": "Correct password"},
        {"authenticationMethod": "Mobile app notification", "succeeded": false,
         "authenticationStepRequirement": "Multifactor authentication",
         "authenticationStepResultDetail": "MFA denied; user declined the authentication"}
      ]
    }"#;
    let w: wire::SignIn = serde_json::from_str(raw).expect("sign-in");
    let e = convert::sign_in_event(&w).expect("event");
    assert!(e.mfa_required);
    assert_eq!(e.error_code, 500121);
    assert_eq!(e.steps.len(), 1);
    assert_eq!(&*e.steps[0].method, "Mobile app notification");
    assert!(!e.steps[0].succeeded);
    assert_eq!(
        &*e.steps[0].detail,
        "MFA denied; user declined the authentication"
    );
    assert!(!e.mfa_succeeded());
    // No id, no time or no user id: not an event.
    for broken in [
        r#"{"createdDateTime": "2026-12-03T10:00:00Z", "userId": "26be570a-ae82-4189-b4e2-a37c6808512d"}"#,
        r#"{"id": "x", "userId": "26be570a-ae82-4189-b4e2-a37c6808512d"}"#,
        r#"{"id": "x", "createdDateTime": "2026-12-03T10:00:00Z", "userId": "not-a-guid"}"#,
    ] {
        let w: wire::SignIn = serde_json::from_str(broken).expect("parses");
        assert!(convert::sign_in_event(&w).is_none(), "{broken}");
    }
}

const BOB: &str = "1f0e98f5-3161-4c6b-9b50-d488572f2bb7";
const ADMIN: &str = "9a0e98f5-3161-4c6b-9b50-d488572f2bb7";

fn audit(activity: &str, reason: &str, initiator: &str, result: &str) -> wire::DirectoryAudit {
    serde_json::from_str(&format!(
        r#"{{"id": "Authentication Methods_{activity}_{initiator}", "category": "UserManagement",
            "activityDateTime": "2026-12-03T10:00:00Z", "activityDisplayName": "{activity}",
            "loggedByService": "Authentication Methods", "result": "{result}", "resultReason": "{reason}",
            "initiatedBy": {{"user": {{"id": "{initiator}", "userPrincipalName": "someone@contoso.com"}}}},
            "targetResources": [{{"id": "{BOB}", "Type": "User", "userPrincipalName": "bob@contoso.com"}}]}}"#
    ))
    .expect("audit event")
}

#[test]
fn security_info_activities_are_named_and_a_tap_is_the_audits_own_test() {
    let e = convert::security_info_event(&audit(
        "User deleted security info",
        "User deleted Mobile Phone SMS",
        BOB,
        "success",
    ))
    .expect("event");
    assert_eq!(e.activity, SecurityInfoActivity::Deleted);
    assert!(!e.by_admin, "bob deleted his own");
    assert_eq!(e.user, ObjectId::parse(BOB).expect("id"));
    assert_eq!(&*e.upn, "bob@contoso.com");
    assert_eq!(e.method.as_deref(), Some("Mobile Phone SMS"));
    assert_eq!(&*e.initiated_by, "someone@contoso.com");

    let tap = convert::security_info_event(&audit(
        "Admin registered security info",
        "Admin registered temporary access pass method for user",
        ADMIN,
        "success",
    ))
    .expect("event");
    assert_eq!(tap.activity, SecurityInfoActivity::TapIssued);
    assert!(tap.by_admin);
    assert_eq!(tap.method.as_deref(), Some("temporary access pass"));

    for (name, want) in [
        (
            "User registered security info",
            SecurityInfoActivity::Registered,
        ),
        (
            "Admin registered security info",
            SecurityInfoActivity::Registered,
        ),
        ("Admin deleted security info", SecurityInfoActivity::Deleted),
        (
            "User changed default security info",
            SecurityInfoActivity::DefaultChanged,
        ),
        ("User updated security info", SecurityInfoActivity::Updated),
        (
            "User started security info registration",
            SecurityInfoActivity::Other,
        ),
    ] {
        let e = convert::security_info_event(&audit(name, "", BOB, "success")).expect(name);
        assert_eq!(e.activity, want, "{name}");
        assert_eq!(e.method, None);
    }
    // Someone else (not "Admin …" in the name) acting on bob is still an admin action.
    let other = convert::security_info_event(&audit(
        "User registered security info",
        "",
        ADMIN,
        "success",
    ))
    .expect("event");
    assert!(other.by_admin);
    // A failed attempt changes nothing.
    assert!(
        convert::security_info_event(&audit("User deleted security info", "", BOB, "failure"))
            .is_none()
    );
}

#[tokio::test]
async fn a_failed_read_names_its_endpoint_and_hands_back_no_watermark() {
    let mut cfg = crate::graph::ClientConfig::new(
        url::Url::parse("http://127.0.0.1:9").expect("url"),
        url::Url::parse("http://127.0.0.1:9").expect("url"),
        "contoso.onmicrosoft.com",
        "00000000-0000-0000-0000-000000000001",
    );
    cfg.max_retries = 0;
    cfg.request_timeout = std::time::Duration::from_secs(2);
    let client = GraphClient::new(
        cfg,
        crate::graph::Credential::Secret(crate::secret::Secret::new("x")),
    )
    .expect("client");
    let before = Watermark {
        newest: Some(t("2026-12-03T10:00:00Z")),
        ..Watermark::default()
    };
    let now = t("2026-12-03T10:05:00Z");
    let err = read_sign_ins(&client, &before, &WatchOptions::default(), now)
        .await
        .expect_err("nothing listens there");
    assert_eq!(err.endpoint(), SIGN_INS_ENDPOINT);
    assert!(err.to_string().starts_with("watchSignIns: "), "{err}");
    let err = read_security_info(&client, &before, &WatchOptions::default(), now)
        .await
        .expect_err("nothing listens there");
    assert_eq!(err.endpoint(), SECURITY_INFO_ENDPOINT);
}

#[test]
fn a_403_is_typed_by_its_cause() {
    let http = |code: &str| GraphError::Http {
        endpoint: SIGN_INS_ENDPOINT.into(),
        status: 403,
        code: code.into(),
        message: "no".into(),
        request_id: None,
    };
    assert!(matches!(
        WatchError::from_graph(
            SIGN_INS_ENDPOINT,
            http("Authentication_RequestFromNonPremiumTenantOrB2CTenant")
        ),
        WatchError::Unlicensed { .. }
    ));
    let e = WatchError::from_graph(
        SECURITY_INFO_ENDPOINT,
        http("Authentication_MSGraphPermissionMissing"),
    );
    assert!(matches!(e, WatchError::Forbidden { .. }));
    assert!(e.to_string().contains("AuditLog.Read.All"), "{e}");
    assert!(matches!(
        WatchError::from_graph(
            SIGN_INS_ENDPOINT,
            GraphError::Throttled {
                endpoint: "x".into(),
                attempts: 7
            }
        ),
        WatchError::Failed { .. }
    ));
}

/// A scripted Graph: the token endpoint, then each GET answered by the next scripted
/// (status, body), every GET's path and query kept.
struct Scripted {
    base: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    answers: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<(u16, String)>>>,
}

async fn scripted() -> Scripted {
    use axum::http::{Method, StatusCode, Uri};
    let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let answers = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
    let (reqs, ans) = (requests.clone(), answers.clone());
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri| {
        let (reqs, ans) = (reqs.clone(), ans.clone());
        async move {
            if method == Method::POST {
                return (
                    StatusCode::OK,
                    r#"{"token_type":"Bearer","expires_in":3599,"access_token":"x.e30.x"}"#
                        .to_string(),
                );
            }
            reqs.lock().expect("lock").push(uri.to_string());
            let (status, body) = ans
                .lock()
                .expect("lock")
                .pop_front()
                .unwrap_or((500, "{}".into()));
            (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                body,
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Scripted {
        base: format!("http://{addr}"),
        requests,
        answers,
    }
}

impl Scripted {
    fn client(&self) -> GraphClient {
        let url = url::Url::parse(&self.base).expect("url");
        let mut cfg = crate::graph::ClientConfig::new(
            url.clone(),
            url,
            "contoso.onmicrosoft.com",
            "00000000-0000-0000-0000-000000000001",
        );
        cfg.max_retries = 0;
        GraphClient::new(
            cfg,
            crate::graph::Credential::Secret(crate::secret::Secret::new("x")),
        )
        .expect("client")
    }

    fn answer(&self, status: u16, body: String) {
        self.answers.lock().expect("lock").push_back((status, body));
    }

    fn page(&self, rows: &[(&str, &str)], next: Option<&str>) {
        let value: Vec<serde_json::Value> = rows
            .iter()
            .map(|(id, at)| {
                serde_json::json!({
                    "id": id, "createdDateTime": at,
                    "userId": "26be570a-ae82-4189-b4e2-a37c6808512d",
                    "userPrincipalName": "bob@contoso.com",
                    "status": {"errorCode": 500121}
                })
            })
            .collect();
        let mut body = serde_json::json!({ "value": value });
        if let Some(n) = next {
            body["@odata.nextLink"] =
                format!("{}/beta/auditLogs/signIns?$skiptoken={n}", self.base).into();
        }
        self.answer(200, body.to_string());
    }

    fn requested(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

#[tokio::test]
async fn a_run_stops_at_its_page_cap_and_the_next_continues_where_it_stopped() {
    let g = scripted().await;
    let client = g.client();
    let options = WatchOptions {
        max_sign_in_pages: 2,
        ..WatchOptions::default()
    };
    let now = t("2026-12-03T10:10:00Z");
    g.page(
        &[("a", "2026-12-03T10:00:00Z"), ("b", "2026-12-03T10:01:00Z")],
        Some("2"),
    );
    g.page(&[("c", "2026-12-03T10:02:00Z")], Some("3"));
    let first = read_sign_ins(&client, &Watermark::default(), &options, now)
        .await
        .expect("read");
    let ids: Vec<&str> = first.events.iter().map(|e| &*e.id).collect();
    assert_eq!(ids, vec!["a", "b", "c"]);
    assert!(first.truncated && first.watermark.behind);
    assert_eq!(first.pages, 2, "the third page is left for the next run");
    assert_eq!(
        g.requested()[0],
        "/beta/auditLogs/signIns?$filter=createdDateTime%20ge%202026-12-03T09%3A10%3A00Z&$orderby=createdDateTime%20asc&$top=1000",
        "the first read looks back first_lookback"
    );

    // Behind: from the newest event, no overlap; c comes again and is not returned twice.
    g.page(
        &[("c", "2026-12-03T10:02:00Z"), ("d", "2026-12-03T10:03:00Z")],
        None,
    );
    let second = read_sign_ins(&client, &first.watermark, &options, now)
        .await
        .expect("read");
    assert!(
        g.requested()[2].contains("ge%202026-12-03T10%3A02%3A00Z"),
        "{:?}",
        g.requested()
    );
    assert_eq!(second.events.len(), 1);
    assert_eq!(&*second.events[0].id, "d");
    assert!(!second.truncated && !second.watermark.behind);

    // Caught up: the overlap again. A refusal hands back nothing to keep.
    g.answer(
        403,
        r#"{"error":{"code":"Authentication_RequestFromNonPremiumTenantOrB2CTenant","message":"Neither tenant is B2C or tenant doesn't have premium license"}}"#.into(),
    );
    let err = read_sign_ins(&client, &second.watermark, &options, now)
        .await
        .expect_err("refused");
    assert!(
        matches!(
            err,
            WatchError::Unlicensed {
                endpoint: SIGN_INS_ENDPOINT,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        g.requested()[3].contains("ge%202026-12-03T09%3A48%3A00Z"),
        "{:?}",
        g.requested()
    );
    assert_eq!(
        g.requested().len(),
        4,
        "a licence 403 is not retried within a run"
    );
    // The next run reads the same window again and returns what the refused one did not.
    g.page(
        &[("d", "2026-12-03T10:03:00Z"), ("e", "2026-12-03T10:04:00Z")],
        None,
    );
    let third = read_sign_ins(&client, &second.watermark, &options, now)
        .await
        .expect("read");
    assert_eq!(third.events.len(), 1);
    assert_eq!(&*third.events[0].id, "e");
    assert_eq!(third.events[0].error_code, 500121);
}

#[tokio::test]
async fn an_event_from_the_future_is_left_for_a_later_run() {
    let g = scripted().await;
    let client = g.client();
    let now = t("2026-12-03T10:10:00Z");
    g.page(
        &[("a", "2026-12-03T10:00:00Z"), ("z", "2027-01-01T00:00:00Z")],
        None,
    );
    let read = read_sign_ins(
        &client,
        &Watermark::default(),
        &WatchOptions::default(),
        now,
    )
    .await
    .expect("read");
    assert_eq!(read.events.len(), 1);
    assert_eq!(read.watermark.newest, Some(t("2026-12-03T10:00:00Z")));
}

#[tokio::test]
async fn rows_not_oldest_first_are_read_past_the_cap_so_none_is_skipped() {
    let g = scripted().await;
    let client = g.client();
    let options = WatchOptions {
        max_sign_in_pages: 1,
        ..WatchOptions::default()
    };
    let now = t("2026-12-03T10:10:00Z");
    // Newest first, Graph's default order, as if `$orderby` were ignored.
    g.page(
        &[("c", "2026-12-03T10:02:00Z"), ("b", "2026-12-03T10:01:00Z")],
        Some("2"),
    );
    g.page(&[("a", "2026-12-03T10:00:00Z")], None);
    let read = read_sign_ins(&client, &Watermark::default(), &options, now)
        .await
        .expect("read");
    assert_eq!(read.events.len(), 3);
    assert_eq!(read.pages, 2);
    assert!(!read.truncated && !read.watermark.behind);
    assert_eq!(read.watermark.newest, Some(t("2026-12-03T10:02:00Z")));
}

#[tokio::test]
async fn the_watcher_takes_its_tokens_from_the_audits_reports_bucket() {
    let g = scripted().await;
    let url = url::Url::parse(&g.base).expect("url");
    let mut cfg = crate::graph::ClientConfig::new(
        url.clone(),
        url,
        "contoso.onmicrosoft.com",
        "00000000-0000-0000-0000-000000000001",
    );
    cfg.max_retries = 0;
    // 2 requests a window, windows 20 times shorter: a burst of 2, then one every 0.25 s.
    cfg.pacing = crate::graph::Pacing {
        reports_per_10s: 2.0,
        headroom: 1.0,
        ..crate::graph::Pacing::default()
    }
    .scaled(20.0);
    let audit = GraphClient::new(
        cfg,
        crate::graph::Credential::Secret(crate::secret::Secret::new("x")),
    )
    .expect("client");
    let watcher = audit.clone();
    // The audit's registration sweep spends the burst.
    for _ in 0..2 {
        g.answer(200, r#"{"value": []}"#.into());
        audit
            .get_json::<wire::Page<serde_json::Value>>(
                ThrottleClass::Reports,
                "userRegistrationDetails",
                "/beta/reports/authenticationMethods/userRegistrationDetails",
            )
            .await
            .expect("report page");
    }
    g.page(&[("a", "2026-12-03T10:00:00Z")], None);
    let started = std::time::Instant::now();
    read_sign_ins(
        &watcher,
        &Watermark::default(),
        &WatchOptions::default(),
        t("2026-12-03T10:10:00Z"),
    )
    .await
    .expect("read");
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(200),
        "the watcher's page waited for the shared bucket: {waited:?}"
    );
}

#[test]
fn caps_derived_from_a_share_of_the_reports_budget_keep_up_with_10000_sign_ins_a_minute() {
    let pacing = crate::graph::Pacing::default();
    let interval = std::time::Duration::from_secs(120);
    let o = WatchOptions::for_share(interval, &pacing, 0.5);
    // 57 requests per 120 s, half of it: 28 pages, 2 of them the directory audits.
    assert_eq!((o.max_sign_in_pages, o.max_audit_pages), (26, 2));
    let per_minute = f64::from(o.max_sign_in_pages) * 1000.0 * 60.0 / 120.0;
    assert!(per_minute >= 10_000.0, "{per_minute}");
    let share = o.reports_share(interval, &pacing);
    assert!(share <= 0.5, "{share}");
    // The old fixed cap read 2,000 a minute; a tiny share still reads a page a run.
    assert_eq!(WatchOptions::default().max_sign_in_pages, 4);
    assert_eq!(
        WatchOptions::for_share(interval, &pacing, 0.01).max_sign_in_pages,
        1
    );
    // The time scale does not change the pages of a run.
    assert_eq!(
        WatchOptions::for_share(interval, &pacing.scaled(100.0), 0.5),
        o
    );
}

/// A watermark at `newest` holding `n` ids within the overlap (the window's rows).
fn busy(newest: DateTime<Utc>, n: usize) -> Watermark {
    let mut wm = Watermark {
        newest: Some(newest),
        ..Watermark::default()
    };
    for i in 0..n {
        wm.seen.insert(
            format!("seen-{i}"),
            newest - Duration::milliseconds(i as i64),
        );
    }
    wm
}

#[test]
fn the_overlap_is_swept_only_when_reading_it_whole_costs_more_pages() {
    let newest = t("2026-12-03T10:00:00Z");
    let o = WatchOptions::default();
    let codes = crate::watch::classify::ERROR_CODES.len();
    // The first read, and a quiet tenant: the window whole is one page.
    assert_eq!(
        choose_sweep(&Watermark::default(), &o, 0),
        SweepChoice::Whole
    );
    assert_eq!(choose_sweep(&busy(newest, 300), &o, 0), SweepChoice::Whole);
    // As many pages whole as sweep queries: whole (it also sees late successes of anyone).
    assert_eq!(
        choose_sweep(&busy(newest, codes * 1000), &o, 0),
        SweepChoice::Whole
    );
    assert_eq!(
        choose_sweep(&busy(newest, codes * 1000 + 1), &o, 0),
        SweepChoice::Sweep
    );
    // Each tracked user is one more query, swept for only while the sweep stays cheaper.
    let just = busy(newest, codes * 1000 + 1);
    assert_eq!(sweep_user_count(&just, &o, 5), 0);
    assert_eq!(choose_sweep(&just, &o, 5), SweepChoice::Sweep);
    let more = busy(newest, (codes + 3) * 1000);
    assert_eq!(sweep_user_count(&more, &o, 5), 2);
    assert_eq!(
        sweep_user_count(&busy(newest, 150_000), &o, 500),
        20,
        "the cap"
    );
    // 10,000 a minute, a 15-min overlap: 150 pages whole against a few queries.
    let heavy = busy(newest, 150_000);
    assert_eq!(choose_sweep(&heavy, &o, 20), SweepChoice::Sweep);
    // An audit running defers the sweep, a few runs at most.
    let auditing = o.while_auditing();
    assert_eq!(choose_sweep(&heavy, &auditing, 20), SweepChoice::Deferred);
    let mut late = heavy.clone();
    late.sweep.deferred = MAX_DEFERRED_SWEEPS - 1;
    assert_eq!(choose_sweep(&late, &auditing, 20), SweepChoice::Deferred);
    late.sweep.deferred = MAX_DEFERRED_SWEEPS;
    assert_eq!(choose_sweep(&late, &auditing, 20), SweepChoice::Sweep);
}

#[test]
fn while_auditing_the_budget_is_small_and_the_sweep_deferred() {
    let pacing = crate::graph::Pacing::default();
    let o = WatchOptions::for_share(std::time::Duration::from_secs(120), &pacing, 0.5);
    assert_eq!(
        (o.max_sign_in_pages, o.sweep_pages, o.defer_sweep),
        (26, 4, false)
    );
    let a = o.while_auditing();
    assert_eq!(
        (
            a.max_sign_in_pages,
            a.max_audit_pages,
            a.sweep_pages,
            a.defer_sweep
        ),
        (2, 1, 1, true)
    );
    assert_eq!(a.overlap, o.overlap);
}

#[test]
fn sweep_urls_filter_the_window_by_code_or_user_oldest_first() {
    let (since, until) = (t("2026-12-03T09:45:00Z"), t("2026-12-03T10:00:00Z"));
    assert_eq!(
        sweep_url(&SweepFilter::Code(500121), since, until),
        "/beta/auditLogs/signIns?$filter=createdDateTime%20ge%202026-12-03T09%3A45%3A00Z%20and%20createdDateTime%20le%202026-12-03T10%3A00%3A00Z%20and%20status%2FerrorCode%20eq%20500121&$orderby=createdDateTime%20asc&$top=1000"
    );
    let user = sweep_url(
        &SweepFilter::User("26be570a-ae82-4189-b4e2-a37c6808512d".into()),
        since,
        until,
    );
    assert!(
        user.contains("%20and%20userId%20eq%20%2726be570a-ae82-4189-b4e2-a37c6808512d%27&"),
        "{user}"
    );
    // A quote cannot end the literal.
    assert!(sweep_url(&SweepFilter::User("a'b".into()), since, until).contains("%27a%27%27b%27"));
}

#[tokio::test]
async fn a_busy_run_reads_fresh_then_sweeps_and_resumes_a_sweep_cut_by_its_budget() {
    let g = scripted().await;
    let client = g.client();
    let newest = t("2026-12-03T10:00:00Z");
    let now = t("2026-12-03T10:02:00Z");
    let from = busy(newest, 20_000);
    let codes = crate::watch::classify::ERROR_CODES;
    let options = WatchOptions {
        max_sign_in_pages: 4,
        sweep_pages: 2,
        ..WatchOptions::default()
    };
    let bob = "26be570a-ae82-4189-b4e2-a37c6808512d".to_string();
    // Fresh: one page from `newest`; the id at that second known, the next new.
    g.page(
        &[
            ("seen-0", "2026-12-03T10:00:00Z"),
            ("f1", "2026-12-03T10:01:00Z"),
        ],
        None,
    );
    // Sweep: the first code finds a late failure and a known row; the second code has two
    // pages, the budget (4 - 1 fresh = 3) stops after its first.
    g.page(
        &[
            ("seen-5", "2026-12-03T09:59:59Z"),
            ("late1", "2026-12-03T09:50:00Z"),
        ],
        None,
    );
    g.page(&[("late2", "2026-12-03T09:51:00Z")], Some("2"));
    g.page(&[("late3", "2026-12-03T09:52:00Z")], Some("3"));
    let first = read_sign_ins_for(&client, &from, &options, std::slice::from_ref(&bob), now)
        .await
        .expect("read");
    let ids: Vec<&str> = first.events.iter().map(|e| &*e.id).collect();
    assert_eq!(ids, vec!["late1", "late2", "late3", "f1"], "oldest first");
    let req = g.requested();
    assert_eq!(req.len(), 4);
    assert!(
        req[0].contains("ge%202026-12-03T10%3A00%3A00Z&"),
        "{}",
        req[0]
    );
    assert!(
        req[1].contains("ge%202026-12-03T09%3A45%3A00Z%20and%20createdDateTime%20le%202026-12-03T10%3A00%3A00Z%20and%20status%2FerrorCode%20eq%20500121"),
        "{}",
        req[1]
    );
    assert_eq!(
        (first.pages, first.sweep.pages, first.sweep.late),
        (4, 3, 3)
    );
    let w = &first.watermark;
    assert_eq!(w.newest, Some(t("2026-12-03T10:01:00Z")));
    // The second code resumes from its last row; the other codes and bob still to do.
    assert_eq!(w.sweep.pending.len(), codes.len() - 1 + 1);
    assert_eq!(w.sweep.pending[0].filter, SweepFilter::Code(codes[1].code));
    assert_eq!(w.sweep.pending[0].resume, Some(t("2026-12-03T09:52:00Z")));
    assert_eq!(
        w.sweep.pending.last().map(|q| &q.filter),
        Some(&SweepFilter::User(bob.clone()))
    );
    assert_eq!(first.sweep.pending as usize, w.sweep.pending.len());

    // The next run: fresh, then the sweep goes on where it stopped (window of the new newest),
    // late3 again is not returned twice.
    g.page(&[("f2", "2026-12-03T10:02:00Z")], None);
    g.page(
        &[
            ("late3", "2026-12-03T09:52:00Z"),
            ("late4", "2026-12-03T09:53:00Z"),
        ],
        None,
    );
    for _ in 2..codes.len() {
        g.page(&[], None);
    }
    g.page(&[("bob-ok", "2026-12-03T09:58:00Z")], None);
    let options = WatchOptions {
        max_sign_in_pages: 20,
        ..options
    };
    let second = read_sign_ins_for(&client, w, &options, &[bob], now)
        .await
        .expect("read");
    let ids: Vec<&str> = second.events.iter().map(|e| &*e.id).collect();
    assert_eq!(ids, vec!["late4", "bob-ok", "f2"]);
    let req = g.requested();
    assert!(
        req[5].contains(
            "ge%202026-12-03T09%3A52%3A00Z%20and%20createdDateTime%20le%202026-12-03T10%3A01%3A00Z"
        ),
        "{}",
        req[5]
    );
    assert!(
        req.last().is_some_and(|u| u.contains("userId%20eq")),
        "{req:?}"
    );
    assert!(second.watermark.sweep.pending.is_empty());
    assert_eq!(second.watermark.sweep.completed, 1);

    // A failed sweep page hands back nothing: the caller's watermark stays.
    g.page(&[("f3", "2026-12-03T10:02:30Z")], None);
    g.answer(500, r#"{"error":{"code":"x","message":"down"}}"#.into());
    let options = WatchOptions {
        max_sign_in_pages: 4,
        ..options
    };
    let err = read_sign_ins_for(&client, &second.watermark, &options, &[], now).await;
    assert!(err.is_err());
}
