//! The Anthropic messages wire format: bodies, errors and stream events.
//!
//! Shapes and messages follow what api.anthropic.com sends, `event:` lines included. A
//! filtered answer is a 200 with stop_reason `refusal` and no content, as Claude's
//! streaming classifiers report it; an exhausted credit balance is a 400
//! `invalid_request_error`, as Anthropic reports it, not a 429.

use serde_json::{Value, json};

use crate::answer::{Answer, Content, Finish};
use crate::format::{Frames, Meta, Reply, retry_headers, sse};
use crate::plan::Rejection;

fn request_id(meta: &Meta) -> String {
    format!("req_{:024x}", meta.id_bits)
}

fn error_reply(status: u16, kind: &str, message: &str, meta: &Meta) -> Reply {
    let body = json!({"type": "error", "error": {"type": kind, "message": message},
        "request_id": request_id(meta)});
    let mut reply = Reply::json(status, &body);
    reply.headers.push(("request-id", request_id(meta)));
    reply
}

/// The error response for a rejection. One arm per rejection: a table of the provider's
/// real statuses and messages, longer than most functions for that reason.
pub(crate) fn error(rejection: &Rejection, meta: &Meta) -> Reply {
    let invalid = "invalid_request_error";
    match rejection {
        Rejection::Status {
            status: 429,
            retry_after,
        } => {
            let message = "This request would exceed the rate limit for your organization \
(holdfast-mock) of 50 requests per minute. For details, refer to: \
https://docs.claude.com/en/api/rate-limits. You can see the response headers for current \
usage. Please reduce the prompt length or the maximum tokens requested, or try again later.";
            let mut reply = error_reply(429, "rate_limit_error", message, meta);
            reply.headers.extend(retry_headers(*retry_after));
            reply
                .headers
                .push(("anthropic-ratelimit-requests-remaining", "0".to_owned()));
            reply
        }
        Rejection::Status { status: 502, .. } => Reply::bad_gateway(),
        Rejection::Status { status: 503, .. } => {
            error_reply(503, "api_error", "Service unavailable", meta)
        }
        Rejection::Status { status: 529, .. } => {
            error_reply(529, "overloaded_error", "Overloaded", meta)
        }
        Rejection::Status { status, .. } => {
            error_reply(*status, "api_error", "Internal server error", meta)
        }
        Rejection::MissingKey => error_reply(
            401,
            "authentication_error",
            "x-api-key header is required",
            meta,
        ),
        Rejection::WrongKey => error_reply(401, "authentication_error", "invalid x-api-key", meta),
        Rejection::Quota => error_reply(
            400,
            invalid,
            "Your credit balance is too low to access the Anthropic API. Please go to Plans & \
Billing to upgrade or purchase credits.",
            meta,
        ),
        Rejection::ContextOverflow {
            prompt_tokens,
            limit,
        } => {
            let message = format!("prompt is too long: {prompt_tokens} tokens > {limit} maximum");
            error_reply(400, invalid, &message, meta)
        }
        Rejection::BadRequest(message) => error_reply(400, invalid, message, meta),
        Rejection::PrefillUnsupported => error_reply(
            400,
            invalid,
            "This model does not support assistant message prefill. The conversation must end \
with a user message.",
            meta,
        ),
    }
}

/// The 404 for a path this format does not serve.
pub(crate) fn not_found() -> Reply {
    let body =
        json!({"type": "error", "error": {"type": "not_found_error", "message": "Not Found"}});
    Reply::json(404, &body)
}

fn stop_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop => "end_turn",
        Finish::Length => "max_tokens",
        Finish::ToolCalls => "tool_use",
        Finish::ContentFilter => "refusal",
    }
}

fn tool_id(meta: &Meta) -> String {
    format!("toolu_{:024x}", meta.id_bits.rotate_left(17))
}

fn usage(meta: &Meta, output_tokens: u64) -> Value {
    json!({"input_tokens": meta.prompt_tokens, "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0, "output_tokens": output_tokens})
}

fn message(meta: &Meta, content: Value, stop: Value, output_tokens: u64) -> Value {
    json!({
        "id": format!("msg_{:024x}", meta.id_bits),
        "type": "message",
        "role": "assistant",
        "model": meta.model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": null,
        "usage": usage(meta, output_tokens)
    })
}

/// A whole (non-streaming) message.
pub(crate) fn completion(meta: &Meta, answer: &Answer) -> Value {
    let content = match &answer.content {
        Content::Text(_) if answer.finish == Finish::ContentFilter => json!([]),
        Content::Text(_) => json!([{"type": "text", "text": answer.text()}]),
        Content::Tool {
            name, arguments, ..
        } => {
            let input: Value = serde_json::from_str(arguments).unwrap_or_else(|_| json!({}));
            json!([{"type": "tool_use", "id": tool_id(meta), "name": name, "input": input}])
        }
    };
    let stop = json!(stop_reason(answer.finish));
    message(meta, content, stop, answer.completion_tokens)
}

/// The stream: message_start, content_block_start, ping, deltas, content_block_stop,
/// message_delta (stop reason and usage), message_stop.
pub(crate) fn frames(meta: &Meta, answer: &Answer) -> Frames {
    let start = json!({"type": "message_start",
        "message": message(meta, json!([]), Value::Null, 1)});
    let mut preamble = vec![sse(Some("message_start"), &start)];
    let has_block = answer.finish != Finish::ContentFilter;
    let (block, deltas): (Value, Vec<Value>) = match &answer.content {
        Content::Text(chunks) => (
            json!({"type": "text", "text": ""}),
            chunks
                .iter()
                .map(|c| json!({"type": "text_delta", "text": c}))
                .collect(),
        ),
        Content::Tool { name, pieces, .. } => (
            json!({"type": "tool_use", "id": tool_id(meta), "name": name, "input": {}}),
            pieces
                .iter()
                .map(|p| json!({"type": "input_json_delta", "partial_json": p}))
                .collect(),
        ),
    };
    let mut finish = Vec::new();
    if has_block {
        let start = json!({"type": "content_block_start", "index": 0, "content_block": block});
        preamble.push(sse(Some("content_block_start"), &start));
        let stop = json!({"type": "content_block_stop", "index": 0});
        finish.push(sse(Some("content_block_stop"), &stop));
    }
    preamble.push(sse(Some("ping"), &json!({"type": "ping"})));
    let delta = json!({"type": "message_delta",
        "delta": {"stop_reason": stop_reason(answer.finish), "stop_sequence": null},
        "usage": {"output_tokens": answer.completion_tokens}});
    finish.push(sse(Some("message_delta"), &delta));
    finish.push(sse(Some("message_stop"), &json!({"type": "message_stop"})));
    let deltas = deltas
        .into_iter()
        .map(|d| {
            sse(
                Some("content_block_delta"),
                &json!({"type": "content_block_delta", "index": 0, "delta": d}),
            )
        })
        .collect();
    Frames {
        preamble,
        deltas,
        finish,
    }
}

/// A `data:` line cut off in the middle of its JSON.
pub(crate) fn malformed_event() -> String {
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_del\n\n"
        .to_owned()
}

/// The in-band error Anthropic sends when a stream fails after it started.
pub(crate) fn inband_error() -> String {
    let body =
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
    sse(Some("error"), &body)
}

/// `GET /v1/models`.
pub(crate) fn models() -> Value {
    json!({
        "data": [
            {"type": "model", "id": "claude-sonnet-4-5", "display_name": "Claude Sonnet 4.5",
                "created_at": "2025-09-29T00:00:00Z"},
            {"type": "model", "id": "claude-haiku-4-5", "display_name": "Claude Haiku 4.5",
                "created_at": "2025-10-15T00:00:00Z"}
        ],
        "has_more": false,
        "first_id": "claude-sonnet-4-5",
        "last_id": "claude-haiku-4-5"
    })
}
