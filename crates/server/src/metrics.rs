//! The gateway's metrics, served on `GET /metrics` in the Prometheus text exposition
//! format (version 0.0.4). No client key is needed: nothing here names an agent, a
//! request or a key, only routes and targets from the configuration and the closed sets
//! of outcome classes, reasons and breaker states.
//!
//! The decision: metrics are fed by one writer, `events.rs`, from the policy's
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
use std::fmt::{Display, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use holdfast_policy::Outcome;
use holdfast_policy::TimeoutKind;
use holdfast_policy::breaker::State;
use holdfast_policy::pipeline::{FallBackReason, GiveUp, Skip};

/// The `Content-Type` of a scrape.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the request duration buckets, in seconds.
const REQUEST_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// Upper bounds of the retry delay buckets, in seconds.
const DELAY_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

const FALLBACK_REASONS: [FallBackReason; 5] = [
    FallBackReason::NotRetryableHere,
    FallBackReason::AttemptsExhausted,
    FallBackReason::RetryAfterTooLong,
    FallBackReason::NoTimeToRetry,
    FallBackReason::BudgetExhausted,
];

const GIVE_UPS: [GiveUp; 7] = [
    GiveUp::NotRetryable,
    GiveUp::Exhausted,
    GiveUp::BudgetExhausted,
    GiveUp::DeadlineExceeded,
    GiveUp::Unavailable,
    GiveUp::AgentBreakerOpen,
    GiveUp::TooLarge,
];

/// Skip reasons, by [`skip_index`]; the names the ledger uses.
pub(crate) const SKIP_REASONS: [&str; 4] =
    ["breaker_open", "retry_after", "rate_limited", "too_large"];

/// Breaker states, by their gauge value.
const STATES: [State; 3] = [State::Closed, State::HalfOpen, State::Open];

const TOKEN_KINDS: [&str; 2] = ["input", "output"];

/// How a broken stream was finished, by [`Metrics::recovery`]'s `path`.
pub(crate) const RECOVERY_PATHS: [&str; 2] = ["continuation", "splice"];

const RECOVERY_RESULTS: [&str; 2] = ["ok", "failed"];

/// Every metric of one gateway.
pub(crate) struct Metrics {
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
}

impl Metrics {
    /// Metrics for these routes and targets (targets in `TargetId` order).
    pub(crate) fn new<'a>(
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
            targets,
        }
    }

    /// The index of route `name`, if the configuration has it.
    pub(crate) fn route(&self, name: &str) -> Option<usize> {
        self.route_index.get(name).copied()
    }

    /// A request reached its final `result` after `seconds`.
    pub(crate) fn request(&self, route: usize, result: &'static str, seconds: f64) {
        let Some(histogram) = self.request_seconds.get(route) else {
            return;
        };
        histogram.observe(seconds);
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *requests.entry((route, result)).or_insert(0) += 1;
    }

    /// An attempt on `target` ended with `outcome`; `retry` above 0 makes it a retry.
    pub(crate) fn attempt(&self, target: usize, outcome: Outcome, retry: u32) {
        self.attempts
            .add(target * Outcome::ALL.len() + outcome_index(outcome), 1);
        if retry > 0 {
            self.retries.add(target, 1);
        }
    }

    /// The pipeline decided to wait `after` before retrying on `target`.
    pub(crate) fn retry_delay(&self, target: usize, after: Duration) {
        if let Some(histogram) = self.retry_delay.get(target) {
            histogram.observe(after.as_secs_f64());
        }
    }

    /// The call left `from` for `to`.
    pub(crate) fn fallback(&self, from: usize, to: usize, reason: FallBackReason) {
        let t = self.targets.len();
        if to < t {
            let index = (from * t + to) * FALLBACK_REASONS.len() + fallback_index(reason);
            self.fallbacks.add(index, 1);
        }
    }

    /// A call on `route` ended: answered or not, and whether any attempt failed.
    pub(crate) fn call(&self, route: usize, succeeded: bool, had_failure: bool) {
        if had_failure {
            self.calls_with_failure.add(route, 1);
            if succeeded {
                self.success_after_retry.add(route, 1);
            }
        }
    }

    /// A call on `route` gave up.
    pub(crate) fn gave_up(&self, route: usize, reason: GiveUp) {
        self.gave_up
            .add(route * GIVE_UPS.len() + give_up_index(reason), 1);
    }

    /// `target`'s breaker moved from `from` to `to`.
    pub(crate) fn breaker_transition(&self, target: usize, from: State, to: State) {
        let n = STATES.len();
        let index = (target * n + state_index(from)) * n + state_index(to);
        self.breaker_transitions.add(index, 1);
    }

    /// `target`'s breaker is now in `state`.
    pub(crate) fn breaker_state(&self, target: usize, state: State) {
        self.breaker_state.set(target, state_index(state) as u64);
    }

    /// Some agent's breaker moved to `to`.
    pub(crate) fn agent_breaker_transition(&self, to: State) {
        self.agent_breaker_transitions.add(state_index(to), 1);
    }

    /// A retry on `target` was refused by an empty budget.
    pub(crate) fn budget_exhausted(&self, target: usize) {
        self.budget_exhausted.add(target, 1);
    }

    /// A hedge was sent to `target`.
    pub(crate) fn hedged(&self, target: usize) {
        self.hedges.add(target, 1);
    }

    /// `target` was passed over for [`SKIP_REASONS`]`[reason]`.
    pub(crate) fn skipped(&self, target: usize, reason: usize) {
        self.skipped.add(target * SKIP_REASONS.len() + reason, 1);
    }

    /// `target` used these tokens.
    pub(crate) fn tokens(&self, target: usize, input: u64, output: u64) {
        self.tokens.add(target * 2, input);
        self.tokens.add(target * 2 + 1, output);
    }

    /// `target` cost this much on `route`.
    pub(crate) fn cost(&self, route: usize, target: usize, usd: f64) {
        if target < self.targets.len() && usd != 0.0 {
            self.cost.add_f64(route * self.targets.len() + target, usd);
        }
    }

    /// A stream served by `target` broke with `outcome` after its first byte.
    pub(crate) fn stream_break(&self, target: usize, outcome: Outcome) {
        self.stream_breaks
            .add(target * Outcome::ALL.len() + outcome_index(outcome), 1);
    }

    /// A recovery call on `route` by [`RECOVERY_PATHS`]`[path]` finished the answer
    /// (`ok`) or could not.
    pub(crate) fn recovery(&self, route: usize, path: usize, ok: bool) {
        let result = usize::from(!ok);
        let index = (route * RECOVERY_PATHS.len() + path) * RECOVERY_RESULTS.len() + result;
        self.stream_recoveries.add(index, 1);
    }

    /// The exposition of every metric.
    pub(crate) fn render(&self) -> String {
        let mut out = Exposition(String::with_capacity(8192));
        let (routes, targets) = (&self.routes, &self.targets);
        let outcomes = Outcome::ALL.len();

        out.family(
            "holdfast_requests_total",
            "counter",
            "Requests that reached a route, by final result.",
        );
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for ((route, result), value) in requests {
            let route = &routes[route];
            out.sample(
                "holdfast_requests_total",
                &[("route", route), ("result", result)],
                value,
            );
        }
        out.family(
            "holdfast_request_duration_seconds",
            "histogram",
            "From arrival to the final result (for a stream: its end), by route.",
        );
        for (route, histogram) in routes.iter().zip(&self.request_seconds) {
            histogram.render(
                &mut out,
                "holdfast_request_duration_seconds",
                ("route", route),
            );
        }

        out.family(
            "holdfast_attempts_total",
            "counter",
            "Attempts by target and outcome class.",
        );
        for (t, target) in targets.iter().enumerate() {
            for (o, outcome) in Outcome::ALL.iter().enumerate() {
                out.nonzero(
                    "holdfast_attempts_total",
                    &[("target", target), ("outcome", outcome.class())],
                    self.attempts.get(t * outcomes + o),
                );
            }
        }
        out.per_target(
            "holdfast_retries_total",
            "Attempts that retried on the same target.",
            targets,
            &self.retries,
        );
        out.family(
            "holdfast_retry_delay_seconds",
            "histogram",
            "The wait the pipeline chose before a retry, by target.",
        );
        for (target, histogram) in targets.iter().zip(&self.retry_delay) {
            histogram.render(&mut out, "holdfast_retry_delay_seconds", ("target", target));
        }
        out.family(
            "holdfast_fallbacks_total",
            "counter",
            "Calls that left one target for another, by reason.",
        );
        for (f, from) in targets.iter().enumerate() {
            for (t, to) in targets.iter().enumerate() {
                for (r, reason) in FALLBACK_REASONS.iter().enumerate() {
                    let index = (f * targets.len() + t) * FALLBACK_REASONS.len() + r;
                    out.nonzero(
                        "holdfast_fallbacks_total",
                        &[("from", from), ("to", to), ("reason", reason.name())],
                        self.fallbacks.get(index),
                    );
                }
            }
        }
        out.per_route(
            "holdfast_calls_with_failure_total",
            "Calls in which at least one attempt failed.",
            routes,
            &self.calls_with_failure,
        );
        out.per_route(
            "holdfast_success_after_retry_total",
            "Calls answered after at least one failed attempt; divided by \
             holdfast_calls_with_failure_total, the success rate after retry.",
            routes,
            &self.success_after_retry,
        );

        out.family(
            "holdfast_breaker_state",
            "gauge",
            "Target breaker state: 0 closed, 1 half-open, 2 open.",
        );
        for (t, target) in targets.iter().enumerate() {
            out.sample(
                "holdfast_breaker_state",
                &[("target", target)],
                self.breaker_state.get(t),
            );
        }
        out.family(
            "holdfast_breaker_transitions_total",
            "counter",
            "Target breaker state changes.",
        );
        let n = STATES.len();
        for (t, target) in targets.iter().enumerate() {
            for (f, from) in STATES.iter().enumerate() {
                for (s, to) in STATES.iter().enumerate() {
                    out.nonzero(
                        "holdfast_breaker_transitions_total",
                        &[("target", target), ("from", from.name()), ("to", to.name())],
                        self.breaker_transitions.get((t * n + f) * n + s),
                    );
                }
            }
        }
        out.family(
            "holdfast_agent_breaker_transitions_total",
            "counter",
            "Agent breaker state changes, over all agents, by new state.",
        );
        for (s, to) in STATES.iter().enumerate() {
            out.nonzero(
                "holdfast_agent_breaker_transitions_total",
                &[("to", to.name())],
                self.agent_breaker_transitions.get(s),
            );
        }

        out.per_target(
            "holdfast_budget_exhausted_total",
            "Retries refused because the retry budget was empty.",
            targets,
            &self.budget_exhausted,
        );
        out.per_target(
            "holdfast_hedges_total",
            "Hedge attempts started.",
            targets,
            &self.hedges,
        );
        out.family(
            "holdfast_skipped_total",
            "counter",
            "Targets passed over without an attempt, by reason.",
        );
        for (t, target) in targets.iter().enumerate() {
            for (r, reason) in SKIP_REASONS.iter().enumerate() {
                out.nonzero(
                    "holdfast_skipped_total",
                    &[("target", target), ("reason", reason)],
                    self.skipped.get(t * SKIP_REASONS.len() + r),
                );
            }
        }
        out.family(
            "holdfast_gave_up_total",
            "counter",
            "Calls the pipeline gave up on, by reason.",
        );
        for (r, route) in routes.iter().enumerate() {
            for (g, reason) in GIVE_UPS.iter().enumerate() {
                out.nonzero(
                    "holdfast_gave_up_total",
                    &[("route", route), ("reason", reason.name())],
                    self.gave_up.get(r * GIVE_UPS.len() + g),
                );
            }
        }

        out.family(
            "holdfast_tokens_total",
            "counter",
            "Tokens used by attempts, by target and kind.",
        );
        for (t, target) in targets.iter().enumerate() {
            for (k, kind) in TOKEN_KINDS.iter().enumerate() {
                out.nonzero(
                    "holdfast_tokens_total",
                    &[("target", target), ("kind", kind)],
                    self.tokens.get(t * 2 + k),
                );
            }
        }
        out.family(
            "holdfast_cost_usd_total",
            "counter",
            "Cost of attempts in US dollars, by route and target.",
        );
        for (r, route) in routes.iter().enumerate() {
            for (t, target) in targets.iter().enumerate() {
                let usd = self.cost.get_f64(r * targets.len() + t);
                if usd != 0.0 {
                    out.sample(
                        "holdfast_cost_usd_total",
                        &[("route", route), ("target", target)],
                        usd,
                    );
                }
            }
        }

        out.family(
            "holdfast_stream_breaks_total",
            "counter",
            "Streams that broke after their first byte, by serving target and outcome class.",
        );
        for (t, target) in targets.iter().enumerate() {
            for (o, outcome) in Outcome::ALL.iter().enumerate() {
                out.nonzero(
                    "holdfast_stream_breaks_total",
                    &[("target", target), ("outcome", outcome.class())],
                    self.stream_breaks.get(t * outcomes + o),
                );
            }
        }
        out.family(
            "holdfast_stream_recoveries_total",
            "counter",
            "Recovery calls for broken streams, by route, path and whether they finished the answer.",
        );
        for (r, route) in routes.iter().enumerate() {
            for (p, path) in RECOVERY_PATHS.iter().enumerate() {
                for (s, result) in RECOVERY_RESULTS.iter().enumerate() {
                    let index = (r * RECOVERY_PATHS.len() + p) * RECOVERY_RESULTS.len() + s;
                    out.nonzero(
                        "holdfast_stream_recoveries_total",
                        &[("route", route), ("path", path), ("result", result)],
                        self.stream_recoveries.get(index),
                    );
                }
            }
        }
        out.0
    }
}

/// The position of `outcome` in [`Outcome::ALL`].
fn outcome_index(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Ok => 0,
        Outcome::RateLimited { .. } => 1,
        Outcome::QuotaExhausted => 2,
        Outcome::Overloaded { .. } => 3,
        Outcome::ServerError => 4,
        Outcome::Timeout(TimeoutKind::Connect) => 5,
        Outcome::Timeout(TimeoutKind::FirstByte) => 6,
        Outcome::Timeout(TimeoutKind::Idle) => 7,
        Outcome::Timeout(TimeoutKind::Total) => 8,
        Outcome::Connection => 9,
        Outcome::Auth => 10,
        Outcome::BadRequest => 11,
        Outcome::NotFound => 12,
        Outcome::ContextOverflow => 13,
        Outcome::ContentFiltered => 14,
        Outcome::InvalidOutput => 15,
        Outcome::StreamInterrupted => 16,
        Outcome::Cancelled => 17,
    }
}

fn fallback_index(reason: FallBackReason) -> usize {
    match reason {
        FallBackReason::NotRetryableHere => 0,
        FallBackReason::AttemptsExhausted => 1,
        FallBackReason::RetryAfterTooLong => 2,
        FallBackReason::NoTimeToRetry => 3,
        FallBackReason::BudgetExhausted => 4,
    }
}

fn give_up_index(reason: GiveUp) -> usize {
    match reason {
        GiveUp::NotRetryable => 0,
        GiveUp::Exhausted => 1,
        GiveUp::BudgetExhausted => 2,
        GiveUp::DeadlineExceeded => 3,
        GiveUp::Unavailable => 4,
        GiveUp::AgentBreakerOpen => 5,
        GiveUp::TooLarge => 6,
    }
}

/// The position of `skip` in [`SKIP_REASONS`].
pub(crate) fn skip_index(skip: Skip) -> usize {
    match skip {
        Skip::BreakerOpen => 0,
        Skip::RetryAfter(_) => 1,
        Skip::RateLimited(_) => 2,
        Skip::TooLarge => 3,
    }
}

/// The gauge value of `state`: 0 closed, 1 half-open, 2 open.
fn state_index(state: State) -> usize {
    match state {
        State::Closed => 0,
        State::HalfOpen => 1,
        State::Open => 2,
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A flat array of counters (or, through `add_f64`, float sums).
struct Counters(Box<[AtomicU64]>);

impl Counters {
    fn new(len: usize) -> Counters {
        Counters((0..len).map(|_| AtomicU64::new(0)).collect())
    }

    fn add(&self, index: usize, n: u64) {
        if let Some(cell) = self.0.get(index) {
            cell.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn set(&self, index: usize, n: u64) {
        if let Some(cell) = self.0.get(index) {
            cell.store(n, Ordering::Relaxed);
        }
    }

    fn get(&self, index: usize) -> u64 {
        self.0.get(index).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    fn add_f64(&self, index: usize, x: f64) {
        if let Some(cell) = self.0.get(index) {
            add_f64(cell, x);
        }
    }

    fn get_f64(&self, index: usize) -> f64 {
        f64::from_bits(self.get(index))
    }
}

fn add_f64(cell: &AtomicU64, x: f64) {
    let _ = cell.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
        Some((f64::from_bits(bits) + x).to_bits())
    });
}

/// A histogram with fixed bucket bounds.
struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative), the last one for `+Inf`.
    buckets: Counters,
    count: AtomicU64,
    /// `f64` bits.
    sum: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: Counters::new(bounds.len() + 1),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    fn observe(&self, x: f64) {
        let x = if x.is_finite() { x.max(0.0) } else { 0.0 };
        let bucket = self
            .bounds
            .iter()
            .position(|b| x <= *b)
            .unwrap_or(self.bounds.len());
        self.buckets.add(bucket, 1);
        add_f64(&self.sum, x);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes the histogram's series, if it observed anything.
    fn render(&self, out: &mut Exposition, name: &str, label: (&str, &str)) {
        let count = self.count.load(Ordering::Relaxed);
        if count == 0 {
            return;
        }
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (i, bound) in self.bounds.iter().enumerate() {
            cumulative += self.buckets.get(i);
            let le = bound.to_string();
            out.sample(&bucket, &[label, ("le", &le)], cumulative);
        }
        cumulative += self.buckets.get(self.bounds.len());
        out.sample(&bucket, &[label, ("le", "+Inf")], cumulative);
        let sum = f64::from_bits(self.sum.load(Ordering::Relaxed));
        out.sample(&format!("{name}_sum"), &[label], sum);
        // The buckets were read one by one: their total is the consistent count.
        out.sample(&format!("{name}_count"), &[label], cumulative);
    }
}

/// The text being written.
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    /// One sample; label values are already escaped.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{label}=\"{value}\"");
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn nonzero(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        if value != 0 {
            self.sample(name, labels, value);
        }
    }

    fn per_target(&mut self, name: &str, help: &str, targets: &[String], values: &Counters) {
        self.family(name, "counter", help);
        for (t, target) in targets.iter().enumerate() {
            self.nonzero(name, &[("target", target)], values.get(t));
        }
    }

    fn per_route(&mut self, name: &str, help: &str, routes: &[String], values: &Counters) {
        self.family(name, "counter", help);
        for (r, route) in routes.iter().enumerate() {
            self.nonzero(name, &[("route", route)], values.get(r));
        }
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
