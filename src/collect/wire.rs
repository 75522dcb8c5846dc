//! Graph's JSON, as the collector reads it. Collect-internal: public only so the fixtures test
//! can prove every documented payload parses.
//!
//! Lenient by design (REFERENCE §13): every field is optional, unknown fields are ignored, enums
//! are kept as strings and classified later, and date-times go through [`lenient_date`] where
//! `""`, `0001-01-01T00:00:00Z` and anything unparsable mean "absent" rather than an error.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

/// `""`, `0001-01-01…` and unparsable values are `None`.
pub fn lenient_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let raw: Option<serde_json::Value> = Option::deserialize(d)?;
    Ok(raw.as_ref().and_then(|v| v.as_str()).and_then(parse_date))
}

pub fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    if s.is_empty() || s.starts_with("0001-01-01") {
        return None;
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// Any JSON value for a string field: non-strings become `None` instead of failing the page.
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let raw: Option<serde_json::Value> = Option::deserialize(d)?;
    Ok(match raw {
        Some(serde_json::Value::String(s)) => Some(s),
        _ => None,
    })
}

fn lenient_strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let raw: Option<serde_json::Value> = Option::deserialize(d)?;
    Ok(match raw {
        Some(serde_json::Value::Array(items)) => items
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    })
}

/// A page of a collection.
#[derive(Debug, Deserialize)]
pub struct Page<T> {
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    #[serde(default, rename = "@odata.nextLink")]
    pub next_link: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SignInActivity {
    #[serde(deserialize_with = "lenient_date")]
    pub last_sign_in_date_time: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "lenient_date")]
    pub last_non_interactive_sign_in_date_time: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "lenient_date")]
    pub last_successful_sign_in_date_time: Option<DateTime<Utc>>,
}

/// `GET /users` (REFERENCE §4).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct User {
    #[serde(deserialize_with = "lenient_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub user_principal_name: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub display_name: Option<String>,
    pub account_enabled: Option<bool>,
    #[serde(deserialize_with = "lenient_string")]
    pub user_type: Option<String>,
    #[serde(deserialize_with = "lenient_date")]
    pub created_date_time: Option<DateTime<Utc>>,
    pub on_premises_sync_enabled: Option<bool>,
    pub sign_in_activity: Option<SignInActivity>,
    /// `otherMails` (alternate email addresses); absent when not `$select`ed.
    pub other_mails: Option<serde_json::Value>,
}

/// A row of `/reports/authenticationMethods/userRegistrationDetails` (REFERENCE §5).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RegistrationDetails {
    #[serde(deserialize_with = "lenient_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub user_principal_name: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub user_display_name: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub user_type: Option<String>,
    pub is_admin: Option<bool>,
    pub is_mfa_registered: Option<bool>,
    pub is_mfa_capable: Option<bool>,
    pub is_passwordless_capable: Option<bool>,
    pub is_sspr_registered: Option<bool>,
    pub is_sspr_enabled: Option<bool>,
    pub is_sspr_capable: Option<bool>,
    pub is_system_preferred_authentication_method_enabled: Option<bool>,
    #[serde(deserialize_with = "lenient_strings")]
    pub system_preferred_authentication_methods: Vec<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub user_preferred_method_for_secondary_authentication: Option<String>,
    #[serde(deserialize_with = "lenient_strings")]
    pub methods_registered: Vec<String>,
    #[serde(deserialize_with = "lenient_date")]
    pub last_updated_date_time: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "lenient_string")]
    pub default_mfa_method: Option<String>,
}

/// One item of `/users/{id}/authentication/methods` or a typed method collection: the union of
/// the fields the collector reads, discriminated by `@odata.type` (REFERENCE §6–§7).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AuthMethod {
    #[serde(
        rename = "@odata.type",
        alias = "odata.type",
        deserialize_with = "lenient_string"
    )]
    pub odata_type: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub display_name: Option<String>,
    #[serde(alias = "creationDateTime", deserialize_with = "lenient_date")]
    pub created_date_time: Option<DateTime<Utc>>,
    // phone
    #[serde(deserialize_with = "lenient_string")]
    pub phone_number: Option<String>,
    #[serde(alias = "authenticationPhoneType", deserialize_with = "lenient_string")]
    pub phone_type: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub sms_sign_in_state: Option<String>,
    // fido2 / passkeys
    #[serde(deserialize_with = "lenient_string")]
    pub aa_guid: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub model: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub attestation_level: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub passkey_type: Option<String>,
    // windows hello / platform credential
    #[serde(deserialize_with = "lenient_string")]
    pub key_strength: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub platform: Option<String>,
    // temporary access pass
    #[serde(deserialize_with = "lenient_date")]
    pub start_date_time: Option<DateTime<Utc>>,
    pub lifetime_in_minutes: Option<i64>,
    pub is_usable_once: Option<bool>,
    pub is_usable: Option<bool>,
    #[serde(deserialize_with = "lenient_string")]
    pub method_usability_reason: Option<String>,
    // email
    #[serde(deserialize_with = "lenient_string")]
    pub email_address: Option<String>,
}

/// `GET /beta/users/{id}/authentication/requirements` (REFERENCE §10).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Requirements {
    #[serde(deserialize_with = "lenient_string")]
    pub per_user_mfa_state: Option<String>,
}

/// `GET /beta/users/{id}/authentication/signInPreferences` (REFERENCE §10).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SignInPreferences {
    pub is_system_preferred_authentication_method_enabled: Option<bool>,
    #[serde(deserialize_with = "lenient_string")]
    pub user_preferred_method_for_secondary_authentication: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Target {
    #[serde(deserialize_with = "lenient_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub target_type: Option<String>,
    /// FIDO2 include targets: the passkey profiles (ids) this target may use.
    #[serde(deserialize_with = "lenient_strings")]
    pub allowed_passkey_profiles: Vec<String>,
}

/// `fido2KeyRestrictions`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KeyRestrictions {
    pub is_enforced: Option<bool>,
    /// `allow` or `block`.
    #[serde(deserialize_with = "lenient_string")]
    pub enforcement_type: Option<String>,
    #[serde(deserialize_with = "lenient_strings")]
    pub aa_guids: Vec<String>,
}

/// A `passkeyProfile` of the FIDO2 configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PasskeyProfile {
    #[serde(deserialize_with = "lenient_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub name: Option<String>,
    /// Flags: `deviceBound`, `synced` (comma-separated).
    #[serde(deserialize_with = "lenient_string")]
    pub passkey_types: Option<String>,
    /// `disabled`, `registrationOnly`.
    #[serde(deserialize_with = "lenient_string")]
    pub attestation_enforcement: Option<String>,
    pub key_restrictions: Option<KeyRestrictions>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FeatureConfig {
    #[serde(deserialize_with = "lenient_string")]
    pub state: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AuthenticatorFeatureSettings {
    pub number_matching_required_state: Option<FeatureConfig>,
    pub display_app_information_required_state: Option<FeatureConfig>,
    pub display_location_information_required_state: Option<FeatureConfig>,
}

/// One of the policy's `authenticationMethodConfigurations` (REFERENCE §8).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MethodConfiguration {
    #[serde(rename = "@odata.type", deserialize_with = "lenient_string")]
    pub odata_type: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub state: Option<String>,
    pub include_targets: Vec<Target>,
    pub exclude_targets: Vec<Target>,
    // temporary access pass
    pub default_lifetime_in_minutes: Option<i64>,
    pub default_length: Option<i64>,
    pub minimum_lifetime_in_minutes: Option<i64>,
    pub maximum_lifetime_in_minutes: Option<i64>,
    pub is_usable_once: Option<bool>,
    // microsoft authenticator
    pub feature_settings: Option<AuthenticatorFeatureSettings>,
    // fido2 (the top-level attestation and key restrictions are deprecated for passkey profiles)
    pub is_attestation_enforced: Option<bool>,
    pub key_restrictions: Option<KeyRestrictions>,
    pub passkey_profiles: Vec<PasskeyProfile>,
    #[serde(deserialize_with = "lenient_string")]
    pub default_passkey_profile: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RegistrationCampaign {
    #[serde(deserialize_with = "lenient_string")]
    pub state: Option<String>,
    pub snooze_duration_in_days: Option<i64>,
    pub include_targets: Vec<Target>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RegistrationEnforcement {
    pub authentication_methods_registration_campaign: Option<RegistrationCampaign>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SystemCredentialPreferences {
    #[serde(deserialize_with = "lenient_string")]
    pub state: Option<String>,
}

/// `GET /policies/authenticationMethodsPolicy` (REFERENCE §8). Also parses a single
/// configuration GET (`…/authenticationMethodConfigurations/TemporaryAccessPass`) via
/// [`MethodConfiguration`].
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MethodsPolicy {
    #[serde(deserialize_with = "lenient_string")]
    pub policy_migration_state: Option<String>,
    pub registration_enforcement: Option<RegistrationEnforcement>,
    pub system_credential_preferences: Option<SystemCredentialPreferences>,
    /// `reportSuspiciousActivitySettings`: `state` (`default`, `enabled`, `disabled`).
    pub report_suspicious_activity_settings: Option<FeatureConfig>,
    pub authentication_method_configurations: Vec<MethodConfiguration>,
}

/// `GET /policies/identitySecurityDefaultsEnforcementPolicy` (REFERENCE §9.1).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SecurityDefaults {
    pub is_enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CaUsers {
    #[serde(deserialize_with = "lenient_strings")]
    pub include_users: Vec<String>,
    #[serde(deserialize_with = "lenient_strings")]
    pub exclude_users: Vec<String>,
    #[serde(deserialize_with = "lenient_strings")]
    pub include_groups: Vec<String>,
    #[serde(deserialize_with = "lenient_strings")]
    pub exclude_groups: Vec<String>,
    #[serde(deserialize_with = "lenient_strings")]
    pub include_roles: Vec<String>,
    #[serde(deserialize_with = "lenient_strings")]
    pub exclude_roles: Vec<String>,
    /// `null`, or a conditionalAccessGuestsOrExternalUsers object: some guests are excluded.
    pub exclude_guests_or_external_users: Option<serde_json::Value>,
    /// `null`, or a conditionalAccessGuestsOrExternalUsers object: some guests are included.
    pub include_guests_or_external_users: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CaApplications {
    #[serde(deserialize_with = "lenient_strings")]
    pub include_applications: Vec<String>,
    #[serde(deserialize_with = "lenient_strings")]
    pub exclude_applications: Vec<String>,
    /// `null`, or a filter on application attributes: applies to some apps only.
    pub application_filter: Option<serde_json::Value>,
}

/// `conditions.platforms` / `conditions.locations`: include and exclude lists.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CaPlatforms {
    #[serde(deserialize_with = "lenient_strings")]
    pub include_platforms: Vec<String>,
    #[serde(deserialize_with = "lenient_strings")]
    pub exclude_platforms: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CaLocations {
    #[serde(deserialize_with = "lenient_strings")]
    pub include_locations: Vec<String>,
    #[serde(deserialize_with = "lenient_strings")]
    pub exclude_locations: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CaFilter {
    #[serde(deserialize_with = "lenient_string")]
    pub mode: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub rule: Option<String>,
}

/// `conditions.devices`: a device filter (and the deprecated include/exclude device states).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CaDevices {
    pub device_filter: Option<CaFilter>,
    #[serde(deserialize_with = "lenient_strings")]
    pub include_devices: Vec<String>,
    #[serde(deserialize_with = "lenient_strings")]
    pub exclude_devices: Vec<String>,
}

/// `conditions.authenticationFlows`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CaAuthenticationFlows {
    /// Flags: `none`, `deviceCodeFlow`, `authenticationTransfer`.
    #[serde(deserialize_with = "lenient_string")]
    pub transfer_methods: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CaConditions {
    pub users: Option<CaUsers>,
    pub applications: Option<CaApplications>,
    #[serde(deserialize_with = "lenient_strings")]
    pub client_app_types: Vec<String>,
    #[serde(deserialize_with = "lenient_strings")]
    pub user_risk_levels: Vec<String>,
    #[serde(deserialize_with = "lenient_strings")]
    pub sign_in_risk_levels: Vec<String>,
    #[serde(deserialize_with = "lenient_strings")]
    pub service_principal_risk_levels: Vec<String>,
    /// A flags string (`minor`, `moderate`, `elevated`) or `null`.
    #[serde(deserialize_with = "lenient_string")]
    pub insider_risk_levels: Option<String>,
    pub platforms: Option<CaPlatforms>,
    pub locations: Option<CaLocations>,
    pub devices: Option<CaDevices>,
    pub authentication_flows: Option<CaAuthenticationFlows>,
    /// Workload identities (service principals) the policy targets instead of users.
    pub client_applications: Option<serde_json::Value>,
    /// Beta, deprecated: device states.
    pub device_states: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GrantControls {
    #[serde(deserialize_with = "lenient_string")]
    pub operator: Option<String>,
    #[serde(deserialize_with = "lenient_strings")]
    pub built_in_controls: Vec<String>,
    #[serde(deserialize_with = "lenient_strings")]
    pub custom_authentication_factors: Vec<String>,
    #[serde(deserialize_with = "lenient_strings")]
    pub terms_of_use: Vec<String>,
    /// `null` or an authenticationStrengthPolicy object.
    pub authentication_strength: Option<serde_json::Value>,
}

/// `GET /identity/conditionalAccess/policies` (REFERENCE §9.2).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CaPolicy {
    #[serde(deserialize_with = "lenient_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub display_name: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub state: Option<String>,
    pub conditions: Option<CaConditions>,
    pub grant_controls: Option<GrantControls>,
}

/// `GET /policies/authenticationStrengthPolicies` (REFERENCE §9.2).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AuthenticationStrength {
    #[serde(deserialize_with = "lenient_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub display_name: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub policy_type: Option<String>,
    #[serde(deserialize_with = "lenient_strings")]
    pub allowed_combinations: Vec<String>,
}

/// One `name`/`value` pair of a directory setting.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SettingValue {
    #[serde(deserialize_with = "lenient_string")]
    pub name: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub value: Option<String>,
}

/// `GET /beta/settings`: a tenant-wide directory setting (docs-contrib beta
/// `directorysetting-list.md`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DirectorySetting {
    #[serde(deserialize_with = "lenient_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub display_name: Option<String>,
    /// `templateId` (the resource); the list page's old example spells it `settingTemplateId`.
    #[serde(alias = "settingTemplateId", deserialize_with = "lenient_string")]
    pub template_id: Option<String>,
    pub values: Vec<SettingValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Principal {
    #[serde(rename = "@odata.type", deserialize_with = "lenient_string")]
    pub odata_type: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub user_principal_name: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub display_name: Option<String>,
    pub account_enabled: Option<bool>,
}

/// `GET /roleManagement/directory/roleAssignments` (REFERENCE §12).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RoleAssignment {
    #[serde(deserialize_with = "lenient_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub principal_id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub role_definition_id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub directory_scope_id: Option<String>,
    pub principal: Option<Principal>,
}

/// `GET /roleManagement/directory/roleEligibilityScheduleInstances?$expand=principal` (PIM, P2):
/// the shape of a role assignment, plus the instance's window.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RoleEligibilityInstance {
    #[serde(deserialize_with = "lenient_string")]
    pub principal_id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub role_definition_id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub directory_scope_id: Option<String>,
    /// `Direct`, `Group` or `Inherited`.
    #[serde(deserialize_with = "lenient_string")]
    pub member_type: Option<String>,
    #[serde(deserialize_with = "lenient_date")]
    pub start_date_time: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "lenient_date")]
    pub end_date_time: Option<DateTime<Utc>>,
    pub principal: Option<Principal>,
}

/// `GET /directoryRoles/{id}/members` (REFERENCE §12, option A).
pub type DirectoryObject = Principal;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SignInStatus {
    pub error_code: Option<i64>,
    #[serde(deserialize_with = "lenient_string")]
    pub failure_reason: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub additional_details: Option<String>,
}

/// One step of a beta sign-in's `authenticationDetails` (docs-contrib
/// `api-reference/beta/resources/authenticationdetail.md`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AuthenticationDetail {
    #[serde(deserialize_with = "lenient_string")]
    pub authentication_method: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub authentication_step_requirement: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub authentication_step_result_detail: Option<String>,
    pub succeeded: Option<bool>,
}

/// `GET /auditLogs/signIns` (REFERENCE §11).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SignIn {
    #[serde(deserialize_with = "lenient_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient_date")]
    pub created_date_time: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "lenient_string")]
    pub user_id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub user_principal_name: Option<String>,
    pub status: Option<SignInStatus>,
    /// Beta only: `singleFactorAuthentication` or `multiFactorAuthentication`.
    #[serde(deserialize_with = "lenient_string")]
    pub authentication_requirement: Option<String>,
    /// Beta only.
    pub authentication_details: Option<Vec<AuthenticationDetail>>,
}

/// One `targetResources` entry of a directory audit event.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AuditTarget {
    #[serde(deserialize_with = "lenient_string")]
    pub id: Option<String>,
    /// `"User"`, `"Group"`, … (Graph's own example spells the key `Type`).
    #[serde(rename = "type", alias = "Type", deserialize_with = "lenient_string")]
    pub target_type: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub user_principal_name: Option<String>,
}

/// `GET /auditLogs/directoryAudits` (docs-contrib `api-reference/v1.0/resources/directoryaudit.md`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DirectoryAudit {
    #[serde(deserialize_with = "lenient_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient_date")]
    pub activity_date_time: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "lenient_string")]
    pub activity_display_name: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub logged_by_service: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub result: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub result_reason: Option<String>,
    pub target_resources: Vec<AuditTarget>,
    #[serde(deserialize_with = "lenient_string")]
    pub category: Option<String>,
    pub initiated_by: Option<AuditInitiator>,
}

/// `initiatedBy` of a directory audit event (docs-contrib `auditactivityinitiator.md`): a user
/// or an app.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AuditInitiator {
    pub user: Option<AuditUser>,
    pub app: Option<AuditApp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AuditUser {
    #[serde(deserialize_with = "lenient_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub user_principal_name: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub display_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AuditApp {
    #[serde(deserialize_with = "lenient_string")]
    pub app_id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub display_name: Option<String>,
}

/// Graph's error body (REFERENCE §3.3).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ErrorDetail {
    #[serde(deserialize_with = "lenient_string")]
    pub code: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub message: Option<String>,
    #[serde(rename = "innerError", alias = "innererror")]
    pub inner_error: Option<serde_json::Value>,
}

/// A `$batch` request body (REFERENCE §3.5): what the client sends.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct BatchRequest {
    pub requests: Vec<BatchRequestItem>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BatchRequestItem {
    pub id: String,
    pub method: String,
    pub url: String,
    pub depends_on: Vec<String>,
}

/// A `$batch` response envelope.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct BatchResponse {
    pub responses: Vec<BatchResponseItem>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct BatchResponseItem {
    pub id: String,
    pub status: u16,
    pub headers: std::collections::HashMap<String, serde_json::Value>,
    pub body: Option<serde_json::Value>,
}

/// The token endpoint's success (REFERENCE §1.3).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TokenResponse {
    pub token_type: Option<String>,
    pub expires_in: Option<i64>,
    pub access_token: Option<String>,
}

/// The token endpoint's error (REFERENCE §1.4).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TokenError {
    pub error: Option<String>,
    pub error_description: Option<String>,
    pub error_codes: Vec<i64>,
    pub trace_id: Option<String>,
    pub correlation_id: Option<String>,
    pub error_uri: Option<String>,
}

/// One service plan of a [`SubscribedSku`].
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServicePlanInfo {
    #[serde(deserialize_with = "lenient_string")]
    pub service_plan_id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub service_plan_name: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub provisioning_status: Option<String>,
}

/// `GET /v1.0/subscribedSkus` (docs-contrib `subscribedsku-list.md`): the tenant's subscriptions.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscribedSku {
    #[serde(deserialize_with = "lenient_string")]
    pub sku_part_number: Option<String>,
    /// `Enabled`, `Warning` (grace period), `Suspended`, `Deleted`, `LockedOut`.
    #[serde(deserialize_with = "lenient_string")]
    pub capability_status: Option<String>,
    pub service_plans: Vec<ServicePlanInfo>,
}
