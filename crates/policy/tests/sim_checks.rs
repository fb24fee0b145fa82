//! Each invariant checker catches a hand-made trace that breaks its invariant, and
//! passes the same trace without the fault: the checks can fail.

#![allow(clippy::unwrap_used)] // a test: a broken scenario should fail loudly

use std::time::Duration;

use holdfast_policy::Instant;
use holdfast_policy::breaker::{Reason, State, Transition};
use holdfast_policy::budget;
use holdfast_policy::deadline::Deadline;
use holdfast_policy::fallback::TargetId;
use holdfast_policy::outcome::{Outcome, TimeoutKind};
use holdfast_policy::pipeline::{
    AttemptEvent, AttemptId, GiveUp, Next, PolicyEvent, StartAttempt, Verdict,
};
use holdfast_policy::sim::check::{self, Invariant, Limits, Violation};
use holdfast_policy::sim::trace::{CallId, Entry, Trace};

fn at(ms: u64) -> Instant {
    Instant::from_origin(Duration::from_millis(ms))
}

fn limits() -> Limits {
    Limits {
        global_budget: None,
        target_budgets: vec![None, None],
        half_open_probes: vec![Some(1), Some(1)],
        backoff_cap: Duration::from_secs(10),
    }
}

/// A hand-written trace, one call at a time.
struct Script(Trace);

impl Script {
    fn new() -> Self {
        Script(Trace::new())
    }

    fn arrive(&mut self, ms: u64, call: u32, deadline_ms: Option<u64>) -> &mut Self {
        let deadline = deadline_ms.map_or(Deadline::NONE, |d| Deadline::at(at(d)));
        self.0
            .push(at(ms), CallId(call), Entry::Arrived { deadline });
        self
    }

    fn start(&mut self, ms: u64, call: u32, attempt: u32, target: u32, number: u32) -> &mut Self {
        let start = StartAttempt {
            attempt: AttemptId(attempt),
            target: TargetId(target),
            link: target as usize,
            timeout: Duration::from_secs(1),
            number,
            retry: number.saturating_sub(1),
            hedge: false,
            fallback: false,
        };
        self.0.push(at(ms), CallId(call), Entry::Started(start));
        self
    }

    fn end(
        &mut self,
        ms: u64,
        call: u32,
        attempt: u32,
        target: u32,
        outcome: Outcome,
        next: Next,
    ) -> &mut Self {
        let event = AttemptEvent {
            attempt: AttemptId(attempt),
            target: TargetId(target),
            number: attempt,
            retry: 0,
            started: Instant::ZERO,
            outcome,
            latency: Duration::ZERO,
            waited: Duration::ZERO,
            hedge: false,
            next,
        };
        self.0.push(
            at(ms),
            CallId(call),
            Entry::Event(PolicyEvent::Attempt(event)),
        );
        self
    }

    fn breaker(&mut self, ms: u64, target: u32, from: State, to: State) -> &mut Self {
        let transition = Transition {
            from,
            to,
            reason: Reason::OpenTimeElapsed,
            open_until: None,
        };
        let event = PolicyEvent::TargetBreaker {
            target: TargetId(target),
            transition,
        };
        self.0.push(at(ms), CallId(0), Entry::Event(event));
        self
    }

    fn done(&mut self, ms: u64, call: u32) -> &mut Self {
        let verdict = Verdict::GaveUp {
            reason: GiveUp::Exhausted,
            last: None,
        };
        self.0.push(at(ms), CallId(call), Entry::Done(verdict));
        self
    }

    fn trace(&self) -> &Trace {
        &self.0
    }
}

fn only(violations: Vec<Violation>, invariant: Invariant) -> usize {
    assert!(
        violations.iter().all(|v| v.invariant == invariant),
        "{violations:?}"
    );
    violations.len()
}

#[test]
fn retry_budget_check_catches_retries_beyond_the_reserve() {
    let limits = Limits {
        global_budget: Some(budget::Config {
            ratio: 0.5,
            min_per_second: 0.1,
            window: Duration::from_secs(10),
        }),
        target_budgets: vec![
            None,
            Some(budget::Config {
                ratio: 0.0,
                min_per_second: 0.2,
                window: Duration::from_secs(10),
            }),
        ],
        ..limits()
    };
    // Reserve: 1 global retry and 2 on target 1 per 10 s; 2 successes earn 1 more globally.
    let mut ok = Script::new();
    ok.end(0, 9, 1, 0, Outcome::Ok, Next::Done)
        .end(1, 9, 1, 0, Outcome::Ok, Next::Done);
    ok.start(100, 1, 2, 1, 2).start(200, 2, 2, 1, 2);
    assert_eq!(check::retries_within_budget(ok.trace(), &limits), vec![]);

    let mut over = Script::new();
    over.end(0, 9, 1, 0, Outcome::Ok, Next::Done);
    over.start(100, 1, 2, 1, 2)
        .start(200, 2, 2, 1, 2)
        .start(300, 3, 2, 1, 2);
    let violations = check::retries_within_budget(over.trace(), &limits);
    assert_eq!(
        only(violations.clone(), Invariant::RetryBudget),
        3,
        "{violations:#?}"
    );
    assert!(violations.iter().any(|v| v.detail.starts_with("global")));
    assert!(violations.iter().any(|v| v.detail.starts_with("target 1")));
}

#[test]
fn retry_budget_check_forgets_retries_older_than_the_window() {
    let limits = Limits {
        global_budget: Some(budget::Config {
            ratio: 0.0,
            min_per_second: 0.1,
            window: Duration::from_secs(10),
        }),
        ..limits()
    };
    let mut spaced = Script::new();
    spaced.start(0, 1, 2, 0, 2).start(10_000, 2, 2, 0, 2);
    assert_eq!(
        check::retries_within_budget(spaced.trace(), &limits),
        vec![]
    );
    let mut close = Script::new();
    close.start(0, 1, 2, 0, 2).start(8_000, 2, 2, 0, 2);
    assert_eq!(
        only(
            check::retries_within_budget(close.trace(), &limits),
            Invariant::RetryBudget
        ),
        1
    );
}

#[test]
fn breaker_check_catches_an_attempt_through_an_open_breaker() {
    let mut s = Script::new();
    s.breaker(0, 0, State::Closed, State::Open)
        .start(10, 1, 1, 1, 1);
    assert_eq!(
        check::open_breaker_admits_only_probes(s.trace(), &limits()),
        vec![]
    );
    s.start(20, 2, 1, 0, 1);
    let violations = check::open_breaker_admits_only_probes(s.trace(), &limits());
    assert_eq!(only(violations, Invariant::BreakerProbes), 1);
}

#[test]
fn breaker_check_catches_too_many_half_open_probes() {
    let mut s = Script::new();
    s.breaker(0, 0, State::Closed, State::Open)
        .breaker(100, 0, State::Open, State::HalfOpen);
    s.start(100, 1, 1, 0, 1)
        .end(150, 1, 1, 0, Outcome::Ok, Next::Done)
        .start(160, 2, 1, 0, 1);
    assert_eq!(
        check::open_breaker_admits_only_probes(s.trace(), &limits()),
        vec![]
    );
    s.start(170, 3, 1, 0, 1);
    let violations = check::open_breaker_admits_only_probes(s.trace(), &limits());
    assert_eq!(only(violations, Invariant::BreakerProbes), 1);
}

#[test]
fn retry_after_check_catches_an_attempt_inside_the_wait() {
    let limited = Outcome::RateLimited {
        retry_after: Some(Duration::from_secs(5)),
    };
    let mut s = Script::new();
    s.start(0, 1, 1, 0, 1).end(
        100,
        1,
        1,
        0,
        limited,
        Next::Retry {
            after: Duration::from_secs(5),
        },
    );
    let mut early = Script::new();
    early.0 = s.0.clone();
    s.start(100, 2, 1, 0, 1)
        .start(2_000, 3, 1, 1, 1)
        .start(5_100, 1, 2, 0, 2);
    assert_eq!(check::retry_after_respected(s.trace()), vec![]);
    early.start(5_099, 4, 1, 0, 1);
    assert_eq!(
        only(
            check::retry_after_respected(early.trace()),
            Invariant::RetryAfter
        ),
        1
    );
}

#[test]
fn non_retryable_check_catches_a_retry_after_auth_on_the_same_target() {
    let mut s = Script::new();
    s.start(0, 1, 1, 0, 1)
        .end(10, 1, 1, 0, Outcome::Auth, Next::Done);
    s.start(10, 1, 2, 1, 2).start(20, 2, 1, 0, 1);
    assert_eq!(check::non_retryable_not_retried_here(s.trace()), vec![]);
    s.start(30, 1, 3, 0, 3);
    let violations = check::non_retryable_not_retried_here(s.trace());
    assert_eq!(only(violations, Invariant::NonRetryable), 1);
}

#[test]
fn deadline_check_catches_an_attempt_and_a_call_that_outlive_it() {
    let mut s = Script::new();
    s.arrive(0, 1, Some(2_000))
        .start(1_000, 1, 1, 0, 1)
        .done(2_000, 1);
    assert_eq!(check::attempts_within_deadline(s.trace()), vec![]);
    let mut late = Script::new();
    late.arrive(0, 1, Some(2_000))
        .start(1_500, 1, 1, 0, 1)
        .done(2_001, 1);
    assert_eq!(
        only(
            check::attempts_within_deadline(late.trace()),
            Invariant::Deadline
        ),
        2
    );
}

#[test]
fn backoff_check_catches_a_delay_above_the_cap_not_set_by_retry_after() {
    let wait = Duration::from_secs(30);
    let told = Outcome::Overloaded {
        retry_after: Some(wait),
    };
    let mut s = Script::new();
    s.end(0, 1, 1, 0, told, Next::Retry { after: wait });
    s.end(
        0,
        2,
        1,
        0,
        Outcome::ServerError,
        Next::Retry {
            after: Duration::from_secs(10),
        },
    );
    assert_eq!(check::backoff_within_cap(s.trace(), &limits()), vec![]);
    s.end(
        0,
        3,
        1,
        0,
        Outcome::Timeout(TimeoutKind::Total),
        Next::Retry { after: wait },
    );
    assert_eq!(
        only(
            check::backoff_within_cap(s.trace(), &limits()),
            Invariant::BackoffCap
        ),
        1
    );
}

#[test]
fn call_end_check_catches_a_call_that_never_ends_or_ends_twice() {
    let mut s = Script::new();
    s.arrive(0, 1, None).arrive(0, 2, None).done(5, 1);
    let violations = check::every_call_ends(s.trace());
    assert_eq!(only(violations.clone(), Invariant::CallEnds), 1);
    assert!(violations[0].detail.contains("call 2"));
    s.done(6, 2).done(7, 2);
    assert_eq!(
        only(check::every_call_ends(s.trace()), Invariant::CallEnds),
        1
    );
}

#[test]
fn all_runs_every_check() {
    let mut s = Script::new();
    s.arrive(0, 1, Some(100)).start(50, 1, 1, 0, 1);
    s.end(
        60,
        1,
        1,
        0,
        Outcome::BadRequest,
        Next::Retry {
            after: Duration::from_secs(60),
        },
    );
    s.start(70, 1, 2, 0, 2);
    let found: Vec<Invariant> = check::all(s.trace(), &limits())
        .iter()
        .map(|v| v.invariant)
        .collect();
    for invariant in [
        Invariant::NonRetryable,
        Invariant::Deadline,
        Invariant::BackoffCap,
        Invariant::CallEnds,
    ] {
        assert!(found.contains(&invariant), "{invariant:?} in {found:?}");
    }
}
