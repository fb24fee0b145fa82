//! `GET /v1/holdfast/requests/{id}`: the attempt ledger of one recent request.
//!
//! For any key, of its own tenant's requests (operators and admins read every
//! tenant's): the ledger holds no prompt or answer, but it does show which targets a
//! client's traffic went to and what it cost. Another tenant's request id is answered
//! 404, as an unknown one is.

use axum::http::StatusCode;
use axum::response::Response;

use crate::access::Agent;
use crate::error::{ApiError, Flavor};
use crate::extract::Path;
use crate::respond;

/// The ledger entry of request `id`.
pub(crate) async fn request(caller: Agent, Path(id): Path<String>) -> Response {
    let gw = &caller.gateway.inner;
    let reply = gw.reply();
    match gw.ledger.get_json(&id, &caller.principal.reads()) {
        Some(body) => respond::json(StatusCode::OK, body, &reply),
        None => {
            let err = ApiError::NotFound(format!("no recent request with id `{id}`"));
            respond::error(&err, Flavor::OpenAi, &reply)
        }
    }
}
