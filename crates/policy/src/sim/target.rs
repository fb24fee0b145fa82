//! Simulated targets: how a model deployment answers, scripted as a fault profile.
//!
//! A target is sampled once per attempt, at the instant the attempt starts: what it
//! answers and how long it takes. The one decision that shapes the module is that a
//! profile describes the *target* and never the policy: it knows nothing of retries,
//! timeouts or breakers, so the same profile can be replayed under any policy and the
//! difference in the results is the policy's doing. The attempt's timeout is applied
//! afterwards, by [`Answer::within`].

use std::time::Duration;

use super::capacity::{Capacity, Load};
use crate::clock::Instant;
use crate::outcome::{Outcome, TimeoutKind};
use crate::rng::Rng;

/// A latency distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    /// Always this long.
    Fixed(Duration),
    /// Uniform in `[low, high]`.
    Uniform {
        /// The shortest.
        low: Duration,
        /// The longest.
        high: Duration,
    },
    /// Log-normal with this median and 99th percentile: the long right tail of LLM
    /// APIs. Draws are capped at ten times `p99`.
    LogNormal {
        /// The median.
        p50: Duration,
        /// The 99th percentile; ≥ `p50`.
        p99: Duration,
    },
}

/// The 99th percentile of the standard normal distribution.
const Z_99: f64 = 2.326_347_874;

impl Latency {
    /// A uniform latency between `low_ms` and `high_ms` milliseconds.
    pub fn uniform_ms(low_ms: u64, high_ms: u64) -> Self {
        Latency::Uniform {
            low: Duration::from_millis(low_ms),
            high: Duration::from_millis(high_ms),
        }
    }

    /// A log-normal latency with this median and 99th percentile in milliseconds.
    pub fn log_normal_ms(p50_ms: u64, p99_ms: u64) -> Self {
        Latency::LogNormal {
            p50: Duration::from_millis(p50_ms),
            p99: Duration::from_millis(p99_ms),
        }
    }

    /// One draw.
    pub fn sample(&self, rng: &mut Rng) -> Duration {
        match *self {
            Latency::Fixed(d) => d,
            Latency::Uniform { low, high } => {
                let (low, high) = (nanos(low), nanos(high));
                Duration::from_nanos(rng.range_inclusive(low, high.max(low)))
            }
            Latency::LogNormal { p50, p99 } => {
                let median = p50.as_secs_f64();
                let sigma = (p99.as_secs_f64().max(median) / median.max(1e-9)).ln() / Z_99;
                let draw = median * (sigma * standard_normal(rng)).exp();
                let capped = draw.min(p99.as_secs_f64() * 10.0).max(0.0);
                Duration::try_from_secs_f64(capped).unwrap_or(p99)
            }
        }
    }
}

/// A standard normal draw (Box–Muller).
fn standard_normal(rng: &mut Rng) -> f64 {
    let u1 = 1.0 - rng.unit(); // in (0, 1]: ln is finite
    let u2 = rng.unit();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A period during which the target fails: an outage, a 429 storm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultWindow {
    /// When it begins, from the start of the simulation.
    pub from: Duration,
    /// When it ends (exclusive).
    pub until: Duration,
    /// What the target answers during it.
    pub outcome: Outcome,
    /// The fraction of calls it answers so, in `[0, 1]`.
    pub rate: f64,
}

/// Alternating healthy and failing periods, starting healthy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flapping {
    /// How long each healthy period lasts.
    pub up: Duration,
    /// How long each failing period lasts.
    pub down: Duration,
    /// What the target answers every call while down.
    pub outcome: Outcome,
}

impl Flapping {
    fn is_down(&self, at: Duration) -> bool {
        let period = nanos(self.up.saturating_add(self.down));
        period > 0 && at.as_nanos() % u128::from(period) >= self.up.as_nanos()
    }
}

/// A fraction of calls that are much slower than usual.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slow {
    /// The fraction of successful calls that are slow, in `[0, 1]`.
    pub fraction: f64,
    /// Their latency.
    pub latency: Latency,
}

/// How a target behaves. Any `Outcome::Timeout(_)` in a profile means the target does
/// not answer at all: the attempt ends when its timeout fires.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Latency of successful answers.
    pub latency: Latency,
    /// Latency of error answers (errors are usually quick).
    pub error_latency: Latency,
    /// Independent error rates by class; their sum must not exceed 1.
    pub errors: Vec<(f64, Outcome)>,
    /// Slow successful calls.
    pub slow: Option<Slow>,
    /// Scripted failure periods, checked in order before the error rates.
    pub windows: Vec<FaultWindow>,
    /// Periodic outages.
    pub flapping: Option<Flapping>,
    /// The real context window: longer prompts get `ContextOverflow`.
    pub context_window: Option<u64>,
    /// How it degrades with the calls in flight; `None`: it does not.
    pub capacity: Option<Capacity>,
}

impl Profile {
    /// A target that always answers, with this latency.
    pub fn healthy(latency: Latency) -> Self {
        Profile {
            latency,
            error_latency: Latency::uniform_ms(20, 200),
            errors: Vec::new(),
            slow: None,
            windows: Vec::new(),
            flapping: None,
            context_window: None,
            capacity: None,
        }
    }

    /// A target that answers every call with `outcome`.
    pub fn down(outcome: Outcome) -> Self {
        let mut profile = Profile::healthy(Latency::uniform_ms(200, 2_000));
        profile.errors = vec![(1.0, outcome)];
        profile
    }
}

/// What one attempt sends to a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ask {
    /// The prompt's real size in tokens.
    pub tokens: u64,
    /// Whether the request is malformed (every target refuses it).
    pub bad: bool,
}

/// What a target does with one attempt, before the attempt's timeout is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// How long until it answers; `None` when it never does.
    pub latency: Option<Duration>,
    /// What it answers.
    pub outcome: Outcome,
}

impl Answer {
    /// When the attempt ends and how, given its `timeout`: an answer slower than the
    /// timeout (or none) becomes `Timeout(Total)` when the timeout fires.
    pub fn within(self, timeout: Duration) -> (Duration, Outcome) {
        match self.latency {
            Some(latency) if latency <= timeout => (latency, self.outcome),
            Some(_) | None => (timeout, Outcome::Timeout(TimeoutKind::Total)),
        }
    }
}

impl Profile {
    /// What the target answers to `ask` sent at `at`, with `in_flight` calls in it
    /// (this one included).
    pub fn answer(&self, at: Instant, ask: Ask, in_flight: u32, rng: &mut Rng) -> Answer {
        let answer = self.answer_unloaded(at, ask, rng);
        let Some(capacity) = self.capacity else {
            return answer;
        };
        match (capacity.load(in_flight), answer.latency) {
            (Load::Within, _) | (Load::Slowed(_), None) => answer,
            (Load::Slowed(factor), Some(latency)) => Answer {
                latency: Some(latency.mul_f64(factor)),
                ..answer
            },
            (Load::Over, _) => Answer {
                latency: Some(self.error_latency.sample(rng)),
                outcome: Outcome::Overloaded { retry_after: None },
            },
        }
    }

    fn answer_unloaded(&self, at: Instant, ask: Ask, rng: &mut Rng) -> Answer {
        let since = at.since_origin();
        let fault = if ask.bad {
            Some(Outcome::BadRequest)
        } else if self.context_window.is_some_and(|w| ask.tokens > w) {
            Some(Outcome::ContextOverflow)
        } else {
            self.scripted_fault(since, rng)
                .or_else(|| self.random_fault(rng))
        };
        match fault {
            Some(Outcome::Timeout(_)) => Answer {
                latency: None,
                outcome: Outcome::Timeout(TimeoutKind::Total),
            },
            Some(outcome) => Answer {
                latency: Some(self.error_latency.sample(rng)),
                outcome,
            },
            None => Answer {
                latency: Some(self.success_latency(rng)),
                outcome: Outcome::Ok,
            },
        }
    }

    fn scripted_fault(&self, since: Duration, rng: &mut Rng) -> Option<Outcome> {
        if let Some(flap) = &self.flapping
            && flap.is_down(since)
        {
            return Some(flap.outcome);
        }
        self.windows
            .iter()
            .find(|w| (w.from..w.until).contains(&since))
            .and_then(|w| rng.chance(w.rate).then_some(w.outcome))
    }

    fn random_fault(&self, rng: &mut Rng) -> Option<Outcome> {
        let draw = rng.unit();
        let mut cumulative = 0.0;
        for (rate, outcome) in &self.errors {
            cumulative += rate;
            if draw < cumulative {
                return Some(*outcome);
            }
        }
        None
    }

    fn success_latency(&self, rng: &mut Rng) -> Duration {
        match &self.slow {
            Some(slow) if rng.chance(slow.fraction) => slow.latency.sample(rng),
            Some(_) | None => self.latency.sample(rng),
        }
    }
}

/// A simulated target: a name and how it behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Its name, as the registry and reports show it.
    pub name: &'static str,
    /// How it behaves.
    pub profile: Profile,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_normal_hits_its_percentiles() {
        let latency = Latency::log_normal_ms(1_000, 8_000);
        let mut rng = Rng::seeded(9);
        let mut draws: Vec<Duration> = (0..20_000).map(|_| latency.sample(&mut rng)).collect();
        draws.sort_unstable();
        let p50 = draws[10_000].as_secs_f64();
        let p99 = draws[19_800].as_secs_f64();
        assert!((0.9..1.1).contains(&p50), "{p50}");
        assert!((6.5..9.5).contains(&p99), "{p99}");
    }

    #[test]
    fn flapping_starts_up_then_goes_down() {
        let flap = Flapping {
            up: Duration::from_secs(10),
            down: Duration::from_secs(5),
            outcome: Outcome::Connection,
        };
        assert!(!flap.is_down(Duration::from_secs(9)));
        assert!(flap.is_down(Duration::from_secs(10)));
        assert!(!flap.is_down(Duration::from_secs(15)));
    }

    #[test]
    fn a_hang_becomes_a_timeout_when_the_timeout_fires() {
        let profile = Profile::down(Outcome::Timeout(TimeoutKind::FirstByte));
        let answer = profile.answer(
            Instant::ZERO,
            Ask {
                tokens: 10,
                bad: false,
            },
            1,
            &mut Rng::seeded(1),
        );
        let timeout = Duration::from_secs(3);
        assert_eq!(
            answer.within(timeout),
            (timeout, Outcome::Timeout(TimeoutKind::Total))
        );
    }
}
