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

/// The methods the collector can know for a user: all of them with the report (per-user detail
/// is merged into it); on a free tenant only what per-user detail shows, which cannot tell some
/// kinds apart and has no object for security questions or certificate sign-in.
fn methods(t: &TruthUser, detail_only: bool) -> MethodSet {
    t.methods
        .iter()
        .filter_map(|m| MethodKind::from_report_name(m))
        .filter(|k| {
            !(detail_only
                && matches!(
                    k,
                    MethodKind::SecurityQuestion
                        | MethodKind::Certificate
                        | MethodKind::CertificateSingleFactor
                ))
        })
        .map(|k| match (detail_only, k) {
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
        let m = methods(t, false);
        let mfa = m.mfa_capable();
        // The simulator's policy targets all users, so isMfaCapable is the policy's verdict.
        if !mfa.is_empty() && !t.mfa_capable {
            add("method-not-allowed", t);
        }
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

/// The user rules of issue 11 (policy prediction): their expectations are graph-sim's ground
/// truth (`GroundTruth::expected`, its own implementation of the rules' semantics).
const PREDICTION_USER_RULES: [&str; 4] = [
    "policy-unsatisfiable",
    "policy-unsatisfiable-report-only",
    "sspr-not-ready",
    "admin-no-recovery-contact",
];

/// (rule, upn) of every finding of `rules` the ground truth's own prediction names.
fn predicted_user_findings(truth: &GroundTruth, rules: &[&str]) -> BTreeSet<(String, String)> {
    let upn: std::collections::BTreeMap<String, &str> = truth
        .users
        .iter()
        .map(|u| (u.id.to_ascii_lowercase(), u.upn.as_str()))
        .collect();
    let mut out = BTreeSet::new();
    for rule in rules {
        for id in truth.expected(rule).unwrap_or_default() {
            if let Some(u) = upn.get(&id) {
                out.insert((rule.to_string(), u.to_string()));
            }
        }
    }
    out
}

/// The (rule, upn) of the user findings, the prediction rules aside (judged against graph-sim's
/// truth where a test says so).
fn user_findings(report: &Report) -> BTreeSet<(String, String)> {
    all_user_findings(report)
        .into_iter()
        .filter(|(r, _)| !PREDICTION_USER_RULES.contains(&r.as_str()))
        .collect()
}

fn all_user_findings(report: &Report) -> BTreeSet<(String, String)> {
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

/// A simulator that also grants Directory.Read.All (smart lockout's directory settings).
async fn sim_with_directory(users: usize, seed: u64, profile: Profile) -> SimHandle {
    common::sim(users, seed, profile, |c| {
        c.granted_roles.push("Directory.Read.All".into())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_findings_are_exactly_what_the_ground_truth_implies() {
    let sim = sim_with_directory(4000, 21, Profile::Realistic).await;
    let config = config(&sim, "");
    let report = audit(&sim, &config).await;
    assert!(report.complete, "{:?}", report.incomplete_reasons);
    let truth = sim.ground_truth();
    let mut expected = expected_user_findings(&truth, report.started_at, in_default_scope);
    expected.extend(predicted_user_findings(&truth, &PREDICTION_USER_RULES));
    let got = all_user_findings(&report);
    let missing: Vec<_> = expected.difference(&got).collect();
    let extra: Vec<_> = got.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:#?}\nextra {extra:#?}"
    );
    // The realistic tenant requires MFA of all users in CA: it locks out exactly the users
    // with MFA methods none of which the methods policy allows, and its count says so.
    let locked: BTreeSet<&String> = got
        .iter()
        .filter(|(r, _)| r == "policy-unsatisfiable")
        .map(|(_, u)| u)
        .collect();
    let not_allowed: BTreeSet<&String> = got
        .iter()
        .filter(|(r, _)| r == "method-not-allowed")
        .map(|(_, u)| u)
        .collect();
    assert!(!locked.is_empty());
    assert_eq!(locked, not_allowed);
    assert!(
        report.summary.predicted_lockouts.as_ref().is_some_and(|p| p
            .iter()
            .any(|c| c.state == "enabled" && c.locked_out == locked.len() as u64)),
        "{:?}",
        report.summary.predicted_lockouts
    );
    for rule in [
        "no-mfa-method",
        "no-backup-method",
        "phone-only",
        "admin-not-phishing-resistant",
        "weak-default-method",
        "method-not-allowed",
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
        .filter(|t| methods(t, false).mfa_families() >= 2)
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

/// A tenant with admins through a role-assignable group and through PIM eligibility, where one
/// of each has only Authenticator push; `licence` decides whether eligibility can be read.
async fn privileged_sim(licence: graph_sim::Licence) -> (SimHandle, String, String) {
    let mut tenant = graph_sim::generate_at(1200, 31, Profile::Realistic, Utc::now());
    let admins = tenant.add_privileged_access(31);
    let (through_group, eligible_paa) = (admins[0].clone(), admins[6].clone());
    for id in [&through_group, &eligible_paa] {
        let i = tenant.find(id).expect("admin exists");
        tenant.users[i].set_methods(&["microsoftAuthenticatorPush".to_string()]);
    }
    let sim = common::sim(0, 0, Profile::Realistic, |c| {
        c.tenant = TenantSource::Given(Box::new(tenant));
        c.licence = licence;
    })
    .await;
    let upn = |id: &str| {
        sim.ground_truth()
            .users
            .iter()
            .find(|t| t.id == id)
            .map(|t| t.upn.clone())
            .expect("upn")
    };
    let (a, b) = (upn(&through_group), upn(&eligible_paa));
    (sim, a, b)
}

fn detail<'a>(report: &'a Report, rule: &str, upn: &str) -> Option<&'a str> {
    report
        .findings
        .iter()
        .find(|f| f.rule == rule && f.user_principal_name.as_deref() == Some(upn))
        .map(|f| f.detail.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_through_groups_and_pim_eligibility_face_the_admin_rules() {
    let (sim, through_group, eligible) = privileged_sim(graph_sim::Licence::P2).await;
    let report = audit(&sim, &config(&sim, "")).await;
    assert!(report.complete, "{:?}", report.incomplete_reasons);
    let rule = "admin-not-phishing-resistant";
    let d = detail(&report, rule, &through_group).unwrap_or_else(|| {
        panic!("{through_group}, Global Administrator through a group, is flagged")
    });
    assert!(
        d.contains("Global Administrator") && !d.contains("(eligible)"),
        "{d}"
    );
    let d = detail(&report, rule, &eligible)
        .unwrap_or_else(|| panic!("{eligible}, eligible in PIM, is flagged"));
    assert!(
        d.contains("Privileged Authentication Administrator (eligible)"),
        "{d}"
    );
    assert!(
        report.summary.partial.is_empty(),
        "{:?}",
        report.summary.partial
    );
    let sps = report
        .posture
        .role_service_principals
        .as_ref()
        .expect("roles were read");
    assert_eq!(sps.get("Global Administrator"), Some(&2));
    assert_eq!(sps.get("Security Administrator"), Some(&1));
    assert!(
        report
            .findings
            .iter()
            .all(|f| !f.detail.contains("Contoso Provisioning")),
        "service principals are not judged as users"
    );

    // Without P2 the eligible admin is not known: active ones are still judged, and the report
    // says what the admin rules were judged without.
    let (sim, through_group, eligible) = privileged_sim(graph_sim::Licence::P1).await;
    let report = audit(&sim, &config(&sim, "")).await;
    assert!(report.complete, "{:?}", report.incomplete_reasons);
    assert!(detail(&report, rule, &through_group).is_some());
    assert!(detail(&report, rule, &eligible).is_none());
    let partial: Vec<&str> = report.summary.partial.iter().map(|p| p.rule).collect();
    assert!(
        partial.contains(&rule) && partial.contains(&"too-few-recovery-admins"),
        "{partial:?}"
    );
    assert!(report
        .summary
        .partial
        .iter()
        .all(|p| p.reason.contains("role-eligibility") && p.reason.contains("P2")));
    assert!(report.to_table().contains("judged on part of their data"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_tenant_gets_the_same_user_findings_as_a_licensed_one() {
    let licensed = sim(3000, 24).await;
    let free = common::sim(3000, 24, Profile::Realistic, |c| {
        c.licence = graph_sim::Licence::Free
    })
    .await;
    let a = audit(&licensed, &config(&licensed, "")).await;
    let b = audit(&free, &config(&free, "")).await;
    assert!(
        a.complete && b.complete,
        "{:?} {:?}",
        a.incomplete_reasons,
        b.incomplete_reasons
    );
    let truth = licensed.ground_truth();
    let same = |t: &GroundTruth| -> Vec<(String, Vec<String>, Vec<String>)> {
        t.users
            .iter()
            .map(|u| (u.upn.clone(), u.methods.clone(), u.roles.clone()))
            .collect()
    };
    assert!(
        same(&truth) == same(&free.ground_truth()),
        "same seed, same users"
    );

    // What only the registration report (default method) or the sign-in logs can judge is
    // skipped on the free tenant, and says why.
    let skipped = |r: &Report, rule: &str| {
        r.skipped
            .iter()
            .find(|s| s.rule == rule)
            .map(|s| s.reason.clone())
    };
    let reason = skipped(&b, "weak-default-method").expect("skipped without the report");
    assert!(reason.contains("P1/P2"), "{reason}");
    assert!(skipped(&b, "mfa-failures").is_some());
    for rule in [
        "no-mfa-method",
        "no-backup-method",
        "phone-only",
        "admin-not-phishing-resistant",
        "too-few-recovery-admins",
        "method-not-allowed",
    ] {
        assert_eq!(skipped(&b, rule), None, "{rule} is judged on a free tenant");
        assert_eq!(skipped(&a, rule), None);
    }

    // The same users, the same findings, except where only the report can know: certificate
    // sign-in (no per-user object) and the isAdmin flag of a role the auditor does not track.
    let report_only = |t: &TruthUser| {
        t.methods.iter().any(|m| m.starts_with("x509Certificate"))
            || (t.is_admin && tracked_roles(t).is_empty())
    };
    let differing: BTreeSet<&str> = truth
        .users
        .iter()
        .filter(|t| report_only(t))
        .map(|t| t.upn.as_str())
        .collect();
    assert!(
        !differing.is_empty() && differing.len() * 20 < truth.users.len(),
        "{} of {} users are left out of the comparison",
        differing.len(),
        truth.users.len()
    );
    let judged = |r: &Report| -> BTreeSet<(String, String)> {
        user_findings(r)
            .into_iter()
            .filter(|(rule, upn)| {
                !["weak-default-method", "mfa-failures"].contains(&rule.as_str())
                    && !differing.contains(upn.as_str())
            })
            .collect()
    };
    let (la, fb) = (judged(&a), judged(&b));
    let missing: Vec<_> = la.difference(&fb).collect();
    let extra: Vec<_> = fb.difference(&la).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing on the free tenant {missing:#?}\nextra {extra:#?}"
    );
    for rule in [
        "no-mfa-method",
        "no-backup-method",
        "phone-only",
        "admin-not-phishing-resistant",
        "method-not-allowed",
    ] {
        assert!(
            fb.iter().any(|(r, _)| r == rule),
            "the free tenant exercises {rule}"
        );
    }
    assert!(la.len() > 500, "{} findings compared", la.len());
    // Few users differ, and those do for the reason named above: the free audit sees detail only.
    let expected_free = expected_free_user_findings(&truth, b.started_at, in_default_scope);
    assert_eq!(
        user_findings(&b)
            .into_iter()
            .filter(|(rule, _)| rule != "mfa-failures" && rule != "weak-default-method")
            .collect::<BTreeSet<_>>(),
        expected_free
    );
    let tenant = |r: &Report| -> BTreeSet<&str> {
        r.findings
            .iter()
            .filter(|f| f.subject == "tenant" && f.rule == "too-few-recovery-admins")
            .map(|f| f.rule)
            .collect()
    };
    assert_eq!(tenant(&a), tenant(&b));
}

/// The user findings a free tenant's audit must arrive at: from what per-user detail shows,
/// without the report's isAdmin flag, default method or sign-ins.
fn expected_free_user_findings(
    truth: &GroundTruth,
    now: DateTime<Utc>,
    scope: impl Fn(&TruthUser) -> bool,
) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for t in truth.users.iter().filter(|t| scope(t)) {
        let mut add = |rule: &str| {
            out.insert((rule.to_string(), t.upn.clone()));
        };
        let admin = !tracked_roles(t).is_empty();
        let m = methods(t, true);
        let mfa = m.mfa_capable();
        let old_enough = t
            .created
            .is_none_or(|c| now - c >= chrono::Duration::days(14));
        if mfa.is_empty() && old_enough {
            add("no-mfa-method");
        }
        if !mfa.is_empty() && mfa.mfa_families() < 2 {
            add("no-backup-method");
        }
        if !mfa.is_empty() && mfa.iter().all(|k| PHONE.contains(&k)) {
            add("phone-only");
        }
        if admin && !m.has_phishing_resistant() {
            add("admin-not-phishing-resistant");
        }
        // Every policy configuration targets all users and the simulator's policy never allows
        // certificate sign-in, so the policy's verdict on what detail shows is isMfaCapable.
        if !mfa.is_empty() && !t.mfa_capable {
            add("method-not-allowed");
        }
        if let Some(tap) = t.tap.as_ref().filter(|tap| tap.usable) {
            if tap.lifetime_minutes > 480 {
                add("tap-long-lived");
            }
            if !tap.usable_once {
                add("tap-multi-use");
            }
        }
        if admin && (t.per_user_mfa == "enabled" || t.per_user_mfa == "enforced") {
            add("per-user-mfa-legacy");
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_accounts_keep_certificates_and_hardware_tokens() {
    let sim = sim(600, 25).await;
    let truth = sim.ground_truth();
    let plain: Vec<&TruthUser> = truth
        .users
        .iter()
        .filter(|t| t.account_enabled && t.roles.is_empty() && in_default_scope(t))
        .take(2)
        .collect();
    // One signs in with a certificate (the report alone names it) and a hardware token (beta
    // detail alone lists it); the other has only a phone.
    let methods: [&[&str]; 2] = [
        &["x509CertificateMultiFactor", "hardwareOneTimePasscode"],
        &["mobilePhone"],
    ];
    for (t, names) in plain.iter().zip(methods) {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        assert!(sim.update_user(&t.id, |u| {
            u.set_methods(&names);
            u.roles = vec![0];
            u.tap = None;
        }));
    }
    let extra = format!(
        "[break_glass]\naccounts = [\"{}\", \"{}\"]\n",
        plain[0].upn, plain[1].upn
    );
    let report = audit(&sim, &config(&sim, &extra)).await;
    assert!(report.complete, "{:?}", report.incomplete_reasons);
    let weak: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| f.rule == "break-glass-weak")
        .filter_map(|f| f.user_principal_name.as_deref())
        .collect();
    assert_eq!(weak, vec![plain[1].upn.as_str()], "{:?}", report.findings);
}

/// The tenant's `no-mfa-enforcement` finding detail, if any.
fn enforcement_finding(report: &Report) -> Option<String> {
    report
        .findings
        .iter()
        .find(|f| f.rule == "no-mfa-enforcement")
        .map(|f| f.detail.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mfa_for_all_policy_that_only_beta_lists_still_counts() {
    let sim = sim(300, 31).await;
    // The tenant's one MFA-for-all policy uses a beta-only feature: v1.0 omits it.
    sim.update_policy(|p| {
        p.conditional_access
            .retain(|c| c.display_name != "Require MFA for risky sign-ins");
        for c in &mut p.conditional_access {
            if c.display_name == "Require MFA for all users" {
                c.beta_only = true;
            }
        }
    });
    let truth = sim.ground_truth();
    assert!(truth
        .policy
        .conditional_access
        .iter()
        .any(|c| c.beta_only && c.enforces_mfa_for_everyone(&[])));
    let report = audit(&sim, &config(&sim, "")).await;
    assert!(report.complete, "{:?}", report.incomplete_reasons);
    assert_eq!(enforcement_finding(&report), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrowed_mfa_policy_does_not_count_and_the_finding_names_what_it_leaves_out() {
    let sim = sim(300, 32).await;
    let truth = sim.ground_truth();
    let member = truth
        .users
        .iter()
        .find(|u| u.account_enabled && !u.is_admin && u.user_type == "Member")
        .expect("a member");
    let glass = truth
        .users
        .iter()
        .find(|u| u.account_enabled && u.id != member.id)
        .expect("another user");
    let base = truth
        .policy
        .conditional_access
        .iter()
        .find(|c| c.display_name == "Require MFA for all users")
        .expect("the realistic tenant's MFA policy")
        .clone();
    let glass_config = format!("[break_glass]\naccounts = [\"{}\"]\n", glass.upn);
    // (how the policy is narrowed, what the finding must name)
    type Tweak = Box<dyn Fn(&mut graph_sim::SimCaPolicy)>;
    let cases: Vec<(Tweak, Option<String>)> = vec![
        (
            Box::new(|p| p.conditions.sign_in_risk_levels = vec!["high".into()]),
            Some("applies only to sign-in risk high".into()),
        ),
        (
            Box::new(|p| p.conditions.user_risk_levels = vec!["high".into()]),
            Some("applies only to user risk high".into()),
        ),
        (
            Box::new(|p| {
                p.conditions.include_locations = vec!["All".into()];
                p.conditions.exclude_locations = vec!["AllTrusted".into()];
            }),
            Some("applies only to locations except AllTrusted".into()),
        ),
        (
            Box::new(|p| p.conditions.include_platforms = vec!["android".into(), "iOS".into()]),
            Some("applies only to platforms android, iOS".into()),
        ),
        (
            Box::new(|p| p.conditions.client_app_types = vec!["browser".into()]),
            Some("applies only to client apps browser".into()),
        ),
        (
            Box::new(|p| {
                p.conditions.device_filter =
                    Some(("exclude".into(), "device.trustType -eq \"ServerAD\"".into()))
            }),
            Some("applies only to a device filter (exclude".into()),
        ),
        (
            Box::new(|p| p.conditions.transfer_methods = Some("deviceCodeFlow".into())),
            Some("applies only to authentication flows deviceCodeFlow".into()),
        ),
        (
            Box::new(|p| p.conditions.exclude_guests = true),
            Some("excludes guests and external users".into()),
        ),
        (
            Box::new(|p| {
                p.conditions.exclude_groups = vec!["0b7a3c1e-0000-4000-8000-0000000000aa".into()]
            }),
            Some("excludes group 0b7a3c1e-0000-4000-8000-0000000000aa".into()),
        ),
        (
            {
                let id = member.id.clone();
                Box::new(move |p| p.exclude_users = vec![id.clone()])
            },
            Some(format!("excludes user {}", member.upn)),
        ),
        (
            {
                let id = glass.id.clone();
                Box::new(move |p| p.exclude_users = vec![id.clone()])
            },
            None,
        ),
    ];
    for (tweak, expected) in cases {
        let mut policy = base.clone();
        tweak(&mut policy);
        let p2 = policy.clone();
        sim.update_policy(move |p| p.conditional_access = vec![p2]);
        let report = audit(&sim, &config(&sim, &glass_config)).await;
        assert!(report.complete, "{:?}", report.incomplete_reasons);
        // The truth says whether the policy covers everyone; the finding agrees and names the gap.
        let covers = policy.enforces_mfa_for_everyone(std::slice::from_ref(&glass.id));
        let got = enforcement_finding(&report);
        assert_eq!(got.is_none(), covers, "{policy:?}: {got:?}");
        match (expected, got) {
            (Some(phrase), Some(detail)) => assert!(
                detail.contains(&format!("'Require MFA for all users' {phrase}")),
                "{detail}"
            ),
            (None, None) => {}
            (e, g) => panic!("expected {e:?}, got {g:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_exclusion_is_fine_only_when_it_holds_nothing_but_break_glass_accounts() {
    let mut tenant = graph_sim::generate(300, 33, Profile::Realistic);
    let glass = tenant
        .users
        .iter()
        .position(|u| u.enabled && !u.is_admin())
        .expect("a user") as u32;
    let other = tenant
        .users
        .iter()
        .enumerate()
        .position(|(i, u)| u.enabled && i as u32 != glass)
        .expect("another user") as u32;
    let emergency: u128 = 0x0b7a3c1e_0000_4000_8000_0000000000e1;
    let executives: u128 = 0x0b7a3c1e_0000_4000_8000_0000000000e2;
    tenant.groups.push(graph_sim::tenant::SimGroup {
        id: emergency,
        display_name: "Emergency access".into(),
        members: vec![glass],
        ..Default::default()
    });
    tenant.groups.push(graph_sim::tenant::SimGroup {
        id: executives,
        display_name: "Executives".into(),
        members: vec![glass, other],
        ..Default::default()
    });
    let sim = common::sim(0, 0, Profile::Realistic, |c| {
        c.tenant = TenantSource::Given(Box::new(tenant))
    })
    .await;
    let truth = sim.ground_truth();
    let group_id = |name: &str| {
        truth
            .groups
            .iter()
            .find(|g| g.display_name == name)
            .expect("group")
            .id
            .clone()
    };
    let glass_upn = truth.users[glass as usize].upn.clone();
    let extra = format!("[break_glass]\naccounts = [\"{glass_upn}\"]\n");
    for (group, expect_finding) in [("Emergency access", false), ("Executives", true)] {
        let id = group_id(group);
        sim.update_policy(|p| {
            p.conditional_access
                .retain(|c| c.display_name == "Require MFA for all users");
            p.conditional_access[0].conditions.exclude_groups = vec![id.clone()];
        });
        let report = audit(&sim, &config(&sim, &extra)).await;
        assert!(report.complete, "{:?}", report.incomplete_reasons);
        let got = enforcement_finding(&report);
        assert_eq!(got.is_some(), expect_finding, "{group}: {got:?}");
        if let Some(detail) = got {
            assert!(detail.contains(&format!("excludes group {id}")), "{detail}");
        }
    }
}

/// Issue 11's ground truth: on a tenant planted with every situation that locks users out by
/// policy (push-only admins under a phishing-resistant strength, SMS-only users with SMS and
/// voice off, users outside a method's targets, a custom strength, a report-only policy, guests
/// included and excluded, an exemption group, deleted groups still named, weak smart lockout,
/// …), every new rule finds exactly what graph-sim's own prediction says, and nothing else:
/// not the guests out of scope, the users excluded by group, nor the break-glass accounts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_lockouts_are_exactly_what_the_ground_truth_predicts() {
    let sim = sim_with_directory(300, 11, Profile::PolicyLockouts).await;
    let truth = sim.ground_truth();
    assert_eq!(truth.break_glass.len(), 2);
    let glass: Vec<String> = truth
        .break_glass
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect();
    let config = config(
        &sim,
        &format!("[break_glass]\naccounts = [{}]\n", glass.join(", ")),
    );
    let report = audit(&sim, &config).await;
    assert!(report.complete, "{:?}", report.incomplete_reasons);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    let subjects = |rule: &str| -> Vec<String> {
        let mut v: Vec<String> = report
            .findings
            .iter()
            .filter(|f| f.rule == rule)
            .map(|f| f.subject.to_ascii_lowercase())
            .collect();
        v.sort();
        v
    };
    for rule in graph_sim::LOCKOUT_RULES {
        let want = truth
            .expected(rule)
            .expect("graph-sim predicts every lockout rule");
        assert!(!want.is_empty(), "the tenant plants {rule}");
        let got = subjects(rule);
        if *rule == "passkey-policy-blocks" {
            // One finding per problem (`tenant:<profile>:<problem>`); the truth says whether.
            assert!(!got.is_empty(), "{rule}: {want:?}");
            continue;
        }
        let missing: Vec<_> = want.iter().filter(|w| !got.contains(w)).collect();
        let extra: Vec<_> = got.iter().filter(|g| !want.contains(g)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{rule}: missing {missing:#?}\nextra {extra:#?}"
        );
    }
    // No user rule names a break-glass account or a guest (out of the default scope).
    let spared: BTreeSet<String> = truth
        .users
        .iter()
        .filter(|u| truth.is_break_glass(u) || u.user_type == "Guest")
        .map(|u| u.id.to_ascii_lowercase())
        .collect();
    assert!(spared.len() >= 4);
    assert!(report
        .findings
        .iter()
        .all(|f| !spared.contains(&f.subject.to_ascii_lowercase())));
    // Each enabled policy's predicted count adds up to the users the rule names.
    let locked = subjects("policy-unsatisfiable");
    let per_policy = report
        .summary
        .predicted_lockouts
        .clone()
        .unwrap_or_default();
    let enabled: Vec<_> = per_policy.iter().filter(|c| c.state == "enabled").collect();
    assert!(enabled.iter().any(|c| c.locked_out > 0), "{per_policy:?}");
    assert!(enabled.iter().map(|c| c.locked_out).sum::<u64>() >= locked.len() as u64);
    assert!(enabled.iter().all(|c| c.locked_out <= locked.len() as u64));
    // A finding names the policy, the strength and what would satisfy it.
    let admin = truth
        .users
        .iter()
        .find(|u| {
            u.methods == ["microsoftAuthenticatorPush"]
                && u.roles
                    .iter()
                    .any(|r| r == "62e90394-69f5-4237-9190-012177145e10")
                && locked.contains(&u.id.to_ascii_lowercase())
        })
        .expect("a push-only Global Administrator is locked out");
    let detail = report
        .findings
        .iter()
        .find(|f| f.rule == "policy-unsatisfiable" && f.subject.eq_ignore_ascii_case(&admin.id))
        .map(|f| f.detail.clone())
        .unwrap_or_default();
    for words in ["hishing", "microsoftAuthenticatorPush", "fido2"] {
        assert!(detail.contains(words), "{words} in {detail}");
    }
}
