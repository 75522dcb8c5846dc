//! One audit, start to finish: collect → evaluate → exceptions → report. The CLI's `audit` and
//! (later) the daemon's scheduled runs both call [`run`].

use chrono::{DateTime, Utc};

use crate::collect;
use crate::config::Config;
use crate::evaluate::{self, exceptions};
use crate::graph::GraphClient;
use crate::report::Report;

/// Audits the tenant once. Never fails: an incomplete collection gives an incomplete report.
pub async fn run(config: &Config, client: &GraphClient) -> Report {
    run_after(config, client, None).await
}

/// [`run`], knowing when the previous complete audit started (Temporary Access Passes issued
/// since then are looked up in the directory audit log; without it, `tap_audit_window` back).
pub async fn run_after(
    config: &Config,
    client: &GraphClient,
    previous_audit: Option<DateTime<Utc>>,
) -> Report {
    let started_at = Utc::now();
    // Every wait for Graph in this audit ends by its deadline (graph.audit_timeout_seconds).
    let client = &client.with_deadline(config.audit_timeout());
    let options = collect::CollectOptions {
        previous_audit,
        ..config.collect_options()
    };
    // The client bounds every wait; this bounds the rest (a Graph that answers, slowly, page
    // after page). Past it the audit is incomplete and nothing it read is used.
    let budget = config.audit_timeout();
    let tenant = &config.tenant.tenant_id;
    let snapshot = match tokio::time::timeout(
        budget,
        collect::collect(client, &options, started_at, tenant),
    )
    .await
    {
        Ok(snapshot) => snapshot,
        Err(_) => {
            let reason = format!(
                "the audit deadline passed ({} s, graph.audit_timeout_seconds) before the tenant was read",
                budget.as_secs()
            );
            tracing::warn!("{reason}");
            collect::nothing_read(tenant, started_at, "audit", &reason)
        }
    };
    let mut evaluation = evaluate::evaluate(
        &snapshot,
        &config.rules,
        config.user_scope(),
        &config.break_glass.accounts,
        started_at,
    );
    let findings = std::mem::take(&mut evaluation.findings);
    let (open, excepted) = exceptions::apply(findings, config.exception_list(), started_at);
    Report::new(
        &snapshot,
        started_at,
        Utc::now(),
        evaluation,
        open,
        excepted,
    )
}
