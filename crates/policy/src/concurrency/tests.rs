use super::*;

fn at(ms: u64) -> Instant {
    Instant::from_origin(Duration::from_millis(ms))
}

fn rank(priority: Priority, ticket: u64) -> Rank {
    Rank {
        priority,
        deadline: Instant::MAX,
        ticket,
    }
}

fn limiter(initial: u32) -> Limiter {
    let config = Config {
        // Held at `initial` at most, so that answers do not raise it mid-test.
        limit: LimitConfig {
            initial,
            max: initial,
            ..LimitConfig::default()
        },
        max_queue: 3,
        ..Config::default()
    };
    Limiter::new(config, at(0)).unwrap()
}

fn answer(limiter: &mut Limiter, now: Instant, ms: u64) {
    limiter.finish(now, Outcome::Ok, Duration::from_millis(ms), 1);
}

#[test]
fn calls_over_the_limit_wait_and_the_best_ranked_goes_first() {
    let mut limiter = limiter(2);
    let (a, b) = (rank(Priority::Batch, 1), rank(Priority::Batch, 2));
    for r in [a, b] {
        assert_eq!(limiter.check(at(0), r, Duration::ZERO, 0.5), Admission::Go);
        limiter.start(r);
    }
    let batch = rank(Priority::Batch, 3);
    let interactive = rank(Priority::Interactive, 4);
    for r in [batch, interactive] {
        assert!(matches!(
            limiter.check(at(0), r, Duration::ZERO, 0.5),
            Admission::Wait(_)
        ));
        limiter.enqueue(at(0), r).unwrap();
    }
    assert_eq!(limiter.queued(), 2);
    answer(&mut limiter, at(100), 100);
    // One slot is free: the interactive call takes it although it came later.
    assert!(matches!(
        limiter.check(at(101), batch, Duration::ZERO, 0.5),
        Admission::Wait(_)
    ));
    assert_eq!(
        limiter.check(at(101), interactive, Duration::ZERO, 0.5),
        Admission::Go
    );
    limiter.start(interactive);
    assert_eq!(limiter.in_flight(), 2);
    assert_eq!(limiter.queued(), 1);
}

#[test]
fn a_call_that_cannot_be_served_before_its_deadline_is_shed() {
    let mut limiter = limiter(1);
    let first = rank(Priority::Interactive, 1);
    limiter.start(first);
    answer(&mut limiter, at(1_000), 1_000);
    limiter.start(first);
    // Slots free up once a second; a call with 200 ms left cannot be served.
    let hurried = Rank {
        deadline: at(1_200),
        ..rank(Priority::Interactive, 2)
    };
    let Admission::Shed(retry_after) = limiter.check(at(1_000), hurried, Duration::ZERO, 0.5)
    else {
        panic!("not shed");
    };
    assert!(retry_after >= Duration::from_secs(1));
    // One that already waited the longest wait allowed is shed as well.
    let patient = rank(Priority::Interactive, 3);
    assert!(matches!(
        limiter.check(at(1_000), patient, Duration::from_secs(5), 0.5),
        Admission::Shed(_)
    ));
}

#[test]
fn a_full_queue_sheds_batch_before_interactive() {
    let mut limiter = limiter(1);
    limiter.start(rank(Priority::Interactive, 0));
    for ticket in 1..=3 {
        limiter
            .enqueue(at(0), rank(Priority::Batch, ticket))
            .unwrap();
    }
    assert!(limiter.enqueue(at(0), rank(Priority::Batch, 4)).is_err());
    limiter
        .enqueue(at(0), rank(Priority::Interactive, 5))
        .unwrap();
    // The last batch call lost its place: when it looks again it ranks behind the
    // free slots and the interactive call.
    assert_eq!(limiter.queued(), 3);
    assert_eq!(limiter.sheds(), 1);
}

#[test]
fn a_target_refusing_everything_is_throttled_on_our_side() {
    let mut limiter = limiter(100);
    for i in 0..100 {
        let r = rank(Priority::Interactive, i);
        limiter.start(r);
        limiter.finish(
            at(i),
            Outcome::Overloaded { retry_after: None },
            Duration::from_millis(5),
            1,
        );
    }
    let r = rank(Priority::Interactive, 1_000);
    assert_eq!(
        limiter.check(at(100), r, Duration::ZERO, 0.5),
        Admission::Throttled
    );
    // Calls already queued are not throttled again as they look.
    limiter.enqueue(at(100), r).unwrap();
    assert_ne!(
        limiter.check(at(100), r, Duration::ZERO, 0.5),
        Admission::Throttled
    );
}

#[test]
fn overload_answers_lower_the_limit() {
    let mut limiter = limiter(20);
    limiter.start(rank(Priority::Interactive, 1));
    limiter.finish(
        at(0),
        Outcome::Timeout(crate::TimeoutKind::FirstByte),
        Duration::from_secs(1),
        1,
    );
    assert_eq!(limiter.limit(), 18);
    assert_eq!(limiter.in_flight(), 0);
}
