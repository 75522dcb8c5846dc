//! Seeing lockouts as they happen (issue 12): the sign-in watcher's model.
//!
//! The watcher reads sign-ins and the directory audit log incrementally (`reader`, in collect's
//! terms: it is the only part that knows Graph's shapes), turns each user's recent MFA outcomes
//! into a lockout state (`classify`), and attaches the way back in from the user's posture of the
//! last audit (`recovery`). These are the types the three share; none of them knows Graph's JSON.

pub mod classify;
pub mod posture;
pub mod recovery;
pub mod run;

use chrono::{DateTime, Utc};

use crate::snapshot::ObjectId;

/// One MFA step of a sign-in (beta `authenticationDetails`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthStep {
    /// `authenticationMethod` as Graph words it ("Mobile app notification", "Text message", …).
    pub method: Box<str>,
    pub succeeded: bool,
    /// `authenticationStepResultDetail` ("MFA denied; user declined the authentication", "MFA
    /// denied; user reported fraud", "MFA successfully completed", …).
    pub detail: Box<str>,
}

/// One sign-in, reduced to what tells whether its user got through MFA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignInEvent {
    /// The sign-in's `id` (deduplication across overlapping reads).
    pub id: Box<str>,
    pub created: DateTime<Utc>,
    pub user: ObjectId,
    pub upn: Box<str>,
    /// `status.errorCode`: 0 is success.
    pub error_code: i32,
    /// `status.failureReason` / `additionalDetails`, for the detection's words.
    pub reason: Box<str>,
    /// `authenticationRequirement` is `multiFactorAuthentication`.
    pub mfa_required: bool,
    pub steps: Vec<AuthStep>,
}

impl SignInEvent {
    /// A sign-in that completed MFA: success, MFA required, and an MFA step that succeeded
    /// (or, when Graph lists no steps, success of a sign-in that required MFA).
    pub fn mfa_succeeded(&self) -> bool {
        self.error_code == 0
            && self.mfa_required
            && (self.steps.is_empty() || self.steps.iter().any(|s| s.succeeded))
    }
}

/// What a directory-audit entry says happened to a user's security info.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecurityInfoActivity {
    Registered,
    Updated,
    Deleted,
    DefaultChanged,
    TapIssued,
    /// Another security-info activity, kept by its words.
    Other,
}

/// One security-info change from the directory audit log (`category` `UserManagement`,
/// `loggedByService` `Authentication Methods`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityInfoEvent {
    pub id: Box<str>,
    pub created: DateTime<Utc>,
    pub activity: SecurityInfoActivity,
    /// `activityDisplayName` as Graph gave it.
    pub activity_name: Box<str>,
    /// Done by an admin (`initiatedBy.user` is not the target), not by the user themself.
    pub by_admin: bool,
    /// Who did it: a UPN or an application's name.
    pub initiated_by: Box<str>,
    pub user: ObjectId,
    pub upn: Box<str>,
    /// The method concerned, in Graph's words, when the entry names one.
    pub method: Option<Box<str>>,
}

/// A user's lockout state, as the classifier names it (labels `state` on metrics and alerts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LockoutState {
    /// Repeated MFA failures (500121, 50088, 50053, 53004) and no successful sign-in since.
    LockedOut,
    /// The user reported an MFA prompt as fraud, or is blocked for it.
    MfaFraudReported,
    /// Stuck at registration (50079, 50072, 53004).
    RegistrationBlocked,
    /// Many pushes denied or timed out within minutes.
    MfaPromptBombing,
}

impl LockoutState {
    pub const ALL: [LockoutState; 4] = [
        LockoutState::LockedOut,
        LockoutState::MfaFraudReported,
        LockoutState::RegistrationBlocked,
        LockoutState::MfaPromptBombing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LockoutState::LockedOut => "locked-out",
            LockoutState::MfaFraudReported => "mfa-fraud-reported",
            LockoutState::RegistrationBlocked => "registration-blocked",
            LockoutState::MfaPromptBombing => "mfa-prompt-bombing",
        }
    }

    pub fn parse(s: &str) -> Option<LockoutState> {
        LockoutState::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

/// One user in one lockout state: opened by the sign-ins that made it, resolved by the next
/// successful MFA sign-in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detection {
    pub user: ObjectId,
    pub upn: Box<str>,
    pub state: LockoutState,
    /// The error codes that made it, each with how many sign-ins had it.
    pub codes: Vec<(i32, u32)>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// The detection in words ("6 failed MFA sign-ins (500121 ×6) since 10:02, none succeeded").
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_their_labels() {
        for s in LockoutState::ALL {
            assert_eq!(LockoutState::parse(s.as_str()), Some(s));
        }
        assert_eq!(LockoutState::parse("locked_out"), None);
    }

    #[test]
    fn mfa_success_needs_mfa_and_a_passed_step() {
        let mut e = SignInEvent {
            id: "1".into(),
            created: Utc::now(),
            user: ObjectId(1),
            upn: "a@b".into(),
            error_code: 0,
            reason: "".into(),
            mfa_required: true,
            steps: vec![AuthStep {
                method: "Mobile app notification".into(),
                succeeded: false,
                detail: "MFA denied; user declined the authentication".into(),
            }],
        };
        assert!(!e.mfa_succeeded());
        e.steps[0].succeeded = true;
        assert!(e.mfa_succeeded());
        e.mfa_required = false;
        assert!(
            !e.mfa_succeeded(),
            "a single-factor success proves nothing about MFA"
        );
        e.mfa_required = true;
        e.error_code = 500121;
        assert!(!e.mfa_succeeded());
    }
}
