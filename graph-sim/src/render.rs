//! Graph's JSON shapes for each endpoint, with paging (`$top`, opaque `$skiptoken`, absolute
//! `@odata.nextLink`), `$select` on users, and the `$filter` forms the auditor sends.

use serde_json::{json, Map, Value};

use crate::faults::Fault;
use crate::server::{graph_error, Reply, State};
use crate::tenant::{SimUser, Tenant, METHODS, ROLES};

pub struct Ctx<'a> {
    pub tenant: &'a Tenant,
    pub base: &'a str,
    pub version: &'a str,
    pub params: &'a [(String, String)],
    pub state: &'a State,
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

/// One page of `items` (already filtered) with the nextLink, honouring the nextLink-loop fault.
fn page(
    ctx: &Ctx,
    label: &str,
    path: &str,
    context: &str,
    total: usize,
    page_size: usize,
    render: impl Fn(usize) -> Value,
) -> Result<Value, Reply> {
    let offset = match ctx.param("$skiptoken") {
        Some(t) => parse_skiptoken(t)
            .ok_or_else(|| graph_error(400, "Request_BadRequest", "The skip token is invalid."))?,
        None => 0,
    };
    let end = (offset + page_size).min(total);
    let value: Vec<Value> = (offset.min(end)..end).map(render).collect();
    let mut out = Map::new();
    out.insert("@odata.context".into(), Value::from(ctx.context(context)));
    out.insert("value".into(), Value::Array(value));
    if end < total {
        let page_no = offset / page_size.max(1) + 1;
        let loops = ctx
            .state_fault_loop(label)
            .is_some_and(|after| page_no >= after as usize);
        let next_offset = if loops { 0 } else { end };
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
        out.insert(
            "@odata.nextLink".into(),
            Value::from(format!(
                "{}/{}/{path}?{q}$skiptoken={}",
                ctx.base,
                ctx.version,
                skiptoken(next_offset)
            )),
        );
    }
    Ok(Value::Object(out))
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

pub fn answer(ctx: &Ctx, label: &str, rest: &[&str]) -> Result<Value, Reply> {
    match label {
        "users" => users(ctx),
        "userRegistrationDetails" => registration(ctx),
        "authenticationMethodsPolicy" => Ok(methods_policy(ctx)),
        "identitySecurityDefaultsEnforcementPolicy" => Ok(json!({
            "@odata.context": ctx.context("policies/identitySecurityDefaultsEnforcementPolicy/$entity"),
            "id": "00000000-0000-0000-0000-000000000005",
            "displayName": "Security Defaults",
            "description": "Security defaults is a set of basic identity security mechanisms recommended by Microsoft.",
            "isEnabled": ctx.tenant.policy.security_defaults,
        })),
        "conditionalAccessPolicies" => conditional_access(ctx),
        "subscribedSkus" => Ok(subscribed_skus(ctx)),
        "roleAssignments" => role_assignments(ctx),
        "authenticationMethods" => {
            let user = ctx.user(rest[1])?;
            Ok(
                json!({"@odata.context": ctx.context(&format!("users('{}')/authentication/methods", user.id_string())), "value": method_objects(user)}),
            )
        }
        "temporaryAccessPassMethods" => {
            let user = ctx.user(rest[1])?;
            let value: Vec<Value> = user.tap.iter().map(|t| tap_object(user, t)).collect();
            Ok(
                json!({"@odata.context": ctx.context(&format!("users('{}')/authentication/temporaryAccessPassMethods", user.id_string())), "value": value}),
            )
        }
        "perUserMfaRequirements" => {
            let user = ctx.user(rest[1])?;
            Ok(json!({"perUserMfaState": user.per_user_mfa_str()}))
        }
        "signIns" => sign_ins(ctx),
        "groupMembers" => group_members(ctx, rest[1]),
        _ => Err(graph_error(
            404,
            "Request_ResourceNotFound",
            "Resource not found.",
        )),
    }
}

fn users(ctx: &Ctx) -> Result<Value, Reply> {
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
    let users = &ctx.tenant.users;
    page(ctx, "users", "users", "users", users.len(), top, |i| {
        let u = &users[i];
        let mut o = Map::new();
        o.insert("id".into(), Value::from(u.id_string()));
        for f in &select {
            let v = match f.as_str() {
                "id" => continue,
                "userPrincipalName" => Value::from(&*u.upn),
                "displayName" => Value::from(&*u.display_name),
                "accountEnabled" => Value::from(u.enabled),
                "userType" => Value::from(if u.guest { "Guest" } else { "Member" }),
                "createdDateTime" => u.created.map(date).map(Value::from).unwrap_or(Value::Null),
                "onPremisesSyncEnabled" => {
                    if u.synced {
                        Value::from(true)
                    } else {
                        Value::Null
                    }
                }
                "mail" => Value::from(u.upn.replace("#EXT#", "")),
                "givenName" => Value::from(u.display_name.split(' ').next().unwrap_or("")),
                "surname" => Value::from(u.display_name.split(' ').nth(1).unwrap_or("")),
                "businessPhones" => json!([]),
                _ => Value::Null,
            };
            o.insert(f.clone(), v);
        }
        Value::Object(o)
    })
}

fn registration(ctx: &Ctx) -> Result<Value, Reply> {
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
    let rows: Vec<usize> = ctx
        .tenant
        .users
        .iter()
        .enumerate()
        .filter(|(_, u)| u.enabled)
        .filter(|(_, u)| {
            want.as_ref()
                .is_none_or(|w| u.method_names().iter().any(|m| m.eq_ignore_ascii_case(w)))
        })
        .map(|(i, _)| i)
        .collect();
    let users = &ctx.tenant.users;
    let now = ctx.tenant.now;
    page(
        ctx,
        "userRegistrationDetails",
        "reports/authenticationMethods/userRegistrationDetails",
        "reports/authenticationMethods/userRegistrationDetails",
        rows.len(),
        ctx.state.config.registration_page_size.max(1),
        |k| {
            let u = &users[rows[k]];
            let mut methods: Vec<Value> = u.method_names().into_iter().map(Value::from).collect();
            if let Some(x) = &u.unknown_method {
                methods.push(Value::from(&**x));
            }
            let mfa = (0..METHODS.len()).any(|i| u.has(i) && METHODS[i].mfa_capable);
            let pwl = (0..METHODS.len()).any(|i| u.has(i) && METHODS[i].passwordless);
            let system_methods: Vec<&str> = if !mfa {
                vec![]
            } else if u.has(0) || u.has(1) {
                vec!["push"]
            } else if u.has(2) {
                vec!["oath"]
            } else if u.has(4) {
                vec!["sms"]
            } else {
                vec![]
            };
            json!({
                "id": u.id_string(),
                "userPrincipalName": &*u.upn,
                "userDisplayName": &*u.display_name,
                "isAdmin": u.is_admin(),
                "isSsprRegistered": methods.len() >= 2,
                "isSsprEnabled": true,
                "isSsprCapable": methods.len() >= 2,
                "isMfaRegistered": mfa,
                "isMfaCapable": mfa,
                "isPasswordlessCapable": pwl,
                "lastUpdatedDateTime": now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "methodsRegistered": methods,
                "isSystemPreferredAuthenticationMethodEnabled": u.system_preferred,
                "systemPreferredAuthenticationMethods": system_methods,
                // Graph returns "" where the user has no preference (REFERENCE §13).
                "userPreferredMethodForSecondaryAuthentication": if u.default_method == "none" { "" } else { u.default_method },
                "userType": if u.guest { "guest" } else { "member" },
            })
        },
    )
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
    let all = || json!([target("all_users")]);
    let feature = |s: &str| json!({"state": s, "includeTarget": {"targetType": "group", "id": "all_users"}, "excludeTarget": {"targetType": "group", "id": "00000000-0000-0000-0000-000000000000"}});
    let mut configs = vec![
        json!({"@odata.type": "#microsoft.graph.fido2AuthenticationMethodConfiguration", "id": "Fido2", "state": state("Fido2"),
               "isSelfServiceRegistrationAllowed": true, "isAttestationEnforced": false,
               "keyRestrictions": {"isEnforced": false, "enforcementType": "block", "aaGuids": []}, "excludeTargets": [], "includeTargets": all()}),
        json!({"@odata.type": "#microsoft.graph.microsoftAuthenticatorAuthenticationMethodConfiguration", "id": "MicrosoftAuthenticator",
               "state": state("MicrosoftAuthenticator"), "isSoftwareOathEnabled": false,
               "featureSettings": {"displayAppInformationRequiredState": feature(&p.app_information),
                                   "displayLocationInformationRequiredState": feature(&p.location_information),
                                   "numberMatchingRequiredState": feature(&p.number_matching)},
               "excludeTargets": [], "includeTargets": [{"targetType": "group", "id": "all_users", "isRegistrationRequired": false, "authenticationMode": "any"}]}),
        json!({"@odata.type": "#microsoft.graph.smsAuthenticationMethodConfiguration", "id": "Sms", "state": state("Sms"), "excludeTargets": [],
               "includeTargets": [{"targetType": "group", "id": "all_users", "isRegistrationRequired": false, "isUsableForSignIn": true}]}),
        json!({"@odata.type": "#microsoft.graph.voiceAuthenticationMethodConfiguration", "id": "Voice", "state": state("Voice"), "isOfficePhoneAllowed": true, "excludeTargets": [], "includeTargets": all()}),
        json!({"@odata.type": "#microsoft.graph.emailAuthenticationMethodConfiguration", "id": "Email", "state": state("Email"), "allowExternalIdToUseEmailOtp": "default", "excludeTargets": [], "includeTargets": all()}),
        json!({"@odata.type": "#microsoft.graph.softwareOathAuthenticationMethodConfiguration", "id": "SoftwareOath", "state": state("SoftwareOath"), "excludeTargets": [], "includeTargets": all()}),
        json!({"@odata.type": "#microsoft.graph.temporaryAccessPassAuthenticationMethodConfiguration", "id": "TemporaryAccessPass",
               "state": if p.tap_enabled { "enabled" } else { "disabled" },
               "defaultLifetimeInMinutes": p.tap_default_lifetime, "defaultLength": p.tap_length,
               "minimumLifetimeInMinutes": p.tap_min_lifetime, "maximumLifetimeInMinutes": p.tap_max_lifetime, "isUsableOnce": p.tap_usable_once,
               "excludeTargets": [], "includeTargets": p.tap_include.iter().map(|t| target(t)).collect::<Vec<_>>()}),
        json!({"@odata.type": "#microsoft.graph.x509CertificateAuthenticationMethodConfiguration", "id": "X509Certificate", "state": state("X509Certificate"),
               "certificateUserBindings": [], "authenticationModeConfiguration": {"x509CertificateAuthenticationDefaultMode": "x509CertificateSingleFactor", "rules": []},
               "excludeTargets": [], "includeTargets": all()}),
    ];
    if ctx.version == "beta" {
        configs.push(json!({"@odata.type": "#microsoft.graph.hardwareOathAuthenticationMethodConfiguration", "id": "HardwareOath", "state": state("HardwareOath"), "excludeTargets": [], "includeTargets": all()}));
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
        out["systemCredentialPreferences"] = json!({"state": p.system_preferred, "excludeTargets": [], "includeTargets": [{"id": "all_users", "targetType": "group"}]});
    }
    out
}

fn conditional_access(ctx: &Ctx) -> Result<Value, Reply> {
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
            let guests = or_null(
                json!({"guestOrExternalUserTypes": "internalGuest,b2bCollaborationGuest,b2bCollaborationMember,b2bDirectConnectUser,otherExternalUser,serviceProvider",
                       "externalTenants": {"@odata.type": "#microsoft.graph.conditionalAccessAllExternalTenants", "membershipKind": "all"}}),
                c.exclude_guests,
            );
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
                "users": {"includeUsers": p.include_users, "excludeUsers": p.exclude_users, "includeGroups": [], "excludeGroups": c.exclude_groups,
                          "includeRoles": p.include_roles, "excludeRoles": c.exclude_roles, "includeGuestsOrExternalUsers": null, "excludeGuestsOrExternalUsers": guests}
            });
            json!({
                "id": p.id, "templateId": null, "displayName": p.display_name,
                "createdDateTime": "2024-03-01T10:00:00.0000000Z", "modifiedDateTime": null, "state": p.state, "sessionControls": session,
                "conditions": conditions,
                "grantControls": {"operator": p.operator, "builtInControls": p.built_in_controls, "customAuthenticationFactors": [], "termsOfUse": [],
                                  "authenticationStrength@odata.context": format!("https://graph.microsoft.com/{version}/$metadata#identity/conditionalAccess/policies('{}')/grantControls/authenticationStrength/$entity", p.id),
                                  "authenticationStrength": null},
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

fn role_assignments(ctx: &Ctx) -> Result<Value, Reply> {
    let wanted: Option<Vec<String>> = match ctx.param("$filter") {
        None => None,
        Some(f) => {
            let f = f.trim();
            let ids = if let Some(v) = f.strip_prefix("roleDefinitionId eq ") {
                vec![v.trim().trim_matches('\'').to_string()]
            } else if let Some(v) = f.strip_prefix("roleDefinitionId in ") {
                let v = v
                    .trim()
                    .strip_prefix('(')
                    .and_then(|v| v.strip_suffix(')'))
                    .ok_or_else(|| unsupported("roleDefinitionId in (…)"))?;
                v.split(',')
                    .map(|s| s.trim().trim_matches('\'').to_string())
                    .collect()
            } else {
                return Err(unsupported(
                    "$filter on roleAssignments: roleDefinitionId eq '…' or in ('…')",
                ));
            };
            Some(ids)
        }
    };
    let expand = ctx.param("$expand").is_some_and(|e| e == "principal");
    let mut rows: Vec<(usize, &str)> = Vec::new();
    for (i, u) in ctx.tenant.users.iter().enumerate() {
        for r in &u.roles {
            let role = ROLES[*r as usize];
            if wanted
                .as_ref()
                .is_none_or(|w| w.iter().any(|x| x.eq_ignore_ascii_case(role)))
            {
                rows.push((i, role));
            }
        }
    }
    let users = &ctx.tenant.users;
    page(
        ctx,
        "roleAssignments",
        "roleManagement/directory/roleAssignments",
        "roleManagement/directory/roleAssignments",
        rows.len(),
        100,
        |k| {
            let (i, role) = rows[k];
            let u = &users[i];
            let mut o = json!({"id": format!("{}-{}", role, u.id_string()), "principalId": u.id_string(), "directoryScopeId": "/", "roleDefinitionId": role});
            if expand {
                o["principal"] = json!({"@odata.type": "#microsoft.graph.user", "id": u.id_string(), "userPrincipalName": &*u.upn,
                                     "displayName": &*u.display_name, "accountEnabled": u.enabled});
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
           "createdDateTime": date(t.start - chrono::Duration::minutes(5)), "startDateTime": date(t.start),
           "lifetimeInMinutes": t.lifetime_minutes, "isUsableOnce": t.usable_once, "isUsable": t.usable, "methodUsabilityReason": t.reason})
}

fn method_objects(user: &SimUser) -> Vec<Value> {
    let mut out = vec![
        json!({"@odata.type": "#microsoft.graph.passwordAuthenticationMethod", "id": "28c10230-6103-485e-b985-444c60001490",
                              "password": null, "createdDateTime": user.created.map(date)}),
    ];
    for (n, def) in METHODS.iter().enumerate() {
        if !user.has(n) {
            continue;
        }
        let Some(t) = def.odata_type else { continue };
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

fn sign_ins(ctx: &Ctx) -> Result<Value, Reply> {
    let mut since: Option<chrono::DateTime<chrono::Utc>> = None;
    let mut until: Option<chrono::DateTime<chrono::Utc>> = None;
    let mut code: Option<i32> = None;
    let mut user: Option<String> = None;
    if let Some(f) = ctx.param("$filter") {
        for clause in f.split(" and ") {
            let parts: Vec<&str> = clause.split_whitespace().collect();
            let bad = || unsupported(&format!("$filter clause '{clause}'"));
            let [field, op, value] = parts.as_slice() else {
                return Err(bad());
            };
            let when = || {
                chrono::DateTime::parse_from_rfc3339(value)
                    .map(|d| d.with_timezone(&chrono::Utc))
                    .map_err(|_| bad())
            };
            match (*field, *op) {
                ("createdDateTime", "ge") => since = Some(when()?),
                ("createdDateTime", "le") => until = Some(when()?),
                ("status/errorCode", "eq") => code = Some(value.parse().map_err(|_| bad())?),
                ("userId", "eq") => user = Some(value.trim_matches('\'').to_string()),
                _ => return Err(bad()),
            }
        }
    }
    let top = ctx
        .param("$top")
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(1000)
        .clamp(1, 1000);
    let rows: Vec<&crate::tenant::SimSignIn> = ctx
        .tenant
        .sign_ins
        .iter()
        .filter(|s| since.is_none_or(|t| s.created >= t) && until.is_none_or(|t| s.created <= t))
        .filter(|s| {
            code.is_none_or(|c| s.error_code == c)
                && user
                    .as_ref()
                    .is_none_or(|u| u.eq_ignore_ascii_case(&s.user_id))
        })
        .collect();
    let tenant = ctx.tenant;
    page(
        ctx,
        "signIns",
        "auditLogs/signIns",
        "auditLogs/signIns",
        rows.len(),
        top,
        |k| {
            let s = rows[k];
            let u = tenant.find(&s.user_id).map(|i| &tenant.users[i]);
            let (reason, details) = match s.error_code {
                500121 => (
                    "Authentication failed during strong authentication request.",
                    "MFA denied; user did not respond to mobile app notification",
                ),
                50126 => (
                    "Error validating credentials due to invalid username or password.",
                    "",
                ),
                _ => ("Other.", ""),
            };
            json!({
                "id": uuid::Uuid::from_u128(s.created.timestamp_micros() as u128 ^ k as u128).to_string(),
                "createdDateTime": date(s.created),
                "userDisplayName": u.map(|u| &*u.display_name), "userPrincipalName": u.map(|u| u.upn.to_ascii_lowercase()), "userId": s.user_id,
                "appId": "de8bc8b5-d9f9-48b1-a8ad-b748da725064", "appDisplayName": "Graph Explorer", "ipAddress": "131.107.159.37",
                "clientAppUsed": "Browser", "correlationId": uuid::Uuid::new_v4().to_string(), "conditionalAccessStatus": "notApplied",
                "isInteractive": true, "riskDetail": "none", "riskLevelAggregated": "none", "riskLevelDuringSignIn": "none", "riskState": "none",
                "riskEventTypes": [], "riskEventTypes_v2": [], "resourceDisplayName": "Microsoft Graph", "resourceId": "00000003-0000-0000-c000-000000000000",
                "status": {"errorCode": s.error_code, "failureReason": reason, "additionalDetails": details},
                "deviceDetail": {"deviceId": "", "displayName": null, "operatingSystem": "Windows 10", "browser": "Edge 80.0.361", "isCompliant": null, "isManaged": null, "trustType": null},
                "location": {"city": "Redmond", "state": "Washington", "countryOrRegion": "US", "geoCoordinates": {"altitude": null, "latitude": 47.68050003051758, "longitude": -122.12094116210938}},
                "appliedConditionalAccessPolicies": [],
            })
        },
    )
}

fn group_members(ctx: &Ctx, key: &str) -> Result<Value, Reply> {
    let group = ctx.tenant.group(key).ok_or_else(|| {
        graph_error(404, "Request_ResourceNotFound", &format!("Resource '{key}' does not exist or one of its queried reference-property objects are not present."))
    })?;
    let top = ctx
        .param("$top")
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, 999);
    let users = &ctx.tenant.users;
    let path = format!(
        "groups/{}/transitiveMembers/microsoft.graph.user",
        group.id_string()
    );
    page(
        ctx,
        "groupMembers",
        &path,
        "users",
        group.members.len(),
        top,
        |k| {
            let u = &users[group.members[k] as usize];
            json!({"@odata.type": "#microsoft.graph.user", "id": u.id_string(), "userPrincipalName": &*u.upn})
        },
    )
}
