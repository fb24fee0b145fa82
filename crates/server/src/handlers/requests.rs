//! `GET /v1/holdfast/requests/{id}`: the attempt ledger of one recent request.
//!
//! Behind the same client keys as the chat endpoints: the ledger holds no prompt or
//! answer, but it does show which targets a client's traffic went to.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::error::{ApiError, Flavor};
use crate::extract::Path;
use crate::gateway::Gateway;
use crate::respond;

/// The ledger entry of request `id`.
pub(crate) async fn request(
    State(gateway): State<Gateway>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let gw = &gateway.inner;
    let reply = gw.reply();
    if let Err(err) = gw.keys.authenticate(&headers) {
        return respond::error(&err, Flavor::OpenAi, &reply);
    }
    match gw.ledger.get_json(&id) {
        Some(body) => respond::json(StatusCode::OK, body, &reply),
        None => {
            let err = ApiError::NotFound(format!("no recent request with id `{id}`"));
            respond::error(&err, Flavor::OpenAi, &reply)
        }
    }
}
