//! `holdfast demo` end to end: the real binary, run as a user runs it.
//!
//! The acceptance criterion of the demo is that its report's figures agree with
//! `/metrics`. The demo reads its figures from its own `/metrics`; this test checks
//! them independently: it scrapes `/metrics` of the still-running demo
//! (`--keep-running`) with its own parser and compares every figure of the JSON report
//! with the sums it computes. A second, shorter run checks that the demo ends by
//! itself, in time, with exit code 0.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{BIN, Process, Stopwatch, TempDir, pause};

/// The sum of the samples of `name` whose labels include every pair of `filter`,
/// parsed here from the exposition text, independently of the demo's own parser.
fn metric(text: &str, name: &str, filter: &[(&str, &str)]) -> f64 {
    let mut sum = 0.0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (series_name, labels) = match series.find('{') {
            Some(i) => (&series[..i], &series[i..]),
            None => (series, ""),
        };
        if series_name != name {
            continue;
        }
        if filter
            .iter()
            .all(|(k, v)| labels.contains(&format!("{k}=\"{v}\"")))
        {
            sum += value.parse::<f64>().unwrap();
        }
    }
    sum
}

/// A report figure (its JSON pointer), the metric it must equal, and the labels to
/// sum that metric over.
type Check = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

fn count(text: &str, name: &str, filter: &[(&str, &str)]) -> u64 {
    metric(text, name, filter).round() as u64
}

fn int(report: &Value, pointer: &str) -> u64 {
    report
        .pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("report has no integer at {pointer}: {report:#}"))
}

/// Waits for the report file (written whole, then renamed into place).
async fn wait_for_report(path: &Path, demo: &Process, within: Duration) -> Value {
    let watch = Stopwatch::start();
    while watch.elapsed() < within {
        if let Ok(text) = std::fs::read_to_string(path) {
            return serde_json::from_str(&text).unwrap();
        }
        pause(Duration::from_millis(200)).await;
    }
    panic!(
        "no report at {} after {within:?}; output:\n{}",
        path.display(),
        demo.output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_report_figures_agree_with_metrics() {
    let dir = TempDir::new("demo");
    let data = dir.path().join("data");
    let report_path = dir.path().join("report.json");
    let args: Vec<String> = [
        "demo",
        "--duration",
        "8s",
        "--listen",
        "127.0.0.1:0",
        "--keep-running",
        "--data-dir",
        data.to_str().unwrap(),
        "--json-report",
        report_path.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    let demo = Process::spawn("demo", &args, &[]);
    let report = wait_for_report(&report_path, &demo, Duration::from_secs(40)).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let text = client
        .get(format!("http://{}/metrics", demo.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let out = demo.output();

    let checks: [Check; 13] = [
        (
            "/tasks/submitted",
            "holdfast_tasks_total",
            &[("status", "submitted")],
        ),
        (
            "/tasks/completed",
            "holdfast_tasks_total",
            &[("status", "succeeded")],
        ),
        (
            "/tasks/failed",
            "holdfast_tasks_total",
            &[("status", "failed")],
        ),
        (
            "/tasks/cancelled",
            "holdfast_tasks_total",
            &[("status", "cancelled")],
        ),
        ("/tasks/compensations", "holdfast_compensations_total", &[]),
        ("/escalations/opened", "holdfast_escalations_total", &[]),
        ("/llm/requests", "holdfast_requests_total", &[]),
        ("/llm/attempts", "holdfast_attempts_total", &[]),
        ("/llm/retries", "holdfast_retries_total", &[]),
        ("/llm/fallbacks", "holdfast_fallbacks_total", &[]),
        ("/llm/routed_around", "holdfast_skipped_total", &[]),
        (
            "/without_holdfast/llm_requests_around_open_primary",
            "holdfast_skipped_total",
            &[("target", "primary"), ("reason", "breaker_open")],
        ),
        (
            "/without_holdfast/llm_requests_failed",
            "holdfast_calls_with_failure_total",
            &[],
        ),
    ];
    for (pointer, name, filter) in checks {
        assert_eq!(
            int(&report, pointer),
            count(&text, name, filter),
            "{pointer} vs {name}{filter:?}\nreport: {report:#}\nmetrics:\n{text}"
        );
    }
    let tool_failures = count(
        &text,
        "holdfast_task_steps_total",
        &[("kind", "http"), ("result", "retrying")],
    ) + count(
        &text,
        "holdfast_task_steps_total",
        &[("kind", "http"), ("result", "exhausted")],
    );
    assert_eq!(
        int(&report, "/tool_calls/first_attempt_failed"),
        tool_failures
    );
    assert_eq!(
        int(&report, "/without_holdfast/tool_calls_failed"),
        tool_failures
    );
    for target in ["primary", "second", "fallback"] {
        let trips = report
            .pointer(&format!("/breaker_trips/{target}"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let opened = count(
            &text,
            "holdfast_breaker_transitions_total",
            &[("target", target), ("to", "open")],
        );
        assert_eq!(trips, opened, "breaker trips of {target}");
    }
    let cost = report
        .pointer("/llm/cost_usd")
        .and_then(Value::as_f64)
        .unwrap();
    let metrics_cost = metric(&text, "holdfast_cost_usd_total", &[]);
    assert!(
        (cost - metrics_cost).abs() < 1e-9,
        "cost {cost} vs {metrics_cost}"
    );
    assert!(cost > 0.0, "the LLM calls cost something");
    let answered = int(&report, "/escalations/approved")
        + int(&report, "/escalations/edited")
        + int(&report, "/escalations/rejected");
    assert!(answered <= int(&report, "/escalations/opened"));
    let (least, most) = (
        int(&report, "/without_holdfast/tasks_lost_at_least"),
        int(&report, "/without_holdfast/tasks_lost_at_most"),
    );
    assert!(least <= most && most <= int(&report, "/tasks/completed"));

    assert!(int(&report, "/tasks/completed") > 0, "{report:#}\n{out}");
    assert!(int(&report, "/llm/retries") > 0, "{report:#}\n{out}");
    // The chain served calls past a failing target: after a failure (a fallback) or,
    // once its breaker or Retry-After hold was known, without trying it (routed around).
    // In a short run the breaker's short window can open before any call exhausts its
    // tries on the primary, so either may be all of it.
    assert!(
        int(&report, "/llm/fallbacks") + int(&report, "/llm/routed_around") > 0,
        "{report:#}\n{out}"
    );
    // The people in the loop were asked and answered.
    assert!(answered > 0, "{report:#}");
    // The editor's edits fed the article library, and the model calls used it.
    let examples = int(&report, "/few_shot/library_examples");
    assert_eq!(
        examples,
        count(
            &text,
            "holdfast_few_shot_library_examples",
            &[("status", "active")]
        )
    );
    assert_eq!(
        int(&report, "/few_shot/examples_used"),
        count(&text, "holdfast_few_shot_examples_used_total", &[])
    );
    if int(&report, "/escalations/edited") > 0 {
        assert!(examples > 0, "{report:#}");
    }
    assert!(out.contains("taught the article library"), "{out}");
    // The text report and the live view went to stdout; logs went to the log file.
    assert!(out.contains("without holdfast"), "{out}");
    assert!(out.contains("/dashboard"), "{out}");
    assert!(data.join("holdfast.log").exists());
    // The change to the cheaper model was stopped by the quality gate before any
    // production call reached it.
    let gate = &report["quality_gate"];
    assert_eq!(gate["refused"], true, "{gate:#}");
    // The cheaper target saw the suite's cases and nothing else: 12, and one more for
    // each correction from the inbox that reached the suite before the gate ran.
    let cases: u64 = gate["summary"]
        .as_str()
        .and_then(|s| s.split(" cases passed").next())
        .and_then(|s| s.rsplit('/').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_default();
    assert!(cases >= 12, "{gate:#}");
    assert_eq!(gate["cheap_requests"], cases, "{gate:#}");
    assert_eq!(gate["cheap_production_requests"], 0, "{gate:#}");
    assert!(
        gate["summary"]
            .as_str()
            .unwrap()
            .contains("suite demo-writer failed"),
        "{gate:#}"
    );
    assert!(out.contains("refused by the quality gate"), "{out}");
    let history = client
        .get(format!("http://{}/admin/config/history", demo.addr))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        history["data"][0]["gate"]["action"], "refused",
        "{history:#}"
    );
}

#[test]
fn demo_ends_by_itself_without_keep_running() {
    let dir = TempDir::new("demo-ends");
    let data = dir.path().join("data");
    let watch = Stopwatch::start();
    let mut child = Command::new(BIN)
        .args(["demo", "--duration", "3s", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&data)
        .env_remove("HOLDFAST_LOG")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // duration + grace (10 s) + 5 s.
    let limit = Duration::from_secs(3 + 10 + 5);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if watch.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`holdfast demo --duration 3s` still ran after {limit:?}");
        }
        std::thread::park_timeout(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(0), "exit status {status}");
}
