//! The `mfa-auditor` command line. `anyhow` lives here only; the library returns typed errors.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use mfa_auditor::collect::{self, CollectOptions};
use mfa_auditor::config::{Config, ConfigFile};
use mfa_auditor::evaluate::{RuleKind, RulesConfig, Severity, CATALOGUE};
use mfa_auditor::graph::{ClientConfig, Credential, GraphClient};
use mfa_auditor::secret::Secret;
use mfa_auditor::snapshot::{MethodKind, Snapshot};
use mfa_auditor::whatif;

/// Keeps a Microsoft Entra ID tenant out of MFA lockouts: reads every user's authentication
/// methods and the tenant's MFA policy from Microsoft Graph (read-only) and finds who has no way
/// back in before they are locked out.
#[derive(Parser, Debug)]
#[command(version, propagate_version = true)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    /// Log level or filter (tracing EnvFilter syntax, e.g. `info`, `mfa_auditor=debug`).
    #[arg(long, global = true, default_value = "warn")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Table,
    Json,
    Csv,
    Sarif,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the daemon: audit on a schedule and publish metrics, findings and alerts.
    Run {
        #[arg(long, default_value = "/etc/mfa-auditor/config.toml")]
        config: PathBuf,
    },
    /// Audit once and print the findings.
    ///
    /// Exit status: 0 no finding at or above --fail-on, 1 there is one, 2 error or incomplete audit.
    Audit {
        #[arg(long)]
        config: PathBuf,
        /// The tenant to audit, by name or tenant id (required when the file has several).
        #[arg(long, value_name = "NAME|ID")]
        tenant: Option<String>,
        /// Output format (default: table on a terminal, json otherwise).
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Exit 1 when an open finding has this severity or higher (info, low, medium, high, critical).
        #[arg(long)]
        fail_on: Option<Severity>,
        /// Write the report here instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Predict who a policy change would lock out, before you make it.
    ///
    /// Reads the tenant fresh from Microsoft Graph (as `audit` does; nothing is changed in the
    /// tenant), applies the changes to a copy of what it read, judges both with the lockout rules
    /// (method-not-allowed, policy-unsatisfiable, policy-unsatisfiable-report-only) over the
    /// config's [scope], and lists the users for whom a lockout rule fires after the change but
    /// not before, grouped by rule and cause. The [break_glass] accounts are judged apart and
    /// listed first. [[exceptions]] are NOT applied: an exception accepts today's finding, it
    /// does not let anyone sign in after the change.
    ///
    /// Each --require-strength pairs with the --for at the same position.
    ///
    /// Exit status: 0 nobody would be newly locked out, 1 someone would be (report-only policies
    /// aside), 2 error, or the read was incomplete or a lockout rule could not be judged (then the
    /// list is not the whole truth).
    ///
    /// Examples:
    ///   mfa-auditor what-if --config config.toml --disable-method sms
    ///   mfa-auditor what-if --config config.toml --require-strength phishing-resistant --for "role:Global Administrator"
    #[command(verbatim_doc_comment)]
    WhatIf {
        #[arg(long)]
        config: PathBuf,
        /// The tenant to read, by name or tenant id (required when the file has several).
        #[arg(long, value_name = "NAME|ID")]
        tenant: Option<String>,
        /// Switch off a method configuration: sms, voice, email, fido2, authenticator,
        /// software-oath, hardware-oath, tap, certificate, qr-code-pin (any case). Repeatable.
        #[arg(long, value_name = "METHOD")]
        disable_method: Vec<String>,
        /// Require an authentication strength: mfa ("Multifactor authentication"), passwordless
        /// ("Passwordless MFA"), phishing-resistant ("Phishing resistant MFA", as Graph names it), or a custom
        /// strength's display name or id. Repeatable; each needs a --for.
        #[arg(long, value_name = "STRENGTH")]
        require_strength: Vec<String>,
        /// Who the strength at the same position is required of: all, group:<object id>,
        /// role:<template id or role name>.
        #[arg(long = "for", value_name = "TARGET")]
        for_: Vec<String>,
        /// Output format (default: table on a terminal, json otherwise).
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Write the answer here instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Validate the configuration, get a token, and list granted and missing permissions.
    ///
    /// With several tenants ([[tenants]]), each is checked (or only --tenant's). A tenant whose
    /// sign-in is refused because the app is not consented there, or that lacks a permission,
    /// gets its admin-consent URL to send to that tenant's admin.
    ///
    /// Exit status: 0 all good, 1 a permission is missing, 2 the configuration or a sign-in
    /// failed (the worst over the tenants).
    ///
    /// Examples:
    ///   mfa-auditor check-config --config /etc/mfa-auditor/config.toml
    ///   mfa-auditor check-config --config /etc/mfa-auditor/config.toml --tenant fabrikam
    #[command(verbatim_doc_comment)]
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
        /// Check only this tenant, by name or tenant id.
        #[arg(long, value_name = "NAME|ID")]
        tenant: Option<String>,
    },
    /// List the rule catalogue with parameters and defaults.
    Rules,
    /// Run the daemon against a built-in simulated tenant (no Azure needed), printing its URLs.
    Demo {
        /// Users in the simulated tenant.
        #[arg(long, default_value_t = 5000)]
        users: usize,
        /// Where the daemon listens.
        #[arg(long, default_value = "127.0.0.1:9717")]
        listen: String,
        /// Collect once, print what was read, and exit (no daemon).
        #[arg(long)]
        once: bool,
    },
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log_level);
    match cli.command {
        Command::Run { config } => match mfa_auditor::daemon::run(&config, None).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mfa-auditor run: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Audit {
            config,
            tenant,
            format,
            fail_on,
            output,
        } => {
            audit(
                &config,
                tenant.as_deref(),
                format,
                fail_on,
                output.as_deref(),
            )
            .await
        }
        Command::WhatIf {
            config,
            tenant,
            disable_method,
            require_strength,
            for_,
            format,
            output,
        } => {
            what_if(
                &config,
                tenant.as_deref(),
                &disable_method,
                &require_strength,
                &for_,
                format,
                output.as_deref(),
            )
            .await
        }
        Command::Rules => {
            print!("{}", rules_catalogue());
            ExitCode::SUCCESS
        }
        Command::CheckConfig { config, tenant } => check_config(&config, tenant.as_deref()).await,
        Command::Demo {
            users,
            listen,
            once,
        } => match demo(users, &listen, once).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mfa-auditor demo: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}

/// `mfa-auditor rules`: the catalogue with parameters and defaults.
fn rules_catalogue() -> String {
    let params = RulesConfig::default();
    let mut out = String::new();
    for r in CATALOGUE {
        let kind = if r.kind == RuleKind::User {
            "user"
        } else {
            "tenant"
        };
        out.push_str(&format!(
            "{}  [{}, {kind}]\n  {}\n",
            r.id, r.severity, r.title
        ));
        out.push_str(&format!("  why: {}\n", r.rationale));
        out.push_str(&format!(
            "  fix: {}\n",
            r.remediation.replace("{upn}", "<user>")
        ));
        if !r.needs.is_empty() {
            let needs: Vec<&str> = r.needs.iter().map(|d| d.as_str()).collect();
            out.push_str(&format!("  reads: {}\n", needs.join(", ")));
        }
        out.push_str(&format!(
            "  [rules.{}]  {}\n\n",
            r.id,
            params.describe(r.id).join("; ")
        ));
    }
    out.push_str(
        "A user has a backup when their MFA-capable methods span two recovery families:\n",
    );
    for kind in MethodKind::ALL {
        let info = kind.info();
        let modes = mfa_auditor::evaluate::predict::modes(kind);
        out.push_str(&format!(
            "  {:<36} {:<16} {:<29} {}\n",
            info.name,
            info.family.as_str(),
            format!(
                "{}{}",
                if info.mfa_capable { "MFA" } else { "not MFA" },
                if info.phishing_resistant {
                    ", phishing-resistant"
                } else {
                    ""
                }
            ),
            if modes.is_empty() {
                "modes: none".to_string()
            } else {
                format!("modes: {}", modes.join(", "))
            }
        ));
    }
    out.push_str(
        "\nA Conditional Access policy's strength is met when every mode of one of its combinations is\navailable (the password always is). The built-in strengths:\n",
    );
    for b in mfa_auditor::evaluate::predict::BUILTIN_STRENGTHS {
        out.push_str(&format!(
            "  {} ({}): {}\n",
            b.name,
            b.id,
            b.combinations.join(" | ")
        ));
    }
    out
}

/// The configuration of one tenant (`--tenant`, or the file's only one) and a Graph client for
/// it.
fn config_and_client(
    path: &Path,
    tenant: Option<&str>,
) -> Result<(std::sync::Arc<Config>, GraphClient), String> {
    let file = ConfigFile::load(path).map_err(|e| e.to_string())?;
    let config = file.select(tenant)?;
    let credential = config.credential().map_err(|e| e.to_string())?;
    let client = GraphClient::new(config.client_config(), credential).map_err(|e| e.to_string())?;
    Ok((config, client))
}

/// Runs `work` (a read of the tenant), showing the Graph requests made so far on a terminal.
async fn while_collecting<T>(
    client: &GraphClient,
    work: impl std::future::Future<Output = T>,
) -> T {
    use std::io::IsTerminal;
    let progress = std::io::stderr().is_terminal().then(|| {
        let client = client.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                let requests: u64 = client.stats().requests_by_endpoint().values().sum();
                eprint!(
                    "\rcollecting: {requests} Graph requests, {:.0} s ",
                    started.elapsed().as_secs_f64()
                );
            }
        })
    });
    let out = work.await;
    if let Some(p) = progress {
        p.abort();
        eprint!("\r\x1b[K");
    }
    out
}

/// `--format`, or by default a table on a terminal and JSON otherwise.
fn chosen_format(format: Option<Format>, output: Option<&Path>) -> Format {
    use std::io::IsTerminal;
    format.unwrap_or(if std::io::stdout().is_terminal() && output.is_none() {
        Format::Table
    } else {
        Format::Json
    })
}

/// Writes `text` to `output`, or to standard output.
fn write_output(text: &str, output: Option<&Path>) -> Result<(), String> {
    match output {
        Some(p) => {
            std::fs::write(p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))
        }
        None => {
            use std::io::Write;
            std::io::stdout()
                .write_all(text.as_bytes())
                .map_err(|e| format!("cannot write to standard output: {e}"))
        }
    }
}

/// `mfa-auditor audit`: one audit, printed; the exit status says how it went.
async fn audit(
    path: &Path,
    tenant: Option<&str>,
    format: Option<Format>,
    fail_on: Option<Severity>,
    output: Option<&Path>,
) -> ExitCode {
    let (config, client) = match config_and_client(path, tenant) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let report = while_collecting(&client, mfa_auditor::audit::run(&config, &client)).await;
    let text = match chosen_format(format, output) {
        Format::Table => report.to_table(),
        Format::Json => report.to_json() + "\n",
        Format::Csv => report.to_csv(),
        Format::Sarif => report.to_sarif() + "\n",
    };
    if let Err(e) = write_output(&text, output) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    if !report.complete {
        eprintln!("error: the audit is incomplete; its findings are not the whole truth:");
        for r in &report.incomplete_reasons {
            eprintln!("  {r}");
        }
        return ExitCode::from(2);
    }
    match (fail_on, report.worst()) {
        (Some(threshold), Some(worst)) if worst >= threshold => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    }
}

/// The changes `what-if` was asked to try, checked before anything is read.
fn what_if_changes(
    disable: &[String],
    strengths: &[String],
    targets: &[String],
) -> Result<Vec<whatif::Change>, String> {
    if strengths.len() != targets.len() {
        return Err(format!(
            "each --require-strength needs a --for (got {} --require-strength and {} --for)",
            strengths.len(),
            targets.len()
        ));
    }
    let mut changes = Vec::new();
    for d in disable {
        changes.push(whatif::Change::disable(d).map_err(|e| format!("--disable-method: {e}"))?);
    }
    for (s, t) in strengths.iter().zip(targets) {
        changes.push(
            whatif::Change::require(s, t)
                .map_err(|e| format!("--require-strength {s:?} --for {t:?}: {e}"))?,
        );
    }
    if changes.is_empty() {
        return Err(whatif::WhatIfError::NoChange.to_string());
    }
    Ok(changes)
}

/// `mfa-auditor what-if`: reads the tenant, tries the changes on a copy, prints who would be
/// locked out; the exit status says whether anyone would be (see its help).
async fn what_if(
    path: &Path,
    tenant: Option<&str>,
    disable: &[String],
    strengths: &[String],
    targets: &[String],
    format: Option<Format>,
    output: Option<&Path>,
) -> ExitCode {
    let changes = match what_if_changes(disable, strengths, targets) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let (config, client) = match config_and_client(path, tenant) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let read = while_collecting(
        &client,
        mfa_auditor::audit::read_tenant(&config, &client, None),
    )
    .await;
    let answer = match whatif::what_if(
        &read.snapshot,
        &changes,
        &config.rules,
        config.user_scope(),
        &config.break_glass.accounts,
        read.started_at,
    ) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            if !read.snapshot.is_complete() {
                eprintln!("(the tenant was not read completely: run `mfa-auditor audit` to see what failed)");
            }
            return ExitCode::from(2);
        }
    };
    let text = match chosen_format(format, output) {
        Format::Table => answer.to_table(),
        Format::Json => answer.to_json() + "\n",
        Format::Csv => answer.to_csv(),
        Format::Sarif => answer.to_sarif() + "\n",
    };
    if let Err(e) = write_output(&text, output) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    if !answer.complete {
        eprintln!("error: the answer is incomplete; it is not the whole truth:");
        for r in &answer.incomplete_reasons {
            eprintln!("  {r}");
        }
    }
    ExitCode::from(answer.exit_code())
}

/// Reads the alerting receivers' secrets as the daemon would, and says what is configured.
fn check_alerting(config: &Config) -> anyhow::Result<()> {
    let a = &config.alerting;
    if a.is_empty() {
        println!("alerting: none configured");
        return Ok(());
    }
    let store = std::sync::Arc::new(mfa_auditor::state::Store::in_memory()?);
    let metrics = mfa_auditor::metrics::Metrics::new(&config.tenant.tenant_id);
    mfa_auditor::alerting::Alerting::prepare(config, store, metrics.alerting())?;
    if let Some(am) = &a.alertmanager {
        println!(
            "alerting: Alertmanager at {} (findings of severity {} and above)",
            am.url, am.min_severity
        );
    }
    for w in &a.webhook {
        println!(
            "alerting: webhook {} ({:?}, severity {} and above): URL read",
            w.name, w.format, w.min_severity
        );
    }
    Ok(())
}

/// `mfa-auditor check-config`: the file, then each tenant (or `--tenant`'s): its credential, a
/// token, and its granted permissions against what the configured reads need.
async fn check_config(path: &Path, tenant: Option<&str>) -> ExitCode {
    let file = match ConfigFile::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let chosen: Vec<std::sync::Arc<Config>> = match tenant {
        Some(_) => match file.select(tenant) {
            Ok(c) => vec![c],
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        None => file.tenants().to_vec(),
    };
    let one = file.tenants().len() == 1;
    if one {
        let config = &file.tenants()[0];
        println!(
            "config: {} is valid (tenant {}, Graph {})",
            path.display(),
            config.tenant.tenant_id,
            config.graph_url()
        );
    } else {
        let names: Vec<&str> = file.tenants().iter().map(|c| c.tenant_name()).collect();
        println!(
            "config: {} is valid ({} tenants: {})",
            path.display(),
            names.len(),
            names.join(", ")
        );
    }
    if let Err(e) = check_alerting(file.daemon()) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    // Tenants are checked side by side (each signs in to its own tenant), printed in file order.
    use futures::StreamExt;
    let indent = if one { "" } else { "  " };
    let checks: Vec<(std::sync::Arc<Config>, TenantCheck)> = futures::stream::iter(chosen)
        .map(|config| async move {
            let check = check_tenant(&config, indent).await;
            (config, check)
        })
        .buffered(8)
        .collect()
        .await;
    let mut worst = 0;
    for (config, check) in &checks {
        if !one {
            println!(
                "tenant {} ({}, Graph {}):",
                config.tenant_name(),
                config.tenant.tenant_id,
                config.graph_url()
            );
        }
        print!("{}", check.out);
        // With several tenants, a tenant's error belongs to its section of the report (which
        // may be redirected to a file); a one-tenant file keeps its errors on stderr.
        if one {
            eprint!("{}", check.err);
        } else {
            print!("{}", check.err);
        }
        worst = worst.max(check.code);
    }
    if checks.len() > 1 {
        let failing: Vec<String> = checks
            .iter()
            .filter(|(_, c)| c.code != 0)
            .map(|(t, c)| format!("{} ({})", t.tenant_name(), c.verdict))
            .collect();
        if failing.is_empty() {
            println!("all {} tenants OK", checks.len());
        } else {
            println!(
                "{} of {} tenants need attention: {}",
                failing.len(),
                checks.len(),
                failing.join(", ")
            );
        }
    }
    ExitCode::from(worst)
}

/// What checking one tenant printed, and its exit status (0 good, 1 a permission is missing,
/// 2 no sign-in).
struct TenantCheck {
    out: String,
    err: String,
    code: u8,
    verdict: &'static str,
}

/// Whether a token refusal says the app is not consented in the tenant: AADSTS700016 (the
/// application was not found in the directory: no service principal there yet) or AADSTS65001
/// (consent not granted). Microsoft's AADSTS reference lists both.
fn needs_consent(e: &mfa_auditor::graph::GraphError) -> bool {
    match e {
        mfa_auditor::graph::GraphError::Token {
            codes, description, ..
        } => {
            codes.iter().any(|c| matches!(c, 700016 | 65001))
                || description.starts_with("AADSTS700016")
                || description.starts_with("AADSTS65001")
        }
        _ => false,
    }
}

/// Checks one tenant: credential, token, permissions.
async fn check_tenant(config: &Config, indent: &str) -> TenantCheck {
    use std::fmt::Write;
    let mut out = String::new();
    let mut err = String::new();
    let fail = |out: String, err: String, verdict| TenantCheck {
        out,
        err,
        code: 2,
        verdict,
    };
    let credential = match config.credential() {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(err, "{indent}error: {e}");
            return fail(out, err, "credential unreadable");
        }
    };
    let client = match GraphClient::new(config.client_config(), credential) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(err, "{indent}error: {e}");
            return fail(out, err, "client");
        }
    };
    let granted = match client.granted_roles().await {
        Ok(g) => g,
        Err(e) => {
            let _ = writeln!(
                err,
                "{indent}error: cannot sign in to tenant {} as app {} ({:?} cloud): {e}",
                config.tenant.tenant_id, config.tenant.client_id, config.tenant.cloud
            );
            if needs_consent(&e) {
                let _ = writeln!(
                    err,
                    "{indent}the app is not consented in this tenant: an admin of the tenant (Privileged Role Administrator or Global Administrator) grants it at\n{indent}  {}",
                    config.admin_consent_url()
                );
                return fail(out, err, "not consented");
            }
            return fail(out, err, "sign-in failed");
        }
    };
    let _ = writeln!(out, "{indent}token: OK");
    let _ = writeln!(
        out,
        "{indent}granted application permissions: {}",
        if granted.is_empty() {
            "(none)".to_string()
        } else {
            granted.join(", ")
        }
    );
    let options = config.collect_options();
    let missing = collect::missing_permissions(&granted, &options);
    for need in collect::PERMISSION_NEEDS
        .iter()
        .filter(|n| options.reads(n.data_set))
    {
        let _ = match missing.iter().find(|m| m.0 == need.data_set) {
            None => writeln!(out, "{indent}  {:<20} OK", need.data_set.as_str()),
            Some((_, permission, disables)) => writeln!(
                out,
                "{indent}  {:<20} MISSING: grant {permission}; without it: {disables}",
                need.data_set.as_str()
            ),
        };
    }
    if let Some(advice) = collect::licence_advice(&granted, &options) {
        let _ = writeln!(out, "{indent}  {:<20} RECOMMENDED: {advice}", "licence");
    }
    if missing.is_empty() {
        return TenantCheck {
            out,
            err,
            code: 0,
            verdict: "OK",
        };
    }
    let _ = writeln!(out, "{indent}{} data set(s) cannot be read: grant the permissions above (admin consent) and run again.", missing.len());
    let _ = writeln!(
        out,
        "{indent}once the app registration lists them, an admin of this tenant consents at\n{indent}  {}",
        config.admin_consent_url()
    );
    TenantCheck {
        out,
        err,
        code: 1,
        verdict: "permissions missing",
    }
}

/// Starts graph-sim in-process on loopback with a realistic tenant and runs the daemon against it
/// on a short schedule, state in a temporary directory.
async fn demo(users: usize, listen: &str, once: bool) -> anyhow::Result<()> {
    const SCALE: f64 = 20.0;
    let sim_config = graph_sim::SimConfig {
        tenant: graph_sim::TenantSource::Generated {
            users,
            seed: 2026,
            profile: graph_sim::Profile::Realistic,
        },
        time_scale: SCALE,
        // Every read permission README recommends, Directory.Read.All (smart lockout) included.
        granted_roles: graph_sim::ALL_READ_PERMISSIONS
            .iter()
            .chain(&["Directory.Read.All"])
            .map(|s| s.to_string())
            .collect(),
        ..graph_sim::SimConfig::default()
    };
    let sim = graph_sim::start(sim_config, ([127, 0, 0, 1], 0).into()).await?;
    println!(
        "graph simulator: {} ({users} users, throttle limits {SCALE}x faster than Graph's)",
        sim.base_url()
    );
    if once {
        let base = url::Url::parse(&sim.base_url())?;
        let mut client_config =
            ClientConfig::new(base.clone(), base, sim.tenant_id(), sim.client_id());
        client_config.pacing = client_config.pacing.scaled(SCALE);
        let client = GraphClient::new(
            client_config,
            Credential::Secret(Secret::new(sim.client_secret())),
        )?;
        let started = Instant::now();
        let report = collect::collect_with_report(
            &client,
            &CollectOptions::default(),
            chrono::Utc::now(),
            sim.tenant_id(),
        )
        .await;
        println!("collected in {:.1} s:", started.elapsed().as_secs_f64());
        for s in &report.sweeps {
            let outcome = s.error.as_deref().unwrap_or("ok");
            println!(
                "  {:<20} {:>7} items {:>7.2} s  {outcome}",
                s.name,
                s.items,
                s.duration.as_secs_f64()
            );
        }
        print_summary(&report.snapshot);
        let stats = client.stats();
        println!(
            "Graph requests: {} ({} throttled)",
            stats.requests_by_endpoint().values().sum::<u64>(),
            stats.total_throttled()
        );
        sim.shutdown().await;
        return Ok(());
    }
    let dir = tempfile_dir()?;
    std::fs::write(dir.join("client-secret"), sim.client_secret())?;
    let config_path = dir.join("config.toml");
    let config = format!(
        "[tenant]\ntenant_id = \"{t}\"\nclient_id = \"{c}\"\ncloud = \"custom\"\ngraph_url = \"{b}\"\nlogin_url = \"{b}\"\nclient_secret_file = \"{secret}\"\n\n\
         [graph.pacing]\ndirectory_ru_per_10s = {d}\nreports_per_10s = {r}\nconditional_access_per_second = {ca}\nauth_methods_per_10s = {d}\n\n\
         [schedule]\ncron = \"*/30 * * * * *\"\nstale_after_seconds = 120\n\n[storage]\npath = \"{state}\"\n\n[http]\nlisten = \"{listen}\"\n",
        t = sim.tenant_id(),
        c = sim.client_id(),
        b = sim.base_url(),
        secret = dir.join("client-secret").display(),
        d = 8000.0 * SCALE,
        r = 5.0 * SCALE,
        ca = SCALE,
        state = dir.join("state.db").display(),
    );
    std::fs::write(&config_path, config)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let daemon = tokio::spawn({
        let config_path = config_path.clone();
        async move { mfa_auditor::daemon::run(&config_path, Some(tx)).await }
    });
    if let Ok(addr) = rx.await {
        println!(
            "mfa-auditor daemon: http://{addr}/ (audits every 30 s; config {})",
            config_path.display()
        );
        println!("  metrics:  http://{addr}/metrics");
        println!("  findings: http://{addr}/api/v1/findings?severity=high");
        println!("  audits:   http://{addr}/api/v1/audits");
        println!("Ctrl-C stops it.");
    }
    let result = daemon.await?;
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// A fresh private directory for the demo's state.
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("mfa-auditor-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(dir)
}

fn print_summary(s: &Snapshot) {
    let known: Vec<_> = s
        .users
        .iter()
        .filter_map(|u| u.methods.map(|m| (u, m)))
        .collect();
    let families = |n: usize| known.iter().filter(|(_, m)| m.mfa_families() == n).count();
    let phone_only = known
        .iter()
        .filter(|(_, m)| {
            let mfa = m.mfa_capable();
            !mfa.is_empty()
                && mfa.iter().all(|k| {
                    matches!(
                        k,
                        MethodKind::MobilePhone
                            | MethodKind::AlternateMobilePhone
                            | MethodKind::OfficePhone
                    )
                })
        })
        .count();
    println!(
        "tenant {}: {} users, {} with known methods; audit {}",
        s.tenant_id,
        s.users.len(),
        known.len(),
        if s.is_complete() {
            "complete"
        } else {
            "INCOMPLETE"
        }
    );
    println!("  no MFA method:            {}", families(0));
    println!(
        "  one recovery family only: {} (losing one device locks them out)",
        families(1)
    );
    println!("  phone (SMS/voice) only:   {phone_only}");
    println!(
        "  two or more families:     {}",
        known.len() - families(0) - families(1)
    );
    println!(
        "  admins (tracked roles):   {}",
        s.users.iter().filter(|u| !u.roles.is_empty()).count()
    );
    println!(
        "  holding a TAP:            {}",
        s.users.iter().filter(|u| u.tap.is_some()).count()
    );
    for (name, n) in &s.unknown_methods {
        println!("  unknown method {name:?}: {n} users");
    }
    for (set, gap) in &s.coverage.gaps {
        println!("  not read: {} ({gap:?})", set.as_str());
    }
}
