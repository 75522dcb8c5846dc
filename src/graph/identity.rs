//! Credentials without secrets (docs/graph.md, "Credentials"): workload identity federation (a
//! federated token file, re-read at every token request) and managed identity (IMDS, the App
//! Service / Container Apps / Functions endpoint, the Azure Arc endpoint), found from the
//! environment as the Azure SDKs find them.
//!
//! Nothing here logs a token, a federated assertion, the App Service identity header or the Arc
//! key: errors name the endpoint and the answer's error text only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use url::Url;

use super::GraphError;
use crate::secret::Secret;

/// The audience of a managed identity's token used as a federated client assertion
/// ("Configure an application to trust a managed identity").
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// IMDS's host (Azure VMs, scale sets, AKS node pools).
pub const IMDS_HOST: &str = "http://169.254.169.254";
/// IMDS's token path (also the Azure Arc agent's).
pub const IMDS_TOKEN_PATH: &str = "/metadata/identity/oauth2/token";
/// Where the Azure Arc agent writes the challenge keys on Linux (the Azure SDKs refuse any other
/// directory: an endpoint cannot make us read and send an arbitrary file).
pub const ARC_KEY_DIR: &str = "/var/opt/azcmagent/tokens";

/// Attempts at a managed-identity token when the endpoint answers a transient error.
const MI_ATTEMPTS: u32 = 4;
/// The first wait between them (doubling).
const MI_BACKOFF: Duration = Duration::from_millis(500);

/// Which managed-identity endpoint this host offers.
#[derive(Clone, Debug)]
pub enum ManagedIdentityEndpoint {
    /// App Service, Container Apps, Functions: `IDENTITY_ENDPOINT` + `IDENTITY_HEADER`
    /// (api-version 2019-08-01, the header sent as `X-IDENTITY-HEADER`).
    AppService { endpoint: Url, header: Secret },
    /// Azure Arc-enabled servers: `IDENTITY_ENDPOINT` + `IMDS_ENDPOINT` (api-version 2019-11-01;
    /// a 401 challenge names a key file in `key_dir` whose content is sent back as
    /// `Authorization: Basic`).
    Arc { endpoint: Url, key_dir: PathBuf },
    /// The instance metadata service (api-version 2018-02-01, `Metadata: true`), its host from
    /// `AZURE_POD_IDENTITY_AUTHORITY_HOST` when set.
    Imds { endpoint: Url },
}

impl ManagedIdentityEndpoint {
    /// The endpoint the environment names, in the Azure SDKs' order: `IDENTITY_ENDPOINT` with
    /// `IDENTITY_HEADER` (App Service), `IDENTITY_ENDPOINT` with `IMDS_ENDPOINT` (Arc), else IMDS.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        let var = |n: &str| env(n).filter(|v| !v.trim().is_empty());
        let parse = |name: &str, v: &str| {
            Url::parse(v.trim()).map_err(|e| format!("{name}={v:?} is not a URL: {e}"))
        };
        if let Some(endpoint) = var("IDENTITY_ENDPOINT") {
            let endpoint = parse("IDENTITY_ENDPOINT", &endpoint)?;
            if var("IDENTITY_HEADER").is_some() && var("IDENTITY_SERVER_THUMBPRINT").is_some() {
                return Err("IDENTITY_SERVER_THUMBPRINT is set: a Service Fabric managed identity, which is not supported; use workload identity or a certificate".into());
            }
            if let Some(header) = var("IDENTITY_HEADER") {
                return Ok(ManagedIdentityEndpoint::AppService {
                    endpoint,
                    header: Secret::new(header),
                });
            }
            if var("IMDS_ENDPOINT").is_some() {
                return Ok(ManagedIdentityEndpoint::Arc {
                    endpoint,
                    key_dir: PathBuf::from(ARC_KEY_DIR),
                });
            }
            return Err(
                "IDENTITY_ENDPOINT is set without IDENTITY_HEADER (App Service) or IMDS_ENDPOINT (Azure Arc)"
                    .into(),
            );
        }
        let host = var("AZURE_POD_IDENTITY_AUTHORITY_HOST").unwrap_or_else(|| IMDS_HOST.into());
        let url = format!("{}{IMDS_TOKEN_PATH}", host.trim().trim_end_matches('/'));
        Ok(ManagedIdentityEndpoint::Imds {
            endpoint: parse("AZURE_POD_IDENTITY_AUTHORITY_HOST", &url)?,
        })
    }

    /// A short name for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            ManagedIdentityEndpoint::AppService { .. } => "App Service",
            ManagedIdentityEndpoint::Arc { .. } => "Azure Arc",
            ManagedIdentityEndpoint::Imds { .. } => "IMDS",
        }
    }
}

/// A managed identity: system-assigned (`client_id` `None`) or user-assigned, and its endpoint.
#[derive(Clone, Debug)]
pub struct ManagedIdentity {
    pub client_id: Option<String>,
    pub endpoint: ManagedIdentityEndpoint,
}

fn mi_error(endpoint: &ManagedIdentityEndpoint, error: String, description: String) -> GraphError {
    GraphError::Token {
        error: format!("managed identity ({}): {error}", endpoint.kind()),
        description,
        codes: Vec::new(),
    }
}

/// Seconds in a JSON value that may be a number or a string of one (IMDS and App Service send
/// strings, others numbers).
fn seconds(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// How long a token answer is good for: `expires_in`, else `expires_on` (epoch seconds) − now,
/// else an hour.
pub(crate) fn lifetime_of(body: &Value) -> Duration {
    let secs = seconds(body.get("expires_in"))
        .or_else(|| seconds(body.get("expires_on")).map(|on| on - chrono::Utc::now().timestamp()));
    Duration::from_secs(secs.unwrap_or(3599).max(1) as u64)
}

/// The error text of a managed-identity endpoint's answer: `{error, error_description}` (IMDS,
/// Arc) or `{statusCode, message}` (App Service); its first line only.
fn error_text(status: u16, body: &[u8]) -> (String, String) {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let error = s("error").unwrap_or_else(|| format!("HTTP {status}"));
    let description = s("error_description")
        .or_else(|| s("message"))
        .or_else(|| {
            v.pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_default();
    (
        error,
        description.lines().next().unwrap_or("").trim().to_owned(),
    )
}

/// The key file an Arc challenge names (`WWW-Authenticate: Basic realm=<path>`), checked as the
/// Azure SDKs check it: in `key_dir`, a `.key` file, at most 4,096 bytes.
fn arc_key(challenge: Option<&str>, key_dir: &Path) -> Result<Secret, String> {
    let challenge = challenge.ok_or("a 401 without WWW-Authenticate")?;
    let path = challenge
        .trim()
        .strip_prefix("Basic realm=")
        .ok_or("WWW-Authenticate is not `Basic realm=<file>`")?;
    let path = Path::new(path.trim().trim_matches('"'));
    if path.parent() != Some(key_dir) {
        return Err(format!(
            "the challenge names {}, not a file in {}",
            path.display(),
            key_dir.display()
        ));
    }
    if path.extension().and_then(|e| e.to_str()) != Some("key") {
        return Err(format!(
            "the challenge names {}, not a .key file",
            path.display()
        ));
    }
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > 4096 {
        return Err(format!("{} is larger than 4,096 bytes", path.display()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Secret::new(text.trim().to_owned()))
}

/// A token for `resource` (the Graph host, or [`TOKEN_EXCHANGE_AUDIENCE`]) from the managed
/// identity's endpoint, and how long it is good for.
pub(crate) async fn managed_identity_token(
    http: &reqwest::Client,
    mi: &ManagedIdentity,
    resource: &str,
) -> Result<(Secret, Duration), GraphError> {
    let endpoint = &mi.endpoint;
    let transport = |e: reqwest::Error| GraphError::Transport {
        endpoint: format!("managed identity ({})", endpoint.kind()),
        message: super::client::describe_reqwest_error(&e),
    };
    let (url, api_version) = match endpoint {
        ManagedIdentityEndpoint::AppService { endpoint, .. } => (endpoint, "2019-08-01"),
        ManagedIdentityEndpoint::Arc { endpoint, .. } => (endpoint, "2019-11-01"),
        ManagedIdentityEndpoint::Imds { endpoint } => (endpoint, "2018-02-01"),
    };
    let mut url = url.clone();
    url.query_pairs_mut()
        .append_pair("api-version", api_version)
        .append_pair("resource", resource);
    if let Some(id) = &mi.client_id {
        if matches!(endpoint, ManagedIdentityEndpoint::Arc { .. }) {
            return Err(GraphError::Config(
                "Azure Arc supports only the system-assigned managed identity: remove managed_identity_client_id".into(),
            ));
        }
        url.query_pairs_mut().append_pair("client_id", id);
    }
    let request = |authorization: Option<&Secret>| {
        let mut r = http.get(url.clone());
        match endpoint {
            ManagedIdentityEndpoint::AppService { header, .. } => {
                let mut v =
                    reqwest::header::HeaderValue::from_str(header.expose()).map_err(|_| {
                        GraphError::Config("IDENTITY_HEADER is not a header value".into())
                    })?;
                v.set_sensitive(true);
                r = r.header("X-IDENTITY-HEADER", v);
            }
            ManagedIdentityEndpoint::Arc { .. } | ManagedIdentityEndpoint::Imds { .. } => {
                r = r.header("Metadata", "true");
            }
        }
        if let Some(key) = authorization {
            let mut v = reqwest::header::HeaderValue::from_str(&format!("Basic {}", key.expose()))
                .map_err(|_| GraphError::Config("the Arc key is not a header value".into()))?;
            v.set_sensitive(true);
            r = r.header(reqwest::header::AUTHORIZATION, v);
        }
        Ok::<_, GraphError>(r)
    };
    // One attempt: the request, and for Arc the challenge and the request with its key.
    let attempt = || async {
        let mut response = request(None)?.send().await.map_err(transport)?;
        if let ManagedIdentityEndpoint::Arc { key_dir, .. } = endpoint {
            if response.status() == reqwest::StatusCode::UNAUTHORIZED {
                let challenge = response
                    .headers()
                    .get(reqwest::header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let key = arc_key(challenge.as_deref(), key_dir)
                    .map_err(|why| mi_error(endpoint, "challenge refused".into(), why))?;
                response = request(Some(&key))?.send().await.map_err(transport)?;
            }
        }
        let status = response.status();
        let body = response.bytes().await.map_err(transport)?;
        Ok::<_, GraphError>((status, body))
    };
    // IMDS's retry guidance: 404 (updating), 410 (being updated, back within 70 s), 429 and 5xx
    // are transient; so is a connection that failed.
    let mut tries = 0;
    let (status, body) = loop {
        tries += 1;
        let sent = attempt().await;
        let transient = match &sent {
            Ok((s, _)) => matches!(s.as_u16(), 404 | 410 | 429 | 500..=599),
            Err(GraphError::Transport { .. }) => true,
            Err(_) => false,
        };
        if !transient || tries >= MI_ATTEMPTS {
            break sent?;
        }
        tokio::time::sleep(MI_BACKOFF * 2u32.pow(tries - 1)).await;
    };
    if !status.is_success() {
        let (error, description) = error_text(status.as_u16(), &body);
        return Err(mi_error(endpoint, error, description));
    }
    let v: Value = serde_json::from_slice(&body).map_err(|e| GraphError::Decode {
        endpoint: format!("managed identity ({})", endpoint.kind()),
        message: format!("token response: {e}"),
    })?;
    let token = v
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| GraphError::Decode {
            endpoint: format!("managed identity ({})", endpoint.kind()),
            message: "token response has no access_token".into(),
        })?;
    Ok((Secret::new(token), lifetime_of(&v)))
}

/// The federated token in `path`, read now (kubelet rotates the projected token in place). A
/// small local file, read once an hour or so: read in place.
pub(crate) fn read_federated_token(path: &Path) -> Result<Secret, GraphError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        GraphError::Config(format!(
            "cannot read the federated token file {}: {e}",
            path.display()
        ))
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(GraphError::Config(format!(
            "the federated token file {} is empty",
            path.display()
        )));
    }
    Ok(Secret::new(token.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |n| {
            pairs
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_endpoint_is_found_as_the_sdks_find_it() {
        let e = ManagedIdentityEndpoint::from_env(&env(&[
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:41741/msi/token"),
            ("IDENTITY_HEADER", "hdr"),
            ("IMDS_ENDPOINT", "http://127.0.0.1:1"),
        ]))
        .expect("app service");
        assert!(
            matches!(e, ManagedIdentityEndpoint::AppService { .. }),
            "{e:?}"
        );
        assert!(!format!("{e:?}").contains("hdr"));
        let e = ManagedIdentityEndpoint::from_env(&env(&[
            (
                "IDENTITY_ENDPOINT",
                "http://localhost:40342/metadata/identity/oauth2/token",
            ),
            ("IMDS_ENDPOINT", "http://localhost:40342"),
        ]))
        .expect("arc");
        assert!(
            matches!(&e, ManagedIdentityEndpoint::Arc { key_dir, .. } if key_dir == Path::new(ARC_KEY_DIR)),
            "{e:?}"
        );
        let e = ManagedIdentityEndpoint::from_env(&env(&[])).expect("imds");
        assert!(
            matches!(&e, ManagedIdentityEndpoint::Imds { endpoint } if endpoint.as_str() == "http://169.254.169.254/metadata/identity/oauth2/token"),
            "{e:?}"
        );
        let e = ManagedIdentityEndpoint::from_env(&env(&[(
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            "http://127.0.0.1:9/",
        )]))
        .expect("imds on loopback");
        assert!(
            matches!(&e, ManagedIdentityEndpoint::Imds { endpoint } if endpoint.as_str() == "http://127.0.0.1:9/metadata/identity/oauth2/token"),
            "{e:?}"
        );
        assert!(
            ManagedIdentityEndpoint::from_env(&env(&[("IDENTITY_ENDPOINT", "http://x/")])).is_err()
        );
        let e = ManagedIdentityEndpoint::from_env(&env(&[
            (
                "IDENTITY_ENDPOINT",
                "https://10.0.0.4:2377/metadata/identity/oauth2/token",
            ),
            ("IDENTITY_HEADER", "h"),
            ("IDENTITY_SERVER_THUMBPRINT", "AB12"),
        ]))
        .expect_err("service fabric");
        assert!(e.contains("Service Fabric"), "{e}");
    }

    #[test]
    fn lifetimes_are_read_from_strings_or_numbers() {
        let now = chrono::Utc::now().timestamp();
        let l = |v: Value| lifetime_of(&v).as_secs();
        assert_eq!(l(serde_json::json!({"expires_in": "86399"})), 86399);
        assert_eq!(l(serde_json::json!({"expires_in": 600})), 600);
        let on = l(serde_json::json!({"expires_on": (now + 1000).to_string()}));
        assert!((990..=1000).contains(&on), "{on}");
        let on = l(serde_json::json!({"expires_on": now + 500}));
        assert!((490..=500).contains(&on), "{on}");
        assert_eq!(l(serde_json::json!({})), 3599);
        assert_eq!(l(serde_json::json!({"expires_on": now - 100})), 1);
    }

    #[test]
    fn an_arc_challenge_may_only_name_a_small_key_file_in_the_agents_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("abc.key");
        std::fs::write(&key, "s3cr3t\n").expect("key");
        let realm = format!("Basic realm={}", key.display());
        assert_eq!(
            arc_key(Some(&realm), dir.path()).expect("ok").expose(),
            "s3cr3t"
        );
        let other = tempfile::tempdir().expect("tempdir");
        assert!(arc_key(Some(&realm), other.path())
            .expect_err("elsewhere")
            .contains("not a file in"));
        let txt = dir.path().join("abc.txt");
        std::fs::write(&txt, "x").expect("txt");
        assert!(
            arc_key(Some(&format!("Basic realm={}", txt.display())), dir.path())
                .expect_err("not .key")
                .contains("not a .key file")
        );
        let big = dir.path().join("big.key");
        std::fs::write(&big, vec![b'a'; 5000]).expect("big");
        assert!(
            arc_key(Some(&format!("Basic realm={}", big.display())), dir.path())
                .expect_err("too big")
                .contains("4,096")
        );
        assert!(arc_key(None, dir.path()).is_err());
        assert!(arc_key(Some("Bearer x"), dir.path()).is_err());
    }
}
