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

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};

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
    verifier: Arc<Verifier>,
}

/// How long a successful verification is remembered, and how many at most.
const CACHE_TTL: Duration = Duration::from_secs(60);
const CACHE_MAX: usize = 1024;
/// How long an expired success still earns its re-verification the renewal lane (a permit of
/// its own, so a flood of wrong passwords does not queue a known client for seconds).
const RENEWAL_WINDOW: Duration = Duration::from_secs(3600);
/// bcrypt verifications at once, each on a blocking thread: a flood of wrong passwords queues
/// here rather than taking every blocking thread (or an async worker).
const VERIFY_CONCURRENCY: usize = 2;

/// Checks passwords with bcrypt off the async threads, a few at a time, and remembers the
/// successes for `CACHE_TTL` under a keyed SHA-256 of user and password (never the password).
/// An unknown user is checked against a dummy hash of the same cost, so it costs the same.
struct Verifier {
    /// The random key of the cache's hashes (so the cache cannot be brute-forced offline).
    key: [u8; 32],
    cache: Mutex<HashMap<[u8; 32], Instant>>,
    permits: tokio::sync::Semaphore,
    /// For re-verifying a success whose cache entry expired: only a password that was right
    /// before gets here.
    renewals: tokio::sync::Semaphore,
    /// A hash of a random password at the highest cost of the configured users.
    dummy: String,
    /// bcrypt verifications run (what the tests count).
    verifications: AtomicU64,
}

impl Default for Verifier {
    fn default() -> Verifier {
        Verifier::new(&BTreeMap::new())
    }
}

impl Verifier {
    fn new(users: &BTreeMap<String, String>) -> Verifier {
        let cost = users.values().filter_map(|h| cost_of(h)).max();
        let dummy = cost
            .and_then(|cost| {
                let password: [u8; 16] = rand::random();
                bcrypt::hash(password, cost).ok()
            })
            .unwrap_or_default();
        Verifier {
            key: rand::random(),
            cache: Mutex::new(HashMap::new()),
            permits: tokio::sync::Semaphore::new(VERIFY_CONCURRENCY),
            renewals: tokio::sync::Semaphore::new(1),
            dummy,
            verifications: AtomicU64::new(0),
        }
    }

    fn cache_key(&self, user: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update((user.len() as u64).to_be_bytes());
        h.update(user.as_bytes());
        h.update(password.as_bytes());
        h.finalize().into()
    }

    fn seen(&self, key: &[u8; 32]) -> Seen {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        match cache.get(key).map(Instant::elapsed) {
            Some(age) if age < CACHE_TTL => Seen::Fresh,
            Some(age) if age < RENEWAL_WINDOW => Seen::Expired,
            _ => Seen::No,
        }
    }

    #[cfg(test)]
    fn cached(&self, key: &[u8; 32]) -> bool {
        matches!(self.seen(key), Seen::Fresh)
    }

    fn remember(&self, key: [u8; 32]) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, at| at.elapsed() < RENEWAL_WINDOW);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(key, Instant::now());
    }

    /// Whether `password` is `user`'s, where `hash` is the user's hash (`None`: an unknown user,
    /// checked against the dummy hash all the same, and refused).
    async fn verify(&self, user: &str, password: &str, hash: Option<&str>) -> bool {
        let key = self.cache_key(user, password);
        let seen = match hash {
            Some(_) => self.seen(&key),
            None => Seen::No,
        };
        let lane = match seen {
            Seen::Fresh => return true,
            Seen::Expired => &self.renewals,
            Seen::No => &self.permits,
        };
        let Ok(_permit) = lane.acquire().await else {
            return false;
        };
        let known = hash.is_some();
        let hash = hash.unwrap_or(&self.dummy).to_string();
        let password = password.to_string();
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .is_ok_and(|r| r.unwrap_or(false));
        let ok = ok && known;
        if ok {
            self.remember(key);
        }
        ok
    }
}

/// What the cache knows of a user and password.
enum Seen {
    /// Verified less than `CACHE_TTL` ago.
    Fresh,
    /// Verified before, within `RENEWAL_WINDOW`: verified again, in the renewal lane.
    Expired,
    No,
}

/// The cost of a bcrypt hash (`$2y$10$...` → 10).
fn cost_of(hash: &str) -> Option<u32> {
    hash.split('$').nth(2)?.parse().ok()
}

/// Compares without stopping at the first difference (the length still shows).
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
            verifier: Arc::new(Verifier::new(&file.basic_auth_users)),
            users: Arc::new(file.basic_auth_users),
        })
    }

    pub fn requires_auth(&self) -> bool {
        !self.users.is_empty()
    }

    /// Whether an `Authorization` header value carries a configured user's password. A known
    /// user with a wrong password and an unknown user cost one bcrypt verification each, run on
    /// a blocking thread; a success is remembered for a minute.
    pub async fn authorized(&self, authorization: Option<&str>) -> bool {
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
        // Every configured name is compared, none stopping early.
        let mut hash = None;
        for (name, h) in self.users.iter() {
            if same(name.as_bytes(), user.as_bytes()) {
                hash = Some(h.as_str());
            }
        }
        self.verifier.verify(user, password, hash).await
    }

    /// bcrypt verifications run so far.
    pub fn verifications(&self) -> u64 {
        self.verifier.verifications.load(Ordering::Relaxed)
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
    if web.authorized(header).await {
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

    #[tokio::test]
    async fn basic_auth_checks_bcrypt_hashes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hash = bcrypt::hash("s3cret", 4).expect("hash");
        let path = dir.path().join("web.yml");
        std::fs::write(&path, format!("basic_auth_users:\n  prometheus: {hash}\n")).expect("write");
        let web = WebConfig::load(&path).expect("valid");
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let auth = |pair: &str| format!("Basic {}", b64(pair));
        assert!(web.authorized(Some(&auth("prometheus:s3cret"))).await);
        assert!(!web.authorized(Some(&auth("prometheus:wrong"))).await);
        assert!(!web.authorized(Some(&auth("mallory:s3cret"))).await);
        assert!(!web.authorized(Some(&auth("prometheu:s3cret"))).await);
        assert!(!web.authorized(None).await);
        assert!(
            !format!("{web:?}").contains(&hash),
            "hashes stay out of Debug"
        );
    }

    #[tokio::test]
    async fn unknown_users_cost_a_verification_and_successes_are_remembered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hash = bcrypt::hash("s3cret", 5).expect("hash");
        let path = dir.path().join("web.yml");
        std::fs::write(&path, format!("basic_auth_users:\n  prometheus: {hash}\n")).expect("write");
        let web = WebConfig::load(&path).expect("valid");
        assert_eq!(
            cost_of(&web.verifier.dummy),
            Some(5),
            "the dummy has the users' cost"
        );
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let auth = |pair: &str| format!("Basic {}", b64(pair));
        let mut runs = web.verifications();
        for refused in [
            "mallory:s3cret",
            "prometheus:wrong",
            "mallory:wrong",
            "prometheus:wrong",
        ] {
            assert!(!web.authorized(Some(&auth(refused))).await, "{refused}");
            runs += 1;
            assert_eq!(
                web.verifications(),
                runs,
                "{refused}: one bcrypt verification, not cached"
            );
        }
        assert!(web.authorized(Some(&auth("prometheus:s3cret"))).await);
        assert!(web.authorized(Some(&auth("prometheus:s3cret"))).await);
        assert_eq!(
            web.verifications(),
            runs + 1,
            "the second success comes from the cache"
        );
        let cache = web.verifier.cache.lock().expect("cache");
        assert_eq!(cache.len(), 1);
        assert!(
            cache.keys().all(|k| !k.windows(6).any(|w| w == b"s3cret")),
            "the cache keeps a hash, never the password"
        );
    }

    #[tokio::test]
    async fn an_expired_success_is_verified_again_past_a_queue_of_wrong_passwords() {
        let hash = bcrypt::hash("s3cret", 4).expect("hash");
        let users = BTreeMap::from([("prometheus".to_string(), hash.clone())]);
        let v = Verifier::new(&users);
        assert!(v.verify("prometheus", "s3cret", Some(&hash)).await);
        let key = v.cache_key("prometheus", "s3cret");
        let expired = Instant::now().checked_sub(CACHE_TTL + Duration::from_secs(1));
        if let Some(at) = expired {
            v.cache.lock().expect("cache").insert(key, at);
        }
        assert!(!v.cached(&key));
        // Every ordinary permit is taken, as by a flood of wrong passwords.
        let flood = v.permits.acquire_many(VERIFY_CONCURRENCY as u32).await;
        let renewed = tokio::time::timeout(
            Duration::from_secs(60),
            v.verify("prometheus", "s3cret", Some(&hash)),
        )
        .await;
        assert_eq!(renewed, Ok(true), "renewed in its own lane");
        assert!(v.cached(&key), "and fresh again");
        let stranger = tokio::time::timeout(
            Duration::from_millis(200),
            v.verify("prometheus", "other", Some(&hash)),
        )
        .await;
        assert!(
            stranger.is_err(),
            "a password never right waits for the ordinary lane"
        );
        drop(flood);
    }

    #[test]
    fn a_full_cache_forgets_rather_than_grows() {
        let v = Verifier::default();
        for i in 0..(CACHE_MAX * 2) {
            v.remember(v.cache_key("u", &i.to_string()));
        }
        assert!(v.cache.lock().expect("cache").len() <= CACHE_MAX);
        assert!(v.cached(&v.cache_key("u", &(CACHE_MAX * 2 - 1).to_string())));
    }

    #[test]
    fn names_compare_whole() {
        assert!(same(b"prometheus", b"prometheus"));
        assert!(!same(b"prometheus", b"prometheuz"));
        assert!(!same(b"prometheus", b"prometheu"));
        assert_eq!(cost_of("$2y$10$abcdefghijklmnopqrstuv"), Some(10));
        assert_eq!(cost_of("plaintext"), None);
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
