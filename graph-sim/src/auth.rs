//! The token endpoint (REFERENCE §1): client credentials with a secret or a certificate
//! assertion, answered with Entra's success and AADSTS error shapes; and the check of the bearer
//! tokens it issued.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The registered certificate: its thumbprints and public key.
pub struct RegisteredCert {
    pub x5t_s256: String,
    pub x5t_sha1: String,
    pub key: rsa::RsaPublicKey,
}

impl RegisteredCert {
    pub fn from_pem(pem_text: &str) -> anyhow::Result<RegisteredCert> {
        use x509_cert::der::{Decode, Encode};
        let block = pem::parse(pem_text)?;
        let cert = x509_cert::Certificate::from_der(block.contents())?;
        let spki = cert.tbs_certificate.subject_public_key_info.to_der()?;
        let key = rsa::RsaPublicKey::from_public_key_der(&spki)?;
        let x5t_sha1 = B64.encode(<sha1::Sha1 as Digest>::digest(block.contents()));
        Ok(RegisteredCert {
            x5t_s256: B64.encode(Sha256::digest(block.contents())),
            x5t_sha1,
            key,
        })
    }
}

/// An AADSTS error answer: (HTTP status, body).
pub fn aadsts(status: u16, error: &str, code: u32, text: &str) -> (u16, Value) {
    let now = chrono::Utc::now();
    let trace = uuid::Uuid::new_v4();
    let corr = uuid::Uuid::new_v4();
    (
        status,
        json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {text}\r\nTrace ID: {trace}\r\nCorrelation ID: {corr}\r\nTimestamp: {}", now.format("%Y-%m-%d %H:%M:%SZ")),
            "error_codes": [code],
            "timestamp": now.format("%Y-%m-%d %H:%M:%SZ").to_string(),
            "trace_id": trace.to_string(),
            "correlation_id": corr.to_string(),
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

/// What the token endpoint needs to know.
pub struct Issuer<'a> {
    pub tenant_id: &'a str,
    pub tenant_domain: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a str,
    pub cert: Option<&'a RegisteredCert>,
    pub roles: &'a [String],
    pub lifetime_secs: i64,
    pub key: &'a [u8],
    /// The token endpoint URL as the client sees it (the assertion's `aud`).
    pub token_url: String,
    /// The app's federated identity credentials.
    pub federated: &'a [crate::identity::FederatedCredential],
}

#[derive(Deserialize)]
struct AssertionHeader {
    alg: String,
    #[serde(rename = "x5t#S256")]
    x5t_s256: Option<String>,
    x5t: Option<String>,
}

#[derive(Deserialize)]
struct AssertionClaims {
    aud: String,
    iss: String,
    sub: String,
    exp: i64,
    nbf: Option<i64>,
}

impl Issuer<'_> {
    /// Answers `POST /{tenant}/oauth2/v2.0/token`.
    pub fn token(
        &self,
        path_tenant: &str,
        form: &[(String, String)],
        basic: Option<(String, String)>,
    ) -> (u16, Value) {
        let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if !path_tenant.eq_ignore_ascii_case(self.tenant_id)
            && !path_tenant.eq_ignore_ascii_case(self.tenant_domain)
        {
            return aadsts(
                400,
                "invalid_request",
                90002,
                &format!("Tenant '{path_tenant}' not found."),
            );
        }
        if field("grant_type") != Some("client_credentials") {
            return aadsts(
                400,
                "unsupported_grant_type",
                70003,
                "The app requested an unsupported grant type.",
            );
        }
        let (client_id, basic_secret) = match &basic {
            Some((id, secret)) => (Some(id.as_str()), Some(secret.as_str())),
            None => (field("client_id"), None),
        };
        if client_id
            .map(|c| !c.eq_ignore_ascii_case(self.client_id))
            .unwrap_or(true)
        {
            return aadsts(
                400,
                "unauthorized_client",
                700016,
                "Application was not found in the directory.",
            );
        }
        match field("scope") {
            Some(s) if s.ends_with("/.default") => {}
            _ => {
                return aadsts(
                    400,
                    "invalid_scope",
                    70011,
                    "The provided value for scope is not valid.",
                )
            }
        }
        if let Some(secret) = basic_secret.or(field("client_secret")) {
            if secret != self.client_secret || self.client_secret.is_empty() {
                return aadsts(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided.",
                );
            }
        } else if let Some(assertion) = field("client_assertion") {
            if field("client_assertion_type")
                != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            {
                return aadsts(
                    400,
                    "invalid_request",
                    9002313,
                    "Invalid request. client_assertion_type is wrong.",
                );
            }
            // A federated assertion comes from another issuer; a certificate assertion's issuer
            // is the client id itself.
            let federated = crate::identity::unverified_issuer(assertion)
                .is_some_and(|iss| !iss.eq_ignore_ascii_case(self.client_id));
            if federated {
                if let Err((code, text)) =
                    crate::identity::check_federated(self.federated, assertion)
                {
                    let (status, error) = match code {
                        700211..=700213 => (400, "invalid_request"),
                        _ => (401, "invalid_client"),
                    };
                    return aadsts(status, error, code, &text);
                }
            } else if let Err(why) = self.check_assertion(assertion) {
                return aadsts(
                    401,
                    "invalid_client",
                    700027,
                    &format!("Client assertion failed signature validation. {why}"),
                );
            }
        } else {
            return aadsts(400, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.");
        }
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "aud": "https://graph.microsoft.com", "iss": format!("https://sts.windows.net/{}/", self.tenant_id),
            "tid": self.tenant_id, "appid": self.client_id, "roles": self.roles,
            "iat": now, "nbf": now, "exp": now + self.lifetime_secs,
        });
        (
            200,
            json!({"token_type": "Bearer", "expires_in": self.lifetime_secs, "ext_expires_in": self.lifetime_secs,
                   "access_token": sign(self.key, &claims)}),
        )
    }

    fn check_assertion(&self, jwt: &str) -> Result<(), String> {
        let cert = self
            .cert
            .ok_or("No certificate is registered for the application.")?;
        let mut parts = jwt.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("The assertion is not a JWT.".into());
        };
        let decode = |p: &str| {
            B64.decode(p)
                .map_err(|_| "The assertion is not base64url.".to_string())
        };
        let header: AssertionHeader = serde_json::from_slice(&decode(h)?)
            .map_err(|_| "The assertion header is not JSON.".to_string())?;
        let claims: AssertionClaims = serde_json::from_slice(&decode(c)?)
            .map_err(|_| "The assertion claims are incomplete.".to_string())?;
        let sig = decode(s)?;
        let thumb_ok = header.x5t_s256.as_deref() == Some(cert.x5t_s256.as_str())
            || header.x5t.as_deref() == Some(cert.x5t_sha1.as_str());
        if !thumb_ok {
            return Err("The thumbprint does not match a registered certificate.".into());
        }
        let input = format!("{h}.{c}");
        let verified = match header.alg.as_str() {
            "PS256" => rsa::pss::Signature::try_from(sig.as_slice())
                .map_err(|_| ())
                .and_then(|sig| {
                    rsa::pss::VerifyingKey::<Sha256>::new(cert.key.clone())
                        .verify(input.as_bytes(), &sig)
                        .map_err(|_| ())
                }),
            "RS256" => rsa::pkcs1v15::Signature::try_from(sig.as_slice())
                .map_err(|_| ())
                .and_then(|sig| {
                    rsa::pkcs1v15::VerifyingKey::<Sha256>::new(cert.key.clone())
                        .verify(input.as_bytes(), &sig)
                        .map_err(|_| ())
                }),
            _ => Err(()),
        };
        if verified.is_err() {
            return Err("The signature is invalid.".into());
        }
        let now = chrono::Utc::now().timestamp();
        if claims.aud != self.token_url {
            return Err(format!(
                "The audience '{}' is not the token endpoint.",
                claims.aud
            ));
        }
        if !claims.iss.eq_ignore_ascii_case(self.client_id)
            || !claims.sub.eq_ignore_ascii_case(self.client_id)
        {
            return Err("iss and sub must be the client id.".into());
        }
        if claims.exp < now || claims.nbf.is_some_and(|n| n > now + 60) {
            return Err("The assertion is expired or not yet valid.".into());
        }
        Ok(())
    }
}

/// An HS256 JWT of `claims`.
pub fn sign(key: &[u8], claims: &Value) -> String {
    let header = B64.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let input = format!("{header}.{}", B64.encode(claims.to_string()));
    let mut mac = HmacSha256::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(input.as_bytes());
    format!("{input}.{}", B64.encode(mac.finalize().into_bytes()))
}

/// Checks a bearer token we issued; returns its `roles` claim, or why it is refused.
pub fn verify(key: &[u8], token: &str) -> Result<Vec<String>, &'static str> {
    let (input, sig) = token.rsplit_once('.').ok_or("Access token is not a JWT.")?;
    let mut mac = HmacSha256::new_from_slice(key).map_err(|_| "bad key")?;
    mac.update(input.as_bytes());
    let sig = B64
        .decode(sig)
        .map_err(|_| "Access token signature is not base64url.")?;
    mac.verify_slice(&sig)
        .map_err(|_| "Access token validation failure. Invalid signature.")?;
    let claims = input
        .split('.')
        .nth(1)
        .ok_or("Access token is not a JWT.")?;
    let claims: Value = serde_json::from_slice(&B64.decode(claims).map_err(|_| "bad claims")?)
        .map_err(|_| "bad claims")?;
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    if exp <= chrono::Utc::now().timestamp() {
        return Err("Access token has expired or is not yet valid.");
    }
    Ok(claims
        .get("roles")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}
