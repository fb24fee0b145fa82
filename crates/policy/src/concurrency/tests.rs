use super::*;
use crate::sim::target::Latency;

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
fn a_standing_queue_sheds_what_would_wait_long_but_not_a_burst_of_a_better_class() {
    let mut limiter = limiter(1);
    limiter.start(rank(Priority::Batch, 0));
    answer(&mut limiter, at(300), 300);
    limiter.start(rank(Priority::Batch, 0));
    let batch: Vec<Rank> = (1..=3).map(|t| rank(Priority::Batch, t)).collect();
    // A burst: the third in line waits three slots (900 ms), within max_wait (5 s).
    for &r in &batch {
        limiter.enqueue(at(300), r).unwrap();
    }
    let third = limiter.check(at(300), batch[2], Duration::ZERO, 0.5);
    assert!(matches!(third, Admission::Wait(_)), "{third:?}");
    // Still waiting 5 s later: a standing queue, where three slots is too long to
    // wait, and one is not.
    for t in (800..=5_800).step_by(500) {
        for &r in &batch {
            limiter.enqueue(at(t), r).unwrap();
        }
    }
    let third = limiter.check(at(5_800), batch[2], Duration::ZERO, 0.5);
    assert!(matches!(third, Admission::Shed(_)), "{third:?}");
    let first = limiter.check(at(5_800), batch[0], Duration::ZERO, 0.5);
    assert!(matches!(first, Admission::Wait(_)), "{first:?}");
    // Interactive calls arriving now rank first and wait as a burst does: their class
    // has no standing queue...
    let interactive: Vec<Rank> = (10..=12).map(|t| rank(Priority::Interactive, t)).collect();
    for &r in &interactive[..2] {
        limiter.enqueue(at(5_800), r).unwrap();
    }
    let third = limiter.check(at(5_800), interactive[2], Duration::ZERO, 0.5);
    assert!(matches!(third, Admission::Wait(_)), "{third:?}");
    // ...until they have been standing as long.
    for t in (6_300..=11_300).step_by(500) {
        for &r in &interactive[..2] {
            limiter.enqueue(at(t), r).unwrap();
        }
    }
    let third = limiter.check(at(11_300), interactive[2], Duration::ZERO, 0.5);
    assert!(matches!(third, Admission::Shed(_)), "{third:?}");
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

/// A seeded simulation of one limiter in front of one provider, in steps of 1 ms:
/// requests arrive open-loop, wait for a slot as the pipeline makes them (looking
/// again at the instant [`Limiter::check`] names), and take as long as the provider
/// says given the calls in flight when they reach it.
mod simulated {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    use super::*;
    use crate::rng::Rng;

    use crate::sim::{Capacity, Load};

    /// What a provider does to one call.
    pub(super) trait Provider {
        /// The call's latency and length, or `None` for a refusal (503), given the
        /// calls in flight with it included.
        fn serve(&mut self, rng: &mut Rng, in_flight: u32) -> Option<(Duration, u32)>;
    }

    /// The mock's capacity model: `latency` up to `capacity` calls in flight, slower by
    /// the square of the overload beyond, refusing beyond twice.
    pub(super) struct Knee {
        pub(super) capacity: Capacity,
        pub(super) latency: Duration,
        /// Relative jitter of every latency (a loaded machine): uniform in ±this.
        pub(super) jitter: f64,
    }

    impl Provider for Knee {
        fn serve(&mut self, rng: &mut Rng, in_flight: u32) -> Option<(Duration, u32)> {
            let noise = 1.0 + self.jitter * (2.0 * rng.unit() - 1.0);
            let latency = self.latency.mul_f64(noise);
            match self.capacity.load(in_flight) {
                Load::Within => Some((latency, 16)),
                Load::Slowed(factor) => Some((latency.mul_f64(factor), 16)),
                Load::Over => None,
            }
        }
    }

    /// A healthy LLM: a heavy-tailed time to first token plus a heavy-tailed time per
    /// token for an answer of 1 to 800 tokens, whatever the load.
    pub(super) struct Llm {
        pub(super) first_token: Latency,
        pub(super) per_token: Latency,
    }

    /// A healthy provider whose answers carry no length: each call's whole latency
    /// is drawn from `latency`, whatever the load.
    pub(super) struct Unmeasured {
        pub(super) latency: Latency,
    }

    impl Provider for Unmeasured {
        fn serve(&mut self, rng: &mut Rng, _in_flight: u32) -> Option<(Duration, u32)> {
            Some((self.latency.sample(rng), 1))
        }
    }

    impl Provider for Llm {
        fn serve(&mut self, rng: &mut Rng, _in_flight: u32) -> Option<(Duration, u32)> {
            let units = rng.range_inclusive(1, 800) as u32;
            let per_token = self.per_token.sample(rng);
            let latency = self.first_token.sample(rng) + per_token * units;
            Some((latency, units))
        }
    }

    /// What a run measured, after its warm-up.
    #[derive(Debug)]
    pub(super) struct Run {
        pub(super) arrived: u64,
        pub(super) served: u64,
        pub(super) shed: u64,
        pub(super) refused: u64,
        pub(super) seconds: f64,
        /// Milliseconds from arrival to answer of served calls, sorted.
        pub(super) admitted: Vec<u64>,
        /// The limit at every millisecond.
        pub(super) limits: Vec<u32>,
    }

    impl Run {
        pub(super) fn goodput(&self) -> f64 {
            self.served as f64 / self.seconds
        }

        pub(super) fn p99_ms(&self) -> u64 {
            let index = (self.admitted.len() * 99 / 100).min(self.admitted.len().saturating_sub(1));
            self.admitted.get(index).copied().unwrap_or(0)
        }

        pub(super) fn mean_limit(&self) -> f64 {
            self.limits.iter().map(|&l| f64::from(l)).sum::<f64>() / self.limits.len().max(1) as f64
        }
    }

    /// An attempt at the provider: ends at, arrived, latency ms, units, answered;
    /// ordered by its end.
    type Attempt = (u64, u64, u64, u32, bool);

    struct Waiting {
        rank: Rank,
        arrived: u64,
        look: u64,
    }

    /// `rate(ms)` requests/s (evenly spaced, or a Poisson stream) for `seconds`, the
    /// first `warm_up` seconds left out of the figures.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run(
        config: Config,
        provider: &mut dyn Provider,
        seed: u64,
        rate: &dyn Fn(u64) -> f64,
        poisson: bool,
        seconds: u64,
        warm_up: u64,
    ) -> Run {
        let mut rng = Rng::seeded(seed);
        let mut limiter = Limiter::new(config, at(0)).unwrap();
        let mut waiting: Vec<Waiting> = Vec::new();
        let mut running: BinaryHeap<Reverse<Attempt>> = BinaryHeap::new();
        let mut run = Run {
            arrived: 0,
            served: 0,
            shed: 0,
            refused: 0,
            seconds: (seconds - warm_up) as f64,
            admitted: Vec::new(),
            limits: Vec::new(),
        };
        let counted = |arrived: u64| arrived >= warm_up * 1_000;
        let mut ticket = 0;
        let mut next_arrival = 0.0;
        let end = seconds * 1_000;
        let mut now = 0;
        while now < end || !running.is_empty() || !waiting.is_empty() {
            let t = at(now);
            while let Some(&Reverse((ends, arrived, latency, units, answered))) = running.peek() {
                if ends > now {
                    break;
                }
                running.pop();
                let outcome = if answered {
                    Outcome::Ok
                } else {
                    Outcome::Overloaded { retry_after: None }
                };
                limiter.finish(t, outcome, Duration::from_millis(latency), units);
                if counted(arrived) {
                    if answered {
                        run.served += 1;
                        run.admitted.push(now - arrived);
                    } else {
                        run.refused += 1;
                    }
                }
            }
            let mut starting = Vec::new();
            while now < end && next_arrival <= now as f64 {
                let gap = 1_000.0 / rate(now);
                next_arrival += if poisson {
                    -(1.0 - rng.unit()).ln() * gap
                } else {
                    gap
                };
                ticket += 1;
                if counted(now) {
                    run.arrived += 1;
                }
                waiting.push(Waiting {
                    rank: super::rank(Priority::Interactive, ticket),
                    arrived: now,
                    look: now,
                });
            }
            let mut still = Vec::new();
            for w in waiting.drain(..) {
                if w.look > now {
                    still.push(w);
                    continue;
                }
                let waited = Duration::from_millis(now - w.arrived);
                match limiter.check(t, w.rank, waited, rng.unit()) {
                    Admission::Go => {
                        limiter.start(w.rank);
                        starting.push(w.arrived);
                    }
                    Admission::Wait(look) => match limiter.enqueue(t, w.rank) {
                        Ok(()) => still.push(Waiting {
                            look: look.saturating_duration_since(at(0)).as_millis() as u64,
                            ..w
                        }),
                        Err(_) => run.shed += u64::from(counted(w.arrived)),
                    },
                    Admission::Shed(_) | Admission::Throttled => {
                        limiter.leave(w.rank);
                        limiter.count_shed();
                        run.shed += u64::from(counted(w.arrived));
                    }
                }
            }
            waiting = still;
            for arrived in starting {
                match provider.serve(&mut rng, limiter.in_flight()) {
                    Some((latency, units)) => {
                        let ms = latency.as_millis().max(1) as u64;
                        running.push(Reverse((now + ms, arrived, ms, units, true)));
                    }
                    None => running.push(Reverse((now + 1, arrived, 1, 1, false))),
                }
            }
            if now < end && counted(now) {
                run.limits.push(limiter.limit());
            }
            now += 1;
        }
        run.admitted.sort_unstable();
        run
    }
}

/// The benchmark's mock: 8 calls at once in 200 ms, so 40 answers/s at best.
fn knee(jitter: f64) -> simulated::Knee {
    simulated::Knee {
        capacity: crate::sim::Capacity::new(8).unwrap(),
        latency: Duration::from_millis(200),
        jitter,
    }
}

fn shipped(max_wait: Duration) -> Config {
    Config {
        max_wait,
        ..Config::default()
    }
}

#[test]
fn five_times_the_capacity_of_a_provider_that_thrashes_is_held_at_its_knee() {
    for seed in 1..=5 {
        let run = simulated::run(
            shipped(Duration::from_millis(100)),
            &mut knee(0.05),
            seed,
            // Half its capacity for 5 s (the limit learns the provider unloaded),
            // then five times it.
            &|ms| if ms < 5_000 { 20.0 } else { 200.0 },
            false,
            35,
            7,
        );
        let goodput = run.goodput() / 40.0;
        let p99 = run.p99_ms();
        eprintln!(
            "seed {seed}: goodput ×{goodput:.2}, p99 {p99} ms, mean limit {:.2} (above 8 {:.1}%), served {}/{}, refused {}",
            run.mean_limit(),
            100.0 * run.limits.iter().filter(|&&l| l > 8).count() as f64 / run.limits.len() as f64,
            run.served,
            run.arrived,
            run.refused
        );
        assert!(goodput >= 0.9, "seed {seed}: goodput ×{goodput:.2}");
        assert!(p99 <= 330, "seed {seed}: p99 {p99} ms");
        let limit = run.mean_limit();
        assert!(
            (7.5..=9.0).contains(&limit),
            "seed {seed}: limit {limit:.2}"
        );
    }
}

#[test]
fn healthy_heavy_tailed_traffic_is_not_shed() {
    for seed in 1..=5 {
        // Answers of 1 to 800 tokens after a heavy-tailed first token: some 200 calls
        // in flight.
        let mut llm = simulated::Llm {
            first_token: Latency::log_normal_ms(500, 5_000),
            per_token: Latency::log_normal_ms(20, 80),
        };
        // No length to normalise by: the simulator's latency (p50 1 s, p99 6 s) at
        // 100 requests/s, where the former no-load estimate shed 15%.
        let mut unmeasured = simulated::Unmeasured {
            latency: Latency::log_normal_ms(1_000, 6_000),
        };
        let cases: [(&str, &mut dyn simulated::Provider, f64); 2] = [
            ("llm", &mut llm, 20.0),
            ("unmeasured", &mut unmeasured, 100.0),
        ];
        for (name, provider, rate) in cases {
            let run = simulated::run(Config::default(), provider, seed, &|_| rate, true, 600, 10);
            let shed = run.shed as f64 / run.arrived as f64;
            eprintln!(
                "{name}, seed {seed}: shed {:.3}% of {}, mean limit {:.1}",
                100.0 * shed,
                run.arrived,
                run.mean_limit()
            );
            assert!(
                shed <= 0.001,
                "{name}, seed {seed}: shed {:.3}%",
                100.0 * shed
            );
        }
    }
}
