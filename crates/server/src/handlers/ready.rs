//! `GET /ready`: whether this node can do its work now, with each dependency's state
//! and since when (`ready.rs`). No key needed, like `/health`: a load balancer
//! holds none, and the answer names no host, path or error text.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use crate::gateway::Gateway;
use crate::respond;

/// 200 `{"status":"ready",…}`, or 503 `{"status":"unready",…}` while a dependency is
/// down.
pub(crate) async fn ready(State(gateway): State<Gateway>) -> Response {
    let (ready, body) = gateway.dependencies();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    respond::json(status, body.to_string(), &gateway.inner.reply())
}
