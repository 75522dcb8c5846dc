//! End to end: an audit of a generated tenant yields exactly the findings its ground truth
//! implies, rule by rule and user by user; scope presets and exceptions change it as they should.
//!
//! The expectations below are computed from the simulator's ground truth on their own, from the
//! rules' definitions in DESIGN §4 — not by calling the evaluator.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use graph_sim::{GroundTruth, Profile, SimConfig, SimHandle, TenantSource, TruthUser};
use mfa_auditor::report::Report;
use mfa_auditor::snapshot::{MethodKind, MethodSet, Role};

mod common;
use common::{audit, config, SCALE};

async fn sim(users: usize, seed: u64) -> SimHandle {
    common::sim(users, seed, Profile::Realistic, |_| {}).await
}

const PHONE: [MethodKind; 3] = [
    MethodKind::MobilePhone,
    MethodKind::AlternateMobilePhone,
    MethodKind::OfficePhone,
];

/// The methods the collector can know for a user (detail for admins cannot tell some kinds apart).
fn methods(t: &TruthUser, read_in_detail: bool) -> MethodSet {
    t.methods
        .iter()
        .filter_map(|m| MethodKind::from_report_name(m))
        .filter(|k| !(read_in_detail && *k == MethodKind::SecurityQuestion))
        .map(|k| match (read_in_detail, k) {
            (true, MethodKind::AuthenticatorPasswordless) => MethodKind::AuthenticatorPush,
            (true, MethodKind::PasskeyDeviceBound) => MethodKind::Fido2SecurityKey,
            (true, MethodKind::MacOsSecureEnclaveKey) => MethodKind::PlatformCredential,
            (_, k) => k,
        })
        .collect()
}

fn tracked_roles(t: &TruthUser) -> Vec<Role> {
    t.roles
        .iter()
        .filter_map(|r| Role::from_template_id(r))
        .collect()
}

fn in_default_scope(t: &TruthUser) -> bool {
    t.account_enabled
        && t.user_type == "Member"
        && !t.upn.contains("#EXT#")
        && !t.upn.to_ascii_lowercase().starts_with("package_")
        && !t.upn.starts_with("Sync_")
}

/// (rule, upn) of every user finding the ground truth implies.
fn expected_user_findings(
    truth: &GroundTruth,
    now: DateTime<Utc>,
    scope: impl Fn(&TruthUser) -> bool,
) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut add = |rule: &str, t: &TruthUser| {
        out.insert((rule.to_string(), t.upn.clone()));
    };
    for t in truth.users.iter().filter(|t| scope(t)) {
        let admin = !tracked_roles(t).is_empty() || t.is_admin;
        let m = methods(t, admin);
        let mfa = m.mfa_capable();
        let old_enough = t
            .created
            .is_none_or(|c| now - c >= chrono::Duration::days(14));
        if mfa.is_empty() && old_enough {
            add("no-mfa-method", t);
        }
        if !mfa.is_empty() && mfa.mfa_families() < 2 {
            add("no-backup-method", t);
        }
        if !mfa.is_empty() && mfa.iter().all(|k| PHONE.contains(&k)) {
            add("phone-only", t);
        }
        if admin && !m.has_phishing_resistant() {
            add("admin-not-phishing-resistant", t);
        }
        if let Some(tap) = t.tap.as_ref().filter(|tap| tap.usable) {
            if tap.lifetime_minutes > 480 {
                add("tap-long-lived", t);
            }
            if !tap.usable_once {
                add("tap-multi-use", t);
            }
        }
        let failures = truth
            .sign_ins
            .iter()
            .filter(|s| {
                s.user_id == t.id
                    && s.error_code == 500121
                    && s.created >= now - chrono::Duration::hours(24)
            })
            .count();
        if failures >= 5 {
            add("mfa-failures", t);
        }
        if admin && (t.per_user_mfa == "enabled" || t.per_user_mfa == "enforced") {
            add("per-user-mfa-legacy", t);
        }
        let phone_default = ["sms", "voiceMobile", "voiceAlternateMobile", "voiceOffice"]
            .contains(&t.default_method.as_str());
        if !t.system_preferred_mfa && phone_default && mfa.iter().any(|k| !PHONE.contains(&k)) {
            add("weak-default-method", t);
        }
    }
    out
}

fn user_findings(report: &Report) -> BTreeSet<(String, String)> {
    report
        .findings
        .iter()
        .filter_map(|f| {
            f.user_principal_name
                .as_ref()
                .map(|u| (f.rule.to_string(), u.clone()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_findings_are_exactly_what_the_ground_truth_implies() {
    let sim = sim(4000, 21).await;
    let config = config(&sim, "");
    let report = audit(&sim, &config).await;
    assert!(report.complete, "{:?}", report.incomplete_reasons);
    let truth = sim.ground_truth();
    let expected = expected_user_findings(&truth, report.started_at, in_default_scope);
    let got = user_findings(&report);
    let missing: Vec<_> = expected.difference(&got).collect();
    let extra: Vec<_> = got.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:#?}\nextra {extra:#?}"
    );
    for rule in [
        "no-mfa-method",
        "no-backup-method",
        "phone-only",
        "admin-not-phishing-resistant",
        "weak-default-method",
    ] {
        assert!(
            got.iter().any(|(r, _)| r == rule),
            "the tenant exercises {rule}"
        );
    }
    assert_eq!(
        report.users_in_scope,
        truth.users.iter().filter(|t| in_default_scope(t)).count()
    );

    // Tenant rules, from the truth's policy.
    let tenant: BTreeSet<(&str, &str)> = report
        .findings
        .iter()
        .filter(|f| mfa_auditor::evaluate::is_tenant_subject(&f.subject))
        .map(|f| (f.rule, f.detail.as_str()))
        .collect();
    let rules: BTreeSet<&str> = tenant.iter().map(|(r, _)| *r).collect();
    let p = &truth.policy;
    assert_eq!(rules.contains("tap-policy-disabled"), !p.tap_enabled);
    assert_eq!(
        rules.contains("tap-policy-multi-use"),
        p.tap_enabled && !p.tap_usable_once
    );
    assert_eq!(
        rules.contains("weak-methods-enabled"),
        p.enabled_methods
            .iter()
            .any(|m| ["Sms", "Voice", "Email"].contains(&m.as_str()))
    );
    assert!(
        rules.contains("break-glass-count"),
        "no emergency-access account is configured"
    );
    assert_eq!(
        rules.contains("system-preferred-mfa-off"),
        p.system_preferred != "enabled"
    );
    assert_eq!(
        rules.contains("registration-campaign-off"),
        p.registration_campaign != "enabled"
    );
    assert_eq!(
        rules.contains("migration-incomplete"),
        p.migration_state != "migrationComplete"
    );
    assert!(
        !rules.contains("no-mfa-enforcement"),
        "the realistic tenant requires MFA for all in CA"
    );
    let recovery_admins = truth
        .users
        .iter()
        .filter(|t| t.account_enabled && tracked_roles(t).iter().any(|r| r.can_reset_mfa()))
        .filter(|t| methods(t, true).mfa_families() >= 2)
        .count();
    assert_eq!(
        rules.contains("too-few-recovery-admins"),
        recovery_admins < 2
    );
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scope_presets_and_exceptions_change_the_result() {
    let sim = sim(3000, 22).await;
    let truth = sim.ground_truth();
    let baseline = audit(&sim, &config(&sim, "")).await;

    // Guests and the preset-excluded accounts come into scope when asked for.
    let wide = audit(&sim, &config(&sim, "[scope]\nuser_types = [\"member\", \"guest\"]\nexclude_external = false\nexclude_package_accounts = false\nexclude_sync_accounts = false\n")).await;
    let wide_scope = |t: &TruthUser| t.account_enabled;
    assert_eq!(
        wide.users_in_scope,
        truth.users.iter().filter(|t| wide_scope(t)).count()
    );
    assert!(wide.users_in_scope > baseline.users_in_scope);
    assert_eq!(
        user_findings(&wide),
        expected_user_findings(&truth, wide.started_at, wide_scope)
    );
    assert!(baseline
        .summary
        .users_out_of_scope
        .get("disabled")
        .is_some_and(|n| *n > 0));

    // An exception accepts one finding; an expired one does not.
    let mut open = baseline
        .findings
        .iter()
        .filter(|f| f.rule == "no-backup-method");
    let (a, b) = (
        open.next().expect("a finding"),
        open.next().expect("another"),
    );
    let (ua, ub) = (
        a.user_principal_name.clone().expect("upn"),
        b.user_principal_name.clone().expect("upn"),
    );
    let today = baseline.started_at.date_naive();
    let extra = format!(
        "[[exceptions]]\nrule = \"no-backup-method\"\nuser = \"{ua}\"\nreason = \"travel phone\"\nexpires = {}\n\n[[exceptions]]\nrule = \"no-backup-method\"\nuser = \"{ub}\"\nreason = \"old ticket\"\nexpires = {}\n",
        today + chrono::Duration::days(30),
        today - chrono::Duration::days(1)
    );
    let excepted = audit(&sim, &config(&sim, &extra)).await;
    assert_eq!(excepted.excepted.len(), 1);
    assert_eq!(
        excepted.excepted[0].finding.user_principal_name.as_deref(),
        Some(ua.as_str())
    );
    assert_eq!(excepted.excepted[0].exception_reason, "travel phone");
    assert!(!excepted
        .findings
        .iter()
        .any(|f| f.user_principal_name.as_deref() == Some(ua.as_str())
            && f.rule == "no-backup-method"));
    let still = excepted
        .findings
        .iter()
        .find(|f| {
            f.user_principal_name.as_deref() == Some(ub.as_str()) && f.rule == "no-backup-method"
        })
        .expect("still open");
    assert!(
        still.detail.contains("exception expired on"),
        "{}",
        still.detail
    );
    assert_eq!(excepted.findings.len() + 1, baseline.findings.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_scope_follows_transitive_membership_and_needs_its_permission() {
    let sim = sim(2500, 23).await;
    let truth = sim.ground_truth();
    let group = |name: &str| {
        truth
            .groups
            .iter()
            .find(|g| g.display_name == name)
            .expect("group")
            .clone()
    };
    let (contractors, pilot) = (group("Contractors"), group("MFA Pilot"));
    let extra = format!(
        "[scope]\ninclude_groups = [\"{}\"]\nexclude_groups = [\"{}\"]\n",
        contractors.id, pilot.id
    );
    let report = audit(&sim, &config(&sim, &extra)).await;
    assert!(report.complete, "{:?}", report.incomplete_reasons);
    let scope = |t: &TruthUser| {
        in_default_scope(t) && contractors.members.contains(&t.id) && !pilot.members.contains(&t.id)
    };
    let expected_in_scope = truth.users.iter().filter(|t| scope(t)).count();
    assert!(
        expected_in_scope > 50 && expected_in_scope < 500,
        "{expected_in_scope}"
    );
    assert_eq!(report.users_in_scope, expected_in_scope);
    assert_eq!(
        user_findings(&report),
        expected_user_findings(&truth, report.started_at, scope)
    );
    assert!(report
        .summary
        .users_out_of_scope
        .get("not in include_groups")
        .is_some_and(|n| *n > 1000));
    assert!(report
        .summary
        .users_out_of_scope
        .contains_key("in exclude_groups"));

    // Without GroupMember.Read.All the scope is unknown: user rules are skipped, never passed.
    let denied = graph_sim::start(
        SimConfig {
            tenant: TenantSource::Generated {
                users: 300,
                seed: 23,
                profile: Profile::Realistic,
            },
            time_scale: SCALE,
            granted_roles: graph_sim::ALL_READ_PERMISSIONS
                .iter()
                .filter(|p| **p != "GroupMember.Read.All")
                .map(|p| p.to_string())
                .collect(),
            ..SimConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .expect("sim");
    let report = audit(&denied, &config(&denied, &extra)).await;
    assert!(
        report
            .findings
            .iter()
            .all(|f| mfa_auditor::evaluate::is_tenant_subject(&f.subject)),
        "no user finding without a known scope"
    );
    let skipped: Vec<&str> = report.skipped.iter().map(|s| s.rule).collect();
    assert!(
        skipped.contains(&"no-backup-method") && skipped.contains(&"phone-only"),
        "{skipped:?}"
    );
    assert!(report.skipped.iter().all(|s| !s.reason.is_empty()));
    assert!(
        report
            .skipped
            .iter()
            .any(|s| s.reason.contains("GroupMember.Read.All")),
        "{:?}",
        report.skipped
    );
}
