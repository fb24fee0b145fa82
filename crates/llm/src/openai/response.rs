//! OpenAI answers: a whole [`ChatResponse`], the [`ChatChunk`]s of a stream, and the
//! [`ErrorBody`] of a failed call.
//!
//! Unknown fields are kept in `extra` maps, read without serde's `flatten` (see
//! `extra.rs`); `finish_reason` is a closed enum with an `unknown` catch-all so that a
//! new reason does not make a good answer unreadable.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ToolCall;
use crate::extra::deserialize_with_extra;

/// A `chat.completion` object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatResponse {
    /// The completion's id (`chatcmpl-...`).
    pub id: String,
    /// Always `"chat.completion"`.
    pub object: String,
    /// Unix seconds when it was created.
    pub created: u64,
    /// The model that answered.
    pub model: String,
    /// The generated choices (one unless `n` > 1).
    pub choices: Vec<Choice>,
    /// Token usage, when the provider reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Other fields (`system_fingerprint`, `service_tier`, ...), passed through.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

deserialize_with_extra!(ChatResponse, "a chat.completion object", {
    id: required,
    object: default(completion_object),
    created: default,
    model: default,
    choices: required,
    usage: default,
});

/// One choice of a [`ChatResponse`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// The choice's position.
    #[serde(default)]
    pub index: u32,
    /// The generated message.
    pub message: ResponseMessage,
    /// Why generation stopped.
    #[serde(default)]
    pub finish_reason: Option<FinishReason>,
    /// Log probabilities, when asked for.
    #[serde(default)]
    pub logprobs: Option<Value>,
}

/// The assistant message of a [`Choice`].
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ResponseMessage {
    /// Always `"assistant"`.
    pub role: String,
    /// The text; `null` when the model only called tools.
    pub content: Option<String>,
    /// The model's refusal, if it refused; written as `null` otherwise, as OpenAI
    /// writes it (so a served answer reads the same whether it is the provider's own
    /// bytes or written again, from the degraded cache or a translation).
    pub refusal: Option<String>,
    /// The tools the model called.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// Other fields (`annotations`, `audio`, ...), passed through.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

deserialize_with_extra!(ResponseMessage, "an assistant message", {
    role: default(assistant_role),
    content: default,
    refusal: default,
    tool_calls: default,
});

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A natural end or a stop sequence.
    Stop,
    /// The token cap was reached.
    Length,
    /// The model called tools.
    ToolCalls,
    /// The content filter cut the answer.
    ContentFilter,
    /// The model called a function (legacy).
    FunctionCall,
    /// A reason this version does not know.
    #[serde(other)]
    Unknown,
}

/// Token counts of one request, as OpenAI reports them.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Usage {
    /// Tokens of the prompt.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
    /// Their sum.
    pub total_tokens: u64,
    /// Details (`prompt_tokens_details`, ...), passed through.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Usage {
    /// Usage from prompt and completion counts, with their total.
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
            extra: Map::new(),
        }
    }
}

deserialize_with_extra!(Usage, "token usage", {
    prompt_tokens: default,
    completion_tokens: default,
    total_tokens: default,
});

/// A `chat.completion.chunk` object: one event of a stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatChunk {
    /// The completion's id, the same on every chunk.
    pub id: String,
    /// Always `"chat.completion.chunk"`.
    pub object: String,
    /// Unix seconds when the completion was created.
    pub created: u64,
    /// The model that answers.
    pub model: String,
    /// The choices' increments; empty on the final usage chunk.
    pub choices: Vec<ChunkChoice>,
    /// Usage of the whole request, on the last chunk when `include_usage` was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Other fields, passed through.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatChunk {
    /// A chunk with no choices and no usage, to fill in.
    pub fn empty(id: &str, created: u64, model: &str) -> Self {
        ChatChunk {
            id: id.to_owned(),
            object: chunk_object(),
            created,
            model: model.to_owned(),
            choices: Vec::new(),
            usage: None,
            extra: Map::new(),
        }
    }

    /// The first finish reason among the chunk's choices.
    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.choices.iter().find_map(|c| c.finish_reason)
    }
}

deserialize_with_extra!(ChatChunk, "a chat.completion.chunk object", {
    id: default,
    object: default(chunk_object),
    created: default,
    model: default,
    choices: default,
    usage: default,
});

/// One choice's increment in a [`ChatChunk`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// The choice's position.
    #[serde(default)]
    pub index: u32,
    /// What was added.
    #[serde(default)]
    pub delta: Delta,
    /// Why generation stopped, on the choice's last chunk.
    #[serde(default)]
    pub finish_reason: Option<FinishReason>,
    /// Log probabilities, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Value>,
}

/// The increment of a streamed message.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Delta {
    /// `"assistant"`, on the first chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// More text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// More refusal text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Tool calls begun or continued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    /// Other fields, passed through.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

deserialize_with_extra!(Delta, "a message increment", {
    role: default,
    content: default,
    refusal: default,
    tool_calls: default,
});

/// A tool call's increment: the first carries `id`, `type` and the name; later ones
/// carry argument text, all keyed by `index`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ToolCallDelta {
    /// Which tool call of the choice this continues.
    #[serde(default)]
    pub index: u32,
    /// The call's id, on its first increment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `"function"`, on its first increment.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The function's name and argument text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionCallDelta>,
}

/// A function call's increment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FunctionCallDelta {
    /// The name, on the first increment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// More argument text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// An OpenAI error body: `{"error":{"message","type","param","code"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The error of an [`ErrorBody`] (also sent in-band in a stream).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// A human-readable message.
    #[serde(default)]
    pub message: String,
    /// The error's type (`invalid_request_error`, `server_error`, ...).
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// The request field at fault.
    #[serde(default)]
    pub param: Option<Value>,
    /// A machine-readable code (`context_length_exceeded`, ...); usually a string.
    #[serde(default)]
    pub code: Option<Value>,
}

impl ErrorDetail {
    /// The code, when it is a string.
    pub fn code_str(&self) -> Option<&str> {
        self.code.as_ref().and_then(Value::as_str)
    }
}

fn completion_object() -> String {
    "chat.completion".to_owned()
}

fn chunk_object() -> String {
    "chat.completion.chunk".to_owned()
}

fn assistant_role() -> String {
    "assistant".to_owned()
}
