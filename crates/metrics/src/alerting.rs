//! The gauges the alert rules needed and the counters did not have: the global retry
//! budget's balance (for the predictive `retry_budget_exhaustion` rule) and the age of
//! the oldest task still retrying a step (for `task_retrying_long`).
//!
//! The decision: both are functions of time (budget deposits age out of its window; a
//! retrying task just gets older), so no event marks their changes. The alert loop
//! computes them with its clock before each sample and stores them here; they are
//! shown as of that evaluation, at most one `alerts.eval_interval` old, and not at all
//! while alerts are off (or, for the budget, while the global budget is disabled).
//! Events only tell [`Retrying`] which tasks are retrying; the loop stamps each with
//! the time it first saw it, so ages are late by at most one interval.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use holdfast_engine::{TaskEvent, TaskEventKind};
use holdfast_policy::Instant;

use super::Metrics;
use super::cells::Exposition;

/// Tasks tracked at most: beyond this, new retrying tasks are not tracked (the oldest,
/// which decide the gauge, already are).
const MAX_RETRYING: usize = 100_000;

/// The tasks whose last step attempt failed and went back to the retry queue.
#[derive(Default)]
pub(crate) struct Retrying {
    /// Task id → when the alert loop first saw it retrying (`None`: not yet).
    since: Mutex<HashMap<String, Option<Instant>>>,
}

/// A float gauge that starts unset (NaN: not shown).
pub(crate) struct Gauge(AtomicU64);

impl Default for Gauge {
    fn default() -> Self {
        Gauge(AtomicU64::new(f64::NAN.to_bits()))
    }
}

impl Metrics {
    /// Notes whether `event` starts or ends a task's retrying (from `events.rs`).
    pub fn observe_retrying(&self, event: &TaskEvent) {
        let mut since = self
            .retrying
            .since
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match &event.kind {
            TaskEventKind::StepRetrying { .. } => {
                if since.len() < MAX_RETRYING {
                    since.entry(event.task_id.clone()).or_insert(None);
                }
            }
            TaskEventKind::StepSucceeded { .. }
            | TaskEventKind::StepExhausted { .. }
            | TaskEventKind::Succeeded { .. }
            | TaskEventKind::Failed { .. }
            | TaskEventKind::Cancelled => {
                since.remove(&event.task_id);
            }
            TaskEventKind::Submitted
            | TaskEventKind::Escalated { .. }
            | TaskEventKind::EscalationResolved { .. }
            | TaskEventKind::Compensated { .. }
            | TaskEventKind::TakenOver { .. } => {}
        }
    }

    /// Stamps newly retrying tasks with `now` and sets the oldest one's age as the
    /// `holdfast_task_oldest_retry_seconds` gauge (0 with none).
    pub fn age_retrying(&self, now: Instant) {
        let oldest = {
            let mut since = self
                .retrying
                .since
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            since.values_mut().map(|at| *at.get_or_insert(now)).min()
        };
        let age = oldest.map_or(0.0, |at| now.saturating_duration_since(at).as_secs_f64());
        self.oldest_retry.0.store(age.to_bits(), Ordering::Relaxed);
    }

    /// The global retry budget now holds `balance` retries (`None`: no global budget).
    pub fn set_retry_budget(&self, balance: Option<f64>) {
        let value = balance.filter(|b| b.is_finite()).unwrap_or(f64::NAN);
        self.retry_budget
            .0
            .store(value.to_bits(), Ordering::Relaxed);
    }

    pub(super) fn render_alert_gauges(&self, out: &mut Exposition) {
        let budget = f64::from_bits(self.retry_budget.0.load(Ordering::Relaxed));
        if !budget.is_nan() {
            out.family(
                "holdfast_retry_budget_remaining",
                "gauge",
                "Retries the global retry budget allows now, as of the last alert evaluation.",
            );
            out.sample("holdfast_retry_budget_remaining", &[], budget);
        }
        let oldest = f64::from_bits(self.oldest_retry.0.load(Ordering::Relaxed));
        if !oldest.is_nan() {
            out.family(
                "holdfast_task_oldest_retry_seconds",
                "gauge",
                "How long the oldest task still retrying a step has been retrying (0 with \
                 none), as of the last alert evaluation.",
            );
            out.sample("holdfast_task_oldest_retry_seconds", &[], oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    fn event(task: &str, kind: TaskEventKind) -> TaskEvent {
        TaskEvent {
            trace: holdfast_engine::trace::TaskTrace::of(task, None),
            task_id: task.to_owned(),
            workflow: Arc::from("wf"),
            kind,
        }
    }

    fn retrying() -> TaskEventKind {
        TaskEventKind::StepRetrying {
            step: "s".into(),
            kind: "http",
            attempt: 1,
            class: "server_error",
            delay: Duration::from_secs(1),
        }
    }

    #[test]
    fn the_oldest_retrying_task_ages_until_it_moves_on() {
        let metrics = Metrics::new(["r"], ["t"]);
        assert!(
            !metrics
                .render()
                .contains("holdfast_task_oldest_retry_seconds")
        );
        let at = |s: u64| Instant::from_origin(Duration::from_secs(s));
        metrics.observe_retrying(&event("a", retrying()));
        metrics.age_retrying(at(10));
        metrics.observe_retrying(&event("b", retrying()));
        metrics.observe_retrying(&event("a", retrying()));
        metrics.age_retrying(at(70));
        assert!(
            metrics
                .render()
                .contains("holdfast_task_oldest_retry_seconds 60\n")
        );
        metrics.observe_retrying(&event(
            "a",
            TaskEventKind::Failed {
                duration: Duration::ZERO,
                cost_usd: 0.0,
            },
        ));
        metrics.age_retrying(at(100));
        assert!(
            metrics
                .render()
                .contains("holdfast_task_oldest_retry_seconds 30\n")
        );
        metrics.observe_retrying(&event("b", TaskEventKind::Cancelled));
        metrics.age_retrying(at(110));
        assert!(
            metrics
                .render()
                .contains("holdfast_task_oldest_retry_seconds 0\n")
        );
    }
}
