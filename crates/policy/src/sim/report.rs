//! What a simulation shows: per-seed figures, their aggregate over seeds, and the table
//! that puts holdfast and the naive policy side by side.
//!
//! The decision that shapes it: every figure is computed from the run's [`Trace`], the
//! same record the invariant checks read, so the table and the checks can never
//! disagree about what happened. Client latencies are aggregated over seeds in a
//! millisecond histogram, so that a thousand seeds cost fixed memory per scenario.

use std::collections::BTreeMap;
use std::time::Duration;

use super::check::{self, Violation};
use super::scenario::{PolicyKind, Scenario};
use super::trace::{Entry, Trace};
use crate::breaker::State;
use crate::clock::Instant;
use crate::pipeline::{PolicyEvent, Verdict};

/// The figures of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedReport {
    /// The scenario's name.
    pub scenario: &'static str,
    /// The policy.
    pub policy: PolicyKind,
    /// The seed.
    pub seed: u64,
    /// Client requests.
    pub requests: u64,
    /// Requests answered successfully.
    pub succeeded: u64,
    /// Attempts sent to targets (cancelled ones included: the target saw them).
    pub upstream: u64,
    /// Attempts on the same target as the call's previous attempt.
    pub retries: u64,
    /// Attempts on another target than the call's previous one, or a first attempt
    /// past the head of the chain.
    pub fallbacks: u64,
    /// Hedge attempts.
    pub hedges: u64,
    /// Target breakers moving to open.
    pub breaker_trips: u64,
    /// Requests that got no answer and used their whole deadline: ended within the
    /// policy's `min_attempt_time` of it.
    pub timed_out: u64,
    /// Requests that got no answer, by the pipeline's reason.
    pub gave_up: BTreeMap<&'static str, u64>,
    /// Every request's latency as its client saw it, sorted.
    pub latencies: Vec<Duration>,
    /// Broken invariants.
    pub violations: Vec<Violation>,
    /// The trace's digest.
    pub digest: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct CallState {
    arrived: Instant,
    deadline: Option<Instant>,
    link: Option<usize>,
}

impl SeedReport {
    /// The figures of `trace`, a run of `scenario` under `policy` from `seed`, checked
    /// against the policy's limits.
    pub fn new(scenario: &Scenario, policy: PolicyKind, seed: u64, trace: &Trace) -> Self {
        let setup = scenario.setup(policy);
        let mut report = SeedReport {
            scenario: scenario.name,
            policy,
            seed,
            requests: 0,
            succeeded: 0,
            upstream: 0,
            retries: 0,
            fallbacks: 0,
            hedges: 0,
            breaker_trips: 0,
            timed_out: 0,
            gave_up: BTreeMap::new(),
            latencies: Vec::new(),
            violations: check::all(trace, &setup.limits),
            digest: trace.digest(),
        };
        report.count(trace, setup.policy.min_attempt_time);
        report.latencies.sort_unstable();
        report
    }

    fn count(&mut self, trace: &Trace, grace: Duration) {
        let mut calls: Vec<CallState> = Vec::new();
        for record in &trace.records {
            let index = record.call.0 as usize;
            if calls.len() <= index {
                calls.resize(index + 1, CallState::default());
            }
            let call = &mut calls[index];
            match &record.entry {
                Entry::Arrived { deadline } => {
                    self.requests += 1;
                    call.arrived = record.at;
                    call.deadline = deadline.instant();
                }
                Entry::Started(s) => {
                    self.upstream += 1;
                    match (s.hedge, call.link) {
                        (true, _) => self.hedges += 1,
                        (false, Some(previous)) if previous == s.link => self.retries += 1,
                        (false, Some(_)) => self.fallbacks += 1,
                        (false, None) => self.fallbacks += u64::from(s.link > 0),
                    }
                    if !s.hedge {
                        call.link = Some(s.link);
                    }
                }
                Entry::Event(PolicyEvent::TargetBreaker { transition, .. }) => {
                    self.breaker_trips += u64::from(transition.to == State::Open);
                }
                Entry::Done(verdict) => {
                    self.latencies
                        .push(record.at.saturating_duration_since(call.arrived));
                    match verdict {
                        Verdict::Succeeded { .. } => self.succeeded += 1,
                        Verdict::GaveUp { reason, .. } => {
                            *self.gave_up.entry(reason.name()).or_default() += 1;
                            let used_it_all = call.deadline.is_some_and(|d| record.at + grace >= d);
                            self.timed_out += u64::from(used_it_all);
                        }
                    }
                }
                Entry::WakeAt(_) | Entry::Event(_) => {}
            }
        }
    }

    /// The `percentile` (0..=100) client latency.
    pub fn latency(&self, percentile: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = rank(percentile, self.latencies.len() as u64);
        self.latencies[(rank - 1) as usize]
    }
}

/// The 1-based rank of `percentile` among `n` sorted values.
fn rank(percentile: f64, n: u64) -> u64 {
    ((percentile / 100.0 * n as f64).ceil() as u64).clamp(1, n.max(1))
}

/// Figures summed over seeds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Aggregate {
    /// Seeds added.
    pub seeds: u64,
    /// Client requests.
    pub requests: u64,
    /// Requests answered successfully.
    pub succeeded: u64,
    /// Attempts sent to targets.
    pub upstream: u64,
    /// Retries on the same target.
    pub retries: u64,
    /// Moves to another target.
    pub fallbacks: u64,
    /// Hedge attempts.
    pub hedges: u64,
    /// Target breakers moving to open.
    pub breaker_trips: u64,
    /// Requests that used their whole deadline without an answer.
    pub timed_out: u64,
    /// Requests that got no answer, by reason.
    pub gave_up: BTreeMap<&'static str, u64>,
    /// Client latencies: `latency_ms[i]` requests took `i` ms (rounded down).
    pub latency_ms: Vec<u64>,
    /// Broken invariants, with their seed.
    pub violations: Vec<(u64, Violation)>,
}

impl Aggregate {
    /// Adds one run.
    pub fn add(&mut self, run: &SeedReport) {
        self.seeds += 1;
        self.requests += run.requests;
        self.succeeded += run.succeeded;
        self.upstream += run.upstream;
        self.retries += run.retries;
        self.fallbacks += run.fallbacks;
        self.hedges += run.hedges;
        self.breaker_trips += run.breaker_trips;
        self.timed_out += run.timed_out;
        for (reason, count) in &run.gave_up {
            *self.gave_up.entry(reason).or_default() += count;
        }
        for latency in &run.latencies {
            let ms = usize::try_from(latency.as_millis())
                .unwrap_or(usize::MAX)
                .min(3_600_000);
            if self.latency_ms.len() <= ms {
                self.latency_ms.resize(ms + 1, 0);
            }
            self.latency_ms[ms] += 1;
        }
        self.violations
            .extend(run.violations.iter().map(|v| (run.seed, v.clone())));
    }

    /// Successful requests as a fraction of all, in `[0, 1]`.
    pub fn success_rate(&self) -> f64 {
        ratio(self.succeeded, self.requests)
    }

    /// `count` per client request.
    pub fn per_request(&self, count: u64) -> f64 {
        ratio(count, self.requests)
    }

    /// The `percentile` (0..=100) client latency, to the millisecond.
    pub fn latency(&self, percentile: f64) -> Duration {
        let total: u64 = self.latency_ms.iter().sum();
        let wanted = rank(percentile, total);
        let mut seen = 0;
        for (ms, count) in self.latency_ms.iter().enumerate() {
            seen += count;
            if seen >= wanted && total > 0 {
                return Duration::from_millis(ms as u64);
            }
        }
        Duration::ZERO
    }
}

pub(super) fn ratio(count: u64, of: u64) -> f64 {
    if of == 0 {
        0.0
    } else {
        count as f64 / of as f64
    }
}
