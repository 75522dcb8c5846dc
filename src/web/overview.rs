//! `/`: the tenant at a glance. (Skeleton: the status page still answers `/`.)

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;

use super::WebError;
use crate::daemon::Shared;

pub async fn page(State(_s): State<Arc<Shared>>) -> Result<Response, WebError> {
    Err(WebError::NotFound("the overview is not built yet".into()))
}
