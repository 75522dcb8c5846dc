//! Sign-ins and directory-audit entries over time (issue 12): the MFA steps of a sign-in, the
//! security-info entries of the directory audit log, the scenarios tests push ("alice fails MFA
//! six times"), a traffic generator for benchmarks, and the watcher's ground truth — which users
//! are locked out, reported fraud, are stuck at registration or are being prompt-bombed at a
//! given instant — written apart from mfa-auditor's classifier so each checks the other.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::tenant::SimSignIn;

/// One MFA step of a sign-in: beta `authenticationDetails[]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimAuthStep {
    /// `authenticationStepDateTime`.
    pub at: DateTime<Utc>,
    /// `authenticationMethod` ("Password", "Mobile app notification", "Text message",
    /// "Passkey (device-bound)", …).
    pub method: String,
    /// `authenticationMethodDetail` (a masked phone number, a device name; empty: `null`).
    #[serde(default)]
    pub method_detail: String,
    pub succeeded: bool,
    /// `authenticationStepResultDetail` ("MFA successfully completed", "MFA denied; user
    /// declined the authentication", …).
    pub detail: String,
    /// `authenticationStepRequirement` ("Primary authentication", "Multifactor authentication").
    #[serde(default = "mfa_requirement")]
    pub requirement: String,
}

fn mfa_requirement() -> String {
    MFA_STEP.into()
}

pub const PRIMARY_STEP: &str = "Primary authentication";
pub const MFA_STEP: &str = "Multifactor authentication";
pub const PUSH: &str = "Mobile app notification";
pub const SMS: &str = "Text message";

impl SimAuthStep {
    pub fn new(at: DateTime<Utc>, method: &str, succeeded: bool, detail: &str) -> SimAuthStep {
        SimAuthStep {
            at,
            method: method.into(),
            method_detail: String::new(),
            succeeded,
            detail: detail.into(),
            requirement: MFA_STEP.into(),
        }
    }
    fn password(at: DateTime<Utc>, succeeded: bool) -> SimAuthStep {
        SimAuthStep {
            at,
            method: "Password".into(),
            method_detail: "Password in the cloud".into(),
            succeeded,
            detail: if succeeded {
                "Correct password"
            } else {
                "Invalid username or password or Invalid on-premise username or password."
            }
            .into(),
            requirement: PRIMARY_STEP.into(),
        }
    }
}

/// Who did a directory-audit activity: `initiatedBy.user` or `initiatedBy.app`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuditInitiator {
    User { id: String, upn: String },
    App { id: String, name: String },
}

/// One directory-audit entry pushed while the simulator runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimAudit {
    /// Empty: given one when pushed.
    #[serde(default)]
    pub id: String,
    /// `activityDateTime`.
    pub at: DateTime<Utc>,
    /// `activityDisplayName` ("User deleted security info", …).
    pub activity: String,
    /// `category`; empty: `UserManagement`.
    #[serde(default)]
    pub category: String,
    /// `loggedByService`; empty: `Authentication Methods`.
    #[serde(default)]
    pub service: String,
    /// `resultReason` ("User deleted Phone method" …).
    #[serde(default)]
    pub reason: String,
    /// `operationType`: Add, Update, Delete; empty: from the activity's verb.
    #[serde(default)]
    pub operation: String,
    /// `result`: success or failure; empty: success.
    #[serde(default)]
    pub result: String,
    /// Who did it; `None`: the target user themself.
    #[serde(default)]
    pub initiated_by: Option<AuditInitiator>,
    /// The target user (`targetResources[0]`, type `User`): object id or UPN when pushed.
    pub target_user_id: String,
    /// Empty: the user's UPN.
    #[serde(default)]
    pub target_upn: String,
    /// `modifiedProperties`: (displayName, oldValue, newValue).
    #[serde(default)]
    pub modified: Vec<(String, String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible_at: Option<DateTime<Utc>>,
}

impl SimAudit {
    /// A security-info entry (category UserManagement, service Authentication Methods).
    pub fn security_info(
        target_user_id: &str,
        at: DateTime<Utc>,
        activity: &str,
        reason: &str,
    ) -> SimAudit {
        SimAudit {
            id: String::new(),
            at,
            activity: activity.into(),
            category: String::new(),
            service: String::new(),
            reason: reason.into(),
            operation: String::new(),
            result: String::new(),
            initiated_by: None,
            target_user_id: target_user_id.into(),
            target_upn: String::new(),
            modified: Vec::new(),
            visible_at: None,
        }
    }
    pub fn visible(&self, as_of: DateTime<Utc>) -> bool {
        self.visible_at.is_none_or(|v| v <= as_of)
    }
    pub fn category(&self) -> &str {
        non_empty(&self.category, "UserManagement")
    }
    pub fn service(&self) -> &str {
        non_empty(&self.service, "Authentication Methods")
    }
    pub fn result(&self) -> &str {
        non_empty(&self.result, "success")
    }
    pub fn operation(&self) -> &str {
        if !self.operation.is_empty() {
            return &self.operation;
        }
        let a = self.activity.to_ascii_lowercase();
        if a.contains("deleted") {
            "Delete"
        } else if a.contains("registered") {
            "Add"
        } else {
            "Update"
        }
    }
}

fn non_empty<'a>(s: &'a str, default: &'a str) -> &'a str {
    if s.is_empty() {
        default
    } else {
        s
    }
}

/// The security-info activities of the directory audit log (entra-docs
/// `howto-registration-mfa-sspr-combined-troubleshoot.md`; admin ones as Microsoft Sentinel's
/// analytics rules name them).
pub mod activity {
    pub const USER_REGISTERED: &str = "User registered security info";
    pub const USER_DELETED: &str = "User deleted security info";
    pub const USER_CHANGED_DEFAULT: &str = "User changed default security info";
    pub const USER_REGISTERED_ALL: &str = "User registered all required security info";
    pub const USER_REVIEWED: &str = "User reviewed security info";
    pub const ADMIN_REGISTERED: &str = "Admin registered security info";
    pub const ADMIN_UPDATED: &str = "Admin updated security info";
    pub const ADMIN_DELETED: &str = "Admin deleted security info";
}

/// `status.failureReason` for the codes the simulator uses (entra-docs
/// `reference-error-codes.md`; 500121 in the words sign-in logs show).
pub fn failure_reason(code: i32) -> &'static str {
    match code {
        0 => "",
        500121 => "Authentication failed during strong authentication request.",
        50088 => "Limit on telecom MFA calls reached. Please try again in a few minutes.",
        50053 => "Account is locked because user tried to sign in too many times with an incorrect user ID or password.",
        53004 => "Proof up is blocked due to suspicious activity. The user needs to contact the administrator.",
        50079 => "Due to a configuration change made by your administrator, or because you moved to a new location, you must enroll in multi-factor authentication to access.",
        50072 => "Users account must be enrolled for second factor authentication. Please enroll and try again.",
        50074 => "Strong Authentication is required.",
        50076 => "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access.",
        50126 => "Error validating credentials due to invalid username or password.",
        50158 => "External security challenge was not satisfied.",
        _ => "Other.",
    }
}

/// A stable sign-in id (a v4-shaped GUID) from what identifies the event.
pub fn derived_id(user: &str, at: DateTime<Utc>, code: i64, n: u64) -> String {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in user.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    let a = mix(h ^ at.timestamp_micros() as u64);
    let b = mix(a ^ (code as u64).rotate_left(17) ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    guid(((a as u128) << 64) | b as u128)
}

pub fn audit_id(user: &str, at: DateTime<Utc>, n: u64) -> String {
    format!(
        "UserManagement_{}_{:08X}",
        derived_id(user, at, -1, n),
        n & 0xffff_ffff
    )
}

fn guid(x: u128) -> String {
    let x = x & !(0xf << 76) | (0x4 << 76);
    let x = x & !(0x3 << 62) | (0x2 << 62);
    uuid::Uuid::from_u128(x).hyphenated().to_string()
}

/// splitmix64's finaliser.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `t` to the microsecond: Graph's listings (and their keyset nextLinks) carry no finer time.
pub fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound;
    t.trunc_subsecs(6)
}

/// Truncates a sign-in's times to the microsecond.
pub fn to_micros(s: &mut SimSignIn) {
    s.created = micros(s.created);
    for x in &mut s.steps {
        x.at = micros(x.at);
    }
}

/// Newest first: by `created`, then `id` (the order sign-ins are listed in, and the keyset
/// their nextLinks continue from).
pub fn sort_newest_first(list: &mut [SimSignIn]) {
    list.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.id.cmp(&a.id)));
}

// ---------------------------------------------------------------------------------------------
// Scenarios: what a test pushes.

/// A failed MFA sign-in with `code` and the steps Graph shows for it.
pub fn mfa_failure(user: &str, at: DateTime<Utc>, code: i32) -> SimSignIn {
    let mut s = SimSignIn::new(user, at, code);
    s.mfa_required = true;
    s.ca_status = "failure".into();
    let pw = SimAuthStep::password(at, true);
    let step = |method: &str, detail: &str| {
        vec![
            pw.clone(),
            SimAuthStep::new(at + Duration::seconds(5), method, false, detail),
        ]
    };
    s.steps = match code {
        500121 => step(PUSH, "MFA denied; user declined the authentication"),
        50088 => step(SMS, "MFA denied; Telecom limit reached"),
        // Smart lockout stops the sign-in at the password.
        50053 => vec![SimAuthStep::password(at, false)],
        53004 => step(SMS, "Proof up is blocked due to suspicious activity"),
        _ => step(
            PUSH,
            "MFA denied; user did not respond to mobile app notification",
        ),
    };
    if code == 50053 {
        s.mfa_required = false;
        s.ca_status = "notApplied".into();
    }
    s
}

/// A sign-in that completed MFA by push.
pub fn mfa_success(user: &str, at: DateTime<Utc>) -> SimSignIn {
    let mut s = SimSignIn::new(user, at, 0);
    s.mfa_required = true;
    s.ca_status = "success".into();
    s.steps = vec![
        SimAuthStep::password(at, true),
        SimAuthStep::new(
            at + Duration::seconds(4),
            PUSH,
            true,
            "MFA successfully completed",
        ),
    ];
    s
}

/// The user answered a push with "report fraud" (500121, the step says so).
pub fn fraud_report(user: &str, at: DateTime<Utc>) -> SimSignIn {
    let mut s = mfa_failure(user, at, 500121);
    s.additional_details = "MFA denied; user reported fraud".into();
    if let Some(step) = s.steps.last_mut() {
        step.detail = "MFA denied; user reported fraud".into();
    }
    s
}

/// `n` pushes denied or unanswered within `within` from `at` (prompt bombing).
pub fn prompt_bombing(user: &str, n: u32, at: DateTime<Utc>, within: Duration) -> Vec<SimSignIn> {
    let gap = within.num_milliseconds() / i64::from(n.max(1));
    (0..n)
        .map(|k| {
            let when = at + Duration::milliseconds(gap * i64::from(k));
            let mut s = mfa_failure(user, when, 500121);
            if k % 2 == 1 {
                if let Some(step) = s.steps.last_mut() {
                    step.detail =
                        "MFA denied; user did not respond to mobile app notification".into();
                }
            }
            s
        })
        .collect()
}

/// The user must register MFA but proof-up is blocked (53004 after a 50079 interrupt).
pub fn registration_blocked(user: &str, at: DateTime<Utc>) -> Vec<SimSignIn> {
    let mut interrupt = SimSignIn::new(user, at, 50079);
    interrupt.mfa_required = true;
    interrupt.steps = vec![SimAuthStep::password(at, true)];
    let blocked = mfa_failure(user, at + Duration::seconds(40), 53004);
    vec![interrupt, blocked]
}

// ---------------------------------------------------------------------------------------------
// Traffic generator.

/// Background sign-ins generated on the fly (nothing stored): `per_minute` sign-ins per minute
/// from `start`, evenly spaced, each of a user picked from `seed` and the slot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Traffic {
    pub per_minute: u32,
    pub seed: u64,
    /// The first slot; `None`: when the simulator starts.
    #[serde(default)]
    pub start: Option<DateTime<Utc>>,
}

/// How far back [`crate::SimHandle::watch_truth`] reads generated traffic.
pub const GENERATED_LOOKBACK_MINUTES: i64 = 60;

/// The traffic generator once started.
#[derive(Clone, Debug)]
pub struct Generator {
    pub start: DateTime<Utc>,
    /// Microseconds between two sign-ins.
    pub period_us: i64,
    pub seed: u64,
}

impl Generator {
    pub fn new(t: &Traffic, now: DateTime<Utc>) -> Option<Generator> {
        (t.per_minute > 0).then(|| Generator {
            start: micros(t.start.unwrap_or(now)),
            period_us: (60_000_000 / i64::from(t.per_minute)).max(1),
            seed: t.seed,
        })
    }
    pub fn created(&self, slot: u64) -> DateTime<Utc> {
        self.start + Duration::microseconds(self.period_us * slot as i64)
    }
    /// The slots whose sign-in happened in `[from, to]`, or `None`.
    pub fn slots(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<(u64, u64)> {
        let lo = (from - self.start).num_microseconds()?.max(0);
        let lo = (lo + self.period_us - 1) / self.period_us;
        let hi = (to - self.start).num_microseconds()?;
        if hi < 0 {
            return None;
        }
        let hi = hi / self.period_us;
        (lo <= hi).then_some((lo as u64, hi as u64))
    }
    fn hash(&self, slot: u64) -> u64 {
        mix(self.seed ^ slot.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }
    /// The index of the slot's user (cheap: no event is built).
    pub fn user(&self, slot: u64, users: usize) -> usize {
        (self.hash(slot) % users.max(1) as u64) as usize
    }
    /// The slot's `status.errorCode` (cheap: no event is built).
    pub fn code(&self, slot: u64) -> i32 {
        match (self.hash(slot) >> 32) % 100 {
            0..=89 => 0,
            90..=95 => 50126,
            96..=97 => 500121,
            _ => 50074,
        }
    }
    /// The slot's sign-in for a tenant of `users` (by index): 90 % MFA successes or
    /// single-factor successes, 6 % bad passwords, 2 % unanswered pushes, 2 % interrupts.
    pub fn event(&self, slot: u64, user_ids: &dyn Fn(usize) -> String, users: usize) -> SimSignIn {
        let h = self.hash(slot);
        let user = user_ids(self.user(slot, users));
        let at = self.created(slot);
        let roll = (h >> 32) % 100;
        let mut s = match roll {
            0..=59 => mfa_success(&user, at),
            60..=89 => {
                let mut s = SimSignIn::new(user.as_str(), at, 0);
                s.steps = vec![SimAuthStep::password(at, true)];
                s
            }
            90..=95 => {
                let mut s = SimSignIn::new(user.as_str(), at, 50126);
                s.steps = vec![SimAuthStep::password(at, false)];
                s
            }
            96..=97 => {
                let mut s = mfa_failure(&user, at, 500121);
                if let Some(step) = s.steps.last_mut() {
                    step.detail =
                        "MFA denied; user did not respond to mobile app notification".into();
                }
                s
            }
            _ => {
                let mut s = SimSignIn::new(user.as_str(), at, 50074);
                s.mfa_required = true;
                s.steps = vec![SimAuthStep::password(at, true)];
                s
            }
        };
        let lo = mix(h ^ 0x5157);
        s.id = guid(((h as u128) << 64) | lo as u128);
        s
    }
}

// ---------------------------------------------------------------------------------------------
// The watcher's ground truth.

/// The classifier's thresholds, with issue 12's defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WatchThresholds {
    /// locked-out: at least this many MFA failures …
    pub lockout_failures: u32,
    /// … with these codes, and no successful MFA sign-in since the first.
    pub lockout_codes: Vec<i32>,
    /// registration-blocked: a failure with one of these codes at proof-up.
    pub registration_codes: Vec<i32>,
    /// mfa-prompt-bombing: at least this many push steps denied or unanswered …
    pub bombing_pushes: u32,
    /// … within this many minutes.
    pub bombing_window_minutes: u32,
}

impl Default for WatchThresholds {
    fn default() -> Self {
        WatchThresholds {
            lockout_failures: 3,
            lockout_codes: vec![500121, 50088, 50053, 53004],
            registration_codes: vec![50079, 50072, 53004],
            bombing_pushes: 5,
            bombing_window_minutes: 10,
        }
    }
}

/// One user in one state at the instant asked about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WatchState {
    pub user_id: String,
    /// `locked-out`, `mfa-fraud-reported`, `registration-blocked`, `mfa-prompt-bombing`
    /// (mfa-auditor's `LockoutState::as_str`).
    pub state: String,
    /// The first sign-in that counted towards it.
    pub since: DateTime<Utc>,
}

/// Which users are in which state at `at`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WatchTruth {
    pub at: Option<DateTime<Utc>>,
    pub states: Vec<WatchState>,
}

impl WatchTruth {
    /// The users in `state`, sorted.
    pub fn users_in(&self, state: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .states
            .iter()
            .filter(|s| s.state == state)
            .map(|s| s.user_id.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }
    /// The states of one user, sorted.
    pub fn states_of(&self, user_id: &str) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .states
            .iter()
            .filter(|s| s.user_id.eq_ignore_ascii_case(user_id))
            .map(|s| s.state.as_str())
            .collect();
        v.sort();
        v
    }
}

/// A sign-in that completed MFA (mfa-auditor's `SignInEvent::mfa_succeeded`): success, MFA
/// required, and an MFA step that succeeded (or no steps listed).
pub fn mfa_succeeded(s: &SimSignIn) -> bool {
    s.error_code == 0
        && s.mfa_required
        && (s.steps.is_empty() || s.steps.iter().any(|x| x.succeeded))
}

fn reports_fraud(s: &SimSignIn) -> bool {
    let fraud = |t: &str| t.to_ascii_lowercase().contains("fraud");
    s.steps.iter().any(|x| !x.succeeded && fraud(&x.detail))
        || (s.error_code == 500121 && fraud(&s.additional_details))
}

fn push_refused(x: &SimAuthStep) -> bool {
    !x.succeeded && x.method.eq_ignore_ascii_case(PUSH)
}

#[derive(Default)]
struct UserRun {
    first_failure: Option<DateTime<Utc>>,
    failures: u32,
    fraud: Option<DateTime<Utc>>,
    registration: Option<DateTime<Utc>>,
    pushes: Vec<DateTime<Utc>>,
    bombing: Option<DateTime<Utc>>,
}

/// The states at `at` from sign-ins (any order; those created after `at` are ignored).
pub fn watch_states<'a>(
    sign_ins: impl IntoIterator<Item = &'a SimSignIn>,
    at: DateTime<Utc>,
    th: &WatchThresholds,
) -> WatchTruth {
    let mut list: Vec<&SimSignIn> = sign_ins.into_iter().filter(|s| s.created <= at).collect();
    list.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
    let mut runs: BTreeMap<String, UserRun> = BTreeMap::new();
    let window = Duration::minutes(i64::from(th.bombing_window_minutes));
    for s in list {
        let run = runs.entry(s.user_id.to_ascii_lowercase()).or_default();
        if mfa_succeeded(s) {
            *run = UserRun::default();
            continue;
        }
        if th.lockout_codes.contains(&s.error_code) {
            run.failures += 1;
            run.first_failure.get_or_insert(s.created);
        }
        if reports_fraud(s) {
            run.fraud.get_or_insert(s.created);
        }
        if th.registration_codes.contains(&s.error_code) {
            run.registration.get_or_insert(s.created);
        }
        for x in s.steps.iter().filter(|x| push_refused(x)) {
            run.pushes.push(x.at);
            let recent: Vec<&DateTime<Utc>> = run
                .pushes
                .iter()
                .filter(|t| **t > x.at - window && **t <= x.at)
                .collect();
            if recent.len() as u32 >= th.bombing_pushes && run.bombing.is_none() {
                run.bombing = recent.first().map(|t| **t);
            }
        }
    }
    let mut states = Vec::new();
    for (user, run) in runs {
        let mut add = |state: &str, since: Option<DateTime<Utc>>| {
            if let Some(since) = since {
                states.push(WatchState {
                    user_id: user.clone(),
                    state: state.into(),
                    since,
                });
            }
        };
        add(
            "locked-out",
            run.first_failure
                .filter(|_| run.failures >= th.lockout_failures),
        );
        add("mfa-fraud-reported", run.fraud);
        add("registration-blocked", run.registration);
        add("mfa-prompt-bombing", run.bombing);
    }
    states.sort();
    WatchTruth {
        at: Some(at),
        states,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn three_failures_lock_out_until_a_success() {
        let th = WatchThresholds::default();
        let u = "11111111-1111-4111-8111-111111111111";
        let mut list: Vec<SimSignIn> = (0..3)
            .map(|k| mfa_failure(u, t0() + Duration::minutes(k), 500121))
            .collect();
        let two = watch_states(&list[..2], t0() + Duration::hours(1), &th);
        assert!(
            two.states_of(u).is_empty(),
            "two failures are not a lockout"
        );
        let w = watch_states(&list, t0() + Duration::hours(1), &th);
        assert_eq!(w.states_of(u), ["locked-out"]);
        assert_eq!(w.states[0].since, t0());
        list.push(mfa_success(u, t0() + Duration::minutes(30)));
        assert_eq!(
            watch_states(&list, t0() + Duration::minutes(29), &th).states_of(u),
            ["locked-out"],
            "before the success it still holds"
        );
        assert!(watch_states(&list, t0() + Duration::hours(1), &th)
            .states_of(u)
            .is_empty());
        // A single-factor success proves nothing.
        let mut sf = SimSignIn::new(u, t0() + Duration::minutes(31), 0);
        sf.steps = vec![SimAuthStep::password(sf.created, true)];
        list.truncate(3);
        list.push(sf);
        assert_eq!(
            watch_states(&list, t0() + Duration::hours(1), &th).states_of(u),
            ["locked-out"]
        );
    }

    #[test]
    fn fraud_bombing_and_registration() {
        let th = WatchThresholds::default();
        let u = "22222222-2222-4222-8222-222222222222";
        let w = watch_states(&[fraud_report(u, t0())], t0(), &th);
        assert_eq!(w.states_of(u), ["mfa-fraud-reported"]);
        let bomb = prompt_bombing(u, 5, t0(), Duration::minutes(4));
        let w = watch_states(&bomb, t0() + Duration::minutes(5), &th);
        assert_eq!(w.states_of(u), ["locked-out", "mfa-prompt-bombing"]);
        // Five pushes over 50 minutes are not bombing.
        let slow = prompt_bombing(u, 5, t0(), Duration::minutes(50));
        let w = watch_states(&slow, t0() + Duration::hours(1), &th);
        assert_eq!(w.states_of(u), ["locked-out"]);
        let w = watch_states(
            &registration_blocked(u, t0()),
            t0() + Duration::minutes(1),
            &th,
        );
        assert_eq!(w.states_of(u), ["registration-blocked"]);
    }

    #[test]
    fn generator_slots_cover_a_window_exactly() {
        let g = Generator::new(
            &Traffic {
                per_minute: 600,
                seed: 3,
                start: Some(t0()),
            },
            t0(),
        )
        .unwrap_or_else(|| unreachable!());
        assert_eq!(g.slots(t0(), t0() + Duration::seconds(1)), Some((0, 10)));
        assert_eq!(
            g.slots(
                t0() + Duration::milliseconds(150),
                t0() + Duration::seconds(1)
            ),
            Some((2, 10))
        );
        assert_eq!(
            g.slots(t0() - Duration::hours(1), t0() - Duration::seconds(1)),
            None
        );
        let ids = |i: usize| format!("user-{i}");
        let a = g.event(7, &ids, 10);
        assert_eq!(a, g.event(7, &ids, 10), "deterministic");
        assert_ne!(a.id, g.event(8, &ids, 10).id);
        for k in 0..500 {
            let e = g.event(k, &ids, 10);
            assert_eq!(e.error_code, g.code(k));
            assert_eq!(e.user_id, ids(g.user(k, 10)));
        }
        assert_eq!(a.created, t0() + Duration::milliseconds(700));
    }

    #[test]
    fn old_ground_truth_sign_ins_still_load() {
        let s: SimSignIn = serde_json::from_str(
            r#"{"user_id":"u","created":"2026-12-03T10:00:00Z","error_code":500121}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(s.interactive && s.steps.is_empty() && s.id.is_empty() && s.visible_at.is_none());
    }
}
