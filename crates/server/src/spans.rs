//! A request's spans (`holdfast-telemetry`), built from its ledger entry when its
//! result is final: the entry already holds every attempt as the pipeline's events
//! told it, so the spans and the ledger cannot disagree.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use holdfast_llm::Format;
use holdfast_llm::openai::FinishReason;
use holdfast_policy::Instant;
use holdfast_telemetry::{Attempt, Request, SpanId, Telemetry, Trace};

use crate::intake::Door;
use crate::ledger::Entry;

/// What an attempt's span needs beyond its ledger record.
#[derive(Debug, Clone)]
pub(crate) struct AttemptSpan {
    pub(crate) id: SpanId,
    pub(crate) started: Instant,
    pub(crate) system: Format,
    pub(crate) model: Arc<str>,
    pub(crate) breaker: &'static str,
    pub(crate) finish: Option<FinishReason>,
}

/// A traced request's context, kept on its ledger entry until the request ends.
#[derive(Debug)]
pub(crate) struct Spans {
    telemetry: Arc<Telemetry>,
    trace: Trace,
    started: Instant,
    started_at: SystemTime,
}

impl Spans {
    /// The spans of the request behind `door`, when traces are exported.
    pub(crate) fn of(door: &Door) -> Option<Arc<Spans>> {
        Some(Arc::new(Spans {
            telemetry: Arc::clone(door.gateway.inner.ledger.telemetry()?),
            trace: door.meta.trace.clone(),
            started: door.started,
            started_at: SystemTime::UNIX_EPOCH + Duration::from_millis(door.started_ms),
        }))
    }

    /// Exports the spans of `entry`, whose result is final.
    pub(crate) fn export(&self, entry: &Entry) {
        let at =
            |instant: Instant| self.started_at + instant.saturating_duration_since(self.started);
        let attempts = entry.trace.attempts.iter().filter_map(|record| {
            let span = record.span.as_deref()?;
            let started = at(span.started);
            let (retry_delay_ms, fallback_reason) = record.next.delay_and_reason();
            Some(Attempt {
                span_id: Some(span.id),
                number: record.number,
                target: &record.target,
                system: span.system,
                model: &span.model,
                outcome: record.outcome,
                started,
                ended: started + Duration::from_secs_f64(record.latency_ms / 1000.0),
                retry_delay_ms,
                fallback_reason,
                breaker_state: Some(span.breaker),
                input_tokens: record.input_tokens,
                output_tokens: record.output_tokens,
                finish_reason: span.finish,
                cost_usd: record.cost_usd,
            })
        });
        self.telemetry.request(&Request {
            trace: &self.trace,
            route: &entry.route,
            request_id: &entry.request_id,
            status: entry.status,
            result: entry.result,
            error_code: entry.error_code,
            started: self.started_at,
            ended: self.started_at + Duration::from_secs_f64(entry.latency_ms / 1000.0),
            attempts: attempts.collect(),
        });
    }
}

impl crate::gateway::Gateway {
    /// This gateway exporting every request's spans to `telemetry` (the ledger holds
    /// it, so it outlives reloads).
    pub fn with_telemetry(self, telemetry: Arc<Telemetry>) -> Self {
        self.inner.ledger.attach(telemetry);
        self
    }
}
