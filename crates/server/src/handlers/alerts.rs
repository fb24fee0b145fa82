//! `GET /v1/holdfast/alerts`: the dashboard's view of the alert rules: each rule's
//! state (inactive, pending, firing, resolved, disabled), its last value and
//! threshold, and the most recent firing and resolved notices, newest first.
//!
//! Behind the client key, like `/v1/holdfast/targets`: alert summaries name targets'
//! health and traffic levels, which are the operator's business.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::error::Flavor;
use crate::gateway::Gateway;
use crate::respond;

/// The alerts' states and recent transitions.
pub(crate) async fn alerts(State(gateway): State<Gateway>, headers: HeaderMap) -> Response {
    let gw = &gateway.inner;
    let reply = gw.reply();
    if let Err(err) = gw.keys.authenticate(&headers) {
        return respond::error(&err, Flavor::OpenAi, &reply);
    }
    let body = serde_json::to_vec(&gw.alerts.snapshot()).unwrap_or_default();
    respond::json(StatusCode::OK, body, &reply)
}
