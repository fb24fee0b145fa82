//! Answers for paths and methods the gateway does not serve, in the same JSON error
//! shape as everything else (axum's defaults are empty bodies).
//!
//! Paths under `/v1/messages` get the Anthropic shape, since only an Anthropic client
//! calls them.

use axum::extract::State;
use axum::http::{Method, Uri};
use axum::response::Response;

use crate::error::{ApiError, Flavor};
use crate::gateway::Gateway;
use crate::respond;

fn flavor(uri: &Uri) -> Flavor {
    if uri.path().starts_with("/v1/messages") {
        Flavor::Anthropic
    } else {
        Flavor::OpenAi
    }
}

/// 404 for an unknown path.
pub(crate) async fn not_found(
    State(gateway): State<Gateway>,
    method: Method,
    uri: Uri,
) -> Response {
    let err = ApiError::NotFound(format!("no route for {method} {}", uri.path()));
    respond::error(&err, flavor(&uri), &gateway.inner.reply())
}

/// 405 for a known path with another method (axum adds the `Allow` header).
pub(crate) async fn method_not_allowed(
    State(gateway): State<Gateway>,
    method: Method,
    uri: Uri,
) -> Response {
    let err = ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    };
    respond::error(&err, flavor(&uri), &gateway.inner.reply())
}
