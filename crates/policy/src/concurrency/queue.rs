//! The bounded wait queue in front of a target at its concurrency limit.
//!
//! Calls wait in rank order: interactive before batch, then the earlier deadline, then
//! the earlier arrival. The queue holds no callbacks: the pipeline is pure, so a waiting
//! call looks again at its wake-up and is let through when no more than the free slots
//! rank ahead of it. A full queue makes room for a better-ranked call by dropping its
//! worst; a call whose entry is gone, or who stopped looking (its client left), is shed.

use std::time::Duration;

use super::Priority;
use crate::clock::Instant;

/// One waiting call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Waiter {
    rank: Rank,
    /// When the call last looked: an entry not looked at for long is a call that ended
    /// without saying so (its client left), and is dropped.
    seen: Instant,
}

/// The order calls are served in: smaller first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rank {
    /// Interactive before batch.
    pub priority: Priority,
    /// The earlier deadline first; none is last.
    pub deadline: Instant,
    /// The earlier arrival first; unique per call.
    pub ticket: u64,
}

/// Calls waiting for a slot, in rank order.
#[derive(Debug, Clone, Default)]
pub struct WaitQueue {
    waiters: Vec<Waiter>,
    capacity: usize,
}

/// Why a call could not join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

impl WaitQueue {
    /// A queue of at most `capacity` calls.
    pub fn new(capacity: usize) -> Self {
        WaitQueue {
            waiters: Vec::new(),
            capacity,
        }
    }

    /// Calls waiting.
    pub fn len(&self) -> usize {
        self.waiters.len()
    }

    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    /// The priority of the best-ranked waiting call.
    pub fn best(&self) -> Option<Priority> {
        self.waiters.first().map(|w| w.rank.priority)
    }

    /// How many waiting calls rank before `rank` (itself excluded).
    pub fn ahead_of(&self, rank: Rank) -> usize {
        self.waiters.partition_point(|w| w.rank < rank)
    }

    /// Whether the call of `ticket` is waiting.
    pub fn contains(&self, rank: Rank) -> bool {
        self.waiters.binary_search_by(|w| w.rank.cmp(&rank)).is_ok()
    }

    /// Adds the call, or notes that it looked again; when full, drops the worst-ranked
    /// call to make room if it ranks after this one, or refuses this one.
    pub fn join(&mut self, now: Instant, rank: Rank) -> Result<(), Full> {
        match self.waiters.binary_search_by(|w| w.rank.cmp(&rank)) {
            Ok(index) => {
                self.waiters[index].seen = now;
                Ok(())
            }
            Err(index) => {
                if self.waiters.len() >= self.capacity {
                    if index >= self.waiters.len() {
                        return Err(Full);
                    }
                    self.waiters.pop();
                }
                self.waiters.insert(index, Waiter { rank, seen: now });
                Ok(())
            }
        }
    }

    /// Removes the call, if it waits.
    pub fn leave(&mut self, rank: Rank) {
        if let Ok(index) = self.waiters.binary_search_by(|w| w.rank.cmp(&rank)) {
            self.waiters.remove(index);
        }
    }

    /// Drops the calls that have not looked for `stale`.
    pub fn forget_stale(&mut self, now: Instant, stale: Duration) {
        self.waiters
            .retain(|w| now.saturating_duration_since(w.seen) < stale);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_origin(Duration::from_millis(ms))
    }

    fn rank(priority: Priority, deadline_ms: u64, ticket: u64) -> Rank {
        Rank {
            priority,
            deadline: at(deadline_ms),
            ticket,
        }
    }

    #[test]
    fn interactive_calls_rank_before_batch_then_by_deadline() {
        let mut queue = WaitQueue::new(10);
        let batch = rank(Priority::Batch, 100, 1);
        let late = rank(Priority::Interactive, 900, 2);
        let soon = rank(Priority::Interactive, 500, 3);
        for r in [batch, late, soon] {
            queue.join(at(0), r).unwrap();
        }
        assert_eq!(queue.ahead_of(soon), 0);
        assert_eq!(queue.ahead_of(late), 1);
        assert_eq!(queue.ahead_of(batch), 2);
    }

    #[test]
    fn a_full_queue_drops_its_worst_for_a_better_call_and_refuses_a_worse_one() {
        let mut queue = WaitQueue::new(2);
        let first = rank(Priority::Batch, 100, 1);
        let second = rank(Priority::Batch, 200, 2);
        queue.join(at(0), first).unwrap();
        queue.join(at(0), second).unwrap();
        assert_eq!(queue.join(at(0), rank(Priority::Batch, 300, 3)), Err(Full));
        let urgent = rank(Priority::Interactive, 900, 4);
        queue.join(at(0), urgent).unwrap();
        assert!(queue.contains(urgent) && queue.contains(first));
        assert!(!queue.contains(second));
    }

    #[test]
    fn calls_that_stop_looking_are_forgotten() {
        let mut queue = WaitQueue::new(10);
        let gone = rank(Priority::Batch, 100, 1);
        let here = rank(Priority::Batch, 100, 2);
        queue.join(at(0), gone).unwrap();
        queue.join(at(0), here).unwrap();
        queue.join(at(900), here).unwrap();
        queue.forget_stale(at(1_000), Duration::from_millis(500));
        assert_eq!(queue.len(), 1);
        assert!(queue.contains(here));
        queue.leave(here);
        assert!(queue.is_empty());
    }
}
