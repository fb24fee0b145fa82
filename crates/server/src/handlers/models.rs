//! `GET /v1/models`: the routes, as OpenAI model objects.
//!
//! Clients list models to pick one; holdfast's models are its routes (targets stay
//! hidden, so they can change without client changes). The list is serialised once at
//! startup.

use axum::http::StatusCode;
use axum::response::Response;

use crate::access::Agent;
use crate::respond;

/// Lists the routes.
pub(crate) async fn models(caller: Agent) -> Response {
    let gw = &caller.gateway.inner;
    respond::json(StatusCode::OK, gw.models.clone(), &gw.reply())
}
