//! The in-memory caches are bounded in bytes: an answer larger than
//! `[idempotency] max_bytes` reaches its client but is not kept, so a repeat calls
//! upstream again, while a small answer is still replayed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{Gw, Mock, openai_provider, request, sse_events, streamed_text, target};

async fn gateway(answer: &str) -> (Gw, Mock) {
    let mock = Mock::openai(&format!("answer = \"{answer}\"")).await;
    let toml = format!(
        "[idempotency]\nmax_bytes = \"4KiB\"\n{}{}[routes.smart]\ntargets = [\"a\"]\n",
        openai_provider("p", &mock),
        target("a", "p", 100_000)
    );
    (Gw::start(&toml).await, mock)
}

async fn send(gw: &Gw, key: &str, stream: bool) -> reqwest::Response {
    gw.client
        .post(gw.url("/v1/chat/completions"))
        .header("idempotency-key", key)
        .json(&request(stream))
        .send()
        .await
        .unwrap()
}

fn replayed(response: &reqwest::Response) -> bool {
    response
        .headers()
        .contains_key("x-holdfast-idempotent-replay")
}

#[tokio::test]
async fn an_answer_larger_than_max_bytes_is_served_but_not_kept() {
    let long = "many words ".repeat(800);
    let (gw, mock) = gateway(&long).await;
    let first = send(&gw, "big", false).await;
    assert_eq!(first.status(), 200);
    let body: serde_json::Value = first.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"], long,
        "the client got the whole answer"
    );
    let again = send(&gw, "big", false).await;
    assert_eq!(again.status(), 200);
    assert!(!replayed(&again), "not kept, so not replayed");
    assert_eq!(mock.calls(), 2);

    let stream = send(&gw, "big-stream", true).await;
    let events = sse_events(&stream.text().await.unwrap());
    assert_eq!(streamed_text(&events), long);
    let again = send(&gw, "big-stream", true).await;
    assert!(!replayed(&again));
    assert_eq!(mock.calls(), 4);
}

#[tokio::test]
async fn an_answer_within_max_bytes_is_still_replayed() {
    let (gw, mock) = gateway("short").await;
    assert_eq!(send(&gw, "small", false).await.status(), 200);
    assert!(replayed(&send(&gw, "small", false).await));
    let stream = send(&gw, "small-stream", true).await;
    assert!(stream.text().await.unwrap().contains("[DONE]"));
    assert!(replayed(&send(&gw, "small-stream", true).await));
    assert_eq!(mock.calls(), 2);
}
