//! The findings the lockout rules must produce on a simulated tenant, computed from the ground
//! truth by the simulator's own reading of the semantics (the helpers' RULES.md contract),
//! written apart from mfa-auditor's rules so each checks the other.
//!
//! Subjects: a user finding's subject is the user's object id (lower-case, hyphenated); a
//! tenant finding's is `tenant`, or `tenant:<key>` when the rule may find several things
//! (`policy-target-missing`: `tenant:<lower-case object id>`).

use std::collections::{BTreeMap, BTreeSet};

use crate::tenant::{GroundTruth, SimCaPolicy, SimSspr, TruthUser, BUILTIN_STRENGTHS};

/// The Global Administrator role template id.
const GLOBAL_ADMIN: &str = "62e90394-69f5-4237-9190-012177145e10";
/// The built-in "Multifactor authentication" strength: what `mfa` in builtInControls requires.
const MFA_STRENGTH: &str = "00000000-0000-0000-0000-000000000002";
const PHISHING_RESISTANT: &str = "00000000-0000-0000-0000-000000000004";

/// The rules [`GroundTruth::expected`] knows.
pub const LOCKOUT_RULES: &[&str] = &[
    "policy-unsatisfiable",
    "policy-unsatisfiable-report-only",
    "method-not-allowed",
    "policy-target-missing",
    "smart-lockout-weak",
    "sspr-not-ready",
    "admin-no-recovery-contact",
    "suspicious-activity-reporting-off",
    "passkey-policy-blocks",
];

/// The authentication-methods policy configurations that allow a registered method (report
/// name); empty: none governs it (always allowed). As the contract's `allowed()` has it.
fn configs(method: &str) -> &'static [&'static str] {
    match method {
        "microsoftAuthenticatorPush" | "microsoftAuthenticatorPasswordless" => {
            &["MicrosoftAuthenticator"]
        }
        "softwareOneTimePasscode" => &["SoftwareOath", "MicrosoftAuthenticator"],
        "passKeyDeviceBoundAuthenticator"
        | "fido2SecurityKey"
        | "passKeyDeviceBound"
        | "passKeySynced" => &["Fido2"],
        "mobilePhone" => &["Sms", "Voice"],
        "alternateMobilePhone" | "officePhone" => &["Voice"],
        "hardwareOneTimePasscode" => &["HardwareOath"],
        "x509CertificateMultiFactor" | "x509CertificateSingleFactor" => &["X509Certificate"],
        "qrCodePin" => &["QRCodePin"],
        // Windows Hello (and its passkeys), macOS keys, external providers.
        _ => &[],
    }
}

/// What a registered MFA-capable method contributes to a strength combination
/// (authenticationMethodModes); `None`: not MFA-capable (or a TAP), so it never counts.
fn modes(method: &str) -> Option<&'static [&'static str]> {
    Some(match method {
        "microsoftAuthenticatorPush" => &["microsoftAuthenticatorPush"],
        "microsoftAuthenticatorPasswordless" => &["deviceBasedPush"],
        "softwareOneTimePasscode" => &["softwareOath"],
        "hardwareOneTimePasscode" => &["hardwareOath"],
        "mobilePhone" => &["sms", "voice"],
        "alternateMobilePhone" | "officePhone" => &["voice"],
        "fido2SecurityKey"
        | "passKeyDeviceBound"
        | "passKeySynced"
        | "passKeyDeviceBoundAuthenticator" => &["fido2"],
        "windowsHelloForBusiness" | "macOsSecureEnclaveKey" | "passKeyDeviceBoundWindowsHello" => {
            &["windowsHelloForBusiness"]
        }
        "x509CertificateMultiFactor" => &["x509CertificateMultiFactor"],
        "qrCodePin" => &["qrCodePin"],
        // MFA-capable, but no mode a strength names.
        "externalAuthMethod" => &[],
        _ => return None,
    })
}

impl GroundTruth {
    /// Whether the user rules judge `u` under the default `[scope]`: enabled members, not
    /// `#EXT#`, `package_` or `Sync_` accounts, and never a break-glass account.
    pub fn in_default_scope(&self, u: &TruthUser) -> bool {
        u.account_enabled
            && u.user_type.eq_ignore_ascii_case("member")
            && !u.upn.contains("#EXT#")
            && !u.upn.to_ascii_lowercase().starts_with("package_")
            && !u.upn.starts_with("Sync_")
            && !self.is_break_glass(u)
    }

    pub fn is_break_glass(&self, u: &TruthUser) -> bool {
        self.break_glass
            .iter()
            .any(|b| b.eq_ignore_ascii_case(&u.upn))
    }

    /// The sorted subjects `rule` must find on this tenant under the default scope; `None` for
    /// a rule this module does not know. See [`GroundTruth::expected_in`].
    pub fn expected(&self, rule: &str) -> Option<Vec<String>> {
        self.expected_in(rule, &|u| self.in_default_scope(u))
    }

    /// The sorted subjects `rule` must find, the user rules judging the users `scope` takes
    /// (break-glass accounts are left out whatever it says).
    pub fn expected_in(
        &self,
        rule: &str,
        scope: &dyn Fn(&TruthUser) -> bool,
    ) -> Option<Vec<String>> {
        let judged = || {
            self.users
                .iter()
                .filter(|u| u.account_enabled && scope(u) && !self.is_break_glass(u))
        };
        let tenant = |yes: bool| {
            if yes {
                vec!["tenant".to_string()]
            } else {
                vec![]
            }
        };
        let mut out: Vec<String> = match rule {
            "policy-unsatisfiable" | "policy-unsatisfiable-report-only" => {
                let state = if rule == "policy-unsatisfiable" {
                    "enabled"
                } else {
                    "enabledForReportingButNotEnforced"
                };
                // A user with no MFA method is sent to registration, not locked out.
                judged()
                    .filter(|u| u.methods.iter().any(|m| modes(m).is_some()))
                    .filter(|u| {
                        self.policy
                            .conditional_access
                            .iter()
                            .filter(|p| p.state == state)
                            .any(|p| self.locks_out(p, u))
                    })
                    .map(|u| u.id.to_ascii_lowercase())
                    .collect()
            }
            "method-not-allowed" => {
                if self.policy.migration_state != "migrationComplete" {
                    return Some(vec![]);
                }
                judged()
                    .filter(|u| {
                        let strong: Vec<&String> =
                            u.methods.iter().filter(|m| modes(m).is_some()).collect();
                        !strong.is_empty() && strong.iter().all(|m| !self.method_allowed(u, m))
                    })
                    .map(|u| u.id.to_ascii_lowercase())
                    .collect()
            }
            "policy-target-missing" => self
                .missing_targets()
                .into_iter()
                .map(|id| format!("tenant:{id}"))
                .collect(),
            "smart-lockout-weak" => tenant(
                self.policy
                    .lockout
                    .is_some_and(|l| l.threshold > 10 || l.duration_seconds < 60),
            ),
            "sspr-not-ready" => judged()
                .filter(|u| {
                    let s = self.sspr(u);
                    s.enabled && !(s.registered && s.capable)
                })
                .map(|u| u.id.to_ascii_lowercase())
                .collect(),
            "admin-no-recovery-contact" => judged()
                .filter(|u| u.other_mails.is_empty())
                .filter(|u| {
                    self.active_roles(&u.id).iter().any(|r| r == GLOBAL_ADMIN)
                        || (self.licence == "P2"
                            && self.eligible_roles(&u.id).iter().any(|r| r == GLOBAL_ADMIN))
                })
                .map(|u| u.id.to_ascii_lowercase())
                .collect(),
            "suspicious-activity-reporting-off" => tenant(matches!(
                self.policy.report_suspicious_activity.as_str(),
                "disabled" | "default"
            )),
            "passkey-policy-blocks" => tenant(self.passkeys_blocked(&judged().collect::<Vec<_>>())),
            _ => return None,
        };
        out.sort();
        out.dedup();
        Some(out)
    }

    fn sspr(&self, u: &TruthUser) -> SimSspr {
        u.sspr.unwrap_or_else(|| {
            let n = u
                .methods
                .iter()
                .filter(|m| *m != "temporaryAccessPass")
                .count()
                + u.unknown_methods.len().min(1)
                + usize::from(
                    u.methods.iter().any(|m| m == "temporaryAccessPass")
                        && !u.tap.as_ref().is_some_and(|t| t.fresh),
                );
            SimSspr {
                enabled: true,
                registered: n >= 2,
                capable: n >= 2,
            }
        })
    }

    /// Whether `u` is a transitive member of the group `id` (a group that does not exist
    /// holds nobody).
    fn member(&self, group: &str, u: &TruthUser) -> bool {
        self.groups.iter().any(|g| {
            g.id.eq_ignore_ascii_case(group)
                && g.members.iter().any(|m| m.eq_ignore_ascii_case(&u.id))
        })
    }

    /// A methods-policy target (`all_users`, a group id, the user's own id) takes in `u`.
    fn in_target(&self, target: &str, u: &TruthUser) -> bool {
        target.eq_ignore_ascii_case("all_users")
            || target.eq_ignore_ascii_case(&u.id)
            || self.member(target, u)
    }

    fn config_allows(&self, config: &str, u: &TruthUser) -> bool {
        let (include, exclude) = self.policy.targets_of(config);
        self.policy.is_enabled(config)
            && include.iter().any(|t| self.in_target(t, u))
            && !exclude.iter().any(|t| self.in_target(t, u))
    }

    /// Whether the methods policy lets `u` use a registered method (report name).
    fn method_allowed(&self, u: &TruthUser, method: &str) -> bool {
        let configs = configs(method);
        configs.is_empty() || configs.iter().any(|c| self.config_allows(c, u))
    }

    /// The authentication-method modes `u` can present: `password` and those of their MFA
    /// methods the policy allows (every one before the migration completes).
    fn available_modes(&self, u: &TruthUser) -> BTreeSet<&'static str> {
        let legacy = self.policy.migration_state != "migrationComplete";
        let mut out: BTreeSet<&'static str> = BTreeSet::from(["password"]);
        for m in &u.methods {
            let Some(ms) = modes(m) else { continue };
            if legacy || self.method_allowed(u, m) {
                out.extend(ms.iter().copied());
            }
        }
        out
    }

    /// The combinations of a strength id: a custom strength of the tenant or a built-in one.
    fn combinations(&self, id: &str) -> Option<Vec<String>> {
        if let Some(s) = self
            .policy
            .strengths
            .iter()
            .find(|s| s.id.eq_ignore_ascii_case(id))
        {
            return Some(s.allowed_combinations.clone());
        }
        BUILTIN_STRENGTHS
            .iter()
            .find(|(b, ..)| b.eq_ignore_ascii_case(id))
            .map(|(_, _, _, c)| c.iter().map(|s| s.to_string()).collect())
    }

    /// Whether Conditional Access policy `p` applies to `u` (users, guests, groups, active
    /// roles, minus its exclusions) and requires MFA (not as one of several OR'ed controls).
    fn applies(&self, p: &SimCaPolicy, u: &TruthUser) -> bool {
        let mfa = p.built_in_controls.iter().any(|c| c == "mfa") || p.strength.is_some();
        let others = p.built_in_controls.iter().filter(|c| *c != "mfa").count();
        // With OR, another control can stand in for MFA: it is optional then.
        if !mfa || (p.operator.eq_ignore_ascii_case("OR") && others > 0) {
            return false;
        }
        let guest = u.user_type.eq_ignore_ascii_case("guest");
        let roles = self.active_roles(&u.id);
        let has_role = |list: &[String]| {
            list.iter()
                .any(|r| roles.iter().any(|h| h.eq_ignore_ascii_case(r)))
        };
        let included = p
            .include_users
            .iter()
            .any(|x| x == "All" || x.eq_ignore_ascii_case(&u.id))
            || (p.include_guests && guest)
            || p.include_groups.iter().any(|g| self.member(g, u))
            || has_role(&p.include_roles);
        let excluded = p
            .exclude_users
            .iter()
            .any(|x| x.eq_ignore_ascii_case(&u.id))
            || (p.conditions.exclude_guests && guest)
            || p.conditions
                .exclude_groups
                .iter()
                .any(|g| self.member(g, u))
            || has_role(&p.conditions.exclude_roles);
        included && !excluded
    }

    /// Whether `p` applies to `u` and requires a strength none of `u`'s allowed methods
    /// satisfies (a strength whose combinations are unknown is not judged).
    fn locks_out(&self, p: &SimCaPolicy, u: &TruthUser) -> bool {
        if !self.applies(p, u) {
            return false;
        }
        let mut required: Vec<&str> = Vec::new();
        if let Some(s) = &p.strength {
            required.push(s);
        }
        if p.built_in_controls.iter().any(|c| c == "mfa") {
            required.push(MFA_STRENGTH);
        }
        let have = self.available_modes(u);
        required.iter().any(|id| match self.combinations(id) {
            None => false,
            Some(combos) => !combos
                .iter()
                .any(|c| c.split(',').map(str::trim).all(|m| have.contains(m))),
        })
    }

    /// FIDO2 blocks someone: it is disabled (or targets nobody judged) while an enabled policy
    /// requires the phishing-resistant strength, or the passkey profiles (or, without
    /// profiles, the deprecated top-level attestation) a judged holder of a synced passkey may
    /// use all refuse synced passkeys (attestation enforced, or `synced` not among the types).
    fn passkeys_blocked(&self, judged: &[&TruthUser]) -> bool {
        let fido2_for = |u: &TruthUser| self.config_allows("Fido2", u);
        let needs_phishing_resistant = self
            .policy
            .conditional_access
            .iter()
            .any(|p| p.state == "enabled" && p.strength.as_deref() == Some(PHISHING_RESISTANT));
        if needs_phishing_resistant && !judged.iter().any(|u| fido2_for(u)) {
            return true;
        }
        let f = &self.policy.fido2;
        let synced_ok = |u: &TruthUser| -> bool {
            if f.profiles.is_empty() {
                return !f.attestation_enforced;
            }
            let (include, _) = self.policy.targets_of("Fido2");
            let mut usable: Vec<&str> = Vec::new();
            for t in include.iter().filter(|t| self.in_target(t, u)) {
                let allowed = f
                    .target_profiles
                    .iter()
                    .find(|(id, _)| id.eq_ignore_ascii_case(t))
                    .map(|(_, p)| p.as_slice())
                    .unwrap_or(&[]);
                if allowed.is_empty() {
                    usable.extend(f.default_profile.as_deref());
                } else {
                    usable.extend(allowed.iter().map(String::as_str));
                }
            }
            f.profiles
                .iter()
                .filter(|p| usable.iter().any(|id| id.eq_ignore_ascii_case(&p.id)))
                .any(|p| {
                    p.attestation_enforcement.eq_ignore_ascii_case("disabled")
                        && p.passkey_types.split(',').any(|t| t.trim() == "synced")
                })
        };
        judged.iter().any(|u| {
            u.methods.iter().any(|m| m == "passKeySynced") && fido2_for(u) && !synced_ok(u)
        })
    }

    /// The users and groups the policies name that do not exist (lower-case ids, sorted).
    pub fn missing_targets(&self) -> Vec<String> {
        let users: BTreeSet<String> = self
            .users
            .iter()
            .map(|u| u.id.to_ascii_lowercase())
            .collect();
        let groups: BTreeSet<String> = self
            .groups
            .iter()
            .map(|g| g.id.to_ascii_lowercase())
            .collect();
        let (user_refs, group_refs) = self.references();
        let mut out: Vec<String> = user_refs
            .into_iter()
            .filter(|id| !users.contains(id))
            .chain(group_refs.into_iter().filter(|id| !groups.contains(id)))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Every group the policies name, with its members' ids (sorted; a deleted group: none, and
    /// a collection finds it in `missing_targets` rather than among the groups read).
    pub fn policy_groups(&self) -> BTreeMap<String, Vec<String>> {
        let (_, group_refs) = self.references();
        group_refs
            .into_iter()
            .map(|g| {
                let mut members: Vec<String> = self
                    .groups
                    .iter()
                    .filter(|x| x.id.eq_ignore_ascii_case(&g))
                    .flat_map(|x| x.members.iter().map(|m| m.to_ascii_lowercase()))
                    .collect();
                members.sort();
                members.dedup();
                (g, members)
            })
            .collect()
    }

    /// The object ids (lower-case GUIDs) the Conditional Access policies and the methods
    /// policy name: (users, groups).
    fn references(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let is_guid = |s: &str| uuid::Uuid::parse_str(s).is_ok();
        let mut users = BTreeSet::new();
        let mut groups = BTreeSet::new();
        for p in &self.policy.conditional_access {
            for id in p.include_users.iter().chain(&p.exclude_users) {
                if is_guid(id) {
                    users.insert(id.to_ascii_lowercase());
                }
            }
            for id in p.include_groups.iter().chain(&p.conditions.exclude_groups) {
                if is_guid(id) {
                    groups.insert(id.to_ascii_lowercase());
                }
            }
        }
        for t in &self.policy.method_targets {
            for id in t.include.iter().chain(&t.exclude) {
                if is_guid(id) {
                    groups.insert(id.to_ascii_lowercase());
                }
            }
        }
        for id in &self.policy.tap_include {
            if is_guid(id) {
                groups.insert(id.to_ascii_lowercase());
            }
        }
        (users, groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lockouts::{DELETED_CA_GROUP, DELETED_METHODS_GROUP, DELETED_USER, EXEMPT_GROUP};
    use crate::tenant::{from_ground_truth, generate_at, Profile};

    fn lockouts() -> GroundTruth {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z")
            .map(|d| d.with_timezone(&chrono::Utc))
            .expect("date");
        generate_at(300, 11, Profile::PolicyLockouts, now).ground_truth("P2")
    }

    fn guid(id: u128) -> String {
        uuid::Uuid::from_u128(id).hyphenated().to_string()
    }

    fn expected(t: &GroundTruth, rule: &str) -> Vec<String> {
        t.expected(rule).unwrap_or_else(|| panic!("{rule} unknown"))
    }

    #[test]
    fn every_lockout_rule_has_something_to_find_and_the_tenant_round_trips() {
        let t = lockouts();
        for rule in LOCKOUT_RULES {
            assert!(!expected(&t, rule).is_empty(), "{rule} finds nothing");
        }
        assert_eq!(t.expected("no-such-rule"), None);
        let back: GroundTruth =
            serde_json::from_str(&serde_json::to_string(&t).expect("json")).expect("parse");
        assert_eq!(
            from_ground_truth(&back).expect("tenant").ground_truth("P2"),
            t
        );
        let mut missing = vec![
            guid(DELETED_METHODS_GROUP),
            guid(DELETED_CA_GROUP),
            guid(DELETED_USER),
        ];
        missing.sort();
        assert_eq!(t.missing_targets(), missing);
        let subjects: Vec<String> = missing.iter().map(|m| format!("tenant:{m}")).collect();
        assert_eq!(expected(&t, "policy-target-missing"), subjects);
        for rule in [
            "smart-lockout-weak",
            "suspicious-activity-reporting-off",
            "passkey-policy-blocks",
        ] {
            assert_eq!(expected(&t, rule), vec!["tenant".to_string()], "{rule}");
        }
        // A deleted group is named with no members; the groups that exist with theirs.
        let groups = t.policy_groups();
        assert_eq!(groups.get(&guid(DELETED_CA_GROUP)), Some(&vec![]));
        assert_eq!(groups.get(&guid(EXEMPT_GROUP)).map(Vec::len), Some(2));
    }

    #[test]
    fn the_planted_users_are_caught_and_the_spared_are_spared() {
        let t = lockouts();
        let unsatisfiable = expected(&t, "policy-unsatisfiable");
        let report_only = expected(&t, "policy-unsatisfiable-report-only");
        let not_allowed = expected(&t, "method-not-allowed");
        let by = |f: &dyn Fn(&TruthUser) -> bool| -> Vec<&TruthUser> {
            t.users.iter().filter(|u| f(u)).collect()
        };
        // Break-glass accounts: never judged by a user rule.
        let glass = by(&|u| u.upn.starts_with("breakglass"));
        assert_eq!(glass.len(), 2);
        for rule in LOCKOUT_RULES {
            let found = expected(&t, rule);
            assert!(glass.iter().all(|g| !found.contains(&g.id)), "{rule}");
        }
        // Push-only Global Administrators fail the phishing-resistant strength.
        let push_admins = by(&|u| {
            u.roles.iter().any(|r| r == GLOBAL_ADMIN) && u.methods == ["microsoftAuthenticatorPush"]
        });
        assert!(push_admins.len() >= 3);
        assert!(push_admins.iter().all(|u| unsatisfiable.contains(&u.id)));
        // SMS-only users: no method allowed; caught by MFA for all unless exempted by a group.
        let sms_only = by(&|u| t.in_default_scope(u) && u.methods == ["mobilePhone"]);
        assert!(sms_only.iter().all(|u| not_allowed.contains(&u.id)));
        let exempt = by(&|u| t.member(&guid(EXEMPT_GROUP), u));
        assert_eq!(exempt.len(), 2);
        assert!(exempt.iter().all(|u| !unsatisfiable.contains(&u.id)));
        assert!(sms_only
            .iter()
            .filter(|u| !t.member(&guid(EXEMPT_GROUP), u))
            .all(|u| unsatisfiable.contains(&u.id)));
        // Hardware tokens: allowed to the hardware group only.
        let hardware = by(&|u| t.in_default_scope(u) && u.methods == ["hardwareOneTimePasscode"]);
        let (inside, outside): (Vec<&&TruthUser>, Vec<&&TruthUser>) = hardware
            .iter()
            .partition(|u| t.config_allows("HardwareOath", u));
        assert_eq!((inside.len(), outside.len() >= 3), (2, true));
        assert!(inside.iter().all(|u| !not_allowed.contains(&u.id)));
        assert!(outside.iter().all(|u| not_allowed.contains(&u.id)));
        // Report-only: Finance's push-only users, and nobody outside Finance.
        assert!(report_only.len() >= 3);
        assert!(report_only.iter().all(|id| t
            .users
            .iter()
            .any(|u| &u.id == id && t.member(&guid(crate::lockouts::FINANCE_GROUP), u))));
        // Guests are out of the default scope; with guests judged, the one whose only method
        // (a phone) policy refuses is found.
        let guests = by(&|u| u.user_type == "Guest");
        assert!(guests.iter().all(|g| !unsatisfiable.contains(&g.id)));
        let with_guests = t
            .expected_in("policy-unsatisfiable", &|u| u.account_enabled)
            .expect("known");
        let bare_guest = guests
            .iter()
            .find(|g| g.methods == ["mobilePhone"] && g.upn.contains("#EXT#"))
            .expect("a guest with only a phone");
        assert!(with_guests.contains(&bare_guest.id));
        // Admins without an alternate email, the PIM-eligible one included.
        let no_contact = expected(&t, "admin-no-recovery-contact");
        assert!(no_contact.len() >= 3);
        assert!(no_contact.iter().all(|id| t
            .users
            .iter()
            .any(|u| &u.id == id && u.other_mails.is_empty())));
    }

    #[test]
    fn the_realistic_profile_plants_none_of_the_tenant_situations() {
        let t = generate_at(500, 3, Profile::Realistic, chrono::Utc::now()).ground_truth("P2");
        for rule in [
            "policy-target-missing",
            "smart-lockout-weak",
            "suspicious-activity-reporting-off",
            "passkey-policy-blocks",
            "policy-unsatisfiable-report-only",
        ] {
            assert_eq!(expected(&t, rule), Vec::<String>::new(), "{rule}");
        }
        // Some members have no alternate email, and SSPR readiness varies.
        assert!(t
            .users
            .iter()
            .any(|u| u.other_mails.is_empty() && u.user_type == "Member"));
        assert!(!expected(&t, "sspr-not-ready").is_empty());
    }
}
