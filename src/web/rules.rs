//! Skeleton (filled below).
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;

use super::WebError;
use crate::daemon::Shared;

pub(super) fn rule(id: &str) -> Option<&'static crate::evaluate::Rule> {
    crate::evaluate::CATALOGUE.iter().find(|r| r.id == id)
}

pub async fn page(State(_s): State<Arc<Shared>>) -> Result<Response, WebError> {
    Err(WebError::NotFound("not built yet".into()))
}

pub async fn csv(State(_s): State<Arc<Shared>>) -> Result<Response, WebError> {
    Err(WebError::NotFound("not built yet".into()))
}
