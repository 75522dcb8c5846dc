//! The rule page's pure parts: its filters (bad ones are 400s naming the parameter), CSV cells
//! made safe and quoted, hostile strings escaped in the page.

use askama::Template;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{TimeZone, Utc};

use super::*;

const KNOWN: [&str; 4] = ["state", "user", "page_size", "cursor"];
const HOSTILE: &str = "<script>alert(1)</script>\"'&ann_contoso.com#EXT#@x.onmicrosoft.com";

fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn rejected(pairs: &[(&str, &str)]) -> String {
    match filters("no-mfa-method", &q(pairs), &KNOWN, 1000) {
        Ok(f) => panic!("{pairs:?} accepted: {f:?}"),
        Err(e) => {
            let WebError::BadParameter { parameter, .. } = &e else {
                panic!("{e:?}")
            };
            let parameter = parameter.clone();
            assert_eq!(e.into_response().status(), StatusCode::BAD_REQUEST);
            parameter
        }
    }
}

#[test]
fn filters_default_to_open_and_name_a_bad_parameter() {
    let f = filters("no-mfa-method", &q(&[]), &KNOWN, 1000).expect("defaults");
    assert_eq!(f.state, StateFilter::Open);
    assert_eq!((f.user, f.page_size, f.cursor), (None, 100, None));
    let f = filters(
        "no-mfa-method",
        &q(&[("state", "all"), ("user", " "), ("page_size", "7")]),
        &KNOWN,
        1000,
    )
    .expect("valid");
    assert_eq!((f.state, f.user, f.page_size), (StateFilter::All, None, 7));
    assert_eq!(rejected(&[("state", "closed")]), "state");
    assert_eq!(rejected(&[("page_size", "0")]), "page_size");
    assert_eq!(rejected(&[("page_size", "1001")]), "page_size");
    assert_eq!(rejected(&[("page_size", "ten")]), "page_size");
    assert_eq!(rejected(&[("cursor", "%%%")]), "cursor");
    assert_eq!(rejected(&[("severity", "high")]), "severity");
    let other = Cursor {
        rule: "phone-only".into(),
        subject: "x".into(),
    }
    .encode();
    assert_eq!(
        rejected(&[("cursor", &other)]),
        "cursor",
        "another rule's cursor"
    );
    let mine = Cursor {
        rule: "no-mfa-method".into(),
        subject: "x".into(),
    };
    let f = filters(
        "no-mfa-method",
        &q(&[("cursor", &mine.encode())]),
        &KNOWN,
        1000,
    );
    assert_eq!(f.expect("valid").cursor, Some(mine));
}

#[test]
fn a_bad_parameter_is_a_400_page_naming_it() {
    let r = bad_parameter("state", "\"<b>\" is not open").into_response();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.headers()[axum::http::header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
}

#[test]
fn cells_that_a_spreadsheet_would_run_are_prefixed() {
    for s in ["=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
        assert_eq!(cell(s), format!("'{s}"));
    }
    for s in ["ann@contoso.com", "", "a=b", "1-2"] {
        assert_eq!(cell(s), s);
    }
}

fn finding(subject: &str, upn: Option<&str>, detail: &str) -> StoredFinding {
    let t = Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap();
    StoredFinding {
        tenant: "t".into(),
        rule: "no-mfa-method".into(),
        subject: subject.into(),
        user_principal_name: upn.map(str::to_string),
        severity: "high".into(),
        detail: detail.into(),
        remediation: "Have them register".into(),
        excepted: true,
        first_seen: t,
        last_seen: t,
        resolved_at: Some(t),
    }
}

#[test]
fn csv_rows_are_quoted_and_safe() {
    let items = [
        finding("u1", Some("=HYPERLINK(\"http://x\")"), "a, \"b\"\nc"),
        finding("tenant", None, "-2"),
    ];
    let mut out = csv_header();
    out = csv_rows(out, &items).expect("csv");
    let text = String::from_utf8(out).expect("utf-8");
    let mut r = ::csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        r.headers().expect("header").iter().collect::<Vec<_>>(),
        CSV_HEADER
    );
    let rows: Vec<::csv::StringRecord> = r.records().collect::<Result<_, _>>().expect("rows");
    assert_eq!(rows.len(), 2);
    assert_eq!(&rows[0][2], "'=HYPERLINK(\"http://x\")");
    assert_eq!(&rows[0][4], "a, \"b\"\nc");
    assert_eq!(&rows[0][6], "true");
    assert_eq!(&rows[0][9], "2026-12-01T08:00:00Z");
    assert_eq!(&rows[1][2], "");
    assert_eq!(&rows[1][4], "'-2");
}

#[test]
fn the_page_escapes_hostile_strings_and_links_the_next_page() {
    let r = rule("no-mfa-method").expect("in the catalogue");
    let f = Filters {
        state: StateFilter::All,
        user: Some(HOSTILE.into()),
        page_size: 2,
        cursor: None,
    };
    let items = [
        finding(HOSTILE, Some(HOSTILE), HOSTILE),
        finding("tenant", None, "x"),
    ];
    let chrome = Chrome {
        tenant: HOSTILE.into(),
        tenant_param: String::new(),
        all_tenants: false,
        title: r.title.into(),
        nav: "",
        query: String::new(),
        version: "test",
    };
    let page = render(chrome, r, &f, 3, &items, Some("CURSOR"));
    let html = page.render().expect("renders");
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(!html.contains("\"'&ann"), "{html}");
    assert!(html.contains("href=\"/users/%3Cscript%3E"), "{html}");
    assert!(html.contains("<span id=\"total\">3</span>"), "{html}");
    assert!(html.contains("rel=\"next\""), "{html}");
    assert!(html.contains("cursor=CURSOR"), "{html}");
    assert!(
        html.contains(
            "id=\"csv\" href=\"/rules/no-mfa-method/findings.csv?state=all&#38;user=%3Cscript%3E"
        ),
        "{html}"
    );
    assert!(html.contains("data-rule-id=\"no-mfa-method\""));
    assert!(html.contains("class=\"sev sev-high\""));
    assert!(!html.contains(" style="));
    assert_eq!(html.matches("<h1>").count(), 1);
    let last = render(
        Chrome {
            tenant: String::new(),
            tenant_param: String::new(),
            all_tenants: false,
            title: String::new(),
            nav: "",
            query: String::new(),
            version: "test",
        },
        r,
        &f,
        2,
        &items,
        None,
    )
    .render()
    .expect("renders");
    assert!(
        !last.contains("rel=\"next\""),
        "no next link on the last page"
    );
}

#[test]
fn the_csv_is_written_a_page_at_a_time_with_every_finding_once() {
    use crate::evaluate::{Finding, Severity};
    let store = crate::state::Store::in_memory().expect("store");
    let t = Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap();
    let findings = (0..25)
        .map(|i| Finding {
            rule: if i % 5 == 0 {
                "phone-only"
            } else {
                "no-mfa-method"
            },
            severity: Severity::High,
            subject: format!("user-{i:03}"),
            user_id: None,
            user_principal_name: Some(format!("=user{i}@contoso.com")),
            detail: "d".into(),
            remediation: "r".into(),
        })
        .collect();
    let report = crate::report::Report {
        tenant: "t1".into(),
        complete: true,
        started_at: t,
        finished_at: t,
        users_in_scope: 25,
        findings,
        excepted: vec![],
        skipped: vec![],
        incomplete_reasons: vec![],
        summary: Default::default(),
        posture: Default::default(),
    };
    store.record(&report, 0).expect("recorded");
    let filter = FindingFilter {
        rule: Some("no-mfa-method".into()),
        ..FindingFilter::default()
    };
    let mut chunks = vec![];
    write_csv(&store, "t1", &filter, 7, |c| {
        chunks.push(c);
        true
    })
    .expect("written");
    assert_eq!(chunks.len(), 3, "20 findings, 7 a page");
    let text = String::from_utf8(chunks.concat()).expect("utf-8");
    assert_eq!(text.matches("rule,subject").count(), 1, "one header");
    let mut r = ::csv::Reader::from_reader(text.as_bytes());
    let subjects: Vec<String> = r
        .records()
        .map(|r| r.expect("row")[1].to_string())
        .collect();
    let mut sorted = subjects.clone();
    sorted.dedup();
    assert_eq!(subjects.len(), 20);
    assert_eq!(sorted, subjects, "in order, each once");
    assert!(text.contains(",'=user1@contoso.com,"), "{text}");

    // A client that leaves stops the reading.
    let mut calls = 0;
    write_csv(&store, "t1", &filter, 7, |_| {
        calls += 1;
        false
    })
    .expect("stopped");
    assert_eq!(calls, 1);
}
