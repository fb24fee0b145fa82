//! Translation between the OpenAI and Anthropic formats, both directions.
//!
//! Four paths: an OpenAI request to an Anthropic target ([`to_anthropic_request`]) and
//! its answer back ([`to_openai_response`], [`AnthropicStreamTranslator`]); and for
//! clients of `/v1/messages`, their request to the canonical form
//! ([`to_openai_request`]) and the canonical answer back to them
//! ([`to_anthropic_response`], [`OpenAiStreamTranslator`]).
//!
//! The decision: translate losslessly where the formats agree, and refuse with a
//! [`TranslateError`] naming the field where they do not (`n` > 1, audio input,
//! Anthropic server tools), rather than silently dropping what the caller asked for.
//! What is dropped on purpose is listed on each function: hints with no counterpart
//! (OpenAI `seed`, Anthropic `top_k`) and reasoning blocks.

mod stream_from_anthropic;
mod stream_to_anthropic;
mod to_anthropic;
mod to_openai;

pub use stream_from_anthropic::AnthropicStreamTranslator;
pub use stream_to_anthropic::OpenAiStreamTranslator;
pub use to_anthropic::{DEFAULT_MAX_TOKENS, to_anthropic_request, to_anthropic_response};
pub use to_openai::{to_openai_request, to_openai_response};

use crate::openai::FinishReason;

/// Why a request or an answer could not be translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The source uses something the target format cannot express.
    #[error("`{field}` cannot be translated: {reason}")]
    Unsupported {
        /// The field's path in the source.
        field: String,
        /// What the target lacks.
        reason: String,
    },
    /// A tool call's arguments are not a JSON object.
    #[error("`{field}` is not a JSON object: {reason}")]
    InvalidToolArguments {
        /// The field's path in the source.
        field: String,
        /// The parse error.
        reason: String,
    },
}

impl TranslateError {
    fn unsupported(field: impl Into<String>, reason: impl Into<String>) -> Self {
        TranslateError::Unsupported {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Anthropic's `stop_reason` as an OpenAI `finish_reason`.
pub fn finish_reason_from_anthropic(stop_reason: &str) -> FinishReason {
    match stop_reason {
        "end_turn" | "stop_sequence" | "pause_turn" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        _ => FinishReason::Unknown,
    }
}

/// OpenAI's `finish_reason` as an Anthropic `stop_reason`.
pub fn stop_reason_from_openai(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop | FinishReason::Unknown => "end_turn",
        FinishReason::Length => "max_tokens",
        FinishReason::ToolCalls | FinishReason::FunctionCall => "tool_use",
        FinishReason::ContentFilter => "refusal",
    }
}

/// Parses tool-call arguments into the JSON object Anthropic wants; empty text is `{}`.
fn parse_arguments(field: &str, arguments: &str) -> Result<serde_json::Value, TranslateError> {
    if arguments.trim().is_empty() {
        return Ok(serde_json::Value::Object(serde_json::Map::new()));
    }
    match serde_json::from_str::<serde_json::Value>(arguments) {
        Ok(value @ serde_json::Value::Object(_)) => Ok(value),
        Ok(_) => Err(TranslateError::InvalidToolArguments {
            field: field.to_owned(),
            reason: "not an object".to_owned(),
        }),
        Err(e) => Err(TranslateError::InvalidToolArguments {
            field: field.to_owned(),
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod tests;
