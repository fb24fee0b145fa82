//! `POST /v1/chat/completions`: the OpenAI-compatible chat endpoint, streamed or not.
//!
//! The body is already the canonical form: parse and validate it (every refusal names
//! the field), then hand it to the shared exchange. Valid bodies take serde's fast
//! path; only a refused one pays for the path-tracking parser that names the field.

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use holdfast_llm::openai::ChatRequest;

use crate::access::Agent;
use crate::error::{ApiError, Flavor};
use crate::exchange::{self, Dialect};
use crate::intake::{Door, request_error};

/// Handles one chat completion.
pub(crate) async fn chat_completions(caller: Agent, headers: HeaderMap, body: Body) -> Response {
    let door = match Door::open(caller, &headers, body, Flavor::OpenAi, "chat.completions").await {
        Ok(door) => door,
        Err(refused) => return refused,
    };
    match read_chat_request(&door.body) {
        Ok(request) => exchange::serve(door, request, Dialect::OpenAi).await,
        Err(err) => door.refuse(&err),
    }
}

/// Reads a `POST /v1/chat/completions` body as the gateway does before routing it:
/// parsed and validated, every refusal naming the field at fault. Valid bodies take
/// serde's fast path; a refused one is parsed again by [`ChatRequest::from_json`],
/// whose slower parser names the field. Public so that the fuzz targets run exactly
/// what the handler runs.
pub fn read_chat_request(body: &[u8]) -> Result<ChatRequest, ApiError> {
    if let Ok(request) = serde_json::from_slice::<ChatRequest>(body)
        && request.validate().is_ok()
    {
        return Ok(request);
    }
    match ChatRequest::from_json(body) {
        Ok(request) => Ok(request),
        Err(err) => Err(request_error(err)),
    }
}
