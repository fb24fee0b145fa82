use super::*;
use crate::backoff::{self, Jitter};
use crate::breaker;
use crate::fallback::{Link, TargetId};
use crate::outcome::TimeoutKind;

pub(super) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(super) fn at(n: u64) -> Instant {
    Instant::from_origin(ms(n))
}

pub(super) struct Fixture {
    pub(super) registry: Registry,
    pub(super) chain: Arc<Chain>,
    pub(super) policy: Policy,
}

pub(super) fn fixture(targets: usize) -> Fixture {
    let mut registry = Registry::new(Settings::default()).unwrap();
    let links = (0..targets)
        .map(|i| {
            let settings = TargetSettings {
                breaker: Some(breaker::Config {
                    min_calls: 4,
                    ..breaker::Config::default()
                }),
                ..TargetSettings::default()
            };
            let id = registry
                .add_target(&format!("t{i}"), settings, at(0))
                .unwrap();
            Link {
                target: id,
                context_window: Some(8_000 * (i as u64 + 1)),
                attempt_timeout: Duration::from_secs(30),
                takes_filtered: false,
            }
        })
        .collect();
    let backoff = Backoff::new(backoff::Config {
        base: ms(100),
        cap: Duration::from_secs(2),
        max_attempts: 3,
        jitter: Jitter::None,
    })
    .unwrap();
    Fixture {
        registry,
        chain: Arc::new(Chain::new(links).unwrap()),
        policy: Policy::new(backoff),
    }
}

impl Fixture {
    fn call(&self, deadline: Deadline) -> Call {
        Call::new(Request {
            chain: self.chain.clone(),
            policy: Arc::new(self.policy.clone()),
            deadline,
            agent: None,
            tokens: None,
            seed: 1,
            priority: crate::concurrency::Priority::Interactive,
        })
    }
}

pub(super) fn started(actions: &[Action]) -> Vec<StartAttempt> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Start(s) => Some(*s),
            _ => None,
        })
        .collect()
}

pub(super) fn wake(actions: &[Action]) -> Option<Instant> {
    actions.iter().rev().find_map(|a| match a {
        Action::WakeAt(t) => Some(*t),
        _ => None,
    })
}

pub(super) fn verdict(actions: &[Action]) -> Option<Verdict> {
    actions.iter().find_map(|a| match a {
        Action::Done(v) => Some(*v),
        _ => None,
    })
}

fn attempt_next(actions: &[Action]) -> Vec<Next> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Emit(PolicyEvent::Attempt(e)) => Some(e.next),
            _ => None,
        })
        .collect()
}

#[test]
fn success_on_the_first_attempt() {
    let mut f = fixture(2);
    let mut call = f.call(Deadline::NONE);
    let a = call.handle(&mut f.registry, at(0), Event::Start);
    let s = started(&a);
    assert_eq!(s.len(), 1);
    assert_eq!(
        (s[0].target, s[0].timeout),
        (TargetId(0), Duration::from_secs(30))
    );
    let a = call.handle(
        &mut f.registry,
        at(50),
        Event::Finished {
            attempt: s[0].attempt,
            outcome: Outcome::Ok,
        },
    );
    assert_eq!(
        verdict(&a),
        Some(Verdict::Succeeded {
            attempt: s[0].attempt
        })
    );
    assert!(call.is_done());
}

#[test]
fn retries_with_backoff_then_falls_back() {
    let mut f = fixture(2);
    let mut call = f.call(Deadline::NONE);
    let mut now = 0;
    let mut a = call.handle(&mut f.registry, at(now), Event::Start);
    for expected_wait in [100, 200] {
        let s = started(&a)[0];
        assert_eq!(s.target, TargetId(0));
        now += 10;
        a = call.handle(
            &mut f.registry,
            at(now),
            Event::Finished {
                attempt: s.attempt,
                outcome: Outcome::ServerError,
            },
        );
        assert_eq!(
            attempt_next(&a),
            vec![Next::Retry {
                after: ms(expected_wait)
            }]
        );
        now += expected_wait;
        assert_eq!(wake(&a), Some(at(now)));
        a = call.handle(&mut f.registry, at(now), Event::Timer);
    }
    let s = started(&a)[0];
    a = call.handle(
        &mut f.registry,
        at(now + 10),
        Event::Finished {
            attempt: s.attempt,
            outcome: Outcome::ServerError,
        },
    );
    assert_eq!(
        attempt_next(&a),
        vec![Next::FallBack {
            to: TargetId(1),
            because: FallBackReason::AttemptsExhausted
        }]
    );
    assert_eq!(started(&a)[0].target, TargetId(1));
}

#[test]
fn a_silent_target_fails_over_at_once_and_is_retried_only_when_it_is_the_last() {
    for kind in [
        TimeoutKind::Connect,
        TimeoutKind::FirstByte,
        TimeoutKind::Total,
    ] {
        let mut f = fixture(2);
        let mut call = f.call(Deadline::NONE);
        let first = started(&call.handle(&mut f.registry, at(0), Event::Start))[0];
        let a = call.handle(
            &mut f.registry,
            at(10_000),
            Event::Finished {
                attempt: first.attempt,
                outcome: Outcome::Timeout(kind),
            },
        );
        assert_eq!(
            attempt_next(&a),
            vec![Next::FallBack {
                to: TargetId(1),
                because: FallBackReason::Silent
            }],
            "{kind:?}"
        );
        let second = started(&a)[0];
        assert_eq!(second.target, TargetId(1), "{kind:?}");
        let a = call.handle(
            &mut f.registry,
            at(20_000),
            Event::Finished {
                attempt: second.attempt,
                outcome: Outcome::Timeout(kind),
            },
        );
        assert!(
            matches!(attempt_next(&a)[..], [Next::Retry { .. }]),
            "the last target is retried: {a:?}"
        );
    }
}

#[test]
fn auth_is_not_retried_on_the_same_target() {
    let mut f = fixture(2);
    let mut call = f.call(Deadline::NONE);
    let s = started(&call.handle(&mut f.registry, at(0), Event::Start))[0];
    let a = call.handle(
        &mut f.registry,
        at(5),
        Event::Finished {
            attempt: s.attempt,
            outcome: Outcome::Auth,
        },
    );
    assert_eq!(started(&a)[0].target, TargetId(1));
}

#[test]
fn auth_without_a_fallback_gives_up_with_the_outcome() {
    let mut f = fixture(1);
    let mut call = f.call(Deadline::NONE);
    let s = started(&call.handle(&mut f.registry, at(0), Event::Start))[0];
    let a = call.handle(
        &mut f.registry,
        at(5),
        Event::Finished {
            attempt: s.attempt,
            outcome: Outcome::Auth,
        },
    );
    assert_eq!(
        verdict(&a),
        Some(Verdict::GaveUp {
            reason: GiveUp::Exhausted,
            last: Some(Outcome::Auth)
        })
    );
}

#[test]
fn bad_request_gives_up_at_once() {
    let mut f = fixture(2);
    let mut call = f.call(Deadline::NONE);
    let s = started(&call.handle(&mut f.registry, at(0), Event::Start))[0];
    let a = call.handle(
        &mut f.registry,
        at(5),
        Event::Finished {
            attempt: s.attempt,
            outcome: Outcome::BadRequest,
        },
    );
    assert_eq!(
        verdict(&a),
        Some(Verdict::GaveUp {
            reason: GiveUp::NotRetryable,
            last: Some(Outcome::BadRequest)
        })
    );
}

#[test]
fn long_retry_after_fails_over_without_waiting_and_is_honoured_by_later_calls() {
    let mut f = fixture(2);
    let mut call = f.call(Deadline::NONE);
    let s = started(&call.handle(&mut f.registry, at(0), Event::Start))[0];
    let limited = Outcome::RateLimited {
        retry_after: Some(Duration::from_secs(5)),
    };
    let a = call.handle(
        &mut f.registry,
        at(5),
        Event::Finished {
            attempt: s.attempt,
            outcome: limited,
        },
    );
    assert_eq!(
        attempt_next(&a),
        vec![Next::FallBack {
            to: TargetId(1),
            because: FallBackReason::RetryAfterTooLong
        }]
    );
    assert_eq!(started(&a)[0].target, TargetId(1));

    let mut later = f.call(Deadline::NONE);
    let a = later.handle(&mut f.registry, at(1_000), Event::Start);
    assert_eq!(
        started(&a)[0].target,
        TargetId(1),
        "t0 is skipped until its Retry-After"
    );
    let mut after = f.call(Deadline::NONE);
    let a = after.handle(&mut f.registry, at(5_005), Event::Start);
    assert_eq!(started(&a)[0].target, TargetId(0));
}

#[test]
fn short_retry_after_is_a_floor_on_the_backoff() {
    let mut f = fixture(1);
    let mut call = f.call(Deadline::NONE);
    let s = started(&call.handle(&mut f.registry, at(0), Event::Start))[0];
    let limited = Outcome::RateLimited {
        retry_after: Some(Duration::from_secs(1)),
    };
    let a = call.handle(
        &mut f.registry,
        at(5),
        Event::Finished {
            attempt: s.attempt,
            outcome: limited,
        },
    );
    assert_eq!(
        attempt_next(&a),
        vec![Next::Retry {
            after: Duration::from_secs(1)
        }]
    );
}

#[test]
fn deadline_caps_the_attempt_timeout_and_skips_a_retry_that_cannot_fit() {
    let mut f = fixture(1);
    let mut call = f.call(Deadline::after(at(0), ms(150)));
    let s = started(&call.handle(&mut f.registry, at(0), Event::Start))[0];
    assert_eq!(s.timeout, ms(150));
    let a = call.handle(
        &mut f.registry,
        at(60),
        Event::Finished {
            attempt: s.attempt,
            outcome: Outcome::ServerError,
        },
    );
    assert_eq!(
        verdict(&a),
        Some(Verdict::GaveUp {
            reason: GiveUp::DeadlineExceeded,
            last: Some(Outcome::ServerError)
        })
    );
}

#[test]
fn context_overflow_goes_to_a_larger_window() {
    let mut f = fixture(3);
    let mut call = f.call(Deadline::NONE);
    let s = started(&call.handle(&mut f.registry, at(0), Event::Start))[0];
    let a = call.handle(
        &mut f.registry,
        at(5),
        Event::Finished {
            attempt: s.attempt,
            outcome: Outcome::ContextOverflow,
        },
    );
    let next = started(&a)[0];
    assert_eq!(next.target, TargetId(1));
    let a = call.handle(
        &mut f.registry,
        at(9),
        Event::Finished {
            attempt: next.attempt,
            outcome: Outcome::ContextOverflow,
        },
    );
    assert_eq!(started(&a)[0].target, TargetId(2));
}

#[test]
fn known_prompt_size_skips_targets_that_cannot_fit_it() {
    let mut f = fixture(3);
    let mut call = f.call(Deadline::NONE);
    call.request.tokens = Some(20_000);
    let a = call.handle(&mut f.registry, at(0), Event::Start);
    assert_eq!(started(&a)[0].target, TargetId(2));
    let mut huge = f.call(Deadline::NONE);
    huge.request.tokens = Some(1_000_000);
    let a = huge.handle(&mut f.registry, at(0), Event::Start);
    assert_eq!(
        verdict(&a),
        Some(Verdict::GaveUp {
            reason: GiveUp::TooLarge,
            last: None
        })
    );
}

#[test]
fn an_open_breaker_sends_nothing_until_it_half_opens() {
    let mut f = fixture(2);
    trip_first_target(&mut f);
    let mut call = f.call(Deadline::NONE);
    let a = call.handle(&mut f.registry, at(10), Event::Start);
    assert!(a.contains(&Action::Emit(PolicyEvent::Skipped {
        target: TargetId(0),
        reason: Skip::BreakerOpen
    })));
    assert_eq!(started(&a)[0].target, TargetId(1));
}

#[test]
fn budget_exhaustion_stops_retries() {
    let mut f = fixture(1);
    f.registry = Registry::new(Settings {
        global_budget: Some(crate::budget::Config {
            ratio: 0.0,
            min_per_second: 0.1,
            window: Duration::from_secs(10),
        }),
        ..Settings::default()
    })
    .unwrap();
    f.registry
        .add_target("t0", TargetSettings::default(), at(0))
        .unwrap();
    let mut call = f.call(Deadline::NONE);
    let s = started(&call.handle(&mut f.registry, at(0), Event::Start))[0];
    let a = call.handle(
        &mut f.registry,
        at(1),
        Event::Finished {
            attempt: s.attempt,
            outcome: Outcome::ServerError,
        },
    );
    let retry_at = wake(&a).unwrap();
    let a = call.handle(&mut f.registry, retry_at, Event::Timer);
    let s = started(&a)[0];
    let a = call.handle(
        &mut f.registry,
        retry_at + ms(1),
        Event::Finished {
            attempt: s.attempt,
            outcome: Outcome::ServerError,
        },
    );
    assert_eq!(
        verdict(&a),
        Some(Verdict::GaveUp {
            reason: GiveUp::BudgetExhausted,
            last: Some(Outcome::ServerError)
        })
    );
}

#[test]
fn hedges_a_slow_attempt_and_cancels_the_loser() {
    let mut f = fixture(2);
    f.policy.hedge = Some(crate::hedge::Config {
        min_samples: 5,
        ..crate::hedge::Config::default()
    });
    f.registry = Registry::new(Settings {
        hedge_ratio: 1.0,
        ..Settings::default()
    })
    .unwrap();
    f.registry
        .add_target("t0", TargetSettings::default(), at(0))
        .unwrap();
    f.registry
        .add_target("t1", TargetSettings::default(), at(0))
        .unwrap();
    for _ in 0..10 {
        let mut call = f.call(Deadline::NONE);
        let s = started(&call.handle(&mut f.registry, at(0), Event::Start))[0];
        call.handle(
            &mut f.registry,
            at(100),
            Event::Finished {
                attempt: s.attempt,
                outcome: Outcome::Ok,
            },
        );
    }
    let mut call = f.call(Deadline::NONE);
    let a = call.handle(&mut f.registry, at(1_000), Event::Start);
    let original = started(&a)[0];
    let hedge_at = wake(&a).expect("a hedge is scheduled");
    assert!(hedge_at > at(1_050) && hedge_at < at(1_200), "{hedge_at}");
    let a = call.handle(&mut f.registry, hedge_at, Event::Timer);
    let hedge = started(&a)[0];
    assert!(hedge.hedge && hedge.target == TargetId(1));
    let a = call.handle(
        &mut f.registry,
        hedge_at + ms(10),
        Event::Finished {
            attempt: hedge.attempt,
            outcome: Outcome::Ok,
        },
    );
    assert!(a.contains(&Action::Cancel(original.attempt)));
    assert_eq!(
        verdict(&a),
        Some(Verdict::Succeeded {
            attempt: hedge.attempt
        })
    );
}

#[test]
fn a_failed_hedge_waits_for_the_original() {
    let mut f = fixture(2);
    f.registry.hedges = crate::hedge::HedgeBudget::new(1.0, Duration::from_secs(10));
    let mut call = f.call(Deadline::NONE);
    let original = started(&call.handle(&mut f.registry, at(0), Event::Start))[0];
    call.hedged = false;
    let mut out = Vec::new();
    call.hedge(&mut f.registry, at(10), original.attempt, &mut out);
    let hedge = started(&out)[0];
    let a = call.handle(
        &mut f.registry,
        at(20),
        Event::Finished {
            attempt: hedge.attempt,
            outcome: Outcome::Timeout(TimeoutKind::FirstByte),
        },
    );
    assert_eq!(attempt_next(&a), vec![Next::AwaitOther]);
    let a = call.handle(
        &mut f.registry,
        at(30),
        Event::Finished {
            attempt: original.attempt,
            outcome: Outcome::Ok,
        },
    );
    assert_eq!(
        verdict(&a),
        Some(Verdict::Succeeded {
            attempt: original.attempt
        })
    );
}

#[test]
fn agent_breakers_are_bounded_however_many_keys_clients_send() {
    let mut f = fixture(1);
    for i in 0..registry::MAX_AGENTS + 50 {
        let agent: Arc<str> = Arc::from(format!("agent-{i}"));
        assert!(f.registry.agent_breaker(&agent).is_some());
    }
    assert_eq!(f.registry.agents().count(), registry::MAX_AGENTS);
}

/// Trips target 0's breaker in `f` with failed calls.
fn trip_first_target(f: &mut Fixture) {
    for i in 0..4 {
        let mut call = f.call(Deadline::NONE);
        let s = started(&call.handle(&mut f.registry, at(i), Event::Start))[0];
        assert_eq!(s.target, TargetId(0));
        call.handle(
            &mut f.registry,
            at(i),
            Event::Finished {
                attempt: s.attempt,
                outcome: Outcome::Connection,
            },
        );
    }
}

#[test]
fn a_replacement_registry_inherits_health_only_where_nothing_changed() {
    let mut old = fixture(2);
    trip_first_target(&mut old);
    old.registry.target_mut(TargetId(1)).unwrap().not_before = at(5_000);
    let agent: Arc<str> = Arc::from("planner");
    let _ = old.registry.agent_breaker(&agent);

    // Same names, settings and place: the open breaker and the Retry-After carry over,
    // and the next call skips target 0 as the old registry would have.
    let mut new = fixture(2);
    let kept = new.registry.inherit_health(&old.registry, |_| true);
    assert_eq!(kept, [TargetId(0), TargetId(1)]);
    let breaker_state = |r: &Registry, id| {
        r.target(id)
            .and_then(|t| t.breaker.as_ref())
            .map(|b| b.state())
    };
    assert_eq!(
        breaker_state(&new.registry, TargetId(0)),
        Some(breaker::State::Open)
    );
    assert_eq!(
        new.registry.target(TargetId(1)).unwrap().not_before,
        at(5_000)
    );
    assert_eq!(new.registry.agents().count(), 1);
    let mut call = new.call(Deadline::NONE);
    let a = call.handle(&mut new.registry, at(10), Event::Start);
    assert!(a.contains(&Action::Emit(PolicyEvent::Skipped {
        target: TargetId(0),
        reason: Skip::BreakerOpen
    })));

    // A target that moved (another endpoint) starts afresh.
    let mut moved = fixture(2);
    let kept = moved
        .registry
        .inherit_health(&old.registry, |name| name != "t0");
    assert_eq!(kept, [TargetId(1)]);
    assert_eq!(
        breaker_state(&moved.registry, TargetId(0)),
        Some(breaker::State::Closed)
    );

    // New breaker settings: a new breaker, closed.
    let mut retuned = fixture(2);
    let mut settings = old.registry.target(TargetId(0)).unwrap().settings.clone();
    if let Some(config) = settings.breaker.as_mut() {
        config.min_calls = 10;
    }
    let mut registry = Registry::new(Settings::default()).unwrap();
    registry.add_target("t0", settings, at(0)).unwrap();
    retuned.registry = registry;
    assert!(
        retuned
            .registry
            .inherit_health(&old.registry, |_| true)
            .is_empty()
    );
    assert_eq!(
        breaker_state(&retuned.registry, TargetId(0)),
        Some(breaker::State::Closed)
    );
}

#[test]
fn a_drained_target_is_passed_over_until_the_drain_ends_or_it_is_restored() {
    let mut f = fixture(2);
    assert!(f.registry.drain(TargetId(0), at(1_000)));
    let mut call = f.call(Deadline::NONE);
    let a = call.handle(&mut f.registry, at(10), Event::Start);
    assert!(a.contains(&Action::Emit(PolicyEvent::Skipped {
        target: TargetId(0),
        reason: Skip::Drained
    })));
    assert_eq!(started(&a)[0].target, TargetId(1));
    // The drain ends by itself.
    let mut call = f.call(Deadline::NONE);
    let a = call.handle(&mut f.registry, at(1_000), Event::Start);
    assert_eq!(started(&a)[0].target, TargetId(0));
    // Or an operator ends it.
    f.registry.drain(TargetId(0), at(60_000));
    assert!(f.registry.restore(TargetId(0)));
    let mut call = f.call(Deadline::NONE);
    let a = call.handle(&mut f.registry, at(1_100), Event::Start);
    assert_eq!(started(&a)[0].target, TargetId(0));
    assert!(!f.registry.drain(TargetId(7), at(5_000)), "no such target");
}

#[test]
fn a_retry_after_of_a_day_keeps_the_target_out_for_max_retry_after_only() {
    let mut f = fixture(2);
    let mut call = f.call(Deadline::NONE);
    let s = started(&call.handle(&mut f.registry, at(0), Event::Start))[0];
    let day = Duration::from_secs(86_400);
    call.handle(
        &mut f.registry,
        at(5),
        Event::Finished {
            attempt: s.attempt,
            outcome: Outcome::RateLimited {
                retry_after: Some(day),
            },
        },
    );
    let health = f.registry.target(s.target).unwrap();
    assert_eq!(
        health.not_before,
        at(5) + f.policy.max_retry_after,
        "capped at max_retry_after (5 min by default), not a day"
    );
}

#[test]
fn retry_on_next_moves_to_a_free_target_at_once_and_backs_off_when_none_is_free() {
    let mut f = fixture(2);
    f.policy.retry_on = RetryOn::Next;
    let overloaded = Outcome::Overloaded { retry_after: None };
    let mut call = f.call(Deadline::NONE);
    let first = started(&call.handle(&mut f.registry, at(0), Event::Start))[0];
    let a = call.handle(
        &mut f.registry,
        at(5),
        Event::Finished {
            attempt: first.attempt,
            outcome: overloaded,
        },
    );
    assert_eq!(
        attempt_next(&a),
        vec![Next::FallBack {
            to: TargetId(1),
            because: FallBackReason::RetryNext
        }]
    );
    assert_eq!(wake(&a), None, "no backoff before the next target");
    assert_eq!(started(&a)[0].target, TargetId(1));

    // The next target held by a Retry-After: back to same-target backoff.
    let mut f = fixture(2);
    f.policy.retry_on = RetryOn::Next;
    f.registry.target_mut(TargetId(1)).unwrap().not_before = at(60_000);
    let mut call = f.call(Deadline::NONE);
    let first = started(&call.handle(&mut f.registry, at(0), Event::Start))[0];
    let a = call.handle(
        &mut f.registry,
        at(5),
        Event::Finished {
            attempt: first.attempt,
            outcome: overloaded,
        },
    );
    assert!(
        matches!(attempt_next(&a)[..], [Next::Retry { .. }]),
        "{a:?}"
    );
}

#[test]
fn when_a_retry_after_hold_ends_one_call_goes_first_and_the_rest_follow_its_answer() {
    let mut f = fixture(1);
    let mut first = f.call(Deadline::NONE);
    let s = started(&first.handle(&mut f.registry, at(0), Event::Start))[0];
    let limited = Outcome::RateLimited {
        retry_after: Some(Duration::from_secs(1)),
    };
    let a = first.handle(
        &mut f.registry,
        at(5),
        Event::Finished {
            attempt: s.attempt,
            outcome: limited,
        },
    );
    assert_eq!(wake(&a), Some(at(1_005)));
    let mut herd: Vec<Call> = (0..7).map(|_| f.call(Deadline::NONE)).collect();
    for call in &mut herd {
        let a = call.handle(&mut f.registry, at(10), Event::Start);
        assert!(started(&a).is_empty(), "held by the Retry-After");
        assert_eq!(wake(&a), Some(at(1_005)));
    }
    herd.insert(0, first);

    // The hold ends: all eight wake at once, one goes.
    let mut probes = Vec::new();
    for call in &mut herd {
        let a = call.handle(&mut f.registry, at(1_005), Event::Timer);
        probes.extend(started(&a));
        if started(&a).is_empty() {
            assert_eq!(wake(&a), Some(at(1_055)), "looks again soon");
        }
    }
    assert_eq!(probes.len(), 1, "one probe, not a herd of eight");
    for call in herd.iter_mut().skip(1) {
        let a = call.handle(&mut f.registry, at(1_055), Event::Timer);
        assert!(
            started(&a).is_empty(),
            "still waiting for the probe's answer"
        );
    }

    // The probe is answered: the rest go.
    let a = herd[0].handle(
        &mut f.registry,
        at(1_080),
        Event::Finished {
            attempt: probes[0].attempt,
            outcome: Outcome::Ok,
        },
    );
    assert!(matches!(verdict(&a), Some(Verdict::Succeeded { .. })));
    for call in herd.iter_mut().skip(1) {
        let a = call.handle(&mut f.registry, at(1_105), Event::Timer);
        assert_eq!(started(&a).len(), 1, "reopened to everyone");
    }
}

#[test]
fn a_probe_answered_with_another_retry_after_starts_the_next_hold() {
    let mut f = fixture(2);
    let health = f.registry.target_mut(TargetId(0)).unwrap();
    health.not_before = at(1_000);
    health.reopening.hold();
    let mut probe = f.call(Deadline::NONE);
    let s = started(&probe.handle(&mut f.registry, at(1_000), Event::Start))[0];
    assert_eq!(s.target, TargetId(0));
    let mut other = f.call(Deadline::NONE);
    let a = other.handle(&mut f.registry, at(1_001), Event::Start);
    assert_eq!(
        started(&a)[0].target,
        TargetId(1),
        "while the probe is out, a call with somewhere else to go goes there"
    );
    probe.handle(
        &mut f.registry,
        at(1_020),
        Event::Finished {
            attempt: s.attempt,
            outcome: Outcome::RateLimited {
                retry_after: Some(Duration::from_secs(10)),
            },
        },
    );
    let health = f.registry.target(TargetId(0)).unwrap();
    assert_eq!(
        health.not_before,
        at(21_020),
        "a refused probe doubles the hold, up to the breaker's max_open_for (20 s)"
    );
    let mut later = f.call(Deadline::NONE);
    let a = later.handle(&mut f.registry, at(21_020), Event::Start);
    let next = started(&a)[0];
    assert_eq!(next.target, TargetId(0), "the next probe");
    let mut behind = f.call(Deadline::NONE);
    let a = behind.handle(&mut f.registry, at(21_021), Event::Start);
    assert_eq!(started(&a)[0].target, TargetId(1));
    later.handle(
        &mut f.registry,
        at(21_040),
        Event::Finished {
            attempt: next.attempt,
            outcome: Outcome::Ok,
        },
    );
    // A probe answered: the next Retry-After is taken as it is.
    let mut again = f.call(Deadline::NONE);
    let s = started(&again.handle(&mut f.registry, at(21_050), Event::Start))[0];
    again.handle(
        &mut f.registry,
        at(21_060),
        Event::Finished {
            attempt: s.attempt,
            outcome: Outcome::RateLimited {
                retry_after: Some(Duration::from_secs(1)),
            },
        },
    );
    let health = f.registry.target(TargetId(0)).unwrap();
    assert_eq!(health.not_before, at(22_060));
}

#[test]
fn without_a_breaker_a_hold_lasts_what_the_target_asks() {
    let mut f = fixture(2);
    let health = f.registry.target_mut(TargetId(0)).unwrap();
    health.breaker = None;
    health.not_before = at(1_000);
    health.reopening.hold();
    let mut probe = f.call(Deadline::NONE);
    let s = started(&probe.handle(&mut f.registry, at(1_000), Event::Start))[0];
    probe.handle(
        &mut f.registry,
        at(1_020),
        Event::Finished {
            attempt: s.attempt,
            outcome: Outcome::RateLimited {
                retry_after: Some(Duration::from_secs(10)),
            },
        },
    );
    let health = f.registry.target(TargetId(0)).unwrap();
    assert_eq!(health.not_before, at(11_020));
}

/// In the simulator's 429 storm, a call sent before the storm answered "ok" just after
/// a hold ended and before its probe went out: that reopened the target to everyone,
/// and five calls met the next 429 where one probe would have.
#[test]
fn an_answer_to_a_call_sent_before_the_hold_does_not_end_it() {
    let mut f = fixture(2);
    let mut early = f.call(Deadline::NONE);
    let sent_early = started(&early.handle(&mut f.registry, at(0), Event::Start))[0];
    let mut limited = f.call(Deadline::NONE);
    let s = started(&limited.handle(&mut f.registry, at(10), Event::Start))[0];
    limited.handle(
        &mut f.registry,
        at(20),
        Event::Finished {
            attempt: s.attempt,
            outcome: Outcome::RateLimited {
                retry_after: Some(Duration::from_secs(1)),
            },
        },
    );
    // The hold ends at 1,020; the early call's answer comes after, before any probe.
    early.handle(
        &mut f.registry,
        at(1_100),
        Event::Finished {
            attempt: sent_early.attempt,
            outcome: Outcome::Ok,
        },
    );
    let mut targets = Vec::new();
    for i in 0..5 {
        let mut call = f.call(Deadline::NONE);
        let a = call.handle(&mut f.registry, at(1_200 + i), Event::Start);
        targets.push(started(&a)[0].target);
    }
    assert_eq!(
        targets,
        [
            TargetId(0),
            TargetId(1),
            TargetId(1),
            TargetId(1),
            TargetId(1)
        ],
        "one probe; the rest wait for its answer elsewhere"
    );
}

#[test]
fn a_call_short_of_shared_units_waits_for_the_next_grant() {
    let f = fixture(1);
    let mut registry = Registry::new(Settings::default()).unwrap();
    registry.share_limits(ms(50));
    let settings = TargetSettings {
        requests: Some(crate::rate_limit::Config::per_minute(600)),
        ..TargetSettings::default()
    };
    let id = registry.add_target("t0", settings, at(0)).unwrap();
    let mut call = f.call(Deadline::NONE);
    let actions = call.handle(&mut registry, at(0), Event::Start);
    assert!(started(&actions).is_empty(), "{actions:?}");
    assert!(
        actions.contains(&Action::WakeAt(at(50))),
        "waits one tick for a grant: {actions:?}"
    );
    let limiter = registry.target_mut(id).unwrap().requests.as_mut().unwrap();
    limiter.grant(1);
    let actions = call.handle(&mut registry, at(50), Event::Timer);
    assert_eq!(started(&actions).len(), 1, "{actions:?}");
}

#[test]
fn a_call_waits_for_a_limit_no_longer_shared_to_refill() {
    let f = fixture(1);
    let mut registry = Registry::new(Settings::default()).unwrap();
    registry.share_limits(ms(50));
    let settings = TargetSettings {
        requests: Some(crate::rate_limit::Config::per_minute(600)),
        ..TargetSettings::default()
    };
    registry.add_target("t0", settings, at(0)).unwrap();
    registry.unshare_limits(at(1_000));
    let mut call = f.call(Deadline::NONE);
    let actions = call.handle(&mut registry, at(1_025), Event::Start);
    assert!(
        actions.contains(&Action::WakeAt(at(1_100))),
        "waits for the local refill: {actions:?}"
    );
    let actions = call.handle(&mut registry, at(1_100), Event::Timer);
    assert_eq!(started(&actions).len(), 1, "{actions:?}");
}

fn hold(f: &mut Fixture, target: u32, until: Instant) {
    f.registry
        .target_mut(TargetId(target))
        .expect("a target of the fixture")
        .not_before = until;
}

/// A call that waited for the first target while the larger ones were held by
/// Retry-After found no larger target left when the first answered "context overflow":
/// passing over a held target had spent it as if it had been tried.
#[test]
fn a_target_passed_over_while_held_stays_open_to_a_later_fallback() {
    let mut f = fixture(3);
    hold(&mut f, 0, at(100));
    hold(&mut f, 1, at(60_000));
    hold(&mut f, 2, at(500));
    let mut call = f.call(Deadline::NONE);
    let a = call.handle(&mut f.registry, at(0), Event::Start);
    assert!(started(&a).is_empty());
    assert_eq!(wake(&a), Some(at(100)));
    let s = started(&call.handle(&mut f.registry, at(100), Event::Timer))[0];
    assert_eq!(s.target, TargetId(0));
    let a = call.handle(
        &mut f.registry,
        at(110),
        Event::Finished {
            attempt: s.attempt,
            outcome: Outcome::ContextOverflow,
        },
    );
    assert_eq!(verdict(&a), None, "{a:?}");
    assert_eq!(wake(&a), Some(at(500)));
    let s = started(&call.handle(&mut f.registry, at(500), Event::Timer))[0];
    assert_eq!(s.target, TargetId(2));
}

/// A hung attempt was left to its deadline when the next target of the chain was held,
/// although the one after it was free: the hedge looked one link ahead only.
#[test]
fn a_hedge_passes_over_a_held_target_to_a_free_one() {
    let mut f = fixture(3);
    f.policy.hedge = Some(crate::hedge::Config {
        min_samples: 5,
        ..crate::hedge::Config::default()
    });
    f.registry = Registry::new(Settings {
        hedge_ratio: 1.0,
        ..Settings::default()
    })
    .unwrap();
    for name in ["t0", "t1", "t2"] {
        f.registry
            .add_target(name, TargetSettings::default(), at(0))
            .unwrap();
    }
    for _ in 0..10 {
        let mut call = f.call(Deadline::NONE);
        let s = started(&call.handle(&mut f.registry, at(0), Event::Start))[0];
        let outcome = Outcome::Ok;
        let finished = Event::Finished {
            attempt: s.attempt,
            outcome,
        };
        call.handle(&mut f.registry, at(100), finished);
    }
    hold(&mut f, 1, at(60_000));
    let mut call = f.call(Deadline::NONE);
    let a = call.handle(&mut f.registry, at(1_000), Event::Start);
    let hedge_at = wake(&a).expect("a hedge is scheduled");
    let hedge = started(&call.handle(&mut f.registry, hedge_at, Event::Timer))[0];
    assert!(hedge.hedge);
    assert_eq!(hedge.target, TargetId(2));
}
