//! [`ChunkStream`]: a provider's event stream as canonical chunks, with every way a
//! stream can go wrong turned into a classified error.
//!
//! The decision: a stream ends in exactly one of three ways. Whole (`[DONE]` or
//! `message_stop`, or the body ended after a finish reason: finalised); broken (an
//! in-band error event, classified; a timeout; the body ended or failed before any
//! finish reason, or three malformed events in a row: `StreamInterrupted`); or never
//! silently truncated. A lone malformed event is skipped and counted.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use holdfast_policy::{Clock, Instant, Outcome, TimeoutKind};
use serde_json::Value;

use super::transport::{BodyStream, Received};
use super::{ApiKey, Deadline, ProviderError};
use crate::anthropic::StreamEvent;
use crate::openai::{ChatChunk, FinishReason};
use crate::sse::{SseEvent, SseParser};
use crate::translate::AnthropicStreamTranslator;
use crate::{Format, Usage};

/// How many malformed events in a row break a stream.
const MALFORMED_RUN_LIMIT: u32 = 3;

/// What a [`ChunkStream`] needs besides the response.
pub(crate) struct Settings {
    pub(crate) format: Format,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) idle: Duration,
    pub(crate) total: Deadline,
    pub(crate) created: u64,
    pub(crate) key: Option<ApiKey>,
    pub(crate) started: Instant,
}

enum Decoder {
    OpenAi,
    Anthropic(Box<AnthropicStreamTranslator>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Done,
    Failed,
}

/// A streamed answer as OpenAI chunks (translated from Anthropic events when the target
/// speaks Anthropic). Pull with [`ChunkStream::next`] or turn it into a
/// [`Stream`] with [`ChunkStream::into_stream`]. After an error item it ends.
pub struct ChunkStream {
    body: BodyStream,
    parser: SseParser,
    decoder: Decoder,
    queue: VecDeque<ChatChunk>,
    settings: Settings,
    status: u16,
    state: State,
    pending_error: Option<ProviderError>,
    events: u64,
    malformed: u32,
    malformed_run: u32,
    usage: Option<Usage>,
    finish_reason: Option<FinishReason>,
    first_event_after: Option<Duration>,
}

impl std::fmt::Debug for ChunkStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkStream")
            .field("status", &self.status)
            .field("state", &self.state)
            .field("events", &self.events)
            .field("malformed", &self.malformed)
            .finish_non_exhaustive()
    }
}

impl ChunkStream {
    pub(crate) fn new(response: Received, settings: Settings) -> Self {
        let decoder = match settings.format {
            Format::OpenAi => Decoder::OpenAi,
            Format::Anthropic => {
                Decoder::Anthropic(Box::new(AnthropicStreamTranslator::new(settings.created)))
            }
        };
        ChunkStream {
            status: response.status.as_u16(),
            body: response.body,
            parser: SseParser::default(),
            decoder,
            queue: VecDeque::new(),
            settings,
            state: State::Open,
            pending_error: None,
            events: 0,
            malformed: 0,
            malformed_run: 0,
            usage: None,
            finish_reason: None,
            first_event_after: None,
        }
    }

    /// The next chunk, an error (after which the stream ends), or `None` at the end.
    pub async fn next(&mut self) -> Option<Result<ChatChunk, ProviderError>> {
        loop {
            if let Some(chunk) = self.queue.pop_front() {
                return Some(Ok(chunk));
            }
            if let Some(err) = self.pending_error.take() {
                return Some(Err(err));
            }
            if self.state != State::Open {
                return None;
            }
            let now = self.settings.clock.now();
            let idle = Deadline {
                at: now + self.settings.idle,
                kind: TimeoutKind::Idle,
                started: now,
            };
            self.read(idle.min(self.settings.total)).await;
        }
    }

    /// This stream as a [`Stream`], for response bodies and combinators.
    pub fn into_stream(self) -> impl Stream<Item = Result<ChatChunk, ProviderError>> + Send {
        futures_util::stream::unfold(
            self,
            |mut s| async move { s.next().await.map(|item| (item, s)) },
        )
    }

    /// Reads until the first event arrived (queued chunks stay for [`Self::next`]).
    pub(crate) async fn wait_first_event(
        &mut self,
        deadline: Deadline,
    ) -> Result<(), ProviderError> {
        while self.events == 0 && self.state == State::Open {
            self.read(deadline).await;
        }
        match self.pending_error.take() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// Reads once from the body, racing `deadline`, and decodes what arrived.
    async fn read(&mut self, deadline: Deadline) {
        let clock = Arc::clone(&self.settings.clock);
        let item = match deadline.run(&*clock, self.body.next()).await {
            Ok(item) => item,
            Err(timeout) => return self.fail(timeout),
        };
        match item {
            Some(Ok(bytes)) => match self.parser.feed(&bytes) {
                Ok(events) => {
                    for event in events {
                        if self.state != State::Open {
                            break;
                        }
                        self.decode(event);
                    }
                }
                Err(e) => self.fail(ProviderError::new(Outcome::InvalidOutput, e.to_string())),
            },
            Some(Err(e)) => {
                let mut err = ProviderError::from_transport(
                    &e,
                    "reading the stream",
                    self.settings.key.as_ref(),
                );
                err.outcome = Outcome::StreamInterrupted;
                self.fail(err);
            }
            None => self.end_of_body(),
        }
    }

    fn fail(&mut self, mut err: ProviderError) {
        err.status.get_or_insert(self.status);
        self.pending_error = Some(err);
        self.state = State::Failed;
    }

    fn end_of_body(&mut self) {
        if self.finish_reason.is_some() {
            if let Decoder::Anthropic(translator) = &mut self.decoder {
                let chunks = translator.finish();
                self.take_usage(&chunks);
                self.queue.extend(chunks);
            }
            self.state = State::Done;
            return;
        }
        let end = match self.settings.format {
            Format::OpenAi => "[DONE]",
            Format::Anthropic => "message_stop",
        };
        self.fail(ProviderError::new(
            Outcome::StreamInterrupted,
            format!("the stream ended before {end} and before any finish reason"),
        ));
    }

    fn decode(&mut self, event: SseEvent) {
        if self.events == 0 {
            let now = self.settings.clock.now();
            self.first_event_after = Some(now.saturating_duration_since(self.settings.started));
        }
        self.events += 1;
        let decoded = match &mut self.decoder {
            Decoder::OpenAi => decode_openai(&event),
            Decoder::Anthropic(translator) => decode_anthropic(translator, &event),
        };
        match decoded {
            Decoded::Chunks(chunks) => {
                self.malformed_run = 0;
                self.take_usage(&chunks);
                self.queue.extend(chunks);
            }
            Decoded::Done(chunks) => {
                self.take_usage(&chunks);
                self.queue.extend(chunks);
                self.state = State::Done;
            }
            Decoded::Error(body) => {
                let err = ProviderError::in_band(self.status, body, self.settings.key.as_ref());
                self.fail(err);
            }
            Decoded::Malformed => {
                self.malformed += 1;
                self.malformed_run += 1;
                if self.malformed_run >= MALFORMED_RUN_LIMIT {
                    self.fail(ProviderError::new(
                        Outcome::StreamInterrupted,
                        format!("{MALFORMED_RUN_LIMIT} malformed events in a row"),
                    ));
                }
            }
        }
    }

    fn take_usage(&mut self, chunks: &[ChatChunk]) {
        for chunk in chunks {
            if let Some(usage) = &chunk.usage {
                self.usage = Some(Usage::from(usage));
            }
            if let Some(reason) = chunk.finish_reason() {
                self.finish_reason = Some(reason);
            }
        }
    }

    /// The HTTP status of the response.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Tokens used, once the provider reported them (at the end of the stream).
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// The finish reason, once a chunk carried one.
    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.finish_reason
    }

    /// How many malformed events were skipped.
    pub fn malformed_skipped(&self) -> u32 {
        self.malformed
    }

    /// Time from sending the request to the first event (time to first token, roughly).
    pub fn first_event_after(&self) -> Option<Duration> {
        self.first_event_after
    }
}

enum Decoded {
    Chunks(Vec<ChatChunk>),
    Done(Vec<ChatChunk>),
    Error(Value),
    Malformed,
}

fn decode_openai(event: &SseEvent) -> Decoded {
    let data = event.data.trim();
    if data == "[DONE]" {
        return Decoded::Done(Vec::new());
    }
    match serde_json::from_str::<ChatChunk>(data) {
        Ok(mut chunk) => match chunk.extra.remove("error") {
            Some(error) => Decoded::Error(serde_json::json!({ "error": error })),
            None => Decoded::Chunks(vec![chunk]),
        },
        // An error payload that is not chunk-shaped (`{"error": "text"}`).
        Err(_) => match serde_json::from_str::<Value>(data) {
            Ok(value) if value.get("error").is_some() => Decoded::Error(value),
            _ => Decoded::Malformed,
        },
    }
}

fn decode_anthropic(translator: &mut AnthropicStreamTranslator, event: &SseEvent) -> Decoded {
    let Ok(parsed) = serde_json::from_str::<StreamEvent>(&event.data) else {
        return Decoded::Malformed;
    };
    match parsed {
        StreamEvent::Error { error } => {
            Decoded::Error(serde_json::json!({ "type": "error", "error": error }))
        }
        StreamEvent::MessageStop => Decoded::Done(translator.push(&StreamEvent::MessageStop)),
        other => Decoded::Chunks(translator.push(&other)),
    }
}
