//! Client-side throttling after Google SRE's "Handling Overload": a target that keeps
//! refusing work is sent less of it before it even sees the request.
//!
//! Over a sliding window holdfast counts the attempts it made on the target and those
//! the target accepted (anything but an overload answer); a new attempt is refused
//! locally with probability `max(0, (requests − K·accepts) / (requests + 1))`. With
//! `K = 2` a healthy target is never throttled, and one that refuses everything still
//! gets a trickle that notices its recovery. The decision needs a random draw, which
//! the caller passes in so that every run replays from its seed.

use std::time::Duration;

use crate::clock::Instant;
use crate::setting::{InvalidSetting, check_positive, check_range};
use crate::window::Window;

const REQUESTS: usize = 0;
const ACCEPTS: usize = 1;

/// Throttle settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// Accepts needed per request before nothing is throttled; in `1.0..=10.0`.
    pub k: f64,
    /// How far back attempts are counted; > 0.
    pub window: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            k: 2.0,
            window: Duration::from_secs(60),
        }
    }
}

impl Config {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        check_range("concurrency.throttle_k", self.k, 1.0, 10.0)?;
        check_positive("concurrency.throttle_window", self.window)?;
        Ok(())
    }
}

/// Attempts and accepts of one target over a sliding window.
#[derive(Debug, Clone)]
pub struct Throttle {
    k: f64,
    counts: Window<2>,
}

impl Throttle {
    /// A throttle that has seen nothing.
    pub fn new(config: Config) -> Result<Self, InvalidSetting> {
        config.validate()?;
        Ok(Throttle {
            k: config.k,
            counts: Window::new(config.window),
        })
    }

    /// The probability that the next attempt is refused locally.
    pub fn rejection(&self, now: Instant) -> f64 {
        let [requests, accepts] = self.counts.totals(now).map(|n| n as f64);
        ((requests - self.k * accepts) / (requests + 1.0)).max(0.0)
    }

    /// Whether an attempt may go, given a uniform `draw` in `[0, 1)`.
    pub fn allows(&self, now: Instant, draw: f64) -> bool {
        draw >= self.rejection(now)
    }

    /// Counts one attempt that reached the target, and whether it accepted it.
    pub fn record(&mut self, now: Instant, accepted: bool) {
        self.counts.add(now, REQUESTS, 1);
        if accepted {
            self.counts.add(now, ACCEPTS, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_origin(Duration::from_millis(ms))
    }

    #[test]
    fn a_healthy_target_is_never_throttled() {
        let mut throttle = Throttle::new(Config::default()).unwrap();
        for i in 0..1_000 {
            throttle.record(at(i), true);
        }
        assert_eq!(throttle.rejection(at(1_000)), 0.0);
        assert!(throttle.allows(at(1_000), 0.0));
    }

    #[test]
    fn follows_the_sre_formula() {
        let mut throttle = Throttle::new(Config::default()).unwrap();
        // 100 requests, 20 accepted: (100 − 40) / 101.
        for i in 0..100 {
            throttle.record(at(i), i < 20);
        }
        let p = throttle.rejection(at(100));
        assert!((p - 60.0 / 101.0).abs() < 1e-9, "p = {p}");
        assert!(!throttle.allows(at(100), 0.5));
        assert!(throttle.allows(at(100), 0.7));
    }

    #[test]
    fn a_refusing_target_still_gets_a_trickle_and_is_forgiven_after_the_window() {
        let mut throttle = Throttle::new(Config::default()).unwrap();
        for i in 0..1_000 {
            throttle.record(at(i), false);
        }
        let p = throttle.rejection(at(1_000));
        assert!(p < 1.0 && p > 0.99, "p = {p}");
        assert_eq!(throttle.rejection(at(70_000)), 0.0);
    }
}
