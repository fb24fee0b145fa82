//! Hedging: when an attempt is slower than usual, start a second one elsewhere.
//!
//! Tail latency of LLM APIs is long: the p99 is often ten times the p50. After an
//! attempt has run longer than the target's `after_percentile` latency, the pipeline may
//! start the same request on the next target and keep whichever answers first,
//! cancelling the other. Hedges cost money, so a hedge budget caps them at a fraction of
//! calls. Latencies are kept in a small log-scale histogram per target (about 19%
//! resolution, fixed memory) over two rotating windows.

use std::time::Duration;

use crate::clock::Instant;
use crate::setting::{InvalidSetting, check_range};
use crate::window::Window;

/// Hedging settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// Hedge after the attempt outlives this percentile of the target's latency; in
    /// `[50, 99.9]`.
    pub after_percentile: f64,
    /// Hedges allowed as a fraction of calls, in `[0, 1]`.
    pub budget: f64,
    /// Never hedge sooner than this.
    pub min_delay: Duration,
    /// Latencies the target must have shown before hedging starts; ≥ 1.
    pub min_samples: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            after_percentile: 95.0,
            budget: 0.05,
            min_delay: Duration::from_millis(50),
            min_samples: 20,
        }
    }
}

impl Config {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        check_range("hedge.after_percentile", self.after_percentile, 50.0, 99.9)?;
        check_range("hedge.budget", self.budget, 0.0, 1.0)?;
        if self.min_samples == 0 {
            return Err(InvalidSetting::new(
                "hedge.min_samples",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

const SUB_BUCKETS: u32 = 4;
const OCTAVES: u32 = 40;
const BUCKETS: usize = (SUB_BUCKETS * OCTAVES) as usize;

/// Recent latencies of one target, for percentiles.
#[derive(Debug, Clone)]
pub struct LatencyTracker {
    rotate_every: Duration,
    rotated_at: Instant,
    current: Box<[u32; BUCKETS]>,
    previous: Box<[u32; BUCKETS]>,
}

impl LatencyTracker {
    /// A tracker that forgets latencies older than two `rotate_every`s.
    pub fn new(rotate_every: Duration, now: Instant) -> Self {
        LatencyTracker {
            rotate_every,
            rotated_at: now,
            current: Box::new([0; BUCKETS]),
            previous: Box::new([0; BUCKETS]),
        }
    }

    /// Records one latency.
    pub fn record(&mut self, now: Instant, latency: Duration) {
        self.rotate(now);
        let slot = &mut self.current[bucket(latency)];
        *slot = slot.saturating_add(1);
    }

    /// The `percentile` (0..=100) latency, if at least `min_samples` were recorded.
    pub fn percentile(&self, percentile: f64, min_samples: u32) -> Option<Duration> {
        let count = |i: usize| u64::from(self.current[i]) + u64::from(self.previous[i]);
        let total: u64 = (0..BUCKETS).map(count).sum();
        if total < u64::from(min_samples) || total == 0 {
            return None;
        }
        let rank = ((percentile / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for i in 0..BUCKETS {
            seen += count(i);
            if seen >= rank {
                return Some(upper_bound(i));
            }
        }
        Some(upper_bound(BUCKETS - 1))
    }

    fn rotate(&mut self, now: Instant) {
        let age = now.saturating_duration_since(self.rotated_at);
        if age < self.rotate_every {
            return;
        }
        if age >= self.rotate_every.saturating_mul(2) {
            *self.previous = [0; BUCKETS];
        } else {
            std::mem::swap(&mut self.previous, &mut self.current);
        }
        *self.current = [0; BUCKETS];
        self.rotated_at = now;
    }
}

/// Bucket of a latency: `SUB_BUCKETS` per doubling, starting at 1 µs.
fn bucket(latency: Duration) -> usize {
    let micros = u64::try_from(latency.as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    let octave = 63 - micros.leading_zeros();
    let fraction = if octave >= 2 {
        ((micros >> (octave - 2)) & 0b11) as u32
    } else {
        ((micros << (2 - octave)) & 0b11) as u32
    };
    ((octave * SUB_BUCKETS + fraction) as usize).min(BUCKETS - 1)
}

fn upper_bound(bucket: usize) -> Duration {
    let octave = bucket as u32 / SUB_BUCKETS;
    let fraction = u64::from(bucket as u32 % SUB_BUCKETS);
    let low = (1u64 << octave) as f64;
    Duration::from_micros((low * (1.0 + (fraction + 1) as f64 / SUB_BUCKETS as f64)) as u64)
}

/// Caps hedges at a fraction of calls over a sliding window.
#[derive(Debug, Clone)]
pub struct HedgeBudget {
    ratio: f64,
    window: Window<2>,
}

impl HedgeBudget {
    /// A budget of `ratio` hedges per call over `window`.
    pub fn new(ratio: f64, window: Duration) -> Self {
        HedgeBudget {
            ratio,
            window: Window::new(window),
        }
    }

    /// Counts one call.
    pub fn record_call(&mut self, now: Instant) {
        self.window.add(now, 0, 1);
    }

    /// Takes one hedge if the budget allows it.
    pub fn try_hedge(&mut self, now: Instant) -> bool {
        let [calls, hedges] = self.window.totals(now);
        if (hedges + 1) as f64 <= self.ratio * calls as f64 {
            self.window.add(now, 1, 1);
            true
        } else {
            false
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
    fn percentile_is_within_the_bucket_resolution() {
        let mut t = LatencyTracker::new(Duration::from_secs(60), at(0));
        for ms in 1..=100 {
            t.record(at(0), Duration::from_millis(ms));
        }
        let p95 = t.percentile(95.0, 20).unwrap();
        assert!(
            p95 >= Duration::from_millis(95) && p95 <= Duration::from_millis(120),
            "{p95:?}"
        );
        let p50 = t.percentile(50.0, 20).unwrap();
        assert!(
            p50 >= Duration::from_millis(50) && p50 <= Duration::from_millis(62),
            "{p50:?}"
        );
    }

    #[test]
    fn too_few_samples_means_no_hedge_delay() {
        let mut t = LatencyTracker::new(Duration::from_secs(60), at(0));
        t.record(at(0), Duration::from_millis(5));
        assert_eq!(t.percentile(95.0, 20), None);
    }

    #[test]
    fn old_latencies_are_forgotten() {
        let mut t = LatencyTracker::new(Duration::from_secs(1), at(0));
        t.record(at(0), Duration::from_secs(10));
        t.record(at(2_500), Duration::from_millis(1));
        assert!(t.percentile(100.0, 1).unwrap() < Duration::from_millis(2));
    }

    #[test]
    fn buckets_are_monotonic() {
        let mut last = 0;
        for micros in [1u64, 2, 3, 5, 8, 100, 1_000, 10_000, 1_000_000, 100_000_000] {
            let b = bucket(Duration::from_micros(micros));
            assert!(b >= last);
            assert!(upper_bound(b) >= Duration::from_micros(micros));
            last = b;
        }
    }

    #[test]
    fn hedge_budget_caps_the_fraction() {
        let mut b = HedgeBudget::new(0.1, Duration::from_secs(10));
        let mut hedges = 0;
        for _ in 0..100 {
            b.record_call(at(0));
            if b.try_hedge(at(0)) {
                hedges += 1;
            }
        }
        assert_eq!(hedges, 10);
    }

    #[test]
    fn constructor_names_the_bad_field() {
        let d = Config::default();
        assert_eq!(
            Config {
                after_percentile: 10.0,
                ..d
            }
            .validate()
            .unwrap_err()
            .field,
            "hedge.after_percentile"
        );
        assert_eq!(
            Config { budget: 2.0, ..d }.validate().unwrap_err().field,
            "hedge.budget"
        );
    }
}
