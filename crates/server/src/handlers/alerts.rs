//! `GET /v1/holdfast/alerts`: the dashboard's view of the alert rules: each rule's
//! state (inactive, pending, firing, resolved, disabled), its last value and
//! threshold, and the most recent firing and resolved notices, newest first.
//!
//! For operators: alert summaries name targets' health and traffic levels, which are
//! the operator's business.

use axum::http::StatusCode;
use axum::response::Response;

use crate::access::Operator;
use crate::respond;

/// The alerts' states and recent transitions.
pub(crate) async fn alerts(caller: Operator) -> Response {
    let gw = &caller.gateway.inner;
    let reply = gw.reply();
    let body = serde_json::to_vec(&gw.alerts.snapshot()).unwrap_or_default();
    respond::json(StatusCode::OK, body, &reply)
}
