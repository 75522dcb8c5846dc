//! `[scope]`: which users the user rules judge. Users left out are counted by reason, never
//! forgotten; break-glass accounts are always out of the user rules (their own rules judge them).

use regex::Regex;
use serde::Deserialize;

use super::Scope;
use crate::snapshot::{Snapshot, User, UserType};

/// Built-in UPN patterns, each switchable.
pub const PRESET_GUESTS: &str = r"(?i)#EXT#@";
pub const PRESET_PACKAGE: &str = r"(?i)^package_[0-9a-f-]+@";
pub const PRESET_SYNC: &str = r"(?i)^(Sync_|ADToAADSyncServiceAccount|AAD_)";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserTypeSetting {
    Member,
    Guest,
}

/// The `[scope]` section as written.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ScopeConfig {
    /// User types judged: `member`, `guest`.
    pub user_types: Vec<UserTypeSetting>,
    /// Judge disabled accounts too.
    pub include_disabled: bool,
    /// Leave out `#EXT#` guest accounts (B2B invitations).
    pub exclude_external: bool,
    /// Leave out `package_…` bulk-enrolment accounts.
    pub exclude_package_accounts: bool,
    /// Leave out directory-sync service accounts (`Sync_…`, `ADToAADSyncServiceAccount`).
    pub exclude_sync_accounts: bool,
    /// Only UPNs matching one of these regexes are judged (empty: all).
    pub include_upn_patterns: Vec<String>,
    /// UPNs matching any of these regexes are left out.
    pub exclude_upn_patterns: Vec<String>,
    /// Only (transitive) members of one of these groups (object ids) are judged (empty: all).
    pub include_groups: Vec<String>,
    /// Members of any of these groups (object ids) are left out.
    pub exclude_groups: Vec<String>,
}

impl Default for ScopeConfig {
    fn default() -> Self {
        ScopeConfig {
            user_types: vec![UserTypeSetting::Member],
            include_disabled: false,
            exclude_external: true,
            exclude_package_accounts: true,
            exclude_sync_accounts: true,
            include_upn_patterns: Vec::new(),
            exclude_upn_patterns: Vec::new(),
            include_groups: Vec::new(),
            exclude_groups: Vec::new(),
        }
    }
}

/// A compiled scope.
#[derive(Clone, Debug)]
pub struct UserScope {
    config: ScopeConfig,
    include: Vec<Regex>,
    exclude: Vec<Regex>,
    presets: Vec<(&'static str, Regex)>,
}

impl UserScope {
    /// Compiles the patterns; an invalid one is reported as (key, index, error).
    pub fn new(config: &ScopeConfig) -> Result<UserScope, (&'static str, usize, String)> {
        let compile = |key: &'static str,
                       list: &[String]|
         -> Result<Vec<Regex>, (&'static str, usize, String)> {
            list.iter()
                .enumerate()
                .map(|(i, p)| Regex::new(p).map_err(|e| (key, i, e.to_string())))
                .collect()
        };
        let include = compile("include_upn_patterns", &config.include_upn_patterns)?;
        let exclude = compile("exclude_upn_patterns", &config.exclude_upn_patterns)?;
        let mut presets = Vec::new();
        for (on, reason, pattern) in [
            (config.exclude_external, "external (#EXT#)", PRESET_GUESTS),
            (
                config.exclude_package_accounts,
                "package account",
                PRESET_PACKAGE,
            ),
            (
                config.exclude_sync_accounts,
                "directory-sync account",
                PRESET_SYNC,
            ),
        ] {
            if on {
                presets.push((
                    reason,
                    Regex::new(pattern).map_err(|e| ("preset", 0, e.to_string()))?,
                ));
            }
        }
        Ok(UserScope {
            config: config.clone(),
            include,
            exclude,
            presets,
        })
    }
}

impl Scope for UserScope {
    fn needs_groups(&self) -> bool {
        !self.config.include_groups.is_empty() || !self.config.exclude_groups.is_empty()
    }

    fn exclusion(&self, u: &User, snapshot: &Snapshot) -> Option<&'static str> {
        if !u.account_enabled && !self.config.include_disabled {
            return Some("disabled");
        }
        let wanted = match u.user_type {
            UserType::Member => self.config.user_types.contains(&UserTypeSetting::Member),
            UserType::Guest => self.config.user_types.contains(&UserTypeSetting::Guest),
            UserType::Unknown => true,
        };
        if !wanted {
            return Some(if u.user_type == UserType::Guest {
                "guest"
            } else {
                "member"
            });
        }
        if let Some((reason, _)) = self.presets.iter().find(|(_, re)| re.is_match(&u.upn)) {
            return Some(reason);
        }
        if !self.include.is_empty() && !self.include.iter().any(|re| re.is_match(&u.upn)) {
            return Some("not matched by include_upn_patterns");
        }
        if self.exclude.iter().any(|re| re.is_match(&u.upn)) {
            return Some("matched by exclude_upn_patterns");
        }
        let member = |g: &String| snapshot.is_member(g, u.id).unwrap_or(false);
        if !self.config.include_groups.is_empty() && !self.config.include_groups.iter().any(member)
        {
            return Some("not in include_groups");
        }
        if self.config.exclude_groups.iter().any(member) {
            return Some("in exclude_groups");
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::ObjectId;

    fn user(upn: &str) -> User {
        User::new(ObjectId(1), upn)
    }

    fn empty() -> Snapshot {
        Snapshot::empty("t", chrono::Utc::now())
    }

    #[test]
    fn groups_include_and_exclude_transitive_members() {
        let staff = "9a0c0000-0000-4000-8000-000000000001";
        let pilot = "9a0c0000-0000-4000-8000-000000000003";
        let scope = UserScope::new(&ScopeConfig {
            include_groups: vec![staff.into()],
            exclude_groups: vec![pilot.into()],
            ..ScopeConfig::default()
        })
        .expect("valid");
        let mut snap = empty();
        snap.groups
            .insert(staff.into(), vec![ObjectId(1), ObjectId(2)]);
        snap.groups.insert(pilot.into(), vec![ObjectId(2)]);
        let mut a = user("a@contoso.com");
        a.id = ObjectId(1);
        let mut b = user("b@contoso.com");
        b.id = ObjectId(2);
        let mut c = user("c@contoso.com");
        c.id = ObjectId(3);
        assert_eq!(scope.exclusion(&a, &snap), None);
        assert_eq!(scope.exclusion(&b, &snap), Some("in exclude_groups"));
        assert_eq!(scope.exclusion(&c, &snap), Some("not in include_groups"));
        assert!(scope.needs_groups());
    }

    #[test]
    fn presets_leave_out_service_and_external_accounts() {
        let scope = UserScope::new(&ScopeConfig::default()).expect("valid");
        assert_eq!(
            scope.exclusion(
                &user("ann_fabrikam.com#EXT#@contoso.onmicrosoft.com"),
                &empty()
            ),
            Some("external (#EXT#)")
        );
        assert_eq!(
            scope.exclusion(&user("package_0a1b2c3d@contoso.com"), &empty()),
            Some("package account")
        );
        assert_eq!(
            scope.exclusion(&user("Sync_DC01_1234abcd@contoso.com"), &empty()),
            Some("directory-sync account")
        );
        assert_eq!(scope.exclusion(&user("ann@contoso.com"), &empty()), None);
        let all = UserScope::new(&ScopeConfig {
            exclude_external: false,
            exclude_package_accounts: false,
            exclude_sync_accounts: false,
            ..ScopeConfig::default()
        })
        .expect("valid");
        assert_eq!(
            all.exclusion(&user("package_0a1b2c3d@contoso.com"), &empty()),
            None
        );
    }

    #[test]
    fn types_state_and_patterns() {
        let scope = UserScope::new(&ScopeConfig {
            include_upn_patterns: vec!["@contoso\\.com$".into()],
            exclude_upn_patterns: vec!["^svc-".into()],
            ..ScopeConfig::default()
        })
        .expect("valid");
        let mut guest = user("g@contoso.com");
        guest.user_type = UserType::Guest;
        assert_eq!(scope.exclusion(&guest, &empty()), Some("guest"));
        let mut off = user("o@contoso.com");
        off.account_enabled = false;
        assert_eq!(scope.exclusion(&off, &empty()), Some("disabled"));
        assert_eq!(
            scope.exclusion(&user("a@fabrikam.com"), &empty()),
            Some("not matched by include_upn_patterns")
        );
        assert_eq!(
            scope.exclusion(&user("svc-backup@contoso.com"), &empty()),
            Some("matched by exclude_upn_patterns")
        );
        assert_eq!(scope.exclusion(&user("ann@contoso.com"), &empty()), None);
    }

    #[test]
    fn a_bad_pattern_names_its_list_and_index() {
        let e = UserScope::new(&ScopeConfig {
            exclude_upn_patterns: vec!["ok".into(), "(unclosed".into()],
            ..ScopeConfig::default()
        })
        .expect_err("invalid");
        assert_eq!((e.0, e.1), ("exclude_upn_patterns", 1));
    }
}
