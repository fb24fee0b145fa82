//! One deadline per call, across every retry and fallback.
//!
//! A client that will give up in 3 s gains nothing from an attempt that starts at 2.9 s
//! with a 30 s timeout, nor from a backoff that sleeps past its deadline. The deadline
//! caps each attempt's timeout and lets the pipeline skip a wait or an attempt that could
//! not finish in the time left.

use std::time::Duration;

use crate::clock::Instant;

/// When a call must be finished by, if ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Deadline {
    at: Option<Instant>,
}

impl Deadline {
    /// No deadline.
    pub const NONE: Deadline = Deadline { at: None };

    /// A deadline at `at`.
    pub fn at(at: Instant) -> Self {
        Deadline { at: Some(at) }
    }

    /// A deadline `budget` after `now`.
    pub fn after(now: Instant, budget: Duration) -> Self {
        Deadline::at(now + budget)
    }

    /// The instant, if there is one.
    pub fn instant(self) -> Option<Instant> {
        self.at
    }

    /// Time left at `now`; `None` when there is no deadline.
    pub fn remaining(self, now: Instant) -> Option<Duration> {
        self.at.map(|at| at.saturating_duration_since(now))
    }

    /// Whether the deadline has passed at `now`.
    pub fn is_expired(self, now: Instant) -> bool {
        self.at.is_some_and(|at| now >= at)
    }

    /// `timeout`, shortened so that it ends by the deadline.
    pub fn cap(self, now: Instant, timeout: Duration) -> Duration {
        self.remaining(now)
            .map_or(timeout, |left| timeout.min(left))
    }

    /// Whether waiting `wait` and then running an attempt of at least `min_attempt`
    /// still ends by the deadline.
    pub fn allows(self, now: Instant, wait: Duration, min_attempt: Duration) -> bool {
        self.remaining(now)
            .is_none_or(|left| wait.saturating_add(min_attempt) <= left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_origin(Duration::from_millis(ms))
    }

    #[test]
    fn caps_timeouts_and_refuses_what_cannot_fit() {
        let d = Deadline::after(at(0), Duration::from_secs(3));
        assert_eq!(
            d.cap(at(2_900), Duration::from_secs(30)),
            Duration::from_millis(100)
        );
        assert!(d.allows(at(0), Duration::from_secs(1), Duration::from_secs(1)));
        assert!(!d.allows(
            at(2_000),
            Duration::from_millis(900),
            Duration::from_millis(200)
        ));
        assert!(d.is_expired(at(3_000)));
        assert_eq!(d.remaining(at(9_000)), Some(Duration::ZERO));
    }

    #[test]
    fn no_deadline_never_caps() {
        let d = Deadline::NONE;
        assert_eq!(
            d.cap(at(5), Duration::from_secs(30)),
            Duration::from_secs(30)
        );
        assert!(d.allows(at(5), Duration::MAX, Duration::MAX));
        assert!(!d.is_expired(at(u64::MAX / 2_000_000)));
    }
}
