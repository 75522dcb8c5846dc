//! End to end against graph-sim: a collection equals the simulator's ground truth user by user,
//! on a healthy tenant and through every failure the issue names.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::Utc;
use graph_sim::{Fault, Licence, Profile, SimConfig, SimHandle};
use mfa_auditor::collect::{collect_with_report, CollectOptions, CollectReport, PerUserMfaScope};
use mfa_auditor::graph::{ClientConfig, Credential, GraphClient};
use mfa_auditor::secret::Secret;
use mfa_auditor::snapshot::{DataSet, Gap, MethodKind, MethodSet, PerUserMfa, Snapshot, User};
use url::Url;

mod common;

async fn sim(users: usize, seed: u64, tweak: impl FnOnce(&mut SimConfig)) -> SimHandle {
    common::sim(users, seed, Profile::Realistic, tweak).await
}

fn client(sim: &SimHandle, tweak: impl FnOnce(&mut ClientConfig)) -> GraphClient {
    common::client(sim, tweak)
}

async fn run(sim: &SimHandle, client: &GraphClient, options: &CollectOptions) -> CollectReport {
    collect_with_report(client, options, Utc::now(), sim.tenant_id()).await
}

fn options() -> CollectOptions {
    CollectOptions {
        break_glass_upns: vec![],
        ..CollectOptions::default()
    }
}

/// Ground-truth method names as the snapshot's kinds.
fn truth_methods(names: &[String]) -> MethodSet {
    names
        .iter()
        .map(|n| {
            MethodKind::from_report_name(n).unwrap_or_else(|| panic!("sim method {n} unclassified"))
        })
        .collect()
}

/// What per-user detail alone can tell apart: Graph's (beta) method objects do not distinguish
/// Authenticator push from passwordless, a security key from another device-bound passkey, or a
/// macOS key from a platform credential, and security questions and certificate sign-in have no
/// object at all (only the registration report names them).
fn detail_view(set: MethodSet) -> MethodSet {
    set.iter()
        .filter(|k| {
            !matches!(
                k,
                MethodKind::SecurityQuestion
                    | MethodKind::Certificate
                    | MethodKind::CertificateSingleFactor
            )
        })
        .map(|k| match k {
            MethodKind::AuthenticatorPasswordless => MethodKind::AuthenticatorPush,
            MethodKind::PasskeyDeviceBound => MethodKind::Fido2SecurityKey,
            MethodKind::MacOsSecureEnclaveKey => MethodKind::PlatformCredential,
            other => other,
        })
        .collect()
}

fn by_id(s: &Snapshot) -> BTreeMap<String, &User> {
    s.users.iter().map(|u| (u.id.to_string(), u)).collect()
}

/// Compares a complete collection with the ground truth, user by user.
fn assert_matches_truth(
    sim: &SimHandle,
    snap: &Snapshot,
    options: &CollectOptions,
    fallback: bool,
) {
    let truth = sim.ground_truth();
    let users = by_id(snap);
    assert_eq!(users.len(), truth.users.len(), "every user, once");
    let window_start = snap.taken_at - options.sign_in_window;
    let mut failures: BTreeMap<String, u32> = BTreeMap::new();
    for s in &truth.sign_ins {
        if s.created >= window_start && options.mfa_failure_codes.contains(&s.error_code) {
            *failures.entry(s.user_id.clone()).or_default() += 1;
        }
    }
    for t in &truth.users {
        let u = users
            .get(&t.id)
            .unwrap_or_else(|| panic!("user {} missing", t.id));
        let ctx = format!("user {} {}", t.id, t.upn);
        assert_eq!(&*u.upn, t.upn, "{ctx}");
        assert_eq!(u.account_enabled, t.account_enabled, "{ctx}");
        assert_eq!(
            u.user_type == mfa_auditor::snapshot::UserType::Guest,
            t.user_type == "Guest",
            "{ctx}"
        );
        let roles: BTreeSet<String> = u
            .roles
            .iter()
            .map(|r| r.template_id().to_string())
            .collect();
        let tracked: BTreeSet<String> = t
            .roles
            .iter()
            .filter(|r| mfa_auditor::snapshot::Role::from_template_id(r).is_some())
            .cloned()
            .collect();
        assert_eq!(roles, tracked, "{ctx}: roles");
        // Who the collector can know is an admin: a tracked role, or the report's isAdmin flag.
        let admin = !tracked.is_empty() || (!fallback && t.account_enabled && t.is_admin);
        let expected = truth_methods(&t.methods);
        let detail_read = fallback || admin;
        match u.methods {
            // Detail merged with the report gives every method; detail alone, what it can show.
            Some(got) if fallback => {
                assert_eq!(got, detail_view(expected), "{ctx}: methods from detail")
            }
            Some(got) if detail_read => {
                assert_eq!(got, expected, "{ctx}: methods from the report and detail")
            }
            Some(got) => assert_eq!(got, expected, "{ctx}: methods from the report"),
            None => assert!(
                !t.account_enabled && !detail_read,
                "{ctx}: only disabled non-admins are unknown"
            ),
        }
        let unknown = if u.methods.is_some() {
            t.unknown_methods.len()
        } else {
            0
        };
        assert_eq!(
            u.unknown_methods as usize, unknown,
            "{ctx}: unknown methods"
        );
        if !fallback && t.account_enabled {
            assert_eq!(u.is_admin, t.is_admin, "{ctx}: isAdmin");
            assert_eq!(u.mfa_capable, Some(t.mfa_capable), "{ctx}: isMfaCapable");
            assert_eq!(
                u.system_preferred_mfa,
                Some(t.system_preferred_mfa),
                "{ctx}"
            );
        }
        let tap = u.tap.as_deref().map(|t| {
            (
                t.lifetime_minutes,
                t.usable_once,
                t.usable,
                t.usability_reason.to_string(),
            )
        });
        // A TAP is known from the report (users it lists) or, when issued within the window,
        // from the directory audit log (disabled users too).
        let tap_logged = t.tap.as_ref().is_some_and(|tap| {
            options.tap_detail
                && !fallback
                && tap.issued() >= snap.taken_at - options.tap_audit_window
        });
        let want_tap = if u.methods.is_some() || tap_logged {
            t.tap.as_ref().map(|t| {
                (
                    t.lifetime_minutes,
                    t.usable_once,
                    t.usable,
                    t.reason.clone(),
                )
            })
        } else {
            None
        };
        assert_eq!(tap, want_tap, "{ctx}: TAP");
        let per_user = if admin {
            Some(match t.per_user_mfa.as_str() {
                "enabled" => PerUserMfa::Enabled,
                "enforced" => PerUserMfa::Enforced,
                _ => PerUserMfa::Disabled,
            })
        } else {
            None
        };
        assert_eq!(u.per_user_mfa, per_user, "{ctx}: per-user MFA");
        if !fallback {
            assert_eq!(
                u.mfa_failures,
                Some(failures.get(&t.id).copied().unwrap_or(0)),
                "{ctx}: MFA failures"
            );
        }
    }
    let policy = snap.methods_policy.as_ref().expect("policy read");
    let tap = policy.tap.as_ref().expect("TAP config");
    assert_eq!(tap.enabled, truth.policy.tap_enabled);
    assert_eq!(
        tap.maximum_lifetime_minutes,
        Some(truth.policy.tap_max_lifetime)
    );
    assert_eq!(
        snap.security_defaults_enabled,
        Some(truth.policy.security_defaults)
    );
    let unknown_total: u64 = snap.unknown_methods.values().sum();
    let read_with_unknown = truth
        .users
        .iter()
        .filter(|t| !t.unknown_methods.is_empty() && users[&t.id].methods.is_some())
        .count();
    assert_eq!(unknown_total as usize, read_with_unknown);
    assert!(
        read_with_unknown > 0 || truth.users.len() < 2000,
        "the tenant exercises unknown methods"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5000_user_tenant_is_collected_exactly_and_without_a_single_429() {
    // 50 rows a page: ~100 report pages, so the reports class (5 / 10 s) is paced, not just burst.
    let sim = sim(5000, 42, |c| {
        c.registration_page_size = 50;
        // Every data set, smart lockout's directory settings included.
        c.granted_roles.push("Directory.Read.All".into());
    })
    .await;
    let client = client(&sim, |_| {});
    let opts = options();
    let report = run(&sim, &client, &opts).await;
    let snap = &report.snapshot;
    assert!(snap.is_complete(), "{:?}", snap.coverage);
    assert!(snap.coverage.gaps.is_empty(), "{:?}", snap.coverage.gaps);
    assert_matches_truth(&sim, snap, &opts, false);
    let stats = sim.stats();
    assert_eq!(
        stats.throttled(),
        0,
        "a healthy audit sees no 429: {stats:?}"
    );
    // One paged sweep for users (999 a page) and the report, not one call per user.
    assert_eq!(stats.total("users"), 6);
    let enabled = sim
        .ground_truth()
        .users
        .iter()
        .filter(|u| u.account_enabled)
        .count() as u64;
    assert_eq!(stats.total("userRegistrationDetails"), enabled.div_ceil(50));
    assert!(stats.total("authenticationMethods") < 100, "{stats:?}");
    assert_eq!(stats.tokens_issued, 1, "the token is cached");
    assert!(
        snap.users.iter().any(|u| u.tap.is_some()),
        "the tenant has TAP holders"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_tenant_falls_back_to_per_user_detail() {
    let sim = sim(1500, 7, |c| c.licence = Licence::Free).await;
    let client = client(&sim, |_| {});
    let opts = options();
    let report = run(&sim, &client, &opts).await;
    let snap = &report.snapshot;
    assert!(snap.is_complete(), "{:?}", snap.coverage);
    assert!(snap.coverage.licence_fallback);
    assert!(matches!(
        snap.coverage.gaps.get(&DataSet::Registration),
        Some(Gap::Unlicensed(_))
    ));
    assert!(matches!(
        snap.coverage.gaps.get(&DataSet::SignIns),
        Some(Gap::Unlicensed(_))
    ));
    assert!(matches!(
        snap.coverage.gaps.get(&DataSet::ConditionalAccess),
        Some(Gap::Unlicensed(_))
    ));
    assert_matches_truth(&sim, snap, &opts, true);
    let stats = sim.stats();
    assert_eq!(
        stats.count("authenticationMethods", 200),
        1500,
        "one detail read per user"
    );
    assert_eq!(stats.throttled(), 0, "{stats:?}");
}

/// Gives three enabled admins methods only beta detail or only the report can show: a hardware
/// token with certificate sign-in, a Windows Hello passkey, single-factor certificate sign-in
/// with a phone. Returns their ids.
fn equip_admins(sim: &SimHandle) -> Vec<String> {
    let truth = sim.ground_truth();
    let admins: Vec<String> = truth
        .users
        .iter()
        .filter(|t| t.account_enabled && !t.roles.is_empty())
        .map(|t| t.id.clone())
        .take(3)
        .collect();
    assert_eq!(admins.len(), 3, "the tenant has admins");
    let sets: [&[&str]; 3] = [
        &["hardwareOneTimePasscode", "x509CertificateMultiFactor"],
        &["passKeyDeviceBoundWindowsHello"],
        &["mobilePhone", "x509CertificateSingleFactor"],
    ];
    for (id, names) in admins.iter().zip(sets) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        assert!(sim.update_user(id, |u| {
            u.set_methods(&names);
            u.tap = None;
            u.unknown_method = None;
        }));
    }
    admins
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_keep_hardware_tokens_certificates_and_windows_hello_passkeys() {
    use MethodKind::*;
    let set = |k: &[MethodKind]| k.iter().copied().collect::<MethodSet>();
    for licence in [Licence::P2, Licence::Free] {
        let sim = sim(1200, 9, |c| c.licence = licence).await;
        let admins = equip_admins(&sim);
        let client = client(&sim, |_| {});
        let opts = options();
        let report = run(&sim, &client, &opts).await;
        let snap = &report.snapshot;
        assert!(snap.is_complete(), "{:?}", snap.coverage);
        let fallback = licence == Licence::Free;
        assert_matches_truth(&sim, snap, &opts, fallback);
        let users = by_id(snap);
        let methods = |n: usize| users[&admins[n]].methods.expect("read");
        if fallback {
            // Detail alone: the hardware token (beta) and the passkey, but no certificate.
            assert_eq!(methods(0), set(&[HardwareOtp]));
            assert_eq!(methods(2), set(&[MobilePhone]));
        } else {
            assert_eq!(methods(0), set(&[HardwareOtp, Certificate]));
            assert_eq!(methods(2), set(&[MobilePhone, CertificateSingleFactor]));
            assert!(methods(0).has_phishing_resistant());
            assert_eq!(methods(2).mfa_families(), 1, "single-factor CBA is not MFA");
        }
        assert_eq!(methods(1), set(&[WindowsHello]));
        assert_eq!(methods(1).mfa_families(), 1);
        assert!(
            sim.stats().count("authenticationMethods", 200) > 0,
            "detail was read"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_auditlog_reads_the_report_through_userauthenticationmethod() {
    // docs-contrib: UserAuthenticationMethod.Read.All also grants userRegistrationDetails;
    // sign-ins need AuditLog.Read.All (or Directory.Read.All).
    let sim = sim(800, 3, |c| {
        c.granted_roles.retain(|r| r != "AuditLog.Read.All")
    })
    .await;
    let client = client(&sim, |_| {});
    let opts = options();
    let snap = run(&sim, &client, &opts).await.snapshot;
    assert!(snap.is_complete(), "{:?}", snap.coverage);
    assert!(
        snap.coverage.has(DataSet::Registration),
        "{:?}",
        snap.coverage
    );
    assert_eq!(
        snap.coverage.gaps.get(&DataSet::SignIns),
        Some(&Gap::MissingPermission("AuditLog.Read.All".into()))
    );
    // AuditLog.Read.All, and Directory.Read.All (smart lockout), which the sim's default
    // grant lacks.
    assert!(snap
        .coverage
        .missing_permissions
        .iter()
        .all(|(p, _)| p == "AuditLog.Read.All" || p == "Directory.Read.All"));
    // Without the directory audit log, the passes issued since the report's snapshot are unseen;
    // the TAP rules still judge the ones the report lists, and say what they miss.
    assert_eq!(
        snap.coverage.gaps.get(&DataSet::DirectoryAudit),
        Some(&Gap::MissingPermission("AuditLog.Read.All".into()))
    );
    assert!(snap.coverage.has(DataSet::TapDetail), "{:?}", snap.coverage);
    let truth = sim.ground_truth();
    let users = by_id(&snap);
    let mut fresh = 0;
    for t in &truth.users {
        let u = users[&t.id];
        if t.account_enabled && t.roles.is_empty() {
            let mut expected: Vec<String> = t.methods.clone();
            if t.tap.as_ref().is_some_and(|tap| tap.fresh) {
                fresh += 1;
                expected.retain(|m| m != "temporaryAccessPass");
            }
            assert_eq!(u.methods, Some(truth_methods(&expected)), "{}", t.upn);
        }
    }
    assert!(fresh > 0, "the tenant has passes only the audit log knows");
    assert_eq!(
        sim.stats().total("directoryAudits"),
        0,
        "no call it cannot make"
    );
    assert!(snap.users.iter().all(|u| u.mfa_failures.is_none()));
    assert_eq!(sim.stats().total("signIns"), 0, "no call it cannot make");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_any_report_permission_names_it_and_marks_the_data_missing() {
    let sim = sim(800, 3, |c| {
        c.granted_roles
            .retain(|r| r != "AuditLog.Read.All" && r != "UserAuthenticationMethod.Read.All")
    })
    .await;
    let client = client(&sim, |_| {});
    let snap = run(&sim, &client, &options()).await.snapshot;
    assert!(
        snap.is_complete(),
        "missing data is a gap, not a failure: {:?}",
        snap.coverage
    );
    assert!(snap
        .coverage
        .missing_permissions
        .iter()
        .any(|(p, _)| p == "AuditLog.Read.All"));
    assert_eq!(
        snap.coverage.gaps.get(&DataSet::Registration),
        Some(&Gap::MissingPermission("AuditLog.Read.All".into()))
    );
    assert_eq!(
        snap.coverage.gaps.get(&DataSet::SignIns),
        Some(&Gap::MissingPermission("AuditLog.Read.All".into()))
    );
    // Nobody's methods are guessed.
    assert!(snap.users.iter().all(|u| u.methods.is_none()));
    assert!(snap.users.iter().all(|u| u.mfa_failures.is_none()));
    assert_eq!(
        sim.stats().total("userRegistrationDetails"),
        0,
        "no call it cannot make"
    );
}

fn licence_flaky(endpoint: &str, count: u32) -> Fault {
    Fault::LicenceIntermittent {
        endpoint: endpoint.into(),
        count: Some(count),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intermittent_licence_403_on_a_licensed_tenant_is_retried_not_a_fallback() {
    // Only AuditLog.Read.All, no Directory.Read.All: Graph refuses the reports now and then.
    let sim = sim(1200, 11, |c| {
        c.faults = vec![
            licence_flaky("userRegistrationDetails", 2),
            licence_flaky("signIns", 3),
        ]
    })
    .await;
    let client = client(&sim, |_| {});
    let opts = options();
    let snap = run(&sim, &client, &opts).await.snapshot;
    assert!(snap.is_complete(), "{:?}", snap.coverage);
    assert!(!snap.coverage.licence_fallback, "a P2 tenant is not free");
    assert!(
        snap.coverage.has(DataSet::Registration),
        "{:?}",
        snap.coverage
    );
    assert!(snap.coverage.has(DataSet::SignIns), "{:?}", snap.coverage);
    assert_matches_truth(&sim, &snap, &opts, false);
    let stats = sim.stats();
    assert_eq!(stats.count("userRegistrationDetails", 403), 2);
    assert_eq!(stats.count("signIns", 403), 3);
    let admins = sim
        .ground_truth()
        .users
        .iter()
        .filter(|u| u.is_admin)
        .count() as u64;
    assert_eq!(
        stats.total("authenticationMethods"),
        admins,
        "detail for admins only: no per-user fallback"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_licence_403s_across_many_pages_cost_a_page_retry_not_the_sweep() {
    // 1,500 users at 100 a page: 15 pages, a fifth of all requests refused at random.
    let sim = sim(1500, 14, |c| {
        c.registration_page_size = 100;
        c.faults = vec![Fault::LicenceRandom {
            endpoint: "userRegistrationDetails".into(),
            percent: 20,
            seed: 5,
        }];
    })
    .await;
    let client = client(&sim, |_| {});
    let opts = options();
    let snap = run(&sim, &client, &opts).await.snapshot;
    assert!(snap.is_complete(), "{:?}", snap.coverage);
    assert!(!snap.coverage.licence_fallback);
    assert_matches_truth(&sim, &snap, &opts, false);
    let stats = sim.stats();
    let refused = stats.count("userRegistrationDetails", 403);
    let pages = stats.count("userRegistrationDetails", 200);
    assert!(refused > 0, "the fault fired");
    let listed = sim
        .ground_truth()
        .users
        .iter()
        .filter(|u| u.account_enabled)
        .count() as u64;
    assert_eq!(
        pages,
        listed.div_ceil(100),
        "each page read once: a refusal retries its page only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_licensed_tenant_that_keeps_refusing_is_a_failed_sweep_not_a_fallback() {
    // The subscriptions (readable with Directory.Read.All) say P2: a persistent refusal fails.
    let sim = sim(600, 12, |c| {
        c.granted_roles.push("Directory.Read.All".into());
        c.faults = vec![Fault::Licence {
            endpoint: "userRegistrationDetails".into(),
        }];
    })
    .await;
    let client = client(&sim, |_| {});
    let snap = run(&sim, &client, &options()).await.snapshot;
    assert!(!snap.is_complete(), "{:?}", snap.coverage);
    assert!(!snap.coverage.licence_fallback);
    match snap.coverage.gaps.get(&DataSet::Registration) {
        Some(Gap::Failed { endpoint, reason }) => {
            assert_eq!(endpoint, "userRegistrationDetails");
            assert!(
                reason.contains("P1/P2") && reason.contains("subscribedSkus"),
                "{reason}"
            );
        }
        other => panic!("expected a failed sweep, got {other:?}"),
    }
    let stats = sim.stats();
    assert_eq!(stats.count("subscribedSkus", 200), 1);
    assert_eq!(
        stats.count("userRegistrationDetails", 403),
        u64::from(mfa_auditor::collect::LICENCE_ATTEMPTS),
        "retried, then believed only as a failure"
    );

    // Without the subscriptions, a report that answers is the evidence: sign-ins refusing is a failure.
    let sim2 = common::sim(600, 12, Profile::Realistic, |c| {
        c.faults = vec![Fault::Licence {
            endpoint: "signIns".into(),
        }];
    })
    .await;
    let snap = run(&sim2, &client_for(&sim2), &options()).await.snapshot;
    assert!(!snap.is_complete(), "{:?}", snap.coverage);
    assert!(!snap.coverage.licence_fallback);
    assert!(
        matches!(snap.coverage.gaps.get(&DataSet::SignIns), Some(Gap::Failed { reason, .. }) if reason.contains("P1/P2")),
        "{:?}",
        snap.coverage.gaps
    );
    assert_eq!(
        sim2.stats().total("subscribedSkus"),
        0,
        "not readable without the permission"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pim_answering_is_evidence_of_p2_when_both_reports_keep_refusing() {
    // No subscriptions to read, both premium reports refusing: PIM eligibility (Entra ID P2)
    // answered, so the tenant is licensed and the refusal is a failure, not the free fallback.
    let sim = common::sim(600, 14, Profile::Realistic, |c| {
        c.faults = vec![
            Fault::Licence {
                endpoint: "userRegistrationDetails".into(),
            },
            Fault::Licence {
                endpoint: "signIns".into(),
            },
        ];
    })
    .await;
    let snap = run(&sim, &client_for(&sim), &options()).await.snapshot;
    assert!(
        snap.coverage.has(DataSet::RoleEligibility),
        "{:?}",
        snap.coverage
    );
    assert!(!snap.coverage.licence_fallback, "{:?}", snap.coverage);
    assert!(!snap.is_complete());
    assert!(
        matches!(snap.coverage.gaps.get(&DataSet::Registration), Some(Gap::Failed { reason, .. }) if reason.contains("another premium endpoint answered")),
        "{:?}",
        snap.coverage.gaps
    );
}

fn client_for(sim: &SimHandle) -> GraphClient {
    client(sim, |_| {})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_tenant_is_known_from_its_subscriptions_without_retrying() {
    let sim = sim(300, 13, |c| {
        c.licence = Licence::Free;
        c.granted_roles.push("Organization.Read.All".into());
    })
    .await;
    let client = client(&sim, |_| {});
    let opts = options();
    let snap = run(&sim, &client, &opts).await.snapshot;
    assert!(snap.is_complete(), "{:?}", snap.coverage);
    assert!(snap.coverage.licence_fallback);
    assert!(
        matches!(snap.coverage.gaps.get(&DataSet::SignIns), Some(Gap::Unlicensed(why)) if why.contains("subscribedSkus")),
        "{:?}",
        snap.coverage.gaps
    );
    assert_matches_truth(&sim, &snap, &opts, true);
    let stats = sim.stats();
    assert_eq!(
        stats.count("userRegistrationDetails", 403),
        1,
        "no retry against evidence"
    );
    assert_eq!(stats.count("signIns", 403), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_storms_inside_and_outside_batch_still_give_the_exact_tenant() {
    let sim = sim(2000, 11, |c| {
        c.faults = vec![
            Fault::Throttle {
                endpoint: "users".into(),
                count: Some(3),
                retry_after: Some(0.05),
            },
            Fault::Throttle {
                endpoint: "userRegistrationDetails".into(),
                count: Some(2),
                retry_after: Some(0.05),
            },
            Fault::Throttle {
                endpoint: "authenticationMethods".into(),
                count: Some(15),
                retry_after: Some(0.05),
            },
            Fault::Throttle {
                endpoint: "conditionalAccessPolicies".into(),
                count: Some(2),
                retry_after: None,
            },
        ]
    })
    .await;
    let client = client(&sim, |_| {});
    let opts = options();
    let snap = run(&sim, &client, &opts).await.snapshot;
    assert!(snap.is_complete(), "{:?}", snap.coverage);
    assert_matches_truth(&sim, &snap, &opts, false);
    let stats = sim.stats();
    assert_eq!(stats.count("authenticationMethods", 429), 15, "{stats:?}");
    assert_eq!(stats.count("users", 429), 3);
    assert!(client.stats().total_throttled() >= 22);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_server_errors_are_retried() {
    let sim = sim(1200, 5, |c| {
        c.faults = vec![
            Fault::Status {
                endpoint: "users".into(),
                status: 503,
                count: Some(2),
                retry_after: Some(0.02),
            },
            Fault::Status {
                endpoint: "userRegistrationDetails".into(),
                status: 500,
                count: Some(1),
                retry_after: None,
            },
            Fault::Status {
                endpoint: "temporaryAccessPassMethods".into(),
                status: 504,
                count: Some(2),
                retry_after: None,
            },
        ]
    })
    .await;
    let client = client(&sim, |_| {});
    let opts = options();
    let snap = run(&sim, &client, &opts).await.snapshot;
    assert!(snap.is_complete(), "{:?}", snap.coverage);
    assert_matches_truth(&sim, &snap, &opts, false);
}

/// Runs a collection with one fault and returns the failure gap of `set`.
async fn failed_gap(fault: Fault, set: DataSet) -> (String, String) {
    let sim = sim(1200, 9, |c| c.faults = vec![fault]).await;
    let client = client(&sim, |c| c.max_retries = 2);
    let snap = run(&sim, &client, &options()).await.snapshot;
    assert!(
        !snap.is_complete(),
        "an audit with a failed sweep is incomplete"
    );
    match snap.coverage.gaps.get(&set) {
        Some(Gap::Failed { endpoint, reason }) => (endpoint.clone(), reason.clone()),
        other => panic!(
            "expected {set:?} to have failed, got {other:?} ({:?})",
            snap.coverage.gaps
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_failure_makes_the_audit_incomplete_and_names_the_endpoint() {
    let (endpoint, reason) = failed_gap(
        Fault::Status {
            endpoint: "userRegistrationDetails".into(),
            status: 500,
            count: None,
            retry_after: None,
        },
        DataSet::Registration,
    )
    .await;
    assert_eq!(endpoint, "userRegistrationDetails");
    assert!(reason.contains("HTTP 500"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_truncated_bodies_make_the_audit_incomplete() {
    let cases = [
        (
            Fault::Malformed {
                endpoint: "users".into(),
                count: None,
            },
            DataSet::Users,
            "users",
            "unreadable response body",
        ),
        (
            Fault::Truncated {
                endpoint: "roleAssignments".into(),
                count: None,
            },
            DataSet::Roles,
            "roleAssignments",
            "truncated",
        ),
        (
            Fault::Truncated {
                endpoint: "temporaryAccessPassMethods".into(),
                count: None,
            },
            DataSet::TapDetail,
            "temporaryAccessPassMethods",
            "users could not be read",
        ),
    ];
    for (fault, set, want_endpoint, want_reason) in cases {
        let (endpoint, reason) = failed_gap(fault, set).await;
        assert_eq!(endpoint, want_endpoint);
        assert!(reason.contains(want_reason), "{reason}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_link_loop_is_caught() {
    let (endpoint, reason) = failed_gap(
        Fault::NextlinkLoop {
            endpoint: "users".into(),
            after_page: 1,
        },
        DataSet::Users,
    )
    .await;
    assert_eq!(endpoint, "users");
    assert!(reason.contains("nextLink loop"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_token_is_refreshed_mid_run() {
    // Tokens live 2 s; the slow registration pages make the run outlast several of them.
    let sim = sim(3000, 13, |c| {
        c.token_lifetime = Duration::from_secs(2);
        c.faults = vec![Fault::Slow {
            endpoint: "userRegistrationDetails".into(),
            delay_ms: 900,
        }];
    })
    .await;
    let client = client(&sim, |_| {});
    let opts = CollectOptions {
        per_user_mfa: PerUserMfaScope::All,
        ..options()
    };
    let snap = run(&sim, &client, &opts).await.snapshot;
    assert!(snap.is_complete(), "{:?}", snap.coverage);
    assert!(sim.stats().tokens_issued >= 2, "{:?}", sim.stats());
    assert!(snap.users.iter().all(|u| u.per_user_mfa.is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_a_clear_token_error() {
    let sim = sim(50, 1, |_| {}).await;
    let base = Url::parse(&sim.base_url()).expect("url");
    let config = ClientConfig::new(base.clone(), base, sim.tenant_id(), sim.client_id());
    let client =
        GraphClient::new(config, Credential::Secret(Secret::new("wrong"))).expect("client");
    let err = client.granted_roles().await.expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("invalid_client") && text.contains("AADSTS7000215"),
        "{text}"
    );
    assert!(!text.contains("wrong"), "the secret never shows: {text}");
    let snap = run(&sim, &client, &options()).await.snapshot;
    assert!(!snap.is_complete());
    assert!(
        matches!(
            snap.coverage.gaps.get(&DataSet::MethodsPolicy),
            Some(Gap::Failed { .. })
        ),
        "nothing was read without a token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_credential_signs_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = common::self_signed(dir.path());
    let cert_pem = std::fs::read_to_string(&cert).expect("cert");
    let key_pem = std::fs::read_to_string(&key).expect("key");
    let sim = sim(50, 1, |c| c.certificate_pem = Some(cert_pem.clone())).await;
    let base = Url::parse(&sim.base_url()).expect("url");
    let config = ClientConfig::new(base.clone(), base, sim.tenant_id(), sim.client_id());
    let good = GraphClient::new(
        config.clone(),
        Credential::Certificate {
            certificate_pem: cert_pem.clone(),
            private_key_pem: Secret::new(key_pem),
        },
    )
    .expect("client");
    let roles = good.granted_roles().await.expect("certificate accepted");
    assert!(roles.iter().any(|r| r == "User.Read.All"));
    // A different key with the same certificate is refused.
    let other = dir.path().join("other.pem");
    let status = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&other)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    let bad = GraphClient::new(
        config,
        Credential::Certificate {
            certificate_pem: cert_pem,
            private_key_pem: Secret::new(std::fs::read_to_string(&other).expect("key")),
        },
    )
    .expect("client");
    let err = bad.granted_roles().await.expect_err("refused");
    assert!(err.to_string().contains("AADSTS700027"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_expiring_inside_a_batch_is_refreshed_and_the_items_retried() {
    let sim = sim(1000, 17, |c| {
        c.faults = vec![Fault::Status {
            endpoint: "perUserMfaRequirements".into(),
            status: 401,
            count: Some(3),
            retry_after: None,
        }];
    })
    .await;
    let client = client(&sim, |_| {});
    let opts = options();
    let snap = run(&sim, &client, &opts).await.snapshot;
    assert!(snap.is_complete(), "{:?}", snap.coverage);
    assert_matches_truth(&sim, &snap, &opts, false);
    assert_eq!(sim.stats().count("perUserMfaRequirements", 401), 3);
    assert_eq!(
        sim.stats().tokens_issued,
        2,
        "one refresh for the refused batch"
    );
}

/// A generated tenant with role-assignable groups, PIM eligibility and role-holding service
/// principals added (see `Tenant::add_privileged_access`); returns it and the users it made admins.
fn privileged_tenant(users: usize, seed: u64) -> (graph_sim::Tenant, Vec<String>) {
    let mut tenant = graph_sim::generate_at(users, seed, Profile::Realistic, Utc::now());
    let admins = tenant.add_privileged_access(seed);
    assert!(
        admins.len() >= 6,
        "the tenant has group and eligible admins"
    );
    (tenant, admins)
}

fn tracked(ids: &[String]) -> BTreeSet<String> {
    ids.iter()
        .filter(|r| mfa_auditor::snapshot::Role::from_template_id(r).is_some())
        .map(|r| r.to_ascii_lowercase())
        .collect()
}

fn role_ids(set: mfa_auditor::snapshot::RoleSet) -> BTreeSet<String> {
    set.iter().map(|r| r.template_id().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_through_groups_and_pim_eligibility_are_admins_and_service_principals_are_counted() {
    let (tenant, made_admins) = privileged_tenant(1500, 23);
    let sim = sim(0, 0, |c| {
        c.tenant = graph_sim::TenantSource::Given(Box::new(tenant));
        c.granted_roles.push("Directory.Read.All".into());
    })
    .await;
    let client = client(&sim, |_| {});
    let opts = options();
    let snap = run(&sim, &client, &opts).await.snapshot;
    assert!(snap.is_complete(), "{:?}", snap.coverage);
    assert!(snap.coverage.gaps.is_empty(), "{:?}", snap.coverage.gaps);
    let truth = sim.ground_truth();
    let users = by_id(&snap);
    for t in &truth.users {
        let u = users[&t.id];
        let ctx = format!("user {} {}", t.id, t.upn);
        let active = tracked(&truth.active_roles(&t.id));
        assert_eq!(
            role_ids(u.roles),
            active,
            "{ctx}: active roles, groups included"
        );
        let eligible = tracked(&truth.eligible_roles(&t.id));
        assert_eq!(
            role_ids(u.eligible_roles),
            eligible,
            "{ctx}: PIM-eligible roles"
        );
        if !active.is_empty() || !eligible.is_empty() {
            // Admins' methods and per-user MFA state are read in detail.
            assert!(u.methods.is_some(), "{ctx}: methods read");
            assert!(u.per_user_mfa.is_some(), "{ctx}: per-user MFA read");
        }
    }
    for id in &made_admins {
        let u = users[id];
        assert!(
            !u.admin_roles().is_empty(),
            "{id} holds a role through a group or PIM"
        );
    }
    let by_role = truth.service_principals_by_role();
    for (role, _, _) in mfa_auditor::snapshot::ROLE_TABLE {
        let want = by_role.get(role.template_id()).copied().unwrap_or(0) as u32;
        assert_eq!(
            snap.role_service_principals.get(role).copied(),
            Some(want),
            "{role:?}: service principals"
        );
    }
    assert_eq!(
        snap.role_service_principals[&mfa_auditor::snapshot::Role::GlobalAdministrator],
        2,
        "one direct, one through the group"
    );
    // No service principal became a user.
    assert_eq!(snap.users.len(), truth.users.len());
    assert_eq!(
        sim.stats().count("roleEligibilityScheduleInstances", 200),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_p2_or_permission_eligibility_is_a_named_gap_and_active_roles_still_count() {
    // P1: Graph answers 400 AadPremiumLicenseRequired; the audit stays complete.
    let (tenant, _) = privileged_tenant(600, 29);
    let sim_p1 = sim(0, 0, |c| {
        c.tenant = graph_sim::TenantSource::Given(Box::new(tenant.clone()));
        c.licence = Licence::P1;
    })
    .await;
    let snap = run(&sim_p1, &client(&sim_p1, |_| {}), &options())
        .await
        .snapshot;
    assert!(snap.is_complete(), "{:?}", snap.coverage);
    match snap.coverage.gaps.get(&DataSet::RoleEligibility) {
        Some(Gap::Unlicensed(why)) => assert!(why.contains("P2"), "{why}"),
        other => panic!("eligibility should be unlicensed, got {other:?}"),
    }
    assert_eq!(
        sim_p1
            .stats()
            .count("roleEligibilityScheduleInstances", 400),
        1
    );
    assert!(snap.users.iter().all(|u| u.eligible_roles.is_empty()));
    let truth = sim_p1.ground_truth();
    let users = by_id(&snap);
    for t in &truth.users {
        assert_eq!(
            role_ids(users[&t.id].roles),
            tracked(&truth.active_roles(&t.id)),
            "{}: active roles are read without P2",
            t.upn
        );
    }

    // A token without any role-management permission: eligibility names the least one.
    let sim_perm = sim(0, 0, |c| {
        c.tenant = graph_sim::TenantSource::Given(Box::new(tenant.clone()));
        c.granted_roles = vec![
            "User.Read.All".into(),
            "AuditLog.Read.All".into(),
            "Policy.Read.All".into(),
            "UserAuthenticationMethod.Read.All".into(),
            "GroupMember.Read.All".into(),
            "Directory.Read.All".into(),
        ];
    })
    .await;
    let snap = run(&sim_perm, &client(&sim_perm, |_| {}), &options())
        .await
        .snapshot;
    assert!(snap.is_complete(), "{:?}", snap.coverage);
    assert_eq!(
        snap.coverage.gaps.get(&DataSet::RoleEligibility),
        Some(&Gap::MissingPermission(
            "RoleEligibilitySchedule.Read.Directory".into()
        ))
    );
    assert!(
        !snap.coverage.gaps.contains_key(&DataSet::Roles),
        "Directory.Read.All reads role assignments"
    );
    assert_eq!(
        sim_perm.stats().total("roleEligibilityScheduleInstances"),
        0
    );

    // Roles held through groups whose members the token cannot read: the admins are unknown.
    let sim_groups = sim(0, 0, |c| {
        c.tenant = graph_sim::TenantSource::Given(Box::new(tenant));
        c.granted_roles.retain(|r| r != "GroupMember.Read.All");
    })
    .await;
    let snap = run(&sim_groups, &client(&sim_groups, |_| {}), &options())
        .await
        .snapshot;
    assert!(snap.is_complete(), "{:?}", snap.coverage);
    for set in [DataSet::Roles, DataSet::RoleEligibility] {
        match snap.coverage.gaps.get(&set) {
            Some(Gap::MissingPermission(p)) => {
                assert!(p.starts_with("GroupMember.Read.All"), "{set:?}: {p}")
            }
            other => panic!("{set:?} should miss a group permission, got {other:?}"),
        }
    }
    assert!(snap
        .coverage
        .missing_permissions
        .iter()
        .any(|(p, _)| p == "GroupMember.Read.All"));
}

/// The `policy-lockouts` tenant, its token granted `extra` besides the simulator's default.
async fn lockouts_sim(extra: &[&str], faults: Vec<Fault>) -> SimHandle {
    common::sim(300, 11, Profile::PolicyLockouts, |c| {
        c.granted_roles.extend(extra.iter().map(|p| p.to_string()));
        c.faults = faults;
    })
    .await
}

fn lockouts_options(truth: &graph_sim::GroundTruth) -> CollectOptions {
    CollectOptions {
        break_glass_upns: truth.break_glass.clone(),
        ..CollectOptions::default()
    }
}

/// What the policies' targets must come to: the ids missing, and every group named with its
/// members (a deleted one with none).
fn assert_targets_match_truth(snap: &Snapshot, truth: &graph_sim::GroundTruth) {
    let missing: BTreeSet<String> = truth.missing_targets().into_iter().collect();
    assert_eq!(snap.missing_targets.as_ref(), Some(&missing));
    assert_eq!(missing.len(), 3, "two deleted groups and a deleted user");
    let someone = snap.users[0].id;
    for (group, members) in truth.policy_groups() {
        let got: Option<Vec<String>> = snap
            .groups
            .get(&group)
            .map(|m| m.iter().map(|id| id.to_string()).collect());
        if missing.contains(&group) {
            // Deleted: not read (is_member says unread), but known to hold nobody.
            assert_eq!(got, None, "group {group}");
            assert_eq!(snap.policy_member(&group, someone), Some(false));
        } else {
            assert_eq!(got, Some(members), "group {group}");
            assert!(snap.policy_member(&group, someone).is_some());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_lockouts_tenant_is_collected_as_its_ground_truth() {
    let sim = lockouts_sim(&["Directory.Read.All"], vec![]).await;
    let truth = sim.ground_truth();
    let snap = run(&sim, &client(&sim, |_| {}), &lockouts_options(&truth))
        .await
        .snapshot;
    assert!(snap.is_complete(), "{:?}", snap.coverage);
    assert!(snap.coverage.gaps.is_empty(), "{:?}", snap.coverage.gaps);

    // Strengths: the built-in three and the custom one, with their combinations.
    let strengths = snap.strengths.as_ref().expect("strengths read");
    assert_eq!(strengths.len(), 3 + truth.policy.strengths.len());
    for custom in &truth.policy.strengths {
        let got = strengths
            .iter()
            .find(|s| s.id.as_ref() == custom.id)
            .expect("custom strength");
        assert_eq!(&*got.policy_type, "custom");
        let combos: Vec<String> = got
            .allowed_combinations
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(combos, custom.allowed_combinations);
    }
    // Each policy's strength inline, whole; guests and groups included as the tenant says.
    let ca = snap.conditional_access.as_ref().expect("CA read");
    assert_eq!(ca.len(), truth.policy.conditional_access.len());
    for (got, want) in ca.iter().zip(&truth.policy.conditional_access) {
        assert_eq!(
            got.strength.as_ref().map(|s| s.id.to_string()),
            want.strength.clone(),
            "{}",
            want.display_name
        );
        if let Some(s) = &got.strength {
            assert!(!s.allowed_combinations.is_empty(), "{}", want.display_name);
        }
        assert_eq!(got.includes_guests, want.include_guests);
        let groups: Vec<String> = got.include_groups.iter().map(|g| g.to_string()).collect();
        assert_eq!(groups, want.include_groups);
        assert_eq!(
            got.builtin_mfa,
            want.built_in_controls.iter().any(|c| c == "mfa")
        );
    }

    // Smart lockout from "Password Rule Settings".
    let lockout = truth
        .policy
        .lockout
        .expect("the profile sets a weak lockout");
    assert_eq!(
        snap.lockout,
        Some(mfa_auditor::snapshot::SmartLockout {
            threshold: lockout.threshold,
            duration_seconds: lockout.duration_seconds,
            defaults: false
        })
    );

    // Targets: which exist (getByIds, one call), and every named group's members.
    assert_targets_match_truth(&snap, &truth);
    assert_eq!(sim.stats().total("getByIds"), 1);

    // The methods policy's new parts.
    let policy = snap.methods_policy.as_ref().expect("policy");
    assert_eq!(
        policy.report_suspicious_activity,
        Some(mfa_auditor::snapshot::FeatureState::Disabled)
    );
    let fido2 = policy.fido2.as_ref().expect("fido2");
    let want = &truth.policy.fido2;
    assert_eq!(fido2.attestation_enforced, want.attestation_enforced);
    assert_eq!(
        fido2.default_profile.as_deref(),
        want.default_profile.as_deref()
    );
    assert_eq!(fido2.profiles.len(), want.profiles.len());
    for (got, want) in fido2.profiles.iter().zip(&want.profiles) {
        assert_eq!(&*got.id, want.id);
        let types: Vec<&str> = got.passkey_types.iter().map(|t| t.as_ref()).collect();
        assert_eq!(types.join(","), want.passkey_types);
        assert_eq!(
            got.attestation_enforced,
            want.attestation_enforcement != "disabled"
        );
    }
    let target_profiles: Vec<(String, Vec<String>)> = fido2
        .target_profiles
        .iter()
        .map(|(t, p)| (t.to_string(), p.iter().map(|x| x.to_string()).collect()))
        .collect();
    assert_eq!(target_profiles, want.target_profiles);
    let hardware = policy
        .methods
        .iter()
        .find(|m| &*m.id == "HardwareOath")
        .expect("beta lists HardwareOath");
    let (include, _) = truth.policy.targets_of("HardwareOath");
    let got: Vec<&str> = hardware
        .include_targets
        .iter()
        .map(|t| t.as_ref())
        .collect();
    assert_eq!(got, include);

    // Users: alternate email for everyone, SSPR readiness for everyone the report lists.
    let users = by_id(&snap);
    for t in &truth.users {
        let u = users[&t.id];
        assert_eq!(
            u.has_other_mails,
            Some(!t.other_mails.is_empty()),
            "{}",
            t.upn
        );
        let want = t
            .sspr
            .filter(|_| t.account_enabled)
            .map(|s| mfa_auditor::snapshot::Sspr {
                enabled: s.enabled,
                registered: s.registered,
                capable: s.capable,
            });
        assert_eq!(u.sspr, want, "{}", t.upn);
    }
    assert!(snap
        .users
        .iter()
        .any(|u| u.sspr.is_some_and(|s| s.enabled && !s.registered)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_directory_read_all_the_targets_come_from_the_users_and_group_404s() {
    let sim = lockouts_sim(&[], vec![]).await;
    let truth = sim.ground_truth();
    let snap = run(&sim, &client(&sim, |_| {}), &lockouts_options(&truth))
        .await
        .snapshot;
    assert!(snap.is_complete(), "{:?}", snap.coverage);
    assert_targets_match_truth(&snap, &truth);
    assert_eq!(sim.stats().total("getByIds"), 0, "no call it cannot make");
    assert!(
        sim.stats().count("groupMembers", 404) >= 2,
        "the deleted groups answered 404"
    );
    // Smart lockout needs Directory.Read.All: a named gap, not a guess.
    assert_eq!(
        snap.coverage.gaps.get(&DataSet::DirectorySettings),
        Some(&Gap::MissingPermission("Directory.Read.All".into()))
    );
    assert_eq!(snap.lockout, None);
    assert_eq!(sim.stats().total("directorySettings"), 0);
    assert!(snap.strengths.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_403_on_each_lockout_endpoint_leaves_its_data_set_a_named_gap() {
    for (endpoint, set) in [
        ("authenticationStrengthPolicies", DataSet::AuthStrengths),
        ("directorySettings", DataSet::DirectorySettings),
        ("getByIds", DataSet::PolicyTargets),
    ] {
        let fault = Fault::Status {
            endpoint: endpoint.into(),
            status: 403,
            count: None,
            retry_after: None,
        };
        let sim = lockouts_sim(&["Directory.Read.All"], vec![fault]).await;
        let truth = sim.ground_truth();
        let snap = run(&sim, &client(&sim, |_| {}), &lockouts_options(&truth))
            .await
            .snapshot;
        assert!(snap.is_complete(), "{endpoint}: {:?}", snap.coverage);
        match snap.coverage.gaps.get(&set) {
            Some(Gap::MissingPermission(why)) => assert!(why.contains(endpoint), "{why}"),
            other => panic!("{endpoint}: {set:?} should be a named gap, got {other:?}"),
        }
        assert_eq!(
            snap.coverage.gaps.len(),
            1,
            "{endpoint}: {:?}",
            snap.coverage.gaps
        );
        match set {
            DataSet::AuthStrengths => assert!(snap.strengths.is_none()),
            DataSet::DirectorySettings => assert!(snap.lockout.is_none()),
            _ => assert!(snap.missing_targets.is_none()),
        }
        // The rest is read as usual.
        assert!(snap.conditional_access.is_some() && snap.methods_policy.is_some());
        assert_eq!(snap.users.len(), truth.users.len());
    }
}
