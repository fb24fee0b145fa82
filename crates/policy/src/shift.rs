//! Load shifting: how much of a route's traffic skips a target that fails part of its
//! calls, before its breaker has any reason to open.
//!
//! A breaker is binary and rightly slow to trip (a target failing 20% of its calls
//! still serves 80%, and cutting it off would cost more than it saves when no other
//! target can take the load). But on a route with `retry_on = "next"`, every call that
//! fails on such a target pays one wasted round trip before the next target answers
//! it: under 20% 503s that take the time of an answer, a fifth of the calls cost two
//! round trips and goodput cannot pass ×0.83 of healthy. Retrying faster cannot help;
//! only sending fewer calls to the failing target can.
//!
//! The rule, in the manner of Envoy's priority load shifting (traffic leaves a
//! degraded priority in proportion to how degraded it is) but driven by the target's
//! recent failure rate `p` rather than by host health: skip the target for a share
//! `1 − WASTE / p` of new calls, so that the calls still sent to it waste at most
//! [`WASTE`] round trips per request, whatever `p` is. A target failing less than
//! `WASTE` keeps all its traffic; one failing 20% keeps a quarter of it; one failing
//! 100% keeps a twentieth (and its breaker takes over). The target always keeps a
//! share, so its failure rate stays measured and traffic returns as it heals. Shifting
//! only ever removes calls from the failing target and adds none anywhere (the
//! skipped call makes one attempt, on the next target), so it cannot feed a retry
//! storm; it applies to the route's first target, where every new call starts, and
//! only when a later target can take the call now.

use std::time::Duration;

use crate::clock::Instant;
use crate::outcome::Health;
use crate::window::Window;

/// Round trips per request a failing target may waste before load shifts off it: the
/// same bound the breaker is held to for a dead target's calls per request.
pub const WASTE: f64 = 0.05;

/// How far back the failure rate looks: long enough for a steady estimate at tens of
/// requests per second, short enough to follow a target that heals.
pub const SPAN: Duration = Duration::from_secs(10);

/// Judged calls needed in the window before the rate is trusted: below it the target
/// keeps all its traffic (the breaker's default minimum volume).
pub const MIN_CALLS: u64 = 20;

const SUCCESSES: usize = 0;
const FAILURES: usize = 1;

/// A target's recent successes and failures.
#[derive(Debug, Clone)]
pub struct Recent {
    window: Window<2>,
}

impl Default for Recent {
    fn default() -> Self {
        Recent {
            window: Window::new(SPAN),
        }
    }
}

impl Recent {
    /// Counts one attempt's verdict; neutral ones (cancelled, the caller's fault) say
    /// nothing about the target.
    pub fn record(&mut self, now: Instant, health: Health) {
        match health {
            Health::Success => self.window.add(now, SUCCESSES, 1),
            Health::Failure => self.window.add(now, FAILURES, 1),
            Health::Neutral => {}
        }
    }

    /// The failure rate over the window, once it holds [`MIN_CALLS`] verdicts.
    pub fn failure_rate(&self, now: Instant) -> Option<f64> {
        let [successes, failures] = self.window.totals(now);
        let judged = successes.saturating_add(failures);
        (judged >= MIN_CALLS).then(|| failures as f64 / judged as f64)
    }

    /// The share of new calls to send past this target, in `[0, 1 − WASTE]`.
    pub fn share(&self, now: Instant) -> f64 {
        match self.failure_rate(now) {
            Some(rate) if rate > WASTE => 1.0 - WASTE / rate,
            Some(_) | None => 0.0,
        }
    }

    /// Forgets every verdict (an operator reset the target).
    pub fn clear(&mut self) {
        self.window.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_origin(Duration::from_millis(ms))
    }

    fn recent(successes: u64, failures: u64) -> Recent {
        let mut recent = Recent::default();
        for _ in 0..successes {
            recent.record(at(1_000), Health::Success);
        }
        for _ in 0..failures {
            recent.record(at(1_000), Health::Failure);
        }
        recent
    }

    #[test]
    fn the_share_keeps_the_waste_per_request_at_the_bound() {
        for (successes, failures) in [(80, 20), (50, 50), (0, 40), (90, 10)] {
            let recent = recent(successes, failures);
            let rate = failures as f64 / (successes + failures) as f64;
            let share = recent.share(at(1_000));
            let wasted = (1.0 - share) * rate;
            assert!(
                (wasted - WASTE).abs() < 1e-9,
                "{failures} of {} failed: share {share}, {wasted} wasted per request",
                successes + failures
            );
        }
        assert!((recent(80, 20).share(at(1_000)) - 0.75).abs() < 1e-9);
    }

    #[test]
    fn a_target_failing_rarely_or_called_seldom_keeps_its_traffic() {
        assert_eq!(
            recent(96, 4).share(at(1_000)),
            0.0,
            "4% is within the bound"
        );
        assert_eq!(recent(0, 0).share(at(1_000)), 0.0);
        assert_eq!(
            recent(5, 14).share(at(1_000)),
            0.0,
            "19 verdicts are too few to judge"
        );
        assert!(recent(5, 15).share(at(1_000)) > 0.9);
    }

    #[test]
    fn verdicts_age_out_and_neutral_ones_do_not_count() {
        let mut recent = recent(0, 40);
        recent.record(at(1_000), Health::Neutral);
        assert_eq!(recent.failure_rate(at(1_000)), Some(1.0));
        assert_eq!(recent.failure_rate(at(1_000) + SPAN + SPAN), None);
        assert_eq!(recent.share(at(1_000) + SPAN + SPAN), 0.0);
        recent.clear();
        assert_eq!(recent.failure_rate(at(1_000)), None);
    }
}
