//! holdfast's metrics, served by the server on `GET /metrics` in the Prometheus text
//! exposition format (version 0.0.4). No client key is needed: nothing here names an agent, a
//! request or a key, only routes and targets from the configuration and the closed sets
//! of outcome classes, reasons and breaker states.
//!
//! The decision: metrics are fed by one writer, the server's `events.rs`, from the policy's
//! [`PolicyEvent`](holdfast_policy::pipeline::PolicyEvent)s and, through the ledger,
//! each request's final result, plus the stream breaks and recovery calls the relay
//! reports through it; no handler counts anything. Every label set is known
//! at startup (routes and targets are resolved once, the rest are closed enums), so
//! each family is a pre-registered flat array of atomics indexed by position: recording
//! an event is an index computation and an atomic add, with no lock, hash or
//! allocation. The one exception is the request's `result`, a free `&'static str` the
//! exchange and stream code own, kept in a small locked map touched once per request.
//! The exposition is written by hand rather than with `prometheus-client`: its
//! `Family` hashes and clones a label set per observation, which is what the arrays
//! avoid, and the format itself is a few lines.
//!
//! A request is counted in `holdfast_requests_total` once its ledger entry holds a
//! final result; a stream whose entry left the ledger ring before the stream ended
//! (4096 newer requests during one stream) is not counted there.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use holdfast_policy::Outcome;
use holdfast_policy::breaker::State;
use holdfast_policy::pipeline::{FallBackReason, GiveUp};

mod alerting;
mod carry;
mod cells;
pub mod few_shot;
mod game_days;
mod labels;
pub mod limiter;
mod render;
mod store;
mod tasks;
mod totals;

use cells::{Counters, Histogram, escape};
pub use game_days::GameDayResult;
pub use game_days::GameDays;
use labels::{
    DELAY_BUCKETS, FALLBACK_REASONS, GIVE_UPS, RECOVERY_RESULTS, REQUEST_BUCKETS, STATES,
    TOKEN_KINDS, fallback_index, give_up_index, outcome_index, state_index,
};
pub use labels::{RECOVERY_PATHS, SKIP_REASONS, skip_index};
pub use store::StoreMetrics;
pub use tasks::TaskMetrics;
pub use tasks::{
    CANCELLED, FAILED, STEP_EXHAUSTED, STEP_RETRYING, STEP_SUCCEEDED, SUBMITTED, SUCCEEDED,
};

/// The `Content-Type` of a scrape.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every metric of one gateway.
pub struct Metrics {
    /// Route names as label values (escaped), sorted.
    routes: Vec<String>,
    route_index: HashMap<String, usize>,
    /// Target names as label values (escaped), by `TargetId`.
    targets: Vec<String>,
    requests: Mutex<BTreeMap<(usize, &'static str), u64>>,
    request_seconds: Vec<Histogram>,
    attempts: Counters,
    retries: Counters,
    retry_delay: Vec<Histogram>,
    fallbacks: Counters,
    success_after_retry: Counters,
    calls_with_failure: Counters,
    breaker_state: Counters,
    breaker_transitions: Counters,
    agent_breaker_transitions: Counters,
    budget_exhausted: Counters,
    hedges: Counters,
    skipped: Counters,
    gave_up: Counters,
    tokens: Counters,
    /// USD as `f64` bits, by `[route][target]`.
    cost: Counters,
    /// Streams broken after their first byte, by `[target][outcome]`.
    stream_breaks: Counters,
    /// Recovery calls, by `[route][path][result]`.
    stream_recoveries: Counters,
    /// The workflow engine's metrics (`tasks.rs`). Shared with the metrics of the
    /// configurations that follow on reload (`carry.rs`): the engine's event sink
    /// holds the first one.
    pub tasks: Arc<TaskMetrics>,
    /// The store's health and write latency (`store.rs`), shared on reload as `tasks`.
    pub store: Arc<StoreMetrics>,
    /// Scheduled experiments' results (`game_days.rs`), shared on reload as `tasks`.
    pub game_days: Arc<GameDays>,
    /// The global retry budget's balance (`alerting.rs`).
    retry_budget: alerting::Gauge,
    /// Tasks retrying a step, and the oldest one's age (`alerting.rs`).
    retrying: Arc<alerting::Retrying>,
    oldest_retry: alerting::Gauge,
}

impl Metrics {
    /// Metrics for these routes and targets (targets in `TargetId` order).
    pub fn new<'a>(
        routes: impl IntoIterator<Item = &'a str>,
        targets: impl IntoIterator<Item = &'a str>,
    ) -> Metrics {
        let mut route_names: Vec<&str> = routes.into_iter().collect();
        route_names.sort_unstable();
        let route_index = route_names
            .iter()
            .enumerate()
            .map(|(i, r)| ((*r).to_owned(), i))
            .collect();
        let targets: Vec<String> = targets.into_iter().map(escape).collect();
        let (r, t) = (route_names.len(), targets.len());
        let outcomes = Outcome::ALL.len();
        Metrics {
            routes: route_names.into_iter().map(escape).collect(),
            route_index,
            requests: Mutex::new(BTreeMap::new()),
            request_seconds: (0..r).map(|_| Histogram::new(REQUEST_BUCKETS)).collect(),
            attempts: Counters::new(t * outcomes),
            retries: Counters::new(t),
            retry_delay: (0..t).map(|_| Histogram::new(DELAY_BUCKETS)).collect(),
            fallbacks: Counters::new(t * t * FALLBACK_REASONS.len()),
            success_after_retry: Counters::new(r),
            calls_with_failure: Counters::new(r),
            breaker_state: Counters::new(t),
            breaker_transitions: Counters::new(t * STATES.len() * STATES.len()),
            agent_breaker_transitions: Counters::new(STATES.len()),
            budget_exhausted: Counters::new(t),
            hedges: Counters::new(t),
            skipped: Counters::new(t * SKIP_REASONS.len()),
            gave_up: Counters::new(r * GIVE_UPS.len()),
            tokens: Counters::new(t * TOKEN_KINDS.len()),
            cost: Counters::new(r * t),
            stream_breaks: Counters::new(t * outcomes),
            stream_recoveries: Counters::new(r * RECOVERY_PATHS.len() * RECOVERY_RESULTS.len()),
            tasks: Arc::default(),
            store: Arc::default(),
            game_days: Arc::default(),
            retry_budget: alerting::Gauge::default(),
            retrying: Arc::default(),
            oldest_retry: alerting::Gauge::default(),
            targets,
        }
    }

    /// The index of route `name`, if the configuration has it.
    pub fn route(&self, name: &str) -> Option<usize> {
        self.route_index.get(name).copied()
    }

    /// A request reached its final `result` after `seconds`.
    pub fn request(&self, route: usize, result: &'static str, seconds: f64) {
        let Some(histogram) = self.request_seconds.get(route) else {
            return;
        };
        histogram.observe(seconds);
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *requests.entry((route, result)).or_insert(0) += 1;
    }

    /// An attempt on `target` ended with `outcome`; `retry` above 0 makes it a retry.
    pub fn attempt(&self, target: usize, outcome: Outcome, retry: u32) {
        self.attempts
            .add(target * Outcome::ALL.len() + outcome_index(outcome), 1);
        if retry > 0 {
            self.retries.add(target, 1);
        }
    }

    /// The pipeline decided to wait `after` before retrying on `target`.
    pub fn retry_delay(&self, target: usize, after: Duration) {
        if let Some(histogram) = self.retry_delay.get(target) {
            histogram.observe(after.as_secs_f64());
        }
    }

    /// The call left `from` for `to`.
    pub fn fallback(&self, from: usize, to: usize, reason: FallBackReason) {
        let t = self.targets.len();
        if to < t {
            let index = (from * t + to) * FALLBACK_REASONS.len() + fallback_index(reason);
            self.fallbacks.add(index, 1);
        }
    }

    /// A call on `route` ended: answered or not, and whether any attempt failed.
    pub fn call(&self, route: usize, succeeded: bool, had_failure: bool) {
        if had_failure {
            self.calls_with_failure.add(route, 1);
            if succeeded {
                self.success_after_retry.add(route, 1);
            }
        }
    }

    /// A call on `route` gave up.
    pub fn gave_up(&self, route: usize, reason: GiveUp) {
        self.gave_up
            .add(route * GIVE_UPS.len() + give_up_index(reason), 1);
    }

    /// `target`'s breaker moved from `from` to `to`.
    pub fn breaker_transition(&self, target: usize, from: State, to: State) {
        let n = STATES.len();
        let index = (target * n + state_index(from)) * n + state_index(to);
        self.breaker_transitions.add(index, 1);
    }

    /// `target`'s breaker is now in `state`.
    pub fn breaker_state(&self, target: usize, state: State) {
        self.breaker_state.set(target, state_index(state) as u64);
    }

    /// Some agent's breaker moved to `to`.
    pub fn agent_breaker_transition(&self, to: State) {
        self.agent_breaker_transitions.add(state_index(to), 1);
    }

    /// A retry on `target` was refused by an empty budget.
    pub fn budget_exhausted(&self, target: usize) {
        self.budget_exhausted.add(target, 1);
    }

    /// A hedge was sent to `target`.
    pub fn hedged(&self, target: usize) {
        self.hedges.add(target, 1);
    }

    /// `target` was passed over for [`SKIP_REASONS`]`[reason]`.
    pub fn skipped(&self, target: usize, reason: usize) {
        self.skipped.add(target * SKIP_REASONS.len() + reason, 1);
    }

    /// `target` used these tokens.
    pub fn tokens(&self, target: usize, input: u64, output: u64) {
        self.tokens.add(target * 2, input);
        self.tokens.add(target * 2 + 1, output);
    }

    /// `target` cost this much on `route`.
    pub fn cost(&self, route: usize, target: usize, usd: f64) {
        if target < self.targets.len() && usd != 0.0 {
            self.cost.add_f64(route * self.targets.len() + target, usd);
        }
    }

    /// A stream served by `target` broke with `outcome` after its first byte.
    pub fn stream_break(&self, target: usize, outcome: Outcome) {
        self.stream_breaks
            .add(target * Outcome::ALL.len() + outcome_index(outcome), 1);
    }

    /// A recovery call on `route` by [`RECOVERY_PATHS`]`[path]` finished the answer
    /// (`ok`) or could not.
    pub fn recovery(&self, route: usize, path: usize, ok: bool) {
        let result = usize::from(!ok);
        let index = (route * RECOVERY_PATHS.len() + path) * RECOVERY_RESULTS.len() + result;
        self.stream_recoveries.add(index, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_follow_the_label_tables() {
        for (i, outcome) in Outcome::ALL.iter().enumerate() {
            assert_eq!(outcome_index(*outcome), i);
        }
        for (i, reason) in FALLBACK_REASONS.iter().enumerate() {
            assert_eq!(fallback_index(*reason), i);
        }
        for (i, reason) in GIVE_UPS.iter().enumerate() {
            assert_eq!(give_up_index(*reason), i);
        }
        for (i, state) in STATES.iter().enumerate() {
            assert_eq!(state_index(*state), i);
        }
    }

    #[test]
    fn histograms_are_cumulative_and_label_values_escaped() {
        let metrics = Metrics::new(["r\"1"], ["a"]);
        metrics.request(0, "ok", 0.07);
        metrics.request(0, "ok", 500.0);
        metrics.cost(0, 0, 0.25);
        metrics.cost(0, 0, 0.5);
        let text = metrics.render();
        let route = "route=\"r\\\"1\"";
        assert!(text.contains(&format!(
            "holdfast_requests_total{{{route},result=\"ok\"}} 2"
        )));
        assert!(text.contains(&format!(
            "holdfast_request_duration_seconds_bucket{{{route},le=\"0.05\"}} 0"
        )));
        assert!(text.contains(&format!(
            "holdfast_request_duration_seconds_bucket{{{route},le=\"0.1\"}} 1"
        )));
        assert!(text.contains(&format!(
            "holdfast_request_duration_seconds_bucket{{{route},le=\"+Inf\"}} 2"
        )));
        assert!(text.contains(&format!(
            "holdfast_cost_usd_total{{{route},target=\"a\"}} 0.75"
        )));
    }
}
