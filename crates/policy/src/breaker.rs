//! The circuit breaker: stop sending traffic to a target that is failing.
//!
//! Closed, it counts outcomes over a sliding window and opens when the failure rate or
//! the slow-call rate reaches its threshold, once the window holds `min_calls`; at once
//! on a run of `consecutive_failures` (as Envoy's outlier detection does); or when the
//! failures of a short recent window (`short_window`, a second) are too many for chance
//! from a target failing at the threshold rate (a binomial tail below
//! `short_window_alpha`). A window full of earlier successes must not outvote a total
//! outage for seconds, while a run that long, or a burst that significant, is next to
//! impossible from a target that fails a fifth of the time. The short window's test
//! needs about ten failures at the default threshold and α (½¹⁰ ≈ 1e-3), so below ten
//! calls per second it cannot conclude within its second and the run trips instead. Open, it
//! admits nothing until `open_for` has passed (at least the target's last Retry-After;
//! doubled on each failed probe in a row, up to `max_open_for`), or until an active
//! probe sent by the caller succeeds ([`Breaker::probe_succeeded`]): recovery follows
//! the evidence instead of a timer. Half-open, it admits
//! `half_open_probes` probes and judges them by the same failure-rate threshold (as
//! resilience4j does): it opens again as soon as their failure rate is sure to reach the
//! threshold and closes as soon as it is sure to stay below. The breaker is a pure state
//! machine over `now`; every change of state is returned as a [`Transition`] for the
//! caller to publish.
//!
//! Results are tied to the state they were admitted in through a [`Permit`]: a call
//! admitted while closed that ends after the breaker opened says nothing about the
//! probes, and is ignored.

use std::time::Duration;

use crate::clock::Instant;
use crate::outcome::{Health, Outcome};
use crate::setting::{InvalidSetting, check_positive, check_rate};
use crate::significance;
use crate::window::Window;

/// Calls that ended with a success or a failure.
const CALLS: usize = 0;
const FAILURES: usize = 1;
const SLOW: usize = 2;
/// Calls admitted; with `NEUTRAL`, the denominator that keeps fast failures from
/// outvoting slow successes still running.
const STARTED: usize = 3;
const NEUTRAL: usize = 4;

/// Failures the short window must hold before it can open the breaker, whatever the
/// significance test says: with a low `failure_rate` a handful of failures would pass
/// it, and a handful is too little to cut a target off.
pub const RECENT_MIN_FAILURES: u64 = 5;

/// Breaker settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// Failure rate that opens the breaker, in `(0, 1]`.
    pub failure_rate: f64,
    /// Slow-call rate that opens the breaker, in `(0, 1]`.
    pub slow_call_rate: f64,
    /// A call at least this long is slow; > 0.
    pub slow_call: Duration,
    /// How far back outcomes count; > 0.
    pub window: Duration,
    /// Calls the window must hold before rates are judged; ≥ 1.
    pub min_calls: u32,
    /// How long the breaker stays open after its first trip; > 0.
    pub open_for: Duration,
    /// The longest it stays open after repeated trips; ≥ `open_for`.
    pub max_open_for: Duration,
    /// Concurrent probes while half-open, and successes needed to close; 1..=1000.
    pub half_open_probes: u32,
    /// Failures in a row that open the breaker whatever the window holds; 0 turns
    /// this off.
    pub consecutive_failures: u32,
    /// The short recent window judged apart from `window`; zero turns it off.
    pub short_window: Duration,
    /// The short window opens the breaker when its failures would come from a target
    /// failing at `failure_rate` with a probability below this; in `(0, 0.5)`.
    pub short_window_alpha: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            failure_rate: 0.5,
            slow_call_rate: 0.8,
            slow_call: Duration::from_secs(30),
            window: Duration::from_secs(30),
            min_calls: 20,
            open_for: Duration::from_secs(5),
            max_open_for: Duration::from_secs(20),
            half_open_probes: 3,
            consecutive_failures: 20,
            short_window: Duration::from_secs(1),
            short_window_alpha: 1e-3,
        }
    }
}

impl Config {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        check_rate("breaker.failure_rate", self.failure_rate)?;
        check_rate("breaker.slow_call_rate", self.slow_call_rate)?;
        check_positive("breaker.slow_call", self.slow_call)?;
        check_positive("breaker.window", self.window)?;
        check_positive("breaker.open_for", self.open_for)?;
        if self.min_calls == 0 {
            return Err(InvalidSetting::new(
                "breaker.min_calls",
                "must be at least 1",
            ));
        }
        if self.max_open_for < self.open_for {
            return Err(InvalidSetting::new(
                "breaker.max_open_for",
                format!(
                    "{:?} is below breaker.open_for {:?}",
                    self.max_open_for, self.open_for
                ),
            ));
        }
        if !(self.short_window_alpha > 0.0 && self.short_window_alpha < 0.5) {
            return Err(InvalidSetting::new(
                "breaker.short_window_alpha",
                format!("{} is not in (0, 0.5)", self.short_window_alpha),
            ));
        }
        if !(1..=1000).contains(&self.half_open_probes) {
            return Err(InvalidSetting::new(
                "breaker.half_open_probes",
                "must be in 1..=1000",
            ));
        }
        Ok(())
    }
}

/// A breaker's state, as metrics and dashboards show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Traffic flows; outcomes are counted.
    Closed,
    /// No traffic until the open time has passed.
    Open,
    /// A few probes test whether the target has recovered.
    HalfOpen,
}

impl State {
    /// The state's stable name.
    pub fn name(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }
}

/// Why the breaker changed state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reason {
    /// The failure rate over the window reached the threshold.
    FailureRate(f64),
    /// The slow-call rate over the window reached the threshold.
    SlowCallRate(f64),
    /// The open time passed.
    OpenTimeElapsed,
    /// A half-open probe failed.
    ProbeFailed,
    /// Enough half-open probes succeeded.
    ProbesSucceeded,
    /// This many calls in a row failed.
    ConsecutiveFailures(u32),
    /// So many of the calls in the short window failed that a target failing at the
    /// threshold rate would almost never show as many.
    RecentFailures {
        /// Failures in the short window.
        failures: u64,
        /// The calls they are judged against.
        calls: u64,
        /// The short window's length.
        window: Duration,
    },
    /// An active probe, sent while the breaker was open, succeeded.
    ActiveProbeSucceeded,
    /// An operator reset it.
    Reset,
    /// The same target's breaker opened on another node sharing health with this one.
    OpenedElsewhere,
}

impl Reason {
    /// A sentence for the log.
    pub fn describe(self) -> String {
        match self {
            Reason::FailureRate(rate) => format!("failure rate {:.0}%", rate * 100.0),
            Reason::SlowCallRate(rate) => format!("slow-call rate {:.0}%", rate * 100.0),
            Reason::OpenTimeElapsed => "open time elapsed".to_owned(),
            Reason::ProbeFailed => "a half-open probe failed".to_owned(),
            Reason::ProbesSucceeded => "half-open probes succeeded".to_owned(),
            Reason::ConsecutiveFailures(n) => format!("{n} failures in a row"),
            Reason::RecentFailures {
                failures,
                calls,
                window,
            } => format!("{failures} of {calls} calls failed in the last {window:?}"),
            Reason::ActiveProbeSucceeded => "an active probe succeeded".to_owned(),
            Reason::Reset => "reset by an operator".to_owned(),
            Reason::OpenedElsewhere => "opened on another node".to_owned(),
        }
    }
}

/// A change of state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition {
    /// The state before.
    pub from: State,
    /// The state after.
    pub to: State,
    /// Why.
    pub reason: Reason,
    /// For a move to open: until when.
    pub open_until: Option<Instant>,
}

/// Leave to send one call, tied to the state it was granted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permit {
    generation: u64,
    probe: bool,
}

impl Permit {
    /// Whether this call is a half-open probe.
    pub fn is_probe(self) -> bool {
        self.probe
    }
}

/// The breaker's answer to a call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admission {
    /// Send it.
    Admitted(Permit),
    /// Do not send it; the breaker is open until then (or half-open with every probe
    /// slot taken, in which case `until` is now).
    Rejected {
        /// When the breaker may admit again.
        until: Instant,
    },
}

#[derive(Debug, Clone)]
enum Phase {
    Closed,
    Open {
        until: Instant,
    },
    /// `in_flight` probes running; `successes` and `failures` of those that ended.
    HalfOpen {
        in_flight: u32,
        successes: u32,
        failures: u32,
    },
}

/// A circuit breaker for one target or one agent.
#[derive(Debug, Clone)]
pub struct Breaker {
    config: Config,
    phase: Phase,
    window: Window<5>,
    /// The same counts over `short_window`.
    recent: Window<5>,
    generation: u64,
    consecutive_trips: u32,
    /// Failures recorded in a row while closed.
    failures_in_a_row: u32,
    last_retry_after: Option<(Instant, Duration)>,
    /// When the current closed window started filling: the first admission after
    /// creation or after closing.
    observing_since: Option<Instant>,
}

impl Breaker {
    /// A closed breaker with validated `config`.
    pub fn new(config: Config) -> Result<Self, InvalidSetting> {
        config.validate()?;
        Ok(Breaker {
            config,
            phase: Phase::Closed,
            window: Window::new(config.window),
            recent: Window::new(config.short_window),
            generation: 0,
            consecutive_trips: 0,
            failures_in_a_row: 0,
            last_retry_after: None,
            observing_since: None,
        })
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The state as of the last call to [`admit`](Self::admit) or [`record`](Self::record).
    pub fn state(&self) -> State {
        match self.phase {
            Phase::Closed => State::Closed,
            Phase::Open { .. } => State::Open,
            Phase::HalfOpen { .. } => State::HalfOpen,
        }
    }

    /// Until when the breaker is open, if it is.
    pub fn open_until(&self) -> Option<Instant> {
        match self.phase {
            Phase::Open { until } => Some(until),
            Phase::Closed | Phase::HalfOpen { .. } => None,
        }
    }

    /// Whether a call at `now` would be admitted, without admitting it.
    pub fn would_admit(&self, now: Instant) -> bool {
        match self.phase {
            Phase::Closed => true,
            Phase::Open { until } => now >= until,
            Phase::HalfOpen {
                in_flight,
                successes,
                failures,
            } => in_flight + successes + failures < self.config.half_open_probes,
        }
    }

    /// Asks to send one call at `now`.
    pub fn admit(&mut self, now: Instant) -> (Admission, Option<Transition>) {
        let mut transition = None;
        if let Phase::Open { until } = self.phase {
            if now < until {
                return (Admission::Rejected { until }, None);
            }
            transition = Some(self.move_to(
                Phase::HalfOpen {
                    in_flight: 0,
                    successes: 0,
                    failures: 0,
                },
                Reason::OpenTimeElapsed,
            ));
        }
        let generation = self.generation;
        let admission = match &mut self.phase {
            Phase::Closed => {
                self.observing_since.get_or_insert(now);
                self.window.add(now, STARTED, 1);
                self.recent.add(now, STARTED, 1);
                Admission::Admitted(Permit {
                    generation,
                    probe: false,
                })
            }
            Phase::HalfOpen {
                in_flight,
                successes,
                failures,
            } if *in_flight + *successes + *failures < self.config.half_open_probes => {
                *in_flight += 1;
                Admission::Admitted(Permit {
                    generation,
                    probe: true,
                })
            }
            Phase::HalfOpen { .. } => Admission::Rejected { until: now },
            Phase::Open { until } => Admission::Rejected { until: *until },
        };
        (admission, transition)
    }

    /// Records the outcome of a call admitted with `permit`, which took `latency`.
    pub fn record(
        &mut self,
        now: Instant,
        permit: Permit,
        outcome: Outcome,
        latency: Duration,
    ) -> Option<Transition> {
        self.record_health(
            now,
            permit,
            outcome.health(),
            latency,
            outcome.retry_after(),
        )
    }

    /// Records a call's result as its meaning for the protected party: for a target,
    /// the outcome's [`Health`]; for an agent, whether the agent itself was at fault.
    pub fn record_health(
        &mut self,
        now: Instant,
        permit: Permit,
        health: Health,
        latency: Duration,
        retry_after: Option<Duration>,
    ) -> Option<Transition> {
        if permit.generation != self.generation {
            return None;
        }
        if let Some(wait) = retry_after {
            self.last_retry_after = Some((now, wait));
        }
        let slow = latency >= self.config.slow_call && health != Health::Neutral;
        let started = Instant::from_origin(now.since_origin().saturating_sub(latency));
        match self.phase {
            Phase::Closed => self.record_closed(now, started, health, slow),
            Phase::HalfOpen { .. } => self.record_probe(now, health, slow),
            Phase::Open { .. } => None,
        }
    }

    /// Judges the probes as the closed state judges its window: once their failure
    /// rate is sure to reach the threshold, open again; once it is sure to stay below,
    /// close. One failure among several probes does not condemn a target that fails
    /// now and then.
    fn record_probe(&mut self, now: Instant, health: Health, slow: bool) -> Option<Transition> {
        let probes = self.config.half_open_probes;
        let threshold = self.config.failure_rate;
        let Phase::HalfOpen {
            in_flight,
            successes,
            failures,
        } = &mut self.phase
        else {
            return None;
        };
        *in_flight = in_flight.saturating_sub(1);
        match (health, slow) {
            (Health::Failure, _) | (Health::Success, true) => *failures += 1,
            (Health::Success, false) => *successes += 1,
            (Health::Neutral, _) => return None,
        }
        let rate = |failed: u32| f64::from(failed) / f64::from(probes);
        let undecided = probes.saturating_sub(*successes + *failures);
        if rate(*failures) >= threshold {
            let until = self.open_until_after_trip(now);
            Some(self.move_to(Phase::Open { until }, Reason::ProbeFailed))
        } else if rate(*failures + undecided) < threshold {
            Some(self.move_to(Phase::Closed, Reason::ProbesSucceeded))
        } else {
            None
        }
    }

    /// Rates are failures over the calls that ended in the window, except while the
    /// window is still filling (after start-up or a state change): then fast failures
    /// end before slow successes, and judging only the calls that ended would trip a
    /// breaker on a target that fails a fraction of the time, so the calls started
    /// count too, those still running as not (yet) failed.
    fn record_closed(
        &mut self,
        now: Instant,
        started: Instant,
        health: Health,
        slow: bool,
    ) -> Option<Transition> {
        if health == Health::Neutral {
            self.window.add(now, NEUTRAL, 1);
            self.recent.add_at(now, started, NEUTRAL, 1);
            return None;
        }
        self.window.add(now, CALLS, 1);
        self.recent.add_at(now, started, CALLS, 1);
        if health == Health::Failure {
            self.window.add(now, FAILURES, 1);
            self.recent.add_at(now, started, FAILURES, 1);
            self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
        } else {
            self.failures_in_a_row = 0;
        }
        if slow {
            self.window.add(now, SLOW, 1);
        }
        let run = self.config.consecutive_failures;
        if run > 0 && self.failures_in_a_row >= run && self.run_outnumbers_running(now) {
            let until = self.open_until_after_trip(now);
            return Some(self.move_to(
                Phase::Open { until },
                Reason::ConsecutiveFailures(self.failures_in_a_row),
            ));
        }
        if health == Health::Failure
            && let Some(transition) = self.judge_recent(now)
        {
            return Some(transition);
        }
        self.judge(now)
    }

    /// Whether the run of failures is longer than the calls still running, any of which
    /// may yet succeed and break it. Refusals come back in milliseconds and answers in
    /// seconds: at start-up, under a target failing a fifth of the time, the first twenty
    /// calls to end are often all failures while a hundred successes are still on their
    /// way, and that is no run at all.
    fn run_outnumbers_running(&self, now: Instant) -> bool {
        let [calls, _, _, started, neutral] = self.window.totals(now);
        let running = started.saturating_sub(calls.saturating_add(neutral));
        u64::from(self.failures_in_a_row) > running
    }

    /// An active probe (a cheap request the caller sent on its own while the breaker
    /// was open or half-open) succeeded: the target answers again, so close now rather
    /// than wait out the open time or for traffic to finish the half-open verdict.
    /// Ignored when closed.
    pub fn probe_succeeded(&mut self) -> Option<Transition> {
        match self.phase {
            Phase::Open { .. } | Phase::HalfOpen { .. } => {
                Some(self.move_to(Phase::Closed, Reason::ActiveProbeSucceeded))
            }
            Phase::Closed => None,
        }
    }

    /// An operator says the target is fine: close, and forget the trips and the last
    /// Retry-After. None if already closed.
    pub fn reset(&mut self) -> Option<Transition> {
        self.last_retry_after = None;
        match self.phase {
            Phase::Closed => None,
            Phase::Open { .. } | Phase::HalfOpen { .. } => {
                Some(self.move_to(Phase::Closed, Reason::Reset))
            }
        }
    }

    /// Opens until `until` because the same target's breaker opened on another node
    /// (`[cluster] share_health`): what that node learned spares this one the failures
    /// it would take to learn it again. The open time does not count as a trip of this
    /// breaker (its own trips still grow theirs). `None` when `until` is past, or the
    /// breaker is already open at least as long.
    pub fn open_elsewhere(&mut self, now: Instant, until: Instant) -> Option<Transition> {
        if until <= now {
            return None;
        }
        match self.phase {
            Phase::Open { until: current } if current >= until => None,
            Phase::Closed | Phase::Open { .. } | Phase::HalfOpen { .. } => {
                Some(self.move_to(Phase::Open { until }, Reason::OpenedElsewhere))
            }
        }
    }

    /// Records that a call already recorded as a success failed afterwards: a stream
    /// that broke after its first byte reached the client, long after the attempt
    /// ended as far as the pipeline knew. Counted while closed only, where the success
    /// it corrects was counted; a probe's verdict is not reopened.
    pub fn record_late_failure(&mut self, now: Instant, outcome: Outcome) -> Option<Transition> {
        if !matches!(self.phase, Phase::Closed) || outcome.health() != Health::Failure {
            return None;
        }
        self.window.add(now, FAILURES, 1);
        self.recent.add(now, FAILURES, 1);
        self.judge_recent(now).or_else(|| self.judge(now))
    }

    /// Opens the breaker if the short window holds more failures than chance allows a
    /// target failing at the threshold rate: at least [`RECENT_MIN_FAILURES`], and so
    /// many that `short_window_alpha` bounds the odds of a false trip in any one
    /// window. The long window lets seconds of earlier successes outvote a total
    /// outage; this one forgets them after `short_window`. It counts the calls that
    /// *started* in it, by their outcome once known: the window is shorter than most
    /// answers, so a success sent before an outage must not dilute it when it lands
    /// seconds later, and the calls still running count as not failed, so fast
    /// failures cannot outvote slow successes on their way. A total outage by hangs is
    /// left to the run and the long window: its failures end long after they start.
    fn judge_recent(&mut self, now: Instant) -> Option<Transition> {
        if self.config.short_window.is_zero() {
            return None;
        }
        let [calls, failures, _, started, neutral] = self.recent.totals(now);
        if failures < RECENT_MIN_FAILURES {
            return None;
        }
        let judged = calls.max(started.saturating_sub(neutral));
        let failures = failures.min(judged);
        if !significance::upper_tail_below(
            failures,
            judged,
            self.config.failure_rate,
            self.config.short_window_alpha,
        ) {
            return None;
        }
        let until = self.open_until_after_trip(now);
        let reason = Reason::RecentFailures {
            failures,
            calls: judged,
            window: self.recent.span(),
        };
        Some(self.move_to(Phase::Open { until }, reason))
    }

    /// Opens the breaker if the window's rates reach a threshold.
    fn judge(&mut self, now: Instant) -> Option<Transition> {
        let [calls, failures, slow_calls, started, neutral] = self.window.totals(now);
        if calls < u64::from(self.config.min_calls) {
            return None;
        }
        let filling = self
            .observing_since
            .is_none_or(|since| now.saturating_duration_since(since) < self.config.window);
        let judged = if filling {
            calls.max(started.saturating_sub(neutral))
        } else {
            calls
        } as f64;
        let failure_rate = (failures as f64 / judged).min(1.0);
        let slow_rate = (slow_calls as f64 / judged).min(1.0);
        let reason = if failure_rate >= self.config.failure_rate {
            Reason::FailureRate(failure_rate)
        } else if slow_rate >= self.config.slow_call_rate {
            Reason::SlowCallRate(slow_rate)
        } else {
            return None;
        };
        let until = self.open_until_after_trip(now);
        Some(self.move_to(Phase::Open { until }, reason))
    }

    /// Open time grows with consecutive trips and is never shorter than the target's
    /// most recent Retry-After.
    fn open_until_after_trip(&mut self, now: Instant) -> Instant {
        let doublings = self.consecutive_trips.min(16);
        self.consecutive_trips = self.consecutive_trips.saturating_add(1);
        let mut open_for = self
            .config
            .open_for
            .saturating_mul(1 << doublings)
            .min(self.config.max_open_for);
        if let Some((said_at, wait)) = self.last_retry_after {
            let remaining = (said_at + wait).saturating_duration_since(now);
            open_for = open_for.max(remaining);
        }
        now + open_for
    }

    fn move_to(&mut self, phase: Phase, reason: Reason) -> Transition {
        let from = self.state();
        if matches!(phase, Phase::Closed) {
            self.consecutive_trips = 0;
        }
        self.observing_since = None;
        self.failures_in_a_row = 0;
        self.window.clear();
        self.recent.clear();
        self.generation += 1;
        self.phase = phase;
        Transition {
            from,
            to: self.state(),
            reason,
            open_until: self.open_until(),
        }
    }
}

#[cfg(test)]
#[path = "breaker_tests.rs"]
mod tests;
