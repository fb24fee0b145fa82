//! How long to wait for a target's first byte before calling it silent.
//!
//! A fixed first-byte timeout is either too long for a silent provider (every request
//! waits it out before failing over) or too short for a slow one. A target that does
//! not set one gets a timeout learned from its own recent latency instead: a high
//! percentile times a factor, within a floor and a ceiling, so a provider that usually
//! answers in 300 ms is declared silent after a second or two, not after ten. Streamed
//! and whole answers are learned apart: the first event of a stream arrives long before
//! a whole answer, and one estimate for both would cut the whole answers short.
//! Until enough latencies are known, the cold value (the configured ceiling) applies.

use std::time::Duration;

use crate::clock::Instant;
use crate::hedge::LatencyTracker;
use crate::setting::{InvalidSetting, check_positive, check_range};

/// Latencies older than two of these are forgotten.
const ROTATION: Duration = Duration::from_secs(60);

/// How a call waits for its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A stream: the first event.
    Streamed,
    /// A whole answer: the response head, which comes with the answer.
    Whole,
}

/// How the learned timeout follows the latency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// The percentile of recent latencies it starts from, in `[50, 100]`.
    pub percentile: f64,
    /// What that percentile is multiplied by; ≥ 1.
    pub factor: f64,
    /// The shortest learned timeout; > 0.
    pub floor: Duration,
    /// Latencies needed before the estimate replaces the cold value; ≥ 1.
    pub min_samples: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            percentile: 99.0,
            factor: 3.0,
            floor: Duration::from_secs(1),
            min_samples: 20,
        }
    }
}

impl Config {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        check_range("silence.percentile", self.percentile, 50.0, 100.0)?;
        if !(self.factor >= 1.0 && self.factor.is_finite()) {
            return Err(InvalidSetting::new(
                "silence.factor",
                "must be a finite number of at least 1",
            ));
        }
        check_positive("silence.floor", self.floor)?;
        if self.min_samples == 0 {
            return Err(InvalidSetting::new(
                "silence.min_samples",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// One target's recent latencies, streamed and whole.
#[derive(Debug, Clone)]
pub struct Estimate {
    config: Config,
    streamed: LatencyTracker,
    whole: LatencyTracker,
}

impl Estimate {
    /// An estimate with no latency yet.
    pub fn new(config: Config, now: Instant) -> Result<Self, InvalidSetting> {
        config.validate()?;
        Ok(Estimate {
            config,
            streamed: LatencyTracker::new(ROTATION, now),
            whole: LatencyTracker::new(ROTATION, now),
        })
    }

    /// Records how long a successful call waited for its first byte.
    pub fn record(&mut self, now: Instant, mode: Mode, latency: Duration) {
        match mode {
            Mode::Streamed => self.streamed.record(now, latency),
            Mode::Whole => self.whole.record(now, latency),
        }
    }

    /// The wait before a call in `mode` is silent: learned within `[floor, ceiling]`
    /// once enough latencies are known, `cold` (capped by `ceiling`) before.
    pub fn timeout(&self, mode: Mode, cold: Duration, ceiling: Duration) -> Duration {
        let tracker = match mode {
            Mode::Streamed => &self.streamed,
            Mode::Whole => &self.whole,
        };
        match tracker.percentile(self.config.percentile, self.config.min_samples) {
            Some(p) => p
                .mul_f64(self.config.factor)
                .clamp(self.config.floor.min(ceiling), ceiling),
            None => cold.min(ceiling),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_origin(Duration::from_millis(ms))
    }

    const COLD: Duration = Duration::from_secs(10);
    const CEILING: Duration = Duration::from_secs(120);

    #[test]
    fn a_cold_target_gets_the_cold_value_capped_by_the_ceiling() {
        let e = Estimate::new(Config::default(), at(0)).unwrap();
        assert_eq!(e.timeout(Mode::Whole, COLD, CEILING), COLD);
        assert_eq!(
            e.timeout(Mode::Streamed, COLD, Duration::from_secs(4)),
            Duration::from_secs(4)
        );
    }

    #[test]
    fn a_fast_target_is_declared_silent_at_the_floor() {
        let mut e = Estimate::new(Config::default(), at(0)).unwrap();
        for i in 0..50 {
            e.record(at(i), Mode::Streamed, Duration::from_millis(20));
        }
        assert_eq!(
            e.timeout(Mode::Streamed, COLD, CEILING),
            Duration::from_secs(1)
        );
        assert_eq!(
            e.timeout(Mode::Whole, COLD, CEILING),
            COLD,
            "streams teach nothing about whole answers"
        );
    }

    #[test]
    fn a_slow_target_gets_its_high_percentile_times_the_factor_up_to_the_ceiling() {
        let mut e = Estimate::new(Config::default(), at(0)).unwrap();
        for i in 0..100 {
            e.record(at(i), Mode::Whole, Duration::from_millis(2_000 + 20 * i));
        }
        let learned = e.timeout(Mode::Whole, COLD, CEILING);
        assert!(
            learned >= Duration::from_millis(3 * 3_900) && learned <= Duration::from_secs(15),
            "{learned:?}"
        );
        assert_eq!(
            e.timeout(Mode::Whole, COLD, Duration::from_secs(5)),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn bad_settings_are_refused_with_their_field() {
        let bad = |config: Config| Estimate::new(config, at(0)).unwrap_err().field;
        let base = Config::default();
        assert_eq!(
            bad(Config {
                factor: 0.5,
                ..base
            }),
            "silence.factor"
        );
        assert_eq!(
            bad(Config {
                floor: Duration::ZERO,
                ..base
            }),
            "silence.floor"
        );
        assert_eq!(
            bad(Config {
                percentile: 10.0,
                ..base
            }),
            "silence.percentile"
        );
    }
}
