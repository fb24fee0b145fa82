//! Evaluation over synthetic series: every expression shape, with the edge cases
//! (short history, low volume, zero baseline, flat and rising trends).

use std::time::Duration;

use holdfast_config::{AlertKind, AlertRule};
use holdfast_policy::Instant;

use super::*;
use crate::rules::Signal;

fn at(secs: f64) -> Instant {
    Instant::from_origin(Duration::from_secs_f64(secs))
}

/// A series of `n` samples `step` seconds apart, `f(i)` giving each one's signals.
fn series(n: usize, step: f64, f: impl Fn(usize) -> Vec<(Signal, f64)>) -> Vec<Sample> {
    (0..n)
        .map(|i| {
            f(i).into_iter()
                .fold(Sample::empty(at(i as f64 * step)), |s, (signal, v)| {
                    s.with(signal, v)
                })
        })
        .collect()
}

fn rule(kind: AlertKind, window: u64) -> AlertRule {
    AlertRule {
        window: Duration::from_secs(window),
        min_volume: 1.0,
        ..AlertRule::default_for(kind)
    }
}

fn value(reading: Reading) -> f64 {
    match reading {
        Reading::Value { value, .. } => value,
        Reading::NoData => panic!("no data"),
    }
}

#[test]
fn a_ratio_reads_only_the_window() {
    // 10 attempts a second throughout; 1 retry a second for the first 60 s, then 3.
    let samples = series(121, 1.0, |i| {
        let retries = if i <= 60 { i } else { 60 + 3 * (i - 60) };
        vec![
            (Signal::Attempts, 10.0 * i as f64),
            (Signal::Retries, retries as f64),
        ]
    });
    let retry_rate = rule(AlertKind::RetryRate, 30);
    assert!((value(evaluate(&retry_rate, &samples)) - 0.3).abs() < 1e-9);
    // A window longer than the history reads all of it.
    let long = rule(AlertKind::RetryRate, 3600);
    assert!((value(evaluate(&long, &samples)) - 0.2).abs() < 1e-9);
}

#[test]
fn too_few_events_is_no_data() {
    let samples = series(10, 1.0, |i| {
        vec![(Signal::Attempts, i as f64), (Signal::Retries, i as f64)]
    });
    let retry_rate = AlertRule {
        window: Duration::from_secs(5),
        min_volume: 20.0,
        ..AlertRule::default_for(AlertKind::RetryRate)
    };
    assert_eq!(evaluate(&retry_rate, &samples), Reading::NoData);
    // A metric that is not exposed at all is no data too.
    let missing = series(10, 1.0, |_| vec![]);
    assert_eq!(
        evaluate(&rule(AlertKind::RetryRate, 5), &missing),
        Reading::NoData
    );
    assert_eq!(
        evaluate(&rule(AlertKind::RetryRate, 5), &[]),
        Reading::NoData
    );
}

#[test]
fn mean_retry_delay_is_the_sum_over_the_count() {
    let samples = series(20, 1.0, |i| {
        vec![
            (Signal::RetryDelaySum, 90.0 * i as f64),
            (Signal::RetryDelayCount, i as f64),
        ]
    });
    assert!((value(evaluate(&rule(AlertKind::RetryDelay, 10), &samples)) - 90.0).abs() < 1e-9);
}

#[test]
fn gauges_read_the_latest_sample() {
    let samples = series(5, 1.0, |i| {
        vec![
            (Signal::BreakersNotClosed, (i % 2) as f64),
            (Signal::OldestRetryingTask, 600.0 * i as f64),
        ]
    });
    assert_eq!(
        value(evaluate(&rule(AlertKind::BreakerOpen, 5), &samples)),
        0.0
    );
    assert_eq!(
        value(evaluate(&rule(AlertKind::TaskRetryingLong, 5), &samples)),
        2400.0
    );
}

#[test]
fn completion_rate_is_the_worst_task_types_and_recovers_with_it() {
    // `busy` finishes 10 tasks a second, all succeeding; `rare` 1 a second, and from
    // t = 60 s to t = 120 s every one of its tasks fails, then they succeed again.
    let samples: Vec<Sample> = (0..=180)
        .map(|i| {
            let failed = (i.clamp(60, 120) - 60) as f64;
            Sample::empty(at(i as f64))
                .with_in(Signal::TasksFinished, "busy", 10.0 * i as f64)
                .with_in(Signal::TasksSucceeded, "busy", 10.0 * i as f64)
                .with_in(Signal::TasksFinished, "rare", i as f64)
                .with_in(Signal::TasksSucceeded, "rare", i as f64 - failed)
        })
        .collect();
    let completion = AlertRule {
        window: Duration::from_secs(20),
        min_volume: 10.0,
        ..AlertRule::default_for(AlertKind::CompletionRate)
    };
    let at_second = |t: usize| value(evaluate(&completion, &samples[..=t]));
    assert!((at_second(50) - 1.0).abs() < 1e-9);
    // Failing: `rare` is at 0 while the total is still at 10 in 11.
    assert!(at_second(100).abs() < 1e-9);
    assert!(at_second(100) < completion.threshold);
    // Recovered: a whole window after its tasks succeed again.
    assert!((at_second(150) - 1.0).abs() < 1e-9);
    // A task type below its `min_volume` in the window is not judged.
    let strict = AlertRule {
        min_volume: 30.0,
        ..completion.clone()
    };
    assert!((value(evaluate(&strict, &samples[..=100])) - 1.0).abs() < 1e-9);
}

#[test]
fn a_baseline_rule_compares_the_window_with_the_hour_before() {
    // Tasks at 1 a second; escalations at 1 in 20 for 3600 s, then 1 in 4.
    let samples = series(3901, 1.0, |i| {
        let escalations = if i <= 3600 {
            i as f64 / 20.0
        } else {
            180.0 + (i - 3600) as f64 / 4.0
        };
        vec![
            (Signal::TasksSubmitted, i as f64),
            (Signal::Escalations, escalations),
        ]
    });
    let escalation = AlertRule {
        window: Duration::from_secs(300),
        baseline_window: Duration::from_secs(3600),
        min_volume: 10.0,
        ..AlertRule::default_for(AlertKind::EscalationRate)
    };
    let reading = value(evaluate(&escalation, &samples));
    assert!((reading - 5.0).abs() < 0.05, "{reading}");
    // Without the whole baseline window in the history there is no baseline.
    assert_eq!(evaluate(&escalation, &samples[3700..]), Reading::NoData);
    assert_eq!(evaluate(&escalation, &samples[10..]), Reading::NoData);
}

#[test]
fn a_zero_baseline_is_no_data() {
    let samples = series(100, 1.0, |i| {
        let cost = if i < 90 { 0.0 } else { (i - 90) as f64 };
        vec![(Signal::TasksFinished, i as f64), (Signal::TaskCost, cost)]
    });
    let cost = AlertRule {
        window: Duration::from_secs(10),
        baseline_window: Duration::from_secs(60),
        min_volume: 1.0,
        ..AlertRule::default_for(AlertKind::CostPerTask)
    };
    assert_eq!(evaluate(&cost, &samples), Reading::NoData);
}

#[test]
fn a_falling_budget_is_projected_to_empty_before_it_does() {
    // 60 retries left, spent at 0.2 a second: empty in 300 s from the start.
    let samples = series(61, 1.0, |i| {
        vec![
            (Signal::BudgetRemaining, 60.0 - 0.2 * i as f64),
            (Signal::Retries, 0.2 * i as f64),
        ]
    });
    // At t = 60 s, 48 retries are left: empty in ~240 s ("empty in ~4m").
    let predictive = AlertRule::default_for(AlertKind::RetryBudgetExhaustion);
    let Reading::Value { value, eta } = evaluate(&predictive, &samples) else {
        panic!("no data");
    };
    assert!((value - (48.0 - 60.0)).abs() < 1e-6, "{value}");
    assert!(value < predictive.threshold);
    let eta = eta.expect("a falling trend has an eta");
    assert!((eta - 235.0).abs() < 1e-6, "{eta}");
    assert_eq!(crate::rules::human(eta), "3.9m");
    // A shorter horizon does not reach the threshold yet.
    let near = AlertRule {
        horizon: Duration::from_secs(60),
        ..predictive.clone()
    };
    let Reading::Value { value, .. } = evaluate(&near, &samples) else {
        panic!("no data");
    };
    assert!(value > near.threshold, "{value}");
}

#[test]
fn a_flat_or_rising_budget_has_no_eta_and_one_point_is_no_data() {
    let predictive = AlertRule::default_for(AlertKind::RetryBudgetExhaustion);
    let rising = series(30, 1.0, |i| {
        vec![
            (Signal::BudgetRemaining, 10.0 + i as f64),
            (Signal::Retries, i as f64),
        ]
    });
    let Reading::Value { eta, value } = evaluate(&predictive, &rising) else {
        panic!("no data");
    };
    assert_eq!(eta, None);
    assert!(value > 300.0);
    assert_eq!(evaluate(&predictive, &rising[..1]), Reading::NoData);
    // Already empty: the eta is now.
    let empty = series(5, 1.0, |i| {
        vec![(Signal::BudgetRemaining, 0.0), (Signal::Retries, i as f64)]
    });
    let Reading::Value { eta, .. } = evaluate(&predictive, &empty) else {
        panic!("no data");
    };
    assert_eq!(eta, Some(0.0));
}

#[test]
fn history_covers_the_longest_enabled_window() {
    let rules: Vec<AlertRule> = AlertKind::ALL
        .iter()
        .map(|k| AlertRule::default_for(*k))
        .collect();
    let interval = Duration::from_secs(5);
    assert_eq!(
        history_needed(&rules, interval),
        Duration::from_secs(600 + 3600 + 10)
    );
    let gateway_only: Vec<AlertRule> = rules
        .into_iter()
        .map(|r| AlertRule {
            enabled: !matches!(
                r.kind,
                AlertKind::EscalationRate | AlertKind::CostPerTask | AlertKind::CompletionRate
            ),
            ..r
        })
        .collect();
    assert_eq!(
        history_needed(&gateway_only, interval),
        Duration::from_secs(300 + 10)
    );
}

/// Whether the predictive budget rule fires on `samples`.
fn budget_alert_fires(samples: &[Sample]) -> bool {
    let rule = AlertRule::default_for(AlertKind::RetryBudgetExhaustion);
    match evaluate(&rule, samples) {
        Reading::Value { value, .. } => value < rule.threshold,
        Reading::NoData => false,
    }
}

#[test]
fn the_budget_alert_stays_quiet_idle_under_healthy_load_and_after_it_stops() {
    // Idle: the balance is the reserve (10/s over 10 s), no retry.
    let idle = series(120, 1.0, |_| {
        vec![(Signal::BudgetRemaining, 100.0), (Signal::Retries, 0.0)]
    });
    assert!(!budget_alert_fires(&idle), "idle");
    // Steady healthy load: successes keep the balance high, no retry.
    let steady = series(120, 1.0, |_| {
        vec![(Signal::BudgetRemaining, 4_100.0), (Signal::Retries, 3.0)]
    });
    assert!(!budget_alert_fires(&steady), "steady load");
    // The load stops: earlier successes age out and the balance falls back to the
    // reserve within seconds, a steep line that used to project far below zero.
    let stopped = series(120, 1.0, |i| {
        let balance = if i < 100 {
            4_100.0
        } else {
            (4_100.0 - 400.0 * (i - 99) as f64).max(100.0)
        };
        vec![(Signal::BudgetRemaining, balance), (Signal::Retries, 3.0)]
    });
    assert!(!budget_alert_fires(&stopped), "after the load stops");
}

#[test]
fn the_budget_alert_fires_while_retries_really_drain_it() {
    let draining = series(120, 1.0, |i| {
        vec![
            (Signal::BudgetRemaining, (400.0 - 3.0 * i as f64).max(0.0)),
            (Signal::Retries, 3.0 * i as f64),
        ]
    });
    assert!(budget_alert_fires(&draining));
}
