//! `ProviderClient::complete` against a scripted server on a real socket.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is a test failure"
)]

mod support;

use std::time::Duration;

use holdfast_llm::{CallOptions, Format};
use holdfast_policy::{Outcome, TimeoutKind};
use serde_json::json;
use support::*;

fn openai_answer() -> serde_json::Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000u64, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"},
            "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
    })
}

#[tokio::test]
async fn an_openai_answer_arrives_with_usage_and_the_request_is_well_formed() {
    let server = serve(vec![json(200, &[], &openai_answer())]).await;
    let options = CallOptions {
        idempotency_key: Some("task-1:step-a".into()),
        headers: vec![("x-trace".into(), "abc".into())],
        ..CallOptions::default()
    };
    let done = client()
        .complete(
            &endpoint(&server, Format::OpenAi),
            &chat_request(true),
            &options,
        )
        .await
        .unwrap();
    assert_eq!(
        done.response.choices[0].message.content.as_deref(),
        Some("Hi!")
    );
    assert_eq!(done.usage, Some(holdfast_llm::Usage::new(9, 2)));
    assert_eq!(done.status, 200);
    let sent = server.request(0);
    assert_eq!(sent.path(), "/v1/chat/completions");
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {KEY}")));
    assert_eq!(
        sent.header("idempotency-key").as_deref(),
        Some("task-1:step-a")
    );
    assert_eq!(sent.header("x-trace").as_deref(), Some("abc"));
    assert_eq!(sent.body["model"], "target-model");
    assert!(
        sent.body.get("stream").is_none(),
        "a completion is never streamed"
    );
}

#[tokio::test]
async fn an_anthropic_target_gets_a_translated_request_and_its_answer_comes_back_openai_shaped() {
    let answer = json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "Hi!"}], "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 12, "output_tokens": 3}
    });
    let server = serve(vec![json(200, &[], &answer)]).await;
    let done = client()
        .complete(
            &endpoint(&server, Format::Anthropic),
            &chat_request(false),
            &CallOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        done.response.choices[0].message.content.as_deref(),
        Some("Hi!")
    );
    assert_eq!(done.usage, Some(holdfast_llm::Usage::new(12, 3)));
    let sent = server.request(0);
    assert_eq!(sent.path(), "/v1/messages");
    assert_eq!(sent.header("x-api-key").as_deref(), Some(KEY));
    assert_eq!(
        sent.header("anthropic-version").as_deref(),
        Some("2023-06-01")
    );
    assert!(sent.header("authorization").is_none());
    assert_eq!(sent.body["max_tokens"], 4096);
    assert_eq!(sent.body["model"], "target-model");
}

#[tokio::test]
async fn an_azure_openai_target_gets_its_api_version_and_its_key_in_api_key() {
    let answer = json!({
        "id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}]
    });
    let server = serve(vec![json(200, &[], &answer)]).await;
    let mut azure = endpoint(&server, Format::OpenAi);
    azure.azure_api_version = Some("2024-10-21".to_owned());
    let done = client()
        .complete(&azure, &chat_request(false), &CallOptions::default())
        .await
        .unwrap();
    assert_eq!(
        done.response.choices[0].message.content.as_deref(),
        Some("Hi!")
    );
    let sent = server.request(0);
    assert_eq!(sent.path(), "/v1/chat/completions?api-version=2024-10-21");
    assert_eq!(sent.header("api-key").as_deref(), Some(KEY));
    assert!(sent.header("authorization").is_none());
}

async fn outcome_of(reply: Reply, format: Format) -> holdfast_llm::ProviderError {
    let server = serve(vec![reply]).await;
    client()
        .complete(
            &endpoint(&server, format),
            &chat_request(false),
            &CallOptions::default(),
        )
        .await
        .unwrap_err()
}

#[tokio::test]
async fn http_errors_are_classified_with_retry_after() {
    let rate = json!({"error": {"message": "Rate limit reached", "type": "requests", "param": null, "code": "rate_limit_exceeded"}});
    let err = outcome_of(json(429, &[("retry-after", "3")], &rate), Format::OpenAi).await;
    assert_eq!(
        err.outcome,
        Outcome::RateLimited {
            retry_after: Some(Duration::from_secs(3))
        }
    );
    assert_eq!(err.status, Some(429));
    assert!(
        err.message.contains("Rate limit reached"),
        "{}",
        err.message
    );

    let err = outcome_of(
        json(
            429,
            &[("retry-after-ms", "250"), ("retry-after", "1")],
            &rate,
        ),
        Format::OpenAi,
    )
    .await;
    assert_eq!(
        err.outcome,
        Outcome::RateLimited {
            retry_after: Some(Duration::from_millis(250))
        }
    );

    let overloaded =
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
    let err = outcome_of(json(529, &[], &overloaded), Format::Anthropic).await;
    assert_eq!(err.outcome, Outcome::Overloaded { retry_after: None });
    assert_eq!(err.body.unwrap()["error"]["type"], "overloaded_error");

    let quota = json!({"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}});
    assert_eq!(
        outcome_of(json(429, &[], &quota), Format::OpenAi)
            .await
            .outcome,
        Outcome::QuotaExhausted
    );
}

#[tokio::test]
async fn a_refused_key_is_auth_and_never_appears_in_the_error() {
    let body = json!({"error": {"message": format!("Incorrect API key provided: {KEY}."), "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}});
    let err = outcome_of(json(401, &[], &body), Format::OpenAi).await;
    assert_eq!(err.outcome, Outcome::Auth);
    let everything = format!("{err} {err:?} {}", err.body.clone().unwrap());
    assert!(!everything.contains(KEY), "{everything}");
    assert!(!everything.contains("0123456789abcdef"), "{everything}");
}

#[tokio::test]
async fn an_unparseable_or_empty_answer_is_invalid_output() {
    let garbage = Reply(vec![Step::Write(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 8\r\n\r\n{\"id\": 1"
            .to_vec(),
    )]);
    assert_eq!(
        outcome_of(garbage, Format::OpenAi).await.outcome,
        Outcome::InvalidOutput
    );
    let no_choices =
        json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": []});
    assert_eq!(
        outcome_of(json(200, &[], &no_choices), Format::OpenAi)
            .await
            .outcome,
        Outcome::InvalidOutput
    );
}

#[tokio::test]
async fn a_filtered_answer_is_content_filtered_and_keeps_the_answer() {
    let mut answer = openai_answer();
    answer["choices"][0]["finish_reason"] = json!("content_filter");
    let err = outcome_of(json(200, &[], &answer), Format::OpenAi).await;
    assert_eq!(err.outcome, Outcome::ContentFiltered);
    assert_eq!(err.body.unwrap()["id"], "chatcmpl-1");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_at_the_total_or_the_callers_cap() {
    let stall = Reply(vec![pause(2_000)]);
    let server = serve(vec![stall]).await;
    let mut endpoint = endpoint(&server, Format::OpenAi);
    endpoint.timeouts.total = Duration::from_millis(150);
    let err = client()
        .complete(&endpoint, &chat_request(false), &CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.outcome, Outcome::Timeout(TimeoutKind::Total));

    endpoint.timeouts.total = Duration::from_secs(10);
    let options = CallOptions {
        timeout_cap: Some(Duration::from_millis(100)),
        ..CallOptions::default()
    };
    let err = client()
        .complete(&endpoint, &chat_request(false), &options)
        .await
        .unwrap_err();
    assert_eq!(err.outcome, Outcome::Timeout(TimeoutKind::Total));
    assert!(
        err.message.contains("100ms") || err.message.contains("ms"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn a_silent_server_times_out_at_the_calls_first_byte_wait_when_one_is_given() {
    let stall = Reply(vec![pause(2_000)]);
    let server = serve(vec![stall]).await;
    let mut endpoint = endpoint(&server, Format::OpenAi);
    endpoint.timeouts.total = Duration::from_secs(10);
    let options = CallOptions {
        first_byte: Some(Duration::from_millis(100)),
        ..CallOptions::default()
    };
    let err = client()
        .complete(&endpoint, &chat_request(false), &options)
        .await
        .unwrap_err();
    assert_eq!(err.outcome, Outcome::Timeout(TimeoutKind::FirstByte));
}

#[tokio::test]
async fn a_body_that_stalls_halfway_times_out_idle() {
    let reply = Reply(vec![
        Step::Write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 400\r\n\r\n{\"id\":".to_vec()),
        pause(2_000),
    ]);
    assert_eq!(
        outcome_of(reply, Format::OpenAi).await.outcome,
        Outcome::Timeout(TimeoutKind::Idle)
    );
}

#[tokio::test]
async fn a_refused_connection_is_a_connection_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let server = Server {
        addr,
        received: Default::default(),
    };
    let err = client()
        .complete(
            &endpoint(&server, Format::OpenAi),
            &chat_request(false),
            &CallOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.outcome, Outcome::Connection);
    assert!(!err.message.contains(KEY));
}

#[tokio::test]
async fn a_request_anthropic_cannot_take_is_refused_before_sending() {
    let server = serve(vec![json(200, &[], &openai_answer())]).await;
    let mut request = chat_request(false);
    request.n = Some(3);
    let err = client()
        .complete(
            &endpoint(&server, Format::Anthropic),
            &request,
            &CallOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.outcome, Outcome::BadRequest);
    assert!(err.message.contains("`n`"), "{}", err.message);
    assert!(server.received.lock().unwrap().is_empty());
}
