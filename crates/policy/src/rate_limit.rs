//! Rate limits: at most `limit` units (requests, or tokens) per `per`.
//!
//! A token bucket refilled continuously at `limit / per`, holding at most `burst` units
//! (by default `limit`: a full window's worth may arrive at once). It answers with how
//! long to wait rather than only "no", so that the pipeline can choose between waiting
//! (if the deadline allows) and moving to another target.

use std::time::Duration;

use crate::clock::Instant;
use crate::setting::{InvalidSetting, check_positive};

/// Rate limit settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// Units allowed per `per`; > 0.
    pub limit: u64,
    /// The period `limit` refers to; > 0.
    pub per: Duration,
    /// Units that may be spent at once; ≥ 1, defaults to `limit`.
    pub burst: Option<u64>,
}

impl Config {
    /// `limit` units per minute.
    pub fn per_minute(limit: u64) -> Self {
        Config {
            limit,
            per: Duration::from_secs(60),
            burst: None,
        }
    }
}

/// The limiter's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Granted; the units are spent.
    Granted,
    /// Not now; enough units will be there after this wait.
    Wait(Duration),
    /// Never: the request costs more than the bucket can hold.
    TooLarge,
}

/// A token-bucket rate limiter.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    /// Nanoseconds to earn one unit.
    nanos_per_unit: f64,
    capacity: f64,
    available: f64,
    updated: Instant,
}

impl RateLimiter {
    /// A full bucket with validated `config`.
    pub fn new(config: Config, now: Instant) -> Result<Self, InvalidSetting> {
        if config.limit == 0 {
            return Err(InvalidSetting::new(
                "rate_limit.limit",
                "must be at least 1",
            ));
        }
        check_positive("rate_limit.per", config.per)?;
        let capacity = config.burst.unwrap_or(config.limit);
        if capacity == 0 {
            return Err(InvalidSetting::new(
                "rate_limit.burst",
                "must be at least 1",
            ));
        }
        Ok(RateLimiter {
            nanos_per_unit: config.per.as_nanos() as f64 / config.limit as f64,
            capacity: capacity as f64,
            available: capacity as f64,
            updated: now,
        })
    }

    /// Spends `cost` units at `now` if they are there.
    pub fn try_acquire(&mut self, now: Instant, cost: u64) -> Decision {
        let decision = self.check(now, cost);
        if decision == Decision::Granted {
            self.available -= cost as f64;
        }
        decision
    }

    /// What [`try_acquire`](Self::try_acquire) would answer at `now`, spending nothing.
    pub fn check(&mut self, now: Instant, cost: u64) -> Decision {
        let cost = cost as f64;
        if cost > self.capacity {
            return Decision::TooLarge;
        }
        self.refill(now);
        if self.available >= cost {
            Decision::Granted
        } else {
            let missing = cost - self.available;
            Decision::Wait(Duration::from_nanos(
                (missing * self.nanos_per_unit).ceil() as u64
            ))
        }
    }

    /// Returns `cost` units, for a reservation that was not used.
    pub fn refund(&mut self, now: Instant, cost: u64) {
        self.refill(now);
        self.available = (self.available + cost as f64).min(self.capacity);
    }

    /// Units available at `now`.
    pub fn available(&mut self, now: Instant) -> f64 {
        self.refill(now);
        self.available
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_nanos() as f64;
        self.available = (self.available + elapsed / self.nanos_per_unit).min(self.capacity);
        self.updated = self.updated.max(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_origin(Duration::from_millis(ms))
    }

    #[test]
    fn allows_a_burst_then_paces() {
        let mut limiter = RateLimiter::new(
            Config {
                limit: 10,
                per: Duration::from_secs(1),
                burst: None,
            },
            at(0),
        )
        .unwrap();
        for _ in 0..10 {
            assert_eq!(limiter.try_acquire(at(0), 1), Decision::Granted);
        }
        assert_eq!(
            limiter.try_acquire(at(0), 1),
            Decision::Wait(Duration::from_millis(100))
        );
        assert_eq!(limiter.try_acquire(at(100), 1), Decision::Granted);
    }

    #[test]
    fn token_costs_and_oversized_requests() {
        let mut limiter = RateLimiter::new(Config::per_minute(1_000), at(0)).unwrap();
        assert_eq!(limiter.try_acquire(at(0), 800), Decision::Granted);
        assert!(matches!(limiter.try_acquire(at(0), 300), Decision::Wait(_)));
        assert_eq!(limiter.try_acquire(at(0), 1_001), Decision::TooLarge);
        limiter.refund(at(0), 800);
        assert_eq!(limiter.try_acquire(at(0), 1_000), Decision::Granted);
    }

    #[test]
    fn never_exceeds_the_limit_over_a_window() {
        let mut limiter = RateLimiter::new(
            Config {
                limit: 50,
                per: Duration::from_secs(1),
                burst: None,
            },
            at(0),
        )
        .unwrap();
        let granted = (0..10_000)
            .filter(|i| limiter.try_acquire(at(i / 10), 1) == Decision::Granted)
            .count();
        // 1 s of traffic: the burst plus what 1 s refills.
        assert!(granted <= 100, "{granted}");
    }

    #[test]
    fn constructor_names_the_bad_field() {
        let bad = |c: Config| RateLimiter::new(c, at(0)).unwrap_err().field;
        assert_eq!(
            bad(Config {
                limit: 0,
                per: Duration::from_secs(1),
                burst: None
            }),
            "rate_limit.limit"
        );
        assert_eq!(
            bad(Config {
                limit: 1,
                per: Duration::ZERO,
                burst: None
            }),
            "rate_limit.per"
        );
        assert_eq!(
            bad(Config {
                limit: 1,
                per: Duration::from_secs(1),
                burst: Some(0)
            }),
            "rate_limit.burst"
        );
    }
}
