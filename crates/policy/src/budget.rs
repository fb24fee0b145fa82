//! The retry budget: retries may be at most a fraction of successful traffic.
//!
//! Why a budget and not only a maximum number of retries? With "3 retries" every
//! request makes 4 calls during an outage, and the retries themselves keep the target
//! down (a retry storm). A budget, as in Finagle and Envoy, lets each successful request
//! deposit `ratio` of a retry, plus a small reserve of `min_per_second` so that a quiet
//! service can still retry; a retry withdraws one. During a total outage nothing is
//! deposited, so retries fall to the reserve and calls per request stay near 1.
//!
//! The balance over the window ending now is
//! `min_per_second·window + ratio·deposits − withdrawals`; a retry needs a balance ≥ 1.

use std::time::Duration;

use crate::clock::Instant;
use crate::setting::{InvalidSetting, check_positive, check_range};
use crate::window::Window;

const DEPOSITS: usize = 0;
const WITHDRAWALS: usize = 1;

/// Retry budget settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// Retries allowed per successful request, in `0..=1`.
    pub ratio: f64,
    /// Retries always allowed per second, whatever the traffic, in `0..=100000`.
    pub min_per_second: f64,
    /// How long deposits and withdrawals count; > 0.
    pub window: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ratio: 0.2,
            min_per_second: 10.0,
            window: Duration::from_secs(10),
        }
    }
}

impl Config {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        check_range("budget.ratio", self.ratio, 0.0, 1.0)?;
        check_range("budget.min_per_second", self.min_per_second, 0.0, 100_000.0)?;
        check_positive("budget.window", self.window)?;
        Ok(())
    }

    /// The retries the reserve allows per window.
    pub fn reserve(&self) -> f64 {
        self.min_per_second * self.window.as_secs_f64()
    }
}

/// A retry budget over a sliding window.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    config: Config,
    window: Window<2>,
}

impl RetryBudget {
    /// A budget with validated `config`.
    pub fn new(config: Config) -> Result<Self, InvalidSetting> {
        config.validate()?;
        Ok(RetryBudget {
            config,
            window: Window::new(config.window),
        })
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Records a successful request, which earns `ratio` of a retry.
    pub fn deposit(&mut self, now: Instant) {
        self.window.add(now, DEPOSITS, 1);
    }

    /// Takes one retry if the balance allows it.
    pub fn try_withdraw(&mut self, now: Instant) -> bool {
        if self.balance(now) >= 1.0 {
            self.window.add(now, WITHDRAWALS, 1);
            true
        } else {
            false
        }
    }

    /// Whether a retry would be allowed now, without taking it.
    pub fn can_withdraw(&self, now: Instant) -> bool {
        self.balance(now) >= 1.0
    }

    /// Retries available now.
    pub fn balance(&self, now: Instant) -> f64 {
        let [deposits, withdrawals] = self.window.totals(now);
        self.config.reserve() + self.config.ratio * deposits as f64 - withdrawals as f64
    }

    /// The window's resolution: the balance counts events between `window − slot` and
    /// `window` old.
    pub fn slot(&self) -> Duration {
        self.window.slot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{any, prop_assert, proptest};

    fn at(ms: u64) -> Instant {
        Instant::from_origin(Duration::from_millis(ms))
    }

    #[test]
    fn without_successes_only_the_reserve_is_spent() {
        let mut budget = RetryBudget::new(Config {
            ratio: 0.2,
            min_per_second: 1.0,
            window: Duration::from_secs(10),
        })
        .unwrap();
        let granted = (0..100).filter(|_| budget.try_withdraw(at(0))).count();
        assert_eq!(granted, 10);
    }

    #[test]
    fn successes_earn_their_ratio() {
        let mut budget = RetryBudget::new(Config {
            ratio: 0.5,
            min_per_second: 0.0,
            window: Duration::from_secs(10),
        })
        .unwrap();
        for _ in 0..10 {
            budget.deposit(at(0));
        }
        let granted = (0..100).filter(|_| budget.try_withdraw(at(1))).count();
        assert_eq!(granted, 5);
        assert_eq!(
            (0..10).filter(|_| budget.try_withdraw(at(20_000))).count(),
            0
        );
    }

    #[test]
    fn constructor_names_the_bad_field() {
        let bad = |c: Config| RetryBudget::new(c).unwrap_err().field;
        let d = Config::default();
        assert_eq!(bad(Config { ratio: 1.5, ..d }), "budget.ratio");
        assert_eq!(bad(Config { ratio: -0.1, ..d }), "budget.ratio");
        assert_eq!(
            bad(Config {
                min_per_second: -1.0,
                ..d
            }),
            "budget.min_per_second"
        );
        assert_eq!(
            bad(Config {
                window: Duration::ZERO,
                ..d
            }),
            "budget.window"
        );
    }

    proptest! {
        /// Conservation: within any window, withdrawals never exceed the reserve plus
        /// `ratio` of the deposits made in it.
        #[test]
        fn withdrawals_never_exceed_what_was_earned(
            ratio in 0.0f64..=1.0,
            min_per_second in 0.0f64..5.0,
            ops in proptest::collection::vec((0u64..400, any::<bool>()), 1..400),
        ) {
            let config = Config { ratio, min_per_second, window: Duration::from_secs(1) };
            let mut budget = RetryBudget::new(config).unwrap();
            let mut now = 0u64;
            let mut deposits = 0u64;
            let mut withdrawals = 0u64;
            for (step_ms, is_deposit) in ops {
                now += step_ms;
                // One window of traffic at a time, so the bound is exact.
                if now >= 900 { break; }
                if is_deposit {
                    budget.deposit(at(now));
                    deposits += 1;
                } else if budget.try_withdraw(at(now)) {
                    withdrawals += 1;
                }
            }
            prop_assert!(withdrawals as f64 <= config.reserve() + ratio * deposits as f64 + 1e-9);
        }
    }
}
