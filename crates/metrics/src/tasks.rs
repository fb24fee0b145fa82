//! The workflow metrics: tasks, steps, escalations, compensations, cost and takeovers,
//! fed by the engine's `TaskEvent`s through `events.rs`.
//!
//! The decision that shapes it: workflow names are user-defined and arrive at run
//! time, unlike routes and targets, so the `workflow` label cannot be resolved at
//! startup. The first [`MAX_WORKFLOWS`] names seen get a slot each and every later one
//! is counted under `workflow="other"`, which bounds the series count whatever users
//! register, while the rest of the module keeps the gateway metrics' layout: flat
//! arrays of atomics indexed by position. Finding a name's slot takes a small lock,
//! once per event; events come per step, not per request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::cells::{Counters, Exposition, Histogram, escape};

/// Workflows with a label of their own; the rest share `other`.
pub(crate) const MAX_WORKFLOWS: usize = 64;
/// The label of the workflows past [`MAX_WORKFLOWS`].
const OTHER: &str = "other";
/// Task statuses counted, by [`TaskMetrics::task`]'s `status`.
const TASK_STATUSES: [&str; 4] = ["submitted", "succeeded", "failed", "cancelled"];
/// Indices into [`TASK_STATUSES`].
pub const SUBMITTED: usize = 0;
/// See [`SUBMITTED`].
pub const SUCCEEDED: usize = 1;
/// See [`SUBMITTED`].
pub const FAILED: usize = 2;
/// See [`SUBMITTED`].
pub const CANCELLED: usize = 3;
/// Step kinds; a kind the engine adds later is counted as `other`.
const STEP_KINDS: [&str; 6] = ["llm", "http", "worker", "human", "sleep", "other"];
/// Step results, by [`TaskMetrics::step`]'s `result`.
const STEP_RESULTS: [&str; 3] = ["succeeded", "retrying", "exhausted"];
/// Indices into [`STEP_RESULTS`]; a succeeded step is [`SUCCEEDED`]'s 0.
pub const STEP_SUCCEEDED: usize = 0;
/// See [`STEP_SUCCEEDED`].
pub const STEP_RETRYING: usize = 1;
/// See [`STEP_SUCCEEDED`].
pub const STEP_EXHAUSTED: usize = 2;
/// Upper bounds of the step duration buckets, in seconds.
const STEP_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Every workflow metric.
pub struct TaskMetrics {
    /// Workflow name → slot; slot `MAX_WORKFLOWS` is `other`.
    slots: Mutex<HashMap<String, usize>>,
    /// Escaped label values by slot, filled as names arrive.
    names: Mutex<Vec<String>>,
    tasks: Counters,
    steps: Counters,
    step_seconds: Vec<Histogram>,
    escalations: Counters,
    /// Escalations answered (by a person, or by a step's timeout), by slot.
    resolved: Counters,
    compensations: Counters,
    /// USD as `f64` bits, by slot.
    cost: Counters,
    takeovers: Counters,
}

impl Default for TaskMetrics {
    fn default() -> Self {
        let w = MAX_WORKFLOWS + 1;
        TaskMetrics {
            slots: Mutex::new(HashMap::new()),
            names: Mutex::new(Vec::new()),
            tasks: Counters::new(w * TASK_STATUSES.len()),
            steps: Counters::new(w * STEP_KINDS.len() * STEP_RESULTS.len()),
            step_seconds: STEP_KINDS
                .iter()
                .map(|_| Histogram::new(STEP_BUCKETS))
                .collect(),
            escalations: Counters::new(w),
            resolved: Counters::new(w),
            compensations: Counters::new(w),
            cost: Counters::new(w),
            takeovers: Counters::new(1),
        }
    }
}

impl TaskMetrics {
    /// The slot of `workflow`, taking a new one while any is left.
    pub fn slot(&self, workflow: &str) -> usize {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.get(workflow) {
            return *slot;
        }
        if slots.len() >= MAX_WORKFLOWS {
            return MAX_WORKFLOWS;
        }
        let slot = slots.len();
        slots.insert(workflow.to_owned(), slot);
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        names.push(escape(workflow));
        slot
    }

    /// A task of `slot` reached [`TASK_STATUSES`]`[status]`.
    pub fn task(&self, slot: usize, status: usize) {
        self.tasks.add(slot * TASK_STATUSES.len() + status, 1);
    }

    /// A step of kind `kind` in `slot` ended an attempt with [`STEP_RESULTS`]`[result]`.
    pub fn step(&self, slot: usize, kind: &str, result: usize) {
        let kind = kind_index(kind);
        let index = (slot * STEP_KINDS.len() + kind) * STEP_RESULTS.len() + result;
        self.steps.add(index, 1);
    }

    /// A successful step attempt of kind `kind` ran for `duration`.
    pub fn step_duration(&self, kind: &str, duration: Duration) {
        if let Some(histogram) = self.step_seconds.get(kind_index(kind)) {
            histogram.observe(duration.as_secs_f64());
        }
    }

    /// A person was asked, in `slot`.
    pub fn escalated(&self, slot: usize) {
        self.escalations.add(slot, 1);
    }

    /// An escalation was answered, in `slot`.
    pub fn escalation_resolved(&self, slot: usize) {
        self.resolved.add(slot, 1);
    }

    /// A committed step was undone, in `slot`.
    pub fn compensated(&self, slot: usize) {
        self.compensations.add(slot, 1);
    }

    /// A finished task of `slot` cost `usd`.
    pub fn cost(&self, slot: usize, usd: f64) {
        if usd.is_finite() && usd > 0.0 {
            self.cost.add_f64(slot, usd);
        }
    }

    /// A node took over a task whose lease expired.
    pub fn taken_over(&self) {
        self.takeovers.add(0, 1);
    }

    /// Tasks submitted, succeeded, failed and cancelled, over every workflow (for
    /// `totals.rs`).
    pub(super) fn status_totals(&self) -> [u64; TASK_STATUSES.len()] {
        let mut totals = [0; TASK_STATUSES.len()];
        for slot in 0..=MAX_WORKFLOWS {
            for (status, total) in totals.iter_mut().enumerate() {
                *total += self.tasks.get(slot * TASK_STATUSES.len() + status);
            }
        }
        totals
    }

    /// The label values in slot order, `other` last.
    fn labels(&self) -> Vec<String> {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner()).clone();
        names.resize(MAX_WORKFLOWS, String::new());
        names.push(OTHER.to_owned());
        names
    }

    /// The exposition of the workflow metrics.
    pub(super) fn render(&self, out: &mut Exposition) {
        let names = self.labels();
        let named = |slot: usize| names.get(slot).filter(|n| !n.is_empty());
        out.family(
            "holdfast_tasks_total",
            "counter",
            "Tasks by workflow and what happened: submitted, succeeded, failed, cancelled.",
        );
        for slot in 0..=MAX_WORKFLOWS {
            let Some(workflow) = named(slot) else {
                continue;
            };
            for (s, status) in TASK_STATUSES.iter().enumerate() {
                out.nonzero(
                    "holdfast_tasks_total",
                    &[("workflow", workflow), ("status", status)],
                    self.tasks.get(slot * TASK_STATUSES.len() + s),
                );
            }
        }
        out.family(
            "holdfast_task_steps_total",
            "counter",
            "Step attempts by workflow, step kind and result: succeeded, retrying (back to \
             the retry queue) or exhausted (no attempt left).",
        );
        for slot in 0..=MAX_WORKFLOWS {
            let Some(workflow) = named(slot) else {
                continue;
            };
            for (k, kind) in STEP_KINDS.iter().enumerate() {
                for (r, result) in STEP_RESULTS.iter().enumerate() {
                    let index = (slot * STEP_KINDS.len() + k) * STEP_RESULTS.len() + r;
                    out.nonzero(
                        "holdfast_task_steps_total",
                        &[("workflow", workflow), ("kind", kind), ("result", result)],
                        self.steps.get(index),
                    );
                }
            }
        }
        out.family(
            "holdfast_task_step_duration_seconds",
            "histogram",
            "How long successful step attempts ran, by step kind.",
        );
        for (kind, histogram) in STEP_KINDS.iter().zip(&self.step_seconds) {
            histogram.render(out, "holdfast_task_step_duration_seconds", ("kind", kind));
        }
        self.per_workflow(
            out,
            &names,
            "holdfast_escalations_total",
            "Escalations opened (human steps, and steps exhausted with on_exhausted = escalate).",
            &self.escalations,
        );
        self.per_workflow(
            out,
            &names,
            "holdfast_escalations_resolved_total",
            "Escalations answered: approved, edited or rejected by a person, or at a human \
             step's timeout.",
            &self.resolved,
        );
        self.gauges(out, &names);
        self.per_workflow(
            out,
            &names,
            "holdfast_compensations_total",
            "Committed steps undone by their compensation after their task failed.",
            &self.compensations,
        );
        out.family(
            "holdfast_task_cost_usd_total",
            "counter",
            "Cost of finished tasks (succeeded or failed) in US dollars, by workflow.",
        );
        for slot in 0..=MAX_WORKFLOWS {
            let Some(workflow) = named(slot) else {
                continue;
            };
            let usd = self.cost.get_f64(slot);
            if usd != 0.0 {
                out.sample(
                    "holdfast_task_cost_usd_total",
                    &[("workflow", workflow)],
                    usd,
                );
            }
        }
        out.family(
            "holdfast_task_takeovers_total",
            "counter",
            "Tasks this node took over from a node whose lease expired.",
        );
        out.sample("holdfast_task_takeovers_total", &[], self.takeovers.get(0));
    }

    /// What is open now, from the counters since this process started: tasks accepted
    /// and not finished (the work queue's depth: queued, running or waiting) and
    /// escalations waiting for a person. Work accepted before a restart is not counted.
    fn gauges(&self, out: &mut Exposition, names: &[String]) {
        out.family(
            "holdfast_tasks_in_flight",
            "gauge",
            "Tasks submitted to this node and not finished yet (queued, running or waiting), \
             since it started.",
        );
        let n = TASK_STATUSES.len();
        for (slot, workflow) in names.iter().enumerate().filter(|(_, w)| !w.is_empty()) {
            let count = |s: usize| self.tasks.get(slot * n + s);
            let open = count(SUBMITTED)
                .saturating_sub(count(SUCCEEDED) + count(FAILED) + count(CANCELLED));
            out.sample(
                "holdfast_tasks_in_flight",
                &[("workflow", workflow)],
                open as f64,
            );
        }
        out.family(
            "holdfast_escalations_open",
            "gauge",
            "Escalations opened and not answered yet, since this node started.",
        );
        for (slot, workflow) in names.iter().enumerate().filter(|(_, w)| !w.is_empty()) {
            let open = self
                .escalations
                .get(slot)
                .saturating_sub(self.resolved.get(slot));
            out.sample(
                "holdfast_escalations_open",
                &[("workflow", workflow)],
                open as f64,
            );
        }
    }

    fn per_workflow(
        &self,
        out: &mut Exposition,
        names: &[String],
        name: &str,
        help: &str,
        values: &Counters,
    ) {
        out.family(name, "counter", help);
        for (slot, workflow) in names.iter().enumerate() {
            if !workflow.is_empty() {
                out.nonzero(name, &[("workflow", workflow)], values.get(slot));
            }
        }
    }
}

fn kind_index(kind: &str) -> usize {
    STEP_KINDS
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(STEP_KINDS.len() - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflows_past_the_cap_share_the_other_label() {
        let metrics = TaskMetrics::default();
        for i in 0..MAX_WORKFLOWS {
            assert_eq!(metrics.slot(&format!("wf-{i}")), i);
        }
        assert_eq!(metrics.slot("one-too-many"), MAX_WORKFLOWS);
        assert_eq!(metrics.slot("wf-3"), 3);
        metrics.task(MAX_WORKFLOWS, 0);
        metrics.task(3, 1);
        metrics.step(3, "http", 0);
        metrics.step_duration("http", Duration::from_millis(30));
        metrics.cost(3, 0.25);
        let mut out = Exposition(String::new());
        metrics.render(&mut out);
        let text = out.0;
        assert!(text.contains("holdfast_tasks_total{workflow=\"other\",status=\"submitted\"} 1"));
        assert!(text.contains("holdfast_tasks_total{workflow=\"wf-3\",status=\"succeeded\"} 1"));
        assert!(text.contains(
            "holdfast_task_steps_total{workflow=\"wf-3\",kind=\"http\",result=\"succeeded\"} 1"
        ));
        assert!(text.contains("holdfast_task_cost_usd_total{workflow=\"wf-3\"} 0.25"));
        assert!(text.contains("holdfast_task_step_duration_seconds_count{kind=\"http\"} 1"));
        assert!(text.contains("holdfast_task_takeovers_total 0"));
    }
}
