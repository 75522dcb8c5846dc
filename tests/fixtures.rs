//! Every response body in `../shared/graph/fixtures/` (Microsoft's documented examples) parses
//! through the collector's wire types, and the values that matter come out right.
//!
//! The directory is enumerated: a new fixture without a mapping here fails the test.

use std::path::PathBuf;

use mfa_auditor::collect::wire;
use mfa_auditor::snapshot::MethodKind;
use serde::de::DeserializeOwned;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/graph/fixtures")
}

fn load<T: DeserializeOwned>(name: &str) -> T {
    let path = dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{name} does not parse through the wire types: {e}"))
}

/// Parses `name` as the type the collector uses for it and checks its meaningful values.
fn check(name: &str) {
    match name {
        "token_response.json" => {
            let t: wire::TokenResponse = load(name);
            assert_eq!(t.token_type.as_deref(), Some("Bearer"));
            assert_eq!(t.expires_in, Some(3599));
        }
        "token_error_response.json" | "token_error_response_with_error_uri.json" => {
            let t: wire::TokenError = load(name);
            assert!(t.error.is_some_and(|e| !e.is_empty()));
            assert!(!t.error_codes.is_empty());
            assert!(t.error_description.is_some_and(|d| d.starts_with("AADSTS")));
        }
        "users_list_default.json" => {
            let p: wire::Page<wire::User> = load(name);
            assert!(!p.value.is_empty());
            assert!(p
                .value
                .iter()
                .all(|u| u.id.is_some() && u.user_principal_name.is_some()));
        }
        "users_list_signInActivity.json" => {
            let p: wire::Page<wire::User> = load(name);
            let adele = &p.value[0];
            let a = adele.sign_in_activity.as_ref().expect("signInActivity");
            assert!(a.last_sign_in_date_time.is_some());
            assert_eq!(
                a.last_non_interactive_sign_in_date_time, None,
                "0001-01-01 is absent"
            );
            assert_eq!(a.last_successful_sign_in_date_time, None, "\"\" is absent");
        }
        "userRegistrationDetails_list.json" => {
            let p: wire::Page<wire::RegistrationDetails> = load(name);
            assert_eq!(p.value.len(), 3);
            let kinds: Vec<Vec<Option<MethodKind>>> = p
                .value
                .iter()
                .map(|r| {
                    r.methods_registered
                        .iter()
                        .map(|m| MethodKind::from_report_name(m))
                        .collect()
                })
                .collect();
            assert_eq!(
                kinds[0],
                vec![
                    Some(MethodKind::AuthenticatorPush),
                    Some(MethodKind::SoftwareOtp)
                ]
            );
            assert!(kinds[1].is_empty());
            assert_eq!(kinds[2][0], Some(MethodKind::MobilePhone));
            assert_eq!(
                p.value[1]
                    .user_preferred_method_for_secondary_authentication
                    .as_deref(),
                Some("")
            );
            assert_eq!(p.value[1].user_type.as_deref(), Some("guest"));
        }
        "authentication_methods_list.json" => {
            let p: wire::Page<wire::AuthMethod> = load(name);
            assert_eq!(p.value.len(), 2);
            assert!(
                p.value[0].created_date_time.is_some(),
                "the doc's creationDateTime is read too"
            );
            assert_eq!(p.value[0].attestation_level.as_deref(), Some("attested"));
            assert_eq!(p.value[1].key_strength.as_deref(), Some("normal"));
        }
        "authentication_phoneMethods_list.json" => {
            let p: wire::Page<wire::AuthMethod> = load(name);
            assert!(p
                .value
                .iter()
                .all(|m| m.phone_type.is_some() && m.odata_type.is_none()));
        }
        "authentication_softwareOathMethods_list.json" => {
            let p: wire::Page<wire::AuthMethod> = load(name);
            assert!(!p.value.is_empty());
        }
        "temporaryAccessPassMethods_list.json" => {
            let p: wire::Page<wire::AuthMethod> = load(name);
            let tap = &p.value[0];
            assert_eq!(tap.lifetime_in_minutes, Some(60));
            assert_eq!(tap.is_usable, Some(false));
            assert_eq!(tap.method_usability_reason.as_deref(), Some("NotYetValid"));
            assert!(tap.start_date_time.is_some());
        }
        "authenticationMethodsPolicy_get.json" => {
            let p: wire::MethodsPolicy = load(name);
            assert!(!p.authentication_method_configurations.is_empty());
            assert!(p
                .registration_enforcement
                .and_then(|r| r.authentication_methods_registration_campaign)
                .is_some());
        }
        "tap_policy_get.json" => {
            let c: wire::MethodConfiguration = load(name);
            assert_eq!(c.default_lifetime_in_minutes, Some(60));
            assert_eq!(c.maximum_lifetime_in_minutes, Some(480));
            assert_eq!(c.minimum_lifetime_in_minutes, Some(60));
            assert_eq!(c.default_length, Some(8));
            assert_eq!(c.is_usable_once, Some(false));
        }
        "identitySecurityDefaults.json" => {
            let p: wire::SecurityDefaults = load(name);
            assert!(p.is_enabled.is_some());
        }
        "conditionalAccess_policies_list.json" => {
            let p: wire::Page<wire::CaPolicy> = load(name);
            let policy = &p.value[0];
            let grant = policy.grant_controls.as_ref().expect("grant controls");
            assert!(!grant.built_in_controls.is_empty());
            assert!(policy
                .conditions
                .as_ref()
                .and_then(|c| c.users.as_ref())
                .is_some());
        }
        "authenticationStrengthPolicies_list.json" => {
            let p: wire::Page<wire::AuthenticationStrength> = load(name);
            assert!(p
                .value
                .iter()
                .any(|s| s.id.as_deref() == Some("00000000-0000-0000-0000-000000000004")));
        }
        "roleAssignments_list.json" => {
            let p: wire::Page<wire::RoleAssignment> = load(name);
            assert_eq!(
                p.value[0].role_definition_id.as_deref(),
                Some("62e90394-69f5-4237-9190-012177145e10")
            );
            assert_eq!(p.value[0].directory_scope_id.as_deref(), Some("/"));
        }
        "directoryRole_members_list.json" => {
            let p: wire::Page<wire::DirectoryObject> = load(name);
            assert!(!p.value.is_empty());
        }
        "perUser_requirements_beta.json" => {
            let r: wire::Requirements = load(name);
            assert_eq!(r.per_user_mfa_state.as_deref(), Some("enforced"));
        }
        "signInPreferences_beta.json" => {
            let p: wire::SignInPreferences = load(name);
            assert!(p
                .is_system_preferred_authentication_method_enabled
                .is_some());
        }
        "signIns_list.json" => {
            let p: wire::Page<wire::SignIn> = load(name);
            assert!(p
                .value
                .iter()
                .all(|s| s.created_date_time.is_some() && s.status.is_some()));
        }
        "batch_request.json" | "batch_request_dependsOn.json" => {
            let b: wire::BatchRequest = load(name);
            assert!(!b.requests.is_empty() && b.requests.len() <= 20);
        }
        "batch_response.json" => {
            let b: wire::BatchResponse = load(name);
            assert_eq!(b.responses.len(), 5);
            let empty_code = b.responses.iter().find(|r| r.id == "2").expect("item 2");
            assert_eq!(empty_code.status, 403);
            let body: wire::ErrorBody =
                serde_json::from_value(empty_code.body.clone().expect("body")).expect("error body");
            assert_eq!(body.error.code.as_deref(), Some(""));
        }
        "error_429.json" | "error_response_generic.json" | "error_400_unsupported_query.json" => {
            let e: wire::ErrorBody = load(name);
            assert!(e.error.code.is_some() && e.error.message.is_some());
        }
        other => panic!("fixture {other} has no mapping to a collector type: add one here"),
    }
}

#[test]
fn every_fixture_parses_through_the_collector_types() {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (shared/ must sit beside the project)",
                dir().display()
            )
        })
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    assert!(names.len() >= 20, "found only {names:?}");
    for name in &names {
        check(name);
    }
}
