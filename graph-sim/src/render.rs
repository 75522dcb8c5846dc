//! Graph's JSON shapes for each endpoint, with paging (`$top`, opaque `$skiptoken`, absolute
//! `@odata.nextLink`), `$select` on users, and the `$filter` forms the auditor sends.

use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{json, Value};

use crate::faults::Fault;
use crate::server::{graph_error, Body, Reply, State};
use chrono::{DateTime, Utc};

use crate::tenant::{SimSignIn, SimUser, Tenant, METHODS, ROLES};

pub struct Ctx<'a> {
    pub tenant: &'a Tenant,
    pub base: &'a str,
    pub version: &'a str,
    pub params: &'a [(String, String)],
    pub state: &'a State,
    /// The request carried `ConsistencyLevel: eventual`.
    pub eventual: bool,
    /// The request's body (a POST action's parameters).
    pub body: &'a [u8],
}

impl Ctx<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn context(&self, what: &str) -> String {
        format!(
            "https://graph.microsoft.com/{}/$metadata#{what}",
            self.version
        )
    }
}

/// Filtered row lists kept per query: a collection asks for the same few.
const MEMO_QUERIES: usize = 8;

/// Rendering work that depends only on the tenant (and the query), computed once per tenant
/// generation: without it every page of a paged list rescanned the whole tenant, and at
/// 1,000,000 users the simulator, not Graph's budget, set the pace of a collection.
#[derive(Default)]
pub struct Memo {
    generation: u64,
    /// The registration report's rows (indexes into `users`) by `$filter`.
    registration: Vec<(Option<String>, Arc<Vec<u32>>)>,
    /// The directory audit log, newest first.
    audit_log: Option<Arc<Vec<AuditEvent>>>,
    /// Rows of the audit log (indexes into it) by `$filter`.
    audits: Vec<(Option<String>, Arc<Vec<u32>>)>,
}

impl Memo {
    /// Forgets everything if the tenant changed since it was filled.
    fn at(&mut self, generation: u64) -> &mut Memo {
        if self.generation != generation {
            *self = Memo {
                generation,
                ..Memo::default()
            };
        }
        self
    }
}

/// The rows kept under `key`, or `build`'s (kept for next time, the oldest forgotten).
fn memoised(
    list: &mut Vec<(Option<String>, Arc<Vec<u32>>)>,
    key: Option<&str>,
    build: impl FnOnce() -> Result<Vec<u32>, Reply>,
) -> Result<Arc<Vec<u32>>, Reply> {
    if let Some((_, rows)) = list.iter().find(|(k, _)| k.as_deref() == key) {
        return Ok(rows.clone());
    }
    let rows = Arc::new(build()?);
    if list.len() >= MEMO_QUERIES {
        list.remove(0);
    }
    list.push((key.map(str::to_owned), rows.clone()));
    Ok(rows)
}

impl Ctx<'_> {
    fn memo(&self) -> std::sync::MutexGuard<'_, Memo> {
        self.state.memo.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn unsupported(what: &str) -> Reply {
    graph_error(
        400,
        "Request_UnsupportedQuery",
        &format!("Unsupported query: {what}"),
    )
}

fn skiptoken(offset: usize) -> String {
    // Opaque to clients, like Graph's.
    format!("RFNwdAIAAQAAA{:012x}", offset ^ 0x5eed_5eed)
}

fn parse_skiptoken(t: &str) -> Option<usize> {
    t.strip_prefix("RFNwdAIAAQAAA")
        .and_then(|h| usize::from_str_radix(h, 16).ok())
        .map(|o| o ^ 0x5eed_5eed)
}

/// A page as Graph writes it (the keys in the order a `Value` object would have them).
#[derive(serde::Serialize)]
struct PageOut<T> {
    #[serde(rename = "@odata.context")]
    context: String,
    #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
    value: Vec<T>,
}

/// One page of `items` (already filtered) with the nextLink, honouring the nextLink-loop fault.
/// Rows are serialised straight to the body's text.
fn page<T: Serialize>(
    ctx: &Ctx,
    label: &str,
    path: &str,
    context: &str,
    total: usize,
    page_size: usize,
    render: impl Fn(usize) -> T,
) -> Result<Body, Reply> {
    let offset = match ctx.param("$skiptoken") {
        Some(t) => parse_skiptoken(t)
            .ok_or_else(|| graph_error(400, "Request_BadRequest", "The skip token is invalid."))?,
        None => 0,
    };
    let end = (offset + page_size).min(total);
    let value: Vec<T> = (offset.min(end)..end).map(render).collect();
    let mut out = PageOut {
        context: ctx.context(context),
        next_link: None,
        value,
    };
    if end < total {
        let page_no = offset / page_size.max(1) + 1;
        let loops = ctx
            .state_fault_loop(label)
            .is_some_and(|after| page_no >= after as usize);
        let next_offset = if loops { 0 } else { end };
        out.next_link = Some(next_link(ctx, path, &skiptoken(next_offset)));
    }
    serde_json::to_string(&out).map(Body::Text).map_err(|e| {
        graph_error(
            500,
            "generalException",
            &format!("graph-sim could not write a page of {label}: {e}"),
        )
    })
}

/// The absolute nextLink: the request's query less its `$skiptoken`, then `token`.
fn next_link(ctx: &Ctx, path: &str, token: &str) -> String {
    let kept: Vec<String> = ctx
        .params
        .iter()
        .filter(|(k, _)| k != "$skiptoken")
        .map(|(k, v)| {
            format!(
                "{}={}",
                k,
                url::form_urlencoded::byte_serialize(v.as_bytes())
                    .collect::<String>()
                    .replace('+', "%20")
            )
        })
        .collect();
    let mut q = kept.join("&");
    if !q.is_empty() {
        q.push('&');
    }
    format!("{}/{}/{path}?{q}$skiptoken={token}", ctx.base, ctx.version)
}

impl Ctx<'_> {
    fn state_fault_loop(&self, label: &str) -> Option<u32> {
        let faults = self.state.faults.lock().unwrap_or_else(|e| e.into_inner());
        faults.iter().find_map(|a| match &a.fault {
            Fault::NextlinkLoop { after_page, .. } if a.fault.applies_to(label) => {
                Some(*after_page)
            }
            _ => None,
        })
    }

    fn user(&self, key: &str) -> Result<&SimUser, Reply> {
        self.tenant
            .find(key)
            .map(|i| &self.tenant.users[i])
            .ok_or_else(|| graph_error(404, "Request_ResourceNotFound", &format!("Resource '{key}' does not exist or one of its queried reference-property objects are not present.")))
    }
}

fn date(d: chrono::DateTime<chrono::Utc>) -> String {
    d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn answer(ctx: &Ctx, label: &str, rest: &[&str]) -> Result<Body, Reply> {
    match label {
        "users" => users(ctx),
        "userRegistrationDetails" => registration(ctx),
        "authenticationMethodsPolicy" => Ok(Body::Json(methods_policy(ctx))),
        "identitySecurityDefaultsEnforcementPolicy" => Ok(Body::Json(json!({
            "@odata.context": ctx.context("policies/identitySecurityDefaultsEnforcementPolicy/$entity"),
            "id": "00000000-0000-0000-0000-000000000005",
            "displayName": "Security Defaults",
            "description": "Security defaults is a set of basic identity security mechanisms recommended by Microsoft.",
            "isEnabled": ctx.tenant.policy.security_defaults,
        }))),
        "conditionalAccessPolicies" => conditional_access(ctx),
        "subscribedSkus" => Ok(Body::Json(subscribed_skus(ctx))),
        "roleAssignments" => role_assignments(ctx),
        "roleEligibilityScheduleInstances" => role_eligibility(ctx),
        "authenticationMethods" => {
            let user = ctx.user(rest[1])?;
            Ok(Body::Json(
                json!({"@odata.context": ctx.context(&format!("users('{}')/authentication/methods", user.id_string())), "value": method_objects(user, ctx.version)}),
            ))
        }
        "temporaryAccessPassMethods" => {
            let user = ctx.user(rest[1])?;
            let value: Vec<Value> = user.tap.iter().map(|t| tap_object(user, t)).collect();
            Ok(Body::Json(
                json!({"@odata.context": ctx.context(&format!("users('{}')/authentication/temporaryAccessPassMethods", user.id_string())), "value": value}),
            ))
        }
        "perUserMfaRequirements" => {
            let user = ctx.user(rest[1])?;
            Ok(Body::Json(
                json!({"perUserMfaState": user.per_user_mfa_str()}),
            ))
        }
        "signIns" => sign_ins(ctx),
        "directoryAudits" => directory_audits(ctx),
        "groupMembers" => group_members(ctx, rest[1], rest.len() == 4),
        "authenticationStrengthPolicies" => Ok(Body::Json(strengths(ctx))),
        "directorySettings" => Ok(Body::Json(directory_settings(ctx))),
        "getByIds" => get_by_ids(ctx),
        _ => Err(graph_error(
            404,
            "Request_ResourceNotFound",
            "Resource not found.",
        )),
    }
}

fn users(ctx: &Ctx) -> Result<Body, Reply> {
    if ctx.param("$filter").is_some() || ctx.param("$search").is_some() {
        return Err(unsupported(
            "the simulator's /users takes $select and $top only",
        ));
    }
    let top = match ctx.param("$top") {
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| {
                graph_error(
                    400,
                    "Request_BadRequest",
                    &format!("Invalid $top value '{t}'."),
                )
            })?
            .clamp(1, 999),
        None => 100,
    };
    const DEFAULT: &[&str] = &[
        "businessPhones",
        "displayName",
        "givenName",
        "id",
        "jobTitle",
        "mail",
        "mobilePhone",
        "officeLocation",
        "preferredLanguage",
        "surname",
        "userPrincipalName",
    ];
    let select: Vec<String> = match ctx.param("$select") {
        Some(s) => s
            .split(',')
            .map(|f| f.trim().to_string())
            .filter(|f| !f.is_empty())
            .collect(),
        None => DEFAULT.iter().map(|s| s.to_string()).collect(),
    };
    // A `Value` object's order: sorted, `id` always there, each field once.
    let mut fields: Vec<&str> = select.iter().map(String::as_str).collect();
    fields.push("id");
    fields.sort_unstable();
    fields.dedup();
    let users = &ctx.tenant.users;
    page(ctx, "users", "users", "users", users.len(), top, |i| {
        UserRow {
            user: &users[i],
            fields: &fields,
        }
    })
}

/// A user with the `$select`ed fields (sorted, deduplicated, with `id`); an unknown field is null.
struct UserRow<'a> {
    user: &'a SimUser,
    fields: &'a [&'a str],
}

impl Serialize for UserRow<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let u = self.user;
        let mut map = s.serialize_map(Some(self.fields.len()))?;
        for f in self.fields {
            match *f {
                "id" => map.serialize_entry(f, &u.id_string())?,
                "userPrincipalName" => map.serialize_entry(f, &*u.upn)?,
                "displayName" => map.serialize_entry(f, &*u.display_name)?,
                "accountEnabled" => map.serialize_entry(f, &u.enabled)?,
                "userType" => map.serialize_entry(f, if u.guest { "Guest" } else { "Member" })?,
                "createdDateTime" => map.serialize_entry(f, &u.created.map(date))?,
                "onPremisesSyncEnabled" => map.serialize_entry(f, &u.synced.then_some(true))?,
                "mail" => map.serialize_entry(f, &u.upn.replace("#EXT#", ""))?,
                "givenName" => {
                    map.serialize_entry(f, u.display_name.split(' ').next().unwrap_or(""))?
                }
                "surname" => {
                    map.serialize_entry(f, u.display_name.split(' ').nth(1).unwrap_or(""))?
                }
                "businessPhones" => map.serialize_entry(f, &[] as &[&str])?,
                "otherMails" => map.serialize_entry(f, &u.other_mail.as_slice())?,
                _ => map.serialize_entry(f, &())?,
            }
        }
        map.end()
    }
}

fn registration(ctx: &Ctx) -> Result<Body, Reply> {
    let want: Option<String> = match ctx.param("$filter") {
        None => None,
        Some(f) => {
            let f = f.replace(' ', "");
            let inner = f
                .strip_prefix("methodsRegistered/any(m:m")
                .and_then(|r| r.strip_prefix("eq'"))
                .and_then(|r| r.strip_suffix("')"))
                .ok_or_else(|| unsupported("$filter on userRegistrationDetails: only methodsRegistered/any(m:m eq '…')"))?;
            Some(inner.to_string())
        }
    };
    // Like Graph: "This method doesn't work for disabled users."
    let rows = {
        let mut memo = ctx.memo();
        let memo = memo.at(ctx.state.generation());
        memoised(&mut memo.registration, want.as_deref(), || {
            Ok(ctx
                .tenant
                .users
                .iter()
                .enumerate()
                .filter(|(_, u)| u.enabled)
                .filter(|(_, u)| {
                    want.as_ref().is_none_or(|w| {
                        u.report_method_names()
                            .iter()
                            .any(|m| m.eq_ignore_ascii_case(w))
                    })
                })
                .map(|(i, _)| i as u32)
                .collect())
        })?
    };
    let users = &ctx.tenant.users;
    let updated = ctx
        .tenant
        .now
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    page(
        ctx,
        "userRegistrationDetails",
        "reports/authenticationMethods/userRegistrationDetails",
        "reports/authenticationMethods/userRegistrationDetails",
        rows.len(),
        ctx.state.config.registration_page_size.max(1),
        |k| {
            let u = &users[rows[k] as usize];
            let mut methods = u.report_method_names();
            if let Some(x) = &u.unknown_method {
                methods.push(&**x);
            }
            let mfa = u.is_mfa_registered();
            let sspr = u.sspr_flags();
            let system_methods: &[&str] = if !mfa {
                &[]
            } else if u.has(0) || u.has(1) {
                &["push"]
            } else if u.has(2) {
                &["oath"]
            } else if u.has(4) {
                &["sms"]
            } else {
                &[]
            };
            RegistrationRow {
                id: u.id_string(),
                is_admin: u.is_admin(),
                is_mfa_capable: ctx.tenant.is_mfa_capable(u),
                is_mfa_registered: mfa,
                is_passwordless_capable: (0..METHODS.len())
                    .any(|i| u.has(i) && METHODS[i].passwordless),
                is_sspr_capable: sspr.capable,
                is_sspr_enabled: sspr.enabled,
                is_sspr_registered: sspr.registered,
                is_system_preferred_authentication_method_enabled: u.system_preferred,
                last_updated_date_time: &updated,
                methods_registered: methods,
                system_preferred_authentication_methods: system_methods,
                user_display_name: &u.display_name,
                // Graph returns "" where the user has no preference (REFERENCE §13).
                user_preferred_method_for_secondary_authentication: if u.default_method == "none" {
                    ""
                } else {
                    u.default_method
                },
                user_principal_name: &u.upn,
                user_type: if u.guest { "guest" } else { "member" },
            }
        },
    )
}

/// A row of the registration report, its fields in the order a `Value` object sorts them.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct RegistrationRow<'a> {
    id: String,
    is_admin: bool,
    is_mfa_capable: bool,
    is_mfa_registered: bool,
    is_passwordless_capable: bool,
    is_sspr_capable: bool,
    is_sspr_enabled: bool,
    is_sspr_registered: bool,
    is_system_preferred_authentication_method_enabled: bool,
    last_updated_date_time: &'a str,
    methods_registered: Vec<&'a str>,
    system_preferred_authentication_methods: &'a [&'a str],
    user_display_name: &'a str,
    user_preferred_method_for_secondary_authentication: &'a str,
    user_principal_name: &'a str,
    user_type: &'a str,
}

fn target(id: &str) -> Value {
    json!({"targetType": "group", "id": id, "isRegistrationRequired": false})
}

fn methods_policy(ctx: &Ctx) -> Value {
    let p = &ctx.tenant.policy;
    let state = |id: &str| {
        if p.enabled_methods.iter().any(|m| m.eq_ignore_ascii_case(id)) {
            "enabled"
        } else {
            "disabled"
        }
    };
    // Each configuration's targets (all users unless the tenant says otherwise).
    let all =
        |method: &str| -> Vec<Value> { p.targets_of(method).0.iter().map(|t| target(t)).collect() };
    let excludes = |method: &str| -> Vec<Value> {
        p.targets_of(method)
            .1
            .iter()
            .map(|t| json!({"targetType": "group", "id": t}))
            .collect()
    };
    let feature = |s: &str| json!({"state": s, "includeTarget": {"targetType": "group", "id": "all_users"}, "excludeTarget": {"targetType": "group", "id": "00000000-0000-0000-0000-000000000000"}});
    let mut configs = vec![
        fido2_configuration(p, state("Fido2"), excludes("Fido2")),
        json!({"@odata.type": "#microsoft.graph.microsoftAuthenticatorAuthenticationMethodConfiguration", "id": "MicrosoftAuthenticator",
               "state": state("MicrosoftAuthenticator"), "isSoftwareOathEnabled": false,
               "featureSettings": {"displayAppInformationRequiredState": feature(&p.app_information),
                                   "displayLocationInformationRequiredState": feature(&p.location_information),
                                   "numberMatchingRequiredState": feature(&p.number_matching)},
               "excludeTargets": excludes("MicrosoftAuthenticator"), "includeTargets": p.targets_of("MicrosoftAuthenticator").0.iter().map(|t| json!({"targetType": "group", "id": t, "isRegistrationRequired": false, "authenticationMode": "any"})).collect::<Vec<_>>()}),
        json!({"@odata.type": "#microsoft.graph.smsAuthenticationMethodConfiguration", "id": "Sms", "state": state("Sms"), "excludeTargets": excludes("Sms"),
               "includeTargets": p.targets_of("Sms").0.iter().map(|t| json!({"targetType": "group", "id": t, "isRegistrationRequired": false, "isUsableForSignIn": true})).collect::<Vec<_>>()}),
        json!({"@odata.type": "#microsoft.graph.voiceAuthenticationMethodConfiguration", "id": "Voice", "state": state("Voice"), "isOfficePhoneAllowed": true, "excludeTargets": excludes("Voice"), "includeTargets": all("Voice")}),
        json!({"@odata.type": "#microsoft.graph.emailAuthenticationMethodConfiguration", "id": "Email", "state": state("Email"), "allowExternalIdToUseEmailOtp": "default", "excludeTargets": excludes("Email"), "includeTargets": all("Email")}),
        json!({"@odata.type": "#microsoft.graph.softwareOathAuthenticationMethodConfiguration", "id": "SoftwareOath", "state": state("SoftwareOath"), "excludeTargets": excludes("SoftwareOath"), "includeTargets": all("SoftwareOath")}),
        json!({"@odata.type": "#microsoft.graph.temporaryAccessPassAuthenticationMethodConfiguration", "id": "TemporaryAccessPass",
               "state": if p.tap_enabled { "enabled" } else { "disabled" },
               "defaultLifetimeInMinutes": p.tap_default_lifetime, "defaultLength": p.tap_length,
               "minimumLifetimeInMinutes": p.tap_min_lifetime, "maximumLifetimeInMinutes": p.tap_max_lifetime, "isUsableOnce": p.tap_usable_once,
               "excludeTargets": [], "includeTargets": p.tap_include.iter().map(|t| target(t)).collect::<Vec<_>>()}),
        json!({"@odata.type": "#microsoft.graph.x509CertificateAuthenticationMethodConfiguration", "id": "X509Certificate", "state": state("X509Certificate"),
               "certificateUserBindings": [], "authenticationModeConfiguration": {"x509CertificateAuthenticationDefaultMode": "x509CertificateSingleFactor", "rules": []},
               "excludeTargets": excludes("X509Certificate"), "includeTargets": all("X509Certificate")}),
    ];
    if ctx.version == "beta" {
        configs.push(json!({"@odata.type": "#microsoft.graph.hardwareOathAuthenticationMethodConfiguration", "id": "HardwareOath", "state": state("HardwareOath"), "excludeTargets": excludes("HardwareOath"), "includeTargets": all("HardwareOath")}));
    }
    let mut out = json!({
        "@odata.context": ctx.context("policies/authenticationMethodsPolicy/$entity"),
        "id": "authenticationMethodsPolicy",
        "displayName": "Authentication Methods Policy",
        "description": "The tenant-wide policy that controls which authentication methods are allowed in the tenant, authentication method registration requirements, and self-service password reset settings",
        "lastModifiedDateTime": "2024-06-03T12:03:23.8452052Z",
        "policyVersion": "1.5",
        "policyMigrationState": p.migration_state,
        "reconfirmationInDays": 0,
        "registrationEnforcement": {"authenticationMethodsRegistrationCampaign": {
            "snoozeDurationInDays": 1, "state": p.registration_campaign, "excludeTargets": [],
            "includeTargets": [{"id": "all_users", "targetType": "group", "targetedAuthenticationMethod": "microsoftAuthenticator"}]}},
        "authenticationMethodConfigurations@odata.context": ctx.context("policies/authenticationMethodsPolicy/authenticationMethodConfigurations"),
        "authenticationMethodConfigurations": configs,
    });
    if ctx.version == "beta" {
        // Beta only (docs-contrib beta reportsuspiciousactivitysettings.md; Maester's EIDSCA.AG02 reads beta).
        out["reportSuspiciousActivitySettings"] = json!({"state": p.report_suspicious_activity,
            "includeTarget": {"targetType": "group", "id": "all_users"}, "voiceReportingCode": 0});
        out["systemCredentialPreferences"] = json!({"state": p.system_preferred, "excludeTargets": [], "includeTargets": [{"id": "all_users", "targetType": "group"}]});
    }
    out
}

fn conditional_access(ctx: &Ctx) -> Result<Body, Reply> {
    // v1.0 silently omits policies that use beta-only features; beta lists them all.
    let policies: Vec<&crate::tenant::SimCaPolicy> = ctx
        .tenant
        .policy
        .conditional_access
        .iter()
        .filter(|p| ctx.version == "beta" || !p.beta_only)
        .collect();
    let top = ctx
        .param("$top")
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(100)
        .max(1);
    let version = ctx.version;
    let strength_context = |id: &str| {
        format!("https://graph.microsoft.com/{version}/$metadata#identity/conditionalAccess/policies('{id}')/grantControls/authenticationStrength/combinationConfigurations")
    };
    let strengths = strength_objects(ctx, &strength_context);
    page(
        ctx,
        "conditionalAccessPolicies",
        "identity/conditionalAccess/policies",
        "identity/conditionalAccess/policies",
        policies.len(),
        top,
        |i| {
            let p = policies[i];
            let c = &p.conditions;
            let or_null = |v: Value, set: bool| if set { v } else { Value::Null };
            let client_apps: Vec<&str> = if c.client_app_types.is_empty() {
                vec!["all"]
            } else {
                c.client_app_types.iter().map(String::as_str).collect()
            };
            let locations = or_null(
                json!({"includeLocations": c.include_locations, "excludeLocations": c.exclude_locations}),
                !c.include_locations.is_empty() || !c.exclude_locations.is_empty(),
            );
            let platforms = or_null(
                json!({"includePlatforms": c.include_platforms, "excludePlatforms": c.exclude_platforms}),
                !c.include_platforms.is_empty() || !c.exclude_platforms.is_empty(),
            );
            let devices = match &c.device_filter {
                Some((mode, rule)) => {
                    json!({"includeDevices": [], "excludeDevices": [], "deviceFilter": {"mode": mode, "rule": rule}})
                }
                None => Value::Null,
            };
            let flows = match &c.transfer_methods {
                Some(t) => json!({"transferMethods": t}),
                None => Value::Null,
            };
            let every_guest = json!({"guestOrExternalUserTypes": "internalGuest,b2bCollaborationGuest,b2bCollaborationMember,b2bDirectConnectUser,otherExternalUser,serviceProvider",
                       "externalTenants": {"@odata.type": "#microsoft.graph.conditionalAccessAllExternalTenants", "membershipKind": "all"}});
            let guests = or_null(every_guest.clone(), c.exclude_guests);
            let include_guests = or_null(every_guest.clone(), p.include_guests);
            // Listed inline, whole (a live v1.0 list response: docs/graph.md).
            let strength = p
                .strength
                .as_ref()
                .and_then(|id| strengths.iter().find(|(s, _)| s.eq_ignore_ascii_case(id)))
                .map(|(_, v)| v.clone())
                .unwrap_or(Value::Null);
            let session = if p.beta_only {
                json!({"disableResilienceDefaults": null, "applicationEnforcedRestrictions": null, "cloudAppSecurity": null,
                       "persistentBrowser": null, "signInFrequency": null,
                       "continuousAccessEvaluation": {"mode": "strictEnforcement"}})
            } else {
                Value::Null
            };
            let conditions = json!({
                "userRiskLevels": c.user_risk_levels, "signInRiskLevels": c.sign_in_risk_levels, "clientAppTypes": client_apps,
                "servicePrincipalRiskLevels": [], "insiderRiskLevels": c.insider_risk_levels,
                "platforms": platforms, "locations": locations, "devices": devices, "clientApplications": null,
                "authenticationFlows": flows,
                "applications": {"includeApplications": ["All"], "excludeApplications": c.exclude_applications, "includeUserActions": [], "includeAuthenticationContextClassReferences": [], "applicationFilter": null},
                "users": {"includeUsers": p.include_users, "excludeUsers": p.exclude_users, "includeGroups": p.include_groups, "excludeGroups": c.exclude_groups,
                          "includeRoles": p.include_roles, "excludeRoles": c.exclude_roles, "includeGuestsOrExternalUsers": include_guests, "excludeGuestsOrExternalUsers": guests}
            });
            json!({
                "id": p.id, "templateId": null, "displayName": p.display_name,
                "createdDateTime": "2024-03-01T10:00:00.0000000Z", "modifiedDateTime": null, "state": p.state, "sessionControls": session,
                "conditions": conditions,
                "grantControls": {"operator": p.operator, "builtInControls": p.built_in_controls, "customAuthenticationFactors": [], "termsOfUse": [],
                                  "authenticationStrength@odata.context": format!("https://graph.microsoft.com/{version}/$metadata#identity/conditionalAccess/policies('{}')/grantControls/authenticationStrength/$entity", p.id),
                                  "authenticationStrength": strength},
            })
        },
    )
}

/// `GET /subscribedSkus` (docs-contrib `subscribedsku-list.md`): no paging, the tenant's SKUs
/// with their service plans. Every tenant has Microsoft 365 Business Basic (no Entra ID P1/P2);
/// a P1 tenant adds AAD_PREMIUM (plan AAD_PREMIUM), a P2 tenant AAD_PREMIUM_P2 (plans AAD_PREMIUM
/// and AAD_PREMIUM_P2). Ids from Microsoft's licensing service-plan reference.
fn subscribed_skus(ctx: &Ctx) -> Value {
    let tenant = ctx.state.config.tenant_id.as_str();
    let sku = |sku_id: &str, part: &str, plans: &[(&str, &str)]| {
        let plans: Vec<Value> = plans
            .iter()
            .map(|(id, name)| json!({"servicePlanId": id, "servicePlanName": name, "provisioningStatus": "Success", "appliesTo": "User"}))
            .collect();
        json!({
            "accountName": "Contoso", "accountId": tenant, "appliesTo": "User", "capabilityStatus": "Enabled",
            "consumedUnits": ctx.tenant.users.len(), "id": format!("{tenant}_{sku_id}"),
            "prepaidUnits": {"enabled": ctx.tenant.users.len() + 10, "lockedOut": 0, "suspended": 0, "warning": 0},
            "servicePlans": plans, "skuId": sku_id, "skuPartNumber": part,
            "subscriptionIds": [format!("5b0c6a1e-0000-4000-8000-{:012x}", part.len())],
        })
    };
    const P1: (&str, &str) = ("41781fb2-bc02-4b7c-bd55-b576c07bb09d", "AAD_PREMIUM");
    const P2: (&str, &str) = ("eec0eb4f-6444-4f95-aba0-50c24d67f998", "AAD_PREMIUM_P2");
    let mut value = vec![sku(
        "3b555118-da6a-4418-894f-7df1e2096870",
        "O365_BUSINESS_ESSENTIALS",
        &[(
            "9aaf7827-d63c-4b61-89c3-182f06f82e5c",
            "EXCHANGE_S_STANDARD",
        )],
    )];
    match ctx.state.config.licence {
        crate::Licence::Free => {}
        crate::Licence::P1 => value.push(sku(
            "078d2b04-f1bd-4111-bbd4-b4b1b354cef4",
            "AAD_PREMIUM",
            &[P1],
        )),
        crate::Licence::P2 => value.push(sku(
            "84a661c4-e949-4bd2-a560-ed7766fcaf2b",
            "AAD_PREMIUM_P2",
            &[P1, P2],
        )),
    }
    json!({"@odata.context": ctx.context("subscribedSkus"), "value": value})
}

/// Who holds a role (or is eligible for it): an index into the tenant's users, groups or service
/// principals.
#[derive(Clone, Copy)]
enum Holder {
    User(usize),
    Group(usize),
    ServicePrincipal(usize),
}

/// The `$filter` on `roleDefinitionId` the list endpoints take: `eq` always, `in` only where the
/// docs say so (roleAssignments: `eq`, `in`; the PIM instances: `eq`, `ne`).
fn role_filter(ctx: &Ctx, what: &str, allow_in: bool) -> Result<Option<Vec<String>>, Reply> {
    let Some(f) = ctx.param("$filter") else {
        return Ok(None);
    };
    let f = f.trim();
    if let Some(v) = f.strip_prefix("roleDefinitionId eq ") {
        return Ok(Some(vec![v.trim().trim_matches('\'').to_string()]));
    }
    if let (true, Some(v)) = (allow_in, f.strip_prefix("roleDefinitionId in ")) {
        let v = v
            .trim()
            .strip_prefix('(')
            .and_then(|v| v.strip_suffix(')'))
            .ok_or_else(|| unsupported("roleDefinitionId in (…)"))?;
        return Ok(Some(
            v.split(',')
                .map(|s| s.trim().trim_matches('\'').to_string())
                .collect(),
        ));
    }
    Err(unsupported(&format!(
        "$filter on {what}: roleDefinitionId eq '…'{}",
        if allow_in { " or in ('…')" } else { "" }
    )))
}

/// Every (holder, role) pair, users first, as `pick` chooses the role lists.
fn holders<'a>(
    tenant: &'a Tenant,
    wanted: &Option<Vec<String>>,
    user_roles: impl Fn(&'a SimUser) -> &'a [u8],
    group_roles: impl Fn(&'a crate::tenant::SimGroup) -> &'a [u8],
    sp_roles: impl Fn(&'a crate::tenant::SimServicePrincipal) -> &'a [u8],
) -> Vec<(Holder, &'static str)> {
    let keep = |role: &str| {
        wanted
            .as_ref()
            .is_none_or(|w| w.iter().any(|x| x.eq_ignore_ascii_case(role)))
    };
    let mut rows = Vec::new();
    for (i, u) in tenant.users.iter().enumerate() {
        for r in user_roles(u) {
            let role = ROLES[*r as usize];
            if keep(role) {
                rows.push((Holder::User(i), role));
            }
        }
    }
    for (i, g) in tenant.groups.iter().enumerate() {
        for r in group_roles(g) {
            let role = ROLES[*r as usize];
            if keep(role) {
                rows.push((Holder::Group(i), role));
            }
        }
    }
    for (i, sp) in tenant.service_principals.iter().enumerate() {
        for r in sp_roles(sp) {
            let role = ROLES[*r as usize];
            if keep(role) {
                rows.push((Holder::ServicePrincipal(i), role));
            }
        }
    }
    rows
}

/// The id and the `$expand=principal` object of a holder (`@odata.type` tells them apart).
fn principal(tenant: &Tenant, h: Holder) -> (String, Value) {
    match h {
        Holder::User(i) => {
            let u = &tenant.users[i];
            (
                u.id_string(),
                json!({"@odata.type": "#microsoft.graph.user", "id": u.id_string(), "userPrincipalName": &*u.upn,
                       "displayName": &*u.display_name, "accountEnabled": u.enabled, "userType": if u.guest { "Guest" } else { "Member" }}),
            )
        }
        Holder::Group(i) => {
            let g = &tenant.groups[i];
            (
                g.id_string(),
                json!({"@odata.type": "#microsoft.graph.group", "id": g.id_string(), "displayName": g.display_name,
                       "isAssignableToRole": g.role_assignable, "securityEnabled": true, "mailEnabled": false, "groupTypes": []}),
            )
        }
        Holder::ServicePrincipal(i) => {
            let sp = &tenant.service_principals[i];
            (
                sp.id_string(),
                json!({"@odata.type": "#microsoft.graph.servicePrincipal", "id": sp.id_string(), "displayName": sp.display_name,
                       "appId": uuid::Uuid::from_u128(sp.id.rotate_left(29)).hyphenated().to_string(),
                       "servicePrincipalType": "Application", "accountEnabled": true}),
            )
        }
    }
}

fn role_assignments(ctx: &Ctx) -> Result<Body, Reply> {
    let wanted = role_filter(ctx, "roleAssignments", true)?;
    let expand = ctx.param("$expand").is_some_and(|e| e == "principal");
    let tenant = ctx.tenant;
    let rows = holders(
        tenant,
        &wanted,
        |u| &u.roles,
        |g| if g.role_assignable { &g.roles } else { &[] },
        |sp| &sp.roles,
    );
    page(
        ctx,
        "roleAssignments",
        "roleManagement/directory/roleAssignments",
        if expand {
            "roleManagement/directory/roleAssignments(principal())"
        } else {
            "roleManagement/directory/roleAssignments"
        },
        rows.len(),
        100,
        |k| {
            let (h, role) = rows[k];
            let (id, p) = principal(tenant, h);
            let mut o = json!({"id": format!("{}-{}", role, id), "principalId": id, "directoryScopeId": "/", "roleDefinitionId": role});
            if expand {
                o["principal"] = p;
            }
            o
        },
    )
}

/// PIM eligibility instances (P2 only: the licence answer is the server's).
fn role_eligibility(ctx: &Ctx) -> Result<Body, Reply> {
    let wanted = role_filter(ctx, "roleEligibilityScheduleInstances", false)?;
    let expand = ctx.param("$expand").is_some_and(|e| e == "principal");
    let tenant = ctx.tenant;
    let rows = holders(
        tenant,
        &wanted,
        |u| &u.eligible_roles,
        |g| {
            if g.role_assignable {
                &g.eligible_roles
            } else {
                &[]
            }
        },
        |_| &[],
    );
    let start = date(tenant.now - chrono::Duration::days(90));
    page(
        ctx,
        "roleEligibilityScheduleInstances",
        "roleManagement/directory/roleEligibilityScheduleInstances",
        if expand {
            "roleManagement/directory/roleEligibilityScheduleInstances(principal())"
        } else {
            "roleManagement/directory/roleEligibilityScheduleInstances"
        },
        rows.len(),
        100,
        |k| {
            let (h, role) = rows[k];
            let (id, p) = principal(tenant, h);
            let schedule = uuid::Uuid::from_u128(
                uuid::Uuid::parse_str(&id)
                    .map_or(0, |u| u.as_u128())
                    .rotate_left(7)
                    ^ k as u128,
            )
            .hyphenated()
            .to_string();
            let mut o = json!({"id": format!("{}-{}-e", role, id), "principalId": id, "roleDefinitionId": role,
                               "directoryScopeId": "/", "appScopeId": null, "startDateTime": start, "endDateTime": null,
                               "memberType": "Direct", "roleEligibilityScheduleId": schedule});
            if expand {
                o["principal"] = p;
            }
            o
        },
    )
}

fn method_id(user: &SimUser, n: usize) -> String {
    uuid::Uuid::from_u128(user.id.rotate_left(17) ^ (n as u128 + 1))
        .hyphenated()
        .to_string()
}

fn tap_object(user: &SimUser, t: &crate::tenant::SimTap) -> Value {
    json!({"@odata.type": "#microsoft.graph.temporaryAccessPassAuthenticationMethod", "id": method_id(user, 99), "temporaryAccessPass": null,
           "createdDateTime": date(t.issued()), "startDateTime": date(t.start),
           "lifetimeInMinutes": t.lifetime_minutes, "isUsableOnce": t.usable_once, "isUsable": t.usable, "methodUsabilityReason": t.reason})
}

/// A user's method objects as `/{version}/users/{id}/authentication/methods` lists them: only the
/// types of that API version (v1.0 has no hardware OATH type), and none for certificate sign-in
/// or security questions (docs-contrib `api-reference/{v1.0,beta}/api/authentication-list-methods.md`).
fn method_objects(user: &SimUser, version: &str) -> Vec<Value> {
    let mut out = vec![
        json!({"@odata.type": "#microsoft.graph.passwordAuthenticationMethod", "id": "28c10230-6103-485e-b985-444c60001490",
                              "password": null, "createdDateTime": user.created.map(date)}),
    ];
    for (n, def) in METHODS.iter().enumerate() {
        if !user.has(n) {
            continue;
        }
        let Some(t) = def.odata_type else { continue };
        if version != "beta" && t == "hardwareOathAuthenticationMethod" {
            continue;
        }
        let id = method_id(user, n);
        let typ = format!("#microsoft.graph.{t}");
        let obj = match def.report_name {
            "mobilePhone" | "alternateMobilePhone" | "officePhone" => {
                let phone_type = match def.report_name {
                    "mobilePhone" => "mobile",
                    "alternateMobilePhone" => "alternateMobile",
                    _ => "office",
                };
                json!({"@odata.type": typ, "id": id, "phoneNumber": format!("+1 55555{:05}", user.id % 100_000), "phoneType": phone_type, "smsSignInState": "notEnabled"})
            }
            "microsoftAuthenticatorPush" | "microsoftAuthenticatorPasswordless" => {
                json!({"@odata.type": typ, "id": id, "displayName": "iPhone 15", "deviceTag": "SoftwareTokenActivated", "phoneAppVersion": "6.8.7", "createdDateTime": null})
            }
            "passKeyDeviceBoundAuthenticator" => {
                json!({"@odata.type": typ, "id": id, "displayName": "Microsoft Authenticator - iOS",
                "aaGuid": "90a3ccdf-635c-4729-a248-9b709135078f", "model": "Microsoft Authenticator - iOS", "attestationLevel": "attested", "passkeyType": "deviceBound", "attestationCertificates": []})
            }
            "fido2SecurityKey" | "passKeyDeviceBound" => {
                json!({"@odata.type": typ, "id": id, "displayName": "Red key",
                "aaGuid": "2fc0579f-8113-47ea-b116-555a8db9202a", "model": "YubiKey 5 NFC", "attestationLevel": "attested", "passkeyType": "deviceBound", "attestationCertificates": []})
            }
            "passKeySynced" => {
                json!({"@odata.type": typ, "id": id, "displayName": "iCloud Keychain",
                "aaGuid": "fbfc3007-154e-4ecc-8c0b-6e020557d7bd", "model": "iCloud Keychain", "attestationLevel": "notAttested", "passkeyType": "synced"})
            }
            "passKeyDeviceBoundWindowsHello" => {
                json!({"@odata.type": typ, "id": id, "displayName": "Windows Hello",
                "aaGuid": "08987058-cadc-4b81-b6e1-30de50dcbe96", "model": "Windows Hello Hardware Authenticator", "attestationLevel": "notAttested", "passkeyType": "deviceBound", "attestationCertificates": []})
            }
            "hardwareOneTimePasscode" => {
                // Beta only; its `device` is a navigation property, not inlined in the list.
                json!({"@odata.type": typ, "id": id, "createdDateTime": null, "lastUsedDateTime": null})
            }
            "windowsHelloForBusiness" => {
                json!({"@odata.type": typ, "id": id, "displayName": "LAPTOP-7Q2K", "keyStrength": "normal"})
            }
            "macOsSecureEnclaveKey" => {
                json!({"@odata.type": typ, "id": id, "displayName": "MacBook Pro", "keyStrength": "normal", "platform": "macOS"})
            }
            "email" => {
                json!({"@odata.type": typ, "id": id, "emailAddress": format!("{}@fabrikam.com", user.id % 10_000)})
            }
            "temporaryAccessPass" => match &user.tap {
                Some(t) => tap_object(user, t),
                None => continue,
            },
            "externalAuthMethod" => {
                json!({"@odata.type": typ, "id": id, "configurationId": "b3f4c1a0-0000-4000-8000-000000000e01", "displayName": "Contoso MFA"})
            }
            _ => json!({"@odata.type": typ, "id": id}),
        };
        out.push(obj);
    }
    if let Some(x) = &user.unknown_method {
        out.push(json!({"@odata.type": format!("#microsoft.graph.{x}AuthenticationMethod"), "id": method_id(user, 77)}));
    }
    out
}

/// Where a sign-in listing is: the instant its first page was asked for (later pages list
/// what was visible then, so nothing that arrives meanwhile shifts them), the last row served
/// (the next page continues after it in the listing's order) and the page number.
struct Cursor {
    as_of: DateTime<Utc>,
    after: Option<(DateTime<Utc>, String)>,
    page: usize,
}

fn sign_in_token(c: &Cursor) -> String {
    use base64::Engine;
    let after = c
        .after
        .as_ref()
        .map(|(t, id)| format!("{}|{id}", t.timestamp_micros()))
        .unwrap_or_default();
    let raw = format!("{}|{}|{after}", c.as_of.timestamp_micros(), c.page);
    format!(
        "RFNwdAIAAQAAA{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    )
}

fn parse_sign_in_token(t: &str) -> Option<Cursor> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t.strip_prefix("RFNwdAIAAQAAA")?)
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let mut parts = raw.splitn(4, '|');
    let as_of = DateTime::from_timestamp_micros(parts.next()?.parse().ok()?)?;
    let page = parts.next()?.parse().ok()?;
    let after = match (parts.next(), parts.next()) {
        (Some(t), Some(id)) if !t.is_empty() => Some((
            DateTime::from_timestamp_micros(t.parse().ok()?)?,
            id.to_string(),
        )),
        _ => None,
    };
    Some(Cursor { as_of, after, page })
}

/// The `$filter` of a sign-in listing (signin-list.md: `createdDateTime` eq/le/ge,
/// `status/errorCode` eq, `userId` eq, `userPrincipalName` eq, `id` eq, joined by `and`).
#[derive(Default)]
struct SignInFilter {
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    code: Option<i32>,
    user: Option<String>,
    upn: Option<String>,
    id: Option<String>,
}

impl SignInFilter {
    fn parse(f: Option<&str>) -> Result<SignInFilter, Reply> {
        let mut q = SignInFilter::default();
        let Some(f) = f else { return Ok(q) };
        for clause in f.split(" and ") {
            let parts: Vec<&str> = clause.split_whitespace().collect();
            let bad = || unsupported(&format!("$filter clause '{clause}'"));
            let [field, op, value] = parts.as_slice() else {
                return Err(bad());
            };
            let when = || {
                DateTime::parse_from_rfc3339(value)
                    .map(|d| d.with_timezone(&Utc))
                    .map_err(|_| bad())
            };
            let text = || value.trim_matches('\'').to_string();
            match (*field, *op) {
                ("createdDateTime", "ge") => q.since = Some(when()?),
                ("createdDateTime", "le") => q.until = Some(when()?),
                ("createdDateTime", "eq") => {
                    q.since = Some(when()?);
                    q.until = q.since;
                }
                ("status/errorCode", "eq") => q.code = Some(value.parse().map_err(|_| bad())?),
                ("userId", "eq") => q.user = Some(text()),
                ("userPrincipalName", "eq") => q.upn = Some(text().to_ascii_lowercase()),
                ("id", "eq") => q.id = Some(text()),
                _ => return Err(bad()),
            }
        }
        Ok(q)
    }
    fn keeps(&self, s: &SimSignIn, upn: &dyn Fn(&str) -> Option<String>) -> bool {
        s.interactive
            && self.since.is_none_or(|t| s.created >= t)
            && self.until.is_none_or(|t| s.created <= t)
            && self.code.is_none_or(|c| s.error_code == c)
            && self
                .user
                .as_ref()
                .is_none_or(|u| u.eq_ignore_ascii_case(&s.user_id))
            && self.id.as_ref().is_none_or(|i| *i == s.id)
            && self
                .upn
                .as_ref()
                .is_none_or(|want| upn(&s.user_id).is_some_and(|u| u == *want))
    }
}

/// `GET /auditLogs/signIns` (v1.0 and beta): newest first unless `$orderby=createdDateTime
/// asc`; `$top` ≤ 1,000 (the default); rows pushed while running become visible after the
/// ingestion delay; the traffic generator's rows are made on the fly. Paging is by keyset, so a
/// listing is exact however many rows arrive while it is read.
fn sign_ins(ctx: &Ctx) -> Result<Body, Reply> {
    let filter = SignInFilter::parse(ctx.param("$filter"))?;
    let asc = match ctx.param("$orderby").map(str::trim) {
        None | Some("createdDateTime desc") => false,
        Some("createdDateTime") | Some("createdDateTime asc") => true,
        Some(o) => return Err(unsupported(&format!("$orderby '{o}'"))),
    };
    let top = ctx
        .param("$top")
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(1000)
        .clamp(1, 1000);
    let cursor = match ctx.param("$skiptoken") {
        Some(t) => parse_sign_in_token(t)
            .ok_or_else(|| graph_error(400, "Request_BadRequest", "The skip token is invalid."))?,
        None => Cursor {
            as_of: Utc::now(),
            after: None,
            page: 0,
        },
    };
    let tenant = ctx.tenant;
    let filter = &filter;
    let upn_of = |id: &str| {
        tenant
            .find(id)
            .map(|i| tenant.users[i].upn.to_ascii_lowercase())
    };
    // Rows strictly after the cursor in the listing's order.
    let after = |s: &SimSignIn| match &cursor.after {
        None => true,
        Some((t, id)) => {
            let ord = s
                .created
                .cmp(t)
                .then_with(|| s.id.as_str().cmp(id.as_str()));
            if asc {
                ord == std::cmp::Ordering::Greater
            } else {
                ord == std::cmp::Ordering::Less
            }
        }
    };
    let keep = |s: &SimSignIn| s.visible(cursor.as_of) && filter.keeps(s, &upn_of) && after(s);
    let stored: Box<dyn Iterator<Item = SimSignIn> + '_> = {
        let list = &tenant.sign_ins;
        // The list is newest first: skip straight to the cursor.
        match (&cursor.after, asc) {
            (Some((t, _)), false) => {
                let from = list.partition_point(|s| s.created > *t);
                Box::new(list[from..].iter().filter(move |s| keep(s)).cloned())
            }
            (Some((t, _)), true) => {
                let to = list.partition_point(|s| s.created >= *t);
                Box::new(list[..to].iter().rev().filter(move |s| keep(s)).cloned())
            }
            (None, false) => Box::new(list.iter().filter(move |s| keep(s)).cloned()),
            (None, true) => Box::new(list.iter().rev().filter(move |s| keep(s)).cloned()),
        }
    };
    let generated: Box<dyn Iterator<Item = SimSignIn> + '_> = match &ctx.state.generator {
        Some(g) if !tenant.users.is_empty() => {
            let delay =
                chrono::Duration::from_std(ctx.state.config.sign_in_delay).unwrap_or_default();
            let mut from = filter.since.unwrap_or(g.start).max(g.start);
            let mut to = (cursor.as_of - delay).min(filter.until.unwrap_or(cursor.as_of));
            if let Some((t, _)) = &cursor.after {
                if asc {
                    from = from.max(*t);
                } else {
                    to = to.min(*t);
                }
            }
            let ids = move |i: usize| tenant.users[i].id_string();
            let n = tenant.users.len();
            let g = g.clone();
            match g.slots(from, to) {
                Some((lo, hi)) => {
                    let slots: Box<dyn Iterator<Item = u64>> = if asc {
                        Box::new(lo..=hi)
                    } else {
                        Box::new((lo..=hi).rev())
                    };
                    // Cheap checks first: at 10,000 a minute a day is 14 million slots.
                    let want_user = filter
                        .user
                        .as_ref()
                        .and_then(|u| tenant.find(u))
                        .map(Some)
                        .unwrap_or(if filter.user.is_some() {
                            Some(usize::MAX)
                        } else {
                            None
                        });
                    let g2 = g.clone();
                    Box::new(
                        slots
                            .filter(move |k| {
                                filter.code.is_none_or(|c| g2.code(*k) == c)
                                    && want_user.is_none_or(|u| g2.user(*k, n) == u)
                            })
                            .map(move |k| g.event(k, &ids, n))
                            .filter(move |s| filter.keeps(s, &upn_of) && after(s)),
                    )
                }
                None => Box::new(std::iter::empty()),
            }
        }
        _ => Box::new(std::iter::empty()),
    };
    let mut stored = stored.peekable();
    let mut generated = generated.peekable();
    let mut rows: Vec<SimSignIn> = Vec::with_capacity(top.min(64));
    while rows.len() < top {
        let take_stored = match (stored.peek(), generated.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(a), Some(b)) => {
                let ord = a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id));
                (ord == std::cmp::Ordering::Greater) != asc
            }
        };
        let next = if take_stored {
            stored.next()
        } else {
            generated.next()
        };
        rows.extend(next);
    }
    let more = stored.peek().is_some() || generated.peek().is_some();
    let mut out = PageOut {
        context: ctx.context("auditLogs/signIns"),
        next_link: None,
        value: rows
            .iter()
            .map(|s| sign_in_row(ctx, s))
            .collect::<Vec<Value>>(),
    };
    if more {
        let loops = ctx
            .state_fault_loop("signIns")
            .is_some_and(|after| cursor.page + 1 >= after as usize);
        let next = Cursor {
            as_of: cursor.as_of,
            after: if loops {
                None
            } else {
                rows.last().map(|s| (s.created, s.id.clone()))
            },
            page: if loops { 0 } else { cursor.page + 1 },
        };
        out.next_link = Some(next_link(ctx, "auditLogs/signIns", &sign_in_token(&next)));
    }
    serde_json::to_string(&out).map(Body::Text).map_err(|e| {
        graph_error(
            500,
            "generalException",
            &format!("graph-sim could not write a page of signIns: {e}"),
        )
    })
}

/// One signIn as Graph writes it: v1.0's properties (signin.md, the fixture
/// `signIns_list.json`); beta adds `authenticationRequirement`, `authenticationDetails`,
/// `authenticationMethodsUsed`, `signInEventTypes` and `userType`.
fn sign_in_row(ctx: &Ctx, s: &SimSignIn) -> Value {
    let tenant = ctx.tenant;
    let u = tenant.find(&s.user_id).map(|i| &tenant.users[i]);
    let reason = if s.failure_reason.is_empty() {
        crate::events::failure_reason(s.error_code)
    } else {
        s.failure_reason.as_str()
    };
    let details: Option<&str> = if !s.additional_details.is_empty() {
        Some(&s.additional_details)
    } else if s.error_code == 0 {
        None
    } else if let Some(step) = s.steps.iter().rev().find(|x| !x.succeeded) {
        Some(&step.detail)
    } else if s.error_code == 500121 {
        Some("MFA denied; user did not respond to mobile app notification")
    } else {
        None
    };
    let ca = if !s.ca_status.is_empty() {
        s.ca_status.as_str()
    } else if s.error_code == 0 && s.mfa_required {
        "success"
    } else {
        "notApplied"
    };
    let app = if s.app.is_empty() {
        "Microsoft Office"
    } else {
        s.app.as_str()
    };
    let mut row = json!({
        "id": s.id,
        "createdDateTime": s.created.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "userDisplayName": u.map(|u| &*u.display_name), "userPrincipalName": u.map(|u| u.upn.to_ascii_lowercase()), "userId": s.user_id,
        "appId": "d3590ed6-52b3-4102-aeff-aad2292ab01c", "appDisplayName": app, "ipAddress": "131.107.159.37",
        "clientAppUsed": "Browser", "correlationId": crate::events::derived_id(&s.id, s.created, 7, 7), "conditionalAccessStatus": ca,
        "isInteractive": s.interactive, "riskDetail": "none", "riskLevelAggregated": "none", "riskLevelDuringSignIn": "none", "riskState": "none",
        "riskEventTypes": [], "riskEventTypes_v2": [], "resourceDisplayName": "Office 365 Exchange Online", "resourceId": "00000002-0000-0ff1-ce00-000000000000",
        "status": {"errorCode": s.error_code, "failureReason": if s.error_code == 0 { None } else { Some(reason) }, "additionalDetails": details},
        "deviceDetail": {"deviceId": "", "displayName": null, "operatingSystem": "Windows 10", "browser": "Edge 80.0.361", "isCompliant": null, "isManaged": null, "trustType": null},
        "location": {"city": "Redmond", "state": "Washington", "countryOrRegion": "US", "geoCoordinates": {"altitude": null, "latitude": 47.68050003051758, "longitude": -122.12094116210938}},
        "appliedConditionalAccessPolicies": [],
    });
    if ctx.version == "beta" {
        let steps: Vec<Value> = s
            .steps
            .iter()
            .map(|x| {
                json!({
                    "authenticationStepDateTime": x.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    "authenticationMethod": x.method,
                    "authenticationMethodDetail": if x.method_detail.is_empty() { None } else { Some(&x.method_detail) },
                    "succeeded": x.succeeded,
                    "authenticationStepResultDetail": x.detail,
                    "authenticationStepRequirement": x.requirement,
                })
            })
            .collect();
        let mut used: Vec<&str> = s
            .steps
            .iter()
            .filter(|x| x.succeeded)
            .map(|x| x.method.as_str())
            .collect();
        used.dedup();
        if let Some(o) = row.as_object_mut() {
            o.insert(
                "authenticationRequirement".into(),
                json!(if s.mfa_required {
                    "multiFactorAuthentication"
                } else {
                    "singleFactorAuthentication"
                }),
            );
            o.insert("authenticationDetails".into(), json!(steps));
            o.insert("authenticationMethodsUsed".into(), json!(used));
            o.insert("signInEventTypes".into(), json!(["interactiveUser"]));
            o.insert(
                "userType".into(),
                json!(if u.is_some_and(|u| u.guest) {
                    "guest"
                } else {
                    "member"
                }),
            );
        }
    }
    row
}

/// `transitiveMembers` (every member, each with its `@odata.type`) or its `microsoft.graph.user`
/// cast (users only).
fn group_members(ctx: &Ctx, key: &str, users_only: bool) -> Result<Body, Reply> {
    let group = ctx.tenant.group(key).ok_or_else(|| {
        graph_error(404, "Request_ResourceNotFound", &format!("Resource '{key}' does not exist or one of its queried reference-property objects are not present."))
    })?;
    let top = ctx
        .param("$top")
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, 999);
    // An OData cast on transitive members is an advanced query (docs-contrib
    // `concepts/aad-advanced-queries.md`): without the header and `$count=true` Graph refuses it.
    if users_only && !(ctx.eventual && ctx.param("$count") == Some("true")) {
        return Err(unsupported(
            "an OData cast on transitiveMembers needs ConsistencyLevel: eventual and $count=true",
        ));
    }
    let users = &ctx.tenant.users;
    let sps = &ctx.tenant.service_principals;
    let (path, context, total) = if users_only {
        (
            format!(
                "groups/{}/transitiveMembers/microsoft.graph.user",
                group.id_string()
            ),
            "users",
            group.members.len(),
        )
    } else {
        (
            format!("groups/{}/transitiveMembers", group.id_string()),
            "directoryObjects",
            group.members.len() + group.service_principals.len(),
        )
    };
    page(
        ctx,
        "groupMembers",
        &path,
        context,
        total,
        top,
        |k| match group.members.get(k) {
            Some(i) => {
                let u = &users[*i as usize];
                json!({"@odata.type": "#microsoft.graph.user", "id": u.id_string(), "userPrincipalName": &*u.upn})
            }
            None => {
                let sp = &sps[group.service_principals[k - group.members.len()] as usize];
                json!({"@odata.type": "#microsoft.graph.servicePrincipal", "id": sp.id_string(), "displayName": sp.display_name})
            }
        },
    )
}

/// One directory-audit event of the simulated tenant.
pub struct AuditEvent {
    at: chrono::DateTime<chrono::Utc>,
    activity: &'static str,
    category: &'static str,
    service: &'static str,
    reason: &'static str,
    operation: &'static str,
    /// Index of the target user.
    target: usize,
    /// Index into `Tenant::audits` of an entry pushed while running (rendered from it).
    pushed: Option<usize>,
}

/// The tenant's directory audit log, newest first: an "Admin registered security info" event
/// (loggedByService "Authentication Methods", category UserManagement, resultReason "Admin
/// registered temporary access pass method for user") for every TAP when it was issued
/// (entra-docs architecture/security-operations-privileged-accounts.md), and unrelated events
/// around it (other methods registered by admins and by users, user updates).
fn audit_events(t: &Tenant) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    for (i, u) in t.users.iter().enumerate() {
        if let Some(tap) = &u.tap {
            out.push(AuditEvent {
                at: tap.issued(),
                activity: "Admin registered security info",
                category: "UserManagement",
                service: "Authentication Methods",
                reason: "Admin registered temporary access pass method for user",
                operation: "Add",
                target: i,
                pushed: None,
            });
        }
        let hours = chrono::Duration::minutes(((u.id % 7200) as i64) + 1);
        if i % 29 == 3 {
            out.push(AuditEvent {
                at: t.now - hours,
                activity: "Admin registered security info",
                category: "UserManagement",
                service: "Authentication Methods",
                reason: "Admin registered phone method for user",
                operation: "Add",
                target: i,
                pushed: None,
            });
        }
        if i % 31 == 5 {
            out.push(AuditEvent {
                at: t.now - hours,
                activity: "User registered security info",
                category: "UserManagement",
                service: "Authentication Methods",
                reason: "User registered Authenticator App with Notification and Code",
                operation: "Add",
                target: i,
                pushed: None,
            });
        }
        if i % 17 == 2 {
            out.push(AuditEvent {
                at: t.now - hours,
                activity: "Update user",
                category: "UserManagement",
                service: "Core Directory",
                reason: "",
                operation: "Update",
                target: i,
                pushed: None,
            });
        }
    }
    for (n, a) in t.audits.iter().enumerate() {
        if let Some(target) = t.find(&a.target_user_id) {
            out.push(AuditEvent {
                at: a.at,
                activity: "",
                category: "",
                service: "",
                reason: "",
                operation: "",
                target,
                pushed: Some(n),
            });
        }
    }
    out.sort_by_key(|e| std::cmp::Reverse(e.at));
    out
}

impl AuditEvent {
    fn activity<'a>(&'a self, t: &'a Tenant) -> &'a str {
        self.pushed.map_or(self.activity, |n| &t.audits[n].activity)
    }
    fn category<'a>(&'a self, t: &'a Tenant) -> &'a str {
        self.pushed
            .map_or(self.category, |n| t.audits[n].category())
    }
    fn service<'a>(&'a self, t: &'a Tenant) -> &'a str {
        self.pushed.map_or(self.service, |n| t.audits[n].service())
    }
    fn operation<'a>(&'a self, t: &'a Tenant) -> &'a str {
        self.pushed
            .map_or(self.operation, |n| t.audits[n].operation())
    }
    fn result<'a>(&'a self, t: &'a Tenant) -> &'a str {
        self.pushed.map_or("success", |n| t.audits[n].result())
    }
    fn visible(&self, t: &Tenant, now: DateTime<Utc>) -> bool {
        self.pushed.is_none_or(|n| t.audits[n].visible(now))
    }
}

/// `GET /auditLogs/directoryAudits`: `$filter` with `eq` on activityDisplayName, category,
/// loggedByService, result, operationType, `ge`/`le`/`gt`/`lt` on activityDateTime and
/// `startswith(activityDisplayName,'…')`, joined by `and` (directoryaudit-list.md); `$top`.
fn directory_audits(ctx: &Ctx) -> Result<Body, Reply> {
    type Check<'t> = Box<dyn Fn(&AuditEvent) -> bool + 't>;
    let t = ctx.tenant;
    let mut checks: Vec<Check> = Vec::new();
    if let Some(f) = ctx.param("$filter") {
        for clause in f.split(" and ") {
            let clause = clause.trim();
            let bad = || unsupported(&format!("$filter clause '{clause}'"));
            let quoted = |v: &str| {
                v.strip_prefix('\'')
                    .and_then(|v| v.strip_suffix('\''))
                    .map(|v| v.replace("''", "'"))
            };
            if let Some(args) = clause
                .strip_prefix("startswith(")
                .and_then(|r| r.strip_suffix(')'))
            {
                let (field, value) = args.split_once(',').ok_or_else(bad)?;
                let prefix = quoted(value.trim()).ok_or_else(bad)?;
                if field.trim() != "activityDisplayName" {
                    return Err(bad());
                }
                checks.push(Box::new(move |e| e.activity(t).starts_with(&prefix)));
                continue;
            }
            let mut parts = clause.splitn(3, ' ');
            let (Some(field), Some(op), Some(value)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(bad());
            };
            if field == "activityDateTime" {
                let when = chrono::DateTime::parse_from_rfc3339(value.trim())
                    .map(|d| d.with_timezone(&chrono::Utc))
                    .map_err(|_| bad())?;
                checks.push(match op {
                    "ge" => Box::new(move |e| e.at >= when),
                    "gt" => Box::new(move |e| e.at > when),
                    "le" => Box::new(move |e| e.at <= when),
                    "lt" => Box::new(move |e| e.at < when),
                    _ => return Err(bad()),
                });
                continue;
            }
            if op != "eq" {
                return Err(bad());
            }
            let want = quoted(value.trim()).ok_or_else(bad)?;
            checks.push(match field {
                "activityDisplayName" => Box::new(move |e| e.activity(t) == want),
                "category" => Box::new(move |e| e.category(t) == want),
                "loggedByService" => Box::new(move |e| e.service(t) == want),
                "result" => Box::new(move |e| e.result(t) == want),
                "operationType" => Box::new(move |e| e.operation(t) == want),
                _ => return Err(bad()),
            });
        }
    }
    let top = ctx
        .param("$top")
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, 999);
    let (log, rows) = {
        let mut memo = ctx.memo();
        let memo = memo.at(ctx.state.generation());
        let log = memo
            .audit_log
            .get_or_insert_with(|| Arc::new(audit_events(ctx.tenant)))
            .clone();
        // Entries pushed with an ingestion delay appear over time: the memo is kept per
        // filter and per how many of them are visible now.
        let now = Utc::now();
        let visible = ctx.tenant.audits.iter().filter(|a| a.visible(now)).count();
        let key = format!("{}|{visible}", ctx.param("$filter").unwrap_or(""));
        let rows = memoised(&mut memo.audits, Some(&key), || {
            Ok(log
                .iter()
                .enumerate()
                .filter(|(_, e)| e.visible(t, now) && checks.iter().all(|c| c(e)))
                .map(|(i, _)| i as u32)
                .collect())
        })?;
        (log, rows)
    };
    let tenant = ctx.tenant;
    let actor = tenant
        .users
        .iter()
        .find(|u| u.is_admin())
        .or(tenant.users.first());
    page(
        ctx,
        "directoryAudits",
        "auditLogs/directoryAudits",
        "auditLogs/directoryAudits",
        rows.len(),
        top,
        |k| {
            let e = &log[rows[k] as usize];
            let u = &tenant.users[e.target];
            if let Some(n) = e.pushed {
                return pushed_audit_row(&tenant.audits[n], u);
            }
            let correlation =
                uuid::Uuid::from_u128(u.id.rotate_left(29) ^ e.at.timestamp() as u128);
            json!({
                "id": format!("UserManagement_{correlation}_{:08X}", e.activity.len() ^ (e.reason.len() << 8)),
                "category": e.category,
                "correlationId": correlation.to_string(),
                "result": "success",
                "resultReason": e.reason,
                "activityDisplayName": e.activity,
                "activityDateTime": e.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "loggedByService": e.service,
                "operationType": e.operation,
                "initiatedBy": {
                    "app": null,
                    "user": actor.map(|a| json!({"id": a.id_string(), "displayName": null,
                        "userPrincipalName": &*a.upn, "ipAddress": "131.107.159.37", "userType": null,
                        "homeTenantId": null, "homeTenantName": null})),
                },
                "targetResources": [{
                    "id": u.id_string(), "displayName": null, "type": "User",
                    "userPrincipalName": &*u.upn, "groupType": null, "modifiedProperties": [],
                }],
                "additionalDetails": [],
            })
        },
    )
}

/// A directory-audit entry pushed while running, as Graph writes it (directoryaudit.md):
/// `initiatedBy.user` (the target themself unless said otherwise) or `initiatedBy.app`, one
/// `User` target with its `modifiedProperties`.
fn pushed_audit_row(a: &crate::events::SimAudit, u: &SimUser) -> Value {
    use crate::events::AuditInitiator;
    let (user, app) = match &a.initiated_by {
        None => (
            Some(
                json!({"id": u.id_string(), "displayName": null, "userPrincipalName": &*u.upn,
                "ipAddress": "131.107.159.37", "userType": null, "homeTenantId": null, "homeTenantName": null}),
            ),
            None,
        ),
        Some(AuditInitiator::User { id, upn }) => (
            Some(
                json!({"id": id, "displayName": null, "userPrincipalName": upn,
                "ipAddress": "131.107.159.37", "userType": null, "homeTenantId": null, "homeTenantName": null}),
            ),
            None,
        ),
        Some(AuditInitiator::App { id, name }) => (
            None,
            Some(
                json!({"appId": null, "displayName": name, "servicePrincipalId": id, "servicePrincipalName": null}),
            ),
        ),
    };
    let modified: Vec<Value> = a
        .modified
        .iter()
        .map(|(name, old, new)| json!({"displayName": name, "oldValue": old, "newValue": new}))
        .collect();
    let upn = if a.target_upn.is_empty() {
        &*u.upn
    } else {
        a.target_upn.as_str()
    };
    json!({
        "id": a.id,
        "category": a.category(),
        "correlationId": crate::events::derived_id(&a.id, a.at, 3, 3),
        "result": a.result(),
        "resultReason": a.reason,
        "activityDisplayName": a.activity,
        "activityDateTime": a.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "loggedByService": a.service(),
        "operationType": a.operation(),
        "initiatedBy": {"app": app, "user": user},
        "targetResources": [{
            "id": u.id_string(), "displayName": null, "type": "User",
            "userPrincipalName": upn, "groupType": null, "modifiedProperties": modified,
        }],
        "additionalDetails": [],
    })
}

/// The FIDO2 configuration: the deprecated top-level attestation and key restrictions, and,
/// once the tenant has passkey profiles, `passkeyProfiles`, `defaultPasskeyProfile` and each
/// include target's `allowedPasskeyProfiles` (docs-contrib
/// `fido2authenticationmethodconfiguration-update.md`, `passkeyprofile.md`).
fn fido2_configuration(p: &crate::tenant::SimPolicy, state: &str, excludes: Vec<Value>) -> Value {
    let f = &p.fido2;
    let restrictions = |k: &crate::tenant::SimKeyRestrictions| {
        let kind = if k.enforcement_type.is_empty() {
            "block"
        } else {
            k.enforcement_type.as_str()
        };
        json!({"isEnforced": k.enforced, "enforcementType": kind, "aaGuids": k.aaguids})
    };
    let profiled = !f.profiles.is_empty();
    let includes: Vec<Value> = p
        .targets_of("Fido2")
        .0
        .iter()
        .map(|t| {
            let mut v = target(t);
            if profiled {
                let allowed: Vec<&String> = f
                    .target_profiles
                    .iter()
                    .filter(|(id, _)| id.eq_ignore_ascii_case(t))
                    .flat_map(|(_, p)| p.iter())
                    .collect();
                v["allowedPasskeyProfiles"] = json!(allowed);
            }
            v
        })
        .collect();
    let mut out = json!({"@odata.type": "#microsoft.graph.fido2AuthenticationMethodConfiguration", "id": "Fido2", "state": state,
        "isSelfServiceRegistrationAllowed": true, "isAttestationEnforced": f.attestation_enforced,
        "keyRestrictions": restrictions(&f.key_restrictions), "excludeTargets": excludes, "includeTargets": includes});
    if profiled {
        out["defaultPasskeyProfile"] = json!(f.default_profile);
        out["passkeyProfiles"] = f
            .profiles
            .iter()
            .map(|pp| {
                json!({"id": pp.id, "name": pp.name, "passkeyTypes": pp.passkey_types,
                       "attestationEnforcement": pp.attestation_enforcement,
                       "keyRestrictions": restrictions(&pp.key_restrictions)})
            })
            .collect::<Vec<_>>()
            .into();
    }
    out
}

/// Every strength (built-in, then the tenant's custom ones) as `authenticationStrengthPolicies`
/// lists them (docs-contrib v1.0 `authenticationstrengthroot-list-policies.md`), by id.
fn strength_objects(ctx: &Ctx, context: &dyn Fn(&str) -> String) -> Vec<(String, Value)> {
    let builtin = crate::tenant::BUILTIN_STRENGTHS
        .iter()
        .map(|(id, name, description, combos)| {
            (
                id.to_string(),
                json!({"id": id, "createdDateTime": "2021-12-01T00:00:00Z", "modifiedDateTime": "2021-12-01T00:00:00Z",
                       "displayName": name, "description": description, "policyType": "builtIn", "requirementsSatisfied": "mfa",
                       "allowedCombinations": combos,
                       "combinationConfigurations@odata.context": context(id), "combinationConfigurations": []}),
            )
        });
    let custom = ctx.tenant.policy.strengths.iter().map(|s| {
        (
            s.id.clone(),
            json!({"id": s.id, "createdDateTime": "2025-02-10T09:00:00Z", "modifiedDateTime": "2025-02-10T09:00:00Z",
                   "displayName": s.display_name, "description": "", "policyType": "custom", "requirementsSatisfied": "mfa",
                   "allowedCombinations": s.allowed_combinations,
                   "combinationConfigurations@odata.context": context(&s.id), "combinationConfigurations": []}),
        )
    });
    builtin.chain(custom).collect()
}

/// `GET /policies/authenticationStrengthPolicies`: one page, built-in and custom.
fn strengths(ctx: &Ctx) -> Value {
    let version = ctx.version;
    let context = |id: &str| {
        format!("https://graph.microsoft.com/{version}/$metadata#policies/authenticationStrengthPolicies('{id}')/combinationConfigurations")
    };
    let value: Vec<Value> = strength_objects(ctx, &context)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    json!({"@odata.context": ctx.context("policies/authenticationStrengthPolicies"), "value": value})
}

/// Tenant-wide directory settings (beta `settings`, docs-contrib beta `directorysetting.md`):
/// the Microsoft 365 groups one, and "Password Rule Settings" (smart lockout, banned
/// passwords) only when the tenant has changed them: an untouched tenant has no such object.
fn directory_settings(ctx: &Ctx) -> Value {
    let mut value = vec![json!({
        "id": "a0d4e2b1-3c5f-4a6e-8b7d-9c0e1f2a3b4c", "displayName": "Group.Unified",
        "templateId": "62375ab9-6b52-47ed-826b-58e47e0e304b",
        "values": [{"name": "EnableGroupCreation", "value": "true"},
                   {"name": "AllowGuestsToAccessGroups", "value": "true"},
                   {"name": "UsageGuidelinesUrl", "value": ""}]})];
    if let Some(l) = ctx.tenant.policy.lockout {
        value.push(json!({
            "id": "b1e5f3c2-4d6a-4b7f-9c8e-0d1f2a3b4c5d", "displayName": "Password Rule Settings",
            "templateId": "5cf42378-d67d-4f36-ba46-e8b86229381d",
            "values": [{"name": "BannedPasswordCheckOnPremisesMode", "value": "Audit"},
                       {"name": "EnableBannedPasswordCheckOnPremises", "value": "True"},
                       {"name": "EnableBannedPasswordCheck", "value": "True"},
                       {"name": "LockoutDurationInSeconds", "value": l.duration_seconds.to_string()},
                       {"name": "LockoutThreshold", "value": l.threshold.to_string()},
                       {"name": "BannedPasswordList", "value": ""}]}));
    }
    json!({"@odata.context": ctx.context("settings"), "value": value})
}

/// `POST /directoryObjects/getByIds` (docs-contrib v1.0 `directoryobject-getbyids.md`): the
/// objects among `ids` that exist, of the `types` asked (every type when absent); ids that name
/// nothing are left out. At most 1,000 ids.
fn get_by_ids(ctx: &Ctx) -> Result<Body, Reply> {
    let bad = |why: &str| graph_error(400, "Request_BadRequest", why);
    let body: Value =
        serde_json::from_slice(ctx.body).map_err(|_| bad("The request body is not valid JSON."))?;
    let ids: Vec<&str> = body
        .get("ids")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("The parameter 'ids' is required."))?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if ids.len() > 1000 {
        return Err(bad(
            "Too many ids: at most 1000 are allowed in one request.",
        ));
    }
    let types: Vec<String> = body
        .get("types")
        .and_then(Value::as_array)
        .map(|t| {
            t.iter()
                .filter_map(Value::as_str)
                .map(str::to_ascii_lowercase)
                .collect()
        })
        .unwrap_or_default();
    let wants = |t: &str| types.is_empty() || types.iter().any(|x| x == t);
    let t = ctx.tenant;
    let mut value = Vec::new();
    for id in ids {
        let key = uuid::Uuid::parse_str(id).ok().map(|u| u.as_u128());
        if let Some(i) = key.and_then(|k| t.by_id.get(&k)).filter(|_| wants("user")) {
            let u = &t.users[*i as usize];
            value.push(
                json!({"@odata.type": "#microsoft.graph.user", "id": u.id_string(),
                              "displayName": &*u.display_name, "userPrincipalName": &*u.upn}),
            );
        } else if let Some(g) = t.group(id).filter(|_| wants("group")) {
            value.push(
                json!({"@odata.type": "#microsoft.graph.group", "id": g.id_string(),
                              "displayName": g.display_name, "securityEnabled": true}),
            );
        } else if let Some(sp) = key
            .and_then(|k| t.service_principals.iter().find(|sp| sp.id == k))
            .filter(|_| wants("serviceprincipal"))
        {
            value.push(
                json!({"@odata.type": "#microsoft.graph.servicePrincipal", "id": sp.id_string(),
                              "displayName": sp.display_name}),
            );
        }
    }
    Ok(Body::Json(
        json!({"@odata.context": ctx.context("directoryObjects"), "value": value}),
    ))
}
