//! `Idempotency-Key`: duplicates are answered once, upstream is called once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use support::{Gw, pair, request};

async fn send(gw: &Gw, key: &str, body: &Value) -> reqwest::Response {
    gw.client
        .post(gw.url("/v1/chat/completions"))
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_repeated_request_is_replayed_without_a_second_upstream_call() {
    let (gw, a, _b) = pair("", "", "").await;
    let first = send(&gw, "order-1", &request(false)).await;
    let first_id = first.headers()["x-holdfast-request-id"].clone();
    let first_body = first.text().await.unwrap();
    let second = send(&gw, "order-1", &request(false)).await;
    assert_eq!(second.status(), 200);
    assert_eq!(second.headers()["x-holdfast-idempotent-replay"], "true");
    assert_eq!(second.headers()["x-holdfast-request-id"], first_id);
    assert_eq!(second.text().await.unwrap(), first_body);
    assert_eq!(a.calls(), 1);
    // The provider saw the client's key.
    assert_eq!(
        a.provider.requests(10)[0].idempotency_key.as_deref(),
        Some("order-1")
    );
}

#[tokio::test]
async fn concurrent_duplicates_wait_for_the_first_instead_of_calling_upstream() {
    let (gw, a, _b) = pair("latency = \"300ms\"", "", "").await;
    let body = request(false);
    let (one, two, three) = tokio::join!(
        send(&gw, "k", &body),
        send(&gw, "k", &body),
        send(&gw, "k", &body)
    );
    let texts = [
        one.text().await.unwrap(),
        two.text().await.unwrap(),
        three.text().await.unwrap(),
    ];
    assert!(texts.iter().all(|t| t == &texts[0]), "{texts:?}");
    assert_eq!(a.calls(), 1);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_a_422() {
    let (gw, a, _b) = pair("", "", "").await;
    assert_eq!(send(&gw, "k", &request(false)).await.status(), 200);
    let mut other = request(false);
    other["messages"][0]["content"] = "Something else".into();
    let response = send(&gw, "k", &other).await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "idempotency_key_reused");
    assert_eq!(a.calls(), 1);
}

#[tokio::test]
async fn a_streamed_answer_is_replayed_from_its_recorded_events() {
    let (gw, a, _b) = pair("", "", "").await;
    let first = send(&gw, "s", &request(true)).await.text().await.unwrap();
    let second = send(&gw, "s", &request(true)).await;
    assert_eq!(second.headers()["content-type"], "text/event-stream");
    assert_eq!(second.text().await.unwrap(), first);
    assert_eq!(a.calls(), 1);
}

#[tokio::test]
async fn a_failed_first_attempt_is_not_kept() {
    let (gw, a, b) = pair(
        "error_rates = { \"500\" = 1.0 }",
        "error_rates = { \"500\" = 1.0 }",
        "[policies.default]\nretry = { max_attempts = 1 }\n",
    )
    .await;
    assert_eq!(send(&gw, "k", &request(false)).await.status(), 502);
    a.set_faults("");
    b.set_faults("");
    assert_eq!(send(&gw, "k", &request(false)).await.status(), 200);
    // Without a key, every attempt carries the request id to the provider.
    let response = gw.chat(&request(false)).await;
    let id = response.headers()["x-holdfast-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let last = a.provider.requests(1).pop().unwrap();
    assert_eq!(last.idempotency_key.as_deref(), Some(id.as_str()));
}
