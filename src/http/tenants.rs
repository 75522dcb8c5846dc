//! `GET /api/v1/tenants`: every tenant the daemon audits and how it stands — its breaker (state,
//! failures in a row, back-off, why it failed), its last complete audit, its open findings by
//! severity and the users locked out now. `?rule=<id>` answers "which tenants fail rule X": only
//! the tenants with open findings of that rule, the most first. Read from the kept counts
//! (`finding_counts`), never from the findings themselves.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::{bad_request, ApiError};
use crate::daemon::Daemon;
use crate::watch::LockoutState;

/// One tenant's row.
#[derive(Clone, Debug, Serialize)]
pub struct TenantRow {
    pub name: String,
    pub tenant_id: String,
    /// `pending`, `ok`, `failing` or `backed-off`.
    pub state: &'static str,
    pub running: bool,
    pub consecutive_failures: u32,
    pub backoff_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_attempt: Option<DateTime<Utc>>,
    /// When the last complete audit finished.
    pub last_complete: Option<DateTime<Utc>>,
    /// Open (not excepted) findings.
    pub open: i64,
    pub open_by_severity: BTreeMap<String, i64>,
    /// Open findings of the rule asked for (`?rule=`), by rule otherwise not listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_open: Option<i64>,
    /// Users with an open `locked-out` detection.
    pub locked_out: i64,
    /// Open findings by rule (for the pages' "which tenants fail rule X").
    #[serde(skip)]
    pub open_by_rule: BTreeMap<String, i64>,
}

/// Every tenant's row, in file order; with `rule`, only those failing it, the most first.
pub fn rows(
    daemon: &Daemon,
    rule: Option<&str>,
) -> Result<Vec<TenantRow>, crate::state::StateError> {
    let now = Utc::now();
    let mut rows = Vec::new();
    for s in daemon.tenants().iter() {
        let config = s.config();
        let tenant = config.tenant.tenant_id.as_str();
        let breaker = s.breaker();
        let mut open_by_severity = BTreeMap::new();
        let mut open_by_rule = BTreeMap::<String, i64>::new();
        for c in daemon.store.finding_counts(tenant)? {
            if c.excepted || c.open == 0 {
                continue;
            }
            *open_by_severity.entry(c.severity.clone()).or_insert(0) += c.open;
            *open_by_rule.entry(c.rule.clone()).or_insert(0) += c.open;
        }
        let rule_open = rule.map(|r| open_by_rule.get(r).copied().unwrap_or(0));
        if rule_open == Some(0) {
            continue;
        }
        let locked_out = daemon
            .store
            .detection_counts(tenant)?
            .iter()
            .filter(|(state, _)| *state == LockoutState::LockedOut)
            .map(|(_, n)| n)
            .sum();
        rows.push(TenantRow {
            name: config.tenant_name().to_string(),
            tenant_id: tenant.to_string(),
            state: breaker.state(now).as_str(),
            running: s.running.load(std::sync::atomic::Ordering::Relaxed),
            consecutive_failures: breaker.consecutive_failures,
            backoff_until: breaker.backoff_until.filter(|u| *u > now),
            last_error: breaker.last_error,
            last_attempt: breaker.last_attempt,
            last_complete: daemon.store.last_complete(tenant)?.map(|r| r.finished_at),
            open: open_by_severity.values().sum(),
            open_by_severity,
            rule_open,
            locked_out,
            open_by_rule,
        });
    }
    if rule.is_some() {
        rows.sort_by(|a, b| b.rule_open.cmp(&a.rule_open).then(a.name.cmp(&b.name)));
    }
    Ok(rows)
}

/// `GET /api/v1/tenants?rule=&state=`.
pub async fn list(
    State(d): State<Arc<Daemon>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    const KNOWN: [&str; 2] = ["rule", "state"];
    if let Some(k) = q.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(bad_request(
            k,
            format!("unknown parameter; known: {}", KNOWN.join(", ")),
        ));
    }
    let rule = q.get("rule").cloned();
    if let Some(r) = &rule {
        if !crate::evaluate::CATALOGUE.iter().any(|c| c.id == r) {
            return Err(bad_request(
                "rule",
                format!("{r:?} is not a rule of this version"),
            ));
        }
    }
    let state = q.get("state").cloned();
    const STATES: [&str; 4] = ["pending", "ok", "failing", "backed-off"];
    if let Some(st) = &state {
        if !STATES.contains(&st.as_str()) {
            return Err(bad_request(
                "state",
                format!("{st:?} is not one of {}", STATES.join(", ")),
            ));
        }
    }
    let rows = tokio::task::spawn_blocking(move || rows(&d, rule.as_deref()))
        .await
        .map_err(|e| ApiError::Internal(format!("a state store query did not finish: {e}")))??;
    let rows: Vec<TenantRow> = rows
        .into_iter()
        .filter(|r| state.as_deref().is_none_or(|s| r.state == s))
        .collect();
    Ok(Json(json!({"total": rows.len(), "tenants": rows})).into_response())
}
