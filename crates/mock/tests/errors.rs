//! Faults answered with an error or a broken body: each has its provider's exact shape.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{read_stream, request, sse_events, start, start_with};
use holdfast_mock::Format;
use holdfast_policy::{Clock, ManualClock, SystemClock};
use serde_json::{Value, json};

#[tokio::test]
async fn status_errors_have_each_providers_shape() {
    for format in [Format::OpenAi, Format::Anthropic] {
        let mock = start(format, "").await;
        for status in [429u16, 500, 502, 503, 529] {
            mock.set_faults(&format!("error_rates = {{ \"{status}\" = 1.0 }}"))
                .await;
            let response = mock.chat(&request(false)).await;
            assert_eq!(response.status().as_u16(), status, "{format}");
            let headers = response.headers().clone();
            let text = response.text().await.unwrap();
            if status == 502 {
                assert!(
                    headers["content-type"]
                        .to_str()
                        .unwrap()
                        .starts_with("text/html")
                );
                assert!(text.contains("502 Bad Gateway"));
                continue;
            }
            let body: Value = serde_json::from_str(&text).unwrap();
            if status == 429 {
                assert_eq!(headers["retry-after"], "1");
                assert_eq!(headers["retry-after-ms"], "1000");
            } else {
                assert!(!headers.contains_key("retry-after"));
            }
            let kind = match (format, status) {
                (Format::OpenAi, 429) => "requests",
                (Format::OpenAi, _) => "server_error",
                (Format::Anthropic, 429) => "rate_limit_error",
                (Format::Anthropic, 529) => "overloaded_error",
                (Format::Anthropic, _) => "api_error",
            };
            assert_eq!(body["error"]["type"], kind, "{format} {status}");
            if format == Format::Anthropic {
                assert_eq!(body["type"], "error");
            }
        }
        let stats = mock.provider.stats();
        let by_outcome: Vec<(&str, u64)> = stats
            .by_outcome
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(
            by_outcome,
            [("overloaded", 2), ("rate_limited", 1), ("server_error", 2)]
        );
        mock.stop().await;
    }
}

#[tokio::test]
async fn a_fractional_retry_after_rounds_up_and_keeps_milliseconds() {
    let mock = start(
        Format::OpenAi,
        "error_rates = { \"429\" = 1.0, retry_after = \"1500ms\" }",
    )
    .await;
    let response = mock.chat(&request(false)).await;
    assert_eq!(response.headers()["retry-after"], "2");
    assert_eq!(response.headers()["retry-after-ms"], "1500");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    mock.stop().await;
}

#[tokio::test]
async fn auth_faults_refuse_with_401() {
    let openai = start(Format::OpenAi, "auth = true").await;
    let response = openai.chat(&request(false)).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key");
    let anthropic = start(Format::Anthropic, "auth = true").await;
    let body: Value = anthropic.chat(&request(false)).await.json().await.unwrap();
    assert_eq!(body["error"]["type"], "authentication_error");
    assert_eq!(anthropic.provider.stats().by_outcome["auth"], 1);
    openai.stop().await;
    anthropic.stop().await;
}

#[tokio::test]
async fn a_configured_key_must_be_presented() {
    let mock = start(Format::OpenAi, "api_key = \"sk-test\"").await;
    let url = mock.url("/v1/chat/completions");
    let missing = mock
        .client
        .post(&url)
        .json(&request(false))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
    let body: Value = missing.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("didn't provide an API key")
    );
    let wrong = mock
        .client
        .post(&url)
        .bearer_auth("sk-other")
        .json(&request(false))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let text = wrong.text().await.unwrap();
    assert!(
        !text.contains("sk-other") && !text.contains("sk-test"),
        "keys never echoed"
    );
    let right = mock
        .client
        .post(&url)
        .bearer_auth("sk-test")
        .json(&request(false))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    let header = mock
        .client
        .post(&url)
        .header("x-api-key", "sk-test")
        .json(&request(false))
        .send()
        .await
        .unwrap();
    assert_eq!(header.status(), 200);
    assert_eq!(
        mock.client
            .get(mock.url("/v1/models"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    mock.stop().await;
}

#[tokio::test]
async fn quota_errors_look_like_each_provider() {
    let openai = start(Format::OpenAi, "quota = 1.0").await;
    let response = openai.chat(&request(false)).await;
    assert_eq!(response.status(), 429);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "insufficient_quota");
    assert_eq!(body["error"]["code"], "insufficient_quota");
    let anthropic = start(Format::Anthropic, "quota = 1.0").await;
    let response = anthropic.chat(&request(false)).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("credit balance is too low")
    );
    assert_eq!(anthropic.provider.stats().by_outcome["quota_exhausted"], 1);
    openai.stop().await;
    anthropic.stop().await;
}

fn long_request() -> Value {
    let mut body = request(false);
    body["messages"] = json!([{"role": "user", "content": "x".repeat(400)}]);
    body
}

#[tokio::test]
async fn context_overflow_gets_the_real_messages() {
    let openai = start(Format::OpenAi, "context_window = 50").await;
    let response = openai.chat(&long_request()).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "context_length_exceeded");
    assert_eq!(
        body["error"]["message"],
        "This model's maximum context length is 50 tokens. However, your messages resulted in \
100 tokens. Please reduce the length of the messages."
    );
    assert_eq!(
        openai.chat(&request(false)).await.status(),
        200,
        "short prompts fit"
    );
    let anthropic = start(Format::Anthropic, "context_window = 50").await;
    let body: Value = anthropic.chat(&long_request()).await.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(
        body["error"]["message"],
        "prompt is too long: 100 tokens > 50 maximum"
    );
    assert_eq!(anthropic.provider.stats().by_outcome["context_overflow"], 1);
    openai.stop().await;
    anthropic.stop().await;
}

#[tokio::test]
async fn content_filtering_ends_a_200_answer() {
    let openai = start(Format::OpenAi, "content_filter = 1.0").await;
    let body: Value = openai.chat(&request(false)).await.json().await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "content_filter");
    let (text, _) = read_stream(openai.chat(&request(true)).await).await;
    let events = sse_events(&text);
    let finish = events[events.len() - 2].json();
    assert_eq!(finish["choices"][0]["finish_reason"], "content_filter");
    let anthropic = start(Format::Anthropic, "content_filter = 1.0").await;
    let body: Value = anthropic.chat(&request(false)).await.json().await.unwrap();
    assert_eq!(
        (body["stop_reason"].as_str(), &body["content"]),
        (Some("refusal"), &json!([]))
    );
    let (text, _) = read_stream(anthropic.chat(&request(true)).await).await;
    let names: Vec<String> = sse_events(&text)
        .into_iter()
        .filter_map(|e| e.event)
        .collect();
    assert_eq!(
        names,
        ["message_start", "ping", "message_delta", "message_stop"]
    );
    assert_eq!(openai.provider.stats().by_outcome["content_filtered"], 2);
    openai.stop().await;
    anthropic.stop().await;
}

#[tokio::test]
async fn malformed_answers_are_200_with_broken_json() {
    for format in [Format::OpenAi, Format::Anthropic] {
        let mock = start(format, "malformed = 1.0").await;
        let response = mock.chat(&request(false)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/json");
        let text = response.text().await.unwrap();
        assert!(text.starts_with('{') && serde_json::from_str::<Value>(&text).is_err());
        assert_eq!(mock.provider.stats().by_outcome["invalid_output"], 1);
        mock.stop().await;
    }
}

#[tokio::test]
async fn outages_and_flapping_follow_the_mock_clock() {
    let clock = ManualClock::new();
    let toml = "flapping = { period_up = \"10s\", period_down = \"5s\", status = 529 }\n\
        [[outages]]\nstart = \"2s\"\nend = \"4s\"\n";
    let mock = start_with(Format::Anthropic, toml, 1, Arc::new(clock.clone())).await;
    let status = || async { mock.chat(&request(false)).await.status().as_u16() };
    assert_eq!(status().await, 200);
    clock.advance(Duration::from_secs(3));
    assert_eq!(status().await, 503, "inside the outage");
    clock.advance(Duration::from_secs(2));
    assert_eq!(status().await, 200);
    clock.advance(Duration::from_secs(6));
    assert_eq!(status().await, 529, "flapping down");
    mock.provider.reset(None);
    assert_eq!(status().await, 200, "reset restarts the time origin");
    let faults: Vec<String> = mock
        .provider
        .requests(10)
        .into_iter()
        .map(|r| r.fault)
        .collect();
    assert_eq!(faults, ["none"]);
    assert!(clock.now().since_origin() >= Duration::from_secs(11));
    mock.stop().await;
}

#[tokio::test]
async fn latency_delays_the_first_byte() {
    let mock = start(Format::OpenAi, "latency = \"60ms\"").await;
    let clock = SystemClock::new();
    assert_eq!(mock.chat(&request(false)).await.status(), 200);
    assert!(clock.now().since_origin() >= Duration::from_millis(60));
    mock.stop().await;
}

#[tokio::test]
async fn admin_faults_never_show_the_key_and_a_round_trip_keeps_it() {
    let mock = start(Format::OpenAi, "api_key = \"sk-test-SECRET-42\"").await;
    let shown = mock.get_json("/admin/faults").await;
    assert_eq!(shown["api_key"], "**REDACTED**");
    assert!(!shown.to_string().contains("SECRET-42"));
    let posted = mock
        .client
        .post(mock.url("/admin/faults"))
        .json(&shown)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    assert!(!posted.text().await.unwrap().contains("SECRET-42"));
    let url = mock.url("/v1/chat/completions");
    let ok = mock
        .client
        .post(&url)
        .bearer_auth("sk-test-SECRET-42")
        .json(&request(false))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "the round trip kept the key");
    mock.stop().await;
}
