//! The admin API: read and replace the fault set, read counts and the request log,
//! reset.
//!
//! Tests and chaos scenarios drive a running mock through these endpoints, so a bad
//! fault set is refused with a 400 that says which field is wrong, and the fault set in
//! force stays as it was.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use crate::faults::Faults;
use crate::provider::{MockProvider, REQUEST_LOG_CAPACITY};

/// `GET /admin/faults`.
pub(crate) async fn get_faults(State(provider): State<MockProvider>) -> Response {
    Json(provider.faults()).into_response()
}

/// `POST /admin/faults`: a JSON fault set, or TOML when the content type says so.
pub(crate) async fn set_faults(
    State(provider): State<MockProvider>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let is_toml = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("toml"));
    let text = String::from_utf8_lossy(&body);
    let parsed = if is_toml {
        Faults::from_toml_str(&text)
    } else {
        Faults::from_json_str(&text)
    };
    let keep_key = |mut faults: Faults| {
        if faults.api_key.as_ref().is_some_and(|key| key.is_redacted()) {
            faults.api_key = provider.faults().api_key;
        }
        faults
    };
    match parsed
        .map(keep_key)
        .and_then(|faults| provider.set_faults(faults))
    {
        Ok(()) => {
            tracing::info!("mock provider faults replaced");
            Json(provider.faults()).into_response()
        }
        Err(err) => {
            let body = json!({"error": {"type": "invalid_faults", "message": err.to_string()}});
            (StatusCode::BAD_REQUEST, Json(body)).into_response()
        }
    }
}

/// `GET /admin/stats`.
pub(crate) async fn stats(State(provider): State<MockProvider>) -> Response {
    Json(provider.stats()).into_response()
}

/// The query of `GET /admin/requests`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequestsQuery {
    limit: Option<usize>,
}

/// `GET /admin/requests?limit=N`: the last N requests, oldest first.
pub(crate) async fn requests(
    State(provider): State<MockProvider>,
    Query(query): Query<RequestsQuery>,
) -> Response {
    let limit = query.limit.unwrap_or(REQUEST_LOG_CAPACITY);
    Json(provider.requests(limit)).into_response()
}

/// The query of `POST /admin/reset`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetQuery {
    seed: Option<u64>,
}

/// `POST /admin/reset?seed=N`: zero the counts, restart the time origin, re-seed.
pub(crate) async fn reset(
    State(provider): State<MockProvider>,
    Query(query): Query<ResetQuery>,
) -> Response {
    provider.reset(query.seed);
    Json(json!({"reset": true, "seed": provider.seed()})).into_response()
}
