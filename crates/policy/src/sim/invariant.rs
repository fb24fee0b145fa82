//! The names of the invariants, the limits a run is held to, and what breaking one
//! looks like.
//!
//! They live apart from the checks in [`check`](super::check) (which re-exports them)
//! so that a report, a test or the CLI can name and print violations without caring how
//! each is found. The one decision: a violation carries a human sentence with the call,
//! attempt and target involved, not a structured diff, because its reader is a person
//! replaying one seed.

use std::fmt;
use std::time::Duration;

use crate::budget;
use crate::clock::Instant;
#[cfg(doc)]
use crate::fallback::TargetId;

/// What a trace is held to: the parts of the policy the invariants refer to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// The global retry budget, if any.
    pub global_budget: Option<budget::Config>,
    /// Each target's own retry budget, indexed by [`TargetId`].
    pub target_budgets: Vec<Option<budget::Config>>,
    /// Each target's breaker's `half_open_probes`, indexed by [`TargetId`]; `None` when
    /// it has no breaker.
    pub half_open_probes: Vec<Option<u32>>,
    /// The backoff's cap.
    pub backoff_cap: Duration,
}

/// The invariants, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Invariant {
    /// Retries never exceed the retry budget (global, and each target's).
    RetryBudget,
    /// An open breaker admits only its half-open probes.
    BreakerProbes,
    /// No attempt starts on a target before its Retry-After has passed.
    RetryAfter,
    /// A non-retryable outcome is never retried on the same target.
    NonRetryable,
    /// No attempt outlives the call's deadline, and every call ends by it.
    Deadline,
    /// Backoff delays stay within `[0, cap]` unless a Retry-After set them.
    BackoffCap,
    /// Every call ends.
    CallEnds,
}

impl Invariant {
    /// A stable name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::RetryBudget => "retry_budget",
            Invariant::BreakerProbes => "breaker_probes",
            Invariant::RetryAfter => "retry_after",
            Invariant::NonRetryable => "non_retryable",
            Invariant::Deadline => "deadline",
            Invariant::BackoffCap => "backoff_cap",
            Invariant::CallEnds => "call_ends",
        }
    }
}

/// One broken invariant.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// Which invariant.
    pub invariant: Invariant,
    /// When, in simulated time.
    pub at: Instant,
    /// What exactly happened.
    pub detail: String,
}

impl Violation {
    pub(super) fn new(invariant: Invariant, at: Instant, detail: String) -> Self {
        Violation {
            invariant,
            at,
            detail,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at {}: {}",
            self.invariant.name(),
            self.at,
            self.detail
        )
    }
}
