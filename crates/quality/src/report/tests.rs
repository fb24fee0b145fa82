//! Reports from synthetic runs: groups, intervals, the baseline, the gate, the page.

use std::collections::BTreeMap;

use holdfast_store::{EvalOutcome, EvalRun, EvalStatus};
use serde_json::json;

use super::*;
use crate::grader::Verdict;
use crate::result::Settings;
use crate::subject::Answer;
use crate::suite::{TaskType, Thresholds};

fn run(id: &str, pass_rate: &[(&str, f64)]) -> EvalRun {
    let settings = Settings {
        task: TaskType::Route {
            route: "support".into(),
        },
        judge: None,
        seed: 3,
        sample: None,
        concurrency: 4,
        timeout_ms: 1000,
        baseline: None,
        thresholds: Thresholds {
            case_score: 1.0,
            pass_rate: pass_rate
                .iter()
                .map(|(t, r)| ((*t).to_owned(), *r))
                .collect::<BTreeMap<_, _>>(),
            cost_per_case: Some(0.01),
            p95_latency_ms: Some(500),
        },
    };
    EvalRun {
        run_id: id.into(),
        tenant: "acme".into(),
        suite: "support".into(),
        suite_sha256: "sha".into(),
        subject: json!({"via": "test"}),
        settings: settings.to_value(),
        cases: 0,
        status: EvalStatus::Finished,
        summary: None,
        created_at_ms: 1,
        updated_at_ms: 2,
        finished_at_ms: Some(3),
    }
}

fn result(id: &str, tag: &str, passed: bool) -> CaseResult {
    CaseResult {
        case_id: id.into(),
        outcome: if passed {
            EvalOutcome::Passed
        } else {
            EvalOutcome::Failed
        },
        score: if passed { 1.0 } else { 0.0 },
        tags: vec![tag.into()],
        verdicts: vec![Verdict {
            grader: "contains".into(),
            weight: 1.0,
            score: if passed { 1.0 } else { 0.0 },
            reason: if passed {
                "contains \"ok\"".into()
            } else {
                "\"<script>alert(1)</script>\" does not contain \"ok\"".into()
            },
            cost_usd: 0.0,
        }],
        answer: Some(Answer {
            text: "<script>alert(1)</script>".into(),
            ..Answer::default()
        }),
        error: None,
        cost_usd: 0.001,
        latency_ms: 100,
    }
}

/// 40 labeled cases and 10 adversarial ones; `failing_labeled` labeled ones fail.
fn results(failing_labeled: usize) -> Vec<CaseResult> {
    let mut out: Vec<CaseResult> = (0..40)
        .map(|i| result(&format!("l{i:02}"), "labeled", i >= failing_labeled))
        .collect();
    out.extend((0..10).map(|i| result(&format!("a{i}"), "adversarial", i < 8)));
    out
}

#[test]
fn groups_carry_rates_intervals_and_thresholds() {
    let r = Report::build(&run("r1", &[("labeled", 0.9)]), &results(2), None).unwrap();
    assert_eq!((r.cases, r.passed, r.failed, r.errors), (50, 46, 4, 0));
    let tags: Vec<&str> = r.groups.iter().map(|g| g.tag.as_str()).collect();
    assert_eq!(tags, ["all", "adversarial", "labeled"]);
    let labeled = r.group("labeled").unwrap();
    assert_eq!(
        (labeled.passed, labeled.cases, labeled.rate),
        (38, 40, 0.95)
    );
    assert_eq!(labeled.interval, stats::wilson(38, 40));
    assert_eq!(labeled.threshold, Some(0.9));
    assert_eq!(labeled.detectable_drop, stats::detectable_drop(40));
    assert!(r.gate.passed, "{:?}", r.gate);
    assert!((r.cost_usd.mean - 0.001).abs() < 1e-12);
    assert_eq!(r.latency_ms.p95, 100.0);
    assert_eq!(r.not_passed.len(), 4);
}

#[test]
fn the_gate_fails_below_a_threshold() {
    let r = Report::build(&run("r1", &[("labeled", 0.9)]), &results(6), None).unwrap();
    assert!(!r.gate.passed);
    let failed: Vec<&str> = r
        .gate
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(failed, ["pass_rate labeled"]);
    assert!(r.to_text().contains("gate: FAILED"), "{}", r.to_text());
}

#[test]
fn the_gate_fails_significantly_below_the_baseline_even_without_a_threshold() {
    let base = run("base", &[]);
    let base_results = results(0);
    // 7 labeled cases regress, none improve: p = 2 · 2⁻⁷ ≈ 0.016.
    let r = Report::build(&run("r2", &[]), &results(7), Some((&base, &base_results))).unwrap();
    let labeled = r.group("labeled").unwrap().paired.clone().unwrap();
    assert_eq!(
        (labeled.pairs, labeled.regressed, labeled.improved),
        (40, 7, 0)
    );
    assert!(labeled.significantly_worse);
    assert!((labeled.p_value - 0.015625).abs() < 1e-12);
    assert!(!r.gate.passed);
    let comparison = r.baseline.as_ref().unwrap();
    assert_eq!(comparison.regressed.len(), 7);
    assert_eq!(comparison.regressed[0].case_id, "l00");
    // 3 regressions are not significant: the gate holds.
    let r = Report::build(&run("r3", &[]), &results(3), Some((&base, &base_results))).unwrap();
    assert!(r.gate.passed, "{:?}", r.gate);
    assert!(
        r.to_text().contains("vs baseline 100.0% (-7.5 pts"),
        "{}",
        r.to_text()
    );
}

#[test]
fn cost_and_latency_thresholds_are_checked() {
    let mut slow = results(0);
    for r in slow.iter_mut().take(5) {
        r.latency_ms = 900;
        r.cost_usd = 0.2;
    }
    let r = Report::build(&run("r", &[]), &slow, None).unwrap();
    let failed: Vec<&str> = r
        .gate
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(failed, ["cost_per_case", "p95_latency"]);
}

#[test]
fn the_html_page_is_self_contained_and_escapes_answers() {
    let base = run("base", &[]);
    let base_results = results(0);
    let now = results(7);
    let r = Report::build(
        &run("r", &[("labeled", 0.95)]),
        &now,
        Some((&base, &base_results)),
    )
    .unwrap();
    let page = html::render(&r, &now);
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(
        !page.contains("<script"),
        "an answer's markup must be escaped"
    );
    assert!(page.contains("&lt;script&gt;"));
    assert!(
        page.matches("<svg").count() >= 3,
        "rates, cost and latency plots"
    );
    for external in ["src=", "href=", "@import", "url("] {
        assert!(!page.contains(external), "no external asset: {external}");
    }
    assert!(page.contains("Against baseline base"));
    assert!(page.contains("gate FAILED"));
}

#[test]
fn a_report_round_trips_as_json() {
    let r = Report::build(&run("r", &[("all", 0.5)]), &results(1), None).unwrap();
    let json = serde_json::to_value(&r).unwrap();
    let back: Report = serde_json::from_value(json).unwrap();
    assert_eq!(back, r);
}
