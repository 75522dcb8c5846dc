//! One audit, start to finish: collect → evaluate → exceptions → report. The CLI's `audit` and
//! (later) the daemon's scheduled runs both call [`run`].

use chrono::Utc;

use crate::collect;
use crate::config::Config;
use crate::evaluate::{self, exceptions};
use crate::graph::GraphClient;
use crate::report::Report;

/// Audits the tenant once. Never fails: an incomplete collection gives an incomplete report.
pub async fn run(config: &Config, client: &GraphClient) -> Report {
    let started_at = Utc::now();
    let snapshot = collect::collect(
        client,
        &config.collect_options(),
        started_at,
        &config.tenant.tenant_id,
    )
    .await;
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
