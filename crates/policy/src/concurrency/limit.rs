//! The adaptive concurrency limit of one target: how many calls may be in flight.
//!
//! A gradient limiter in the manner of Netflix's Gradient2 and Envoy's adaptive
//! concurrency filter: the target's no-load latency against its recent latency (a
//! moving average over some twenty answers) says whether calls queue inside the
//! provider. The no-load latency is the lowest the moving average reached over a long
//! window, not a long-run mean: a mean creeps up under sustained overload until the
//! overload looks normal, and a single fast answer (LLM latencies have long tails on
//! both sides) would make every later one look slow. While recent latency stays within `tolerance` of the
//! no-load latency the limit grows; beyond it the limit shrinks by the ratio. An
//! overload answer (429, 503, a timeout) cuts it multiplicatively, as AIMD does, but
//! at most once per round trip as TCP does: a provider that refuses a share of calls
//! at any load must not drive the limit to its floor, while one that refuses
//! everything beyond its capacity still halves it within a few round trips. Latency is counted per output token when the answer's length is known, so a
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
            tolerance: 1.5,
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
const RECENT_WEIGHT: f64 = 0.05;
/// Answers before the moving average counts towards the no-load latency.
const WARM_UP: u32 = 20;
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
    /// Seconds a whole answer takes, on average: one round trip.
    round_trip: Option<f64>,
    last_cut: Option<Instant>,
    /// Answers seen: the moving average means something only after a few.
    answers: u32,
    /// No sign of load yet: the limit doubles every round trip.
    slow_start: bool,
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
            round_trip: None,
            last_cut: None,
            answers: 0,
            slow_start: true,
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
                let seconds = latency.as_secs_f64();
                self.round_trip = Some(match self.round_trip {
                    Some(r) => r + RECENT_WEIGHT * (seconds - r),
                    None => seconds,
                });
                self.observe(now, seconds / f64::from(units.max(1)));
                self.adjust(in_flight);
            }
            Sample::Overloaded => {
                let round_trip = Duration::from_secs_f64(self.round_trip.unwrap_or(0.0));
                let due = self
                    .last_cut
                    .is_none_or(|cut| now.saturating_duration_since(cut) >= round_trip);
                if due {
                    self.limit = (self.limit * self.config.backoff).max(f64::from(self.config.min));
                    self.last_cut = Some(now);
                    self.slow_start = false;
                }
            }
            Sample::Neutral => {}
        }
    }

    fn observe(&mut self, now: Instant, per_unit: f64) {
        if now.saturating_duration_since(self.window_started) >= self.config.baseline_window {
            self.lowest = [None, self.lowest[0]];
            self.window_started = now;
        }
        let recent = match self.recent {
            Some(recent) => recent + RECENT_WEIGHT * (per_unit - recent),
            None => per_unit,
        };
        self.recent = Some(recent);
        self.answers = self.answers.saturating_add(1);
        // Until the average has seen enough answers it still leans on its first one,
        // which may be the fastest of hundreds: taken as the no-load latency, it would
        // make every later answer look like overload.
        if self.answers < WARM_UP {
            return;
        }
        let lowest = &mut self.lowest[0];
        *lowest = Some(lowest.map_or(recent, |l| l.min(recent)));
    }

    fn lowest_seen(&self) -> Option<f64> {
        match self.lowest {
            [Some(a), Some(b)] => Some(a.min(b)),
            [Some(a), None] | [None, Some(a)] => Some(a),
            [None, None] => None,
        }
    }

    fn adjust(&mut self, in_flight: u32) {
        let gradient = match (self.lowest_seen(), self.recent) {
            (Some(baseline), Some(recent)) if recent > 0.0 => {
                (self.config.tolerance * baseline / recent).clamp(0.5, 1.0)
            }
            // Warming up: nothing says the target is loaded yet.
            (Some(_), Some(_)) | (None, _) | (_, None) => 1.0,
        };
        // Grow only when the limit is actually used: an idle target's limit must not
        // drift up to its maximum and then let a burst through unchecked.
        let used = f64::from(in_flight) >= self.limit * 0.5;
        if gradient < 1.0 {
            self.slow_start = false;
        }
        let limit = self.limit;
        let next = if self.slow_start {
            // One more per answer doubles the limit every round trip, until the first
            // sign of load.
            if used { limit + 1.0 } else { limit }
        } else {
            // Gradient2's step, spread over the round trip's `limit` answers, so that
            // one round trip moves the limit as one window of samples does there. Its
            // headroom only while latency is within tolerance: then the limit settles
            // where latency reaches the tolerance, not beyond it.
            let headroom = if used && gradient >= 1.0 {
                limit.sqrt()
            } else {
                0.0
            };
            let estimate = limit * gradient + headroom;
            limit + SMOOTHING * (estimate - limit) / limit.max(1.0)
        };
        self.limit = next.clamp(f64::from(self.config.min), f64::from(self.config.max));
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
        // A provider whose latency grows in proportion beyond 10 calls in flight: at a
        // tolerance of 1.5 the limit settles near 15. Light traffic first teaches the
        // no-load latency, then a flood uses every slot.
        let mut limit = AdaptiveLimit::new(Config::default(), at(0)).unwrap();
        for i in 0..100 {
            limit.record(at(i), answered(100), 1);
        }
        for i in 100..2_000 {
            let in_flight = limit.current();
            let latency = if in_flight > 10 {
                100 * u64::from(in_flight) / 10
            } else {
                100
            };
            limit.record(at(i), answered(latency), in_flight);
        }
        let settled = limit.current();
        assert!((12..=17).contains(&settled), "limit {settled}");
    }

    #[test]
    fn overload_answers_cut_the_limit_down_to_its_floor() {
        let config = Config {
            initial: 20,
            ..Config::default()
        };
        let mut limit = AdaptiveLimit::new(config, at(0)).unwrap();
        limit.record(at(0), answered(100), 1);
        limit.record(at(0), Sample::Overloaded, 20);
        assert_eq!(limit.current(), 18);
        // Once per round trip (100 ms here): a burst of refusals is one signal.
        for i in 1..100 {
            limit.record(at(i), Sample::Overloaded, 20);
        }
        assert_eq!(limit.current(), 18);
        for i in 1..100 {
            limit.record(at(i * 100), Sample::Overloaded, 20);
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
        for (ms, latency) in [(0, 50), (61_000, 80), (122_000, 80), (183_000, 90)] {
            for i in 0..200 {
                limit.record(at(ms + i), answered(latency), 1);
            }
        }
        // The moving average settled at 80 ms in the window that is still remembered.
        let baseline = limit.baseline().unwrap().as_secs_f64();
        assert!((0.079..0.081).contains(&baseline), "{baseline}");
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
