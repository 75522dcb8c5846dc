//! The user pages' pure parts: rendering hostile names and UPNs, links, the playbook's order.

use super::*;
use crate::state::{StoredMethod, StoredTap};
use crate::watch::recovery::{Posture, RecoveryAdmin, TapReadiness};

const GUEST: &str = "o'brien_contoso.com#EXT#@fabrikam.onmicrosoft.com";
const HOSTILE: &str = "<script>alert(\"x\")</script> O'Brien & \"Co\"";

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("time")
}

fn chrome(query: &str) -> Chrome {
    Chrome {
        tenant: "t1".into(),
        tenant_param: String::new(),
        all_tenants: false,
        title: HOSTILE.into(),
        nav: "users",
        query: query.into(),
        version: "test",
    }
}

fn stored(upn: &str, name: &str) -> StoredUser {
    StoredUser {
        id: "00000000-0000-0000-0000-000000000b0b".into(),
        user_principal_name: upn.into(),
        display_name: name.into(),
        user_type: "guest",
        account_enabled: true,
        on_premises_sync: false,
        is_admin: true,
        methods: Some(vec![StoredMethod {
            name: "mobilePhone",
            description: "Mobile phone (SMS or voice)",
            mfa_capable: true,
            phishing_resistant: false,
            family: "mobile-number",
        }]),
        mfa_families: Some(vec!["mobile-number"]),
        phishing_resistant: Some(false),
        unknown_methods: 0,
        default_method: Some("sms"),
        system_preferred_mfa: Some(false),
        mfa_capable: Some(true),
        roles: vec!["Helpdesk Administrator"],
        eligible_roles: vec!["Global Administrator"],
        tap: Some(StoredTap {
            start: Some(at("2026-12-03T08:00:00Z")),
            lifetime_minutes: 60,
            usable_once: true,
            usable: false,
            usability_reason: "<b>Expired</b>".into(),
        }),
        per_user_mfa: Some("enforced"),
        mfa_failures: Some(6),
        first_seen: at("2026-11-01T10:00:00Z"),
        changed_at: at("2026-12-01T10:00:00Z"),
        audit_id: 7,
        deleted_at: None,
    }
}

fn detection(open: bool) -> StoredDetection {
    StoredDetection {
        tenant: "t1".into(),
        user: "00000000-0000-0000-0000-000000000b0b".into(),
        upn: GUEST.into(),
        state: "locked-out".into(),
        codes: vec![(500121, 6)],
        first_seen: at("2026-12-03T09:00:00Z"),
        last_seen: at("2026-12-03T09:10:00Z"),
        opened_at: at("2026-12-03T09:10:00Z"),
        resolved_at: (!open).then(|| at("2026-12-03T09:30:00Z")),
        detail: "6 failed MFA sign-ins <img src=x>".into(),
        remediation: String::new(),
    }
}

fn render(u: &StoredUser, detections: &[StoredDetection]) -> String {
    let tap = TapReadiness {
        enabled: true,
        user_in_targets: None,
        max_lifetime_minutes: 480,
        usable_once_only: false,
    };
    let admins = vec![RecoveryAdmin {
        upn: "help\"desk#EXT#@contoso.com".into(),
        display_name: HOSTILE.into(),
    }];
    let posture = Posture {
        user: Some(u),
        tap: Some(tap.clone()),
        admins,
        mfa_exclusion_group: None,
    };
    let plan = match open_detection(detections).and_then(detection_of) {
        Some(d) => recovery::plan(&d, &posture),
        None => recovery::plan_for_user(u, &posture).expect("plan"),
    };
    let finding = StoredFinding {
        tenant: "t1".into(),
        rule: "no-backup-method".into(),
        subject: u.id.clone(),
        user_principal_name: Some(u.user_principal_name.clone()),
        severity: "medium".into(),
        detail: HOSTILE.into(),
        remediation: String::new(),
        excepted: false,
        first_seen: at("2026-11-01T10:00:00Z"),
        last_seen: at("2026-12-01T10:00:00Z"),
        resolved_at: None,
    };
    let event = StoredSecurityEvent {
        tenant: "t1".into(),
        event_id: "e1".into(),
        created: at("2026-12-03T08:30:00Z"),
        activity: "deleted".into(),
        activity_name: "User deleted security info".into(),
        by_admin: true,
        initiated_by: HOSTILE.into(),
        user: u.id.clone(),
        upn: u.user_principal_name.clone(),
        method: Some("Phone method".into()),
        detail: HOSTILE.into(),
        notable: Some("high".into()),
    };
    let view = view(
        u,
        Inputs {
            findings: &[finding],
            detections,
            events: &[event],
            changes: &[],
            tap: Some(&tap),
            basis: "a test".into(),
            plan: Some(&plan),
            now: at("2026-12-03T10:00:00Z"),
            failure_codes: &[500121],
        },
    );
    UserPage {
        chrome: chrome(""),
        user: Some(Box::new(view)),
        key: u.user_principal_name.clone(),
        search_href: String::new(),
    }
    .render()
    .expect("render")
}

fn no_raw_hostile(html: &str) {
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(!html.contains("<img src=x>"), "{html}");
    assert!(!html.contains("<b>Expired"), "{html}");
    assert!(html.contains("&#60;script&#62;alert("), "{html}");
}

#[test]
fn hostile_names_are_escaped_and_guest_links_encoded() {
    let u = stored(GUEST, HOSTILE);
    let html = render(&u, &[detection(true)]);
    no_raw_hostile(&html);
    // The guest's UPN is encoded in links (`#` would end the path), shown escaped elsewhere.
    assert!(
        html.contains(
            "href=\"/api/v1/users/o%27brien_contoso.com%23EXT%23%40fabrikam.onmicrosoft.com\""
        ),
        "{html}"
    );
    assert!(
        html.contains("href=\"/users/help%22desk%23EXT%23%40contoso.com\""),
        "{html}"
    );
    assert!(!html.contains("href=\"/users/help\"desk"), "{html}");
    assert_eq!(html.matches("<h1>").count(), 1);
    assert!(html.contains("<main id=\"main\">"));
    // The contract's hooks.
    for hook in [
        "data-field=\"upn\"",
        "data-field=\"id\"",
        "data-field=\"type\"",
        "data-field=\"enabled\"",
        "<tr data-method=\"mobilePhone\">",
        "data-col=\"phishing-resistant\">no<",
        "data-col=\"mfa-capable\">yes<",
        "id=\"default-method\"",
        "id=\"families\" data-count=\"1\"",
        "no backup",
        "<li data-role=\"Helpdesk Administrator\" data-assignment=\"active\">",
        "<li data-role=\"Global Administrator\" data-assignment=\"eligible\">",
        "id=\"tap\" data-tap-state=\"not-usable\"",
        "id=\"lockout\" data-lockout-state=\"locked-out\"",
        "id=\"mfa-failures\"",
        "<tr data-state=\"locked-out\" data-open=\"true\">",
        "table id=\"security-events\"",
        "class=\"notable\"",
        "<tr data-rule=\"no-backup-method\" data-state=\"open\">",
        "href=\"/rules/no-backup-method\"",
        "<ol id=\"playbook\"",
        "<li data-step=\"1\">",
        "<time datetime=\"2026-11-01T10:00:00Z\">2026-11-01 10:00 UTC</time>",
    ] {
        assert!(html.contains(hook), "{hook}: {html}");
    }
}

#[test]
fn the_playbook_has_exact_commands_and_destructive_steps_last() {
    let u = stored(GUEST, "Ann");
    for detections in [vec![detection(true)], vec![detection(false)], vec![]] {
        let html = render(&u, &detections);
        let steps: Vec<&str> = html.split("<li data-step=\"").skip(1).collect();
        assert!(steps.len() >= 4, "{html}");
        // Numbered in order; the first is the one-time TAP with the UPN quoted for PowerShell.
        for (i, s) in steps.iter().enumerate() {
            assert!(s.starts_with(&format!("{}\"", i + 1)), "{s}");
            assert!(s.contains("<pre class=\"command\">"), "{s}");
        }
        assert!(
            steps[0].contains(
                "New-MgUserAuthenticationTemporaryAccessPassMethod -UserId &#39;o&#39;&#39;brien_contoso.com#EXT#@fabrikam.onmicrosoft.com&#39; -IsUsableOnce:$true"
            ),
            "{}",
            steps[0]
        );
        let first_destructive = steps
            .iter()
            .position(|s| s.contains("data-destructive=\"true\""))
            .expect("a destructive step");
        assert!(steps[first_destructive..]
            .iter()
            .all(|s| s.contains("class=\"destructive\"") && s.contains("class=\"warning\"")));
        // Per-user MFA enforced: turning it off is the last resort, last.
        assert!(steps[steps.len() - 1].contains("-PerUserMfaState disabled"));
    }
}

#[test]
fn the_lockout_state_is_none_without_an_open_detection() {
    let mut u = stored("ann@contoso.com", "Ann");
    u.methods = None;
    u.mfa_families = None;
    u.tap = None;
    let html = render(&u, &[detection(false)]);
    assert!(html.contains("data-lockout-state=\"none\""), "{html}");
    assert!(html.contains("<tr data-state=\"locked-out\" data-open=\"false\">"));
    assert!(html.contains("id=\"methods-unknown\""));
    assert!(!html.contains("table id=\"methods\""));
    assert!(html.contains("data-tap-state=\"none\""));
    assert!(html.contains("Recovery families: not known"));
}

#[test]
fn a_missing_user_page_links_the_search() {
    let html = UserPage {
        chrome: chrome(""),
        user: None,
        key: HOSTILE.into(),
        search_href: format!("/users?q={}", encode(HOSTILE)),
    }
    .render()
    .expect("render");
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(
        html.contains("id=\"search-link\" href=\"/users?q=%3Cscript%3Ealert"),
        "{html}"
    );
    assert_eq!(html.matches("<h1>").count(), 1);
}

#[test]
fn search_results_escape_and_encode() {
    let u = stored(GUEST, HOSTILE);
    let row = ResultRow::of(&u);
    let page = SearchPage {
        chrome: chrome(HOSTILE),
        q: HOSTILE.into(),
        results: vec![row],
        more: true,
        limit: SEARCH_LIMIT,
    };
    let html = page.render().expect("render");
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(
        html.contains("<tr data-user-id=\"00000000-0000-0000-0000-000000000b0b\">"),
        "{html}"
    );
    assert!(
        html.contains("href=\"/users/o%27brien_contoso.com%23EXT%23%40fabrikam.onmicrosoft.com\"")
    );
    assert!(
        html.contains("<span id=\"result-count\">1</span>"),
        "{html}"
    );
    assert!(html.contains("more may exist"));
    // The header's search box keeps the query, escaped.
    assert!(
        html.contains("value=\"&#60;script&#62;alert(&#34;x&#34;)"),
        "{html}"
    );

    let empty = SearchPage {
        chrome: chrome("zz"),
        q: "zz".into(),
        results: vec![],
        more: false,
        limit: SEARCH_LIMIT,
    }
    .render()
    .expect("render");
    assert!(empty.contains("<p class=\"none\">"), "{empty}");
    assert!(empty.contains("<span id=\"result-count\">0</span>"));
    assert!(!empty.contains("id=\"results\""));

    let explain = SearchPage {
        chrome: chrome(""),
        q: String::new(),
        results: vec![],
        more: false,
        limit: SEARCH_LIMIT,
    }
    .render()
    .expect("render");
    assert!(!explain.contains("result-count"));
    assert!(explain.contains("start of a user principal name"));
}
