//! Assistant prefill: continued when supported, refused with the real 400 otherwise.

mod common;

use common::{read_stream, request, sse_events, start, streamed_text};
use holdfast_mock::{DEFAULT_ANSWER, Format};
use serde_json::{Value, json};

fn with_prefill(stream: bool, prefill: &str) -> Value {
    let mut body = request(stream);
    body["messages"] = json!([
        {"role": "user", "content": "Say something scripted."},
        {"role": "assistant", "content": prefill}
    ]);
    body
}

const PREFILL: &str = "Holdfast mock provider here. This is a scri";

#[tokio::test]
async fn a_prefill_is_continued_whole_and_streamed() {
    for format in [Format::OpenAi, Format::Anthropic] {
        let mock = start(format, "").await;
        let body: Value = mock
            .chat(&with_prefill(false, PREFILL))
            .await
            .json()
            .await
            .unwrap();
        let text = match format {
            Format::OpenAi => body["choices"][0]["message"]["content"].as_str(),
            Format::Anthropic => body["content"][0]["text"].as_str(),
        };
        assert_eq!(
            format!("{PREFILL}{}", text.unwrap()),
            DEFAULT_ANSWER,
            "{format}"
        );
        let (stream, _) = read_stream(mock.chat(&with_prefill(true, PREFILL)).await).await;
        let streamed = streamed_text(&sse_events(&stream));
        assert!(streamed.starts_with("pted answer"), "{format}: {streamed}");
        assert_eq!(format!("{PREFILL}{streamed}"), DEFAULT_ANSWER);
        let stats = mock.provider.stats();
        assert_eq!(stats.prefill_continuations, 2);
        assert!(mock.provider.requests(1)[0].prefill_continued);
        mock.stop().await;
    }
}

#[tokio::test]
async fn a_prefill_that_does_not_match_gets_the_whole_answer() {
    let mock = start(Format::Anthropic, "").await;
    let body: Value = mock
        .chat(&with_prefill(false, "Something else"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["content"][0]["text"], DEFAULT_ANSWER);
    assert_eq!(mock.provider.stats().prefill_continuations, 0);
    mock.stop().await;
}

#[tokio::test]
async fn a_model_without_prefill_refuses_it() {
    for format in [Format::OpenAi, Format::Anthropic] {
        let mock = start(format, "supports_prefill = false").await;
        let response = mock.chat(&with_prefill(false, PREFILL)).await;
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(
            body["error"]["message"],
            "This model does not support assistant message prefill. The conversation must end \
with a user message."
        );
        assert_eq!(
            mock.chat(&request(false)).await.status(),
            200,
            "{format}: plain requests pass"
        );
        assert_eq!(mock.provider.stats().by_fault["prefill_unsupported"], 1);
        mock.stop().await;
    }
}

#[tokio::test]
async fn anthropic_refuses_a_prefill_ending_in_whitespace() {
    let mock = start(Format::Anthropic, "").await;
    let response = mock.chat(&with_prefill(false, "Holdfast mock ")).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "messages: final assistant content cannot end with trailing whitespace"
    );
    mock.stop().await;
}
