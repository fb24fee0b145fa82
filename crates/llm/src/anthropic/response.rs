//! Anthropic answers: a whole [`MessagesResponse`], the [`StreamEvent`]s of a stream,
//! and the [`ErrorBody`] of a failed call.
//!
//! `stop_reason` stays a string: Anthropic adds reasons (`pause_turn`, `refusal`) and a
//! new one must not make a good answer unreadable; translation maps the known ones.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{ContentBlock, Role};

/// A `message` object: the answer to a non-streamed request, and the skeleton carried
/// by a stream's `message_start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesResponse {
    /// The message's id (`msg_...`).
    pub id: String,
    /// Always `"message"`.
    #[serde(rename = "type", default = "message_type")]
    pub kind: String,
    /// Always `assistant`.
    #[serde(default = "assistant")]
    pub role: Role,
    /// The generated blocks (empty in `message_start`).
    #[serde(default)]
    pub content: Vec<ContentBlock>,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// `end_turn`, `max_tokens`, `stop_sequence`, `tool_use`, `pause_turn`, `refusal`.
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// The stop sequence that matched, if one did.
    #[serde(default)]
    pub stop_sequence: Option<String>,
    /// Token usage.
    #[serde(default)]
    pub usage: Usage,
}

/// Token counts as Anthropic reports them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens not read from or written to the cache.
    #[serde(default)]
    pub input_tokens: u64,
    /// Generated tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Input tokens written to the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// Input tokens read from the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    /// Other fields, passed through.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Usage {
    /// All input tokens: uncached, cache writes and cache reads.
    pub fn total_input(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.cache_creation_input_tokens.unwrap_or(0))
            .saturating_add(self.cache_read_input_tokens.unwrap_or(0))
    }
}

/// One server-sent event of a streamed answer, tagged by `type` (which Anthropic also
/// sends as the SSE event name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// The message begins: its id, model and input usage.
    MessageStart {
        /// The message with empty content.
        message: MessagesResponse,
    },
    /// A content block begins at `index`.
    ContentBlockStart {
        /// The block's position.
        index: u32,
        /// The block, with empty text or input.
        content_block: ContentBlock,
    },
    /// More of the block at `index`.
    ContentBlockDelta {
        /// The block's position.
        index: u32,
        /// What was added.
        delta: BlockDelta,
    },
    /// The block at `index` is complete.
    ContentBlockStop {
        /// The block's position.
        index: u32,
    },
    /// Top-level changes: the stop reason and the cumulative output usage.
    MessageDelta {
        /// The stop reason.
        delta: MessageDelta,
        /// Usage so far.
        #[serde(default)]
        usage: StreamUsage,
    },
    /// The stream is complete.
    MessageStop,
    /// Keep-alive.
    Ping,
    /// An error in the middle of the stream.
    Error {
        /// The error.
        error: ErrorDetail,
    },
    /// An event type this version does not know (skipped).
    #[serde(other)]
    Unknown,
}

/// The increment of a content block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockDelta {
    /// More text of a text block.
    TextDelta {
        /// The text.
        text: String,
    },
    /// More of a tool call's JSON input.
    InputJsonDelta {
        /// A fragment of the JSON text.
        partial_json: String,
    },
    /// More reasoning of a thinking block.
    ThinkingDelta {
        /// The reasoning text.
        thinking: String,
    },
    /// The signature of a thinking block.
    SignatureDelta {
        /// The signature.
        signature: String,
    },
    /// A delta type this version does not know (skipped).
    #[serde(other)]
    Unknown,
}

/// The `delta` of a `message_delta` event.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MessageDelta {
    /// Why generation stopped.
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// The stop sequence that matched.
    #[serde(default)]
    pub stop_sequence: Option<String>,
}

/// The cumulative usage in a `message_delta` event.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StreamUsage {
    /// Generated tokens so far.
    #[serde(default)]
    pub output_tokens: u64,
    /// Input tokens, when the API repeats them here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Other fields, passed through.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An Anthropic error body: `{"type":"error","error":{"type","message"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Always `"error"`.
    #[serde(rename = "type", default = "error_type")]
    pub kind: String,
    /// The error.
    pub error: ErrorDetail,
}

/// The error of an [`ErrorBody`] or a stream's `error` event.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// `invalid_request_error`, `overloaded_error`, `api_error`, `rate_limit_error`, ...
    #[serde(rename = "type", default)]
    pub kind: String,
    /// A human-readable message.
    #[serde(default)]
    pub message: String,
}

fn message_type() -> String {
    "message".to_owned()
}

fn error_type() -> String {
    "error".to_owned()
}

fn assistant() -> Role {
    Role::Assistant
}
