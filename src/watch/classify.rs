//! The lockout classifier: each user's recent MFA outcomes → open and resolved [`Detection`]s.
//!
//! Sign-ins arrive in any order (overlapping reads, late logs) and possibly twice; the classifier
//! keeps, per user with recent trouble, the relevant sign-ins of the last `retention` (by id, so a
//! duplicate counts once) and the time of their latest successful MFA sign-in, and recomputes the
//! user's states from that after every event. So the result does not depend on arrival order,
//! except for one documented limit: a user with no state yet keeps none for a success alone (the
//! state stays bounded to users with trouble), so a success that arrives *before* older failures
//! of the same user is not known when those arrive; feed a read's events oldest first
//! ([`Classifier::observe_all`] sorts them) and this only matters across reads.
//!
//! Which sign-in counts for what (one sign-in can count for two states):
//! - a step whose `authenticationStepResultDetail` reports fraud ([`is_fraud_detail`]) counts only
//!   for `mfa-fraud-reported`;
//! - a "Mobile app notification" step declined or unanswered counts for `mfa-prompt-bombing`; an
//!   unanswered one also counts as an MFA failure (a lost phone looks like that), a declined one
//!   does not (the user has the phone and refused);
//! - error codes of [`ERROR_CODES`] marked `lockout` count as MFA failures, those marked
//!   `registration` as stuck at proof-up (53004 is both).
//!
//! An opened detection stays open until the user's next successful MFA sign-in
//! ([`SignInEvent::mfa_succeeded`]) later than its first sign-in, even when its sign-ins leave the
//! window or the retention: only a success closes it.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{Detection, LockoutState, SignInEvent};
use crate::snapshot::ObjectId;

/// One sign-in error code the classifier knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorCode {
    pub code: i32,
    /// Microsoft's name or message for it.
    pub meaning: &'static str,
    /// Counts as a failed MFA (`locked-out`).
    pub lockout: bool,
    /// Counts as stuck at MFA registration (`registration-blocked`).
    pub registration: bool,
}

/// The sign-in error codes the watcher reads, with their meanings.
///
/// Sources: Microsoft Entra authentication and authorization error codes
/// (`MicrosoftDocs/entra-docs` `docs/identity-platform/reference-error-codes.md`, REFERENCE
/// §11.3 [S22]) and MicrosoftDocs/SupportArticles-docs (Entra sign-in troubleshooting); 500121's
/// text is the sign-in log's own. The step details are those the Entra sign-ins report lists
/// (`MicrosoftDocs/azure-docs` `articles/active-directory/authentication/howto-mfa-reporting.md`:
/// "user declined the authentication", "user did not respond to mobile app notification",
/// "user is blocked", …; fraud: "MFA denied; user reported fraud", "MFA denied; Phone App
/// Reported Fraud", "Fraud code entered").
pub const ERROR_CODES: &[ErrorCode] = &[
    ErrorCode {
        code: 500121,
        meaning: "Authentication failed during strong authentication request (MFA denied, timed out or not completed)",
        lockout: true,
        registration: false,
    },
    ErrorCode {
        code: 50088,
        meaning: "Limit on telecom MFA calls reached (too many SMS / voice calls)",
        lockout: true,
        registration: false,
    },
    ErrorCode {
        code: 50053,
        meaning: "IdsLocked: account locked by smart lockout, or sign-in from a malicious IP",
        lockout: true,
        registration: false,
    },
    ErrorCode {
        code: 53004,
        meaning: "ProofUpBlockedDueToRisk: MFA registration blocked due to suspicious activity",
        lockout: true,
        registration: true,
    },
    ErrorCode {
        code: 50079,
        meaning: "UserStrongAuthEnrollmentRequired: the user must register for MFA",
        lockout: false,
        registration: true,
    },
    ErrorCode {
        code: 50072,
        meaning: "UserStrongAuthEnrollmentRequiredInterrupt: the user must enroll a second factor",
        lockout: false,
        registration: true,
    },
];

/// The entry of `code` in [`ERROR_CODES`].
pub fn error_code(code: i32) -> Option<&'static ErrorCode> {
    ERROR_CODES.iter().find(|c| c.code == code)
}

/// The step details that mean the user reported the prompt as fraud, or is blocked for it
/// (compared case-insensitively, as substrings: Graph's casing varies).
pub const FRAUD_DETAILS: &[&str] = &[
    "user reported fraud",
    "phone app reported fraud",
    "fraud code entered",
    "reported suspicious activity",
    "user is blocked",
];

/// The push-notification step details that count for prompt bombing, and whether each is a
/// timeout (not a refusal).
pub const PUSH_DENIALS: &[(&str, bool)] = &[
    ("user declined the authentication", false),
    ("user did not respond to mobile app notification", true),
];

/// The `authenticationMethod` of a push.
pub const PUSH_METHOD: &str = "Mobile app notification";

/// Whether a step's detail reports fraud.
pub fn is_fraud_detail(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    FRAUD_DETAILS.iter().any(|f| d.contains(f))
}

/// When a state opens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// MFA failures within `window` that make `locked-out`.
    pub lockout_failures: u32,
    pub window: Duration,
    /// Sign-ins stuck at proof-up (since the last success) that make `registration-blocked`.
    pub registration_failures: u32,
    /// Pushes denied or unanswered within `bombing_window` that make `mfa-prompt-bombing`.
    pub bombing_pushes: u32,
    pub bombing_window: Duration,
    /// How long a user's sign-ins are kept (and a quiet user without an open detection is
    /// forgotten); longer than `window`, `bombing_window` and the reader's overlap.
    pub retention: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            lockout_failures: 3,
            window: Duration::hours(1),
            registration_failures: 2,
            bombing_pushes: 5,
            bombing_window: Duration::minutes(10),
            retention: Duration::hours(24),
        }
    }
}

/// What one observation changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Opened(Detection),
    /// An open detection gained sign-ins.
    Updated(Detection),
    Resolved {
        user: ObjectId,
        state: LockoutState,
        /// The successful MFA sign-in's time.
        at: DateTime<Utc>,
    },
}

const LOCKOUT: u8 = 1;
const FRAUD: u8 = 2;
const REGISTRATION: u8 = 4;
const PUSH_DECLINED: u8 = 8;
const PUSH_TIMEOUT: u8 = 16;

/// One relevant sign-in, compact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Ev {
    id: Box<str>,
    at: DateTime<Utc>,
    code: i32,
    kinds: u8,
    /// The fraud step's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<Box<str>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct UserState {
    upn: Box<str>,
    /// Sorted by (time, id); ids unique.
    events: Vec<Ev>,
    last_success: Option<DateTime<Utc>>,
    last_event: DateTime<Utc>,
    open: BTreeMap<LockoutState, Detection>,
}

/// The classifier's state, for the daemon to store across restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassifierState {
    pub version: u32,
    users: Vec<StoredUserState>,
    /// The latest sign-in time seen (retention is counted back from it).
    watermark: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct StoredUserState {
    user: String,
    upn: Box<str>,
    events: Vec<Ev>,
    last_success: Option<DateTime<Utc>>,
    last_event: DateTime<Utc>,
    open: Vec<StoredDetection>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct StoredDetection {
    state: String,
    codes: Vec<(i32, u32)>,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    detail: String,
}

/// Why a stored classifier state was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateError(pub String);

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stored classifier state: {}", self.0)
    }
}

impl std::error::Error for StateError {}

/// The lockout classifier (see the module's documentation).
#[derive(Clone, Debug)]
pub struct Classifier {
    thresholds: Thresholds,
    users: HashMap<ObjectId, UserState>,
    watermark: Option<DateTime<Utc>>,
}

impl Classifier {
    pub fn new(thresholds: Thresholds) -> Classifier {
        Classifier {
            thresholds,
            users: HashMap::new(),
            watermark: None,
        }
    }

    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    /// Observes a batch, oldest first (ties by id); the changes in order.
    pub fn observe_all<'a>(
        &mut self,
        events: impl IntoIterator<Item = &'a SignInEvent>,
    ) -> Vec<Change> {
        let mut events: Vec<&SignInEvent> = events.into_iter().collect();
        events.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        events.into_iter().flat_map(|e| self.observe(e)).collect()
    }

    /// Observes one sign-in: what it opened, updated or resolved.
    pub fn observe(&mut self, e: &SignInEvent) -> Vec<Change> {
        let horizon = self.watermark.map(|w| w - self.thresholds.retention);
        if horizon.is_some_and(|h| e.created < h) {
            return Vec::new(); // older than anything kept: a duplicate or too late to matter
        }
        if self.watermark.is_none_or(|w| e.created > w) {
            self.watermark = Some(e.created);
            self.prune();
        }
        let success = e.mfa_succeeded();
        let kinds = if success { 0 } else { kinds(e) };
        let mut changes = Vec::new();
        if (kinds == 0 && !success) || (success && !self.users.contains_key(&e.user)) {
            return changes;
        }
        let user = self.users.entry(e.user).or_insert_with(|| UserState {
            upn: e.upn.clone(),
            events: Vec::new(),
            last_success: None,
            last_event: e.created,
            open: BTreeMap::new(),
        });
        if e.created > user.last_event {
            user.last_event = e.created;
            user.upn = e.upn.clone();
        }
        if success {
            if user.last_success.is_none_or(|s| e.created > s) {
                user.last_success = Some(e.created);
            }
            let open: Vec<LockoutState> = user.open.keys().copied().collect();
            for state in open {
                let opened_at = user.open.get(&state).map(|d| d.first_seen);
                if opened_at.is_some_and(|f| e.created > f) {
                    user.open.remove(&state);
                    changes.push(Change::Resolved {
                        user: e.user,
                        state,
                        at: e.created,
                    });
                }
            }
        } else {
            let key = (e.created, &*e.id);
            match user.events.binary_search_by(|x| (x.at, &*x.id).cmp(&key)) {
                Ok(_) => return changes, // a duplicate
                Err(_) if user.events.iter().any(|x| x.id == e.id) => return changes,
                Err(i) => user.events.insert(
                    i,
                    Ev {
                        id: e.id.clone(),
                        at: e.created,
                        code: e.error_code,
                        kinds,
                        note: (kinds & FRAUD != 0).then(|| fraud_note(e)),
                    },
                ),
            }
        }
        let t = &self.thresholds;
        for state in LockoutState::ALL {
            let change = match user.open.get(&state) {
                None => evaluate(t, user, e.user, state).map(Change::Opened),
                Some(old) => grow(t, user, e.user, state, old).map(Change::Updated),
            };
            if let Some(Change::Opened(d) | Change::Updated(d)) = &change {
                user.open.insert(state, d.clone());
            }
            changes.extend(change);
        }
        changes
    }

    /// The open detections.
    pub fn open(&self) -> impl Iterator<Item = &Detection> {
        self.users.values().flat_map(|u| u.open.values())
    }

    /// Forgets what is older than the retention counted back from `now` (the wall clock), for a
    /// tenant whose sign-ins stopped coming.
    pub fn expire(&mut self, now: DateTime<Utc>) {
        if self.watermark.is_none_or(|w| now > w) {
            self.watermark = Some(now);
        }
        self.prune();
    }

    /// The users with kept state, for the late sweep: those with an open detection first,
    /// oldest detection first, then the others by their oldest kept event; at most `limit`.
    pub fn sweep_users(&self, limit: usize) -> Vec<ObjectId> {
        let mut users: Vec<(bool, DateTime<Utc>, ObjectId)> = self
            .users
            .iter()
            .map(|(id, u)| {
                let first = u
                    .open
                    .values()
                    .map(|d| d.first_seen)
                    .min()
                    .or_else(|| u.events.first().map(|e| e.at))
                    .unwrap_or(u.last_event);
                (u.open.is_empty(), first, *id)
            })
            .collect();
        users.sort();
        users.into_iter().take(limit).map(|(_, _, id)| id).collect()
    }

    /// Users with kept state (bounded by those with trouble within the retention).
    pub fn tracked_users(&self) -> usize {
        self.users.len()
    }

    /// Forgets what is older than the retention, counted back from the latest sign-in seen.
    fn prune(&mut self) {
        let Some(w) = self.watermark else { return };
        let horizon = w - self.thresholds.retention;
        self.users.retain(|_, u| {
            u.events.retain(|e| e.at >= horizon);
            !u.open.is_empty() || (!u.events.is_empty() && u.last_event >= horizon)
        });
    }

    /// The state to store.
    pub fn save(&self) -> ClassifierState {
        let mut users: Vec<StoredUserState> = self
            .users
            .iter()
            .map(|(id, u)| StoredUserState {
                user: id.to_string(),
                upn: u.upn.clone(),
                events: u.events.clone(),
                last_success: u.last_success,
                last_event: u.last_event,
                open: u
                    .open
                    .values()
                    .map(|d| StoredDetection {
                        state: d.state.as_str().to_string(),
                        codes: d.codes.clone(),
                        first_seen: d.first_seen,
                        last_seen: d.last_seen,
                        detail: d.detail.clone(),
                    })
                    .collect(),
            })
            .collect();
        users.sort_by(|a, b| a.user.cmp(&b.user));
        ClassifierState {
            version: 1,
            users,
            watermark: self.watermark,
        }
    }

    /// A classifier from a stored state (its open detections stay open: nothing reopens).
    pub fn restore(
        thresholds: Thresholds,
        state: ClassifierState,
    ) -> Result<Classifier, StateError> {
        if state.version != 1 {
            return Err(StateError(format!("unknown version {}", state.version)));
        }
        let mut users = HashMap::new();
        for s in state.users {
            let id = ObjectId::parse(&s.user)
                .ok_or_else(|| StateError(format!("{:?} is not an object id", s.user)))?;
            let mut open = BTreeMap::new();
            for d in s.open {
                let st = LockoutState::parse(&d.state)
                    .ok_or_else(|| StateError(format!("unknown state {:?}", d.state)))?;
                open.insert(
                    st,
                    Detection {
                        user: id,
                        upn: s.upn.clone(),
                        state: st,
                        codes: d.codes,
                        first_seen: d.first_seen,
                        last_seen: d.last_seen,
                        detail: d.detail,
                    },
                );
            }
            let mut events = s.events;
            events.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
            events.dedup_by(|a, b| a.id == b.id);
            users.insert(
                id,
                UserState {
                    upn: s.upn,
                    events,
                    last_success: s.last_success,
                    last_event: s.last_event,
                    open,
                },
            );
        }
        Ok(Classifier {
            thresholds,
            users,
            watermark: state.watermark,
        })
    }
}

fn fraud_note(e: &SignInEvent) -> Box<str> {
    e.steps
        .iter()
        .find(|s| is_fraud_detail(&s.detail))
        .map(|s| s.detail.clone())
        .unwrap_or_else(|| e.reason.clone())
}

/// What a failed sign-in counts for.
fn kinds(e: &SignInEvent) -> u8 {
    if e.steps
        .iter()
        .any(|s| !s.succeeded && is_fraud_detail(&s.detail))
        || is_fraud_detail(&e.reason)
    {
        return FRAUD;
    }
    let mut k = 0;
    for s in e.steps.iter().filter(|s| !s.succeeded) {
        if !s.method.eq_ignore_ascii_case(PUSH_METHOD) {
            continue;
        }
        let d = s.detail.to_ascii_lowercase();
        for (words, timeout) in PUSH_DENIALS {
            if d.contains(words) {
                k |= if *timeout {
                    PUSH_TIMEOUT
                } else {
                    PUSH_DECLINED
                };
            }
        }
    }
    if let Some(c) = error_code(e.error_code) {
        if c.lockout && k & PUSH_DECLINED == 0 {
            k |= LOCKOUT;
        }
        if c.registration {
            k |= REGISTRATION;
        }
    }
    if k & PUSH_TIMEOUT != 0 && e.error_code != 0 {
        k |= LOCKOUT;
    }
    k
}

fn mask(state: LockoutState) -> u8 {
    match state {
        LockoutState::LockedOut => LOCKOUT,
        LockoutState::MfaFraudReported => FRAUD,
        LockoutState::RegistrationBlocked => REGISTRATION,
        LockoutState::MfaPromptBombing => PUSH_DECLINED | PUSH_TIMEOUT,
    }
}

/// The user's sign-ins of `state`'s kind since their last success.
fn since_success(user: &UserState, state: LockoutState) -> Vec<&Ev> {
    let m = mask(state);
    user.events
        .iter()
        .filter(|e| e.kinds & m != 0 && user.last_success.is_none_or(|s| e.at > s))
        .collect()
}

/// Whether `state` holds for the user now, and its detection: the first run of sign-ins that
/// reaches the threshold within the window, and every later one.
fn evaluate(
    t: &Thresholds,
    user: &UserState,
    id: ObjectId,
    state: LockoutState,
) -> Option<Detection> {
    let evs = since_success(user, state);
    let (need, window) = match state {
        LockoutState::LockedOut => (t.lockout_failures, Some(t.window)),
        LockoutState::MfaFraudReported => (1, None),
        LockoutState::RegistrationBlocked => (t.registration_failures, None),
        LockoutState::MfaPromptBombing => (t.bombing_pushes, Some(t.bombing_window)),
    };
    let need = need.max(1) as usize;
    let start = match window {
        None => (evs.len() >= need).then_some(0)?,
        Some(w) => (0..evs.len()).find(|&i| {
            evs.get(i + need - 1)
                .is_some_and(|last| last.at - evs[i].at <= w)
        })?,
    };
    Some(detection(user, id, state, &evs[start..], None))
}

/// An open detection with the sign-ins of its kind that came since it began, when it has more
/// of them than before (sign-ins pruned by the retention stay counted until then).
fn grow(
    t: &Thresholds,
    user: &UserState,
    id: ObjectId,
    state: LockoutState,
    old: &Detection,
) -> Option<Detection> {
    // A late sign-in may make the episode begin earlier than when it opened.
    let began =
        evaluate(t, user, id, state).map_or(old.first_seen, |d| d.first_seen.min(old.first_seen));
    let evs: Vec<&Ev> = since_success(user, state)
        .into_iter()
        .filter(|e| e.at >= began)
        .collect();
    let total = |d: &[(i32, u32)]| d.iter().map(|(_, n)| n).sum::<u32>();
    let d = detection(user, id, state, &evs, Some(began));
    (total(&d.codes) > total(&old.codes)).then_some(d)
}

fn detection(
    user: &UserState,
    id: ObjectId,
    state: LockoutState,
    evs: &[&Ev],
    began: Option<DateTime<Utc>>,
) -> Detection {
    let mut codes: BTreeMap<i32, u32> = BTreeMap::new();
    for e in evs {
        *codes.entry(e.code).or_default() += 1;
    }
    let codes: Vec<(i32, u32)> = codes.into_iter().collect();
    let first = began.or(evs.first().map(|e| e.at)).unwrap_or_default();
    let last = evs.last().map(|e| e.at).unwrap_or_default();
    let note = evs.iter().find_map(|e| e.note.as_deref());
    let mut detail = words(state, &codes, first, last, note);
    if state == LockoutState::MfaPromptBombing {
        let declined = evs.iter().filter(|e| e.kinds & PUSH_DECLINED != 0).count();
        let timeout = evs.len() - declined;
        detail.push_str(&format!(
            " ({declined} declined, {timeout} unanswered); do not approve prompts you did not start"
        ));
    }
    Detection {
        user: id,
        upn: user.upn.clone(),
        state,
        codes,
        first_seen: first,
        last_seen: last,
        detail,
    }
}

fn words(
    state: LockoutState,
    codes: &[(i32, u32)],
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    note: Option<&str>,
) -> String {
    let n: u32 = codes.iter().map(|(_, n)| n).sum();
    let list = codes
        .iter()
        .map(|(c, n)| format!("{c} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let span = format!(
        "{} to {} UTC",
        first.format("%Y-%m-%d %H:%M"),
        last.format("%H:%M")
    );
    let s = |n: u32| if n == 1 { "" } else { "s" };
    match state {
        LockoutState::LockedOut => format!(
            "{n} failed MFA sign-in{} ({list}) from {span}, none succeeded since",
            s(n)
        ),
        LockoutState::MfaFraudReported => format!(
            "the user reported an MFA prompt as fraud ({}; {list}) at {}: the user is now risky and may be blocked",
            note.unwrap_or("fraud reported"),
            first.format("%Y-%m-%d %H:%M UTC")
        ),
        LockoutState::RegistrationBlocked => format!(
            "{n} sign-in{} stuck at MFA registration ({list}) from {span}, none succeeded since",
            s(n)
        ),
        LockoutState::MfaPromptBombing => format!(
            "{n} push notification{} denied or unanswered ({list}) from {span}",
            s(n)
        ),
    }
}

#[cfg(test)]
#[path = "classify_tests.rs"]
mod tests;
