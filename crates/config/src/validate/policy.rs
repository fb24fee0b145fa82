//! `[policies]` and `[agents]` into the policy crate's types.
//!
//! Each part goes through the policy crate's own constructor or `validate`, whose
//! `InvalidSetting` names the field (`retry.cap`); prefixed with the policy's path it
//! points at the exact key in the file. The `default` policy always exists.

use std::collections::BTreeMap;
use std::sync::Arc;

use holdfast_policy::backoff::{self, Backoff};
use holdfast_policy::pipeline::{Policy, Settings};
use holdfast_policy::{breaker, budget, hedge};

use super::Checker;
use crate::path::FieldPath;
use crate::schema;

/// The name of the policy that always exists.
pub(crate) const DEFAULT: &str = "default";

/// A policy and the per-target parts that go with it.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// What the route's calls run under.
    pub(crate) policy: Arc<Policy>,
    /// The retry budget of each target the policy's routes use.
    pub(crate) budget: Option<budget::Config>,
    /// The breaker of each target the policy's routes use.
    pub(crate) breaker: Option<breaker::Config>,
}

/// Every policy that validated, `default` included.
pub(crate) fn all(
    c: &mut Checker<'_>,
    raw: &BTreeMap<String, schema::Policy>,
) -> BTreeMap<String, Resolved> {
    let implicit = schema::Policy::default();
    let default = (DEFAULT.to_owned(), raw.get(DEFAULT).unwrap_or(&implicit));
    let others = raw.iter().filter(|(name, _)| name.as_str() != DEFAULT);
    std::iter::once((&default.0, default.1))
        .chain(others)
        .filter_map(|(name, raw)| {
            let path = FieldPath::root("policies").key(name);
            Some((name.clone(), one(c, &path, raw)?))
        })
        .collect()
}

fn one(c: &mut Checker<'_>, path: &FieldPath, raw: &schema::Policy) -> Option<Resolved> {
    let backoff = Backoff::new(backoff_config(&raw.retry));
    let backoff = backoff.map_err(|e| c.setting(path, e)).ok();
    let budget = budget_config(c, path, &raw.budget);
    let breaker = breaker(c, path, &raw.breaker);
    let hedge = raw.hedge.map(|h| hedge::Config {
        after_percentile: h.after_percentile,
        budget: h.budget,
        min_delay: h.min_delay.0,
        min_samples: h.min_samples,
    });
    let hedge = match hedge {
        Some(h) => h
            .validate()
            .map(|()| Some(h))
            .map_err(|e| c.setting(path, e))
            .ok(),
        None => Some(None),
    };
    let policy = Policy {
        backoff: backoff?,
        fail_over_when_retry_after_exceeds: raw.fail_over_when_retry_after_exceeds.0,
        hedge: hedge?,
        min_attempt_time: raw.min_attempt_time.0,
        max_retry_after: raw.max_retry_after.0,
        // Set per route (`retry_on`).
        retry_on: holdfast_policy::pipeline::RetryOn::Same,
    };
    // Whatever else the policy crate checks of a policy as a whole.
    policy.validate().map_err(|e| c.setting(path, e)).ok()?;
    Some(Resolved {
        policy: Arc::new(policy),
        budget: budget?,
        breaker: breaker?,
    })
}

fn backoff_config(raw: &schema::Retry) -> backoff::Config {
    backoff::Config {
        base: raw.base.0,
        cap: raw.cap.0,
        max_attempts: raw.max_attempts,
        jitter: match raw.jitter {
            schema::Jitter::Full => backoff::Jitter::Full,
            schema::Jitter::Decorrelated => backoff::Jitter::Decorrelated,
            schema::Jitter::None => backoff::Jitter::None,
        },
    }
}

/// `Some(None)` when disabled, `None` when invalid.
fn budget_config(
    c: &mut Checker<'_>,
    path: &FieldPath,
    raw: &schema::Budget,
) -> Option<Option<budget::Config>> {
    if !raw.enabled {
        return Some(None);
    }
    let config = budget::Config {
        ratio: raw.ratio,
        min_per_second: raw.min_per_second,
        window: raw.window.0,
    };
    config.validate().map_err(|e| c.setting(path, e)).ok()?;
    Some(Some(config))
}

/// A breaker's longest open time when the file does not say.
const DEFAULT_MAX_OPEN_FOR: std::time::Duration = std::time::Duration::from_secs(20);

/// A breaker under `path` (`policies.NAME` or `agents`): `Some(None)` when disabled,
/// `None` when invalid.
pub(crate) fn breaker(
    c: &mut Checker<'_>,
    path: &FieldPath,
    raw: &schema::Breaker,
) -> Option<Option<breaker::Config>> {
    if !raw.enabled {
        return Some(None);
    }
    let config = breaker::Config {
        failure_rate: raw.failure_rate,
        slow_call_rate: raw.slow_call_rate,
        slow_call: raw.slow_call.0,
        window: raw.window.0,
        min_calls: raw.min_calls,
        open_for: raw.open_for.0,
        max_open_for: raw
            .max_open_for
            .map_or_else(|| DEFAULT_MAX_OPEN_FOR.max(raw.open_for.0), |set| set.0),
        half_open_probes: raw.half_open_probes,
        consecutive_failures: raw.consecutive_failures,
        short_window: raw.short_window.0,
        short_window_alpha: raw.short_window_alpha,
    };
    config.validate().map_err(|e| c.setting(path, e)).ok()?;
    Some(Some(config))
}

/// The registry's shared settings: the `default` policy's budget as the global one,
/// the agent breaker, and as hedge ratio the largest hedge budget of any policy (the
/// policy crate's default when no policy hedges). `None` when a part was invalid.
pub(crate) fn settings(
    policies: &BTreeMap<String, Resolved>,
    agent_breaker: Option<Option<breaker::Config>>,
) -> Option<Settings> {
    let default = policies.get(DEFAULT)?;
    let hedge_ratio = policies
        .values()
        .filter_map(|p| p.policy.hedge.map(|h| h.budget))
        .reduce(f64::max)
        .unwrap_or(hedge::Config::default().budget);
    Some(Settings {
        global_budget: default.budget,
        agent_breaker: agent_breaker?,
        hedge_ratio,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema repeats the policy crate's defaults so that they show in the
    /// reference; this keeps the two from drifting apart.
    #[test]
    fn schema_defaults_are_the_policy_crate_defaults() {
        let raw = schema::Policy::default();
        assert_eq!(backoff_config(&raw.retry), backoff::Config::default());
        let b = raw.budget;
        let budget = budget::Config {
            ratio: b.ratio,
            min_per_second: b.min_per_second,
            window: b.window.0,
        };
        assert_eq!(budget, budget::Config::default());
        let r = raw.breaker;
        let breaker = breaker::Config {
            failure_rate: r.failure_rate,
            slow_call_rate: r.slow_call_rate,
            slow_call: r.slow_call.0,
            window: r.window.0,
            min_calls: r.min_calls,
            open_for: r.open_for.0,
            max_open_for: r.max_open_for.map_or(DEFAULT_MAX_OPEN_FOR, |set| set.0),
            half_open_probes: r.half_open_probes,
            consecutive_failures: r.consecutive_failures,
            short_window: r.short_window.0,
            short_window_alpha: r.short_window_alpha,
        };
        assert_eq!(breaker, breaker::Config::default());
        let h = schema::Hedge::default();
        let hedge = hedge::Config {
            after_percentile: h.after_percentile,
            budget: h.budget,
            min_delay: h.min_delay.0,
            min_samples: h.min_samples,
        };
        assert_eq!(hedge, hedge::Config::default());
        let policy = Policy::new(Backoff::new(backoff::Config::default()).unwrap());
        assert_eq!(
            raw.fail_over_when_retry_after_exceeds.0,
            policy.fail_over_when_retry_after_exceeds
        );
        assert_eq!(raw.min_attempt_time.0, policy.min_attempt_time);
        assert_eq!(raw.max_retry_after.0, policy.max_retry_after);
    }
}
