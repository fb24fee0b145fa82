//! Sending: pick the first target that can take an attempt now, or wait, or give up.

use std::time::Duration;

use super::{
    Action, Call, GiveUp, InFlight, PolicyEvent, Registry, RetryOn, Skip, StartAttempt, Wake,
};
use crate::breaker::{Admission, Permit};
use crate::clock::Instant;
use crate::fallback::TargetId;
use crate::rate_limit::Decision;

/// Why the current target cannot take an attempt now.
pub(super) enum Blocked {
    /// Not for this call now: go to the next target.
    Skip(Skip),
    /// Free again at this instant (a Retry-After or a rate limit): worth waiting for
    /// if no other target can take the call.
    Until(Instant, Skip),
}

impl Call {
    /// Starts an attempt on the current link, or on the first later link that can take
    /// one; waits or gives up when none can.
    pub(super) fn dispatch(
        &mut self,
        registry: &mut Registry,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let mut earliest: Option<(Instant, usize, Skip)> = None;
        let mut unavailable = false;
        self.shed = None;
        loop {
            if self.request.deadline.is_expired(now) {
                return self.give_up(registry, now, GiveUp::DeadlineExceeded, out);
            }
            let Some(link) = self.request.chain.get(self.link).cloned() else {
                return self.nothing_left(registry, now, earliest, unavailable, out);
            };
            if let Some(blocked) = self.blocked(registry, now, &link) {
                let reason = match blocked {
                    Blocked::Skip(reason) => reason,
                    Blocked::Until(at, reason) => {
                        if earliest.is_none_or(|(first, _, _)| at < first) {
                            earliest = Some((at, self.link, reason));
                        }
                        reason
                    }
                };
                unavailable |= reason != Skip::TooLarge;
                out.push(Action::Emit(PolicyEvent::Skipped {
                    target: link.target,
                    reason,
                }));
                if !self.advance() {
                    return self.nothing_left(registry, now, earliest, unavailable, out);
                }
                continue;
            }
            let timeout = self.request.deadline.cap(now, link.attempt_timeout);
            if self.request.deadline.instant().is_some()
                && timeout < self.request.policy.min_attempt_time
            {
                return self.give_up(registry, now, GiveUp::DeadlineExceeded, out);
            }
            if self.tries[self.link] > 0 && !registry.withdraw_retry(link.target, now) {
                out.push(Action::Emit(PolicyEvent::BudgetExhausted {
                    target: link.target,
                }));
                // A spent budget stops retries on this target, not the call: another
                // target may still serve it.
                if self.advance() {
                    continue;
                }
                return self.give_up(registry, now, GiveUp::BudgetExhausted, out);
            }
            acquire_limits(registry, now, link.target, self.request.tokens);
            let slot = self.take_slot(registry, link.target);
            let permit = self.admit(registry, now, link.target, out);
            self.launch(registry, now, permit, timeout, false, slot, out);
            return;
        }
    }

    /// Whether the target of `link` can take an attempt now. Spends nothing: the
    /// caller spends rate-limit units only once the attempt is certain.
    pub(super) fn blocked(
        &mut self,
        registry: &mut Registry,
        now: Instant,
        link: &crate::fallback::Link,
    ) -> Option<Blocked> {
        if !link.fits(self.request.tokens) {
            return Some(Blocked::Skip(Skip::TooLarge));
        }
        let health = registry.target_mut(link.target)?;
        if now < health.drained_until {
            return Some(Blocked::Skip(Skip::Drained));
        }
        if now < health.not_before {
            return Some(Blocked::Until(
                health.not_before,
                Skip::RetryAfter(health.not_before),
            ));
        }
        if let Some(until) = health.reopening.probe_out(now) {
            // The hold's probe is out: its answer decides, not the herd behind it.
            return Some(Blocked::Until(
                until.min(now + super::hold::POLL),
                Skip::RetryAfter(until),
            ));
        }
        if let Some(breaker) = &health.breaker
            && !breaker.would_admit(now)
        {
            // An open breaker is not worth waiting for: failing fast is its purpose.
            return Some(Blocked::Skip(Skip::BreakerOpen));
        }
        let tokens = self.request.tokens.unwrap_or(0);
        let limits = [
            (health.requests.as_mut(), 1),
            (health.tokens.as_mut(), tokens),
        ];
        for (limiter, cost) in limits {
            let Some(limiter) = limiter else { continue };
            if cost == 0 {
                continue;
            }
            match limiter.check(now, cost) {
                Decision::Granted => {}
                Decision::Wait(wait) => {
                    return Some(Blocked::Until(now + wait, Skip::RateLimited(wait)));
                }
                Decision::TooLarge => return Some(Blocked::Skip(Skip::TooLarge)),
            }
        }
        self.capacity(registry, now, link.target)
    }

    /// Moves to the next link a fallback may use; false if there is none.
    pub(super) fn advance(&mut self) -> bool {
        self.used[self.link] = true;
        match self.next_link(self.link) {
            Some(next) => {
                self.link = next;
                self.previous_delay = Duration::ZERO;
                true
            }
            None => false,
        }
    }

    /// The first unused link after `from` that meets what earlier failures require
    /// (after the chain's end, the link load shifting passed over).
    pub(super) fn next_link(&self, from: usize) -> Option<usize> {
        self.after(from, self.needs, &self.used)
    }

    /// On a route that retries on the next target, sends this new call past its first
    /// target with the probability its recent failures call for (`shift.rs`), when a
    /// later target can take it now; the target stays open to the call after them.
    pub(super) fn shift(&mut self, registry: &mut Registry, now: Instant, out: &mut Vec<Action>) {
        if self.request.policy.retry_on != RetryOn::Next {
            return;
        }
        let link = self.link;
        let Some(target) = self.request.chain.get(link).map(|l| l.target) else {
            return;
        };
        let share = registry.target(target).map_or(0.0, |h| h.recent.share(now));
        if share <= 0.0
            || !self.later_free(registry, now, link, self.needs)
            || !self.rng.chance(share)
        {
            return;
        }
        let Some(next) = self.next_link(link) else {
            return;
        };
        out.push(Action::Emit(PolicyEvent::Skipped {
            target,
            reason: Skip::Shifted,
        }));
        self.shifted = Some(link);
        self.link = next;
    }

    /// No target can take the call now: wait for the first that frees up in time, or
    /// give up saying why.
    fn nothing_left(
        &mut self,
        registry: &mut Registry,
        now: Instant,
        earliest: Option<(Instant, usize, Skip)>,
        unavailable: bool,
        out: &mut Vec<Action>,
    ) {
        let Some((at, link, why)) = earliest else {
            if let Some((target, retry_after)) = self.shed.take() {
                return self.shed(registry, now, target, retry_after, out);
            }
            let reason = if unavailable {
                GiveUp::Unavailable
            } else if self.attempts == 0 {
                GiveUp::TooLarge
            } else {
                GiveUp::Exhausted
            };
            return self.give_up(registry, now, reason, out);
        };
        let wait = at.saturating_duration_since(now);
        let policy = &self.request.policy;
        let fits = wait <= policy.backoff.config().cap
            && self
                .request
                .deadline
                .allows(now, wait, policy.min_attempt_time);
        if !fits {
            return self.give_up(registry, now, GiveUp::Unavailable, out);
        }
        if !self.wait_in_line(registry, now, link, why, out) {
            return;
        }
        self.link = link;
        // Links this pass only passed over (held, open, busy) were never tried: after
        // the wait they stay open to a fallback, or a context overflow on `link` would
        // find no larger target left although one was merely held a moment ago.
        for later in link..self.used.len() {
            if self.tries[later] == 0 {
                self.used[later] = false;
            }
        }
        self.used[link] = false;
        self.waited = self.waited.saturating_add(wait);
        self.wake_at(at, Wake::Dispatch, out);
    }

    fn admit(
        &mut self,
        registry: &mut Registry,
        now: Instant,
        target: TargetId,
        out: &mut Vec<Action>,
    ) -> Option<Permit> {
        let breaker = registry.target_mut(target)?.breaker.as_mut()?;
        let (admission, transition) = breaker.admit(now);
        if let Some(transition) = transition {
            out.push(Action::Emit(PolicyEvent::TargetBreaker {
                target,
                transition,
            }));
        }
        match admission {
            Admission::Admitted(permit) => Some(permit),
            // `blocked` checked `would_admit` under the same borrow of the registry.
            Admission::Rejected { .. } => None,
        }
    }

    #[allow(clippy::too_many_arguments)] // one attempt's every part, each used once
    fn launch(
        &mut self,
        registry: &mut Registry,
        now: Instant,
        permit: Option<Permit>,
        timeout: Duration,
        hedge: bool,
        slot: bool,
        out: &mut Vec<Action>,
    ) {
        let link = self.link;
        let target = self.request.chain.links()[link].target;
        let probe = registry
            .target_mut(target)
            .is_some_and(|health| health.reopening.claim(now, timeout));
        self.attempts += 1;
        self.next_id += 1;
        let flight = InFlight {
            id: super::AttemptId(self.next_id),
            link,
            number: self.attempts,
            retry: self.tries[link],
            started: now,
            permit,
            waited: if hedge {
                Duration::ZERO
            } else {
                std::mem::take(&mut self.waited)
            },
            hedge,
            probe,
            slot,
            units: None,
        };
        self.tries[link] += 1;
        self.used[link] = true;
        self.in_flight.push(flight);
        let fallback = self.next_link(link).is_some();
        out.push(Action::Start(StartAttempt {
            attempt: flight.id,
            target,
            link,
            timeout,
            number: flight.number,
            retry: flight.retry,
            hedge,
            fallback,
        }));
        if !hedge && !self.hedged {
            self.schedule_hedge(registry, now, flight.id, target, out);
        }
    }

    fn schedule_hedge(
        &mut self,
        registry: &Registry,
        now: Instant,
        attempt: super::AttemptId,
        target: TargetId,
        out: &mut Vec<Action>,
    ) {
        let Some(config) = self.request.policy.hedge else {
            return;
        };
        if self.next_link(self.link).is_none() {
            return;
        }
        let Some(health) = registry.target(target) else {
            return;
        };
        if let Some(p) = health
            .latency
            .percentile(config.after_percentile, config.min_samples)
        {
            self.wake_at(now + p.max(config.min_delay), Wake::Hedge(attempt), out);
        }
    }

    /// Starts a hedge beside `original` if it is still the only attempt running.
    pub(super) fn hedge(
        &mut self,
        registry: &mut Registry,
        now: Instant,
        original: super::AttemptId,
        out: &mut Vec<Action>,
    ) {
        if self.hedged || self.in_flight.len() != 1 || self.in_flight[0].id != original {
            return;
        }
        let home = self.link;
        // The first later link free now, not only the next: a hedge that gave up
        // because the next target's breaker is open would leave a hung call to its
        // deadline while a third target could answer it.
        let mut next = self.next_link(home);
        let link = loop {
            let Some(candidate) = next else {
                self.link = home;
                return;
            };
            let link = self.request.chain.links()[candidate].clone();
            self.link = candidate;
            if self.blocked(registry, now, &link).is_none() {
                break link;
            }
            next = self.after(candidate, self.needs, &self.used);
        };
        if !registry.hedges.try_hedge(now) {
            self.link = home;
            return;
        }
        acquire_limits(registry, now, link.target, self.request.tokens);
        self.hedged = true;
        let timeout = self.request.deadline.cap(now, link.attempt_timeout);
        let slot = self.take_slot(registry, link.target);
        let permit = self.admit(registry, now, link.target, out);
        out.push(Action::Emit(PolicyEvent::Hedged {
            original,
            target: link.target,
        }));
        self.launch(registry, now, permit, timeout, true, slot, out);
        self.link = home;
    }
}

/// Spends the rate-limit units of one attempt on `target`; `blocked` has checked they
/// are there, under the same borrow of the registry.
fn acquire_limits(registry: &mut Registry, now: Instant, target: TargetId, tokens: Option<u64>) {
    let Some(health) = registry.target_mut(target) else {
        return;
    };
    if let Some(limiter) = &mut health.requests {
        limiter.try_acquire(now, 1);
    }
    if let (Some(limiter), Some(tokens)) = (&mut health.tokens, tokens)
        && tokens > 0
    {
        limiter.try_acquire(now, tokens);
    }
}
