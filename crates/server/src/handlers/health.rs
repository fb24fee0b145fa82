//! `GET /health`: the process is up and serving. No key needed, nothing computed.
//!
//! Liveness only: whether targets are healthy is `/v1/holdfast/targets`' job, since a
//! gateway whose providers are down is still a working gateway (it degrades, it
//! answers errors quickly) and must not be restarted for it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use crate::gateway::Gateway;
use crate::respond;

/// Answers `{"status":"ok"}`.
pub(crate) async fn health(State(gateway): State<Gateway>) -> Response {
    respond::json(StatusCode::OK, r#"{"status":"ok"}"#, &gateway.inner.reply())
}
