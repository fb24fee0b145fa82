//! The OpenAI chat-completions wire format: bodies, errors and stream chunks.
//!
//! Shapes and messages follow what api.openai.com sends, so that a client's parser and
//! error classifier meet here exactly what they meet in production. A filtered answer
//! is a 200 with finish_reason `content_filter` (how output filtering is reported),
//! not an error status.

use serde_json::{Value, json};

use crate::answer::{Answer, Content, Finish};
use crate::format::{Frames, Meta, Reply, retry_headers, sse};
use crate::plan::Rejection;

fn error_body(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
}

fn invalid_request(status: u16, message: &str, param: Option<&str>, code: Option<&str>) -> Reply {
    Reply::json(
        status,
        &error_body(message, "invalid_request_error", param, code),
    )
}

/// The error response for a rejection. One arm per rejection: a table of the provider's
/// real statuses and messages, longer than most functions for that reason.
pub(crate) fn error(rejection: &Rejection, meta: &Meta) -> Reply {
    match rejection {
        Rejection::Status {
            status,
            retry_after,
        } => status_error(*status, *retry_after, meta),
        Rejection::MissingKey => invalid_request(
            401,
            "You didn't provide an API key. You need to provide your API key in an \
Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You can obtain \
an API key from https://platform.openai.com/account/api-keys.",
            None,
            None,
        ),
        Rejection::WrongKey => invalid_request(
            401,
            "Incorrect API key provided. You can find your API key at \
https://platform.openai.com/account/api-keys.",
            None,
            Some("invalid_api_key"),
        ),
        Rejection::Quota => Reply::json(
            429,
            &error_body(
                "You exceeded your current quota, please check your plan and billing details. \
For more information on this error, read the docs: \
https://platform.openai.com/docs/guides/error-codes/api-errors.",
                "insufficient_quota",
                None,
                Some("insufficient_quota"),
            ),
        ),
        Rejection::ContextOverflow {
            prompt_tokens,
            limit,
        } => {
            let message = format!(
                "This model's maximum context length is {limit} tokens. However, your messages \
resulted in {prompt_tokens} tokens. Please reduce the length of the messages."
            );
            invalid_request(
                400,
                &message,
                Some("messages"),
                Some("context_length_exceeded"),
            )
        }
        Rejection::BadRequest(message) => invalid_request(400, message, None, None),
        Rejection::PrefillUnsupported => invalid_request(
            400,
            "This model does not support assistant message prefill. The conversation must end \
with a user message.",
            Some("messages"),
            None,
        ),
    }
}

fn status_error(status: u16, retry_after: Option<crate::timing::Span>, meta: &Meta) -> Reply {
    let (message, kind, code) = match status {
        429 => {
            let wait = retry_after.map_or(1.0, |w| w.as_secs_f64());
            let message = format!(
                "Rate limit reached for {} in organization org-holdfast-mock on requests per min \
(RPM): Limit 500, Used 500, Requested 1. Please try again in {wait}s. Visit \
https://platform.openai.com/account/rate-limits to learn more.",
                meta.model
            );
            let mut reply = Reply::json(
                429,
                &error_body(&message, "requests", None, Some("rate_limit_exceeded")),
            );
            reply.headers = retry_headers(retry_after);
            reply.headers.extend([
                ("x-ratelimit-limit-requests", "500".to_owned()),
                ("x-ratelimit-remaining-requests", "0".to_owned()),
            ]);
            return reply;
        }
        502 => return Reply::bad_gateway(),
        503 => (
            "The engine is currently overloaded, please try again later.",
            "server_error",
            None,
        ),
        529 => (
            "The server is overloaded, please try again later.",
            "server_error",
            Some("overloaded"),
        ),
        _ => (
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        ),
    };
    Reply::json(status, &error_body(message, kind, None, code))
}

/// The 404 for a path this format does not serve.
pub(crate) fn not_found(method: &str, path: &str) -> Reply {
    invalid_request(404, &format!("Invalid URL ({method} {path})"), None, None)
}

fn finish_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop => "stop",
        Finish::Length => "length",
        Finish::ToolCalls => "tool_calls",
        Finish::ContentFilter => "content_filter",
    }
}

fn tool_id(meta: &Meta) -> String {
    format!("call_{:024x}", meta.id_bits.rotate_left(17))
}

fn usage(meta: &Meta, answer: &Answer) -> Value {
    json!({
        "prompt_tokens": meta.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "total_tokens": meta.prompt_tokens + answer.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
    })
}

/// A whole (non-streaming) completion.
pub(crate) fn completion(meta: &Meta, answer: &Answer) -> Value {
    let message = match &answer.content {
        Content::Text(_) => json!({
            "role": "assistant", "content": answer.text(), "refusal": null, "annotations": []
        }),
        Content::Tool {
            name, arguments, ..
        } => json!({
            "role": "assistant", "content": null, "refusal": null, "annotations": [],
            "tool_calls": [{"id": tool_id(meta), "type": "function",
                "function": {"name": name, "arguments": arguments}}]
        }),
    };
    json!({
        "id": format!("chatcmpl-{:024x}", meta.id_bits),
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "choices": [{"index": 0, "message": message, "logprobs": null,
            "finish_reason": finish_reason(answer.finish)}],
        "usage": usage(meta, answer),
        "service_tier": "default",
        "system_fingerprint": "fp_holdfast_mock"
    })
}

fn chunk(meta: &Meta, delta: Value, finish: Option<&str>) -> String {
    let mut body = json!({
        "id": format!("chatcmpl-{:024x}", meta.id_bits),
        "object": "chat.completion.chunk",
        "created": meta.created,
        "model": meta.model,
        "system_fingerprint": "fp_holdfast_mock",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
    });
    if meta.include_usage {
        body["usage"] = Value::Null;
    }
    sse(None, &body)
}

/// The stream: a role chunk, content deltas, a finish chunk, a usage chunk when
/// `stream_options.include_usage`, then `[DONE]`.
pub(crate) fn frames(meta: &Meta, answer: &Answer) -> Frames {
    let (first, deltas): (Value, Vec<Value>) = match &answer.content {
        Content::Text(chunks) => (
            json!({"role": "assistant", "content": "", "refusal": null}),
            chunks.iter().map(|c| json!({"content": c})).collect(),
        ),
        Content::Tool { name, pieces, .. } => (
            json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0,
                "id": tool_id(meta), "type": "function",
                "function": {"name": name, "arguments": ""}}]}),
            pieces
                .iter()
                .map(|p| json!({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}))
                .collect(),
        ),
    };
    let mut finish = vec![chunk(meta, json!({}), Some(finish_reason(answer.finish)))];
    if meta.include_usage {
        let body = json!({
            "id": format!("chatcmpl-{:024x}", meta.id_bits),
            "object": "chat.completion.chunk", "created": meta.created, "model": meta.model,
            "system_fingerprint": "fp_holdfast_mock", "choices": [], "usage": usage(meta, answer)
        });
        finish.push(sse(None, &body));
    }
    finish.push("data: [DONE]\n\n".to_owned());
    Frames {
        preamble: vec![chunk(meta, first, None)],
        deltas: deltas.into_iter().map(|d| chunk(meta, d, None)).collect(),
        finish,
    }
}

/// A `data:` line cut off in the middle of its JSON.
pub(crate) fn malformed_event(meta: &Meta) -> String {
    format!(
        "data: {{\"id\":\"chatcmpl-{:024x}\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"\n\n",
        meta.id_bits
    )
}

/// The in-band error OpenAI sends when a stream fails after it started.
pub(crate) fn inband_error() -> String {
    let body = error_body(
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
        None,
    );
    sse(None, &body)
}

/// `GET /v1/models`.
pub(crate) fn models() -> Value {
    json!({"object": "list", "data": [
        {"id": "gpt-4o", "object": "model", "created": 1_715_367_049u64, "owned_by": "system"},
        {"id": "gpt-4o-mini", "object": "model", "created": 1_721_172_741u64, "owned_by": "system"}
    ]})
}
