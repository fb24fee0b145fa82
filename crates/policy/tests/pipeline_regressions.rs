//! Regressions in the pipeline found by the seeded simulator, each named after what
//! broke.

#![allow(clippy::unwrap_used)] // a test: a broken scenario should fail loudly

use std::sync::Arc;
use std::time::Duration;

use holdfast_policy::Instant;
use holdfast_policy::backoff::{self, Backoff};
use holdfast_policy::breaker;
use holdfast_policy::deadline::Deadline;
use holdfast_policy::fallback::{Chain, Link};
use holdfast_policy::outcome::Outcome;
use holdfast_policy::pipeline::{
    Action, AttemptId, Call, Event, GiveUp, Policy, Registry, Request, Settings, TargetSettings,
    Verdict,
};

fn at(ms: u64) -> Instant {
    Instant::from_origin(Duration::from_millis(ms))
}

struct Fixture {
    registry: Registry,
    chain: Arc<Chain>,
    policy: Arc<Policy>,
}

impl Fixture {
    /// One target whose breaker trips after 2 failures, stays open 1 s and allows a
    /// single half-open probe.
    fn one_target_with_one_probe() -> Self {
        let settings = Settings {
            global_budget: None,
            agent_breaker: None,
            hedge_ratio: 0.0,
        };
        let mut registry = Registry::new(settings).unwrap();
        let breaker = breaker::Config {
            min_calls: 2,
            open_for: Duration::from_secs(1),
            half_open_probes: 1,
            ..breaker::Config::default()
        };
        let settings = TargetSettings {
            breaker: Some(breaker),
            ..TargetSettings::default()
        };
        let target = registry.add_target("only", settings, at(0)).unwrap();
        let chain = Chain::new(vec![Link::new(target, Duration::from_secs(30))]).unwrap();
        let policy = Policy::new(Backoff::new(backoff::Config::default()).unwrap());
        Fixture {
            registry,
            chain: Arc::new(chain),
            policy: Arc::new(policy),
        }
    }

    fn call(&self, seed: u64) -> Call {
        Call::new(Request {
            chain: self.chain.clone(),
            policy: self.policy.clone(),
            deadline: Deadline::after(at(0), Duration::from_secs(30)),
            agent: None,
            tokens: None,
            seed,
            priority: holdfast_policy::concurrency::Priority::Interactive,
        })
    }
}

fn first_attempt(actions: &[Action]) -> Option<AttemptId> {
    actions.iter().find_map(|a| match a {
        Action::Start(s) => Some(s.attempt),
        _ => None,
    })
}

/// A call that found a single target half-open with every probe in flight asked to be
/// woken *now*, again and again: a busy loop in the driver, and a simulated run that
/// never advanced its clock. It must give up as unavailable instead.
#[test]
fn half_open_breaker_with_every_probe_in_flight_made_the_call_spin() {
    let mut f = Fixture::one_target_with_one_probe();
    for seed in 0..2 {
        let mut failing = f.call(seed);
        let attempt = first_attempt(&failing.handle(&mut f.registry, at(0), Event::Start)).unwrap();
        let outcome = Outcome::Connection;
        failing.handle(
            &mut f.registry,
            at(10),
            Event::Finished { attempt, outcome },
        );
    }
    let mut probe = f.call(10);
    assert!(first_attempt(&probe.handle(&mut f.registry, at(1_100), Event::Start)).is_some());

    let mut blocked = f.call(11);
    let now = at(1_200);
    let actions = blocked.handle(&mut f.registry, now, Event::Start);
    let spins = actions
        .iter()
        .any(|a| matches!(a, Action::WakeAt(t) if *t <= now));
    assert!(!spins, "asked to be woken now: {actions:?}");
    let unavailable = Verdict::GaveUp {
        reason: GiveUp::Unavailable,
        last: None,
    };
    assert!(actions.contains(&Action::Done(unavailable)), "{actions:?}");
}
