//! The call pipeline as a pure state machine.
//!
//! A [`Call`] receives [`Event`]s (start, an attempt finished, a timer fired) with the
//! current instant and answers with [`Action`]s (start an attempt on a target with a
//! timeout, wake me at, cancel an attempt, emit an event, done). It never sleeps, reads
//! the clock or does I/O, so the simulator runs thousands of calls as plain function
//! calls and every decision can be asserted on. The async [`driver`](crate::driver)
//! carries out the actions for real.
//!
//! The decision after each failed attempt, in order: retry on the same target if the
//! class allows it, attempts remain, the retry budget has a token, the wait (backoff,
//! floored by Retry-After) fits the deadline and the Retry-After is not above the
//! route's fail-over threshold; otherwise fall back to the next eligible target in the
//! chain; otherwise give up with the last outcome. Before every attempt the target must
//! pass its breaker, its Retry-After, its rate limits, the context-window check and its
//! concurrency limit, or be skipped for the next one; when every target is at its
//! limit the call waits in the queue of the first, or is shed when it cannot be
//! served in time. On a route with `retry_on = "next"`, a share of new calls skips a
//! target that fails enough of its recent calls ([`shift`](crate::shift)) and comes
//! back to it only if no later target can take them.

mod admit;
mod decide;
mod dispatch;
mod event;
mod hold;
mod registry;

use std::sync::Arc;
use std::time::Duration;

pub use event::{
    Action, AttemptEvent, AttemptId, FallBackReason, GiveUp, Next, PolicyEvent, Skip, StartAttempt,
    Verdict,
};
pub use hold::Reopening;
pub use registry::{MAX_AGENTS, Registry, Settings, TargetHealth, TargetSettings};

use crate::backoff::Backoff;
use crate::breaker::Permit;
use crate::clock::Instant;
use crate::concurrency::Priority;
use crate::deadline::Deadline;
use crate::fallback::{Chain, Needs};
use crate::hedge;
use crate::outcome::{Health, Outcome};
use crate::rng::Rng;
use crate::setting::InvalidSetting;

/// A route's policy: how its calls retry, fail over and hedge.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Backoff between attempts on one target.
    pub backoff: Backoff,
    /// A Retry-After longer than this sends the call to the next target at once
    /// instead of waiting, when there is one.
    pub fail_over_when_retry_after_exceeds: Duration,
    /// Hedging, if enabled.
    pub hedge: Option<hedge::Config>,
    /// No attempt starts with less time than this before the deadline.
    pub min_attempt_time: Duration,
    /// The longest Retry-After honoured; a longer one counts as this long. > 0.
    pub max_retry_after: Duration,
    /// Where a retryable failure is retried.
    pub retry_on: RetryOn,
}

/// Where a retry goes after a retryable failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOn {
    /// The same target, after a backoff.
    Same,
    /// The next target of the chain that can take the call now, at once: the backoff
    /// protects the failing target, not a healthy one. When none can, the same target
    /// after a backoff, as with `Same`.
    Next,
}

impl Policy {
    /// A policy with `backoff` and the defaults for the rest.
    pub fn new(backoff: Backoff) -> Self {
        Policy {
            backoff,
            fail_over_when_retry_after_exceeds: Duration::from_secs(2),
            hedge: None,
            min_attempt_time: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(300),
            retry_on: RetryOn::Same,
        }
    }

    /// Checks the settings that are not checked by their own constructors.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        crate::setting::check_positive("max_retry_after", self.max_retry_after)?;
        if let Some(hedge) = &self.hedge {
            hedge.validate()?;
        }
        Ok(())
    }
}

/// What a call asks for.
#[derive(Debug, Clone)]
pub struct Request {
    /// The route's targets, in order of preference.
    pub chain: Arc<Chain>,
    /// The route's policy.
    pub policy: Arc<Policy>,
    /// When the caller stops waiting.
    pub deadline: Deadline,
    /// The calling agent, for its own breaker.
    pub agent: Option<Arc<str>>,
    /// The request's prompt tokens, when known: checked against context windows and
    /// charged to token rate limits.
    pub tokens: Option<u64>,
    /// Seeds the call's jitter.
    pub seed: u64,
    /// Its place when targets are at their concurrency limit.
    pub priority: Priority,
}

/// What happens to the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The call begins.
    Start,
    /// An attempt ended with this outcome.
    Finished {
        /// The attempt.
        attempt: AttemptId,
        /// How it ended.
        outcome: Outcome,
    },
    /// The instant of the last [`Action::WakeAt`] has come.
    Timer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    /// Try to send again (after backoff, a Retry-After or a rate-limit wait).
    Dispatch,
    /// Hedge this attempt if it is still running.
    Hedge(AttemptId),
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    id: AttemptId,
    link: usize,
    number: u32,
    retry: u32,
    started: Instant,
    permit: Option<Permit>,
    waited: Duration,
    hedge: bool,
    /// The first attempt after its target's Retry-After hold ended (`hold.rs`).
    probe: bool,
    /// Whether it holds a slot of its target's concurrency limiter.
    slot: bool,
    /// The answer's length in output tokens, when the transport knows it.
    units: Option<u32>,
}

/// One call's state.
#[derive(Debug, Clone)]
pub struct Call {
    request: Request,
    rng: Rng,
    started: Instant,
    /// The chain index attempts go to now.
    link: usize,
    used: Vec<bool>,
    needs: Needs,
    /// Attempts started on each link.
    tries: Vec<u32>,
    previous_delay: Duration,
    /// The wait before the next attempt, for its event.
    waited: Duration,
    attempts: u32,
    next_id: u32,
    in_flight: Vec<InFlight>,
    hedged: bool,
    wake: Option<(Instant, Wake)>,
    agent_permit: Option<Permit>,
    last: Option<Outcome>,
    done: bool,
    /// Handed out at the first wait for a slot; keeps the call's place in line.
    ticket: Option<u64>,
    /// The target whose queue the call waits in, and since when.
    queued: Option<(crate::fallback::TargetId, Instant)>,
    /// Set while sending when a target would shed the call: the Retry-After to give.
    shed: Option<(crate::fallback::TargetId, Duration)>,
    /// The link load shifting sent this call past (`shift.rs`): still open to it, after
    /// the later ones, while untried.
    shifted: Option<usize>,
}

impl Call {
    /// A call that has not started.
    pub fn new(request: Request) -> Self {
        let links = request.chain.len();
        Call {
            rng: Rng::seeded(request.seed),
            request,
            started: Instant::ZERO,
            link: 0,
            used: vec![false; links],
            needs: Needs::default(),
            tries: vec![0; links],
            previous_delay: Duration::ZERO,
            waited: Duration::ZERO,
            attempts: 0,
            next_id: 0,
            in_flight: Vec::new(),
            hedged: false,
            wake: None,
            agent_permit: None,
            last: None,
            done: false,
            ticket: None,
            queued: None,
            shed: None,
            shifted: None,
        }
    }

    /// The request.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Whether the call has ended.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The outcome of the last attempt that ended, if any.
    pub fn last_outcome(&self) -> Option<Outcome> {
        self.last
    }

    /// Attempts started so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Notes the length of attempt `attempt`'s answer in output tokens, before its
    /// [`Event::Finished`]: the concurrency limit judges latency per token.
    pub fn note_output(&mut self, attempt: AttemptId, tokens: u32) {
        if let Some(flight) = self.in_flight.iter_mut().find(|f| f.id == attempt) {
            flight.units = Some(tokens);
        }
    }

    /// Feeds one event at `now`; returns what to do.
    pub fn handle(&mut self, registry: &mut Registry, now: Instant, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        match event {
            Event::Start => self.start(registry, now, &mut out),
            Event::Finished { attempt, outcome } => {
                self.finished(registry, now, attempt, outcome, &mut out)
            }
            Event::Timer => self.timer(registry, now, &mut out),
        }
        out
    }

    fn start(&mut self, registry: &mut Registry, now: Instant, out: &mut Vec<Action>) {
        self.started = now;
        registry.hedges.record_call(now);
        if let Some(agent) = self.request.agent.clone()
            && let Some(breaker) = registry.agent_breaker(&agent)
        {
            let (admission, transition) = breaker.admit(now);
            if let Some(transition) = transition {
                out.push(Action::Emit(PolicyEvent::AgentBreaker {
                    agent,
                    transition,
                }));
            }
            match admission {
                crate::breaker::Admission::Admitted(permit) => self.agent_permit = Some(permit),
                crate::breaker::Admission::Rejected { .. } => {
                    return self.give_up(registry, now, GiveUp::AgentBreakerOpen, out);
                }
            }
        }
        self.shift(registry, now, out);
        self.dispatch(registry, now, out);
    }

    fn timer(&mut self, registry: &mut Registry, now: Instant, out: &mut Vec<Action>) {
        let Some((at, wake)) = self.wake else { return };
        if now < at {
            out.push(Action::WakeAt(at));
            return;
        }
        self.wake = None;
        match wake {
            Wake::Dispatch => self.dispatch(registry, now, out),
            Wake::Hedge(original) => self.hedge(registry, now, original, out),
        }
    }

    fn wake_at(&mut self, at: Instant, wake: Wake, out: &mut Vec<Action>) {
        self.wake = Some((at, wake));
        out.push(Action::WakeAt(at));
    }

    /// Ends the call without an answer.
    fn give_up(
        &mut self,
        registry: &mut Registry,
        now: Instant,
        reason: GiveUp,
        out: &mut Vec<Action>,
    ) {
        let verdict = Verdict::GaveUp {
            reason,
            last: self.last,
        };
        let outcome = self.last.unwrap_or(Outcome::Cancelled);
        self.finish(registry, now, verdict, outcome, out);
    }

    fn finish(
        &mut self,
        registry: &mut Registry,
        now: Instant,
        verdict: Verdict,
        outcome: Outcome,
        out: &mut Vec<Action>,
    ) {
        self.cancel_all(registry, now, out);
        self.leave_queue(registry);
        let elapsed = now.saturating_duration_since(self.started);
        let health = agent_health(verdict, outcome);
        if let (Some(agent), Some(permit)) = (self.request.agent.clone(), self.agent_permit.take())
            && let Some(breaker) = registry.agent_breaker(&agent)
            && let Some(transition) =
                breaker.record_health(now, permit, health, Duration::ZERO, None)
        {
            out.push(Action::Emit(PolicyEvent::AgentBreaker {
                agent,
                transition,
            }));
        }
        self.wake = None;
        self.done = true;
        out.push(Action::Emit(PolicyEvent::Finished {
            verdict,
            attempts: self.attempts,
            elapsed,
        }));
        out.push(Action::Done(verdict));
    }

    fn cancel_all(&mut self, registry: &mut Registry, now: Instant, out: &mut Vec<Action>) {
        for flight in std::mem::take(&mut self.in_flight) {
            out.push(Action::Cancel(flight.id));
            self.record_target(registry, now, &flight, Outcome::Cancelled, out);
            out.push(Action::Emit(PolicyEvent::Attempt(self.attempt_event(
                &flight,
                now,
                Outcome::Cancelled,
                Next::Cancelled,
            ))));
        }
    }

    fn attempt_event(
        &self,
        flight: &InFlight,
        now: Instant,
        outcome: Outcome,
        next: Next,
    ) -> AttemptEvent {
        AttemptEvent {
            attempt: flight.id,
            target: self.request.chain.links()[flight.link].target,
            number: flight.number,
            retry: flight.retry,
            started: flight.started,
            outcome,
            latency: now.saturating_duration_since(flight.started),
            waited: flight.waited,
            hedge: flight.hedge,
            next,
        }
    }
}

/// What a finished call says about the agent that made it. The agent's own faults
/// (requests no target accepts, answers that fail its schema, filtered content) count
/// against it; provider trouble is the target breakers' business, and an agent must not
/// be cut off because a provider is down.
fn agent_health(verdict: Verdict, last: Outcome) -> Health {
    match verdict {
        Verdict::Succeeded { .. } => Health::Success,
        Verdict::GaveUp { .. } => match last.health() {
            Health::Neutral if last != Outcome::Cancelled => Health::Failure,
            Health::Neutral | Health::Success | Health::Failure => Health::Neutral,
        },
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

#[cfg(test)]
#[path = "admit_tests.rs"]
mod admit_tests;

#[cfg(test)]
#[path = "shift_tests.rs"]
mod shift_tests;
