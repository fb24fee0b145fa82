//! [`TaskEvent`]: what the engine tells the rest of the process as tasks move.
//!
//! The journal in the store is the durable record; these events are the live feed that
//! metrics, alerts and the dashboard consume, emitted after the change they report has
//! committed. They carry no task input or output (which may hold personal data), only
//! names, classes, durations and money.

use std::sync::Arc;
use std::time::Duration;

/// One change of a task, after it committed.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskEvent {
    /// The task.
    pub task_id: String,
    /// Its workflow's name.
    pub workflow: Arc<str>,
    /// Its place in a trace (its submitter's, or its own).
    pub trace: crate::trace::TaskTrace,
    /// What happened.
    pub kind: TaskEventKind,
}

/// What happened to a task.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskEventKind {
    /// It was accepted.
    Submitted,
    /// A step's attempt succeeded and was committed.
    StepSucceeded {
        /// The step.
        step: String,
        /// Its kind (`llm`, `http`, …).
        kind: &'static str,
        /// Which attempt.
        attempt: u32,
        /// How long the attempt ran.
        duration: Duration,
        /// What it cost, in US dollars.
        cost_usd: f64,
    },
    /// A step's attempt failed and the step went back to the retry queue.
    StepRetrying {
        /// The step.
        step: String,
        /// Its kind.
        kind: &'static str,
        /// The attempt that failed.
        attempt: u32,
        /// The failure's outcome class.
        class: &'static str,
        /// How long until the next attempt.
        delay: Duration,
    },
    /// A step ran out of attempts (or failed in a class that is not retried).
    StepExhausted {
        /// The step.
        step: String,
        /// Its kind.
        kind: &'static str,
        /// The failure's outcome class.
        class: &'static str,
        /// What happens next: `fail`, `skip` or `escalate`.
        then: &'static str,
    },
    /// A person was asked (a human step, or an escalation after exhaustion).
    Escalated {
        /// The step.
        step: String,
    },
    /// A person's answer (or an answer at the step's timeout) was recorded.
    EscalationResolved {
        /// The step that asked.
        step: String,
        /// `approved`, `edited` or `rejected`.
        resolution: &'static str,
    },
    /// A committed step was undone after the task failed.
    Compensated {
        /// The step.
        step: String,
    },
    /// A node took over a task whose previous node's lease expired.
    TakenOver {
        /// The node that held it.
        from: String,
    },
    /// The task succeeded.
    Succeeded {
        /// From submission to completion.
        duration: Duration,
        /// Its total cost, in US dollars.
        cost_usd: f64,
    },
    /// The task failed (after its compensations ran).
    Failed {
        /// From submission to failure.
        duration: Duration,
        /// Its total cost, in US dollars.
        cost_usd: f64,
    },
    /// The task was cancelled.
    Cancelled,
}

/// Where task events go; `Fn` so that a sink is cheap to share.
pub type EventSink = Arc<dyn Fn(&TaskEvent) + Send + Sync>;

/// A sink that drops every event.
pub fn discard() -> EventSink {
    Arc::new(|_| {})
}
