//! The sweeps of DESIGN §2, run concurrently, and their join into one [`Snapshot`].
//!
//! Phase one reads the tenant-wide collections at once (users, registration report, policies,
//! Conditional Access, roles, sign-ins), each paced by its own throttle class. Phase two reads
//! per-user detail through `$batch` only for the users that need it (TAP holders, admins,
//! break-glass accounts; everyone on a free tenant). Pages are converted as they arrive: the raw
//! JSON of more than one page is never held.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};

use super::convert::{self, Registration};
use super::{missing_permissions, wire, CollectOptions, PerUserMfaScope, PERMISSION_NEEDS};
use crate::graph::{ApiVersion, BatchItem, GraphClient, GraphError, ThrottleClass};
use crate::snapshot::{
    Coverage, DataSet, Gap, MethodKind, ObjectId, Role, RoleSet, Snapshot, TargetKind, User,
    ROLE_TABLE,
};

/// How one sweep went.
#[derive(Clone, Debug)]
pub struct SweepStat {
    pub name: &'static str,
    pub duration: Duration,
    /// Rows (or per-user items) read.
    pub items: u64,
    /// `None` when it succeeded.
    pub error: Option<String>,
}

/// A snapshot and how it was made.
#[derive(Debug)]
pub struct CollectReport {
    pub snapshot: Snapshot,
    pub sweeps: Vec<SweepStat>,
}

/// Percent-encodes a query value (spaces as `%20`, quotes as `%27`), the form the client expects.
pub fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

const USERS_URL: &str =
    "/v1.0/users?$select=id,userPrincipalName,displayName,accountEnabled,userType,createdDateTime,onPremisesSyncEnabled,otherMails&$top=999";
/// Every authentication strength, built-in and custom (docs-contrib v1.0
/// `authenticationstrengthroot-list-policies.md`).
const STRENGTHS_URL: &str = "/v1.0/policies/authenticationStrengthPolicies";
/// Tenant-wide directory settings: smart lockout lives in "Password Rule Settings". Beta only
/// (v1.0's `groupSettings` is the group-settings subset); Maester's EIDSCA.PR tests read it here.
const SETTINGS_URL: &str = "/beta/settings";
/// Which of a list of ids exist (docs-contrib v1.0 `directoryobject-getbyids.md`): at most
/// 1,000 ids a call.
const GET_BY_IDS_URL: &str = "/v1.0/directoryObjects/getByIds";
const GET_BY_IDS_MAX: usize = 1000;
const REGISTRATION_URL: &str = "/v1.0/reports/authenticationMethods/userRegistrationDetails";
/// Beta: only it carries `systemCredentialPreferences` (system-preferred MFA); the rest is v1.0's shape.
const POLICY_URL: &str = "/beta/policies/authenticationMethodsPolicy";
const SECURITY_DEFAULTS_URL: &str = "/v1.0/policies/identitySecurityDefaultsEnforcementPolicy";
/// Beta: v1.0 silently omits policies that use beta-only features (microsoft/EntraExporter#35);
/// Maester and Zero Trust Assessment read beta too.
const CA_URL: &str = "/beta/identity/conditionalAccess/policies";
/// The tenant's subscriptions and their service plans: whether it holds Entra ID P1/P2.
const SUBSCRIBED_SKUS_URL: &str = "/v1.0/subscribedSkus";
/// Any one of these lets the app read `subscribedSkus` (docs-contrib `subscribedsku-list-permissions.md`).
pub const SUBSCRIBED_SKUS_PERMISSIONS: &[&str] = &[
    "Organization.Read.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
    "Organization.ReadWrite.All",
];
/// Reads of a premium endpoint while it answers the licence 403, before that answer is believed.
/// Graph gives a licensed tenant this 403 intermittently when the app lacks Directory.Read.All and
/// the tenant's licence is not cached (SupportArticles-docs
/// `b2c-or-tenant-premium-license-sign-in-activities.md`).
pub const LICENCE_ATTEMPTS: u32 = 5;

fn roles_url() -> String {
    let ids: Vec<String> = ROLE_TABLE
        .iter()
        .map(|(_, id, _)| format!("'{id}'"))
        .collect();
    format!(
        "/v1.0/roleManagement/directory/roleAssignments?$filter={}&$expand=principal",
        encode(&format!("roleDefinitionId in ({})", ids.join(",")))
    )
}

/// PIM eligibility (Entra ID P2). Its `roleDefinitionId` supports `$filter` with `eq`/`ne` only
/// (no `in`), so the whole list is read (it is short) and filtered here.
const ELIGIBILITY_URL: &str =
    "/v1.0/roleManagement/directory/roleEligibilityScheduleInstances?$expand=principal";

/// What `$expand=principal` says a role's principal is (`@odata.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PrincipalKind {
    User,
    Group,
    ServicePrincipal,
    Other,
}

fn principal_kind(p: Option<&wire::Principal>) -> PrincipalKind {
    // No principal or no type: the old shape; the join keeps it only if the id is a known user.
    match p.and_then(|p| p.odata_type.as_deref()) {
        None => PrincipalKind::User,
        Some(t) if t.eq_ignore_ascii_case("#microsoft.graph.user") => PrincipalKind::User,
        Some(t) if t.eq_ignore_ascii_case("#microsoft.graph.group") => PrincipalKind::Group,
        Some(t) if t.eq_ignore_ascii_case("#microsoft.graph.servicePrincipal") => {
            PrincipalKind::ServicePrincipal
        }
        Some(_) => PrincipalKind::Other,
    }
}

/// A group's transitive members, each with what `@odata.type` says it is, sorted by id and
/// deduplicated. Read without the `microsoft.graph.user` OData cast: the docs require
/// `ConsistencyLevel: eventual` and `$count=true` with a cast (docs-contrib
/// `group-list-transitivemembers.md`), and the type is in every member anyway.
async fn transitive_members(
    client: &GraphClient,
    label: &'static str,
    group: &str,
) -> Result<Vec<(PrincipalKind, ObjectId)>, GraphError> {
    let url = format!(
        "/v1.0/groups/{}/transitiveMembers?$select=id&$top=999",
        encode(group)
    );
    let mut members: Vec<(PrincipalKind, ObjectId)> = Vec::new();
    client
        .get_pages::<wire::DirectoryObject, _>(ThrottleClass::Directory, label, &url, |page| {
            members.extend(page.iter().filter_map(|m| {
                let id = m.id.as_deref().and_then(ObjectId::parse)?;
                Some((principal_kind(Some(m)), id))
            }));
            Ok(())
        })
        .await?;
    members.sort_unstable_by_key(|m| m.1);
    members.dedup_by_key(|m| m.1);
    Ok(members)
}

/// A group's transitive user members, sorted by id (see [`transitive_members`]).
async fn transitive_user_members(
    client: &GraphClient,
    label: &'static str,
    group: &str,
) -> Result<Vec<ObjectId>, GraphError> {
    Ok(transitive_members(client, label, group)
        .await?
        .into_iter()
        .filter(|(kind, _)| *kind == PrincipalKind::User)
        .map(|(_, id)| id)
        .collect())
}

/// Tracked roles by holder, as a roles or eligibility sweep finds them.
#[derive(Debug, Default)]
struct Held {
    users: Vec<(ObjectId, Role)>,
    /// Role-assignable groups (lower-case id) and the roles they hold: expanded to users.
    groups: BTreeMap<String, RoleSet>,
    service_principals: BTreeMap<Role, BTreeSet<ObjectId>>,
}

impl Held {
    /// Notes one tenant-wide assignment (or eligibility) of `role` to a principal.
    fn add(&mut self, kind: PrincipalKind, id: &str, role: Role) {
        let Some(oid) = ObjectId::parse(id) else {
            return;
        };
        match kind {
            PrincipalKind::User => self.users.push((oid, role)),
            PrincipalKind::Group => self
                .groups
                .entry(id.to_ascii_lowercase())
                .or_default()
                .insert(role),
            PrincipalKind::ServicePrincipal => {
                self.service_principals.entry(role).or_default().insert(oid);
            }
            PrincipalKind::Other => {
                tracing::info!(
                    principal = id,
                    "a role is held by a principal of another type"
                );
            }
        }
    }

    /// Gives each group's roles to its transitive members (users; service principals are
    /// counted). Role-assignable groups cannot be nested today, but transitive is what Microsoft
    /// recommends and costs nothing more. A group deleted since (404) holds nothing.
    async fn expand_groups(&mut self, client: &GraphClient) -> Result<u64, GraphError> {
        let mut rows = 0u64;
        for (group, roles) in std::mem::take(&mut self.groups) {
            let members = match transitive_members(client, "roleGroupMembers", &group).await {
                Ok(members) => members,
                Err(e) if e.status() == Some(404) => {
                    tracing::info!(
                        group,
                        "a role-assignable group was deleted since its assignment was read"
                    );
                    continue;
                }
                Err(e) => return Err(e),
            };
            rows += members.len() as u64;
            for (kind, id) in members {
                for role in roles.iter() {
                    match kind {
                        PrincipalKind::User => self.users.push((id, role)),
                        PrincipalKind::ServicePrincipal => {
                            self.service_principals.entry(role).or_default().insert(id);
                        }
                        // A nested group's own members are already in the transitive list.
                        PrincipalKind::Group | PrincipalKind::Other => {}
                    }
                }
            }
        }
        Ok(rows)
    }
}

/// Whether a failed eligibility read means "no Entra ID P2" rather than "failed": real Graph
/// answers 400 `AadPremiumLicenseRequired` there.
fn is_p2_licence_error(err: &GraphError) -> bool {
    err.is_licence_error()
        || matches!(err.status(), Some(400 | 403))
            && err
                .code()
                .is_some_and(|c| c.eq_ignore_ascii_case("AadPremiumLicenseRequired"))
}

const GROUP_MEMBERS_PERMISSION: &str =
    "GroupMember.Read.All (to read the members of role-assignable groups that hold a role)";

/// A 403 on the members of a role-assignable group: the token can read roles but not groups.
fn group_members_refused(err: &GraphError) -> bool {
    matches!(err, GraphError::Http { endpoint, status: 403, .. } if endpoint == "roleGroupMembers")
}

fn sign_ins_url(since: DateTime<Utc>, code: i32) -> String {
    let filter = format!(
        "createdDateTime ge {} and status/errorCode eq {code}",
        since.to_rfc3339_opts(SecondsFormat::Secs, true)
    );
    format!(
        "/v1.0/auditLogs/signIns?$filter={}&$top=1000",
        encode(&filter)
    )
}

/// What an admin issuing a Temporary Access Pass leaves in the directory audit log
/// (entra-docs `docs/architecture/security-operations-privileged-accounts.md`: activity "Admin
/// registered security info", status reason "Admin registered temporary access pass method for
/// user", category UserManagement, service "Authentication Methods").
const TAP_ISSUED_ACTIVITY: &str = "Admin registered security info";

/// Directory audit events since `since` of the activity an issued TAP leaves. `$filter` with
/// `eq` and `ge` is documented for directoryAudits (docs-contrib `directoryaudit-list.md`).
fn directory_audits_url(since: DateTime<Utc>) -> String {
    let filter = format!(
        "activityDisplayName eq '{TAP_ISSUED_ACTIVITY}' and activityDateTime ge {}",
        since.to_rfc3339_opts(SecondsFormat::Secs, true)
    );
    format!(
        "/v1.0/auditLogs/directoryAudits?$filter={}&$top=999",
        encode(&filter)
    )
}

/// The users a page of directory audit events says were issued a TAP: successful "Admin
/// registered security info" events whose result reason names a temporary access pass; the
/// target is the `User` resource (other methods registered by an admin are ignored).
fn tap_issued_to(page: &[wire::DirectoryAudit]) -> Vec<ObjectId> {
    page.iter()
        .filter(|e| is_tap_issuance(e))
        .flat_map(|e| {
            e.target_resources.iter().filter(|t| {
                t.target_type
                    .as_deref()
                    .is_none_or(|k| k.eq_ignore_ascii_case("user"))
            })
        })
        .filter_map(|t| t.id.as_deref().and_then(ObjectId::parse))
        .collect()
}

/// Whether a directory audit event is a Temporary Access Pass issued (successfully): activity
/// "Admin registered security info" with a result reason naming a temporary access pass. The
/// watcher (`watch.rs`) classes security-info events with the same test.
pub(super) fn is_tap_issuance(e: &wire::DirectoryAudit) -> bool {
    e.activity_display_name
        .as_deref()
        .is_some_and(|a| a.eq_ignore_ascii_case(TAP_ISSUED_ACTIVITY))
        && e.result
            .as_deref()
            .is_none_or(|r| r.eq_ignore_ascii_case("success"))
        && e.result_reason
            .as_deref()
            .is_some_and(|r| r.to_ascii_lowercase().contains("temporary access pass"))
}

/// Where the directory audit log is read from: the previous audit less the report's lag, or the
/// configured window without one; never more than 30 days back (a TAP lives at most 30 days,
/// and P1/P2 tenants keep 30 days of audit log).
fn tap_audit_since(options: &CollectOptions, audit_time: DateTime<Utc>) -> DateTime<Utc> {
    let since = match options.previous_audit {
        Some(p) => p.min(audit_time) - super::TAP_AUDIT_OVERLAP,
        None => audit_time - options.tap_audit_window,
    };
    since.max(audit_time - chrono::Duration::days(30))
}

/// Times a sweep and records its outcome.
async fn timed<T, F: std::future::Future<Output = Result<(T, u64), GraphError>>>(
    name: &'static str,
    fut: F,
) -> (Result<T, GraphError>, SweepStat) {
    let started = Instant::now();
    let result = fut.await;
    let (result, items) = match result {
        Ok((v, n)) => (Ok(v), n),
        Err(e) => (Err(e), 0),
    };
    let stat = SweepStat {
        name,
        duration: started.elapsed(),
        items,
        error: result.as_ref().err().map(|e| e.to_string()),
    };
    (result, stat)
}

/// Whether a failed sweep's error means "not licensed" rather than "failed".
/// A 403 that says the application lacks a permission: the directory says
/// `Authorization_RequestDenied`; the reports and audit-log service says
/// `Authentication_MSGraphPermissionMissing` and names the permission.
fn is_permission_refusal(err: &GraphError) -> bool {
    err.status() == Some(403)
        && err.code().is_some_and(|c| {
            c.eq_ignore_ascii_case("Authorization_RequestDenied")
                || c.eq_ignore_ascii_case("Authentication_MSGraphPermissionMissing")
        })
}

fn gap_for(err: &GraphError, endpoint: &str) -> Gap {
    if err.is_licence_error() {
        Gap::Unlicensed("the tenant has no Entra ID P1/P2 licence".into())
    } else if is_permission_refusal(err) {
        Gap::MissingPermission(format!("{endpoint}: {err}"))
    } else {
        Gap::Failed {
            endpoint: endpoint.into(),
            reason: err.to_string(),
        }
    }
}

/// Runs `read` (one page request) again (up to [`LICENCE_ATTEMPTS`] in all, backing off from the client's
/// `backoff_base`) while it fails with the licence 403, unless the tenant's subscriptions already
/// say it has no P1/P2 (`premium == Some(false)`): then the first answer is the truth.
async fn retry_licence<T, F, Fut>(
    client: &GraphClient,
    endpoint: &str,
    premium: Option<bool>,
    mut read: F,
) -> Result<T, GraphError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, GraphError>>,
{
    let attempts = if premium == Some(false) {
        1
    } else {
        LICENCE_ATTEMPTS
    };
    let mut attempt = 0u32;
    loop {
        match read().await {
            Err(e) if e.is_licence_error() && attempt + 1 < attempts => {
                let config = client.config();
                let wait = config
                    .backoff_base
                    .saturating_mul(1u32 << attempt.min(16))
                    .min(config.backoff_cap);
                tracing::info!(
                    endpoint,
                    attempt = attempt + 1,
                    wait_ms = wait.as_millis() as u64,
                    "licence 403 (may be intermittent on a licensed tenant): retrying"
                );
                client.wait_before_retry(endpoint, wait).await?;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Every page of a premium report (Reports throttle class), each page read through
/// [`retry_licence`]: an intermittent licence 403 costs a retry of that page, not of the sweep.
/// Follows `@odata.nextLink` verbatim, with the client's loop guard.
async fn report_pages<T, F>(
    client: &GraphClient,
    endpoint: &'static str,
    first_url: &str,
    premium: Option<bool>,
    mut on_page: F,
) -> Result<(), GraphError>
where
    T: serde::de::DeserializeOwned,
    F: FnMut(Vec<T>),
{
    let mut url = first_url.to_string();
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    loop {
        let page: wire::Page<T> = retry_licence(client, endpoint, premium, || {
            client.get_json::<wire::Page<T>>(ThrottleClass::Reports, endpoint, &url)
        })
        .await?;
        on_page(page.value);
        let Some(next) = page.next_link else {
            return Ok(());
        };
        if next == url || !seen.insert(next.clone()) {
            return Err(GraphError::NextLinkLoop {
                endpoint: endpoint.into(),
                url: next,
            });
        }
        url = next;
    }
}

/// The gap a premium endpoint's licence 403 leaves, once retried: `Failed` when the tenant is
/// known to hold P1/P2 (its subscriptions say so, or another premium endpoint answered), so the
/// audit is incomplete rather than quietly degraded; otherwise `Unlicensed` with the evidence.
fn licence_gap(err: &GraphError, endpoint: &str, premium: Option<bool>, licensed: bool) -> Gap {
    if licensed {
        let attempts = if premium == Some(false) {
            1
        } else {
            LICENCE_ATTEMPTS
        };
        Gap::Failed {
            endpoint: endpoint.into(),
            reason: format!(
                "{err} ({attempts} attempt(s)), yet the tenant holds Entra ID P1/P2{}: Graph cannot read the licence; grant Directory.Read.All",
                if premium == Some(true) {
                    " (subscribedSkus)"
                } else {
                    " (another premium endpoint answered)"
                }
            ),
        }
    } else if premium == Some(false) {
        Gap::Unlicensed(
            "the tenant has no Entra ID P1/P2 licence (subscribedSkus lists no AAD_PREMIUM or AAD_PREMIUM_P2 plan)".into(),
        )
    } else {
        Gap::Unlicensed(format!(
            "the tenant has no Entra ID P1/P2 licence (Graph refused {LICENCE_ATTEMPTS} times; subscribedSkus unread: grant Directory.Read.All to confirm)"
        ))
    }
}

fn empty_snapshot(tenant_id: &str, audit_time: DateTime<Utc>) -> Snapshot {
    Snapshot::empty(tenant_id, audit_time)
}

/// A snapshot of which nothing could be read (no token, or the audit's deadline passed): every
/// data set failed with `reason`, so no rule judges an empty tenant and the audit is incomplete.
pub fn nothing_read(
    tenant_id: &str,
    audit_time: DateTime<Utc>,
    endpoint: &str,
    reason: &str,
) -> Snapshot {
    let mut snapshot = empty_snapshot(tenant_id, audit_time);
    for set in [
        DataSet::Users,
        DataSet::Registration,
        DataSet::MethodsPolicy,
        DataSet::SecurityDefaults,
        DataSet::ConditionalAccess,
        DataSet::Roles,
        DataSet::TapDetail,
        DataSet::MethodDetail,
        DataSet::PerUserMfa,
        DataSet::SignIns,
        DataSet::RoleEligibility,
        DataSet::DirectoryAudit,
        DataSet::AuthStrengths,
        DataSet::DirectorySettings,
        DataSet::PolicyTargets,
    ] {
        snapshot.coverage.gaps.insert(
            set,
            Gap::Failed {
                endpoint: endpoint.into(),
                reason: reason.into(),
            },
        );
    }
    snapshot
}

/// Reads the whole tenant. See [`collect_with_report`].
pub async fn collect(
    client: &GraphClient,
    options: &CollectOptions,
    audit_time: DateTime<Utc>,
    tenant_id: &str,
) -> Snapshot {
    collect_with_report(client, options, audit_time, tenant_id)
        .await
        .snapshot
}

/// Reads the whole tenant into a snapshot, with per-sweep timings. Never fails: what could not be
/// read is a gap in `snapshot.coverage`, and a failed required sweep makes it incomplete.
pub async fn collect_with_report(
    client: &GraphClient,
    options: &CollectOptions,
    audit_time: DateTime<Utc>,
    tenant_id: &str,
) -> CollectReport {
    let mut coverage = Coverage::default();
    let mut sweeps = Vec::new();
    let mut snapshot = empty_snapshot(tenant_id, audit_time);

    let (granted, stat) = timed("token", async {
        client.granted_roles().await.map(|r| (r, 1))
    })
    .await;
    sweeps.push(stat);
    let granted = match granted {
        Ok(g) => g,
        Err(e) => {
            // Without a token nothing was read: every data set failed, so no rule judges an empty tenant.
            let snapshot = nothing_read(tenant_id, audit_time, "token", &e.to_string());
            return CollectReport { snapshot, sweeps };
        }
    };
    for (set, permission, disables) in missing_permissions(&granted, options) {
        tracing::warn!(
            permission,
            data = set.as_str(),
            "permission not granted: {disables}"
        );
        coverage
            .missing_permissions
            .push((permission.to_string(), disables.to_string()));
        coverage
            .gaps
            .insert(set, Gap::MissingPermission(permission.to_string()));
    }
    for set in [
        DataSet::ConditionalAccess,
        DataSet::SignIns,
        DataSet::TapDetail,
        DataSet::DirectoryAudit,
        DataSet::MethodDetail,
        DataSet::PerUserMfa,
    ] {
        // (Groups are read only when [scope] names some; no rule needs them otherwise.)
        if !options.reads(set) {
            coverage.gaps.insert(set, Gap::Disabled);
        }
    }
    let wants = |set: DataSet| !coverage.gaps.contains_key(&set);

    // The tenant's licence, from its subscriptions: evidence that tells a real "no P1/P2" from
    // the licence 403 Graph gives a licensed tenant while it cannot read the licence. `None`:
    // not readable (no Organization.Read.All / Directory.Read.All) or not needed.
    let can_read_skus = SUBSCRIBED_SKUS_PERMISSIONS
        .iter()
        .any(|p| granted.iter().any(|g| g.eq_ignore_ascii_case(p)));
    let premium: Option<bool> =
        if can_read_skus && (wants(DataSet::Registration) || wants(DataSet::SignIns)) {
            let (skus, stat) = timed("licence", async {
                let mut skus: Vec<wire::SubscribedSku> = Vec::new();
                client
                    .get_pages::<wire::SubscribedSku, _>(
                        ThrottleClass::Directory,
                        "subscribedSkus",
                        SUBSCRIBED_SKUS_URL,
                        |page| {
                            skus.extend(page);
                            Ok(())
                        },
                    )
                    .await?;
                let n = skus.len() as u64;
                Ok((convert::has_premium(&skus), n))
            })
            .await;
            sweeps.push(stat);
            match skus {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!("the tenant's licence could not be read: {e}");
                    None
                }
            }
        } else {
            None
        };

    // Phase one: the tenant-wide sweeps, concurrently.
    let users_fut = timed("users", async {
        if !wants(DataSet::Users) {
            return Ok((None, 0));
        }
        let mut users: Vec<User> = Vec::new();
        let mut skipped = 0u64;
        client
            .get_pages::<wire::User, _>(ThrottleClass::Directory, "users", USERS_URL, |page| {
                for w in &page {
                    match convert::user(w) {
                        Some(u) => users.push(u),
                        None => skipped += 1,
                    }
                }
                Ok(())
            })
            .await?;
        if skipped > 0 {
            tracing::warn!(skipped, "users without a valid id were skipped");
        }
        let n = users.len() as u64;
        Ok((Some(users), n))
    });
    let registration_fut = timed("registration", async {
        if !wants(DataSet::Registration) {
            return Ok((None, 0));
        }
        let mut rows: Vec<Registration> = Vec::new();
        report_pages::<wire::RegistrationDetails, _>(
            client,
            "userRegistrationDetails",
            REGISTRATION_URL,
            premium,
            |page| rows.extend(page.iter().filter_map(convert::registration)),
        )
        .await?;
        let n = rows.len() as u64;
        Ok((Some(rows), n))
    });
    let policy_fut = timed("methods-policy", async {
        if !wants(DataSet::MethodsPolicy) {
            return Ok((None, 0));
        }
        let p: wire::MethodsPolicy = client
            .get_json(
                ThrottleClass::Directory,
                "authenticationMethodsPolicy",
                POLICY_URL,
            )
            .await?;
        Ok((Some(convert::methods_policy(&p)), 1))
    });
    let defaults_fut = timed("security-defaults", async {
        if !wants(DataSet::SecurityDefaults) {
            return Ok((None, 0));
        }
        let p: wire::SecurityDefaults = client
            .get_json(
                ThrottleClass::Directory,
                "identitySecurityDefaultsEnforcementPolicy",
                SECURITY_DEFAULTS_URL,
            )
            .await?;
        Ok((Some(p.is_enabled.unwrap_or(false)), 1))
    });
    let ca_fut = timed("conditional-access", async {
        if !wants(DataSet::ConditionalAccess) {
            return Ok((None, 0));
        }
        let mut policies = Vec::new();
        client
            .get_pages::<wire::CaPolicy, _>(
                ThrottleClass::ConditionalAccess,
                "conditionalAccessPolicies",
                CA_URL,
                |page| {
                    policies.extend(page.iter().map(convert::ca_policy));
                    Ok(())
                },
            )
            .await?;
        let n = policies.len() as u64;
        Ok((Some(policies), n))
    });
    let roles_fut = timed("roles", async {
        if !wants(DataSet::Roles) {
            return Ok((None, 0));
        }
        let mut held = Held::default();
        client
            .get_pages::<wire::RoleAssignment, _>(
                ThrottleClass::Directory,
                "roleAssignments",
                &roles_url(),
                |page| {
                    for a in &page {
                        // Only tenant-wide assignments count as holding the role.
                        let tenant_wide = a.directory_scope_id.as_deref().is_none_or(|s| s == "/");
                        let role = a
                            .role_definition_id
                            .as_deref()
                            .and_then(Role::from_template_id);
                        if let (true, Some(role), Some(id)) =
                            (tenant_wide, role, a.principal_id.as_deref())
                        {
                            held.add(principal_kind(a.principal.as_ref()), id, role);
                        }
                    }
                    Ok(())
                },
            )
            .await?;
        let members = held.expand_groups(client).await?;
        let n = held.users.len() as u64 + members;
        Ok((Some(held), n))
    });
    let eligibility_fut = timed("role-eligibility", async {
        if !wants(DataSet::RoleEligibility) {
            return Ok((None, 0));
        }
        let mut held = Held::default();
        client
            .get_pages::<wire::RoleEligibilityInstance, _>(
                ThrottleClass::Directory,
                "roleEligibilityScheduleInstances",
                ELIGIBILITY_URL,
                |page| {
                    for e in &page {
                        let tenant_wide = e.directory_scope_id.as_deref().is_none_or(|s| s == "/");
                        // Instances can be scheduled ahead or lapse: only current ones count.
                        let current = e.start_date_time.is_none_or(|t| t <= audit_time)
                            && e.end_date_time.is_none_or(|t| t > audit_time);
                        let role = e
                            .role_definition_id
                            .as_deref()
                            .and_then(Role::from_template_id);
                        if let (true, true, Some(role), Some(id)) =
                            (tenant_wide, current, role, e.principal_id.as_deref())
                        {
                            held.add(principal_kind(e.principal.as_ref()), id, role);
                        }
                    }
                    Ok(())
                },
            )
            .await?;
        let members = held.expand_groups(client).await?;
        let n = held.users.len() as u64 + members;
        Ok((Some(held), n))
    });
    let since = audit_time - options.sign_in_window;
    let sign_ins_fut = timed("sign-ins", async {
        if !wants(DataSet::SignIns) {
            return Ok((None, 0));
        }
        let mut per_user: HashMap<ObjectId, u32> = HashMap::new();
        let mut per_code: BTreeMap<i32, u64> = BTreeMap::new();
        let mut rows = 0u64;
        for code in &options.mfa_failure_codes {
            report_pages::<wire::SignIn, _>(
                client,
                "signIns",
                &sign_ins_url(since, *code),
                premium,
                |page| {
                    rows += page.len() as u64;
                    convert::count_failures(
                        &page,
                        &options.mfa_failure_codes,
                        &mut per_user,
                        &mut per_code,
                    );
                },
            )
            .await?;
        }
        Ok((Some((per_user, per_code)), rows))
    });

    let strengths_fut = timed("auth-strengths", async {
        if !wants(DataSet::AuthStrengths) {
            return Ok((None, 0));
        }
        let mut strengths = Vec::new();
        client
            .get_pages::<wire::AuthenticationStrength, _>(
                ThrottleClass::Directory,
                "authenticationStrengthPolicies",
                STRENGTHS_URL,
                |page| {
                    strengths.extend(page.iter().map(convert::authentication_strength));
                    Ok(())
                },
            )
            .await?;
        let n = strengths.len() as u64;
        Ok((Some(strengths), n))
    });
    let settings_fut = timed("directory-settings", async {
        if !wants(DataSet::DirectorySettings) {
            return Ok((None, 0));
        }
        let mut settings: Vec<wire::DirectorySetting> = Vec::new();
        client
            .get_pages::<wire::DirectorySetting, _>(
                ThrottleClass::Directory,
                "directorySettings",
                SETTINGS_URL,
                |page| {
                    settings.extend(page);
                    Ok(())
                },
            )
            .await?;
        let n = settings.len() as u64;
        Ok((Some(convert::smart_lockout(&settings)), n))
    });

    let groups_fut = timed("groups", async {
        if !wants(DataSet::Groups) {
            return Ok((None, 0));
        }
        let mut groups: BTreeMap<String, Vec<ObjectId>> = BTreeMap::new();
        let mut rows = 0u64;
        for group in &options.groups {
            let members = transitive_user_members(client, "groupMembers", group).await?;
            rows += members.len() as u64;
            groups.insert(group.to_ascii_lowercase(), members);
        }
        Ok((Some(groups), rows))
    });

    // The report lags by hours and may never list a TAP: the directory audit log names who was
    // issued one since the previous audit. Read beside the report (it depends on nothing read
    // here); used only where TAP detail is read by holder, i.e. not on a free tenant.
    let fresh_taps_fut = timed("directory-audits", async {
        if !wants(DataSet::TapDetail) || !wants(DataSet::DirectoryAudit) {
            return Ok((Vec::new(), 0));
        }
        let mut issued: Vec<ObjectId> = Vec::new();
        let mut rows = 0u64;
        // Audit logs are in every edition: a licence 403 here is the intermittent kind, retried.
        report_pages::<wire::DirectoryAudit, _>(
            client,
            "directoryAudits",
            &directory_audits_url(tap_audit_since(options, audit_time)),
            None,
            |page| {
                rows += page.len() as u64;
                issued.extend(tap_issued_to(&page));
            },
        )
        .await?;
        issued.sort_unstable();
        issued.dedup();
        Ok((issued, rows))
    });

    let (
        users,
        registration,
        policy,
        defaults,
        ca,
        (roles, eligibility),
        sign_ins,
        (groups, fresh_taps),
        (strengths, settings),
    ) = tokio::join!(
        users_fut,
        registration_fut,
        policy_fut,
        defaults_fut,
        ca_fut,
        async { tokio::join!(roles_fut, eligibility_fut) },
        sign_ins_fut,
        async { tokio::join!(groups_fut, fresh_taps_fut) },
        async { tokio::join!(strengths_fut, settings_fut) }
    );

    let (users, stat) = users;
    record(
        &mut coverage,
        &mut sweeps,
        DataSet::Users,
        "users",
        stat,
        users.as_ref().err(),
    );
    let mut users: Vec<User> = users.ok().flatten().unwrap_or_default();
    users.sort_unstable_by_key(|u| u.id);
    users.dedup_by_key(|u| u.id);
    // `users` is sorted by id from here on: a user is found by binary search (a HashMap index
    // cost 64 MiB at 1,000,000 users, at the collector's peak).
    let index = |users: &[User], id: &ObjectId| -> Option<u32> {
        users
            .binary_search_by_key(id, |u| u.id)
            .ok()
            .map(|i| i as u32)
    };
    let mut unknown_by_user: HashMap<ObjectId, Vec<String>> = HashMap::new();

    let (registration, stat) = registration;
    // Licensed for certain: the subscriptions say so, one of the premium reports answered, or PIM
    // answered (it needs Entra ID P2, which includes P1).
    let licensed = premium == Some(true)
        || matches!(registration, Ok(Some(_)))
        || matches!(sign_ins.0, Ok(Some(_)))
        || matches!(eligibility.0, Ok(Some(_)));
    let licence_fallback = !licensed
        && registration
            .as_ref()
            .err()
            .is_some_and(GraphError::is_licence_error);
    record(
        &mut coverage,
        &mut sweeps,
        DataSet::Registration,
        "userRegistrationDetails",
        stat,
        registration.as_ref().err(),
    );
    if let Some(e) = registration.as_ref().err().filter(|e| e.is_licence_error()) {
        coverage.gaps.insert(
            DataSet::Registration,
            licence_gap(e, "userRegistrationDetails", premium, licensed),
        );
    }
    if let Some(rows) = registration.ok().flatten() {
        let mut orphans = 0u64;
        for r in rows {
            let Some(i) = index(&users, &r.id) else {
                orphans += 1;
                continue;
            };
            let u = &mut users[i as usize];
            u.methods = Some(r.methods);
            u.is_admin = r.is_admin;
            u.mfa_capable = r.mfa_capable;
            u.system_preferred_mfa = r.system_preferred;
            u.default_method = r.default_method;
            u.sspr = r.sspr;
            if !r.unknown.is_empty() {
                unknown_by_user.insert(r.id, r.unknown.iter().map(|s| s.to_string()).collect());
            }
        }
        if orphans > 0 {
            tracing::info!(
                orphans,
                "registration rows without a /users row (deleted since) were dropped"
            );
        }
    }
    if licence_fallback {
        coverage.licence_fallback = true;
        coverage.gaps.insert(
            DataSet::Registration,
            Gap::Unlicensed("no Entra ID P1/P2: methods are read per user instead (no admin flag, no default method)".into()),
        );
    }

    let (policy, stat) = policy;
    record(
        &mut coverage,
        &mut sweeps,
        DataSet::MethodsPolicy,
        "authenticationMethodsPolicy",
        stat,
        policy.as_ref().err(),
    );
    snapshot.methods_policy = policy.ok().flatten();
    let (defaults, stat) = defaults;
    record(
        &mut coverage,
        &mut sweeps,
        DataSet::SecurityDefaults,
        "identitySecurityDefaultsEnforcementPolicy",
        stat,
        defaults.as_ref().err(),
    );
    snapshot.security_defaults_enabled = defaults.ok().flatten();
    let (ca, stat) = ca;
    record(
        &mut coverage,
        &mut sweeps,
        DataSet::ConditionalAccess,
        "conditionalAccessPolicies",
        stat,
        ca.as_ref().err(),
    );
    snapshot.conditional_access = ca.ok().flatten();
    let (strengths, stat) = strengths;
    record(
        &mut coverage,
        &mut sweeps,
        DataSet::AuthStrengths,
        "authenticationStrengthPolicies",
        stat,
        strengths.as_ref().err(),
    );
    snapshot.strengths = strengths.ok().flatten();
    let (settings, stat) = settings;
    record(
        &mut coverage,
        &mut sweeps,
        DataSet::DirectorySettings,
        "directorySettings",
        stat,
        settings.as_ref().err(),
    );
    snapshot.lockout = settings.ok().flatten();
    if snapshot.lockout.is_some_and(|l| l.defaults) {
        tracing::info!(
            "no \"Password Rule Settings\" directory setting: Entra's smart lockout defaults apply (10 attempts, 60 s)"
        );
    }
    let (roles, stat) = roles;
    record(
        &mut coverage,
        &mut sweeps,
        DataSet::Roles,
        "roleAssignments",
        stat,
        roles.as_ref().err(),
    );
    if roles.as_ref().err().is_some_and(group_members_refused) {
        // Roles are held through groups whose members this token cannot read: who the admins
        // are is unknown, so the admin rules are skipped rather than judged on part of them.
        coverage.gaps.insert(
            DataSet::Roles,
            Gap::MissingPermission(GROUP_MEMBERS_PERMISSION.into()),
        );
        coverage.missing_permissions.push((
            "GroupMember.Read.All".into(),
            "the members of role-assignable groups that hold a role: admin rules and too-few-recovery-admins".into(),
        ));
    }
    if let Some(held) = roles.ok().flatten() {
        for (id, role) in held.users {
            if let Some(i) = index(&users, &id) {
                users[i as usize].roles.insert(role);
            }
        }
        snapshot.role_service_principals = ROLE_TABLE
            .iter()
            .map(|(role, _, _)| {
                let n = held.service_principals.get(role).map_or(0, BTreeSet::len);
                (*role, n.min(u32::MAX as usize) as u32)
            })
            .collect();
    }
    let (eligibility, stat) = eligibility;
    record(
        &mut coverage,
        &mut sweeps,
        DataSet::RoleEligibility,
        "roleEligibilityScheduleInstances",
        stat,
        eligibility.as_ref().err(),
    );
    if eligibility
        .as_ref()
        .err()
        .is_some_and(group_members_refused)
    {
        coverage.gaps.insert(
            DataSet::RoleEligibility,
            Gap::MissingPermission(GROUP_MEMBERS_PERMISSION.into()),
        );
    }
    if eligibility.as_ref().err().is_some_and(is_p2_licence_error) {
        coverage.gaps.insert(
            DataSet::RoleEligibility,
            Gap::Unlicensed(
                "PIM eligibility needs Entra ID P2 (or Entra ID Governance): only active role assignments were judged".into(),
            ),
        );
    }
    if let Some(held) = eligibility.ok().flatten() {
        for (id, role) in held.users {
            if let Some(i) = index(&users, &id) {
                users[i as usize].eligible_roles.insert(role);
            }
        }
        for u in users.iter_mut() {
            // An eligible role that is also held actively (activated, or assigned) is held.
            u.eligible_roles = u.eligible_roles.minus(u.roles);
        }
    }
    let (groups, stat) = groups;
    record(
        &mut coverage,
        &mut sweeps,
        DataSet::Groups,
        "groupMembers",
        stat,
        groups.as_ref().err(),
    );
    snapshot.groups = groups.ok().flatten().unwrap_or_default();
    policy_targets(
        client,
        &granted,
        &users,
        &mut snapshot,
        &mut coverage,
        &mut sweeps,
    )
    .await;
    let (sign_ins, stat) = sign_ins;
    record(
        &mut coverage,
        &mut sweeps,
        DataSet::SignIns,
        "signIns",
        stat,
        sign_ins.as_ref().err(),
    );
    if let Some(e) = sign_ins.as_ref().err().filter(|e| e.is_licence_error()) {
        coverage.gaps.insert(
            DataSet::SignIns,
            licence_gap(e, "signIns", premium, licensed),
        );
    }
    if let Some((per_user, per_code)) = sign_ins.ok().flatten() {
        for u in users.iter_mut() {
            u.mfa_failures = Some(per_user.get(&u.id).copied().unwrap_or(0));
        }
        snapshot.mfa_failures_by_code = per_code;
    }

    // Phase two: per-user detail through $batch, for the users who need it.
    let has_users = coverage.has(DataSet::Users);
    let break_glass: Vec<String> = options
        .break_glass_upns
        .iter()
        .map(|u| u.to_ascii_lowercase())
        .collect();
    let is_admin = |u: &User| !u.admin_roles().is_empty() || u.is_admin;
    let detail_for: Vec<usize> = if !has_users {
        Vec::new()
    } else if licence_fallback && wants_detail(&coverage, true) {
        (0..users.len()).collect()
    } else if wants_detail(&coverage, false) {
        (0..users.len())
            .filter(|&i| {
                is_admin(&users[i]) || break_glass.contains(&users[i].upn.to_ascii_lowercase())
            })
            .collect()
    } else {
        Vec::new()
    };
    let read_taps = has_users && coverage.has(DataSet::TapDetail) && !licence_fallback;
    let (fresh_taps, stat) = fresh_taps;
    match fresh_taps.as_ref().err().filter(|_| read_taps) {
        // Audit logs are in every edition (entra-docs includes/licensing-monitoring-health.md):
        // a licence refusal here is Graph's intermittent one, never "no P1/P2".
        Some(e) if e.is_licence_error() => {
            tracing::warn!(sweep = stat.name, "sweep did not complete: {e}");
            coverage.gaps.insert(
                DataSet::DirectoryAudit,
                Gap::Failed {
                    endpoint: "directoryAudits".into(),
                    reason: format!(
                        "{e} (audit logs are in every Entra ID edition: not a missing licence)"
                    ),
                },
            );
            sweeps.push(stat);
        }
        err => record(
            &mut coverage,
            &mut sweeps,
            DataSet::DirectoryAudit,
            "directoryAudits",
            stat,
            err,
        ),
    }
    let fresh_taps: Vec<u32> = fresh_taps
        .ok()
        .filter(|_| read_taps)
        .unwrap_or_default()
        .iter()
        .filter_map(|id| index(&users, id))
        .collect();
    let tap_for: Vec<usize> = if read_taps {
        (0..users.len())
            .filter(|&i| {
                users[i]
                    .methods
                    .is_some_and(|m| m.contains(MethodKind::TemporaryAccessPass))
                    || fresh_taps.contains(&(i as u32))
            })
            .filter(|i| !detail_for.contains(i))
            .collect()
    } else {
        Vec::new()
    };
    let per_user_for: Vec<usize> = match (
        has_users && coverage.has(DataSet::PerUserMfa),
        options.per_user_mfa,
    ) {
        (true, PerUserMfaScope::All) => (0..users.len()).collect(),
        (true, PerUserMfaScope::Admins) => {
            (0..users.len()).filter(|&i| is_admin(&users[i])).collect()
        }
        _ => Vec::new(),
    };
    let items = |which: &[usize], suffix: &str| -> Vec<BatchItem> {
        which
            .iter()
            .map(|&i| BatchItem {
                id: i.to_string(),
                url: format!("/users/{}/authentication/{suffix}", users[i].id),
            })
            .collect()
    };
    let detail_items = items(&detail_for, "methods");
    let tap_items = items(&tap_for, "temporaryAccessPassMethods");
    let per_user_items = items(&per_user_for, "requirements");

    let denied = Denied::default();
    let (detail, tap, per_user) = tokio::join!(
        timed(
            "method-detail",
            // Beta: v1.0's list holds only v1.0 types (no hardware OATH token).
            batch::<wire::Page<wire::AuthMethod>>(
                client,
                "authenticationMethods",
                ApiVersion::Beta,
                detail_items,
                &denied
            )
        ),
        timed(
            "tap-detail",
            batch::<wire::Page<wire::AuthMethod>>(
                client,
                "temporaryAccessPassMethods",
                ApiVersion::V1,
                tap_items,
                &denied
            )
        ),
        timed(
            "per-user-mfa",
            batch::<wire::Requirements>(
                client,
                "perUserMfaRequirements",
                ApiVersion::Beta,
                per_user_items,
                &denied
            )
        ),
    );

    let (detail, stat) = detail;
    record(
        &mut coverage,
        &mut sweeps,
        DataSet::MethodDetail,
        "authenticationMethods",
        stat,
        detail.as_ref().err(),
    );
    if detail.is_ok() && licence_fallback {
        // Read although turned off: on a free tenant it is the only source of methods.
        if let Some(Gap::Disabled) = coverage.gaps.get(&DataSet::MethodDetail) {
            coverage.gaps.remove(&DataSet::MethodDetail);
        }
    }
    for (i, page) in detail.ok().unwrap_or_default() {
        let u = &mut users[i];
        let (set, tap, unknown) = convert::methods_from_detail(&page.value);
        // Merged with the report, never replacing it: the report alone knows certificate
        // sign-in; detail is fresher and covers the disabled users the report omits.
        u.methods = Some(convert::merge_methods(u.methods, set));
        u.tap = tap.map(Box::new);
        // An unknown type in detail is most likely the report's unknown string for the same
        // method: count it once. The report's stay when detail has none (no object, like CBA).
        if !unknown.is_empty() {
            unknown_by_user.insert(u.id, unknown);
        }
    }
    let (tap, stat) = tap;
    record(
        &mut coverage,
        &mut sweeps,
        DataSet::TapDetail,
        "temporaryAccessPassMethods",
        stat,
        tap.as_ref().err(),
    );
    for (i, page) in tap.ok().unwrap_or_default() {
        let u = &mut users[i];
        u.tap = page.value.first().map(|m| Box::new(convert::tap(m)));
        // A TAP issued since the report's snapshot is a method the user has now.
        if let (true, Some(methods)) = (u.tap.is_some(), u.methods.as_mut()) {
            methods.insert(MethodKind::TemporaryAccessPass);
        }
    }
    let (per_user, stat) = per_user;
    record(
        &mut coverage,
        &mut sweeps,
        DataSet::PerUserMfa,
        "perUserMfaRequirements",
        stat,
        per_user.as_ref().err(),
    );
    for (i, req) in per_user.ok().unwrap_or_default() {
        users[i].per_user_mfa = Some(convert::per_user_mfa(req.per_user_mfa_state.as_deref()));
    }

    // Items Graph refused (403) leave their data set a named gap; the others' results are kept.
    for (set, gap) in denied.into_gaps() {
        coverage.gaps.entry(set).or_insert(gap);
    }

    for (id, names) in unknown_by_user {
        if let Some(i) = index(&users, &id) {
            users[i as usize].unknown_methods = names.len().min(255) as u8;
        }
        for n in names {
            *snapshot.unknown_methods.entry(n).or_default() += 1;
        }
    }
    snapshot.users = users;
    snapshot.coverage = coverage;
    if !snapshot.is_complete() {
        let failed: Vec<String> = snapshot
            .coverage
            .gaps
            .iter()
            .filter_map(|(set, g)| match g {
                Gap::Failed { endpoint, reason } => {
                    Some(format!("{} ({endpoint}): {reason}", set.as_str()))
                }
                _ => None,
            })
            .collect();
        tracing::warn!("collection incomplete: {}", failed.join("; "));
    }
    CollectReport { snapshot, sweeps }
}

/// Which of the users and groups the policies name exist, and the transitive user members of
/// each existing group they name (into `snapshot.groups`). A deleted group is in
/// `missing_targets`, not in `groups` (`Snapshot::policy_member` says it holds nobody; rules
/// that ask `is_member` still see it as unread, as before).
///
/// Existence comes from `directoryObjects/getByIds` when the token holds Directory.Read.All;
/// otherwise from what was read anyway: every user is in the user sweep, and a deleted group
/// answers its members' read with 404. A group whose members cannot be read for another reason
/// stays out of `groups` (unknown to the rules: never a false pass). The groups that enabled
/// all-users MFA policies exclude are among those read (no-mfa-enforcement needs them).
async fn policy_targets(
    client: &GraphClient,
    granted: &[String],
    users: &[User],
    snapshot: &mut Snapshot,
    coverage: &mut Coverage,
    sweeps: &mut Vec<SweepStat>,
) {
    if coverage.gaps.contains_key(&DataSet::PolicyTargets) {
        return;
    }
    // A policy set not read leaves the check partial: its gap is this one's (the groups the
    // read policies name are still read).
    let unread = [DataSet::MethodsPolicy, DataSet::ConditionalAccess]
        .into_iter()
        .find_map(|set| match coverage.gaps.get(&set) {
            None | Some(Gap::Disabled) => None,
            Some(g) => Some(g.clone()),
        });
    let references = crate::snapshot::policy_references(snapshot);
    let mut user_ids: BTreeSet<String> = BTreeSet::new();
    let mut group_ids: BTreeSet<String> = BTreeSet::new();
    for r in &references {
        match r.kind {
            TargetKind::User => user_ids.insert(r.id.clone()),
            TargetKind::Group => group_ids.insert(r.id.clone()),
        };
    }
    let by_ids = ["Directory.Read.All", "Directory.ReadWrite.All"]
        .iter()
        .any(|p| granted.iter().any(|g| g.eq_ignore_ascii_case(p)));
    let users_read = coverage.has(DataSet::Users);
    let already: BTreeSet<String> = snapshot.groups.keys().cloned().collect();
    let (result, stat) = timed("policy-targets", async {
        let mut missing: BTreeSet<String> = BTreeSet::new();
        let mut requests = 0u64;
        if by_ids {
            let ids: Vec<&String> = user_ids.iter().chain(group_ids.iter()).collect();
            let mut found: BTreeSet<String> = BTreeSet::new();
            for chunk in ids.chunks(GET_BY_IDS_MAX) {
                let body = serde_json::json!({"ids": chunk, "types": ["user", "group"]});
                let page: wire::Page<wire::DirectoryObject> = client
                    .post_json(
                        ThrottleClass::Directory,
                        "getByIds",
                        GET_BY_IDS_URL,
                        &body,
                    )
                    .await?;
                requests += 1;
                found.extend(
                    page.value
                        .iter()
                        .filter_map(|o| o.id.as_deref())
                        .map(str::to_ascii_lowercase),
                );
            }
            missing.extend(ids.into_iter().filter(|id| !found.contains(*id)).cloned());
        } else if users_read {
            missing.extend(
                user_ids
                    .iter()
                    .filter(|id| {
                        ObjectId::parse(id).is_none_or(|oid| {
                            users.binary_search_by_key(&oid, |u| u.id).is_err()
                        })
                    })
                    .cloned(),
            );
        } else {
            return Err(GraphError::Config(
                "the users were not read and Directory.Read.All is not granted: whether the users policies name exist is unknown".into(),
            ));
        }
        let mut read: Vec<(String, Vec<ObjectId>)> = Vec::new();
        for group in group_ids.iter().filter(|g| !already.contains(*g)) {
            if missing.contains(group) {
                continue;
            }
            match transitive_user_members(client, "groupMembers", group).await {
                Ok(members) => read.push((group.clone(), members)),
                Err(e) if e.status() == Some(404) => {
                    // Deleted (since getByIds, or found so here).
                    missing.insert(group.clone());
                }
                Err(e) => tracing::warn!(
                    group = group.as_str(),
                    "a group a policy names could not be read (its members stay unknown): {e}"
                ),
            }
        }
        let n = requests + read.len() as u64;
        Ok(((missing, read), n))
    })
    .await;
    let err = result.as_ref().err();
    record(
        coverage,
        sweeps,
        DataSet::PolicyTargets,
        if by_ids { "getByIds" } else { "groupMembers" },
        stat,
        err,
    );
    if let Some(GraphError::Config(why)) = err {
        coverage.gaps.insert(
            DataSet::PolicyTargets,
            Gap::MissingPermission(format!("Directory.Read.All ({why})")),
        );
    }
    if let (Some(gap), true) = (unread, result.is_ok()) {
        coverage.gaps.insert(DataSet::PolicyTargets, gap);
        if let Ok((_, read)) = result {
            for (group, members) in read {
                snapshot.groups.insert(group, members);
            }
        }
        return;
    }
    if let Ok((missing, read)) = result {
        if !missing.is_empty() {
            tracing::warn!(
                missing = missing.len(),
                "policies name users or groups that no longer exist"
            );
        }
        for (group, members) in read {
            snapshot.groups.insert(group, members);
        }
        snapshot.missing_targets = Some(missing);
    }
}

/// Notes a sweep's outcome: its timing, and the gap its error leaves.
fn record(
    coverage: &mut Coverage,
    sweeps: &mut Vec<SweepStat>,
    set: DataSet,
    endpoint: &str,
    stat: SweepStat,
    err: Option<&GraphError>,
) {
    if let Some(e) = err {
        tracing::warn!(sweep = stat.name, endpoint, "sweep did not complete: {e}");
        coverage.gaps.insert(set, gap_for(e, endpoint));
    }
    sweeps.push(stat);
}

fn wants_detail(coverage: &Coverage, fallback: bool) -> bool {
    // In the fallback the detail is the only source of methods, so only a missing permission stops it.
    match coverage.gaps.get(&DataSet::MethodDetail) {
        None => true,
        Some(Gap::Disabled) => fallback,
        Some(_) => false,
    }
}

/// Per-user items Graph refused with a 403, per sweep: `(endpoint, refused, total, first error)`.
#[derive(Default)]
struct Denied(std::sync::Mutex<Vec<(&'static str, usize, usize, GraphError)>>);

impl Denied {
    fn note(&self, endpoint: &'static str, refused: usize, total: usize, first: GraphError) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((endpoint, refused, total, first));
    }

    /// Each refused sweep's data set as missing permission, naming how many users were refused.
    fn into_gaps(self) -> Vec<(DataSet, Gap)> {
        let refused = self.0.into_inner().unwrap_or_else(|e| e.into_inner());
        refused
            .into_iter()
            .map(|(endpoint, n, total, first)| {
                let set = match endpoint {
                    "temporaryAccessPassMethods" => DataSet::TapDetail,
                    "perUserMfaRequirements" => DataSet::PerUserMfa,
                    _ => DataSet::MethodDetail,
                };
                let permission = PERMISSION_NEEDS
                    .iter()
                    .find(|need| need.data_set == set)
                    .and_then(|need| need.any_of.first())
                    .copied()
                    .unwrap_or("a permission");
                let code = first.code().filter(|c| !c.is_empty()).unwrap_or("(no code)");
                tracing::warn!(
                    endpoint,
                    refused = n,
                    total,
                    "Graph refused some users' data: {first}"
                );
                (
                    set,
                    Gap::MissingPermission(format!(
                        "{permission} (Graph answered {endpoint} with HTTP 403 {code} for {n} of {total} users)"
                    )),
                )
            })
            .collect()
    }
}

/// Runs a per-user `$batch` sweep; one item failing fails the sweep (naming how many and why),
/// except a 404 (the user was deleted since the user sweep), which is skipped, and a 403 (Graph
/// refused that user's data: `accessDenied`), which is noted in `denied` while every other
/// item's result is kept.
async fn batch<T: serde::de::DeserializeOwned>(
    client: &GraphClient,
    endpoint: &'static str,
    version: ApiVersion,
    items: Vec<BatchItem>,
    denied: &Denied,
) -> Result<(Vec<(usize, T)>, u64), GraphError> {
    if items.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let total = items.len();
    let results = client
        .batch_get::<T>(ThrottleClass::AuthMethods, endpoint, version, items)
        .await;
    let mut ok = Vec::with_capacity(results.len());
    let mut failed = 0usize;
    let mut first: Option<GraphError> = None;
    let mut refused = 0usize;
    let mut first_refused: Option<GraphError> = None;
    for (id, r) in results {
        match r {
            Ok(v) => {
                if let Ok(i) = id.parse::<usize>() {
                    ok.push((i, v));
                }
            }
            Err(e) if e.status() == Some(404) => {}
            Err(e) if e.status() == Some(403) && !e.is_licence_error() => {
                refused += 1;
                first_refused.get_or_insert(e);
            }
            Err(e) => {
                failed += 1;
                first.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_refused {
        denied.note(endpoint, refused, total, e);
    }
    match first {
        None => {
            let n = ok.len() as u64;
            Ok((ok, n))
        }
        // A licence or permission refusal is the same for every user: keep it as it is.
        Some(e) if e.is_licence_error() || e.status() == Some(403) => Err(e),
        Some(e) => Err(GraphError::Items {
            endpoint: endpoint.into(),
            failed,
            total,
            first: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_permission_is_named_whichever_service_refuses() {
        let refused = |code: &str| GraphError::Http {
            endpoint: "userRegistrationDetails".into(),
            status: 403,
            code: code.into(),
            message:
                "Calling principal does not have required MSGraph permissions AuditLog.Read.All"
                    .into(),
            request_id: None,
        };
        for code in [
            "Authorization_RequestDenied",
            "Authentication_MSGraphPermissionMissing",
        ] {
            assert!(
                matches!(
                    gap_for(&refused(code), "userRegistrationDetails"),
                    Gap::MissingPermission(_)
                ),
                "{code}"
            );
        }
        assert!(matches!(
            gap_for(&refused("UnknownError"), "userRegistrationDetails"),
            Gap::Failed { .. }
        ));
    }

    #[test]
    fn tap_issuance_is_read_from_the_directory_audit_log() {
        let since = DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .expect("date");
        assert_eq!(
            directory_audits_url(since),
            "/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName%20eq%20%27Admin%20registered%20security%20info%27%20and%20activityDateTime%20ge%202026-11-23T10%3A00%3A00Z&$top=999"
        );
        // Graph's documented example spells the target's type key `Type`; a phone method
        // registered by an admin, or a failed attempt, is not a TAP.
        let page: Vec<wire::DirectoryAudit> = serde_json::from_str(
            r#"[
              {"activityDisplayName": "Admin registered security info", "result": "success",
               "resultReason": "Admin registered temporary access pass method for user",
               "loggedByService": "Authentication Methods", "category": "UserManagement",
               "targetResources": [{"id": "1f0e98f5-3161-4c6b-9b50-d488572f2bb7", "Type": "User", "modifiedProperties": []}]},
              {"activityDisplayName": "Admin registered security info", "result": "success",
               "resultReason": "Admin registered phone method for user",
               "targetResources": [{"id": "2f0e98f5-3161-4c6b-9b50-d488572f2bb7", "type": "User"}]},
              {"activityDisplayName": "Admin registered security info", "result": "failure",
               "resultReason": "Admin registered temporary access pass method for user",
               "targetResources": [{"id": "3f0e98f5-3161-4c6b-9b50-d488572f2bb7", "type": "User"}]},
              {"activityDisplayName": "Admin registered security info", "result": "success",
               "resultReason": "Admin registered temporary access pass method for user",
               "targetResources": [{"id": "not-a-guid", "type": "User"}, {"id": "4f0e98f5-3161-4c6b-9b50-d488572f2bb7", "type": "Group"}]}
            ]"#,
        )
        .expect("events parse");
        assert_eq!(
            tap_issued_to(&page),
            vec![ObjectId::parse("1f0e98f5-3161-4c6b-9b50-d488572f2bb7").expect("id")]
        );
        // From a day before the previous audit, at most 30 days back; else the window.
        let now = since + chrono::Duration::days(40);
        let mut o = CollectOptions {
            previous_audit: Some(now - chrono::Duration::hours(1)),
            ..CollectOptions::default()
        };
        assert_eq!(tap_audit_since(&o, now), now - chrono::Duration::hours(25));
        o.previous_audit = Some(since);
        assert_eq!(tap_audit_since(&o, now), now - chrono::Duration::days(30));
        o.previous_audit = None;
        assert_eq!(tap_audit_since(&o, now), now - chrono::Duration::days(7));
    }

    #[test]
    fn filters_are_percent_encoded() {
        let since = DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .expect("date");
        assert_eq!(
            sign_ins_url(since, 500121),
            "/v1.0/auditLogs/signIns?$filter=createdDateTime%20ge%202026-11-23T10%3A00%3A00Z%20and%20status%2FerrorCode%20eq%20500121&$top=1000"
        );
        let roles = roles_url();
        assert!(
            roles.contains(
                "roleDefinitionId%20in%20%28%2762e90394-69f5-4237-9190-012177145e10%27%2C"
            ),
            "{roles}"
        );
        assert!(!roles.contains(' ') && !roles.contains('\''));
    }
}
