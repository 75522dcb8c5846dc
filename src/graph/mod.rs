//! The Microsoft Graph client: tokens, pacing, retries, paging and `$batch`.
//!
//! It knows HTTP and Graph's protocol (OData paging, error bodies, throttling), not what the data
//! means: `collect` calls it with URLs and wire types. It works against real Graph unchanged; the
//! only knobs are the endpoints (a national cloud or a custom base URL) and the pacing budget.
//!
//! INTERFACE CONTRACT (other modules code against these signatures):
//! - `GraphClient::new(ClientConfig, Credential) -> Result<GraphClient, GraphError>`; cheap `Clone`.
//! - `client.granted_roles().await -> Result<Vec<String>, GraphError>`: fetches a token and returns its `roles` claim.
//! - `client.get_json::<T>(ThrottleClass, endpoint_label, url).await`: one GET (url relative to the
//!   Graph host, e.g. "/v1.0/policies/authenticationMethodsPolicy", or absolute), with pacing and retries.
//! - `client.get_pages::<T, F>(ThrottleClass, endpoint_label, first_url, on_page).await`: follows
//!   `@odata.nextLink` verbatim (loop guard), calling `on_page(Vec<T>)` for each page's `value`.
//! - `client.batch_get::<T>(ThrottleClass, endpoint_label, ApiVersion, Vec<BatchItem>).await`:
//!   `$batch` in chunks of ≤ 20, per-item retry of 429/503/504 after that item's Retry-After
//!   (until the deadline when one is set, else `max_retries` times); returns one result per item,
//!   keyed by the item's id.
//! - `client.with_deadline(Duration) -> GraphClient`: a clone (same tokens, pacers, counters) whose
//!   waits may not end past now + budget; such a wait fails at once with `GraphError::Deadline`.
//! - `client.stats()`: request counters by (endpoint label, status) for the metrics.

pub mod auth;
pub mod client;
pub mod error;
pub mod identity;
pub mod pacer;
pub mod retry;
pub mod stats;

pub use auth::Credential;
pub use client::{ApiVersion, BatchItem, ClientConfig, GraphClient, Pacing};
pub use error::GraphError;
pub use identity::{ManagedIdentity, ManagedIdentityEndpoint};
pub use stats::GraphStats;

/// Graph's throttle classes (REFERENCE §3.6), each paced by its own client-side token bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ThrottleClass {
    /// Identity and access: users, roles, policies; resource units per 10 s per app and tenant.
    Directory,
    /// Identity and access reports: registration details, sign-ins; 5 requests per 10 s per tenant.
    Reports,
    /// Conditional Access: 1 request per second per tenant, no Retry-After on 429.
    ConditionalAccess,
    /// Per-user authentication-method endpoints (the docs are ambiguous about their bucket).
    AuthMethods,
}
