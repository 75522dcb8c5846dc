//! The helpdesk's pages (issue 13) in a real browser: Debian's headless Chromium against the
//! daemon binary on graph-sim. Every page loads with no console error, CSP violation or failed
//! request, fits a 1366 px screen, works with JavaScript off, and shows what the simulator's
//! tenant holds; a display name made of HTML stays text everywhere; the CSV holds what the API
//! counts; a lockout shows on the overview and on the user's page with the way back in.
//!
//! The pages' ids and attributes are the DOM contract of issue 13 (RULES13.md). Screenshots of
//! the overview and a user page go to target/screenshots/, and to docs/screenshots/ with
//! UPDATE_SCREENSHOTS=1.

use std::path::{Path, PathBuf};

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing;
use chrono::Utc;
use graph_sim::Profile;
use mfa_auditor::state::{Store, StoredUser};
use serde_json::Value;

mod common;

use common::browser::{self, Browser};
use common::daemon::{get, wait_for, write_config, Daemon};

/// The harness itself, against pages that exist whatever the pages' state: it sees a console
/// error, an uncaught exception, a CSP violation and a missing asset where a small server plants
/// them, and none on the daemon's status page and its HTML 404 page; JavaScript off really is
/// off; the print stylesheet hides the navigation; a screenshot is a PNG.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_harness_sees_what_a_page_does_wrong() {
    let Some(chromium) = browser::chromium() else {
        return;
    };
    let csp = "default-src 'none'; script-src 'self'; style-src 'self'";
    let html = |body: &'static str| {
        move || async move {
            (
                [
                    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                    (header::CONTENT_SECURITY_POLICY, csp),
                ],
                format!(
                    "<!doctype html><html><head><title>t</title></head><body>{body}</body></html>"
                ),
            )
                .into_response()
        }
    };
    let js = |code: &'static str| {
        move || async move { ([(header::CONTENT_TYPE, "text/javascript")], code).into_response() }
    };
    let app = axum::Router::new()
        .route("/clean", routing::get(html("<h1>fine</h1><p id='p' data-x='1'>a &lt;b&gt;</p><p>c</p>")))
        .route("/console", routing::get(html("<script src='/console.js'></script>")))
        .route("/console.js", routing::get(js("console.error('planted')")))
        .route("/throw", routing::get(html("<script src='/throw.js'></script>")))
        .route("/throw.js", routing::get(js("throw new Error('planted')")))
        .route("/inline", routing::get(html("<script>window.__inline = 1</script>")))
        .route("/missing", routing::get(html("<img src='/nothing.png' alt=''>")))
        .route(
            "/wide",
            routing::get(html("<table><tr><td><pre>xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx</pre></td></tr></table>")),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let planted = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let b = Browser::launch(&chromium).await;
    assert_eq!(b.open(&format!("{planted}/clean")).await, 200);
    b.assert_clean("a clean page").await;
    assert_eq!(b.text("#p").await.as_deref(), Some("a <b>"));
    assert_eq!(b.attr("#p", "data-x").await.as_deref(), Some("1"));
    assert_eq!(b.count("p").await, 2);
    assert_eq!(b.texts("p").await, ["a <b>", "c"]);
    b.assert_fits("a clean page").await;
    assert!(b.scripts_run().await, "scripts run by default");
    for (path, what) in [
        ("console", "planted"),
        ("throw", "planted"),
        ("inline", "Content Security Policy"),
        ("missing", "nothing.png"),
    ] {
        b.open(&format!("{planted}/{path}")).await;
        let problems = b.take_problems().await;
        assert!(
            problems.iter().any(|p| p.contains(what)),
            "/{path}: {what} not among {problems:#?}"
        );
    }
    b.open(&format!("{planted}/wide")).await;
    let (scroll, inner) = b.widths().await;
    assert!(
        scroll > inner,
        "a wide page is seen as such: {scroll} ≤ {inner}"
    );
    b.take_problems().await;

    // The daemon's pages that exist whatever the pages' state: `/` and an HTML 404.
    let sim = common::sim(50, 3, Profile::Realistic, |_| {}).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    write_config(&config, &sim, &dir.path().join("state.db"), 0, "");
    let daemon = Daemon::start(&config, sim.client_secret());
    let base = daemon.base.clone();
    assert_eq!(b.open(&format!("{base}/")).await, 200);
    b.assert_clean("/").await;
    b.assert_fits("/").await;
    let shot = target().join("screenshots/harness-status.png");
    b.screenshot(&shot).await;
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");

    b.disable_javascript(true).await;
    assert_eq!(b.open(&format!("{base}/users/nobody@x")).await, 404);
    assert!(!b.scripts_run().await, "JavaScript is off");
    b.assert_clean("the 404 page, JavaScript off").await;
    assert_eq!(b.count("h1").await, 1);
    assert_eq!(b.count("main#main").await, 1);
    b.assert_fits("the 404 page").await;
    // The header's search form, typed into and submitted with JavaScript off.
    b.type_into("#q", "ann ö&").await;
    b.submit("#q", "/users?q=").await;
    assert!(
        b.url().await.ends_with("/users?q=ann+%C3%B6%26"),
        "{}",
        b.url().await
    );
    b.take_problems().await;
    b.disable_javascript(false).await;
    assert_eq!(b.open(&format!("{base}/rules/unknown")).await, 404);
    assert!(b.scripts_run().await, "JavaScript is on again");
    b.assert_clean("the 404 page").await;
    b.print_media(true).await;
    assert!(
        b.hidden("header nav").await,
        "printing hides the navigation"
    );
    b.print_media(false).await;
    assert!(!b.hidden("header nav").await, "the screen shows it");
    b.close().await;
    drop(daemon);
}

/// A display name made of HTML: it must stay text on every page.
const HOSTILE: &str = "<script>window.__pwned=1</script>\"'&<img src=x onerror=window.__pwned=2>";

/// Panics unless nothing in the page ran or was made from the hostile name.
async fn assert_not_injected(b: &Browser, what: &str) {
    assert_eq!(
        b.json("window.__pwned ?? 0").await,
        0,
        "{what}: a script ran"
    );
    assert_eq!(
        b.count("img[src='x']").await,
        0,
        "{what}: an <img> was made"
    );
    assert_eq!(
        b.count("script:not([src])").await,
        0,
        "{what}: an inline <script> was made"
    );
}

/// JSON of GET `url`, asserting 200.
async fn api(url: &str) -> Value {
    let (status, body) = get(url).await;
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Every page against the daemon on a simulated tenant of a few thousand users, after its first
/// audit, with one lockout planted and one guest named in HTML.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_helpdesk_pages_show_the_tenant_in_a_real_browser() {
    let Some(chromium) = browser::chromium() else {
        return;
    };
    // On the heap: the whole test is one large future, too large for a test thread's stack.
    Box::pin(helpdesk_pages(chromium)).await;
}

async fn helpdesk_pages(chromium: PathBuf) {
    let sim = common::sim(2000, 13, Profile::Realistic, |_| {}).await;
    sim.update_policy(|p| p.tap_enabled = true);
    // Named in HTML: an enabled guest (`#EXT#` UPN: no rule finds guests here), and a member
    // an audit finds something about, so that a rule's page shows the name too.
    let truth = sim.ground_truth();
    let guest = truth
        .users
        .iter()
        .find(|u| {
            u.user_type.eq_ignore_ascii_case("guest")
                && u.upn.contains("#EXT#")
                && u.account_enabled
        })
        .expect("an enabled guest");
    let (guest_id, guest_upn) = (guest.id.clone(), guest.upn.clone());
    let config = common::config(&sim, "");
    // (Boxed: the audit's future is large, and this test's own as well.)
    let before = Box::pin(common::audit(&sim, &config)).await;
    let (member_id, member_upn) = before
        .findings
        .iter()
        .filter(|f| f.subject != mfa_auditor::evaluate::TENANT_SUBJECT)
        .find_map(|f| Some((f.user_id.clone()?, f.user_principal_name.clone()?)))
        .expect("a user with a finding");
    for id in [&guest_id, &member_id] {
        assert!(
            sim.update_user(id, |u| u.display_name = HOSTILE.into()),
            "{id} is renamed"
        );
    }

    // What the tenant holds, as the collector reads it: the truth the pages are compared with.
    let client = common::client_with(&sim, config.client_config());
    let read = Box::pin(mfa_auditor::audit::read_tenant(&config, &client, None)).await;
    let scratch = Store::in_memory().expect("store");
    let tenant = sim.tenant_id().to_string();
    scratch
        .record_users(&tenant, 1, read.started_at, &read.snapshot.users)
        .expect("users");
    let stored: Vec<StoredUser> = read
        .snapshot
        .users
        .iter()
        .filter_map(|u| scratch.user(&tenant, &u.id.to_string()).ok().flatten())
        .collect();
    // A rich user: active roles, and methods in two families or more.
    let rich = stored
        .iter()
        .find(|u| {
            u.account_enabled
                && !u.roles.is_empty()
                && u.mfa_families.as_ref().is_some_and(|f| f.len() >= 2)
                && !u.user_principal_name.contains('#')
        })
        .expect("an admin with methods in two families")
        .clone();
    let bob = common::plain_member_with_phone(&scratch, &tenant, &read.snapshot.users, |id| {
        id == rich.id
    });
    // Bob is locked out: six failed MFA sign-ins (50088) a few minutes ago.
    sim.user_fails_mfa(
        &bob.user_principal_name,
        6,
        Utc::now() - chrono::Duration::minutes(3),
        50088,
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("config.toml");
    write_config(
        &config_path,
        &sim,
        &dir.path().join("state.db"),
        0,
        "\n[watcher]\ninterval_seconds = 10\n",
    );
    // One audit (the one at start) and no other while the browser reads the pages.
    let text = std::fs::read_to_string(&config_path).expect("config");
    std::fs::write(
        &config_path,
        text.replace("*/2 * * * * *", "0 0 0 1 1 *")
            .replace("stale_after_seconds = 4", "stale_after_seconds = 86400"),
    )
    .expect("config");
    let daemon = Daemon::start(&config_path, sim.client_secret());
    let base = daemon.base.clone();
    wait_for("the first audit", 60, async || {
        daemon.log().contains("audit recorded")
    })
    .await;
    wait_for("bob's lockout detected", 30, async || {
        let (_, body) = get(&format!("{base}/api/v1/detections")).await;
        body.contains(&bob.user_principal_name)
    })
    .await;

    let b = Browser::launch(&chromium).await;
    let enc = mfa_auditor::web::encode;
    let shots = target().join("screenshots");
    let docs = std::env::var_os("UPDATE_SCREENSHOTS").is_some_and(|v| v == "1");

    // The rule with the most open findings (in the API's first page) and its total.
    let first = api(&format!("{base}/api/v1/findings?page_size=500")).await;
    let mut by_rule = std::collections::BTreeMap::<String, usize>::new();
    for f in first["items"].as_array().into_iter().flatten() {
        *by_rule
            .entry(f["rule"].as_str().unwrap_or("").to_string())
            .or_default() += 1;
    }
    let rule = by_rule
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(r, _)| r.clone())
        .expect("a rule with findings");
    let rule_total = api(&format!("{base}/api/v1/findings?rule={rule}&page_size=1")).await["total"]
        .as_u64()
        .expect("a total");

    // The overview.
    assert_eq!(b.open(&format!("{base}/")).await, 200);
    b.assert_clean("/").await;
    b.assert_fits("/").await;
    assert_eq!(b.count("h1").await, 1, "/: one h1");
    for metric in ["users-in-scope", "open-findings", "excepted", "locked-out"] {
        let v = b
            .text(&format!("#posture [data-metric='{metric}'] .value"))
            .await
            .unwrap_or_else(|| panic!("/: the {metric} card"));
        assert!(v.parse::<u64>().is_ok(), "/: {metric} = {v:?}");
    }
    assert_eq!(
        b.text(&format!(
            "table#findings-by-rule tr[data-rule='{rule}'] td.num.open"
        ))
        .await
        .as_deref(),
        Some(rule_total.to_string().as_str()),
        "/: {rule}'s open findings"
    );
    assert!(
        b.count(&format!(
            "table#findings-by-rule tr[data-rule='{rule}'] a[href='/rules/{rule}']"
        ))
        .await
            >= 1,
        "/: {rule}'s row links its page"
    );
    let bob_row = format!(
        "#locked-out table#locked-out-users tr[data-user={}]",
        browser::js(&bob.user_principal_name)
    );
    assert!(b.wait_for(&bob_row).await, "/: bob is locked out");
    assert!(
        b.count(&format!(
            "{bob_row} a[href={}]",
            browser::js(&format!("/users/{}", enc(&bob.user_principal_name)))
        ))
        .await
            >= 1,
        "/: bob's row links his page"
    );
    b.screenshot(&shots.join("overview.png")).await;
    if docs {
        b.screenshot(&Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots/overview.png"))
            .await;
    }
    b.print_media(true).await;
    assert!(
        b.hidden("header nav").await,
        "/: printing hides the navigation"
    );
    b.print_media(false).await;

    // The rule page: its total is the API's, and its CSV holds as many rows.
    assert_eq!(b.open(&format!("{base}/rules/{rule}")).await, 200);
    b.assert_clean("the rule page").await;
    b.assert_fits("the rule page").await;
    assert_eq!(
        b.attr("#rule-meta", "data-rule-id").await.as_deref(),
        Some(rule.as_str())
    );
    assert_eq!(
        b.text("#total").await.as_deref(),
        Some(rule_total.to_string().as_str()),
        "the rule page's total"
    );
    assert!(b.count("table#findings tr[data-subject]").await > 0);
    let csv_href = b.attr("a#csv", "href").await.expect("a#csv");
    assert!(
        csv_href.starts_with(&format!("/rules/{rule}/findings.csv")),
        "{csv_href}"
    );
    let response = reqwest::get(format!("{base}{csv_href}"))
        .await
        .expect("the CSV");
    assert_eq!(response.status(), 200);
    let body = response.text().await.expect("the CSV's body");
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    assert_eq!(
        reader
            .headers()
            .expect("a header")
            .iter()
            .collect::<Vec<_>>(),
        [
            "rule",
            "subject",
            "user_principal_name",
            "severity",
            "detail",
            "remediation",
            "excepted",
            "first_seen",
            "last_seen",
            "resolved_at"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader
        .records()
        .collect::<Result<_, _>>()
        .expect("CSV rows");
    assert_eq!(
        rows.len() as u64,
        rule_total,
        "the CSV holds every open finding"
    );
    assert!(
        rows.iter().all(|r| r.get(0) == Some(rule.as_str())),
        "only {rule}'s"
    );
    let subjects: std::collections::BTreeSet<_> = rows.iter().filter_map(|r| r.get(1)).collect();
    assert_eq!(subjects.len(), rows.len(), "each finding once");

    // The search, typed into the header's form: finds the rich user by a UPN prefix.
    // The UPN's local part: a prefix that leaves few enough results (at most 50 are shown).
    let prefix = rich
        .user_principal_name
        .split('@')
        .next()
        .unwrap_or_default()
        .to_string();
    b.open(&format!("{base}/")).await;
    b.take_problems().await;
    b.type_into("#q", &prefix).await;
    b.submit("#q", "/users?q=").await;
    let row = format!("table#results tr[data-user-id={}]", browser::js(&rich.id));
    assert!(
        b.wait_for(&row).await,
        "the search for {prefix:?} finds {}",
        rich.user_principal_name
    );
    assert!(
        b.count(&format!(
            "{row} a[href={}]",
            browser::js(&format!("/users/{}", enc(&rich.user_principal_name)))
        ))
        .await
            >= 1
    );
    assert!(b
        .text("#result-count")
        .await
        .is_some_and(|c| c.parse::<u64>().is_ok()));
    assert_eq!(
        b.json("document.querySelector('#q').value").await,
        prefix.as_str()
    );
    b.assert_clean("the search").await;
    b.assert_fits("the search").await;
    // The search reports its time.
    let response = reqwest::get(format!("{base}/users?q={}", enc(&prefix)))
        .await
        .expect("the search");
    let timing = response
        .headers()
        .get("server-timing")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        timing.contains("db;dur=") && timing.contains("total;dur="),
        "Server-Timing: {timing:?}"
    );

    // The rich user's page: identity, methods and their families, roles, findings.
    let page = format!("{base}/users/{}", enc(&rich.user_principal_name));
    assert_eq!(b.open(&page).await, 200);
    b.assert_clean("the user page").await;
    b.assert_fits("the user page").await;
    assert_eq!(
        b.text("h1").await.as_deref(),
        Some(rich.display_name.as_str())
    );
    assert_eq!(
        b.text("#identity [data-field='upn']").await.as_deref(),
        Some(rich.user_principal_name.as_str())
    );
    assert_eq!(
        b.text("#identity [data-field='id']").await.as_deref(),
        Some(rich.id.as_str())
    );
    let methods = rich.methods.clone().unwrap_or_default();
    assert_eq!(
        sorted(
            b.attrs("table#methods tr[data-method]", "data-method")
                .await
        ),
        sorted(methods.iter().map(|m| m.name.to_string()).collect()),
        "the methods"
    );
    for m in &methods {
        let row = format!("table#methods tr[data-method={}]", browser::js(m.name));
        // The family's id as the text, or in words with the id as the title.
        let cell = format!("{row} td[data-col='family']");
        let (text, title) = (b.text(&cell).await, b.attr(&cell, "title").await);
        assert!(
            text.as_deref() == Some(m.family) || title.as_deref() == Some(m.family),
            "{}'s family: {text:?} (title {title:?}), not {}",
            m.name,
            m.family
        );
        assert_eq!(
            b.text(&format!("{row} td[data-col='phishing-resistant']"))
                .await
                .as_deref(),
            Some(if m.phishing_resistant { "yes" } else { "no" }),
            "{} phishing-resistant",
            m.name
        );
    }
    let families = b.text("#families").await.expect("#families");
    let count = rich.mfa_families.as_ref().map_or(0, Vec::len);
    assert!(
        families.contains(&count.to_string()),
        "#families {families:?} counts {count}"
    );
    let roles = |assignment: &'static str| {
        let b = &b;
        async move {
            sorted(
                b.attrs(
                    &format!("#roles li[data-role][data-assignment='{assignment}']"),
                    "data-role",
                )
                .await,
            )
        }
    };
    assert_eq!(
        roles("active").await,
        sorted(rich.roles.iter().map(|r| r.to_string()).collect()),
        "active roles"
    );
    assert_eq!(
        roles("eligible").await,
        sorted(rich.eligible_roles.iter().map(|r| r.to_string()).collect()),
        "eligible roles"
    );
    let theirs = api(&format!(
        "{base}/api/v1/users/{}",
        enc(&rich.user_principal_name)
    ))
    .await;
    let open: Vec<String> = theirs["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["resolved_at"].is_null())
        .map(|f| f["rule"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        sorted(
            b.attrs(
                "table#user-findings tr[data-rule][data-state='open']",
                "data-rule"
            )
            .await
        ),
        sorted(open),
        "the user's open findings"
    );
    assert!(
        b.count(&format!(
            "a[href={}]",
            browser::js(&format!("/api/v1/users/{}", enc(&rich.user_principal_name)))
        ))
        .await
            >= 1,
        "the page links its JSON"
    );

    // Bob's page: locked out, with the way back in.
    assert_eq!(
        b.open(&format!("{base}/users/{}", enc(&bob.user_principal_name)))
            .await,
        200
    );
    b.assert_clean("bob's page").await;
    b.assert_fits("bob's page").await;
    assert_eq!(
        b.attr("#lockout", "data-lockout-state").await.as_deref(),
        Some("locked-out")
    );
    let commands = b
        .texts("ol#playbook li[data-step] pre.command")
        .await
        .join("\n");
    assert!(
        commands.contains("New-MgUserAuthenticationTemporaryAccessPassMethod")
            && commands.contains(&bob.user_principal_name),
        "bob's playbook: {commands}"
    );
    b.screenshot(&shots.join("user.png")).await;
    if docs {
        b.screenshot(&Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots/user.png"))
            .await;
    }

    // The guest named in HTML stays text: on the search, its page and its rule's page.
    let query = "<script>window";
    assert_eq!(b.open(&format!("{base}/users?q={}", enc(query))).await, 200);
    b.assert_clean("the hostile search").await;
    assert_not_injected(&b, "the hostile search").await;
    let row = format!("table#results tr[data-user-id={}]", browser::js(&guest_id));
    assert!(
        b.wait_for(&row).await,
        "the search by display name finds the guest"
    );
    let shown = b
        .json(&format!(
            "[...document.querySelectorAll({} + ' *')].some(e => e.textContent.trim() === {})",
            browser::js(&row),
            browser::js(HOSTILE)
        ))
        .await;
    assert_eq!(shown, true, "the result shows the name as text");
    assert_eq!(b.json("document.querySelector('#q').value").await, query);
    let guest_page = format!("/users/{}", enc(&guest_upn));
    assert!(
        b.count(&format!("{row} a[href={}]", browser::js(&guest_page)))
            .await
            >= 1,
        "the result links {guest_page}"
    );
    assert_eq!(b.open(&format!("{base}{guest_page}")).await, 200);
    b.assert_clean("the hostile user's page").await;
    assert_not_injected(&b, "the hostile user's page").await;
    assert_eq!(b.text("h1").await.as_deref(), Some(HOSTILE));
    assert_eq!(
        b.text("#identity [data-field='upn']").await.as_deref(),
        Some(guest_upn.as_str())
    );
    // The member named in HTML, on its page and on its rule's page.
    let member_page = format!("/users/{}", enc(&member_upn));
    assert_eq!(b.open(&format!("{base}{member_page}")).await, 200);
    b.assert_clean("the hostile member's page").await;
    assert_not_injected(&b, "the hostile member's page").await;
    assert_eq!(b.text("h1").await.as_deref(), Some(HOSTILE));
    let member_findings = api(&format!("{base}/api/v1/users/{}", enc(&member_upn))).await;
    let f = member_findings["findings"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["resolved_at"].is_null()))
        .unwrap_or_else(|| panic!("{member_upn} has an open finding: {member_findings}"));
    let (r, subject) = (
        f["rule"].as_str().unwrap_or(""),
        f["subject"].as_str().unwrap_or(""),
    );
    assert_eq!(
        b.open(&format!("{base}/rules/{r}?user={}", enc(&member_upn)))
            .await,
        200
    );
    b.assert_clean("the hostile member's rule page").await;
    assert_not_injected(&b, "the hostile member's rule page").await;
    let row = format!("table#findings tr[data-subject={}]", browser::js(subject));
    assert_eq!(b.count(&row).await, 1, "the rule page lists the member");
    assert!(
        b.count(&format!("{row} a[href={}]", browser::js(&member_page)))
            .await
            >= 1,
        "the row links the member's page"
    );

    // The audits.
    assert_eq!(b.open(&format!("{base}/audits")).await, 200);
    b.assert_clean("/audits").await;
    b.assert_fits("/audits").await;
    let runs = api(&format!("{base}/api/v1/audits")).await;
    let ids: Vec<String> = runs["audits"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| a["id"].to_string())
        .collect();
    assert!(!ids.is_empty());
    assert_eq!(
        sorted(b.attrs("table#audits tr[data-audit]", "data-audit").await),
        sorted(ids),
        "/audits lists the API's runs"
    );

    // Not found: HTML 404 pages, quietly.
    for path in ["/rules/unknown", "/users/nobody@x"] {
        assert_eq!(b.open(&format!("{base}{path}")).await, 404, "{path}");
        b.assert_clean(path).await;
        assert_eq!(b.count("h1").await, 1, "{path}: one h1");
    }

    // JavaScript off: the search still finds the rich user through the plain form, and the
    // pages still show what they show.
    b.disable_javascript(true).await;
    b.open(&format!("{base}/")).await;
    assert!(!b.scripts_run().await, "JavaScript is off");
    b.assert_clean("/ without JavaScript").await;
    b.type_into("#q", &prefix).await;
    b.submit("#q", "/users?q=").await;
    let row = format!("table#results tr[data-user-id={}]", browser::js(&rich.id));
    assert_eq!(b.count(&row).await, 1, "the search without JavaScript");
    b.assert_clean("the search without JavaScript").await;
    assert_eq!(b.open(&page).await, 200);
    assert_eq!(
        b.attrs("table#methods tr[data-method]", "data-method")
            .await
            .len(),
        methods.len(),
        "the user page without JavaScript"
    );
    b.assert_clean("the user page without JavaScript").await;
    b.disable_javascript(false).await;

    b.close().await;
    drop(daemon);
}

/// The build's target directory (CARGO_TARGET_DIR or ./target).
fn target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}
