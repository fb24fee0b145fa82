//! Parsing and checking a client's [`ChatRequest`] before anything is sent.
//!
//! Bad input must get a clear error that names the field and must never reach a provider
//! (where it would cost a round trip and count against the target's health). Checks are
//! the ones every target agrees on; provider-specific limits stay with the provider.

use super::{ChatRequest, Content, Message};

/// Why a chat request was refused. The message names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body is not JSON of the request's shape.
    #[error("invalid request body: {0}")]
    Json(String),
    /// A field has a value no target accepts.
    #[error("invalid `{field}`: {reason}")]
    Invalid {
        /// The field's path, e.g. `messages[2].tool_call_id`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl RequestError {
    fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        RequestError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The offending field, when one is known (for OpenAI's `param`).
    pub fn field(&self) -> Option<&str> {
        match self {
            RequestError::Json(_) => None,
            RequestError::Invalid { field, .. } => Some(field),
        }
    }
}

/// Most stop sequences OpenAI accepts.
const MAX_STOP_SEQUENCES: usize = 4;

impl ChatRequest {
    /// Parses and validates a request body. A parse error names the field's path
    /// (`max_tokens: invalid value: integer `-1`, expected u32`).
    pub fn from_json(body: &[u8]) -> Result<ChatRequest, RequestError> {
        let mut json = serde_json::Deserializer::from_slice(body);
        let request: ChatRequest = serde_path_to_error::deserialize(&mut json).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                RequestError::Json(inner.to_string())
            } else {
                RequestError::Json(format!("{path}: {inner}"))
            }
        })?;
        json.end().map_err(|e| RequestError::Json(e.to_string()))?;
        request.validate()?;
        Ok(request)
    }

    /// Checks the fields every target agrees on.
    pub fn validate(&self) -> Result<(), RequestError> {
        if self.model.trim().is_empty() {
            return Err(RequestError::invalid("model", "must not be empty"));
        }
        if self.messages.is_empty() {
            return Err(RequestError::invalid(
                "messages",
                "must hold at least one message",
            ));
        }
        check_range("temperature", self.temperature, 0.0, 2.0)?;
        check_range("top_p", self.top_p, 0.0, 1.0)?;
        for (field, value) in [
            ("max_tokens", self.max_tokens),
            ("max_completion_tokens", self.max_completion_tokens),
            ("n", self.n),
        ] {
            if value == Some(0) {
                return Err(RequestError::invalid(field, "must be at least 1"));
            }
        }
        if let Some(stop) = &self.stop {
            if stop.to_vec().len() > MAX_STOP_SEQUENCES {
                return Err(RequestError::invalid("stop", "at most 4 sequences"));
            }
        }
        for (i, tool) in self.tools.iter().flatten().enumerate() {
            if tool.function.name.is_empty() {
                return Err(RequestError::invalid(
                    format!("tools[{i}].function.name"),
                    "must not be empty",
                ));
            }
        }
        self.messages
            .iter()
            .enumerate()
            .try_for_each(|(i, m)| check_message(i, m))
    }
}

fn check_range(field: &str, value: Option<f64>, min: f64, max: f64) -> Result<(), RequestError> {
    match value {
        Some(v) if !(v.is_finite() && (min..=max).contains(&v)) => Err(RequestError::invalid(
            field,
            format!("must be between {min} and {max}, got {v}"),
        )),
        _ => Ok(()),
    }
}

fn check_message(i: usize, message: &Message) -> Result<(), RequestError> {
    match message {
        Message::Tool(tool) if tool.tool_call_id.is_empty() => Err(RequestError::invalid(
            format!("messages[{i}].tool_call_id"),
            "must not be empty",
        )),
        Message::Assistant(a) => {
            let has_calls = a.tool_calls.as_ref().is_some_and(|c| !c.is_empty());
            if a.content.is_none() && !has_calls && a.refusal.is_none() {
                return Err(RequestError::invalid(
                    format!("messages[{i}].content"),
                    "an assistant message needs content or tool_calls",
                ));
            }
            Ok(())
        }
        Message::User(u) if is_empty_parts(&u.content) => Err(RequestError::invalid(
            format!("messages[{i}].content"),
            "must not be an empty array",
        )),
        Message::System(_) | Message::Developer(_) | Message::User(_) | Message::Tool(_) => Ok(()),
    }
}

fn is_empty_parts(content: &Content) -> bool {
    matches!(content, Content::Parts(parts) if parts.is_empty())
}
