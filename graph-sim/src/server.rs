//! The router: every request — direct or inside `$batch` — goes through [`State::dispatch`],
//! which checks, in Graph's order, the route, the bearer token, the permission, the licence,
//! the injected faults and the throttle bucket, then renders the answer.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockWriteGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

use crate::auth::{self, Issuer, RegisteredCert};
use crate::faults::{Armed, Fault};
use crate::render;
use crate::tenant::Tenant;
use crate::throttle::{resource_units, Buckets, Class};
use crate::{GroundTruth, Licence, SimConfig, Stats};

pub struct State {
    pub config: SimConfig,
    pub base_url: String,
    /// Change it through [`State::tenant_mut`] only: that moves `generation`, which keeps
    /// `memo` honest.
    pub tenant: RwLock<Tenant>,
    /// Bumped on every write to `tenant` (under its write lock).
    pub generation: AtomicU64,
    /// What rendering derived from the tenant at one generation (filtered row lists, the
    /// directory audit log), so a page costs its own rows, not a scan of the tenant.
    pub memo: Mutex<render::Memo>,
    pub buckets: Mutex<Buckets>,
    pub faults: Mutex<Vec<Armed>>,
    pub stats: Mutex<Stats>,
    pub key: [u8; 32],
    pub cert: Option<RegisteredCert>,
    /// The traffic generator, if configured.
    pub generator: Option<crate::events::Generator>,
    /// Events pushed so far (their ids' sequence numbers).
    pub pushed: AtomicU64,
}

/// A response before it is put on the wire (or into a `$batch` envelope).
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

pub enum Body {
    Json(Value),
    /// JSON already written out (paged lists: their rows are serialised straight from the
    /// tenant rather than built as `Value`s first).
    Text(String),
    /// Bytes that are deliberately not valid JSON (faults).
    Raw(String),
}

impl Body {
    /// The JSON text of a well-formed body (a fault may cut it short).
    fn text(&self) -> Option<String> {
        match self {
            Body::Json(v) => Some(v.to_string()),
            Body::Text(s) => Some(s.clone()),
            Body::Raw(_) => None,
        }
    }
}

impl Reply {
    fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Body::Json(body),
        }
    }
}

/// Graph's error body (REFERENCE §3.3).
pub fn graph_error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(
        status,
        json!({"error": {"code": code, "message": message, "innerError": {
            "date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
            "request-id": uuid::Uuid::new_v4().to_string(),
            "client-request-id": uuid::Uuid::new_v4().to_string()}}}),
    )
}

/// One route: its stats label, throttle class, the permissions any one of which grants it, and
/// whether it needs a premium licence.
struct Route {
    label: &'static str,
    class: Class,
    any_of: &'static [&'static str],
    premium: bool,
}

const USERS_READ: &[&str] = &[
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
/// The registration report (docs-contrib
/// `authenticationmethodsroot-list-userregistrationdetails-permissions.md`).
const REGISTRATION: &[&str] = &["AuditLog.Read.All", "UserAuthenticationMethod.Read.All"];
/// Sign-in logs (docs-contrib `signin-list-permissions.md`).
const SIGN_INS: &[&str] = &["AuditLog.Read.All", "Directory.Read.All"];
/// The directory audit log (docs-contrib `directoryaudit-list-permissions.md`).
const AUDIT: &[&str] = &["AuditLog.Read.All"];
const POLICY_AM: &[&str] = &[
    "Policy.Read.AuthenticationMethod",
    "Policy.ReadWrite.AuthenticationMethod",
    "Policy.Read.All",
];
const POLICY_SD: &[&str] = &["Policy.Read.All", "Policy.ReadWrite.SecurityDefaults"];
/// Listing Conditional Access policies needs Policy.Read.All (docs-contrib
/// `conditionalaccessroot-list-policies-permissions.md`); Policy.ReadWrite.ConditionalAccess
/// alone writes but does not read.
const POLICY_CA: &[&str] = &["Policy.Read.All"];
const ROLES: &[&str] = &[
    "RoleManagement.Read.Directory",
    "RoleManagement.Read.All",
    "RoleManagement.ReadWrite.Directory",
    "Directory.Read.All",
];
/// PIM eligibility (`roleEligibilityScheduleInstances`), least privileged first.
const ROLE_ELIGIBILITY: &[&str] = &[
    "RoleEligibilitySchedule.Read.Directory",
    "RoleManagement.Read.Directory",
    "RoleManagement.Read.All",
    "RoleEligibilitySchedule.ReadWrite.Directory",
    "RoleManagement.ReadWrite.Directory",
];
const UAM: &[&str] = &[
    "UserAuthenticationMethod.Read.All",
    "UserAuthenticationMethod.ReadWrite.All",
];
/// `GET /subscribedSkus` (docs-contrib `subscribedsku-list-permissions.md`).
const ORGANIZATION: &[&str] = &[
    "Organization.Read.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
    "Organization.ReadWrite.All",
];
const PER_USER: &[&str] = &["Policy.Read.All", "Policy.ReadWrite.AuthenticationMethod"];
/// `authenticationStrengthPolicies` (REFERENCE §9.2: Policy.Read.All on the current page).
const STRENGTHS: &[&str] = &["Policy.Read.All"];
/// Directory settings and `getByIds`: Directory.Read.All (docs-contrib beta
/// `directorysetting-list.md`, v1.0 `directoryobject-getbyids.md`).
const SETTINGS: &[&str] = &["Directory.Read.All", "Directory.ReadWrite.All"];
const GET_BY_IDS: &[&str] = &["Directory.Read.All"];
const GROUPS: &[&str] = &[
    "GroupMember.Read.All",
    "Group.Read.All",
    "Directory.Read.All",
];

fn route(version: &str, rest: &[&str]) -> Option<Route> {
    let r = |label, class, any_of, premium| {
        Some(Route {
            label,
            class,
            any_of,
            premium,
        })
    };
    match (version, rest) {
        ("v1.0" | "beta", ["users"]) => r("users", Class::Directory, USERS_READ, false),
        ("v1.0" | "beta", ["reports", "authenticationMethods", "userRegistrationDetails"]) => r(
            "userRegistrationDetails",
            Class::Reports,
            REGISTRATION,
            true,
        ),
        ("v1.0" | "beta", ["policies", "authenticationMethodsPolicy"]) => r(
            "authenticationMethodsPolicy",
            Class::Directory,
            POLICY_AM,
            false,
        ),
        ("v1.0" | "beta", ["policies", "identitySecurityDefaultsEnforcementPolicy"]) => r(
            "identitySecurityDefaultsEnforcementPolicy",
            Class::Directory,
            POLICY_SD,
            false,
        ),
        ("v1.0" | "beta", ["identity", "conditionalAccess", "policies"]) => r(
            "conditionalAccessPolicies",
            Class::ConditionalAccess,
            POLICY_CA,
            true,
        ),
        ("v1.0" | "beta", ["roleManagement", "directory", "roleAssignments"]) => {
            r("roleAssignments", Class::Directory, ROLES, false)
        }
        ("v1.0" | "beta", ["roleManagement", "directory", "roleEligibilityScheduleInstances"]) => {
            r(
                "roleEligibilityScheduleInstances",
                Class::Directory,
                ROLE_ELIGIBILITY,
                false,
            )
        }
        ("v1.0" | "beta", ["users", _, "authentication", "methods"]) => {
            r("authenticationMethods", Class::AuthMethods, UAM, false)
        }
        ("v1.0" | "beta", ["users", _, "authentication", "temporaryAccessPassMethods"]) => {
            r("temporaryAccessPassMethods", Class::AuthMethods, UAM, false)
        }
        ("beta", ["users", _, "authentication", "requirements"]) => r(
            "perUserMfaRequirements",
            Class::AuthMethods,
            PER_USER,
            false,
        ),
        ("v1.0" | "beta", ["auditLogs", "signIns"]) => r("signIns", Class::Reports, SIGN_INS, true),
        ("v1.0" | "beta", ["subscribedSkus"]) => {
            r("subscribedSkus", Class::Directory, ORGANIZATION, false)
        }
        // Audit logs are in every edition (entra-docs includes/licensing-monitoring-health.md);
        // auditLogRoot is metered by the reports service (throttling-entra-logs-reports.md).
        ("v1.0" | "beta", ["auditLogs", "directoryAudits"]) => {
            r("directoryAudits", Class::Reports, AUDIT, false)
        }
        ("v1.0" | "beta", ["policies", "authenticationStrengthPolicies"]) => r(
            "authenticationStrengthPolicies",
            Class::Directory,
            STRENGTHS,
            false,
        ),
        // Beta only: v1.0 renamed the collection groupSettings.
        ("beta", ["settings"]) => r("directorySettings", Class::Directory, SETTINGS, false),
        ("v1.0" | "beta", ["directoryObjects", "getByIds"]) => {
            r("getByIds", Class::Directory, GET_BY_IDS, false)
        }
        (
            "v1.0" | "beta",
            ["groups", _, "transitiveMembers"]
            | ["groups", _, "transitiveMembers", "microsoft.graph.user"],
        ) => r("groupMembers", Class::Directory, GROUPS, false),
        _ => None,
    }
}

pub fn parse_query(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

impl State {
    /// The tenant, for writing: every change invalidates what rendering memoised.
    pub fn tenant_mut(&self) -> RwLockWriteGuard<'_, Tenant> {
        let guard = self.tenant.write().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        guard
    }
    /// The tenant's generation; stable while a read guard on `tenant` is held.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
    pub fn ground_truth(&self) -> GroundTruth {
        self.tenant
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .ground_truth(self.config.licence.as_str())
    }
    pub fn stats(&self) -> Stats {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    pub fn reset_stats(&self) {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = Stats::default();
    }
    pub fn set_faults(&self, faults: Vec<Fault>) {
        *self.faults.lock().unwrap_or_else(|e| e.into_inner()) =
            faults.into_iter().map(Armed::new).collect();
    }
    pub fn push_sign_ins(&self, mut list: Vec<crate::SimSignIn>) -> Vec<String> {
        let now = chrono::Utc::now();
        let delay = chrono::Duration::from_std(self.config.sign_in_delay).unwrap_or_default();
        let mut ids = Vec::with_capacity(list.len());
        for s in &mut list {
            crate::events::to_micros(s);
            let n = self.pushed.fetch_add(1, Ordering::AcqRel);
            if s.id.is_empty() {
                s.id = crate::events::derived_id(
                    &s.user_id,
                    s.created,
                    s.error_code as i64,
                    n ^ (1 << 40),
                );
            }
            // Always set: a listing begun before the push must not see it (its pages list what
            // was visible when it began).
            if s.visible_at.is_none() {
                s.visible_at = Some(s.created.max(now) + delay);
            }
            ids.push(s.id.clone());
        }
        let mut t = self.tenant_mut();
        // User keys may be UPNs: Graph lists the object id.
        for s in &mut list {
            if let Some(i) = t.find(&s.user_id) {
                s.user_id = t.users[i].id_string();
            }
        }
        t.sign_ins.extend(list);
        crate::events::sort_newest_first(&mut t.sign_ins);
        ids
    }

    pub fn push_audits(&self, mut list: Vec<crate::SimAudit>) -> Result<Vec<String>, String> {
        let now = chrono::Utc::now();
        let delay = chrono::Duration::from_std(self.config.audit_delay).unwrap_or_default();
        let mut t = self.tenant_mut();
        for a in &mut list {
            let i = t
                .find(&a.target_user_id)
                .ok_or_else(|| format!("no user {:?}", a.target_user_id))?;
            a.target_user_id = t.users[i].id_string();
            if a.target_upn.is_empty() {
                a.target_upn = t.users[i].upn.to_string();
            }
        }
        let mut ids = Vec::with_capacity(list.len());
        for a in &mut list {
            let n = self.pushed.fetch_add(1, Ordering::AcqRel);
            if a.id.is_empty() {
                a.id = crate::events::audit_id(&a.target_user_id, a.at, n ^ (1 << 40));
            }
            if a.visible_at.is_none() {
                a.visible_at = Some(a.at.max(now) + delay);
            }
            ids.push(a.id.clone());
        }
        t.audits.extend(list);
        t.audits
            .sort_by(|a, b| b.at.cmp(&a.at).then_with(|| b.id.cmp(&a.id)));
        Ok(ids)
    }

    /// Runs a scenario; `Err` for an unknown user.
    pub fn scenario(&self, s: &crate::Scenario) -> Result<Vec<String>, String> {
        use crate::events as ev;
        use crate::Scenario as S;
        let user = match s {
            S::UserFailsMfa { user, .. }
            | S::UserSucceedsMfa { user, .. }
            | S::UserReportsFraud { user, .. }
            | S::PromptBombing { user, .. }
            | S::RegistrationBlocked { user, .. }
            | S::UserDeletesPhone { user, .. } => user,
        };
        let (id, upn) = {
            let t = self.tenant.read().unwrap_or_else(|e| e.into_inner());
            let i = t.find(user).ok_or_else(|| format!("no user {user:?}"))?;
            (t.users[i].id_string(), t.users[i].upn.to_string())
        };
        let sign_ins = match s {
            S::UserFailsMfa {
                count, at, code, ..
            } => (0..*count)
                .map(|k| {
                    ev::mfa_failure(
                        &id,
                        *at + chrono::Duration::seconds(30 * i64::from(k)),
                        *code,
                    )
                })
                .collect(),
            S::UserSucceedsMfa { at, .. } => vec![ev::mfa_success(&id, *at)],
            S::UserReportsFraud { at, .. } => vec![ev::fraud_report(&id, *at)],
            S::PromptBombing {
                count,
                at,
                within_seconds,
                ..
            } => ev::prompt_bombing(
                &id,
                *count,
                *at,
                chrono::Duration::seconds(*within_seconds as i64),
            ),
            S::RegistrationBlocked { at, .. } => ev::registration_blocked(&id, *at),
            S::UserDeletesPhone { at, .. } => {
                let phones = ["mobilePhone", "alternateMobilePhone", "officePhone"];
                let mut had = Vec::new();
                {
                    let mut t = self.tenant_mut();
                    if let Some(i) = t.find(&id) {
                        let u = &mut t.users[i];
                        for p in phones {
                            if let Some(b) = crate::tenant::method_index(p) {
                                if u.has(b) {
                                    had.push(p);
                                    u.methods &= !(1 << b);
                                }
                            }
                        }
                    }
                }
                let mut audit = ev::SimAudit::security_info(
                    &id,
                    *at,
                    ev::activity::USER_DELETED,
                    "User deleted Phone method",
                );
                audit.initiated_by = Some(ev::AuditInitiator::User {
                    id: id.clone(),
                    upn: upn.clone(),
                });
                audit.modified = vec![(
                    "StrongAuthenticationPhoneAppDetail".into(),
                    format!("{had:?}"),
                    "[]".into(),
                )];
                return self.push_audits(vec![audit]);
            }
        };
        Ok(self.push_sign_ins(sign_ins))
    }

    pub fn watch_truth(
        &self,
        at: chrono::DateTime<chrono::Utc>,
        th: &crate::WatchThresholds,
    ) -> crate::WatchTruth {
        let t = self.tenant.read().unwrap_or_else(|e| e.into_inner());
        let mut generated = Vec::new();
        if let Some(g) = &self.generator {
            // Generated traffic is read back one hour ([`GENERATED_LOOKBACK_MINUTES`]): its
            // users succeed at MFA every few minutes, so an older generated failure has been
            // resolved long since (at 10,000 a minute a day would be 14 million rows).
            let from = at - chrono::Duration::minutes(crate::events::GENERATED_LOOKBACK_MINUTES);
            if let Some((lo, hi)) = g.slots(from, at) {
                let ids = |i: usize| t.users[i].id_string();
                generated.extend((lo..=hi).map(|k| g.event(k, &ids, t.users.len())));
            }
        }
        crate::events::watch_states(t.sign_ins.iter().chain(generated.iter()), at, th)
    }

    pub(crate) fn record(&self, label: &str, status: u16) {
        let mut s = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        *s.requests
            .entry(label.to_string())
            .or_default()
            .entry(status)
            .or_default() += 1;
    }

    /// The first armed fault matching `pred` for `label` that fires now.
    fn fire(&self, label: &str, pred: impl Fn(&Fault) -> bool) -> Option<Fault> {
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        for a in faults.iter_mut() {
            if a.fault.applies_to(label) && pred(&a.fault) && a.fire() {
                return Some(a.fault.clone());
            }
        }
        None
    }

    fn has_fault(&self, label: &str, pred: impl Fn(&Fault) -> bool) -> Option<Fault> {
        let faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        faults
            .iter()
            .find(|a| a.fault.applies_to(label) && pred(&a.fault))
            .map(|a| a.fault.clone())
    }

    pub(crate) fn token_lifetime(&self) -> i64 {
        let faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        faults
            .iter()
            .find_map(|a| match a.fault {
                Fault::TokenExpiry { seconds } => Some(seconds as i64),
                _ => None,
            })
            .unwrap_or(self.config.token_lifetime.as_secs() as i64)
    }

    /// A fault aimed at an envelope (`$batch`, `token`): waits if slow, and answers its status
    /// or 429 in place of the real answer (Graph's error shape, or Entra ID's for `token`).
    async fn envelope_fault(&self, label: &str) -> Option<Reply> {
        if let Some(Fault::Slow { delay_ms, .. }) =
            self.has_fault(label, |f| matches!(f, Fault::Slow { .. }))
        {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        }
        let token = label == "token";
        let fired = self.fire(label, |f| {
            matches!(f, Fault::Status { .. } | Fault::Throttle { .. })
        })?;
        let (status, retry_after) = match fired {
            Fault::Status {
                status,
                retry_after,
                ..
            } => (status, retry_after),
            Fault::Throttle { retry_after, .. } => (
                429,
                Some(retry_after.unwrap_or(2.0 / self.config.time_scale.max(1e-9))),
            ),
            _ => return None,
        };
        let mut reply = match (token, status) {
            // entra-docs reference-error-codes: 90024 RequestBudgetExceededError, 90033
            // MsodsServiceUnavailable, 90023 InvalidRequest; OAuth's temporarily_unavailable.
            (true, 429) => auth::aadsts(429, "temporarily_unavailable", 90024, "RequestBudgetExceededError: A transient error has occurred. Try again.").into_reply(),
            (true, s) if s >= 500 => auth::aadsts(s, "temporarily_unavailable", 90033, "MsodsServiceUnavailable: The Microsoft Online Directory Service (MSODS) isn't available.").into_reply(),
            (true, s) => auth::aadsts(s, "invalid_request", 90023, "InvalidRequest: The Authentication Service request isn't valid.").into_reply(),
            (false, 429) => self.throttled(Class::Directory, Duration::ZERO),
            (false, 503) => graph_error(503, "serviceNotAvailable", "The service is temporarily unavailable."),
            (false, s) => graph_error(s, "generalException", "An unspecified error has occurred."),
        };
        if let Some(ra) = retry_after {
            reply.headers.retain(|(h, _)| *h != "Retry-After");
            reply.headers.push(("Retry-After", format!("{ra}")));
        }
        Some(reply)
    }

    /// A `malformed` or `truncated` fault aimed at `label` spoils a 200's body.
    fn corrupt(&self, label: &str, reply: &mut Reply) {
        if reply.status != 200 {
            return;
        }
        if self
            .fire(label, |f| matches!(f, Fault::Malformed { .. }))
            .is_some()
        {
            reply.body = Body::Raw("<html><body>Service Unavailable</body></html>".into());
        } else if self
            .fire(label, |f| matches!(f, Fault::Truncated { .. }))
            .is_some()
        {
            if let Some(text) = reply.body.text() {
                reply.body = Body::Raw(text[..text.len() / 2].to_string());
            }
        }
    }

    /// The application permissions a token issued now carries: the granted ones less those a
    /// `revoke` fault removed.
    pub(crate) fn roles_now(&self) -> Vec<String> {
        let faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        self.config
            .granted_roles
            .iter()
            .filter(|r| {
                !faults.iter().any(|a| {
                    matches!(&a.fault, Fault::Revoke { permission } if permission.eq_ignore_ascii_case(r))
                })
            })
            .cloned()
            .collect()
    }

    /// Answers one Graph request (`path` starts with `/v1.0` or `/beta`).
    pub async fn dispatch(
        &self,
        method: &Method,
        path: &str,
        query: &str,
        bearer: Option<&str>,
        // The request carried `ConsistencyLevel: eventual` (advanced directory queries need it).
        eventual: bool,
        body: &[u8],
    ) -> (String, Reply) {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (version, rest) = match segs.split_first() {
            Some((v, rest)) => (*v, rest),
            None => ("", &[][..]),
        };
        if rest == ["$batch"] && (version == "v1.0" || version == "beta") {
            if method != Method::POST {
                return (
                    "$batch".into(),
                    graph_error(
                        405,
                        "Request_BadRequest",
                        "Specified HTTP method is not allowed for the request target.",
                    ),
                );
            }
            if let Some(reply) = self.envelope_fault("$batch").await {
                return ("$batch".into(), reply);
            }
            let mut reply = Box::pin(self.batch(version, bearer, body)).await;
            self.corrupt("$batch", &mut reply);
            return ("$batch".into(), reply);
        }
        let Some(route) = route(version, rest) else {
            return (
                "unknown".into(),
                graph_error(
                    404,
                    "Request_ResourceNotFound",
                    &format!(
                        "Resource not found for the segment '{}'.",
                        rest.last().unwrap_or(&"")
                    ),
                ),
            );
        };
        let label = route.label.to_string();
        // getByIds is an action: POST only; everything else here is read with GET.
        let wanted = if route.label == "getByIds" {
            Method::POST
        } else {
            Method::GET
        };
        if method != wanted {
            return (
                label,
                graph_error(
                    405,
                    "Request_BadRequest",
                    "Specified HTTP method is not allowed for the request target.",
                ),
            );
        }
        if let Some(Fault::Slow { delay_ms, .. }) =
            self.has_fault(&label, |f| matches!(f, Fault::Slow { .. }))
        {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        }
        let roles = match bearer.map(|t| auth::verify(&self.key, t)) {
            Some(Ok(r)) => r,
            Some(Err(why)) => return (label, graph_error(401, "InvalidAuthenticationToken", why)),
            None => {
                return (
                    label,
                    graph_error(401, "InvalidAuthenticationToken", "Access token is empty."),
                )
            }
        };
        if !route
            .any_of
            .iter()
            .any(|p| roles.iter().any(|r| r.eq_ignore_ascii_case(p)))
        {
            // The directory refuses with Authorization_RequestDenied; the reports and audit-log
            // service names the permission it wanted (docs/graph.md, Permissions).
            let reply = if matches!(
                route.label,
                "userRegistrationDetails" | "signIns" | "directoryAudits"
            ) {
                graph_error(
                    403,
                    "Authentication_MSGraphPermissionMissing",
                    &format!(
                        "Calling principal does not have required MSGraph permissions {}",
                        route.any_of.first().copied().unwrap_or("AuditLog.Read.All")
                    ),
                )
            } else {
                graph_error(
                    403,
                    "Authorization_RequestDenied",
                    "Insufficient privileges to complete the operation.",
                )
            };
            return (label, reply);
        }
        let licence_fault = self
            .has_fault(&label, |f| matches!(f, Fault::Licence { .. }))
            .is_some();
        let licence_flaky = self
            .fire(&label, |f| {
                matches!(
                    f,
                    Fault::LicenceIntermittent { .. } | Fault::LicenceRandom { .. }
                )
            })
            .is_some();
        if (route.premium && self.config.licence == Licence::Free) || licence_fault || licence_flaky
        {
            return (
                label,
                graph_error(
                    403,
                    "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
                    "Neither tenant is B2C or tenant doesn't have premium license",
                ),
            );
        }
        // PIM needs P2 (or ID Governance); without it Graph answers 400, not the reports' 403
        // (maester365/maester#1421).
        if route.label == "roleEligibilityScheduleInstances" && self.config.licence != Licence::P2 {
            return (
                label,
                graph_error(
                    400,
                    "AadPremiumLicenseRequired",
                    "The tenant needs to have Microsoft Entra ID P2 or Microsoft Entra ID Governance license.",
                ),
            );
        }
        if let Some(Fault::Status {
            status,
            retry_after,
            ..
        }) = self.fire(&label, |f| matches!(f, Fault::Status { .. }))
        {
            let mut reply = match status {
                503 => graph_error(
                    503,
                    "serviceNotAvailable",
                    "The service is temporarily unavailable.",
                ),
                504 => graph_error(
                    504,
                    "UnknownError",
                    "The upstream service did not respond in time.",
                ),
                // The authentication-methods service answers its own 403s with `accessDenied`.
                403 if matches!(
                    label.as_str(),
                    "authenticationMethods" | "temporaryAccessPassMethods"
                ) =>
                {
                    graph_error(403, "accessDenied", "Request Authorization failed")
                }
                // The reports and audit-log service names the permission it wanted.
                403 if matches!(
                    label.as_str(),
                    "userRegistrationDetails" | "signIns" | "directoryAudits"
                ) =>
                {
                    graph_error(
                        403,
                        "Authentication_MSGraphPermissionMissing",
                        "Calling principal does not have required MSGraph permissions AuditLog.Read.All, Directory.Read.All",
                    )
                }
                403 => graph_error(
                    403,
                    "Authorization_RequestDenied",
                    "Insufficient privileges to complete the operation.",
                ),
                401 => graph_error(
                    401,
                    "InvalidAuthenticationToken",
                    "Access token has expired or is not yet valid.",
                ),
                s => graph_error(s, "generalException", "An unspecified error has occurred."),
            };
            if let Some(ra) = retry_after {
                reply.headers.push(("Retry-After", format!("{ra}")));
            }
            return (label, reply);
        }
        if let Some(Fault::Throttle { retry_after, .. }) =
            self.fire(&label, |f| matches!(f, Fault::Throttle { .. }))
        {
            let wait = retry_after.unwrap_or(2.0 / self.config.time_scale.max(1e-9));
            return (
                label,
                self.throttled(route.class, Duration::from_secs_f64(wait.max(0.0))),
            );
        }
        let params = parse_query(query);
        let cost = if route.class == Class::Directory {
            resource_units(path, &params)
        } else {
            1.0
        };
        let ratio = {
            let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
            let bucket = buckets.get(route.class);
            if let Err(wait) = bucket.take(cost) {
                drop(buckets);
                return (label, self.throttled(route.class, wait));
            }
            bucket.used_ratio()
        };
        let mut reply = {
            let tenant = self.tenant.read().unwrap_or_else(|e| e.into_inner());
            let ctx = render::Ctx {
                tenant: &tenant,
                base: &self.base_url,
                version,
                params: &params,
                state: self,
                eventual,
                body,
            };
            match render::answer(&ctx, route.label, rest) {
                Ok(body) => Reply {
                    status: 200,
                    headers: Vec::new(),
                    body,
                },
                Err(reply) => reply,
            }
        };
        if route.class == Class::Directory {
            reply
                .headers
                .push(("x-ms-resource-unit", format!("{cost}")));
        }
        if ratio > 0.8 {
            reply.headers.push((
                "x-ms-throttle-limit-percentage",
                format!("{:.1}", ratio.min(1.8)),
            ));
        }
        if reply.status == 200 {
            if self
                .fire(&label, |f| matches!(f, Fault::Malformed { .. }))
                .is_some()
            {
                reply.body = Body::Raw("<html><body>Service Unavailable</body></html>".into());
            } else if self
                .fire(&label, |f| matches!(f, Fault::Truncated { .. }))
                .is_some()
            {
                if let Some(text) = reply.body.text() {
                    reply.body = Body::Raw(text[..text.len() / 2].to_string());
                }
            }
        }
        (label, reply)
    }

    fn throttled(&self, class: Class, wait: Duration) -> Reply {
        let mut reply = Reply::json(
            429,
            json!({"error": {"code": "TooManyRequests", "message": "Too many requests", "innerError": {
                "code": "429", "date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
                "message": "Please retry after", "request-id": uuid::Uuid::new_v4().to_string(), "status": "429"}}}),
        );
        // Conditional Access (like Identity Protection) never says how long to wait.
        if class != Class::ConditionalAccess {
            reply.headers.push((
                "Retry-After",
                format!("{:.3}", wait.as_secs_f64().max(0.001)),
            ));
        }
        let scope = format!(
            "Tenant_Application/Read/{}/{}",
            self.config.client_id, self.config.tenant_id
        );
        reply.headers.push(("x-ms-throttle-scope", scope));
        reply.headers.push((
            "x-ms-throttle-information",
            "ResourceUnitLimitExceeded".into(),
        ));
        reply
    }

    async fn batch(&self, version: &str, bearer: Option<&str>, body: &[u8]) -> Reply {
        let Ok(doc) = serde_json::from_slice::<Value>(body) else {
            return graph_error(400, "BadRequest", "Invalid batch payload format.");
        };
        let Some(requests) = doc.get("requests").and_then(Value::as_array) else {
            return graph_error(400, "BadRequest", "Invalid batch payload format.");
        };
        if requests.len() > 20 {
            return graph_error(
                400,
                "BadRequest",
                "Number of batch request steps exceeds the maximum of 20.",
            );
        }
        let mut ids = HashSet::new();
        for r in requests {
            let id = r
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_ascii_lowercase();
            if id.is_empty() || !ids.insert(id) {
                return graph_error(
                    400,
                    "BadRequest",
                    "Batch request ids must be present and unique.",
                );
            }
        }
        let mut responses = Vec::with_capacity(requests.len());
        // Answered in reverse: clients must correlate by id, not by position.
        for r in requests.iter().rev() {
            let id = r
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let method = r.get("method").and_then(Value::as_str).unwrap_or("GET");
            let url = r.get("url").and_then(Value::as_str).unwrap_or("");
            let (label, reply) = if !url.starts_with('/') {
                (
                    "invalid".to_string(),
                    graph_error(
                        400,
                        "BadRequest",
                        "Batch request urls must be relative and start with '/'.",
                    ),
                )
            } else {
                let (p, q) = url.split_once('?').unwrap_or((url, ""));
                let m = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
                let eventual = r
                    .get("headers")
                    .and_then(Value::as_object)
                    .and_then(|h| {
                        h.iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case("ConsistencyLevel"))
                    })
                    .and_then(|(_, v)| v.as_str())
                    .is_some_and(|v| v.eq_ignore_ascii_case("eventual"));
                self.dispatch(&m, &format!("/{version}{p}"), q, bearer, eventual, b"")
                    .await
            };
            self.record(&label, reply.status);
            let headers: serde_json::Map<String, Value> =
                std::iter::once(("Content-Type".to_string(), Value::from("application/json")))
                    .chain(
                        reply
                            .headers
                            .iter()
                            .map(|(k, v)| (k.to_string(), Value::from(v.clone()))),
                    )
                    .collect();
            let body = match reply.body {
                Body::Json(v) => v,
                Body::Text(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
                Body::Raw(s) => Value::String(s),
            };
            responses
                .push(json!({"id": id, "status": reply.status, "headers": headers, "body": body}));
        }
        Reply::json(200, json!({"responses": responses}))
    }
}

pub fn router(state: Arc<State>) -> Router {
    use axum::routing::get;
    Router::new()
        // Managed identity (graph-sim/src/identity.rs): IMDS, App Service, Azure Arc.
        .route(
            "/metadata/identity/oauth2/token",
            get(crate::identity::imds),
        )
        .route("/msi/token", get(crate::identity::app_service))
        .route(
            "/arc/metadata/identity/oauth2/token",
            get(crate::identity::arc),
        )
        .fallback(handle)
        .with_state(state)
}

fn to_response(reply: Reply, client_request_id: Option<&str>) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // `to_vec` writes straight into the buffer; `to_string` goes through `fmt` and costs more.
    let body: Vec<u8> = match reply.body {
        Body::Json(v) => serde_json::to_vec(&v).unwrap_or_default(),
        Body::Text(s) | Body::Raw(s) => s.into_bytes(),
    };
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert("content-type", "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8".parse().unwrap_or_else(|_| unreachable!()));
    if let Ok(v) = uuid::Uuid::new_v4().to_string().parse() {
        h.insert("request-id", v);
    }
    if let Some(v) = client_request_id.and_then(|c| c.parse().ok()) {
        h.insert("client-request-id", v);
    }
    for (k, v) in reply.headers {
        if let Ok(v) = v.parse() {
            h.insert(k, v);
        }
    }
    resp
}

async fn handle(
    AxState(state): AxState<Arc<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond(&state, method, uri, headers, body).await
}

/// Answers one HTTP request for this tenant: the token endpoint, Graph, or `/_sim/…`.
pub async fn respond(
    state: &State,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    let client_request_id = headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if !state.config.latency.is_zero() {
        tokio::time::sleep(state.config.latency).await;
    }
    if let Some(rest) = path.strip_prefix("/_sim/") {
        return control(state, &method, rest, &body);
    }
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    if let [tenant, "oauth2", "v2.0", "token"] = segs.as_slice() {
        if method != Method::POST {
            return to_response(
                auth::aadsts(
                    405,
                    "invalid_request",
                    900561,
                    "The endpoint only accepts POST requests.",
                )
                .into_reply(),
                None,
            );
        }
        let form = parse_query(&String::from_utf8_lossy(&body));
        let basic = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| {
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b.trim()).ok()
            })
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                s.split_once(':')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
            });
        if let Some(reply) = state.envelope_fault("token").await {
            state.record("token", reply.status);
            return to_response(reply, None);
        }
        let roles = state.roles_now();
        let domain = state
            .tenant
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .domain
            .clone();
        let issuer = Issuer {
            tenant_id: &state.config.tenant_id,
            tenant_domain: &domain,
            client_id: &state.config.client_id,
            client_secret: &state.config.client_secret,
            cert: state.cert.as_ref(),
            roles: &roles,
            lifetime_secs: state.token_lifetime(),
            key: &state.key,
            token_url: format!("{}/{tenant}/oauth2/v2.0/token", state.base_url),
            federated: &state.config.federated_credentials,
        };
        let (status, body) = issuer.token(tenant, &form, basic);
        state.record("token", status);
        if status == 200 {
            state
                .stats
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .tokens_issued += 1;
        }
        let mut reply = Reply::json(status, body);
        state.corrupt("token", &mut reply);
        return to_response(reply, None);
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let eventual = headers
        .get("consistencylevel")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("eventual"));
    let (label, reply) = state
        .dispatch(&method, &path, &query, bearer.as_deref(), eventual, &body)
        .await;
    if label != "$batch" || reply.status != 200 {
        state.record(&label, reply.status);
    } else {
        state.record("$batch", 200);
    }
    to_response(reply, client_request_id.as_deref())
}

trait IntoReply {
    fn into_reply(self) -> Reply;
}
impl IntoReply for (u16, Value) {
    fn into_reply(self) -> Reply {
        Reply::json(self.0, self.1)
    }
}

/// `POST /_sim/events`.
#[derive(serde::Deserialize)]
struct EventsBody {
    #[serde(default)]
    sign_ins: Vec<crate::SimSignIn>,
    #[serde(default)]
    directory_audits: Vec<crate::SimAudit>,
    #[serde(default)]
    scenarios: Vec<crate::Scenario>,
}

/// `POST /_sim/watch-truth`.
#[derive(serde::Deserialize)]
struct WatchTruthBody {
    #[serde(default)]
    at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    thresholds: Option<crate::WatchThresholds>,
}

/// `/_sim/…`: the test's side door.
fn control(state: &State, method: &Method, rest: &str, body: &[u8]) -> Response {
    match (method.as_str(), rest) {
        ("GET", "stats") => to_response(Reply::json(200, json!(state.stats())), None),
        ("POST", "events") => match serde_json::from_slice::<EventsBody>(body) {
            Ok(ev) => {
                let mut out = json!({"sign_ins": state.push_sign_ins(ev.sign_ins)});
                match state.push_audits(ev.directory_audits) {
                    Ok(ids) => out["directory_audits"] = json!(ids),
                    Err(e) => return to_response(graph_error(400, "BadRequest", &e), None),
                }
                let mut scenarios = Vec::new();
                for s in &ev.scenarios {
                    match state.scenario(s) {
                        Ok(ids) => scenarios.push(json!(ids)),
                        Err(e) => {
                            return to_response(
                                graph_error(404, "Request_ResourceNotFound", &e),
                                None,
                            )
                        }
                    }
                }
                out["scenarios"] = json!(scenarios);
                to_response(Reply::json(200, out), None)
            }
            Err(e) => to_response(
                graph_error(400, "BadRequest", &format!("events: {e}")),
                None,
            ),
        },
        ("POST", "watch-truth") => match serde_json::from_slice::<WatchTruthBody>(body) {
            Ok(q) => to_response(
                Reply::json(
                    200,
                    json!(state.watch_truth(
                        q.at.unwrap_or_else(chrono::Utc::now),
                        &q.thresholds.unwrap_or_default()
                    )),
                ),
                None,
            ),
            Err(e) => to_response(
                graph_error(400, "BadRequest", &format!("watch-truth: {e}")),
                None,
            ),
        },
        ("GET", "ground-truth") => to_response(Reply::json(200, json!(state.ground_truth())), None),
        ("POST", "faults") => match serde_json::from_slice::<Vec<Fault>>(body)
            .map_err(|e| e.to_string())
            .and_then(|f| {
                f.iter().try_for_each(Fault::check)?;
                Ok(f)
            }) {
            Ok(faults) => {
                state.set_faults(faults);
                to_response(Reply::json(200, json!({"ok": true})), None)
            }
            Err(e) => to_response(
                graph_error(400, "BadRequest", &format!("faults: {e}")),
                None,
            ),
        },
        ("PATCH", path) if path.starts_with("users/") => {
            let id = &path["users/".len()..];
            let Ok(patch) = serde_json::from_slice::<Value>(body) else {
                return to_response(graph_error(400, "BadRequest", "body is not JSON"), None);
            };
            let mut t = state.tenant_mut();
            let Some(i) = t.find(id) else {
                return to_response(
                    graph_error(404, "Request_ResourceNotFound", "no such user"),
                    None,
                );
            };
            let user = &mut t.users[i];
            if let Some(methods) = patch.get("methods").and_then(Value::as_array) {
                let names: Vec<String> = methods
                    .iter()
                    .filter_map(|m| m.as_str().map(str::to_owned))
                    .collect();
                user.set_methods(&names);
            }
            if let Some(enabled) = patch.get("account_enabled").and_then(Value::as_bool) {
                user.enabled = enabled;
            }
            to_response(Reply::json(200, json!({"ok": true})), None)
        }
        _ => to_response(
            graph_error(
                404,
                "Request_ResourceNotFound",
                "unknown simulator control path",
            ),
            None,
        ),
    }
}
