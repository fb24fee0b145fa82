//! The listener's guards over real sockets: a head or a body that trickles in, an idle
//! kept-alive connection, the connection cap, and a stream that outlasts them all.
//! Timeouts are a few hundred milliseconds, so each test takes about a second.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use holdfast_mock::DEFAULT_ANSWER;
use serde_json::Value;
use support::{Gw, Mock, openai_provider, request, sse_events, streamed_text, target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A gateway on one mock with `server` as its `[server]` section.
async fn gateway(server: &str, faults: &str) -> (Gw, Mock) {
    let mock = Mock::openai(faults).await;
    let toml = format!(
        "[server]\n{server}\n{}{}[routes.smart]\ntargets = [\"a\"]\n",
        openai_provider("p", &mock),
        target("a", "p", 100_000)
    );
    (Gw::start(&toml).await, mock)
}

fn addr(gw: &Gw) -> String {
    gw.base.trim_start_matches("http://").to_owned()
}

#[allow(clippy::disallowed_methods)] // real sockets, real time
fn now() -> std::time::Instant {
    std::time::Instant::now()
}

#[allow(clippy::disallowed_methods)] // real sockets, real time
async fn pause(duration: Duration) {
    tokio::time::sleep(duration).await;
}

/// Reads until the server closes the connection (or resets it); what it sent. Fails
/// if the server keeps it open for 10 s.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .is_err()
    {
        panic!(
            "still open after 10 s; it sent {}",
            String::from_utf8_lossy(&seen)
        );
    }
    seen
}

/// Reads one response with a `Content-Length` body from a kept-alive connection.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "closed mid-response: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap();
            if seen.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

/// `GET /health`, addressed to `gw` (the `Host` a local server expects).
fn health(gw: &Gw) -> Vec<u8> {
    format!("GET /health HTTP/1.1\r\nhost: {}\r\n\r\n", addr(gw)).into_bytes()
}

#[tokio::test]
async fn a_head_sent_one_byte_at_a_time_is_closed_after_the_header_timeout() {
    let (gw, _mock) = gateway("header_read_timeout = \"500ms\"", "").await;
    let mut stream = TcpStream::connect(addr(&gw)).await.unwrap();
    let (mut reader, mut writer) = stream.split();
    let started = now();
    let trickle = async {
        // 40 bytes, one every 100 ms: the whole head would take 4 s.
        for byte in b"GET /health HTTP/1.1\r\nhost: slowloris\r\n\r\n" {
            if writer.write_all(&[*byte]).await.is_err() {
                // Closed: the reader sees it too.
                std::future::pending::<()>().await;
            }
            pause(Duration::from_millis(100)).await;
        }
    };
    let mut seen = Vec::new();
    let read = async {
        let mut buf = [0u8; 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return now(),
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    let closed_at = tokio::select! {
        closed = read => closed,
        () = trickle => panic!("the whole head was sent before the connection closed"),
    };
    let after = closed_at - started;
    assert!(
        seen.is_empty(),
        "answered: {}",
        String::from_utf8_lossy(&seen)
    );
    assert!(
        after >= Duration::from_millis(450) && after < Duration::from_millis(2000),
        "closed after {after:?}"
    );
    let healthy = gw.client.get(gw.url("/health")).send().await.unwrap();
    assert_eq!(healthy.status(), 200, "the server goes on serving others");
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let (gw, _mock) = gateway(
        "header_read_timeout = \"300ms\"\nidle_timeout = \"10s\"",
        "",
    )
    .await;
    let mut stream = TcpStream::connect(addr(&gw)).await.unwrap();
    let started = now();
    assert!(read_to_close(&mut stream).await.is_empty());
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(250) && after < Duration::from_secs(2),
        "a new connection gets the head timeout, not the idle one: {after:?}"
    );
}

/// A chat request to `gw` whose head says `length` bytes of body, to send one at a time.
fn trickled_head(gw: &Gw, path: &str, length: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         anthropic-version: 2023-06-01\r\ncontent-length: {length}\r\n\r\n",
        addr(gw)
    )
}

async fn trickle_a_body(gw: &Gw, path: &str) -> (String, Duration) {
    let body = serde_json::to_vec(&request(false)).unwrap();
    let mut stream = TcpStream::connect(addr(gw)).await.unwrap();
    stream
        .write_all(trickled_head(gw, path, body.len()).as_bytes())
        .await
        .unwrap();
    let started = now();
    let (mut reader, mut writer) = stream.split();
    let trickle = async {
        for byte in &body {
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            pause(Duration::from_millis(50)).await;
        }
        // Closed, or all sent: the reader decides.
        std::future::pending::<()>().await;
    };
    let mut seen = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::select! {
        () = read => {}
        () = trickle => unreachable!(),
        () = pause(Duration::from_secs(15)) => panic!("the body was never cut"),
    }
    (String::from_utf8(seen).unwrap(), started.elapsed())
}

fn json_body(response: &str) -> Value {
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"))
}

#[tokio::test]
async fn a_body_that_trickles_is_cut_with_a_408_in_the_endpoints_format() {
    let (gw, mock) = gateway("body_read_timeout = \"400ms\"", "").await;
    let (response, after) = trickle_a_body(&gw, "/v1/chat/completions").await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(
        response.to_ascii_lowercase().contains("connection: close"),
        "{response}"
    );
    assert!(response.contains("x-holdfast-request-id"), "{response}");
    let body = json_body(&response);
    assert_eq!(body["error"]["code"], "request_timeout", "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        after >= Duration::from_millis(350) && after < Duration::from_secs(3),
        "cut after {after:?}"
    );

    let (response, _) = trickle_a_body(&gw, "/v1/messages").await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    let body = json_body(&response);
    assert_eq!(body["type"], "error", "Anthropic's shape: {body}");
    assert_eq!(body["error"]["code"], "request_timeout");
    assert_eq!(mock.calls(), 0, "nothing reached the provider");
}

#[tokio::test]
async fn a_body_that_arrives_in_time_in_pieces_is_served() {
    let (gw, _mock) = gateway("body_read_timeout = \"2s\"", "").await;
    let body = serde_json::to_vec(&request(false)).unwrap();
    let mut stream = TcpStream::connect(addr(&gw)).await.unwrap();
    stream
        .write_all(trickled_head(&gw, "/v1/chat/completions", body.len()).as_bytes())
        .await
        .unwrap();
    for piece in body.chunks(body.len() / 4 + 1) {
        pause(Duration::from_millis(100)).await;
        stream.write_all(piece).await.unwrap();
    }
    let response = read_response(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout_not_the_head_one() {
    let (gw, _mock) = gateway("header_read_timeout = \"300ms\"\nidle_timeout = \"1s\"", "").await;
    let mut stream = TcpStream::connect(addr(&gw)).await.unwrap();
    stream.write_all(&health(&gw)).await.unwrap();
    assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"));
    // Idle longer than the head timeout, within the idle one: still served.
    pause(Duration::from_millis(600)).await;
    stream.write_all(&health(&gw)).await.unwrap();
    assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"));
    let idle_from = now();
    assert!(read_to_close(&mut stream).await.is_empty());
    let after = idle_from.elapsed();
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(3),
        "closed after {after:?} idle"
    );
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let (gw, _mock) = gateway("max_connections = 2\nheader_read_timeout = \"10s\"", "").await;
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut held = TcpStream::connect(addr(&gw)).await.unwrap();
        held.write_all(b"GET /hea").await.unwrap();
        holders.push(held);
    }
    pause(Duration::from_millis(100)).await;
    let mut waiting = TcpStream::connect(addr(&gw)).await.unwrap();
    waiting.write_all(&health(&gw)).await.unwrap();
    let early = tokio::time::timeout(Duration::from_millis(500), read_response(&mut waiting)).await;
    assert!(early.is_err(), "served beyond the cap: {early:?}");
    let freed = now();
    drop(holders.pop());
    let response = tokio::time::timeout(Duration::from_secs(2), read_response(&mut waiting))
        .await
        .expect("served once a connection closed");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(freed.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn a_stream_longer_than_every_timeout_completes() {
    let (gw, _mock) = gateway(
        "header_read_timeout = \"200ms\"\nbody_read_timeout = \"200ms\"\nidle_timeout = \"200ms\"",
        "token_interval = \"60ms\"",
    )
    .await;
    let started = now();
    let response = gw.chat(&request(true)).await;
    assert_eq!(response.status(), 200);
    let events = sse_events(&response.text().await.unwrap());
    let took = started.elapsed();
    assert_eq!(events.last().unwrap().data, "[DONE]");
    assert_eq!(streamed_text(&events), DEFAULT_ANSWER);
    assert!(
        took > Duration::from_millis(800),
        "the stream lasted {took:?}, not longer than the timeouts"
    );
}

#[tokio::test]
async fn shutting_down_lets_a_stream_in_flight_finish() {
    let (gw, _mock) = gateway("idle_timeout = \"200ms\"", "token_interval = \"40ms\"").await;
    let response = gw.chat(&request(true)).await;
    assert_eq!(response.status(), 200);
    let stopped = tokio::spawn(gw.stop());
    let events = sse_events(&response.text().await.unwrap());
    assert_eq!(events.last().unwrap().data, "[DONE]");
    assert_eq!(streamed_text(&events), DEFAULT_ANSWER);
    stopped.await.unwrap();
}
