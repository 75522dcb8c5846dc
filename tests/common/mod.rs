//! What the end-to-end tests share: a simulator at a fast time scale, and a client, a config and
//! an audit pointed at it.
#![allow(dead_code)] // each test binary uses its own part of this

pub mod browser;
pub mod daemon;

use std::time::Duration;

use graph_sim::{Profile, SimConfig, SimHandle, TenantSource};
use mfa_auditor::config::Config;
use mfa_auditor::graph::{ClientConfig, Credential, GraphClient};
use mfa_auditor::report::Report;
use mfa_auditor::secret::Secret;

/// The simulator's buckets refill this many times faster than Graph's; clients pace to match.
pub const SCALE: f64 = 200.0;

/// A generated tenant on loopback; `tweak` adjusts the simulator's configuration.
pub async fn sim(
    users: usize,
    seed: u64,
    profile: Profile,
    tweak: impl FnOnce(&mut SimConfig),
) -> SimHandle {
    let mut config = SimConfig {
        tenant: TenantSource::Generated {
            users,
            seed,
            profile,
        },
        time_scale: SCALE,
        ..SimConfig::default()
    };
    tweak(&mut config);
    graph_sim::start(config, ([127, 0, 0, 1], 0).into())
        .await
        .expect("simulator starts")
}

/// A client for `sim`, with pacing scaled to the simulator and short backoffs.
pub fn client_with(sim: &SimHandle, mut config: ClientConfig) -> GraphClient {
    config.pacing = config.pacing.scaled(SCALE);
    config.backoff_base = Duration::from_millis(20);
    config.backoff_cap = Duration::from_millis(500);
    GraphClient::new(config, Credential::Secret(Secret::new(sim.client_secret()))).expect("client")
}

/// A client for `sim` with every default but the endpoints; `tweak` adjusts it.
pub fn client(sim: &SimHandle, tweak: impl FnOnce(&mut ClientConfig)) -> GraphClient {
    let base = url::Url::parse(&sim.base_url()).expect("base url");
    let mut config = ClientConfig::new(base.clone(), base, sim.tenant_id(), sim.client_id());
    tweak(&mut config);
    client_with(sim, config)
}

/// A config for `sim` (custom cloud on loopback) with `extra` TOML appended.
pub fn config(sim: &SimHandle, extra: &str) -> Config {
    let text = format!(
        "[tenant]\ntenant_id = \"{}\"\nclient_id = \"{}\"\ncloud = \"custom\"\ngraph_url = \"{b}\"\nlogin_url = \"{b}\"\nclient_secret_env = \"UNUSED\"\n{extra}\n",
        sim.tenant_id(),
        sim.client_id(),
        b = sim.base_url()
    );
    Config::parse(&text, "test.toml").unwrap_or_else(|e| panic!("{e}"))
}

/// One audit of `sim` with `config`.
pub async fn audit(sim: &SimHandle, config: &Config) -> Report {
    mfa_auditor::audit::run(config, &client_with(sim, config.client_config())).await
}

/// A throwaway self-signed certificate for 127.0.0.1 and its key, made by openssl in `dir`:
/// (certificate path, key path).
pub fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-days",
            "1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs (scripts/test installs it)");
    assert!(made.success(), "openssl could not make a certificate");
    (cert, key)
}

/// A plain member the watcher's tests make fail: enabled, no role (active or eligible), the
/// Authenticator and a mobile phone only (so deleting the phone leaves no backup), and not
/// `busy` (already in some lockout state).
pub fn plain_member_with_phone(
    store: &mfa_auditor::state::Store,
    tenant: &str,
    users: &[mfa_auditor::snapshot::User],
    busy: impl Fn(&str) -> bool,
) -> mfa_auditor::state::StoredUser {
    users
        .iter()
        .filter_map(|u| store.user(tenant, &u.id.to_string()).ok().flatten())
        .find(|u| {
            u.user_type == "member"
                && u.account_enabled
                && u.roles.is_empty()
                && u.eligible_roles.is_empty()
                && u.mfa_families.as_deref() == Some(&["mobile-app", "mobile-number"][..])
                && u.methods
                    .as_ref()
                    .is_some_and(|m| m.iter().any(|m| m.name == "mobilePhone"))
                && !busy(&u.id)
        })
        .expect("a member with the Authenticator and a mobile phone only")
}
