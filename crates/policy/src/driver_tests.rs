use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::*;
use crate::backoff::{Backoff, Config as BackoffConfig, Jitter};
use crate::clock::SystemClock;
use crate::deadline::Deadline;
use crate::fallback::{Chain, Link};
use crate::pipeline::{Policy, Request, Settings, TargetSettings};

#[derive(Debug)]
struct Failed(Outcome);

impl Classified for Failed {
    fn outcome(&self) -> Outcome {
        self.0
    }
}

/// Answers per target from a script: (delay, outcome), repeating the last entry.
struct Scripted {
    clock: SystemClock,
    scripts: Vec<Vec<(u64, Outcome)>>,
    calls: Vec<AtomicU32>,
    dropped: Arc<AtomicU32>,
}

struct DropCount(Arc<AtomicU32>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Transport for Scripted {
    type Response = String;
    type Error = Failed;

    async fn attempt(&self, start: StartAttempt) -> Result<String, Failed> {
        let target = start.target.0 as usize;
        let n = self.calls[target].fetch_add(1, Ordering::SeqCst) as usize;
        let script = &self.scripts[target];
        let (delay, outcome) = script[n.min(script.len() - 1)];
        let guard = DropCount(self.dropped.clone());
        self.clock
            .sleep_until(self.clock.now() + Duration::from_millis(delay))
            .await;
        std::mem::forget(guard);
        if outcome.is_ok() {
            Ok(format!("t{target}"))
        } else {
            Err(Failed(outcome))
        }
    }
}

fn setup(
    scripts: Vec<Vec<(u64, Outcome)>>,
    timeout_ms: u64,
) -> (Scripted, Mutex<Registry>, Arc<Chain>, SystemClock) {
    let clock = SystemClock::new();
    let mut registry = Registry::new(Settings {
        hedge_ratio: 1.0,
        ..Settings::default()
    })
    .unwrap();
    let links = (0..scripts.len())
        .map(|i| {
            let id = registry
                .add_target(&format!("t{i}"), TargetSettings::default(), clock.now())
                .unwrap();
            Link::new(id, Duration::from_millis(timeout_ms))
        })
        .collect();
    let transport = Scripted {
        clock: clock.clone(),
        calls: scripts.iter().map(|_| AtomicU32::new(0)).collect(),
        scripts,
        dropped: Arc::new(AtomicU32::new(0)),
    };
    (
        transport,
        Mutex::new(registry),
        Arc::new(Chain::new(links).unwrap()),
        clock,
    )
}

fn call(chain: &Arc<Chain>, deadline: Deadline, policy: Policy) -> Call {
    Call::new(Request {
        chain: chain.clone(),
        policy: Arc::new(policy),
        deadline,
        agent: None,
        tokens: None,
        seed: 7,
        priority: crate::concurrency::Priority::Interactive,
    })
}

fn policy() -> Policy {
    Policy::new(
        Backoff::new(BackoffConfig {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            max_attempts: 3,
            jitter: Jitter::None,
        })
        .unwrap(),
    )
}

#[tokio::test(start_paused = true)]
async fn retries_then_serves() {
    let (transport, registry, chain, clock) = setup(
        vec![vec![(10, Outcome::ServerError), (10, Outcome::Ok)]],
        1_000,
    );
    let run = run(
        call(&chain, Deadline::NONE, policy()),
        &registry,
        &clock,
        &transport,
    )
    .await;
    let served = run.result.unwrap();
    assert_eq!(served.response, "t0");
    assert_eq!(transport.calls[0].load(Ordering::SeqCst), 2);
    assert!(
        clock.now().since_origin() >= Duration::from_millis(120),
        "waited the backoff"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hung_attempt_is_cut_off_at_its_timeout_and_falls_back() {
    let (transport, registry, chain, clock) = setup(
        vec![vec![(60_000, Outcome::Ok)], vec![(10, Outcome::Ok)]],
        500,
    );
    let mut p = policy();
    p.backoff = Backoff::new(BackoffConfig {
        max_attempts: 1,
        ..*p.backoff.config()
    })
    .unwrap();
    let run = run(
        call(&chain, Deadline::NONE, p),
        &registry,
        &clock,
        &transport,
    )
    .await;
    assert_eq!(run.result.unwrap().response, "t1");
    let first = run.events.iter().find_map(|e| match e {
        PolicyEvent::Attempt(a) => Some(a.outcome),
        _ => None,
    });
    assert_eq!(first, Some(Outcome::Timeout(TimeoutKind::Total)));
    assert!(clock.now().since_origin() < Duration::from_millis(600));
}

#[tokio::test(start_paused = true)]
async fn gives_up_before_the_deadline_with_the_last_error() {
    let (transport, registry, chain, clock) =
        setup(vec![vec![(100, Outcome::ServerError)]], 10_000);
    let deadline = Deadline::after(clock.now(), Duration::from_millis(350));
    let run = run(
        call(&chain, deadline, policy()),
        &registry,
        &clock,
        &transport,
    )
    .await;
    let failure = run.result.unwrap_err();
    assert_eq!(failure.reason, GiveUp::DeadlineExceeded);
    assert!(matches!(failure.error, Some(Failed(Outcome::ServerError))));
    assert!(clock.now().since_origin() <= Duration::from_millis(350));
}

#[tokio::test(start_paused = true)]
async fn a_lost_hedge_is_dropped() {
    let (transport, registry, chain, clock) = setup(
        vec![
            vec![(100, Outcome::Ok), (100, Outcome::Ok), (5_000, Outcome::Ok)],
            vec![(50, Outcome::Ok)],
        ],
        10_000,
    );
    let mut p = policy();
    p.hedge = Some(crate::hedge::Config {
        min_samples: 2,
        ..crate::hedge::Config::default()
    });
    for _ in 0..2 {
        run(
            call(&chain, Deadline::NONE, p.clone()),
            &registry,
            &clock,
            &transport,
        )
        .await
        .result
        .unwrap();
    }
    let run = run(
        call(&chain, Deadline::NONE, p),
        &registry,
        &clock,
        &transport,
    )
    .await;
    assert_eq!(run.result.unwrap().response, "t1", "the hedge on t1 wins");
    assert!(
        run.events
            .iter()
            .any(|e| matches!(e, PolicyEvent::Hedged { .. }))
    );
    tokio::task::yield_now().await;
    assert_eq!(
        transport.dropped.load(Ordering::SeqCst),
        1,
        "the slow original was dropped"
    );
}
