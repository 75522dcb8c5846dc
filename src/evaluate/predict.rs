//! Predicting lockouts from policy: will this user get in at their next sign-in?
//!
//! The rules of `rules.rs` judge what users *registered*; this module judges what policy
//! *demands* of them. It holds the tables (which `authenticationMethodModes` each method kind
//! contributes; the built-in authentication strengths) and the pure functions over them: which
//! of a user's methods the authentication-methods policy allows them ([`allowed`],
//! [`Predictor::allowed_methods`]), whether a Conditional Access policy applies to them
//! ([`Predictor::applies`]), which strengths it requires ([`requirements`]), whether their
//! methods satisfy a strength ([`Requirement::satisfied_by`]), whether the policies lock one
//! user out and why ([`Predictor::lockout`]), and per policy how many users it would lock out
//! ([`predict_lockouts`]).
//!
//! The semantics are the contract with graph-sim's ground truth (`RULES.md`, issue 11): a user's
//! policy-allowed methods are their MFA-capable registered methods the methods policy allows them
//! (a target group not read counts as allowed, and so does a "no" while the policy migration is
//! incomplete: the legacy policy still applies); a policy whose membership cannot be decided (a
//! group not read) or whose strength cannot be found is not judged: no finding.

use serde::{Deserialize, Serialize};

use super::rules::names;

use crate::snapshot::{
    AuthStrength, CaPolicy, DataSet, MethodKind, MethodSet, MethodsPolicy, ObjectId, Role,
    Snapshot, User, UserType,
};

/// Every `authenticationMethodModes` value, in bit order of [`Modes`].
pub const AUTH_MODES: [&str; 17] = [
    "password",
    "microsoftAuthenticatorPush",
    "deviceBasedPush",
    "softwareOath",
    "hardwareOath",
    "sms",
    "voice",
    "fido2",
    "windowsHelloForBusiness",
    "x509CertificateMultiFactor",
    "x509CertificateSingleFactor",
    "qrCodePin",
    "federatedSingleFactor",
    "federatedMultiFactor",
    "temporaryAccessPassOneTime",
    "temporaryAccessPassMultiUse",
    "email",
];

/// The phishing-resistant modes: a strength whose every combination needs one of them can be
/// met only by a passkey, Windows Hello for Business or a certificate.
pub const PHISHING_RESISTANT_MODES: [&str; 3] = [
    "fido2",
    "windowsHelloForBusiness",
    "x509CertificateMultiFactor",
];

/// A set of authentication method modes as a bit set (bit `i` is [`AUTH_MODES`]`[i]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Modes(u32);

impl Modes {
    /// The one mode named (exactly as Graph spells it, any case); `None` when unknown.
    pub fn named(name: &str) -> Option<Modes> {
        AUTH_MODES
            .iter()
            .position(|m| m.eq_ignore_ascii_case(name.trim()))
            .map(|i| Modes(1 << i))
    }
    /// A combination (`"password,sms"`); `None` when it names a mode this table does not know
    /// (such a combination can never be satisfied).
    pub fn combination(combo: &str) -> Option<Modes> {
        combo.split(',').try_fold(Modes::default(), |acc, m| {
            Modes::named(m).map(|b| acc.union(b))
        })
    }
    pub fn union(self, other: Modes) -> Modes {
        Modes(self.0 | other.0)
    }
    /// Every mode of `self` is in `available`.
    pub fn within(self, available: Modes) -> bool {
        self.0 & !available.0 == 0
    }
    pub fn intersects(self, other: Modes) -> bool {
        self.0 & other.0 != 0
    }
    /// The modes a set of methods makes available: each method's, and `password` always.
    pub fn available(methods: MethodSet) -> Modes {
        methods
            .iter()
            .fold(password(), |acc, k| acc.union(modes_of(k)))
    }
}

fn password() -> Modes {
    Modes(1)
}

/// What one method kind contributes to a strength combination (`authenticationMethodModes`).
/// `password` is always available and is not listed; federated modes never are.
pub fn modes(k: MethodKind) -> &'static [&'static str] {
    use MethodKind as K;
    match k {
        K::AuthenticatorPush => &["microsoftAuthenticatorPush"],
        K::AuthenticatorPasswordless => &["deviceBasedPush"],
        K::SoftwareOtp => &["softwareOath"],
        K::HardwareOtp => &["hardwareOath"],
        K::MobilePhone => &["sms", "voice"],
        K::AlternateMobilePhone | K::OfficePhone => &["voice"],
        K::Fido2SecurityKey
        | K::PasskeyDeviceBound
        | K::PasskeySynced
        | K::PasskeyAuthenticator => &["fido2"],
        K::WindowsHello | K::PlatformCredential | K::MacOsSecureEnclaveKey => {
            &["windowsHelloForBusiness"]
        }
        K::Certificate => &["x509CertificateMultiFactor"],
        K::CertificateSingleFactor => &["x509CertificateSingleFactor"],
        K::QrCodePin => &["qrCodePin"],
        K::ExternalMfa | K::Email | K::SecurityQuestion | K::Password | K::TemporaryAccessPass => {
            &[]
        }
    }
}

fn modes_of(k: MethodKind) -> Modes {
    modes(k)
        .iter()
        .filter_map(|m| Modes::named(m))
        .fold(Modes::default(), Modes::union)
}

/// One built-in authentication strength.
#[derive(Debug)]
pub struct BuiltinStrength {
    pub id: &'static str,
    pub name: &'static str,
    /// The short name `what-if --require-strength` takes.
    pub alias: &'static str,
    pub combinations: &'static [&'static str],
}

/// The built-in strength `builtInControls: ["mfa"]` amounts to.
pub const BUILTIN_MFA: &str = "00000000-0000-0000-0000-000000000002";

/// The built-in authentication strengths, exactly as Graph lists them
/// (`../shared/graph/fixtures/authenticationStrengthPolicies_list.json`).
pub static BUILTIN_STRENGTHS: &[BuiltinStrength] = &[
    BuiltinStrength {
        id: BUILTIN_MFA,
        name: "Multifactor authentication",
        alias: "mfa",
        combinations: &[
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
    },
    BuiltinStrength {
        id: "00000000-0000-0000-0000-000000000003",
        name: "Passwordless MFA",
        alias: "passwordless",
        combinations: &[
            "windowsHelloForBusiness",
            "fido2",
            "x509CertificateMultiFactor",
            "deviceBasedPush",
        ],
    },
    BuiltinStrength {
        id: "00000000-0000-0000-0000-000000000004",
        name: "Phishing resistant MFA",
        alias: "phishing-resistant",
        combinations: &[
            "windowsHelloForBusiness",
            "fido2",
            "x509CertificateMultiFactor",
        ],
    },
];

/// A strength a policy requires, resolved to its combinations.
#[derive(Clone, Debug, PartialEq)]
pub struct Requirement {
    pub id: String,
    pub name: String,
    /// `allowedCombinations` as Graph gives them.
    pub combinations: Vec<String>,
    /// Each combination's modes; `None` for one naming a mode nobody can have.
    masks: Vec<Option<Modes>>,
}

impl Requirement {
    pub fn new(id: &str, name: &str, combinations: Vec<String>) -> Requirement {
        let masks = combinations.iter().map(|c| Modes::combination(c)).collect();
        Requirement {
            id: id.to_string(),
            name: name.to_string(),
            combinations,
            masks,
        }
    }

    fn builtin(b: &BuiltinStrength) -> Requirement {
        Requirement::new(
            b.id,
            b.name,
            b.combinations.iter().map(|c| c.to_string()).collect(),
        )
    }

    /// Some combination is made of modes these methods (and the password) provide.
    pub fn satisfied_by(&self, methods: MethodSet) -> bool {
        self.satisfied_by_modes(Modes::available(methods))
    }

    pub fn satisfied_by_modes(&self, available: Modes) -> bool {
        self.masks.iter().flatten().any(|m| m.within(available))
    }

    /// Every combination needs a phishing-resistant mode (and at least one combination exists).
    pub fn phishing_resistant_only(&self) -> bool {
        let pr = PHISHING_RESISTANT_MODES
            .iter()
            .filter_map(|m| Modes::named(m))
            .fold(Modes::default(), Modes::union);
        !self.masks.is_empty()
            && self
                .masks
                .iter()
                .all(|m| m.is_none_or(|m| m.intersects(pr)))
    }

    /// The MFA-capable method kinds that, registered and allowed, would satisfy it alone.
    pub fn met_by(&self) -> MethodSet {
        MethodKind::ALL
            .into_iter()
            .filter(|k| k.is_mfa_capable() && *k != MethodKind::TemporaryAccessPass)
            .filter(|k| self.satisfied_by_modes(password().union(modes_of(*k))))
            .collect()
    }
}

/// The strengths `p` requires, each to be satisfied: the built-in MFA strength for
/// `builtInControls: ["mfa"]`, and its authentication strength (inline combinations; failing
/// those, the one with that id in `Snapshot.strengths`; failing that, the built-in table).
/// `None` when a strength cannot be found: the policy is not judged.
pub fn requirements(s: &Snapshot, p: &CaPolicy) -> Option<Vec<Requirement>> {
    let mut out = Vec::new();
    let builtin = |id: &str| {
        BUILTIN_STRENGTHS
            .iter()
            .find(|b| b.id.eq_ignore_ascii_case(id))
    };
    if p.builtin_mfa || (p.requires_mfa && p.strength.is_none()) {
        out.push(Requirement::builtin(builtin(BUILTIN_MFA)?));
    }
    if let Some(st) = &p.strength {
        out.push(resolve(s, st, builtin)?);
    }
    Some(out)
}

fn resolve(
    s: &Snapshot,
    st: &AuthStrength,
    builtin: impl Fn(&str) -> Option<&'static BuiltinStrength>,
) -> Option<Requirement> {
    let named = |found: &str| {
        if st.display_name.is_empty() {
            found.to_string()
        } else {
            st.display_name.to_string()
        }
    };
    if !st.allowed_combinations.is_empty() {
        let combos = st.allowed_combinations.iter().map(|c| c.to_string());
        return Some(Requirement::new(&st.id, &named(&st.id), combos.collect()));
    }
    if let Some(found) = s
        .strengths
        .iter()
        .flatten()
        .find(|x| x.id.eq_ignore_ascii_case(&st.id) && !x.allowed_combinations.is_empty())
    {
        let combos = found.allowed_combinations.iter().map(|c| c.to_string());
        return Some(Requirement::new(
            &st.id,
            &named(&found.display_name),
            combos.collect(),
        ));
    }
    builtin(&st.id).map(|b| {
        let mut r = Requirement::builtin(b);
        r.name = named(b.name);
        r
    })
}

/// The methods-policy configurations (`authenticationMethodConfigurations` ids) that allow a
/// kind to be used, any one of them sufficing; empty when none governs it (Windows Hello for
/// Business and platform credentials are Intune's, external providers have per-provider ids).
pub fn policy_configs(k: MethodKind) -> &'static [&'static str] {
    use MethodKind as K;
    match k {
        K::AuthenticatorPush | K::AuthenticatorPasswordless => &["MicrosoftAuthenticator"],
        K::SoftwareOtp => &["SoftwareOath", "MicrosoftAuthenticator"],
        K::PasskeyAuthenticator
        | K::Fido2SecurityKey
        | K::PasskeyDeviceBound
        | K::PasskeySynced => &["Fido2"],
        K::MobilePhone => &["Sms", "Voice"],
        K::AlternateMobilePhone | K::OfficePhone => &["Voice"],
        K::HardwareOtp => &["HardwareOath"],
        K::Certificate | K::CertificateSingleFactor => &["X509Certificate"],
        K::Email => &["Email"],
        K::TemporaryAccessPass => &["TemporaryAccessPass"],
        K::QrCodePin => &["QRCodePin"],
        K::WindowsHello
        | K::MacOsSecureEnclaveKey
        | K::PlatformCredential
        | K::ExternalMfa
        | K::SecurityQuestion
        | K::Password => &[],
    }
}

/// Whether the methods policy lets one user use one kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Allowed {
    Yes,
    /// Why not, per configuration (`HardwareOath is disabled`).
    No(String),
    /// It depends on membership of groups this audit does not read (or a missing configuration).
    Unknown(String),
}

/// Whether `id` is the user's object id (no allocation: this runs per user, per policy entry).
fn is_user(id: &str, u: &User) -> bool {
    ObjectId::parse(id) == Some(u.id)
}

/// Whether a method-policy target (`all_users`, a group id, or the user's own id) names `u`;
/// `None` for a group not read.
pub fn targets(s: &Snapshot, target: &str, u: &User) -> Option<bool> {
    if target.eq_ignore_ascii_case("all_users") || is_user(target, u) {
        Some(true)
    } else {
        s.policy_member(target, u.id)
    }
}

/// Whether the authentication-methods policy lets `u` use `k`: a configuration governing it is
/// enabled, `u` is in its include targets and not in its exclude targets.
pub fn allowed(s: &Snapshot, policy: &MethodsPolicy, u: &User, k: MethodKind) -> Allowed {
    let configs = policy_configs(k);
    if configs.is_empty() {
        return Allowed::Yes;
    }
    let mut no = Vec::new();
    let mut unknown = Vec::new();
    for name in configs {
        let Some(c) = policy
            .methods
            .iter()
            .find(|c| c.id.eq_ignore_ascii_case(name))
        else {
            unknown.push(format!("{name} is not in the policy read"));
            continue;
        };
        if !c.enabled {
            no.push(format!("{name} is disabled"));
            continue;
        }
        let excluded: Vec<Option<bool>> =
            c.exclude_targets.iter().map(|t| targets(s, t, u)).collect();
        let included: Vec<Option<bool>> =
            c.include_targets.iter().map(|t| targets(s, t, u)).collect();
        if excluded.contains(&Some(true)) {
            no.push(format!("{name} excludes the user"));
        } else if !included.contains(&Some(true)) && !included.contains(&None) {
            no.push(format!("{name} does not target the user"));
        } else if excluded.contains(&None) || !included.contains(&Some(true)) {
            unknown.push(format!("{name} targets groups this audit does not read"));
        } else {
            return Allowed::Yes;
        }
    }
    if unknown.is_empty() {
        Allowed::No(no.join(", "))
    } else {
        unknown.extend(no);
        Allowed::Unknown(unknown.join(", "))
    }
}

/// A user's MFA-capable methods split by what policy lets them use.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicyMethods {
    /// Usable: allowed, allowed as far as this audit can tell, or allowed by the legacy policy.
    pub allowed: MethodSet,
    /// Registered but not allowed, each with why.
    pub not_allowed: Vec<(MethodKind, String)>,
}

impl PolicyMethods {
    /// `allowed` in words.
    pub fn describe(&self) -> String {
        let mut out = format!("policy-allowed methods: {}", names(self.allowed));
        if !self.not_allowed.is_empty() {
            let v: Vec<String> = self
                .not_allowed
                .iter()
                .map(|(k, why)| format!("{} ({why})", k.name()))
                .collect();
            out.push_str(&format!("; registered but not allowed: {}", v.join(", ")));
        }
        out
    }
}

/// `enabled` or `enabledForReportingButNotEnforced`: the states whose policies are judged.
pub const STATE_ENABLED: &str = "enabled";
pub const STATE_REPORT_ONLY: &str = "enabledForReportingButNotEnforced";

/// A Conditional Access policy that is judged: enabled or report-only, requiring MFA (not as
/// one choice among others), its strengths found.
#[derive(Clone, Debug)]
pub struct JudgedPolicy<'a> {
    pub policy: &'a CaPolicy,
    pub requirements: Vec<Requirement>,
    audience: Audience<'a>,
}

impl JudgedPolicy<'_> {
    /// `'name' (state; applications …; when …)`.
    pub fn describe(&self) -> String {
        let p = self.policy;
        let mut parts = vec![p.state.to_string()];
        let apps: Vec<&str> = p.include_applications.iter().map(|a| a.as_ref()).collect();
        if !apps.is_empty() {
            parts.push(format!("applications {}", apps.join(", ")));
        }
        if !p.exclude_applications.is_empty() {
            let ex: Vec<&str> = p.exclude_applications.iter().map(|a| a.as_ref()).collect();
            parts.push(format!("except {}", ex.join(", ")));
        }
        if !p.narrowing.is_empty() {
            let n: Vec<&str> = p.narrowing.iter().map(|a| a.as_ref()).collect();
            parts.push(format!("when {}", n.join(", ")));
        }
        format!("'{}' ({})", p.display_name, parts.join("; "))
    }
}

/// Three-valued "or": true if any is true, unknown if none is true and one is unknown.
fn any3(values: impl IntoIterator<Item = Option<bool>>) -> Option<bool> {
    let mut unknown = false;
    for v in values {
        match v {
            Some(true) => return Some(true),
            None => unknown = true,
            Some(false) => {}
        }
    }
    if unknown {
        None
    } else {
        Some(false)
    }
}

/// The snapshot's policies prepared for judging users one by one.
pub struct Predictor<'a> {
    snapshot: &'a Snapshot,
    /// The enabled and report-only policies that require MFA, with their strengths.
    pub policies: Vec<JudgedPolicy<'a>>,
    roles_read: bool,
}

impl<'a> Predictor<'a> {
    pub fn new(snapshot: &'a Snapshot) -> Predictor<'a> {
        let policies = snapshot
            .conditional_access
            .iter()
            .flatten()
            .filter(|p| {
                let state = p.state.as_ref();
                (state == STATE_ENABLED || state == STATE_REPORT_ONLY)
                    && p.requires_mfa
                    && !p.mfa_is_optional
            })
            .filter_map(|p| {
                requirements(snapshot, p).map(|requirements| JudgedPolicy {
                    policy: p,
                    requirements,
                    audience: Audience::of(snapshot, p),
                })
            })
            .collect();
        Predictor {
            snapshot,
            policies,
            roles_read: snapshot.coverage.has(DataSet::Roles),
        }
    }

    /// The user's MFA-capable registered methods (Temporary Access Pass aside), each kept when
    /// the methods policy allows it (or may: a group not read; or the legacy policy still
    /// applies); every one of them when no methods policy was read.
    pub fn allowed_methods(&self, u: &User, methods: MethodSet) -> PolicyMethods {
        policy_allowed_methods(self.snapshot, u, methods)
    }

    /// Whether `p` applies to `u`: included (all users, their id, guests, a group, an active
    /// role) and not excluded; `None` when a group was not read or roles were not read.
    /// Applications and narrowing conditions do not change the answer.
    pub fn applies(&self, jp: &JudgedPolicy, u: &User) -> Option<bool> {
        jp.audience.contains(jp.policy, u, self.roles_read)
    }

    /// Whether the judged policies of `state` lock `u` out at their next sign-in: `None` when
    /// none does (or `u`'s methods are unknown); otherwise `u`'s policy-allowed methods and each
    /// such policy with the strengths those methods do not meet. A policy whose application to
    /// `u` cannot be decided (a group or the roles not read) is left out: unknown is no finding.
    /// The one judgement `policy-unsatisfiable`, its report-only twin and what-if share.
    pub fn lockout(&self, u: &User, state: &str) -> Option<Lockout<'_, 'a>> {
        let methods = u.methods?;
        if !has_mfa_method(methods) {
            return None;
        }
        let applying: Vec<&JudgedPolicy<'a>> = self
            .policies
            .iter()
            .filter(|jp| jp.policy.state.as_ref() == state && self.applies(jp, u) == Some(true))
            .collect();
        if applying.is_empty() {
            return None;
        }
        let allowed = self.allowed_methods(u, methods);
        let available = Modes::available(allowed.allowed);
        let policies: Vec<_> = applying
            .into_iter()
            .filter_map(|jp| {
                let unmet: Vec<&Requirement> = jp
                    .requirements
                    .iter()
                    .filter(|r| !r.satisfied_by_modes(available))
                    .collect();
                (!unmet.is_empty()).then_some((jp, unmet))
            })
            .collect();
        (!policies.is_empty()).then_some(Lockout {
            methods: allowed,
            policies,
        })
    }
}

/// Whether a user has an MFA method to be judged on (TAP aside). One with none is sent to
/// registration at sign-in, not to a wall: that is `no-mfa-method`'s finding, not a lockout.
pub fn has_mfa_method(methods: MethodSet) -> bool {
    methods
        .mfa_capable()
        .iter()
        .any(|k| k != MethodKind::TemporaryAccessPass)
}

/// Why a user would be locked out: their policy-allowed methods, and each policy that applies to
/// them with the strengths those methods do not meet.
#[derive(Debug)]
pub struct Lockout<'p, 'a> {
    pub methods: PolicyMethods,
    pub policies: Vec<(&'p JudgedPolicy<'a>, Vec<&'p Requirement>)>,
}

/// [`Predictor::allowed_methods`] without a predictor.
pub fn policy_allowed_methods(s: &Snapshot, u: &User, methods: MethodSet) -> PolicyMethods {
    let mut out = PolicyMethods::default();
    let candidates = methods
        .mfa_capable()
        .iter()
        .filter(|k| *k != MethodKind::TemporaryAccessPass);
    let Some(policy) = &s.methods_policy else {
        out.allowed = candidates.collect();
        return out;
    };
    let legacy = policy.migration_state.as_ref() != "migrationComplete";
    // What this audit cannot decide (an unread group, a configuration not in the policy read, the
    // legacy policy) the registration report can: isMfaCapable false means no strong method of
    // theirs is allowed, as for method-not-allowed.
    let report_says_none = u.mfa_capable == Some(false);
    for k in candidates {
        match allowed(s, policy, u, k) {
            Allowed::Yes => out.allowed.insert(k),
            Allowed::Unknown(why) if report_says_none => out.not_allowed.push((
                k,
                format!("{why}; the registration report's isMfaCapable is false"),
            )),
            Allowed::No(why) if legacy && report_says_none => out.not_allowed.push((
                k,
                format!("{why}; the registration report's isMfaCapable is false"),
            )),
            Allowed::Unknown(_) => out.allowed.insert(k),
            Allowed::No(_) if legacy => out.allowed.insert(k),
            Allowed::No(why) => out.not_allowed.push((k, why)),
        }
    }
    out
}

/// [`Predictor::applies`] without a predictor.
pub fn policy_applies(s: &Snapshot, p: &CaPolicy, u: &User, roles_read: bool) -> Option<bool> {
    Audience::of(s, p).contains(p, u, roles_read)
}

/// Whom a policy's conditions name, prepared once per audit: user ids parsed, groups' members
/// looked up (`None`: not read), role template ids resolved (`None`: a role this audit does not
/// track, so whether a user holds it is unknown).
#[derive(Clone, Debug)]
struct Audience<'a> {
    all: bool,
    include_ids: Vec<ObjectId>,
    exclude_ids: Vec<ObjectId>,
    include_groups: Vec<Option<&'a [ObjectId]>>,
    exclude_groups: Vec<Option<&'a [ObjectId]>>,
    include_roles: Vec<Option<Role>>,
    exclude_roles: Vec<Option<Role>>,
}

impl<'a> Audience<'a> {
    fn of(s: &'a Snapshot, p: &CaPolicy) -> Audience<'a> {
        let ids = |list: &[Box<str>]| list.iter().filter_map(|x| ObjectId::parse(x)).collect();
        let groups = |list: &[Box<str>]| {
            list.iter()
                .map(|g| {
                    let g = g.to_ascii_lowercase();
                    // A group that no longer exists holds nobody.
                    let gone = s.missing_targets.as_ref().is_some_and(|m| m.contains(&g));
                    if gone {
                        Some(&[][..])
                    } else {
                        s.groups.get(&g).map(Vec::as_slice)
                    }
                })
                .collect()
        };
        let roles = |list: &[Box<str>]| list.iter().map(|r| Role::from_template_id(r)).collect();
        Audience {
            all: p
                .include_users
                .iter()
                .any(|x| x.eq_ignore_ascii_case("All")),
            include_ids: ids(&p.include_users),
            exclude_ids: ids(&p.exclude_users),
            include_groups: groups(&p.include_groups),
            exclude_groups: groups(&p.exclude_groups),
            include_roles: roles(&p.include_roles),
            exclude_roles: roles(&p.exclude_roles),
        }
    }

    /// Whether `p` (whose audience this is) applies to `u`; `None` when it cannot be decided.
    fn contains(&self, p: &CaPolicy, u: &User, roles_read: bool) -> Option<bool> {
        if !p.requires_mfa || p.mfa_is_optional {
            return Some(false);
        }
        let guest = u.user_type == UserType::Guest;
        let groups = |list: &[Option<&[ObjectId]>]| {
            any3(
                list.iter()
                    .map(|m| m.map(|m| m.binary_search(&u.id).is_ok())),
            )
        };
        // Active roles only: an eligible one is not held until activated.
        let roles = |list: &[Option<Role>]| {
            if list.is_empty() {
                Some(false)
            } else if !roles_read {
                None
            } else {
                any3(list.iter().map(|r| r.map(|r| u.roles.contains(r))))
            }
        };
        let included = any3([
            Some(self.all || self.include_ids.contains(&u.id)),
            Some(p.includes_guests && guest),
            groups(&self.include_groups),
            roles(&self.include_roles),
        ]);
        let excluded = any3([
            Some(self.exclude_ids.contains(&u.id)),
            Some(p.excludes_guests && guest),
            groups(&self.exclude_groups),
            roles(&self.exclude_roles),
        ]);
        match (included, excluded) {
            (Some(false), _) | (_, Some(true)) => Some(false),
            (Some(true), Some(false)) => Some(true),
            _ => None,
        }
    }
}

/// How many users one Conditional Access policy would lock out at their next sign-in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyLockouts {
    pub policy_id: String,
    pub policy: String,
    /// `enabled` or `enabledForReportingButNotEnforced`.
    pub state: String,
    /// Judged users it applies to.
    pub applies_to: u64,
    /// Of those, users none of whose policy-allowed methods satisfies its strengths.
    pub locked_out: u64,
    /// Users for whom it cannot be decided (a group or the roles not read).
    pub undecided: u64,
}

/// Per judged policy (enabled or report-only, requiring MFA, its strengths found) that applies
/// to at least one of `users` (with known methods), how many it would lock out. Pure: one pass
/// over the users, nothing held per user.
pub fn predict_lockouts(s: &Snapshot, users: &[&User]) -> Vec<PolicyLockouts> {
    let predictor = Predictor::new(s);
    let mut out: Vec<PolicyLockouts> = predictor
        .policies
        .iter()
        .map(|jp| PolicyLockouts {
            policy_id: jp.policy.id.to_string(),
            policy: jp.policy.display_name.to_string(),
            state: jp.policy.state.to_string(),
            applies_to: 0,
            locked_out: 0,
            undecided: 0,
        })
        .collect();
    for u in users {
        let Some(methods) = u.methods else {
            continue;
        };
        let mut allowed: Option<Modes> = None;
        for (jp, counts) in predictor.policies.iter().zip(out.iter_mut()) {
            match predictor.applies(jp, u) {
                Some(true) => {}
                Some(false) => continue,
                None => {
                    counts.undecided += 1;
                    continue;
                }
            }
            counts.applies_to += 1;
            if !has_mfa_method(methods) {
                continue;
            }
            let available = *allowed.get_or_insert_with(|| {
                Modes::available(predictor.allowed_methods(u, methods).allowed)
            });
            if jp
                .requirements
                .iter()
                .any(|r| !r.satisfied_by_modes(available))
            {
                counts.locked_out += 1;
            }
        }
    }
    out.retain(|c| c.applies_to > 0);
    out
}

#[cfg(test)]
mod tests;
