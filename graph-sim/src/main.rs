//! `graph-sim`: serve a simulated Entra ID tenant through Microsoft Graph's contract on loopback.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use graph_sim::{Fault, Licence, Profile, SimConfig, TenantSource};

/// A Microsoft Graph simulator for mfa-auditor's tests, benchmarks and demo.
///
/// Prints the listening address on the first line of standard output (useful with port 0), then
/// the tenant id, the client id and the client secret, one per line.
///
/// With `--tenants N`: a cloud of N generated tenants (seeds seed … seed+N-1, tenant ids fixed by
/// the seed) on the one address, as Graph serves every tenant from one host; prints the address,
/// then one line per tenant: its tenant id. The client id and secret are every tenant's (one
/// multi-tenant app).
///
/// Example: graph-sim --listen 127.0.0.1:8089 --users 5000 --seed 7 --profile realistic --time-scale 100
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:8089")]
    listen: SocketAddr,
    /// Users in the generated tenant.
    #[arg(long, default_value_t = 5000)]
    users: usize,
    /// Seed of the generated tenant (same seed, same tenant).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Serve this many generated tenants on the one address (a cloud; 1: the single tenant).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    tenants: u32,
    /// realistic, healthy, weak-policy or policy-lockouts.
    #[arg(long, default_value = "realistic")]
    profile: Profile,
    /// Add role-assignable groups holding roles, PIM-eligible admins and role-holding service
    /// principals to the generated tenant (eligibility is served on P2 only).
    #[arg(long)]
    privileged_access: bool,
    /// Serve this ground-truth JSON instead of generating a tenant.
    #[arg(long)]
    tenant_json: Option<std::path::PathBuf>,
    /// Write the tenant's ground truth to this file.
    #[arg(long)]
    ground_truth_out: Option<std::path::PathBuf>,
    /// How many times faster than Graph's real throttle limits the buckets refill.
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// free, p1 or p2 (the registration report, sign-ins and CA need P1/P2).
    #[arg(long, default_value = "p2")]
    licence: Licence,
    /// Leave this permission out of the token's roles claim (repeatable).
    #[arg(long)]
    deny_permission: Vec<String>,
    /// Inject a fault (repeatable): status:EP:CODE[:N], throttle:EP[:N], malformed:EP[:N], truncated:EP[:N],
    /// slow:EP:MS, nextlink-loop:EP:PAGE, token-expiry:SECS, licence:EP, licence-intermittent:EP:N, licence-random:EP:PERCENT:SEED. EP is an endpoint label or '*'.
    #[arg(long, value_parser = Fault::parse)]
    fault: Vec<Fault>,
    /// Extra latency on every response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    #[arg(long)]
    client_id: Option<String>,
    #[arg(long)]
    client_secret: Option<String>,
    /// A PEM certificate accepted for certificate (private_key_jwt) sign-in.
    #[arg(long)]
    certificate: Option<std::path::PathBuf>,
    /// Generate this many background sign-ins per minute across the tenant's users (on the fly,
    /// from the start; mostly successes, some failures).
    #[arg(long, default_value_t = 0)]
    traffic_per_minute: u32,
    /// Seed of the generated traffic.
    #[arg(long, default_value_t = 1)]
    traffic_seed: u64,
    /// Sign-ins appear in /auditLogs/signIns this long after they happen (real Graph: about
    /// 2 minutes at the 95th percentile, 5 at the 99th).
    #[arg(long, default_value_t = 0)]
    sign_in_delay_ms: u64,
    /// Directory-audit entries pushed at run time appear this long after they happen.
    #[arg(long, default_value_t = 0)]
    audit_delay_ms: u64,
    /// A federated identity credential on the app (repeatable): `ISSUER,SUBJECT,KEY.pem`, the
    /// issuer's RSA public key in SPKI PEM (audience api://AzureADTokenExchange), or
    /// `ISSUER,SUBJECT` for an issuer that is this Entra (a managed identity's token).
    #[arg(long)]
    federated_credential: Vec<String>,
    /// Serve a managed identity at /metadata/identity/oauth2/token (IMDS), /msi/token (App
    /// Service) and /arc/metadata/identity/oauth2/token (Azure Arc).
    #[arg(long)]
    managed_identity: bool,
    /// The managed identity is user-assigned with this client id (implies --managed-identity).
    #[arg(long)]
    managed_identity_client_id: Option<String>,
    /// The App Service endpoint's IDENTITY_HEADER value.
    #[arg(long)]
    identity_header: Option<String>,
    /// Where the Arc endpoint writes its challenge key files.
    #[arg(long)]
    arc_key_dir: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let json_given = args.tenant_json.is_some();
    let mut config = SimConfig {
        tenant: match args.tenant_json {
            Some(path) => TenantSource::Json(path),
            None if args.privileged_access => {
                let mut tenant = graph_sim::generate(args.users, args.seed, args.profile);
                tenant.add_privileged_access(args.seed);
                TenantSource::Given(Box::new(tenant))
            }
            None => TenantSource::Generated {
                users: args.users,
                seed: args.seed,
                profile: args.profile,
            },
        },
        licence: args.licence,
        time_scale: args.time_scale,
        latency: Duration::from_millis(args.latency_ms),
        faults: args.fault,
        sign_in_delay: Duration::from_millis(args.sign_in_delay_ms),
        audit_delay: Duration::from_millis(args.audit_delay_ms),
        traffic: (args.traffic_per_minute > 0).then_some(graph_sim::Traffic {
            per_minute: args.traffic_per_minute,
            seed: args.traffic_seed,
            start: None,
        }),
        ..SimConfig::default()
    };
    config.granted_roles.retain(|r| {
        !args
            .deny_permission
            .iter()
            .any(|d| d.eq_ignore_ascii_case(r))
    });
    if let Some(c) = args.client_id {
        config.client_id = c;
    }
    if let Some(s) = args.client_secret {
        config.client_secret = s;
    }
    if let Some(path) = &args.certificate {
        config.certificate_pem = Some(
            std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        );
    }
    for spec in &args.federated_credential {
        let parts: Vec<&str> = spec.split(',').collect();
        let key = match parts.as_slice() {
            [_, _] => None,
            [_, _, path] => {
                Some(std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{path}: {e}"))?)
            }
            _ => {
                anyhow::bail!("--federated-credential {spec:?}: expected ISSUER,SUBJECT[,KEY.pem]")
            }
        };
        config
            .federated_credentials
            .push(graph_sim::FederatedCredential::new(parts[0], parts[1], key));
    }
    if args.managed_identity || args.managed_identity_client_id.is_some() {
        let mut mi = graph_sim::SimManagedIdentity {
            arc_key_dir: args.arc_key_dir.clone(),
            ..Default::default()
        };
        if let Some(id) = &args.managed_identity_client_id {
            mi.client_id = id.clone();
            mi.user_assigned = true;
        }
        if let Some(h) = &args.identity_header {
            mi.app_service_header = h.clone();
        }
        config.managed_identity = Some(mi);
    }
    if args.tenants > 1 {
        if json_given || args.privileged_access || args.ground_truth_out.is_some() {
            anyhow::bail!(
                "--tenants generates its tenants: it does not take --tenant-json, --privileged-access or --ground-truth-out"
            );
        }
        let configs = graph_sim::cloud_configs(&config, args.tenants as usize);
        let cloud = graph_sim::start_cloud(configs, args.listen).await?;
        println!("{}", cloud.base_url());
        for t in cloud.tenants() {
            println!("{}", t.tenant_id());
        }
        tokio::signal::ctrl_c().await?;
        cloud.shutdown().await;
        return Ok(());
    }
    let sim = graph_sim::start(config, args.listen).await?;
    if let Some(path) = &args.ground_truth_out {
        std::fs::write(path, serde_json::to_vec(&sim.ground_truth())?)?;
    }
    println!("{}", sim.base_url());
    println!("{}", sim.tenant_id());
    println!("{}", sim.client_id());
    println!("{}", sim.client_secret());
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}
