//! `[policies.NAME]`: how calls retry, fail over and hedge.
//!
//! Every field is optional and defaults to the policy crate's own default, so
//! `[policies.patient]` with only `retry = { max_attempts = 5 }` is a complete policy.
//! Ranges are checked by the policy crate's constructors, which name the field; the
//! ranges documented here are theirs.

use serde::Deserialize;

use crate::units::HumanDuration;

/// `[policies.NAME]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Retries on one target, before falling back to the next.
    pub retry: Retry,
    /// The retry budget that keeps an outage from becoming a retry storm. The `default`
    /// policy's budget is also the global budget over all targets; every policy's
    /// budget applies to each target its routes use.
    pub budget: Budget,
    /// The circuit breaker of each target the policy's routes use.
    pub breaker: Breaker,
    /// When a target answers "retry after N" with N above this, the call moves to the
    /// next target at once instead of waiting (when there is one). Default `"2s"`.
    pub fail_over_when_retry_after_exceeds: HumanDuration,
    /// No attempt starts with less time than this left before the request's deadline.
    /// Default `"50ms"`.
    pub min_attempt_time: HumanDuration,
    /// The longest Retry-After honoured: a longer one (a day, from a misbehaving proxy)
    /// keeps the target out for this long only; > 0. Default `"5m"`.
    pub max_retry_after: HumanDuration,
    /// Hedging: a second attempt on the next target when the first is slow. Default:
    /// off; writing the table turns it on.
    pub hedge: Option<Hedge>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            retry: Retry::default(),
            budget: Budget::default(),
            breaker: Breaker::default(),
            fail_over_when_retry_after_exceeds: HumanDuration::secs(2),
            min_attempt_time: HumanDuration::millis(50),
            max_retry_after: HumanDuration::secs(300),
            hedge: None,
        }
    }
}

/// `retry = { max_attempts = 3, base = "200ms", cap = "10s", jitter = "full" }`:
/// exponential backoff, `min(cap, base·2ⁿ)` before jitter. Only outcomes that can
/// succeed on retry are retried (never auth errors or bad requests); a Retry-After
/// from the target is honoured as a floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retry {
    /// Attempts on one target, the first included; 1..=100. Default 3.
    pub max_attempts: u32,
    /// The first delay's scale; > 0 and ≤ `cap`. Default `"200ms"`.
    pub base: HumanDuration,
    /// The longest delay; ≥ `base`. Default `"10s"`.
    pub cap: HumanDuration,
    /// How delays are randomised. Default `"full"`.
    pub jitter: Jitter,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            max_attempts: 3,
            base: HumanDuration::millis(200),
            cap: HumanDuration::secs(10),
            jitter: Jitter::Full,
        }
    }
}

/// How retry delays are randomised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Jitter {
    /// `"full"`: a uniform draw between 0 and the exponential delay. Spreads load best.
    #[default]
    Full,
    /// `"decorrelated"`: a draw between `base` and three times the previous delay;
    /// suits long outages.
    Decorrelated,
    /// `"none"`: the exponential delay exactly. Clients that failed together retry
    /// together; for comparisons only.
    None,
}

/// `budget = { ratio = 0.2, min_per_second = 10, window = "10s" }`: each successful
/// request earns `ratio` of a retry, plus a reserve of `min_per_second`; a retry spends
/// one. During a total outage retries fall to the reserve.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Budget {
    /// Whether the budget applies. Default `true`.
    pub enabled: bool,
    /// Retries earned per successful request; 0..=1. Default 0.2.
    pub ratio: f64,
    /// Retries always allowed per second, whatever the traffic; 0..=100000. Default 10.
    pub min_per_second: f64,
    /// How long earnings and spending count; > 0. Default `"10s"`.
    pub window: HumanDuration,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            enabled: true,
            ratio: 0.2,
            min_per_second: 10.0,
            window: HumanDuration::secs(10),
        }
    }
}

/// `breaker = { failure_rate = 0.5, slow_call_rate = 0.8, slow_call = "30s",
/// window = "30s", min_calls = 20, open_for = "60s", max_open_for = "5m",
/// half_open_probes = 3 }`: stops traffic to a failing target. It opens when the
/// failure or slow-call rate over `window` reaches its threshold (once the window holds
/// `min_calls`), stays open `open_for` (doubling on each repeated trip up to
/// `max_open_for`), then lets `half_open_probes` probes decide. It also opens at once on
/// `consecutive_failures` failures in a row, or on a burst of failures in
/// `short_window` too significant to be chance.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Breaker {
    /// Whether the breaker applies. Default `true`.
    pub enabled: bool,
    /// Failure rate that opens the breaker; above 0, at most 1. Default 0.5.
    pub failure_rate: f64,
    /// Slow-call rate that opens the breaker; above 0, at most 1. Default 0.8.
    pub slow_call_rate: f64,
    /// A call at least this long is slow; > 0. Default `"30s"`.
    pub slow_call: HumanDuration,
    /// How far back outcomes count; > 0. Default `"30s"`.
    pub window: HumanDuration,
    /// Calls the window must hold before rates are judged; ≥ 1. Default 20.
    pub min_calls: u32,
    /// How long the breaker stays open after its first trip, unless an active probe
    /// (the target's `probe`) closes it sooner; > 0. Default `"5s"`.
    pub open_for: HumanDuration,
    /// The longest it stays open: the open time doubles with each failed half-open
    /// probe in a row up to this, so that recovery is never more than this late;
    /// ≥ `open_for`. Default `"20s"`, or `open_for` when that is longer.
    pub max_open_for: Option<HumanDuration>,
    /// Probes let through while half-open, and successes needed to close; 1..=1000.
    /// Default 3.
    pub half_open_probes: u32,
    /// Failures in a row that open the breaker at once, whatever the window holds
    /// (a total outage is cut off after this many calls at any traffic); 0 turns it
    /// off. Default 20 (at 30% failures a run of 10 happens often enough, among
    /// thousands of calls, to trip a healthy-enough target; a run of 20 almost never).
    /// A run counts only once it outnumbers the calls still running.
    pub consecutive_failures: u32,
    /// A short recent window judged apart from `window`: it opens the breaker when the
    /// calls started in it failed so often that a target failing at `failure_rate`
    /// would show as many failures with a probability below `short_window_alpha` (and
    /// at least 5), so a total outage is cut off within about a second from 20 calls/s
    /// up, while a steady 20% of failures does not trip it. `"0s"` turns it off.
    /// Default `"1s"`.
    pub short_window: HumanDuration,
    /// The significance of the short window's test; above 0, below 0.5. Default 0.001
    /// (ten failures of ten calls at the default `failure_rate`: below ten calls per
    /// `short_window` it cannot conclude, and the run of `consecutive_failures` trips
    /// instead).
    pub short_window_alpha: f64,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            enabled: true,
            failure_rate: 0.5,
            slow_call_rate: 0.8,
            slow_call: HumanDuration::secs(30),
            window: HumanDuration::secs(30),
            min_calls: 20,
            open_for: HumanDuration::secs(5),
            max_open_for: None,
            half_open_probes: 3,
            consecutive_failures: 20,
            short_window: HumanDuration::secs(1),
            short_window_alpha: 0.001,
        }
    }
}

/// `hedge = { after_percentile = 95, budget = 0.05, min_delay = "50ms" }`: when an
/// attempt outlives the target's usual latency, start the same request on the next
/// target and keep whichever answers first. Costs money, hence the budget.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hedge {
    /// Hedge once the attempt outlives this percentile of the target's recent
    /// latency; 50..=99.9. Default 95.
    pub after_percentile: f64,
    /// Hedges allowed, as a fraction of calls; 0..=1. Default 0.05.
    pub budget: f64,
    /// Never hedge sooner than this. Default `"50ms"`.
    pub min_delay: HumanDuration,
    /// Latencies the target must have shown before hedging starts; ≥ 1. Default 20.
    pub min_samples: u32,
}

impl Default for Hedge {
    fn default() -> Self {
        Hedge {
            after_percentile: 95.0,
            budget: 0.05,
            min_delay: HumanDuration::millis(50),
            min_samples: 20,
        }
    }
}
