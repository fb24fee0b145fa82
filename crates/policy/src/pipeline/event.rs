//! What the pipeline tells the world: [`Action`]s for its driver to carry out and
//! [`PolicyEvent`]s that metrics, the attempt ledger, the journal and the simulator's
//! invariant checks consume. Events are the only source of those: nothing counts
//! behind the pipeline's back.

use std::sync::Arc;
use std::time::Duration;

use crate::breaker::Transition;
use crate::clock::Instant;
use crate::fallback::TargetId;
use crate::outcome::Outcome;

/// Identifies one attempt within a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttemptId(pub u32);

/// Instructions for the driver.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send the request to a target.
    Start(StartAttempt),
    /// Deliver [`Event::Timer`](super::Event::Timer) at this instant (replaces any
    /// earlier wake-up).
    WakeAt(Instant),
    /// Stop an attempt that is no longer needed; its result will be ignored.
    Cancel(AttemptId),
    /// Publish an event.
    Emit(PolicyEvent),
    /// The call is over.
    Done(Verdict),
}

/// One attempt to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartAttempt {
    /// The attempt's id, to report its outcome with.
    pub attempt: AttemptId,
    /// Where to send it.
    pub target: TargetId,
    /// Its index in the route's chain.
    pub link: usize,
    /// The longest it may take: the target's timeout capped by the deadline.
    pub timeout: Duration,
    /// 1 for the call's first attempt.
    pub number: u32,
    /// Attempts on this target before it in the same call: above 0, it is a retry.
    pub retry: u32,
    /// Whether it is a hedge running beside another attempt.
    pub hedge: bool,
    /// Whether a later target of the chain could take the call if this attempt is
    /// silent: only then is a whole answer's wait for its head worth cutting short.
    pub fallback: bool,
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// This attempt's answer is the call's answer.
    Succeeded {
        /// The winning attempt.
        attempt: AttemptId,
    },
    /// No answer.
    GaveUp {
        /// Why the pipeline stopped.
        reason: GiveUp,
        /// The last attempt's outcome, if any attempt was made.
        last: Option<Outcome>,
    },
}

/// Why a call gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GiveUp {
    /// The last outcome may not be retried nor sent elsewhere (a bad request).
    NotRetryable,
    /// Every eligible target was tried as often as allowed.
    Exhausted,
    /// The retry budget is spent: more retries would feed a retry storm.
    BudgetExhausted,
    /// The deadline passed, or the time left could not fit another attempt.
    DeadlineExceeded,
    /// Every target is unavailable (breaker open, Retry-After pending, rate limited).
    Unavailable,
    /// The calling agent's own breaker is open.
    AgentBreakerOpen,
    /// The request is larger than any target's context window or token limit.
    TooLarge,
    /// Every target that could take the call is at its concurrency limit and the call
    /// could not be served in time: the caller should come back after `retry_after`.
    Shed {
        /// When a new try has a fair chance.
        retry_after: Duration,
    },
}

impl GiveUp {
    /// A stable name for metrics and errors.
    pub fn name(self) -> &'static str {
        match self {
            GiveUp::NotRetryable => "not_retryable",
            GiveUp::Exhausted => "exhausted",
            GiveUp::BudgetExhausted => "budget_exhausted",
            GiveUp::DeadlineExceeded => "deadline_exceeded",
            GiveUp::Unavailable => "unavailable",
            GiveUp::AgentBreakerOpen => "agent_breaker_open",
            GiveUp::TooLarge => "too_large",
            GiveUp::Shed { .. } => "shed",
        }
    }
}

/// Why the pipeline passed over a target without sending to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Its breaker is open (or its half-open probes are all taken).
    BreakerOpen,
    /// It asked not to be called before this instant.
    RetryAfter(Instant),
    /// Its rate limit would make the call wait this long.
    RateLimited(Duration),
    /// The request does not fit its context window or token limit.
    TooLarge,
    /// An operator took it out of rotation ([`Registry::drain`](super::Registry::drain)).
    Drained,
    /// It is at its concurrency limit and others rank before this call.
    AtCapacity,
    /// Its client-side throttle refused the call: it keeps refusing work itself.
    Throttled,
    /// It is at its concurrency limit and the call cannot be served there in time.
    Shed,
    /// It fails enough of its recent calls that this call went to the next target
    /// instead ([`shift`](crate::shift)); it is still tried if no later one can take it.
    Shifted,
}

/// What the pipeline did after an attempt ended: why it moved on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// This attempt answered the call.
    Done,
    /// Retry on the same target after this wait.
    Retry {
        /// Backoff delay, raised to the target's Retry-After if longer.
        after: Duration,
    },
    /// Go to another target at once.
    FallBack {
        /// The target tried next.
        to: TargetId,
        /// Why not retry here.
        because: FallBackReason,
    },
    /// Another attempt of the call (a hedge) is still running.
    AwaitOther,
    /// The call gives up.
    GaveUp(GiveUp),
    /// The attempt was cancelled (it lost a hedge race or the call ended).
    Cancelled,
}

/// Why a call left a target for another instead of retrying on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallBackReason {
    /// The outcome cannot succeed on this target (auth, quota, context, filter).
    NotRetryableHere,
    /// The attempts allowed on this target are used up.
    AttemptsExhausted,
    /// The target's Retry-After is longer than the route's threshold.
    RetryAfterTooLong,
    /// Waiting to retry here would not fit in the time left.
    NoTimeToRetry,
    /// The retry budget refused a retry here.
    BudgetExhausted,
    /// The target did not answer in time (connect, first byte or a hang): another
    /// target answers sooner than a second wait on this one.
    Silent,
    /// The route retries on the next target (`retry_on = "next"`).
    RetryNext,
}

impl FallBackReason {
    /// A stable name for the ledger and metrics.
    pub fn name(self) -> &'static str {
        match self {
            FallBackReason::NotRetryableHere => "not_retryable_here",
            FallBackReason::AttemptsExhausted => "attempts_exhausted",
            FallBackReason::RetryAfterTooLong => "retry_after_too_long",
            FallBackReason::NoTimeToRetry => "no_time_to_retry",
            FallBackReason::BudgetExhausted => "budget_exhausted",
            FallBackReason::Silent => "silent",
            FallBackReason::RetryNext => "retry_next",
        }
    }
}

/// One finished attempt, for metrics, the ledger and the journal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttemptEvent {
    /// The attempt.
    pub attempt: AttemptId,
    /// Where it went.
    pub target: TargetId,
    /// 1 for the call's first attempt.
    pub number: u32,
    /// Retries on this target before it (0 for the first attempt there).
    pub retry: u32,
    /// When it started.
    pub started: Instant,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it took.
    pub latency: Duration,
    /// How long the call waited (backoff, Retry-After, rate limit) before it.
    pub waited: Duration,
    /// Whether it was a hedge.
    pub hedge: bool,
    /// What happened next.
    pub next: Next,
}

/// Everything the pipeline reports.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyEvent {
    /// An attempt ended.
    Attempt(AttemptEvent),
    /// A target was passed over without an attempt.
    Skipped {
        /// The target.
        target: TargetId,
        /// Why.
        reason: Skip,
    },
    /// A target's breaker changed state.
    TargetBreaker {
        /// The target.
        target: TargetId,
        /// The change.
        transition: Transition,
    },
    /// An agent's breaker changed state.
    AgentBreaker {
        /// The agent key.
        agent: Arc<str>,
        /// The change.
        transition: Transition,
    },
    /// A retry was refused because a budget was empty.
    BudgetExhausted {
        /// The target the retry would have gone to.
        target: TargetId,
    },
    /// A hedge attempt was started.
    Hedged {
        /// The attempt being hedged.
        original: AttemptId,
        /// The target of the hedge.
        target: TargetId,
    },
    /// The call ended.
    Finished {
        /// How.
        verdict: Verdict,
        /// Attempts made.
        attempts: u32,
        /// From the call's start to its end.
        elapsed: Duration,
    },
}
