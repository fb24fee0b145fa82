//! A client key's cap on requests in flight (`max_concurrent_requests`): one more is a
//! 429 in the endpoint's format, and the slot comes back when the request or stream
//! ends, or its client goes away.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Gw, Mock, openai_provider, request, target};

/// A gateway whose key `one` (`key-one`) may have one request in flight, and whose key
/// `many` (`key-many`) keeps the default.
async fn gateway(faults: &str) -> (Gw, Mock) {
    let mock = Mock::openai(faults).await;
    let toml = format!(
        "[[client_keys]]\nname = \"one\"\nkey_env = \"K1\"\nmax_concurrent_requests = 1\n\
         [[client_keys]]\nname = \"many\"\nkey_env = \"K2\"\n{}{}[routes.smart]\ntargets = [\"a\"]\n",
        openai_provider("p", &mock),
        target("a", "p", 100_000)
    );
    let gw = Gw::start_with_env(&toml, &[("K1", "key-one"), ("K2", "key-many")]).await;
    (gw, mock)
}

async fn chat(gw: &Gw, key: &str, stream: bool) -> reqwest::Response {
    gw.client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&request(stream))
        .send()
        .await
        .unwrap()
}

#[allow(clippy::disallowed_methods)] // real sockets, real time
async fn pause(duration: Duration) {
    tokio::time::sleep(duration).await;
}

async fn assert_refused(response: reqwest::Response) {
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("x-holdfast-request-id"));
    assert!(!response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"]["code"], "too_many_concurrent_requests",
        "{body}"
    );
    assert_eq!(body["error"]["type"], "rate_limit_error");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("max_concurrent_requests: 1 in flight"),
        "{message}"
    );
}

#[tokio::test]
async fn a_stream_holds_its_slot_until_it_ends() {
    let (gw, mock) = gateway("token_interval = \"30ms\"").await;
    let stream = chat(&gw, "key-one", true).await;
    assert_eq!(stream.status(), 200);
    assert_refused(chat(&gw, "key-one", false).await).await;
    let anthropic = gw
        .client
        .post(gw.url("/v1/messages"))
        .header("x-api-key", "key-one")
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "smart", "max_tokens": 50,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(anthropic.status(), 429);
    let body: Value = anthropic.json().await.unwrap();
    assert_eq!(body["type"], "error", "Anthropic's shape: {body}");
    assert_eq!(body["error"]["code"], "too_many_concurrent_requests");
    let tasks = gw
        .client
        .get(gw.url("/v1/tasks"))
        .bearer_auth("key-one")
        .send()
        .await
        .unwrap();
    assert_eq!(tasks.status(), 429, "every endpoint counts");
    assert_eq!(
        chat(&gw, "key-many", false).await.status(),
        200,
        "another key's cap is its own"
    );
    assert!(stream.text().await.unwrap().contains("[DONE]"));
    assert_eq!(
        chat(&gw, "key-one", false).await.status(),
        200,
        "the slot is back"
    );
    assert_eq!(mock.calls(), 3);
}

#[tokio::test]
async fn a_slow_answer_holds_its_slot_and_gives_it_back() {
    let (gw, _mock) = gateway("latency = \"400ms\"").await;
    let (slow, refused) = tokio::join!(chat(&gw, "key-one", false), async {
        pause(Duration::from_millis(150)).await;
        chat(&gw, "key-one", false).await
    });
    assert_eq!(slow.status(), 200);
    assert_refused(refused).await;
    assert_eq!(chat(&gw, "key-one", false).await.status(), 200);
}

#[tokio::test]
async fn a_client_that_goes_away_frees_its_slot() {
    let (gw, _mock) = gateway("token_interval = \"100ms\"").await;
    let mut stream = chat(&gw, "key-one", true).await;
    assert_eq!(stream.status(), 200);
    stream.chunk().await.unwrap();
    drop(stream);
    // The server learns of it at its next write, within one token interval.
    let mut answered = None;
    for _ in 0..40 {
        let response = chat(&gw, "key-one", false).await;
        if response.status() == 200 {
            answered = Some(response);
            break;
        }
        pause(Duration::from_millis(50)).await;
    }
    assert!(answered.is_some(), "the slot was never given back");
}

#[tokio::test]
async fn a_request_without_a_valid_key_is_not_counted() {
    let (gw, _mock) = gateway("token_interval = \"30ms\"").await;
    let stream = chat(&gw, "key-one", true).await;
    let wrong = chat(&gw, "not-a-key", false).await;
    assert_eq!(wrong.status(), 401, "refused by its handler, as before");
    drop(stream);
}
