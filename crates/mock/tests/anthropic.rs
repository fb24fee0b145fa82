//! The Anthropic messages wire format, healthy answers.

mod common;

use common::{read_stream, request, sse_events, start, streamed_text};
use holdfast_mock::{DEFAULT_ANSWER, Format};
use serde_json::{Value, json};

#[tokio::test]
async fn a_message_has_the_real_shape() {
    let mock = start(Format::Anthropic, "").await;
    let response = mock.chat(&request(false)).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("request-id"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (body["type"].as_str(), body["role"].as_str()),
        (Some("message"), Some("assistant"))
    );
    assert!(body["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(
        body["content"],
        json!([{"type": "text", "text": DEFAULT_ANSWER}])
    );
    assert_eq!(body["stop_reason"], "end_turn");
    assert!(body["stop_sequence"].is_null());
    assert_eq!(body["usage"]["input_tokens"], 6);
    assert!(body["usage"]["output_tokens"].as_u64().unwrap() > 30);
    mock.stop().await;
}

#[tokio::test]
async fn a_stream_has_the_real_event_sequence() {
    let mock = start(Format::Anthropic, "").await;
    let (text, broken) = read_stream(mock.chat(&request(true)).await).await;
    assert!(!broken);
    let events = sse_events(&text);
    let names: Vec<&str> = events.iter().map(|e| e.event.as_deref().unwrap()).collect();
    assert_eq!(
        &names[..3],
        ["message_start", "content_block_start", "ping"]
    );
    assert_eq!(
        &names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    assert!(
        names[3..names.len() - 3]
            .iter()
            .all(|n| *n == "content_block_delta")
    );
    for event in &events {
        assert_eq!(
            event.json()["type"].as_str(),
            event.event.as_deref(),
            "data type matches event"
        );
    }
    assert_eq!(events[0].json()["message"]["usage"]["input_tokens"], 6);
    assert_eq!(streamed_text(&events), DEFAULT_ANSWER);
    let delta = events[events.len() - 2].json();
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert!(delta["usage"]["output_tokens"].as_u64().unwrap() > 30);
    mock.stop().await;
}

#[tokio::test]
async fn max_tokens_stops_with_max_tokens() {
    let mock = start(Format::Anthropic, "").await;
    let mut body = request(false);
    body["max_tokens"] = json!(5);
    let body: Value = mock.chat(&body).await.json().await.unwrap();
    assert_eq!(body["stop_reason"], "max_tokens");
    assert!(body["usage"]["output_tokens"].as_u64().unwrap() <= 5);
    mock.stop().await;
}

fn with_tools(stream: bool) -> Value {
    let mut body = request(stream);
    body["tools"] = json!([{"name": "get_weather", "input_schema": {"type": "object"}}]);
    body
}

#[tokio::test]
async fn tools_are_used_whole_and_streamed() {
    let mock = start(
        Format::Anthropic,
        "tool_arguments = { city = \"Paris\", unit = \"celsius\" }",
    )
    .await;
    let body: Value = mock.chat(&with_tools(false)).await.json().await.unwrap();
    assert_eq!(body["stop_reason"], "tool_use");
    let block = &body["content"][0];
    assert_eq!(
        (block["type"].as_str(), block["name"].as_str()),
        (Some("tool_use"), Some("get_weather"))
    );
    assert!(block["id"].as_str().unwrap().starts_with("toolu_"));
    assert_eq!(block["input"], json!({"city": "Paris", "unit": "celsius"}));

    let (text, _) = read_stream(mock.chat(&with_tools(true)).await).await;
    let events = sse_events(&text);
    let start_block = events[1].json();
    assert_eq!(start_block["content_block"]["type"], "tool_use");
    assert_eq!(start_block["content_block"]["input"], json!({}));
    let partial: String = events
        .iter()
        .map(|e| e.json())
        .filter(|v| v["delta"]["type"] == "input_json_delta")
        .map(|v| v["delta"]["partial_json"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&partial).unwrap(),
        block["input"]
    );
    assert_eq!(
        events[events.len() - 2].json()["delta"]["stop_reason"],
        "tool_use"
    );
    mock.stop().await;
}

#[tokio::test]
async fn a_tool_result_gets_a_text_answer() {
    let mock = start(Format::Anthropic, "").await;
    let mut body = with_tools(false);
    body["messages"] = json!([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]}
    ]);
    let body: Value = mock.chat(&body).await.json().await.unwrap();
    assert_eq!(body["stop_reason"], "end_turn");
    mock.stop().await;
}

#[tokio::test]
async fn openai_paths_are_not_found() {
    let mock = start(Format::Anthropic, "").await;
    let response = mock
        .client
        .post(mock.url("/v1/chat/completions"))
        .json(&request(false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"type": "error", "error": {"type": "not_found_error", "message": "Not Found"}})
    );
    let models = mock.get_json("/v1/models").await;
    assert_eq!(models["data"][0]["type"], "model");
    mock.stop().await;
}

#[tokio::test]
async fn a_missing_messages_field_is_a_bad_request() {
    let mock = start(Format::Anthropic, "").await;
    let response = mock
        .chat(&json!({"model": "claude", "max_tokens": 10}))
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["message"], "messages: Field required");
    mock.stop().await;
}
