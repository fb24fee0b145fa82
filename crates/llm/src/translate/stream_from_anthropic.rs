//! An Anthropic target's stream events as canonical OpenAI chunks.
//!
//! Stateful because the formats slice a stream differently: Anthropic numbers content
//! blocks and sends usage at both ends; OpenAI numbers tool calls within a choice and
//! sends usage once, last. The translator keeps the block-to-tool-call mapping and the
//! usage, and is fed events in order; it never fails (unknown events are skipped).

use std::collections::HashMap;

use super::finish_reason_from_anthropic;
use crate::anthropic::{BlockDelta, ContentBlock, StreamEvent};
use crate::openai::{
    ChatChunk, ChunkChoice, Delta, FinishReason, FunctionCallDelta, ToolCallDelta, Usage,
};

/// Feeds Anthropic [`StreamEvent`]s in, gets OpenAI [`ChatChunk`]s out.
///
/// Emits a first chunk with the assistant role, one chunk per text or tool-argument
/// delta, one with the finish reason, and at `message_stop` a last chunk with no
/// choices and the usage of the whole request (as OpenAI does with
/// `stream_options.include_usage`; the gateway drops it for clients that did not ask).
/// The caller handles `error` events (they are classified, not translated).
#[derive(Debug, Clone, Default)]
pub struct AnthropicStreamTranslator {
    id: String,
    model: String,
    created: u64,
    input_tokens: u64,
    output_tokens: u64,
    /// Anthropic block index to OpenAI tool-call index.
    tool_calls: HashMap<u32, u32>,
    finish_reason: Option<FinishReason>,
    complete: bool,
}

impl AnthropicStreamTranslator {
    /// A translator whose chunks are stamped with `created` (Unix seconds).
    pub fn new(created: u64) -> Self {
        AnthropicStreamTranslator {
            created,
            ..Self::default()
        }
    }

    /// Translates the next event.
    pub fn push(&mut self, event: &StreamEvent) -> Vec<ChatChunk> {
        match event {
            StreamEvent::MessageStart { message } => {
                self.id = message.id.clone();
                self.model = message.model.clone();
                self.input_tokens = message.usage.total_input();
                self.output_tokens = message.usage.output_tokens;
                vec![self.chunk(
                    Delta {
                        role: Some("assistant".to_owned()),
                        content: Some(String::new()),
                        ..Delta::default()
                    },
                    None,
                )]
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => self.block_start(*index, content_block),
            StreamEvent::ContentBlockDelta { index, delta } => self.block_delta(*index, delta),
            StreamEvent::MessageDelta { delta, usage } => {
                self.output_tokens = usage.output_tokens;
                if let Some(input) = usage.input_tokens {
                    let cache = |key: &str| usage.extra.get(key).and_then(|v| v.as_u64());
                    self.input_tokens = input
                        + cache("cache_creation_input_tokens").unwrap_or(0)
                        + cache("cache_read_input_tokens").unwrap_or(0);
                }
                let Some(reason) = delta.stop_reason.as_deref() else {
                    return Vec::new();
                };
                let reason = finish_reason_from_anthropic(reason);
                self.finish_reason = Some(reason);
                vec![self.chunk(Delta::default(), Some(reason))]
            }
            StreamEvent::MessageStop => {
                self.complete = true;
                let mut chunk = ChatChunk::empty(&self.id, self.created, &self.model);
                chunk.usage = self.usage();
                vec![chunk]
            }
            StreamEvent::ContentBlockStop { .. }
            | StreamEvent::Ping
            | StreamEvent::Error { .. }
            | StreamEvent::Unknown => Vec::new(),
        }
    }

    fn block_start(&mut self, index: u32, block: &ContentBlock) -> Vec<ChatChunk> {
        match block {
            ContentBlock::Text(t) if !t.text.is_empty() => vec![self.text(t.text.clone())],
            ContentBlock::ToolUse(tool) => {
                let call = u32::try_from(self.tool_calls.len()).unwrap_or(u32::MAX);
                self.tool_calls.insert(index, call);
                let arguments = match &tool.input {
                    serde_json::Value::Object(o) if !o.is_empty() => tool.input.to_string(),
                    _ => String::new(),
                };
                vec![self.tool_call(ToolCallDelta {
                    index: call,
                    id: Some(tool.id.clone()),
                    kind: Some("function".to_owned()),
                    function: Some(FunctionCallDelta {
                        name: Some(tool.name.clone()),
                        arguments: Some(arguments),
                    }),
                })]
            }
            _ => Vec::new(),
        }
    }

    fn block_delta(&mut self, index: u32, delta: &BlockDelta) -> Vec<ChatChunk> {
        match delta {
            BlockDelta::TextDelta { text } if !text.is_empty() => vec![self.text(text.clone())],
            BlockDelta::InputJsonDelta { partial_json } if !partial_json.is_empty() => {
                let Some(&call) = self.tool_calls.get(&index) else {
                    return Vec::new();
                };
                vec![self.tool_call(ToolCallDelta {
                    index: call,
                    function: Some(FunctionCallDelta {
                        name: None,
                        arguments: Some(partial_json.clone()),
                    }),
                    ..ToolCallDelta::default()
                })]
            }
            _ => Vec::new(),
        }
    }

    fn text(&self, text: String) -> ChatChunk {
        self.chunk(
            Delta {
                content: Some(text),
                ..Delta::default()
            },
            None,
        )
    }

    fn tool_call(&self, call: ToolCallDelta) -> ChatChunk {
        self.chunk(
            Delta {
                tool_calls: Some(vec![call]),
                ..Delta::default()
            },
            None,
        )
    }

    fn chunk(&self, delta: Delta, finish_reason: Option<FinishReason>) -> ChatChunk {
        let mut chunk = ChatChunk::empty(&self.id, self.created, &self.model);
        chunk.choices.push(ChunkChoice {
            index: 0,
            delta,
            finish_reason,
            logprobs: None,
        });
        chunk
    }

    /// Whether `message_stop` arrived: the stream is whole.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// The finish reason, once `message_delta` carried one.
    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.finish_reason
    }

    /// The usage so far (input from `message_start`, output from the last
    /// `message_delta`), once the message started.
    pub fn usage(&self) -> Option<Usage> {
        (!self.id.is_empty()).then(|| Usage::new(self.input_tokens, self.output_tokens))
    }

    /// The chunks that end a stream which stopped after its finish reason but without
    /// `message_stop`: the usage chunk, if it was not sent.
    pub fn finish(&mut self) -> Vec<ChatChunk> {
        if self.complete {
            return Vec::new();
        }
        self.push(&StreamEvent::MessageStop)
    }
}
