//! Streams in both dialects: whole, failed over before the commit point, and broken
//! after it (an explicit error, never a silent truncation).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use holdfast_mock::DEFAULT_ANSWER;
use serde_json::{Value, json};
use support::{Gw, Mock, anthropic_provider, pair, request, sse_events, streamed_text, target};

#[tokio::test]
async fn an_openai_stream_arrives_whole_and_ends_with_done() {
    let (gw, _a, _b) = pair("", "", "").await;
    let response = gw.chat(&request(true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["x-holdfast-target"], "a");
    let headers = response.headers().clone();
    let events = sse_events(&response.text().await.unwrap());
    assert_eq!(events.last().unwrap().data, "[DONE]");
    assert_eq!(streamed_text(&events), DEFAULT_ANSWER);
    assert!(
        events
            .iter()
            .all(|e| e.data == "[DONE]" || e.json().get("usage").is_none()),
        "no usage unless asked"
    );
    let ledger = gw.ledger(&headers).await;
    assert_eq!(ledger["result"], "ok");
    assert!(
        ledger["attempts"][0]["output_tokens"].as_u64().unwrap() > 0,
        "{ledger}"
    );
    assert!(ledger["cost_usd"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn include_usage_keeps_the_usage_chunk() {
    let (gw, _a, _b) = pair("", "", "").await;
    let mut body = request(true);
    body["stream_options"] = json!({"include_usage": true});
    let text = gw.chat(&body).await.text().await.unwrap();
    let events = sse_events(&text);
    let usage = events
        .iter()
        .filter(|e| e.data != "[DONE]")
        .find_map(|e| e.json().get("usage").cloned());
    assert!(usage.unwrap()["completion_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn a_stream_that_fails_before_its_first_event_falls_back() {
    let (gw, a, b) = pair(
        "error_rates = { \"500\" = 1.0 }",
        "",
        "[policies.default]\nretry = { max_attempts = 1 }\n",
    )
    .await;
    let response = gw.chat(&request(true)).await;
    assert_eq!(response.headers()["x-holdfast-target"], "b");
    let events = sse_events(&response.text().await.unwrap());
    assert_eq!(streamed_text(&events), DEFAULT_ANSWER);
    assert_eq!((a.calls(), b.calls()), (1, 1));
}

#[tokio::test]
async fn a_stream_cut_after_the_first_byte_ends_with_an_explicit_error() {
    let (gw, _a, b) = pair(
        "cut_stream = { rate = 1.0, after_chunks = 2 }",
        "",
        "mid_stream = \"error\"\n",
    )
    .await;
    let response = gw.chat(&request(true)).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let events = sse_events(&response.text().await.unwrap());
    assert!(
        events.iter().all(|e| e.data != "[DONE]"),
        "a broken stream must not claim success"
    );
    let finish = events.iter().rev().find_map(|e| {
        e.json()["choices"][0]["finish_reason"]
            .as_str()
            .map(str::to_owned)
    });
    assert_eq!(finish.as_deref(), Some("error"));
    let last = events.last().unwrap().json();
    assert_eq!(last["error"]["code"], "stream_interrupted");
    assert!(
        !streamed_text(&events).is_empty(),
        "the client got part of the answer first"
    );
    assert_eq!(b.calls(), 0, "no silent restart elsewhere");
    let ledger = gw.ledger(&headers).await;
    assert_eq!(ledger["result"], "stream_error");
    assert!(
        ledger["stream_error"]
            .as_str()
            .unwrap()
            .starts_with("stream_interrupted")
    );
}

async fn anthropic_gateway(faults: &str) -> (Gw, Mock) {
    let mock = Mock::anthropic(faults).await;
    let toml = format!(
        "{}{}[routes.claude]\ntargets = [\"c\"]\n",
        anthropic_provider("anth", &mock),
        target("c", "anth", 200_000)
    );
    (Gw::start(&toml).await, mock)
}

fn messages_request(stream: bool) -> Value {
    json!({"model": "claude", "max_tokens": 200, "stream": stream, "messages": [{"role": "user", "content": "Hello"}]})
}

#[tokio::test]
async fn an_anthropic_client_gets_anthropic_answers_and_streams() {
    let (gw, _mock) = anthropic_gateway("").await;
    let whole: Value = gw
        .post("/v1/messages", &messages_request(false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(whole["type"], "message");
    assert_eq!(whole["content"][0]["text"], DEFAULT_ANSWER);
    let response = gw.post("/v1/messages", &messages_request(true)).await;
    assert_eq!(response.status(), 200);
    let events = sse_events(&response.text().await.unwrap());
    let names: Vec<_> = events.iter().filter_map(|e| e.event.clone()).collect();
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));
    assert_eq!(streamed_text(&events), DEFAULT_ANSWER);
}

#[tokio::test]
async fn an_openai_client_streams_from_an_anthropic_target() {
    let (gw, _mock) = anthropic_gateway("").await;
    let mut body = request(true);
    body["model"] = json!("claude");
    let events = sse_events(&gw.chat(&body).await.text().await.unwrap());
    assert_eq!(streamed_text(&events), DEFAULT_ANSWER);
    assert_eq!(events.last().unwrap().data, "[DONE]");
}

#[tokio::test]
async fn a_broken_anthropic_stream_ends_with_an_error_event() {
    let (gw, _mock) = anthropic_gateway("cut_stream = { rate = 1.0, after_chunks = 2 }").await;
    let response = gw.post("/v1/messages", &messages_request(true)).await;
    let events = sse_events(&response.text().await.unwrap());
    let last = events.last().unwrap();
    assert_eq!(last.event.as_deref(), Some("error"));
    assert_eq!(last.json()["type"], "error");
    assert!(
        events
            .iter()
            .all(|e| e.event.as_deref() != Some("message_stop"))
    );
}

/// Regression: the pipeline records a stream's attempt as a success at its commit
/// point, so a target whose every stream broke after the first byte kept its breaker
/// closed and kept receiving traffic.
#[tokio::test]
async fn a_target_whose_streams_keep_breaking_trips_its_breaker() {
    let (gw, _a, b) = pair(
        "cut_stream = { rate = 1.0, after_chunks = 2 }",
        "",
        // No active probe: its one-token completion is too short for the cut, so it
        // would close the breaker between the check below and the next request.
        "mid_stream = \"error\"\n[policies.default]\nbreaker = { min_calls = 4 }\n\
         [targets.a.probe]\nenabled = false\n",
    )
    .await;
    for _ in 0..4 {
        let response = gw.chat(&request(true)).await;
        let events = sse_events(&response.text().await.unwrap());
        assert!(events.iter().all(|e| e.data != "[DONE]"));
    }
    let targets = gw.get_json("/v1/holdfast/targets").await;
    let a = targets["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "a")
        .unwrap()
        .clone();
    assert_eq!(a["breaker"], "open", "{targets}");
    let response = gw.chat(&request(true)).await;
    assert_eq!(response.headers()["x-holdfast-target"], "b");
    let events = sse_events(&response.text().await.unwrap());
    assert_eq!(events.last().unwrap().data, "[DONE]");
    assert_eq!(b.calls(), 1);
}
