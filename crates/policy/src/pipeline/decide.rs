//! Deciding after an attempt ends: done, retry here, fall back, wait for a hedge
//! sibling, or give up.

use std::time::Duration;

use super::{
    Action, AttemptId, Call, FallBackReason, GiveUp, InFlight, Next, PolicyEvent, Registry,
    Reopening, RetryOn, Verdict, Wake,
};
use crate::clock::Instant;
use crate::fallback::Needs;
use crate::outcome::{Health, Outcome, TimeoutKind};

impl Call {
    pub(super) fn finished(
        &mut self,
        registry: &mut Registry,
        now: Instant,
        attempt: AttemptId,
        outcome: Outcome,
        out: &mut Vec<Action>,
    ) {
        let Some(index) = self.in_flight.iter().position(|f| f.id == attempt) else {
            return; // cancelled earlier, or unknown: nothing to learn from it
        };
        let outcome = outcome.with_retry_after_at_most(self.request.policy.max_retry_after);
        let flight = self.in_flight.swap_remove(index);
        self.record_target(registry, now, &flight, outcome, out);
        self.last = Some(outcome);
        let target = self.request.chain.links()[flight.link].target;
        if outcome.is_ok() {
            registry.deposit(target, now);
            out.push(Action::Emit(PolicyEvent::Attempt(self.attempt_event(
                &flight,
                now,
                outcome,
                Next::Done,
            ))));
            return self.finish(registry, now, Verdict::Succeeded { attempt }, outcome, out);
        }
        if !self.in_flight.is_empty() {
            out.push(Action::Emit(PolicyEvent::Attempt(self.attempt_event(
                &flight,
                now,
                outcome,
                Next::AwaitOther,
            ))));
            return;
        }
        // A hedge sibling (if any) finished first: continue from this attempt's target.
        self.link = flight.link;
        let next = self.next_step(registry, now, &flight, outcome);
        if matches!(
            next,
            Next::FallBack {
                because: FallBackReason::BudgetExhausted,
                ..
            } | Next::GaveUp(GiveUp::BudgetExhausted)
        ) {
            out.push(Action::Emit(PolicyEvent::BudgetExhausted { target }));
        }
        out.push(Action::Emit(PolicyEvent::Attempt(
            self.attempt_event(&flight, now, outcome, next),
        )));
        match next {
            Next::Retry { after } => {
                self.waited = after;
                self.wake_at(now + after, Wake::Dispatch, out);
            }
            Next::FallBack { .. } => {
                self.used[self.link] = true;
                let failed = &self.request.chain.links()[flight.link];
                self.needs = self.needs.after(outcome, failed).unwrap_or(self.needs);
                self.link_to_fallback();
                self.dispatch(registry, now, out);
            }
            Next::GaveUp(reason) => self.give_up(registry, now, reason, out),
            Next::Done | Next::AwaitOther | Next::Cancelled => {}
        }
    }

    /// Records an attempt's outcome in its target's breaker, Retry-After and latency.
    pub(super) fn record_target(
        &mut self,
        registry: &mut Registry,
        now: Instant,
        flight: &InFlight,
        outcome: Outcome,
        out: &mut Vec<Action>,
    ) {
        let target = self.request.chain.links()[flight.link].target;
        let latency = now.saturating_duration_since(flight.started);
        let Some(health) = registry.target_mut(target) else {
            return;
        };
        if let Some(wait) = outcome.retry_after() {
            let wait = match &health.breaker {
                Some(breaker) if flight.probe => Reopening::grown(
                    wait,
                    health.reopening.refused(),
                    breaker.config().max_open_for,
                ),
                Some(_) | None => wait,
            };
            health.not_before = health.not_before.max(now + wait);
            health.reopening.hold();
        } else if outcome == Outcome::Cancelled {
            if flight.probe {
                health.reopening.release();
            }
        } else if flight.started >= health.not_before {
            // Only a call sent after the hold ended speaks for the target now: one sent
            // before the 429 that set it may answer late, and would let the herd in.
            health.reopening.reopen();
        }
        if outcome.health() == Health::Success {
            health.latency.record(now, latency);
        }
        health.recent.record(now, outcome.health());
        if flight.slot
            && let Some(limiter) = &mut health.limiter
        {
            limiter.finish(now, outcome, latency, flight.units.unwrap_or(1));
        }
        if let (Some(breaker), Some(permit)) = (&mut health.breaker, flight.permit)
            && let Some(transition) = breaker.record(now, permit, outcome, latency)
        {
            out.push(Action::Emit(PolicyEvent::TargetBreaker {
                target,
                transition,
            }));
        }
    }

    /// Retry here, fall back, or give up, after `outcome` on the current link.
    fn next_step(
        &mut self,
        registry: &Registry,
        now: Instant,
        flight: &InFlight,
        outcome: Outcome,
    ) -> Next {
        let policy = self.request.policy.clone();
        let deadline = self.request.deadline;
        let fallback = self.fallback_after(outcome, flight.link);
        let fall_back = |because| match fallback {
            Some(to) => Some(Next::FallBack {
                to: self.request.chain.links()[to].target,
                because,
            }),
            None => None,
        };
        if deadline.is_expired(now) {
            return Next::GaveUp(GiveUp::DeadlineExceeded);
        }
        if !outcome.is_retryable() {
            let reason = if outcome.may_fall_back() {
                GiveUp::Exhausted
            } else {
                GiveUp::NotRetryable
            };
            return fall_back(FallBackReason::NotRetryableHere).unwrap_or(Next::GaveUp(reason));
        }
        if is_silence(outcome)
            && let Some(next) = fall_back(FallBackReason::Silent)
        {
            return next;
        }
        if policy.retry_on == RetryOn::Next
            && self.later_link_available(registry, now, flight.link, outcome)
            && let Some(next) = fall_back(FallBackReason::RetryNext)
        {
            return next;
        }
        let tries = self.tries[flight.link];
        if tries >= policy.backoff.max_attempts() {
            return fall_back(FallBackReason::AttemptsExhausted)
                .unwrap_or(Next::GaveUp(GiveUp::Exhausted));
        }
        let retry_after = outcome.retry_after();
        if retry_after.is_some_and(|wait| wait > policy.fail_over_when_retry_after_exceeds)
            && let Some(next) = fall_back(FallBackReason::RetryAfterTooLong)
        {
            return next;
        }
        let target = self.request.chain.links()[flight.link].target;
        if !registry.can_retry(target, now) {
            return fall_back(FallBackReason::BudgetExhausted)
                .unwrap_or(Next::GaveUp(GiveUp::BudgetExhausted));
        }
        let delay = policy
            .backoff
            .delay(tries, self.previous_delay, &mut self.rng);
        let wait = policy.backoff.wait(delay, retry_after);
        if !deadline.allows(now, wait, policy.min_attempt_time) {
            return fall_back(FallBackReason::NoTimeToRetry)
                .unwrap_or(Next::GaveUp(GiveUp::DeadlineExceeded));
        }
        self.previous_delay = delay;
        Next::Retry { after: wait }
    }

    /// Whether a later link of the chain could take the call now after `outcome` on
    /// `link`: not drained, not held by a Retry-After, its breaker admitting.
    fn later_link_available(
        &self,
        registry: &Registry,
        now: Instant,
        link: usize,
        outcome: Outcome,
    ) -> bool {
        let chain = &self.request.chain;
        match self.needs.after(outcome, &chain.links()[link]) {
            Some(needs) => self.later_free(registry, now, link, needs),
            None => false,
        }
    }

    /// Whether a link after `link` that meets `needs` could take the call now.
    pub(super) fn later_free(
        &self,
        registry: &Registry,
        now: Instant,
        link: usize,
        needs: Needs,
    ) -> bool {
        let chain = &self.request.chain;
        let mut used = self.used.clone();
        let mut from = link;
        while let Some(next) = self.after(from, needs, &used) {
            let target = chain.links()[next].target;
            let free = registry.target(target).is_some_and(|h| {
                now >= h.drained_until
                    && now >= h.not_before
                    && h.reopening.probe_out(now).is_none()
                    && h.breaker.as_ref().is_none_or(|b| b.would_admit(now))
            });
            if free {
                return true;
            }
            used[next] = true;
            from = next;
        }
        false
    }

    /// The link a fallback after `outcome` on `link` would go to.
    fn fallback_after(&self, outcome: Outcome, link: usize) -> Option<usize> {
        let chain = &self.request.chain;
        let needs = self.needs.after(outcome, &chain.links()[link])?;
        self.after(link, needs, &self.used)
    }

    /// The first link after `from` not in `used` that meets `needs`; past the chain's
    /// end, the link load shifting passed over, while it is untried.
    pub(super) fn after(&self, from: usize, needs: Needs, used: &[bool]) -> Option<usize> {
        let chain = &self.request.chain;
        chain.next(from, needs, used).or_else(|| {
            let link = self.shifted?;
            let untried = link != from
                && !used.get(link).copied().unwrap_or(true)
                && self.tries.get(link) == Some(&0);
            (untried && needs.met_by(chain.get(link)?)).then_some(link)
        })
    }

    fn link_to_fallback(&mut self) {
        if let Some(next) = self.next_link(self.link) {
            self.link = next;
            self.previous_delay = Duration::ZERO;
        }
    }
}

/// Whether `outcome` is a target that did not answer in time: no connection, no first
/// byte, or an attempt that hung to its end. Waiting for it again costs a whole timeout
/// more; the next target of the chain, when there is one, costs one round trip.
fn is_silence(outcome: Outcome) -> bool {
    match outcome {
        Outcome::Timeout(kind) => match kind {
            TimeoutKind::Connect | TimeoutKind::FirstByte | TimeoutKind::Total => true,
            TimeoutKind::Idle => false,
        },
        Outcome::Ok
        | Outcome::RateLimited { .. }
        | Outcome::QuotaExhausted
        | Outcome::Overloaded { .. }
        | Outcome::ServerError
        | Outcome::Connection
        | Outcome::Auth
        | Outcome::BadRequest
        | Outcome::NotFound
        | Outcome::ContextOverflow
        | Outcome::ContentFiltered
        | Outcome::InvalidOutput
        | Outcome::StreamInterrupted
        | Outcome::Cancelled
        | Outcome::EgressDenied => false,
    }
}
