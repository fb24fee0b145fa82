//! The life of one alert: inactive → pending → firing → resolved, as a pure function
//! of its previous state, a reading and the time.
//!
//! The decision: hysteresis on the way out. An alert fires when its value crosses the
//! threshold and stays across for `for`; once firing, it resolves only when the value
//! is back past the threshold by [`HYSTERESIS`] of it (or there is no data any more),
//! so a value hovering at the threshold gives one firing and one resolved notice, not
//! a notice per evaluation.

use holdfast_config::AlertRule;
use holdfast_policy::Instant;
use serde::Serialize;

use super::eval::Reading;

/// How far back past the threshold a firing alert's value must go to resolve, as a
/// share of the threshold.
pub(crate) const HYSTERESIS: f64 = 0.1;

/// Where an alert is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Phase {
    /// The condition does not hold.
    Inactive,
    /// The condition holds, since `since`, not yet for `for`.
    Pending { since: Instant },
    /// The alert fired at `since` (`unix_ms` on the wall clock).
    Firing { since: Instant, unix_ms: u64 },
}

/// An alert's state, as the dashboard shows it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AlertState {
    pub(crate) phase: Phase,
    /// The last value read, if there was data.
    pub(crate) value: Option<f64>,
    pub(crate) eta: Option<f64>,
    /// When it last resolved, while it has not been pending or firing since.
    pub(crate) resolved_unix_ms: Option<u64>,
}

impl Default for AlertState {
    fn default() -> Self {
        AlertState {
            phase: Phase::Inactive,
            value: None,
            eta: None,
            resolved_unix_ms: None,
        }
    }
}

/// A notice-worthy change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Change {
    Firing,
    Resolved,
}

/// A transition of one alert.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Transition {
    pub(crate) change: Change,
    /// The value that caused it (the last value seen, for a resolve without data).
    pub(crate) value: Option<f64>,
    pub(crate) eta: Option<f64>,
    pub(crate) started_unix_ms: u64,
    pub(crate) resolved_unix_ms: Option<u64>,
}

impl AlertState {
    /// The state after `reading` at `now` (`unix_ms` on the wall clock), and the
    /// transition to announce, if any.
    pub(crate) fn step(
        &self,
        rule: &AlertRule,
        reading: Reading,
        now: Instant,
        unix_ms: u64,
    ) -> (AlertState, Option<Transition>) {
        let (value, eta) = match reading {
            Reading::Value { value, eta } => (Some(value), eta),
            Reading::NoData => (None, None),
        };
        let crossed = value.is_some_and(|v| crosses(rule, v));
        let cleared = value.is_none_or(|v| clears(rule, v));
        let mut next = AlertState {
            phase: self.phase,
            value: value.or(self.value),
            eta,
            resolved_unix_ms: self.resolved_unix_ms,
        };
        let mut transition = None;
        match self.phase {
            Phase::Inactive | Phase::Pending { .. } if !crossed => next.phase = Phase::Inactive,
            Phase::Inactive | Phase::Pending { .. } => {
                let since = match self.phase {
                    Phase::Pending { since } => since,
                    Phase::Inactive | Phase::Firing { .. } => now,
                };
                next.resolved_unix_ms = None;
                if now.saturating_duration_since(since) >= rule.for_duration {
                    next.phase = Phase::Firing {
                        since: now,
                        unix_ms,
                    };
                    transition = Some(Transition {
                        change: Change::Firing,
                        value,
                        eta,
                        started_unix_ms: unix_ms,
                        resolved_unix_ms: None,
                    });
                } else {
                    next.phase = Phase::Pending { since };
                }
            }
            Phase::Firing {
                unix_ms: started, ..
            } if cleared => {
                next.phase = Phase::Inactive;
                next.resolved_unix_ms = Some(unix_ms);
                transition = Some(Transition {
                    change: Change::Resolved,
                    value: next.value,
                    eta,
                    started_unix_ms: started,
                    resolved_unix_ms: Some(unix_ms),
                });
            }
            Phase::Firing { .. } => {}
        }
        (next, transition)
    }

    /// `inactive`, `pending`, `firing` or `resolved` (inactive after firing).
    pub(crate) fn name(&self) -> &'static str {
        match self.phase {
            Phase::Inactive if self.resolved_unix_ms.is_some() => "resolved",
            Phase::Inactive => "inactive",
            Phase::Pending { .. } => "pending",
            Phase::Firing { .. } => "firing",
        }
    }
}

/// Whether `value` is across the threshold (the alert's condition holds).
fn crosses(rule: &AlertRule, value: f64) -> bool {
    if rule.fires_above() {
        value > rule.threshold
    } else {
        value < rule.threshold
    }
}

/// Whether `value` is back past the threshold by the hysteresis band.
fn clears(rule: &AlertRule, value: f64) -> bool {
    let band = rule.threshold.abs() * HYSTERESIS;
    if rule.fires_above() {
        value <= rule.threshold - band
    } else {
        value >= rule.threshold + band
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use holdfast_config::{AlertKind, AlertRule};

    use super::*;

    fn at(secs: u64) -> Instant {
        Instant::from_origin(Duration::from_secs(secs))
    }

    fn value(v: f64) -> Reading {
        Reading::Value {
            value: v,
            eta: None,
        }
    }

    /// Runs `readings`, one a second, and returns the state names and changes.
    fn run(rule: &AlertRule, readings: &[Reading]) -> Vec<(&'static str, Option<Change>)> {
        let mut state = AlertState::default();
        let mut out = Vec::new();
        for (i, reading) in readings.iter().enumerate() {
            let (next, transition) = state.step(rule, *reading, at(i as u64), i as u64 * 1000);
            out.push((next.name(), transition.map(|t| t.change)));
            state = next;
        }
        out
    }

    #[test]
    fn fires_after_for_and_resolves_once_back_past_the_band() {
        let rule = AlertRule {
            for_duration: Duration::from_secs(2),
            ..AlertRule::default_for(AlertKind::RetryRate)
        };
        let states = run(
            &rule,
            &[
                value(0.05),
                value(0.2),
                value(0.2),
                value(0.2),
                value(0.095),
                value(0.05),
            ],
        );
        use Change::{Firing, Resolved};
        assert_eq!(
            states,
            vec![
                ("inactive", None),
                ("pending", None),
                ("pending", None),
                ("firing", Some(Firing)),
                // 0.095 is below 0.1 but inside the band: still firing.
                ("firing", None),
                ("resolved", Some(Resolved)),
            ]
        );
    }

    #[test]
    fn a_dip_while_pending_starts_over_and_no_data_never_fires() {
        let rule = AlertRule {
            for_duration: Duration::from_secs(1),
            ..AlertRule::default_for(AlertKind::RetryRate)
        };
        let states = run(
            &rule,
            &[
                value(0.5),
                value(0.01),
                value(0.5),
                Reading::NoData,
                Reading::NoData,
            ],
        );
        assert!(
            states.iter().all(|(_, change)| change.is_none()),
            "{states:?}"
        );
    }

    #[test]
    fn below_rules_fire_low_and_a_zero_threshold_fires_on_any_count() {
        let success = AlertRule {
            for_duration: Duration::ZERO,
            ..AlertRule::default_for(AlertKind::SuccessAfterRetry)
        };
        let states = run(&success, &[value(0.5), value(0.85), value(0.9)]);
        assert_eq!(states[0], ("firing", Some(Change::Firing)));
        assert_eq!(states[1], ("firing", None));
        assert_eq!(states[2], ("resolved", Some(Change::Resolved)));
        let breaker = AlertRule {
            for_duration: Duration::ZERO,
            ..AlertRule::default_for(AlertKind::BreakerOpen)
        };
        let states = run(&breaker, &[value(0.0), value(1.0), value(0.0)]);
        let changes: Vec<_> = states.iter().map(|s| s.1).collect();
        assert_eq!(
            changes,
            vec![None, Some(Change::Firing), Some(Change::Resolved)]
        );
    }

    #[test]
    fn a_firing_alert_resolves_when_its_data_goes_away() {
        let rule = AlertRule {
            for_duration: Duration::ZERO,
            ..AlertRule::default_for(AlertKind::RetryRate)
        };
        let states = run(&rule, &[value(0.5), Reading::NoData]);
        assert_eq!(states[1], ("resolved", Some(Change::Resolved)));
    }
}
