//! TLS and basic authentication for the HTTP listener, read from a Prometheus-style `web.yml`
//! (the exporter-toolkit format):
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt      # relative paths resolve against web.yml's directory
//!   key_file: server.key
//! basic_auth_users:
//!   prometheus: $2y$10$...     # bcrypt hashes, as htpasswd -B makes them
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebFile {
    #[serde(default)]
    tls_server_config: Option<TlsFile>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert_file: PathBuf,
    key_file: PathBuf,
}

/// The parsed web configuration: an optional TLS acceptor and the basic-auth users.
#[derive(Clone, Default)]
pub struct WebConfig {
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    users: Arc<BTreeMap<String, String>>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl WebConfig {
    /// Reads `path`; every error names the file and what is wrong in it.
    pub fn load(path: &Path) -> Result<WebConfig, String> {
        let name = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{name}: cannot read the file: {e}"))?;
        let file: WebFile = serde_yaml::from_str(&text).map_err(|e| format!("{name}: {e}"))?;
        for (user, hash) in &file.basic_auth_users {
            if !hash.starts_with("$2") {
                return Err(format!("{name}: basic_auth_users.{user}: not a bcrypt hash (make one with htpasswd -nBC 10 {user})"));
            }
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let tls = match file.tls_server_config {
            None => None,
            Some(t) => Some(
                acceptor(&base.join(t.cert_file), &base.join(t.key_file))
                    .map_err(|e| format!("{name}: tls_server_config: {e}"))?,
            ),
        };
        Ok(WebConfig {
            tls,
            users: Arc::new(file.basic_auth_users),
        })
    }

    pub fn requires_auth(&self) -> bool {
        !self.users.is_empty()
    }

    /// Whether an `Authorization` header value carries a configured user's password.
    pub fn authorized(&self, authorization: Option<&str>) -> bool {
        let Some(encoded) = authorization.and_then(|v| v.strip_prefix("Basic ")) else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Ok(pair) = String::from_utf8(decoded) else {
            return false;
        };
        let Some((user, password)) = pair.split_once(':') else {
            return false;
        };
        self.users
            .get(user)
            .is_some_and(|hash| bcrypt::verify(password, hash).unwrap_or(false))
    }
}

fn acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, String> {
    let key_file = key;
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let certs = rustls_pemfile::certs(&mut read(cert)?.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", cert.display()));
    }
    let key = rustls_pemfile::private_key(&mut read(key)?.as_slice())
        .map_err(|e| format!("{}: {e}", key.display()))?
        .ok_or_else(|| format!("{}: no private key in it", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            format!(
                "tls_server_config: certificate {} and key {} do not fit together: {e}",
                cert.display(),
                key_file.display()
            )
        })?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Middleware: 401 with a challenge unless the request carries a configured user's password.
pub async fn basic_auth(
    axum::extract::State(web): axum::extract::State<WebConfig>,
    request: Request,
    next: Next,
) -> Response {
    if !web.requires_auth() {
        return next.run(request).await;
    }
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if web.authorized(header) {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"mfa-auditor\"")],
        "unauthorized\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_checks_bcrypt_hashes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hash = bcrypt::hash("s3cret", 4).expect("hash");
        let path = dir.path().join("web.yml");
        std::fs::write(&path, format!("basic_auth_users:\n  prometheus: {hash}\n")).expect("write");
        let web = WebConfig::load(&path).expect("valid");
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert!(web.authorized(Some(&format!("Basic {}", b64("prometheus:s3cret")))));
        assert!(!web.authorized(Some(&format!("Basic {}", b64("prometheus:wrong")))));
        assert!(!web.authorized(Some(&format!("Basic {}", b64("mallory:s3cret")))));
        assert!(!web.authorized(None));
        assert!(
            !format!("{web:?}").contains(&hash),
            "hashes stay out of Debug"
        );
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("web.yml");
        std::fs::write(&path, "basic_auth_users:\n  prometheus: plaintext\n").expect("write");
        assert!(WebConfig::load(&path)
            .expect_err("refused")
            .contains("basic_auth_users.prometheus: not a bcrypt hash"));
        std::fs::write(
            &path,
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n",
        )
        .expect("write");
        let e = WebConfig::load(&path).expect_err("refused");
        assert!(
            e.contains("tls_server_config") && e.contains("missing.crt"),
            "{e}"
        );
        std::fs::write(&path, "tls_server_confg: {}\n").expect("write");
        assert!(WebConfig::load(&path)
            .expect_err("refused")
            .contains("unknown field `tls_server_confg`"));
    }
}
