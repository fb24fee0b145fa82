//! A call against a target's concurrency limit: take a slot, wait in line, or be shed.
//!
//! The limiter only answers; the call keeps its own place (a ticket, the queue it waits
//! in) so that it can leave the line when it starts elsewhere or ends, and so that a
//! registry handed over on a reload holds no slot of a call it will never hear from.

use std::time::Duration;

use super::dispatch::Blocked;
use super::{Action, Call, GiveUp, Registry, Skip};
use crate::clock::Instant;
use crate::concurrency::{Admission, Rank};
use crate::fallback::TargetId;

impl Call {
    /// Whether `target`'s concurrency limit lets the call start now.
    pub(super) fn capacity(
        &mut self,
        registry: &mut Registry,
        now: Instant,
        target: TargetId,
    ) -> Option<Blocked> {
        let rank = self.rank();
        let waited = match self.queued {
            Some((queued, since)) if queued == target => now.saturating_duration_since(since),
            Some(_) | None => Duration::ZERO,
        };
        let limiter = registry.target_mut(target)?.limiter.as_mut()?;
        // A draw only where a throttle decides, so that a run without one replays the
        // same jitter as before.
        let draw = if limiter.throttles() {
            self.rng.unit()
        } else {
            1.0
        };
        match limiter.check(now, rank, waited, draw) {
            Admission::Go => None,
            Admission::Wait(at) => Some(Blocked::Until(at, Skip::AtCapacity)),
            Admission::Throttled => {
                limiter.count_throttled();
                Some(Blocked::Skip(Skip::Throttled))
            }
            Admission::Shed(retry_after) => {
                let longest = self.shed.map_or(retry_after, |(_, r)| r.max(retry_after));
                self.shed = Some((target, longest));
                Some(Blocked::Skip(Skip::Shed))
            }
        }
    }

    /// The call is about to wait for link `link`, held there by `why`: when that is
    /// its concurrency limit, it takes its place in the queue. False when it was shed
    /// instead (the call is over).
    pub(super) fn wait_in_line(
        &mut self,
        registry: &mut Registry,
        now: Instant,
        link: usize,
        why: Skip,
        out: &mut Vec<Action>,
    ) -> bool {
        let target = self.request.chain.links()[link].target;
        if why != Skip::AtCapacity {
            self.leave_queue(registry);
            return true;
        }
        if self.queued.is_some_and(|(queued, _)| queued != target) {
            self.leave_queue(registry);
        }
        let ticket = *self.ticket.get_or_insert_with(|| registry.ticket());
        let rank = Rank {
            ticket,
            ..self.rank()
        };
        let Some(limiter) = registry.target_mut(target).and_then(|t| t.limiter.as_mut()) else {
            return true;
        };
        match limiter.enqueue(now, rank) {
            Ok(()) => {
                let since = match self.queued {
                    Some((_, since)) => since,
                    None => now,
                };
                self.queued = Some((target, since));
                true
            }
            Err(retry_after) => {
                self.queued = None;
                self.give_up(registry, now, GiveUp::Shed { retry_after }, out);
                false
            }
        }
    }

    /// Gives up because `target` would shed the call.
    pub(super) fn shed(
        &mut self,
        registry: &mut Registry,
        now: Instant,
        target: TargetId,
        retry_after: Duration,
        out: &mut Vec<Action>,
    ) {
        if let Some(limiter) = registry.target_mut(target).and_then(|t| t.limiter.as_mut()) {
            limiter.count_shed();
        }
        self.give_up(registry, now, GiveUp::Shed { retry_after }, out);
    }

    /// Takes a slot of `target`'s limiter for the attempt about to start, leaving any
    /// queue the call waited in. False if the target has no limiter.
    pub(super) fn take_slot(&mut self, registry: &mut Registry, target: TargetId) -> bool {
        let rank = self.rank();
        if self.queued.is_some_and(|(queued, _)| queued != target) {
            self.leave_queue(registry);
        }
        self.queued = None;
        match registry.target_mut(target).and_then(|t| t.limiter.as_mut()) {
            Some(limiter) => {
                limiter.start(rank);
                true
            }
            None => false,
        }
    }

    /// Leaves the queue the call waits in, if any.
    pub(super) fn leave_queue(&mut self, registry: &mut Registry) {
        let rank = self.rank();
        if let Some((target, _)) = self.queued.take()
            && let Some(limiter) = registry.target_mut(target).and_then(|t| t.limiter.as_mut())
        {
            limiter.leave(rank);
        }
    }

    /// The call's place in line; a call without a ticket yet ranks after every call of
    /// its priority and deadline that has one.
    fn rank(&self) -> Rank {
        Rank {
            priority: self.request.priority,
            deadline: self.request.deadline.instant().unwrap_or(Instant::MAX),
            ticket: self.ticket.unwrap_or(u64::MAX),
        }
    }
}
