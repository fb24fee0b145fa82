//! A workflow task's spans, built from the engine's `TaskEvent`s: one for the task
//! (from submission to its end) and one per step attempt (an `http` step's is a tool
//! call, kind client; a `worker` step's is a job handed to a worker, kind producer).
//!
//! The ids are the task's own (`holdfast_engine::trace`), so the span a tool or a
//! worker saw as its parent is the one exported here, whichever node ran the attempt.
//! A task submitted with a `traceparent` is in its submitter's trace, the task span a
//! child of the submitter's span (the event carries that context, read from the store).
//! Events carry durations, not start times: a span ends when its event arrives and
//! starts that long before.

use std::time::SystemTime;

use holdfast_engine::trace::{step_span_id, task_span_id};
use holdfast_engine::{TaskEvent, TaskEventKind};
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, TraceFlags, TraceId, TraceState};

use crate::Telemetry;

impl Telemetry {
    /// Queues the span that `event`, arriving at `now`, ends, if its trace is sampled.
    pub fn task_event(&self, event: &TaskEvent, now: SystemTime) {
        let trace = TraceId::from(event.trace.trace_id);
        let submitter = event.trace.parent.map(|(span, flags)| {
            SpanContext::new(
                trace,
                SpanId::from(span),
                TraceFlags::new(flags),
                true,
                TraceState::default(),
            )
        });
        if !self.sampled(submitter.as_ref(), trace) {
            return;
        }
        let root = submitter
            .as_ref()
            .map_or(SpanId::INVALID, SpanContext::span_id);
        let task = SpanId::from(task_span_id(&event.task_id));
        let mut attributes = vec![
            KeyValue::new("holdfast.task_id", event.task_id.clone()),
            KeyValue::new("holdfast.workflow", event.workflow.to_string()),
        ];
        let (id, parent, kind, name, took, error) = match &event.kind {
            TaskEventKind::Succeeded { duration, cost_usd } => {
                attributes.push(KeyValue::new("holdfast.outcome", "succeeded"));
                attributes.push(KeyValue::new("holdfast.cost_usd", *cost_usd));
                (
                    task,
                    root,
                    SpanKind::Internal,
                    task_name(event),
                    *duration,
                    None,
                )
            }
            TaskEventKind::Failed { duration, cost_usd } => {
                attributes.push(KeyValue::new("holdfast.outcome", "failed"));
                attributes.push(KeyValue::new("holdfast.cost_usd", *cost_usd));
                let error = Some("failed");
                (
                    task,
                    root,
                    SpanKind::Internal,
                    task_name(event),
                    *duration,
                    error,
                )
            }
            TaskEventKind::StepSucceeded {
                step,
                kind,
                attempt,
                duration,
                cost_usd,
            } => {
                step_attributes(&mut attributes, step, kind, *attempt, "ok");
                attributes.push(KeyValue::new("holdfast.cost_usd", *cost_usd));
                let id = SpanId::from(step_span_id(&event.task_id, step, *attempt));
                (
                    id,
                    task,
                    step_kind(kind),
                    format!("step {step}"),
                    *duration,
                    None,
                )
            }
            TaskEventKind::StepRetrying {
                step,
                kind,
                attempt,
                class,
                delay,
            } => {
                step_attributes(&mut attributes, step, kind, *attempt, class);
                attributes.push(KeyValue::new("error.type", *class));
                let delay_ms = delay.as_secs_f64() * 1000.0;
                attributes.push(KeyValue::new("holdfast.retry_delay_ms", delay_ms));
                let id = SpanId::from(step_span_id(&event.task_id, step, *attempt));
                let name = format!("step {step}");
                (
                    id,
                    task,
                    step_kind(kind),
                    name,
                    std::time::Duration::ZERO,
                    Some(*class),
                )
            }
            TaskEventKind::Submitted
            | TaskEventKind::StepExhausted { .. }
            | TaskEventKind::Escalated { .. }
            | TaskEventKind::EscalationResolved { .. }
            | TaskEventKind::Compensated { .. }
            | TaskEventKind::TakenOver { .. }
            | TaskEventKind::Cancelled => return,
        };
        let context =
            SpanContext::new(trace, id, TraceFlags::SAMPLED, false, TraceState::default());
        let start = now.checked_sub(took).unwrap_or(now);
        let remote = submitter.is_some() && parent == root;
        self.push(self.span(
            context,
            parent,
            remote,
            (kind, name),
            (start, now),
            attributes,
            error,
        ));
    }
}

fn task_name(event: &TaskEvent) -> String {
    format!("task {}", event.workflow)
}

fn step_attributes(out: &mut Vec<KeyValue>, step: &str, kind: &str, attempt: u32, outcome: &str) {
    out.push(KeyValue::new("holdfast.step", step.to_owned()));
    out.push(KeyValue::new("holdfast.step.kind", kind.to_owned()));
    out.push(KeyValue::new("holdfast.attempt", i64::from(attempt)));
    out.push(KeyValue::new("holdfast.outcome", outcome.to_owned()));
}

/// A tool call goes out to a client's service; a worker job is handed to a queue.
fn step_kind(kind: &str) -> SpanKind {
    match kind {
        "http" => SpanKind::Client,
        "worker" => SpanKind::Producer,
        _ => SpanKind::Internal,
    }
}
