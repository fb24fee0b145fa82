//! The fault proxy over real sockets: without faults it forwards byte for byte (plain
//! and streamed); with a fault the client gets exactly what the mock provider sends and
//! the upstream sees nothing; faults change at run time through the admin API.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use futures_util::StreamExt;
use holdfast_chaos::FaultProxy;
use holdfast_mock::{Faults, Format, MockProvider};
use holdfast_policy::{Clock, SystemClock};
use serde_json::json;

/// Bytes no JSON encoder would produce, to show nothing is re-encoded on the way.
const ODD_BODY: &[u8] = b"{\"id\":\"x\",  \"choices\":[] ,\"note\":\"\xff\xfe raw\"}\n";

/// Streamed events, sent with pauses so that the proxy must pass them on as they come.
const EVENTS: [&str; 3] = [
    "data: {\"choices\":[{\"delta\":{\"content\":\"He\"}}]}\n\n",
    ": keep-alive comment\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"llo\"}}]}\n\n",
    "data: [DONE]\n\n",
];

#[derive(Clone, Default)]
struct Upstream {
    calls: Arc<AtomicU64>,
    last_headers: Arc<std::sync::Mutex<Option<HeaderMap>>>,
}

async fn upstream_chat(State(up): State<Upstream>, headers: HeaderMap, body: Bytes) -> Response {
    up.calls.fetch_add(1, Ordering::SeqCst);
    *up.last_headers.lock().unwrap() = Some(headers);
    let streaming = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("stream").and_then(serde_json::Value::as_bool))
        .unwrap_or(false);
    if streaming {
        let chunks = futures_util::stream::iter(EVENTS).then(|event| async move {
            let clock = SystemClock::new();
            clock
                .sleep_until(clock.now() + Duration::from_millis(20))
                .await;
            Ok::<_, std::io::Error>(Bytes::from_static(event.as_bytes()))
        });
        let mut response = Body::from_stream(chunks).into_response();
        response
            .headers_mut()
            .insert("content-type", "text/event-stream".parse().unwrap());
        return response;
    }
    (
        StatusCode::CREATED,
        [
            ("x-request-id", "req_123"),
            ("content-type", "application/json"),
        ],
        Bytes::from_static(ODD_BODY),
    )
        .into_response()
}

async fn start_upstream() -> (String, Upstream) {
    let up = Upstream::default();
    let app = Router::new()
        .route("/v1/chat/completions", post(upstream_chat))
        .route("/v1/messages", post(upstream_chat))
        .route("/v1/models", get(|| async { "models-list" }))
        .with_state(up.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, up)
}

async fn start_proxy(upstream: &str, faults: &str, seed: u64) -> String {
    start_proxy_as(Format::OpenAi, upstream, faults, seed).await
}

async fn start_proxy_as(format: Format, upstream: &str, faults: &str, seed: u64) -> String {
    let provider = mock_provider_as(format, faults, seed);
    let proxy = FaultProxy::new(provider, upstream).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(holdfast_chaos::proxy::serve(
        listener,
        proxy,
        std::future::pending(),
    ));
    base
}

fn mock_provider(faults: &str, seed: u64) -> MockProvider {
    mock_provider_as(Format::OpenAi, faults, seed)
}

fn mock_provider_as(format: Format, faults: &str, seed: u64) -> MockProvider {
    let faults = Faults::from_toml_str(faults).unwrap();
    MockProvider::new(format, faults, seed, Arc::new(SystemClock::new())).unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn chat_body(stream: bool) -> serde_json::Value {
    json!({"model": "gpt-4o", "stream": stream,
           "messages": [{"role": "user", "content": "hello"}]})
}

#[tokio::test]
async fn without_faults_a_plain_answer_arrives_byte_for_byte() {
    let (upstream, up) = start_upstream().await;
    let proxy = start_proxy(&upstream, "", 1).await;
    let answer = client()
        .post(format!("{proxy}/v1/chat/completions"))
        .header("authorization", "Bearer sk-upstream-key")
        .header("x-custom", "kept")
        .json(&chat_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::CREATED);
    assert_eq!(answer.headers()["x-request-id"], "req_123");
    assert_eq!(answer.bytes().await.unwrap(), Bytes::from_static(ODD_BODY));
    let seen = up.last_headers.lock().unwrap().clone().unwrap();
    assert_eq!(seen["authorization"], "Bearer sk-upstream-key");
    assert_eq!(seen["x-custom"], "kept");

    let models = client()
        .get(format!("{proxy}/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(models.text().await.unwrap(), "models-list");
}

#[tokio::test]
async fn without_faults_a_stream_arrives_byte_for_byte_and_as_it_comes() {
    let (upstream, _up) = start_upstream().await;
    let proxy = start_proxy(&upstream, "", 1).await;
    let answer = client()
        .post(format!("{proxy}/v1/chat/completions"))
        .json(&chat_body(true))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.headers()["content-type"], "text/event-stream");
    let mut stream = answer.bytes_stream();
    let mut received = Vec::new();
    let mut pieces = 0;
    while let Some(chunk) = stream.next().await {
        received.extend_from_slice(&chunk.unwrap());
        pieces += 1;
    }
    assert_eq!(received, EVENTS.concat().into_bytes());
    assert!(
        pieces >= 2,
        "the stream arrived in one piece: it was buffered"
    );
}

/// What a response is, for comparing the proxy's with the mock's.
async fn shape(response: reqwest::Response) -> (u16, Option<String>, String) {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        status,
        retry_after,
        response.text().await.unwrap_or_default(),
    )
}

#[tokio::test]
async fn with_a_fault_the_client_gets_what_the_mock_sends_and_upstream_sees_nothing() {
    let faults = "error_rates = { \"429\" = 1.0, retry_after = \"3s\" }";
    let (upstream, up) = start_upstream().await;
    let proxy = start_proxy(&upstream, faults, 5).await;
    let mock = mock_provider(faults, 5);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mock_base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(holdfast_mock::serve(listener, mock, std::future::pending()));

    for stream in [false, true] {
        let through = client()
            .post(format!("{proxy}/v1/chat/completions"))
            .json(&chat_body(stream))
            .send()
            .await
            .unwrap();
        let direct = client()
            .post(format!("{mock_base}/v1/chat/completions"))
            .json(&chat_body(stream))
            .send()
            .await
            .unwrap();
        let (through, direct) = (shape(through).await, shape(direct).await);
        assert_eq!(through.0, 429);
        assert_eq!(through.1.as_deref(), Some("3"));
        assert_eq!(through, direct);
    }
    assert_eq!(up.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_cut_stream_is_the_mocks_cut_stream() {
    let faults = "cut_stream = { rate = 1.0, after_chunks = 2 }";
    let (upstream, up) = start_upstream().await;
    let proxy = start_proxy(&upstream, faults, 3).await;
    let answer = client()
        .post(format!("{proxy}/v1/chat/completions"))
        .json(&chat_body(true))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let mut stream = answer.bytes_stream();
    let mut text = Vec::new();
    let mut broke = false;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => text.extend_from_slice(&bytes),
            Err(_) => broke = true,
        }
    }
    let text = String::from_utf8(text).unwrap();
    assert!(
        broke || !text.contains("[DONE]"),
        "the stream ended cleanly: {text}"
    );
    assert!(text.contains("Holdfast"), "not the mock's stream: {text}");
    assert_eq!(up.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn faults_change_at_run_time_and_a_share_of_calls_is_struck() {
    let (upstream, up) = start_upstream().await;
    let proxy = start_proxy(&upstream, "", 9).await;
    let http = client();
    let set = http
        .post(format!("{proxy}/admin/faults"))
        .json(&json!({"error_rates": {"500": 0.5}}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), StatusCode::OK);
    let bad = http
        .post(format!("{proxy}/admin/faults"))
        .json(&json!({"error_rates": {"500": 1.5}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    let mut failed = 0;
    for _ in 0..60 {
        let answer = http
            .post(format!("{proxy}/v1/chat/completions"))
            .json(&chat_body(false))
            .send()
            .await
            .unwrap();
        if answer.status() == StatusCode::INTERNAL_SERVER_ERROR {
            failed += 1;
        } else {
            assert_eq!(answer.bytes().await.unwrap(), Bytes::from_static(ODD_BODY));
        }
    }
    assert!(
        (15..=45).contains(&failed),
        "{failed} of 60 failed at rate 0.5"
    );
    assert_eq!(up.calls.load(Ordering::SeqCst), 60 - failed);
    let stats: serde_json::Value = http
        .get(format!("{proxy}/admin/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["by_fault"]["status_500"], json!(failed));
}

#[tokio::test]
async fn in_the_anthropic_format_a_fault_is_the_mocks_and_the_rest_is_forwarded() {
    let faults = "error_rates = { \"529\" = 0.5 }";
    let (upstream, up) = start_upstream().await;
    let proxy = start_proxy_as(Format::Anthropic, &upstream, faults, 11).await;
    let mock = mock_provider_as(Format::Anthropic, faults, 11);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mock_base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(holdfast_mock::serve(listener, mock, std::future::pending()));
    let body = json!({"model": "claude", "max_tokens": 8,
                      "messages": [{"role": "user", "content": "hello"}]});
    let (mut struck, mut forwarded) = (0, 0);
    for _ in 0..30 {
        let send = |base: &str| {
            client()
                .post(format!("{base}/v1/messages"))
                .header("x-api-key", "sk-ant-test")
                .header("anthropic-version", "2023-06-01")
                .json(&body)
                .send()
        };
        let through = send(&proxy).await.unwrap();
        let direct = shape(send(&mock_base).await.unwrap()).await;
        if through.status().as_u16() == 529 {
            // The same seed: the mock strikes the same requests, with the same body.
            assert_eq!(shape(through).await, direct);
            struck += 1;
        } else {
            assert_eq!(direct.0, 200);
            assert_eq!(through.bytes().await.unwrap(), Bytes::from_static(ODD_BODY));
            forwarded += 1;
        }
    }
    assert!(
        struck > 0 && forwarded > 0,
        "{struck} struck, {forwarded} forwarded"
    );
    assert_eq!(up.calls.load(Ordering::SeqCst), forwarded);
    let seen = up.last_headers.lock().unwrap().clone().unwrap();
    assert_eq!(seen["x-api-key"], "sk-ant-test");
}
