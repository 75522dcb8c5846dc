//! The alerting rules: `promtool check rules` and `promtool test rules` (every alert fires on
//! its case and stays quiet on the others); the README's Alertmanager routing passes amtool.
//! Under CI=true a missing promtool or amtool fails.

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
    assert!(ok && out.contains("SUCCESS: 25 rules found"), "{out}");
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
    assert_eq!(alerts.len(), 25);
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
        alerts.len(),
        "every alert has a severity"
    );
}

#[test]
fn the_readmes_alertmanager_config_is_valid() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let start = readme
        .find("```yaml\n# alertmanager.yml\n")
        .expect("the README shows an alertmanager.yml");
    let block = &readme[start + "```yaml\n".len()..];
    let block = &block[..block.find("```").expect("the block ends")];
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alertmanager.yml");
    std::fs::write(&path, block).expect("write");
    let out = match Command::new("amtool")
        .arg("check-config")
        .arg(&path)
        .output()
    {
        Ok(o) => o,
        Err(_) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "amtool is missing: install Debian's prometheus-alertmanager (scripts/test does)"
            );
            eprintln!("skipping: amtool is not installed");
            return;
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("SUCCESS"), "{text}");
}

/// With many tenants in one Prometheus, an alert must stay one tenant's: every aggregation and
/// every vector match in the rules keeps (or matches on) `tenant`, so one tenant's figures never
/// add to, or hide, another's.
#[test]
fn every_aggregation_and_match_keeps_the_tenant() {
    let rules = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/alerts/mfa-auditor.rules.yml"
    ))
    .expect("rules");
    let mut clauses = 0;
    for keyword in [" by (", " on (", " by(", " on("] {
        for (i, _) in rules.match_indices(keyword) {
            let rest = &rules[i + keyword.len()..];
            let labels = rest.split(')').next().unwrap_or("");
            assert!(
                labels.split(',').any(|l| l.trim() == "tenant"),
                "a clause without tenant: {}{labels})",
                keyword.trim_start()
            );
            clauses += 1;
        }
    }
    assert!(clauses >= 10, "{clauses} clauses found");
    for bare in ["sum(", "max(", "min(", "count(", "avg("] {
        assert!(
            !rules.contains(&format!(" {bare}")) && !rules.contains(&format!("({bare}")),
            "an aggregation over every tenant: {bare}"
        );
    }
}
