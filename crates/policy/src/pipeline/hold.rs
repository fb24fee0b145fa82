//! The end of a Retry-After hold: one call goes first, the others wait for its answer.
//!
//! Every call that met a target's Retry-After waits for the same instant, so without a
//! gate they all reach the target at once when the hold ends: the thundering herd the
//! Retry-After was meant to spare it. The decision: the first call after the hold is a
//! probe, and the target takes no other until an answer comes back. The others fail
//! over if another target can take them, or wait and look again every [`POLL`]. The
//! first answer without a Retry-After reopens the target to everyone; one with a
//! Retry-After starts the next hold. A probe that is cancelled frees its place at once;
//! one that is lost (its caller dropped it) frees it when its timeout would have ended
//! it, so a target is never shut out for longer than one attempt.

use std::time::Duration;

use crate::clock::Instant;

/// How often a call held back by a probe looks again, when no other target can take it.
pub(super) const POLL: Duration = Duration::from_millis(50);

/// What the end of a target's Retry-After hold lets through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reopening {
    /// A Retry-After hold was set and no answer has come since it ended.
    held: bool,
    /// While the probe is out: until when at most. `Instant::ZERO`: no probe out.
    probe_until: Instant,
}

impl Reopening {
    /// A Retry-After set a hold: the first call after it ends is a probe.
    pub fn hold(&mut self) {
        *self = Reopening {
            held: true,
            probe_until: Instant::ZERO,
        };
    }

    /// If a probe is out at `now`: the instant its place frees at the latest.
    pub fn probe_out(&self, now: Instant) -> Option<Instant> {
        (self.held && now < self.probe_until).then_some(self.probe_until)
    }

    /// An attempt starts at `now` (the hold has ended): true if it is the probe, which
    /// keeps the place for at most `timeout`.
    pub fn claim(&mut self, now: Instant, timeout: Duration) -> bool {
        if !self.held || self.probe_out(now).is_some() {
            return false;
        }
        self.probe_until = now + timeout;
        true
    }

    /// The probe was cancelled before it was answered: the next call takes its place.
    pub fn release(&mut self) {
        self.probe_until = Instant::ZERO;
    }

    /// An answer without a Retry-After came after the hold ended: everyone may go.
    pub fn reopen(&mut self) {
        *self = Reopening::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_origin(Duration::from_millis(ms))
    }

    #[test]
    fn one_probe_at_a_time_until_an_answer_reopens() {
        let mut r = Reopening::default();
        assert!(!r.claim(at(0), Duration::from_secs(1)), "no hold, no probe");
        r.hold();
        assert!(r.claim(at(10), Duration::from_secs(1)));
        assert_eq!(r.probe_out(at(20)), Some(at(1_010)));
        assert!(
            !r.claim(at(20), Duration::from_secs(1)),
            "one probe at a time"
        );
        r.reopen();
        assert_eq!(r.probe_out(at(30)), None);
        assert!(
            !r.claim(at(30), Duration::from_secs(1)),
            "reopened: no probe"
        );
    }

    #[test]
    fn a_cancelled_or_lost_probe_frees_its_place() {
        let mut r = Reopening::default();
        r.hold();
        assert!(r.claim(at(0), Duration::from_secs(1)));
        r.release();
        assert!(
            r.claim(at(5), Duration::from_secs(1)),
            "cancelled: next one goes"
        );
        assert_eq!(r.probe_out(at(1_004)), Some(at(1_005)));
        assert_eq!(r.probe_out(at(1_005)), None, "lost: free after its timeout");
        assert!(r.claim(at(1_005), Duration::from_secs(1)));
    }
}
