//! Relaying a committed stream to the client as server-sent events, in the client's
//! dialect, and ending it honestly.
//!
//! The decision that shapes it: once the first byte has gone to the client, the stream
//! ends in exactly one of two ways: complete (`data: [DONE]`, or Anthropic's
//! `message_stop`), or with an explicit error event (OpenAI: a last chunk with
//! `finish_reason: "error"` and a `data: {"error":...}` event; Anthropic:
//! `event: error`). Never a silently truncated success. Mid-stream *recovery*
//! (continuing on a target that takes a prefill, or restart and splice) has one seam,
//! [`Relay::recover`], which today declines.
//!
//! The relay also feeds what only the stream's end knows (usage, how it ended) to a
//! finisher that settles the ledger, and records the bytes for `Idempotency-Key`
//! replays; a client that goes away drops the relay, which the finisher hears too.

use std::convert::Infallible;

use axum::body::Body;
use bytes::Bytes;
use holdfast_llm::anthropic::StreamEvent;
use holdfast_llm::openai::{
    ChatChunk, ChatResponse, ChunkChoice, Delta, FunctionCallDelta, ToolCallDelta,
};
use holdfast_llm::translate::OpenAiStreamTranslator;
use holdfast_llm::{ChunkStream, ProviderError, Usage};
use holdfast_policy::Outcome;
use serde_json::json;

/// Where chunks come from.
pub(crate) enum Source {
    /// A provider's stream.
    Live(Box<ChunkStream>),
    /// Chunks made from a whole answer (a degraded one).
    Replay(std::vec::IntoIter<ChatChunk>),
}

impl Source {
    async fn next(&mut self) -> Option<Result<ChatChunk, ProviderError>> {
        match self {
            Source::Live(stream) => stream.next().await,
            Source::Replay(chunks) => chunks.next().map(Ok),
        }
    }
}

/// How chunks are written for the client.
pub(crate) enum Encoder {
    /// OpenAI chunks; the usage chunk only when the client asked for it.
    OpenAi {
        /// The client's `stream_options.include_usage`.
        include_usage: bool,
    },
    /// Anthropic events, translated from the chunks.
    Anthropic(Box<OpenAiStreamTranslator>),
}

/// How a relayed stream ended.
#[derive(Debug, Clone)]
pub(crate) enum StreamEnd {
    /// Complete.
    Complete { usage: Option<Usage> },
    /// Broken after it started; the client got an error event.
    Failed {
        outcome: Outcome,
        message: String,
        usage: Option<Usage>,
    },
    /// The client went away first.
    ClientGone { usage: Option<Usage> },
}

/// Called once with how the stream ended and the bytes sent (when recorded).
pub(crate) type Finisher = Box<dyn FnOnce(StreamEnd, Option<Vec<u8>>) + Send>;

/// One committed stream on its way to the client.
pub(crate) struct Relay {
    source: Source,
    encoder: Encoder,
    /// The id, creation time and model of the answer, for a synthesized last chunk.
    identity: Option<ChatChunk>,
    usage: Option<Usage>,
    recorded: Option<Vec<u8>>,
    finisher: Option<Finisher>,
    done: bool,
}

impl Relay {
    /// A relay of `source` written by `encoder`; `record` keeps a copy of the bytes
    /// for the finisher.
    pub(crate) fn new(source: Source, encoder: Encoder, record: bool, finisher: Finisher) -> Relay {
        Relay {
            source,
            encoder,
            identity: None,
            usage: None,
            recorded: record.then(Vec::new),
            finisher: Some(finisher),
            done: false,
        }
    }

    /// The response body.
    pub(crate) fn into_body(self) -> Body {
        let stream = futures_util::stream::unfold(self, |mut relay| async move {
            let bytes = relay.step().await?;
            Some((Ok::<Bytes, Infallible>(bytes), relay))
        });
        Body::from_stream(stream)
    }

    /// The next bytes for the client, or `None` after the end.
    async fn step(&mut self) -> Option<Bytes> {
        let mut out = Vec::new();
        while out.is_empty() && !self.done {
            match self.source.next().await {
                Some(Ok(chunk)) => self.encode_chunk(chunk, &mut out),
                Some(Err(err)) => {
                    if let Some(source) = self.recover(&err) {
                        self.source = source;
                        continue;
                    }
                    self.encode_error(&err, &mut out);
                    let end = StreamEnd::Failed {
                        outcome: err.outcome,
                        message: err.to_string(),
                        usage: self.usage,
                    };
                    self.end(end, &out);
                }
                None => {
                    self.encode_end(&mut out);
                    self.end(StreamEnd::Complete { usage: self.usage }, &out);
                }
            }
            if let Some(recorded) = &mut self.recorded
                && !self.done
            {
                recorded.extend_from_slice(&out);
            }
        }
        (!out.is_empty()).then(|| Bytes::from(out))
    }

    /// The seam for mid-stream recovery: a source that finishes the answer correctly
    /// after `error`, or `None` to end with an explicit error. Continuation on a
    /// target that takes an assistant prefill, or restart and splice, plug in here.
    fn recover(&mut self, _error: &ProviderError) -> Option<Source> {
        None
    }

    fn end(&mut self, end: StreamEnd, last: &[u8]) {
        self.done = true;
        let recorded = self.recorded.take().map(|mut bytes| {
            bytes.extend_from_slice(last);
            bytes
        });
        if let Some(finisher) = self.finisher.take() {
            finisher(end, recorded);
        }
    }

    fn encode_chunk(&mut self, mut chunk: ChatChunk, out: &mut Vec<u8>) {
        if let Some(usage) = &chunk.usage {
            self.usage = Some(Usage::from(usage));
        }
        if self.identity.is_none() {
            self.identity = Some(ChatChunk::empty(&chunk.id, chunk.created, &chunk.model));
        }
        match &mut self.encoder {
            Encoder::OpenAi { include_usage } => {
                if !*include_usage {
                    if chunk.choices.is_empty() && chunk.usage.is_some() {
                        return;
                    }
                    chunk.usage = None;
                }
                write_data(out, &chunk);
            }
            Encoder::Anthropic(translator) => {
                for event in translator.push(&chunk) {
                    write_event(out, &event);
                }
            }
        }
    }

    fn encode_end(&mut self, out: &mut Vec<u8>) {
        match &mut self.encoder {
            Encoder::OpenAi { .. } => out.extend_from_slice(b"data: [DONE]\n\n"),
            Encoder::Anthropic(translator) => {
                for event in translator.finish() {
                    write_event(out, &event);
                }
            }
        }
    }

    fn encode_error(&mut self, error: &ProviderError, out: &mut Vec<u8>) {
        let message = format!(
            "the answer broke off after it started ({}): {}",
            error.outcome.class(),
            error.message
        );
        match &self.encoder {
            Encoder::OpenAi { .. } => {
                let last = self
                    .identity
                    .clone()
                    .unwrap_or_else(|| ChatChunk::empty("chatcmpl-holdfast", 0, ""));
                let mut value = serde_json::to_value(&last).unwrap_or_default();
                value["choices"] = json!([{"index": 0, "delta": {}, "finish_reason": "error"}]);
                write_data(out, &value);
                let body = json!({"error": {"message": message, "type": "upstream_error", "param": null, "code": "stream_interrupted"}});
                write_data(out, &body);
            }
            Encoder::Anthropic(_) => {
                let kind = match error.outcome {
                    Outcome::Overloaded { .. } => "overloaded_error",
                    _ => "api_error",
                };
                let body = json!({"type": "error", "error": {"type": kind, "message": message, "code": "stream_interrupted"}});
                out.extend_from_slice(b"event: error\ndata: ");
                let _ = serde_json::to_writer(&mut *out, &body);
                out.extend_from_slice(b"\n\n");
            }
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(finisher) = self.finisher.take() {
            finisher(StreamEnd::ClientGone { usage: self.usage }, None);
        }
    }
}

fn write_data(out: &mut Vec<u8>, value: &impl serde::Serialize) {
    out.extend_from_slice(b"data: ");
    let _ = serde_json::to_writer(&mut *out, value);
    out.extend_from_slice(b"\n\n");
}

fn write_event(out: &mut Vec<u8>, event: &StreamEvent) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event_name(event).as_bytes());
    out.extend_from_slice(b"\ndata: ");
    let _ = serde_json::to_writer(&mut *out, event);
    out.extend_from_slice(b"\n\n");
}

/// The SSE event name of an Anthropic event: its `type`.
fn event_name(event: &StreamEvent) -> &'static str {
    match event {
        StreamEvent::MessageStart { .. } => "message_start",
        StreamEvent::ContentBlockStart { .. } => "content_block_start",
        StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
        StreamEvent::ContentBlockStop { .. } => "content_block_stop",
        StreamEvent::MessageDelta { .. } => "message_delta",
        StreamEvent::MessageStop => "message_stop",
        StreamEvent::Ping => "ping",
        StreamEvent::Error { .. } => "error",
        StreamEvent::Unknown => "unknown",
    }
}

/// A whole answer as the chunks of a stream: the message, then the usage.
pub(crate) fn chunks_of(response: &ChatResponse) -> Vec<ChatChunk> {
    let mut chunk = ChatChunk::empty(&response.id, response.created, &response.model);
    for choice in &response.choices {
        let message = &choice.message;
        let tool_calls = message.tool_calls.as_ref().map(|calls| {
            calls
                .iter()
                .zip(0u32..)
                .map(|(call, index)| ToolCallDelta {
                    index,
                    id: Some(call.id.clone()),
                    kind: Some(call.kind.clone()),
                    function: Some(FunctionCallDelta {
                        name: Some(call.function.name.clone()),
                        arguments: Some(call.function.arguments.clone()),
                    }),
                })
                .collect()
        });
        chunk.choices.push(ChunkChoice {
            index: choice.index,
            delta: Delta {
                role: Some("assistant".to_owned()),
                content: message.content.clone(),
                refusal: message.refusal.clone(),
                tool_calls,
                ..Delta::default()
            },
            finish_reason: choice.finish_reason,
            logprobs: None,
        });
    }
    let mut usage = ChatChunk::empty(&response.id, response.created, &response.model);
    usage.usage = response.usage.clone();
    vec![chunk, usage]
}
