//! Each user's posture, compact, and what changed between audits (for a user's page, user
//! search and per-user drift).
//!
//! `users` holds one row per (tenant, user): the posture a complete audit saw, as small integers
//! and bit sets, with a stable 64-bit `digest` of it. Recording an audit's users streams the
//! stored `(id, digest)` in id order beside the audit's users sorted by id (a merge join: no map
//! of a million rows), then writes only the users that are new, changed or back, and marks those
//! gone as deleted. `user_changes` gets one row per user whose methods (both audits knowing them)
//! or roles changed: the methods before and after and the recovery families lost and gained.
//!
//! UPN and display name compare case-insensitively for ASCII (`COLLATE NOCASE`, SQLite's
//! folding); a prefix search is one range of their index.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::*;
use crate::snapshot::{
    DefaultMethod, MethodKind, MethodSet, ObjectId, PerUserMfa, RecoveryFamily, Role, RoleSet,
    User, UserType, METHOD_TABLE,
};

/// What recording one audit's users wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UserChanges {
    /// Rows written (new, changed and back); unchanged users are not written.
    pub written: usize,
    /// Users never seen before.
    pub new: usize,
    /// Users whose posture changed (a returning user counts here too).
    pub changed: usize,
    /// Users marked deleted by this audit (gone from its user list).
    pub deleted: usize,
    /// Users marked deleted before and listed again.
    pub returned: usize,
    /// Users whose methods changed, both audits knowing them (a `user_changes` row each).
    pub method_changes: usize,
    /// `user_changes` rows written (methods or roles changed).
    pub drift_rows: usize,
}

/// One method of a user, classified (DESIGN §3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredMethod {
    pub name: &'static str,
    pub description: &'static str,
    pub mfa_capable: bool,
    pub phishing_resistant: bool,
    pub family: &'static str,
}

/// A user's Temporary Access Pass as last seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredTap {
    pub start: Option<DateTime<Utc>>,
    pub lifetime_minutes: u32,
    pub usable_once: bool,
    pub usable: bool,
    pub usability_reason: String,
}

/// A user's posture as the last complete audit that changed it saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredUser {
    pub id: String,
    pub user_principal_name: String,
    pub display_name: String,
    /// `member`, `guest` or `unknown`.
    pub user_type: &'static str,
    pub account_enabled: bool,
    pub on_premises_sync: bool,
    pub is_admin: bool,
    /// `None`: no source listed the user's methods (unknown, not "none").
    pub methods: Option<Vec<StoredMethod>>,
    /// The distinct recovery families of the MFA-capable methods (`None` when methods are unknown).
    pub mfa_families: Option<Vec<&'static str>>,
    pub phishing_resistant: Option<bool>,
    /// Methods the user had that the classification table does not know.
    pub unknown_methods: u8,
    /// Graph's `userPreferredMethodForSecondaryAuthentication` value.
    pub default_method: Option<&'static str>,
    pub system_preferred_mfa: Option<bool>,
    pub mfa_capable: Option<bool>,
    /// Active tracked roles (display names).
    pub roles: Vec<&'static str>,
    /// Tracked roles eligible through PIM and not active.
    pub eligible_roles: Vec<&'static str>,
    pub tap: Option<StoredTap>,
    /// `disabled`, `enabled`, `enforced` or `unknown`; `None` when not read for this user.
    pub per_user_mfa: Option<&'static str>,
    /// Failed MFA sign-ins in the audit's window; `None` when sign-ins were not read.
    pub mfa_failures: Option<u32>,
    pub first_seen: DateTime<Utc>,
    pub changed_at: DateTime<Utc>,
    /// The last audit that changed this row.
    pub audit_id: i64,
    /// When a complete audit no longer listed the user.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// One user's methods or roles changing between two audits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserChange {
    pub user_id: String,
    pub audit_id: i64,
    pub at: DateTime<Utc>,
    /// Method names before and after; `None` when an audit did not know them.
    pub methods_before: Option<Vec<&'static str>>,
    pub methods_after: Option<Vec<&'static str>>,
    /// Recovery families of MFA-capable methods the user lost / gained.
    pub families_lost: Vec<&'static str>,
    pub families_gained: Vec<&'static str>,
    /// The user's MFA-capable families after the change.
    pub mfa_families_after: Option<usize>,
    pub roles_before: Vec<&'static str>,
    pub roles_after: Vec<&'static str>,
    pub eligible_before: Vec<&'static str>,
    pub eligible_after: Vec<&'static str>,
}

fn method_bits(set: MethodSet) -> i64 {
    set.iter().fold(0, |b, k| b | 1 << k as u32)
}

fn method_set(bits: i64) -> MethodSet {
    MethodKind::ALL
        .into_iter()
        .filter(|k| bits & (1 << *k as u32) != 0)
        .collect()
}

fn role_bits(set: RoleSet) -> i64 {
    set.iter().fold(0, |b, r| b | 1 << r as u32)
}

fn role_names(bits: i64) -> Vec<&'static str> {
    crate::snapshot::ROLE_TABLE
        .iter()
        .filter(|(r, _, _)| bits & (1 << *r as u32) != 0)
        .map(|(r, _, _)| Role::display_name(*r))
        .collect()
}

/// The recovery families of the MFA-capable methods in `methods`, as bits of `RecoveryFamily`.
fn family_bits(methods: i64) -> i64 {
    method_set(methods)
        .mfa_capable()
        .iter()
        .fold(0, |b, k| b | 1 << k.family() as u32)
}

fn family_names(bits: i64) -> Vec<&'static str> {
    let mut names: Vec<(u32, &'static str)> = METHOD_TABLE
        .iter()
        .map(|row| (row.family as u32, row.family.as_str()))
        .filter(|(b, _)| bits & (1 << b) != 0)
        .collect();
    names.sort();
    names.dedup();
    names.into_iter().map(|(_, n)| n).collect()
}

fn method_names(bits: i64) -> Vec<&'static str> {
    method_set(bits).iter().map(MethodKind::name).collect()
}

fn family_of(f: RecoveryFamily) -> &'static str {
    f.as_str()
}

const USER_TYPES: [(UserType, &str); 3] = [
    (UserType::Member, "member"),
    (UserType::Guest, "guest"),
    (UserType::Unknown, "unknown"),
];

/// Graph's `userPreferredMethodForSecondaryAuthentication` strings, in code order.
const DEFAULT_METHODS: [(DefaultMethod, &str); 8] = [
    (DefaultMethod::Push, "push"),
    (DefaultMethod::Oath, "oath"),
    (DefaultMethod::VoiceMobile, "voiceMobile"),
    (DefaultMethod::VoiceAlternateMobile, "voiceAlternateMobile"),
    (DefaultMethod::VoiceOffice, "voiceOffice"),
    (DefaultMethod::Sms, "sms"),
    (DefaultMethod::None, "none"),
    (DefaultMethod::Unknown, "unknown"),
];

const PER_USER_MFA: [(PerUserMfa, &str); 4] = [
    (PerUserMfa::Disabled, "disabled"),
    (PerUserMfa::Enabled, "enabled"),
    (PerUserMfa::Enforced, "enforced"),
    (PerUserMfa::Unknown, "unknown"),
];

fn code_of<T: PartialEq + Copy>(table: &[(T, &str)], v: T) -> i64 {
    table.iter().position(|(t, _)| *t == v).unwrap_or(0) as i64
}

fn name_of<T>(table: &[(T, &'static str)], code: i64) -> &'static str {
    usize::try_from(code)
        .ok()
        .and_then(|i| table.get(i))
        .map_or("unknown", |(_, n)| n)
}

const TAP_ONCE: i64 = 1;
const TAP_USABLE: i64 = 2;

/// One user's row, encoded: what is stored and what the digest covers.
struct Posture<'a> {
    upn: &'a str,
    display_name: &'a str,
    user_type: i64,
    enabled: bool,
    on_premises_sync: bool,
    is_admin: bool,
    methods: Option<i64>,
    unknown_methods: i64,
    default_method: Option<i64>,
    system_preferred: Option<bool>,
    mfa_capable: Option<bool>,
    roles: i64,
    eligible_roles: i64,
    tap_lifetime: Option<i64>,
    tap_start: Option<i64>,
    tap_flags: Option<i64>,
    tap_reason: Option<&'a str>,
    per_user_mfa: Option<i64>,
    mfa_failures: Option<i64>,
}

impl<'a> Posture<'a> {
    fn of(u: &'a User) -> Posture<'a> {
        Posture {
            upn: &u.upn,
            display_name: &u.display_name,
            user_type: code_of(&USER_TYPES, u.user_type),
            enabled: u.account_enabled,
            on_premises_sync: u.on_premises_sync,
            is_admin: u.is_admin,
            methods: u.methods.map(method_bits),
            unknown_methods: i64::from(u.unknown_methods),
            default_method: u.default_method.map(|d| code_of(&DEFAULT_METHODS, d)),
            system_preferred: u.system_preferred_mfa,
            mfa_capable: u.mfa_capable,
            roles: role_bits(u.roles),
            eligible_roles: role_bits(u.eligible_roles),
            tap_lifetime: u.tap.as_ref().map(|t| i64::from(t.lifetime_minutes)),
            tap_start: u.tap.as_ref().and_then(|t| t.start).map(|s| s.timestamp()),
            tap_flags: u.tap.as_ref().map(|t| {
                (if t.usable_once { TAP_ONCE } else { 0 }) | (if t.usable { TAP_USABLE } else { 0 })
            }),
            tap_reason: u.tap.as_ref().map(|t| &*t.usability_reason),
            per_user_mfa: u.per_user_mfa.map(|p| code_of(&PER_USER_MFA, p)),
            mfa_failures: u.mfa_failures.map(i64::from),
        }
    }

    /// A stable 64-bit hash of every stored column (SHA-256, first 8 bytes): the same posture
    /// gives the same digest in every build, so an unchanged user is never rewritten.
    fn digest(&self, buf: &mut Vec<u8>) -> i64 {
        fn text(buf: &mut Vec<u8>, s: &str) {
            buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
            buf.extend_from_slice(s.as_bytes());
        }
        fn int(buf: &mut Vec<u8>, v: Option<i64>) {
            match v {
                None => buf.push(0),
                Some(v) => {
                    buf.push(1);
                    buf.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        let flag = |b: Option<bool>| b.map(i64::from);
        buf.clear();
        buf.push(1); // encoding version
        text(buf, self.upn);
        text(buf, self.display_name);
        for v in [
            Some(self.user_type),
            flag(Some(self.enabled)),
            flag(Some(self.on_premises_sync)),
            flag(Some(self.is_admin)),
            self.methods,
            Some(self.unknown_methods),
            self.default_method,
            flag(self.system_preferred),
            flag(self.mfa_capable),
            Some(self.roles),
            Some(self.eligible_roles),
            self.tap_lifetime,
            self.tap_start,
            self.tap_flags,
            self.per_user_mfa,
            self.mfa_failures,
        ] {
            int(buf, v);
        }
        match self.tap_reason {
            None => buf.push(0),
            Some(r) => {
                buf.push(1);
                text(buf, r);
            }
        }
        let hash = Sha256::digest(&buf[..]);
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash[..8]);
        i64::from_le_bytes(first)
    }
}

fn id_bytes(id: ObjectId) -> [u8; 16] {
    id.0.to_be_bytes()
}

fn id_of_blob(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<[u8; 16]> {
    let blob = r.get_ref(i)?.as_blob()?;
    <[u8; 16]>::try_from(blob).map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Blob,
            format!("users: a user id of {} bytes, not 16", blob.len()).into(),
        )
    })
}

fn time_of(secs: i64) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::from_timestamp(secs, 0).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Integer,
            format!("users: time {secs} is out of range").into(),
        )
    })
}

/// The tenant's small key in the user tables, created when `create`.
fn tenant_key(conn: &Connection, tenant: &str, create: bool) -> Result<Option<i64>, StateError> {
    if create {
        conn.execute(
            "INSERT OR IGNORE INTO user_tenants (tenant) VALUES (?1)",
            [tenant],
        )?;
    }
    Ok(conn
        .query_row(
            "SELECT tk FROM user_tenants WHERE tenant = ?1",
            [tenant],
            |r| r.get(0),
        )
        .optional()?)
}

/// New users from which recording rebuilds the name indexes rather than inserting into them.
const BULK_NEW_USERS: usize = 50_000;

/// The name indexes, as the migration creates them (keep the two in step).
const NAME_INDEXES: &str = "CREATE INDEX users_upn ON users (tk, upn);
CREATE INDEX users_name ON users (tk, display_name);";

/// What the store had for a user that changed.
struct Prior {
    methods: Option<i64>,
    roles: i64,
    eligible: i64,
    deleted: bool,
}

/// Records one complete audit's users in `tx`: writes only users that are new, changed or back,
/// marks users the audit no longer lists as deleted, and logs methods/role changes in
/// `user_changes`. Memory beyond the users themselves: 4 bytes a user (an index sorted by id)
/// and a few bytes per written or deleted user. Call it only for complete audits that read the
/// users and their methods: a user missing from `users` is taken as deleted.
pub(crate) fn record_users_tx(
    tx: &Transaction<'_>,
    tenant: &str,
    audit_id: i64,
    at: DateTime<Utc>,
    users: &[User],
) -> Result<UserChanges, StateError> {
    record_users_bulk(tx, tenant, audit_id, at, users, BULK_NEW_USERS)
}

/// [`record_users_tx`], rebuilding the name indexes from `bulk` new users on.
fn record_users_bulk(
    tx: &Transaction<'_>,
    tenant: &str,
    audit_id: i64,
    at: DateTime<Utc>,
    users: &[User],
    bulk: usize,
) -> Result<UserChanges, StateError> {
    let tk = tenant_key(tx, tenant, true)?
        .ok_or_else(|| StateError::Sql(rusqlite::Error::QueryReturnedNoRows))?;
    let mut order: Vec<u32> = (0..users.len() as u32).collect();
    // Snapshots are sorted by id already: this is then one linear pass.
    order.sort_unstable_by_key(|&i| users[i as usize].id);
    order.dedup_by_key(|i| users[*i as usize].id);

    // Pass one: merge the stored (id, digest) with the audit's users, both in id order. Nothing
    // is written while the cursor is open.
    // Positions to write, in id order (4 bytes each: every user on a first audit), and what
    // the store had for those that changed (few), in the same order.
    let mut writes: Vec<u32> = Vec::new();
    let mut priors: Vec<(u32, Prior)> = Vec::new();
    let mut gone: Vec<[u8; 16]> = Vec::new();
    let mut buf = Vec::with_capacity(256);
    {
        let mut q = tx.prepare(
            "SELECT id, digest, deleted_at IS NOT NULL, methods, roles, eligible_roles
             FROM users WHERE tk = ?1 ORDER BY id",
        )?;
        let mut rows = q.query([tk])?;
        let mut next = order.iter().copied().peekable();
        while let Some(r) = rows.next()? {
            let stored = u128::from_be_bytes(id_of_blob(r, 0)?);
            while let Some(&i) = next.peek() {
                if users[i as usize].id.0 >= stored {
                    break;
                }
                writes.push(i);
                next.next();
            }
            match next.peek() {
                Some(&i) if users[i as usize].id.0 == stored => {
                    next.next();
                    let d = Posture::of(&users[i as usize]).digest(&mut buf);
                    let deleted: bool = r.get(2)?;
                    if deleted || d != r.get::<_, i64>(1)? {
                        writes.push(i);
                        priors.push((
                            i,
                            Prior {
                                methods: r.get(3)?,
                                roles: r.get(4)?,
                                eligible: r.get(5)?,
                                deleted,
                            },
                        ));
                    }
                }
                _ => {
                    if !r.get::<_, bool>(2)? {
                        gone.push(stored.to_be_bytes());
                    }
                }
            }
        }
        writes.extend(next);
    }
    drop(order);

    // Pass two: write. Many new users (a first audit) would go into the name indexes in random
    // order, one cache miss each (47 s at 1,000,000 users): drop them and build them again by
    // sorting, once the rows are in.
    // Only when no other tenant has users: a rebuild sorts every tenant's rows.
    let rebuild = writes.len() - priors.len() >= bulk
        && !tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM users WHERE tk != ?1)",
            [tk],
            |r| r.get::<_, bool>(0),
        )?;
    if rebuild {
        tx.execute_batch("DROP INDEX users_upn; DROP INDEX users_name;")?;
    }
    let now = at.timestamp();
    let mut out = UserChanges::default();
    let mut upsert = tx.prepare_cached(
        "INSERT INTO users (tk, id, upn, display_name, user_type, enabled, on_premises_sync, is_admin,
            methods, unknown_methods, default_method, system_preferred, mfa_capable, roles, eligible_roles,
            tap_lifetime, tap_start, tap_flags, tap_reason, per_user_mfa, mfa_failures,
            digest, first_seen, changed_at, audit_id, deleted_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
            ?20, ?21, ?22, ?23, ?23, ?24, NULL)
         ON CONFLICT (tk, id) DO UPDATE SET
            upn = excluded.upn, display_name = excluded.display_name, user_type = excluded.user_type,
            enabled = excluded.enabled, on_premises_sync = excluded.on_premises_sync,
            is_admin = excluded.is_admin, methods = excluded.methods,
            unknown_methods = excluded.unknown_methods, default_method = excluded.default_method,
            system_preferred = excluded.system_preferred, mfa_capable = excluded.mfa_capable,
            roles = excluded.roles, eligible_roles = excluded.eligible_roles,
            tap_lifetime = excluded.tap_lifetime, tap_start = excluded.tap_start,
            tap_flags = excluded.tap_flags, tap_reason = excluded.tap_reason,
            per_user_mfa = excluded.per_user_mfa, mfa_failures = excluded.mfa_failures,
            digest = excluded.digest, changed_at = excluded.changed_at,
            audit_id = excluded.audit_id, deleted_at = NULL",
    )?;
    let mut drift = tx.prepare_cached(
        "INSERT INTO user_changes (tk, user_id, audit_id, at, methods_before, methods_after,
            families_lost, families_gained, roles_before, roles_after, eligible_before, eligible_after)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    let mut priors = priors.into_iter().peekable();
    for &i in &writes {
        let user = &users[i as usize];
        let p = Posture::of(user);
        let digest = p.digest(&mut buf);
        let prior = priors.next_if(|(at, _)| *at == i).map(|(_, prior)| prior);
        let id = id_bytes(user.id);
        upsert.execute(params![
            tk,
            &id[..],
            p.upn,
            p.display_name,
            p.user_type,
            p.enabled,
            p.on_premises_sync,
            p.is_admin,
            p.methods,
            p.unknown_methods,
            p.default_method,
            p.system_preferred,
            p.mfa_capable,
            p.roles,
            p.eligible_roles,
            p.tap_lifetime,
            p.tap_start,
            p.tap_flags,
            p.tap_reason,
            p.per_user_mfa,
            p.mfa_failures,
            digest,
            now,
            audit_id,
        ])?;
        out.written += 1;
        let Some(prior) = prior else {
            out.new += 1;
            continue;
        };
        out.changed += 1;
        if prior.deleted {
            out.returned += 1;
        }
        // From or to unknown methods is no drift: the audit did not see them.
        let methods_changed = matches!((prior.methods, p.methods), (Some(b), Some(a)) if a != b);
        let roles_changed = prior.roles != p.roles || prior.eligible != p.eligible_roles;
        if !methods_changed && !roles_changed {
            continue;
        }
        let (lost, gained) = match (prior.methods, p.methods) {
            (Some(b), Some(a)) => {
                let (b, a) = (family_bits(b), family_bits(a));
                (b & !a, a & !b)
            }
            _ => (0, 0),
        };
        drift.execute(params![
            tk,
            &id[..],
            audit_id,
            now,
            prior.methods,
            p.methods,
            lost,
            gained,
            prior.roles,
            p.roles,
            prior.eligible,
            p.eligible_roles,
        ])?;
        out.drift_rows += 1;
        if methods_changed {
            out.method_changes += 1;
        }
    }
    let mut delete = tx.prepare_cached(
        "UPDATE users SET deleted_at = ?3, changed_at = ?3, audit_id = ?4 WHERE tk = ?1 AND id = ?2",
    )?;
    for id in &gone {
        out.deleted += delete.execute(params![tk, &id[..], now, audit_id])?;
    }
    if rebuild {
        tx.execute_batch(NAME_INDEXES)?;
    }
    Ok(out)
}

/// Drops what `prune` no longer keeps: drift older than the oldest kept audit, and users deleted
/// before it.
pub(super) fn prune_users_tx(
    tx: &Transaction<'_>,
    tenant: &str,
    oldest_kept: i64,
    oldest_time: DateTime<Utc>,
) -> Result<(), StateError> {
    let Some(tk) = tenant_key(tx, tenant, false)? else {
        return Ok(());
    };
    tx.execute(
        "DELETE FROM user_changes WHERE tk = ?1 AND audit_id < ?2",
        params![tk, oldest_kept],
    )?;
    tx.execute(
        "DELETE FROM users WHERE tk = ?1 AND deleted_at IS NOT NULL AND deleted_at < ?2",
        params![tk, oldest_time.timestamp()],
    )?;
    Ok(())
}

const USER_COLUMNS: &str = "id, upn, display_name, user_type, enabled, on_premises_sync, is_admin,
    methods, unknown_methods, default_method, system_preferred, mfa_capable, roles, eligible_roles,
    tap_lifetime, tap_start, tap_flags, tap_reason, per_user_mfa, mfa_failures,
    first_seen, changed_at, audit_id, deleted_at";

fn stored_user(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredUser> {
    let methods: Option<i64> = r.get(7)?;
    let tap = match r.get::<_, Option<i64>>(14)? {
        None => None,
        Some(lifetime) => {
            let flags: i64 = r.get::<_, Option<i64>>(16)?.unwrap_or(0);
            Some(StoredTap {
                start: r.get::<_, Option<i64>>(15)?.map(time_of).transpose()?,
                lifetime_minutes: u32::try_from(lifetime).unwrap_or(0),
                usable_once: flags & TAP_ONCE != 0,
                usable: flags & TAP_USABLE != 0,
                usability_reason: r.get::<_, Option<String>>(17)?.unwrap_or_default(),
            })
        }
    };
    Ok(StoredUser {
        id: ObjectId(u128::from_be_bytes(id_of_blob(r, 0)?)).to_string(),
        user_principal_name: r.get(1)?,
        display_name: r.get(2)?,
        user_type: name_of(&USER_TYPES, r.get(3)?),
        account_enabled: r.get(4)?,
        on_premises_sync: r.get(5)?,
        is_admin: r.get(6)?,
        methods: methods.map(|bits| {
            method_set(bits)
                .iter()
                .map(|k| {
                    let info = k.info();
                    StoredMethod {
                        name: info.name,
                        description: info.description,
                        mfa_capable: info.mfa_capable,
                        phishing_resistant: info.phishing_resistant,
                        family: family_of(info.family),
                    }
                })
                .collect()
        }),
        mfa_families: methods.map(|bits| family_names(family_bits(bits))),
        phishing_resistant: methods.map(|bits| method_set(bits).has_phishing_resistant()),
        unknown_methods: u8::try_from(r.get::<_, i64>(8)?).unwrap_or(u8::MAX),
        default_method: r
            .get::<_, Option<i64>>(9)?
            .map(|c| name_of(&DEFAULT_METHODS, c)),
        system_preferred_mfa: r.get(10)?,
        mfa_capable: r.get(11)?,
        roles: role_names(r.get(12)?),
        eligible_roles: role_names(r.get(13)?),
        tap,
        per_user_mfa: r
            .get::<_, Option<i64>>(18)?
            .map(|c| name_of(&PER_USER_MFA, c)),
        mfa_failures: r
            .get::<_, Option<i64>>(19)?
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        first_seen: time_of(r.get(20)?)?,
        changed_at: time_of(r.get(21)?)?,
        audit_id: r.get(22)?,
        deleted_at: r.get::<_, Option<i64>>(23)?.map(time_of).transpose()?,
    })
}

fn user_change(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserChange> {
    let before: Option<i64> = r.get(3)?;
    let after: Option<i64> = r.get(4)?;
    Ok(UserChange {
        user_id: ObjectId(u128::from_be_bytes(id_of_blob(r, 0)?)).to_string(),
        audit_id: r.get(1)?,
        at: time_of(r.get(2)?)?,
        methods_before: before.map(method_names),
        methods_after: after.map(method_names),
        families_lost: family_names(r.get(5)?),
        families_gained: family_names(r.get(6)?),
        mfa_families_after: after.map(|a| family_bits(a).count_ones() as usize),
        roles_before: role_names(r.get(7)?),
        roles_after: role_names(r.get(8)?),
        eligible_before: role_names(r.get(9)?),
        eligible_after: role_names(r.get(10)?),
    })
}

const CHANGE_COLUMNS: &str = "user_id, audit_id, at, methods_before, methods_after, families_lost,
    families_gained, roles_before, roles_after, eligible_before, eligible_after";

/// The exclusive upper bound of a prefix range under `COLLATE NOCASE`: every string that starts
/// with `prefix` sorts below it (U+10FFFF is the greatest code point).
fn prefix_end(prefix: &str) -> String {
    let mut end = String::with_capacity(prefix.len() + 4);
    end.push_str(prefix);
    end.push(char::MAX);
    end
}

impl Store {
    /// [`record_users_tx`] in its own transaction (tests, benchmarks).
    pub fn record_users(
        &self,
        tenant: &str,
        audit_id: i64,
        at: DateTime<Utc>,
        users: &[User],
    ) -> Result<UserChanges, StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let changes = record_users_tx(&tx, tenant, audit_id, at, users)?;
        tx.commit()?;
        Ok(changes)
    }

    /// One user by object id or by UPN (case-insensitive); a deleted user is returned with its
    /// `deleted_at`, after a live one holding the same UPN.
    pub fn user(&self, tenant: &str, key: &str) -> Result<Option<StoredUser>, StateError> {
        let conn = self.reader()?;
        let Some(tk) = tenant_key(&conn, tenant, false)? else {
            return Ok(None);
        };
        let found = match ObjectId::parse(key) {
            Some(id) => conn
                .prepare_cached(&format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE tk = ?1 AND id = ?2"
                ))?
                .query_row(params![tk, &id_bytes(id)[..]], stored_user)
                .optional()?,
            None => conn
                .prepare_cached(&format!(
                    "SELECT {USER_COLUMNS} FROM users INDEXED BY users_upn WHERE tk = ?1 AND upn = ?2
                     ORDER BY deleted_at IS NOT NULL, changed_at DESC LIMIT 1"
                ))?
                .query_row(params![tk, key], stored_user)
                .optional()?,
        };
        Ok(found)
    }

    /// Users (not deleted) whose UPN or display name starts with `prefix` (ASCII
    /// case-insensitive), ordered by UPN, at most `limit`. Each side is one index range.
    pub fn search_users(
        &self,
        tenant: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<StoredUser>, StateError> {
        let conn = self.reader()?;
        let Some(tk) = tenant_key(&conn, tenant, false)? else {
            return Ok(Vec::new());
        };
        let end = prefix_end(prefix);
        let mut found: Vec<StoredUser> = Vec::new();
        for column in ["upn", "display_name"] {
            let mut q = conn.prepare_cached(&search_sql(column))?;
            let rows = q.query_map(params![tk, prefix, end, limit as i64], stored_user)?;
            for u in rows {
                found.push(u?);
            }
        }
        found.sort_by(|a, b| {
            a.user_principal_name
                .to_ascii_lowercase()
                .cmp(&b.user_principal_name.to_ascii_lowercase())
                .then_with(|| a.id.cmp(&b.id))
        });
        found.dedup_by(|a, b| a.id == b.id);
        found.truncate(limit);
        Ok(found)
    }

    /// Enabled users (not deleted) holding, active, one of `roles`: e.g. the admins who can reset
    /// a user's MFA and issue a TAP. Ordered by UPN, at most `limit`. One range of the partial
    /// index `users_admins` (users holding any tracked role), not a scan of every user.
    pub fn users_with_active_roles(
        &self,
        tenant: &str,
        roles: &[Role],
        limit: usize,
    ) -> Result<Vec<StoredUser>, StateError> {
        let conn = self.reader()?;
        let Some(tk) = tenant_key(&conn, tenant, false)? else {
            return Ok(Vec::new());
        };
        let mask = roles.iter().fold(0i64, |b, r| b | 1 << *r as u32);
        let mut q = conn.prepare_cached(&admins_sql())?;
        let rows = q.query_map(params![tk, mask, limit as i64], stored_user)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest `limit` changes of one user's methods or roles (by object id), newest first.
    pub fn user_changes(
        &self,
        tenant: &str,
        user_id: &str,
        limit: usize,
    ) -> Result<Vec<UserChange>, StateError> {
        let conn = self.reader()?;
        let (Some(tk), Some(id)) = (tenant_key(&conn, tenant, false)?, ObjectId::parse(user_id))
        else {
            return Ok(Vec::new());
        };
        let mut q = conn.prepare_cached(&format!(
            "SELECT {CHANGE_COLUMNS} FROM user_changes WHERE tk = ?1 AND user_id = ?2
             ORDER BY audit_id DESC, id DESC LIMIT ?3"
        ))?;
        let rows = q.query_map(params![tk, &id_bytes(id)[..], limit as i64], user_change)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The user changes one audit recorded, at most `limit` (per-user drift of that audit).
    pub fn audit_user_changes(
        &self,
        tenant: &str,
        audit_id: i64,
        limit: usize,
    ) -> Result<Vec<UserChange>, StateError> {
        let conn = self.reader()?;
        let Some(tk) = tenant_key(&conn, tenant, false)? else {
            return Ok(Vec::new());
        };
        let mut q = conn.prepare_cached(&format!(
            "SELECT {CHANGE_COLUMNS} FROM user_changes WHERE tk = ?1 AND audit_id = ?2
             ORDER BY id LIMIT ?3"
        ))?;
        let rows = q.query_map(params![tk, audit_id, limit as i64], user_change)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// The admins holding, active, one of the roles of mask `?2`: `roles != 0` and `deleted_at IS
/// NULL` are the partial index's own terms (SQLite uses a partial index only when the query's
/// WHERE names them); `INDEXED BY` as for [`search_sql`].
fn admins_sql() -> String {
    format!(
        "SELECT {USER_COLUMNS} FROM users INDEXED BY users_admins
         WHERE tk = ?1 AND roles != 0 AND deleted_at IS NULL AND roles & ?2 != 0 AND enabled = 1
         ORDER BY upn LIMIT ?3"
    )
}

/// A prefix search on one indexed column: `?2 <= column < ?3` under its NOCASE collation.
/// `INDEXED BY`: without statistics the planner may prefer the primary key (`tk = ?`, every
/// user of the tenant); with it the statement fails to prepare rather than scan.
fn search_sql(column: &str) -> String {
    let index = if column == "upn" {
        "users_upn"
    } else {
        "users_name"
    };
    format!(
        "SELECT {USER_COLUMNS} FROM users INDEXED BY {index} WHERE tk = ?1 AND {column} >= ?2 AND {column} < ?3
         AND deleted_at IS NULL ORDER BY {column} LIMIT ?4"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Tap;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    fn user(n: u128, upn: &str, methods: &[MethodKind]) -> User {
        let mut u = User::new(ObjectId(n), upn);
        u.display_name = format!("User {n}").into();
        u.methods = Some(methods.iter().copied().collect());
        u.mfa_capable = Some(true);
        u
    }

    fn users() -> Vec<User> {
        vec![
            user(
                3,
                "carol@contoso.com",
                &[MethodKind::AuthenticatorPush, MethodKind::MobilePhone],
            ),
            user(1, "ann@contoso.com", &[MethodKind::Fido2SecurityKey]),
            user(2, "bob@contoso.com", &[MethodKind::MobilePhone]),
        ]
    }

    fn row(store: &Store, key: &str) -> StoredUser {
        store
            .user("t1", key)
            .expect("query")
            .unwrap_or_else(|| panic!("user {key} is stored"))
    }

    #[test]
    fn unchanged_users_are_not_rewritten() {
        let store = Store::in_memory().expect("store");
        let first = store
            .record_users("t1", 1, at("2026-11-01T10:00:00Z"), &users())
            .expect("record");
        assert_eq!(first.new, 3);
        assert_eq!(first.written, 3);
        let ann = row(&store, "ann@contoso.com");
        assert_eq!(ann.audit_id, 1);

        let mut next = users();
        next[2].display_name = "Bob Renamed".into();
        let second = store
            .record_users("t1", 2, at("2026-11-01T11:00:00Z"), &next)
            .expect("record");
        assert_eq!(
            second,
            UserChanges {
                written: 1,
                changed: 1,
                ..UserChanges::default()
            }
        );
        let ann2 = row(&store, "ann@contoso.com");
        assert_eq!(ann2.audit_id, 1);
        assert_eq!(ann2.changed_at, at("2026-11-01T10:00:00Z"));
        let bob = row(&store, "bob@contoso.com");
        assert_eq!(bob.audit_id, 2);
        assert_eq!(bob.display_name, "Bob Renamed");
        assert_eq!(bob.first_seen, at("2026-11-01T10:00:00Z"));
        assert_eq!(bob.changed_at, at("2026-11-01T11:00:00Z"));
        // A rename is not drift.
        assert!(store
            .audit_user_changes("t1", 2, 10)
            .expect("changes")
            .is_empty());

        let third = store
            .record_users("t1", 3, at("2026-11-01T12:00:00Z"), &next)
            .expect("record");
        assert_eq!(third, UserChanges::default());
    }

    #[test]
    fn a_removed_method_logs_one_change_naming_the_lost_family() {
        let store = Store::in_memory().expect("store");
        store
            .record_users("t1", 1, at("2026-11-01T10:00:00Z"), &users())
            .expect("record");
        let mut next = users();
        // carol loses her phone number; Authenticator stays.
        next[0].methods = Some([MethodKind::AuthenticatorPush].into_iter().collect());
        let c = store
            .record_users("t1", 2, at("2026-11-01T11:00:00Z"), &next)
            .expect("record");
        assert_eq!((c.written, c.method_changes, c.drift_rows), (1, 1, 1));
        let carol = row(&store, "CAROL@contoso.com");
        let changes = store.user_changes("t1", &carol.id, 10).expect("changes");
        assert_eq!(changes.len(), 1, "{changes:?}");
        let ch = &changes[0];
        assert_eq!(ch.audit_id, 2);
        assert_eq!(ch.families_lost, ["mobile-number"]);
        assert!(ch.families_gained.is_empty());
        assert_eq!(ch.mfa_families_after, Some(1));
        assert_eq!(
            ch.methods_before.as_deref(),
            Some(&["microsoftAuthenticatorPush", "mobilePhone"][..])
        );
        assert_eq!(
            ch.methods_after.as_deref(),
            Some(&["microsoftAuthenticatorPush"][..])
        );
        assert_eq!(store.audit_user_changes("t1", 2, 10).expect("q"), changes);
        // Nobody else drifted.
        assert!(store
            .user_changes("t1", &row(&store, "ann@contoso.com").id, 10)
            .expect("changes")
            .is_empty());
    }

    #[test]
    fn a_role_change_is_drift_too() {
        let store = Store::in_memory().expect("store");
        store
            .record_users("t1", 1, at("2026-11-01T10:00:00Z"), &users())
            .expect("record");
        let mut next = users();
        next[1].eligible_roles.insert(Role::GlobalAdministrator);
        let c = store
            .record_users("t1", 2, at("2026-11-01T11:00:00Z"), &next)
            .expect("record");
        assert_eq!((c.method_changes, c.drift_rows), (0, 1));
        let ch = store.audit_user_changes("t1", 2, 10).expect("q");
        assert_eq!(ch[0].eligible_after, ["Global Administrator"]);
        assert!(ch[0].families_lost.is_empty());
        let ann = row(&store, "ann@contoso.com");
        assert_eq!(ann.eligible_roles, ["Global Administrator"]);
        assert!(ann.roles.is_empty());
    }

    #[test]
    fn a_user_gone_is_marked_deleted_and_comes_back() {
        let store = Store::in_memory().expect("store");
        store
            .record_users("t1", 1, at("2026-11-01T10:00:00Z"), &users())
            .expect("record");
        let mut without_bob = users();
        without_bob.remove(2);
        let c = store
            .record_users("t1", 2, at("2026-11-01T11:00:00Z"), &without_bob)
            .expect("record");
        assert_eq!((c.deleted, c.written), (1, 0));
        let bob = row(&store, "bob@contoso.com");
        assert_eq!(bob.deleted_at, Some(at("2026-11-01T11:00:00Z")));
        assert!(store.search_users("t1", "bob", 10).expect("q").is_empty());
        // Still gone: not marked again.
        let again = store
            .record_users("t1", 3, at("2026-11-01T12:00:00Z"), &without_bob)
            .expect("record");
        assert_eq!(again, UserChanges::default());
        let back = store
            .record_users("t1", 4, at("2026-11-01T13:00:00Z"), &users())
            .expect("record");
        assert_eq!((back.returned, back.written, back.new), (1, 1, 0));
        let bob = row(&store, "bob@contoso.com");
        assert_eq!(bob.deleted_at, None);
        assert_eq!(bob.first_seen, at("2026-11-01T10:00:00Z"));
        assert_eq!(store.search_users("t1", "bob", 10).expect("q").len(), 1);
    }

    #[test]
    fn unknown_methods_are_not_drift() {
        let store = Store::in_memory().expect("store");
        store
            .record_users("t1", 1, at("2026-11-01T10:00:00Z"), &users())
            .expect("record");
        let mut next = users();
        next[1].methods = None;
        next[1].account_enabled = false;
        let c = store
            .record_users("t1", 2, at("2026-11-01T11:00:00Z"), &next)
            .expect("record");
        assert_eq!((c.written, c.drift_rows, c.method_changes), (1, 0, 0));
        let ann = row(&store, "ann@contoso.com");
        assert_eq!(ann.methods, None);
        assert_eq!(ann.mfa_families, None);
        // Back to known, with other methods: still no drift (the last audit did not know them).
        next[1].methods = Some([MethodKind::MobilePhone].into_iter().collect());
        let c = store
            .record_users("t1", 3, at("2026-11-01T12:00:00Z"), &next)
            .expect("record");
        assert_eq!((c.written, c.drift_rows), (1, 0));
        assert!(store.user_changes("t1", &ann.id, 10).expect("q").is_empty());
    }

    #[test]
    fn search_is_case_insensitive_by_upn_or_display_name_and_uses_an_index() {
        let store = Store::in_memory().expect("store");
        let mut all = users();
        all[1].display_name = "Zoë Ann Example".into();
        // Neighbours that a sloppy bound would let in (`@` + 1 is `A`).
        all.push(user(4, "ann[x]@contoso.com", &[]));
        all.push(user(5, "anna@contoso.com", &[]));
        store
            .record_users("t1", 1, at("2026-11-01T10:00:00Z"), &all)
            .expect("record");
        let upns = |prefix: &str| -> Vec<String> {
            store
                .search_users("t1", prefix, 10)
                .expect("search")
                .into_iter()
                .map(|u| u.user_principal_name)
                .collect()
        };
        assert_eq!(
            upns("ANN"),
            ["ann@contoso.com", "ann[x]@contoso.com", "anna@contoso.com"]
        );
        assert_eq!(upns("ann@"), ["ann@contoso.com"]);
        assert_eq!(upns("ZOë"), ["ann@contoso.com"]);
        assert_eq!(upns("zo"), ["ann@contoso.com"]);
        assert_eq!(upns("user 2"), ["bob@contoso.com"]);
        assert!(upns("nobody").is_empty());
        assert!(store
            .search_users("other-tenant", "a", 10)
            .expect("q")
            .is_empty());
        assert_eq!(store.search_users("t1", "", 2).expect("q").len(), 2);

        let conn = store.conn();
        for (column, index) in [("upn", "users_upn"), ("display_name", "users_name")] {
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {}", search_sql(column)))
                .expect("explain")
                .query_map(params![1, "a", prefix_end("a"), 10], |r| r.get(3))
                .expect("plan")
                .collect::<Result<_, _>>()
                .expect("rows");
            let plan = plan.join(" | ");
            assert!(
                plan.contains(&format!(
                    "SEARCH users USING INDEX {index} (tk=? AND {column}>? AND {column}<?)"
                )),
                "{column}: {plan}"
            );
            assert!(!plan.contains("TEMP B-TREE"), "{column}: {plan}");
        }
        let plan: String = conn
            .query_row(
                &format!("EXPLAIN QUERY PLAN SELECT {USER_COLUMNS} FROM users INDEXED BY users_upn WHERE tk = ?1 AND upn = ?2"),
                params![1, "ANN@contoso.com"],
                |r| r.get(3),
            )
            .expect("plan");
        assert!(plan.contains("USING INDEX users_upn"), "{plan}");
    }

    #[test]
    fn admins_are_one_range_of_the_partial_index() {
        let store = Store::in_memory().expect("store");
        let mut all = users();
        all[0].roles.insert(Role::GlobalAdministrator);
        all[1].roles.insert(Role::HelpdeskAdministrator);
        all[2].roles.insert(Role::AuthenticationAdministrator);
        all[2].account_enabled = false;
        let mut dave = user(4, "dave@contoso.com", &[]);
        dave.eligible_roles.insert(Role::GlobalAdministrator);
        all.push(dave);
        store
            .record_users("t1", 1, at("2026-11-01T10:00:00Z"), &all)
            .expect("record");
        let upns = |roles: &[Role]| -> Vec<String> {
            store
                .users_with_active_roles("t1", roles, 10)
                .expect("admins")
                .into_iter()
                .map(|u| u.user_principal_name)
                .collect()
        };
        // Enabled, active (not eligible) holders only.
        assert_eq!(
            upns(&[Role::GlobalAdministrator, Role::AuthenticationAdministrator]),
            ["carol@contoso.com"]
        );
        assert_eq!(upns(&[Role::HelpdeskAdministrator]), ["ann@contoso.com"]);
        // Gone users are not admins any more.
        store
            .record_users("t1", 2, at("2026-11-01T11:00:00Z"), &all[1..])
            .expect("record");
        assert!(upns(&[Role::GlobalAdministrator]).is_empty());

        let plan: Vec<String> = store
            .conn()
            .prepare(&format!("EXPLAIN QUERY PLAN {}", admins_sql()))
            .expect("explain")
            .query_map(params![1, 1, 10], |r| r.get(3))
            .expect("plan")
            .collect::<Result<_, _>>()
            .expect("rows");
        let plan = plan.join(" | ");
        assert!(
            plan.contains("SEARCH users USING INDEX users_admins (tk=?)"),
            "{plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }

    #[test]
    fn many_new_users_rebuild_the_name_indexes_and_keep_other_tenants() {
        let store = Store::in_memory().expect("store");
        store
            .record_users("t0", 1, at("2026-11-01T09:00:00Z"), &users())
            .expect("record");
        {
            let mut conn = store.conn();
            let tx = conn.transaction().expect("tx");
            let c = record_users_bulk(&tx, "t1", 1, at("2026-11-01T10:00:00Z"), &users(), 2)
                .expect("bulk");
            assert_eq!(c.new, 3);
            tx.commit().expect("commit");
        }
        for tenant in ["t0", "t1"] {
            let found = store.search_users(tenant, "BOB", 5).expect("search");
            assert_eq!(found.len(), 1, "{tenant}");
            assert_eq!(
                store.search_users(tenant, "user 3", 5).expect("search")[0].user_principal_name,
                "carol@contoso.com"
            );
        }
        let indexes: i64 = store
            .conn()
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name IN ('users_upn', 'users_name')",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(indexes, 2);
    }

    #[test]
    fn hostile_upns_and_full_posture_round_trip() {
        let store = Store::in_memory().expect("store");
        let mut guest = user(
            7,
            "o'brien_contoso.com#EXT#@fabrikam.onmicrosoft.com",
            &[
                MethodKind::PasskeySynced,
                MethodKind::SoftwareOtp,
                MethodKind::Email,
            ],
        );
        guest.display_name = "Seán \"The\" O'Brien <script>".into();
        guest.user_type = UserType::Guest;
        guest.unknown_methods = 2;
        guest.default_method = Some(DefaultMethod::Oath);
        guest.system_preferred_mfa = Some(false);
        guest.roles.insert(Role::HelpdeskAdministrator);
        guest.per_user_mfa = Some(PerUserMfa::Enforced);
        guest.mfa_failures = Some(6);
        guest.tap = Some(Box::new(Tap {
            start: Some(at("2026-11-01T09:30:00Z")),
            lifetime_minutes: 60,
            usable_once: true,
            usable: false,
            usability_reason: "Expired".into(),
        }));
        store
            .record_users("t1", 1, at("2026-11-01T10:00:00Z"), &[guest.clone()])
            .expect("record");
        let by_upn = row(&store, "O'BRIEN_contoso.com#ext#@fabrikam.onmicrosoft.com");
        let by_id = row(&store, &ObjectId(7).to_string());
        assert_eq!(by_upn, by_id);
        assert_eq!(&*by_upn.user_principal_name, &*guest.upn);
        assert_eq!(by_upn.display_name, "Seán \"The\" O'Brien <script>");
        assert_eq!(by_upn.user_type, "guest");
        assert_eq!(by_upn.unknown_methods, 2);
        assert_eq!(by_upn.default_method, Some("oath"));
        assert_eq!(by_upn.system_preferred_mfa, Some(false));
        assert_eq!(by_upn.roles, ["Helpdesk Administrator"]);
        assert_eq!(by_upn.per_user_mfa, Some("enforced"));
        assert_eq!(by_upn.mfa_failures, Some(6));
        assert_eq!(by_upn.phishing_resistant, Some(true));
        assert_eq!(
            by_upn.mfa_families.as_deref(),
            Some(&["mobile-app", "synced-passkey"][..])
        );
        let methods = by_upn.methods.as_ref().expect("methods");
        let email = methods.iter().find(|m| m.name == "email").expect("email");
        assert_eq!((email.mfa_capable, email.family), (false, "not-mfa"));
        let tap = by_upn.tap.as_ref().expect("tap");
        assert_eq!(tap.start, Some(at("2026-11-01T09:30:00Z")));
        assert_eq!(
            (tap.lifetime_minutes, tap.usable_once, tap.usable),
            (60, true, false)
        );
        assert_eq!(tap.usability_reason, "Expired");
        assert_eq!(
            store
                .search_users("t1", "o'brien_contoso.com#EXT#", 5)
                .expect("q")
                .len(),
            1
        );
        assert_eq!(
            store.search_users("t1", "seán \"the", 5).expect("q").len(),
            1
        );
        // Serialises (the user page's JSON).
        let json = serde_json::to_string(&by_upn).expect("json");
        assert!(json.contains("#EXT#"), "{json}");
        // The same posture, recorded again, writes nothing: the digest is stable.
        let c = store
            .record_users("t1", 2, at("2026-11-01T11:00:00Z"), &[guest])
            .expect("record");
        assert_eq!(c.written, 0);
    }

    #[test]
    fn the_digest_is_stable_across_builds() {
        // A pinned value: a change here rewrites every user once after an upgrade.
        let u = user(1, "ann@contoso.com", &[MethodKind::Fido2SecurityKey]);
        let d = Posture::of(&u).digest(&mut Vec::new());
        assert_eq!(d, Posture::of(&u.clone()).digest(&mut Vec::new()));
        let mut other = u.clone();
        other.mfa_failures = Some(0);
        assert_ne!(d, Posture::of(&other).digest(&mut Vec::new()));
        assert_eq!(d, PINNED_DIGEST, "digest {d}");
    }

    const PINNED_DIGEST: i64 = -7_474_477_567_203_891_610;

    #[test]
    fn prune_drops_old_drift_and_long_deleted_users() {
        let store = Store::in_memory().expect("store");
        let t0 = "2026-11-01T10:00:00Z";
        let mut audits = Vec::new();
        for (i, t) in [
            t0,
            "2026-11-01T11:00:00Z",
            "2026-11-01T12:00:00Z",
            "2026-11-01T13:00:00Z",
        ]
        .iter()
        .enumerate()
        {
            let r = crate::report::Report {
                tenant: "t1".into(),
                complete: true,
                started_at: at(t),
                finished_at: at(t),
                users_in_scope: 3,
                findings: vec![],
                excepted: vec![],
                skipped: vec![],
                incomplete_reasons: vec![],
                summary: Default::default(),
                posture: Default::default(),
            };
            let id = store.record(&r, 0).expect("record").audit_id;
            let mut us = users();
            if i == 1 {
                // audit 2: carol loses her phone; bob is gone from then on.
                us[0].methods = Some([MethodKind::AuthenticatorPush].into_iter().collect());
            }
            if i >= 1 {
                us.remove(2);
            }
            if i >= 2 {
                us[0].methods = Some([MethodKind::AuthenticatorPush].into_iter().collect());
            }
            store.record_users("t1", id, at(t), &us).expect("users");
            audits.push(id);
        }
        let carol = row(&store, "carol@contoso.com").id;
        assert_eq!(store.user_changes("t1", &carol, 10).expect("q").len(), 1);
        store.prune("t1", 2).expect("prune");
        // Kept: audits 3 and 4. Carol's drift (audit 2) and bob (deleted at audit 2) are gone.
        assert!(store.user_changes("t1", &carol, 10).expect("q").is_empty());
        assert!(store.user("t1", "bob@contoso.com").expect("q").is_none());
        assert!(store.user("t1", "ann@contoso.com").expect("q").is_some());
    }
}
