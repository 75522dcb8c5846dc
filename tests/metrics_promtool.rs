//! The `/metrics` exposition of a real audit passes `promtool check metrics` with no warning.
//! promtool comes from Debian's `prometheus` package (scripts/test installs it); under CI=true a
//! missing promtool fails the test instead of skipping it.

use std::io::Write;
use std::process::{Command, Stdio};

use graph_sim::Profile;
use mfa_auditor::metrics::Metrics;
use mfa_auditor::state::Store;

mod common;

fn promtool() -> Option<&'static str> {
    let found = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some("promtool");
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "promtool is missing: install Debian's prometheus package (scripts/test does)"
    );
    eprintln!("skipping: promtool is not installed (scripts/test installs it)");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_of_a_real_audit_pass_promtool_check_metrics() {
    let Some(promtool) = promtool() else { return };
    let sim = common::sim(1500, 31, Profile::Realistic, |_| {}).await;
    let config = common::config(&sim, "");
    let client = common::client_with(&sim, config.client_config());
    let report = mfa_auditor::audit::run(&config, &client).await;
    assert!(report.complete);
    let store = Store::in_memory().expect("store");
    store.record(&report, 0).expect("record");
    let metrics = Metrics::new(&config.tenant.tenant_id);
    metrics.observe(
        &report,
        &config.rules,
        &store
            .oldest_open_by_rule(&config.tenant.tenant_id)
            .expect("oldest open findings"),
    );
    let text = metrics.render(Some(client.stats()));
    assert!(text.contains("entra_users_by_mfa_families{"), "{text}");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool finishes");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics:\n{said}"
    );
}
