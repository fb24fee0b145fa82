use super::*;
use crate::outcome::TimeoutKind;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn at(ms: u64) -> Instant {
    Instant::from_origin(Duration::from_millis(ms))
}

fn config() -> Config {
    Config {
        failure_rate: 0.5,
        slow_call_rate: 0.8,
        slow_call: Duration::from_secs(1),
        window: Duration::from_secs(10),
        min_calls: 4,
        open_for: Duration::from_secs(5),
        max_open_for: Duration::from_secs(20),
        half_open_probes: 2,
        consecutive_failures: 0,
        short_window: Duration::ZERO,
        short_window_alpha: 1e-3,
    }
}

fn admitted(b: &mut Breaker, now: Instant) -> Permit {
    match b.admit(now).0 {
        Admission::Admitted(p) => p,
        Admission::Rejected { until } => panic!("rejected until {until}"),
    }
}

fn call(b: &mut Breaker, now: Instant, outcome: Outcome) -> Option<Transition> {
    let permit = admitted(b, now);
    b.record(now, permit, outcome, Duration::from_millis(10))
}

fn trip(b: &mut Breaker, now: Instant) -> Transition {
    (0..4)
        .find_map(|_| call(b, now, Outcome::ServerError))
        .expect("trips")
}

#[test]
fn opens_on_failure_rate_only_after_min_calls() {
    let mut b = Breaker::new(config()).unwrap();
    assert_eq!(call(&mut b, at(0), Outcome::ServerError), None);
    assert_eq!(call(&mut b, at(0), Outcome::Ok), None);
    assert_eq!(call(&mut b, at(0), Outcome::Ok), None);
    let t = call(&mut b, at(0), Outcome::ServerError).unwrap();
    assert_eq!((t.from, t.to), (State::Closed, State::Open));
    assert_eq!(t.reason, Reason::FailureRate(0.5));
    assert_eq!(t.open_until, Some(at(5_000)));
}

#[test]
fn open_admits_nothing_then_limits_probes() {
    let mut b = Breaker::new(config()).unwrap();
    trip(&mut b, at(0));
    assert_eq!(
        b.admit(at(4_999)).0,
        Admission::Rejected { until: at(5_000) }
    );
    let (first, t) = b.admit(at(5_000));
    assert_eq!(t.map(|t| t.to), Some(State::HalfOpen));
    assert!(matches!(first, Admission::Admitted(p) if p.is_probe()));
    assert!(matches!(b.admit(at(5_000)).0, Admission::Admitted(_)));
    assert_eq!(
        b.admit(at(5_000)).0,
        Admission::Rejected { until: at(5_000) }
    );
}

#[test]
fn probes_close_it_and_a_failed_probe_reopens_for_longer() {
    let mut b = Breaker::new(config()).unwrap();
    trip(&mut b, at(0));
    let p = admitted(&mut b, at(5_000));
    let t = b
        .record(
            at(5_010),
            p,
            Outcome::Timeout(TimeoutKind::FirstByte),
            Duration::ZERO,
        )
        .unwrap();
    assert_eq!((t.to, t.reason), (State::Open, Reason::ProbeFailed));
    assert_eq!(
        t.open_until,
        Some(at(15_010)),
        "second trip doubles open_for"
    );

    let p1 = admitted(&mut b, at(15_010));
    let p2 = admitted(&mut b, at(15_010));
    assert_eq!(b.record(at(15_020), p1, Outcome::Ok, Duration::ZERO), None);
    let t = b
        .record(at(15_020), p2, Outcome::Ok, Duration::ZERO)
        .unwrap();
    assert_eq!((t.to, t.reason), (State::Closed, Reason::ProbesSucceeded));
    assert_eq!(
        trip(&mut b, at(16_000)).open_until,
        Some(at(21_000)),
        "closing resets the growth"
    );
}

#[test]
fn open_time_is_at_least_the_last_retry_after() {
    let mut b = Breaker::new(config()).unwrap();
    let limited = Outcome::RateLimited {
        retry_after: Some(Duration::from_secs(30)),
    };
    let t = (0..4).find_map(|_| call(&mut b, at(0), limited)).unwrap();
    assert_eq!(t.open_until, Some(at(30_000)));
}

#[test]
fn opens_on_slow_calls() {
    let mut b = Breaker::new(config()).unwrap();
    let t = (0..4)
        .find_map(|_| {
            let p = admitted(&mut b, at(0));
            b.record(at(0), p, Outcome::Ok, Duration::from_secs(2))
        })
        .unwrap();
    assert!(matches!(t.reason, Reason::SlowCallRate(_)));
}

#[test]
fn neutral_outcomes_do_not_count() {
    let mut b = Breaker::new(config()).unwrap();
    for _ in 0..10 {
        assert_eq!(call(&mut b, at(0), Outcome::BadRequest), None);
    }
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn results_from_an_earlier_state_are_ignored() {
    let mut b = Breaker::new(config()).unwrap();
    let stale = admitted(&mut b, at(0));
    trip(&mut b, at(0));
    let probe = admitted(&mut b, at(5_000));
    assert_eq!(
        b.record(at(5_000), stale, Outcome::ServerError, Duration::ZERO),
        None
    );
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(
        b.record(at(5_000), probe, Outcome::Ok, Duration::ZERO),
        None
    );
}

#[test]
fn old_failures_leave_the_window() {
    let mut b = Breaker::new(config()).unwrap();
    call(&mut b, at(0), Outcome::ServerError);
    call(&mut b, at(0), Outcome::ServerError);
    call(&mut b, at(0), Outcome::ServerError);
    for _ in 0..4 {
        assert_eq!(call(&mut b, at(20_000), Outcome::Ok), None);
    }
}

#[test]
fn constructor_names_the_bad_field() {
    let bad = |c: Config| Breaker::new(c).unwrap_err().field;
    let d = Config::default();
    assert_eq!(
        bad(Config {
            failure_rate: 0.0,
            ..d
        }),
        "breaker.failure_rate"
    );
    assert_eq!(
        bad(Config {
            failure_rate: 1.1,
            ..d
        }),
        "breaker.failure_rate"
    );
    assert_eq!(bad(Config { min_calls: 0, ..d }), "breaker.min_calls");
    assert_eq!(
        bad(Config {
            half_open_probes: 0,
            ..d
        }),
        "breaker.half_open_probes"
    );
    assert_eq!(
        bad(Config {
            window: Duration::ZERO,
            ..d
        }),
        "breaker.window"
    );
    assert_eq!(
        bad(Config {
            max_open_for: Duration::from_secs(1),
            ..d
        }),
        "breaker.max_open_for"
    );
}

#[test]
fn fast_failures_do_not_outvote_slow_successes_still_running() {
    let mut b = Breaker::new(config()).unwrap();
    // Ten calls start together; the four that fail answer first.
    let permits: Vec<Permit> = (0..10).map(|_| admitted(&mut b, at(0))).collect();
    for permit in &permits[..4] {
        assert_eq!(
            b.record(at(50), *permit, Outcome::ServerError, ms(50)),
            None
        );
    }
    assert_eq!(b.state(), State::Closed, "4 failures of 10 started is 40%");
    for permit in &permits[4..] {
        assert_eq!(b.record(at(900), *permit, Outcome::Ok, ms(900)), None);
    }
}

#[test]
fn successes_that_failed_later_open_the_breaker() {
    let mut b = Breaker::new(config()).unwrap();
    let mut opened = None;
    for _ in 0..4 {
        opened = opened.or(call(&mut b, at(0), Outcome::Ok));
        opened = opened.or(b.record_late_failure(at(10), Outcome::StreamInterrupted));
    }
    let t = opened.expect("streams that all broke after their first byte");
    assert_eq!((t.from, t.to), (State::Closed, State::Open));
    assert_eq!(
        b.record_late_failure(at(20), Outcome::StreamInterrupted),
        None,
        "open: nothing to correct"
    );
}

#[test]
fn a_run_of_failures_opens_at_once_however_many_successes_the_window_holds() {
    let mut b = Breaker::new(Config {
        consecutive_failures: 10,
        min_calls: 20,
        ..config()
    })
    .unwrap();
    for i in 0..1_000 {
        assert_eq!(call(&mut b, at(i), Outcome::Ok), None);
    }
    for i in 0..9 {
        assert_eq!(call(&mut b, at(1_000 + i), Outcome::ServerError), None);
    }
    let t = call(&mut b, at(1_009), Outcome::ServerError).unwrap();
    assert_eq!((t.from, t.to), (State::Closed, State::Open));
    assert_eq!(t.reason, Reason::ConsecutiveFailures(10));
}

#[test]
fn a_success_breaks_the_run_and_a_fifth_of_failures_never_trips() {
    let mut b = Breaker::new(Config {
        consecutive_failures: 10,
        min_calls: 20,
        ..config()
    })
    .unwrap();
    let mut rng = crate::rng::Rng::seeded(3);
    for i in 0..100_000 {
        let outcome = if rng.range_inclusive(0, 99) < 20 {
            Outcome::ServerError
        } else {
            Outcome::Ok
        };
        assert_eq!(call(&mut b, at(i), outcome), None, "call {i}");
    }
}

#[test]
fn an_active_probe_closes_an_open_breaker_before_its_time() {
    let mut b = Breaker::new(config()).unwrap();
    assert_eq!(b.probe_succeeded(), None, "closed: nothing to do");
    trip(&mut b, at(0));
    let t = b.probe_succeeded().unwrap();
    assert_eq!((t.from, t.to), (State::Open, State::Closed));
    assert_eq!(t.reason, Reason::ActiveProbeSucceeded);
    assert!(b.would_admit(at(1)));
    // The next trip starts from `open_for` again: the probe proved the target healthy.
    let t = trip(&mut b, at(10));
    assert_eq!(t.open_until, Some(at(5_010)));
}

#[test]
fn a_reset_closes_and_forgets_the_retry_after() {
    let mut b = Breaker::new(config()).unwrap();
    assert_eq!(b.reset(), None);
    let permit = admitted(&mut b, at(0));
    let day = Outcome::RateLimited {
        retry_after: Some(Duration::from_secs(86_400)),
    };
    b.record(at(0), permit, day, ms(10));
    let t = trip(&mut b, at(0));
    assert!(t.open_until.unwrap() >= at(86_400_000));
    let t = b.reset().unwrap();
    assert_eq!((t.to, t.reason), (State::Closed, Reason::Reset));
    let t = trip(&mut b, at(1));
    assert_eq!(
        t.open_until,
        Some(at(5_001)),
        "the old Retry-After is forgotten"
    );
}

#[test]
fn a_breaker_opened_elsewhere_opens_here_until_the_same_instant() {
    let mut b = Breaker::new(config()).unwrap();
    let t = b.open_elsewhere(at(100), at(3_000)).unwrap();
    assert_eq!(
        (t.from, t.to, t.reason, t.open_until),
        (
            State::Closed,
            State::Open,
            Reason::OpenedElsewhere,
            Some(at(3_000))
        )
    );
    assert!(!b.would_admit(at(2_999)));
    // The same news again, or an older one, changes nothing; a later end extends it.
    assert_eq!(b.open_elsewhere(at(200), at(3_000)), None);
    assert_eq!(b.open_elsewhere(at(200), at(2_000)), None);
    assert_eq!(b.open_elsewhere(at(200), at(150)), None);
    assert_eq!(
        b.open_elsewhere(at(200), at(4_000)).unwrap().open_until,
        Some(at(4_000))
    );
    // It was not this breaker's trip: its own first trip opens for `open_for`.
    assert!(b.admit(at(4_000)).1.is_some());
    b.reset();
    assert_eq!(trip(&mut b, at(5_000)).open_until, Some(at(10_000)));
}

/// A call's end: when (ns), its sequence, its permit's index, whether it failed, and
/// its latency (ns).
type End = (u64, u64, u64, bool, u64);

/// Traffic through a breaker with the production defaults: Poisson arrivals at `rate`
/// per second from 0 to `until` seconds; a call fails when `fails(start, rng)` says so,
/// in 20–200 ms, and succeeds in 0.5–3 s (an LLM answer: slower than a refusal). Returns
/// the first change of state and when it happened, in seconds.
fn traffic(
    seed: u64,
    rate: f64,
    until: f64,
    mut fails: impl FnMut(f64, &mut crate::rng::Rng) -> bool,
) -> Option<(f64, Transition)> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    let mut rng = crate::rng::Rng::seeded(seed);
    let mut b = Breaker::new(Config::default()).unwrap();
    let nanos = |s: f64| (s * 1e9) as u64;
    let instant = |n: u64| Instant::from_origin(Duration::from_nanos(n));
    let mut ends: BinaryHeap<Reverse<End>> = BinaryHeap::new();
    let mut permits = Vec::new();
    let mut next = 0.0;
    let mut seq = 0;
    loop {
        let arrival = nanos(next);
        let first_end = ends.peek().map(|Reverse(e)| e.0);
        if next >= until && first_end.is_none() {
            return None;
        }
        if next < until && first_end.is_none_or(|end| arrival <= end) {
            let (admission, t) = b.admit(instant(arrival));
            if let Some(t) = t {
                return Some((next, t));
            }
            if let Admission::Admitted(permit) = admission {
                let failed = fails(next, &mut rng);
                let ms = if failed {
                    rng.range_inclusive(20, 200)
                } else {
                    rng.range_inclusive(500, 3_000)
                };
                let latency = ms * 1_000_000;
                permits.push(permit);
                ends.push(Reverse((
                    arrival + latency,
                    seq,
                    permits.len() as u64 - 1,
                    failed,
                    latency,
                )));
                seq += 1;
            }
            next += -(1.0 - rng.unit()).ln() / rate;
            continue;
        }
        let Some(Reverse((end, _, index, failed, latency))) = ends.pop() else {
            continue;
        };
        let outcome = if failed {
            Outcome::ServerError
        } else {
            Outcome::Ok
        };
        let permit = permits[index as usize];
        if let Some(t) = b.record(instant(end), permit, outcome, Duration::from_nanos(latency)) {
            return Some((end as f64 / 1e9, t));
        }
    }
}

/// A minute of health, then every call fails: how long until the breaker opens, and why.
fn outage(seed: u64, rate: f64) -> (f64, Reason) {
    let (at, t) = traffic(seed, rate, 200.0, |start, _| start >= 60.0).expect("trips");
    assert_eq!((t.from, t.to), (State::Closed, State::Open));
    (at - 60.0, t.reason)
}

#[test]
fn a_total_outage_opens_the_breaker_within_about_a_second_from_twenty_calls_a_second() {
    for rate in [10.0, 20.0, 150.0, 1_000.0] {
        let mut slowest: f64 = 0.0;
        for seed in 0..50 {
            let (after, reason) = outage(seed, rate);
            assert!(
                after >= 0.0,
                "{rate}/s seed {seed}: tripped before the outage"
            );
            slowest = slowest.max(after);
            if rate >= 20.0 {
                assert!(
                    matches!(reason, Reason::RecentFailures { .. }),
                    "{rate}/s seed {seed}: {reason:?} after {after:.2}s"
                );
            }
        }
        // At 10/s the second holds about ten calls, the least the test can condemn
        // (½¹⁰ ≈ 1e-3), so some seeds wait for a window that happens to hold them.
        let bound = match rate {
            r if r >= 50.0 => 1.1,
            r if r >= 20.0 => 1.5,
            _ => 4.0,
        };
        assert!(slowest <= bound, "{rate}/s: slowest trip {slowest:.2}s");
    }
}

/// The floor: the short window's test needs ten failures within its second (½¹⁰ ≈ 1e-3
/// at the default threshold and α), which two calls a second never bring; the run of
/// `consecutive_failures` (20) opens it after ten seconds instead. The long window
/// (30 s, 50%) alone would take as long again.
#[test]
fn at_two_calls_a_second_the_run_of_failures_opens_it_after_twenty_calls() {
    for seed in 0..50 {
        let (after, reason) = outage(seed, 2.0);
        assert!(
            matches!(
                reason,
                Reason::ConsecutiveFailures(20) | Reason::FailureRate(_)
            ),
            "seed {seed}: {reason:?}"
        );
        assert!((5.0..=20.0).contains(&after), "seed {seed}: {after:.2}s");
    }
}

#[test]
fn a_steady_fifth_of_failures_never_opens_it_at_any_rate() {
    for rate in [2.0, 10.0, 50.0, 150.0] {
        for seed in 0..100 {
            let tripped = traffic(seed, rate, 60.0, |_, rng| rng.chance(0.2));
            assert_eq!(tripped, None, "{rate}/s seed {seed}");
        }
    }
}

#[test]
fn the_short_window_needs_significance_not_a_majority() {
    let mut b = Breaker::new(Config {
        short_window: Duration::from_secs(1),
        min_calls: 1_000,
        ..config()
    })
    .unwrap();
    // 9 of 10 failed within the second: P(X ≥ 9 | 10, ½) = 1.1% is not below 1e-3.
    assert_eq!(call(&mut b, at(0), Outcome::Ok), None);
    for i in 0..9 {
        assert_eq!(call(&mut b, at(10 * i), Outcome::ServerError), None);
    }
    // A second later those have left the window; ten failures of ten are enough.
    for i in 0..9 {
        assert_eq!(call(&mut b, at(1_500 + i), Outcome::ServerError), None);
    }
    let t = call(&mut b, at(1_509), Outcome::ServerError).unwrap();
    assert_eq!(
        t.reason,
        Reason::RecentFailures {
            failures: 10,
            calls: 10,
            window: Duration::from_secs(1),
        }
    );
    assert_eq!(t.reason.describe(), "10 of 10 calls failed in the last 1s");
}

#[test]
fn calls_still_running_count_against_fast_failures_in_the_short_window() {
    let mut b = Breaker::new(Config {
        short_window: Duration::from_secs(1),
        min_calls: 1_000,
        ..config()
    })
    .unwrap();
    // 30 calls start together; the 12 that fail answer first, the rest are still
    // running: 12 of 30 is no evidence against a target failing below half the time.
    let permits: Vec<Permit> = (0..30).map(|_| admitted(&mut b, at(0))).collect();
    for permit in &permits[..12] {
        assert_eq!(
            b.record(at(100), *permit, Outcome::ServerError, ms(100)),
            None
        );
    }
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn the_short_window_is_off_at_zero_and_its_alpha_is_checked() {
    let mut b = Breaker::new(config()).unwrap();
    for i in 0..100 {
        assert_eq!(call(&mut b, at(i), Outcome::Ok), None);
    }
    for i in 0..50 {
        assert_eq!(call(&mut b, at(100 + i), Outcome::ServerError), None);
    }
    let bad = |alpha| {
        Breaker::new(Config {
            short_window_alpha: alpha,
            ..Config::default()
        })
        .unwrap_err()
        .field
    };
    assert_eq!(bad(0.0), "breaker.short_window_alpha");
    assert_eq!(bad(0.5), "breaker.short_window_alpha");
    assert_eq!(bad(f64::NAN), "breaker.short_window_alpha");
}
