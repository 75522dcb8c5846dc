//! Reading the credential: a client secret from a file (relative paths resolve against systemd's
//! `$CREDENTIALS_DIRECTORY`) or an environment variable, or a PEM certificate and its key, into
//! [`Secret`]s that are never logged. A secret file readable by group or others is warned about.
//! Or no secret at all: a federated token file (its path; read at each token request) or a
//! managed identity (its endpoint, found in the environment as the Azure SDKs find it).

use std::path::{Path, PathBuf};

use super::{Config, ConfigError};
use crate::graph::{Credential, ManagedIdentity, ManagedIdentityEndpoint};
use crate::secret::Secret;

impl Config {
    /// Reads the credential from where the file says, with the process environment.
    pub fn credential(&self) -> Result<Credential, ConfigError> {
        let dir = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        self.credential_with(dir.as_deref(), &|name| std::env::var(name).ok())
    }

    /// Reads the credential, with `credentials_dir` for relative paths and `env` for variables.
    pub fn credential_with(
        &self,
        credentials_dir: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Credential, ConfigError> {
        let t = &self.tenant;
        let fail = |key: &str, message: String| ConfigError {
            origin: "credential".into(),
            position: None,
            key: key.into(),
            message,
        };
        let read = |key: &str, p: &Path| -> Result<String, ConfigError> {
            let path = credential_path(p, credentials_dir);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::InvalidData {
                    fail(key, format!("{} is not text, so not PEM (a DER file? `openssl x509 -inform der -in FILE -out FILE.pem` converts a certificate)", path.display()))
                } else {
                    fail(key, format!("cannot read {}: {e}", path.display()))
                }
            })?;
            warn_if_readable_by_others(&path);
            Ok(text)
        };
        if let Some(p) = &t.client_secret_file {
            return read_secret_file("tenant.client_secret_file", p, credentials_dir)
                .map(Credential::Secret);
        }
        if let Some(name) = &t.client_secret_env {
            return match env(name) {
                Some(v) if !v.is_empty() => Ok(Credential::Secret(Secret::new(v))),
                _ => Err(fail(
                    "tenant.client_secret_env",
                    format!("environment variable {name} is not set or empty"),
                )),
            };
        }
        if let (Some(c), Some(k)) = (&t.certificate_file, &t.private_key_file) {
            let certificate_pem = read("tenant.certificate_file", c)?;
            let key = read("tenant.private_key_file", k)?;
            // Checked here, where the key and the file are known (the client only sees text).
            for (name, p, text, wanted) in [
                (
                    "tenant.certificate_file",
                    c,
                    &certificate_pem,
                    "CERTIFICATE",
                ),
                ("tenant.private_key_file", k, &key, "PRIVATE KEY"),
            ] {
                let path = credential_path(p, credentials_dir);
                match pem::parse(text.as_bytes()) {
                    Ok(block) if block.tag().ends_with(wanted) => {}
                    Ok(block) => {
                        return Err(fail(
                            name,
                            format!(
                                "{} holds a PEM {:?}, not a {wanted}",
                                path.display(),
                                block.tag()
                            ),
                        ))
                    }
                    Err(e) => {
                        return Err(fail(
                            name,
                            format!(
                                "{} is not PEM (-----BEGIN {wanted}-----): {e}",
                                path.display()
                            ),
                        ))
                    }
                }
            }
            return Ok(Credential::Certificate {
                certificate_pem,
                private_key_pem: Secret::new(key),
            });
        }
        let federated = match (&t.federated_token_file, t.workload_identity) {
            (Some(p), _) => Some(("tenant.federated_token_file", p.clone())),
            (None, true) => match env("AZURE_FEDERATED_TOKEN_FILE").filter(|v| !v.is_empty()) {
                Some(p) => Some(("tenant.workload_identity", PathBuf::from(p))),
                None => return Err(fail(
                    "tenant.workload_identity",
                    "AZURE_FEDERATED_TOKEN_FILE is not set (the AKS workload identity webhook sets it in a pod whose service account is annotated and labelled azure.workload.identity/use: \"true\"); or name the file with federated_token_file".into(),
                )),
            },
            (None, false) => None,
        };
        if let Some((key, path)) = federated {
            // Read once now so a wrong path fails at start; it is read again at every token
            // request (rotated in place), and its content never leaves the token request.
            match std::fs::read_to_string(&path) {
                Ok(text) if !text.trim().is_empty() => {}
                Ok(_) => return Err(fail(key, format!("{} is empty", path.display()))),
                Err(e) => return Err(fail(key, format!("cannot read {}: {e}", path.display()))),
            }
            return Ok(Credential::FederatedTokenFile(path));
        }
        if t.managed_identity
            || t.managed_identity_client_id.is_some()
            || t.managed_identity_assertion
        {
            let key = if t.managed_identity_assertion {
                "tenant.managed_identity_assertion"
            } else {
                "tenant.managed_identity"
            };
            let endpoint = ManagedIdentityEndpoint::from_env(env).map_err(|e| fail(key, e))?;
            let mi = ManagedIdentity {
                client_id: t.managed_identity_client_id.clone(),
                endpoint,
            };
            return Ok(if t.managed_identity_assertion {
                Credential::ManagedIdentityAssertion(mi)
            } else {
                Credential::ManagedIdentity(mi)
            });
        }
        Err(fail("tenant", "no credential configured".into()))
    }
}

/// A credential's path: relative ones resolve against `credentials_dir` (`$CREDENTIALS_DIRECTORY`).
fn credential_path(p: &Path, credentials_dir: Option<&Path>) -> PathBuf {
    match credentials_dir {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p.to_path_buf(),
    }
}

/// Reads a one-line secret file (a client secret, a password, a webhook URL): one trailing
/// newline is dropped; an empty file is an error naming `key`.
pub(crate) fn read_secret_file(
    key: &str,
    p: &Path,
    credentials_dir: Option<&Path>,
) -> Result<Secret, ConfigError> {
    let path = credential_path(p, credentials_dir);
    let fail = |message: String| ConfigError {
        origin: "credential".into(),
        position: None,
        key: key.into(),
        message,
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
    warn_if_readable_by_others(&path);
    let secret = text
        .strip_suffix('\n')
        .map(|s| s.strip_suffix('\r').unwrap_or(s))
        .unwrap_or(&text);
    if secret.is_empty() {
        return Err(fail(format!("{} is empty", path.display())));
    }
    Ok(Secret::new(secret))
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the secret file is readable by group or others; chmod 600 it");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{parse, GOOD};

    #[test]
    fn a_certificate_or_key_that_is_not_pem_names_its_key_and_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = GOOD.replace(
            "client_secret_env = \"MFA_SECRET\"",
            "certificate_file = \"c.pem\"\nprivate_key_file = \"k.pem\"",
        );
        let config = parse(&text).expect("valid");
        std::fs::write(dir.path().join("c.pem"), [0x30u8, 0x82, 0x01, 0x0a]).expect("der");
        std::fs::write(
            dir.path().join("k.pem"),
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIFBAW4dCJc4=\n-----END PRIVATE KEY-----\n",
        )
        .expect("key");
        let e = config
            .credential_with(Some(dir.path()), &|_| None)
            .expect_err("DER is not PEM")
            .to_string();
        assert!(
            e.contains("tenant.certificate_file")
                && e.contains(&format!(
                    "{} is not text, so not PEM",
                    dir.path().join("c.pem").display()
                )),
            "{e}"
        );
        std::fs::write(dir.path().join("c.pem"), "MIIBCgKCAQEA\n").expect("base64 alone");
        let e = config
            .credential_with(Some(dir.path()), &|_| None)
            .expect_err("no PEM armour")
            .to_string();
        assert!(
            e.contains("tenant.certificate_file")
                && e.contains(&format!(
                    "{} is not PEM",
                    dir.path().join("c.pem").display()
                )),
            "{e}"
        );
        std::fs::write(
            dir.path().join("c.pem"),
            "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",
        )
        .expect("cert");
        std::fs::write(dir.path().join("k.pem"), "not a key").expect("key");
        let e = config
            .credential_with(Some(dir.path()), &|_| None)
            .expect_err("not a key")
            .to_string();
        assert!(
            e.contains("tenant.private_key_file") && e.contains("k.pem is not PEM"),
            "{e}"
        );
    }

    #[test]
    fn secrets_come_from_the_credentials_directory_and_never_show() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("client-secret"), "s3cr3t-value\n").expect("write");
        let text = GOOD.replace(
            "client_secret_env = \"MFA_SECRET\"",
            "client_secret_file = \"client-secret\"",
        );
        let config = parse(&text).expect("valid");
        let cred = config
            .credential_with(Some(dir.path()), &|_| None)
            .expect("read");
        match &cred {
            Credential::Secret(s) => assert_eq!(s.expose(), "s3cr3t-value"),
            other => panic!("{other:?}"),
        }
        assert!(!format!("{cred:?}{config:?}").contains("s3cr3t"));
        let missing = config
            .credential_with(None, &|_| None)
            .expect_err("no such file here");
        assert!(
            missing
                .to_string()
                .contains("tenant.client_secret_file: cannot read client-secret"),
            "{missing}"
        );
        std::fs::write(dir.path().join("client-secret"), "\n").expect("write");
        assert!(
            config.credential_with(Some(dir.path()), &|_| None).is_err(),
            "an empty secret is refused"
        );
    }

    #[test]
    fn the_secret_env_var_must_be_set() {
        let config = parse(GOOD).expect("valid");
        assert!(config
            .credential_with(None, &|_| None)
            .expect_err("unset")
            .to_string()
            .contains("MFA_SECRET is not set"));
        let cred = config
            .credential_with(None, &|n| (n == "MFA_SECRET").then(|| "x".to_string()))
            .expect("set");
        assert!(matches!(cred, Credential::Secret(_)));
    }
}
