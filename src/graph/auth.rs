//! Client-credentials tokens (REFERENCE §1): a client secret or a certificate assertion
//! (`private_key_jwt`, PS256 with `x5t#S256`), a federated token (workload identity federation)
//! or a managed identity's token as the assertion, or a managed identity's own token
//! (`identity.rs`); cached and refreshed shortly before expiry.
//!
//! One refresh at a time: concurrent callers wait on the same lock and find the new token.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use rsa::RsaPrivateKey;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::identity::{self, ManagedIdentity, TOKEN_EXCHANGE_AUDIENCE};
use super::GraphError;
use crate::secret::Secret;

/// How the app proves who it is.
#[derive(Clone, Debug)]
pub enum Credential {
    /// A client secret.
    Secret(Secret),
    /// A certificate: the PEM certificate (public) and its PEM private key (secret).
    Certificate {
        certificate_pem: String,
        private_key_pem: Secret,
    },
    /// Workload identity federation: a token from a trusted issuer (a Kubernetes service account
    /// token, a GitHub OIDC token) in this file, read again at every token request (kubelet
    /// rotates it in place) and sent as the app's `client_assertion` (jwt-bearer).
    FederatedTokenFile(PathBuf),
    /// A managed identity's own token for Graph (no app registration; its home tenant only).
    ManagedIdentity(ManagedIdentity),
    /// A managed identity's token for `api://AzureADTokenExchange`, sent as the client assertion
    /// of the app (which trusts the identity through a federated identity credential): the
    /// secret-less multi-tenant setup.
    ManagedIdentityAssertion(ManagedIdentity),
}

impl Credential {
    /// What kind of credential, for messages (never its content).
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::Secret(_) => "client secret",
            Credential::Certificate { .. } => "certificate",
            Credential::FederatedTokenFile(_) => "federated token file",
            Credential::ManagedIdentity(_) => "managed identity",
            Credential::ManagedIdentityAssertion(_) => "managed identity as federated credential",
        }
    }
}

/// A certificate credential, parsed once.
pub(crate) struct CertificateKey {
    /// base64url(SHA-256(certificate DER)).
    x5t_s256: String,
    key: RsaPrivateKey,
}

impl CertificateKey {
    pub(crate) fn parse(
        certificate_pem: &str,
        private_key_pem: &Secret,
    ) -> Result<CertificateKey, GraphError> {
        let cert = pem::parse(certificate_pem)
            .map_err(|e| GraphError::Config(format!("certificate is not valid PEM: {e}")))?;
        if cert.tag() != "CERTIFICATE" {
            return Err(GraphError::Config(format!(
                "certificate PEM holds a {:?}, not a CERTIFICATE",
                cert.tag()
            )));
        }
        let x5t_s256 = B64.encode(Sha256::digest(cert.contents()));
        let pem_text = private_key_pem.expose();
        let key = RsaPrivateKey::from_pkcs8_pem(pem_text)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem_text))
            .map_err(|_| {
                GraphError::Config(
                    "private key is neither a PKCS#8 nor a PKCS#1 RSA private key in PEM".into(),
                )
            })?;
        Ok(CertificateKey { x5t_s256, key })
    }

    /// A signed client assertion for `audience` (the token endpoint URL).
    pub(crate) fn assertion(&self, client_id: &str, audience: &str) -> Result<String, GraphError> {
        let now = chrono::Utc::now().timestamp();
        let header = serde_json::json!({"alg": "PS256", "typ": "JWT", "x5t#S256": self.x5t_s256});
        let claims = serde_json::json!({
            "aud": audience, "iss": client_id, "sub": client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": now, "iat": now, "exp": now + 300,
        });
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signer = rsa::pss::BlindedSigningKey::<Sha256>::new(self.key.clone());
        let signature = signer
            .try_sign_with_rng(&mut rand::thread_rng(), signing_input.as_bytes())
            .map_err(|e| GraphError::Config(format!("cannot sign the client assertion: {e}")))?;
        Ok(format!(
            "{signing_input}.{}",
            B64.encode(signature.to_bytes())
        ))
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(flatten)]
    rest: serde_json::Value,
}

#[derive(Deserialize, Default)]
struct TokenErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default)]
    error_codes: Vec<i64>,
}

struct Cached {
    token: Secret,
    fetched_at: Instant,
    refresh_at: Instant,
}

/// How the token source proves who it is.
enum Kind {
    Secret(Secret),
    Certificate(Box<CertificateKey>),
    FederatedFile(PathBuf),
    ManagedIdentity(ManagedIdentity),
    ManagedIdentityAssertion(ManagedIdentity),
}

/// The token source: fetches, caches, refreshes.
pub(crate) struct TokenSource {
    token_url: String,
    client_id: String,
    scope: String,
    kind: Kind,
    cache: Mutex<Option<Cached>>,
    requests: std::sync::atomic::AtomicU64,
}

impl TokenSource {
    pub(crate) fn new(
        token_url: String,
        client_id: String,
        scope: String,
        credential: &Credential,
    ) -> Result<Self, GraphError> {
        let kind = match credential {
            Credential::Secret(s) => Kind::Secret(s.clone()),
            Credential::Certificate {
                certificate_pem,
                private_key_pem,
            } => Kind::Certificate(Box::new(CertificateKey::parse(
                certificate_pem,
                private_key_pem,
            )?)),
            Credential::FederatedTokenFile(p) => Kind::FederatedFile(p.clone()),
            Credential::ManagedIdentity(mi) => Kind::ManagedIdentity(mi.clone()),
            Credential::ManagedIdentityAssertion(mi) => Kind::ManagedIdentityAssertion(mi.clone()),
        };
        Ok(TokenSource {
            token_url,
            client_id,
            scope,
            kind,
            cache: Mutex::new(None),
            requests: Default::default(),
        })
    }

    /// Token requests made so far.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A valid bearer token, fetching one when there is none or it is about to expire.
    pub(crate) async fn token(&self, http: &reqwest::Client) -> Result<Secret, GraphError> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref() {
            if Instant::now() < c.refresh_at {
                return Ok(c.token.clone());
            }
        }
        let (token, lifetime) = self.fetch(http).await?;
        // Refresh 5 minutes early, or a tenth of the lifetime early for short-lived tokens.
        let margin = Duration::from_secs(300).min(lifetime / 10);
        let now = Instant::now();
        *cache = Some(Cached {
            token: token.clone(),
            fetched_at: now,
            refresh_at: now + lifetime - margin,
        });
        Ok(token)
    }

    /// Forgets the cached token if it is still `rejected` (Graph said it is invalid).
    pub(crate) async fn invalidate(&self, rejected: &Secret) {
        let mut cache = self.cache.lock().await;
        if cache.as_ref().is_some_and(|c| &c.token == rejected) {
            *cache = None;
        }
    }

    /// Forgets the cached token if it was fetched before `sent` (a request sent at `sent` was
    /// refused for its token; a newer token is already a refresh).
    pub(crate) async fn invalidate_fetched_before(&self, sent: Instant) {
        let mut cache = self.cache.lock().await;
        if cache.as_ref().is_some_and(|c| c.fetched_at <= sent) {
            *cache = None;
        }
    }

    async fn fetch(&self, http: &reqwest::Client) -> Result<(Secret, Duration), GraphError> {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut form: Vec<(&str, String)> = vec![
            ("client_id", self.client_id.clone()),
            ("scope", self.scope.clone()),
            ("grant_type", "client_credentials".into()),
        ];
        let assertion = match &self.kind {
            Kind::Secret(secret) => {
                form.push(("client_secret", secret.expose().to_owned()));
                None
            }
            Kind::Certificate(cert) => Some(Secret::new(
                cert.assertion(&self.client_id, &self.token_url)?,
            )),
            Kind::FederatedFile(path) => Some(identity::read_federated_token(path)?),
            Kind::ManagedIdentity(mi) => {
                // The resource is the Graph host: the scope without `/.default`.
                let resource = self.scope.strip_suffix("/.default").unwrap_or(&self.scope);
                // Boxed: this future sits inside every Graph request's; keep theirs small.
                return Box::pin(identity::managed_identity_token(http, mi, resource)).await;
            }
            Kind::ManagedIdentityAssertion(mi) => Some(
                Box::pin(identity::managed_identity_token(
                    http,
                    mi,
                    TOKEN_EXCHANGE_AUDIENCE,
                ))
                .await?
                .0,
            ),
        };
        if let Some(assertion) = assertion {
            form.push((
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
            ));
            form.push(("client_assertion", assertion.expose().to_owned()));
        }
        let transport = |e: reqwest::Error| GraphError::Transport {
            endpoint: "token".into(),
            message: super::client::describe_reqwest_error(&e),
        };
        let response = http
            .post(&self.token_url)
            .form(&form)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport)?;
        if !status.is_success() {
            let err: TokenErrorBody = serde_json::from_slice(&body).unwrap_or_default();
            return Err(GraphError::Token {
                error: if err.error.is_empty() {
                    format!("HTTP {}", status.as_u16())
                } else {
                    err.error
                },
                // The first line carries the AADSTS code and text; trace ids follow on the next lines.
                description: err
                    .error_description
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned(),
                codes: err.error_codes,
            });
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| GraphError::Decode {
                endpoint: "token".into(),
                message: format!("token response: {e}"),
            })?;
        // `expires_in` as a number or a string of one.
        let lifetime = identity::lifetime_of(&parsed.rest);
        Ok((Secret::new(parsed.access_token), lifetime))
    }
}

/// The `roles` claim of an access token (application permissions granted). The token is read,
/// not validated: it is our own, fresh from the token endpoint.
pub fn roles_claim(access_token: &str) -> Result<Vec<String>, GraphError> {
    let decode_err = |m: &str| GraphError::Decode {
        endpoint: "token".into(),
        message: format!("access token: {m}"),
    };
    let payload = access_token
        .split('.')
        .nth(1)
        .ok_or_else(|| decode_err("not a JWT"))?;
    let bytes = B64
        .decode(payload.trim_end_matches('='))
        .map_err(|_| decode_err("payload is not base64url"))?;
    #[derive(Deserialize)]
    struct Claims {
        #[serde(default)]
        roles: Vec<String>,
    }
    let claims: Claims =
        serde_json::from_slice(&bytes).map_err(|_| decode_err("payload is not JSON claims"))?;
    Ok(claims.roles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_read_from_the_payload() {
        let payload = B64.encode(r#"{"aud":"https://graph.microsoft.com","roles":["User.Read.All","AuditLog.Read.All"]}"#);
        let token = format!("e30.{payload}.sig");
        assert_eq!(
            roles_claim(&token).ok(),
            Some(vec![
                "User.Read.All".to_string(),
                "AuditLog.Read.All".to_string()
            ])
        );
        let no_roles = format!("e30.{}.sig", B64.encode("{}"));
        assert_eq!(roles_claim(&no_roles).ok(), Some(vec![]));
        assert!(roles_claim("garbage").is_err());
    }

    #[test]
    fn credential_debug_hides_the_secret() {
        let c = Credential::Secret(Secret::new("s3cr3t-value"));
        assert!(!format!("{c:?}").contains("s3cr3t"));
        let c = Credential::Certificate {
            certificate_pem: "CERT".into(),
            private_key_pem: Secret::new("KEYMATERIAL"),
        };
        assert!(!format!("{c:?}").contains("KEYMATERIAL"));
    }
}
