//! The OpenAI chat-completions wire format, healthy answers.

mod common;

use common::{read_stream, request, sse_events, start, streamed_text};
use holdfast_mock::{DEFAULT_ANSWER, Format};
use serde_json::{Value, json};

#[tokio::test]
async fn a_completion_has_the_real_shape() {
    let mock = start(Format::OpenAi, "").await;
    let response = mock.chat(&request(false)).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["model"], "mock-model");
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], DEFAULT_ANSWER);
    assert_eq!(choice["finish_reason"], "stop");
    let usage = &body["usage"];
    assert_eq!(usage["prompt_tokens"], 6); // 23 characters / 4, rounded up
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(
            usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
        )
    );
    let short = mock
        .client
        .post(mock.url("/chat/completions"))
        .json(&request(false))
        .send()
        .await
        .unwrap();
    assert_eq!(short.status(), 200);
    mock.stop().await;
}

#[tokio::test]
async fn a_stream_has_role_content_finish_usage_and_done() {
    let mock = start(Format::OpenAi, "").await;
    let mut body = request(true);
    body["stream_options"] = json!({"include_usage": true});
    let response = mock.chat(&body).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let (text, broken) = read_stream(response).await;
    assert!(!broken);
    let events = sse_events(&text);
    assert!(events.iter().all(|e| e.event.is_none()));
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| e.json())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(streamed_text(&events), DEFAULT_ANSWER);
    assert!(chunks.len() > 10, "streamed word by word");
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert!(finish["usage"].is_null());
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["completion_tokens"].as_u64().unwrap() > 30);
    mock.stop().await;
}

#[tokio::test]
async fn a_stream_without_include_usage_has_no_usage_chunk() {
    let mock = start(Format::OpenAi, "").await;
    let (text, _) = read_stream(mock.chat(&request(true)).await).await;
    let events = sse_events(&text);
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| e.json())
        .collect();
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    mock.stop().await;
}

#[tokio::test]
async fn max_tokens_ends_with_length() {
    let mock = start(Format::OpenAi, "").await;
    let mut body = request(false);
    body["max_completion_tokens"] = json!(8);
    let body: Value = mock.chat(&body).await.json().await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert!(body["usage"]["completion_tokens"].as_u64().unwrap() <= 8);
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(DEFAULT_ANSWER.starts_with(content) && content.len() < DEFAULT_ANSWER.len());
    mock.stop().await;
}

#[tokio::test]
async fn json_mode_answers_the_configured_object() {
    let mock = start(Format::OpenAi, "json_answer = { city = \"Paris\" }").await;
    let mut body = request(false);
    body["response_format"] =
        json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {}}});
    let body: Value = mock.chat(&body).await.json().await.unwrap();
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(content).unwrap(),
        json!({"city": "Paris"})
    );
    mock.stop().await;
}

fn with_tools(stream: bool) -> Value {
    let mut body = request(stream);
    body["tools"] = json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "other", "parameters": {"type": "object"}}}
    ]);
    body
}

#[tokio::test]
async fn tools_are_called_whole_and_streamed() {
    let mock = start(
        Format::OpenAi,
        "tool_arguments = { city = \"Paris\", unit = \"celsius\" }",
    )
    .await;
    let body: Value = mock.chat(&with_tools(false)).await.json().await.unwrap();
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert!(choice["message"]["content"].is_null());
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(
        (call["type"].as_str(), call["function"]["name"].as_str()),
        (Some("function"), Some("get_weather"))
    );
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"city": "Paris", "unit": "celsius"}));

    let (text, _) = read_stream(mock.chat(&with_tools(true)).await).await;
    let events = sse_events(&text);
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| e.json())
        .collect();
    let first = &chunks[0]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(first["function"]["name"], "get_weather");
    assert!(first["id"].as_str().unwrap().starts_with("call_"));
    let streamed: String = chunks[1..]
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&streamed).unwrap(), arguments);
    assert!(chunks.len() > 4, "arguments arrive in several deltas");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
    mock.stop().await;
}

#[tokio::test]
async fn a_tool_result_gets_a_text_answer() {
    let mock = start(Format::OpenAi, "").await;
    let mut body = with_tools(false);
    body["messages"] = json!([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
    ]);
    let body: Value = mock.chat(&body).await.json().await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["choices"][0]["message"]["content"], DEFAULT_ANSWER);
    mock.stop().await;
}

#[tokio::test]
async fn anthropic_paths_are_not_found_and_models_are_listed() {
    let mock = start(Format::OpenAi, "").await;
    let response = mock
        .client
        .post(mock.url("/v1/messages"))
        .json(&request(false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["message"], "Invalid URL (POST /v1/messages)");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let models = mock.get_json("/v1/models").await;
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["object"], "model");
    mock.stop().await;
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_bad_request() {
    let mock = start(Format::OpenAi, "").await;
    let response = mock
        .client
        .post(mock.url("/v1/chat/completions"))
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("could not parse the JSON body")
    );
    assert_eq!(mock.provider.stats().by_outcome["bad_request"], 1);
    mock.stop().await;
}
