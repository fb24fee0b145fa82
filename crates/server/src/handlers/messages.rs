//! `POST /v1/messages`: the Anthropic-compatible endpoint, streamed or not.
//!
//! The decision: translate at the edge. The Anthropic request becomes the canonical
//! OpenAI request (refusing, with the field, what cannot be translated), runs through
//! the same exchange as every chat, and its answer or stream is translated back; only
//! errors keep the Anthropic shape throughout.

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use holdfast_llm::anthropic::MessagesRequest;
use holdfast_llm::openai::ChatRequest;
use holdfast_llm::translate::to_openai_request;

use crate::access::Agent;
use crate::error::{ApiError, Flavor};
use crate::exchange::{self, Dialect};
use crate::intake::{Door, request_error};

/// Handles one Anthropic message request.
pub(crate) async fn messages(caller: Agent, headers: HeaderMap, body: Body) -> Response {
    let door = match Door::open(caller, &headers, body, Flavor::Anthropic, "messages").await {
        Ok(door) => door,
        Err(refused) => return refused,
    };
    match read_messages_request(&door.body) {
        Ok(request) => exchange::serve(door, request, Dialect::Anthropic).await,
        Err(err) => door.refuse(&err),
    }
}

/// Reads a `POST /v1/messages` body as the gateway does before routing it: parsed,
/// checked and translated to the canonical request, every refusal naming the field
/// at fault. Public so that the fuzz targets run exactly what the handler runs.
pub fn read_messages_request(body: &[u8]) -> Result<ChatRequest, ApiError> {
    let mut json = serde_json::Deserializer::from_slice(body);
    let request: MessagesRequest = serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::InvalidJson(inner.to_string())
        } else {
            ApiError::InvalidJson(format!("{path}: {inner}"))
        }
    })?;
    json.end()
        .map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    let invalid = |param: &str, message: &str| ApiError::InvalidRequest {
        message: format!("invalid `{param}`: {message}"),
        param: Some(param.to_owned()),
    };
    if request.model.trim().is_empty() {
        return Err(invalid("model", "must not be empty"));
    }
    if request.messages.is_empty() {
        return Err(invalid("messages", "must hold at least one message"));
    }
    if request.max_tokens == 0 {
        return Err(invalid("max_tokens", "must be at least 1"));
    }
    let chat = to_openai_request(&request).map_err(|e| ApiError::InvalidRequest {
        message: e.to_string(),
        param: None,
    })?;
    chat.validate().map_err(request_error)?;
    Ok(chat)
}
