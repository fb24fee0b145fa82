//! A gateway request's spans: one for the request (kind server) and one per attempt
//! (kind client), with the GenAI semantic conventions' attributes and holdfast's own.
//!
//! The server fills a [`Request`] from the ledger entry it already keeps, once the
//! request has its final result: the attempts, their outcome classes and what the
//! policy did next are the pipeline's events as the ledger holds them.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use holdfast_llm::Format;
use holdfast_llm::openai::FinishReason;
use holdfast_policy::Instant;
use holdfast_policy::breaker::State;
use holdfast_policy::pipeline::Next;
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use crate::Telemetry;
use crate::context::Trace;

/// A finished gateway request.
#[derive(Debug)]
pub struct Request<'a> {
    /// Its place in the trace ([`Telemetry::begin`]).
    pub trace: &'a Trace,
    /// The model name the client asked for (the route).
    pub route: &'a str,
    /// holdfast's request id.
    pub request_id: &'a str,
    /// The HTTP status the client got.
    pub status: u16,
    /// The ledger's result: `ok`, `error`, `degraded`, `stream_error`…
    pub result: &'a str,
    /// The error code the client got, if any.
    pub error_code: Option<&'a str>,
    /// When it arrived: the instant, and the same on the wall clock.
    pub started: (Instant, SystemTime),
    /// See `started`.
    pub ended: SystemTime,
    /// Made in process (an `llm` step's call, kind internal), not received over HTTP
    /// (kind server).
    pub in_process: bool,
    /// The attempts, in the order they ended.
    pub attempts: Vec<Attempt<'a>>,
}

/// What an attempt's span needs beyond the ledger's record of the attempt, taken when
/// the attempt is sent and when the pipeline's event for it is read.
#[derive(Debug, Clone)]
pub struct AttemptSpan {
    /// When it started.
    pub started: Instant,
    /// The provider's wire format (`gen_ai.system`).
    pub system: Format,
    /// The model the target names (`gen_ai.response.model`).
    pub model: Arc<str>,
    /// The target's breaker state when the call's events were read.
    pub breaker: Option<State>,
    /// Why the model stopped, when it answered whole.
    pub finish: Option<FinishReason>,
    /// What the pipeline did next: the retry's wait, or why it fell back.
    pub next: Next,
}

/// One attempt of a request at one target, as the ledger records it.
#[derive(Debug)]
pub struct Attempt<'a> {
    /// What its span needs beyond the record.
    pub span: &'a AttemptSpan,
    /// 1 for the request's first attempt.
    pub number: u32,
    /// The target's name.
    pub target: &'a str,
    /// The outcome class (`ok`, `rate_limited`, `overloaded`…).
    pub outcome: &'a str,
    /// How long it took, in milliseconds.
    pub latency_ms: f64,
    /// Tokens read and written.
    pub input_tokens: u64,
    /// See `input_tokens`.
    pub output_tokens: u64,
    /// What the attempt cost, in US dollars.
    pub cost_usd: f64,
}

impl Telemetry {
    /// Queues the spans of a finished `request`, if its trace is sampled.
    pub fn request(&self, request: &Request<'_>) {
        let Some(span) = request.trace.span.as_ref().filter(|s| s.is_sampled()) else {
            return;
        };
        let mut attributes = vec![
            KeyValue::new("gen_ai.operation.name", "chat"),
            KeyValue::new("gen_ai.request.model", request.route.to_owned()),
            KeyValue::new("holdfast.request_id", request.request_id.to_owned()),
            KeyValue::new("http.response.status_code", i64::from(request.status)),
            KeyValue::new("holdfast.outcome", request.result.to_owned()),
            KeyValue::new("holdfast.attempts", request.attempts.len() as i64),
        ];
        if let Some(code) = request.error_code {
            attributes.push(KeyValue::new("error.type", code.to_owned()));
        }
        let parent = request.trace.parent.as_ref();
        let failed = request.status >= 500 || request.result == "stream_error";
        self.push(self.span(
            span.clone(),
            parent.map_or(SpanId::INVALID, SpanContext::span_id),
            parent.is_some(),
            (
                if request.in_process {
                    SpanKind::Internal
                } else {
                    SpanKind::Server
                },
                format!("chat {}", request.route),
            ),
            (request.started.1, request.ended),
            attributes,
            failed.then(|| request.error_code.unwrap_or(request.result)),
        ));
        let (origin, wall) = request.started;
        for attempt in &request.attempts {
            let Some(id) = request.trace.child(attempt.number) else {
                continue;
            };
            let started = wall + attempt.span.started.saturating_duration_since(origin);
            let ended = started + Duration::from_secs_f64(attempt.latency_ms.max(0.0) / 1000.0);
            let context = SpanContext::new(
                span.trace_id(),
                id,
                TraceFlags::SAMPLED,
                false,
                span.trace_state().clone(),
            );
            self.push(self.span(
                context,
                span.span_id(),
                false,
                (SpanKind::Client, format!("chat {}", attempt.span.model)),
                (started, ended),
                attempt_attributes(request, attempt),
                (attempt.outcome != "ok").then_some(attempt.outcome),
            ));
        }
    }

    /// A finished span of this scope.
    #[allow(clippy::too_many_arguments)] // one span's parts, named at each call
    pub(crate) fn span(
        &self,
        context: SpanContext,
        parent: SpanId,
        parent_is_remote: bool,
        (kind, name): (SpanKind, String),
        (start, end): (SystemTime, SystemTime),
        attributes: Vec<KeyValue>,
        error: Option<&str>,
    ) -> SpanData {
        SpanData {
            span_context: context,
            parent_span_id: parent,
            parent_span_is_remote: parent_is_remote,
            span_kind: kind,
            name: Cow::Owned(name),
            start_time: start,
            end_time: end.max(start),
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: match error {
                Some(error) => Status::error(error.to_owned()),
                None => Status::Unset,
            },
            instrumentation_scope: self.scope.clone(),
        }
    }
}

fn attempt_attributes(request: &Request<'_>, attempt: &Attempt<'_>) -> Vec<KeyValue> {
    let mut out = vec![
        KeyValue::new("gen_ai.operation.name", "chat"),
        KeyValue::new("gen_ai.system", system(attempt.span.system)),
        KeyValue::new("gen_ai.request.model", request.route.to_owned()),
        KeyValue::new("gen_ai.response.model", attempt.span.model.to_string()),
        KeyValue::new("gen_ai.usage.input_tokens", attempt.input_tokens as i64),
        KeyValue::new("gen_ai.usage.output_tokens", attempt.output_tokens as i64),
        KeyValue::new("holdfast.target", attempt.target.to_owned()),
        KeyValue::new("holdfast.outcome", attempt.outcome.to_owned()),
        KeyValue::new("holdfast.attempt", i64::from(attempt.number)),
        KeyValue::new("holdfast.cost_usd", attempt.cost_usd),
    ];
    if let Some(reason) = attempt.span.finish {
        let reasons = vec![finish_reason(reason).into()];
        out.push(KeyValue::new(
            "gen_ai.response.finish_reasons",
            Value::Array(opentelemetry::Array::String(reasons)),
        ));
    }
    if attempt.outcome != "ok" {
        out.push(KeyValue::new("error.type", attempt.outcome.to_owned()));
    }
    match attempt.span.next {
        Next::Retry { after } => {
            let delay_ms = after.as_secs_f64() * 1000.0;
            out.push(KeyValue::new("holdfast.retry_delay_ms", delay_ms));
        }
        Next::FallBack { because, .. } => {
            out.push(KeyValue::new("holdfast.fallback_reason", because.name()));
        }
        Next::Done | Next::AwaitOther | Next::GaveUp(_) | Next::Cancelled => {}
    }
    if let Some(state) = attempt.span.breaker {
        out.push(KeyValue::new("holdfast.breaker_state", state.name()));
    }
    out
}

/// The GenAI conventions' name of a provider: what the wire format says it is.
fn system(format: Format) -> &'static str {
    match format {
        Format::OpenAi => "openai",
        Format::Anthropic => "anthropic",
    }
}

/// The name OpenAI gives a finish reason.
fn finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
        FinishReason::FunctionCall => "function_call",
        FinishReason::Unknown => "unknown",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use opentelemetry::InstrumentationScope;
    use opentelemetry::trace::{TraceId, TraceState};

    /// A span, for the queue's tests.
    pub(crate) fn span() -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(1),
                SpanId::from(1),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Borrowed("test"),
            start_time: SystemTime::UNIX_EPOCH,
            end_time: SystemTime::UNIX_EPOCH,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::builder("test").build(),
        }
    }
}
