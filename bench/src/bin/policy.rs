//! The policy's CPU cost per call, as a ratio to one HTTP round trip on loopback
//! measured in the same run. Target: ≤ 1%.
//!
//! Run: `cargo run --release -p holdfast-bench --bin policy`

use std::sync::{Arc, Mutex};
use std::time::Duration;

use holdfast_bench::loopback;
use holdfast_bench::measure::{human, mean_per_iteration, time_async};
use holdfast_policy::backoff::{self, Backoff};
use holdfast_policy::clock::{Clock, Instant, SystemClock};
use holdfast_policy::deadline::Deadline;
use holdfast_policy::driver::{self, Classified, Transport};
use holdfast_policy::fallback::{Chain, Link};
use holdfast_policy::pipeline::{
    Action, Call, Event, Policy, Registry, Request, Settings, StartAttempt, TargetSettings,
};
use holdfast_policy::{Outcome, breaker, budget};

const CALLS: u32 = 200_000;

fn registry(protected: bool) -> anyhow::Result<(Registry, Arc<Chain>)> {
    let settings = if protected {
        Settings::default()
    } else {
        Settings {
            global_budget: None,
            agent_breaker: None,
            hedge_ratio: 0.0,
        }
    };
    let mut registry = Registry::new(settings)?;
    let target = TargetSettings {
        breaker: protected.then(breaker::Config::default),
        budget: protected.then(budget::Config::default),
        ..TargetSettings::default()
    };
    let primary = registry.add_target("primary", target.clone(), Instant::ZERO)?;
    let fallback = registry.add_target("fallback", target, Instant::ZERO)?;
    let links = vec![
        Link::new(primary, Duration::from_secs(30)),
        Link::new(fallback, Duration::from_secs(30)),
    ];
    Ok((registry, Arc::new(Chain::new(links)?)))
}

fn request(
    chain: &Arc<Chain>,
    policy: &Arc<Policy>,
    agent: Option<Arc<str>>,
    now: Instant,
) -> Request {
    Request {
        chain: chain.clone(),
        policy: policy.clone(),
        deadline: Deadline::after(now, Duration::from_secs(60)),
        agent,
        tokens: Some(1_000),
        seed: 1,
        priority: holdfast_policy::concurrency::Priority::Interactive,
    }
}

/// One successful call through the pure state machine.
fn pure_call(
    registry: &mut Registry,
    chain: &Arc<Chain>,
    policy: &Arc<Policy>,
    agent: &Option<Arc<str>>,
    now: Instant,
) -> bool {
    let mut call = Call::new(request(chain, policy, agent.clone(), now));
    let actions = call.handle(registry, now, Event::Start);
    let Some(Action::Start(start)) = actions.iter().find(|a| matches!(a, Action::Start(_))) else {
        return false;
    };
    let done = call.handle(
        registry,
        now + Duration::from_micros(500),
        Event::Finished {
            attempt: start.attempt,
            outcome: Outcome::Ok,
        },
    );
    done.iter().any(|a| matches!(a, Action::Done(_)))
}

struct Immediate;

#[derive(Debug)]
struct Never;

impl Classified for Never {
    fn outcome(&self) -> Outcome {
        Outcome::Ok
    }
}

impl Transport for Immediate {
    type Response = ();
    type Error = Never;
    async fn attempt(&self, _start: StartAttempt) -> Result<(), Never> {
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let addr = runtime.block_on(loopback::serve())?;
    let rtt = runtime.block_on(loopback::round_trip(addr, 20_000))?;

    let policy = Arc::new(Policy::new(Backoff::new(backoff::Config::default())?));
    let mut rows = Vec::new();
    for (name, protected, agent) in [
        ("pipeline, no breaker or budget", false, None),
        ("pipeline, breaker + budgets", true, None),
        (
            "pipeline, breaker + budgets + agent breaker",
            true,
            Some(Arc::<str>::from("agent-7")),
        ),
    ] {
        let (mut registry, chain) = registry(protected)?;
        let mut now = Instant::ZERO;
        let mut ok = true;
        let per_call = mean_per_iteration(CALLS, || {
            now = now + Duration::from_micros(100);
            ok &= pure_call(&mut registry, &chain, &policy, &agent, now);
        });
        anyhow::ensure!(ok, "a benchmark call did not complete");
        rows.push((name, per_call));
    }

    let (registry, chain) = registry(true)?;
    let registry = Mutex::new(registry);
    let clock = SystemClock::new();
    let (result, elapsed) = runtime.block_on(time_async(async {
        for _ in 0..CALLS {
            let call = Call::new(request(&chain, &policy, None, clock.now()));
            driver::run(call, &registry, &clock, &Immediate)
                .await
                .result
                .map_err(|f| anyhow::anyhow!("{:?}", f.reason))?;
        }
        anyhow::Ok(())
    }));
    result?;
    rows.push(("async driver, breaker + budgets", elapsed / CALLS));

    println!(
        "policy CPU cost per call vs one loopback HTTP round trip ({})",
        human(rtt)
    );
    println!("{:<46} {:>10} {:>12}", "path", "per call", "ratio to RTT");
    for (name, cost) in rows {
        let ratio = cost.as_secs_f64() / rtt.as_secs_f64() * 100.0;
        let verdict = if ratio <= 1.0 {
            "ok"
        } else {
            "over the 1% target"
        };
        println!("{name:<46} {:>10} {ratio:>11.3}% {verdict}", human(cost));
    }
    Ok(())
}
