//! Credentials without secrets, as Entra serves them (docs/graph.md, "Credentials"):
//!
//! - workload identity federation: a client assertion from another issuer is checked against the
//!   app's federated identity credentials — issuer, then subject, then audience (AADSTS700211,
//!   700213, 700212), the issuer's signature and the validity window (700024);
//! - managed identity: the instance metadata service (IMDS, `Metadata: true` or 400), the App
//!   Service endpoint (`X-IDENTITY-HEADER`, api-version 2019-08-01) and the Azure Arc endpoint (a
//!   401 challenge naming a key file, answered with `Authorization: Basic <key>`), each issuing a
//!   Graph token for the simulator's tenant, or a token for `api://AzureADTokenExchange` that the
//!   app may trust as a federated credential.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::server::State;

/// The audience Entra expects in a federated assertion (and the resource of a managed identity's
/// token meant as one).
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// The key Entra's own federated-assertion tokens (a managed identity's token for
/// `api://AzureADTokenExchange`) are signed with. Entra's signing keys are the same for every
/// tenant, so one constant: a managed identity's token from one simulator (its home tenant) is
/// accepted by another (a customer tenant whose app trusts it).
const ENTRA_ASSERTION_KEY: &[u8] =
    b"graph-sim: Entra's token signing key, shared by every simulated tenant";

/// Entra's own issuer for `tenant` (what a managed identity's token says it is from).
pub fn entra_issuer(tenant_id: &str) -> String {
    format!("https://login.microsoftonline.com/{tenant_id}/v2.0")
}

/// One federated identity credential on the app: which issuer's tokens, for which subject and
/// audiences, it accepts.
#[derive(Clone, Debug)]
pub struct FederatedCredential {
    /// Compared exactly (Entra: case-sensitive, no trailing-slash leniency).
    pub issuer: String,
    /// Compared exactly (case-sensitive).
    pub subject: String,
    /// `api://AzureADTokenExchange` by default.
    pub audiences: Vec<String>,
    /// The issuer's RSA public key (SPKI PEM), as Entra would have fetched it from the issuer's
    /// discovery document and JWKS. `None`: the issuer is Entra itself (a managed identity's
    /// token, from this simulator or another).
    pub issuer_key_pem: Option<String>,
}

impl FederatedCredential {
    /// A credential for `issuer`/`subject` with the default audience.
    pub fn new(issuer: &str, subject: &str, issuer_key_pem: Option<String>) -> Self {
        FederatedCredential {
            issuer: issuer.into(),
            subject: subject.into(),
            audiences: vec![TOKEN_EXCHANGE_AUDIENCE.into()],
            issuer_key_pem,
        }
    }
}

/// The managed identity the simulated host has.
#[derive(Clone, Debug)]
pub struct SimManagedIdentity {
    /// Its client (application) id.
    pub client_id: String,
    /// Its object (principal) id: the `sub` of its tokens.
    pub object_id: String,
    /// User-assigned: requests must name it by `client_id`. System-assigned: they must not name
    /// another.
    pub user_assigned: bool,
    /// The secret App Service puts in `IDENTITY_HEADER`.
    pub app_service_header: String,
    /// Where the Arc endpoint writes its challenge keys (the system's temp directory when
    /// `None`).
    pub arc_key_dir: Option<PathBuf>,
    /// The first this-many requests to the endpoints are answered 503, as IMDS answers while it
    /// is being updated (the client must retry).
    pub unavailable_first: u64,
}

impl Default for SimManagedIdentity {
    fn default() -> Self {
        SimManagedIdentity {
            client_id: "7f3e1c2a-9b4d-4e8f-a1c6-3d5b7e9f0a2c".into(),
            object_id: "2c4e6a8b-1d3f-4a5c-9e7b-0f2d4c6e8a1b".into(),
            user_assigned: false,
            app_service_header: "sim-identity-header-not-a-real-one".into(),
            arc_key_dir: None,
            unavailable_first: 0,
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    #[serde(default)]
    aud: Value,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

/// The `iss` of a JWT, unverified (to tell a federated assertion from a certificate one, whose
/// issuer is the client id).
pub fn unverified_issuer(jwt: &str) -> Option<String> {
    let claims = jwt.split('.').nth(1)?;
    let v: Value = serde_json::from_slice(&B64.decode(claims).ok()?).ok()?;
    v.get("iss").and_then(Value::as_str).map(str::to_owned)
}

/// Checks a federated assertion against the app's credentials as Entra does; on refusal, the
/// AADSTS code and text.
pub fn check_federated(
    credentials: &[FederatedCredential],
    jwt: &str,
) -> Result<(), (u32, String)> {
    let mut parts = jwt.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err((50027, "JWT token is invalid or malformed.".into()));
    };
    let malformed = || (50027, "JWT token is invalid or malformed.".to_string());
    let header: Header = B64
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(malformed)?;
    let claims: Claims = B64
        .decode(c)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(malformed)?;
    let sig = B64.decode(s).map_err(|_| malformed())?;
    let check = "Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation";
    let by_issuer: Vec<&FederatedCredential> = credentials
        .iter()
        .filter(|f| f.issuer == claims.iss)
        .collect();
    if by_issuer.is_empty() {
        return Err((
            700211,
            format!(
                "No matching federated identity record found for presented assertion issuer '{}'. {check}",
                claims.iss
            ),
        ));
    }
    // The issuer's signature, with the key Entra holds for it.
    let input = format!("{h}.{c}");
    let signed = match (&by_issuer[0].issuer_key_pem, header.alg.as_str()) {
        (Some(pem), "RS256") => rsa::RsaPublicKey::from_public_key_pem(pem)
            .ok()
            .and_then(|key| {
                let sig = rsa::pkcs1v15::Signature::try_from(sig.as_slice()).ok()?;
                rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key)
                    .verify(input.as_bytes(), &sig)
                    .ok()
            })
            .is_some(),
        (None, "HS256") => {
            use hmac::Mac;
            hmac::Hmac::<Sha256>::new_from_slice(ENTRA_ASSERTION_KEY)
                .map(|mut mac| {
                    mac.update(input.as_bytes());
                    mac.verify_slice(&sig).is_ok()
                })
                .unwrap_or(false)
        }
        _ => false,
    };
    if !signed {
        return Err((
            700027,
            "Client assertion failed signature validation.".into(),
        ));
    }
    let now = chrono::Utc::now().timestamp();
    if claims.exp < now || claims.nbf.is_some_and(|n| n > now + 300) {
        return Err((
            700024,
            format!(
                "Client assertion is not within its valid time range. Current time: {now}, expiry time of assertion {}.",
                claims.exp
            ),
        ));
    }
    let by_subject: Vec<&&FederatedCredential> = by_issuer
        .iter()
        .filter(|f| f.subject == claims.sub)
        .collect();
    if by_subject.is_empty() {
        return Err((
            700213,
            format!(
                "No matching federated identity record found for presented assertion subject '{}'. Please note that the matching is done using a case-sensitive comparison. {check}",
                claims.sub
            ),
        ));
    }
    let audiences: Vec<&str> = match &claims.aud {
        Value::String(a) => vec![a.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !by_subject
        .iter()
        .any(|f| f.audiences.iter().any(|a| audiences.contains(&a.as_str())))
    {
        return Err((
            700212,
            format!(
                "No matching federated identity record found for presented assertion audience '{}'. {check}",
                audiences.join(", ")
            ),
        ));
    }
    Ok(())
}

/// The Arc agent's challenge key: derived from the simulator's signing key.
fn arc_key(key: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(b"azure-arc-challenge");
    B64.encode(mac.finalize().into_bytes())
}

/// An IMDS-style error answer.
fn mi_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// Which endpoint was asked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Imds,
    AppService,
    Arc,
}

impl Source {
    fn label(self) -> &'static str {
        match self {
            Source::Imds => "managed_identity_imds",
            Source::AppService => "managed_identity_app_service",
            Source::Arc => "managed_identity_arc",
        }
    }
}

/// `GET /metadata/identity/oauth2/token` (IMDS).
pub async fn imds(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    serve(&state, Source::Imds, &headers, &q)
}

/// `GET /msi/token` (App Service, Container Apps, Functions: `IDENTITY_ENDPOINT`).
pub async fn app_service(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    serve(&state, Source::AppService, &headers, &q)
}

/// `GET /arc/metadata/identity/oauth2/token` (the Azure Arc agent's endpoint).
pub async fn arc(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    serve(&state, Source::Arc, &headers, &q)
}

fn serve(state: &State, source: Source, headers: &HeaderMap, q: &[(String, String)]) -> Response {
    let unavailable = state.config.managed_identity.as_ref().is_some_and(|mi| {
        let served: u64 = [Source::Imds, Source::AppService, Source::Arc]
            .iter()
            .map(|s| state.stats().total(s.label()))
            .sum();
        served < mi.unavailable_first
    });
    let response = if unavailable {
        mi_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "IMDS is being updated; retry",
        )
    } else {
        answer(state, source, headers, q)
    };
    state.record(source.label(), response.status().as_u16());
    response
}

fn answer(state: &State, source: Source, headers: &HeaderMap, q: &[(String, String)]) -> Response {
    let param = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    match source {
        Source::Imds | Source::Arc => {
            if !header("metadata").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
                return mi_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Required metadata header not specified",
                );
            }
        }
        Source::AppService => {}
    }
    let expected_version = match source {
        Source::Imds => "2018-02-01",
        Source::AppService => "2019-08-01",
        Source::Arc => "2019-11-01",
    };
    match param("api-version") {
        None => {
            return mi_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Required query variable 'api-version' is missing",
            )
        }
        Some(v) if v != expected_version && source != Source::Imds => {
            return mi_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("Invalid api-version '{v}'"),
            )
        }
        Some(_) => {}
    }
    let Some(mi) = &state.config.managed_identity else {
        return mi_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Identity not found",
        );
    };
    match source {
        Source::AppService => {
            if header("x-identity-header") != Some(mi.app_service_header.as_str()) {
                return (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(json!({"statusCode": 401, "message": "Unauthorized: the X-IDENTITY-HEADER is missing or wrong."})),
                )
                    .into_response();
            }
        }
        Source::Arc => {
            if param("client_id").is_some() {
                return mi_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "User-assigned managed identities are not supported by Azure Arc",
                );
            }
            let presented = header("authorization").and_then(|v| v.strip_prefix("Basic "));
            let expected = arc_key(&state.key);
            if presented.map(str::trim) != Some(expected.as_str()) {
                // A challenge: a key file only a process on this host can read (the key is
                // derived from the simulator's signing key, so no state is kept).
                let dir = mi.arc_key_dir.clone().unwrap_or_else(std::env::temp_dir);
                let path = dir.join(format!("{}.key", uuid::Uuid::new_v4().simple()));
                if let Err(e) = std::fs::write(&path, &expected) {
                    return mi_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "server_error",
                        &format!("cannot write the challenge key: {e}"),
                    );
                }
                return (
                    StatusCode::UNAUTHORIZED,
                    [("www-authenticate", format!("Basic realm={}", path.display()))],
                    axum::Json(json!({"error": "unauthorized", "error_description": "Read the key file named in WWW-Authenticate"})),
                )
                    .into_response();
            }
        }
        Source::Imds => {}
    }
    match param("client_id") {
        Some(id) if !id.eq_ignore_ascii_case(&mi.client_id) => {
            return mi_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Identity not found",
            );
        }
        None if mi.user_assigned => {
            return mi_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Identity not found",
            );
        }
        _ => {}
    }
    let Some(resource) = param("resource") else {
        return mi_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required query variable 'resource' is missing",
        );
    };
    let tenant = &state.config.tenant_id;
    let now = chrono::Utc::now().timestamp();
    let lifetime = state.token_lifetime();
    let resource_trimmed = resource.trim_end_matches('/');
    let claims = if resource_trimmed == TOKEN_EXCHANGE_AUDIENCE {
        json!({
            "aud": TOKEN_EXCHANGE_AUDIENCE, "iss": entra_issuer(tenant), "sub": mi.object_id,
            "tid": tenant, "appid": mi.client_id, "oid": mi.object_id,
            "iat": now, "nbf": now, "exp": now + lifetime,
        })
    } else if resource_trimmed == "https://graph.microsoft.com"
        || resource_trimmed == state.base_url.trim_end_matches('/')
    {
        json!({
            "aud": "https://graph.microsoft.com", "iss": format!("https://sts.windows.net/{tenant}/"),
            "tid": tenant, "appid": mi.client_id, "oid": mi.object_id, "idtyp": "app",
            "roles": state.roles_now(), "iat": now, "nbf": now, "exp": now + lifetime,
        })
    } else {
        return mi_error(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            &format!("AADSTS500011: The resource principal named {resource} was not found in the tenant named {tenant}."),
        );
    };
    state
        .stats
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .tokens_issued += 1;
    let key: &[u8] = if resource_trimmed == TOKEN_EXCHANGE_AUDIENCE {
        ENTRA_ASSERTION_KEY
    } else {
        &state.key
    };
    // IMDS and App Service send the numbers as strings.
    let mut body = json!({
        "access_token": crate::auth::sign(key, &claims),
        "expires_on": (now + lifetime).to_string(),
        "not_before": now.to_string(),
        "resource": resource,
        "token_type": "Bearer",
        "client_id": mi.client_id,
    });
    if source != Source::AppService {
        body["expires_in"] = json!(lifetime.to_string());
    }
    (StatusCode::OK, axum::Json(body)).into_response()
}
