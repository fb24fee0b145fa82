//! Mapping provider errors to [`Outcome`] classes, once, at the edge.
//!
//! The decision that shapes it: the body outranks the status. Providers signal the
//! conditions a policy treats differently (context overflow, quota, content filter,
//! Anthropic's overload) with a 400 or 429 plus a code or a message, so the error body
//! is read first and the status decides only what the body does not. Unknown shapes
//! fall back to the status alone; an unreadable body never fails classification.

use std::time::Duration;

use holdfast_policy::{Outcome, TimeoutKind};
use serde_json::Value;

use crate::openai::FinishReason;

mod retry_after;

pub use retry_after::{parse_retry_after, parse_retry_after_ms};

/// The error fields holdfast reads, from either provider's error shape.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorInfo {
    /// `error.type` (OpenAI `invalid_request_error`; Anthropic `overloaded_error`).
    pub kind: Option<String>,
    /// OpenAI's `error.code` (`context_length_exceeded`, `insufficient_quota`).
    pub code: Option<String>,
    /// The human-readable message.
    pub message: Option<String>,
}

impl ErrorInfo {
    /// Reads the error fields of a body in OpenAI shape (`{"error":{...}}`), Anthropic
    /// shape (`{"type":"error","error":{...}}`) or the looser shapes of
    /// OpenAI-compatible servers (`{"error":"text"}`, `{"message":...}`, `{"detail":...}`).
    pub fn from_json(body: &Value) -> Self {
        let error = body.get("error").unwrap_or(body);
        if let Some(text) = error.as_str() {
            return ErrorInfo {
                message: Some(text.to_owned()),
                ..ErrorInfo::default()
            };
        }
        let text = |key: &str| error.get(key).and_then(Value::as_str).map(str::to_owned);
        let code = error.get("code").and_then(|c| match c {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        ErrorInfo {
            kind: text("type").filter(|t| t != "error"),
            code,
            message: text("message").or_else(|| text("detail")),
        }
    }

    fn has(&self, names: &[&str]) -> bool {
        [&self.kind, &self.code]
            .into_iter()
            .flatten()
            .any(|v| names.contains(&v.as_str()))
    }

    fn message_has(&self, needles: &[&str]) -> bool {
        self.message.as_deref().is_some_and(|m| {
            let m = m.to_ascii_lowercase();
            needles.iter().any(|n| m.contains(n))
        })
    }

    /// The class the error's own fields name, if they name one.
    fn outcome(&self, retry_after: Option<Duration>) -> Option<Outcome> {
        if self.has(&["context_length_exceeded", "string_above_max_length"])
            || self.message_has(&CONTEXT_OVERFLOW_MESSAGES)
        {
            return Some(Outcome::ContextOverflow);
        }
        if self.has(&["content_filter", "content_policy_violation"]) {
            return Some(Outcome::ContentFiltered);
        }
        if self.has(&[
            "insufficient_quota",
            "billing_hard_limit_reached",
            "billing_error",
        ]) || self.message_has(&["credit balance is too low"])
        {
            return Some(Outcome::QuotaExhausted);
        }
        if self.has(&["overloaded_error", "overloaded"]) {
            return Some(Outcome::Overloaded { retry_after });
        }
        None
    }
}

/// Messages that say the prompt does not fit the context window.
const CONTEXT_OVERFLOW_MESSAGES: [&str; 5] = [
    "maximum context length",
    "prompt is too long",
    "exceeds the context window",
    "context_length_exceeded",
    "input is too long for requested model",
];

/// Classifies a provider's HTTP answer, in either provider's format (the error shapes
/// are told apart by their fields). `retry_after` is what the response headers
/// asked for (see [`parse_retry_after`]); `body` may be anything, even empty.
pub fn classify_http(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Outcome {
    if (200..300).contains(&status) {
        return Outcome::Ok;
    }
    let info = serde_json::from_slice::<Value>(body)
        .map(|v| ErrorInfo::from_json(&v))
        .unwrap_or_default();
    classify_status(status, retry_after, &info)
}

/// Classifies a status with the error fields already read from its body.
pub fn classify_status(status: u16, retry_after: Option<Duration>, info: &ErrorInfo) -> Outcome {
    if (400..600).contains(&status) {
        if let Some(outcome) = info.outcome(retry_after) {
            return outcome;
        }
    }
    match status {
        200..=299 => Outcome::Ok,
        401 | 403 => Outcome::Auth,
        404 => Outcome::NotFound,
        408 => Outcome::Timeout(TimeoutKind::Total),
        429 => Outcome::RateLimited { retry_after },
        503 | 529 => Outcome::Overloaded { retry_after },
        400..=499 => Outcome::BadRequest,
        // 500, 502, 504, other 5xx, and statuses a provider should never send.
        _ => Outcome::ServerError,
    }
}

/// Classifies an error sent in-band in a stream: an OpenAI chunk's `error` object or
/// an Anthropic `error` event. There is no status; the error's type decides, and an
/// unknown type counts as a server error (the stream broke on the provider's side).
pub fn classify_stream_error(info: &ErrorInfo) -> Outcome {
    if let Some(outcome) = info.outcome(None) {
        return outcome;
    }
    let kind = info.kind.as_deref().or(info.code.as_deref()).unwrap_or("");
    match kind {
        "rate_limit_error" | "rate_limit_exceeded" | "requests" | "tokens" => {
            Outcome::RateLimited { retry_after: None }
        }
        "authentication_error" | "permission_error" | "invalid_api_key" => Outcome::Auth,
        "not_found_error" | "model_not_found" => Outcome::NotFound,
        "invalid_request_error" | "request_too_large" => Outcome::BadRequest,
        "timeout_error" | "timeout" => Outcome::Timeout(TimeoutKind::Total),
        _ => Outcome::ServerError,
    }
}

/// The class a finish reason implies, when it implies a failure: `content_filter`
/// means the provider's filter cut or refused the answer.
pub fn classify_finish_reason(reason: FinishReason) -> Option<Outcome> {
    match reason {
        FinishReason::ContentFilter => Some(Outcome::ContentFiltered),
        FinishReason::Stop
        | FinishReason::Length
        | FinishReason::ToolCalls
        | FinishReason::FunctionCall
        | FinishReason::Unknown => None,
    }
}

#[cfg(test)]
mod tests;
