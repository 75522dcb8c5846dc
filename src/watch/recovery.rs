//! The way back in: for a detection and the user's posture from the last audit, the recovery
//! steps in order, least destructive first, each with its exact Microsoft Graph PowerShell
//! command and Graph call, the user's UPN filled in.
//!
//! The order follows the seed (DESIGN §4, README's remediations): a one-time, short Temporary
//! Access Pass first when the TAP policy lets this user have one; then another recovery family
//! the user still has; then a backup phone; then re-registration (deleting the lost method);
//! turning MFA off only last, flagged destructive with a warning, and only where per-user MFA or
//! a Conditional Access exclusion group applies. Per state:
//! - `mfa-fraud-reported`: someone else has the password. Confirm with the user out of band,
//!   reset the password, revoke sessions, dismiss the risk; a TAP only after identity is verified
//!   (never first).
//! - `mfa-prompt-bombing`: the user has their phone; they must not approve. Reset the password,
//!   revoke sessions, show app name and location in Authenticator prompts (number matching is
//!   always on for push since 2023). No TAP: they are not locked out.
//! - `registration-blocked`: a TAP lets them register (53004: after their risk is remediated).
//!
//! Commands: `New-MgUserAuthenticationTemporaryAccessPassMethod` (`-IsUsableOnce` is a switch:
//! `-IsUsableOnce:$true`; POST `/users/{id}/authentication/temporaryAccessPassMethods`),
//! `Revoke-MgUserSignInSession` (POST `/users/{id}/revokeSignInSessions`),
//! `New-MgUserAuthenticationPhoneMethod` (POST `/users/{id}/authentication/phoneMethods`),
//! `Remove-MgUserAuthentication…Method` (DELETE `/users/{id}/authentication/{kind}Methods/{method id}`:
//! Graph has no single "require re-register MFA" call; the portal's button deletes methods),
//! `Invoke-MgDismissRiskyUser` (POST `/identityProtection/riskyUsers/dismiss`),
//! `Update-MgBetaUserAuthenticationRequirement` (beta PATCH
//! `/users/{id}/authentication/requirements`, per-user MFA).

use serde::{Serialize, Serializer};

use super::{Detection, LockoutState};
use crate::snapshot::RecoveryFamily;
use crate::state::StoredUser;

/// Whether the tenant's TAP policy lets this user have a pass.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TapReadiness {
    /// The TAP method is enabled in the authentication methods policy.
    pub enabled: bool,
    /// The user is in the TAP policy's include targets (and not excluded); `None`: not known
    /// (group membership not read).
    pub user_in_targets: Option<bool>,
    /// The policy's `maximumLifetimeInMinutes`.
    pub max_lifetime_minutes: u32,
    /// The policy's `isUsableOnce`: every pass is one-time.
    pub usable_once_only: bool,
}

impl TapReadiness {
    /// A TAP can be issued to the user (unknown targets count as yes, with a warning).
    pub fn usable(&self) -> bool {
        self.enabled && self.user_in_targets != Some(false)
    }
}

/// An enabled admin who can reset the user's MFA and issue a TAP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecoveryAdmin {
    pub upn: String,
    pub display_name: String,
}

/// What the plan is made from, besides the detection.
#[derive(Clone, Debug, Default)]
pub struct Posture<'a> {
    /// The user as the last audit stored them (`None`: not in the store).
    pub user: Option<&'a StoredUser>,
    pub tap: Option<TapReadiness>,
    pub admins: Vec<RecoveryAdmin>,
    /// A group excluded from the Conditional Access policies requiring MFA, for the last resort.
    pub mfa_exclusion_group: Option<String>,
}

/// One recovery step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    pub title: String,
    /// The Microsoft Graph PowerShell command (or what to do, when no command does it).
    pub command: String,
    /// The Graph call the command makes.
    pub graph: Option<String>,
    /// Removes something the user relies on, or weakens their protection.
    pub destructive: bool,
    pub warning: Option<String>,
}

/// The TAP part of the plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TapStatus {
    pub usable: bool,
    /// Why (not): "TAP is disabled in the authentication methods policy", …
    pub reason: String,
}

/// The way back in for one detection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Recovery {
    /// The user's MFA-capable recovery families at the last audit (empty: none or unknown).
    #[serde(serialize_with = "families_as_str")]
    pub families: Vec<RecoveryFamily>,
    /// Whether the last audit knew the user's methods.
    pub families_known: bool,
    pub tap: TapStatus,
    /// Admins who can help (never the user themself).
    pub admins: Vec<RecoveryAdmin>,
    /// Least destructive first; destructive steps last, each with a warning.
    pub steps: Vec<Step>,
    /// What the helpdesk should know (no admin left, the user is an admin, …).
    pub notes: Vec<String>,
}

fn families_as_str<S: Serializer>(f: &[RecoveryFamily], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(f.iter().map(|f| f.as_str()))
}

const FAMILIES: [RecoveryFamily; 11] = [
    RecoveryFamily::MobileApp,
    RecoveryFamily::MobileNumber,
    RecoveryFamily::AlternateNumber,
    RecoveryFamily::OfficePhone,
    RecoveryFamily::SecurityKey,
    RecoveryFamily::Computer,
    RecoveryFamily::HardwareToken,
    RecoveryFamily::Certificate,
    RecoveryFamily::SyncedPasskey,
    RecoveryFamily::External,
    RecoveryFamily::NotMfa,
];

fn family(name: &str) -> Option<RecoveryFamily> {
    FAMILIES.into_iter().find(|f| f.as_str() == name)
}

/// PowerShell single-quoted string.
fn ps(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

const GRAPH: &str = "https://graph.microsoft.com";

fn step(title: String, command: String, graph: Option<String>) -> Step {
    Step {
        title,
        command,
        graph,
        destructive: false,
        warning: None,
    }
}

/// The plan for one detection.
pub fn plan(d: &Detection, posture: &Posture) -> Recovery {
    let upn = d.upn.as_ref();
    // Graph calls name the user by object id: a guest's UPN holds a `#` (a URL fragment unless
    // encoded), and a UPN with an apostrophe would end an OData string. The commands name the
    // user by UPN, which PowerShell quotes and the SDK encodes.
    let id = d.user;
    let q = ps(upn);
    let mut families: Vec<RecoveryFamily> = posture
        .user
        .and_then(|u| u.mfa_families.as_ref())
        .map(|f| f.iter().filter_map(|n| family(n)).collect())
        .unwrap_or_default();
    families.sort();
    families.dedup();
    let families_known = posture.user.is_some_and(|u| u.mfa_families.is_some());
    let mut notes = Vec::new();

    let (tap_usable, tap_reason) = match &posture.tap {
        None => (
            false,
            "the TAP policy is not known (no audit yet)".to_string(),
        ),
        Some(t) if !t.enabled => (
            false,
            "TAP is disabled in the authentication methods policy".to_string(),
        ),
        Some(t) if t.user_in_targets == Some(false) => {
            (false, format!("{upn} is outside the TAP policy's targets"))
        }
        Some(t) if t.user_in_targets.is_none() => (
            true,
            "TAP is enabled; whether the user is in its targets is not known".to_string(),
        ),
        Some(_) => (true, "TAP is enabled for the user".to_string()),
    };
    let lifetime = posture
        .tap
        .as_ref()
        .map(|t| t.max_lifetime_minutes.clamp(10, 60))
        .unwrap_or(60);
    let tap_step = |title: String, warning: String| {
        Step {
        title,
        command: format!(
            "New-MgUserAuthenticationTemporaryAccessPassMethod -UserId {q} -IsUsableOnce:$true -LifetimeInMinutes {lifetime}"
        ),
        graph: Some(format!(
            "POST {GRAPH}/v1.0/users/{id}/authentication/temporaryAccessPassMethods {{\"isUsableOnce\": true, \"lifetimeInMinutes\": {lifetime}}}"
        )),
        destructive: false,
        warning: Some(warning),
    }
    };
    let verify = "Verify the caller is the user out of band (a known phone number, their manager) before giving them the pass.";
    let other_family = (families.len() >= 2).then(|| {
        let names: Vec<&str> = families.iter().map(|f| f.as_str()).collect();
        step(
            format!(
                "Ask {upn} to use another method they still have ({})",
                names.join(", ")
            ),
            "At the MFA prompt choose 'Sign in another way'; then replace the lost method at https://mysignins.microsoft.com/security-info".to_string(),
            None,
        )
    });
    let has_mobile = families.contains(&RecoveryFamily::MobileNumber);
    let phone_type = if has_mobile {
        "alternateMobile"
    } else {
        "mobile"
    };
    let backup_phone = Step {
        warning: Some("Only a number confirmed with the user out of band: an attacker asking the helpdesk for a new phone is the classic takeover.".into()),
        ..step(
            format!("Add a backup phone ({phone_type}) for {upn}"),
            format!("New-MgUserAuthenticationPhoneMethod -UserId {q} -PhoneType {phone_type} -PhoneNumber '+<country code> <number>'"),
            Some(format!("POST {GRAPH}/v1.0/users/{id}/authentication/phoneMethods {{\"phoneNumber\": \"+<country code> <number>\", \"phoneType\": \"{phone_type}\"}}")),
        )
    };
    let sync = posture.user.is_some_and(|u| u.on_premises_sync);
    let reset_password = Step {
        warning: sync.then(|| format!("{upn} is synced from on-premises: reset the password in Active Directory (or rely on password writeback).")),
        ..step(
            format!("Reset {upn}'s password (the attacker has it)"),
            format!("Update-MgUser -UserId {q} -PasswordProfile @{{ForceChangePasswordNextSignIn = $true; Password = '<new random password>'}}"),
            Some(format!("PATCH {GRAPH}/v1.0/users/{id} {{\"passwordProfile\": {{\"forceChangePasswordNextSignIn\": true, \"password\": \"<new random password>\"}}}}")),
        )
    };
    let revoke = step(
        format!("Revoke {upn}'s sign-in sessions (refresh tokens, session cookies)"),
        format!("Revoke-MgUserSignInSession -UserId {q}"),
        Some(format!("POST {GRAPH}/v1.0/users/{id}/revokeSignInSessions")),
    );
    let user_id = posture
        .user
        .map(|u| u.id.clone())
        .unwrap_or_else(|| d.user.to_string());
    let dismiss_risk = Step {
        warning: Some("Only once the user confirmed the sign-ins were not theirs and the password is reset.".into()),
        ..step(
            format!("Dismiss {upn}'s user risk (a fraud report raises it and may block them)"),
            format!("Invoke-MgDismissRiskyUser -UserIds '{user_id}'"),
            Some(format!("POST {GRAPH}/v1.0/identityProtection/riskyUsers/dismiss {{\"userIds\": [\"{user_id}\"]}}")),
        )
    };
    let delete_method = Step {
        destructive: true,
        warning: Some(format!("Deletes a method {upn} registered: they must register a new one at their next sign-in (the portal's 'Require re-register MFA'). Only when a TAP, another method and a backup phone cannot work.")),
        ..step(
            format!("Require re-registration: delete {upn}'s lost method"),
            format!("Get-MgUserAuthenticationMethod -UserId {q}; then the lost one, e.g. Remove-MgUserAuthenticationMicrosoftAuthenticatorMethod -UserId {q} -MicrosoftAuthenticatorAuthenticationMethodId '<id>' or Remove-MgUserAuthenticationPhoneMethod -UserId {q} -PhoneAuthenticationMethodId '<id>'"),
            Some(format!("GET {GRAPH}/v1.0/users/{id}/authentication/methods; DELETE {GRAPH}/v1.0/users/{id}/authentication/microsoftAuthenticatorMethods/<id> (or phoneMethods/<id>)")),
        )
    };
    let per_user = posture
        .user
        .and_then(|u| u.per_user_mfa)
        .is_some_and(|s| s == "enabled" || s == "enforced");
    let disable_mfa = if per_user {
        Some(Step {
            destructive: true,
            warning: Some(format!("LAST RESORT: turns MFA off for {upn}; anyone with the password gets in. Turn it back on (-PerUserMfaState enforced) as soon as they registered.")),
            ..step(
                format!("Disable per-user MFA for {upn} (last resort)"),
                format!("Update-MgBetaUserAuthenticationRequirement -UserId {q} -PerUserMfaState disabled"),
                Some(format!("PATCH {GRAPH}/beta/users/{id}/authentication/requirements {{\"perUserMfaState\": \"disabled\"}}")),
            )
        })
    } else {
        posture.mfa_exclusion_group.as_ref().map(|g| Step {
            destructive: true,
            warning: Some(format!("LAST RESORT: exempts {upn} from the Conditional Access policies requiring MFA; anyone with the password gets in. Remove them from the group as soon as they registered.")),
            ..step(
                format!("Exclude {upn} from MFA policies through the exclusion group (last resort)"),
                format!("New-MgGroupMember -GroupId {} -DirectoryObjectId '{user_id}'", ps(g)),
                Some(format!("POST {GRAPH}/v1.0/groups/{g}/members/$ref {{\"@odata.id\": \"{GRAPH}/v1.0/directoryObjects/{user_id}\"}}")),
            )
        })
    };

    let mut steps: Vec<Step> = Vec::new();
    match d.state {
        LockoutState::LockedOut => {
            if tap_usable {
                steps.push(tap_step(
                    format!("Issue {upn} a one-time Temporary Access Pass ({lifetime} min)"),
                    verify.to_string(),
                ));
            }
            steps.extend(other_family);
            steps.push(backup_phone);
            steps.push(delete_method);
            steps.extend(disable_mfa);
        }
        LockoutState::MfaFraudReported => {
            steps.push(step(
                format!("Confirm with {upn} out of band whether they started these sign-ins"),
                format!("Get-MgAuditLogSignIn -Filter \"userPrincipalName eq {q}\" -Top 20"),
                Some(format!(
                    "GET {GRAPH}/v1.0/auditLogs/signIns?$filter=userId eq '{id}'&$top=20"
                )),
            ));
            steps.push(reset_password);
            steps.push(revoke);
            steps.push(dismiss_risk);
            if tap_usable {
                steps.push(tap_step(
                    format!("Only after identity is verified: issue {upn} a one-time TAP ({lifetime} min) to re-register"),
                    "Never before the user's identity is verified out of band: a fraud report means someone else may have the password and be the one calling.".to_string(),
                ));
            }
            steps.push(delete_method);
            steps.extend(disable_mfa);
        }
        LockoutState::MfaPromptBombing => {
            steps.push(Step {
                warning: Some("Do not ask the user to approve a prompt to test it.".into()),
                ..step(
                    format!("Tell {upn} to deny every prompt they did not start, and look at where the attempts come from"),
                    format!("Get-MgAuditLogSignIn -Filter \"userPrincipalName eq {q}\" -Top 20"),
                    Some(format!("GET {GRAPH}/v1.0/auditLogs/signIns?$filter=userId eq '{id}'&$top=20")),
                )
            });
            steps.push(reset_password);
            steps.push(revoke);
            steps.push(Step {
                warning: Some("Tenant-wide: every Authenticator prompt shows the app and the location (number matching is already on for all push notifications).".into()),
                ..step(
                    "Show the application and location in Authenticator prompts".to_string(),
                    "Update-MgPolicyAuthenticationMethodPolicyAuthenticationMethodConfiguration -AuthenticationMethodConfigurationId MicrosoftAuthenticator -BodyParameter @{'@odata.type' = '#microsoft.graph.microsoftAuthenticatorAuthenticationMethodConfiguration'; featureSettings = @{displayAppInformationRequiredState = @{state = 'enabled'}; displayLocationInformationRequiredState = @{state = 'enabled'}}}".to_string(),
                    Some(format!("PATCH {GRAPH}/v1.0/policies/authenticationMethodsPolicy/authenticationMethodConfigurations/MicrosoftAuthenticator {{\"@odata.type\": \"#microsoft.graph.microsoftAuthenticatorAuthenticationMethodConfiguration\", \"featureSettings\": {{\"displayAppInformationRequiredState\": {{\"state\": \"enabled\"}}, \"displayLocationInformationRequiredState\": {{\"state\": \"enabled\"}}}}}}")),
                )
            });
        }
        LockoutState::RegistrationBlocked => {
            let risk = d.codes.iter().any(|(c, _)| *c == 53004);
            if risk {
                steps.push(step(
                    format!("Registration was blocked for suspicious activity (53004): confirm with {upn} out of band and look at the attempts"),
                    format!("Get-MgAuditLogSignIn -Filter \"userPrincipalName eq {q}\" -Top 20"),
                    Some(format!("GET {GRAPH}/v1.0/auditLogs/signIns?$filter=userId eq '{id}'&$top=20")),
                ));
                steps.push(dismiss_risk);
            }
            if tap_usable {
                steps.push(tap_step(
                    format!("Issue {upn} a one-time TAP ({lifetime} min) to register at https://aka.ms/mysecurityinfo"),
                    verify.to_string(),
                ));
            }
            steps.push(backup_phone);
            steps.extend(disable_mfa);
        }
    }
    // Destructive steps last, whatever the state.
    steps.sort_by_key(|s| s.destructive);

    for (code, _) in &d.codes {
        match code {
            50053 => notes.push("50053 (smart lockout): sign-in is locked for the lockout duration after bad passwords, or the attempts come from a malicious IP; it ends by itself, a TAP signs in without the password, and someone else guessing the password needs a password reset.".into()),
            50088 => notes.push("50088: the user's SMS and voice calls are throttled (telecom limit); use another method or a TAP, not another text message.".into()),
            _ => {}
        }
    }
    let admins: Vec<RecoveryAdmin> = posture
        .admins
        .iter()
        .filter(|a| !a.upn.eq_ignore_ascii_case(upn))
        .cloned()
        .collect();
    if admins.is_empty() {
        notes.push(
            "No other enabled admin can reset MFA or issue a TAP: use a break-glass account."
                .into(),
        );
    }
    if let Some(u) = posture.user {
        if u.is_admin {
            notes.push(format!(
                "{upn} is an admin ({}): a second admin must do the recovery, and verify identity strictly.",
                u.roles.join(", ")
            ));
        }
        if !u.account_enabled {
            notes.push(format!(
                "{upn}'s account is disabled: no sign-in works until it is enabled."
            ));
        }
        if u.tap.as_ref().is_some_and(|t| t.usable) && tap_usable {
            notes.push(format!(
                "{upn} already holds a usable TAP; a new one replaces it."
            ));
        }
    } else {
        notes.push(format!(
            "{upn} is not in the last audit: their methods are not known."
        ));
    }
    if !families_known && posture.user.is_some() {
        notes.push("The last audit did not know the user's methods.".into());
    }
    Recovery {
        families,
        families_known,
        tap: TapStatus {
            usable: tap_usable,
            reason: tap_reason,
        },
        admins,
        steps,
        notes,
    }
}

/// The plan for a user no open detection concerns (the helpdesk's user page, before or without
/// the watcher): planned as for a would-be lockout (`locked-out`, no error code yet), from the
/// stored user. `None` when the stored id is not an object id.
pub fn plan_for_user(user: &StoredUser, posture: &Posture) -> Option<Recovery> {
    let id = crate::snapshot::ObjectId::parse(&user.id)?;
    let now = chrono::Utc::now();
    let would_be = Detection {
        user: id,
        upn: user.user_principal_name.as_str().into(),
        state: LockoutState::LockedOut,
        codes: Vec::new(),
        first_seen: now,
        last_seen: now,
        detail: String::new(),
    };
    let posture = Posture {
        user: Some(posture.user.unwrap_or(user)),
        ..posture.clone()
    };
    Some(plan(&would_be, &posture))
}

#[cfg(test)]
#[path = "recovery_tests.rs"]
mod tests;
