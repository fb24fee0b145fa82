//! Calls against a target at its concurrency limit: they wait in rank order, the
//! best-ranked goes first when a slot frees, and those that cannot be served in time
//! are shed with a Retry-After.

use super::*;
use crate::backoff::{self, Jitter};
use crate::concurrency::{self, LimitConfig};
use crate::fallback::{Link, TargetId};

fn at(ms: u64) -> Instant {
    Instant::from_origin(Duration::from_millis(ms))
}

struct Fixture {
    registry: Registry,
    chain: Arc<Chain>,
    policy: Arc<Policy>,
    next_seed: u64,
}

/// One target limited to `limit` calls in flight, queueing at most `max_queue`.
fn fixture(limit: u32, max_queue: usize) -> Fixture {
    let mut registry = Registry::new(Settings::default()).unwrap();
    let concurrency = concurrency::Config {
        limit: LimitConfig {
            initial: limit,
            min: limit,
            max: limit,
            ..LimitConfig::default()
        },
        throttle: None,
        max_queue,
        max_wait: Duration::from_secs(5),
    };
    let settings = TargetSettings {
        concurrency: Some(concurrency),
        ..TargetSettings::default()
    };
    let id = registry.add_target("t0", settings, at(0)).unwrap();
    let link = Link {
        target: id,
        context_window: None,
        attempt_timeout: Duration::from_secs(30),
        takes_filtered: false,
    };
    let backoff = Backoff::new(backoff::Config {
        jitter: Jitter::None,
        ..backoff::Config::default()
    })
    .unwrap();
    Fixture {
        registry,
        chain: Arc::new(Chain::new(vec![link]).unwrap()),
        policy: Arc::new(Policy::new(backoff)),
        next_seed: 0,
    }
}

impl Fixture {
    fn call(&mut self, priority: Priority, deadline: Deadline) -> Call {
        self.next_seed += 1;
        Call::new(Request {
            chain: self.chain.clone(),
            policy: self.policy.clone(),
            deadline,
            agent: None,
            tokens: None,
            seed: self.next_seed,
            priority,
        })
    }

    fn limiter(&self) -> &crate::concurrency::Limiter {
        let target = self.registry.target(TargetId(0)).unwrap();
        target.limiter.as_ref().unwrap()
    }
}

fn started(actions: &[Action]) -> Option<StartAttempt> {
    actions.iter().find_map(|a| match a {
        Action::Start(s) => Some(*s),
        _ => None,
    })
}

fn wake(actions: &[Action]) -> Option<Instant> {
    actions.iter().rev().find_map(|a| match a {
        Action::WakeAt(t) => Some(*t),
        _ => None,
    })
}

fn verdict(actions: &[Action]) -> Option<Verdict> {
    actions.iter().find_map(|a| match a {
        Action::Done(v) => Some(*v),
        _ => None,
    })
}

fn answer(f: &mut Fixture, call: &mut Call, start: StartAttempt, now: u64) {
    let done = Event::Finished {
        attempt: start.attempt,
        outcome: Outcome::Ok,
    };
    let a = call.handle(&mut f.registry, at(now), done);
    assert!(matches!(verdict(&a), Some(Verdict::Succeeded { .. })));
}

#[test]
fn over_the_limit_interactive_calls_are_served_before_batch_calls() {
    let mut f = fixture(1, 10);
    let mut first = f.call(Priority::Batch, Deadline::NONE);
    let a = first.handle(&mut f.registry, at(0), Event::Start);
    let running = started(&a).unwrap();
    let mut batch = f.call(Priority::Batch, Deadline::NONE);
    let a = batch.handle(&mut f.registry, at(1), Event::Start);
    assert!(started(&a).is_none() && wake(&a).is_some());
    let mut interactive = f.call(Priority::Interactive, Deadline::NONE);
    let a = interactive.handle(&mut f.registry, at(2), Event::Start);
    assert!(started(&a).is_none() && wake(&a).is_some());
    assert_eq!(f.limiter().queued(), 2);

    answer(&mut f, &mut first, running, 100);
    // The batch call came first and looks first, yet the interactive one gets the slot.
    let a = batch.handle(&mut f.registry, at(101), Event::Timer);
    assert!(
        started(&a).is_none(),
        "batch call started before interactive"
    );
    let a = interactive.handle(&mut f.registry, at(102), Event::Timer);
    let served = started(&a).expect("interactive call waits although a slot is free");
    assert_eq!(f.limiter().in_flight(), 1);
    answer(&mut f, &mut interactive, served, 200);
    let a = batch.handle(&mut f.registry, at(201), Event::Timer);
    assert!(started(&a).is_some());
    assert_eq!(f.limiter().queued(), 0);
}

#[test]
fn a_call_that_cannot_be_served_before_its_deadline_is_shed_with_a_retry_after() {
    let mut f = fixture(1, 10);
    let mut first = f.call(Priority::Interactive, Deadline::NONE);
    let a = first.handle(&mut f.registry, at(0), Event::Start);
    answer(&mut f, &mut first, started(&a).unwrap(), 1_000);
    // Calls take a second; one is running.
    let mut running = f.call(Priority::Interactive, Deadline::NONE);
    let a = running.handle(&mut f.registry, at(1_000), Event::Start);
    assert!(started(&a).is_some());
    let mut hurried = f.call(Priority::Interactive, Deadline::at(at(1_300)));
    let a = hurried.handle(&mut f.registry, at(1_000), Event::Start);
    let Some(Verdict::GaveUp {
        reason: GiveUp::Shed { retry_after },
        last: None,
    }) = verdict(&a)
    else {
        panic!("not shed: {a:?}");
    };
    assert!(retry_after >= Duration::from_secs(1));
    assert_eq!(f.limiter().sheds(), 1);
    assert_eq!(f.limiter().queued(), 0);
}

#[test]
fn a_full_queue_sheds_a_batch_call_to_make_room_for_an_interactive_one() {
    let mut f = fixture(1, 1);
    let mut first = f.call(Priority::Interactive, Deadline::NONE);
    first.handle(&mut f.registry, at(0), Event::Start);
    let mut batch = f.call(Priority::Batch, Deadline::NONE);
    let a = batch.handle(&mut f.registry, at(1), Event::Start);
    let batch_wake = wake(&a).unwrap();
    let mut interactive = f.call(Priority::Interactive, Deadline::NONE);
    let a = interactive.handle(&mut f.registry, at(2), Event::Start);
    assert!(verdict(&a).is_none(), "interactive call refused: {a:?}");
    // The batch call lost its place: at its next look the queue has no room for it.
    let a = batch.handle(&mut f.registry, batch_wake, Event::Timer);
    assert!(matches!(
        verdict(&a),
        Some(Verdict::GaveUp {
            reason: GiveUp::Shed { .. },
            ..
        })
    ));
}

#[test]
fn a_call_that_ends_while_waiting_leaves_the_queue() {
    let mut f = fixture(1, 10);
    let mut first = f.call(Priority::Interactive, Deadline::NONE);
    first.handle(&mut f.registry, at(0), Event::Start);
    let mut waiting = f.call(Priority::Interactive, Deadline::at(at(3_000)));
    let a = waiting.handle(&mut f.registry, at(1), Event::Start);
    assert!(wake(&a).is_some());
    assert_eq!(f.limiter().queued(), 1);
    // Its deadline passes while it waits.
    let a = waiting.handle(&mut f.registry, at(3_000), Event::Timer);
    assert!(verdict(&a).is_some());
    assert_eq!(f.limiter().queued(), 0);
}
