//! The seeded simulator over every built-in scenario: invariants on a thousand seeds,
//! determinism, and holdfast against the naive policy on the figures that matter.

#![allow(clippy::unwrap_used)] // a test: a broken scenario should fail loudly

use std::collections::BTreeSet;
use std::time::Duration;

use holdfast_policy::breaker::State;
use holdfast_policy::pipeline::{Next, PolicyEvent};
use holdfast_policy::sim::trace::Entry;
use holdfast_policy::sim::{
    self, Aggregate, NAMES, PolicyKind, Scenario, ScenarioReport, SeedReport,
};

/// Runs `seeds` of every scenario under `policy`, one thread per scenario.
fn every_scenario(
    seeds: std::ops::Range<u64>,
    policy: PolicyKind,
) -> Vec<(&'static str, Aggregate)> {
    let scenarios = Scenario::all().unwrap();
    std::thread::scope(|scope| {
        let runs: Vec<_> = scenarios
            .iter()
            .map(|scenario| {
                let seeds = seeds.clone();
                scope.spawn(move || {
                    let mut total = Aggregate::default();
                    seeds.for_each(|seed| total.add(&sim::run(scenario, seed, policy)));
                    (scenario.name, total)
                })
            })
            .collect();
        runs.into_iter().map(|run| run.join().unwrap()).collect()
    })
}

#[test]
fn a_thousand_seeds_of_every_scenario_break_no_invariant() {
    let results = every_scenario(0..1_000, PolicyKind::Holdfast);
    assert_eq!(results.len(), NAMES.len());
    let mut failures = Vec::new();
    for (name, total) in &results {
        assert_eq!(total.seeds, 1_000);
        assert!(
            total.requests > 1_000_000,
            "{name}: {} requests",
            total.requests
        );
        for (seed, violation) in total.violations.iter().take(20) {
            failures.push(format!("{name} seed {seed}: {violation}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_same_seed_replays_the_same_trace_and_other_seeds_do_not() {
    let mut digests = BTreeSet::new();
    for scenario in Scenario::all().unwrap() {
        for seed in 0..5 {
            for policy in [PolicyKind::Holdfast, PolicyKind::Naive] {
                let first = sim::run(&scenario, seed, policy);
                let again = sim::run(&scenario, seed, policy);
                assert_eq!(
                    first.digest, again.digest,
                    "{} seed {seed} {policy:?}",
                    scenario.name
                );
                assert_eq!(first, again);
                assert!(
                    digests.insert(first.digest),
                    "{} seed {seed} {policy:?} collides",
                    scenario.name
                );
            }
        }
    }
    let scenario = Scenario::named("mixed").unwrap();
    assert_eq!(
        sim::trace(&scenario, 42, PolicyKind::Holdfast),
        sim::trace(&scenario, 42, PolicyKind::Holdfast)
    );
}

fn both(name: &str, seeds: u64) -> ScenarioReport {
    ScenarioReport::run(&Scenario::named(name).unwrap(), 0..seeds)
}

#[test]
fn a_total_outage_does_not_become_a_retry_storm() {
    let report = both("total-outage", 50);
    let holdfast = report.holdfast.per_request(report.holdfast.upstream);
    let naive = report.naive.per_request(report.naive.upstream);
    assert!(
        holdfast <= 1.2,
        "holdfast sends {holdfast:.3} upstream calls per request"
    );
    assert!(
        naive >= 3.5,
        "naive sends {naive:.3} upstream calls per request"
    );
}

#[test]
fn a_primary_failing_a_fifth_of_calls_costs_clients_nothing() {
    let report = both("503-20pct", 50);
    let success = report.holdfast.success_rate();
    assert!(
        success >= 0.999,
        "holdfast success {:.4}%: {:?}",
        100.0 * success,
        report.holdfast.gave_up
    );
    // Its route retries on the fallback (`retry_on = "next"`) and shifts load off the
    // primary until the primary's 503s waste at most 0.05 round trips per request.
    let holdfast = report.holdfast.per_request(report.holdfast.upstream);
    let naive = report.naive.per_request(report.naive.upstream);
    assert!(
        holdfast <= 1.08 && holdfast < naive,
        "holdfast sends {holdfast:.3} upstream calls per request, naive {naive:.3}"
    );
    assert!(
        naive >= 1.2,
        "naive sends {naive:.3}: a fifth of its calls fail once"
    );
}

#[test]
fn a_429_storm_is_served_from_the_fallback_without_waiting_for_the_primary() {
    let report = both("429-storm", 50);
    let retry_after = Duration::from_secs(5);
    let p50 = report.holdfast.latency(50.0);
    assert!(p50 * 3 < retry_after, "holdfast p50 {p50:?}");
    assert!(
        report.holdfast.success_rate() >= 0.999,
        "{:?}",
        report.holdfast.gave_up
    );
    // Every request that met a 429 went on to the fallback at once: no retry on the
    // primary waited out its Retry-After.
    let scenario = Scenario::named("429-storm").unwrap();
    for seed in 0..10 {
        let trace = sim::trace(&scenario, seed, PolicyKind::Holdfast);
        let waited = trace.records.iter().filter(|r| {
            matches!(&r.entry, Entry::Event(PolicyEvent::Attempt(a))
                if a.outcome.retry_after().is_some() && matches!(a.next, Next::Retry { .. }))
        });
        assert_eq!(waited.count(), 0, "seed {seed}");
    }
}

/// The invariant checks are not vacuous: across the scenarios, the traces hold every
/// situation they judge.
#[test]
fn the_scenarios_exercise_every_invariant() {
    let mut seen = BTreeSet::new();
    // Breakers whose short window opens them within a second of a burst of refusals
    // leave the retry budget little to refuse: the brownout with it off spends it.
    let mut slower = Scenario::named("brownout").unwrap();
    let breaker = holdfast_policy::breaker::Config {
        window: Duration::from_secs(10),
        min_calls: 20,
        short_window: Duration::ZERO,
        ..holdfast_policy::breaker::Config::default()
    };
    slower.holdfast = sim::scenario::Setup::holdfast(&slower.targets, breaker, None, None).unwrap();
    for scenario in Scenario::all().unwrap().into_iter().chain([slower]) {
        let limits = &scenario.holdfast.limits;
        if limits.target_budgets.iter().any(Option::is_some) {
            seen.insert("target budget");
        }
        for seed in 0..3 {
            let trace = sim::trace(&scenario, seed, PolicyKind::Holdfast);
            for record in &trace.records {
                match &record.entry {
                    Entry::Event(PolicyEvent::BudgetExhausted { .. }) => {
                        seen.insert("budget exhausted")
                    }
                    Entry::Event(PolicyEvent::TargetBreaker { transition, .. })
                        if transition.to == State::HalfOpen =>
                    {
                        seen.insert("half-open")
                    }
                    Entry::Event(PolicyEvent::Hedged { .. }) => seen.insert("hedge"),
                    Entry::Event(PolicyEvent::Attempt(a)) if a.outcome.retry_after().is_some() => {
                        seen.insert("retry-after")
                    }
                    Entry::Event(PolicyEvent::Attempt(a))
                        if !a.outcome.is_retryable() && !a.outcome.is_ok() =>
                    {
                        seen.insert("non-retryable")
                    }
                    Entry::Event(PolicyEvent::Attempt(a))
                        if matches!(a.next, Next::Retry { .. }) =>
                    {
                        seen.insert("retry")
                    }
                    _ => false,
                };
            }
        }
    }
    let all = [
        "target budget",
        "budget exhausted",
        "half-open",
        "hedge",
        "retry-after",
        "non-retryable",
        "retry",
    ];
    assert_eq!(seen, all.into_iter().collect());
}

#[test]
fn a_seed_report_counts_every_request_once() {
    let scenario = Scenario::named("mixed").unwrap();
    let run: SeedReport = sim::run(&scenario, 3, PolicyKind::Holdfast);
    assert_eq!(run.latencies.len() as u64, run.requests);
    let failed: u64 = run.gave_up.values().sum();
    assert_eq!(run.succeeded + failed, run.requests);
    assert!(run.upstream >= run.succeeded);
    assert!(run.latency(50.0) <= run.latency(99.0));
}

/// The brownout's primary degrades with the calls in flight: the naive policy's retries
/// push it over (a retry storm), holdfast's budget and breakers hold it at capacity and
/// move the rest to the fallback, answering more requests with fewer calls.
#[test]
fn a_brownout_does_not_become_a_retry_storm() {
    let report = both("brownout", 20);
    let (holdfast, naive) = (&report.holdfast, &report.naive);
    assert!(
        holdfast.success_rate() > naive.success_rate(),
        "holdfast {:?}, naive {:?}",
        holdfast.gave_up,
        naive.gave_up
    );
    let calls = |a: &Aggregate| a.per_request(a.upstream);
    assert!(
        calls(holdfast) * 2.0 < calls(naive),
        "holdfast {:.3} upstream calls per request, naive {:.3}",
        calls(holdfast),
        calls(naive)
    );
}

/// In `mixed`, calls that waited for the primary while the large target was held, and
/// hung attempts whose next target's breaker was open, used to be lost: holdfast
/// answered fewer requests than the naive policy there.
#[test]
fn mixed_faults_answer_at_least_as_many_requests_as_the_naive_policy() {
    let report = both("mixed", 20);
    assert!(
        report.holdfast.success_rate() >= report.naive.success_rate(),
        "holdfast {:?}, naive {:?}",
        report.holdfast.gave_up,
        report.naive.gave_up
    );
}
