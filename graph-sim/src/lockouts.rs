//! The `policy-lockouts` profile: a realistic tenant under policies that lock some users out,
//! each situation the lockout rules look for planted on chosen users, so the ground truth
//! ([`crate::GroundTruth::expected`]) has something to find in every rule and someone to spare
//! in every exception (break-glass accounts, excluded groups, guests, disabled policies).

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::tenant::{
    method_index, SimCaConditions, SimCaPolicy, SimFido2, SimGroup, SimKeyRestrictions, SimLockout,
    SimMethodTargets, SimPasskeyProfile, SimSspr, SimStrength, SimUser, Tenant, ROLES,
};

/// A group id of this profile.
const fn group_id(n: u128) -> u128 {
    0x9a0c_0000_0000_4000_8000_0000_0000_2000u128 | n
}

fn guid(id: u128) -> String {
    uuid::Uuid::from_u128(id).hyphenated().to_string()
}

/// Members of this group may use hardware OATH tokens (HardwareOath's only include target).
pub const HARDWARE_GROUP: u128 = group_id(1);
/// Excluded from "Require MFA for all users".
pub const EXEMPT_GROUP: u128 = group_id(2);
/// The report-only custom-strength policy's users.
pub const FINANCE_GROUP: u128 = group_id(3);
/// A group deleted since the FIDO2 configuration excluded it.
pub const DELETED_METHODS_GROUP: u128 = group_id(0xdead1);
/// A group deleted since "Require MFA for all users" excluded it.
pub const DELETED_CA_GROUP: u128 = group_id(0xdead2);
/// A user (a former admin) deleted since the admins' policy excluded them.
pub const DELETED_USER: u128 = 0x0e1d_0000_0000_4000_8000_0000_0000_dead;
/// The custom authentication strength.
pub const CUSTOM_STRENGTH: &str = "5c7f0e4a-2b1d-4e8f-9a3c-6d5e4f3a2b10";
/// The built-in phishing-resistant and passwordless strengths.
pub const PHISHING_RESISTANT: &str = "00000000-0000-0000-0000-000000000004";
pub const PASSWORDLESS: &str = "00000000-0000-0000-0000-000000000003";
/// The default passkey profile's id (Microsoft's example, docs-contrib
/// `fido2authenticationmethodconfiguration-update.md`).
pub const DEFAULT_PASSKEY_PROFILE: &str = "00000000-0000-0000-0000-000000000001";

const GLOBAL_ADMIN: u8 = 0;
const PRIVILEGED_AUTH_ADMIN: u8 = 1;
const SECURITY_ADMIN: u8 = 3;

impl Tenant {
    /// Plants the lockout situations on this tenant, deterministically from `seed`: the
    /// policies (SMS and voice off, hardware OATH for one group only, FIDO2 excluding a deleted
    /// group with an attestation-enforcing default passkey profile, suspicious-activity
    /// reporting off, weak smart lockout, a custom strength; Conditional Access requiring the
    /// phishing-resistant strength of admins, MFA of everyone but an exemption group, a deleted
    /// group and guests, MFA of guests, the custom strength of Finance in report-only, a
    /// disabled passwordless policy) and the users they catch or spare: two break-glass
    /// accounts, push-only Global Administrators, SMS-only users (some exempted), hardware-token
    /// users inside and outside the hardware group, synced-passkey holders, Finance users,
    /// SSPR-enabled unregistered users, guests, admins without an alternate email.
    pub fn plant_policy_lockouts(&mut self, seed: u64) {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x10c_c0d7);
        let mut candidates = self.people_without_roles();
        let mut take = |n: usize, rng: &mut SmallRng| -> Vec<usize> {
            let mut out = Vec::with_capacity(n);
            while out.len() < n && !candidates.is_empty() {
                out.push(candidates.swap_remove(rng.gen_range(0..candidates.len())) as usize);
            }
            out
        };
        let set = |u: &mut SimUser, methods: &[&str]| {
            u.methods = methods
                .iter()
                .filter_map(|m| method_index(m))
                .fold(0, |acc, i| acc | 1 << i);
            u.tap = None;
            u.default_method = if methods.contains(&"microsoftAuthenticatorPush") {
                "push"
            } else if methods.contains(&"mobilePhone") {
                "sms"
            } else if methods.contains(&"hardwareOneTimePasscode") {
                "oath"
            } else {
                "none"
            };
        };
        let domain = self.domain.clone();

        let glass = take(2, &mut rng);
        for (n, &i) in glass.iter().enumerate() {
            let u = &mut self.users[i];
            u.upn = format!("breakglass{}@{domain}", n + 1).into();
            u.display_name = format!("Break Glass {}", n + 1).into();
            u.roles = vec![GLOBAL_ADMIN];
            u.synced = false;
            u.other_mail = Some(format!("breakglass{}@fabrikam.example", n + 1).into());
            set(u, &["fido2SecurityKey", "passKeyDeviceBound"]);
        }
        self.break_glass = glass
            .iter()
            .map(|&i| self.users[i].upn.to_string())
            .collect();
        let glass_ids: Vec<String> = glass.iter().map(|&i| self.users[i].id_string()).collect();

        // Admins the phishing-resistant policy locks out: push only (two without an
        // alternate email), and one with push and a phone.
        let push_admins = take(3, &mut rng);
        for (n, &i) in push_admins.iter().enumerate() {
            let u = &mut self.users[i];
            u.roles = vec![GLOBAL_ADMIN];
            set(u, &["microsoftAuthenticatorPush"]);
            if n < 2 {
                u.other_mail = None;
            }
        }
        for &i in &take(1, &mut rng) {
            let u = &mut self.users[i];
            u.roles = vec![PRIVILEGED_AUTH_ADMIN];
            set(u, &["microsoftAuthenticatorPush", "mobilePhone"]);
        }
        // Admins who satisfy it.
        for (n, &i) in take(2, &mut rng).iter().enumerate() {
            let u = &mut self.users[i];
            u.roles = vec![if n == 0 {
                PRIVILEGED_AUTH_ADMIN
            } else {
                SECURITY_ADMIN
            }];
            set(u, &["fido2SecurityKey", "microsoftAuthenticatorPush"]);
        }
        // Eligible (PIM) Global Administrator without an alternate email: outside the admins'
        // policy (it names active holders), inside admin-no-recovery-contact.
        for &i in &take(1, &mut rng) {
            let u = &mut self.users[i];
            u.eligible_roles = vec![GLOBAL_ADMIN];
            u.other_mail = None;
            set(
                u,
                &["windowsHelloForBusiness", "microsoftAuthenticatorPush"],
            );
        }
        // SMS-only (SMS and voice are off), two of them exempted by a group.
        for (n, &i) in take(6, &mut rng).iter().enumerate() {
            set(
                &mut self.users[i],
                if n == 5 {
                    &["mobilePhone", "alternateMobilePhone"]
                } else {
                    &["mobilePhone"]
                },
            );
        }
        let exempt = take(2, &mut rng);
        for &i in &exempt {
            set(&mut self.users[i], &["mobilePhone"]);
        }
        // Hardware tokens: three outside the hardware group, two inside.
        for &i in &take(3, &mut rng) {
            set(&mut self.users[i], &["hardwareOneTimePasscode"]);
        }
        let hardware = take(2, &mut rng);
        for &i in &hardware {
            set(&mut self.users[i], &["hardwareOneTimePasscode"]);
        }
        // Synced passkeys under an attestation-enforcing profile.
        for &i in &take(3, &mut rng) {
            set(
                &mut self.users[i],
                &["passKeySynced", "microsoftAuthenticatorPush"],
            );
        }
        // Finance: the custom strength (keys or hardware OATH) in report-only.
        let finance = take(8, &mut rng);
        for (n, &i) in finance.iter().enumerate() {
            match n {
                0..=2 => set(&mut self.users[i], &["microsoftAuthenticatorPush"]),
                3 | 4 => set(
                    &mut self.users[i],
                    &["fido2SecurityKey", "microsoftAuthenticatorPush"],
                ),
                _ => {}
            }
        }
        // SSPR enabled but not registered (or not capable); and SSPR off.
        for (n, &i) in take(6, &mut rng).iter().enumerate() {
            self.users[i].sspr = Some(match n {
                0..=2 => SimSspr {
                    enabled: true,
                    registered: false,
                    capable: false,
                },
                3 => SimSspr {
                    enabled: true,
                    registered: true,
                    capable: false,
                },
                _ => SimSspr {
                    enabled: false,
                    registered: false,
                    capable: false,
                },
            });
        }
        // Guests: one with Authenticator, one with only a phone number (SMS and voice are off).
        for (n, &i) in take(2, &mut rng).iter().enumerate() {
            let u = &mut self.users[i];
            let local = u.upn.split('@').next().unwrap_or("guest").to_string();
            u.upn = format!("{local}_fabrikam.com#EXT#@{domain}").into();
            u.guest = true;
            u.synced = false;
            u.other_mail = None;
            set(
                u,
                if n == 0 {
                    &["microsoftAuthenticatorPush"]
                } else {
                    &["mobilePhone"]
                },
            );
        }

        self.groups.extend([
            SimGroup {
                id: HARDWARE_GROUP,
                display_name: "Hardware token holders".into(),
                members: hardware.iter().map(|&i| i as u32).collect(),
                ..SimGroup::default()
            },
            SimGroup {
                id: EXEMPT_GROUP,
                display_name: "MFA exemptions".into(),
                members: exempt.iter().map(|&i| i as u32).collect(),
                ..SimGroup::default()
            },
            SimGroup {
                id: FINANCE_GROUP,
                display_name: "Finance".into(),
                members: finance.iter().map(|&i| i as u32).collect(),
                ..SimGroup::default()
            },
        ]);

        let p = &mut self.policy;
        p.migration_state = "migrationComplete".into();
        p.enabled_methods = [
            "Fido2",
            "MicrosoftAuthenticator",
            "TemporaryAccessPass",
            "SoftwareOath",
            "HardwareOath",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        p.method_targets = vec![
            SimMethodTargets {
                method: "HardwareOath".into(),
                include: vec![guid(HARDWARE_GROUP)],
                exclude: vec![],
            },
            SimMethodTargets {
                method: "Fido2".into(),
                include: vec!["all_users".into()],
                exclude: vec![guid(DELETED_METHODS_GROUP)],
            },
        ];
        p.fido2 = SimFido2 {
            attestation_enforced: true,
            key_restrictions: SimKeyRestrictions {
                enforced: false,
                enforcement_type: "block".into(),
                aaguids: vec![],
            },
            profiles: vec![SimPasskeyProfile {
                id: DEFAULT_PASSKEY_PROFILE.into(),
                name: "Default passkey profile".into(),
                passkey_types: "deviceBound,synced".into(),
                attestation_enforcement: "registrationOnly".into(),
                key_restrictions: SimKeyRestrictions {
                    enforced: false,
                    enforcement_type: "allow".into(),
                    aaguids: vec![],
                },
            }],
            default_profile: Some(DEFAULT_PASSKEY_PROFILE.into()),
            target_profiles: vec![("all_users".into(), vec![DEFAULT_PASSKEY_PROFILE.into()])],
        };
        p.report_suspicious_activity = "disabled".into();
        p.strengths = vec![SimStrength {
            id: CUSTOM_STRENGTH.into(),
            display_name: "Contoso keys or hardware OATH".into(),
            allowed_combinations: vec![
                "fido2".into(),
                "windowsHelloForBusiness".into(),
                "password,hardwareOath".into(),
            ],
        }];
        p.lockout = Some(SimLockout {
            threshold: 20,
            duration_seconds: 30,
        });
        let ca_id = |n: u32| format!("1f3d2c1e-0000-4000-8000-0000000c{n:04x}");
        let mut admins_excluded = glass_ids.clone();
        admins_excluded.push(guid(DELETED_USER));
        p.conditional_access = vec![
            SimCaPolicy {
                id: ca_id(1),
                display_name: "Require phishing-resistant MFA for admins".into(),
                state: "enabled".into(),
                include_roles: [GLOBAL_ADMIN, PRIVILEGED_AUTH_ADMIN, SECURITY_ADMIN]
                    .iter()
                    .map(|r| ROLES[*r as usize].to_string())
                    .collect(),
                exclude_users: admins_excluded,
                operator: "OR".into(),
                strength: Some(PHISHING_RESISTANT.into()),
                ..SimCaPolicy::default()
            },
            SimCaPolicy {
                id: ca_id(2),
                display_name: "Require MFA for all users".into(),
                state: "enabled".into(),
                include_users: vec!["All".into()],
                exclude_users: glass_ids.clone(),
                built_in_controls: vec!["mfa".into()],
                operator: "OR".into(),
                conditions: SimCaConditions {
                    exclude_groups: vec![guid(EXEMPT_GROUP), guid(DELETED_CA_GROUP)],
                    exclude_guests: true,
                    ..SimCaConditions::default()
                },
                ..SimCaPolicy::default()
            },
            SimCaPolicy {
                id: ca_id(3),
                display_name: "Finance: keys or hardware tokens (report-only)".into(),
                state: "enabledForReportingButNotEnforced".into(),
                include_groups: vec![guid(FINANCE_GROUP)],
                operator: "OR".into(),
                strength: Some(CUSTOM_STRENGTH.into()),
                ..SimCaPolicy::default()
            },
            SimCaPolicy {
                id: ca_id(4),
                display_name: "Require MFA for guests".into(),
                state: "enabled".into(),
                include_guests: true,
                built_in_controls: vec!["mfa".into()],
                operator: "OR".into(),
                ..SimCaPolicy::default()
            },
            SimCaPolicy {
                id: ca_id(5),
                display_name: "Block legacy authentication".into(),
                state: "enabled".into(),
                include_users: vec!["All".into()],
                exclude_users: glass_ids,
                built_in_controls: vec!["block".into()],
                operator: "OR".into(),
                conditions: SimCaConditions {
                    client_app_types: vec!["exchangeActiveSync".into(), "other".into()],
                    ..SimCaConditions::default()
                },
                ..SimCaPolicy::default()
            },
            SimCaPolicy {
                id: ca_id(6),
                display_name: "Require passwordless MFA for everyone (draft)".into(),
                state: "disabled".into(),
                include_users: vec!["All".into()],
                operator: "OR".into(),
                strength: Some(PASSWORDLESS.into()),
                ..SimCaPolicy::default()
            },
        ];
    }
}
