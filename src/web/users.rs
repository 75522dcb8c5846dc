//! The helpdesk's user pages (issue 13): `/users?q=` finds a user by the start of their UPN or
//! display name (two index ranges, `Store::search_users`), and `/users/{key}` (UPN,
//! case-insensitive, or object id) shows one user as the person taking the lockout call needs
//! them: identity, methods and their recovery families, roles, TAP, lockout detections, recent
//! security-info changes, findings, and the recovery playbook for this user with its exact
//! commands (`watch::recovery::plan` for the open detection, else as for a would-be lockout).
//!
//! Every value is precomputed here as text (the templates only print, auto-escaped); links to a
//! user are `/users/{web::encode(upn)}`. Each store call is timed (`Timing::db`) for the
//! `Server-Timing` header; none reads more than one user's rows or one index range.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};

use super::{encode, rfc3339, when, Chrome, Timing, WebError};
use crate::daemon::Shared;
use crate::state::{StoredDetection, StoredFinding, StoredSecurityEvent, StoredUser, UserChange};
use crate::watch::posture::{self as wposture, family_words};
use crate::watch::recovery::{self, Recovery};
use crate::watch::{Detection, LockoutState};

/// At most this many users are listed by a search.
pub const SEARCH_LIMIT: usize = 50;
/// A longer query is refused (no UPN is longer than 113 characters).
const MAX_QUERY: usize = 256;
/// At most this many security-info events, detections and changes on a user's page.
const USER_EVENTS: usize = 50;
const USER_DETECTIONS: usize = 50;
const USER_CHANGES: usize = 30;

/// A time for `<time datetime>`: the exact value and the words shown.
pub struct When {
    pub rfc: String,
    pub text: String,
}

impl When {
    fn of(t: DateTime<Utc>) -> When {
        When {
            rfc: rfc3339(t),
            text: when(t),
        }
    }
}

/// One row of the search's results.
pub struct ResultRow {
    pub id: String,
    pub href: String,
    pub display_name: String,
    pub upn: String,
    pub user_type: &'static str,
    pub enabled: &'static str,
    pub admin: &'static str,
    /// The number of MFA-capable recovery families, or "unknown".
    pub families: String,
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

impl ResultRow {
    fn of(u: &StoredUser) -> ResultRow {
        ResultRow {
            id: u.id.clone(),
            href: user_href(&u.user_principal_name),
            display_name: u.display_name.clone(),
            upn: u.user_principal_name.clone(),
            user_type: u.user_type,
            enabled: yes_no(u.account_enabled),
            admin: yes_no(u.is_admin),
            families: u
                .mfa_families
                .as_ref()
                .map_or_else(|| "unknown".to_string(), |f| f.len().to_string()),
        }
    }
}

/// `/users/{encoded upn}`: the link to a user's page.
pub fn user_href(upn: &str) -> String {
    format!("/users/{}", encode(upn))
}

#[derive(Template)]
#[template(path = "search.html")]
pub struct SearchPage {
    pub chrome: Chrome,
    /// The query as typed (trimmed); empty: the page explains the search.
    pub q: String,
    pub results: Vec<ResultRow>,
    /// More than [`SEARCH_LIMIT`] users match.
    pub more: bool,
    pub limit: usize,
}

/// `GET /users?q=`: users whose UPN or display name starts with `q`.
pub async fn search(
    super::Tenant(s): super::Tenant,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, WebError> {
    let q = params
        .get("q")
        .map(|q| q.trim().to_string())
        .unwrap_or_default();
    if q.chars().count() > MAX_QUERY {
        return Err(super::bad_parameter(
            "q",
            format!("at most {MAX_QUERY} characters: the start of a UPN or a display name"),
        ));
    }
    super::page(&s, move |s, timing| {
        let tenant = s.config().tenant.tenant_id.clone();
        let mut chrome = Chrome::new(s, search_title(&q), "users");
        chrome.query = q.clone();
        let mut results = Vec::new();
        let mut more = false;
        if !q.is_empty() {
            let found = timing.db(|| s.store.search_users(&tenant, &q, SEARCH_LIMIT + 1))?;
            more = found.len() > SEARCH_LIMIT;
            results = found.iter().take(SEARCH_LIMIT).map(ResultRow::of).collect();
        }
        Ok(SearchPage {
            chrome,
            q,
            results,
            more,
            limit: SEARCH_LIMIT,
        })
    })
    .await
}

fn search_title(q: &str) -> String {
    if q.is_empty() {
        "Find a user".to_string()
    } else {
        format!("Users: {q}")
    }
}

/// One method of the user.
pub struct MethodRow {
    pub name: &'static str,
    pub description: &'static str,
    pub family: &'static str,
    pub family_words: String,
    pub phishing_resistant: &'static str,
    pub mfa_capable: &'static str,
}

pub struct RoleRow {
    pub name: &'static str,
    /// `active` or `eligible`.
    pub assignment: &'static str,
}

pub struct DetectionRow {
    pub state: String,
    pub open: bool,
    pub codes: String,
    pub first_seen: When,
    pub last_seen: When,
    pub resolved_at: Option<When>,
    pub detail: String,
}

pub struct EventRow {
    pub created: When,
    pub activity: String,
    pub by: String,
    pub method: String,
    pub detail: String,
    /// The severity of a notable event ("high", …); empty when not notable.
    pub notable: String,
}

pub struct ChangeRow {
    pub at: When,
    pub audit_id: i64,
    /// What changed, one line each ("Lost recovery family: Mobile phone", …).
    pub lines: Vec<String>,
}

pub struct FindingRow {
    pub rule: String,
    pub rule_href: String,
    /// `open` or `resolved`.
    pub state: &'static str,
    pub severity: String,
    pub detail: String,
    pub excepted: bool,
    pub first_seen: When,
    pub last_seen: When,
    pub resolved_at: Option<When>,
}

pub struct StepRow {
    pub n: usize,
    pub title: String,
    pub command: String,
    pub graph: String,
    pub destructive: bool,
    pub warning: String,
}

pub struct AdminRow {
    pub href: String,
    pub upn: String,
    pub display_name: String,
}

/// The user's Temporary Access Pass and the tenant's TAP policy.
pub struct TapView {
    /// `none`, `usable` or `not-usable`.
    pub state: &'static str,
    /// What to say about the pass ("usable, one-time, 60 minutes, from …").
    pub words: String,
    pub start: Option<When>,
    /// The TAP policy as the last audit read it (or "not known").
    pub policy: String,
    /// Whether the playbook can start with a TAP, and why (not).
    pub ready: bool,
    pub ready_reason: String,
}

/// What the playbook was planned for.
pub struct Playbook {
    /// "the open locked-out detection" or "a would-be lockout (no open detection)".
    pub basis: String,
    pub steps: Vec<StepRow>,
    pub notes: Vec<String>,
    pub admins: Vec<AdminRow>,
}

/// One user, as the page shows them.
pub struct UserView {
    pub heading: String,
    pub upn: String,
    pub id: String,
    pub user_type: &'static str,
    pub enabled: &'static str,
    pub synced: &'static str,
    pub admin: &'static str,
    pub deleted_at: Option<When>,
    pub first_seen: When,
    pub changed_at: When,
    pub audit_id: i64,
    pub methods_known: bool,
    pub methods: Vec<MethodRow>,
    pub unknown_methods: u8,
    pub default_method: String,
    pub families_known: bool,
    pub families: Vec<String>,
    pub family_count: usize,
    pub no_backup: bool,
    pub phishing_resistant: &'static str,
    pub per_user_mfa: String,
    pub roles: Vec<RoleRow>,
    pub tap: TapView,
    pub lockout_state: String,
    pub mfa_failures: String,
    pub detections: Vec<DetectionRow>,
    pub events: Vec<EventRow>,
    pub changes: Vec<ChangeRow>,
    pub findings: Vec<FindingRow>,
    pub open_findings: usize,
    pub playbook: Playbook,
    pub api_href: String,
}

#[derive(Template)]
#[template(path = "user.html")]
pub struct UserPage {
    pub chrome: Chrome,
    /// `None`: nobody by that key (the page is a 404 with a search link).
    pub user: Option<Box<UserView>>,
    pub key: String,
    pub search_href: String,
}

/// `GET /users/{key}`: one user by UPN (case-insensitive) or object id.
pub async fn page(
    super::Tenant(s): super::Tenant,
    Path(key): Path<String>,
) -> Result<Response, WebError> {
    let key = key.trim().to_string();
    if key.is_empty() || key.chars().count() > MAX_QUERY {
        return Err(super::bad_parameter(
            "key",
            format!("a UPN or an object id, at most {MAX_QUERY} characters"),
        ));
    }
    let found = Arc::new(AtomicBool::new(false));
    let seen = found.clone();
    let mut response = super::page(&s, move |s, timing| {
        let page = load(s, timing, &key, Utc::now())?;
        seen.store(page.user.is_some(), Ordering::Relaxed);
        Ok(page)
    })
    .await?;
    if !found.load(Ordering::Relaxed) {
        *response.status_mut() = StatusCode::NOT_FOUND;
    }
    Ok(response)
}

/// Reads everything the page shows of `key` from the store.
fn load(
    s: &Shared,
    timing: &mut Timing,
    key: &str,
    now: DateTime<Utc>,
) -> Result<UserPage, WebError> {
    let config = s.config();
    let tenant = config.tenant.tenant_id.as_str();
    let store = &s.store;
    let Some(user) = timing.db(|| store.user(tenant, key))? else {
        return Ok(UserPage {
            chrome: Chrome::new(s, "No such user", "users"),
            user: None,
            key: key.to_string(),
            search_href: format!("/users?q={}", encode(key)),
        });
    };
    let findings = timing.db(|| store.user_findings(tenant, &user.user_principal_name))?;
    let detections = timing.db(|| store.user_detections(tenant, &user.id))?;
    let events = timing.db(|| store.user_security_events(tenant, &user.id))?;
    let changes = timing.db(|| store.user_changes(tenant, &user.id, USER_CHANGES))?;
    let tap = timing.db(|| crate::watch::run::stored_tap(store, tenant));
    let admins = timing.db(|| {
        store.users_with_active_roles(
            tenant,
            &wposture::MFA_RESET_ROLES,
            crate::watch::run::ADMINS_LISTED,
        )
    })?;
    let admins = wposture::recovery_admins(&admins);
    let posture = wposture::posture(Some(&user), tap.as_ref(), &admins, None);
    let open = open_detection(&detections);
    let (basis, plan) = match open.and_then(detection_of) {
        Some(d) => (
            format!("the open {} detection", d.state.as_str()),
            Some(recovery::plan(&d, &posture)),
        ),
        None => (
            "a would-be lockout (no open detection): what to do if they call locked out"
                .to_string(),
            recovery::plan_for_user(&user, &posture),
        ),
    };
    let chrome = Chrome::new(s, heading(&user), "users");
    let view = view(
        &user,
        Inputs {
            findings: &findings,
            detections: &detections,
            events: &events,
            changes: &changes,
            tap: tap.as_ref(),
            basis,
            plan: plan.as_ref(),
            now,
            failure_codes: &s.config().graph.mfa_failure_codes,
        },
    );
    Ok(UserPage {
        chrome,
        user: Some(Box::new(view)),
        key: key.to_string(),
        search_href: format!("/users?q={}", encode(key)),
    })
}

fn heading(u: &StoredUser) -> String {
    if u.display_name.trim().is_empty() {
        u.user_principal_name.clone()
    } else {
        u.display_name.clone()
    }
}

/// The open detection the playbook is for: a lockout first, then the most recent open one.
fn open_detection(all: &[StoredDetection]) -> Option<&StoredDetection> {
    let open = || all.iter().filter(|d| d.resolved_at.is_none());
    open()
        .find(|d| d.state == LockoutState::LockedOut.as_str())
        .or_else(|| open().next())
}

/// A stored detection as the planner takes it (`None` when its state or user id is not known).
fn detection_of(d: &StoredDetection) -> Option<Detection> {
    Some(Detection {
        user: crate::snapshot::ObjectId::parse(&d.user)?,
        upn: d.upn.as_str().into(),
        state: LockoutState::parse(&d.state)?,
        codes: d.codes.clone(),
        first_seen: d.first_seen,
        last_seen: d.last_seen,
        detail: d.detail.clone(),
    })
}

/// What the page is built from besides the user.
pub struct Inputs<'a> {
    pub findings: &'a [StoredFinding],
    pub detections: &'a [StoredDetection],
    pub events: &'a [StoredSecurityEvent],
    pub changes: &'a [UserChange],
    pub tap: Option<&'a recovery::TapReadiness>,
    pub basis: String,
    pub plan: Option<&'a Recovery>,
    pub now: DateTime<Utc>,
    /// The error codes the audit counts as a failed MFA sign-in (`[graph] mfa_failure_codes`).
    pub failure_codes: &'a [i32],
}

/// The page's view of one user (pure: the unit tests render it with hostile strings).
pub fn view(u: &StoredUser, i: Inputs<'_>) -> UserView {
    let methods: Vec<MethodRow> = u
        .methods
        .iter()
        .flatten()
        .map(|m| MethodRow {
            name: m.name,
            description: m.description,
            family: m.family,
            family_words: family_words(m.family).to_string(),
            phishing_resistant: yes_no(m.phishing_resistant),
            mfa_capable: yes_no(m.mfa_capable),
        })
        .collect();
    let families: Vec<String> = u
        .mfa_families
        .iter()
        .flatten()
        .map(|f| family_words(f).to_string())
        .collect();
    let families_known = u.mfa_families.is_some();
    let roles: Vec<RoleRow> = u
        .roles
        .iter()
        .map(|r| RoleRow {
            name: r,
            assignment: "active",
        })
        .chain(u.eligible_roles.iter().map(|r| RoleRow {
            name: r,
            assignment: "eligible",
        }))
        .collect();
    let lockout_state =
        open_detection(i.detections).map_or_else(|| "none".to_string(), |d| d.state.clone());
    let detections = i
        .detections
        .iter()
        .take(USER_DETECTIONS)
        .map(|d| DetectionRow {
            state: d.state.clone(),
            open: d.resolved_at.is_none(),
            codes: codes(&d.codes),
            first_seen: When::of(d.first_seen),
            last_seen: When::of(d.last_seen),
            resolved_at: d.resolved_at.map(When::of),
            detail: d.detail.clone(),
        })
        .collect();
    let events = i
        .events
        .iter()
        .take(USER_EVENTS)
        .map(|e| EventRow {
            created: When::of(e.created),
            activity: e.activity_name.clone(),
            by: if e.by_admin {
                if e.initiated_by.is_empty() {
                    "an admin".to_string()
                } else {
                    format!("{} (admin)", e.initiated_by)
                }
            } else {
                "the user".to_string()
            },
            method: e.method.clone().unwrap_or_default(),
            detail: e.detail.clone(),
            notable: e.notable.clone().unwrap_or_default(),
        })
        .collect();
    let changes = i.changes.iter().map(change_row).collect();
    let findings: Vec<FindingRow> = i
        .findings
        .iter()
        .map(|f| FindingRow {
            rule: f.rule.clone(),
            rule_href: format!("/rules/{}", encode(&f.rule)),
            state: if f.resolved_at.is_none() {
                "open"
            } else {
                "resolved"
            },
            severity: f.severity.clone(),
            detail: f.detail.clone(),
            excepted: f.excepted,
            first_seen: When::of(f.first_seen),
            last_seen: When::of(f.last_seen),
            resolved_at: f.resolved_at.map(When::of),
        })
        .collect();
    let open_findings = findings.iter().filter(|f| f.state == "open").count();
    UserView {
        heading: heading(u),
        upn: u.user_principal_name.clone(),
        id: u.id.clone(),
        user_type: u.user_type,
        enabled: yes_no(u.account_enabled),
        synced: yes_no(u.on_premises_sync),
        admin: yes_no(u.is_admin),
        deleted_at: u.deleted_at.map(When::of),
        first_seen: When::of(u.first_seen),
        changed_at: When::of(u.changed_at),
        audit_id: u.audit_id,
        methods_known: u.methods.is_some(),
        methods,
        unknown_methods: u.unknown_methods,
        default_method: default_method(u),
        families_known,
        family_count: families.len(),
        no_backup: families_known && families.len() < 2,
        families,
        phishing_resistant: match u.phishing_resistant {
            Some(b) => yes_no(b),
            None => "unknown",
        },
        per_user_mfa: u.per_user_mfa.unwrap_or("not read").to_string(),
        roles,
        tap: tap_view(u, i.tap, i.plan, i.now),
        lockout_state,
        mfa_failures: match u.mfa_failures {
            Some(n) => format!(
                "{n} failed MFA sign-ins with the codes the audit counts ({}) in its window; the watcher's detections above know every MFA error code",
                i.failure_codes
                    .iter()
                    .map(i32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => "not read (the last audit did not read sign-ins)".to_string(),
        },
        detections,
        events,
        changes,
        open_findings,
        findings,
        playbook: playbook(i.basis, i.plan),
        api_href: format!("/api/v1/users/{}", encode(&u.user_principal_name)),
    }
}

fn codes(codes: &[(i32, u32)]) -> String {
    codes
        .iter()
        .map(|(c, n)| format!("{c} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn default_method(u: &StoredUser) -> String {
    let method = match u.default_method {
        None => "not known".to_string(),
        Some("none") => "none set".to_string(),
        Some(m) => m.to_string(),
    };
    match u.system_preferred_mfa {
        Some(true) => format!("{method} (system-preferred MFA is on: Entra picks the strongest)"),
        _ => method,
    }
}

fn tap_view(
    u: &StoredUser,
    policy: Option<&recovery::TapReadiness>,
    plan: Option<&Recovery>,
    now: DateTime<Utc>,
) -> TapView {
    let (state, words, start) = match &u.tap {
        None => ("none", "No Temporary Access Pass".to_string(), None),
        Some(t) => {
            let once = if t.usable_once {
                "one-time"
            } else {
                "multi-use"
            };
            let ends = t
                .start
                .map(|s| s + chrono::Duration::minutes(i64::from(t.lifetime_minutes)));
            let expired = ends.is_some_and(|e| e < now);
            if t.usable && !expired {
                (
                    "usable",
                    format!("Usable: {once}, {} minutes", t.lifetime_minutes),
                    t.start.map(When::of),
                )
            } else {
                let reason = if t.usability_reason.is_empty() {
                    if expired {
                        "expired".to_string()
                    } else {
                        "no reason given".to_string()
                    }
                } else {
                    t.usability_reason.clone()
                };
                (
                    "not-usable",
                    format!(
                        "Not usable ({reason}): {once}, {} minutes",
                        t.lifetime_minutes
                    ),
                    t.start.map(When::of),
                )
            }
        }
    };
    let policy_words = match policy {
        None => "not known: no complete audit read the TAP policy yet".to_string(),
        Some(p) if !p.enabled => "disabled in the authentication methods policy".to_string(),
        Some(p) => format!(
            "enabled; passes up to {} minutes{}; whether this user is in its targets is {}",
            p.max_lifetime_minutes,
            if p.usable_once_only {
                ", one-time only"
            } else {
                ""
            },
            match p.user_in_targets {
                Some(true) => "yes",
                Some(false) => "no",
                None => "not known",
            }
        ),
    };
    let (ready, ready_reason) = match plan {
        Some(r) => (r.tap.usable, r.tap.reason.clone()),
        None => (false, "no plan".to_string()),
    };
    TapView {
        state,
        words,
        start,
        policy: policy_words,
        ready,
        ready_reason,
    }
}

/// Pushes "<removed> a, b" and "<added> c" for what `before` has and `after` lacks, and back.
fn push_diff(lines: &mut Vec<String>, removed: &str, added: &str, before: &[&str], after: &[&str]) {
    let only = |a: &[&str], b: &[&str]| -> Vec<String> {
        a.iter()
            .filter(|x| !b.contains(x))
            .map(|x| x.to_string())
            .collect()
    };
    for (label, names) in [(removed, only(before, after)), (added, only(after, before))] {
        if !names.is_empty() {
            lines.push(format!("{label}: {}", names.join(", ")));
        }
    }
}

fn change_row(c: &UserChange) -> ChangeRow {
    let mut lines = Vec::new();
    if let (Some(before), Some(after)) = (&c.methods_before, &c.methods_after) {
        push_diff(
            &mut lines,
            "Methods removed",
            "Methods added",
            before,
            after,
        );
    }
    let words = |f: &[&str]| {
        f.iter()
            .map(|f| family_words(f))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !c.families_lost.is_empty() {
        lines.push(format!(
            "Recovery families lost: {}",
            words(&c.families_lost)
        ));
    }
    if !c.families_gained.is_empty() {
        lines.push(format!(
            "Recovery families gained: {}",
            words(&c.families_gained)
        ));
    }
    if let Some(n) = c.mfa_families_after {
        if !c.families_lost.is_empty() || !c.families_gained.is_empty() {
            lines.push(format!("{n} recovery families after"));
        }
    }
    push_diff(
        &mut lines,
        "Active roles lost",
        "Active roles gained",
        &c.roles_before,
        &c.roles_after,
    );
    push_diff(
        &mut lines,
        "Eligible roles lost",
        "Eligible roles gained",
        &c.eligible_before,
        &c.eligible_after,
    );
    if lines.is_empty() {
        lines.push("Methods or roles changed".to_string());
    }
    ChangeRow {
        at: When::of(c.at),
        audit_id: c.audit_id,
        lines,
    }
}

fn playbook(basis: String, plan: Option<&Recovery>) -> Playbook {
    let Some(r) = plan else {
        return Playbook {
            basis,
            steps: Vec::new(),
            notes: vec!["No plan: the user's stored object id is not valid.".to_string()],
            admins: Vec::new(),
        };
    };
    Playbook {
        basis,
        steps: r
            .steps
            .iter()
            .enumerate()
            .map(|(n, s)| StepRow {
                n: n + 1,
                title: s.title.clone(),
                command: s.command.clone(),
                graph: s.graph.clone().unwrap_or_default(),
                destructive: s.destructive,
                warning: s.warning.clone().unwrap_or_default(),
            })
            .collect(),
        notes: r.notes.clone(),
        admins: r
            .admins
            .iter()
            .map(|a| AdminRow {
                href: user_href(&a.upn),
                upn: a.upn.clone(),
                display_name: a.display_name.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
#[path = "users_tests.rs"]
mod tests;
