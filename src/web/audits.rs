//! `/audits`: the history of audit runs, newest first (`?limit=`, 50 by default): when each ran
//! and for how long, what it found, how many Graph requests it made, which rules it skipped and
//! why an incomplete one was incomplete.

use std::collections::HashMap;

use askama::Template;
use axum::extract::Query;
use axum::response::Response;

use super::{bad_parameter, rfc3339, when, Chrome, Timing, WebError};
use crate::state::AuditRun;

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 1000;

pub struct Row {
    pub id: i64,
    pub complete: bool,
    pub started: String,
    pub started_at: String,
    pub finished: String,
    pub finished_at: String,
    pub duration: String,
    pub users: i64,
    pub findings: i64,
    pub excepted: i64,
    pub graph_requests: i64,
    /// Rule, its page, why it was skipped.
    pub skipped: Vec<(String, String, String)>,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "audits.html")]
pub struct AuditsPage {
    pub chrome: Chrome,
    pub limit: usize,
    pub rows: Vec<Row>,
    pub skipped_runs: u64,
}

/// `limit` from the query: 1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] without one.
pub fn limit(q: &HashMap<String, String>) -> Result<usize, WebError> {
    if let Some(k) = q.keys().find(|k| k.as_str() != "limit") {
        return Err(bad_parameter(k, "unknown parameter; known: limit"));
    }
    match q.get("limit").map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(bad_parameter(
                "limit",
                format!("{v:?} is not a number between 1 and {MAX_LIMIT}"),
            )),
        },
    }
}

/// A duration as people read it: `42 s`, `3 min 05 s`, `1 h 02 min`.
pub fn duration(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
    }
}

pub fn row(r: &AuditRun) -> Row {
    Row {
        id: r.id,
        complete: r.complete,
        started: when(r.started_at),
        started_at: rfc3339(r.started_at),
        finished: when(r.finished_at),
        finished_at: rfc3339(r.finished_at),
        duration: duration((r.finished_at - r.started_at).num_seconds()),
        users: r.users_in_scope,
        findings: r.findings,
        excepted: r.excepted,
        graph_requests: r.graph_requests,
        skipped: r
            .skipped
            .iter()
            .map(|k| {
                (
                    k.rule.clone(),
                    super::overview::rule_href(&k.rule),
                    k.reason.clone(),
                )
            })
            .collect(),
        reason: r.reason.clone().unwrap_or_default(),
    }
}

/// `GET /audits?limit=50`.
pub async fn page(
    super::Tenant(s): super::Tenant,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, WebError> {
    let limit = limit(&q)?;
    super::page(&s, move |s, t: &mut Timing| {
        let tenant = s.config().tenant.tenant_id.clone();
        let runs = t.db(|| s.store.audits(&tenant, limit))?;
        Ok(AuditsPage {
            chrome: Chrome::new(s, "Audits", "audits"),
            limit,
            rows: runs.iter().map(row).collect(),
            skipped_runs: s.skipped_runs.load(std::sync::atomic::Ordering::Relaxed),
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use askama::Template;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::state::SkippedRule;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn limit_defaults_and_a_bad_one_is_a_400() {
        assert_eq!(limit(&q(&[])).ok(), Some(DEFAULT_LIMIT));
        assert_eq!(limit(&q(&[("limit", "7")])).ok(), Some(7));
        for bad in ["0", "1001", "x", "-1"] {
            let e = limit(&q(&[("limit", bad)])).expect_err(bad);
            assert!(matches!(&e, WebError::BadParameter { parameter, .. } if parameter == "limit"));
            assert_eq!(e.into_response().status(), StatusCode::BAD_REQUEST);
        }
        assert!(limit(&q(&[("page", "2")])).is_err());
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(42), "42 s");
        assert_eq!(duration(185), "3 min 05 s");
        assert_eq!(duration(3720), "1 h 02 min");
        assert_eq!(duration(-3), "0 s");
    }

    #[test]
    fn hostile_reasons_are_escaped() {
        let hostile = "<script>alert(1)</script>\"'#EXT#";
        let t = Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap();
        let run = AuditRun {
            id: 7,
            tenant: "t".into(),
            started_at: t,
            finished_at: t + chrono::Duration::seconds(65),
            complete: false,
            reason: Some(hostile.into()),
            users_in_scope: 1,
            findings: 2,
            excepted: 0,
            graph_requests: 3,
            skipped: vec![SkippedRule {
                rule: hostile.into(),
                reason: hostile.into(),
            }],
            kept_open: 0,
        };
        let page = AuditsPage {
            chrome: Chrome {
                tenant: String::new(),
                tenant_param: String::new(),
                all_tenants: false,
                title: "Audits".into(),
                nav: "audits",
                query: String::new(),
                version: "test",
            },
            limit: 50,
            rows: vec![row(&run)],
            skipped_runs: 0,
        };
        let html = page.render().expect("renders");
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(
            html.contains("data-audit=\"7\" data-complete=\"false\""),
            "{html}"
        );
        assert!(html.contains("1 min 05 s"));
        assert_eq!(html.matches("<h1>").count(), 1);
    }
}
