//! The simulated tenant: users with their methods, roles, TAPs and per-user MFA state, the
//! failed sign-ins, and the tenant's policies. Generated deterministically from (size, seed,
//! profile), or loaded from JSON; it is also the **ground truth** tests compare a collection with.
//!
//! Users are kept compact (methods as a bit set over [`METHODS`]) so a million fit in a few
//! hundred MB: the simulator runs beside the client in the benchmarks.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// One method the simulator can hold: its `methodsRegistered` name and how the per-user
/// `/authentication/methods` endpoint renders it (`None`: it has no Graph method object).
pub struct MethodDef {
    pub report_name: &'static str,
    pub odata_type: Option<&'static str>,
    pub mfa_capable: bool,
    pub passwordless: bool,
}

macro_rules! m {
    ($name:literal, $t:expr, $mfa:literal, $pwl:literal) => {
        MethodDef {
            report_name: $name,
            odata_type: $t,
            mfa_capable: $mfa,
            passwordless: $pwl,
        }
    };
}

/// The methods of the simulation, by bit index.
pub static METHODS: &[MethodDef] = &[
    m!(
        "microsoftAuthenticatorPush",
        Some("microsoftAuthenticatorAuthenticationMethod"),
        true,
        false
    ),
    m!(
        "microsoftAuthenticatorPasswordless",
        Some("microsoftAuthenticatorAuthenticationMethod"),
        true,
        true
    ),
    m!(
        "softwareOneTimePasscode",
        Some("softwareOathAuthenticationMethod"),
        true,
        false
    ),
    m!(
        "passKeyDeviceBoundAuthenticator",
        Some("fido2AuthenticationMethod"),
        true,
        true
    ),
    m!(
        "mobilePhone",
        Some("phoneAuthenticationMethod"),
        true,
        false
    ),
    m!(
        "alternateMobilePhone",
        Some("phoneAuthenticationMethod"),
        true,
        false
    ),
    m!(
        "officePhone",
        Some("phoneAuthenticationMethod"),
        true,
        false
    ),
    m!(
        "fido2SecurityKey",
        Some("fido2AuthenticationMethod"),
        true,
        true
    ),
    m!(
        "passKeyDeviceBound",
        Some("fido2AuthenticationMethod"),
        true,
        true
    ),
    m!(
        "windowsHelloForBusiness",
        Some("windowsHelloForBusinessAuthenticationMethod"),
        true,
        true
    ),
    m!(
        "macOsSecureEnclaveKey",
        Some("platformCredentialAuthenticationMethod"),
        true,
        true
    ),
    m!(
        "hardwareOneTimePasscode",
        Some("hardwareOathAuthenticationMethod"),
        true,
        false
    ),
    m!(
        "passKeySynced",
        Some("fido2AuthenticationMethod"),
        true,
        true
    ),
    m!(
        "externalAuthMethod",
        Some("externalAuthenticationMethod"),
        true,
        false
    ),
    m!("email", Some("emailAuthenticationMethod"), false, false),
    m!("securityQuestion", None, false, false),
    m!(
        "temporaryAccessPass",
        Some("temporaryAccessPassAuthenticationMethod"),
        false,
        false
    ),
    // Certificate sign-in has no authentication-method object in v1.0 or beta: only the report
    // names it, multi-factor or single-factor as the CBA policy's binding makes it.
    m!("x509CertificateMultiFactor", None, true, true),
    m!("x509CertificateSingleFactor", None, false, false),
    // A passkey in the Windows Hello container: a fido2 object with a Windows Hello AAGUID.
    m!(
        "passKeyDeviceBoundWindowsHello",
        Some("fido2AuthenticationMethod"),
        true,
        true
    ),
];

/// The authentication-methods policy configurations that allow a method to be used (any one of
/// them); empty when no configuration governs it (Windows Hello for Business, platform
/// credentials, external providers are always allowed here).
pub fn method_configs(report_name: &str) -> &'static [&'static str] {
    match report_name {
        "microsoftAuthenticatorPush" | "microsoftAuthenticatorPasswordless" => {
            &["MicrosoftAuthenticator"]
        }
        "softwareOneTimePasscode" => &["SoftwareOath", "MicrosoftAuthenticator"],
        "passKeyDeviceBoundAuthenticator"
        | "fido2SecurityKey"
        | "passKeyDeviceBound"
        | "passKeySynced"
        | "passKeyDeviceBoundWindowsHello" => &["Fido2"],
        "mobilePhone" => &["Sms", "Voice"],
        "alternateMobilePhone" | "officePhone" => &["Voice"],
        "hardwareOneTimePasscode" => &["HardwareOath"],
        "x509CertificateMultiFactor" | "x509CertificateSingleFactor" => &["X509Certificate"],
        "email" => &["Email"],
        "temporaryAccessPass" => &["TemporaryAccessPass"],
        _ => &[],
    }
}

pub fn method_index(name: &str) -> Option<usize> {
    METHODS
        .iter()
        .position(|m| m.report_name.eq_ignore_ascii_case(name))
}

/// Role template ids the generator hands out (REFERENCE §12). The last one, Global Reader, is a
/// role the auditor does not track: it must not make anyone an MFA admin.
pub static ROLES: &[&str] = &[
    "62e90394-69f5-4237-9190-012177145e10", // Global Administrator
    "7be44c8a-adaf-4e2a-84d6-ab2649e08a13", // Privileged Authentication Administrator
    "c4e39bd9-1100-46d3-8c65-fb160da0071f", // Authentication Administrator
    "194ae4cb-b126-40b2-bd5b-6091b380977d", // Security Administrator
    "fe930be7-5e62-47db-91af-98c3a49a38b1", // User Administrator
    "729827e3-9c14-49f7-bb1b-9608f156bbb8", // Helpdesk Administrator
    "e8611ab8-c189-46e8-94e1-60213ab1f814", // Privileged Role Administrator
    "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9", // Conditional Access Administrator
    "f2ef992c-3afb-46b9-b7cf-a126ee74c451", // Global Reader
];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimTap {
    pub start: DateTime<Utc>,
    pub lifetime_minutes: u32,
    pub usable_once: bool,
    pub usable: bool,
    /// `methodUsabilityReason`: EnabledByPolicy, DisabledByPolicy, Expired, NotYetValid, OneTimeUsed.
    pub reason: String,
    /// Issued after the registration report's snapshot: the report (which lags by hours) does
    /// not list it yet; the directory audit log and the per-user endpoints do.
    #[serde(default)]
    pub fresh: bool,
}

impl SimTap {
    /// When an admin issued it (the method's `createdDateTime` and its directory-audit event).
    pub fn issued(&self) -> DateTime<Utc> {
        self.start - Duration::minutes(5)
    }
}

/// One simulated user.
#[derive(Clone, Debug)]
pub struct SimUser {
    pub id: u128,
    pub upn: Box<str>,
    pub display_name: Box<str>,
    pub guest: bool,
    pub enabled: bool,
    pub created: Option<DateTime<Utc>>,
    pub synced: bool,
    /// Bit set over [`METHODS`].
    pub methods: u32,
    /// A method string no real tenant has, to test leniency.
    pub unknown_method: Option<Box<str>>,
    /// Indexes into [`ROLES`]: active tenant-wide assignments to the user itself.
    pub roles: Vec<u8>,
    /// Indexes into [`ROLES`]: PIM eligibility of the user itself (served on P2 tenants only).
    pub eligible_roles: Vec<u8>,
    pub system_preferred: bool,
    pub default_method: &'static str,
    pub tap: Option<Box<SimTap>>,
    /// 0 disabled, 1 enabled, 2 enforced.
    pub per_user_mfa: u8,
    /// `otherMails`: an alternate email address, or none.
    pub other_mail: Option<Box<str>>,
    /// The registration report's SSPR flags; `None`: SSPR enabled, registered and capable
    /// when two or more methods are registered (what older tenants and JSON had).
    pub sspr: Option<SimSspr>,
}

/// `isSsprEnabled`, `isSsprRegistered`, `isSsprCapable` of the registration report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimSspr {
    pub enabled: bool,
    pub registered: bool,
    pub capable: bool,
}

impl SimUser {
    /// The SSPR flags the report shows.
    pub fn sspr_flags(&self) -> SimSspr {
        self.sspr.unwrap_or_else(|| {
            let n = self.report_method_names().len() + usize::from(self.unknown_method.is_some());
            SimSspr {
                enabled: true,
                registered: n >= 2,
                capable: n >= 2,
            }
        })
    }

    pub fn id_string(&self) -> String {
        uuid::Uuid::from_u128(self.id).hyphenated().to_string()
    }
    pub fn has(&self, idx: usize) -> bool {
        self.methods & (1 << idx) != 0
    }
    /// `methodsRegistered` as the lagging registration report shows it: without a TAP issued
    /// since its snapshot.
    pub fn report_method_names(&self) -> Vec<&'static str> {
        let mut names = self.method_names();
        if self.tap.as_ref().is_some_and(|t| t.fresh) {
            names.retain(|n| *n != "temporaryAccessPass");
        }
        names
    }
    pub fn method_names(&self) -> Vec<&'static str> {
        (0..METHODS.len())
            .filter(|i| self.has(*i))
            .map(|i| METHODS[i].report_name)
            .collect()
    }
    /// Replaces the methods by names (unknown names are ignored).
    pub fn set_methods(&mut self, names: &[String]) {
        self.methods = names
            .iter()
            .filter_map(|n| method_index(n))
            .fold(0, |acc, i| acc | 1 << i);
    }
    pub fn is_admin(&self) -> bool {
        !self.roles.is_empty()
    }
    /// `isMfaRegistered`: a strong (MFA-capable) method registered.
    pub fn is_mfa_registered(&self) -> bool {
        (0..METHODS.len()).any(|i| self.has(i) && METHODS[i].mfa_capable)
    }
    /// `isMfaCapable` as Graph computes it: a strong method registered *and allowed by the
    /// authentication-methods policy* (every configuration here targets all users). Before the
    /// migration completes the legacy MFA policy still allows the classic methods, so the
    /// simulator counts every registered strong method then.
    pub fn is_mfa_capable(&self, policy: &SimPolicy) -> bool {
        if policy.migration_state != "migrationComplete" {
            return self.is_mfa_registered();
        }
        (0..METHODS.len())
            .filter(|i| self.has(*i) && METHODS[*i].mfa_capable)
            .any(|i| {
                let configs = method_configs(METHODS[i].report_name);
                configs.is_empty()
                    || configs.iter().any(|c| {
                        policy
                            .enabled_methods
                            .iter()
                            .any(|m| m.eq_ignore_ascii_case(c))
                    })
            })
    }
    pub fn per_user_mfa_str(&self) -> &'static str {
        match self.per_user_mfa {
            1 => "enabled",
            2 => "enforced",
            _ => "disabled",
        }
    }
}

/// One sign-in of the simulated tenant (an interactive user sign-in, as `/auditLogs/signIns`
/// lists them). Everything after `error_code` has a serde default, so ground truth written
/// before issue 12 still loads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimSignIn {
    pub user_id: String,
    pub created: DateTime<Utc>,
    /// `status.errorCode`: 0 is success.
    pub error_code: i32,
    /// The sign-in's `id`; empty: given one when the tenant is built or the event pushed.
    #[serde(default)]
    pub id: String,
    /// `status.failureReason`; empty: Graph's words for `error_code` ([`crate::events::failure_reason`]).
    #[serde(default)]
    pub failure_reason: String,
    /// `status.additionalDetails`; empty: `null`.
    #[serde(default)]
    pub additional_details: String,
    /// `appDisplayName`; empty: "Microsoft Office".
    #[serde(default)]
    pub app: String,
    /// `isInteractive` (both Graph versions list interactive sign-ins only by default).
    #[serde(default = "yes")]
    pub interactive: bool,
    /// `conditionalAccessStatus`; empty: `success` on success, `failure` on an MFA failure,
    /// `notApplied` otherwise.
    #[serde(default)]
    pub ca_status: String,
    /// `authenticationRequirement` is `multiFactorAuthentication` (beta).
    #[serde(default)]
    pub mfa_required: bool,
    /// `authenticationDetails` (beta), in order.
    #[serde(default)]
    pub steps: Vec<crate::events::SimAuthStep>,
    /// Not listed before this instant (the log's ingestion delay); `None`: always listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible_at: Option<DateTime<Utc>>,
}

fn yes() -> bool {
    true
}

impl SimSignIn {
    /// A sign-in with Graph's defaults for everything but user, time and code.
    pub fn new(user_id: impl Into<String>, created: DateTime<Utc>, error_code: i32) -> SimSignIn {
        SimSignIn {
            user_id: user_id.into(),
            created,
            error_code,
            id: String::new(),
            failure_reason: String::new(),
            additional_details: String::new(),
            app: String::new(),
            interactive: true,
            ca_status: String::new(),
            mfa_required: false,
            steps: Vec::new(),
            visible_at: None,
        }
    }
    /// Listed by a query made at `as_of`.
    pub fn visible(&self, as_of: DateTime<Utc>) -> bool {
        self.visible_at.is_none_or(|v| v <= as_of)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SimCaPolicy {
    pub id: String,
    pub display_name: String,
    /// enabled, disabled, enabledForReportingButNotEnforced
    pub state: String,
    pub include_users: Vec<String>,
    pub exclude_users: Vec<String>,
    pub include_roles: Vec<String>,
    pub built_in_controls: Vec<String>,
    pub operator: String,
    /// Exclusions and narrowing conditions (absent in older ground-truth JSON: none).
    #[serde(default)]
    pub conditions: SimCaConditions,
    /// Uses a beta-only feature (a continuous-access-evaluation session control): v1.0's list
    /// omits the policy, as real Graph does (microsoft/EntraExporter#35,
    /// nicolonsky/ConditionalAccessDocumentation#11); beta lists it.
    #[serde(default)]
    pub beta_only: bool,
    /// `includeGroups` (absent in older ground-truth JSON: none).
    #[serde(default)]
    pub include_groups: Vec<String>,
    /// `includeGuestsOrExternalUsers` set (every guest and external user type).
    #[serde(default)]
    pub include_guests: bool,
    /// `grantControls.authenticationStrength`: the id of a built-in strength or of one of
    /// [`SimPolicy::strengths`].
    #[serde(default)]
    pub strength: Option<String>,
}

/// What narrows a Conditional Access policy beyond its included users and apps (REFERENCE §9.2
/// `conditions`). Empty: it applies to every sign-in of its users.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimCaConditions {
    pub exclude_groups: Vec<String>,
    pub exclude_roles: Vec<String>,
    pub exclude_applications: Vec<String>,
    /// `excludeGuestsOrExternalUsers` set (every guest and external user type).
    pub exclude_guests: bool,
    pub user_risk_levels: Vec<String>,
    pub sign_in_risk_levels: Vec<String>,
    /// Empty: `["all"]`.
    pub client_app_types: Vec<String>,
    pub include_locations: Vec<String>,
    pub exclude_locations: Vec<String>,
    pub include_platforms: Vec<String>,
    pub exclude_platforms: Vec<String>,
    /// `devices.deviceFilter` (mode, rule).
    pub device_filter: Option<(String, String)>,
    /// `authenticationFlows.transferMethods`, e.g. `deviceCodeFlow`.
    pub transfer_methods: Option<String>,
    /// `insiderRiskLevels`, e.g. `elevated`.
    pub insider_risk_levels: Option<String>,
}

impl SimCaConditions {
    /// Whether any condition narrows when the policy applies (exclusions aside).
    pub fn narrows(&self) -> bool {
        !self.user_risk_levels.is_empty()
            || !self.sign_in_risk_levels.is_empty()
            || self.client_app_types.iter().any(|c| c != "all")
            || !self.include_locations.is_empty()
            || !self.exclude_locations.is_empty()
            || !self.include_platforms.is_empty()
            || !self.exclude_platforms.is_empty()
            || self.device_filter.is_some()
            || self.transfer_methods.is_some()
            || self.insider_risk_levels.is_some()
    }
}

impl SimCaPolicy {
    /// The truth of "this policy enforces MFA for everyone": enabled, MFA required (not one of
    /// several OR'ed controls), all users and all apps, no narrowing condition, and no exclusion
    /// but the users in `allowed_exclusions` (the break-glass accounts' object ids).
    pub fn enforces_mfa_for_everyone(&self, allowed_exclusions: &[String]) -> bool {
        let c = &self.conditions;
        self.state == "enabled"
            && self.built_in_controls.iter().any(|b| b == "mfa")
            && (self.operator == "AND" || self.built_in_controls.len() == 1)
            && self.include_users.iter().any(|u| u == "All")
            && self
                .exclude_users
                .iter()
                .all(|u| allowed_exclusions.iter().any(|a| a.eq_ignore_ascii_case(u)))
            && c.exclude_groups.is_empty()
            && c.exclude_roles.is_empty()
            && c.exclude_applications.is_empty()
            && !c.exclude_guests
            && !c.narrows()
    }
}

/// The tenant's authentication-methods policy (TAP configuration inside), security defaults and
/// Conditional Access.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimPolicy {
    pub migration_state: String,
    pub registration_campaign: String,
    pub system_preferred: String,
    pub tap_enabled: bool,
    pub tap_usable_once: bool,
    pub tap_default_lifetime: u32,
    pub tap_min_lifetime: u32,
    pub tap_max_lifetime: u32,
    pub tap_length: u32,
    pub tap_include: Vec<String>,
    /// Method configuration ids (`Sms`, `Fido2`, …) whose state is enabled.
    pub enabled_methods: Vec<String>,
    pub number_matching: String,
    pub app_information: String,
    pub location_information: String,
    pub security_defaults: bool,
    pub conditional_access: Vec<SimCaPolicy>,
    /// Include and exclude targets of method configurations; a configuration not listed
    /// targets all users and excludes nobody.
    #[serde(default)]
    pub method_targets: Vec<SimMethodTargets>,
    /// The FIDO2 configuration beyond its state.
    #[serde(default)]
    pub fido2: SimFido2,
    /// `reportSuspiciousActivitySettings.state`: `default`, `enabled` or `disabled`.
    #[serde(default = "default_state")]
    pub report_suspicious_activity: String,
    /// Custom authentication strengths (the built-in ones always exist: [`BUILTIN_STRENGTHS`]).
    #[serde(default)]
    pub strengths: Vec<SimStrength>,
    /// The "Password Rule Settings" directory setting; `None`: the tenant has none (Entra's
    /// defaults apply).
    #[serde(default)]
    pub lockout: Option<SimLockout>,
}

fn default_state() -> String {
    "default".into()
}

/// A method configuration's targets: group ids, `all_users`, or (rarely) user ids.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimMethodTargets {
    /// The configuration id (`Sms`, `Fido2`, …).
    pub method: String,
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// Key restrictions (`fido2KeyRestrictions`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimKeyRestrictions {
    pub enforced: bool,
    /// `allow` or `block`.
    pub enforcement_type: String,
    pub aaguids: Vec<String>,
}

/// A passkey profile of the FIDO2 configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimPasskeyProfile {
    pub id: String,
    pub name: String,
    /// `passkeyTypes` flags: `deviceBound`, `synced`, or both (`deviceBound,synced`).
    pub passkey_types: String,
    /// `attestationEnforcement`: `disabled` or `registrationOnly`.
    pub attestation_enforcement: String,
    #[serde(default)]
    pub key_restrictions: SimKeyRestrictions,
}

/// The FIDO2 configuration: the deprecated top-level settings and the passkey profiles.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimFido2 {
    pub attestation_enforced: bool,
    pub key_restrictions: SimKeyRestrictions,
    /// Empty: the tenant has not moved to passkey profiles (none rendered).
    pub profiles: Vec<SimPasskeyProfile>,
    pub default_profile: Option<String>,
    /// Include target id → the profiles it allows (absent or empty: the default profile).
    pub target_profiles: Vec<(String, Vec<String>)>,
}

/// A custom authentication strength.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStrength {
    pub id: String,
    pub display_name: String,
    pub allowed_combinations: Vec<String>,
}

/// Smart lockout as the "Password Rule Settings" directory setting holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimLockout {
    pub threshold: u32,
    pub duration_seconds: u32,
}

/// The built-in authentication strengths (docs-contrib v1.0
/// `authenticationstrengthroot-list-policies.md`, Example 1; fixture
/// `authenticationStrengthPolicies_list.json`): id, display name, description, combinations.
pub static BUILTIN_STRENGTHS: &[(&str, &str, &str, &[&str])] = &[
    (
        "00000000-0000-0000-0000-000000000002",
        "Multifactor authentication",
        "Combinations of methods that satisfy strong authentication, such as a password + SMS",
        &[
            "windowsHelloForBusiness",
            "fido2",
            "x509CertificateMultiFactor",
            "deviceBasedPush",
            "temporaryAccessPassOneTime",
            "temporaryAccessPassMultiUse",
            "password,microsoftAuthenticatorPush",
            "password,softwareOath",
            "password,hardwareOath",
            "password,x509CertificateSingleFactor",
            "password,x509CertificateMultiFactor",
            "password,sms",
            "password,voice",
            "federatedMultiFactor",
            "microsoftAuthenticatorPush,federatedSingleFactor",
            "softwareOath,federatedSingleFactor",
            "hardwareOath,federatedSingleFactor",
            "sms,federatedSingleFactor",
            "voice,federatedSingleFactor",
        ],
    ),
    (
        "00000000-0000-0000-0000-000000000003",
        "Passwordless MFA",
        "Passwordless methods that satisfy strong authentication, such as Passwordless sign-in with the Microsoft Authenticator",
        &[
            "windowsHelloForBusiness",
            "fido2",
            "x509CertificateMultiFactor",
            "deviceBasedPush",
        ],
    ),
    (
        "00000000-0000-0000-0000-000000000004",
        "Phishing resistant MFA",
        "Phishing resistant, Passwordless methods for the strongest authentication, such as a FIDO2 security key",
        &["windowsHelloForBusiness", "fido2", "x509CertificateMultiFactor"],
    ),
];

/// The generation profiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// A believable spread of good and bad.
    Realistic,
    /// Everyone has at least two recovery families; policy is sound.
    Healthy,
    /// Realistic users under a weak policy: TAP off, SMS on, no nudge, no enforcement.
    WeakPolicy,
    /// Realistic users under policies that lock some of them out, each situation planted
    /// ([`Tenant::plant_policy_lockouts`]): the ground truth of the lockout rules.
    PolicyLockouts,
}

impl std::str::FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "realistic" => Ok(Profile::Realistic),
            "healthy" => Ok(Profile::Healthy),
            "weak-policy" => Ok(Profile::WeakPolicy),
            "policy-lockouts" => Ok(Profile::PolicyLockouts),
            other => Err(format!(
                "unknown profile {other:?} (realistic, healthy, weak-policy, policy-lockouts)"
            )),
        }
    }
}

/// A whole simulated tenant.
#[derive(Clone, Debug)]
pub struct Tenant {
    pub domain: String,
    pub users: Vec<SimUser>,
    pub by_id: HashMap<u128, u32>,
    /// Newest first (by `created`, then `id`), every one with an id.
    pub sign_ins: Vec<SimSignIn>,
    /// Directory-audit entries pushed while the simulator runs (the security-info changes of
    /// issue 12), besides those derived from the tenant (TAPs issued, background noise).
    pub audits: Vec<crate::events::SimAudit>,
    pub policy: SimPolicy,
    /// Security groups with their (transitive) user members, as indexes into `users`.
    pub groups: Vec<SimGroup>,
    /// Service principals (only those that matter here: holders of roles or group members).
    pub service_principals: Vec<SimServicePrincipal>,
    /// When the tenant was made: sign-ins and TAPs are relative to it.
    pub now: DateTime<Utc>,
    /// UPNs of the emergency-access (break-glass) accounts the profile made.
    pub break_glass: Vec<String>,
}

/// A group and its transitive user members; a role-assignable group may hold roles (actively or
/// eligibly) that its members then hold, and have service principals among its members.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimGroup {
    pub id: u128,
    pub display_name: String,
    pub members: Vec<u32>,
    pub role_assignable: bool,
    /// Indexes into [`ROLES`]: active tenant-wide assignments to the group.
    pub roles: Vec<u8>,
    /// Indexes into [`ROLES`]: PIM eligibility of the group.
    pub eligible_roles: Vec<u8>,
    /// Indexes into `Tenant::service_principals`.
    pub service_principals: Vec<u32>,
}

/// An application's service principal, possibly holding directory roles.
#[derive(Clone, Debug, PartialEq)]
pub struct SimServicePrincipal {
    pub id: u128,
    pub display_name: String,
    /// Indexes into [`ROLES`]: active tenant-wide assignments.
    pub roles: Vec<u8>,
}

impl SimServicePrincipal {
    pub fn id_string(&self) -> String {
        uuid::Uuid::from_u128(self.id).hyphenated().to_string()
    }
}

impl SimGroup {
    pub fn id_string(&self) -> String {
        uuid::Uuid::from_u128(self.id).hyphenated().to_string()
    }
}

/// A group in the ground truth: its id, name and member user ids, and for a role-assignable
/// group the role template ids it holds (actively and eligibly) and its service-principal members.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TruthGroup {
    pub id: String,
    pub display_name: String,
    pub members: Vec<String>,
    #[serde(default)]
    pub role_assignable: bool,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub eligible_roles: Vec<String>,
    #[serde(default)]
    pub service_principals: Vec<String>,
}

/// A service principal in the ground truth, with the role template ids it holds directly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TruthServicePrincipal {
    pub id: String,
    pub display_name: String,
    pub roles: Vec<String>,
}

/// Three groups over the users: most staff, a contractors slice, and a small pilot.
fn generate_groups(users: &[SimUser], seed: u64) -> Vec<SimGroup> {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x6707_5eed);
    let mut staff = Vec::new();
    let mut contractors = Vec::new();
    let mut pilot = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let i = i as u32;
        if u.guest {
            continue;
        }
        match rng.gen_range(0..100) {
            0..=9 => contractors.push(i),
            _ => staff.push(i),
        }
        if rng.gen_range(0..100) < 3 {
            pilot.push(i);
        }
    }
    let id = |n: u128| 0x9a0c_0000_0000_4000_8000_0000_0000_0000u128 | n;
    vec![
        SimGroup {
            id: id(1),
            display_name: "All Staff".into(),
            members: staff,
            ..SimGroup::default()
        },
        SimGroup {
            id: id(2),
            display_name: "Contractors".into(),
            members: contractors,
            ..SimGroup::default()
        },
        SimGroup {
            id: id(3),
            display_name: "MFA Pilot".into(),
            members: pilot,
            ..SimGroup::default()
        },
    ]
}

impl SimPolicy {
    /// A method configuration's include and exclude targets (all users when not listed).
    pub fn targets_of(&self, method: &str) -> (Vec<&str>, Vec<&str>) {
        match self
            .method_targets
            .iter()
            .find(|t| t.method.eq_ignore_ascii_case(method))
        {
            Some(t) => (
                t.include.iter().map(String::as_str).collect(),
                t.exclude.iter().map(String::as_str).collect(),
            ),
            None => (vec!["all_users"], vec![]),
        }
    }

    pub fn is_enabled(&self, method: &str) -> bool {
        self.enabled_methods
            .iter()
            .any(|m| m.eq_ignore_ascii_case(method))
    }
}

impl Tenant {
    /// Whether a method-policy target (`all_users`, a group id, a user id) takes in `u`. A
    /// group that does not exist takes in nobody.
    pub fn in_target(&self, target: &str, u: &SimUser) -> bool {
        if target.eq_ignore_ascii_case("all_users") {
            return true;
        }
        let Ok(id) = uuid::Uuid::parse_str(target).map(|t| t.as_u128()) else {
            return false;
        };
        if id == u.id {
            return true;
        }
        let Some(i) = self.by_id.get(&u.id) else {
            return false;
        };
        self.groups
            .iter()
            .any(|g| g.id == id && g.members.contains(i))
    }

    /// Whether the methods policy lets `u` use the configuration `method`: enabled, the user
    /// among its include targets and not among its exclude targets.
    pub fn allows(&self, u: &SimUser, method: &str) -> bool {
        let (include, exclude) = self.policy.targets_of(method);
        self.policy.is_enabled(method)
            && include.iter().any(|t| self.in_target(t, u))
            && !exclude.iter().any(|t| self.in_target(t, u))
    }

    /// `isMfaCapable` as Graph computes it: a strong method registered *and allowed to the
    /// user by the authentication-methods policy* (state and targets). Before the migration
    /// completes the legacy MFA policy still allows the classic methods, so every registered
    /// strong method counts then.
    pub fn is_mfa_capable(&self, u: &SimUser) -> bool {
        if self.policy.migration_state != "migrationComplete" {
            return u.is_mfa_registered();
        }
        (0..METHODS.len())
            .filter(|i| u.has(*i) && METHODS[*i].mfa_capable)
            .any(|i| {
                let configs = method_configs(METHODS[i].report_name);
                configs.is_empty() || configs.iter().any(|c| self.allows(u, c))
            })
    }

    pub fn group(&self, key: &str) -> Option<&SimGroup> {
        let id = uuid::Uuid::parse_str(key).ok()?.as_u128();
        self.groups.iter().find(|g| g.id == id)
    }

    pub fn find(&self, key: &str) -> Option<usize> {
        if let Ok(u) = uuid::Uuid::parse_str(key) {
            return self.by_id.get(&u.as_u128()).map(|i| *i as usize);
        }
        let key = key.to_ascii_lowercase();
        self.users
            .iter()
            .position(|u| u.upn.to_ascii_lowercase() == key)
    }

    /// Gives every sign-in and audit entry an id (deterministic: from its content and place)
    /// and keeps both lists newest first.
    pub fn normalise_events(&mut self) {
        for (n, s) in self.sign_ins.iter_mut().enumerate() {
            crate::events::to_micros(s);
            if s.id.is_empty() {
                s.id =
                    crate::events::derived_id(&s.user_id, s.created, s.error_code as i64, n as u64);
            }
        }
        crate::events::sort_newest_first(&mut self.sign_ins);
        for (n, a) in self.audits.iter_mut().enumerate() {
            if a.id.is_empty() {
                a.id = crate::events::audit_id(&a.target_user_id, a.at, n as u64);
            }
        }
        self.audits
            .sort_by(|a, b| b.at.cmp(&a.at).then_with(|| b.id.cmp(&a.id)));
    }

    pub fn reindex(&mut self) {
        self.by_id = self
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.id, i as u32))
            .collect();
    }

    /// Tenant size class for the directory bucket (REFERENCE §3.6).
    pub fn directory_ru_per_10s(&self) -> f64 {
        match self.users.len() {
            0..50 => 3500.0,
            50..=500 => 5000.0,
            _ => 8000.0,
        }
    }

    /// The truth a collection of this tenant must arrive at.
    pub fn ground_truth(&self, licence: &str) -> GroundTruth {
        GroundTruth {
            licence: licence.to_string(),
            users: self
                .users
                .iter()
                .map(|u| {
                    let mut methods: Vec<String> =
                        u.method_names().iter().map(|s| s.to_string()).collect();
                    methods.sort();
                    TruthUser {
                        id: u.id_string(),
                        upn: u.upn.to_string(),
                        display_name: u.display_name.to_string(),
                        user_type: if u.guest { "Guest" } else { "Member" }.into(),
                        account_enabled: u.enabled,
                        created: u.created,
                        on_premises_sync: u.synced,
                        methods,
                        unknown_methods: u.unknown_method.iter().map(|s| s.to_string()).collect(),
                        is_admin: u.is_admin(),
                        mfa_capable: self.is_mfa_capable(u),
                        roles: u
                            .roles
                            .iter()
                            .map(|r| ROLES[*r as usize].to_string())
                            .collect(),
                        eligible_roles: u
                            .eligible_roles
                            .iter()
                            .map(|r| ROLES[*r as usize].to_string())
                            .collect(),
                        system_preferred_mfa: u.system_preferred,
                        default_method: u.default_method.to_string(),
                        tap: u.tap.as_deref().cloned(),
                        per_user_mfa: u.per_user_mfa_str().into(),
                        other_mails: u.other_mail.iter().map(|m| m.to_string()).collect(),
                        sspr: Some(u.sspr_flags()),
                    }
                })
                .collect(),
            sign_ins: self.sign_ins.clone(),
            audits: self.audits.clone(),
            policy: self.policy.clone(),
            groups: self
                .groups
                .iter()
                .map(|g| TruthGroup {
                    id: g.id_string(),
                    display_name: g.display_name.clone(),
                    members: g
                        .members
                        .iter()
                        .map(|i| self.users[*i as usize].id_string())
                        .collect(),
                    role_assignable: g.role_assignable,
                    roles: role_ids(&g.roles),
                    eligible_roles: role_ids(&g.eligible_roles),
                    service_principals: g
                        .service_principals
                        .iter()
                        .map(|i| self.service_principals[*i as usize].id_string())
                        .collect(),
                })
                .collect(),
            service_principals: self
                .service_principals
                .iter()
                .map(|sp| TruthServicePrincipal {
                    id: sp.id_string(),
                    display_name: sp.display_name.clone(),
                    roles: role_ids(&sp.roles),
                })
                .collect(),
            now: self.now,
            break_glass: self.break_glass.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TruthUser {
    pub id: String,
    pub upn: String,
    pub display_name: String,
    pub user_type: String,
    pub account_enabled: bool,
    pub created: Option<DateTime<Utc>>,
    pub on_premises_sync: bool,
    /// In the registration report's `methodsRegistered` vocabulary, sorted.
    pub methods: Vec<String>,
    pub unknown_methods: Vec<String>,
    pub is_admin: bool,
    /// `isMfaCapable` as the report renders it (computed from the policy; ignored on load).
    #[serde(default)]
    pub mfa_capable: bool,
    /// Role template ids assigned to the user itself tenant-wide (not through a group: see
    /// [`GroundTruth::active_roles`]).
    pub roles: Vec<String>,
    /// Role template ids the user itself is eligible for through PIM (see
    /// [`GroundTruth::eligible_roles`]).
    #[serde(default)]
    pub eligible_roles: Vec<String>,
    pub system_preferred_mfa: bool,
    pub default_method: String,
    pub tap: Option<SimTap>,
    pub per_user_mfa: String,
    /// `otherMails` (absent in older JSON: none).
    #[serde(default)]
    pub other_mails: Vec<String>,
    /// The registration report's SSPR flags (absent in older JSON: derived from the methods,
    /// see [`SimUser::sspr_flags`]).
    #[serde(default)]
    pub sspr: Option<SimSspr>,
}

/// What a collection of the tenant must arrive at.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    pub licence: String,
    pub users: Vec<TruthUser>,
    pub sign_ins: Vec<SimSignIn>,
    /// Directory-audit entries pushed while the simulator ran (absent in older JSON: none).
    #[serde(default)]
    pub audits: Vec<crate::events::SimAudit>,
    pub policy: SimPolicy,
    #[serde(default)]
    pub groups: Vec<TruthGroup>,
    #[serde(default)]
    pub service_principals: Vec<TruthServicePrincipal>,
    pub now: DateTime<Utc>,
    /// UPNs of the break-glass accounts (configure them in `[break_glass]`): never judged by
    /// the user rules.
    #[serde(default)]
    pub break_glass: Vec<String>,
}

fn role_ids(roles: &[u8]) -> Vec<String> {
    roles
        .iter()
        .map(|r| ROLES[*r as usize].to_string())
        .collect()
}

impl GroundTruth {
    /// The watcher's states at `at` over the sign-ins this ground truth lists (pushed and the
    /// tenant's own; not generated traffic: see [`crate::SimHandle::watch_truth`]).
    pub fn watch_states(
        &self,
        at: DateTime<Utc>,
        thresholds: &crate::events::WatchThresholds,
    ) -> crate::events::WatchTruth {
        crate::events::watch_states(&self.sign_ins, at, thresholds)
    }

    /// Role template ids the user has one way (`own` of its own, `via_group` of each role-assignable
    /// group it is a transitive member of), sorted, once each.
    fn roles_of(
        &self,
        user_id: &str,
        own: impl Fn(&TruthUser) -> &[String],
        via_group: impl Fn(&TruthGroup) -> &[String],
    ) -> Vec<String> {
        let mut out: Vec<String> = self
            .users
            .iter()
            .filter(|u| u.id.eq_ignore_ascii_case(user_id))
            .flat_map(|u| own(u).iter().cloned())
            .chain(
                self.groups
                    .iter()
                    .filter(|g| {
                        g.role_assignable
                            && g.members.iter().any(|m| m.eq_ignore_ascii_case(user_id))
                    })
                    .flat_map(|g| via_group(g).iter().cloned()),
            )
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Role template ids the user holds actively: its own assignments and those of the
    /// role-assignable groups it is a (transitive) member of. Sorted, once each.
    pub fn active_roles(&self, user_id: &str) -> Vec<String> {
        self.roles_of(user_id, |u| &u.roles, |g| &g.roles)
    }

    /// Role template ids the user can activate through PIM (its own eligibility and its groups'),
    /// leaving out those it already holds actively. Sorted, once each. Only a P2 tenant serves them.
    pub fn eligible_roles(&self, user_id: &str) -> Vec<String> {
        let active = self.active_roles(user_id);
        let mut out = self.roles_of(user_id, |u| &u.eligible_roles, |g| &g.eligible_roles);
        out.retain(|r| !active.contains(r));
        out
    }

    /// How many distinct service principals hold each role template id actively, directly or
    /// through a role-assignable group.
    pub fn service_principals_by_role(&self) -> std::collections::BTreeMap<String, usize> {
        let mut by_role: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
            Default::default();
        for sp in &self.service_principals {
            for r in &sp.roles {
                by_role.entry(r.clone()).or_default().insert(sp.id.clone());
            }
        }
        for g in self.groups.iter().filter(|g| g.role_assignable) {
            for r in &g.roles {
                for sp in &g.service_principals {
                    by_role.entry(r.clone()).or_default().insert(sp.clone());
                }
            }
        }
        by_role.into_iter().map(|(r, s)| (r, s.len())).collect()
    }
}

fn pick<'a, T>(rng: &mut SmallRng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

const FIRST: &[&str] = &[
    "adele",
    "alex",
    "allan",
    "bianca",
    "diego",
    "emily",
    "grady",
    "henrietta",
    "isaiah",
    "johanna",
    "joni",
    "lee",
    "lidia",
    "lynne",
    "megan",
    "miriam",
    "nestor",
    "patti",
    "pradeep",
    "raul",
    "wei",
    "yuki",
    "zara",
    "omar",
];
const LAST: &[&str] = &[
    "vance",
    "wilber",
    "deyoung",
    "pisani",
    "siciliani",
    "braun",
    "archie",
    "mueller",
    "henderson",
    "lauer",
    "sherman",
];

/// Method sets (by name) and their weights, for users who have registered something.
fn method_mix(rng: &mut SmallRng, profile: Profile) -> &'static [&'static str] {
    const NONE: &[&str] = &[];
    const EMAIL_ONLY: &[&str] = &["email"];
    const PHONE_ONLY: &[&str] = &["mobilePhone"];
    const PHONE_ALT: &[&str] = &["mobilePhone", "alternateMobilePhone"];
    const APP_ONLY: &[&str] = &["microsoftAuthenticatorPush"];
    const APP_OTP: &[&str] = &["microsoftAuthenticatorPush", "softwareOneTimePasscode"];
    const APP_PHONE: &[&str] = &["microsoftAuthenticatorPush", "mobilePhone"];
    const APP_PHONE_SSPR: &[&str] = &[
        "email",
        "microsoftAuthenticatorPush",
        "mobilePhone",
        "securityQuestion",
    ];
    const APP_KEY: &[&str] = &["fido2SecurityKey", "microsoftAuthenticatorPush"];
    const WHFB_APP: &[&str] = &[
        "microsoftAuthenticatorPasswordless",
        "windowsHelloForBusiness",
    ];
    const PASSKEY_PHONE: &[&str] = &["mobilePhone", "passKeyDeviceBoundAuthenticator"];
    const SYNCED_APP: &[&str] = &["microsoftAuthenticatorPush", "passKeySynced"];
    const HW_PHONE: &[&str] = &["hardwareOneTimePasscode", "officePhone"];
    const MAC_KEY: &[&str] = &["macOsSecureEnclaveKey", "passKeyDeviceBound"];
    const EXTERNAL: &[&str] = &["externalAuthMethod", "mobilePhone"];
    // Only a hardware token: locked out where the policy disables HardwareOath.
    const HW_ONLY: &[&str] = &["hardwareOneTimePasscode"];
    const CBA_APP: &[&str] = &["microsoftAuthenticatorPush", "x509CertificateMultiFactor"];
    const CBA_SINGLE_PHONE: &[&str] = &["mobilePhone", "x509CertificateSingleFactor"];
    const WH_PASSKEY_APP: &[&str] = &[
        "microsoftAuthenticatorPush",
        "passKeyDeviceBoundWindowsHello",
    ];
    let r: f64 = rng.gen();
    if profile == Profile::Healthy {
        const HEALTHY: &[&[&str]] = &[
            APP_PHONE,
            APP_KEY,
            WHFB_APP,
            PASSKEY_PHONE,
            SYNCED_APP,
            HW_PHONE,
            MAC_KEY,
            APP_PHONE_SSPR,
        ];
        return HEALTHY[rng.gen_range(0..HEALTHY.len())];
    }
    match r {
        r if r < 0.06 => NONE,
        r if r < 0.08 => EMAIL_ONLY,
        r if r < 0.16 => PHONE_ONLY,
        r if r < 0.18 => PHONE_ALT,
        r if r < 0.33 => APP_ONLY,
        r if r < 0.48 => APP_OTP,
        r if r < 0.73 => APP_PHONE,
        r if r < 0.735 => HW_ONLY,
        r if r < 0.745 => CBA_APP,
        r if r < 0.75 => CBA_SINGLE_PHONE,
        r if r < 0.76 => WH_PASSKEY_APP,
        r if r < 0.84 => APP_PHONE_SSPR,
        r if r < 0.88 => APP_KEY,
        r if r < 0.92 => WHFB_APP,
        r if r < 0.94 => PASSKEY_PHONE,
        r if r < 0.96 => SYNCED_APP,
        r if r < 0.97 => HW_PHONE,
        r if r < 0.985 => MAC_KEY,
        _ => EXTERNAL,
    }
}

fn default_policy(profile: Profile) -> SimPolicy {
    let weak = profile == Profile::WeakPolicy;
    let enabled: &[&str] = if weak {
        &[
            "MicrosoftAuthenticator",
            "Sms",
            "Voice",
            "Email",
            "SoftwareOath",
        ]
    } else {
        &[
            "Fido2",
            "MicrosoftAuthenticator",
            "TemporaryAccessPass",
            "SoftwareOath",
            "Voice",
            "Sms",
        ]
    };
    SimPolicy {
        migration_state: if weak {
            "preMigration"
        } else {
            "migrationComplete"
        }
        .into(),
        registration_campaign: if weak { "disabled" } else { "enabled" }.into(),
        system_preferred: if weak { "disabled" } else { "enabled" }.into(),
        tap_enabled: !weak,
        tap_usable_once: profile == Profile::Healthy,
        tap_default_lifetime: 60,
        tap_min_lifetime: 60,
        tap_max_lifetime: 480,
        tap_length: 8,
        tap_include: vec!["all_users".into()],
        enabled_methods: enabled.iter().map(|s| s.to_string()).collect(),
        number_matching: if weak { "default" } else { "enabled" }.into(),
        app_information: if weak { "disabled" } else { "enabled" }.into(),
        location_information: if weak { "disabled" } else { "enabled" }.into(),
        security_defaults: false,
        method_targets: Vec::new(),
        fido2: SimFido2::default(),
        report_suspicious_activity: if weak { "default" } else { "enabled" }.into(),
        strengths: Vec::new(),
        lockout: None,
        conditional_access: if weak {
            vec![
                SimCaPolicy {
                    id: "1f3d2c1e-0000-4000-8000-00000000ca01".into(),
                    display_name: "Require MFA for admins (report-only)".into(),
                    state: "enabledForReportingButNotEnforced".into(),
                    include_users: vec![],
                    exclude_users: vec![],
                    include_roles: vec![ROLES[0].into()],
                    built_in_controls: vec!["mfa".into()],
                    operator: "OR".into(),
                    conditions: SimCaConditions::default(),
                    beta_only: false,
                    ..SimCaPolicy::default()
                },
                SimCaPolicy {
                    id: "1f3d2c1e-0000-4000-8000-00000000ca04".into(),
                    display_name: "Require MFA off the office network".into(),
                    state: "enabled".into(),
                    include_users: vec!["All".into()],
                    exclude_users: vec![],
                    include_roles: vec![],
                    built_in_controls: vec!["mfa".into()],
                    operator: "OR".into(),
                    conditions: SimCaConditions {
                        include_locations: vec!["All".into()],
                        exclude_locations: vec!["AllTrusted".into()],
                        ..SimCaConditions::default()
                    },
                    beta_only: false,
                    ..SimCaPolicy::default()
                },
            ]
        } else {
            vec![
                SimCaPolicy {
                    id: "1f3d2c1e-0000-4000-8000-00000000ca01".into(),
                    display_name: "Require MFA for all users".into(),
                    state: "enabled".into(),
                    include_users: vec!["All".into()],
                    exclude_users: vec![],
                    include_roles: vec![],
                    built_in_controls: vec!["mfa".into()],
                    operator: "OR".into(),
                    conditions: SimCaConditions::default(),
                    beta_only: false,
                    ..SimCaPolicy::default()
                },
                SimCaPolicy {
                    id: "1f3d2c1e-0000-4000-8000-00000000ca02".into(),
                    display_name: "Block legacy authentication".into(),
                    state: "enabled".into(),
                    include_users: vec!["All".into()],
                    exclude_users: vec![],
                    include_roles: vec![],
                    built_in_controls: vec!["block".into()],
                    operator: "OR".into(),
                    conditions: SimCaConditions {
                        client_app_types: vec!["exchangeActiveSync".into(), "other".into()],
                        ..SimCaConditions::default()
                    },
                    beta_only: false,
                    ..SimCaPolicy::default()
                },
                SimCaPolicy {
                    id: "1f3d2c1e-0000-4000-8000-00000000ca03".into(),
                    display_name: "Require MFA for risky sign-ins".into(),
                    state: "enabled".into(),
                    include_users: vec!["All".into()],
                    exclude_users: vec![],
                    include_roles: vec![],
                    built_in_controls: vec!["mfa".into()],
                    operator: "OR".into(),
                    conditions: SimCaConditions {
                        sign_in_risk_levels: vec!["medium".into(), "high".into()],
                        exclude_guests: true,
                        ..SimCaConditions::default()
                    },
                    beta_only: false,
                    ..SimCaPolicy::default()
                },
            ]
        },
    }
}

/// A deterministic tenant of `users` users for (`seed`, `profile`). `now` anchors sign-in and
/// TAP times (pass the simulator's start time).
pub fn generate_at(users: usize, seed: u64, profile: Profile, now: DateTime<Utc>) -> Tenant {
    let mut rng = SmallRng::seed_from_u64(seed);
    let domain = "contoso.onmicrosoft.com".to_string();
    let admin_quota = ((users as f64 * 0.005).round() as usize).clamp(users.min(2), 200);
    let mut list = Vec::with_capacity(users);
    let mut sign_ins = Vec::new();
    let mut admins = 0usize;
    for i in 0..users {
        let id: u128 = rng.gen::<u128>() & !(0xf << 76) | (0x4 << 76); // a v4-shaped GUID
        let first = pick(&mut rng, FIRST);
        let last = pick(&mut rng, LAST);
        let kind: f64 = rng.gen();
        let (upn, guest, synced) = match kind {
            k if k < 0.015 => (
                format!("{first}.{last}{i}_fabrikam.com#EXT#@{domain}"),
                true,
                false,
            ),
            k if k < 0.02 => (
                format!("package_{:08x}@{domain}", rng.gen::<u32>()),
                false,
                false,
            ),
            k if k < 0.025 => (
                format!("Sync_DC{:02}_{:08x}@{domain}", i % 7, rng.gen::<u32>()),
                false,
                true,
            ),
            k if k < 0.25 => (format!("{first}.{last}{i}@{domain}"), false, true),
            _ => (format!("{first}.{last}{i}@{domain}"), false, false),
        };
        let display = format!(
            "{}{} {}{}",
            &first[..1].to_uppercase(),
            &first[1..],
            &last[..1].to_uppercase(),
            &last[1..]
        );
        let enabled = rng.gen::<f64>() >= 0.03;
        let created = match rng.gen::<f64>() {
            c if c < 0.01 => None,
            c if c < 0.03 => Some(now - Duration::hours(rng.gen_range(1..24 * 7))),
            _ => Some(now - Duration::days(rng.gen_range(8..3 * 365))),
        };
        let mix = method_mix(&mut rng, profile);
        let mut methods = 0u32;
        for name in mix {
            if let Some(ix) = method_index(name) {
                methods |= 1 << ix;
            }
        }
        let mut roles = Vec::new();
        if admins < admin_quota && (admins < 2 || rng.gen::<f64>() < 0.006) && enabled && !guest {
            roles.push(match admins {
                0 | 1 => 0u8,
                _ => rng.gen_range(0..ROLES.len() as u8),
            });
            if rng.gen::<f64>() < 0.2 {
                let extra = rng.gen_range(0..ROLES.len() as u8);
                if !roles.contains(&extra) {
                    roles.push(extra);
                }
            }
            admins += 1;
        }
        let unknown_method =
            (rng.gen::<f64>() < 0.001).then(|| Box::<str>::from("quantumEntanglementToken"));
        let tap = (rng.gen::<f64>() < 0.003).then(|| {
            let lifetime = *pick(&mut rng, &[60u32, 120, 480, 1440, 43200]);
            let usable_once = rng.gen::<bool>();
            let (start, usable, reason) = match rng.gen_range(0..10) {
                0 => (
                    now - Duration::minutes(i64::from(lifetime) + 30),
                    false,
                    "Expired",
                ),
                1 => (now + Duration::hours(2), false, "NotYetValid"),
                _ => (now - Duration::minutes(5), true, "EnabledByPolicy"),
            };
            Box::new(SimTap {
                start,
                lifetime_minutes: lifetime,
                usable_once,
                usable,
                reason: reason.into(),
                fresh: false,
            })
        });
        if tap.is_some() {
            methods |= 1 << method_index("temporaryAccessPass").unwrap_or(0);
        }
        let has = |name: &str| method_index(name).is_some_and(|ix| methods & (1 << ix) != 0);
        let default_method =
            if has("microsoftAuthenticatorPush") || has("microsoftAuthenticatorPasswordless") {
                if rng.gen::<f64>() < 0.1 {
                    "sms"
                } else {
                    "push"
                }
            } else if has("mobilePhone") {
                if rng.gen::<bool>() {
                    "sms"
                } else {
                    "voiceMobile"
                }
            } else if has("softwareOneTimePasscode") || has("hardwareOneTimePasscode") {
                "oath"
            } else if has("officePhone") {
                "voiceOffice"
            } else {
                "none"
            };
        let per_user_mfa = match rng.gen::<f64>() {
            p if p < 0.05 => 1,
            p if p < 0.08 => 2,
            _ => 0,
        };
        let id_str = uuid::Uuid::from_u128(id).hyphenated().to_string();
        if rng.gen::<f64>() < 0.04 {
            for _ in 0..rng.gen_range(1..9) {
                let when = now - Duration::seconds(rng.gen_range(60..48 * 3600));
                sign_ins.push(crate::events::mfa_failure(&id_str, when, 500121));
            }
        }
        if rng.gen::<f64>() < 0.02 {
            let when = now - Duration::seconds(rng.gen_range(60..48 * 3600));
            sign_ins.push(SimSignIn::new(id_str, when, 50126));
        }
        list.push(SimUser {
            id,
            upn: upn.into(),
            display_name: display.into(),
            guest,
            enabled,
            created,
            synced,
            methods,
            unknown_method,
            roles,
            eligible_roles: Vec::new(),
            system_preferred: profile != Profile::WeakPolicy && rng.gen::<f64>() < 0.85,
            default_method,
            tap,
            per_user_mfa,
            other_mail: None,
            sspr: None,
        });
    }
    sign_ins.sort_by_key(|s| std::cmp::Reverse(s.created));
    add_fresh_taps(&mut list, seed, now);
    add_other_mails(&mut list, seed);
    let groups = generate_groups(&list, seed);
    let mut tenant = Tenant {
        groups,
        service_principals: Vec::new(),
        domain,
        users: list,
        by_id: HashMap::new(),
        sign_ins,
        audits: Vec::new(),
        policy: default_policy(profile),
        now,
        break_glass: Vec::new(),
    };
    tenant.reindex();
    tenant.normalise_events();
    if profile == Profile::PolicyLockouts {
        tenant.plant_policy_lockouts(seed);
    }
    tenant
}

/// Gives about four in five members an alternate email (`otherMails`). A separate RNG leaves
/// the rest of the tenant unchanged.
fn add_other_mails(list: &mut [SimUser], seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x07e4_3a11);
    for u in list.iter_mut().filter(|u| !u.guest) {
        if rng.gen::<f64>() < 0.8 {
            let local = u
                .upn
                .split('@')
                .next()
                .unwrap_or("user")
                .to_ascii_lowercase();
            u.other_mail = Some(format!("{local}@fabrikam.example").into());
        }
    }
}

/// Issues TAPs in the last two hours to about 0.3 % of the enabled users without one (at least
/// one): after the registration report's snapshot, so only the directory audit log and the
/// per-user endpoints know of them. A separate RNG leaves the rest of the tenant unchanged.
fn add_fresh_taps(list: &mut [SimUser], seed: u64, now: DateTime<Utc>) {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x7a9f_7e5e);
    let tap_bit = 1 << method_index("temporaryAccessPass").unwrap_or(0);
    let mut issued = 0usize;
    let candidates: Vec<usize> = (0..list.len())
        .filter(|&i| list[i].enabled && !list[i].guest && list[i].tap.is_none())
        .collect();
    for (n, &i) in candidates.iter().enumerate() {
        let last_chance = issued == 0 && n + 1 == candidates.len();
        if !(last_chance || rng.gen::<f64>() < 0.003) {
            continue;
        }
        let lifetime = *pick(&mut rng, &[60u32, 480, 1440, 43200]);
        list[i].tap = Some(Box::new(SimTap {
            start: now - Duration::minutes(rng.gen_range(6..120)),
            lifetime_minutes: lifetime,
            usable_once: rng.gen::<bool>(),
            usable: true,
            reason: "EnabledByPolicy".into(),
            fresh: true,
        }));
        list[i].methods |= tap_bit;
        issued += 1;
    }
}

/// [`generate_at`] anchored at the current time.
pub fn generate(users: usize, seed: u64, profile: Profile) -> Tenant {
    generate_at(users, seed, profile, Utc::now())
}

/// A tenant described in JSON: the ground-truth format ([`GroundTruth`]), so a dumped ground
/// truth can be edited and served again.
pub fn from_ground_truth(truth: &GroundTruth) -> Result<Tenant, String> {
    let mut users = Vec::with_capacity(truth.users.len());
    for (n, u) in truth.users.iter().enumerate() {
        let id = uuid::Uuid::parse_str(&u.id)
            .map_err(|e| format!("users[{n}].id {:?}: {e}", u.id))?
            .as_u128();
        let mut methods = 0u32;
        for m in &u.methods {
            let ix = method_index(m)
                .ok_or_else(|| format!("users[{n}].methods: unknown method {m:?}"))?;
            methods |= 1 << ix;
        }
        let roles = u
            .roles
            .iter()
            .map(|r| {
                ROLES
                    .iter()
                    .position(|x| x.eq_ignore_ascii_case(r))
                    .map(|p| p as u8)
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| format!("users[{n}].roles: a role the simulator does not know"))?;
        let eligible_roles = role_indexes(&u.eligible_roles).ok_or_else(|| {
            format!("users[{n}].eligible_roles: a role the simulator does not know")
        })?;
        let default_method: &'static str = [
            "push",
            "oath",
            "voiceMobile",
            "voiceAlternateMobile",
            "voiceOffice",
            "sms",
            "none",
            "",
        ]
        .into_iter()
        .find(|d| *d == u.default_method)
        .ok_or_else(|| {
            format!(
                "users[{n}].default_method {:?} is not a Graph value",
                u.default_method
            )
        })?;
        users.push(SimUser {
            id,
            upn: u.upn.as_str().into(),
            display_name: u.display_name.as_str().into(),
            guest: u.user_type.eq_ignore_ascii_case("guest"),
            enabled: u.account_enabled,
            created: u.created,
            synced: u.on_premises_sync,
            methods,
            unknown_method: u.unknown_methods.first().map(|s| s.as_str().into()),
            roles,
            eligible_roles,
            system_preferred: u.system_preferred_mfa,
            default_method,
            tap: u.tap.clone().map(Box::new),
            per_user_mfa: match u.per_user_mfa.as_str() {
                "enabled" => 1,
                "enforced" => 2,
                _ => 0,
            },
            other_mail: u.other_mails.first().map(|m| m.as_str().into()),
            sspr: u.sspr,
        });
    }
    let mut tenant = Tenant {
        domain: "contoso.onmicrosoft.com".into(),
        users,
        by_id: HashMap::new(),
        sign_ins: truth.sign_ins.clone(),
        audits: truth.audits.clone(),
        policy: truth.policy.clone(),
        groups: Vec::new(),
        service_principals: Vec::new(),
        now: truth.now,
        break_glass: truth.break_glass.clone(),
    };
    tenant.reindex();
    tenant.normalise_events();
    for (n, sp) in truth.service_principals.iter().enumerate() {
        let id = uuid::Uuid::parse_str(&sp.id)
            .map_err(|e| format!("service_principals[{n}].id {:?}: {e}", sp.id))?
            .as_u128();
        let roles = role_indexes(&sp.roles).ok_or_else(|| {
            format!("service_principals[{n}].roles: a role the simulator does not know")
        })?;
        tenant.service_principals.push(SimServicePrincipal {
            id,
            display_name: sp.display_name.clone(),
            roles,
        });
    }
    for (n, g) in truth.groups.iter().enumerate() {
        let id = uuid::Uuid::parse_str(&g.id)
            .map_err(|e| format!("groups[{n}].id {:?}: {e}", g.id))?
            .as_u128();
        let members = g
            .members
            .iter()
            .map(|m| {
                tenant
                    .find(m)
                    .map(|i| i as u32)
                    .ok_or_else(|| format!("groups[{n}].members: no user {m}"))
            })
            .collect::<Result<Vec<u32>, String>>()?;
        let roles = role_indexes(&g.roles)
            .ok_or_else(|| format!("groups[{n}].roles: a role the simulator does not know"))?;
        let eligible_roles = role_indexes(&g.eligible_roles).ok_or_else(|| {
            format!("groups[{n}].eligible_roles: a role the simulator does not know")
        })?;
        let service_principals = g
            .service_principals
            .iter()
            .map(|m| {
                let id = uuid::Uuid::parse_str(m).ok().map(|u| u.as_u128());
                tenant
                    .service_principals
                    .iter()
                    .position(|sp| Some(sp.id) == id)
                    .map(|i| i as u32)
                    .ok_or_else(|| {
                        format!("groups[{n}].service_principals: no service principal {m}")
                    })
            })
            .collect::<Result<Vec<u32>, String>>()?;
        tenant.groups.push(SimGroup {
            id,
            display_name: g.display_name.clone(),
            members,
            role_assignable: g.role_assignable,
            roles,
            eligible_roles,
            service_principals,
        });
    }
    Ok(tenant)
}

/// Role template ids as indexes into [`ROLES`]; `None` if one is unknown.
fn role_indexes(ids: &[String]) -> Option<Vec<u8>> {
    ids.iter()
        .map(|r| {
            ROLES
                .iter()
                .position(|x| x.eq_ignore_ascii_case(r))
                .map(|p| p as u8)
        })
        .collect()
}

/// Indexes into [`ROLES`] by name, for [`Tenant::add_privileged_access`].
const GLOBAL_ADMIN: u8 = 0;
const PRIVILEGED_AUTH_ADMIN: u8 = 1;
const AUTH_ADMIN: u8 = 2;
const SECURITY_ADMIN: u8 = 3;
const GLOBAL_READER: u8 = 8;

impl Tenant {
    /// Indexes of the enabled members who are people (not the service-like `package_` and
    /// `Sync_` accounts, not guests) and hold no role, active or eligible: whom a scenario may
    /// make into something.
    pub fn people_without_roles(&self) -> Vec<u32> {
        self.users
            .iter()
            .enumerate()
            .filter(|(_, u)| {
                u.enabled
                    && !u.guest
                    && !u.upn.starts_with("package_")
                    && !u.upn.starts_with("Sync_")
                    && u.roles.is_empty()
                    && u.eligible_roles.is_empty()
            })
            .map(|(i, _)| i as u32)
            .collect()
    }

    /// Adds what real tenants have beside directly assigned admins, deterministically from
    /// `seed`: a role-assignable group holding Global Administrator (two members and a service
    /// principal), a group eligible through PIM for Authentication Administrator, users eligible
    /// for Global Administrator and Privileged Authentication Administrator themselves, and
    /// service principals holding Global Administrator, Security Administrator and Global Reader.
    /// The chosen users are enabled members (not `package_`/`Sync_` accounts) who held no role
    /// before. Returns the ids of the users it made admins, in that order: the two Tier 0 group
    /// members, the three Helpdesk group members, the eligible Global Administrator, the eligible
    /// Privileged Authentication Administrator.
    pub fn add_privileged_access(&mut self, seed: u64) -> Vec<String> {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x0091_7a55);
        let mut candidates = self.people_without_roles();
        let mut take = |rng: &mut SmallRng| -> Option<u32> {
            (!candidates.is_empty())
                .then(|| candidates.swap_remove(rng.gen_range(0..candidates.len())))
        };
        let tier0: Vec<u32> = (0..2).filter_map(|_| take(&mut rng)).collect();
        let helpdesk: Vec<u32> = (0..3).filter_map(|_| take(&mut rng)).collect();
        let eligible_ga = take(&mut rng);
        let eligible_paa = take(&mut rng);
        let sp_id = |n: u128| 0x5e7f_0000_0000_4000_8000_0000_0000_0000u128 | n;
        let first_sp = self.service_principals.len() as u32;
        self.service_principals.extend([
            SimServicePrincipal {
                id: sp_id(1),
                display_name: "Contoso Provisioning".into(),
                roles: vec![GLOBAL_ADMIN],
            },
            SimServicePrincipal {
                id: sp_id(2),
                display_name: "SIEM Connector".into(),
                roles: vec![SECURITY_ADMIN, GLOBAL_READER],
            },
            SimServicePrincipal {
                id: sp_id(3),
                display_name: "Break-fix Automation".into(),
                roles: vec![],
            },
        ]);
        let group_id = |n: u128| 0x9a0c_0000_0000_4000_8000_0000_0000_1000u128 | n;
        self.groups.push(SimGroup {
            id: group_id(1),
            display_name: "Tier 0 Admins".into(),
            members: tier0.clone(),
            role_assignable: true,
            roles: vec![GLOBAL_ADMIN],
            eligible_roles: vec![],
            service_principals: vec![first_sp + 2],
        });
        self.groups.push(SimGroup {
            id: group_id(2),
            display_name: "Helpdesk (PIM)".into(),
            members: helpdesk.clone(),
            role_assignable: true,
            roles: vec![],
            eligible_roles: vec![AUTH_ADMIN],
            service_principals: vec![],
        });
        if let Some(i) = eligible_ga {
            self.users[i as usize].eligible_roles.push(GLOBAL_ADMIN);
        }
        if let Some(i) = eligible_paa {
            self.users[i as usize]
                .eligible_roles
                .push(PRIVILEGED_AUTH_ADMIN);
        }
        tier0
            .iter()
            .chain(&helpdesk)
            .chain(eligible_ga.iter())
            .chain(eligible_paa.iter())
            .map(|i| self.users[*i as usize].id_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic() {
        let now = Utc::now();
        let a = generate_at(2000, 7, Profile::Realistic, now);
        let b = generate_at(2000, 7, Profile::Realistic, now);
        assert_eq!(a.ground_truth("P2"), b.ground_truth("P2"));
        let c = generate_at(2000, 8, Profile::Realistic, now);
        assert_ne!(a.ground_truth("P2").users, c.ground_truth("P2").users);
    }

    #[test]
    fn generated_conditional_access_includes_narrowed_mfa_policies() {
        let mfa_for_all = |c: &SimCaPolicy| {
            c.state == "enabled"
                && c.built_in_controls.iter().any(|b| b == "mfa")
                && c.include_users.iter().any(|u| u == "All")
        };
        let realistic = generate(50, 1, Profile::Realistic)
            .policy
            .conditional_access;
        assert_eq!(
            realistic
                .iter()
                .filter(|c| c.enforces_mfa_for_everyone(&[]))
                .count(),
            1
        );
        assert!(realistic
            .iter()
            .any(|c| mfa_for_all(c) && c.conditions.narrows() && c.conditions.exclude_guests));
        let weak = generate(50, 1, Profile::WeakPolicy)
            .policy
            .conditional_access;
        assert!(weak.iter().all(|c| !c.enforces_mfa_for_everyone(&[])));
        assert!(weak
            .iter()
            .any(|c| mfa_for_all(c) && c.conditions.narrows()));
        let mut excluded = realistic[0].clone();
        excluded.exclude_users = vec!["glass".into()];
        assert!(excluded.enforces_mfa_for_everyone(&["glass".into()]));
        assert!(!excluded.enforces_mfa_for_everyone(&[]));
    }

    #[test]
    fn realistic_profile_has_the_promised_spread() {
        let t = generate(20_000, 1, Profile::Realistic);
        let n = t.users.len() as f64;
        let frac =
            |f: &dyn Fn(&SimUser) -> bool| t.users.iter().filter(|u| f(u)).count() as f64 / n;
        let mfa = |u: &SimUser| (0..METHODS.len()).any(|i| u.has(i) && METHODS[i].mfa_capable);
        assert!((0.05..0.11).contains(&frac(&|u| !mfa(u))), "no MFA");
        assert!(
            (0.07..0.13).contains(&frac(&|u| u.method_names() == ["mobilePhone"])),
            "phone only"
        );
        assert!((0.02..0.04).contains(&frac(&|u| !u.enabled)), "disabled");
        assert!((0.01..0.02).contains(&frac(&|u| u.guest)), "guests");
        let admins = t.users.iter().filter(|u| u.is_admin()).count();
        assert!((50..=100).contains(&admins), "{admins} admins");
        let global_admins = t.users.iter().filter(|u| u.roles.contains(&0)).count();
        assert!(global_admins >= 2);
        assert!(t.users.iter().any(|u| u.tap.is_some()));
        assert!(t.users.iter().any(|u| u.unknown_method.is_some()));
        assert!(t.sign_ins.iter().any(|s| s.error_code == 500121));
        let ids: std::collections::HashSet<u128> = t.users.iter().map(|u| u.id).collect();
        assert_eq!(ids.len(), t.users.len(), "ids are unique");
    }

    #[test]
    fn healthy_profile_gives_everyone_two_families() {
        let t = generate(2000, 3, Profile::Healthy);
        assert!(t.users.iter().all(|u| u
            .method_names()
            .iter()
            .filter(|m| **m != "temporaryAccessPass")
            .count()
            >= 2));
    }

    #[test]
    fn privileged_access_round_trips_and_its_truth_follows_groups() {
        let mut t = generate(500, 9, Profile::Realistic);
        let made = t.add_privileged_access(9);
        assert_eq!(made.len(), 7);
        let truth = t.ground_truth("P2");
        let text = serde_json::to_string(&truth).expect("json");
        let back: GroundTruth = serde_json::from_str(&text).expect("parse");
        assert_eq!(
            from_ground_truth(&back).expect("tenant").ground_truth("P2"),
            truth
        );
        let ga = ROLES[GLOBAL_ADMIN as usize].to_string();
        // Tier 0 members hold Global Administrator only through the group.
        for id in &made[..2] {
            let own = truth.users.iter().find(|u| &u.id == id).expect("user");
            assert!(own.roles.is_empty());
            assert_eq!(truth.active_roles(id), vec![ga.clone()]);
        }
        assert_eq!(
            truth.eligible_roles(&made[2]),
            vec![ROLES[AUTH_ADMIN as usize].to_string()]
        );
        assert_eq!(truth.eligible_roles(&made[5]), vec![ga.clone()]);
        assert_eq!(truth.service_principals_by_role().get(&ga), Some(&2));
    }

    #[test]
    fn ground_truth_round_trips_through_json() {
        let t = generate(300, 5, Profile::WeakPolicy);
        let truth = t.ground_truth("P1");
        let text = serde_json::to_string(&truth).expect("json");
        let back: GroundTruth = serde_json::from_str(&text).expect("parse");
        let again = from_ground_truth(&back).expect("tenant");
        assert_eq!(again.ground_truth("P1"), truth);
    }
}
