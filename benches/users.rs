//! Per-user posture benchmark: recording a large tenant's users in the state store. The first
//! audit writes every user; the next changes 1% (half of them lose a method) and must write only
//! those. Prints seconds, rows written, peak RSS (VmHWM, the users themselves included: the
//! baseline before recording is printed too), the database size, and the time of a user search
//! and of the user page's reads of these tables (one user, their drift, the admins who can help).
//!
//! `cargo bench --bench users` (1,000,000 users) or `cargo bench --bench users -- 100000`.

mod common;

use std::time::Instant;

use chrono::{Duration, Utc};
use mfa_auditor::snapshot::{DefaultMethod, MethodKind, ObjectId, Role, User};
use mfa_auditor::state::Store;

fn users(n: usize) -> Vec<User> {
    let mut users: Vec<User> = (0..n)
        .map(|i| {
            let id = ObjectId((i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835));
            let mut u = User::new(id, &format!("user{i:07}@contoso.onmicrosoft.com"));
            u.display_name = format!("User Number {i}").into();
            let methods: &[MethodKind] = match i % 4 {
                0 => &[MethodKind::AuthenticatorPush, MethodKind::MobilePhone],
                1 => &[MethodKind::MobilePhone],
                2 => &[MethodKind::AuthenticatorPush, MethodKind::Fido2SecurityKey],
                _ => &[],
            };
            u.methods = (i % 50 != 0).then(|| methods.iter().copied().collect());
            u.mfa_capable = u.methods.map(|m| !m.is_empty());
            u.default_method = Some(DefaultMethod::Push);
            if i % 1000 == 0 {
                u.roles.insert(Role::HelpdeskAdministrator);
            }
            u
        })
        .collect();
    users.sort_unstable_by_key(|u| u.id);
    users
}

fn file_mib(path: &std::path::Path) -> f64 {
    std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / (1024.0 * 1024.0))
}

fn bench(n: usize) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("state.db");
    let store = Store::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut all = users(n);
    let now = Utc::now();
    let baseline = common::status_mib("VmRSS:");
    let baseline_peak = common::peak_rss_mib();
    let t = Instant::now();
    let first = store
        .record_users("bench", 1, now - Duration::hours(1), &all)
        .unwrap_or_else(|e| panic!("{e}"));
    let first_s = t.elapsed().as_secs_f64();
    let peak_first = common::peak_rss_mib();
    for (i, u) in all.iter_mut().enumerate().filter(|(i, _)| i % 100 == 7) {
        if i % 200 == 7 && u.methods.is_some() {
            // Loses a method (Authenticator or the phone), or registers a phone.
            u.methods = u.methods.map(|m| {
                if m.is_empty() {
                    [MethodKind::MobilePhone].into_iter().collect()
                } else {
                    m.iter().skip(1).collect()
                }
            });
        } else {
            u.display_name = format!("Renamed {i}").into();
        }
    }
    let t = Instant::now();
    let second = store
        .record_users("bench", 2, now, &all)
        .unwrap_or_else(|e| panic!("{e}"));
    let second_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let third = store
        .record_users("bench", 3, now + Duration::hours(1), &all)
        .unwrap_or_else(|e| panic!("{e}"));
    let third_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut found = 0;
    for i in 0..1000 {
        found += store
            .search_users("bench", &format!("USER{:07}", i * 997 % n), 20)
            .unwrap_or_else(|e| panic!("{e}"))
            .len();
    }
    let search_ms = t.elapsed().as_secs_f64();
    // The user page's own reads of the users tables: one user, their drift, the admins who can
    // help (every 1000th user holds a role, none of them one that can reset MFA: the whole
    // partial index is read each time, the worst case).
    let t = Instant::now();
    let mut admins = 0;
    for i in 0..1000 {
        let upn = format!("USER{:07}@contoso.onmicrosoft.com", i * 997 % n);
        let u = store
            .user("bench", &upn)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("{upn} is stored"));
        store
            .user_changes("bench", &u.id, 30)
            .unwrap_or_else(|e| panic!("{e}"));
        admins += store
            .users_with_active_roles("bench", &mfa_auditor::watch::posture::MFA_RESET_ROLES, 20)
            .unwrap_or_else(|e| panic!("{e}"))
            .len();
    }
    let page_ms = t.elapsed().as_secs_f64();
    let db = file_mib(&path);
    let wal = file_mib(&dir.path().join("state.db-wal"));
    println!(
        "{n:>8} users (input {baseline:.0} MiB RSS, peak {baseline_peak:.0} MiB before recording) | first {first_s:>6.2} s ({} written) peak RSS {peak_first:.0} MiB | \
         1% changed {second_s:>5.2} s ({} written, {} method changes, {} drift rows) | \
         unchanged {third_s:>5.2} s ({} written) | search {:.3} ms each of 1000 ({found} hits) | \
         user page's user, drift and admins {page_ms:.3} ms each of 1000 ({admins} admins) | \
         peak RSS {:.0} MiB | DB {db:.0} MiB + WAL {wal:.0} MiB",
        first.written,
        second.written,
        second.method_changes,
        second.drift_rows,
        third.written,
        search_ms,
        common::peak_rss_mib(),
    );
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1_000_000]
    } else {
        sizes
    };
    for n in sizes {
        bench(n);
    }
}
