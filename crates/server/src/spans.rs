//! A request's spans (`holdfast-telemetry`), built from its ledger entry when its
//! result is final: the entry already holds every attempt as the pipeline's events
//! told it, so the spans and the ledger cannot disagree.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use holdfast_engine::trace::TaskTrace;
use holdfast_policy::Instant;
use holdfast_telemetry::{Attempt, Request, Telemetry, Trace};

use crate::intake::Door;
use crate::ledger::Entry;

/// A traced request's context, kept on its ledger entry until the request ends.
#[derive(Debug)]
pub(crate) struct Spans {
    telemetry: Arc<Telemetry>,
    trace: Trace,
    started: (Instant, SystemTime),
    /// Made in process (an `llm` step's call), not received over HTTP.
    in_process: bool,
}

impl Spans {
    /// The spans of the request behind `door`, when traces are exported.
    pub(crate) fn of(door: &Door) -> Option<Arc<Spans>> {
        Some(Arc::new(Spans {
            telemetry: Arc::clone(door.gateway.inner.ledger.telemetry()?),
            trace: door.meta.trace.clone(),
            started: (
                door.started,
                SystemTime::UNIX_EPOCH + Duration::from_millis(door.started_ms),
            ),
            in_process: false,
        }))
    }

    /// The spans of a call made in process under the span `traceparent` names (an
    /// `llm` step's attempt) of a task whose trace is `task`, when traces are exported:
    /// sampled as the task's spans are, not as the flag of `traceparent` says.
    pub(crate) fn local(
        gw: &crate::gateway::Inner,
        (traceparent, task): (&str, TaskTrace),
        (started, started_ms): (Instant, u64),
    ) -> Option<Arc<Spans>> {
        let telemetry = Arc::clone(gw.ledger.telemetry()?);
        Some(Arc::new(Spans {
            trace: telemetry.begin_step(&task, traceparent),
            telemetry,
            started: (
                started,
                SystemTime::UNIX_EPOCH + Duration::from_millis(started_ms),
            ),
            in_process: true,
        }))
    }

    /// The call's place in its trace.
    pub(crate) fn trace(&self) -> &Trace {
        &self.trace
    }

    /// Exports the spans of `entry`, whose result is final.
    pub(crate) fn export(&self, entry: &Entry) {
        let attempts = entry.trace.attempts.iter().filter_map(|a| {
            Some(Attempt {
                span: a.span.as_deref()?,
                number: a.number,
                target: &a.target,
                outcome: a.outcome,
                latency_ms: a.latency_ms,
                input_tokens: a.input_tokens,
                output_tokens: a.output_tokens,
                cost_usd: a.cost_usd,
            })
        });
        self.telemetry.request(&Request {
            trace: &self.trace,
            route: &entry.route,
            request_id: &entry.request_id,
            status: entry.status,
            result: entry.result,
            error_code: entry.error_code,
            started: self.started,
            ended: self.started.1 + Duration::from_secs_f64(entry.latency_ms.max(0.0) / 1000.0),
            in_process: self.in_process,
            attempts: attempts.collect(),
        });
    }
}

/// The log span of a request: its trace and span ids on every line logged while it is
/// served (JSON lines show them under `span`).
pub(crate) fn log_span(trace: &Trace) -> tracing::Span {
    match trace.ids() {
        Some((trace_id, span_id)) => tracing::info_span!("request", trace_id, span_id),
        None => tracing::Span::none(),
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
