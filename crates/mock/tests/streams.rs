//! Faults that strike a stream or the wait before it: cut, stall, in-band errors,
//! malformed events, silence.

mod common;

use std::time::Duration;

use common::{Event, Mock, read_stream, request, sse_events, start};
use holdfast_mock::{DEFAULT_ANSWER, Format};
use holdfast_policy::{Clock, SystemClock};
use serde_json::Value;

/// Content deltas (text or tool arguments) in a stream.
fn content_deltas(events: &[Event]) -> usize {
    events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
        .filter(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
                || v["type"] == "content_block_delta"
        })
        .count()
}

fn ends_properly(events: &[Event]) -> bool {
    events
        .last()
        .is_some_and(|e| e.data == "[DONE]" || e.event.as_deref() == Some("message_stop"))
}

async fn stream(mock: &Mock) -> (Vec<Event>, bool) {
    let response = mock.chat(&request(true)).await;
    assert_eq!(response.status(), 200);
    let (text, broken) = read_stream(response).await;
    (sse_events(&text), broken)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_stream_drops_the_connection_after_some_chunks() {
    for format in [Format::OpenAi, Format::Anthropic] {
        let mock = start(format, "cut_stream = { rate = 1.0, after_chunks = 2 }").await;
        let (events, broken) = stream(&mock).await;
        assert!(
            broken,
            "{format}: the body ends in an error, not a clean end"
        );
        assert_eq!(content_deltas(&events), 2);
        assert!(!ends_properly(&events));
        assert_eq!(mock.provider.stats().by_outcome["stream_interrupted"], 1);
        let whole = mock.chat(&request(false)).await;
        assert_eq!(
            whole.status(),
            200,
            "stream faults spare non-streaming requests"
        );
        mock.stop().await;
    }
}

#[tokio::test]
async fn an_inband_error_follows_some_chunks() {
    let openai = start(
        Format::OpenAi,
        "inband_error = { rate = 1.0, after_chunks = 3 }",
    )
    .await;
    let (events, broken) = stream(&openai).await;
    assert!(!broken);
    assert_eq!(content_deltas(&events), 3);
    let last = events.last().unwrap().json();
    assert_eq!(last["error"]["type"], "server_error");
    assert!(!ends_properly(&events));
    let anthropic = start(
        Format::Anthropic,
        "inband_error = { rate = 1.0, after_chunks = 0 }",
    )
    .await;
    let (events, _) = stream(&anthropic).await;
    assert_eq!(content_deltas(&events), 0);
    let last = events.last().unwrap();
    assert_eq!(last.event.as_deref(), Some("error"));
    assert_eq!(last.json()["error"]["type"], "overloaded_error");
    openai.stop().await;
    anthropic.stop().await;
}

#[tokio::test]
async fn a_malformed_event_sits_among_valid_ones() {
    for format in [Format::OpenAi, Format::Anthropic] {
        let mock = start(format, "malformed_event = 1.0").await;
        let (events, broken) = stream(&mock).await;
        assert!(!broken && ends_properly(&events));
        let bad: Vec<&Event> = events
            .iter()
            .filter(|e| e.data != "[DONE]" && serde_json::from_str::<Value>(&e.data).is_err())
            .collect();
        assert_eq!(bad.len(), 1, "{format}: exactly one unparseable data line");
        assert_eq!(common::streamed_text(&events), DEFAULT_ANSWER);
        assert_eq!(mock.provider.stats().by_outcome["invalid_output"], 1);
        mock.stop().await;
    }
}

#[tokio::test]
async fn a_stalled_stream_goes_quiet_then_finishes() {
    let mock = start(
        Format::Anthropic,
        "stall_stream = { rate = 1.0, after_chunks = 1, duration = \"120ms\" }",
    )
    .await;
    let clock = SystemClock::new();
    let (events, broken) = stream(&mock).await;
    assert!(clock.now().since_origin() >= Duration::from_millis(120));
    assert!(!broken && ends_properly(&events));
    assert_eq!(mock.provider.stats().by_outcome["timeout_idle"], 1);
    mock.stop().await;
}

#[tokio::test]
async fn token_interval_paces_the_chunks() {
    let mock = start(
        Format::OpenAi,
        "answer = \"one two three four five\"\ntoken_interval = \"25ms\"",
    )
    .await;
    let clock = SystemClock::new();
    let (events, _) = stream(&mock).await;
    assert_eq!(content_deltas(&events), 5);
    assert!(clock.now().since_origin() >= Duration::from_millis(125));
    mock.stop().await;
}

#[tokio::test]
async fn a_stall_before_the_first_byte_then_answers() {
    let mock = start(
        Format::OpenAi,
        "stall_before_first_byte = { rate = 1.0, duration = \"100ms\" }",
    )
    .await;
    let clock = SystemClock::new();
    assert_eq!(mock.chat(&request(false)).await.status(), 200);
    assert!(clock.now().since_origin() >= Duration::from_millis(100));
    assert_eq!(mock.provider.stats().by_outcome["timeout_first_byte"], 1);
    mock.stop().await;
}

#[tokio::test]
async fn a_silent_provider_never_answers_and_still_shuts_down() {
    let mock = start(Format::OpenAi, "silent = 1.0").await;
    let sent = mock
        .client
        .post(mock.url("/v1/chat/completions"))
        .header("idempotency-key", "step-1")
        .timeout(Duration::from_millis(150))
        .json(&request(false))
        .send()
        .await;
    assert!(sent.unwrap_err().is_timeout());
    let held = tokio::spawn({
        let client = mock.client.clone();
        let url = mock.url("/v1/chat/completions");
        async move { client.post(url).json(&request(true)).send().await }
    });
    tokio::time::timeout(Duration::from_secs(2), async {
        while mock.provider.stats().total < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    let log = mock.provider.requests(10);
    assert_eq!(log[0].outcome, "timeout_first_byte");
    assert_eq!(log[0].idempotency_key.as_deref(), Some("step-1"));
    mock.stop().await;
    let released = held.await.unwrap();
    assert!(released.is_err() || released.unwrap().status() == 503);
}
