//! `/` of a daemon that audits several tenants: every tenant and how it stands (its breaker, its
//! last complete audit, its open findings by severity, who is locked out now), and the rules
//! failed across tenants, each with the tenants failing it ("which tenants fail rule X"). With
//! `?tenant=`, or with one tenant, `/` is that tenant's overview. Aggregates only: the kept
//! finding counts, never the findings.

use std::sync::Arc;

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use chrono::Utc;

use super::{encode, rfc3339, when, Chrome, Timing, WebError};
use crate::daemon::Daemon;
use crate::http::tenants::TenantRow;

/// `/`: the tenants overview, or one tenant's overview.
pub async fn home(
    State(d): State<Arc<Daemon>>,
    RawQuery(query): RawQuery,
) -> Result<Response, WebError> {
    let key = crate::http::tenant_param(query.as_deref());
    if key.is_some() || !d.multi() {
        let s = d
            .tenant(key.as_deref())
            .map_err(|e| super::bad_parameter("tenant", e.to_string()))?;
        return super::overview::page(super::Tenant(s)).await;
    }
    super::page(&d, |d, t| build(d, t)).await
}

/// One tenant's row as the page shows it.
pub struct Row {
    pub name: String,
    pub tenant_id: String,
    pub href: String,
    pub state: &'static str,
    pub failures: u32,
    pub backoff_until: Option<(String, String)>,
    pub last_error: String,
    pub last_complete: Option<(String, String)>,
    pub open: i64,
    /// (severity, open) in the catalogue's order of severity, most severe first.
    pub by_severity: Vec<(String, i64)>,
    pub locked_out: i64,
    pub running: bool,
}

/// One rule failed in at least one tenant.
pub struct RuleAcross {
    pub id: String,
    pub title: String,
    pub severity: String,
    pub open: i64,
    /// (tenant name, link to the rule's page in that tenant, open findings), the most first.
    pub tenants: Vec<(String, String, i64)>,
}

#[derive(Template)]
#[template(path = "tenants.html")]
pub struct TenantsPage {
    pub chrome: Chrome,
    pub rows: Vec<Row>,
    pub rules: Vec<RuleAcross>,
    pub failing: usize,
    pub severities: [&'static str; 4],
}

const SEVERITIES: [&str; 4] = ["critical", "high", "medium", "low"];

fn build(d: &Daemon, t: &mut Timing) -> Result<TenantsPage, WebError> {
    let rows = t.db(|| crate::http::tenants::rows(d, None))?;
    Ok(page_of(rows))
}

/// The page from the tenants' rows (pure: the unit tests give it rows).
pub fn page_of(rows: Vec<TenantRow>) -> TenantsPage {
    let mut rules: Vec<RuleAcross> = Vec::new();
    for rule in crate::evaluate::CATALOGUE.iter() {
        let mut tenants: Vec<(String, String, i64)> = rows
            .iter()
            .filter_map(|r| {
                let n = r.open_by_rule.get(rule.id).copied().unwrap_or(0);
                (n > 0).then(|| {
                    let href = format!("/rules/{}?tenant={}", encode(rule.id), encode(&r.name));
                    (r.name.clone(), href, n)
                })
            })
            .collect();
        if tenants.is_empty() {
            continue;
        }
        tenants.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        rules.push(RuleAcross {
            id: rule.id.to_string(),
            title: rule.title.to_string(),
            severity: rule.severity.to_string(),
            open: tenants.iter().map(|(_, _, n)| n).sum(),
            tenants,
        });
    }
    // The rules failed by the most tenants first, then by open findings.
    rules.sort_by(|a, b| {
        b.tenants
            .len()
            .cmp(&a.tenants.len())
            .then(b.open.cmp(&a.open))
            .then(a.id.cmp(&b.id))
    });
    let now = Utc::now();
    let failing = rows
        .iter()
        .filter(|r| r.state == "failing" || r.state == "backed-off")
        .count();
    let rows = rows
        .into_iter()
        .map(|r| Row {
            href: format!("/?tenant={}", encode(&r.name)),
            by_severity: SEVERITIES
                .iter()
                .map(|s| {
                    (
                        s.to_string(),
                        r.open_by_severity.get(*s).copied().unwrap_or(0),
                    )
                })
                .collect(),
            name: r.name,
            tenant_id: r.tenant_id,
            state: r.state,
            failures: r.consecutive_failures,
            backoff_until: r
                .backoff_until
                .filter(|u| *u > now)
                .map(|u| (when(u), rfc3339(u))),
            last_error: r.last_error.unwrap_or_default(),
            last_complete: r.last_complete.map(|u| (when(u), rfc3339(u))),
            open: r.open,
            locked_out: r.locked_out,
            running: r.running,
        })
        .collect();
    TenantsPage {
        chrome: Chrome {
            tenant: String::new(),
            tenant_param: String::new(),
            all_tenants: true,
            title: "Tenants".into(),
            nav: "overview",
            query: String::new(),
            version: env!("CARGO_PKG_VERSION"),
        },
        rows,
        rules,
        failing,
        severities: SEVERITIES,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn row(name: &str, state: &'static str, by_rule: &[(&str, i64)]) -> TenantRow {
        TenantRow {
            name: name.into(),
            tenant_id: format!("{name}-id"),
            state,
            running: false,
            consecutive_failures: u32::from(state == "backed-off") * 3,
            backoff_until: (state == "backed-off")
                .then(|| Utc::now() + chrono::Duration::minutes(5)),
            last_error: (state == "backed-off").then(|| "<b>token refused</b>".to_string()),
            last_attempt: None,
            last_complete: None,
            open: by_rule.iter().map(|(_, n)| n).sum(),
            open_by_severity: BTreeMap::from([(
                "high".to_string(),
                by_rule.iter().map(|(_, n)| n).sum(),
            )]),
            rule_open: None,
            locked_out: 0,
            open_by_rule: by_rule.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
        }
    }

    #[test]
    fn rules_list_the_tenants_failing_them_most_tenants_first() {
        let ids: Vec<&str> = crate::evaluate::CATALOGUE
            .iter()
            .map(|r| r.id)
            .take(2)
            .collect();
        let (a, b) = (ids[0], ids[1]);
        let page = page_of(vec![
            row("contoso", "ok", &[(a, 3), (b, 1)]),
            row("fabrikam", "ok", &[(b, 7)]),
            row("<script>x</script>", "backed-off", &[]),
        ]);
        assert_eq!(page.failing, 1);
        assert_eq!(page.rules.len(), 2);
        // b is failed by two tenants, so it comes first; fabrikam has the most of it.
        assert_eq!(page.rules[0].id, b);
        let names: Vec<&str> = page.rules[0].tenants.iter().map(|t| t.0.as_str()).collect();
        assert_eq!(names, ["fabrikam", "contoso"]);
        assert_eq!(page.rules[0].open, 8);
        assert_eq!(
            page.rules[0].tenants[0].1,
            format!("/rules/{b}?tenant=fabrikam")
        );
        assert_eq!(page.rules[1].id, a);
        let html = page.render().expect("renders");
        assert!(!html.contains("<script>x"), "a tenant name is text");
        assert!(!html.contains("<b>token"), "an error is text");
        assert!(html.contains("backed-off"));
        assert!(
            html.contains("href=\"/?tenant=%3Cscript%3Ex%3C%2Fscript%3E\""),
            "{html}"
        );
    }
}
