//! Rate limits: at most `limit` units (requests, or tokens) per `per`.
//!
//! A token bucket refilled continuously at `limit / per`, holding at most `burst` units
//! (by default `limit`: a full window's worth may arrive at once). It answers with how
//! long to wait rather than only "no", so that the pipeline can choose between waiting
//! (if the deadline allows) and moving to another target.
//!
//! A limiter may also be *shared* by several nodes (`[cluster] share_health`): then it
//! does not refill on its own; its units are granted in small batches from one bucket
//! that every node draws from (the cluster crate), and a call short of units waits for
//! the next grant. The node's limiter stays the one every call asks, so a call never
//! waits on the shared store itself; if the store cannot be reached, the limiter goes
//! back to refilling locally ([`RateLimiter::unshare`]).

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
    /// `Some` while units come from grants of a shared bucket, not from the clock.
    shared: Option<Shared>,
}

/// A shared limiter's state between grants.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Shared {
    /// How long a call short of units is told to wait: the time to the next grant.
    wait: Duration,
    /// The costs refused since the last grant, added up: the calls waiting now, so
    /// that the next grant covers them even when they need more than a batch (a
    /// burst the shared bucket can serve, or one call larger than a batch).
    short_of: u64,
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
            shared: None,
        })
    }

    /// Units a full bucket holds.
    pub fn capacity(&self) -> u64 {
        self.capacity as u64
    }

    /// Units earned per second when refilling on its own.
    pub fn per_second(&self) -> f64 {
        1e9 / self.nanos_per_unit
    }

    /// Takes units only from grants of a shared bucket from now on, dropping what it
    /// holds (those were earned locally, outside the shared limit). A call short of
    /// units is told to wait `wait`: when the next grant is due. Sharing again changes
    /// only the wait.
    pub fn share(&mut self, wait: Duration) {
        match &mut self.shared {
            Some(shared) => shared.wait = wait,
            None => {
                self.available = 0.0;
                self.shared = Some(Shared { wait, short_of: 0 });
            }
        }
    }

    /// Refills on its own again from `now`, keeping the granted units it holds: what a
    /// node does when the shared bucket cannot be reached.
    pub fn unshare(&mut self, now: Instant) {
        if self.shared.take().is_some() {
            self.updated = self.updated.max(now);
        }
    }

    /// Whether its units come from a shared bucket.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Units to ask the shared bucket for so as to hold `batch`, or what the calls
    /// refused since the last grant need if more (at most a full bucket): 0 when it
    /// holds enough or is not shared.
    pub fn wanted(&self, batch: u64) -> u64 {
        let Some(shared) = self.shared else {
            return 0;
        };
        let target = batch.max(shared.short_of).min(self.capacity as u64) as f64;
        (target - self.available).max(0.0).ceil() as u64
    }

    /// Adds units granted by the shared bucket; ignored when not shared.
    pub fn grant(&mut self, units: u64) {
        if let Some(shared) = &mut self.shared {
            shared.short_of = 0;
            self.available = (self.available + units as f64).min(self.capacity);
        }
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
        } else if let Some(shared) = &mut self.shared {
            shared.short_of = shared.short_of.saturating_add(cost as u64);
            Decision::Wait(shared.wait)
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
        if self.shared.is_some() {
            return;
        }
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
    fn a_shared_limiter_spends_only_what_it_was_granted() {
        let mut limiter = RateLimiter::new(Config::per_minute(600), at(0)).unwrap();
        let wait = Duration::from_millis(50);
        limiter.share(wait);
        // The local burst is dropped and time earns nothing.
        assert_eq!(limiter.try_acquire(at(0), 1), Decision::Wait(wait));
        assert_eq!(limiter.try_acquire(at(60_000), 1), Decision::Wait(wait));
        assert_eq!(limiter.wanted(2), 2);
        limiter.grant(2);
        assert_eq!(limiter.wanted(2), 0);
        assert_eq!(limiter.try_acquire(at(60_000), 1), Decision::Granted);
        assert_eq!(limiter.try_acquire(at(60_000), 1), Decision::Granted);
        assert_eq!(limiter.try_acquire(at(60_000), 1), Decision::Wait(wait));
        // What the refused calls need is asked for, even beyond a batch.
        assert!(matches!(
            limiter.try_acquire(at(60_000), 40),
            Decision::Wait(_)
        ));
        assert_eq!(limiter.wanted(2), 41);
        assert_eq!(limiter.wanted(100), 100);
        limiter.grant(40);
        assert_eq!(limiter.try_acquire(at(60_000), 40), Decision::Granted);
    }

    #[test]
    fn an_unshared_limiter_refills_from_what_it_holds() {
        let mut limiter = RateLimiter::new(Config::per_minute(600), at(0)).unwrap();
        limiter.share(Duration::from_millis(50));
        limiter.grant(1);
        limiter.unshare(at(1_000));
        assert!(!limiter.is_shared());
        assert_eq!(limiter.wanted(5), 0);
        // 1 held, plus 10 per second from the moment it stopped sharing; no full burst.
        assert!((limiter.available(at(2_000)) - 11.0).abs() < 1e-6);
        limiter.grant(100);
        assert!((limiter.available(at(2_000)) - 11.0).abs() < 1e-6);
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
