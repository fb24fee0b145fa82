//! The adaptive concurrency limit of one target: how many calls may be in flight.
//!
//! A gradient limiter in the manner of Netflix's Gradient2 and Envoy's adaptive
//! concurrency filter: the target's no-load latency (the lowest seen over a long
//! window) against its recent latency (a short moving average) says whether calls
//! queue inside the provider. While recent latency stays within `tolerance` of the
//! no-load latency the limit grows; beyond it the limit shrinks by the ratio. An
//! overload answer (429, 503, a timeout) cuts it multiplicatively at once, as AIMD
//! does. Latency is counted per output token when the answer's length is known, so a
//! long answer is not mistaken for a slow provider.

use std::time::Duration;

use crate::clock::Instant;
use crate::setting::{InvalidSetting, check_positive, check_range};

/// Adaptive limit settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// The limit before anything is known; within `min..=max`. Low, so that the
    /// first answers come back unloaded and teach the no-load latency; the limit grows
    /// from there by about its square root per round of answers.
    pub initial: u32,
    /// The limit never goes below this; ≥ 1.
    pub min: u32,
    /// The limit never goes above this; ≥ `min`.
    pub max: u32,
    /// Recent latency up to this multiple of the no-load latency counts as unloaded;
    /// in `1.0..=10.0`.
    pub tolerance: f64,
    /// The factor an overload answer multiplies the limit by; in `0.1..=0.99`.
    pub backoff: f64,
    /// How long the lowest latency is remembered (between one and two of these); > 0.
    pub baseline_window: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            initial: 4,
            min: 1,
            max: 1_000,
            tolerance: 1.25,
            backoff: 0.9,
            baseline_window: Duration::from_secs(60),
        }
    }
}

impl Config {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.min == 0 {
            return Err(InvalidSetting::new("concurrency.min", "must be at least 1"));
        }
        if self.max < self.min {
            return Err(InvalidSetting::new(
                "concurrency.max",
                format!("{} is below concurrency.min ({})", self.max, self.min),
            ));
        }
        if !(self.min..=self.max).contains(&self.initial) {
            return Err(InvalidSetting::new(
                "concurrency.initial",
                format!("{} is outside {}..={}", self.initial, self.min, self.max),
            ));
        }
        check_range("concurrency.tolerance", self.tolerance, 1.0, 10.0)?;
        check_range("concurrency.backoff", self.backoff, 0.1, 0.99)?;
        check_positive("concurrency.baseline_window", self.baseline_window)?;
        Ok(())
    }
}

/// How an attempt ended, as the limit sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sample {
    /// An answer, after `latency`, `units` long (output tokens, or 1 when unknown).
    Answered {
        /// From start to answer.
        latency: Duration,
        /// What the latency is divided by.
        units: u32,
    },
    /// The target said it is over capacity, or did not answer in time.
    Overloaded,
    /// Says nothing about load (a bad request, a cancelled hedge).
    Neutral,
}

/// Weight of the newest sample in the recent-latency average.
const RECENT_WEIGHT: f64 = 0.1;
/// Weight of a new limit estimate against the current limit: smooths the steps.
const SMOOTHING: f64 = 0.2;

/// The limit and what it is learned from.
#[derive(Debug, Clone)]
pub struct AdaptiveLimit {
    config: Config,
    limit: f64,
    /// Seconds per unit: the recent moving average.
    recent: Option<f64>,
    /// The lowest seconds per unit in the current and the previous window.
    lowest: [Option<f64>; 2],
    window_started: Instant,
}

impl AdaptiveLimit {
    /// A limit at `config.initial`.
    pub fn new(config: Config, now: Instant) -> Result<Self, InvalidSetting> {
        config.validate()?;
        Ok(AdaptiveLimit {
            config,
            limit: f64::from(config.initial),
            recent: None,
            lowest: [None, None],
            window_started: now,
        })
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Calls allowed in flight now.
    pub fn current(&self) -> u32 {
        // In min..=max by construction; the cast only drops the fraction.
        self.limit as u32
    }

    /// The no-load latency per unit, once one answer has been seen.
    pub fn baseline(&self) -> Option<Duration> {
        self.lowest_seen().map(Duration::from_secs_f64)
    }

    /// The recent latency per unit, once one answer has been seen.
    pub fn recent(&self) -> Option<Duration> {
        self.recent.map(Duration::from_secs_f64)
    }

    /// Learns from one finished attempt, which ran with `in_flight` calls (itself
    /// included) on the target.
    pub fn record(&mut self, now: Instant, sample: Sample, in_flight: u32) {
        match sample {
            Sample::Answered { latency, units } => {
                let per_unit = latency.as_secs_f64() / f64::from(units.max(1));
                self.observe(now, per_unit);
                self.adjust(in_flight);
            }
            Sample::Overloaded => {
                self.limit = (self.limit * self.config.backoff).max(f64::from(self.config.min));
            }
            Sample::Neutral => {}
        }
    }

    fn observe(&mut self, now: Instant, per_unit: f64) {
        if now.saturating_duration_since(self.window_started) >= self.config.baseline_window {
            self.lowest = [None, self.lowest[0]];
            self.window_started = now;
        }
        let lowest = &mut self.lowest[0];
        *lowest = Some(lowest.map_or(per_unit, |l| l.min(per_unit)));
        self.recent = Some(match self.recent {
            Some(recent) => recent + RECENT_WEIGHT * (per_unit - recent),
            None => per_unit,
        });
    }

    fn lowest_seen(&self) -> Option<f64> {
        match self.lowest {
            [Some(a), Some(b)] => Some(a.min(b)),
            [Some(a), None] | [None, Some(a)] => Some(a),
            [None, None] => None,
        }
    }

    fn adjust(&mut self, in_flight: u32) {
        let (Some(baseline), Some(recent)) = (self.lowest_seen(), self.recent) else {
            return;
        };
        let gradient = if recent <= 0.0 {
            1.0
        } else {
            (self.config.tolerance * baseline / recent).clamp(0.5, 1.0)
        };
        // Grow only when the limit is actually used: an idle target's limit must not
        // drift up to its maximum and then let a burst through unchecked.
        let used = f64::from(in_flight) >= self.limit * 0.5;
        let headroom = if gradient >= 1.0 && used {
            self.limit.sqrt()
        } else {
            0.0
        };
        let estimate = self.limit * gradient + headroom;
        let smoothed = self.limit * (1.0 - SMOOTHING) + estimate * SMOOTHING;
        self.limit = smoothed.clamp(f64::from(self.config.min), f64::from(self.config.max));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_origin(Duration::from_millis(ms))
    }

    fn answered(ms: u64) -> Sample {
        Sample::Answered {
            latency: Duration::from_millis(ms),
            units: 1,
        }
    }

    #[test]
    fn grows_while_latency_stays_flat_and_the_limit_is_used() {
        let mut limit = AdaptiveLimit::new(Config::default(), at(0)).unwrap();
        for i in 0..200 {
            let in_flight = limit.current();
            limit.record(at(i), answered(100), in_flight);
        }
        assert!(limit.current() > 100, "limit {}", limit.current());
    }

    #[test]
    fn an_idle_target_keeps_its_limit() {
        let mut limit = AdaptiveLimit::new(Config::default(), at(0)).unwrap();
        for i in 0..200 {
            limit.record(at(i), answered(100), 1);
        }
        assert_eq!(limit.current(), 4);
    }

    #[test]
    fn shrinks_when_latency_grows_with_load() {
        // A provider whose latency doubles beyond 10 calls in flight.
        let mut limit = AdaptiveLimit::new(Config::default(), at(0)).unwrap();
        for i in 0..2_000 {
            let in_flight = limit.current();
            let latency = if in_flight > 10 {
                100 * u64::from(in_flight) / 10
            } else {
                100
            };
            limit.record(at(i), answered(latency), in_flight);
        }
        let settled = limit.current();
        assert!((8..=14).contains(&settled), "limit {settled}");
    }

    #[test]
    fn overload_answers_cut_the_limit_down_to_its_floor() {
        let config = Config {
            initial: 20,
            ..Config::default()
        };
        let mut limit = AdaptiveLimit::new(config, at(0)).unwrap();
        limit.record(at(0), Sample::Overloaded, 20);
        assert_eq!(limit.current(), 18);
        for i in 0..100 {
            limit.record(at(i), Sample::Overloaded, 20);
        }
        assert_eq!(limit.current(), 1);
    }

    #[test]
    fn long_answers_are_not_mistaken_for_overload() {
        let mut limit = AdaptiveLimit::new(Config::default(), at(0)).unwrap();
        for i in 0..500 {
            let units = if i % 2 == 0 { 10 } else { 500 };
            let sample = Sample::Answered {
                latency: Duration::from_millis(u64::from(units) * 20),
                units,
            };
            let in_flight = limit.current();
            limit.record(at(i), sample, in_flight);
        }
        assert!(limit.current() > 100, "limit {}", limit.current());
    }

    #[test]
    fn the_no_load_latency_is_forgotten_after_two_windows() {
        let mut limit = AdaptiveLimit::new(Config::default(), at(0)).unwrap();
        limit.record(at(0), answered(50), 1);
        limit.record(at(61_000), answered(80), 1);
        assert_eq!(limit.baseline(), Some(Duration::from_millis(50)));
        limit.record(at(122_000), answered(90), 1);
        assert_eq!(limit.baseline(), Some(Duration::from_millis(80)));
    }

    #[test]
    fn bad_settings_are_refused_with_their_field() {
        let config = Config {
            min: 5,
            initial: 2,
            ..Config::default()
        };
        let err = AdaptiveLimit::new(config, at(0)).unwrap_err();
        assert_eq!(err.field, "concurrency.initial");
        let config = Config {
            backoff: 1.0,
            ..Config::default()
        };
        assert_eq!(config.validate().unwrap_err().field, "concurrency.backoff");
    }
}
