//! Sending: pick the first target that can take an attempt now, or wait, or give up.

use std::time::Duration;

use super::{Action, Call, GiveUp, InFlight, PolicyEvent, Registry, Skip, StartAttempt, Wake};
use crate::breaker::{Admission, Permit};
use crate::clock::Instant;
use crate::fallback::TargetId;
use crate::rate_limit::Decision;

/// Why the current target cannot take an attempt now.
enum Blocked {
    /// Never for this call: go to the next target.
    Skip(Skip),
    /// Not before this instant; waiting is an option if no other target can.
    Until(Instant, Skip),
}

impl Call {
    /// Starts an attempt on the current link, or on the first later link that can take
    /// one; waits or gives up when none can.
    pub(super) fn dispatch(&mut self, registry: &mut Registry, now: Instant, out: &mut Vec<Action>) {
        let mut earliest: Option<Instant> = None;
        loop {
            if self.request.deadline.is_expired(now) {
                return self.give_up(registry, now, GiveUp::DeadlineExceeded, out);
            }
            let Some(link) = self.request.chain.get(self.link).cloned() else {
                return self.nothing_left(registry, now, earliest, out);
            };
            match self.blocked(registry, now, link.target, &link) {
                None => {}
                Some(Blocked::Skip(reason)) => {
                    out.push(Action::Emit(PolicyEvent::Skipped { target: link.target, reason }));
                    if !self.advance() {
                        return self.nothing_left(registry, now, earliest, out);
                    }
                    continue;
                }
                Some(Blocked::Until(at, reason)) => {
                    out.push(Action::Emit(PolicyEvent::Skipped { target: link.target, reason }));
                    let stay = self.link;
                    if self.advance() {
                        earliest = Some(earliest.map_or(at, |e| e.min(at)));
                        continue;
                    }
                    // Nowhere else to go: wait for this target if the deadline allows.
                    self.link = stay;
                    return self.wait_or_give_up(registry, now, at, out);
                }
            }
            if self.attempts > 0 && !registry.withdraw_retry(link.target, now) {
                out.push(Action::Emit(PolicyEvent::BudgetExhausted { target: link.target }));
                return self.give_up(registry, now, GiveUp::BudgetExhausted, out);
            }
            let timeout = self.request.deadline.cap(now, link.attempt_timeout);
            if self.request.deadline.instant().is_some() && timeout < self.request.policy.min_attempt_time {
                return self.give_up(registry, now, GiveUp::DeadlineExceeded, out);
            }
            let permit = self.admit(registry, now, link.target, out);
            self.launch(registry, now, permit, timeout, false, out);
            return;
        }
    }

    /// Whether the target of the current link can take an attempt now.
    fn blocked(&mut self, registry: &mut Registry, now: Instant, target: TargetId, link: &crate::fallback::Link) -> Option<Blocked> {
        if !link.fits(self.request.tokens) {
            return Some(Blocked::Skip(Skip::TooLarge));
        }
        let health = registry.target_mut(target)?;
        if now < health.not_before {
            return Some(Blocked::Until(health.not_before, Skip::RetryAfter(health.not_before)));
        }
        if let Some(breaker) = &health.breaker
            && !breaker.would_admit(now)
        {
            let until = breaker.open_until().unwrap_or(now);
            return Some(Blocked::Until(until.max(now), Skip::BreakerOpen));
        }
        if let Some(limiter) = &mut health.requests {
            match limiter.try_acquire(now, 1) {
                Decision::Granted => {}
                Decision::Wait(wait) => return Some(Blocked::Until(now + wait, Skip::RateLimited(wait))),
                Decision::TooLarge => return Some(Blocked::Skip(Skip::TooLarge)),
            }
        }
        let tokens = self.request.tokens.unwrap_or(0);
        if let Some(limiter) = &mut health.tokens
            && tokens > 0
        {
            let decision = limiter.try_acquire(now, tokens);
            if decision != Decision::Granted
                && let Some(requests) = &mut health.requests
            {
                requests.refund(now, 1);
            }
            match decision {
                Decision::Granted => {}
                Decision::Wait(wait) => return Some(Blocked::Until(now + wait, Skip::RateLimited(wait))),
                Decision::TooLarge => return Some(Blocked::Skip(Skip::TooLarge)),
            }
        }
        None
    }

    /// Moves to the next link a fallback may use; false if there is none.
    pub(super) fn advance(&mut self) -> bool {
        self.used[self.link] = true;
        match self.next_link(self.link) {
            Some(next) => {
                self.link = next;
                self.tries_on_link = 0;
                self.previous_delay = Duration::ZERO;
                true
            }
            None => false,
        }
    }

    /// The first unused link after `from` that meets what earlier failures require.
    pub(super) fn next_link(&self, from: usize) -> Option<usize> {
        self.request.chain.next(from, self.needs, &self.used)
    }

    fn nothing_left(&mut self, registry: &mut Registry, now: Instant, earliest: Option<Instant>, out: &mut Vec<Action>) {
        match earliest {
            // Every target is only temporarily blocked: wait for the first to free up.
            Some(at) if self.attempts == 0 => {
                if let Some(first) = self.first_unblocking_link(registry, at) {
                    self.used.iter_mut().for_each(|u| *u = false);
                    self.link = first;
                }
                self.wait_or_give_up(registry, now, at, out)
            }
            Some(_) => self.give_up(registry, now, GiveUp::Unavailable, out),
            None if self.attempts == 0 => self.give_up(registry, now, GiveUp::TooLarge, out),
            None => self.give_up(registry, now, GiveUp::Exhausted, out),
        }
    }

    fn first_unblocking_link(&self, registry: &Registry, at: Instant) -> Option<usize> {
        self.request.chain.links().iter().position(|link| {
            registry.target(link.target).is_some_and(|t| {
                t.not_before <= at && t.breaker.as_ref().is_none_or(|b| b.open_until().is_none_or(|u| u <= at))
            }) && link.fits(self.request.tokens)
        })
    }

    fn wait_or_give_up(&mut self, registry: &mut Registry, now: Instant, at: Instant, out: &mut Vec<Action>) {
        let wait = at.saturating_duration_since(now);
        let policy = &self.request.policy;
        let too_long = self.attempts > 0 && wait > policy.fail_over_when_retry_after_exceeds.max(policy.backoff.config().cap);
        if too_long || !self.request.deadline.allows(now, wait, policy.min_attempt_time) {
            let reason = if too_long { GiveUp::Unavailable } else { GiveUp::DeadlineExceeded };
            return self.give_up(registry, now, reason, out);
        }
        self.waited = self.waited.saturating_add(wait);
        self.wake_at(at.max(now), Wake::Dispatch, out);
    }

    fn admit(&mut self, registry: &mut Registry, now: Instant, target: TargetId, out: &mut Vec<Action>) -> Option<Permit> {
        let breaker = registry.target_mut(target)?.breaker.as_mut()?;
        let (admission, transition) = breaker.admit(now);
        if let Some(transition) = transition {
            out.push(Action::Emit(PolicyEvent::TargetBreaker { target, transition }));
        }
        match admission {
            Admission::Admitted(permit) => Some(permit),
            // `blocked` checked `would_admit` under the same borrow of the registry.
            Admission::Rejected { .. } => None,
        }
    }

    fn launch(&mut self, registry: &mut Registry, now: Instant, permit: Option<Permit>, timeout: Duration, hedge: bool, out: &mut Vec<Action>) {
        let link = self.link;
        let target = self.request.chain.links()[link].target;
        self.attempts += 1;
        self.next_id += 1;
        let flight = InFlight {
            id: super::AttemptId(self.next_id),
            link,
            number: self.attempts,
            retry: if hedge { 0 } else { self.tries_on_link },
            started: now,
            permit,
            waited: if hedge { Duration::ZERO } else { std::mem::take(&mut self.waited) },
            hedge,
        };
        if !hedge {
            self.tries_on_link += 1;
        }
        self.used[link] = true;
        self.in_flight.push(flight);
        out.push(Action::Start(StartAttempt {
            attempt: flight.id,
            target,
            link,
            timeout,
            number: flight.number,
            hedge,
        }));
        if !hedge && !self.hedged {
            self.schedule_hedge(registry, now, flight.id, target, out);
        }
    }

    fn schedule_hedge(&mut self, registry: &Registry, now: Instant, attempt: super::AttemptId, target: TargetId, out: &mut Vec<Action>) {
        let Some(config) = self.request.policy.hedge else { return };
        if self.next_link(self.link).is_none() {
            return;
        }
        let Some(health) = registry.target(target) else { return };
        if let Some(p) = health.latency.percentile(config.after_percentile, config.min_samples) {
            self.wake_at(now + p.max(config.min_delay), Wake::Hedge(attempt), out);
        }
    }

    /// Starts a hedge beside `original` if it is still the only attempt running.
    pub(super) fn hedge(&mut self, registry: &mut Registry, now: Instant, original: super::AttemptId, out: &mut Vec<Action>) {
        if self.hedged || self.in_flight.len() != 1 || self.in_flight[0].id != original {
            return;
        }
        let home = self.link;
        let Some(next) = self.next_link(home) else { return };
        let link = self.request.chain.links()[next].clone();
        self.link = next;
        let free = self.blocked(registry, now, link.target, &link).is_none();
        if !free || !registry.hedges.try_hedge(now) {
            self.link = home;
            return;
        }
        self.hedged = true;
        let timeout = self.request.deadline.cap(now, link.attempt_timeout);
        let permit = self.admit(registry, now, link.target, out);
        out.push(Action::Emit(PolicyEvent::Hedged { original, target: link.target }));
        self.launch(registry, now, permit, timeout, true, out);
        self.link = home;
    }
}
