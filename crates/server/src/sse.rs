//! Relaying a committed stream to the client as server-sent events, in the client's
//! dialect, and ending it honestly.
//!
//! The decision that shapes it: once the first byte has gone to the client, the stream
//! ends in exactly one of two ways: complete (`data: [DONE]`, or Anthropic's
//! `message_stop`), or with an explicit error event (OpenAI: a last chunk with
//! `finish_reason: "error"` and a `data: {"error":...}` event; Anthropic:
//! `event: error`). Never a silently truncated success. Mid-stream *recovery*
//! (continuing on a target that takes a prefill, or restart and splice, in
//! `recovery.rs`) has one seam, [`Relay::recover`]: a recovered stream goes on under
//! the same chunk id and model, and a failed recovery ends with the original break.
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

use holdfast_policy::fallback::TargetId;

use crate::events;
use crate::gateway::Gateway;
use crate::recovery::{Recovery, Resumed, estimate};

/// Where chunks come from.
pub(crate) enum Source {
    /// A provider's stream.
    Live(Box<ChunkStream>),
    /// Chunks made from a whole answer (a degraded one).
    Replay(std::vec::IntoIter<ChatChunk>),
    /// A provider's stream that finishes a broken one.
    Resumed(Box<Resumed>),
}

impl Source {
    async fn next(&mut self) -> Option<Result<ChatChunk, ProviderError>> {
        match self {
            Source::Live(stream) => stream.next().await,
            Source::Replay(chunks) => chunks.next().map(Ok),
            Source::Resumed(resumed) => resumed.next().await,
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
    /// Complete, with the text of the first choice as the client got it.
    Complete { usage: Option<Usage>, text: String },
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
    /// The most bytes recorded: a longer answer is not kept, so its copy is dropped.
    record_limit: usize,
    finisher: Option<Finisher>,
    done: bool,
    recovery: Option<Recovery>,
    /// The text of the first choice sent so far, and where the current source's began.
    delivered: String,
    since: usize,
    /// Whether a tool call was sent: such an answer is never recovered.
    tool_call: bool,
    /// The break that recovery is finishing, and what the attempts before the current
    /// source used (the first one's own usage kept apart for its ledger line).
    broken: Option<ProviderError>,
    earlier: Option<Usage>,
    first_usage: Option<Usage>,
    /// The gateway and the target that served the stream first, for counting breaks.
    origin: Option<(Gateway, TargetId)>,
}

impl Relay {
    /// A relay of `source` written by `encoder`; `record` keeps a copy of the bytes,
    /// up to that many, for the finisher (which gets none when the answer was longer).
    pub(crate) fn new(
        source: Source,
        encoder: Encoder,
        record: Option<usize>,
        finisher: Finisher,
    ) -> Relay {
        Relay {
            source,
            encoder,
            identity: None,
            usage: None,
            recorded: record.map(|_| Vec::new()),
            record_limit: record.unwrap_or(0),
            finisher: Some(finisher),
            done: false,
            recovery: None,
            delivered: String::new(),
            since: 0,
            tool_call: false,
            broken: None,
            earlier: None,
            first_usage: None,
            origin: None,
        }
    }

    /// This relay, counting its breaks in the metrics of `gateway` against the target
    /// serving at the time (`target` until a recovery moves it).
    pub(crate) fn counting_breaks(mut self, gateway: &Gateway, target: TargetId) -> Relay {
        self.origin = Some((gateway.clone(), target));
        self
    }

    /// This relay, finishing a broken stream with `recovery` when it can.
    pub(crate) fn with_recovery(mut self, recovery: Option<Recovery>) -> Relay {
        self.recovery = recovery;
        self
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
                    if let Some((gateway, first)) = &self.origin {
                        let target = self.recovery.as_ref().map_or(*first, Recovery::serving);
                        events::stream_broke(&gateway.inner, target, err.outcome);
                    }
                    if let Some(source) = self.recover(&err).await {
                        self.source = source;
                        continue;
                    }
                    let err = self.broken.take().unwrap_or(err);
                    self.encode_error(&err, &mut out);
                    let end = StreamEnd::Failed {
                        outcome: err.outcome,
                        message: err.to_string(),
                        usage: self.settle_usage(),
                    };
                    self.end(end, &out);
                }
                None => {
                    self.encode_end(&mut out);
                    let usage = self.settle_usage();
                    let text = std::mem::take(&mut self.delivered);
                    self.end(StreamEnd::Complete { usage, text }, &out);
                }
            }
            if let Some(recorded) = &mut self.recorded
                && !self.done
            {
                if recorded.len() + out.len() > self.record_limit {
                    self.recorded = None;
                } else {
                    recorded.extend_from_slice(&out);
                }
            }
        }
        (!out.is_empty()).then(|| Bytes::from(out))
    }

    /// The seam for mid-stream recovery: a source that finishes the answer correctly
    /// after `error`, or `None` to end with an explicit error (continuation on a
    /// target that takes an assistant prefill, or restart and splice).
    async fn recover(&mut self, error: &ProviderError) -> Option<Source> {
        let recovery = self.recovery.as_mut().filter(|_| !self.tool_call)?;
        let tokens = recovery.tokens();
        let used = self
            .usage
            .take()
            .unwrap_or_else(|| estimate(tokens, &self.delivered[self.since..]));
        if self.broken.is_none() {
            self.broken = Some(error.clone());
            self.first_usage = Some(used);
            self.earlier = Some(used);
        } else {
            self.earlier = Some(add(self.earlier, used));
        }
        let resumed = recovery.resume(&self.delivered, used).await?;
        self.since = self.delivered.len();
        Some(Source::Resumed(Box::new(resumed)))
    }

    /// The usage for the finisher (the first attempt's), after settling the current
    /// recovery attempt's own in the ledger.
    fn settle_usage(&mut self) -> Option<Usage> {
        if self.broken.is_none() && self.first_usage.is_none() {
            return self.usage;
        }
        if let (Some(recovery), Some(usage)) = (&self.recovery, self.usage)
            && let Some(number) = recovery.serving_number()
        {
            recovery.settle(number, usage);
        }
        self.first_usage
    }

    fn end(&mut self, end: StreamEnd, last: &[u8]) {
        self.done = true;
        let limit = self.record_limit;
        let recorded = self.recorded.take().and_then(|mut bytes| {
            bytes.extend_from_slice(last);
            (bytes.len() <= limit).then_some(bytes)
        });
        if let Some(finisher) = self.finisher.take() {
            finisher(end, recorded);
        }
    }

    fn encode_chunk(&mut self, mut chunk: ChatChunk, out: &mut Vec<u8>) {
        if let Some(usage) = &mut chunk.usage {
            self.usage = Some(Usage::from(&*usage));
            if let Some(earlier) = self.earlier {
                usage.prompt_tokens += earlier.input_tokens;
                usage.completion_tokens += earlier.output_tokens;
                usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
            }
        }
        match &self.identity {
            None => self.identity = Some(ChatChunk::empty(&chunk.id, chunk.created, &chunk.model)),
            Some(identity) if self.first_usage.is_some() => {
                chunk.id.clone_from(&identity.id);
                chunk.created = identity.created;
                chunk.model.clone_from(&identity.model);
                for choice in &mut chunk.choices {
                    choice.delta.role = None;
                }
            }
            Some(_) => {}
        }
        for choice in chunk.choices.iter().filter(|c| c.index == 0) {
            self.delivered
                .push_str(choice.delta.content.as_deref().unwrap_or(""));
            self.tool_call |= choice
                .delta
                .tool_calls
                .as_ref()
                .is_some_and(|t| !t.is_empty());
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
            let usage = self.settle_usage();
            finisher(StreamEnd::ClientGone { usage }, None);
        }
    }
}

fn add(a: Option<Usage>, b: Usage) -> Usage {
    let a = a.unwrap_or_default();
    Usage::new(
        a.input_tokens + b.input_tokens,
        a.output_tokens + b.output_tokens,
    )
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
