//! Client-credentials tokens. (Interface stub: the implementation is being written.)

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
}
