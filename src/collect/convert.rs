//! Pure conversion from Graph's wire types to the snapshot. No I/O: every function here is a
//! plain mapping, tested with inline JSON.

use std::collections::BTreeMap;

use super::wire;
use crate::snapshot::{
    AuthStrength, AuthenticatorFeatures, CaPolicy, DefaultMethod, FeatureState, Fido2Policy,
    KeyRestrictions, MethodConfig, MethodKind, MethodSet, MethodsPolicy, ObjectId, PasskeyProfile,
    PerUserMfa, SmartLockout, Sspr, Tap, TapPolicy, User, UserType,
};

/// AAGUIDs of Windows Hello as a passkey provider (hardware, VBS hardware, software TPM): a
/// passkey kept in the computer's Windows Hello container, so it is lost with the computer
/// (entra-docs `how-to-authentication-entra-passkeys-on-windows.md`).
const WINDOWS_HELLO_AAGUIDS: &[&str] = &[
    "08987058-cadc-4b81-b6e1-30de50dcbe96",
    "9ddd1817-af5a-4672-a2b9-3e3dd95000a9",
    "6028b017-b1d4-4c02-b4b3-afcdafc96bb2",
];

/// A `/users` row as a snapshot user; `None` when it has no usable id.
pub fn user(w: &wire::User) -> Option<User> {
    let id = ObjectId::parse(w.id.as_deref()?)?;
    let mut u = User::new(id, w.user_principal_name.as_deref().unwrap_or(""));
    u.display_name = w.display_name.as_deref().unwrap_or("").into();
    u.user_type = match w.user_type.as_deref() {
        Some(t) if t.eq_ignore_ascii_case("member") => UserType::Member,
        Some(t) if t.eq_ignore_ascii_case("guest") => UserType::Guest,
        _ => UserType::Unknown,
    };
    // Graph only omits accountEnabled when it was not selected; treat absent as enabled.
    u.account_enabled = w.account_enabled.unwrap_or(true);
    u.created = w.created_date_time;
    u.on_premises_sync = w.on_premises_sync_enabled.unwrap_or(false);
    // `otherMails` is a string collection (never null when selected); absent: not read.
    u.has_other_mails = w.other_mails.as_ref().map(|v| {
        v.as_array().is_some_and(|a| {
            a.iter()
                .any(|m| m.as_str().is_some_and(|m| !m.trim().is_empty()))
        })
    });
    Some(u)
}

/// What the registration report says of one user, compact until it is joined with `/users`.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub id: ObjectId,
    pub methods: MethodSet,
    pub unknown: Vec<Box<str>>,
    pub is_admin: bool,
    /// `isMfaCapable`: a strong method registered and allowed by the methods policy.
    pub mfa_capable: Option<bool>,
    pub system_preferred: Option<bool>,
    pub default_method: Option<DefaultMethod>,
    /// `isSsprEnabled`/`isSsprRegistered`/`isSsprCapable`; `None` when the row lacks them.
    pub sspr: Option<Sspr>,
}

pub fn registration(w: &wire::RegistrationDetails) -> Option<Registration> {
    let id = ObjectId::parse(w.id.as_deref()?)?;
    let mut methods = MethodSet::EMPTY;
    let mut unknown = Vec::new();
    for name in &w.methods_registered {
        match MethodKind::from_report_name(name) {
            Some(k) => methods.insert(k),
            None => unknown.push(name.as_str().into()),
        }
    }
    Some(Registration {
        id,
        methods,
        unknown,
        is_admin: w.is_admin.unwrap_or(false),
        mfa_capable: w.is_mfa_capable,
        system_preferred: w.is_system_preferred_authentication_method_enabled,
        default_method: w
            .user_preferred_method_for_secondary_authentication
            .as_deref()
            .map(default_method),
        sspr: w.is_sspr_enabled.map(|enabled| Sspr {
            enabled,
            registered: w.is_sspr_registered.unwrap_or(false),
            capable: w.is_sspr_capable.unwrap_or(false),
        }),
    })
}

/// `userPreferredMethodForSecondaryAuthentication`; `""` (seen in Microsoft's own example) is none.
pub fn default_method(s: &str) -> DefaultMethod {
    match s {
        "push" => DefaultMethod::Push,
        "oath" => DefaultMethod::Oath,
        "voiceMobile" => DefaultMethod::VoiceMobile,
        "voiceAlternateMobile" => DefaultMethod::VoiceAlternateMobile,
        "voiceOffice" => DefaultMethod::VoiceOffice,
        "sms" => DefaultMethod::Sms,
        "none" | "" => DefaultMethod::None,
        _ => DefaultMethod::Unknown,
    }
}

/// The kind of one per-user method object, or `Err(type)` for a type the table does not know.
/// Passwords and TAPs are classified too (they are not MFA, but they are methods).
pub fn method_kind(m: &wire::AuthMethod) -> Result<MethodKind, String> {
    let t = m.odata_type.as_deref().unwrap_or("");
    let short = t
        .trim_start_matches('#')
        .trim_start_matches("microsoft.graph.");
    let kind = match short {
        "phoneAuthenticationMethod" => match m.phone_type.as_deref() {
            Some("alternateMobile") => MethodKind::AlternateMobilePhone,
            Some("office") => MethodKind::OfficePhone,
            _ => MethodKind::MobilePhone,
        },
        "microsoftAuthenticatorAuthenticationMethod" => MethodKind::AuthenticatorPush,
        "passwordlessMicrosoftAuthenticatorAuthenticationMethod" => {
            MethodKind::AuthenticatorPasswordless
        }
        "softwareOathAuthenticationMethod" => MethodKind::SoftwareOtp,
        "fido2AuthenticationMethod" => {
            let aaguid = m.aa_guid.as_deref().unwrap_or("");
            if m.passkey_type.as_deref() == Some("synced") {
                MethodKind::PasskeySynced
            } else if crate::snapshot::AUTHENTICATOR_PASSKEY_AAGUIDS
                .iter()
                .any(|a| a.eq_ignore_ascii_case(aaguid))
            {
                MethodKind::PasskeyAuthenticator
            } else if WINDOWS_HELLO_AAGUIDS
                .iter()
                .any(|a| a.eq_ignore_ascii_case(aaguid))
            {
                // The report names it passKeyDeviceBoundWindowsHello: the computer's family.
                MethodKind::WindowsHello
            } else {
                MethodKind::Fido2SecurityKey
            }
        }
        "windowsHelloForBusinessAuthenticationMethod" => MethodKind::WindowsHello,
        "platformCredentialAuthenticationMethod" => MethodKind::PlatformCredential,
        "hardwareOathAuthenticationMethod" => MethodKind::HardwareOtp,
        "emailAuthenticationMethod" => MethodKind::Email,
        "passwordAuthenticationMethod" => MethodKind::Password,
        "temporaryAccessPassAuthenticationMethod" => MethodKind::TemporaryAccessPass,
        "externalAuthenticationMethod" => MethodKind::ExternalMfa,
        "qrCodePinAuthenticationMethod" => MethodKind::QrCodePin,
        _ => {
            return Err(if t.is_empty() {
                "(no @odata.type)".to_string()
            } else {
                t.to_string()
            })
        }
    };
    Ok(kind)
}

/// A user's method set from their per-user method list, the TAP if one is listed, and the
/// `@odata.type`s nobody knows.
pub fn methods_from_detail(items: &[wire::AuthMethod]) -> (MethodSet, Option<Tap>, Vec<String>) {
    let mut set = MethodSet::EMPTY;
    let mut tap = None;
    let mut unknown = Vec::new();
    for m in items {
        match method_kind(m) {
            Ok(MethodKind::Password) => {}
            Ok(k) => {
                set.insert(k);
                if k == MethodKind::TemporaryAccessPass {
                    tap = Some(self::tap(m));
                }
            }
            Err(t) => unknown.push(t),
        }
    }
    (set, tap, unknown)
}

/// The kind per-user detail shows for a kind the report names more finely: a method object does
/// not tell Authenticator push from passwordless, a security key from another device-bound
/// passkey, or a macOS secure-enclave key from a platform credential.
fn detail_kind(k: MethodKind) -> MethodKind {
    match k {
        MethodKind::AuthenticatorPasswordless => MethodKind::AuthenticatorPush,
        MethodKind::PasskeyDeviceBound => MethodKind::Fido2SecurityKey,
        MethodKind::MacOsSecureEnclaveKey => MethodKind::PlatformCredential,
        other => other,
    }
}

/// A user's methods from the report and from per-user detail, merged: the report's set (which
/// alone knows certificate sign-in and security questions) plus every detail kind the report
/// does not already name, finely or coarsely (the report lags by hours; detail is fresh).
pub fn merge_methods(report: Option<MethodSet>, detail: MethodSet) -> MethodSet {
    let Some(report) = report else {
        return detail;
    };
    let mut merged = report;
    for k in detail.iter() {
        if !report.iter().any(|r| detail_kind(r) == k) {
            merged.insert(k);
        }
    }
    merged
}

pub fn tap(m: &wire::AuthMethod) -> Tap {
    Tap {
        start: m.start_date_time,
        lifetime_minutes: m
            .lifetime_in_minutes
            .and_then(|l| u32::try_from(l).ok())
            .unwrap_or(0),
        usable_once: m.is_usable_once.unwrap_or(false),
        usable: m.is_usable.unwrap_or(false),
        usability_reason: m.method_usability_reason.as_deref().unwrap_or("").into(),
    }
}

pub fn per_user_mfa(s: Option<&str>) -> PerUserMfa {
    match s {
        Some("disabled") => PerUserMfa::Disabled,
        Some("enabled") => PerUserMfa::Enabled,
        Some("enforced") => PerUserMfa::Enforced,
        _ => PerUserMfa::Unknown,
    }
}

pub fn feature_state(s: Option<&str>) -> FeatureState {
    match s {
        Some("default") => FeatureState::Default,
        Some("enabled") => FeatureState::Enabled,
        Some("disabled") => FeatureState::Disabled,
        _ => FeatureState::Unknown,
    }
}

fn target_ids(targets: &[wire::Target]) -> Vec<Box<str>> {
    targets
        .iter()
        .filter_map(|t| t.id.as_deref())
        .map(Into::into)
        .collect()
}

fn minutes(v: Option<i64>) -> Option<u32> {
    v.and_then(|m| u32::try_from(m).ok())
}

pub fn methods_policy(w: &wire::MethodsPolicy) -> MethodsPolicy {
    let mut tap = None;
    let mut authenticator = None;
    let mut fido2 = None;
    let mut methods = Vec::new();
    for c in &w.authentication_method_configurations {
        let id = c.id.as_deref().unwrap_or("");
        let enabled = c.state.as_deref() == Some("enabled");
        methods.push(MethodConfig {
            id: id.into(),
            enabled,
            include_targets: target_ids(&c.include_targets),
            exclude_targets: target_ids(&c.exclude_targets),
        });
        if id.eq_ignore_ascii_case("TemporaryAccessPass") {
            tap = Some(tap_policy(c));
        }
        if id.eq_ignore_ascii_case("Fido2") {
            fido2 = Some(fido2_policy(c));
        }
        if id.eq_ignore_ascii_case("MicrosoftAuthenticator") {
            let f = c.feature_settings.as_ref();
            let state =
                |g: fn(&wire::AuthenticatorFeatureSettings) -> &Option<wire::FeatureConfig>| {
                    feature_state(
                        f.and_then(|f| g(f).as_ref())
                            .and_then(|s| s.state.as_deref()),
                    )
                };
            authenticator = Some(AuthenticatorFeatures {
                number_matching: state(|f| &f.number_matching_required_state),
                app_information: state(|f| &f.display_app_information_required_state),
                location_information: state(|f| &f.display_location_information_required_state),
            });
        }
    }
    let campaign = w
        .registration_enforcement
        .as_ref()
        .and_then(|r| r.authentication_methods_registration_campaign.as_ref());
    MethodsPolicy {
        report_suspicious_activity: w
            .report_suspicious_activity_settings
            .as_ref()
            .map(|r| feature_state(r.state.as_deref())),
        fido2,
        migration_state: w.policy_migration_state.as_deref().unwrap_or("").into(),
        registration_campaign: feature_state(campaign.and_then(|c| c.state.as_deref())),
        system_preferred_mfa: w
            .system_credential_preferences
            .as_ref()
            .map(|s| feature_state(s.state.as_deref())),
        methods,
        tap,
        authenticator,
    }
}

fn key_restrictions(k: &wire::KeyRestrictions) -> KeyRestrictions {
    KeyRestrictions {
        enforced: k.is_enforced.unwrap_or(false),
        allow: k
            .enforcement_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("allow")),
        aaguids: k
            .aa_guids
            .iter()
            .map(|a| a.to_ascii_lowercase().into())
            .collect(),
    }
}

/// The FIDO2 configuration's passkey settings: the deprecated top-level attestation and key
/// restrictions, and the passkey profiles that replace them (beta, docs-contrib
/// `fido2authenticationmethodconfiguration.md`, `passkeyprofile.md`).
pub fn fido2_policy(c: &wire::MethodConfiguration) -> Fido2Policy {
    Fido2Policy {
        attestation_enforced: c.is_attestation_enforced.unwrap_or(false),
        key_restrictions: c.key_restrictions.as_ref().map(key_restrictions),
        profiles: c
            .passkey_profiles
            .iter()
            .map(|p| PasskeyProfile {
                id: p.id.as_deref().unwrap_or("").to_ascii_lowercase().into(),
                name: p.name.as_deref().unwrap_or("").into(),
                passkey_types: p
                    .passkey_types
                    .as_deref()
                    .unwrap_or("")
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(Into::into)
                    .collect(),
                attestation_enforced: p
                    .attestation_enforcement
                    .as_deref()
                    .is_some_and(|a| !a.is_empty() && !a.eq_ignore_ascii_case("disabled")),
                key_restrictions: p.key_restrictions.as_ref().map(key_restrictions),
            })
            .collect(),
        default_profile: c
            .default_passkey_profile
            .as_deref()
            .filter(|d| !d.is_empty())
            .map(|d| d.to_ascii_lowercase().into()),
        target_profiles: c
            .include_targets
            .iter()
            .filter_map(|t| {
                let id = t.id.as_deref()?;
                Some((
                    id.into(),
                    t.allowed_passkey_profiles
                        .iter()
                        .map(|p| p.to_ascii_lowercase().into())
                        .collect(),
                ))
            })
            .collect(),
    }
}

/// The template of the "Password Rule Settings" directory setting (smart lockout, banned
/// passwords): Microsoft365DSC's `AADDirectorySetting` example and Maester's EIDSCA.PR tests.
pub const PASSWORD_RULE_SETTINGS_TEMPLATE: &str = "5cf42378-d67d-4f36-ba46-e8b86229381d";

/// Smart lockout from the tenant's directory settings: the "Password Rule Settings" object
/// (found by template id, or by name), or Entra's defaults (10 attempts, 60 s) when there is
/// none. A value absent or unparsable in the object is its default too.
pub fn smart_lockout(settings: &[wire::DirectorySetting]) -> SmartLockout {
    let found = settings.iter().find(|s| {
        s.template_id
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(PASSWORD_RULE_SETTINGS_TEMPLATE))
            || s.display_name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case("Password Rule Settings"))
    });
    let Some(found) = found else {
        return SmartLockout {
            threshold: 10,
            duration_seconds: 60,
            defaults: true,
        };
    };
    let value = |name: &str, default: u32| {
        found
            .values
            .iter()
            .find(|v| {
                v.name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .and_then(|v| v.value.as_deref())
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(default)
    };
    SmartLockout {
        threshold: value("LockoutThreshold", 10),
        duration_seconds: value("LockoutDurationInSeconds", 60),
        defaults: false,
    }
}

/// The TAP configuration (inside the policy, or from its own GET).
pub fn tap_policy(c: &wire::MethodConfiguration) -> TapPolicy {
    TapPolicy {
        enabled: c.state.as_deref() == Some("enabled"),
        default_lifetime_minutes: minutes(c.default_lifetime_in_minutes),
        minimum_lifetime_minutes: minutes(c.minimum_lifetime_in_minutes),
        maximum_lifetime_minutes: minutes(c.maximum_lifetime_in_minutes),
        default_length: minutes(c.default_length),
        usable_once: c.is_usable_once.unwrap_or(false),
        include_targets: target_ids(&c.include_targets),
        exclude_targets: target_ids(&c.exclude_targets),
    }
}

/// `grantControls.authenticationStrength` as a policy lists it: the strength object inline (its
/// `allowedCombinations` when given; otherwise they are looked up by id in the strengths read).
fn strength_of(v: &serde_json::Value) -> AuthStrength {
    let parsed: wire::AuthenticationStrength =
        serde_json::from_value(v.clone()).unwrap_or_default();
    authentication_strength(&parsed)
}

pub fn authentication_strength(w: &wire::AuthenticationStrength) -> AuthStrength {
    AuthStrength {
        id: w.id.as_deref().unwrap_or("").into(),
        display_name: w.display_name.as_deref().unwrap_or("").into(),
        policy_type: w.policy_type.as_deref().unwrap_or("").into(),
        allowed_combinations: w
            .allowed_combinations
            .iter()
            .map(|c| c.as_str().into())
            .collect(),
    }
}

pub fn ca_policy(w: &wire::CaPolicy) -> CaPolicy {
    let users = w.conditions.as_ref().and_then(|c| c.users.as_ref());
    let apps = w.conditions.as_ref().and_then(|c| c.applications.as_ref());
    let boxed = |v: Option<&Vec<String>>| {
        v.map(|v| v.iter().map(|s| s.as_str().into()).collect())
            .unwrap_or_default()
    };
    let grant = w.grant_controls.as_ref();
    let controls: Vec<&str> = grant
        .map(|g| g.built_in_controls.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let strength = grant
        .and_then(|g| g.authentication_strength.as_ref())
        .filter(|s| !s.is_null())
        .map(strength_of);
    let requires_mfa = controls.contains(&"mfa") || strength.is_some();
    let others = controls.iter().filter(|c| **c != "mfa").count()
        + grant
            .map(|g| g.custom_authentication_factors.len() + g.terms_of_use.len())
            .unwrap_or(0);
    let or = grant
        .and_then(|g| g.operator.as_deref())
        .is_none_or(|o| o.eq_ignore_ascii_case("OR"));
    CaPolicy {
        id: w.id.as_deref().unwrap_or("").into(),
        display_name: w.display_name.as_deref().unwrap_or("").into(),
        state: w.state.as_deref().unwrap_or("").into(),
        include_users: boxed(users.map(|u| &u.include_users)),
        exclude_users: boxed(users.map(|u| &u.exclude_users)),
        include_groups: boxed(users.map(|u| &u.include_groups)),
        exclude_groups: boxed(users.map(|u| &u.exclude_groups)),
        include_roles: boxed(users.map(|u| &u.include_roles)),
        exclude_roles: boxed(users.map(|u| &u.exclude_roles)),
        include_applications: boxed(apps.map(|a| &a.include_applications)),
        builtin_mfa: controls.contains(&"mfa"),
        includes_guests: users.is_some_and(|u| {
            u.include_users
                .iter()
                .any(|x| x.eq_ignore_ascii_case("GuestsOrExternalUsers"))
                || u.include_guests_or_external_users
                    .as_ref()
                    .and_then(|g| g.get("guestOrExternalUserTypes"))
                    .and_then(|t| t.as_str())
                    .is_some_and(|t| !t.is_empty() && !t.eq_ignore_ascii_case("none"))
        }),
        strength,
        requires_mfa,
        mfa_is_optional: requires_mfa && or && others > 0,
        exclude_applications: boxed(apps.map(|a| &a.exclude_applications)),
        excludes_guests: users.is_some_and(|u| {
            u.exclude_guests_or_external_users
                .as_ref()
                .and_then(|g| g.get("guestOrExternalUserTypes"))
                .and_then(|t| t.as_str())
                .is_some_and(|t| !t.is_empty() && !t.eq_ignore_ascii_case("none"))
                || u.exclude_users
                    .iter()
                    .any(|x| x.eq_ignore_ascii_case("GuestsOrExternalUsers"))
        }),
        narrowing: w.conditions.as_ref().map(ca_narrowing).unwrap_or_default(),
    }
}

/// The conditions that make a policy apply to some sign-ins only, in words (REFERENCE §9.2).
fn ca_narrowing(c: &wire::CaConditions) -> Vec<Box<str>> {
    let mut out: Vec<String> = Vec::new();
    let levels = |what: &str, v: &[String], out: &mut Vec<String>| {
        let v: Vec<&str> = v
            .iter()
            .map(String::as_str)
            .filter(|l| !l.eq_ignore_ascii_case("none"))
            .collect();
        if !v.is_empty() {
            out.push(format!("{what} {}", v.join("/")));
        }
    };
    levels("user risk", &c.user_risk_levels, &mut out);
    levels("sign-in risk", &c.sign_in_risk_levels, &mut out);
    levels(
        "service-principal risk",
        &c.service_principal_risk_levels,
        &mut out,
    );
    if let Some(l) = c.insider_risk_levels.as_deref().filter(|l| {
        !l.is_empty()
            && !l.eq_ignore_ascii_case("none")
            && !l.eq_ignore_ascii_case("unknownFutureValue")
    }) {
        out.push(format!("insider risk {l}"));
    }
    if !c.client_app_types.is_empty()
        && !c
            .client_app_types
            .iter()
            .any(|t| t.eq_ignore_ascii_case("all"))
    {
        out.push(format!("client apps {}", c.client_app_types.join(", ")));
    }
    let any_all = |v: &[String]| v.iter().any(|x| x.eq_ignore_ascii_case("all"));
    if let Some(p) = &c.platforms {
        if !p.include_platforms.is_empty() && !any_all(&p.include_platforms) {
            out.push(format!("platforms {}", p.include_platforms.join(", ")));
        }
        if !p.exclude_platforms.is_empty() {
            out.push(format!(
                "platforms except {}",
                p.exclude_platforms.join(", ")
            ));
        }
    }
    if let Some(l) = &c.locations {
        if !l.include_locations.is_empty() && !any_all(&l.include_locations) {
            out.push(format!("locations {}", l.include_locations.join(", ")));
        }
        if !l.exclude_locations.is_empty() {
            out.push(format!(
                "locations except {}",
                l.exclude_locations.join(", ")
            ));
        }
    }
    if let Some(d) = &c.devices {
        if let Some(f) = d
            .device_filter
            .as_ref()
            .filter(|f| f.rule.as_deref().is_some_and(|r| !r.is_empty()))
        {
            out.push(format!(
                "a device filter ({} {})",
                f.mode.as_deref().unwrap_or("include"),
                f.rule.as_deref().unwrap_or("")
            ));
        }
        if !d.include_devices.is_empty() && !any_all(&d.include_devices)
            || !d.exclude_devices.is_empty()
        {
            out.push("device states".into());
        }
    }
    if c.device_states.as_ref().is_some_and(|v| !v.is_null()) {
        out.push("device states".into());
    }
    if let Some(t) = c
        .authentication_flows
        .as_ref()
        .and_then(|f| f.transfer_methods.as_deref())
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("none"))
    {
        out.push(format!("authentication flows {t}"));
    }
    // Targets service principals (or agents) instead of users: any include list or filter set.
    let targets_workloads = c
        .client_applications
        .as_ref()
        .and_then(|v| v.as_object())
        .is_some_and(|o| {
            o.iter().any(|(k, v)| {
                (k.starts_with("include") && v.as_array().is_some_and(|a| !a.is_empty()))
                    || (k.ends_with("Filter") && !v.is_null())
            })
        });
    if targets_workloads {
        out.push("workload identities".into());
    }
    if c.applications
        .as_ref()
        .and_then(|a| a.application_filter.as_ref())
        .is_some_and(|f| !f.is_null())
    {
        out.push("an application filter".into());
    }
    out.dedup();
    out.into_iter().map(String::into_boxed_str).collect()
}

/// The Entra ID P1 and P2 service plans (id, name), as Maester's `Get-MtLicenseInformation`
/// detects them; any SKU that carries one (Entra ID P1/P2, EMS, Microsoft 365 E3/E5, Business
/// Premium…) licenses the tenant for the reports API.
pub const PREMIUM_PLANS: &[(&str, &str)] = &[
    ("41781fb2-bc02-4b7c-bd55-b576c07bb09d", "AAD_PREMIUM"),
    ("eec0eb4f-6444-4f95-aba0-50c24d67f998", "AAD_PREMIUM_P2"),
];

/// Whether the tenant's subscriptions include Entra ID P1 or P2: a SKU that is active
/// (`capabilityStatus` `Enabled`, or `Warning` during its grace period) with a P1/P2 service
/// plan that is not disabled.
pub fn has_premium(skus: &[wire::SubscribedSku]) -> bool {
    skus.iter()
        .filter(|s| {
            s.capability_status.as_deref().is_some_and(|c| {
                c.eq_ignore_ascii_case("Enabled") || c.eq_ignore_ascii_case("Warning")
            })
        })
        .flat_map(|s| s.service_plans.iter())
        .filter(|p| {
            !p.provisioning_status
                .as_deref()
                .is_some_and(|st| st.eq_ignore_ascii_case("Disabled"))
        })
        .any(|p| {
            PREMIUM_PLANS.iter().any(|(id, name)| {
                p.service_plan_id
                    .as_deref()
                    .is_some_and(|v| v.eq_ignore_ascii_case(id))
                    || p.service_plan_name
                        .as_deref()
                        .is_some_and(|v| v.eq_ignore_ascii_case(name))
            })
        })
}

/// Failed sign-ins counted per user id and per error code.
pub fn count_failures(
    rows: &[wire::SignIn],
    codes: &[i32],
    per_user: &mut std::collections::HashMap<ObjectId, u32>,
    per_code: &mut BTreeMap<i32, u64>,
) {
    for r in rows {
        let Some(code) = r
            .status
            .as_ref()
            .and_then(|s| s.error_code)
            .and_then(|c| i32::try_from(c).ok())
        else {
            continue;
        };
        if !codes.contains(&code) {
            continue;
        }
        *per_code.entry(code).or_default() += 1;
        if let Some(id) = r.user_id.as_deref().and_then(ObjectId::parse) {
            *per_user.entry(id).or_default() += 1;
        }
    }
}

/// A beta sign-in as the watcher's event; `None` without a usable id, time or user id.
/// Steps are the `authenticationDetails` past primary authentication (the password step says
/// nothing of MFA); `mfa_required` is `authenticationRequirement` `multiFactorAuthentication`.
pub fn sign_in_event(w: &wire::SignIn) -> Option<crate::watch::SignInEvent> {
    let id = w.id.as_deref().filter(|s| !s.is_empty())?;
    let created = w.created_date_time?;
    let user = ObjectId::parse(w.user_id.as_deref()?)?;
    let status = w.status.as_ref();
    let reason = match (
        status
            .and_then(|s| s.failure_reason.as_deref())
            .filter(|s| !s.is_empty()),
        status
            .and_then(|s| s.additional_details.as_deref())
            .filter(|s| !s.is_empty()),
    ) {
        (Some(f), Some(a)) if f != a => format!("{f} ({a})"),
        (Some(f), _) => f.to_string(),
        (None, Some(a)) => a.to_string(),
        (None, None) => String::new(),
    };
    let steps = w
        .authentication_details
        .iter()
        .flatten()
        .filter(|d| {
            !d.authentication_step_requirement
                .as_deref()
                .is_some_and(|r| r.to_ascii_lowercase().contains("primary"))
        })
        .map(|d| crate::watch::AuthStep {
            method: d.authentication_method.as_deref().unwrap_or("").into(),
            succeeded: d.succeeded.unwrap_or(false),
            detail: d
                .authentication_step_result_detail
                .as_deref()
                .unwrap_or("")
                .into(),
        })
        .collect();
    Some(crate::watch::SignInEvent {
        id: id.into(),
        created,
        user,
        upn: w.user_principal_name.as_deref().unwrap_or("").into(),
        error_code: status
            .and_then(|s| s.error_code)
            .and_then(|c| i32::try_from(c).ok())
            .unwrap_or(0),
        reason: reason.into(),
        mfa_required: w
            .authentication_requirement
            .as_deref()
            .is_some_and(|r| r.eq_ignore_ascii_case("multiFactorAuthentication")),
        steps,
    })
}

/// The activity a security-info audit entry names (entra-docs audit activities reference:
/// "User registered security info", "Admin deleted security info", …); a TAP issued is
/// [`super::sweeps::is_tap_issuance`]'s test, shared with the audit's TAP sweep.
pub fn security_info_activity(e: &wire::DirectoryAudit) -> crate::watch::SecurityInfoActivity {
    use crate::watch::SecurityInfoActivity as A;
    if super::sweeps::is_tap_issuance(e) {
        return A::TapIssued;
    }
    let name = e
        .activity_display_name
        .as_deref()
        .unwrap_or("")
        .to_ascii_lowercase();
    let rest = name
        .strip_prefix("user ")
        .or_else(|| name.strip_prefix("admin "))
        .unwrap_or("");
    match rest {
        "registered security info" => A::Registered,
        "updated security info" => A::Updated,
        "deleted security info" => A::Deleted,
        "changed default security info" => A::DefaultChanged,
        _ => A::Other,
    }
}

/// The method an entry's `resultReason` names ("User registered Mobile Phone SMS", "Admin
/// registered temporary access pass method for user" → "Mobile Phone SMS", "temporary access
/// pass"); `None` when it names none.
fn audit_method(reason: Option<&str>) -> Option<Box<str>> {
    let r = reason?.trim();
    let mut words = r.splitn(3, ' ');
    let who = words.next()?;
    let verb = words.next()?;
    let rest = words.next()?.trim();
    if !(who.eq_ignore_ascii_case("user") || who.eq_ignore_ascii_case("admin"))
        || !["registered", "deleted", "updated", "changed"]
            .iter()
            .any(|v| verb.eq_ignore_ascii_case(v))
    {
        return None;
    }
    let rest = rest
        .strip_suffix(" method for user")
        .or_else(|| rest.strip_suffix(" for user"))
        .unwrap_or(rest)
        .trim();
    (!rest.is_empty() && !rest.eq_ignore_ascii_case("security info")).then(|| rest.into())
}

/// A directory-audit entry as a security-info event; `None` for a failed attempt or one without
/// a user target. By an admin: the activity says "Admin …", or whoever initiated it (an app, or
/// another user) is not the target.
pub fn security_info_event(e: &wire::DirectoryAudit) -> Option<crate::watch::SecurityInfoEvent> {
    let id = e.id.as_deref().filter(|s| !s.is_empty())?;
    let created = e.activity_date_time?;
    if e.result
        .as_deref()
        .is_some_and(|r| !r.eq_ignore_ascii_case("success"))
    {
        return None;
    }
    let target = e.target_resources.iter().find(|t| {
        t.target_type
            .as_deref()
            .is_none_or(|k| k.eq_ignore_ascii_case("user"))
            && t.id.as_deref().and_then(ObjectId::parse).is_some()
    })?;
    let user = ObjectId::parse(target.id.as_deref()?)?;
    let name = e.activity_display_name.as_deref().unwrap_or("");
    let initiator_user = e.initiated_by.as_ref().and_then(|i| i.user.as_ref());
    let initiator_app = e.initiated_by.as_ref().and_then(|i| i.app.as_ref());
    let initiator_id = initiator_user
        .and_then(|u| u.id.as_deref())
        .and_then(ObjectId::parse);
    let initiated_by: Box<str> = initiator_user
        .and_then(|u| u.user_principal_name.as_deref().filter(|s| !s.is_empty()))
        .or_else(|| initiator_app.and_then(|a| a.display_name.as_deref()))
        .unwrap_or("")
        .into();
    let by_admin = name.to_ascii_lowercase().starts_with("admin ")
        || initiator_id.is_some_and(|i| i != user)
        || (initiator_id.is_none() && initiator_app.is_some());
    Some(crate::watch::SecurityInfoEvent {
        id: id.into(),
        created,
        activity: security_info_activity(e),
        activity_name: name.into(),
        by_admin,
        initiated_by,
        user,
        upn: target.user_principal_name.as_deref().unwrap_or("").into(),
        method: audit_method(e.result_reason.as_deref()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<T: serde::de::DeserializeOwned>(s: &str) -> T {
        serde_json::from_str(s).expect("test JSON")
    }

    #[test]
    fn registration_rows_classify_methods_and_keep_unknowns() {
        let row: wire::RegistrationDetails = parse(
            r#"{"id":"86462606-fde0-4fc4-9e0c-a20eb73e54c6","isAdmin":true,"methodsRegistered":["microsoftAuthenticatorPush","mobilePhone","quantumToken"],
                "isSystemPreferredAuthenticationMethodEnabled":false,"userPreferredMethodForSecondaryAuthentication":"sms"}"#,
        );
        let r = registration(&row).expect("row");
        assert!(
            r.methods.contains(MethodKind::AuthenticatorPush)
                && r.methods.contains(MethodKind::MobilePhone)
        );
        assert_eq!(r.methods.len(), 2);
        assert_eq!(r.unknown, vec![Box::<str>::from("quantumToken")]);
        assert!(r.is_admin);
        assert_eq!(r.mfa_capable, None, "absent is unknown");
        assert_eq!(r.system_preferred, Some(false));
        assert_eq!(r.default_method, Some(DefaultMethod::Sms));
        let no_id: wire::RegistrationDetails = parse(r#"{"methodsRegistered":[]}"#);
        assert!(registration(&no_id).is_none());
    }

    #[test]
    fn detail_types_map_to_kinds_and_unknown_types_are_kept() {
        let items: Vec<wire::AuthMethod> = parse(
            r##"[{"@odata.type":"#microsoft.graph.passwordAuthenticationMethod","id":"x"},
                {"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneType":"alternateMobile"},
                {"@odata.type":"#microsoft.graph.fido2AuthenticationMethod","aaGuid":"90A3CCDF-635C-4729-A248-9B709135078F","passkeyType":"deviceBound"},
                {"@odata.type":"#microsoft.graph.fido2AuthenticationMethod","passkeyType":"synced"},
                {"@odata.type":"#microsoft.graph.fido2AuthenticationMethod","aaGuid":"2fc0579f-8113-47ea-b116-555a8db9202a"},
                {"odata.type":"#microsoft.graph.windowsHelloForBusinessAuthenticationMethod"},
                {"@odata.type":"#microsoft.graph.temporaryAccessPassAuthenticationMethod","lifetimeInMinutes":480,"isUsableOnce":false,"isUsable":true,"methodUsabilityReason":"EnabledByPolicy","startDateTime":"2026-01-01T00:00:00Z"},
                {"@odata.type":"#microsoft.graph.telepathyAuthenticationMethod"}]"##,
        );
        let (set, tap, unknown) = methods_from_detail(&items);
        let kinds: Vec<MethodKind> = set.iter().collect();
        assert_eq!(
            kinds,
            vec![
                MethodKind::PasskeyAuthenticator,
                MethodKind::AlternateMobilePhone,
                MethodKind::Fido2SecurityKey,
                MethodKind::WindowsHello,
                MethodKind::PasskeySynced,
                MethodKind::TemporaryAccessPass
            ]
        );
        let tap = tap.expect("tap");
        assert_eq!(
            (tap.lifetime_minutes, tap.usable_once, tap.usable),
            (480, false, true)
        );
        assert_eq!(
            unknown,
            vec!["#microsoft.graph.telepathyAuthenticationMethod".to_string()]
        );
    }

    #[test]
    fn premium_is_an_active_sku_with_an_entra_p1_or_p2_plan() {
        let skus = |json: &str| -> Vec<wire::SubscribedSku> {
            parse::<wire::Page<wire::SubscribedSku>>(json).value
        };
        // docs-contrib's example: Office 365 E5 (no Entra plan in the shortened list) and a suspended CRM SKU.
        assert!(!has_premium(&skus(
            r#"{"value":[{"capabilityStatus":"Enabled","servicePlans":[{"servicePlanId":"8c098270-9dd4-4350-9b30-ba4703f3b36b","servicePlanName":"ADALLOM_S_O365","provisioningStatus":"Success"}],"skuPartNumber":"ENTERPRISEPREMIUM"}]}"#
        )));
        let e5 = r#"{"value":[{"capabilityStatus":"Enabled","servicePlans":[{"servicePlanId":"eec0eb4f-6444-4f95-aba0-50c24d67f998","servicePlanName":"AAD_PREMIUM_P2","provisioningStatus":"Success"}],"skuPartNumber":"SPE_E5"}]}"#;
        assert!(has_premium(&skus(e5)));
        assert!(has_premium(&skus(&e5.replace("Enabled", "Warning"))));
        assert!(!has_premium(&skus(&e5.replace("Enabled", "Suspended"))));
        assert!(!has_premium(&skus(&e5.replace("Success", "Disabled"))));
        // Matched by id when the name differs, and by name when the id is absent.
        assert!(has_premium(&skus(
            r#"{"value":[{"capabilityStatus":"Enabled","servicePlans":[{"servicePlanName":"AAD_PREMIUM"}]}]}"#
        )));
        assert!(has_premium(&skus(
            r#"{"value":[{"capabilityStatus":"Enabled","servicePlans":[{"servicePlanId":"41781FB2-BC02-4B7C-BD55-B576C07BB09D","servicePlanName":"X"}]}]}"#
        )));
        assert!(!has_premium(&[]));
    }

    #[test]
    fn windows_hello_passkeys_are_the_computers_family_on_both_paths() {
        let items: Vec<wire::AuthMethod> = parse(
            r##"[{"@odata.type":"#microsoft.graph.fido2AuthenticationMethod","aaGuid":"08987058-CADC-4B81-B6E1-30DE50DCBE96","passkeyType":"deviceBound"},
                {"@odata.type":"#microsoft.graph.fido2AuthenticationMethod","aaGuid":"9ddd1817-af5a-4672-a2b9-3e3dd95000a9"},
                {"@odata.type":"#microsoft.graph.fido2AuthenticationMethod","aaGuid":"6028b017-b1d4-4c02-b4b3-afcdafc96bb2"}]"##,
        );
        for m in &items {
            assert_eq!(method_kind(m), Ok(MethodKind::WindowsHello));
        }
        let from_report = MethodKind::from_report_name("passKeyDeviceBoundWindowsHello");
        assert_eq!(from_report, Some(MethodKind::WindowsHello));
        assert_eq!(
            MethodKind::WindowsHello.family(),
            crate::snapshot::RecoveryFamily::Computer
        );
    }

    #[test]
    fn detail_is_merged_with_the_report_never_replacing_it() {
        use MethodKind::*;
        let set = |k: &[MethodKind]| k.iter().copied().collect::<MethodSet>();
        // Certificate sign-in and security questions have no method object: kept from the report.
        let report = set(&[
            Certificate,
            SecurityQuestion,
            AuthenticatorPasswordless,
            PasskeyDeviceBound,
        ]);
        let detail = set(&[AuthenticatorPush, Fido2SecurityKey, HardwareOtp]);
        assert_eq!(
            merge_methods(Some(report), detail),
            set(&[
                Certificate,
                SecurityQuestion,
                AuthenticatorPasswordless,
                PasskeyDeviceBound,
                HardwareOtp
            ]),
            "coarse detail kinds the report names finely are not added twice; new ones are"
        );
        assert_eq!(merge_methods(None, detail), detail);
        // Single-factor certificate sign-in is not MFA.
        let single = MethodKind::from_report_name("x509CertificateSingleFactor").expect("known");
        assert!(!single.is_mfa_capable());
        assert_eq!(set(&[single]).mfa_families(), 0);
    }

    #[test]
    fn ca_policy_knows_when_mfa_is_required_and_when_it_is_optional() {
        let strict: wire::CaPolicy = parse(
            r#"{"id":"p","state":"enabled","conditions":{"users":{"includeUsers":["All"]}},"grantControls":{"operator":"OR","builtInControls":["mfa"]}}"#,
        );
        let p = ca_policy(&strict);
        assert!(p.requires_mfa && !p.mfa_is_optional);
        assert_eq!(p.include_users, vec![Box::<str>::from("All")]);
        let optional: wire::CaPolicy = parse(
            r#"{"grantControls":{"operator":"OR","builtInControls":["mfa","compliantDevice"]}}"#,
        );
        assert!(ca_policy(&optional).mfa_is_optional);
        let both: wire::CaPolicy = parse(
            r#"{"grantControls":{"operator":"AND","builtInControls":["mfa","compliantDevice"]}}"#,
        );
        assert!(!ca_policy(&both).mfa_is_optional);
        let strength: wire::CaPolicy = parse(
            r#"{"grantControls":{"operator":"OR","builtInControls":[],"authenticationStrength":{"id":"00000000-0000-0000-0000-000000000004"}}}"#,
        );
        assert!(ca_policy(&strength).requires_mfa);
        let none: wire::CaPolicy = parse(
            r#"{"grantControls":{"builtInControls":["block"],"authenticationStrength":null}}"#,
        );
        assert!(!ca_policy(&none).requires_mfa);
    }

    #[test]
    fn ca_conditions_that_narrow_a_policy_are_named() {
        // docs-contrib beta conditionalaccessroot-list-policies.md, CA001 and CA008 (shortened).
        let plain: wire::CaPolicy = parse(
            r#"{"conditions":{"userRiskLevels":[],"signInRiskLevels":[],"clientAppTypes":["all"],"servicePrincipalRiskLevels":[],"insiderRiskLevels":null,"platforms":null,"locations":null,"devices":null,"clientApplications":null,
                "applications":{"includeApplications":["All"],"excludeApplications":[],"applicationFilter":null},
                "users":{"includeUsers":["All"],"excludeUsers":[],"includeGuestsOrExternalUsers":null,"excludeGuestsOrExternalUsers":null}},
                "grantControls":{"operator":"OR","builtInControls":["mfa"]}}"#,
        );
        let p = ca_policy(&plain);
        assert!(p.narrowing.is_empty() && !p.excludes_guests && p.exclude_applications.is_empty());
        let narrowed: wire::CaPolicy = parse(
            r#"{"conditions":{"userRiskLevels":["high"],"signInRiskLevels":["medium","high"],"clientAppTypes":["browser","mobileAppsAndDesktopClients"],"insiderRiskLevels":"elevated",
                "platforms":{"includePlatforms":["all"],"excludePlatforms":["linux"]},
                "locations":{"includeLocations":["All"],"excludeLocations":["AllTrusted"]},
                "devices":{"deviceFilter":{"mode":"exclude","rule":"device.isCompliant -eq True"}},
                "authenticationFlows":{"transferMethods":"deviceCodeFlow"},
                "applications":{"includeApplications":["All"],"excludeApplications":["00000002-0000-0ff1-ce00-000000000000"]},
                "users":{"includeUsers":["All"],"excludeGuestsOrExternalUsers":{"guestOrExternalUserTypes":"internalGuest,b2bCollaborationGuest","externalTenants":{"membershipKind":"all"}}}},
                "grantControls":{"operator":"OR","builtInControls":["mfa"]}}"#,
        );
        let p = ca_policy(&narrowed);
        let n: Vec<&str> = p.narrowing.iter().map(|s| s.as_ref()).collect();
        assert_eq!(
            n,
            vec![
                "user risk high",
                "sign-in risk medium/high",
                "insider risk elevated",
                "client apps browser, mobileAppsAndDesktopClients",
                "platforms except linux",
                "locations except AllTrusted",
                "a device filter (exclude device.isCompliant -eq True)",
                "authentication flows deviceCodeFlow",
            ]
        );
        assert!(p.excludes_guests);
        assert_eq!(p.exclude_applications.len(), 1);
        let workloads: wire::CaPolicy = parse(
            r#"{"conditions":{"clientApplications":{"includeServicePrincipals":["ServicePrincipalsInMyTenant"],"excludeServicePrincipals":[]}}}"#,
        );
        assert_eq!(
            ca_policy(&workloads).narrowing,
            vec![Box::<str>::from("workload identities")]
        );
    }

    #[test]
    fn sign_in_failures_count_only_the_configured_codes() {
        let rows: Vec<wire::SignIn> = parse(
            r#"[{"userId":"86462606-fde0-4fc4-9e0c-a20eb73e54c6","status":{"errorCode":500121}},
                {"userId":"86462606-fde0-4fc4-9e0c-a20eb73e54c6","status":{"errorCode":500121}},
                {"userId":"86462606-fde0-4fc4-9e0c-a20eb73e54c6","status":{"errorCode":50126}},
                {"userId":"not-a-guid","status":{"errorCode":500121}}]"#,
        );
        let mut per_user = Default::default();
        let mut per_code = Default::default();
        count_failures(&rows, &[500121], &mut per_user, &mut per_code);
        let id = ObjectId::parse("86462606-fde0-4fc4-9e0c-a20eb73e54c6").expect("id");
        assert_eq!(per_user.get(&id), Some(&2));
        assert_eq!(per_code.get(&500121), Some(&3));
        assert_eq!(per_code.get(&50126), None);
    }

    #[test]
    fn users_without_an_id_are_refused_and_types_are_case_blind() {
        let u: wire::User = parse(
            r#"{"id":"86462606-fde0-4fc4-9e0c-a20eb73e54c6","userType":"guest","accountEnabled":false,"createdDateTime":""}"#,
        );
        let u = user(&u).expect("user");
        assert_eq!(
            (u.user_type, u.account_enabled, u.created),
            (UserType::Guest, false, None)
        );
        assert!(user(&parse(r#"{"userPrincipalName":"x@y"}"#)).is_none());
    }

    #[test]
    fn authentication_strengths_list_converts_built_in_and_custom() {
        // docs-contrib v1.0 authenticationstrengthroot-list-policies.md, Example 1 (fixture).
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/graph/fixtures/authenticationStrengthPolicies_list.json"
        ))
        .expect("fixture");
        let page: wire::Page<wire::AuthenticationStrength> = parse(&text);
        let strengths: Vec<AuthStrength> = page.value.iter().map(authentication_strength).collect();
        assert_eq!(strengths.len(), 3);
        let phishing = &strengths[2];
        assert_eq!(&*phishing.id, "00000000-0000-0000-0000-000000000004");
        assert_eq!(&*phishing.policy_type, "builtIn");
        assert_eq!(
            phishing.allowed_combinations,
            vec![
                Box::<str>::from("windowsHelloForBusiness"),
                "fido2".into(),
                "x509CertificateMultiFactor".into()
            ]
        );
        assert!(strengths[0]
            .allowed_combinations
            .contains(&Box::<str>::from("password,sms")));
    }

    #[test]
    fn a_listed_policy_carries_its_strength_inline_or_by_id_only() {
        // A live v1.0 list response: the strength object whole, beside its @odata.context.
        let inline: wire::CaPolicy = parse(
            r#"{"id":"d7195984-2fae-403d-abec-a7ccc55bf861","state":"enabled",
                "conditions":{"users":{"includeUsers":["All"],"excludeGroups":["5ecf8b5f-0d08-4792-aa17-37e40f64b6bb"],"includeGuestsOrExternalUsers":null}},
                "grantControls":{"authenticationStrength":{"allowedCombinations":["windowsHelloForBusiness","fido2","password,sms"],
                  "combinationConfigurations":[],"displayName":"Multifactor authentication","id":"00000000-0000-0000-0000-000000000002",
                  "policyType":"builtIn","requirementsSatisfied":"mfa"},
                  "authenticationStrength@odata.context":"https://graph.microsoft.com/v1.0/$metadata#identity/conditionalAccess/policies('d7195984-2fae-403d-abec-a7ccc55bf861')/grantControls/authenticationStrength/$entity",
                  "builtInControls":[],"customAuthenticationFactors":[],"operator":"OR","termsOfUse":[]}}"#,
        );
        let p = ca_policy(&inline);
        let strength = p.strength.as_ref().expect("strength");
        assert_eq!(&*strength.display_name, "Multifactor authentication");
        assert_eq!(strength.allowed_combinations.len(), 3);
        assert!(p.requires_mfa && !p.builtin_mfa && !p.mfa_is_optional && !p.includes_guests);
        // The id alone (as a client writes it): combinations looked up in the strengths read.
        let by_id: wire::CaPolicy = parse(
            r#"{"grantControls":{"operator":"OR","builtInControls":["mfa"],"authenticationStrength":{"id":"00000000-0000-0000-0000-000000000004"}}}"#,
        );
        let p = ca_policy(&by_id);
        let strength = p.strength.expect("strength");
        assert!(strength.allowed_combinations.is_empty());
        assert!(p.builtin_mfa, "mfa and a strength: both are required");
    }

    #[test]
    fn guests_are_included_by_the_object_or_the_keyword_not_by_none() {
        let policy = |users: &str| -> CaPolicy {
            ca_policy(&parse(&format!(
                r#"{{"conditions":{{"users":{users}}},"grantControls":{{"builtInControls":["mfa"]}}}}"#
            )))
        };
        assert!(policy(r#"{"includeGuestsOrExternalUsers":{"guestOrExternalUserTypes":"internalGuest,b2bCollaborationGuest","externalTenants":{"membershipKind":"all"}}}"#).includes_guests);
        assert!(policy(r#"{"includeUsers":["GuestsOrExternalUsers"]}"#).includes_guests);
        assert!(
            !policy(r#"{"includeGuestsOrExternalUsers":{"guestOrExternalUserTypes":"none"}}"#)
                .includes_guests
        );
        assert!(
            !policy(r#"{"includeUsers":["All"],"includeGuestsOrExternalUsers":null}"#)
                .includes_guests
        );
    }

    #[test]
    fn smart_lockout_is_the_password_rule_settings_or_entras_defaults() {
        // docs-contrib beta directorysetting-list.md's example (old key settingTemplateId): no
        // password rule settings, so the defaults apply.
        let listed: wire::Page<wire::DirectorySetting> = parse(
            r#"{"value":[{"id":"id-value","displayName":"displayName-value","settingTemplateId":"settingTemplateId-value","values":[{"name":"name-value","value":"value-value"}]}]}"#,
        );
        assert_eq!(
            smart_lockout(&listed.value),
            SmartLockout {
                threshold: 10,
                duration_seconds: 60,
                defaults: true
            }
        );
        // Values are strings (entra-docs howto-password-smart-lockout.md's Graph example).
        let set: Vec<wire::DirectorySetting> = parse(
            r#"[{"id":"x","displayName":"Group.Unified","templateId":"62375ab9-6b52-47ed-826b-58e47e0e304b","values":[]},
                {"id":"y","displayName":"Password Rule Settings","templateId":"5cf42378-d67d-4f36-ba46-e8b86229381d",
                 "values":[{"name":"LockoutDurationInSeconds","value":"300"},{"name":"LockoutThreshold","value":"5"},{"name":"BannedPasswordList","value":""}]}]"#,
        );
        assert_eq!(
            smart_lockout(&set),
            SmartLockout {
                threshold: 5,
                duration_seconds: 300,
                defaults: false
            }
        );
        // Found by name too; a value missing or unparsable is its default.
        let partial: Vec<wire::DirectorySetting> = parse(
            r#"[{"displayName":"Password Rule Settings","values":[{"name":"LockoutThreshold","value":"abc"},{"name":"LockoutDurationInSeconds","value":"30"}]}]"#,
        );
        assert_eq!(
            smart_lockout(&partial),
            SmartLockout {
                threshold: 10,
                duration_seconds: 30,
                defaults: false
            }
        );
    }

    #[test]
    fn fido2_passkey_profiles_and_suspicious_activity_reporting_are_read() {
        // docs-contrib fido2authenticationmethodconfiguration-update.md's body, inside the
        // beta policy; reportSuspiciousActivitySettings from the beta resource's shape.
        let policy: wire::MethodsPolicy = parse(
            r##"{"policyMigrationState":"migrationComplete",
                "reportSuspiciousActivitySettings":{"state":"disabled","includeTarget":{"targetType":"group","id":"all_users"},"voiceReportingCode":0},
                "authenticationMethodConfigurations":[{"@odata.type":"#microsoft.graph.fido2AuthenticationMethodConfiguration","id":"Fido2","state":"enabled",
                  "isSelfServiceRegistrationAllowed":true,"isAttestationEnforced":true,
                  "keyRestrictions":{"isEnforced":false,"enforcementType":"block","aaGuids":[]},
                  "includeTargets":[{"targetType":"group","id":"all_users","isRegistrationRequired":false,"allowedPasskeyProfiles":["00000000-0000-0000-0000-000000000001"]}],
                  "excludeTargets":[{"targetType":"group","id":"9A0C0000-0000-4000-8000-0000000DEAD1"}],
                  "defaultPasskeyProfile":"00000000-0000-0000-0000-000000000001",
                  "passkeyProfiles":[{"id":"00000000-0000-0000-0000-000000000001","name":"Default passkey profile","passkeyTypes":"deviceBound,synced",
                    "attestationEnforcement":"registrationOnly","keyRestrictions":{"isEnforced":true,"enforcementType":"allow","aaGuids":["90A3CCDF-635C-4729-A248-9B709135078F"]}}]}]}"##,
        );
        let p = methods_policy(&policy);
        assert_eq!(p.report_suspicious_activity, Some(FeatureState::Disabled));
        let f = p.fido2.expect("fido2");
        assert!(f.attestation_enforced);
        assert_eq!(
            f.key_restrictions,
            Some(KeyRestrictions {
                enforced: false,
                allow: false,
                aaguids: vec![]
            })
        );
        assert_eq!(
            f.default_profile.as_deref(),
            Some("00000000-0000-0000-0000-000000000001")
        );
        let profile = &f.profiles[0];
        assert_eq!(
            profile.passkey_types,
            vec![Box::<str>::from("deviceBound"), "synced".into()]
        );
        assert!(profile.attestation_enforced);
        let k = profile.key_restrictions.as_ref().expect("restrictions");
        assert!(k.enforced && k.allow);
        assert_eq!(
            k.aaguids,
            vec![Box::<str>::from("90a3ccdf-635c-4729-a248-9b709135078f")]
        );
        assert_eq!(
            f.target_profiles,
            vec![(
                Box::<str>::from("all_users"),
                vec![Box::<str>::from("00000000-0000-0000-0000-000000000001")]
            )]
        );
        // v1.0 (the fixture) carries neither the reporting settings nor passkey profiles.
        let v1: wire::MethodsPolicy = parse(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../shared/graph/fixtures/authenticationMethodsPolicy_get.json"
            ))
            .expect("fixture"),
        );
        let p = methods_policy(&v1);
        assert_eq!(p.report_suspicious_activity, None);
        let f = p.fido2.expect("fido2 in the fixture");
        assert!(f.attestation_enforced && f.profiles.is_empty() && f.default_profile.is_none());
    }

    #[test]
    fn other_mails_and_sspr_readiness_are_read_when_present() {
        let user_with = |extra: &str| -> User {
            user(&parse(&format!(
                r#"{{"id":"86462606-fde0-4fc4-9e0c-a20eb73e54c6"{extra}}}"#
            )))
            .expect("user")
        };
        assert_eq!(user_with("").has_other_mails, None, "not selected");
        assert_eq!(
            user_with(r#","otherMails":[]"#).has_other_mails,
            Some(false)
        );
        assert_eq!(
            user_with(r#","otherMails":[""]"#).has_other_mails,
            Some(false)
        );
        assert_eq!(
            user_with(r#","otherMails":["adele@fabrikam.example"]"#).has_other_mails,
            Some(true)
        );
        // docs-contrib's userRegistrationDetails example (fixture) carries all three flags.
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/graph/fixtures/userRegistrationDetails_list.json"
        ))
        .expect("fixture");
        let page: wire::Page<wire::RegistrationDetails> = parse(&text);
        let rows: Vec<Registration> = page.value.iter().filter_map(registration).collect();
        assert!(!rows.is_empty());
        for (r, w) in rows.iter().zip(&page.value) {
            let s = r.sspr.expect("flags");
            assert_eq!(
                (Some(s.enabled), Some(s.registered), Some(s.capable)),
                (w.is_sspr_enabled, w.is_sspr_registered, w.is_sspr_capable)
            );
        }
        let bare: wire::RegistrationDetails =
            parse(r#"{"id":"86462606-fde0-4fc4-9e0c-a20eb73e54c6"}"#);
        assert_eq!(registration(&bare).expect("row").sspr, None);
    }
}
