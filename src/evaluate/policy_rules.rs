//! The checks of the rules that predict lockouts from policy (issue 11). Their rows are in
//! `rules.rs` with the rest of the catalogue; the prediction itself is `predict.rs`.

use std::collections::BTreeMap;

use super::predict::{
    allowed, targets, Allowed, Lockout, Predictor, Requirement, STATE_ENABLED, STATE_REPORT_ONLY,
};
use super::rules::{known, names};
use super::{Ctx, Hit};
use crate::snapshot::{
    policy_references, FeatureState, Fido2Policy, KeyRestrictions, MethodConfig, MethodKind,
    MethodSet, Role, TargetKind, User, AUTHENTICATOR_PASSKEY_AAGUIDS,
};

fn strength(r: &Requirement) -> String {
    format!("'{}' [{}]", r.name, r.combinations.join(" | "))
}

pub(super) fn policy_unsatisfiable(ctx: &Ctx) -> Vec<Hit> {
    unsatisfiable(ctx, STATE_ENABLED)
}

pub(super) fn policy_unsatisfiable_report_only(ctx: &Ctx) -> Vec<Hit> {
    unsatisfiable(ctx, STATE_REPORT_ONLY)
}

/// One finding per user that a policy of `state` applies to and that none of their
/// policy-allowed methods satisfies: naming every such policy, its strengths, the user's methods
/// and what would satisfy it.
fn unsatisfiable(ctx: &Ctx, state: &str) -> Vec<Hit> {
    let predictor = Predictor::new(ctx.snapshot);
    if !predictor
        .policies
        .iter()
        .any(|p| p.policy.state.as_ref() == state)
    {
        return vec![];
    }
    let mut hits = Vec::new();
    for (u, _) in known(ctx) {
        let Some(Lockout {
            methods,
            policies: unmet,
        }) = predictor.lockout(u, state)
        else {
            continue;
        };
        let policies: Vec<String> = unmet
            .iter()
            .map(|(jp, reqs)| {
                let r: Vec<String> = reqs.iter().map(|r| strength(r)).collect();
                format!("{} requires {}", jp.describe(), r.join(" and "))
            })
            .collect();
        // What would satisfy each distinct unmet strength: a method to register, or one the
        // user has that policy would have to allow.
        let mut fixes: BTreeMap<&str, String> = BTreeMap::new();
        for r in unmet.iter().flat_map(|(_, reqs)| reqs.iter()) {
            fixes.entry(r.name.as_str()).or_insert_with(|| {
                let met_by = r.met_by();
                let mut fix = format!("'{}' is met by any of: {}", r.name, names(met_by));
                let blocked: MethodSet = methods
                    .not_allowed
                    .iter()
                    .map(|(k, _)| *k)
                    .filter(|k| met_by.contains(*k))
                    .collect();
                if !blocked.is_empty() {
                    fix.push_str(&format!(
                        " (the user has {}: allowing it would do)",
                        names(blocked)
                    ));
                }
                fix
            });
        }
        let fixes: Vec<String> = fixes.into_values().collect();
        hits.push(Hit::user(
            u,
            format!(
                "{}; {}; would satisfy: {}",
                policies.join("; "),
                methods.describe(),
                fixes.join("; ")
            ),
        ));
    }
    hits
}

pub(super) fn policy_target_missing(ctx: &Ctx) -> Vec<Hit> {
    let Some(missing) = &ctx.snapshot.missing_targets else {
        return vec![];
    };
    let refs = policy_references(ctx.snapshot);
    missing
        .iter()
        .map(|id| {
            let named: Vec<_> = refs
                .iter()
                .filter(|r| r.id.eq_ignore_ascii_case(id))
                .collect();
            let kind = match named.first().map(|r| r.kind) {
                Some(TargetKind::User) => "user",
                Some(TargetKind::Group) => "group",
                None => "object",
            };
            let uses: Vec<String> = named
                .iter()
                .map(|r| {
                    let ca = r.policy.starts_with("Conditional Access");
                    let effect = match (ca, r.exclude) {
                        (true, false) => "no longer applies to its members",
                        (true, true) => "no longer excludes its members",
                        (false, false) => "its members lost the method",
                        (false, true) => "its members are no longer excluded from the method",
                    };
                    let how = if r.exclude { "exclude" } else { "include" };
                    format!("{} ({how}: {effect})", r.policy)
                })
                .collect();
            let detail = if uses.is_empty() {
                format!("{kind} {id} no longer exists")
            } else {
                format!("{kind} {id} no longer exists; named by {}", uses.join("; "))
            };
            Hit::tenant_about(id.clone(), detail)
        })
        .collect()
}

pub(super) fn smart_lockout_weak(ctx: &Ctx) -> Vec<Hit> {
    let Some(l) = ctx.snapshot.lockout else {
        return vec![];
    };
    let p = &ctx.params.smart_lockout_weak;
    let mut weak = Vec::new();
    if l.threshold > p.max_threshold {
        weak.push(format!(
            "the lockout threshold is {} failed sign-ins (more than {})",
            l.threshold, p.max_threshold
        ));
    }
    if l.duration_seconds < p.min_duration_seconds {
        weak.push(format!(
            "the lockout lasts {} s (less than {})",
            l.duration_seconds, p.min_duration_seconds
        ));
    }
    if weak.is_empty() {
        return vec![];
    }
    let source = if l.defaults {
        "no \"Password Rule Settings\" object: Entra's defaults apply"
    } else {
        "\"Password Rule Settings\""
    };
    vec![Hit::tenant(format!(
        "smart lockout: {} ({source})",
        weak.join(", ")
    ))]
}

pub(super) fn sspr_not_ready(ctx: &Ctx) -> Vec<Hit> {
    ctx.users
        .iter()
        .filter_map(|u| u.sspr.map(|s| (*u, s)))
        .filter(|(_, s)| s.enabled && !(s.registered && s.capable))
        .map(|(u, s)| {
            let mut not = Vec::new();
            if !s.registered {
                not.push("registered");
            }
            if !s.capable {
                not.push("capable");
            }
            Hit::user(
                u,
                format!(
                    "self-service password reset is enabled for the user, who is not {} (isSsprRegistered {}, isSsprCapable {})",
                    not.join(" nor "),
                    s.registered,
                    s.capable
                ),
            )
        })
        .collect()
}

pub(super) fn admin_no_recovery_contact(ctx: &Ctx) -> Vec<Hit> {
    const GA: Role = Role::GlobalAdministrator;
    ctx.users
        .iter()
        .filter(|u| u.admin_roles().contains(GA) && u.has_other_mails == Some(false))
        .map(|u| {
            let how = if u.roles.contains(GA) {
                "Global Administrator"
            } else {
                "Global Administrator (eligible)"
            };
            Hit::user(
                u,
                format!("{how} with no alternate email (otherMails is empty): no way to reach them out of band if they lose their methods"),
            )
        })
        .collect()
}

pub(super) fn suspicious_activity_reporting_off(ctx: &Ctx) -> Vec<Hit> {
    let state = ctx
        .snapshot
        .methods_policy
        .as_ref()
        .and_then(|p| p.report_suspicious_activity);
    match state {
        Some(s @ (FeatureState::Disabled | FeatureState::Default)) => vec![Hit::tenant(format!(
            "reportSuspiciousActivitySettings state is {}: users cannot report an MFA prompt they did not start",
            if s == FeatureState::Disabled { "disabled" } else { "default (off)" }
        ))],
        _ => vec![],
    }
}

/// Which passkeys a user holds, as the profiles judge them.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Held {
    Synced,
    DeviceBound,
    /// A device-bound passkey in Microsoft Authenticator (its AAGUIDs).
    Authenticator,
}

impl Held {
    fn of(m: MethodSet) -> Vec<Held> {
        let mut out = Vec::new();
        if m.contains(MethodKind::PasskeySynced) {
            out.push(Held::Synced);
        }
        if m.contains(MethodKind::Fido2SecurityKey)
            || m.contains(MethodKind::PasskeyDeviceBound)
            || m.contains(MethodKind::PasskeyAuthenticator)
        {
            out.push(Held::DeviceBound);
        }
        if m.contains(MethodKind::PasskeyAuthenticator) {
            out.push(Held::Authenticator);
        }
        out
    }
    fn words(self) -> &'static str {
        match self {
            Held::Synced => "synced passkeys",
            Held::DeviceBound => "device-bound passkeys or security keys",
            Held::Authenticator => "passkeys in Microsoft Authenticator",
        }
    }
}

/// A passkey profile, or the deprecated top-level FIDO2 settings when there are none.
struct Profile<'a> {
    /// The finding's key prefix: the profile id, or `fido2`.
    key: String,
    name: String,
    /// `None`: every passkey type.
    types: Option<&'a [Box<str>]>,
    attestation: bool,
    restrictions: Option<&'a KeyRestrictions>,
}

/// Why a profile refuses a kind of passkey: (problem key, words).
fn refuses(p: &Profile, held: Held) -> Option<(&'static str, String)> {
    let has_type = |t: &str| {
        p.types
            .is_none_or(|v| v.is_empty() || v.iter().any(|x| x.eq_ignore_ascii_case(t)))
    };
    match held {
        Held::Synced if p.attestation => Some((
            "attestation",
            "enforces attestation, which synced passkeys cannot give,".into(),
        )),
        Held::Synced if !has_type("synced") => {
            Some(("passkey-types", "allows no synced passkeys".into()))
        }
        Held::DeviceBound if !has_type("deviceBound") => {
            Some(("passkey-types", "allows no device-bound passkeys".into()))
        }
        Held::Authenticator => {
            let r = p.restrictions.filter(|r| r.enforced)?;
            let listed = r.aaguids.iter().any(|a| {
                AUTHENTICATOR_PASSKEY_AAGUIDS
                    .iter()
                    .any(|x| x.eq_ignore_ascii_case(a))
            });
            match (r.allow, listed) {
                (true, false) => Some((
                    "key-restrictions",
                    "allows only listed AAGUIDs and lists none of Microsoft Authenticator's".into(),
                )),
                (false, true) => Some((
                    "key-restrictions",
                    "blocks Microsoft Authenticator's AAGUIDs".into(),
                )),
                _ => None,
            }
        }
        _ => None,
    }
}

fn profiles(f: &Fido2Policy) -> Vec<Profile<'_>> {
    if f.profiles.is_empty() {
        return vec![Profile {
            key: "fido2".into(),
            name: "the FIDO2 configuration".into(),
            types: None,
            attestation: f.attestation_enforced,
            restrictions: f.key_restrictions.as_ref(),
        }];
    }
    f.profiles
        .iter()
        .map(|p| Profile {
            key: p.id.to_string(),
            name: format!("passkey profile '{}'", p.name),
            types: Some(&p.passkey_types),
            attestation: p.attestation_enforced,
            restrictions: p.key_restrictions.as_ref(),
        })
        .collect()
}

/// The profiles (indexes) governing `u`, each with whether it surely does (`false`: through a
/// target group not read, it may).
fn governing(ctx: &Ctx, f: &Fido2Policy, u: &User) -> Vec<(usize, bool)> {
    if f.profiles.is_empty() {
        return vec![(0, true)];
    }
    let index = |id: &str| {
        f.profiles
            .iter()
            .position(|p| p.id.eq_ignore_ascii_case(id))
    };
    let default = f.default_profile.as_deref().and_then(index);
    if f.target_profiles.is_empty() {
        return match default {
            Some(d) => vec![(d, true)],
            None => (0..f.profiles.len()).map(|i| (i, true)).collect(),
        };
    }
    let mut out: Vec<(usize, bool)> = Vec::new();
    for (target, ids) in &f.target_profiles {
        let sure = match targets(ctx.snapshot, target, u) {
            Some(true) => true,
            Some(false) => continue,
            None => false,
        };
        let profiles: Vec<usize> = if ids.is_empty() {
            default.into_iter().collect()
        } else {
            ids.iter().filter_map(|id| index(id)).collect()
        };
        for i in profiles {
            match out.iter_mut().find(|(j, _)| *j == i) {
                Some(e) => e.1 |= sure,
                None => out.push((i, sure)),
            }
        }
    }
    out.sort_unstable();
    out
}

pub(super) fn passkey_policy_blocks(ctx: &Ctx) -> Vec<Hit> {
    let Some(policy) = &ctx.snapshot.methods_policy else {
        return vec![];
    };
    let Some(fido2) = policy
        .methods
        .iter()
        .find(|c| c.id.eq_ignore_ascii_case("Fido2"))
    else {
        return vec![];
    };
    let mut hits = Vec::new();
    hits.extend(fido2_off_for_phishing_resistant_admins(ctx, fido2));
    let Some(f) = &policy.fido2 else {
        return hits;
    };
    let views = profiles(f);
    // (profile index, problem key) → (words, held kind, users affected)
    let mut problems: BTreeMap<(usize, &'static str, Held), (String, u64)> = BTreeMap::new();
    for (u, m) in known(ctx) {
        let held = Held::of(m);
        if held.is_empty()
            || allowed(ctx.snapshot, policy, u, MethodKind::Fido2SecurityKey) != Allowed::Yes
        {
            continue;
        }
        let gov = governing(ctx, f, u);
        for h in held {
            let refusals: Vec<Option<(&'static str, String)>> =
                gov.iter().map(|(i, _)| refuses(&views[*i], h)).collect();
            // Blocked only when every profile that governs or may govern the user refuses it;
            // counted against the profiles that surely govern them.
            if refusals.iter().any(Option::is_none) {
                continue;
            }
            for ((i, sure), r) in gov.iter().zip(refusals) {
                if let (true, Some((key, words))) = (sure, r) {
                    problems.entry((*i, key, h)).or_insert((words, 0)).1 += 1;
                }
            }
        }
    }
    // One finding per (profile, problem): the kinds it refuses named together.
    let mut merged: BTreeMap<(usize, &'static str), (String, Vec<String>, u64)> = BTreeMap::new();
    for ((i, key, h), (words, n)) in problems {
        let e = merged.entry((i, key)).or_insert((words, Vec::new(), 0));
        e.1.push(format!("{n} hold {}", h.words()));
        e.2 += n;
    }
    for ((i, key), (words, held, _)) in merged {
        let v = &views[i];
        hits.push(Hit::tenant_about(
            format!("{}:{key}", v.key),
            format!(
                "{} {words} while users it governs hold them: {} (they cannot sign in with them)",
                v.name,
                held.join(", ")
            ),
        ));
    }
    hits
}

/// (a): FIDO2 disabled or targeting nobody while an enabled policy for admin roles requires a
/// strength only phishing-resistant modes meet.
fn fido2_off_for_phishing_resistant_admins(ctx: &Ctx, fido2: &MethodConfig) -> Option<Hit> {
    let off = if !fido2.enabled {
        "is disabled"
    } else if fido2
        .exclude_targets
        .iter()
        .any(|t| t.eq_ignore_ascii_case("all_users"))
        || fido2.include_targets.iter().all(|t| {
            ctx.snapshot
                .groups
                .get(&t.to_ascii_lowercase())
                .is_some_and(|m| m.is_empty())
        })
    {
        "targets nobody"
    } else {
        return None;
    };
    let predictor = Predictor::new(ctx.snapshot);
    let demanding: Vec<_> = predictor
        .policies
        .iter()
        .filter(|jp| {
            jp.policy.state.as_ref() == STATE_ENABLED && !jp.policy.include_roles.is_empty()
        })
        .filter(|jp| {
            jp.requirements
                .iter()
                .any(Requirement::phishing_resistant_only)
        })
        .collect();
    if demanding.is_empty() {
        return None;
    }
    let affected = ctx
        .users
        .iter()
        .filter(|u| {
            demanding
                .iter()
                .any(|jp| predictor.applies(jp, u) == Some(true))
        })
        .count();
    let named: Vec<String> = demanding.iter().map(|jp| jp.describe()).collect();
    Some(Hit::tenant_about(
        "fido2",
        format!(
            "FIDO2 (passkeys) {off} while {} require{} a phishing-resistant strength of admin roles: {affected} user(s) it applies to can meet it only with Windows Hello for Business or a certificate",
            named.join(", "),
            if named.len() == 1 { "s" } else { "" }
        ),
    ))
}
