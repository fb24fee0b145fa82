//! The label tables of the metrics: every label value is known at startup, so each
//! family is a flat array and a label set is an index into it.

use holdfast_policy::Outcome;
use holdfast_policy::TimeoutKind;
use holdfast_policy::breaker::State;
use holdfast_policy::pipeline::{FallBackReason, GiveUp, Skip};

/// Upper bounds of the request duration buckets, in seconds.
pub(super) const REQUEST_BUCKETS: &[f64] =
    &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// Upper bounds of the retry delay buckets, in seconds.
pub(super) const DELAY_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

pub(super) const FALLBACK_REASONS: [FallBackReason; 7] = [
    FallBackReason::NotRetryableHere,
    FallBackReason::AttemptsExhausted,
    FallBackReason::RetryAfterTooLong,
    FallBackReason::NoTimeToRetry,
    FallBackReason::BudgetExhausted,
    FallBackReason::Silent,
    FallBackReason::RetryNext,
];

pub(super) const GIVE_UPS: [GiveUp; 8] = [
    GiveUp::NotRetryable,
    GiveUp::Exhausted,
    GiveUp::BudgetExhausted,
    GiveUp::DeadlineExceeded,
    GiveUp::Unavailable,
    GiveUp::AgentBreakerOpen,
    GiveUp::TooLarge,
    GiveUp::Shed {
        retry_after: std::time::Duration::ZERO,
    },
];

/// Skip reasons, by [`skip_index`]; the names the ledger uses.
pub const SKIP_REASONS: [&str; 9] = [
    "breaker_open",
    "retry_after",
    "rate_limited",
    "too_large",
    "drained",
    "at_capacity",
    "throttled",
    "shed",
    "shifted",
];

/// Breaker states, by their gauge value.
pub(super) const STATES: [State; 3] = [State::Closed, State::HalfOpen, State::Open];

pub(super) const TOKEN_KINDS: [&str; 2] = ["input", "output"];

/// How a broken stream was finished, by [`Metrics::recovery`]'s `path`.
pub const RECOVERY_PATHS: [&str; 2] = ["continuation", "splice"];

pub(super) const RECOVERY_RESULTS: [&str; 2] = ["ok", "failed"];

/// The position of `outcome` in [`Outcome::ALL`].
pub(super) fn outcome_index(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Ok => 0,
        Outcome::RateLimited { .. } => 1,
        Outcome::QuotaExhausted => 2,
        Outcome::Overloaded { .. } => 3,
        Outcome::ServerError => 4,
        Outcome::Timeout(TimeoutKind::Connect) => 5,
        Outcome::Timeout(TimeoutKind::FirstByte) => 6,
        Outcome::Timeout(TimeoutKind::Idle) => 7,
        Outcome::Timeout(TimeoutKind::Total) => 8,
        Outcome::Connection => 9,
        Outcome::Auth => 10,
        Outcome::BadRequest => 11,
        Outcome::NotFound => 12,
        Outcome::ContextOverflow => 13,
        Outcome::ContentFiltered => 14,
        Outcome::InvalidOutput => 15,
        Outcome::StreamInterrupted => 16,
        Outcome::Cancelled => 17,
        Outcome::EgressDenied => 18,
    }
}

pub(super) fn fallback_index(reason: FallBackReason) -> usize {
    match reason {
        FallBackReason::NotRetryableHere => 0,
        FallBackReason::AttemptsExhausted => 1,
        FallBackReason::RetryAfterTooLong => 2,
        FallBackReason::NoTimeToRetry => 3,
        FallBackReason::BudgetExhausted => 4,
        FallBackReason::Silent => 5,
        FallBackReason::RetryNext => 6,
    }
}

pub(super) fn give_up_index(reason: GiveUp) -> usize {
    match reason {
        GiveUp::NotRetryable => 0,
        GiveUp::Exhausted => 1,
        GiveUp::BudgetExhausted => 2,
        GiveUp::DeadlineExceeded => 3,
        GiveUp::Unavailable => 4,
        GiveUp::AgentBreakerOpen => 5,
        GiveUp::TooLarge => 6,
        GiveUp::Shed { .. } => 7,
    }
}

/// The position of `skip` in [`SKIP_REASONS`].
pub fn skip_index(skip: Skip) -> usize {
    match skip {
        Skip::BreakerOpen => 0,
        Skip::RetryAfter(_) => 1,
        Skip::RateLimited(_) => 2,
        Skip::TooLarge => 3,
        Skip::Drained => 4,
        Skip::AtCapacity => 5,
        Skip::Throttled => 6,
        Skip::Shed => 7,
        Skip::Shifted => 8,
    }
}

/// The gauge value of `state`: 0 closed, 1 half-open, 2 open.
pub(super) fn state_index(state: State) -> usize {
    match state {
        State::Closed => 0,
        State::HalfOpen => 1,
        State::Open => 2,
    }
}
