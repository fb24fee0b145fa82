//! [`ProviderError`]: a failed provider call, classified, with a message people can read
//! and that never holds the key.
//!
//! Providers echo keys back (OpenAI's 401 says "Incorrect API key provided: sk-ab***yz"),
//! so every message and body that leaves this module goes through [`redact`], which
//! removes the endpoint's key and anything shaped like an OpenAI or Anthropic key.

use std::time::Duration;

use holdfast_policy::{Outcome, TimeoutKind};
use http::HeaderMap;
use serde_json::Value;

use super::ApiKey;
use super::transport::TransportError;
use crate::classify::{self, ErrorInfo};

/// A provider call that did not produce a usable answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{outcome}: {message}")]
pub struct ProviderError {
    /// The class of the failure: what the policy acts on.
    pub outcome: Outcome,
    /// The HTTP status, when the provider answered.
    pub status: Option<u16>,
    /// What happened, for people; never holds the API key.
    pub message: String,
    /// The provider's error body (or, for a filtered answer, the answer), redacted.
    pub body: Option<Value>,
}

/// Longest body text kept in an error when the body is not JSON.
const MAX_TEXT_BODY: usize = 2048;

impl ProviderError {
    /// An error of class `outcome` without a status or body.
    pub fn new(outcome: Outcome, message: impl Into<String>) -> Self {
        ProviderError {
            outcome,
            status: None,
            message: message.into(),
            body: None,
        }
    }

    /// A timeout of `kind`, saying how long was waited.
    pub(crate) fn timeout(kind: TimeoutKind, waited: Duration) -> Self {
        let what = match kind {
            TimeoutKind::Connect => "connecting",
            TimeoutKind::FirstByte => "waiting for the first byte",
            TimeoutKind::Idle => "waiting for the next event",
            TimeoutKind::Total => "waiting for the whole answer",
        };
        ProviderError::new(
            Outcome::Timeout(kind),
            format!("timed out after {waited:?} {what}"),
        )
    }

    /// A non-success HTTP answer, classified from its status, headers and body.
    pub(crate) fn from_http(
        status: u16,
        retry_after: Option<Duration>,
        body: &[u8],
        key: Option<&ApiKey>,
    ) -> Self {
        let json = serde_json::from_slice::<Value>(body).ok();
        let info = json.as_ref().map(ErrorInfo::from_json).unwrap_or_default();
        let outcome = classify::classify_status(status, retry_after, &info);
        let text = || truncate(&String::from_utf8_lossy(body), MAX_TEXT_BODY);
        let detail = info.message.clone().unwrap_or_else(text);
        let message = if detail.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {detail}")
        };
        let body = json.or_else(|| (!body.is_empty()).then(|| Value::String(text())));
        ProviderError {
            outcome,
            status: Some(status),
            message: redact(&message, key),
            body: body.map(|b| redact_value(b, key)),
        }
    }

    /// An error event inside a stream (OpenAI chunk `error`, Anthropic `error` event).
    pub(crate) fn in_band(status: u16, body: Value, key: Option<&ApiKey>) -> Self {
        let info = ErrorInfo::from_json(&body);
        let outcome = classify::classify_stream_error(&info);
        let detail = info.message.unwrap_or_else(|| "no message".to_owned());
        ProviderError {
            outcome,
            status: Some(status),
            message: redact(&format!("error event in the stream: {detail}"), key),
            body: Some(redact_value(body, key)),
        }
    }

    /// A failure below HTTP, reported by the transport.
    pub(crate) fn from_transport(
        error: &TransportError,
        context: &str,
        key: Option<&ApiKey>,
    ) -> Self {
        let outcome = if error.connect && error.timeout {
            Outcome::Timeout(TimeoutKind::Connect)
        } else if error.timeout {
            Outcome::Timeout(TimeoutKind::Total)
        } else {
            Outcome::Connection
        };
        ProviderError::new(outcome, redact(&format!("{context}: {error}"), key))
    }
}

/// The wait the provider asked for: `retry-after-ms` if sent, else `Retry-After`.
pub(crate) fn retry_after(headers: &HeaderMap, now_unix_millis: u64) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    header("retry-after-ms")
        .and_then(classify::parse_retry_after_ms)
        .or_else(|| {
            header("retry-after").and_then(|v| classify::parse_retry_after(v, now_unix_millis))
        })
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

const REDACTED: &str = "**REDACTED**";

/// `text` without the key and without anything shaped like a provider key (`sk-...`,
/// including masked echoes such as `sk-ab***yz`).
pub(crate) fn redact(text: &str, key: Option<&ApiKey>) -> String {
    let mut text = match key.map(ApiKey::expose).filter(|k| !k.is_empty()) {
        Some(key) => text.replace(key, REDACTED),
        None => text.to_owned(),
    };
    let mut from = 0;
    while let Some(offset) = text[from..].find("sk-") {
        let start = from + offset;
        let len = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '*'))
            .unwrap_or(text.len() - start);
        let at_word_start =
            start == 0 || !text[..start].ends_with(|c: char| c.is_ascii_alphanumeric());
        if at_word_start && len > 6 {
            text.replace_range(start..start + len, REDACTED);
            from = start + REDACTED.len();
        } else {
            from = start + 3;
        }
    }
    text
}

fn redact_value(value: Value, key: Option<&ApiKey>) -> Value {
    match value {
        Value::String(s) => Value::String(redact(&s, key)),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|v| redact_value(v, key)).collect())
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, redact_value(v, key)))
                .collect(),
        ),
        other @ (Value::Null | Value::Bool(_) | Value::Number(_)) => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_key_echoes_are_redacted() {
        let key = ApiKey::new("my-secret-key-123");
        let text = "Incorrect API key provided: sk-proj-ab***yz. Key my-secret-key-123, sk-ant-api03-XYZ; task-skip";
        let out = redact(text, Some(&key));
        assert_eq!(
            out,
            "Incorrect API key provided: **REDACTED**. Key **REDACTED**, **REDACTED**; task-skip"
        );
    }

    #[test]
    fn an_openai_401_body_loses_the_key_echo() {
        let body = br#"{"error":{"message":"Incorrect API key provided: sk-abc123***wxyz. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        let err = ProviderError::from_http(401, None, body, None);
        assert_eq!(err.outcome, Outcome::Auth);
        assert!(!err.message.contains("sk-abc"), "{}", err.message);
        assert!(!err.body.unwrap().to_string().contains("sk-abc"));
    }

    #[test]
    fn a_non_json_error_body_is_kept_as_truncated_text() {
        let body = "x".repeat(5000);
        let err = ProviderError::from_http(502, None, body.as_bytes(), None);
        assert_eq!(err.outcome, Outcome::ServerError);
        assert!(err.message.len() < 2100);
    }
}
