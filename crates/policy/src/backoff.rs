//! How long to wait before retrying on the same target.
//!
//! Exponential growth spreads retries out while a target recovers; jitter keeps many
//! clients that failed together from retrying together. Full jitter (a uniform draw in
//! `[0, min(cap, base·2ⁿ)]`) is the default because it spreads load best; decorrelated
//! jitter grows from the previous delay and suits long outages. A Retry-After from the
//! target is a floor the pipeline applies on top ([`Backoff::wait`]); the backoff delay
//! itself always stays within `[0, cap]`.

use std::time::Duration;

use crate::rng::Rng;
use crate::setting::{InvalidSetting, check_positive};

/// How delays are randomised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// No randomness: `min(cap, base·2ⁿ)`. Only for comparison; clients retry in lockstep.
    None,
    /// A uniform draw in `[0, min(cap, base·2ⁿ)]`.
    Full,
    /// A uniform draw in `[base, 3·previous]`, capped.
    Decorrelated,
}

/// Backoff settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// The first delay's scale; must be > 0 and ≤ `cap`.
    pub base: Duration,
    /// The longest delay; must be ≥ `base`.
    pub cap: Duration,
    /// Attempts on one target, the first included; 1..=100.
    pub max_attempts: u32,
    /// How delays are randomised.
    pub jitter: Jitter,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(10),
            max_attempts: 3,
            jitter: Jitter::Full,
        }
    }
}

/// A validated backoff schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    config: Config,
}

impl Backoff {
    /// Validates `config`.
    pub fn new(config: Config) -> Result<Self, InvalidSetting> {
        check_positive("retry.base", config.base)?;
        if config.cap < config.base {
            return Err(InvalidSetting::new(
                "retry.cap",
                format!("{:?} is below retry.base {:?}", config.cap, config.base),
            ));
        }
        if !(1..=100).contains(&config.max_attempts) {
            return Err(InvalidSetting::new(
                "retry.max_attempts",
                format!("{} is outside 1..=100", config.max_attempts),
            ));
        }
        Ok(Backoff { config })
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Attempts allowed on one target, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.config.max_attempts
    }

    /// The delay before retry number `retry` (1 for the first retry), given the delay
    /// before the previous one (zero for the first). Always within `[0, cap]`.
    pub fn delay(&self, retry: u32, previous: Duration, rng: &mut Rng) -> Duration {
        let Config { base, cap, .. } = self.config;
        let ceiling = exponential(base, cap, retry);
        match self.config.jitter {
            Jitter::None => ceiling,
            Jitter::Full => uniform(Duration::ZERO, ceiling, rng),
            Jitter::Decorrelated => {
                let high = previous.max(base).saturating_mul(3).min(cap);
                uniform(base.min(cap), high, rng)
            }
        }
    }

    /// The wait before the next attempt: the backoff delay, raised to the target's
    /// Retry-After when it asked for longer.
    pub fn wait(&self, delay: Duration, retry_after: Option<Duration>) -> Duration {
        retry_after.map_or(delay, |floor| delay.max(floor))
    }
}

fn exponential(base: Duration, cap: Duration, retry: u32) -> Duration {
    let doublings = retry.saturating_sub(1).min(32);
    base.saturating_mul(1u32 << doublings.min(31)).min(cap)
}

fn uniform(low: Duration, high: Duration, rng: &mut Rng) -> Duration {
    let (low, high) = (nanos(low), nanos(high));
    Duration::from_nanos(rng.range_inclusive(low, high.max(low)))
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{Just, prop_assert, prop_oneof, proptest};

    fn backoff(jitter: Jitter) -> Backoff {
        Backoff::new(Config {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
            max_attempts: 5,
            jitter,
        })
        .unwrap()
    }

    #[test]
    fn without_jitter_doubles_up_to_the_cap() {
        let b = backoff(Jitter::None);
        let mut rng = Rng::seeded(0);
        let delays: Vec<_> = (1..=7)
            .map(|n| b.delay(n, Duration::ZERO, &mut rng))
            .collect();
        let ms: Vec<_> = delays.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, vec![100, 200, 400, 800, 1600, 2000, 2000]);
    }

    #[test]
    fn retry_after_is_a_floor() {
        let b = backoff(Jitter::Full);
        assert_eq!(
            b.wait(Duration::from_millis(10), Some(Duration::from_secs(5))),
            Duration::from_secs(5)
        );
        assert_eq!(
            b.wait(Duration::from_millis(10), None),
            Duration::from_millis(10)
        );
    }

    #[test]
    fn constructor_names_the_bad_field() {
        let cap_below_base = Config {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(1),
            ..Config::default()
        };
        assert_eq!(Backoff::new(cap_below_base).unwrap_err().field, "retry.cap");
        let zero_base = Config {
            base: Duration::ZERO,
            ..Config::default()
        };
        assert_eq!(Backoff::new(zero_base).unwrap_err().field, "retry.base");
        let no_attempts = Config {
            max_attempts: 0,
            ..Config::default()
        };
        assert_eq!(
            Backoff::new(no_attempts).unwrap_err().field,
            "retry.max_attempts"
        );
    }

    /// Mean, smallest and largest of `n` draws of retry `retry` after `previous`.
    fn spread(b: &Backoff, retry: u32, previous: Duration, n: u32) -> (f64, f64, f64) {
        let mut rng = Rng::seeded(42);
        let draws: Vec<f64> = (0..n)
            .map(|_| b.delay(retry, previous, &mut rng).as_secs_f64())
            .collect();
        let mean = draws.iter().sum::<f64>() / f64::from(n);
        let low = draws.iter().copied().fold(f64::MAX, f64::min);
        let high = draws.iter().copied().fold(0.0, f64::max);
        (mean, low, high)
    }

    #[test]
    fn full_jitter_spreads_uniformly_over_zero_to_the_exponential_ceiling() {
        let b = backoff(Jitter::Full);
        for (retry, ceiling) in [(1, 0.1), (3, 0.4), (6, 2.0)] {
            let (mean, low, high) = spread(&b, retry, Duration::ZERO, 10_000);
            assert!(
                (mean - ceiling / 2.0).abs() < ceiling * 0.03,
                "{retry}: {mean}"
            );
            assert!(low < ceiling * 0.01 && high > ceiling * 0.99, "{retry}");
        }
    }

    #[test]
    fn decorrelated_jitter_spreads_over_base_to_three_times_the_previous_delay() {
        let b = backoff(Jitter::Decorrelated);
        for (previous_ms, high_bound) in [(0, 0.3), (300, 0.9), (1_000, 2.0)] {
            let previous = Duration::from_millis(previous_ms);
            let (mean, low, high) = spread(&b, 2, previous, 10_000);
            let expected = (0.1 + high_bound) / 2.0;
            assert!(
                (mean - expected).abs() < expected * 0.03,
                "{previous_ms}: {mean}"
            );
            assert!(
                low < 0.1 + 0.01 && high > high_bound * 0.99,
                "{previous_ms}"
            );
        }
    }

    proptest! {
        #[test]
        fn delays_stay_within_zero_and_cap(
            base_ms in 1u64..5_000,
            extra_ms in 0u64..60_000,
            retry in 0u32..200,
            previous_ms in 0u64..1_000_000,
            seed: u64,
            jitter in prop_oneof![Just(Jitter::None), Just(Jitter::Full), Just(Jitter::Decorrelated)],
        ) {
            let config = Config {
                base: Duration::from_millis(base_ms),
                cap: Duration::from_millis(base_ms + extra_ms),
                max_attempts: 3,
                jitter,
            };
            let b = Backoff::new(config).unwrap();
            let mut rng = Rng::seeded(seed);
            let d = b.delay(retry, Duration::from_millis(previous_ms), &mut rng);
            prop_assert!(d <= config.cap);
            if jitter == Jitter::Decorrelated {
                prop_assert!(d >= config.base);
            }
        }
    }
}
