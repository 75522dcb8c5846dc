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
    // The watcher's figures too (as a running watcher publishes them).
    let watcher = metrics.watcher();
    watcher.read("sign-ins", true, 3, Some(12.0), false);
    watcher.detections(
        &[(mfa_auditor::watch::LockoutState::LockedOut, 1)],
        &[(500121, 1)],
        1,
    );
    watcher.recorded(
        &[(mfa_auditor::watch::LockoutState::LockedOut, 1)],
        &[],
        2,
        1,
    );
    let text = metrics.render(Some(client.stats()));
    assert!(text.contains("entra_users_by_mfa_families{"), "{text}");
    assert!(
        text.contains("entra_lockout_detection_error_codes{"),
        "{text}"
    );
    let (ok, said) = promtool_says(promtool, &text);
    assert!(
        ok && said.trim().is_empty(),
        "promtool check metrics:\n{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_scrape_of_two_tenants_passes_promtool_check_metrics() {
    let Some(promtool) = promtool() else { return };
    let mut parts = Vec::new();
    for (seed, profile, id) in [
        (
            31,
            Profile::Realistic,
            "0c0c0c0c-5f4e-4c3b-9a2d-1e0f9c8b7a65",
        ),
        (
            32,
            Profile::WeakPolicy,
            "0f0f0f0f-5f4e-4c3b-9a2d-1e0f9c8b7a65",
        ),
    ] {
        let sim = common::sim(300, seed, profile, |c| c.tenant_id = id.into()).await;
        let config = common::config(&sim, "");
        let client = common::client_with(&sim, config.client_config());
        let report = mfa_auditor::audit::run(&config, &client).await;
        assert!(report.complete);
        let metrics = Metrics::new(id);
        metrics.observe(&report, &config.rules, &Default::default());
        metrics
            .watcher()
            .read("sign-ins", true, 3, Some(12.0), false);
        metrics.tenant_state(&format!("t{seed}"), 2, Some(chrono::Utc::now()));
        parts.push((metrics, client));
    }
    let text = mfa_auditor::metrics::render_many(parts.iter().map(|(m, c)| (m, Some(c.stats()))));
    for id in ["0c0c0c0c", "0f0f0f0f"] {
        assert!(
            text.contains(&format!("entra_users{{tenant=\"{id}-")),
            "{id}: {text}"
        );
    }
    assert_eq!(text.matches("# TYPE entra_users gauge").count(), 1);
    let (ok, said) = promtool_says(promtool, &text);
    assert!(
        ok && said.trim().is_empty(),
        "promtool check metrics:\n{said}"
    );
}

/// `promtool check metrics` on a text, or why it complained.
fn promtool_says(promtool: &str, text: &str) -> (bool, String) {
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
    (out.status.success(), said)
}

#[test]
fn the_policy_prediction_series_pass_promtool_check_metrics() {
    use mfa_auditor::evaluate::predict::PolicyLockouts;
    use mfa_auditor::evaluate::SsprReadiness;
    use mfa_auditor::report::{Posture, Report, SmartLockoutFigures, Summary};
    let Some(promtool) = promtool() else { return };
    let now = chrono::Utc::now();
    let report = Report {
        tenant: "t1".into(),
        complete: true,
        started_at: now,
        finished_at: now,
        users_in_scope: 3,
        findings: vec![],
        excepted: vec![],
        skipped: vec![],
        incomplete_reasons: vec![],
        summary: Summary {
            predicted_lockouts: Some(vec![PolicyLockouts {
                policy_id: "0b1c2d3e-0000-4000-8000-000000000001".into(),
                policy: "Admins: \"phishing-resistant\" \\ strict".into(),
                state: "enabledForReportingButNotEnforced".into(),
                applies_to: 3,
                locked_out: 2,
                undecided: 0,
            }]),
            ..Summary::default()
        },
        posture: Posture {
            sspr: Some(SsprReadiness {
                enabled: 3,
                registered: 2,
                capable: 2,
                not_ready: 1,
            }),
            smart_lockout: Some(SmartLockoutFigures {
                threshold: 10,
                duration_seconds: 60,
                source: "default".into(),
            }),
            ..Posture::default()
        },
    };
    let metrics = Metrics::new("t1");
    metrics.observe(
        &report,
        &mfa_auditor::evaluate::RulesConfig::default(),
        &Default::default(),
    );
    let text = metrics.render(None);
    for name in [
        "entra_ca_policy_predicted_lockouts{",
        "entra_ca_policy_applies_users{",
        "entra_sspr_users{",
        "entra_smart_lockout_threshold{",
        "entra_smart_lockout_duration_seconds{",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    let (ok, said) = promtool_says(promtool, &text);
    assert!(
        ok && said.trim().is_empty(),
        "promtool check metrics:\n{said}"
    );
}
