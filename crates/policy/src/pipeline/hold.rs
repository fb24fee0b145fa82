//! The end of a Retry-After hold: one call goes first, the others wait for its answer.
//!
//! Every call that met a target's Retry-After waits for the same instant, so without a
//! gate they all reach the target at once when the hold ends: the thundering herd the
//! Retry-After was meant to spare it. The decision: the first call after the hold is a
//! probe, and the target takes no other until an answer comes back. The others fail
//! over if another target can take them, or wait and look again every [`POLL`]. The
//! first answer without a Retry-After to a call sent after the hold ended reopens the
//! target to everyone (a call sent before it may answer late, and says nothing about
//! the target since); one with a Retry-After starts the next hold. A probe that is cancelled frees its place at once;
//! one that is lost (its caller dropped it) frees it when its timeout would have ended
//! it, so a target is never shut out for longer than one attempt.
//!
//! A target with a breaker that refuses probe after probe is in a storm, not a blip:
//! each refusal in a row doubles the next hold, up to the breaker's `max_open_for`, as
//! a failed half-open probe doubles an open breaker's time. Asking at every Retry-After
//! would cost one refused call per Retry-After for as long as the storm lasts; the
//! growth costs a return to the target at most `max_open_for` late. A target without a
//! breaker is held exactly as long as it asks.

use std::time::Duration;

use crate::clock::Instant;

/// How often a call held back by a probe looks again, when no other target can take it.
pub(super) const POLL: Duration = Duration::from_millis(50);

/// How long the probe keeps the others waiting at most. A target refuses at once (a 429
/// is answered in the time of a round trip) while an answer takes as long as the model
/// writes; a probe not refused by then was taken, and waiting for its whole answer would
/// keep a target that serves again out for seconds.
pub(super) const VERDICT: Duration = Duration::from_secs(1);

/// What the end of a target's Retry-After hold lets through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reopening {
    /// A Retry-After hold was set and no answer has come since it ended.
    held: bool,
    /// While the probe is out: until when at most. `Instant::ZERO`: no probe out.
    probe_until: Instant,
    /// Probes in a row answered with another Retry-After.
    refusals: u32,
}

impl Reopening {
    /// A Retry-After set a hold: the first call after it ends is a probe.
    pub fn hold(&mut self) {
        *self = Reopening {
            held: true,
            probe_until: Instant::ZERO,
            refusals: self.refusals,
        };
    }

    /// The probe was answered with another Retry-After: returns the refusals in a row,
    /// this one included.
    pub fn refused(&mut self) -> u32 {
        self.refusals = self.refusals.saturating_add(1);
        self.refusals
    }

    /// How long to hold a target whose answer asked for `retry_after`, after
    /// `refusals` probes in a row were refused and with `longest` the most its breaker
    /// keeps a failing target out: the Retry-After doubled per refusal, up to `longest`,
    /// never below the Retry-After itself.
    pub fn grown(retry_after: Duration, refusals: u32, longest: Duration) -> Duration {
        retry_after
            .saturating_mul(1 << refusals.min(16))
            .min(longest)
            .max(retry_after)
    }

    /// If a probe is out at `now`: the instant its place frees at the latest.
    pub fn probe_out(&self, now: Instant) -> Option<Instant> {
        (self.held && now < self.probe_until).then_some(self.probe_until)
    }

    /// An attempt starts at `now` (the hold has ended): true if it is the probe, which
    /// keeps the place for at most `timeout`, and at most [`VERDICT`]: a probe out that
    /// long without a refusal was taken, and the target reopens to everyone.
    pub fn claim(&mut self, now: Instant, timeout: Duration) -> bool {
        if !self.held || self.probe_out(now).is_some() {
            return false;
        }
        if self.probe_until != Instant::ZERO {
            *self = Reopening::default();
            return false;
        }
        self.probe_until = now + timeout.min(VERDICT);
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
    fn refusals_in_a_row_double_the_hold_up_to_the_longest_and_an_answer_forgets_them() {
        let secs = Duration::from_secs;
        let mut r = Reopening::default();
        r.hold();
        assert_eq!(r.refused(), 1);
        r.hold();
        assert_eq!(r.refused(), 2, "the hold keeps the count");
        assert_eq!(Reopening::grown(secs(5), 0, secs(20)), secs(5));
        assert_eq!(Reopening::grown(secs(5), 1, secs(20)), secs(10));
        assert_eq!(Reopening::grown(secs(5), 2, secs(20)), secs(20));
        assert_eq!(Reopening::grown(secs(5), 40, secs(20)), secs(20));
        assert_eq!(
            Reopening::grown(secs(30), 3, secs(20)),
            secs(30),
            "never below what the target asked"
        );
        r.reopen();
        assert_eq!(r.refused(), 1, "reopened: counting starts again");
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
        assert!(
            !r.claim(at(1_005), Duration::from_secs(1)),
            "not refused within its time: reopened to everyone"
        );
        assert_eq!(r, Reopening::default());
    }

    #[test]
    fn a_probe_not_refused_within_the_verdict_time_reopens_the_target() {
        let mut r = Reopening::default();
        r.hold();
        assert!(r.claim(at(0), Duration::from_secs(30)));
        assert_eq!(r.probe_out(at(10)), Some(at(0) + VERDICT));
        assert!(!r.claim(at(10), Duration::from_secs(30)), "still out");
        assert!(
            !r.claim(at(0) + VERDICT, Duration::from_secs(30)),
            "taken: everyone goes"
        );
        assert!(!r.claim(at(0) + VERDICT, Duration::from_secs(30)));
        assert_eq!(r.probe_out(at(0) + VERDICT), None);
    }
}
