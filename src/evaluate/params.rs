//! `[rules.<id>]`: each rule's `enabled`, `severity` and typed parameters, with their defaults in
//! one place. A rule id that does not exist is an unknown key, so a typo is an error, not a
//! silently ignored rule.

use serde::{Deserialize, Serialize};

use super::Severity;

macro_rules! rule_params {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $ty:ty = $default:expr),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
        #[serde(deny_unknown_fields, default)]
        pub struct $name {
            /// Evaluate this rule at all.
            pub enabled: bool,
            /// Override the rule's default severity.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub severity: Option<Severity>,
            $($(#[$fdoc])* pub $field: $ty,)*
        }
        impl Default for $name {
            fn default() -> Self {
                $name { enabled: true, severity: None, $($field: $default,)* }
            }
        }
        impl RuleToggle for $name {
            fn enabled(&self) -> bool { self.enabled }
            fn severity(&self) -> Option<Severity> { self.severity }
        }
    };
}

/// What every rule's parameters have.
pub trait RuleToggle {
    fn enabled(&self) -> bool;
    fn severity(&self) -> Option<Severity>;
}

rule_params!(NoMfaMethod {
    /// New users get this many days to register before they are flagged.
    grace_days: u32 = 14,
});
rule_params!(NoBackupMethod {
    /// Recovery families a user's MFA methods must span.
    min_families: u32 = 2,
});
rule_params!(Plain {});
rule_params!(TapLongLived {
    /// A usable TAP living longer than this is flagged.
    max_lifetime_minutes: u32 = 480,
});
rule_params!(MfaFailures {
    /// Failed MFA sign-ins in the collection window (`graph.sign_in_window_hours`) that flag a user.
    threshold: u32 = 5,
});
rule_params!(TapPolicyLifetime {
    /// Largest acceptable default TAP lifetime.
    max_default_minutes: u32 = 60,
    /// Largest acceptable maximum TAP lifetime.
    max_lifetime_minutes: u32 = 480,
});
rule_params!(TapPolicyScope {
    /// Group ids that may use TAP instead of all users (empty: all users must be able to).
    groups: Vec<String> = Vec::new(),
});
rule_params!(WeakMethodsEnabled {
    /// Method configurations that must not be enabled for sign-in.
    methods: Vec<String> = vec!["Sms".into(), "Voice".into(), "Email".into()],
});
rule_params!(TooFewRecoveryAdmins {
    /// Enabled users who can reset MFA and issue TAPs, each with a backup method.
    min: u32 = 2,
});
rule_params!(SmartLockoutWeak {
    /// Failed sign-ins before smart lockout locks an account; a higher threshold is flagged.
    max_threshold: u32 = 10,
    /// Shortest acceptable first lockout, in seconds.
    min_duration_seconds: u32 = 60,
});
rule_params!(BreakGlassCount {
    /// How many emergency-access accounts there should be.
    expected: u32 = 2,
});

/// Every rule's parameters, by rule id.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct RulesConfig {
    pub no_mfa_method: NoMfaMethod,
    pub no_backup_method: NoBackupMethod,
    pub phone_only: Plain,
    pub admin_not_phishing_resistant: Plain,
    pub method_not_allowed: Plain,
    pub tap_long_lived: TapLongLived,
    pub tap_multi_use: Plain,
    pub mfa_failures: MfaFailures,
    pub per_user_mfa_legacy: Plain,
    pub weak_default_method: Plain,
    pub break_glass_weak: Plain,
    pub tap_policy_disabled: Plain,
    pub tap_policy_multi_use: Plain,
    pub tap_policy_lifetime: TapPolicyLifetime,
    pub tap_policy_scope: TapPolicyScope,
    pub weak_methods_enabled: WeakMethodsEnabled,
    pub authenticator_context_off: Plain,
    pub system_preferred_mfa_off: Plain,
    pub registration_campaign_off: Plain,
    pub migration_incomplete: Plain,
    pub no_mfa_enforcement: Plain,
    pub too_few_recovery_admins: TooFewRecoveryAdmins,
    pub break_glass_count: BreakGlassCount,
    pub policy_unsatisfiable: Plain,
    pub policy_unsatisfiable_report_only: Plain,
    pub policy_target_missing: Plain,
    pub smart_lockout_weak: SmartLockoutWeak,
    pub sspr_not_ready: Plain,
    pub admin_no_recovery_contact: Plain,
    pub passkey_policy_blocks: Plain,
    pub suspicious_activity_reporting_off: Plain,
}

impl RulesConfig {
    /// The toggle of a rule by id.
    pub fn toggle(&self, id: &str) -> Option<&dyn RuleToggle> {
        Some(match id {
            "no-mfa-method" => &self.no_mfa_method,
            "no-backup-method" => &self.no_backup_method,
            "phone-only" => &self.phone_only,
            "admin-not-phishing-resistant" => &self.admin_not_phishing_resistant,
            "method-not-allowed" => &self.method_not_allowed,
            "tap-long-lived" => &self.tap_long_lived,
            "tap-multi-use" => &self.tap_multi_use,
            "mfa-failures" => &self.mfa_failures,
            "per-user-mfa-legacy" => &self.per_user_mfa_legacy,
            "weak-default-method" => &self.weak_default_method,
            "break-glass-weak" => &self.break_glass_weak,
            "tap-policy-disabled" => &self.tap_policy_disabled,
            "tap-policy-multi-use" => &self.tap_policy_multi_use,
            "tap-policy-lifetime" => &self.tap_policy_lifetime,
            "tap-policy-scope" => &self.tap_policy_scope,
            "weak-methods-enabled" => &self.weak_methods_enabled,
            "authenticator-context-off" => &self.authenticator_context_off,
            "system-preferred-mfa-off" => &self.system_preferred_mfa_off,
            "registration-campaign-off" => &self.registration_campaign_off,
            "migration-incomplete" => &self.migration_incomplete,
            "no-mfa-enforcement" => &self.no_mfa_enforcement,
            "too-few-recovery-admins" => &self.too_few_recovery_admins,
            "break-glass-count" => &self.break_glass_count,
            "policy-unsatisfiable" => &self.policy_unsatisfiable,
            "policy-unsatisfiable-report-only" => &self.policy_unsatisfiable_report_only,
            "policy-target-missing" => &self.policy_target_missing,
            "smart-lockout-weak" => &self.smart_lockout_weak,
            "sspr-not-ready" => &self.sspr_not_ready,
            "admin-no-recovery-contact" => &self.admin_no_recovery_contact,
            "passkey-policy-blocks" => &self.passkey_policy_blocks,
            "suspicious-activity-reporting-off" => &self.suspicious_activity_reporting_off,
            _ => return None,
        })
    }
}

impl RulesConfig {
    /// A rule's parameters and their values (defaults unless configured), as TOML lines.
    pub fn describe(&self, id: &str) -> Vec<String> {
        let table = toml::Table::try_from(self).unwrap_or_default();
        match table.get(id).and_then(|v| v.as_table()) {
            Some(t) => t.iter().map(|(k, v)| format!("{k} = {v}")).collect(),
            None => Vec::new(),
        }
    }
}
