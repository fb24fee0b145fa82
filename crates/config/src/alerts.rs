//! The validated alert settings, and the catalogue of default rules.
//!
//! The decision: the rules are a closed set ([`AlertKind`]) whose production defaults
//! live here, next to every other default, so that `config check` can refuse an
//! unknown rule name and the server, `holdfast alerts export-prometheus` and the docs
//! read one table. What each rule *computes* (which counters, which comparison) is the
//! server's business (`holdfast-server`'s `alerts` module); this crate only knows the
//! knobs.

use std::time::Duration;

pub use crate::schema::Severity;
use crate::secret::Secret;

/// `[alerts]`, validated.
#[derive(Debug, Clone)]
pub struct Alerts {
    /// Whether rules are evaluated at all.
    pub enabled: bool,
    /// How often rules are evaluated and metrics sampled; 10 ms ..= 5 min, and at most
    /// every enabled rule's window.
    pub eval_interval: Duration,
    /// Where notices are POSTed.
    pub webhooks: Vec<Webhook>,
    /// Every rule, in [`AlertKind::ALL`] order, disabled ones included.
    pub rules: Vec<AlertRule>,
}

impl Default for Alerts {
    fn default() -> Self {
        Alerts {
            enabled: true,
            eval_interval: Duration::from_secs(5),
            webhooks: Vec::new(),
            rules: AlertKind::ALL
                .iter()
                .map(|k| AlertRule::default_for(*k))
                .collect(),
        }
    }
}

/// A webhook receiver.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// An `http` or `https` URL with a host.
    pub url: String,
    /// The bearer token sent with each notice, if any; `None` also when its variable
    /// was missing and missing secrets were allowed.
    pub secret: Option<Secret>,
}

/// The default rules: the closed set of things holdfast alerts on.
///
/// | name | value | fires when | for | window | severity |
/// |---|---|---|---|---|---|
/// | `retry_rate` | retries ÷ attempts | > 0.10 | 5m | 5m | warning |
/// | `success_after_retry` | answered after a failure ÷ calls with a failure | < 0.80 | 5m | 5m | warning |
/// | `retry_delay` | mean wait chosen before a retry | > 60s | 5m | 5m | warning |
/// | `breaker_open` | targets whose breaker is not closed | > 0 | 5m | — | critical |
/// | `max_retries_exceeded` | calls given up with every target exhausted ÷ requests | > 0.05 | 5m | 5m | critical |
/// | `retry_budget_exhaustion` | global retry budget projected `horizon` (5m) ahead | < 1 retry | 1m | 5m | warning |
/// | `task_retrying_long` | age of the oldest task still retrying a step | > 30m | 0s | — | warning |
/// | `escalation_rate` | escalations ÷ tasks submitted, over its 1h baseline | > 2× | 10m | 10m | warning |
/// | `cost_per_task` | task cost ÷ tasks finished, over its 1h baseline | > 2× | 10m | 10m | warning |
/// | `completion_rate` | tasks succeeded ÷ tasks finished (succeeded or failed) | < 0.90 | 10m | 10m | critical |
/// | `store_unreachable` | `holdfast_store_up` (1 up, 0 down) | < 0.5 | 1m | — | critical |
/// | `chaos_failed` | scheduled experiments whose latest run failed (`[chaos] schedule`) | > 0 | 0s | — | critical |
/// | `quality_score` | the lowest task type's mean score of its recent production samples | < 0.70 | 10m | — | warning |
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertKind {
    /// Share of attempts that were retries.
    RetryRate,
    /// Share of calls with a failed attempt that were answered in the end.
    SuccessAfterRetry,
    /// Mean wait before a retry.
    RetryDelay,
    /// Targets whose breaker is open (or probing).
    BreakerOpen,
    /// Share of requests given up because every target's attempts ran out.
    MaxRetriesExceeded,
    /// The global retry budget, projected ahead (a predictive rule).
    RetryBudgetExhaustion,
    /// A task retrying one step for too long.
    TaskRetryingLong,
    /// Escalations per task above their baseline.
    EscalationRate,
    /// Cost per task above its baseline.
    CostPerTask,
    /// Share of finished tasks that succeeded, per task type (the worst workflow's).
    CompletionRate,
    /// The store cannot be reached or cannot write.
    StoreUnreachable,
    /// A scheduled chaos experiment (a game day) failed its latest run.
    ChaosFailed,
    /// A task type's production answers score below the threshold.
    QualityScore,
}

/// What kind of value a rule reads, which decides the fields that apply to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A ratio of two counters' increase over `window`; `min_volume` applies.
    Rate,
    /// A current value; no window.
    Gauge,
    /// A linear projection over `window`, `horizon` ahead.
    Trend,
    /// A rate over `window` divided by the same rate over `baseline_window` before it.
    Baseline,
}

impl AlertKind {
    /// Every rule, in the order they are shown.
    pub const ALL: [AlertKind; 13] = [
        AlertKind::RetryRate,
        AlertKind::SuccessAfterRetry,
        AlertKind::RetryDelay,
        AlertKind::BreakerOpen,
        AlertKind::MaxRetriesExceeded,
        AlertKind::RetryBudgetExhaustion,
        AlertKind::TaskRetryingLong,
        AlertKind::EscalationRate,
        AlertKind::CostPerTask,
        AlertKind::CompletionRate,
        AlertKind::StoreUnreachable,
        AlertKind::ChaosFailed,
        AlertKind::QualityScore,
    ];

    /// Its name in the file, the log, notices and the Prometheus export.
    pub fn name(self) -> &'static str {
        match self {
            AlertKind::RetryRate => "retry_rate",
            AlertKind::SuccessAfterRetry => "success_after_retry",
            AlertKind::RetryDelay => "retry_delay",
            AlertKind::BreakerOpen => "breaker_open",
            AlertKind::MaxRetriesExceeded => "max_retries_exceeded",
            AlertKind::RetryBudgetExhaustion => "retry_budget_exhaustion",
            AlertKind::TaskRetryingLong => "task_retrying_long",
            AlertKind::EscalationRate => "escalation_rate",
            AlertKind::CostPerTask => "cost_per_task",
            AlertKind::CompletionRate => "completion_rate",
            AlertKind::StoreUnreachable => "store_unreachable",
            AlertKind::ChaosFailed => "chaos_failed",
            AlertKind::QualityScore => "quality_score",
        }
    }

    /// The rule called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<AlertKind> {
        AlertKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// What kind of value it reads.
    pub fn shape(self) -> Shape {
        match self {
            AlertKind::RetryRate
            | AlertKind::SuccessAfterRetry
            | AlertKind::RetryDelay
            | AlertKind::MaxRetriesExceeded
            | AlertKind::CompletionRate => Shape::Rate,
            AlertKind::BreakerOpen
            | AlertKind::TaskRetryingLong
            | AlertKind::StoreUnreachable
            | AlertKind::ChaosFailed
            | AlertKind::QualityScore => Shape::Gauge,
            AlertKind::RetryBudgetExhaustion => Shape::Trend,
            AlertKind::EscalationRate | AlertKind::CostPerTask => Shape::Baseline,
        }
    }

    /// Whether its threshold is a duration (written `"60s"`) rather than a number.
    pub fn threshold_is_duration(self) -> bool {
        matches!(self, AlertKind::RetryDelay | AlertKind::TaskRetryingLong)
    }
}

/// One rule with its settings resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    /// Which rule.
    pub kind: AlertKind,
    /// Whether it is evaluated.
    pub enabled: bool,
    /// The value compared against (seconds for duration thresholds).
    pub threshold: f64,
    /// How long the condition must hold before firing.
    pub for_duration: Duration,
    /// The window of rates and trends (unused by gauges).
    pub window: Duration,
    /// How urgent it is.
    pub severity: Severity,
    /// The fewest events in the window for a rate to count.
    pub min_volume: f64,
    /// How far ahead a trend is projected (trend rules only).
    pub horizon: Duration,
    /// The window before `window` a baseline rule compares with (baseline rules only).
    pub baseline_window: Duration,
}

const MINUTE: Duration = Duration::from_secs(60);

impl AlertRule {
    /// The production default of `kind`.
    pub fn default_for(kind: AlertKind) -> AlertRule {
        let rule = |threshold: f64, for_minutes: u64, window_minutes: u64, severity| AlertRule {
            kind,
            enabled: true,
            threshold,
            for_duration: MINUTE * for_minutes as u32,
            window: MINUTE * window_minutes as u32,
            severity,
            min_volume: 10.0,
            horizon: MINUTE * 5,
            baseline_window: MINUTE * 60,
        };
        match kind {
            AlertKind::RetryRate => AlertRule {
                min_volume: 20.0,
                ..rule(0.10, 5, 5, Severity::Warning)
            },
            AlertKind::SuccessAfterRetry => rule(0.80, 5, 5, Severity::Warning),
            AlertKind::RetryDelay => AlertRule {
                min_volume: 5.0,
                ..rule(60.0, 5, 5, Severity::Warning)
            },
            AlertKind::BreakerOpen => rule(0.0, 5, 5, Severity::Critical),
            AlertKind::MaxRetriesExceeded => AlertRule {
                min_volume: 20.0,
                ..rule(0.05, 5, 5, Severity::Critical)
            },
            // `for` 1m: a trend over noisy traffic dips; a minute of it is a trend.
            AlertKind::RetryBudgetExhaustion => rule(1.0, 1, 5, Severity::Warning),
            AlertKind::TaskRetryingLong => rule(1800.0, 0, 5, Severity::Warning),
            // A minute: longer than a database failover or restart takes, so that a
            // planned switchover does not page, while submissions meanwhile get 503.
            AlertKind::StoreUnreachable => rule(0.5, 1, 5, Severity::Critical),
            AlertKind::EscalationRate | AlertKind::CostPerTask => {
                rule(2.0, 10, 10, Severity::Warning)
            }
            AlertKind::CompletionRate => rule(0.90, 10, 10, Severity::Critical),
            // At once: a failed game day is a finished verdict, not a noisy reading.
            AlertKind::ChaosFailed => rule(0.0, 0, 5, Severity::Critical),
            // Ten minutes: the score is a mean of the last 50 samples, which a few bad
            // answers move; a quarter of an hour of them is a regression.
            AlertKind::QualityScore => rule(0.70, 10, 10, Severity::Warning),
        }
    }

    /// Whether the rule fires above its threshold (`true`) or below it.
    pub fn fires_above(&self) -> bool {
        !matches!(
            self.kind,
            AlertKind::SuccessAfterRetry
                | AlertKind::RetryBudgetExhaustion
                | AlertKind::CompletionRate
                | AlertKind::StoreUnreachable
                | AlertKind::QualityScore
        )
    }
}
