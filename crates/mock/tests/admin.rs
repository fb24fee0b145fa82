//! The admin API, and reproducibility from a seed.

mod common;

use std::sync::Arc;

use common::{Mock, request, start, start_with};
use holdfast_mock::Format;
use holdfast_policy::SystemClock;
use serde_json::{Value, json};

const MIXED: &str =
    "error_rates = { \"429\" = 0.2, \"500\" = 0.2 }\nquota = 0.1\ncontent_filter = 0.1";

#[allow(clippy::unwrap_used)] // a helper of tests, which panic on failure
async fn outcomes(mock: &Mock, n: usize) -> Vec<String> {
    for i in 0..n {
        mock.chat(&request(i % 3 == 0)).await.bytes().await.unwrap();
    }
    let log: Value = mock.get_json(&format!("/admin/requests?limit={n}")).await;
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), n);
    log.iter()
        .map(|r| r["outcome"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_same_seed_gives_the_same_outcomes() {
    let clock = || Arc::new(SystemClock::new());
    let a = start_with(Format::OpenAi, MIXED, 42, clock()).await;
    let b = start_with(Format::OpenAi, MIXED, 42, clock()).await;
    let c = start_with(Format::OpenAi, MIXED, 43, clock()).await;
    let first = outcomes(&a, 40).await;
    let other = outcomes(&c, 40).await;
    assert_eq!(first, outcomes(&b, 40).await);
    assert_ne!(first, other);
    assert!(first.iter().any(|o| o == "ok") && first.iter().any(|o| o == "rate_limited"));

    let reset = a.client.post(a.url("/admin/reset")).send().await.unwrap();
    let reset: Value = reset.json().await.unwrap();
    assert_eq!(reset["seed"], 42);
    assert_eq!(a.provider.stats().total, 0);
    assert_eq!(
        outcomes(&a, 40).await,
        first,
        "a reset replays the same sequence"
    );
    a.client
        .post(a.url("/admin/reset?seed=43"))
        .send()
        .await
        .unwrap();
    assert_eq!(outcomes(&a, 40).await, other, "a reset may re-seed");
    for mock in [a, b, c] {
        mock.stop().await;
    }
}

#[tokio::test]
async fn faults_change_at_run_time() {
    let mock = start(Format::Anthropic, "").await;
    assert_eq!(mock.chat(&request(false)).await.status(), 200);
    let faults = json!({"error_rates": {"529": 1.0}, "latency": "1ms"});
    let response = mock
        .client
        .post(mock.url("/admin/faults"))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(mock.chat(&request(false)).await.status(), 529);
    let current = mock.get_json("/admin/faults").await;
    assert_eq!(current["error_rates"]["529"], 1.0);
    assert_eq!(current["latency"], "1ms");
    assert_eq!(current["supports_prefill"], true, "defaults fill the rest");

    let toml = "error_rates = { \"500\" = 1.0 }";
    let response = mock
        .client
        .post(mock.url("/admin/faults"))
        .header("content-type", "application/toml")
        .body(toml)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(mock.chat(&request(false)).await.status(), 500);
    mock.stop().await;
}

#[tokio::test]
async fn bad_faults_are_refused_and_the_old_ones_stay() {
    let mock = start(Format::OpenAi, "error_rates = { \"503\" = 1.0 }").await;
    let before = mock.get_json("/admin/faults").await;
    let cases = [
        ("{not json", "JSON"),
        (r#"{"silent": 1.5}"#, "`silent`"),
        (
            r#"{"outages": [{"start": "5s", "end": "1s"}]}"#,
            "`outages[0].end`",
        ),
        (r#"{"latency": "-3ms"}"#, "`latency`"),
        (r#"{"error_rates": {"418": 0.1}}"#, "unknown field"),
        (
            r#"{"flapping": {"period_up": 1, "period_down": 1, "status": 200}}"#,
            "`flapping.status`",
        ),
    ];
    for (body, expected) in cases {
        let response = mock
            .client
            .post(mock.url("/admin/faults"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{body}: {message}");
    }
    assert_eq!(mock.get_json("/admin/faults").await, before);
    assert_eq!(mock.chat(&request(false)).await.status(), 503);
    mock.stop().await;
}

#[tokio::test]
async fn stats_and_the_request_log_tell_what_happened() {
    let mock = start(Format::OpenAi, "").await;
    for key in ["task-1:step-a", "task-1:step-a"] {
        let response = mock
            .client
            .post(mock.url("/v1/chat/completions"))
            .header("Idempotency-Key", key)
            .json(&request(false))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let (text, _) = common::read_stream(mock.chat(&request(true)).await).await;
    assert!(text.ends_with("data: [DONE]\n\n"));
    mock.set_faults("error_rates = { \"429\" = 1.0 }").await;
    mock.chat(&request(false)).await;

    let stats = mock.get_json("/admin/stats").await;
    assert_eq!(stats["total"], 4);
    assert_eq!(
        (stats["streaming"].as_u64(), stats["non_streaming"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(stats["by_outcome"], json!({"ok": 3, "rate_limited": 1}));
    assert_eq!(stats["by_fault"], json!({"none": 3, "status_429": 1}));
    assert_eq!(stats["prefill_continuations"], 0);

    let log = mock.get_json("/admin/requests?limit=3").await;
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(log[0]["seq"], 2);
    assert_eq!(log[0]["idempotency_key"], "task-1:step-a");
    assert_eq!(log[0]["path"], "/v1/chat/completions");
    assert_eq!(log[0]["model"], "mock-model");
    assert_eq!(
        (
            log[1]["stream"].as_bool(),
            log[1]["idempotency_key"].is_null()
        ),
        (Some(true), true)
    );
    assert_eq!(log[2]["outcome"], "rate_limited");
    let bad = mock
        .client
        .get(mock.url("/admin/requests?limit=many"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    mock.stop().await;
}
