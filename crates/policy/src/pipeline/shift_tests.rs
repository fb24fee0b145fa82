//! Load shifting as calls see it: which target a new call starts on while its first
//! target fails part of its recent calls, and where it goes when its attempt fails.

use super::tests::{Fixture, at, fixture, started, verdict, wake};
use super::*;
use crate::fallback::TargetId;

/// Fills `target`'s recent window with `calls` verdicts, `failures` of them failures.
fn failing(f: &mut Fixture, target: u32, calls: u32, failures: u32) {
    let recent = &mut f.registry.target_mut(TargetId(target)).unwrap().recent;
    for i in 0..calls {
        let health = if i < failures {
            Health::Failure
        } else {
            Health::Success
        };
        recent.record(at(1_000), health);
    }
}

fn seeded(f: &Fixture, seed: u64) -> Call {
    Call::new(Request {
        chain: f.chain.clone(),
        policy: Arc::new(f.policy.clone()),
        deadline: crate::deadline::Deadline::NONE,
        agent: None,
        tokens: None,
        seed,
        priority: crate::concurrency::Priority::Interactive,
    })
}

fn shifted(actions: &[Action]) -> bool {
    actions.iter().any(|a| {
        matches!(
            a,
            Action::Emit(PolicyEvent::Skipped {
                target: TargetId(0),
                reason: Skip::Shifted
            })
        )
    })
}

/// Starts `calls` calls at once; how many started on target 0. Each start must be
/// on target 0 or, with a `shifted` event, on target 1.
fn kept_on_first(f: &mut Fixture, calls: u64) -> u64 {
    let mut kept = 0;
    for seed in 0..calls {
        let mut call = seeded(f, seed);
        let a = call.handle(&mut f.registry, at(1_000), Event::Start);
        let s = started(&a);
        assert_eq!(s.len(), 1, "{a:?}");
        match s[0].target {
            TargetId(0) => {
                assert!(!shifted(&a));
                kept += 1;
            }
            TargetId(1) => assert!(shifted(&a), "{a:?}"),
            other => panic!("started on {other:?}"),
        }
    }
    kept
}

#[test]
fn a_target_failing_a_fifth_of_its_calls_keeps_a_quarter_of_new_calls() {
    let mut f = fixture(2);
    f.policy.retry_on = RetryOn::Next;
    failing(&mut f, 0, 100, 20);
    let calls = 4_000;
    let kept = kept_on_first(&mut f, calls) as f64 / calls as f64;
    // 1 − 0.05 / 0.2 = 0.75 shifted; the binomial spread over 4,000 calls is ±0.007.
    assert!((kept - 0.25).abs() < 0.03, "{kept} kept on the primary");
}

#[test]
fn nothing_shifts_with_retry_on_same_a_healthy_target_or_no_free_fallback() {
    let mut same = fixture(2);
    failing(&mut same, 0, 100, 20);
    assert_eq!(kept_on_first(&mut same, 500), 500, "retry_on = \"same\"");

    let mut healthy = fixture(2);
    healthy.policy.retry_on = RetryOn::Next;
    failing(&mut healthy, 0, 100, 4);
    assert_eq!(kept_on_first(&mut healthy, 500), 500, "4% failures");

    let mut drained = fixture(2);
    drained.policy.retry_on = RetryOn::Next;
    failing(&mut drained, 0, 100, 20);
    drained.registry.drain(TargetId(1), at(60_000));
    assert_eq!(
        kept_on_first(&mut drained, 500),
        500,
        "the fallback drained"
    );
}

#[test]
fn a_shifted_call_goes_back_to_the_first_target_at_once_when_the_next_one_fails() {
    let mut f = fixture(2);
    f.policy.retry_on = RetryOn::Next;
    failing(&mut f, 0, 100, 20);
    let (mut call, first) = (0..100)
        .find_map(|seed| {
            let mut call = seeded(&f, seed);
            let s = started(&call.handle(&mut f.registry, at(1_000), Event::Start))[0];
            (s.target == TargetId(1)).then_some((call, s))
        })
        .expect("one of 100 calls is shifted at a share of 0.75");
    assert!(
        first.fallback,
        "the first target is still there to fall back to"
    );
    let a = call.handle(
        &mut f.registry,
        at(1_050),
        Event::Finished {
            attempt: first.attempt,
            outcome: Outcome::Overloaded { retry_after: None },
        },
    );
    assert_eq!(wake(&a), None, "no backoff: {a:?}");
    let back = started(&a);
    assert_eq!(back.len(), 1, "{a:?}");
    assert_eq!((back[0].target, back[0].retry), (TargetId(0), 0));
    assert!(!back[0].fallback, "both targets tried");
    let a = call.handle(
        &mut f.registry,
        at(1_100),
        Event::Finished {
            attempt: back[0].attempt,
            outcome: Outcome::Ok,
        },
    );
    assert!(matches!(verdict(&a), Some(Verdict::Succeeded { .. })));
}

#[test]
fn attempts_that_end_feed_the_share() {
    let mut f = fixture(2);
    f.policy.retry_on = RetryOn::Next;
    // Twenty calls, one after the other: the window judges only from the twentieth on.
    for i in 0..20 {
        let mut call = seeded(&f, i);
        let s = started(&call.handle(&mut f.registry, at(1_000), Event::Start))[0];
        let outcome = if i % 4 == 0 {
            Outcome::Overloaded { retry_after: None }
        } else {
            Outcome::Ok
        };
        call.handle(
            &mut f.registry,
            at(1_010),
            Event::Finished {
                attempt: s.attempt,
                outcome,
            },
        );
    }
    let recent = &f.registry.target(TargetId(0)).unwrap().recent;
    assert_eq!(recent.failure_rate(at(1_010)), Some(0.25));
    assert!((recent.share(at(1_010)) - 0.8).abs() < 1e-9);
}
