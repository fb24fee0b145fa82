//! Canonical OpenAI chunks as Anthropic stream events, for clients of `/v1/messages`.
//!
//! Stateful because Anthropic's stream is a nest of explicit starts and stops
//! (`message_start`, then per block `content_block_start`/`_delta`/`_stop`, then
//! `message_delta` and `message_stop`) where OpenAI's is a flat run of increments.
//! The translator opens a block when the kind of increment changes and holds the stop
//! reason back until [`OpenAiStreamTranslator::finish`], because OpenAI's usage chunk
//! comes after the finish reason and Anthropic puts both in one `message_delta`.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::stop_reason_from_openai;
use crate::anthropic::{
    BlockDelta, ContentBlock, MessageDelta, MessagesResponse, Role, StreamEvent, StreamUsage,
    ToolUseBlock,
};
use crate::openai::{ChatChunk, ToolCallDelta, Usage};

/// The block being streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(u32),
    Tool(u32),
}

/// Feeds OpenAI [`ChatChunk`]s in, gets Anthropic [`StreamEvent`]s out; call
/// [`OpenAiStreamTranslator::finish`] when the stream ends. Only the first choice is
/// translated (Anthropic has one).
#[derive(Debug, Clone)]
pub struct OpenAiStreamTranslator {
    model: String,
    input_tokens_hint: u64,
    started: bool,
    open: Option<Open>,
    next_block: u32,
    /// OpenAI tool-call index to Anthropic block index.
    tool_blocks: HashMap<u32, u32>,
    stop_reason: Option<&'static str>,
    usage: Option<Usage>,
    finished: bool,
}

impl OpenAiStreamTranslator {
    /// A translator for an answer from `model`. `input_tokens_hint` fills
    /// `message_start`'s input usage, which OpenAI only reports at the end (the real
    /// count follows in `message_delta`).
    pub fn new(model: &str, input_tokens_hint: u64) -> Self {
        OpenAiStreamTranslator {
            model: model.to_owned(),
            input_tokens_hint,
            started: false,
            open: None,
            next_block: 0,
            tool_blocks: HashMap::new(),
            stop_reason: None,
            usage: None,
            finished: false,
        }
    }

    /// Translates the next chunk.
    pub fn push(&mut self, chunk: &ChatChunk) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        if self.finished {
            return events;
        }
        if !self.started {
            let model = if chunk.model.is_empty() {
                &self.model
            } else {
                &chunk.model
            };
            events.push(self.message_start(&chunk.id, &model.clone()));
        }
        if let Some(usage) = &chunk.usage {
            self.usage = Some(usage.clone());
        }
        let Some(choice) = chunk.choices.iter().find(|c| c.index == 0) else {
            return events;
        };
        for text in [&choice.delta.refusal, &choice.delta.content]
            .into_iter()
            .flatten()
            .filter(|t| !t.is_empty())
        {
            let index = self.ensure_text(&mut events);
            events.push(StreamEvent::ContentBlockDelta {
                index,
                delta: BlockDelta::TextDelta { text: text.clone() },
            });
        }
        for call in choice.delta.tool_calls.iter().flatten() {
            self.tool_call(call, &mut events);
        }
        if let Some(reason) = choice.finish_reason {
            self.stop_reason = Some(stop_reason_from_openai(reason));
        }
        events
    }

    fn message_start(&mut self, id: &str, model: &str) -> StreamEvent {
        self.started = true;
        let usage = crate::anthropic::Usage {
            input_tokens: self.input_tokens_hint,
            ..crate::anthropic::Usage::default()
        };
        StreamEvent::MessageStart {
            message: MessagesResponse {
                id: id.to_owned(),
                kind: "message".to_owned(),
                role: Role::Assistant,
                content: Vec::new(),
                model: model.to_owned(),
                stop_reason: None,
                stop_sequence: None,
                usage,
            },
        }
    }

    /// Opens a text block unless one is open; returns its index.
    fn ensure_text(&mut self, events: &mut Vec<StreamEvent>) -> u32 {
        if let Some(Open::Text(index)) = self.open {
            return index;
        }
        self.close(events);
        let index = self.next_block;
        self.next_block += 1;
        self.open = Some(Open::Text(index));
        events.push(StreamEvent::ContentBlockStart {
            index,
            content_block: ContentBlock::text(""),
        });
        index
    }

    fn tool_call(&mut self, call: &ToolCallDelta, events: &mut Vec<StreamEvent>) {
        let function = call.function.as_ref();
        let index = match self.tool_blocks.get(&call.index) {
            Some(&index) if call.id.is_none() => index,
            _ => {
                // A new call: its first increment carries the id and the name.
                self.close(events);
                let index = self.next_block;
                self.next_block += 1;
                self.tool_blocks.insert(call.index, index);
                self.open = Some(Open::Tool(index));
                events.push(StreamEvent::ContentBlockStart {
                    index,
                    content_block: ContentBlock::ToolUse(ToolUseBlock {
                        id: call
                            .id
                            .clone()
                            .unwrap_or_else(|| format!("toolu_{}", call.index)),
                        name: function.and_then(|f| f.name.clone()).unwrap_or_default(),
                        input: Value::Object(Map::new()),
                    }),
                });
                index
            }
        };
        if let Some(arguments) = function.and_then(|f| f.arguments.as_ref()) {
            if !arguments.is_empty() {
                events.push(StreamEvent::ContentBlockDelta {
                    index,
                    delta: BlockDelta::InputJsonDelta {
                        partial_json: arguments.clone(),
                    },
                });
            }
        }
    }

    fn close(&mut self, events: &mut Vec<StreamEvent>) {
        if let Some(Open::Text(index) | Open::Tool(index)) = self.open.take() {
            events.push(StreamEvent::ContentBlockStop { index });
        }
    }

    /// The events that end the message: the open block's stop, `message_delta` with the
    /// stop reason and usage, and `message_stop`. Later calls return nothing.
    pub fn finish(&mut self) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        if self.finished {
            return events;
        }
        if !self.started {
            let model = self.model.clone();
            events.push(self.message_start("msg_holdfast", &model));
        }
        self.close(&mut events);
        let usage = self.usage.as_ref();
        events.push(StreamEvent::MessageDelta {
            delta: MessageDelta {
                stop_reason: Some(self.stop_reason.unwrap_or("end_turn").to_owned()),
                stop_sequence: None,
            },
            usage: StreamUsage {
                output_tokens: usage.map_or(0, |u| u.completion_tokens),
                input_tokens: usage.map(|u| u.prompt_tokens),
                extra: Map::new(),
            },
        });
        events.push(StreamEvent::MessageStop);
        self.finished = true;
        events
    }
}
