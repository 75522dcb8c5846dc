//! The alerting rules: `promtool check rules` and `promtool test rules` (every alert fires on
//! its case and stays quiet on the others). Under CI=true a missing promtool fails.

use std::process::Command;

fn promtool(args: &[&str]) -> Option<(bool, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/alerts");
    match Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
    {
        Ok(o) => Some((
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )),
        Err(_) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool is missing: install Debian's prometheus package (scripts/test does)"
            );
            eprintln!("skipping: promtool is not installed");
            None
        }
    }
}

#[test]
fn the_rules_are_valid_and_their_unit_tests_pass() {
    let Some((ok, out)) = promtool(&["check", "rules", "mfa-auditor.rules.yml"]) else {
        return;
    };
    assert!(ok && out.contains("SUCCESS: 14 rules found"), "{out}");
    let Some((ok, out)) = promtool(&["test", "rules", "mfa-auditor.tests.yml"]) else {
        return;
    };
    assert!(ok && out.contains("SUCCESS"), "{out}");
}

#[test]
fn every_alert_has_a_test_a_severity_and_a_runbook_section() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"));
    let rules =
        std::fs::read_to_string(format!("{dir}/alerts/mfa-auditor.rules.yml")).expect("rules");
    let tests =
        std::fs::read_to_string(format!("{dir}/alerts/mfa-auditor.tests.yml")).expect("tests");
    let runbook = std::fs::read_to_string(format!("{dir}/docs/runbook.md")).expect("runbook");
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert_eq!(alerts.len(), 14);
    for a in &alerts {
        assert!(
            tests.contains(&format!("alertname: {a}")),
            "{a} has no promtool test"
        );
    }
    for anchor in rules.lines().filter_map(|l| l.split("runbook.md#").nth(1)) {
        let anchor = anchor.trim_end_matches('"');
        assert!(
            runbook.contains(&format!("## {anchor}\n")),
            "the runbook has no section #{anchor}"
        );
    }
    assert_eq!(
        rules.matches("severity: ").count(),
        14,
        "every alert has a severity"
    );
}
