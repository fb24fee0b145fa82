//! A workflow task's spans, built from the engine's `TaskEvent`s: one for the task
//! (from submission to its end) and one per step attempt (an `http` step's is a tool
//! call, kind client; a `worker` step's is a job handed to a worker, kind producer).
//!
//! The ids are the task's own (`holdfast_engine::trace`), so the span a tool or a
//! worker saw as its parent is the one exported here, whichever node ran the attempt.
//! A task submitted with a `traceparent` is in its submitter's trace, the task span a
//! child of the submitter's span (the event carries that context, read from the store).
//! Events carry durations, not start times: a span ends when its event arrives and
//! starts that long before. An `llm` step's model call, made in process, is in the same
//! trace under its step's span ([`Telemetry::begin_step`]), and is recorded exactly
//! when the task's spans are.

use std::time::SystemTime;

use holdfast_engine::trace::{TaskTrace, step_span_id, task_span_id};
use holdfast_engine::{TaskEvent, TaskEventKind};
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, TraceFlags, TraceId, TraceState};

use crate::{TRACEPARENT, Telemetry, Trace};

impl Telemetry {
    /// The trace of a model call an `llm` step of a task whose trace is `task` makes
    /// in process, under the step attempt's span `traceparent`: recorded exactly when
    /// the task's own spans are, as its submitter asked or, for a task of its own
    /// trace, as the ratio says (the attempt's `traceparent` then says sampled, which
    /// only leaves the choice to the exporter, so it cannot decide).
    pub fn begin_step(&self, task: &TaskTrace, traceparent: &str) -> Trace {
        let mut headers = http::HeaderMap::new();
        if let Ok(value) = http::HeaderValue::from_str(traceparent) {
            headers.insert(TRACEPARENT, value);
        }
        let sampled = self.task_sampled(task);
        Trace::from_headers(&headers).with_span(|_, _| sampled)
    }

    /// Whether the spans of a task whose trace is `task` are recorded.
    fn task_sampled(&self, task: &TaskTrace) -> bool {
        let trace = TraceId::from(task.trace_id);
        self.sampled(submitter(task).as_ref(), trace)
    }

    /// Queues the span that `event`, arriving at `now`, ends, if its trace is sampled.
    pub fn task_event(&self, event: &TaskEvent, now: SystemTime) {
        if !self.task_sampled(&event.trace) {
            return;
        }
        let trace = TraceId::from(event.trace.trace_id);
        let submitter = submitter(&event.trace);
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

/// The span of whoever submitted the task, when it sent a `traceparent`.
fn submitter(task: &TaskTrace) -> Option<SpanContext> {
    task.parent.map(|(span, flags)| {
        SpanContext::new(
            TraceId::from(task.trace_id),
            SpanId::from(span),
            TraceFlags::new(flags),
            true,
            TraceState::default(),
        )
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{SpanData, SpanExporter};

    /// A collector that takes everything.
    #[derive(Debug)]
    struct Nowhere;

    impl SpanExporter for Nowhere {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            Ok(())
        }
    }

    fn sampled(trace: &Trace) -> bool {
        trace.span.as_ref().is_some_and(SpanContext::is_sampled)
    }

    /// The call of step `ask`'s first attempt of task `id` traced `task`.
    fn step_call(telemetry: &Telemetry, id: &str, task: &TaskTrace) -> Trace {
        telemetry.begin_step(task, &task.traceparent(id, "ask", 1))
    }

    #[tokio::test]
    async fn a_steps_call_is_sampled_as_its_task_not_as_the_steps_flag() {
        let never = Telemetry::over(Nowhere, 16, 0.0);
        let own = TaskTrace::of("t-1", None);
        let step = own.traceparent("t-1", "ask", 1);
        assert!(
            step.ends_with("-01"),
            "the engine leaves it to the exporter"
        );
        let trace = step_call(&never, "t-1", &own);
        assert!(
            !sampled(&trace),
            "a task of its own trace follows the ratio"
        );
        let span = trace.span.as_ref().map(SpanContext::trace_id);
        assert_eq!(
            span,
            Some(TraceId::from(own.trace_id)),
            "in the task's trace"
        );
        let parent = trace.parent.as_ref().map(SpanContext::span_id);
        let step_span = SpanId::from(step_span_id("t-1", "ask", 1));
        assert_eq!(parent, Some(step_span), "under the step's span");
        let heard = trace.headers(1);
        assert!(heard[0].1.ends_with("-00"), "the provider hears {heard:?}");

        // A submitter's flag is followed, whatever the ratio.
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7";
        let asked = TaskTrace::of("t-2", Some(&format!("{parent}-01")));
        assert!(sampled(&step_call(&never, "t-2", &asked)));
        let always = Telemetry::over(Nowhere, 16, 1.0);
        let declined = TaskTrace::of("t-3", Some(&format!("{parent}-00")));
        assert!(!sampled(&step_call(&always, "t-3", &declined)));
        assert!(sampled(&step_call(&always, "t-1", &own)));

        // In between, each task's call is decided as a request starting that trace is.
        let half = Telemetry::over(Nowhere, 16, 0.5);
        let mut seen = [0u32; 2];
        for i in 0..200 {
            let id = format!("t-{i}");
            let own = TaskTrace::of(&id, None);
            let call = sampled(&step_call(&half, &id, &own));
            assert_eq!(call, half.sampled(None, TraceId::from(own.trace_id)));
            seen[usize::from(call)] += 1;
        }
        assert!(seen[0] > 50 && seen[1] > 50, "{seen:?}");
    }
}
