//! The one async driver of the pipeline: it carries out a [`Call`]'s actions for real.
//!
//! The pipeline decides; the driver starts attempts on a [`Transport`], enforces each
//! attempt's timeout, sleeps until wake-ups on the injected [`Clock`], cancels lost
//! hedges by dropping their futures, and feeds every result back. The shared
//! [`Registry`] is locked only while the pipeline decides, never across an await.

use std::future::Future;
use std::sync::Mutex;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use crate::clock::{Clock, Sleep};
use crate::fallback::TargetId;
use crate::outcome::{Outcome, TimeoutKind};
use crate::pipeline::{
    Action, AttemptId, Call, Event, GiveUp, PolicyEvent, Registry, StartAttempt, Verdict,
};

/// An error that knows its outcome class.
pub trait Classified {
    /// The class of this failure.
    fn outcome(&self) -> Outcome;
}

/// Sends one attempt somewhere: an LLM provider, a tool, a simulated target.
pub trait Transport: Send + Sync {
    /// A successful answer.
    type Response: Send;
    /// A failed attempt.
    type Error: Classified + Send;

    /// Makes one attempt. It should end within `start.timeout`; the driver cuts it off
    /// there in any case.
    fn attempt(
        &self,
        start: StartAttempt,
    ) -> impl Future<Output = Result<Self::Response, Self::Error>> + Send;

    /// The answer's length in output tokens, when known: a target's concurrency limit
    /// judges its latency per token, so that long answers are not taken for overload.
    fn output_tokens(&self, _response: &Self::Response) -> Option<u32> {
        None
    }
}

/// The answer of a successful call.
#[derive(Debug)]
pub struct Served<R> {
    /// The attempt that answered.
    pub attempt: AttemptId,
    /// The target it went to.
    pub target: TargetId,
    /// Its answer.
    pub response: R,
}

/// A call that ended without an answer.
#[derive(Debug)]
pub struct Failure<E> {
    /// Why the pipeline stopped.
    pub reason: GiveUp,
    /// The last attempt's outcome, if any attempt was made.
    pub outcome: Option<Outcome>,
    /// The last attempt's error, if the transport produced one (a timeout enforced by
    /// the driver has none).
    pub error: Option<E>,
}

/// A finished call: its result and everything the pipeline reported on the way.
#[derive(Debug)]
pub struct Run<R, E> {
    /// The answer or the failure.
    pub result: Result<Served<R>, Failure<E>>,
    /// Every event, in order.
    pub events: Vec<PolicyEvent>,
}

type AttemptResult<R, E> = (StartAttempt, Result<R, Option<E>>);

/// Runs `call` to its end.
pub async fn run<T: Transport>(
    mut call: Call,
    registry: &Mutex<Registry>,
    clock: &dyn Clock,
    transport: &T,
) -> Run<T::Response, T::Error> {
    let mut events = Vec::new();
    let mut running = FuturesUnordered::new();
    // The pipeline cancels attempts only as it ends a call (a lost hedge, or a call
    // that gave up): their futures are dropped with `running` when `run` returns, and
    // until then their results are ignored.
    let mut cancelled: Vec<AttemptId> = Vec::new();
    let mut wake: Option<Sleep> = None;
    let mut won: Option<(StartAttempt, T::Response)> = None;
    let mut last_error: Option<T::Error> = None;
    let mut actions = decide(&mut call, registry, clock, Event::Start);
    loop {
        for action in actions.drain(..) {
            match action {
                Action::Start(start) => running.push(attempt(transport, clock, start)),
                Action::WakeAt(at) => wake = Some(clock.sleep_until(at)),
                Action::Cancel(id) => cancelled.push(id),
                Action::Emit(event) => events.push(event),
                Action::Done(verdict) => {
                    return Run {
                        result: conclude(verdict, won, call.last_outcome(), last_error),
                        events,
                    };
                }
            }
        }
        let event = tokio::select! {
            Some((start, result)) = running.next() => {
                if cancelled.contains(&start.attempt) {
                    continue;
                }
                if let Ok(response) = &result
                    && let Some(tokens) = transport.output_tokens(response)
                {
                    call.note_output(start.attempt, tokens);
                }
                record(start, result, &mut won, &mut last_error)
            }
            () = async { if let Some(sleep) = wake.as_mut() { sleep.await } }, if wake.is_some() => {
                wake = None;
                Event::Timer
            }
            else => {
                // Nothing running and nothing to wait for, yet not done: a pipeline bug.
                // End the call rather than hang the caller.
                return Run { result: Err(Failure { reason: GiveUp::Unavailable, outcome: call.last_outcome(), error: last_error }), events };
            }
        };
        actions = decide(&mut call, registry, clock, event);
    }
}

fn decide(
    call: &mut Call,
    registry: &Mutex<Registry>,
    clock: &dyn Clock,
    event: Event,
) -> Vec<Action> {
    let mut registry = registry
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    call.handle(&mut registry, clock.now(), event)
}

async fn attempt<T: Transport>(
    transport: &T,
    clock: &dyn Clock,
    start: StartAttempt,
) -> AttemptResult<T::Response, T::Error> {
    let deadline = clock.now() + start.timeout;
    tokio::select! {
        result = transport.attempt(start) => (start, result.map_err(Some)),
        () = clock.sleep_until(deadline) => (start, Err(None)),
    }
}

fn record<R, E: Classified>(
    start: StartAttempt,
    result: Result<R, Option<E>>,
    won: &mut Option<(StartAttempt, R)>,
    last_error: &mut Option<E>,
) -> Event {
    let outcome = match result {
        Ok(response) => {
            *won = Some((start, response));
            Outcome::Ok
        }
        Err(Some(error)) => {
            let outcome = error.outcome();
            *last_error = Some(error);
            outcome
        }
        Err(None) => Outcome::Timeout(TimeoutKind::Total),
    };
    Event::Finished {
        attempt: start.attempt,
        outcome,
    }
}

fn conclude<R, E>(
    verdict: Verdict,
    won: Option<(StartAttempt, R)>,
    outcome: Option<Outcome>,
    error: Option<E>,
) -> Result<Served<R>, Failure<E>> {
    match (verdict, won) {
        (Verdict::Succeeded { attempt }, Some((start, response))) if start.attempt == attempt => {
            Ok(Served {
                attempt,
                target: start.target,
                response,
            })
        }
        (Verdict::Succeeded { .. }, _) => Err(Failure {
            reason: GiveUp::Unavailable,
            outcome,
            error,
        }),
        (Verdict::GaveUp { reason, last }, _) => Err(Failure {
            reason,
            outcome: last,
            error,
        }),
    }
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
