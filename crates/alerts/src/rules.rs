//! What each default rule computes: the signals it reads (as `/metrics` selectors) and
//! the expression over them.
//!
//! The decision: a signal is defined once, as a metric name, an optional label filter
//! and an aggregation, and both the in-process evaluator (`sample.rs` reads it from the
//! exposition text) and the Prometheus export (`promql.rs`) are generated from that one
//! definition. A rule therefore cannot mean one thing in the server and another in
//! Prometheus.

use holdfast_config::{AlertKind, AlertRule};

/// One number sampled from the server's own metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    Attempts,
    Retries,
    CallsWithFailure,
    SuccessAfterRetry,
    RetryDelaySum,
    RetryDelayCount,
    Requests,
    Exhausted,
    BreakersNotClosed,
    BudgetRemaining,
    TasksSubmitted,
    TasksFinished,
    Escalations,
    TaskCost,
    OldestRetryingTask,
    TasksSucceeded,
    StoreUp,
    ChaosFailing,
    QualityScore,
}

/// How a signal folds the series of its metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fold {
    /// The sum of every matching series.
    Sum,
    /// How many matching series are above zero.
    CountPositive,
    /// The lowest of the matching series: the worst task type.
    Min,
}

/// Where a signal comes from on `/metrics`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Selector {
    pub(crate) metric: &'static str,
    /// A label and the values it may take.
    pub(crate) label: Option<(&'static str, &'static [&'static str])>,
    pub(crate) fold: Fold,
    /// The label whose values are also kept apart (the task type), when the signal
    /// feeds a rule judged per value ([`Expr::WorstRatio`]).
    pub(crate) by: Option<&'static str>,
}

impl Signal {
    /// Every signal, by [`Signal::index`].
    pub(crate) const ALL: [Signal; 19] = [
        Signal::Attempts,
        Signal::Retries,
        Signal::CallsWithFailure,
        Signal::SuccessAfterRetry,
        Signal::RetryDelaySum,
        Signal::RetryDelayCount,
        Signal::Requests,
        Signal::Exhausted,
        Signal::BreakersNotClosed,
        Signal::BudgetRemaining,
        Signal::TasksSubmitted,
        Signal::TasksFinished,
        Signal::Escalations,
        Signal::TaskCost,
        Signal::OldestRetryingTask,
        Signal::TasksSucceeded,
        Signal::StoreUp,
        Signal::ChaosFailing,
        Signal::QualityScore,
    ];

    pub(crate) fn index(self) -> usize {
        match self {
            Signal::Attempts => 0,
            Signal::Retries => 1,
            Signal::CallsWithFailure => 2,
            Signal::SuccessAfterRetry => 3,
            Signal::RetryDelaySum => 4,
            Signal::RetryDelayCount => 5,
            Signal::Requests => 6,
            Signal::Exhausted => 7,
            Signal::BreakersNotClosed => 8,
            Signal::BudgetRemaining => 9,
            Signal::TasksSubmitted => 10,
            Signal::TasksFinished => 11,
            Signal::Escalations => 12,
            Signal::TaskCost => 13,
            Signal::OldestRetryingTask => 14,
            Signal::TasksSucceeded => 15,
            Signal::StoreUp => 16,
            Signal::ChaosFailing => 17,
            Signal::QualityScore => 18,
        }
    }

    pub(crate) fn selector(self) -> Selector {
        let sum = |metric| Selector {
            metric,
            label: None,
            fold: Fold::Sum,
            by: None,
        };
        match self {
            Signal::Attempts => sum("holdfast_attempts_total"),
            Signal::Retries => sum("holdfast_retries_total"),
            Signal::CallsWithFailure => sum("holdfast_calls_with_failure_total"),
            Signal::SuccessAfterRetry => sum("holdfast_success_after_retry_total"),
            Signal::RetryDelaySum => sum("holdfast_retry_delay_seconds_sum"),
            Signal::RetryDelayCount => sum("holdfast_retry_delay_seconds_count"),
            Signal::Requests => sum("holdfast_requests_total"),
            Signal::Exhausted => Selector {
                label: Some(("reason", &["exhausted"])),
                ..sum("holdfast_gave_up_total")
            },
            Signal::BreakersNotClosed => Selector {
                fold: Fold::CountPositive,
                ..sum("holdfast_breaker_state")
            },
            Signal::BudgetRemaining => sum("holdfast_retry_budget_remaining"),
            Signal::TasksSubmitted => Selector {
                label: Some(("status", &["submitted"])),
                ..sum("holdfast_tasks_total")
            },
            Signal::TasksFinished => Selector {
                label: Some(("status", &["succeeded", "failed"])),
                by: Some(TASK_TYPE),
                ..sum("holdfast_tasks_total")
            },
            Signal::TasksSucceeded => Selector {
                label: Some(("status", &["succeeded"])),
                by: Some(TASK_TYPE),
                ..sum("holdfast_tasks_total")
            },
            Signal::Escalations => sum("holdfast_escalations_total"),
            Signal::TaskCost => sum("holdfast_task_cost_usd_total"),
            // Refreshed by the alert loop (`metrics/alerting.rs`).
            Signal::OldestRetryingTask => sum("holdfast_task_oldest_retry_seconds"),
            // Absent from a gateway without a store: no data, which never fires.
            Signal::StoreUp => sum("holdfast_store_up"),
            // Absent until a scheduled experiment has run (`[chaos] schedule`).
            Signal::ChaosFailing => sum("holdfast_chaos_failing"),
            // Absent until a sampled answer was scored: no data, which never fires.
            Signal::QualityScore => Selector {
                fold: Fold::Min,
                ..sum("holdfast_quality_score")
            },
        }
    }
}

/// The label that names a task's type (its workflow) on the task metrics.
pub(crate) const TASK_TYPE: &str = "workflow";

/// What a rule computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expr {
    /// `increase(num) / increase(den)` over the window, when `den` grew by at least
    /// the rule's `min_volume`.
    Ratio { num: Signal, den: Signal },
    /// The latest value.
    Gauge(Signal),
    /// The least-squares line over the window, `horizon` ahead, while `spent` (the
    /// counter of what draws the signal down) grew over the window; otherwise the
    /// latest value. A retry budget is drawn down by retries only: without one, its
    /// balance falls only as earlier successes age out of its window (to its reserve,
    /// never below), and a line through that fall is a false alarm on an idle gateway
    /// or after a healthy load stops.
    Trend { signal: Signal, spent: Signal },
    /// The ratio over the window divided by the ratio over the baseline window before.
    Baseline { num: Signal, den: Signal },
    /// [`Expr::Ratio`] for each value of `den`'s `by` label (each task type), each
    /// with its own `min_volume`: the worst of them, so that one task type failing
    /// is not hidden by the others' volume.
    WorstRatio { num: Signal, den: Signal },
}

/// The expression of `kind`.
pub(crate) fn expr(kind: AlertKind) -> Expr {
    use Signal as S;
    match kind {
        AlertKind::RetryRate => Expr::Ratio {
            num: S::Retries,
            den: S::Attempts,
        },
        AlertKind::SuccessAfterRetry => Expr::Ratio {
            num: S::SuccessAfterRetry,
            den: S::CallsWithFailure,
        },
        AlertKind::RetryDelay => Expr::Ratio {
            num: S::RetryDelaySum,
            den: S::RetryDelayCount,
        },
        AlertKind::MaxRetriesExceeded => Expr::Ratio {
            num: S::Exhausted,
            den: S::Requests,
        },
        AlertKind::BreakerOpen => Expr::Gauge(S::BreakersNotClosed),
        AlertKind::RetryBudgetExhaustion => Expr::Trend {
            signal: S::BudgetRemaining,
            spent: S::Retries,
        },
        AlertKind::TaskRetryingLong => Expr::Gauge(S::OldestRetryingTask),
        AlertKind::StoreUnreachable => Expr::Gauge(S::StoreUp),
        AlertKind::ChaosFailed => Expr::Gauge(S::ChaosFailing),
        AlertKind::QualityScore => Expr::Gauge(S::QualityScore),
        AlertKind::EscalationRate => Expr::Baseline {
            num: S::Escalations,
            den: S::TasksSubmitted,
        },
        AlertKind::CostPerTask => Expr::Baseline {
            num: S::TaskCost,
            den: S::TasksFinished,
        },
        AlertKind::CompletionRate => Expr::WorstRatio {
            num: S::TasksSucceeded,
            den: S::TasksFinished,
        },
    }
}

/// A human summary of a reading, for the log, the dashboard and notices.
pub(crate) fn summary(rule: &AlertRule, value: f64, eta: Option<f64>) -> String {
    let t = rule.threshold;
    let window = human(rule.window.as_secs_f64());
    match rule.kind {
        AlertKind::RetryRate => format!(
            "retry rate {:.1}% over {window} (alert above {:.1}%)",
            value * 100.0,
            t * 100.0
        ),
        AlertKind::SuccessAfterRetry => format!(
            "success after retry {:.1}% over {window} (alert below {:.1}%)",
            value * 100.0,
            t * 100.0
        ),
        AlertKind::RetryDelay => format!(
            "mean retry delay {} over {window} (alert above {})",
            human(value),
            human(t)
        ),
        AlertKind::BreakerOpen => format!(
            "{value} target breaker(s) open or probing (alert above {t} for {})",
            human(rule.for_duration.as_secs_f64())
        ),
        AlertKind::MaxRetriesExceeded => format!(
            "{:.1}% of requests gave up with every target's retries exhausted over {window} \
             (alert above {:.1}%)",
            value * 100.0,
            t * 100.0
        ),
        AlertKind::RetryBudgetExhaustion => match eta {
            Some(eta) => format!(
                "retry budget empty in ~{} (projected {value:.1} retries left in {}; alert \
                 below {t})",
                human(eta),
                human(rule.horizon.as_secs_f64())
            ),
            None => format!(
                "retry budget projected at {value:.1} retries in {} (alert below {t})",
                human(rule.horizon.as_secs_f64())
            ),
        },
        AlertKind::TaskRetryingLong => format!(
            "a task has been retrying for {} (alert above {})",
            human(value),
            human(t)
        ),
        AlertKind::StoreUnreachable => format!(
            "the store is {} (holdfast_store_up {value}; alert below {t} for {})",
            if value < t {
                "unreachable or cannot write"
            } else {
                "up"
            },
            human(rule.for_duration.as_secs_f64())
        ),
        AlertKind::EscalationRate => format!(
            "escalations per task {value:.2}× their {} baseline over {window} (alert above {t}×)",
            human(rule.baseline_window.as_secs_f64())
        ),
        AlertKind::CostPerTask => format!(
            "cost per task {value:.2}× its {} baseline over {window} (alert above {t}×)",
            human(rule.baseline_window.as_secs_f64())
        ),
        AlertKind::CompletionRate => format!(
            "{:.1}% of the finished tasks of the lowest task type succeeded over {window} \
             (alert below {:.1}%)",
            value * 100.0,
            t * 100.0
        ),
        AlertKind::ChaosFailed => format!(
            "{value} scheduled experiment(s) failed their latest run (alert above {t}; \
             the verdicts are on the dashboard's game-day panel)"
        ),
        AlertKind::QualityScore => format!(
            "the lowest task type's mean score of its recent production samples is {value:.2} \
             (alert below {t:.2})"
        ),
    }
}

/// `"250ms"`, `"4.5s"`, `"4m"`, `"2h"`: durations as people read them.
pub(crate) fn human(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "?".to_owned();
    }
    if seconds < 1.0 {
        format!("{:.0}ms", seconds * 1000.0)
    } else if seconds < 60.0 {
        trim(format!("{seconds:.1}"), "s")
    } else if seconds < 3600.0 {
        trim(format!("{:.1}", seconds / 60.0), "m")
    } else {
        trim(format!("{:.1}", seconds / 3600.0), "h")
    }
}

fn trim(number: String, unit: &str) -> String {
    let number = number.strip_suffix(".0").unwrap_or(&number);
    format!("{number}{unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_indexed_in_order() {
        for (i, signal) in Signal::ALL.iter().enumerate() {
            assert_eq!(signal.index(), i);
        }
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(human(0.25), "250ms");
        assert_eq!(human(4.0), "4s");
        assert_eq!(human(240.0), "4m");
        assert_eq!(human(5400.0), "1.5h");
    }
}
