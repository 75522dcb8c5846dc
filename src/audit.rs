//! One audit, start to finish: collect → evaluate → exceptions → report. The CLI's `audit` and
//! (later) the daemon's scheduled runs both call [`run`].

use chrono::{DateTime, Utc};

use crate::collect;
use crate::config::Config;
use crate::evaluate::exceptions::Judged;
use crate::evaluate::{self, exceptions};
use crate::graph::GraphClient;
use crate::report::{Report, Tally};
use crate::snapshot::Snapshot;

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
    let read = read_tenant(config, client, previous_audit).await;
    judge(config, &read)
}

/// A tenant as one audit read it.
pub struct Read {
    pub snapshot: Snapshot,
    pub started_at: DateTime<Utc>,
}

/// The collecting half of an audit. Never fails: what could not be read is a gap.
pub async fn read_tenant(
    config: &Config,
    client: &GraphClient,
    previous_audit: Option<DateTime<Utc>>,
) -> Read {
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
    Read {
        snapshot,
        started_at,
    }
}

/// The judging half of an audit: rules, then exceptions, into a report holding every finding.
pub fn judge(config: &Config, read: &Read) -> Report {
    let mut evaluation = evaluate::evaluate(
        &read.snapshot,
        &config.rules,
        config.user_scope(),
        &config.break_glass.accounts,
        read.started_at,
    );
    let findings = std::mem::take(&mut evaluation.findings);
    let (open, excepted) = exceptions::apply(findings, config.exception_list(), read.started_at);
    Report::new(
        &read.snapshot,
        read.started_at,
        Utc::now(),
        evaluation,
        open,
        excepted,
    )
}

/// [`judge`], handing each finding to `sink` as it is judged (after the exceptions) instead of
/// keeping it: the report holds counts only, and at most `critical_cap` critical (rule, user)
/// pairs. This is how the daemon records a million users' findings without holding them.
pub fn judge_into(
    config: &Config,
    read: &Read,
    critical_cap: usize,
    sink: &mut dyn FnMut(Judged),
) -> Report {
    let mut tally = Tally::new(critical_cap);
    let exceptions = config.exception_list();
    let evaluation = evaluate::evaluate_into(
        &read.snapshot,
        &config.rules,
        config.user_scope(),
        &config.break_glass.accounts,
        read.started_at,
        &mut |f| {
            let judged = exceptions::judge(f, exceptions, read.started_at);
            match &judged {
                Judged::Open(f) => tally.open(f),
                Judged::Excepted(e) => tally.excepted(&e.finding),
            }
            sink(judged);
        },
    );
    Report::from_tally(
        &read.snapshot,
        read.started_at,
        Utc::now(),
        evaluation,
        tally,
    )
}
