//! What the benchmarks share: graph-sim in a child process, the sizes asked for, peak memory.
#![allow(dead_code)] // each bench uses its own part of this

/// When this executable was started as the simulator child (`--sim-child USERS`), serves a
/// generated realistic tenant at `scale` until standard input closes, then exits; otherwise
/// returns the sizes asked for on the command line (`default` when none).
pub fn sim_child_or_sizes(scale: f64, default: &[usize]) -> Vec<usize> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--sim-child") {
        let users = args.get(i + 1).and_then(|n| n.parse().ok()).unwrap_or(1000);
        sim_child(users, scale);
    }
    let sizes: Vec<usize> = args.iter().skip(1).filter_map(|a| a.parse().ok()).collect();
    if sizes.is_empty() {
        default.to_vec()
    } else {
        sizes
    }
}

/// The environment variable a parent sets for its simulator child: sign-ins a (wall-clock)
/// minute of graph-sim's traffic generator (0 or unset: none).
pub const TRAFFIC_ENV: &str = "MFA_BENCH_SIM_TRAFFIC";

/// Runs in the child: serve a generated tenant until standard input closes. Prints its base URL,
/// tenant, client id and secret on one line for the parent.
fn sim_child(users: usize, scale: f64) -> ! {
    let config = graph_sim::SimConfig {
        tenant: graph_sim::TenantSource::Generated {
            users,
            seed: 1,
            profile: graph_sim::Profile::Realistic,
        },
        time_scale: scale,
        traffic: std::env::var(TRAFFIC_ENV)
            .ok()
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|n| *n > 0)
            .map(|per_minute| graph_sim::Traffic {
                per_minute,
                seed: 7,
                start: None,
            }),
        ..graph_sim::SimConfig::default()
    };
    serve_sim_child(config, async |_| std::future::pending::<()>().await)
}

/// Runs in a simulator child: starts graph-sim with `config`, prints its base URL, tenant,
/// client id and secret on one line for the parent, runs `work` beside it until that ends or
/// standard input closes, then exits.
pub fn serve_sim_child(
    config: graph_sim::SimConfig,
    work: impl AsyncFnOnce(&graph_sim::SimHandle),
) -> ! {
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("sim runtime: {e}"));
    rt.block_on(async {
        let sim = graph_sim::start(config, ([127, 0, 0, 1], 0).into())
            .await
            .unwrap_or_else(|e| panic!("sim: {e}"));
        println!(
            "{} {} {} {}",
            sim.base_url(),
            sim.tenant_id(),
            sim.client_id(),
            sim.client_secret()
        );
        let stdin = tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            let _ = std::io::stdin().read_line(&mut sink);
        });
        tokio::select! {
            _ = work(&sim) => {}
            _ = stdin => {}
        }
        sim.shutdown().await;
    });
    std::process::exit(0)
}

/// A `/proc/self/status` figure in MiB (`VmHWM:` the peak, `VmRSS:` now); NaN when unreadable.
pub fn status_mib(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Peak resident set of this process (since the last reset), in MiB.
pub fn peak_rss_mib() -> f64 {
    status_mib("VmHWM:")
}

/// graph-sim in a child process: this executable started with `args` (and `envs`), which prints
/// its base URL, tenant, client id and secret on one line, and serves until its standard input
/// closes (on drop, or when this process dies).
pub struct SimChild {
    child: std::process::Child,
    pub base: String,
    pub tenant: String,
    pub client: String,
    pub secret: String,
}

impl SimChild {
    pub fn spawn(args: &[&str], envs: &[(&str, String)]) -> SimChild {
        use std::io::BufRead;
        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current exe: {e}"));
        let mut child = std::process::Command::new(exe)
            .args(args)
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning graph-sim: {e}"));
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = std::io::BufReader::new(out).read_line(&mut line);
        }
        let parts: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        assert_eq!(
            parts.len(),
            4,
            "graph-sim should print its URL, tenant, client and secret; it said {line:?}"
        );
        let [base, tenant, client, secret] =
            <[String; 4]>::try_from(parts).unwrap_or_else(|p| panic!("graph-sim said {p:?}"));
        SimChild {
            child,
            base,
            tenant,
            client,
            secret,
        }
    }

    /// A client for it with `pacing`.
    pub fn client(&self, pacing: mfa_auditor::graph::Pacing) -> mfa_auditor::graph::GraphClient {
        let base = url::Url::parse(&self.base).unwrap_or_else(|e| panic!("url: {e}"));
        let mut config =
            mfa_auditor::graph::ClientConfig::new(base.clone(), base, &self.tenant, &self.client);
        config.pacing = pacing;
        mfa_auditor::graph::GraphClient::new(
            config,
            mfa_auditor::graph::Credential::Secret(mfa_auditor::secret::Secret::new(&self.secret)),
        )
        .unwrap_or_else(|e| panic!("client: {e}"))
    }

    /// What the simulator counted (requests, 429s).
    pub async fn stats(&self) -> graph_sim::Stats {
        self.try_stats()
            .await
            .unwrap_or_else(|e| panic!("sim stats: {e}"))
    }

    /// The same, or why the simulator did not say.
    pub async fn try_stats(&self) -> Result<graph_sim::Stats, reqwest::Error> {
        let r = reqwest::get(format!("{}/_sim/stats", self.base))
            .await?
            .error_for_status()?;
        r.json::<graph_sim::Stats>().await
    }
}

impl Drop for SimChild {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// When this executable was started as a cloud child (`--cloud-child TENANTS USERS`), serves a
/// graph-sim cloud of that many generated realistic tenants (seeds 1…TENANTS, tenant ids
/// [`graph_sim::cloud_tenant_id`] of the seed, one shared app) at `scale` until standard input
/// closes, then exits; otherwise returns.
pub fn cloud_child_if_asked(scale: f64) {
    let args: Vec<String> = std::env::args().collect();
    let Some(i) = args.iter().position(|a| a == "--cloud-child") else {
        return;
    };
    let number = |k: usize| args.get(i + k).and_then(|n| n.parse::<usize>().ok());
    let (tenants, users) = (number(1).unwrap_or(2), number(2).unwrap_or(1000));
    let template = graph_sim::SimConfig {
        tenant: graph_sim::TenantSource::Generated {
            users,
            seed: 1,
            profile: graph_sim::Profile::Realistic,
        },
        time_scale: scale,
        ..graph_sim::SimConfig::default()
    };
    let configs = graph_sim::cloud_configs(&template, tenants);
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("sim runtime: {e}"));
    rt.block_on(async {
        let cloud = graph_sim::start_cloud(configs, ([127, 0, 0, 1], 0).into())
            .await
            .unwrap_or_else(|e| panic!("cloud: {e}"));
        let first = cloud.tenant(0);
        let ids: Vec<&str> = cloud.tenants().iter().map(|t| t.tenant_id()).collect();
        println!(
            "{} {} {} {}",
            cloud.base_url(),
            first.client_id(),
            first.client_secret(),
            ids.join(",")
        );
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            let _ = std::io::stdin().read_line(&mut sink);
        })
        .await;
        cloud.shutdown().await;
    });
    std::process::exit(0)
}

/// One tenant of a cloud as `GET /_sim/tenants` lists it.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct CloudTenant {
    pub tenant_id: String,
    pub domain: String,
    pub stats: graph_sim::Stats,
}

/// `GET /_sim/tenants`: every tenant and the Graph requests no tenant could answer.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct CloudStats {
    pub tenants: Vec<CloudTenant>,
    pub unrouted: u64,
}

/// A graph-sim cloud in a child process (this executable with `--cloud-child TENANTS USERS`):
/// one listener, many tenants, one app; killed on drop.
pub struct CloudChild {
    child: std::process::Child,
    pub base: String,
    pub client: String,
    pub secret: String,
    pub tenants: Vec<String>,
}

impl CloudChild {
    pub fn spawn(tenants: usize, users: usize) -> CloudChild {
        use std::io::BufRead;
        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current exe: {e}"));
        let mut child = std::process::Command::new(exe)
            .args(["--cloud-child", &tenants.to_string(), &users.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning the graph-sim cloud: {e}"));
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = std::io::BufReader::new(out).read_line(&mut line);
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [base, client, secret, ids] = parts.as_slice() else {
            panic!(
                "the cloud should print its URL, client, secret and tenant ids; it said {line:?}"
            )
        };
        let tenants: Vec<String> = ids.split(',').map(str::to_owned).collect();
        CloudChild {
            base: base.to_string(),
            client: client.to_string(),
            secret: secret.to_string(),
            tenants,
            child,
        }
    }

    /// What every tenant counted.
    pub async fn stats(&self) -> CloudStats {
        let r = reqwest::get(format!("{}/_sim/tenants", self.base))
            .await
            .and_then(|r| r.error_for_status())
            .unwrap_or_else(|e| panic!("cloud stats: {e}"));
        r.json::<CloudStats>()
            .await
            .unwrap_or_else(|e| panic!("cloud stats: {e}"))
    }
}

impl Drop for CloudChild {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Graph's documented budget of one throttle class, per app per tenant: (burst, refill per
/// second), unscaled (the client's defaults, `Pacing::default()`).
pub fn class_budget(class: mfa_auditor::graph::ThrottleClass) -> (f64, f64) {
    use mfa_auditor::graph::ThrottleClass;
    let p = mfa_auditor::graph::Pacing::default();
    match class {
        ThrottleClass::Directory => (p.directory_ru_per_10s, p.directory_ru_per_10s / 10.0),
        ThrottleClass::Reports => (p.reports_per_10s, p.reports_per_10s / 10.0),
        ThrottleClass::ConditionalAccess => {
            (p.conditional_access_per_s, p.conditional_access_per_s)
        }
        ThrottleClass::AuthMethods => (p.auth_methods_per_10s, p.auth_methods_per_10s / 10.0),
    }
}

/// The throttle class graph-sim meters an endpoint label against (`None`: not one an audit
/// reads, or not metered here).
pub fn class_of(endpoint: &str) -> Option<mfa_auditor::graph::ThrottleClass> {
    use mfa_auditor::graph::ThrottleClass;
    Some(match endpoint {
        "users"
        | "roleAssignments"
        | "roleEligibilityScheduleInstances"
        | "authenticationMethodsPolicy"
        | "identitySecurityDefaultsEnforcementPolicy"
        | "authenticationStrengthPolicies"
        | "subscribedSkus"
        | "directorySettings"
        | "getByIds"
        | "groupMembers" => ThrottleClass::Directory,
        "userRegistrationDetails" | "signIns" | "directoryAudits" => ThrottleClass::Reports,
        "conditionalAccessPolicies" => ThrottleClass::ConditionalAccess,
        "authenticationMethods" | "temporaryAccessPassMethods" | "perUserMfaRequirements" => {
            ThrottleClass::AuthMethods
        }
        _ => return None,
    })
}

/// The least time Graph's budget allows for one tenant's successful requests, real (unscaled)
/// seconds, and the class that binds: each class spends its burst, then refills at its rate;
/// classes run in parallel, every request at cost 1 (benches/collect.rs and benches/tenants.rs).
pub fn throttle_bound_real(stats: &graph_sim::Stats) -> (f64, &'static str) {
    use mfa_auditor::graph::ThrottleClass;
    let mut per_class: std::collections::BTreeMap<ThrottleClass, f64> = Default::default();
    for (endpoint, statuses) in &stats.requests {
        let ok: u64 = statuses
            .iter()
            .filter(|(s, _)| **s != 429)
            .map(|(_, n)| *n)
            .sum();
        if let Some(c) = class_of(endpoint) {
            *per_class.entry(c).or_default() += ok as f64;
        }
    }
    per_class
        .iter()
        .map(|(c, n)| {
            let (burst, rate) = class_budget(*c);
            let name = match c {
                ThrottleClass::Directory => "directory",
                ThrottleClass::Reports => "reports",
                ThrottleClass::ConditionalAccess => "conditional access",
                ThrottleClass::AuthMethods => "auth methods",
            };
            (((n - burst).max(0.0)) / rate, name)
        })
        .fold((0.0, "none"), |a, b| if b.0 > a.0 { b } else { a })
}

/// `VmRSS` and `VmHWM` (peak) of process `pid`, MiB (NaN when unreadable).
pub fn process_rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
