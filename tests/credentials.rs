//! Credentials without secrets against graph-sim: a federated token file (workload identity
//! federation, re-read at every token request, refused like Entra refuses a wrong issuer,
//! subject, audience or an expired token) and managed identity at the IMDS, App Service and Azure
//! Arc endpoints, through `GraphClient`; a managed identity's token as the app's assertion; and
//! the daemon signing in with workload identity without ever logging a token.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use graph_sim::identity::entra_issuer;
use graph_sim::{FederatedCredential, Profile, SimConfig, SimHandle, SimManagedIdentity};
use mfa_auditor::config::Config;
use mfa_auditor::graph::{Credential, GraphClient, ManagedIdentityEndpoint, ThrottleClass};
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};

const ISSUER: &str = "https://oidc.prod-aks.azure.example/3f1c0c1e-issuer/";
const SUBJECT: &str = "system:serviceaccount:mfa:auditor";
const AUDIENCE: &str = "api://AzureADTokenExchange";

/// An issuer's RSA key pair made by openssl: (private key PKCS#8 PEM, public key SPKI PEM).
fn issuer_keys(dir: &Path, name: &str) -> (String, String) {
    let key = dir.join(format!("{name}.key"));
    let made = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(made.success());
    let public = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .output()
        .expect("openssl runs");
    assert!(public.status.success());
    (
        std::fs::read_to_string(&key).expect("key"),
        String::from_utf8(public.stdout).expect("PEM"),
    )
}

/// An RS256 JWT from the issuer whose private key is `key_pem`.
fn jwt(key_pem: &str, iss: &str, sub: &str, aud: &str, exp_in: i64) -> String {
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(key_pem).expect("private key");
    let now = chrono::Utc::now().timestamp();
    let header = B64.encode(r#"{"alg":"RS256","typ":"JWT","kid":"k1"}"#);
    let claims = B64.encode(
        serde_json::json!({
            "iss": iss, "sub": sub, "aud": [aud], "iat": now - 10, "nbf": now - 10,
            "exp": now + exp_in, "jti": uuid::Uuid::new_v4().to_string(),
        })
        .to_string(),
    );
    let input = format!("{header}.{claims}");
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key);
    format!(
        "{input}.{}",
        B64.encode(signer.sign(input.as_bytes()).to_bytes())
    )
}

/// A simulator with the app trusting ISSUER/SUBJECT and a system-assigned managed identity.
async fn start_sim(public_pem: Option<&str>, tweak: impl FnOnce(&mut SimConfig)) -> SimHandle {
    common::sim(30, 3, Profile::Realistic, |c| {
        if let Some(pem) = public_pem {
            c.federated_credentials = vec![FederatedCredential::new(
                ISSUER,
                SUBJECT,
                Some(pem.to_string()),
            )];
        }
        c.managed_identity = Some(SimManagedIdentity::default());
        tweak(c)
    })
    .await
}

/// A config for `sim` whose `[tenant]` credential lines are `credential`.
fn config(sim: &SimHandle, client_id: bool, credential: &str) -> Config {
    let client = if client_id {
        format!("client_id = \"{}\"\n", sim.client_id())
    } else {
        String::new()
    };
    let text = format!(
        "[tenant]\ntenant_id = \"{}\"\n{client}cloud = \"custom\"\ngraph_url = \"{b}\"\nlogin_url = \"{b}\"\n{credential}\n",
        sim.tenant_id(),
        b = sim.base_url()
    );
    Config::parse(&text, "test.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn client(config: &Config, credential: Credential) -> GraphClient {
    let mut c = config.client_config();
    c.pacing = c.pacing.scaled(common::SCALE);
    c.max_retries = 0;
    GraphClient::new(c, credential).expect("client")
}

fn env(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
    move |n| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone())
}

/// Signs in and reads one page of users: the roles granted.
async fn sign_in(client: &GraphClient) -> Result<Vec<String>, String> {
    let roles = client.granted_roles().await.map_err(|e| e.to_string())?;
    let users: serde_json::Value = client
        .get_json(ThrottleClass::Directory, "users", "/v1.0/users?$top=1")
        .await
        .map_err(|e| e.to_string())?;
    assert!(
        users["value"].as_array().is_some_and(|v| !v.is_empty()),
        "{users}"
    );
    Ok(roles)
}

#[tokio::test]
async fn a_federated_token_file_signs_in_and_is_read_again_at_every_token_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (private, public) = issuer_keys(dir.path(), "issuer");
    let sim = start_sim(Some(&public), |c| c.token_lifetime = Duration::from_secs(1)).await;
    let file = dir.path().join("azure-identity-token");
    std::fs::write(&file, jwt(&private, ISSUER, SUBJECT, AUDIENCE, 3600)).expect("token");
    // AKS: `workload_identity = true` and the webhook's AZURE_FEDERATED_TOKEN_FILE.
    let cfg = config(&sim, true, "workload_identity = true");
    let path = file.display().to_string();
    let cred = cfg
        .credential_with(None, &env(vec![("AZURE_FEDERATED_TOKEN_FILE", path)]))
        .expect("credential");
    assert!(
        matches!(&cred, Credential::FederatedTokenFile(p) if p == &file),
        "{cred:?}"
    );
    let c = client(&cfg, cred);
    let roles = sign_in(&c)
        .await
        .expect("signed in with the federated token");
    assert!(roles.iter().any(|r| r == "User.Read.All"), "{roles:?}");
    assert_eq!(sim.stats().tokens_issued, 1);

    // kubelet rotates the file; the next token request reads the new one (here: another
    // service account's, which the app does not trust).
    std::fs::write(
        &file,
        jwt(
            &private,
            ISSUER,
            "system:serviceaccount:mfa:other",
            AUDIENCE,
            3600,
        ),
    )
    .expect("rotate");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let e = c
        .granted_roles()
        .await
        .expect_err("the rotated token is refused");
    assert!(
        e.to_string().contains("AADSTS700213") && e.to_string().contains("mfa:other"),
        "{e}"
    );
    std::fs::write(&file, jwt(&private, ISSUER, SUBJECT, AUDIENCE, 3600)).expect("rotate back");
    sign_in(&c).await.expect("the rotated-back token signs in");
    assert_eq!(sim.stats().tokens_issued, 2);

    // `federated_token_file` names the file itself (GitHub OIDC, another issuer).
    let cfg = config(
        &sim,
        true,
        &format!("federated_token_file = \"{}\"", file.display()),
    );
    let cred = cfg.credential_with(None, &|_| None).expect("credential");
    sign_in(&client(&cfg, cred)).await.expect("signed in");
}

#[tokio::test]
async fn wrong_issuer_subject_audience_signature_or_time_are_refused_with_entras_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (private, public) = issuer_keys(dir.path(), "issuer");
    let (stranger, _) = issuer_keys(dir.path(), "stranger");
    let sim = start_sim(Some(&public), |_| {}).await;
    let file = dir.path().join("token");
    let cases = [
        (
            jwt(
                &private,
                "https://token.actions.githubusercontent.com",
                SUBJECT,
                AUDIENCE,
                600,
            ),
            "AADSTS700211",
        ),
        (
            jwt(&private, ISSUER, "system:serviceaccount:x:y", AUDIENCE, 600),
            "AADSTS700213",
        ),
        (
            jwt(&private, ISSUER, SUBJECT, "api://AzureADMyOrg", 600),
            "AADSTS700212",
        ),
        (
            jwt(&private, ISSUER, SUBJECT, AUDIENCE, -60),
            "AADSTS700024",
        ),
        (
            jwt(&stranger, ISSUER, SUBJECT, AUDIENCE, 600),
            "AADSTS700027",
        ),
    ];
    let cfg = config(
        &sim,
        true,
        &format!("federated_token_file = \"{}\"", file.display()),
    );
    for (token, code) in cases {
        std::fs::write(&file, &token).expect("token");
        let c = client(
            &cfg,
            cfg.credential_with(None, &|_| None).expect("credential"),
        );
        let e = c.granted_roles().await.expect_err(code).to_string();
        assert!(e.contains(code), "{code}: {e}");
        assert!(!e.contains(&token), "the assertion is not in the error");
    }
    assert_eq!(sim.stats().tokens_issued, 0);
    assert_eq!(sim.stats().count("token", 400), 3, "{:?}", sim.stats());
    assert_eq!(sim.stats().count("token", 401), 2, "{:?}", sim.stats());
}

#[tokio::test]
async fn managed_identity_signs_in_at_the_imds_app_service_and_arc_endpoints() {
    let keys = tempfile::tempdir().expect("tempdir");
    let arc_dir = keys.path().to_path_buf();
    let sim = start_sim(None, |c| {
        if let Some(mi) = &mut c.managed_identity {
            mi.arc_key_dir = Some(arc_dir.clone());
        }
    })
    .await;
    let base = sim.base_url();
    let header = SimManagedIdentity::default().app_service_header;
    // A plain managed identity needs no client id.
    let cfg = config(&sim, false, "managed_identity = true");

    // IMDS, its host moved to loopback as the SDKs allow.
    let cred = cfg
        .credential_with(
            None,
            &env(vec![("AZURE_POD_IDENTITY_AUTHORITY_HOST", base.clone())]),
        )
        .expect("imds");
    assert!(
        matches!(&cred, Credential::ManagedIdentity(mi) if matches!(mi.endpoint, ManagedIdentityEndpoint::Imds { .. })),
        "{cred:?}"
    );
    sign_in(&client(&cfg, cred)).await.expect("IMDS");
    assert_eq!(sim.stats().count("managed_identity_imds", 200), 1);

    // IMDS refuses a request without `Metadata: true`.
    let r = reqwest::get(format!(
        "{base}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://graph.microsoft.com"
    ))
    .await
    .expect("answer");
    assert_eq!(r.status().as_u16(), 400);
    assert!(r
        .text()
        .await
        .unwrap_or_default()
        .contains("metadata header"));

    // App Service / Container Apps / Functions.
    let app_env = |h: &str| {
        env(vec![
            ("IDENTITY_ENDPOINT", format!("{base}/msi/token")),
            ("IDENTITY_HEADER", h.to_string()),
        ])
    };
    let cred = cfg
        .credential_with(None, &app_env(&header))
        .expect("app service");
    sign_in(&client(&cfg, cred)).await.expect("App Service");
    let cred = cfg
        .credential_with(None, &app_env("guessed-header-9f8e"))
        .expect("app service");
    let e = client(&cfg, cred)
        .granted_roles()
        .await
        .expect_err("wrong header")
        .to_string();
    assert!(e.contains("App Service") && e.contains("HTTP 401"), "{e}");
    assert!(
        !e.contains("guessed-header-9f8e"),
        "the header is not in the error: {e}"
    );

    // Azure Arc: a 401 challenge names a key file; its content is sent back.
    let cred = cfg
        .credential_with(
            None,
            &env(vec![
                (
                    "IDENTITY_ENDPOINT",
                    format!("{base}/arc/metadata/identity/oauth2/token"),
                ),
                ("IMDS_ENDPOINT", base.clone()),
            ]),
        )
        .expect("arc");
    let Credential::ManagedIdentity(mut mi) = cred else {
        panic!("{cred:?}")
    };
    let ManagedIdentityEndpoint::Arc { key_dir, .. } = &mut mi.endpoint else {
        panic!("{mi:?}")
    };
    assert_eq!(key_dir, Path::new("/var/opt/azcmagent/tokens"));
    *key_dir = keys.path().to_path_buf(); // the test's agent writes its keys here
    sign_in(&client(&cfg, Credential::ManagedIdentity(mi.clone())))
        .await
        .expect("Arc");
    assert_eq!(sim.stats().count("managed_identity_arc", 401), 1);
    assert_eq!(sim.stats().count("managed_identity_arc", 200), 1);
    // A challenge naming a file outside the agent's directory is not followed.
    if let ManagedIdentityEndpoint::Arc { key_dir, .. } = &mut mi.endpoint {
        *key_dir = PathBuf::from("/var/opt/azcmagent/tokens");
    }
    let e = client(&cfg, Credential::ManagedIdentity(mi))
        .granted_roles()
        .await
        .expect_err("elsewhere")
        .to_string();
    assert!(e.contains("challenge refused"), "{e}");

    // A user-assigned identity is named by its client id; another id is not this host's.
    let id = SimManagedIdentity::default().client_id;
    let imds = env(vec![("AZURE_POD_IDENTITY_AUTHORITY_HOST", base.clone())]);
    let cfg = config(
        &sim,
        false,
        &format!("managed_identity_client_id = \"{id}\""),
    );
    sign_in(&client(&cfg, cfg.credential_with(None, &imds).expect("ua")))
        .await
        .expect("user-assigned");
    let cfg = config(
        &sim,
        false,
        "managed_identity_client_id = \"00000000-0000-4000-8000-000000000001\"",
    );
    let e = client(&cfg, cfg.credential_with(None, &imds).expect("ua"))
        .granted_roles()
        .await
        .expect_err("not assigned")
        .to_string();
    assert!(e.contains("Identity not found"), "{e}");
}

#[tokio::test]
async fn a_managed_identity_endpoint_being_updated_is_retried() {
    let sim = start_sim(None, |c| {
        if let Some(mi) = &mut c.managed_identity {
            mi.unavailable_first = 2;
        }
    })
    .await;
    let cfg = config(&sim, false, "managed_identity = true");
    let imds = env(vec![("AZURE_POD_IDENTITY_AUTHORITY_HOST", sim.base_url())]);
    sign_in(&client(
        &cfg,
        cfg.credential_with(None, &imds).expect("imds"),
    ))
    .await
    .expect("signed in after two 503s");
    assert_eq!(sim.stats().count("managed_identity_imds", 503), 2);
    assert_eq!(sim.stats().count("managed_identity_imds", 200), 1);
}

#[tokio::test]
async fn a_managed_identitys_token_is_the_apps_client_assertion() {
    let mi = SimManagedIdentity::default();
    let trusting = |subject: String| {
        move |c: &mut SimConfig| {
            c.federated_credentials = vec![FederatedCredential::new(
                &entra_issuer(&c.tenant_id),
                &subject,
                None,
            )]
        }
    };
    let sim = start_sim(None, trusting(mi.object_id.clone())).await;
    let imds = env(vec![("AZURE_POD_IDENTITY_AUTHORITY_HOST", sim.base_url())]);
    let cfg = config(&sim, true, "managed_identity_assertion = true");
    let cred = cfg.credential_with(None, &imds).expect("credential");
    assert!(
        matches!(cred, Credential::ManagedIdentityAssertion(_)),
        "{cred:?}"
    );
    sign_in(&client(&cfg, cred))
        .await
        .expect("the app signs in with the MI's token");
    assert_eq!(sim.stats().count("managed_identity_imds", 200), 1);
    assert_eq!(sim.stats().count("token", 200), 1);

    // The MSP setup: the identity lives in the home tenant (`sim`); a customer tenant's app
    // (the same multi-tenant app) trusts it, and its token endpoint takes the identity's token.
    let home = sim.tenant_id().to_string();
    let object_id = mi.object_id.clone();
    let customer = common::sim(20, 9, Profile::Realistic, move |c| {
        c.tenant_id = "1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d".into();
        c.federated_credentials = vec![FederatedCredential::new(
            &entra_issuer(&home),
            &object_id,
            None,
        )];
    })
    .await;
    let cfg = config(&customer, true, "managed_identity_assertion = true");
    let cred = cfg.credential_with(None, &imds).expect("credential");
    let c = client(&cfg, cred);
    sign_in(&c)
        .await
        .expect("the customer tenant takes the home tenant's identity");
    assert_eq!(customer.stats().count("token", 200), 1);
    assert_eq!(sim.stats().count("managed_identity_imds", 200), 2);

    // An app trusting another identity refuses this one's token.
    let other = start_sim(
        None,
        trusting("5e0c7a9d-0000-4000-8000-00000000abcd".into()),
    )
    .await;
    let imds = env(vec![(
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        other.base_url(),
    )]);
    let cfg = config(&other, true, "managed_identity_assertion = true");
    let e = client(&cfg, cfg.credential_with(None, &imds).expect("credential"))
        .granted_roles()
        .await
        .expect_err("not trusted")
        .to_string();
    assert!(e.contains("AADSTS700213"), "{e}");
}

/// The daemon binary with `--log-level trace` (and RUST_LOG=trace): its address and a handle on
/// everything it logs.
struct TracedDaemon {
    child: std::process::Child,
    base: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for TracedDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn traced_daemon(config: &Path, env: &[(&str, String)]) -> TracedDaemon {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mfa-auditor"))
        .args(["--log-level", "trace", "run", "--config"])
        .arg(config)
        .env("RUST_LOG", "trace")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env_remove("NOTIFY_SOCKET")
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("daemon starts");
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    for stream in [
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let (sink, tx) = (log.clone(), tx.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if line.contains("listening") || line.contains("addr=") {
                    if let Some(addr) = line.split("addr=").nth(1) {
                        let _ = tx.send(addr.split_whitespace().next().unwrap_or("").to_string());
                    }
                }
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_str(&(line + "\n"));
            }
        });
    }
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the daemon logs its address");
    TracedDaemon {
        child,
        base: format!("http://{addr}"),
        log,
    }
}

/// A daemon config for `sim` whose credential line is `credential` (and whose client id line is
/// dropped when `client_id` is false).
fn daemon_config(dir: &Path, sim: &SimHandle, credential: &str, client_id: bool) -> PathBuf {
    let config = dir.join("config.toml");
    common::daemon::write_config(&config, sim, &dir.join("state.db"), 0, "");
    let mut text = std::fs::read_to_string(&config).expect("config");
    assert!(text.contains("client_secret_env = \"SIM_SECRET\"\n"));
    text = text.replace(
        "client_secret_env = \"SIM_SECRET\"\n",
        &format!("{credential}\n"),
    );
    if !client_id {
        text = text.replace(&format!("client_id = \"{}\"\n", sim.client_id()), "");
    }
    std::fs::write(&config, text).expect("config");
    config
}

/// Waits for the daemon's first complete audit of `sim`; then the log must hold no JWT (every
/// JWT, federated or access token, starts with base64url of `{"`: `eyJ`) nor `secrets`.
async fn audits_and_logs_no_token(daemon: &TracedDaemon, sim: &SimHandle, secrets: &[&str]) {
    let base = daemon.base.clone();
    let series = format!(
        "mfa_auditor_audit_last_success_timestamp_seconds{{tenant=\"{}\"}}",
        sim.tenant_id()
    );
    common::daemon::wait_for("a complete audit", 60, async || {
        let (_, metrics) = common::daemon::get(&format!("{base}/metrics")).await;
        common::daemon::value(&metrics, &series).is_some_and(|v| v > 0.0)
    })
    .await;
    assert!(sim.stats().tokens_issued >= 1);
    let log = daemon.log.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(log.lines().count() > 100, "trace logging is on:\n{log}");
    for s in secrets {
        assert!(!log.contains(s), "a secret was logged: {s}");
    }
    let jwts: Vec<&str> = log.lines().filter(|l| l.contains("eyJ")).collect();
    assert!(jwts.is_empty(), "a JWT was logged:\n{}", jwts.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_signs_in_with_workload_identity_and_never_logs_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (private, public) = issuer_keys(dir.path(), "issuer");
    let sim = start_sim(Some(&public), |_| {}).await;
    let token_file = dir.path().join("azure-identity-token");
    let federated = jwt(&private, ISSUER, SUBJECT, AUDIENCE, 3600);
    std::fs::write(&token_file, &federated).expect("token");
    let config = daemon_config(dir.path(), &sim, "workload_identity = true", true);
    let daemon = traced_daemon(
        &config,
        &[(
            "AZURE_FEDERATED_TOKEN_FILE",
            token_file.display().to_string(),
        )],
    );
    let signature = federated.rsplit('.').next().unwrap_or("x");
    audits_and_logs_no_token(&daemon, &sim, &[&federated, signature]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_signs_in_with_a_managed_identity_and_never_logs_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = start_sim(None, |_| {}).await;
    let header = SimManagedIdentity::default().app_service_header;
    // App Service: the identity header is a secret too.
    let config = daemon_config(dir.path(), &sim, "managed_identity = true", false);
    let daemon = traced_daemon(
        &config,
        &[
            ("IDENTITY_ENDPOINT", format!("{}/msi/token", sim.base_url())),
            ("IDENTITY_HEADER", header.clone()),
        ],
    );
    audits_and_logs_no_token(&daemon, &sim, &[&header]).await;
    assert!(sim.stats().count("managed_identity_app_service", 200) >= 1);
    assert_eq!(
        sim.stats().count("token", 200),
        0,
        "no app token was asked for"
    );
}
