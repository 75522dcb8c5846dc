//! The managed-identity endpoints as the simulator serves them, checked over HTTP, independently
//! of mfa-auditor's client (docs/graph.md, "Credentials without secrets").

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use graph_sim::identity::{entra_issuer, TOKEN_EXCHANGE_AUDIENCE};
use graph_sim::{
    FederatedCredential, Profile, SimConfig, SimHandle, SimManagedIdentity, TenantSource,
};
use serde_json::Value;

async fn start(tweak: impl FnOnce(&mut SimConfig)) -> SimHandle {
    let mut c = SimConfig {
        tenant: TenantSource::Generated {
            users: 10,
            seed: 3,
            profile: Profile::Realistic,
        },
        managed_identity: Some(SimManagedIdentity::default()),
        ..SimConfig::default()
    };
    tweak(&mut c);
    graph_sim::start(c, ([127, 0, 0, 1], 0).into())
        .await
        .expect("sim")
}

async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut r = reqwest::Client::new().get(url);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let r = r.send().await.expect("answer");
    let status = r.status().as_u16();
    let h = r.headers().clone();
    (status, h, r.json().await.unwrap_or(Value::Null))
}

fn claims(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&B64.decode(part).expect("base64url")).expect("claims")
}

#[tokio::test]
async fn imds_needs_the_metadata_header_and_answers_strings() {
    let sim = start(|_| {}).await;
    let url = format!(
        "{}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://graph.microsoft.com",
        sim.base_url()
    );
    let (status, _, body) = get(&url, &[]).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error_description"],
        "Required metadata header not specified"
    );
    let (status, _, body) = get(&url, &[("Metadata", "true")]).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["expires_in"].is_string() && body["expires_on"].is_string(),
        "{body}"
    );
    let c = claims(body["access_token"].as_str().expect("token"));
    let mi = SimManagedIdentity::default();
    assert_eq!(c["tid"], sim.tenant_id());
    assert_eq!(c["appid"], mi.client_id.as_str());
    assert_eq!(c["aud"], "https://graph.microsoft.com");
    assert!(c["roles"].as_array().is_some_and(|r| !r.is_empty()), "{c}");
    // The token reads Graph.
    let r = reqwest::Client::new()
        .get(format!("{}/v1.0/users?$top=1", sim.base_url()))
        .bearer_auth(body["access_token"].as_str().unwrap_or(""))
        .send()
        .await
        .expect("graph");
    assert_eq!(r.status().as_u16(), 200);

    let (status, _, body) = get(
        &url.replace("api-version=2018-02-01&", ""),
        &[("Metadata", "true")],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, _, body) = get(
        &url.replace("https://graph.microsoft.com", "https://vault.azure.net"),
        &[("Metadata", "true")],
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or("")
            .contains("AADSTS500011"),
        "{body}"
    );
    let (status, _, body) = get(
        &format!("{url}&client_id=00000000-0000-4000-8000-000000000009"),
        &[("Metadata", "true")],
    )
    .await;
    assert_eq!(
        (status, body["error_description"].as_str()),
        (400, Some("Identity not found"))
    );

    // The exchange token: Entra's issuer, the identity's object id.
    let (status, _, body) = get(
        &url.replace("https://graph.microsoft.com", TOKEN_EXCHANGE_AUDIENCE),
        &[("Metadata", "true")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let c = claims(body["access_token"].as_str().expect("token"));
    assert_eq!(c["iss"], entra_issuer(sim.tenant_id()).as_str());
    assert_eq!(c["sub"], mi.object_id.as_str());
    assert_eq!(c["aud"], TOKEN_EXCHANGE_AUDIENCE);

    // A host without an identity.
    let bare = start(|c| c.managed_identity = None).await;
    let (status, _, body) = get(
        &url.replace(&sim.base_url(), &bare.base_url()),
        &[("Metadata", "true")],
    )
    .await;
    assert_eq!(
        (status, body["error_description"].as_str()),
        (400, Some("Identity not found"))
    );
}

#[tokio::test]
async fn app_service_needs_its_identity_header() {
    let sim = start(|_| {}).await;
    let url = format!(
        "{}/msi/token?api-version=2019-08-01&resource=https://graph.microsoft.com",
        sim.base_url()
    );
    let header = SimManagedIdentity::default().app_service_header;
    assert_eq!(get(&url, &[]).await.0, 401);
    assert_eq!(get(&url, &[("X-IDENTITY-HEADER", "nope")]).await.0, 401);
    let (status, _, body) = get(&url, &[("X-IDENTITY-HEADER", &header)]).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["expires_on"].is_string() && body.get("expires_in").is_none(),
        "{body}"
    );
    let (status, _, _) = get(
        &url.replace("2019-08-01", "2017-09-01"),
        &[("X-IDENTITY-HEADER", &header)],
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn arc_challenges_with_a_key_file() {
    let dir = std::env::temp_dir().join(format!("graph-sim-arc-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir(&dir).expect("key directory");
    let keys = dir.clone();
    let sim = start(move |c| {
        if let Some(mi) = &mut c.managed_identity {
            mi.arc_key_dir = Some(keys);
        }
    })
    .await;
    let url = format!(
        "{}/arc/metadata/identity/oauth2/token?api-version=2019-11-01&resource=https://graph.microsoft.com",
        sim.base_url()
    );
    assert_eq!(get(&url, &[]).await.0, 400, "Metadata: true is required");
    let (status, headers, _) = get(&url, &[("Metadata", "true")]).await;
    assert_eq!(status, 401);
    let realm = headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic realm="))
        .expect("a Basic realm challenge")
        .to_string();
    let path = std::path::Path::new(&realm);
    assert_eq!(path.parent(), Some(dir.as_path()));
    assert_eq!(path.extension().and_then(|e| e.to_str()), Some("key"));
    let key = std::fs::read_to_string(path).expect("key file");
    let basic = format!("Basic {key}");
    let (status, _, body) = get(&url, &[("Metadata", "true"), ("Authorization", &basic)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        get(
            &url,
            &[("Metadata", "true"), ("Authorization", "Basic guessed")]
        )
        .await
        .0,
        401
    );
    let (status, _, _) = get(
        &format!(
            "{url}&client_id={}",
            SimManagedIdentity::default().client_id
        ),
        &[("Metadata", "true"), ("Authorization", &basic)],
    )
    .await;
    assert_eq!(status, 400, "Arc has no user-assigned identities");
    assert_eq!(sim.stats().count("managed_identity_arc", 200), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_federated_credential_with_no_key_trusts_only_entras_own_tokens() {
    let sim = start(|c| {
        c.federated_credentials = vec![FederatedCredential::new(
            &entra_issuer(&c.tenant_id),
            &SimManagedIdentity::default().object_id,
            None,
        )];
    })
    .await;
    // A token claiming Entra's issuer but signed with another key is refused.
    let forged_claims = B64.encode(
        serde_json::json!({
            "iss": entra_issuer(sim.tenant_id()), "sub": SimManagedIdentity::default().object_id,
            "aud": TOKEN_EXCHANGE_AUDIENCE, "exp": chrono::Utc::now().timestamp() + 600,
        })
        .to_string(),
    );
    let forged = format!(
        "{}.{forged_claims}.{}",
        B64.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
        B64.encode([7u8; 32])
    );
    let form = [
        ("client_id", sim.client_id()),
        ("grant_type", "client_credentials"),
        ("scope", "https://graph.microsoft.com/.default"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", forged.as_str()),
    ];
    let r = reqwest::Client::new()
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            sim.base_url(),
            sim.tenant_id()
        ))
        .form(&form)
        .send()
        .await
        .expect("token");
    assert_eq!(r.status().as_u16(), 401);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error_codes"][0], 700027, "{body}");
}
