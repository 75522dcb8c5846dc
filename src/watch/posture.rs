//! The watcher's joins with the posture of the last audit (issue 12): pure functions over what
//! the store keeps (`StoredUser`, the published `PostureRecord`, the audit's `UserChange`s).
//!
//! - [`tap_readiness`]: the TAP policy as the last complete audit published it. The store keeps
//!   no TAP policy targets, so `user_in_targets` is `None` (the plan says so).
//! - [`recovery_admins`]: enabled users holding, active, a role that can reset MFA and issue a TAP
//!   ([`MFA_RESET_ROLES`]).
//! - [`note_security_event`]: a security-info change joined with the user's stored methods and
//!   roles: a deletion leaving no backup, any registration or change on an admin (active or
//!   eligible) or a break-glass account, a TAP issued to one, are notable; the rest is kept.
//! - [`drift_events`]: users who lost a recovery family between two audits, as security events
//!   (so this works without the directory audit log).

use chrono::{DateTime, Utc};

use super::recovery::{Posture, Recovery, RecoveryAdmin, TapReadiness};
use super::{SecurityInfoActivity, SecurityInfoEvent};
use crate::evaluate::Severity;
use crate::metrics::PostureRecord;
use crate::snapshot::{MethodKind, ObjectId, Role, METHOD_TABLE};
use crate::state::{NotedSecurityEvent, StoredUser, UserChange};

/// The roles whose active holders can reset a user's MFA methods and issue a TAP.
pub const MFA_RESET_ROLES: [Role; 3] = [
    Role::GlobalAdministrator,
    Role::PrivilegedAuthenticationAdministrator,
    Role::AuthenticationAdministrator,
];

/// The TAP policy of the last published posture (`None`: no audit read it).
pub fn tap_readiness(record: &PostureRecord) -> Option<TapReadiness> {
    let enabled = record.tap_policy_enabled?;
    Some(TapReadiness {
        enabled,
        // The store keeps the policy, not its include/exclude targets.
        user_in_targets: None,
        max_lifetime_minutes: record
            .tap_policy_lifetime_minutes
            .get("maximum")
            .copied()
            .unwrap_or(480),
        usable_once_only: record.tap_policy_usable_once.unwrap_or(false),
    })
}

/// The enabled, not deleted users among `users` holding, active, one of [`MFA_RESET_ROLES`].
pub fn recovery_admins(users: &[StoredUser]) -> Vec<RecoveryAdmin> {
    let names: Vec<&str> = MFA_RESET_ROLES.iter().map(|r| r.display_name()).collect();
    let mut admins: Vec<RecoveryAdmin> = users
        .iter()
        .filter(|u| u.account_enabled && u.deleted_at.is_none())
        .filter(|u| u.roles.iter().any(|r| names.contains(r)))
        .map(|u| RecoveryAdmin {
            upn: u.user_principal_name.clone(),
            display_name: u.display_name.clone(),
        })
        .collect();
    admins.sort_by(|a, b| a.upn.cmp(&b.upn));
    admins.dedup_by(|a, b| a.upn.eq_ignore_ascii_case(&b.upn));
    admins
}

/// The posture a detection's plan is made from.
pub fn posture<'a>(
    user: Option<&'a StoredUser>,
    tap: Option<&TapReadiness>,
    admins: &[RecoveryAdmin],
    mfa_exclusion_group: Option<&str>,
) -> Posture<'a> {
    Posture {
        user,
        tap: tap.cloned(),
        admins: admins.to_vec(),
        mfa_exclusion_group: mfa_exclusion_group.map(str::to_string),
    }
}

/// A detection's remediation text: the plan's first step (title and exact command), with the
/// warning of a destructive one; empty when the plan has no step.
pub fn remediation(r: &Recovery) -> String {
    let Some(s) = r.steps.first() else {
        return String::new();
    };
    let mut text = format!("{}: {}", s.title, s.command);
    if s.destructive {
        if let Some(w) = &s.warning {
            text.push_str(&format!(" (WARNING: {w})"));
        }
    }
    text
}

/// A method kind in the words a user sees at https://mysignins.microsoft.com/security-info.
pub fn method_words(k: MethodKind) -> &'static str {
    use MethodKind as K;
    match k {
        K::AuthenticatorPush | K::AuthenticatorPasswordless => "Microsoft Authenticator",
        K::SoftwareOtp => "Authenticator app (code)",
        K::PasskeyAuthenticator => "Passkey in Microsoft Authenticator",
        K::MobilePhone => "Mobile phone",
        K::AlternateMobilePhone => "Alternate phone",
        K::OfficePhone => "Office phone",
        K::Fido2SecurityKey => "Security key",
        K::PasskeyDeviceBound => "Passkey",
        K::WindowsHello => "Windows Hello for Business",
        K::MacOsSecureEnclaveKey => "macOS secure enclave key",
        K::PlatformCredential => "Platform credential",
        K::HardwareOtp => "Hardware token",
        K::Certificate => "Certificate",
        K::PasskeySynced => "Synced passkey",
        K::ExternalMfa => "External MFA",
        K::Email => "Email",
        K::SecurityQuestion => "Security questions",
        K::Password => "Password",
        K::TemporaryAccessPass => "Temporary Access Pass",
        K::QrCodePin => "QR code",
        K::CertificateSingleFactor => "Certificate (single factor)",
    }
}

/// A recovery family (`RecoveryFamily::as_str`) in a user's words.
pub fn family_words(family: &str) -> &str {
    match family {
        "mobile-app" => "Microsoft Authenticator",
        "mobile-number" => "Mobile phone",
        "alternate-number" => "Alternate phone",
        "office-phone" => "Office phone",
        "security-key" => "Security key",
        "computer" => "Windows Hello / platform key",
        "hardware-token" => "Hardware token",
        "certificate" => "Certificate",
        "synced-passkey" => "Synced passkey",
        "external" => "External MFA",
        other => other,
    }
}

/// The method kinds an audit entry's method words may mean ("Mobile Phone SMS", "Phone method",
/// "Microsoft Authenticator", "temporary access pass", …). A phone the entry does not qualify
/// ("Phone method") is every phone kind: Graph's entry does not say which number went.
pub fn kinds_named(words: &str) -> Vec<MethodKind> {
    use MethodKind as K;
    let w = words.to_ascii_lowercase();
    let has = |s: &str| w.contains(s);
    if has("temporary access pass") {
        vec![K::TemporaryAccessPass]
    } else if has("passkey") && has("authenticator") {
        vec![K::PasskeyAuthenticator]
    } else if has("authenticator") || has("phone app") || has("phoneapp") {
        vec![K::AuthenticatorPush, K::AuthenticatorPasswordless]
    } else if has("software oath") || has("app code") {
        vec![K::SoftwareOtp]
    } else if has("hardware oath") || has("hardware token") {
        vec![K::HardwareOtp]
    } else if has("alternate") {
        vec![K::AlternateMobilePhone]
    } else if has("office") {
        vec![K::OfficePhone]
    } else if has("mobile") || has("sms") {
        vec![K::MobilePhone]
    } else if has("phone") {
        vec![K::MobilePhone, K::AlternateMobilePhone, K::OfficePhone]
    } else if has("fido") || has("security key") {
        vec![K::Fido2SecurityKey]
    } else if has("passkey") {
        vec![K::PasskeyDeviceBound, K::PasskeySynced]
    } else if has("windows hello") {
        vec![K::WindowsHello]
    } else if has("email") {
        vec![K::Email]
    } else if has("security question") {
        vec![K::SecurityQuestion]
    } else if has("password") {
        vec![K::Password]
    } else {
        Vec::new()
    }
}

fn kind_of_name(name: &str) -> Option<MethodKind> {
    METHOD_TABLE.iter().find(|m| m.name == name).map(|m| m.kind)
}

/// Whether `upn` is one of the break-glass accounts.
fn is_break_glass(upn: &str, break_glass: &[String]) -> bool {
    break_glass.iter().any(|b| b.eq_ignore_ascii_case(upn))
}

/// A security-info change joined with the user's stored posture (module doc).
pub fn note_security_event(
    event: SecurityInfoEvent,
    user: Option<&StoredUser>,
    break_glass: &[String],
) -> NotedSecurityEvent {
    let upn: &str = if event.upn.is_empty() {
        user.map_or("", |u| u.user_principal_name.as_str())
    } else {
        &event.upn
    };
    let kinds = event.method.as_deref().map(kinds_named).unwrap_or_default();
    let named = match (event.method.as_deref(), kinds.first()) {
        (Some(words), Some(k)) if kinds.len() == 1 => format!("{} ({words})", method_words(*k)),
        (Some(words), _) => words.to_string(),
        (None, _) => "a method".to_string(),
    };
    let who = if event.by_admin && !event.initiated_by.is_empty() {
        format!("{} (admin) for {upn}", event.initiated_by)
    } else if event.by_admin {
        format!("an admin for {upn}")
    } else {
        upn.to_string()
    };
    let roles: Vec<&str> = user
        .map(|u| u.roles.iter().chain(&u.eligible_roles).copied().collect())
        .unwrap_or_default();
    let break_glass = is_break_glass(upn, break_glass);
    let privileged = if break_glass {
        Some("a break-glass account".to_string())
    } else if !roles.is_empty() {
        Some(format!("an admin ({})", roles.join(", ")))
    } else {
        None
    };
    let (detail, notable) = match event.activity {
        SecurityInfoActivity::Deleted => deletion(&who, upn, &named, &kinds, user),
        SecurityInfoActivity::Registered
        | SecurityInfoActivity::Updated
        | SecurityInfoActivity::DefaultChanged => {
            let verb = match event.activity {
                SecurityInfoActivity::Registered => "registered",
                SecurityInfoActivity::Updated => "updated",
                _ => "changed the default method to",
            };
            match &privileged {
                Some(p) => (
                    format!("{who} {verb} {named}; {upn} is {p}: confirm it was them"),
                    Some(Severity::High),
                ),
                None => (format!("{who} {verb} {named}"), None),
            }
        }
        SecurityInfoActivity::TapIssued => match &privileged {
            Some(p) => (
                format!(
                    "{who}: a Temporary Access Pass was issued; {upn} is {p}: confirm the request"
                ),
                Some(Severity::High),
            ),
            None => (format!("{who}: a Temporary Access Pass was issued"), None),
        },
        SecurityInfoActivity::Other => (format!("{who}: {}", event.activity_name), None),
    };
    NotedSecurityEvent {
        event,
        detail,
        notable,
    }
}

fn deletion(
    who: &str,
    upn: &str,
    named: &str,
    kinds: &[MethodKind],
    user: Option<&StoredUser>,
) -> (String, Option<Severity>) {
    let said = format!("{who} deleted {named}");
    let Some(methods) = user.and_then(|u| u.methods.as_ref()) else {
        return (
            format!("{said}; {upn}'s other methods are not known (no audit listed them)"),
            None,
        );
    };
    let deleted_mfa = kinds.iter().any(|k| k.is_mfa_capable());
    let left: Vec<MethodKind> = methods
        .iter()
        .filter(|m| m.mfa_capable)
        .filter_map(|m| kind_of_name(m.name))
        .filter(|k| !kinds.contains(k))
        .collect();
    let mut families: Vec<&str> = left.iter().map(|k| k.family().as_str()).collect();
    families.sort();
    families.dedup();
    let mut words: Vec<&str> = left.iter().map(|k| method_words(*k)).collect();
    words.dedup();
    if !deleted_mfa {
        return (said, None);
    }
    match families.len() {
        0 => (
            format!("{said}; {upn} now has no MFA method at all: they cannot sign in where MFA is required"),
            Some(Severity::High),
        ),
        1 => (
            format!(
                "{said}; {upn} now has no backup method: only {}",
                words.join(", ")
            ),
            Some(Severity::Medium),
        ),
        _ => (
            format!("{said}; {upn} still has {}", words.join(", ")),
            None,
        ),
    }
}

/// The users of one audit's changes who lost a recovery family since the previous audit, as
/// security events (`drift:<audit_id>:<user_id>`, activity `Other`): notable when they are left
/// with fewer than two families. `upn_of` finds a user's UPN (the store's users).
pub fn drift_events(
    audit_id: i64,
    at: DateTime<Utc>,
    changes: &[UserChange],
    upn_of: &dyn Fn(&str) -> Option<String>,
) -> Vec<NotedSecurityEvent> {
    changes
        .iter()
        .filter(|c| !c.families_lost.is_empty())
        .filter_map(|c| {
            let id = ObjectId::parse(&c.user_id)?;
            let upn = upn_of(&c.user_id).unwrap_or_else(|| c.user_id.clone());
            let lost: Vec<&str> = c.families_lost.iter().map(|f| family_words(f)).collect();
            let lost = lost.join(", ");
            let (left, notable) = match c.mfa_families_after {
                Some(0) => ("now no MFA method at all".to_string(), Some(Severity::High)),
                Some(1) => ("now no backup method".to_string(), Some(Severity::Medium)),
                Some(n) => (format!("{n} recovery families left"), None),
                None => ("methods now unknown".to_string(), None),
            };
            Some(NotedSecurityEvent {
                event: SecurityInfoEvent {
                    id: format!("drift:{audit_id}:{}", c.user_id).into(),
                    created: at,
                    activity: SecurityInfoActivity::Other,
                    activity_name: "Recovery family lost between audits".into(),
                    by_admin: false,
                    initiated_by: "".into(),
                    user: id,
                    upn: upn.as_str().into(),
                    method: Some(lost.as_str().into()),
                },
                detail: format!("{upn} lost {lost} since the previous audit; {left}"),
                notable,
            })
        })
        .collect()
}

#[cfg(test)]
#[path = "posture_tests.rs"]
mod tests;
