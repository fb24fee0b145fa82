//! The invariants every simulated run of the holdfast policy must hold, checked from
//! its [`Trace`] alone.
//!
//! Each invariant is one function that walks the trace and returns every violation with
//! the details needed to find it (call, attempt, target, instants). The decision that
//! shapes them: each check restates its rule from the *outside*, from the actions and
//! events the pipeline emitted and the configured [`Limits`], rather than re-running the
//! mechanism it checks (a budget check that called [`RetryBudget`] would only prove that
//! the budget agrees with itself). Bounds that depend on the mechanism's resolution
//! (the budget's sliding window) say so explicitly.

use std::collections::{BTreeMap, BTreeSet};

pub use super::invariant::{Invariant, Limits, Violation};
use super::trace::{CallId, Entry, Trace};
use crate::breaker::State;
use crate::budget::{self, RetryBudget};
use crate::clock::Instant;
use crate::deadline::Deadline;
use crate::fallback::TargetId;
use crate::pipeline::{AttemptEvent, AttemptId, Next, PolicyEvent, StartAttempt};

/// State per call, indexed by call id: the simulator numbers calls densely from 0.
struct PerCall<T>(Vec<T>);

impl<T> Default for PerCall<T> {
    fn default() -> Self {
        PerCall(Vec::new())
    }
}

impl<T: Default> PerCall<T> {
    fn get_mut(&mut self, call: CallId) -> &mut T {
        let index = call.0 as usize;
        if self.0.len() <= index {
            self.0.resize_with(index + 1, T::default);
        }
        &mut self.0[index]
    }
}

/// Every check, in a fixed order.
pub fn all(trace: &Trace, limits: &Limits) -> Vec<Violation> {
    let mut violations = retries_within_budget(trace, limits);
    violations.extend(open_breaker_admits_only_probes(trace, limits));
    violations.extend(retry_after_respected(trace));
    violations.extend(non_retryable_not_retried_here(trace));
    violations.extend(attempts_within_deadline(trace));
    violations.extend(backoff_within_cap(trace, limits));
    violations.extend(every_call_ends(trace));
    violations
}

/// Retries never exceed the budget: for each retry (an attempt numbered > 1 that is
/// not a hedge) starting at `t`, the retries started in `[t − (W − slot), t]` are at
/// most `reserve + ratio × successes` finished in `[t − W, t]`. Checked for the global
/// budget over all targets, and for each target budget over that target.
pub fn retries_within_budget(trace: &Trace, limits: &Limits) -> Vec<Violation> {
    let mut retries: BTreeMap<TargetId, Vec<Instant>> = BTreeMap::new();
    let mut successes: BTreeMap<TargetId, Vec<Instant>> = BTreeMap::new();
    for record in &trace.records {
        match &record.entry {
            Entry::Started(s) if s.retry > 0 && !s.hedge => {
                retries.entry(s.target).or_default().push(record.at);
            }
            Entry::Event(PolicyEvent::Attempt(a)) if a.outcome.is_ok() => {
                successes.entry(a.target).or_default().push(record.at);
            }
            Entry::Arrived { .. }
            | Entry::Started(_)
            | Entry::WakeAt(_)
            | Entry::Event(_)
            | Entry::Done(_) => {}
        }
    }
    let mut violations = Vec::new();
    if let Some(config) = &limits.global_budget {
        let all_retries = merged(&retries);
        let all_successes = merged(&successes);
        violations.extend(budget_violations(
            "global",
            config,
            &all_retries,
            &all_successes,
        ));
    }
    for (index, config) in limits.target_budgets.iter().enumerate() {
        let Some(config) = config else { continue };
        let target = TargetId(u32::try_from(index).unwrap_or(u32::MAX));
        let empty = Vec::new();
        let own = retries.get(&target).unwrap_or(&empty);
        let earned = successes.get(&target).unwrap_or(&empty);
        let name = format!("target {}", target.0);
        violations.extend(budget_violations(&name, config, own, earned));
    }
    violations
}

fn merged(by_target: &BTreeMap<TargetId, Vec<Instant>>) -> Vec<Instant> {
    let mut all: Vec<Instant> = by_target.values().flatten().copied().collect();
    all.sort_unstable();
    all
}

fn budget_violations(
    name: &str,
    config: &budget::Config,
    retries: &[Instant],
    successes: &[Instant],
) -> Vec<Violation> {
    let Ok(budget) = RetryBudget::new(*config) else {
        let detail = format!("{name} budget has an invalid config {config:?}");
        return vec![Violation::new(
            Invariant::RetryBudget,
            Instant::ZERO,
            detail,
        )];
    };
    let span = config.window.saturating_sub(budget.slot());
    let mut violations = Vec::new();
    for (i, &t) in retries.iter().enumerate() {
        let first = retries.partition_point(|&r| r < t - span);
        let last = retries.partition_point(|&r| r <= t).max(i + 1);
        let spent = last - first;
        let earned_from = successes.partition_point(|&s| s < t - config.window);
        let earned_to = successes.partition_point(|&s| s <= t);
        let earned = earned_to - earned_from;
        let allowed = config.reserve() + config.ratio * earned as f64;
        if spent as f64 > allowed + 1e-9 {
            let detail = format!(
                "{name} budget: {spent} retries in the {span:?} up to this one, but only \
                 {allowed:.1} allowed ({earned} successes in the window)"
            );
            violations.push(Violation::new(Invariant::RetryBudget, t, detail));
        }
    }
    violations
}

/// An open breaker admits only half-open probes: replaying each target's breaker
/// transitions, no attempt starts on a target while its breaker is open, and at most
/// `half_open_probes` attempts started during a half-open phase are in flight at once.
pub fn open_breaker_admits_only_probes(trace: &Trace, limits: &Limits) -> Vec<Violation> {
    let mut states: BTreeMap<TargetId, State> = BTreeMap::new();
    let mut probes: BTreeMap<TargetId, BTreeSet<(CallId, AttemptId)>> = BTreeMap::new();
    let mut violations = Vec::new();
    for record in &trace.records {
        match &record.entry {
            Entry::Event(PolicyEvent::TargetBreaker { target, transition }) => {
                states.insert(*target, transition.to);
                probes.remove(target);
            }
            Entry::Started(s) => {
                let (call, attempt, target) = (record.call.0, s.attempt.0, s.target.0);
                let detail = match states.get(&s.target).copied().unwrap_or(State::Closed) {
                    State::Closed => continue,
                    State::Open => {
                        format!(
                            "call {call} attempt {attempt} started on target {target} while its breaker is open"
                        )
                    }
                    State::HalfOpen => {
                        let in_flight = probes.entry(s.target).or_default();
                        in_flight.insert((record.call, s.attempt));
                        let allowed = limits
                            .half_open_probes
                            .get(target as usize)
                            .copied()
                            .flatten()
                            .unwrap_or(0);
                        if in_flight.len() <= allowed as usize {
                            continue;
                        }
                        format!(
                            "{} attempts in flight on half-open target {target} (call {call} attempt \
                             {attempt}), but only {allowed} probes allowed",
                            in_flight.len()
                        )
                    }
                };
                violations.push(Violation::new(Invariant::BreakerProbes, record.at, detail));
            }
            Entry::Event(PolicyEvent::Attempt(a)) => {
                if let Some(in_flight) = probes.get_mut(&a.target) {
                    in_flight.remove(&(record.call, a.attempt));
                }
            }
            Entry::Arrived { .. } | Entry::WakeAt(_) | Entry::Event(_) | Entry::Done(_) => {}
        }
    }
    violations
}

/// No attempt to a target before its Retry-After: after an attempt on a target ends at
/// `t` with a Retry-After of `d`, no attempt of any call starts on it in `(t, t + d)`.
pub fn retry_after_respected(trace: &Trace) -> Vec<Violation> {
    // Per target: the periods (said at, until) it asked to be left alone.
    let mut quiet: BTreeMap<TargetId, Vec<(Instant, Instant)>> = BTreeMap::new();
    let mut violations = Vec::new();
    for record in &trace.records {
        match &record.entry {
            Entry::Event(PolicyEvent::Attempt(a)) => {
                if let Some(wait) = a.outcome.retry_after() {
                    quiet
                        .entry(a.target)
                        .or_default()
                        .push((record.at, record.at + wait));
                }
            }
            Entry::Started(s) => {
                let Some(periods) = quiet.get_mut(&s.target) else {
                    continue;
                };
                periods.retain(|&(_, until)| until > record.at);
                if let Some((said, until)) = periods.iter().find(|&&(said, _)| said < record.at) {
                    let detail = format!(
                        "call {} attempt {} started on target {}, which at {said} asked for \
                         nothing until {until}",
                        record.call.0, s.attempt.0, s.target.0
                    );
                    violations.push(Violation::new(Invariant::RetryAfter, record.at, detail));
                }
            }
            Entry::Arrived { .. } | Entry::WakeAt(_) | Entry::Event(_) | Entry::Done(_) => {}
        }
    }
    violations
}

/// No non-retryable class retried on the same target: within one call, after an
/// attempt on a target ends with an outcome that is not retryable, no later attempt of
/// that call goes to that target.
pub fn non_retryable_not_retried_here(trace: &Trace) -> Vec<Violation> {
    let mut barred: PerCall<Vec<AttemptEvent>> = PerCall::default();
    let mut violations = Vec::new();
    for record in &trace.records {
        match &record.entry {
            Entry::Event(PolicyEvent::Attempt(a)) if !a.outcome.is_retryable() => {
                barred.get_mut(record.call).push(*a);
            }
            Entry::Started(s) => {
                let earlier = barred
                    .get_mut(record.call)
                    .iter()
                    .find(|a| a.target == s.target);
                let Some(earlier) = earlier else { continue };
                let detail = format!(
                    "call {} attempt {} went back to target {} after attempt {} there ended {}",
                    record.call.0, s.attempt.0, s.target.0, earlier.attempt.0, earlier.outcome
                );
                violations.push(Violation::new(Invariant::NonRetryable, record.at, detail));
            }
            Entry::Arrived { .. } | Entry::WakeAt(_) | Entry::Event(_) | Entry::Done(_) => {}
        }
    }
    violations
}

/// No attempt outlives the deadline: every attempt's start + timeout is at most its
/// call's deadline, and every call ends no later than its deadline.
pub fn attempts_within_deadline(trace: &Trace) -> Vec<Violation> {
    let mut deadlines: PerCall<Deadline> = PerCall::default();
    let mut violations = Vec::new();
    for record in &trace.records {
        let deadline = deadlines.get_mut(record.call).instant();
        match &record.entry {
            Entry::Arrived { deadline } => {
                *deadlines.get_mut(record.call) = *deadline;
            }
            Entry::Started(StartAttempt {
                attempt, timeout, ..
            }) => {
                let ends = record.at + *timeout;
                if let Some(deadline) = deadline.filter(|&d| ends > d) {
                    let detail = format!(
                        "call {} attempt {} may run until {ends}, past the deadline {deadline}",
                        record.call.0, attempt.0
                    );
                    violations.push(Violation::new(Invariant::Deadline, record.at, detail));
                }
            }
            Entry::Done(_) => {
                if let Some(deadline) = deadline.filter(|&d| record.at > d) {
                    let detail =
                        format!("call {} ended after its deadline {deadline}", record.call.0);
                    violations.push(Violation::new(Invariant::Deadline, record.at, detail));
                }
            }
            Entry::WakeAt(_) | Entry::Event(_) => {}
        }
    }
    violations
}

/// Backoff delays within `[0, cap]`: every `Next::Retry { after }` has `after ≤ cap`,
/// unless `after` is exactly the Retry-After of the outcome that caused it.
pub fn backoff_within_cap(trace: &Trace, limits: &Limits) -> Vec<Violation> {
    let mut violations = Vec::new();
    for record in &trace.records {
        let Entry::Event(PolicyEvent::Attempt(a)) = &record.entry else {
            continue;
        };
        let Next::Retry { after } = a.next else {
            continue;
        };
        if after > limits.backoff_cap && a.outcome.retry_after() != Some(after) {
            let detail = format!(
                "call {} attempt {} ({}) retries after {after:?}, above the cap {:?}",
                record.call.0, a.attempt.0, a.outcome, limits.backoff_cap
            );
            violations.push(Violation::new(Invariant::BackoffCap, record.at, detail));
        }
    }
    violations
}

/// Every call ends: each arrival has exactly one `Done`.
pub fn every_call_ends(trace: &Trace) -> Vec<Violation> {
    let mut open: BTreeMap<CallId, Instant> = BTreeMap::new();
    let mut violations = Vec::new();
    for record in &trace.records {
        match &record.entry {
            Entry::Arrived { .. } => {
                open.insert(record.call, record.at);
            }
            Entry::Done(_) => {
                if open.remove(&record.call).is_none() {
                    let detail = format!("call {} ended twice, or without arriving", record.call.0);
                    violations.push(Violation::new(Invariant::CallEnds, record.at, detail));
                }
            }
            Entry::Started(_) | Entry::WakeAt(_) | Entry::Event(_) => {}
        }
    }
    for (call, arrived) in open {
        let detail = format!("call {} arrived at {arrived} and never ended", call.0);
        violations.push(Violation::new(Invariant::CallEnds, arrived, detail));
    }
    violations
}
