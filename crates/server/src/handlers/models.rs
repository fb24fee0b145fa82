//! `GET /v1/models`: the routes, as OpenAI model objects.
//!
//! Clients list models to pick one; holdfast's models are its routes (targets stay
//! hidden, so they can change without client changes). The list is serialised once at
//! startup.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::error::Flavor;
use crate::gateway::Gateway;
use crate::respond;

/// Lists the routes.
pub(crate) async fn models(State(gateway): State<Gateway>, headers: HeaderMap) -> Response {
    let gw = &gateway.inner;
    let reply = gw.reply();
    match gw.keys.authenticate(&headers) {
        Ok(_) => respond::json(StatusCode::OK, gw.models.clone(), &reply),
        Err(err) => respond::error(&err, Flavor::OpenAi, &reply),
    }
}
