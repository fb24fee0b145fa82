//! The one consumer of a call's [`PolicyEvent`]s in the server: it turns them (plus
//! what the transport noted per attempt: tokens and error messages) into a
//! [`CallTrace`], the call's record for the ledger and the response headers.
//!
//! The decision: events are the only source of what happened. Nothing here re-derives
//! a retry or a fallback from outcomes; it reads the pipeline's own `Next` and `Skip`
//! decisions. Metrics and the dashboard (issue 6) will consume the same events through
//! this module, so a number on a graph and a line in the ledger cannot disagree.

use std::sync::Arc;

use holdfast_llm::Usage;
use holdfast_llm::price::cost_usd;
use holdfast_policy::Instant;
use holdfast_policy::pipeline::{AttemptEvent, Next, PolicyEvent, Skip, Verdict};
use serde::Serialize;

use crate::gateway::Inner;
use crate::transport::AttemptNote;

/// What one call did, attempt by attempt.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct CallTrace {
    /// Every attempt, in the order they ended.
    pub(crate) attempts: Vec<AttemptRecord>,
    /// Targets passed over without an attempt.
    pub(crate) skipped: Vec<SkipRecord>,
    /// `succeeded` or `gave_up`; `None` when the pipeline did not run.
    pub(crate) verdict: Option<&'static str>,
    /// Why the call gave up, if it did.
    pub(crate) give_up_reason: Option<&'static str>,
}

/// One attempt in the ledger.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AttemptRecord {
    pub(crate) number: u32,
    pub(crate) target: Arc<str>,
    /// [`Outcome::class`](holdfast_policy::Outcome::class).
    pub(crate) outcome: &'static str,
    pub(crate) latency_ms: f64,
    pub(crate) waited_ms: f64,
    pub(crate) hedge: bool,
    pub(crate) next: NextRecord,
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
    pub(crate) cost_usd: f64,
    /// The provider's (redacted) message, for failed attempts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

/// What the pipeline did after an attempt.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub(crate) enum NextRecord {
    Done,
    Retry { after_ms: f64 },
    FallBack { to: Arc<str>, reason: &'static str },
    AwaitOther,
    GaveUp { reason: &'static str },
    Cancelled,
}

/// A target passed over.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SkipRecord {
    pub(crate) target: Arc<str>,
    /// `breaker_open`, `retry_after`, `rate_limited` or `too_large`.
    pub(crate) reason: &'static str,
    /// How long the target asked to wait, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) wait_ms: Option<f64>,
}

impl CallTrace {
    /// The trace of a call from its events, at `now`, with the transport's notes.
    pub(crate) fn from_events(
        gateway: &Inner,
        events: &[PolicyEvent],
        notes: &[AttemptNote],
        now: Instant,
    ) -> CallTrace {
        let mut trace = CallTrace::default();
        for event in events {
            match event {
                PolicyEvent::Attempt(attempt) => {
                    trace.attempts.push(record(gateway, attempt, notes))
                }
                PolicyEvent::Skipped { target, reason } => {
                    trace.skipped.push(skip(gateway, *target, *reason, now))
                }
                PolicyEvent::Finished { verdict, .. } => match verdict {
                    Verdict::Succeeded { .. } => trace.verdict = Some("succeeded"),
                    Verdict::GaveUp { reason, .. } => {
                        trace.verdict = Some("gave_up");
                        trace.give_up_reason = Some(reason.name());
                    }
                },
                PolicyEvent::TargetBreaker { .. }
                | PolicyEvent::AgentBreaker { .. }
                | PolicyEvent::BudgetExhausted { .. }
                | PolicyEvent::Hedged { .. } => {}
            }
        }
        trace
    }

    /// Attempts made.
    pub(crate) fn attempt_count(&self) -> u32 {
        u32::try_from(self.attempts.len()).unwrap_or(u32::MAX)
    }

    /// The sum of the attempts' costs.
    pub(crate) fn cost_usd(&self) -> f64 {
        self.attempts.iter().map(|a| a.cost_usd).sum()
    }

    /// Records the usage of attempt `number` once its stream has ended.
    pub(crate) fn settle(&mut self, gateway: &Inner, number: u32, usage: Usage) {
        if let Some(attempt) = self.attempts.iter_mut().find(|a| a.number == number) {
            let price = gateway
                .targets
                .iter()
                .find(|t| t.name == attempt.target)
                .map(|t| t.price);
            attempt.input_tokens = usage.input_tokens;
            attempt.output_tokens = usage.output_tokens;
            attempt.cost_usd = price.map_or(0.0, |p| cost_usd(&p, &usage));
        }
    }
}

fn record(gateway: &Inner, event: &AttemptEvent, notes: &[AttemptNote]) -> AttemptRecord {
    let note = notes.iter().find(|n| n.attempt == Some(event.attempt));
    let usage = note.and_then(|n| n.usage).unwrap_or_default();
    let price = gateway.target(event.target).map(|t| t.price);
    AttemptRecord {
        number: event.number,
        target: gateway.target_name(event.target),
        outcome: event.outcome.class(),
        latency_ms: millis(event.latency),
        waited_ms: millis(event.waited),
        hedge: event.hedge,
        next: next(gateway, event.next),
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        cost_usd: price.map_or(0.0, |p| cost_usd(&p, &usage)),
        error: if event.outcome.is_ok() {
            None
        } else {
            note.and_then(|n| n.error.clone())
        },
    }
}

fn next(gateway: &Inner, next: Next) -> NextRecord {
    match next {
        Next::Done => NextRecord::Done,
        Next::Retry { after } => NextRecord::Retry {
            after_ms: millis(after),
        },
        Next::FallBack { to, because } => NextRecord::FallBack {
            to: gateway.target_name(to),
            reason: because.name(),
        },
        Next::AwaitOther => NextRecord::AwaitOther,
        Next::GaveUp(reason) => NextRecord::GaveUp {
            reason: reason.name(),
        },
        Next::Cancelled => NextRecord::Cancelled,
    }
}

fn skip(
    gateway: &Inner,
    target: holdfast_policy::fallback::TargetId,
    reason: Skip,
    now: Instant,
) -> SkipRecord {
    let (reason, wait) = match reason {
        Skip::BreakerOpen => ("breaker_open", None),
        Skip::RetryAfter(until) => ("retry_after", Some(until.saturating_duration_since(now))),
        Skip::RateLimited(wait) => ("rate_limited", Some(wait)),
        Skip::TooLarge => ("too_large", None),
    };
    SkipRecord {
        target: gateway.target_name(target),
        reason,
        wait_ms: wait.map(millis),
    }
}

/// Milliseconds with microsecond precision.
pub(crate) fn millis(d: std::time::Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}
