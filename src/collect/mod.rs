//! Collect: the only code that knows Graph. It runs the sweeps of DESIGN §2 concurrently against
//! a [`GraphClient`] and turns Graph JSON into a [`Snapshot`]; nothing past it sees a Graph type.
//!
//! INTERFACE CONTRACT (other modules code against these):
//! - [`CollectOptions`]: what to read, built by `config`.
//! - [`PERMISSION_NEEDS`] / [`missing_permissions`]: which application permission feeds which data set.
//! - `collect(&GraphClient, &CollectOptions, audit_time) -> Snapshot` (async; being written): the snapshot's
//!   `coverage` says whether it is complete and, if not, exactly which sweep failed and why.
//! - The watcher's incremental reads (issue 12, `watch.rs`): `read_sign_ins` / `read_security_info`
//!   `(&GraphClient, &Watermark, &WatchOptions, now) -> Result<WatchRead<_>, WatchError>`; keep
//!   the returned `watermark` (serialisable) once its events are recorded.

mod convert;
mod sweeps;
pub mod watch;
pub mod wire;

pub use sweeps::{
    collect, collect_with_report, encode, nothing_read, CollectReport, SweepStat, LICENCE_ATTEMPTS,
    SUBSCRIBED_SKUS_PERMISSIONS,
};
pub use watch::{
    choose_sweep, overlap_pages, read_security_info, read_sign_ins, read_sign_ins_for, sweep_url,
    sweep_user_count, Sweep, SweepChoice, SweepFilter, SweepQuery, SweepReport, WatchError,
    WatchOptions, WatchRead, Watermark, MAX_DEFERRED_SWEEPS, SIGN_IN_PAGE_SIZE,
};

use crate::snapshot::DataSet;

/// Which users get per-user MFA state read (beta `/authentication/requirements`, one call each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PerUserMfaScope {
    Off,
    Admins,
    All,
}

/// What one collection reads.
#[derive(Clone, Debug, PartialEq)]
pub struct CollectOptions {
    /// Read Conditional Access policies (needs `Policy.Read.All`; 1 request/s per tenant).
    pub conditional_access: bool,
    /// Read failed MFA sign-ins (needs `AuditLog.Read.All` and P1/P2).
    pub sign_ins: bool,
    /// Look back this far for failed MFA sign-ins.
    pub sign_in_window: chrono::Duration,
    /// `status/errorCode` values that count as a failed MFA sign-in (default 500121).
    pub mfa_failure_codes: Vec<i32>,
    /// Read TAP detail for users whose registration lists `temporaryAccessPass`.
    pub tap_detail: bool,
    /// Read `/authentication/methods` for users holding a tracked role.
    pub admin_method_detail: bool,
    pub per_user_mfa: PerUserMfaScope,
    /// Emergency-access accounts (UPNs, case-insensitive): their method detail is always read.
    pub break_glass_upns: Vec<String>,
    /// Groups (object ids) whose transitive user members are read, for the scope.
    pub groups: Vec<String>,
    /// When the previous complete audit started: Temporary Access Passes issued since then
    /// (less [`TAP_AUDIT_OVERLAP`]) are found in the directory audit log. `None`: look back
    /// `tap_audit_window`.
    pub previous_audit: Option<chrono::DateTime<chrono::Utc>>,
    /// How far back the directory audit log is read for new TAPs without a previous audit.
    pub tap_audit_window: chrono::Duration,
}

/// The directory audit log is read from this long before the previous audit: the registration
/// report lags by hours, so a TAP issued just before the previous audit may still be missing
/// from the report now.
pub const TAP_AUDIT_OVERLAP: chrono::Duration = chrono::Duration::hours(24);

impl Default for CollectOptions {
    fn default() -> Self {
        CollectOptions {
            conditional_access: true,
            sign_ins: true,
            sign_in_window: chrono::Duration::hours(24),
            mfa_failure_codes: vec![500121],
            tap_detail: true,
            admin_method_detail: true,
            per_user_mfa: PerUserMfaScope::Admins,
            break_glass_upns: Vec::new(),
            groups: Vec::new(),
            previous_audit: None,
            tap_audit_window: chrono::Duration::days(7),
        }
    }
}

/// One data set's need for an application permission: any one of `any_of` will do.
#[derive(Debug)]
pub struct PermissionNeed {
    pub data_set: DataSet,
    pub any_of: &'static [&'static str],
    /// What is lost without it, in words for the operator.
    pub disables: &'static str,
}

/// The least-privileged application permissions each data set needs (REFERENCE §4–§12), with the
/// broader ones that also grant it.
pub static PERMISSION_NEEDS: &[PermissionNeed] = &[
    PermissionNeed {
        data_set: DataSet::Users,
        any_of: &[
            "User.Read.All",
            "User.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ],
        disables: "every audit: the user list cannot be read",
    },
    PermissionNeed {
        data_set: DataSet::Registration,
        // docs-contrib authenticationmethodsroot-list-userregistrationdetails-permissions.md
        any_of: &["AuditLog.Read.All", "UserAuthenticationMethod.Read.All"],
        disables: "the registration report: every user's methods, admin flag and default method",
    },
    PermissionNeed {
        data_set: DataSet::MethodsPolicy,
        any_of: &[
            "Policy.Read.AuthenticationMethod",
            "Policy.ReadWrite.AuthenticationMethod",
            "Policy.Read.All",
        ],
        disables: "the authentication-methods and TAP policy rules",
    },
    PermissionNeed {
        data_set: DataSet::SecurityDefaults,
        any_of: &["Policy.Read.All", "Policy.ReadWrite.SecurityDefaults"],
        disables: "the security-defaults check of no-mfa-enforcement",
    },
    PermissionNeed {
        data_set: DataSet::ConditionalAccess,
        // Listing needs Policy.Read.All; Policy.ReadWrite.ConditionalAccess alone does not read
        // (docs-contrib conditionalaccessroot-list-policies-permissions.md).
        any_of: &["Policy.Read.All"],
        disables: "the Conditional Access check of no-mfa-enforcement",
    },
    PermissionNeed {
        data_set: DataSet::Roles,
        any_of: &[
            "RoleManagement.Read.Directory",
            "RoleManagement.Read.All",
            "RoleManagement.ReadWrite.Directory",
            "Directory.Read.All",
        ],
        disables: "admin rules and too-few-recovery-admins",
    },
    PermissionNeed {
        data_set: DataSet::TapDetail,
        any_of: &[
            "UserAuthenticationMethod.Read.All",
            "UserAuthenticationMethod.ReadWrite.All",
        ],
        disables: "per-user TAP rules (tap-long-lived, tap-multi-use)",
    },
    PermissionNeed {
        data_set: DataSet::MethodDetail,
        any_of: &[
            "UserAuthenticationMethod.Read.All",
            "UserAuthenticationMethod.ReadWrite.All",
        ],
        disables:
            "method detail for admins and break-glass accounts, and the free-licence fallback",
    },
    PermissionNeed {
        data_set: DataSet::PerUserMfa,
        any_of: &["Policy.Read.All", "Policy.ReadWrite.AuthenticationMethod"],
        disables: "per-user-mfa-legacy",
    },
    PermissionNeed {
        data_set: DataSet::Groups,
        any_of: &[
            "GroupMember.Read.All",
            "Group.Read.All",
            "Directory.Read.All",
        ],
        disables: "the group conditions of [scope]: user rules cannot know who is in scope",
    },
    PermissionNeed {
        data_set: DataSet::SignIns,
        // docs-contrib signin-list-permissions.md
        any_of: &["AuditLog.Read.All", "Directory.Read.All"],
        disables: "mfa-failures",
    },
    PermissionNeed {
        data_set: DataSet::RoleEligibility,
        any_of: &[
            "RoleEligibilitySchedule.Read.Directory",
            "RoleManagement.Read.Directory",
            "RoleManagement.Read.All",
            "RoleEligibilitySchedule.ReadWrite.Directory",
            "RoleManagement.ReadWrite.Directory",
        ],
        disables: "PIM-eligible admins: the admin rules judge active role holders only",
    },
    // Temporary Access Passes issued since the registration report's snapshot are found in the
    // directory audit log (docs-contrib directoryaudit-list-permissions.md).
    // docs-contrib directoryaudit-list-permissions.md lists AuditLog.Read.All *and*
    // Directory.Read.All; the client asks for the first and, should Graph refuse for the second,
    // the 403 leaves this data set a named gap (TAP rules judged on the report's passes), never a
    // failed audit. README recommends Directory.Read.All.
    // docs-contrib v1.0 authenticationstrengthroot-list-policies-permissions.md.
    PermissionNeed {
        data_set: DataSet::AuthStrengths,
        any_of: &["Policy.Read.All", "Policy.ReadWrite.ConditionalAccess"],
        disables: "custom authentication strengths: policies requiring one are not judged by policy-unsatisfiable",
    },
    // docs-contrib beta directorysetting-list.md: Directory.Read.All (no narrower permission).
    PermissionNeed {
        data_set: DataSet::DirectorySettings,
        any_of: &["Directory.Read.All", "Directory.ReadWrite.All"],
        disables: "smart-lockout-weak (the tenant's smart lockout settings)",
    },
    // Whether the objects policies name exist: getByIds (Directory.Read.All) when granted;
    // otherwise every user is in the users read and a deleted group answers 404 on its members.
    PermissionNeed {
        data_set: DataSet::PolicyTargets,
        any_of: &[
            "GroupMember.Read.All",
            "Group.Read.All",
            "Directory.Read.All",
        ],
        disables: "policy-target-missing, and who the groups policies name hold (policy-unsatisfiable, method-not-allowed)",
    },
    PermissionNeed {
        data_set: DataSet::DirectoryAudit,
        any_of: &["AuditLog.Read.All"],
        disables: "TAPs issued since the registration report's snapshot (the TAP rules judge only the passes the report lists)",
    },
];

impl CollectOptions {
    /// Whether these options read the data set at all.
    pub fn reads(&self, set: DataSet) -> bool {
        match set {
            DataSet::ConditionalAccess => self.conditional_access,
            DataSet::SignIns => self.sign_ins,
            DataSet::TapDetail | DataSet::DirectoryAudit => self.tap_detail,
            DataSet::MethodDetail => self.admin_method_detail || !self.break_glass_upns.is_empty(),
            DataSet::PerUserMfa => self.per_user_mfa != PerUserMfaScope::Off,
            DataSet::Groups => !self.groups.is_empty(),
            _ => true,
        }
    }
}

/// Why Directory.Read.All is recommended, when `granted` lacks it and these options read a
/// premium report: without it Graph may answer a licensed tenant's registration report and
/// sign-ins with an intermittent licence 403 (it cannot read the tenant's licence when not cached;
/// SupportArticles-docs `b2c-or-tenant-premium-license-sign-in-activities.md`), and without it
/// (or Organization.Read.All) `subscribedSkus` cannot confirm the licence.
pub fn licence_advice(granted: &[String], options: &CollectOptions) -> Option<&'static str> {
    let has = |p: &str| granted.iter().any(|g| g.eq_ignore_ascii_case(p));
    let reads_reports = options.reads(DataSet::Registration) || options.reads(DataSet::SignIns);
    if !reads_reports || has("Directory.Read.All") || has("Directory.ReadWrite.All") {
        return None;
    }
    Some(
        if sweeps::SUBSCRIBED_SKUS_PERMISSIONS.iter().any(|p| has(p)) {
            "grant Directory.Read.All: without it Graph may refuse the registration report and sign-ins with an intermittent licence 403 (it cannot read the tenant's P1/P2 licence); each is retried, and a licensed tenant that keeps refusing fails the audit"
        } else {
            "grant Directory.Read.All: without it Graph may refuse the registration report and sign-ins with an intermittent licence 403 (it cannot read the tenant's P1/P2 licence), and mfa-auditor cannot read subscribedSkus to tell that from a tenant without P1/P2, so a persistent refusal is taken as no licence"
        },
    )
}

/// The data sets these options read that `granted` (the token's `roles` claim) cannot feed:
/// `(data set, least-privileged permission to grant, what it disables)`.
pub fn missing_permissions(
    granted: &[String],
    options: &CollectOptions,
) -> Vec<(DataSet, &'static str, &'static str)> {
    PERMISSION_NEEDS
        .iter()
        .filter(|need| options.reads(need.data_set))
        .filter(|need| {
            !need
                .any_of
                .iter()
                .any(|p| granted.iter().any(|g| g.eq_ignore_ascii_case(p)))
        })
        .map(|need| (need.data_set, need.any_of[0], need.disables))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_token_without_auditlog_misses_sign_ins_only_userauthenticationmethod_reads_the_report() {
        let granted = strings(&[
            "User.Read.All",
            "Policy.Read.All",
            "RoleManagement.Read.Directory",
            "UserAuthenticationMethod.Read.All",
        ]);
        let missing = missing_permissions(&granted, &CollectOptions::default());
        let sets: Vec<DataSet> = missing.iter().map(|m| m.0).collect();
        // Smart lockout needs Directory.Read.All; who the policies' groups hold, a group
        // permission.
        assert_eq!(
            sets,
            vec![
                DataSet::SignIns,
                DataSet::DirectorySettings,
                DataSet::PolicyTargets,
                DataSet::DirectoryAudit
            ]
        );
        assert!(missing
            .iter()
            .filter(|m| matches!(m.0, DataSet::SignIns | DataSet::DirectoryAudit))
            .all(|m| m.1 == "AuditLog.Read.All"));
        assert_eq!(missing[1].1, "Directory.Read.All");
        assert_eq!(missing[2].1, "GroupMember.Read.All");
        let granted = strings(&[
            "User.Read.All",
            "Policy.Read.All",
            "RoleManagement.Read.Directory",
        ]);
        let sets: Vec<DataSet> = missing_permissions(&granted, &CollectOptions::default())
            .iter()
            .map(|m| m.0)
            .collect();
        assert!(sets.contains(&DataSet::Registration), "{sets:?}");
    }

    #[test]
    fn conditional_access_needs_policy_read_all_not_the_write_permission() {
        let granted = strings(&["User.Read.All", "Policy.ReadWrite.ConditionalAccess"]);
        let missing = missing_permissions(&granted, &CollectOptions::default());
        assert!(missing
            .iter()
            .any(|m| m.0 == DataSet::ConditionalAccess && m.1 == "Policy.Read.All"));
    }

    #[test]
    fn directory_read_all_is_recommended_for_the_licence() {
        let options = CollectOptions::default();
        let base = strings(&["User.Read.All", "AuditLog.Read.All"]);
        let advice = licence_advice(&base, &options).expect("advice without Directory.Read.All");
        assert!(advice.contains("Directory.Read.All") && advice.contains("subscribedSkus"));
        let mut with_org = base.clone();
        with_org.push("Organization.Read.All".into());
        let advice = licence_advice(&with_org, &options).expect("still advised");
        assert!(!advice.contains("subscribedSkus"), "{advice}");
        let mut with_dir = base;
        with_dir.push("Directory.Read.All".into());
        assert_eq!(licence_advice(&with_dir, &options), None);
    }

    #[test]
    fn disabled_sweeps_need_nothing() {
        let granted: Vec<String> = vec![
            "Directory.Read.All".into(),
            "AuditLog.Read.All".into(),
            "Policy.Read.All".into(),
        ];
        let options = CollectOptions {
            sign_ins: false,
            tap_detail: false,
            admin_method_detail: false,
            ..Default::default()
        };
        let missing = missing_permissions(&granted, &options);
        // Directory.Read.All does not grant PIM eligibility: that is the one left.
        let sets: Vec<DataSet> = missing.iter().map(|m| m.0).collect();
        assert_eq!(sets, vec![DataSet::RoleEligibility], "{missing:?}");
        assert_eq!(missing[0].1, "RoleEligibilitySchedule.Read.Directory");
    }
}
