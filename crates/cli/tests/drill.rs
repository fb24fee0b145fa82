//! `holdfast drill` against the real binary: a failover drill that holds (the fallback
//! serves everything while the primary is drained, and the primary takes its traffic
//! back once restored), one that fails (the fallback is down too: exit 1, and the
//! primary is restored all the same), and one that cannot run (exit 2, nothing
//! drained).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use support::{ConfigBuilder, Gateway, Mock, run};

fn gateway(primary: &Mock, fallback: &Mock) -> Gateway {
    let config = ConfigBuilder::new()
        .target("primary", primary, "")
        .target("fallback", fallback, "")
        .route("smart", &["primary", "fallback"], "");
    Gateway::start(&config)
}

fn drill(gateway: &Gateway, extra: &[&str]) -> (Option<i32>, String, String) {
    let base = [
        "drill",
        "--route",
        "smart",
        "--target",
        "primary",
        "--baseline",
        "500ms",
        "--for",
        "1500ms",
        "--recover",
        "3s",
        "--rate",
        "20",
        "--server",
    ];
    run(&[&base[..], &[gateway.base.as_str()], extra].concat())
}

async fn drained_remaining_ms(gateway: &Gateway) -> f64 {
    let targets = gateway.get_json("/v1/holdfast/targets").await;
    targets["data"][0]["drained_remaining_ms"].as_f64().unwrap()
}

#[tokio::test]
async fn a_drill_with_a_healthy_fallback_passes_and_the_primary_comes_back() {
    let (primary, fallback) = (Mock::start("openai", &[]), Mock::start("openai", &[]));
    let gateway = gateway(&primary, &fallback);
    let (code, out, err) = drill(&gateway, &["--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["passed"], true, "{report}");
    let phase = |name: &str| {
        report["phases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["phase"] == name)
            .unwrap()
            .clone()
    };
    let (baseline, drained) = (phase("baseline"), phase("drained"));
    assert!(
        baseline["served_by"]["primary"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert!(drained["requests"].as_u64().unwrap() >= 20, "{report}");
    assert_eq!(drained["succeeded"], drained["requests"], "{report}");
    assert_eq!(drained["served_by"]["primary"], Value::Null, "{report}");
    assert!(
        report["returned_after_ms"].as_f64().unwrap() < 3000.0,
        "{report}"
    );
    assert_eq!(drained_remaining_ms(&gateway).await, 0.0, "restored");
}

#[tokio::test]
async fn a_drill_whose_fallback_is_down_fails_and_still_restores_the_primary() {
    let primary = Mock::start("openai", &[]);
    let fallback = Mock::start("openai", &["--rate-503", "1.0"]);
    let gateway = gateway(&primary, &fallback);
    let (code, out, err) = drill(&gateway, &[]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("verdict: FAILED"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("FAILED") && l.contains("while primary was drained")),
        "{out}"
    );
    assert_eq!(drained_remaining_ms(&gateway).await, 0.0, "restored");
}

#[tokio::test]
async fn a_drill_that_cannot_run_says_why_and_drains_nothing() {
    let (primary, fallback) = (Mock::start("openai", &[]), Mock::start("openai", &[]));
    let gateway = gateway(&primary, &fallback);
    let (code, _, err) = run(&[
        "drill",
        "--route",
        "smart",
        "--target",
        "nope",
        "--server",
        &gateway.base,
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("no target \"nope\"") && err.contains("primary"),
        "{err}"
    );
    let (code, _, err) = run(&[
        "drill",
        "--route",
        "smart",
        "--target",
        "primary",
        "--rate",
        "0",
        "--server",
        &gateway.base,
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("rate"), "{err}");
    assert_eq!(drained_remaining_ms(&gateway).await, 0.0);
}
