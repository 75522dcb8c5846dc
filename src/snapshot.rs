//! The snapshot: a compact, Graph-independent model of one tenant at one time.
//!
//! Everything past `collect` speaks in these terms. It is shaped for a million users: ids are
//! 128-bit values, a user's methods are a bit set, strings are boxed (no spare capacity), and
//! optional detail (TAP, per-user MFA) sits behind a `Box` so the common user stays small.
//!
//! The method classification of DESIGN §3 lives here, as one table ([`METHOD_TABLE`]): the
//! registration report's strings and the per-user detail's `@odata.type`s both map to one
//! [`MethodKind`], and each kind has its MFA capability, phishing resistance and recovery family.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};

/// An Entra object id, kept as its 128-bit value (16 bytes instead of a 36-byte string).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(pub u128);

impl ObjectId {
    /// Parses the GUID text Graph uses (`8-4-4-4-12` hex, any case).
    pub fn parse(s: &str) -> Option<ObjectId> {
        uuid::Uuid::parse_str(s).ok().map(|u| ObjectId(u.as_u128()))
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        uuid::Uuid::from_u128(self.0).hyphenated().fmt(f)
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What a user loses together when one thing is lost (DESIGN §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecoveryFamily {
    /// One phone's apps: Authenticator push / passwordless, software OTP, passkey in Authenticator.
    MobileApp,
    /// The mobile number (SMS / voice); survives a replaced phone.
    MobileNumber,
    AlternateNumber,
    OfficePhone,
    /// A FIDO2 security key or another device-bound passkey.
    SecurityKey,
    /// Windows Hello, macOS secure enclave key, platform credential.
    Computer,
    HardwareToken,
    Certificate,
    /// A synced passkey lives in a credential manager account, not on one device.
    SyncedPasskey,
    /// An external MFA provider (`externalAuthenticationMethod`).
    External,
    /// Email, security questions, password, TAP: no MFA on their own.
    NotMfa,
}

impl RecoveryFamily {
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryFamily::MobileApp => "mobile-app",
            RecoveryFamily::MobileNumber => "mobile-number",
            RecoveryFamily::AlternateNumber => "alternate-number",
            RecoveryFamily::OfficePhone => "office-phone",
            RecoveryFamily::SecurityKey => "security-key",
            RecoveryFamily::Computer => "computer",
            RecoveryFamily::HardwareToken => "hardware-token",
            RecoveryFamily::Certificate => "certificate",
            RecoveryFamily::SyncedPasskey => "synced-passkey",
            RecoveryFamily::External => "external",
            RecoveryFamily::NotMfa => "not-mfa",
        }
    }
}

/// One kind of authentication method, whichever Graph source named it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum MethodKind {
    AuthenticatorPush = 0,
    AuthenticatorPasswordless,
    SoftwareOtp,
    PasskeyAuthenticator,
    MobilePhone,
    AlternateMobilePhone,
    OfficePhone,
    Fido2SecurityKey,
    PasskeyDeviceBound,
    WindowsHello,
    MacOsSecureEnclaveKey,
    PlatformCredential,
    HardwareOtp,
    Certificate,
    PasskeySynced,
    ExternalMfa,
    Email,
    SecurityQuestion,
    Password,
    TemporaryAccessPass,
    QrCodePin,
    /// Certificate sign-in configured single-factor (`x509CertificateSingleFactor`): not MFA.
    CertificateSingleFactor,
}

/// One row of the classification table.
#[derive(Debug)]
pub struct MethodInfo {
    pub kind: MethodKind,
    /// The name used in metrics labels and reports (the report's canonical string).
    pub name: &'static str,
    /// Every `methodsRegistered` string that means this kind (first is canonical).
    pub report_names: &'static [&'static str],
    pub mfa_capable: bool,
    pub phishing_resistant: bool,
    pub family: RecoveryFamily,
    pub description: &'static str,
}

macro_rules! row {
    ($kind:ident, [$($name:literal),+], $mfa:literal, $pr:literal, $fam:ident, $desc:literal) => {
        MethodInfo {
            kind: MethodKind::$kind,
            name: row!(@first $($name),+),
            report_names: &[$($name),+],
            mfa_capable: $mfa,
            phishing_resistant: $pr,
            family: RecoveryFamily::$fam,
            description: $desc,
        }
    };
    (@first $first:literal $(, $rest:literal)*) => { $first };
}

/// The classification table of DESIGN §3, in [`MethodKind`] order. The one place it lives.
pub static METHOD_TABLE: &[MethodInfo] = &[
    row!(
        AuthenticatorPush,
        ["microsoftAuthenticatorPush"],
        true,
        false,
        MobileApp,
        "Microsoft Authenticator push notification"
    ),
    row!(
        AuthenticatorPasswordless,
        ["microsoftAuthenticatorPasswordless"],
        true,
        false,
        MobileApp,
        "Microsoft Authenticator passwordless phone sign-in"
    ),
    row!(
        SoftwareOtp,
        ["softwareOneTimePasscode", "appCode"],
        true,
        false,
        MobileApp,
        "software OATH one-time passcode (authenticator app)"
    ),
    row!(
        PasskeyAuthenticator,
        ["passKeyDeviceBoundAuthenticator"],
        true,
        true,
        MobileApp,
        "device-bound passkey in Microsoft Authenticator"
    ),
    row!(
        MobilePhone,
        ["mobilePhone", "sms", "mobileSMS", "mobileCall"],
        true,
        false,
        MobileNumber,
        "mobile phone (SMS or voice call)"
    ),
    row!(
        AlternateMobilePhone,
        ["alternateMobilePhone", "alternateMobileCall"],
        true,
        false,
        AlternateNumber,
        "alternate mobile phone (voice call)"
    ),
    row!(
        OfficePhone,
        ["officePhone"],
        true,
        false,
        OfficePhone,
        "office phone (voice call)"
    ),
    row!(
        Fido2SecurityKey,
        ["fido2SecurityKey", "fido2", "fido"],
        true,
        true,
        SecurityKey,
        "FIDO2 security key"
    ),
    row!(
        PasskeyDeviceBound,
        ["passKeyDeviceBound"],
        true,
        true,
        SecurityKey,
        "device-bound passkey"
    ),
    row!(
        WindowsHello,
        ["windowsHelloForBusiness", "passKeyDeviceBoundWindowsHello"],
        true,
        true,
        Computer,
        "Windows Hello for Business"
    ),
    row!(
        MacOsSecureEnclaveKey,
        ["macOsSecureEnclaveKey"],
        true,
        true,
        Computer,
        "macOS secure enclave key"
    ),
    row!(
        PlatformCredential,
        ["platformCredential"],
        true,
        true,
        Computer,
        "platform credential (Platform SSO)"
    ),
    row!(
        HardwareOtp,
        ["hardwareOneTimePasscode"],
        true,
        false,
        HardwareToken,
        "hardware OATH token"
    ),
    row!(
        Certificate,
        [
            "certificateBasedAuthentication",
            "x509Certificate",
            "x509CertificateMultiFactor"
        ],
        true,
        true,
        Certificate,
        "certificate-based authentication"
    ),
    row!(
        PasskeySynced,
        ["passKeySynced"],
        true,
        true,
        SyncedPasskey,
        "synced passkey"
    ),
    row!(
        ExternalMfa,
        ["externalAuthMethod"],
        true,
        false,
        External,
        "external MFA provider"
    ),
    row!(
        Email,
        ["email"],
        false,
        false,
        NotMfa,
        "email one-time passcode (SSPR only)"
    ),
    row!(
        SecurityQuestion,
        ["securityQuestion"],
        false,
        false,
        NotMfa,
        "security questions (SSPR only)"
    ),
    row!(Password, ["password"], false, false, NotMfa, "password"),
    row!(
        TemporaryAccessPass,
        ["temporaryAccessPass"],
        false,
        false,
        NotMfa,
        "Temporary Access Pass (temporary by nature)"
    ),
    row!(
        QrCodePin,
        ["qrCode", "qrCodePin"],
        false,
        false,
        NotMfa,
        "QR code with PIN"
    ),
    row!(
        CertificateSingleFactor,
        ["x509CertificateSingleFactor"],
        false,
        false,
        NotMfa,
        "certificate-based authentication, single-factor (not MFA)"
    ),
];

impl MethodKind {
    pub const ALL: [MethodKind; 22] = [
        MethodKind::AuthenticatorPush,
        MethodKind::AuthenticatorPasswordless,
        MethodKind::SoftwareOtp,
        MethodKind::PasskeyAuthenticator,
        MethodKind::MobilePhone,
        MethodKind::AlternateMobilePhone,
        MethodKind::OfficePhone,
        MethodKind::Fido2SecurityKey,
        MethodKind::PasskeyDeviceBound,
        MethodKind::WindowsHello,
        MethodKind::MacOsSecureEnclaveKey,
        MethodKind::PlatformCredential,
        MethodKind::HardwareOtp,
        MethodKind::Certificate,
        MethodKind::PasskeySynced,
        MethodKind::ExternalMfa,
        MethodKind::Email,
        MethodKind::SecurityQuestion,
        MethodKind::Password,
        MethodKind::TemporaryAccessPass,
        MethodKind::QrCodePin,
        MethodKind::CertificateSingleFactor,
    ];

    pub fn info(self) -> &'static MethodInfo {
        &METHOD_TABLE[self as usize]
    }
    pub fn name(self) -> &'static str {
        self.info().name
    }
    pub fn is_mfa_capable(self) -> bool {
        self.info().mfa_capable
    }
    pub fn is_phishing_resistant(self) -> bool {
        self.info().phishing_resistant
    }
    pub fn family(self) -> RecoveryFamily {
        self.info().family
    }

    /// Classifies a `methodsRegistered` string from the registration report (case-insensitive).
    pub fn from_report_name(s: &str) -> Option<MethodKind> {
        METHOD_TABLE
            .iter()
            .find(|row| row.report_names.iter().any(|n| n.eq_ignore_ascii_case(s)))
            .map(|row| row.kind)
    }
}

/// AAGUIDs of Microsoft Authenticator's passkeys (iOS, Android): what a FIDO2 key restriction
/// must allow (or must not block) for passkeys in Authenticator to work.
pub const AUTHENTICATOR_PASSKEY_AAGUIDS: [&str; 2] = [
    "90a3ccdf-635c-4729-a248-9b709135078f",
    "de1e552d-db1d-4423-a619-566b625cdc84",
];

/// A set of [`MethodKind`]s as a bit set.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct MethodSet(u32);

impl MethodSet {
    pub const EMPTY: MethodSet = MethodSet(0);

    pub fn insert(&mut self, kind: MethodKind) {
        self.0 |= 1 << kind as u32;
    }
    pub fn contains(self, kind: MethodKind) -> bool {
        self.0 & (1 << kind as u32) != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }
    pub fn iter(self) -> impl Iterator<Item = MethodKind> {
        MethodKind::ALL
            .into_iter()
            .filter(move |k| self.contains(*k))
    }
    /// The MFA-capable kinds only.
    pub fn mfa_capable(self) -> MethodSet {
        self.iter().filter(|k| k.is_mfa_capable()).collect()
    }
    pub fn has_phishing_resistant(self) -> bool {
        self.iter().any(MethodKind::is_phishing_resistant)
    }
    /// The distinct recovery families the MFA-capable methods span: the "has a backup" measure.
    pub fn mfa_families(self) -> usize {
        let mut seen: Vec<RecoveryFamily> =
            self.mfa_capable().iter().map(MethodKind::family).collect();
        seen.sort();
        seen.dedup();
        seen.len()
    }
}

impl FromIterator<MethodKind> for MethodSet {
    fn from_iter<I: IntoIterator<Item = MethodKind>>(iter: I) -> Self {
        let mut set = MethodSet::EMPTY;
        for k in iter {
            set.insert(k);
        }
        set
    }
}

impl fmt::Debug for MethodSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(MethodKind::name))
            .finish()
    }
}

/// The roles we track: those that can reset MFA / issue TAPs, and the privileged ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Role {
    GlobalAdministrator = 0,
    PrivilegedAuthenticationAdministrator,
    AuthenticationAdministrator,
    AuthenticationPolicyAdministrator,
    PrivilegedRoleAdministrator,
    SecurityAdministrator,
    ConditionalAccessAdministrator,
    UserAdministrator,
    HelpdeskAdministrator,
    PasswordAdministrator,
    ApplicationAdministrator,
    CloudApplicationAdministrator,
    ExchangeAdministrator,
    SharePointAdministrator,
    BillingAdministrator,
    IntuneAdministrator,
    HybridIdentityAdministrator,
}

/// Role template ids (REFERENCE §12), in [`Role`] order.
pub static ROLE_TABLE: &[(Role, &str, &str)] = &[
    (
        Role::GlobalAdministrator,
        "62e90394-69f5-4237-9190-012177145e10",
        "Global Administrator",
    ),
    (
        Role::PrivilegedAuthenticationAdministrator,
        "7be44c8a-adaf-4e2a-84d6-ab2649e08a13",
        "Privileged Authentication Administrator",
    ),
    (
        Role::AuthenticationAdministrator,
        "c4e39bd9-1100-46d3-8c65-fb160da0071f",
        "Authentication Administrator",
    ),
    (
        Role::AuthenticationPolicyAdministrator,
        "0526716b-113d-4c15-b2c8-68e3c22b9f80",
        "Authentication Policy Administrator",
    ),
    (
        Role::PrivilegedRoleAdministrator,
        "e8611ab8-c189-46e8-94e1-60213ab1f814",
        "Privileged Role Administrator",
    ),
    (
        Role::SecurityAdministrator,
        "194ae4cb-b126-40b2-bd5b-6091b380977d",
        "Security Administrator",
    ),
    (
        Role::ConditionalAccessAdministrator,
        "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9",
        "Conditional Access Administrator",
    ),
    (
        Role::UserAdministrator,
        "fe930be7-5e62-47db-91af-98c3a49a38b1",
        "User Administrator",
    ),
    (
        Role::HelpdeskAdministrator,
        "729827e3-9c14-49f7-bb1b-9608f156bbb8",
        "Helpdesk Administrator",
    ),
    (
        Role::PasswordAdministrator,
        "966707d0-3269-4727-9be2-8c3a10f19b9d",
        "Password Administrator",
    ),
    (
        Role::ApplicationAdministrator,
        "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
        "Application Administrator",
    ),
    (
        Role::CloudApplicationAdministrator,
        "158c047a-c907-4556-b7ef-446551a6b5f7",
        "Cloud Application Administrator",
    ),
    (
        Role::ExchangeAdministrator,
        "29232cdf-9323-42fd-ade2-1d097af3e4de",
        "Exchange Administrator",
    ),
    (
        Role::SharePointAdministrator,
        "f28a1f50-f6e7-4571-818b-6a12f2af6b6c",
        "SharePoint Administrator",
    ),
    (
        Role::BillingAdministrator,
        "b0f54661-2d74-4c50-afa3-1ec803f12efe",
        "Billing Administrator",
    ),
    (
        Role::IntuneAdministrator,
        "3a2c62db-5318-420d-8d74-23affee5d9d5",
        "Intune Administrator",
    ),
    (
        Role::HybridIdentityAdministrator,
        "8ac3fc64-6eca-42ea-9e69-59f4c7b60eb2",
        "Hybrid Identity Administrator",
    ),
];

impl Role {
    pub fn template_id(self) -> &'static str {
        ROLE_TABLE[self as usize].1
    }
    pub fn display_name(self) -> &'static str {
        ROLE_TABLE[self as usize].2
    }
    pub fn from_template_id(id: &str) -> Option<Role> {
        ROLE_TABLE
            .iter()
            .find(|(_, t, _)| t.eq_ignore_ascii_case(id))
            .map(|(r, _, _)| *r)
    }
    /// Can reset another user's MFA methods and issue a Temporary Access Pass.
    pub fn can_reset_mfa(self) -> bool {
        matches!(
            self,
            Role::GlobalAdministrator
                | Role::PrivilegedAuthenticationAdministrator
                | Role::AuthenticationAdministrator
        )
    }
}

/// A set of [`Role`]s as a bit set.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RoleSet(u32);

impl RoleSet {
    pub fn insert(&mut self, role: Role) {
        self.0 |= 1 << role as u32;
    }
    pub fn contains(self, role: Role) -> bool {
        self.0 & (1 << role as u32) != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn iter(self) -> impl Iterator<Item = Role> {
        ROLE_TABLE
            .iter()
            .map(|(r, _, _)| *r)
            .filter(move |r| self.contains(*r))
    }
    pub fn can_reset_mfa(self) -> bool {
        self.iter().any(Role::can_reset_mfa)
    }
    /// The roles in either set.
    pub fn union(self, other: RoleSet) -> RoleSet {
        RoleSet(self.0 | other.0)
    }
    /// The roles in `self` that are not in `other`.
    pub fn minus(self, other: RoleSet) -> RoleSet {
        RoleSet(self.0 & !other.0)
    }
}

impl fmt::Debug for RoleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Role::display_name))
            .finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UserType {
    Member,
    Guest,
    Unknown,
}

/// The method a user picked as default for MFA (`userPreferredMethodForSecondaryAuthentication`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DefaultMethod {
    Push,
    Oath,
    VoiceMobile,
    VoiceAlternateMobile,
    VoiceOffice,
    Sms,
    None,
    Unknown,
}

impl DefaultMethod {
    pub fn is_phone(self) -> bool {
        matches!(
            self,
            DefaultMethod::VoiceMobile
                | DefaultMethod::VoiceAlternateMobile
                | DefaultMethod::VoiceOffice
                | DefaultMethod::Sms
        )
    }
}

/// A user's Temporary Access Pass (at most one per user).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tap {
    pub start: Option<DateTime<Utc>>,
    pub lifetime_minutes: u32,
    pub usable_once: bool,
    pub usable: bool,
    /// `methodUsabilityReason` as Graph gave it (`EnabledByPolicy`, `Expired`, …).
    pub usability_reason: Box<str>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PerUserMfa {
    Disabled,
    Enabled,
    Enforced,
    Unknown,
}

/// One user, as compact as we can keep it.
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    pub id: ObjectId,
    pub upn: Box<str>,
    pub display_name: Box<str>,
    pub user_type: UserType,
    pub account_enabled: bool,
    pub created: Option<DateTime<Utc>>,
    pub on_premises_sync: bool,
    /// Registered methods; `None` when no source listed the user (the registration report omits
    /// disabled users) — unknown, which is not the same as "none".
    pub methods: Option<MethodSet>,
    /// Method strings or `@odata.type`s this user had that no table row knows.
    pub unknown_methods: u8,
    /// `isAdmin` from the registration report.
    pub is_admin: bool,
    /// `isMfaCapable` from the registration report: a strong method registered *and allowed by
    /// the authentication-methods policy*; `None` when the report did not list the user.
    pub mfa_capable: Option<bool>,
    /// Tracked roles held by an active tenant-wide assignment, directly or through a
    /// role-assignable group.
    pub roles: RoleSet,
    /// Tracked roles the user is eligible for through PIM (directly or through a group) and does
    /// not hold actively; empty when eligibility was not read (see [`DataSet::RoleEligibility`]).
    pub eligible_roles: RoleSet,
    pub system_preferred_mfa: Option<bool>,
    pub default_method: Option<DefaultMethod>,
    pub tap: Option<Box<Tap>>,
    pub per_user_mfa: Option<PerUserMfa>,
    /// Failed MFA sign-ins in the collection window; `None` when sign-ins were not read.
    pub mfa_failures: Option<u32>,
    /// Self-service password reset readiness from the registration report; `None` when the
    /// report did not list the user.
    pub sspr: Option<Sspr>,
    /// `otherMails` holds at least one address (an alternate email to reach them by); `None`
    /// when not read.
    pub has_other_mails: Option<bool>,
}

/// `isSsprEnabled`, `isSsprRegistered`, `isSsprCapable` of the registration report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Sspr {
    pub enabled: bool,
    pub registered: bool,
    pub capable: bool,
}

impl User {
    /// Every tracked role the user holds or can activate.
    pub fn admin_roles(&self) -> RoleSet {
        self.roles.union(self.eligible_roles)
    }

    pub fn new(id: ObjectId, upn: &str) -> User {
        User {
            id,
            upn: upn.into(),
            display_name: "".into(),
            user_type: UserType::Member,
            account_enabled: true,
            created: None,
            on_premises_sync: false,
            methods: None,
            unknown_methods: 0,
            is_admin: false,
            mfa_capable: None,
            roles: RoleSet::default(),
            eligible_roles: RoleSet::default(),
            system_preferred_mfa: None,
            default_method: None,
            tap: None,
            per_user_mfa: None,
            mfa_failures: None,
            sspr: None,
            has_other_mails: None,
        }
    }
}

/// `state` of a method or feature in the authentication-methods policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureState {
    Default,
    Enabled,
    Disabled,
    Unknown,
}

/// One method configuration of the authentication-methods policy.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodConfig {
    /// Graph's configuration id: `Fido2`, `Sms`, `TemporaryAccessPass`, …
    pub id: Box<str>,
    pub enabled: bool,
    /// Include target ids (`all_users` or group ids).
    pub include_targets: Vec<Box<str>>,
    pub exclude_targets: Vec<Box<str>>,
}

/// Key restrictions of the FIDO2 configuration or of a passkey profile.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KeyRestrictions {
    pub enforced: bool,
    /// `enforcementType` is `allow` (only these AAGUIDs) rather than `block`.
    pub allow: bool,
    pub aaguids: Vec<Box<str>>,
}

/// A passkey profile of the FIDO2 configuration (beta `passkeyProfiles`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PasskeyProfile {
    pub id: Box<str>,
    pub name: Box<str>,
    /// `passkeyTypes` flags as words: `deviceBound`, `synced`.
    pub passkey_types: Vec<Box<str>>,
    /// `attestationEnforcement` is anything but `disabled`.
    pub attestation_enforced: bool,
    pub key_restrictions: Option<KeyRestrictions>,
}

/// The FIDO2 (passkey) method configuration beyond its state and targets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fido2Policy {
    /// Deprecated top-level `isAttestationEnforced`.
    pub attestation_enforced: bool,
    /// Deprecated top-level `keyRestrictions`.
    pub key_restrictions: Option<KeyRestrictions>,
    pub profiles: Vec<PasskeyProfile>,
    /// The profile (id) targets get when they name none (`defaultPasskeyProfile`).
    pub default_profile: Option<Box<str>>,
    /// Each include target (`all_users` or a group id) with the profile ids it allows (empty:
    /// the default profile).
    pub target_profiles: Vec<(Box<str>, Vec<Box<str>>)>,
}

/// The TAP method configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct TapPolicy {
    pub enabled: bool,
    pub default_lifetime_minutes: Option<u32>,
    pub minimum_lifetime_minutes: Option<u32>,
    pub maximum_lifetime_minutes: Option<u32>,
    pub default_length: Option<u32>,
    /// True: every TAP in the tenant is one-time.
    pub usable_once: bool,
    pub include_targets: Vec<Box<str>>,
    pub exclude_targets: Vec<Box<str>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AuthenticatorFeatures {
    pub number_matching: FeatureState,
    pub app_information: FeatureState,
    pub location_information: FeatureState,
}

/// The tenant's authentication-methods policy, TAP configuration included.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodsPolicy {
    pub migration_state: Box<str>,
    pub registration_campaign: FeatureState,
    pub system_preferred_mfa: Option<FeatureState>,
    pub methods: Vec<MethodConfig>,
    pub tap: Option<TapPolicy>,
    pub authenticator: Option<AuthenticatorFeatures>,
    /// `reportSuspiciousActivitySettings.state`; `None` when the policy read did not carry it.
    pub report_suspicious_activity: Option<FeatureState>,
    /// The FIDO2 configuration's passkey settings; `None` when it is not in the policy read.
    pub fido2: Option<Fido2Policy>,
}

/// An authentication strength (`/policies/authenticationStrengthPolicies`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuthStrength {
    pub id: Box<str>,
    pub display_name: Box<str>,
    /// `builtIn` or `custom`.
    pub policy_type: Box<str>,
    /// `allowedCombinations`: each a comma-separated set of `authenticationMethodModes`, any one
    /// combination satisfying the strength (`fido2`, `password,sms`, …).
    pub allowed_combinations: Vec<Box<str>>,
}

/// Smart lockout (the beta directory setting "Password Rule Settings"), or Entra's defaults when
/// the tenant has no such setting object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmartLockout {
    pub threshold: u32,
    pub duration_seconds: u32,
    /// No "Password Rule Settings" object exists: Entra's defaults (10 attempts, 60 s) apply.
    pub defaults: bool,
}

/// A Conditional Access policy, reduced to what tells whether it enforces MFA.
#[derive(Clone, Debug, PartialEq)]
pub struct CaPolicy {
    pub id: Box<str>,
    pub display_name: Box<str>,
    /// `enabled`, `disabled` or `enabledForReportingButNotEnforced`.
    pub state: Box<str>,
    pub include_users: Vec<Box<str>>,
    pub exclude_users: Vec<Box<str>>,
    pub include_groups: Vec<Box<str>>,
    pub exclude_groups: Vec<Box<str>>,
    pub include_roles: Vec<Box<str>>,
    pub exclude_roles: Vec<Box<str>>,
    pub include_applications: Vec<Box<str>>,
    /// `builtInControls` contains `mfa`, or an authentication strength is required.
    pub requires_mfa: bool,
    /// `grantControls.operator` is `OR` and other controls could satisfy the grant instead.
    pub mfa_is_optional: bool,
    /// Applications excluded (`excludeApplications`).
    pub exclude_applications: Vec<Box<str>>,
    /// `excludeGuestsOrExternalUsers` is set, or `excludeUsers` holds `GuestsOrExternalUsers`.
    pub excludes_guests: bool,
    /// The conditions that narrow when it applies, in words ("sign-in risk high", "locations
    /// except AllTrusted", "client apps browser", …); empty when it applies to every sign-in.
    pub narrowing: Vec<Box<str>>,
    /// `includeGuestsOrExternalUsers` is set, or `includeUsers` holds `GuestsOrExternalUsers`.
    pub includes_guests: bool,
    /// `builtInControls` contains `mfa`.
    pub builtin_mfa: bool,
    /// `grantControls.authenticationStrength`, when one is required.
    pub strength: Option<AuthStrength>,
}

/// A data set of the snapshot: what was read, and if not, why not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataSet {
    Users,
    Registration,
    MethodsPolicy,
    SecurityDefaults,
    ConditionalAccess,
    Roles,
    TapDetail,
    MethodDetail,
    PerUserMfa,
    SignIns,
    Groups,
    /// PIM eligibility for the tracked roles (`roleEligibilityScheduleInstances`, Entra ID P2).
    RoleEligibility,
    /// The directory audit log's Temporary Access Pass issuances since the previous audit: the
    /// passes the registration report does not list yet.
    DirectoryAudit,
    /// Every authentication strength (`/policies/authenticationStrengthPolicies`).
    AuthStrengths,
    /// Directory settings (beta `/settings`): smart lockout's "Password Rule Settings".
    DirectorySettings,
    /// Whether each user and group the policies name still exists, and the members of the
    /// groups they name.
    PolicyTargets,
}

impl DataSet {
    pub fn as_str(self) -> &'static str {
        match self {
            DataSet::Users => "users",
            DataSet::Registration => "registration",
            DataSet::MethodsPolicy => "methods-policy",
            DataSet::SecurityDefaults => "security-defaults",
            DataSet::ConditionalAccess => "conditional-access",
            DataSet::Roles => "roles",
            DataSet::TapDetail => "tap-detail",
            DataSet::MethodDetail => "method-detail",
            DataSet::PerUserMfa => "per-user-mfa",
            DataSet::SignIns => "sign-ins",
            DataSet::Groups => "groups",
            DataSet::RoleEligibility => "role-eligibility",
            DataSet::DirectoryAudit => "directory-audit",
            DataSet::AuthStrengths => "auth-strengths",
            DataSet::DirectorySettings => "directory-settings",
            DataSet::PolicyTargets => "policy-targets",
        }
    }
}

/// Why a data set is not in the snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gap {
    /// Turned off in `[graph]`.
    Disabled,
    /// The token lacks a permission this data set needs.
    MissingPermission(String),
    /// The tenant's licence does not include it (and no fallback applies).
    Unlicensed(String),
    /// A sweep failed: the audit is incomplete.
    Failed { endpoint: String, reason: String },
}

/// What the snapshot covers. A failed sweep makes the snapshot incomplete; a disabled, unlicensed
/// or unpermitted data set leaves it complete but the rules that need it are skipped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Coverage {
    pub gaps: BTreeMap<DataSet, Gap>,
    /// The registration report was unavailable (free tenant), so methods came from per-user detail.
    pub licence_fallback: bool,
    /// Permissions the token lacks, each with what it disables.
    pub missing_permissions: Vec<(String, String)>,
}

impl Coverage {
    pub fn is_complete(&self) -> bool {
        !self.gaps.values().any(|g| matches!(g, Gap::Failed { .. }))
    }
    pub fn has(&self, set: DataSet) -> bool {
        !self.gaps.contains_key(&set)
    }
}

/// One tenant at one time.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub tenant_id: String,
    pub taken_at: DateTime<Utc>,
    /// Every user, sorted by id.
    pub users: Vec<User>,
    pub methods_policy: Option<MethodsPolicy>,
    pub security_defaults_enabled: Option<bool>,
    pub conditional_access: Option<Vec<CaPolicy>>,
    /// Unknown method strings / `@odata.type`s seen, with how many users had each.
    pub unknown_methods: BTreeMap<String, u64>,
    /// MFA-failure sign-ins by error code in the window.
    pub mfa_failures_by_code: BTreeMap<i32, u64>,
    /// Transitive user members of the groups the scope names, by lower-case group id, sorted.
    pub groups: BTreeMap<String, Vec<ObjectId>>,
    /// Service principals holding each tracked role tenant-wide (directly or through a
    /// role-assignable group): not users, so outside the user rules, but counted. Empty when
    /// roles were not read.
    pub role_service_principals: BTreeMap<Role, u32>,
    /// Every authentication strength, built-in and custom ([`DataSet::AuthStrengths`]).
    pub strengths: Option<Vec<AuthStrength>>,
    /// Smart lockout ([`DataSet::DirectorySettings`]).
    pub lockout: Option<SmartLockout>,
    /// The users and groups policies name ([`policy_references`]) that do not exist, lower-case
    /// ([`DataSet::PolicyTargets`]).
    pub missing_targets: Option<std::collections::BTreeSet<String>>,
    pub coverage: Coverage,
}

/// What one policy reference names: a user or a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TargetKind {
    User,
    Group,
}

/// One object a policy names: (the policy in words, include or exclude, its kind, its id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyReference {
    /// `Conditional Access policy 'Require MFA'` or `methods policy Sms`.
    pub policy: String,
    pub exclude: bool,
    pub kind: TargetKind,
    /// Lower-case object id.
    pub id: String,
}

/// Every user and group id the Conditional Access policies and the authentication-methods
/// policy name (`All`, `all_users`, `GuestsOrExternalUsers`, `None` and other non-ids left out).
/// Collect checks these exist; `policy-target-missing` names the ones that do not.
pub fn policy_references(s: &Snapshot) -> Vec<PolicyReference> {
    let mut out = Vec::new();
    let mut push = |policy: &str, exclude: bool, kind: TargetKind, id: &str| {
        if ObjectId::parse(id).is_some() {
            out.push(PolicyReference {
                policy: policy.to_string(),
                exclude,
                kind,
                id: id.to_ascii_lowercase(),
            });
        }
    };
    for p in s.conditional_access.iter().flatten() {
        let name = format!("Conditional Access policy '{}'", p.display_name);
        for (list, exclude, kind) in [
            (&p.include_users, false, TargetKind::User),
            (&p.exclude_users, true, TargetKind::User),
            (&p.include_groups, false, TargetKind::Group),
            (&p.exclude_groups, true, TargetKind::Group),
        ] {
            for id in list {
                push(&name, exclude, kind, id);
            }
        }
    }
    if let Some(m) = &s.methods_policy {
        for c in &m.methods {
            let name = format!("methods policy {}", c.id);
            for id in &c.include_targets {
                push(&name, false, TargetKind::Group, id);
            }
            for id in &c.exclude_targets {
                push(&name, true, TargetKind::Group, id);
            }
        }
        if let Some(t) = &m.tap {
            for id in &t.include_targets {
                push(
                    "methods policy TemporaryAccessPass",
                    false,
                    TargetKind::Group,
                    id,
                );
            }
            for id in &t.exclude_targets {
                push(
                    "methods policy TemporaryAccessPass",
                    true,
                    TargetKind::Group,
                    id,
                );
            }
        }
    }
    out
}

impl Snapshot {
    /// A snapshot of nothing yet: every data set absent, no gap recorded.
    pub fn empty(tenant_id: &str, taken_at: DateTime<Utc>) -> Snapshot {
        Snapshot {
            tenant_id: tenant_id.to_string(),
            taken_at,
            users: Vec::new(),
            methods_policy: None,
            security_defaults_enabled: None,
            conditional_access: None,
            unknown_methods: BTreeMap::new(),
            mfa_failures_by_code: BTreeMap::new(),
            groups: BTreeMap::new(),
            role_service_principals: BTreeMap::new(),
            strengths: None,
            lockout: None,
            missing_targets: None,
            coverage: Coverage::default(),
        }
    }

    pub fn is_complete(&self) -> bool {
        self.coverage.is_complete()
    }
    /// Whether `user` is a (transitive) member of `group`; `None` when the group was not read.
    pub fn is_member(&self, group: &str, user: ObjectId) -> Option<bool> {
        self.groups
            .get(&group.to_ascii_lowercase())
            .map(|m| m.binary_search(&user).is_ok())
    }

    /// Whether `user` is a (transitive) member of a group a policy names: `Some(false)` when the
    /// group no longer exists ([`Snapshot::missing_targets`]: it holds nobody), otherwise
    /// [`Snapshot::is_member`] (`None`: the group was not read).
    pub fn policy_member(&self, group: &str, user: ObjectId) -> Option<bool> {
        let gone = self
            .missing_targets
            .as_ref()
            .is_some_and(|m| m.contains(&group.to_ascii_lowercase()));
        if gone {
            return Some(false);
        }
        self.is_member(group, user)
    }

    /// Looks a user up by id (users are sorted by id).
    pub fn user(&self, id: ObjectId) -> Option<&User> {
        self.users
            .binary_search_by_key(&id, |u| u.id)
            .ok()
            .map(|i| &self.users[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_in_kind_order_and_complete() {
        assert_eq!(METHOD_TABLE.len(), MethodKind::ALL.len());
        for (i, row) in METHOD_TABLE.iter().enumerate() {
            assert_eq!(row.kind as usize, i, "row {} out of order", row.name);
            assert_eq!(MethodKind::ALL[i], row.kind);
        }
        for (i, (role, _, _)) in ROLE_TABLE.iter().enumerate() {
            assert_eq!(*role as usize, i);
        }
    }

    #[test]
    fn report_names_are_unique() {
        let mut names: Vec<String> = METHOD_TABLE
            .iter()
            .flat_map(|r| r.report_names.iter().map(|n| n.to_ascii_lowercase()))
            .collect();
        let before = names.len();
        names.sort();
        names.dedup();
        assert_eq!(before, names.len());
    }

    #[test]
    fn authenticator_and_sms_on_the_same_phone_are_two_families() {
        let set: MethodSet = [MethodKind::AuthenticatorPush, MethodKind::MobilePhone]
            .into_iter()
            .collect();
        assert_eq!(set.mfa_families(), 2);
    }

    #[test]
    fn one_phone_apps_are_one_family_and_email_does_not_count() {
        let set: MethodSet = [
            MethodKind::AuthenticatorPush,
            MethodKind::SoftwareOtp,
            MethodKind::Email,
            MethodKind::TemporaryAccessPass,
        ]
        .into_iter()
        .collect();
        assert_eq!(set.mfa_families(), 1);
        assert_eq!(set.mfa_capable().len(), 2);
        assert!(!set.has_phishing_resistant());
    }

    #[test]
    fn report_names_classify_case_insensitively_and_unknowns_are_none() {
        assert_eq!(
            MethodKind::from_report_name("FIDO2"),
            Some(MethodKind::Fido2SecurityKey)
        );
        assert_eq!(
            MethodKind::from_report_name("passKeyDeviceBound"),
            Some(MethodKind::PasskeyDeviceBound)
        );
        assert_eq!(MethodKind::from_report_name("telepathy"), None);
    }

    #[test]
    fn object_ids_round_trip() {
        let text = "86462606-fde0-4fc4-9e0c-a20eb73e54c6";
        let id = ObjectId::parse(text).expect("a GUID");
        assert_eq!(id.to_string(), text);
        assert_eq!(
            ObjectId::parse("86462606-FDE0-4FC4-9E0C-A20EB73E54C6"),
            Some(id)
        );
        assert_eq!(ObjectId::parse("not-a-guid"), None);
    }

    #[test]
    fn user_stays_small() {
        // A million users must fit in a few hundred MB: the struct itself, before its strings.
        assert!(
            std::mem::size_of::<User>() <= 128,
            "User is {} bytes",
            std::mem::size_of::<User>()
        );
    }
}
