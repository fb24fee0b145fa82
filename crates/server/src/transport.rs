//! The pipeline's [`Transport`] for LLM calls: one attempt = one provider request.
//!
//! The decision that shapes it: a transport lives for one client request and holds
//! everything its attempts share (the canonical request, the output check, the
//! idempotency key sent to every provider) and everything they learn that the policy
//! events do not carry (tokens used, the provider's error message), keyed by attempt
//! id for the ledger. A streamed attempt succeeds when `client.stream` returns, i.e.
//! when the headers and the first event arrived: that is the commit point, before which
//! the pipeline fails over freely.

use std::sync::Mutex;
use std::time::Duration;

use holdfast_llm::openai::embeddings::EmbeddingsRequest;
use holdfast_llm::openai::{ChatRequest, FinishReason};
use holdfast_llm::{CallOptions, ChunkStream, Completion, Embedded, ProviderError, Usage};
use holdfast_policy::Outcome;
use holdfast_policy::driver::{Classified, Transport};
use holdfast_policy::pipeline::{AttemptId, StartAttempt};
use holdfast_policy::silence::Mode;

use crate::gateway::Inner;
use crate::output::OutputCheck;

/// A failed attempt: the provider's classified error.
#[derive(Debug)]
pub(crate) struct AttemptError(pub(crate) ProviderError);

impl Classified for AttemptError {
    fn outcome(&self) -> Outcome {
        self.0.outcome
    }
}

/// What one attempt learned beyond its outcome.
#[derive(Debug, Clone, Default)]
pub(crate) struct AttemptNote {
    pub(crate) attempt: Option<AttemptId>,
    pub(crate) usage: Option<Usage>,
    pub(crate) error: Option<String>,
    /// Why the model stopped, for the attempt's span.
    pub(crate) finish: Option<FinishReason>,
}

/// What every attempt of one call shares.
pub(crate) struct Attempts<'a> {
    gateway: &'a Inner,
    idempotency_key: &'a str,
    trace: &'a holdfast_telemetry::Trace,
    notes: Mutex<Vec<AttemptNote>>,
}

impl<'a> Attempts<'a> {
    /// Attempts of one call, each sent with `idempotency_key`.
    pub(crate) fn new(
        gateway: &'a Inner,
        idempotency_key: &'a str,
        trace: &'a holdfast_telemetry::Trace,
    ) -> Self {
        Attempts {
            gateway,
            idempotency_key,
            trace,
            notes: Mutex::new(Vec::new()),
        }
    }

    /// The notes taken so far.
    pub(crate) fn take_notes(&self) -> Vec<AttemptNote> {
        std::mem::take(&mut *self.notes.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn note(
        &self,
        attempt: AttemptId,
        usage: Option<Usage>,
        error: Option<&ProviderError>,
        finish: Option<FinishReason>,
    ) {
        let note = AttemptNote {
            attempt: Some(attempt),
            usage,
            error: error.map(|e| e.to_string()),
            finish,
        };
        self.notes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(note);
    }

    /// The attempt's options: its provider hears the attempt's own span as the
    /// `traceparent` (or the client's, when traces are not exported).
    fn options(&self, start: &StartAttempt, mode: Mode) -> CallOptions {
        CallOptions {
            idempotency_key: Some(self.idempotency_key.to_owned()),
            timeout_cap: Some(start.timeout),
            first_byte: self.first_byte(start, mode),
            headers: self.trace.headers(start.number),
        }
    }

    /// The attempt's wait for its first byte: the target's own when it set one;
    /// otherwise learned from its latency, for a stream always, and for a whole answer
    /// only where another target could take the call (on the last one, a long answer
    /// is worth waiting for up to the total timeout).
    fn first_byte(&self, start: &StartAttempt, mode: Mode) -> Option<Duration> {
        let target = self.gateway.target(start.target)?;
        let timeouts = target.endpoint.timeouts;
        if !timeouts.learns_first_byte {
            return None;
        }
        let estimate = target.silence.lock().unwrap_or_else(|e| e.into_inner());
        match mode {
            Mode::Streamed => {
                Some(estimate.timeout(mode, timeouts.first_byte, timeouts.first_byte))
            }
            Mode::Whole => start
                .fallback
                .then(|| estimate.timeout(mode, timeouts.first_byte, timeouts.total)),
        }
    }

    /// Teaches the target's estimate how long a successful attempt waited for its
    /// first byte.
    fn learn(&self, start: &StartAttempt, mode: Mode, latency: Duration) {
        if let Some(target) = self.gateway.target(start.target) {
            let now = self.gateway.clock.now();
            target
                .silence
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(now, mode, latency);
        }
    }

    fn endpoint(&self, start: &StartAttempt) -> Result<&'a holdfast_llm::Endpoint, AttemptError> {
        match self.gateway.target(start.target) {
            Some(target) => Ok(&target.endpoint),
            None => Err(AttemptError(ProviderError::new(
                Outcome::NotFound,
                "unknown target id",
            ))),
        }
    }
}

/// Attempts that wait for the whole answer and validate it.
pub(crate) struct Completing<'a>(
    pub(crate) Attempts<'a>,
    pub(crate) &'a ChatRequest,
    pub(crate) &'a OutputCheck,
);

impl Transport for Completing<'_> {
    type Response = Completion;
    type Error = AttemptError;

    fn output_tokens(&self, completion: &Completion) -> Option<u32> {
        let usage = completion.usage?;
        Some(u32::try_from(usage.output_tokens).unwrap_or(u32::MAX))
    }

    async fn attempt(&self, start: StartAttempt) -> Result<Completion, AttemptError> {
        let attempts = &self.0;
        let endpoint = attempts.endpoint(&start)?;
        let options = attempts.options(&start, Mode::Whole);
        match attempts
            .gateway
            .client
            .complete(endpoint, self.1, &options)
            .await
        {
            Ok(completion) => match self.2.check(&completion.response) {
                Ok(()) => {
                    attempts.learn(&start, Mode::Whole, completion.latency);
                    let finish = completion
                        .response
                        .choices
                        .iter()
                        .find_map(|c| c.finish_reason);
                    attempts.note(start.attempt, completion.usage, None, finish);
                    Ok(completion)
                }
                Err(why) => {
                    let err = ProviderError::new(Outcome::InvalidOutput, why);
                    attempts.note(start.attempt, completion.usage, Some(&err), None);
                    Err(AttemptError(err))
                }
            },
            Err(err) => {
                attempts.note(start.attempt, None, Some(&err), None);
                Err(AttemptError(err))
            }
        }
    }
}

/// Attempts that return once a stream has started; its chunks are relayed later.
pub(crate) struct Streaming<'a>(pub(crate) Attempts<'a>, pub(crate) &'a ChatRequest);

impl Transport for Streaming<'_> {
    type Response = ChunkStream;
    type Error = AttemptError;

    async fn attempt(&self, start: StartAttempt) -> Result<ChunkStream, AttemptError> {
        let attempts = &self.0;
        let endpoint = attempts.endpoint(&start)?;
        let options = attempts.options(&start, Mode::Streamed);
        let started = attempts.gateway.clock.now();
        match attempts
            .gateway
            .client
            .stream(endpoint, self.1, &options)
            .await
        {
            Ok(stream) => {
                let waited = attempts
                    .gateway
                    .clock
                    .now()
                    .saturating_duration_since(started);
                attempts.learn(&start, Mode::Streamed, waited);
                Ok(stream)
            }
            Err(err) => {
                attempts.note(start.attempt, None, Some(&err), None);
                Err(AttemptError(err))
            }
        }
    }
}

/// Attempts of an embeddings call (`POST /v1/embeddings`, a library's examples).
pub(crate) struct Embedding<'a>(pub(crate) Attempts<'a>, pub(crate) &'a EmbeddingsRequest);

impl Transport for Embedding<'_> {
    type Response = Embedded;
    type Error = AttemptError;

    async fn attempt(&self, start: StartAttempt) -> Result<Embedded, AttemptError> {
        let (attempts, options) = (&self.0, self.0.options(&start, Mode::Whole));
        let embedded = (attempts.gateway.client)
            .embed(attempts.endpoint(&start)?, self.1, &options)
            .await;
        let (usage, err) = (
            embedded.as_ref().ok().map(|e| e.usage),
            embedded.as_ref().err(),
        );
        attempts.note(start.attempt, usage, err, None);
        embedded.map_err(AttemptError)
    }
}
