//! The report's formats against their specifications: SARIF validates against the official
//! SARIF 2.1.0 JSON schema, CSV round-trips through a real CSV reader, JSON has DESIGN §7's keys.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use graph_sim::Profile;
use mfa_auditor::report::Report;

/// The SARIF 2.1.0 schema as Microsoft ships it (npm package @microsoft/jest-sarif), fetched
/// once from the npm registry into the target directory.
fn sarif_schema() -> serde_json::Value {
    static SCHEMA: OnceLock<serde_json::Value> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sarif-schema");
            let file = dir.join("package/lib/schemas/sarif-2.1.0-rtm.5.json");
            if !file.exists() {
                std::fs::create_dir_all(&dir).expect("schema dir");
                let packed = Command::new("npm")
                    .args([
                        "pack",
                        "@microsoft/jest-sarif@1.0.0-beta.0",
                        "--silent",
                        "--pack-destination",
                    ])
                    .arg(&dir)
                    .output()
                    .expect(
                        "npm runs (scripts/test installs it): it fetches the official SARIF schema",
                    );
                assert!(
                    packed.status.success(),
                    "npm pack failed: {}",
                    String::from_utf8_lossy(&packed.stderr)
                );
                let tarball = dir.join(String::from_utf8_lossy(&packed.stdout).trim());
                let untar = Command::new("tar")
                    .arg("xzf")
                    .arg(&tarball)
                    .arg("-C")
                    .arg(&dir)
                    .status()
                    .expect("tar");
                assert!(untar.success());
            }
            let text = std::fs::read_to_string(&file).expect("schema file in the package");
            serde_json::from_str(&text).expect("schema is JSON")
        })
        .clone()
}

/// The SARIF 2.1.0 schema, compiled.
fn sarif_validator() -> jsonschema::Validator {
    let mut schema = sarif_schema();
    // Erratum in the published schema: the `language` patterns (run, toolComponent) carry a stray
    // `]` that strict regex engines refuse when the schema is compiled. We emit no `language`;
    // escape it wherever it stands and keep every other rule of the schema.
    let fixed = escape_language_patterns(&mut schema);
    assert!(
        fixed >= 2,
        "the erratum is still there ({fixed} patterns fixed)"
    );
    jsonschema::validator_for(&schema).expect("the schema compiles")
}

mod common;

/// The columns of the CSV, which are also the keys of a JSON finding (DESIGN §7).
const COLUMNS: [&str; 7] = [
    "rule",
    "severity",
    "subject",
    "user_id",
    "user_principal_name",
    "detail",
    "remediation",
];

async fn report() -> Report {
    let sim = common::sim(800, 8, Profile::WeakPolicy, |_| {}).await;
    common::audit(&sim, &common::config(&sim, "")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sarif_validates_against_the_sarif_2_1_0_schema() {
    let report = report().await;
    assert!(report.findings.len() > 10);
    // The weak-policy tenant has system-preferred MFA off: read from the beta policy.
    assert!(report
        .findings
        .iter()
        .any(|f| f.rule == "system-preferred-mfa-off"));
    let sarif: serde_json::Value = serde_json::from_str(&report.to_sarif()).expect("SARIF is JSON");
    let validator = sarif_validator();
    let errors: Vec<String> = validator
        .iter_errors(&sarif)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "SARIF does not validate: {errors:#?}");
    let run = &sarif["runs"][0];
    assert_eq!(
        run["tool"]["driver"]["rules"].as_array().map(Vec::len),
        Some(mfa_auditor::evaluate::CATALOGUE.len())
    );
    assert_eq!(
        run["results"].as_array().map(Vec::len),
        Some(report.findings.len())
    );
    // A document the schema must reject, so the check above can fail.
    let mut broken = sarif.clone();
    broken["runs"][0]["results"][0]["level"] = serde_json::json!("catastrophic");
    assert!(!validator.is_valid(&broken));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_round_trips_and_json_has_the_documented_keys() {
    let report = report().await;
    let csv = report.to_csv();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, COLUMNS);
    let rows: Vec<csv::StringRecord> = reader
        .records()
        .collect::<Result<_, _>>()
        .expect("every row parses");
    assert_eq!(rows.len(), report.findings.len());
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.detail.contains(',') || f.remediation.contains('"')),
        "quoting is exercised"
    );
    for (row, f) in rows.iter().zip(&report.findings) {
        assert_eq!(&row[0], f.rule);
        assert_eq!(&row[1], f.severity.as_str());
        assert_eq!(&row[2], f.subject);
        assert_eq!(&row[4], f.user_principal_name.as_deref().unwrap_or(""));
        assert_eq!(&row[5], f.detail);
        assert_eq!(&row[6], f.remediation);
    }
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("JSON");
    for key in [
        "tenant",
        "complete",
        "started_at",
        "finished_at",
        "users_in_scope",
        "findings",
        "summary",
    ] {
        assert!(json.get(key).is_some(), "{key} missing");
    }
    let f = &json["findings"][0];
    for key in COLUMNS {
        assert!(f.get(key).is_some(), "findings[].{key} missing");
    }
    assert!(json["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .any(|f| f["subject"] == "tenant" && f["user_id"].is_null()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_if_sarif_validates_and_its_csv_round_trips() {
    use mfa_auditor::whatif::{what_if, Change};
    let sim = common::sim(400, 2026, Profile::Realistic, |_| {}).await;
    let config = common::config(&sim, "");
    let client = common::client_with(&sim, config.client_config());
    let read = mfa_auditor::audit::read_tenant(&config, &client, None).await;
    let changes = [
        Change::disable("sms").expect("known"),
        Change::disable("voice").expect("known"),
    ];
    let answer = what_if(
        &read.snapshot,
        &changes,
        &config.rules,
        config.user_scope(),
        &config.break_glass.accounts,
        read.started_at,
    )
    .expect("what-if");
    let users: usize = answer.groups.iter().map(|g| g.users.len()).sum();
    assert!(users > 10, "{users}");

    let sarif: serde_json::Value = serde_json::from_str(&answer.to_sarif()).expect("SARIF is JSON");
    let validator = sarif_validator();
    let errors: Vec<String> = validator
        .iter_errors(&sarif)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "SARIF does not validate: {errors:#?}");
    assert_eq!(
        sarif["runs"][0]["results"].as_array().map(Vec::len),
        Some(users)
    );

    let csv = answer.to_csv();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(
        reader.headers().expect("header").iter().collect::<Vec<_>>(),
        [
            "rule",
            "severity",
            "reason",
            "report_only",
            "break_glass",
            "user_id",
            "user_principal_name",
            "display_name",
            "methods",
            "detail"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader
        .records()
        .collect::<Result<_, _>>()
        .expect("every row parses");
    assert_eq!(rows.len(), users);
    let first = &answer.groups[0];
    assert_eq!(&rows[0][2], first.reason, "the reason has a comma: quoted");
    assert_eq!(&rows[0][6], first.users[0].user_principal_name);
    assert_eq!(&rows[0][9], first.users[0].detail);
}

const BROKEN_LANGUAGE_PATTERN: &str = "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$";

fn escape_language_patterns(v: &mut serde_json::Value) -> usize {
    match v {
        serde_json::Value::Object(map) => {
            let mut n = 0;
            for (k, child) in map.iter_mut() {
                if k == "pattern" && child == BROKEN_LANGUAGE_PATTERN {
                    *child = serde_json::json!("^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}\\]?$");
                    n += 1;
                } else {
                    n += escape_language_patterns(child);
                }
            }
            n
        }
        serde_json::Value::Array(items) => items.iter_mut().map(escape_language_patterns).sum(),
        _ => 0,
    }
}
