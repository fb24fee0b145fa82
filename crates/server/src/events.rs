//! The one consumer of a call's [`PolicyEvent`]s in the server: it turns them (plus
//! what the transport noted per attempt: tokens and error messages) into a
//! [`CallTrace`], the call's record for the ledger and the response headers.
//!
//! The decision: events are the only source of what happened. Nothing here re-derives
//! a retry or a fallback from outcomes; it reads the pipeline's own `Next` and `Skip`
//! decisions. Metrics (`metrics.rs`, `GET /metrics`) are written here too, from the
//! same events in the same pass, plus each request's final result as the ledger records
//! it ([`finished`]), so a number on a graph and a line in the ledger cannot disagree.
//!
//! Stream breaks and recovery calls happen after a call's events were read (the relay
//! owns the stream then); the relay and `recovery.rs` report them here
//! ([`stream_broke`], [`recovery_tried`]) as they happen, so this module stays the one
//! writer of the metrics.
//!
//! One exception to "events only": a breaker transition event triggers a read of that
//! breaker's current state for the `holdfast_breaker_state` gauge. Events reach this
//! module when their call ends, not when they happened, so setting the gauge to the
//! transition's `to` could leave a long call's stale "open" over a newer "closed".

use std::sync::Arc;

use holdfast_llm::Usage;
use holdfast_llm::price::cost_usd;
use holdfast_policy::breaker::{State, Transition};
use holdfast_policy::fallback::TargetId;
use holdfast_policy::pipeline::{AttemptEvent, Next, PolicyEvent, Skip, Verdict};
use holdfast_policy::{Instant, Outcome};
use serde::Serialize;

use crate::gateway::Inner;
use crate::ledger::Entry;
use crate::transport::AttemptNote;
use holdfast_metrics::{Metrics, RECOVERY_PATHS, SKIP_REASONS, skip_index};

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
    /// The route's index in the metrics, for costs settled later.
    #[serde(skip)]
    pub(crate) route: Option<usize>,
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
    /// For an attempt made to finish a broken stream: `continuation` or `splice`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) recovery: Option<&'static str>,
    /// What its span needs, when traces are exported.
    #[serde(skip)]
    pub(crate) span: Option<Box<holdfast_telemetry::AttemptSpan>>,
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
    /// The trace of a call on `route` from its events, at `now`, with the transport's
    /// notes; records the call's metrics on the way.
    pub(crate) fn from_events(
        gateway: &Inner,
        route: &str,
        events: &[PolicyEvent],
        notes: &[AttemptNote],
        now: Instant,
    ) -> CallTrace {
        let metrics = &gateway.metrics;
        let route = metrics.route(route);
        let mut trace = CallTrace {
            route,
            ..CallTrace::default()
        };
        let mut had_failure = false;
        let mut breakers_moved = false;
        for event in events {
            match event {
                PolicyEvent::Attempt(attempt) => {
                    had_failure |= !matches!(attempt.outcome, Outcome::Ok | Outcome::Cancelled);
                    trace.attempts.push(record(gateway, route, attempt, notes));
                }
                PolicyEvent::Skipped { target, reason } => {
                    metrics.skipped(index(*target), skip_index(*reason));
                    trace.skipped.push(skip(gateway, *target, *reason, now));
                }
                PolicyEvent::Finished { verdict, .. } => match verdict {
                    Verdict::Succeeded { .. } => {
                        trace.verdict = Some("succeeded");
                        if let Some(route) = route {
                            metrics.call(route, true, had_failure);
                        }
                    }
                    Verdict::GaveUp { reason, .. } => {
                        trace.verdict = Some("gave_up");
                        trace.give_up_reason = Some(reason.name());
                        if let Some(route) = route {
                            metrics.call(route, false, had_failure);
                            metrics.gave_up(route, *reason);
                        }
                    }
                },
                PolicyEvent::TargetBreaker { target, transition } => {
                    metrics.breaker_transition(index(*target), transition.from, transition.to);
                    log_transition(gateway, *target, transition);
                    breakers_moved = true;
                }
                PolicyEvent::AgentBreaker { transition, .. } => {
                    metrics.agent_breaker_transition(transition.to);
                }
                PolicyEvent::BudgetExhausted { target } => {
                    metrics.budget_exhausted(index(*target));
                }
                PolicyEvent::Hedged { target, .. } => metrics.hedged(index(*target)),
            }
        }
        if breakers_moved {
            breaker_states(gateway, events);
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
            let cost = price.map_or(0.0, |p| cost_usd(&p, &usage));
            if let Some(target) = gateway
                .targets
                .iter()
                .position(|t| t.name == attempt.target)
            {
                // Only what this settlement adds: a whole answer's usage was counted
                // when the call ended.
                gateway.metrics.tokens(
                    target,
                    usage.input_tokens.saturating_sub(attempt.input_tokens),
                    usage.output_tokens.saturating_sub(attempt.output_tokens),
                );
                if let Some(route) = self.route {
                    gateway.metrics.cost(route, target, cost - attempt.cost_usd);
                }
            }
            attempt.input_tokens = usage.input_tokens;
            attempt.output_tokens = usage.output_tokens;
            attempt.cost_usd = cost;
        }
    }
}

/// Counts a request whose ledger `entry` now holds its final result.
pub(crate) fn finished(metrics: &Metrics, entry: &Entry) {
    if let Some(route) = metrics.route(&entry.route) {
        metrics.request(route, entry.result, entry.latency_ms / 1000.0);
    }
}

/// Counts a stream served by `target` that broke with `outcome` after its first byte,
/// and tells the target's breaker: the pipeline recorded the attempt as a success at
/// its commit point, and a target whose streams keep breaking must still trip. The
/// break is the relay's event, not the pipeline's: its call had already ended.
pub(crate) fn stream_broke(gateway: &Inner, target: TargetId, outcome: Outcome) {
    gateway.metrics.stream_break(index(target), outcome);
    let mut registry = gateway.registry.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(transition) = registry.record_late_failure(target, gateway.clock.now(), outcome) {
        gateway
            .metrics
            .breaker_transition(index(target), transition.from, transition.to);
        gateway.metrics.breaker_state(index(target), transition.to);
        log_transition(gateway, target, &transition);
    }
}

/// Logs a target breaker's change of state, with why: an operator reading the log
/// sees every trip and every recovery, whatever caused it.
pub(crate) fn log_transition(gateway: &Inner, target: TargetId, transition: &Transition) {
    let name = gateway.target_name(target);
    let (from, to) = (transition.from.name(), transition.to.name());
    let why = transition.reason.describe();
    match transition.to {
        State::Open => tracing::warn!(target = %name, from, to, why, "breaker opened"),
        State::HalfOpen | State::Closed => {
            tracing::info!(target = %name, from, to, why, "breaker moved")
        }
    }
}

/// Counts a recovery call on `route` by `path` (`continuation` or `splice`) that
/// finished the answer (`ok`) or could not.
pub(crate) fn recovery_tried(gateway: &Inner, route: &str, path: &'static str, ok: bool) {
    let path = RECOVERY_PATHS.iter().position(|p| *p == path);
    if let (Some(route), Some(path)) = (gateway.metrics.route(route), path) {
        gateway.metrics.recovery(route, path, ok);
    }
}

/// Sets the breaker state gauge of every target whose breaker moved in `events` to
/// that breaker's state now.
fn breaker_states(gateway: &Inner, events: &[PolicyEvent]) {
    let registry = gateway.registry.lock().unwrap_or_else(|e| e.into_inner());
    for event in events {
        if let PolicyEvent::TargetBreaker { target, .. } = event {
            if let Some(breaker) = registry.target(*target).and_then(|h| h.breaker.as_ref()) {
                gateway
                    .metrics
                    .breaker_state(index(*target), breaker.state());
            }
        }
    }
}

/// The metrics index of a target.
fn index(target: TargetId) -> usize {
    target.0 as usize
}

fn record(
    gateway: &Inner,
    route: Option<usize>,
    event: &AttemptEvent,
    notes: &[AttemptNote],
) -> AttemptRecord {
    let note = notes.iter().find(|n| n.attempt == Some(event.attempt));
    let usage = note.and_then(|n| n.usage).unwrap_or_default();
    let price = gateway.target(event.target).map(|t| t.price);
    let cost = price.map_or(0.0, |p| cost_usd(&p, &usage));
    let metrics = &gateway.metrics;
    let target = index(event.target);
    metrics.attempt(target, event.outcome, event.retry);
    metrics.tokens(target, usage.input_tokens, usage.output_tokens);
    if let Some(route) = route {
        metrics.cost(route, target, cost);
    }
    match event.next {
        Next::Retry { after } => metrics.retry_delay(target, after),
        Next::FallBack { to, because } => metrics.fallback(target, index(to), because),
        Next::Done | Next::AwaitOther | Next::GaveUp(_) | Next::Cancelled => {}
    }
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
        cost_usd: cost,
        error: if event.outcome.is_ok() {
            None
        } else {
            note.and_then(|n| n.error.clone())
        },
        recovery: None,
        span: gateway.ledger.telemetry().map(|_| {
            let target = gateway.target(event.target);
            let registry = gateway.registry.lock().unwrap_or_else(|e| e.into_inner());
            let health = registry.target(event.target);
            Box::new(holdfast_telemetry::AttemptSpan {
                started: event.started,
                system: target.map_or(holdfast_llm::Format::OpenAi, |t| t.endpoint.format),
                model: target.map_or_else(|| "?".into(), |t| t.endpoint.model.as_str().into()),
                breaker: health.and_then(|h| h.breaker.as_ref()).map(|b| b.state()),
                finish: note.and_then(|n| n.finish),
                next: event.next,
            })
        }),
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

fn skip(gateway: &Inner, target: TargetId, reason: Skip, now: Instant) -> SkipRecord {
    let wait = match reason {
        Skip::BreakerOpen
        | Skip::TooLarge
        | Skip::Drained
        | Skip::AtCapacity
        | Skip::Throttled
        | Skip::Shed
        | Skip::Shifted => None,
        Skip::RetryAfter(until) => Some(until.saturating_duration_since(now)),
        Skip::RateLimited(wait) => Some(wait),
    };
    SkipRecord {
        target: gateway.target_name(target),
        reason: SKIP_REASONS[skip_index(reason)],
        wait_ms: wait.map(millis),
    }
}

/// Milliseconds with microsecond precision.
pub(crate) fn millis(d: std::time::Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}

/// Counts one of the workflow engine's task events (the engine's event sink, set up by
/// `Gateway::task_events`).
pub(crate) fn task_event(metrics: &Metrics, event: &holdfast_engine::TaskEvent) {
    use holdfast_engine::TaskEventKind;
    use holdfast_metrics::{
        CANCELLED, FAILED, STEP_EXHAUSTED, STEP_RETRYING, STEP_SUCCEEDED, SUBMITTED, SUCCEEDED,
    };

    metrics.observe_retrying(event);
    let tasks = &metrics.tasks;
    let slot = tasks.slot(&event.workflow);
    match &event.kind {
        TaskEventKind::Submitted => tasks.task(slot, SUBMITTED),
        TaskEventKind::StepSucceeded { kind, duration, .. } => {
            tasks.step(slot, kind, STEP_SUCCEEDED);
            tasks.step_duration(kind, *duration);
        }
        TaskEventKind::StepRetrying { kind, .. } => tasks.step(slot, kind, STEP_RETRYING),
        TaskEventKind::StepExhausted { kind, .. } => tasks.step(slot, kind, STEP_EXHAUSTED),
        TaskEventKind::Escalated { .. } => tasks.escalated(slot),
        TaskEventKind::EscalationResolved { .. } => tasks.escalation_resolved(slot),
        TaskEventKind::Compensated { .. } => tasks.compensated(slot),
        TaskEventKind::TakenOver { .. } => tasks.taken_over(),
        TaskEventKind::Succeeded { cost_usd, .. } => {
            tasks.task(slot, SUCCEEDED);
            tasks.cost(slot, *cost_usd);
        }
        TaskEventKind::Failed { cost_usd, .. } => {
            tasks.task(slot, FAILED);
            tasks.cost(slot, *cost_usd);
        }
        TaskEventKind::Cancelled => tasks.task(slot, CANCELLED),
    }
}
