//! Building responses: JSON answers, SSE streams and errors, each with the
//! `x-holdfast-*` headers.
//!
//! The decision: one function per kind of response, and each applies [`Reply`], so
//! that no path can forget the request id. Bodies arrive already serialised (a whole
//! answer is serialised exactly once, by the handler that knows its dialect).

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, Flavor};
use crate::meta::Reply;

/// An error in `flavor`, with `reply`'s headers.
pub(crate) fn error(err: &ApiError, flavor: Flavor, reply: &Reply) -> Response {
    let mut response = err.render(flavor);
    reply.apply(response.headers_mut());
    response
}

/// A JSON body with `reply`'s headers.
pub(crate) fn json(status: StatusCode, body: impl Into<Body>, reply: &Reply) -> Response {
    let mut response = (status, body.into()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    reply.apply(headers);
    response
}

/// An event stream with `reply`'s headers.
pub(crate) fn sse(body: Body, reply: &Reply) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    reply.apply(headers);
    response
}
