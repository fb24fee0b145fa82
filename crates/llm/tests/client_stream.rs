//! `ProviderClient::stream` against a scripted server on a real socket.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is a test failure"
)]

mod support;

use holdfast_llm::openai::{ChatChunk, FinishReason};
use holdfast_llm::{CallOptions, ChunkStream, Format, ProviderError};
use holdfast_policy::{Outcome, TimeoutKind};
use serde_json::json;
use support::*;

fn openai_chunk(delta: serde_json::Value, finish: Option<&str>) -> serde_json::Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}], "usage": null})
}

fn usage_chunk() -> serde_json::Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
        "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}})
}

fn openai_stream_start() -> Vec<Step> {
    vec![
        sse_head(),
        chunk(": keep-alive\n\n"),
        data(&openai_chunk(
            json!({"role": "assistant", "content": ""}),
            None,
        )),
        data(&openai_chunk(json!({"content": "Hel"}), None)),
        data(&openai_chunk(json!({"content": "lo"}), None)),
    ]
}

async fn open(steps: Vec<Step>, format: Format) -> Result<ChunkStream, ProviderError> {
    let server = serve(vec![Reply(steps)]).await;
    client()
        .stream(
            &endpoint(&server, format),
            &chat_request(true),
            &CallOptions::default(),
        )
        .await
}

/// Drains a stream: its chunks, and the error that ended it, if any.
async fn drain(mut stream: ChunkStream) -> (Vec<ChatChunk>, Option<ProviderError>, ChunkStream) {
    let mut chunks = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => chunks.push(chunk),
            Err(err) => {
                assert!(
                    stream.next().await.is_none(),
                    "a stream ends after its error"
                );
                return (chunks, Some(err), stream);
            }
        }
    }
    (chunks, None, stream)
}

fn text(chunks: &[ChatChunk]) -> String {
    chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.content.clone())
        .collect()
}

#[tokio::test]
async fn an_openai_stream_arrives_whole_with_usage_forced_on() {
    let mut steps = openai_stream_start();
    steps.extend([
        data(&openai_chunk(json!({}), Some("stop"))),
        data(&usage_chunk()),
        chunk("data: [DONE]\n\n"),
        end(),
    ]);
    let server = serve(vec![Reply(steps)]).await;
    let stream = client()
        .stream(
            &endpoint(&server, Format::OpenAi),
            &chat_request(true),
            &CallOptions::default(),
        )
        .await
        .unwrap();
    let (chunks, err, stream) = drain(stream).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(text(&chunks), "Hello");
    assert_eq!(stream.usage(), Some(holdfast_llm::Usage::new(9, 2)));
    assert_eq!(stream.finish_reason(), Some(FinishReason::Stop));
    assert_eq!(stream.malformed_skipped(), 0);
    assert!(stream.first_event_after().is_some());
    let sent = server.request(0);
    assert_eq!(sent.body["stream"], true);
    assert_eq!(sent.body["stream_options"]["include_usage"], true);
    assert_eq!(sent.header("accept").as_deref(), Some("text/event-stream"));
}

#[tokio::test]
async fn an_anthropic_stream_with_a_tool_call_is_translated() {
    let steps = vec![
        sse_head(),
        event(
            &json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
            "content": [], "model": "claude-sonnet-4-5", "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 20, "output_tokens": 1}}}),
        ),
        event(&json!({"type": "ping"})),
        event(
            &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}}),
        ),
        event(
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"city\": \"Paris\"}"}}),
        ),
        event(&json!({"type": "content_block_stop", "index": 0})),
        event(
            &json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 15}}),
        ),
        event(&json!({"type": "message_stop"})),
        end(),
    ];
    let (chunks, err, stream) = drain(open(steps, Format::Anthropic).await.unwrap()).await;
    assert!(err.is_none(), "{err:?}");
    let arguments: String = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .flat_map(|c| c.delta.tool_calls.iter().flatten())
        .filter_map(|t| t.function.as_ref()?.arguments.clone())
        .collect();
    assert_eq!(arguments, "{\"city\": \"Paris\"}");
    assert_eq!(stream.finish_reason(), Some(FinishReason::ToolCalls));
    assert_eq!(stream.usage(), Some(holdfast_llm::Usage::new(20, 15)));
}

#[tokio::test]
async fn a_stream_cut_in_the_middle_is_interrupted_after_what_arrived() {
    let (chunks, err, _) = drain(open(openai_stream_start(), Format::OpenAi).await.unwrap()).await;
    assert_eq!(text(&chunks), "Hello");
    assert_eq!(err.unwrap().outcome, Outcome::StreamInterrupted);

    // A clean end of body without [DONE] and without a finish reason: interrupted too.
    let mut steps = openai_stream_start();
    steps.push(end());
    let (_, err, _) = drain(open(steps, Format::OpenAi).await.unwrap()).await;
    assert_eq!(err.unwrap().outcome, Outcome::StreamInterrupted);
}

#[tokio::test]
async fn a_stream_that_ends_after_its_finish_reason_is_finalised() {
    let mut steps = openai_stream_start();
    steps.extend([data(&openai_chunk(json!({}), Some("length"))), end()]);
    let (chunks, err, stream) = drain(open(steps, Format::OpenAi).await.unwrap()).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(text(&chunks), "Hello");
    assert_eq!(stream.finish_reason(), Some(FinishReason::Length));
}

#[tokio::test]
async fn an_error_as_first_event_fails_the_call_before_anything_is_returned() {
    let steps = vec![
        sse_head(),
        event(
            &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ),
        end(),
    ];
    let err = open(steps, Format::Anthropic).await.unwrap_err();
    assert_eq!(err.outcome, Outcome::Overloaded { retry_after: None });
    assert_eq!(err.status, Some(200));
}

#[tokio::test]
async fn an_in_band_error_mid_stream_is_classified() {
    let mut steps = openai_stream_start();
    steps.extend([
        data(&json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error", "param": null, "code": null}})),
        end(),
    ]);
    let (chunks, err, _) = drain(open(steps, Format::OpenAi).await.unwrap()).await;
    assert_eq!(text(&chunks), "Hello");
    assert_eq!(err.unwrap().outcome, Outcome::ServerError);
}

#[tokio::test]
async fn stalls_time_out_by_kind() {
    let err = open(vec![pause(2_000)], Format::OpenAi).await.unwrap_err();
    assert_eq!(err.outcome, Outcome::Timeout(TimeoutKind::FirstByte));

    // Headers arrive, the first event does not: still the first-byte timeout.
    let err = open(vec![sse_head(), pause(2_000)], Format::OpenAi)
        .await
        .unwrap_err();
    assert_eq!(err.outcome, Outcome::Timeout(TimeoutKind::FirstByte));

    let mut steps = openai_stream_start();
    steps.push(pause(2_000));
    let (chunks, err, _) = drain(open(steps, Format::OpenAi).await.unwrap()).await;
    assert_eq!(text(&chunks), "Hello");
    assert_eq!(err.unwrap().outcome, Outcome::Timeout(TimeoutKind::Idle));
}

#[tokio::test]
async fn a_lone_malformed_event_is_skipped_and_a_run_of_them_breaks_the_stream() {
    let mut steps = openai_stream_start();
    steps.extend([
        chunk("data: {not json\n\n"),
        data(&openai_chunk(json!({"content": "!"}), Some("stop"))),
        chunk("data: [DONE]\n\n"),
        end(),
    ]);
    let (chunks, err, stream) = drain(open(steps, Format::OpenAi).await.unwrap()).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(text(&chunks), "Hello!");
    assert_eq!(stream.malformed_skipped(), 1);

    let mut steps = openai_stream_start();
    steps.extend([chunk("data: {x\n\ndata: {y\n\ndata: {z\n\n"), end()]);
    let (_, err, stream) = drain(open(steps, Format::OpenAi).await.unwrap()).await;
    assert_eq!(err.unwrap().outcome, Outcome::StreamInterrupted);
    assert_eq!(stream.malformed_skipped(), 3);
}

#[tokio::test]
async fn a_rate_limited_stream_request_is_classified_before_streaming() {
    let body =
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}});
    let err = open(
        json(429, &[("retry-after", "2")], &body).0,
        Format::Anthropic,
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.outcome,
        Outcome::RateLimited {
            retry_after: Some(std::time::Duration::from_secs(2))
        }
    );
}

#[tokio::test]
async fn into_stream_yields_the_same_items() {
    use futures_util::StreamExt;
    let mut steps = openai_stream_start();
    steps.extend([
        data(&openai_chunk(json!({}), Some("stop"))),
        chunk("data: [DONE]\n\n"),
        end(),
    ]);
    let items: Vec<_> = open(steps, Format::OpenAi)
        .await
        .unwrap()
        .into_stream()
        .collect()
        .await;
    assert_eq!(items.len(), 4);
    assert!(items.iter().all(Result::is_ok));
}
