//! Errors from the Graph client. Each names the endpoint it came from, so a failed sweep can say
//! exactly what failed and why; none carries a token or a secret.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum GraphError {
    /// Graph answered with an error status (after retries, where retrying made sense).
    #[error("{endpoint}: HTTP {status} {code}: {message}")]
    Http {
        endpoint: String,
        status: u16,
        /// `error.code` from Graph's error body ("" when absent).
        code: String,
        message: String,
        /// `innerError.request-id`, for support cases.
        request_id: Option<String>,
    },
    /// The token endpoint refused us (bad secret, wrong tenant, …).
    #[error("token endpoint: {error}: {description}")]
    Token {
        error: String,
        description: String,
        codes: Vec<i64>,
    },
    /// Connection, TLS or protocol failure.
    #[error("{endpoint}: transport error: {message}")]
    Transport { endpoint: String, message: String },
    /// The request did not complete within the configured timeout.
    #[error("{endpoint}: timed out after {seconds:.1} s")]
    Timeout { endpoint: String, seconds: f64 },
    /// A body that is not the JSON we expect: malformed, truncated or of the wrong shape.
    #[error("{endpoint}: unreadable response body: {message}")]
    Decode { endpoint: String, message: String },
    /// An `@odata.nextLink` came back that we had already followed.
    #[error("{endpoint}: nextLink loop: {url} was returned twice")]
    NextLinkLoop { endpoint: String, url: String },
    /// Throttled and still throttled after every retry.
    #[error("{endpoint}: still throttled (HTTP 429) after {attempts} attempts")]
    Throttled { endpoint: String, attempts: u32 },
    /// Waiting (for `Retry-After`, a backoff or the pacer) would pass the audit's deadline, so the
    /// request was given up at once (`graph.audit_timeout_seconds`).
    #[error("{endpoint}: gave up at the audit deadline ({budget_seconds:.0} s after the audit's start, graph.audit_timeout_seconds): the next try would have waited {wait_seconds:.0} s")]
    Deadline {
        endpoint: String,
        /// How long the client would have had to wait.
        wait_seconds: f64,
        /// The audit's whole budget.
        budget_seconds: f64,
    },
    /// Some items of a per-user `$batch` sweep failed for good.
    #[error("{endpoint}: {failed} of {total} users could not be read; first: {first}")]
    Items {
        endpoint: String,
        failed: usize,
        total: usize,
        first: String,
    },
    /// Bad configuration of the client itself (URL, key).
    #[error("{0}")]
    Config(String),
    /// The audit was cancelled (shutdown).
    #[error("cancelled")]
    Cancelled,
}

impl GraphError {
    /// The HTTP status, when Graph answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            GraphError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Graph's `error.code`, when it sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            GraphError::Http { code, .. } => Some(code),
            _ => None,
        }
    }

    /// A 403 that means the tenant lacks the P1/P2 licence the endpoint needs.
    pub fn is_licence_error(&self) -> bool {
        matches!(self, GraphError::Http { status: 403, code, .. }
            if code == "Authentication_RequestFromNonPremiumTenantOrB2CTenant")
    }
}
