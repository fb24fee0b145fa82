//! Mid-stream recovery end to end: the real binary relaying the real mock provider's
//! streams when they go wrong after the first byte.
//!
//! Each test is one acceptance point of mid-stream recovery: a lone malformed event is
//! skipped and the answer arrives whole; a stream stalled past the target's idle timeout
//! is continued on a target that takes a prefill, fast enough that the client waits
//! for the idle timeout and one continuation, not for the stall. They assert what the
//! client read, what the mocks saw, and what the ledger and `/metrics` say, so that a
//! pass cannot come from the wrong mechanism.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use holdfast_mock::DEFAULT_ANSWER;
use serde_json::{Value, json};
use support::{
    ConfigBuilder, Gateway, Mock, Stopwatch, attempts, chat_body, field, finish_reasons, serial,
    sse_events, stream_text,
};

/// The idle timeout of the target that stalls.
const IDLE: Duration = Duration::from_millis(300);

/// Timeouts with [`IDLE`] as the idle one; the others far from it.
const STALL_TIMEOUTS: &str =
    r#"timeouts = { connect = "1s", first_byte = "2s", idle = "300ms", total = "20s" }"#;

/// A streamed request with usage, as `openai` clients send it.
fn stream_body(route: &str) -> Value {
    let mut body = chat_body(route, "hello", true);
    body["stream_options"] = json!({"include_usage": true});
    body
}

/// Streams `body` to its end: the status, the request id and the events.
async fn stream(gateway: &Gateway, body: &Value) -> (reqwest::header::HeaderMap, String) {
    let response = gateway.chat(body).send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{status}: {text}");
    (headers, text)
}

/// Asserts `text` is the whole scripted answer, finished once with `stop` and `[DONE]`,
/// with no error event.
fn assert_whole_answer(text: &str) {
    let events = sse_events(text);
    assert_eq!(stream_text(&events), DEFAULT_ANSWER, "{text}");
    assert_eq!(finish_reasons(&events), ["stop"], "{text}");
    assert_eq!(
        events.last().map(|e| e.data.as_str()),
        Some("[DONE]"),
        "{text}"
    );
    assert!(
        events
            .iter()
            .filter_map(|e| e.json())
            .all(|v| v.get("error").is_none()),
        "{text}"
    );
    let usage = events
        .iter()
        .filter_map(|e| e.json())
        .filter_map(|v| v.get("usage").cloned())
        .rfind(|u| !u.is_null())
        .expect("a usage chunk");
    assert!(usage["completion_tokens"].as_u64().unwrap() > 0, "{usage}");
}

/// `GET /metrics`.
async fn scrape(gateway: &Gateway) -> String {
    let response = gateway
        .client
        .get(gateway.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    response.text().await.unwrap()
}

/// The value of `name{labels}` in a scrape; 0 when absent (zero counters are left out).
fn sample(text: &str, name: &str, labels: &str) -> u64 {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_malformed_event_is_skipped_and_the_answer_arrives_whole() {
    let _serial = serial().await;
    let primary = Mock::start("openai", &["--malformed-event", "1"]);
    let fallback = Mock::start("openai", &[]);
    let config = ConfigBuilder::new()
        .target("primary", &primary, "")
        .target("fallback", &fallback, "supports_prefill = true")
        .route(
            "chain",
            &["primary", "fallback"],
            "mid_stream = \"continue\"",
        );
    let gateway = Gateway::start(&config);

    let (headers, text) = stream(&gateway, &stream_body("chain")).await;
    assert_whole_answer(&text);
    assert_eq!(primary.total().await, 1);
    assert_eq!(
        fallback.total().await,
        0,
        "a lone malformed event is skipped, not recovered from"
    );
    let ledger = gateway.ledger_of(&headers).await;
    assert_eq!(field(&ledger, "result"), "ok", "{ledger}");
    assert_eq!(attempts(&ledger).len(), 1, "{ledger}");
    let metrics = scrape(&gateway).await;
    assert!(
        !metrics.contains("holdfast_stream_breaks_total{"),
        "no break: {metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_past_the_idle_timeout_is_continued_within_idle_plus_one_continuation() {
    let _serial = serial().await;
    // The stall (5 s) is far past the bound asserted below: waiting it out would fail.
    let primary = Mock::start(
        "openai",
        &["--stall-stream", "1:3:5s", "--token-interval", "10ms"],
    );
    let fallback = Mock::start("openai", &["--token-interval", "10ms"]);
    let config = ConfigBuilder::new()
        .target("primary", &primary, STALL_TIMEOUTS)
        .target("fallback", &fallback, "supports_prefill = true")
        .route(
            "chain",
            &["primary", "fallback"],
            "mid_stream = \"continue\"",
        )
        .route("healthy", &["fallback"], "");
    let gateway = Gateway::start(&config);
    // One-time costs (connections, the store) are not the recovery's.
    gateway.warm_up("chain").await;
    // A whole healthy stream, measured here: a continuation sends less than that, so it
    // bounds "one continuation" on this machine, however loaded it is.
    let healthy = Stopwatch::start();
    let (_, whole) = stream(&gateway, &stream_body("healthy")).await;
    assert_whole_answer(&whole);
    let one_continuation = healthy.elapsed();
    primary.reset().await;
    fallback.reset().await;

    let clock = Stopwatch::start();
    let (headers, text) = stream(&gateway, &stream_body("chain")).await;
    let took = clock.elapsed();
    assert_whole_answer(&text);
    // The chunks before the stall, the idle timeout, then one continuation; the slack
    // covers the stall's three chunks and a debug build's scheduling noise.
    let bound = IDLE + one_continuation + Duration::from_millis(500);
    assert!(
        took < bound,
        "the whole stream took {took:?}; idle timeout + one continuation ({one_continuation:?}) is under {bound:?}"
    );
    assert_eq!(primary.total().await, 1);
    assert_eq!(fallback.total().await, 1, "one continuation");
    assert_eq!(
        fallback.stats().await["prefill_continuations"].as_u64(),
        Some(1),
        "continued with a prefill, not restarted"
    );
    let ledger = gateway.ledger_of(&headers).await;
    assert_eq!(field(&ledger, "result"), "ok", "{ledger}");
    let tried = attempts(&ledger);
    assert_eq!(tried.len(), 2, "{ledger}");
    assert_eq!(field(&tried[0], "target"), "primary", "{ledger}");
    assert_eq!(field(&tried[1], "target"), "fallback", "{ledger}");

    let metrics = scrape(&gateway).await;
    assert_eq!(
        sample(
            &metrics,
            "holdfast_stream_breaks_total",
            "target=\"primary\",outcome=\"timeout_idle\""
        ),
        1,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "holdfast_stream_recoveries_total",
            "route=\"chain\",path=\"continuation\",result=\"ok\""
        ),
        1,
        "{metrics}"
    );
}
