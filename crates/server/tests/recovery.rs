//! Mid-stream recovery: a stream that breaks after its first byte is finished by
//! continuation on a target that takes a prefill, or by restart and splice, and ends
//! with the original break as an explicit error when neither can be done correctly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use holdfast_mock::DEFAULT_ANSWER;
use holdfast_policy::{Clock, SystemClock};
use serde_json::{Value, json};
use support::{Event, Gw, Mock, openai_provider, request, sse_events, streamed_text, target};

const CUT: &str = "cut_stream = { rate = 1.0, after_chunks = 3 }";

/// Route `smart` over OpenAI targets `a` (which cuts) and `b`, with `b_target` extra
/// TOML for target `b` and `route` extra TOML for the route.
async fn gateway(a_faults: &str, b_faults: &str, b_target: &str, route: &str) -> (Gw, Mock, Mock) {
    let a = Mock::openai(a_faults).await;
    let b = Mock::openai(b_faults).await;
    let toml = format!(
        "{}{}{}{}{b_target}\n[routes.smart]\ntargets = [\"a\", \"b\"]\n{route}\n",
        openai_provider("pa", &a),
        openai_provider("pb", &b),
        target("a", "pa", 100_000),
        target("b", "pb", 100_000),
    );
    (Gw::start(&toml).await, a, b)
}

fn finishes(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.data != "[DONE]")
        .filter_map(|e| {
            e.json()["choices"][0]["finish_reason"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

fn error_event(events: &[Event]) -> Option<Value> {
    events
        .iter()
        .filter(|e| e.data != "[DONE]")
        .map(Event::json)
        .find(|v| v.get("error").is_some())
}

/// Asserts the stream ended with the original break as an explicit error.
fn assert_explicit_error(events: &[Event]) {
    assert!(events.iter().all(|e| e.data != "[DONE]"), "{events:?}");
    assert_eq!(finishes(events), ["error"], "{events:?}");
    let error = error_event(events).expect("an error event");
    assert_eq!(error["error"]["code"], "stream_interrupted");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("(stream_interrupted)"),
        "the original break: {message}"
    );
    assert!(
        !message.contains("prefill"),
        "not the recovery's 400: {message}"
    );
}

#[tokio::test]
async fn a_cut_stream_is_continued_on_a_target_that_takes_a_prefill() {
    let (gw, a, b) = gateway(CUT, "", "supports_prefill = true", "").await;
    let mut body = request(true);
    body["stream_options"] = json!({"include_usage": true});
    let response = gw.chat(&body).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let events = sse_events(&response.text().await.unwrap());
    assert_eq!(streamed_text(&events), DEFAULT_ANSWER, "{events:?}");
    assert_eq!(finishes(&events), ["stop"]);
    assert_eq!(events.last().unwrap().data, "[DONE]");
    assert!(error_event(&events).is_none());
    let chunks: Vec<Value> = events
        .iter()
        .filter(|e| e.data != "[DONE]")
        .map(Event::json)
        .collect();
    assert!(
        chunks.iter().all(|c| c["id"] == chunks[0]["id"]),
        "one chunk id throughout"
    );
    assert!(chunks.iter().all(|c| c["model"] == chunks[0]["model"]));
    assert_eq!(b.provider.stats().prefill_continuations, 1);
    assert_eq!(a.calls(), 1, "no restart before the continuation");

    let usage = chunks.iter().rev().find_map(|c| c.get("usage")).unwrap();
    let ledger = gw.ledger(&headers).await;
    assert_eq!(ledger["result"], "ok", "{ledger}");
    let attempts = ledger["attempts"].as_array().unwrap();
    assert_eq!(
        attempts.len(),
        2,
        "the break and the continuation: {ledger}"
    );
    assert_eq!(attempts[0]["target"], "a");
    assert_eq!(attempts[1]["target"], "b");
    assert!(attempts[0].get("recovery").is_none(), "{ledger}");
    assert_eq!(attempts[1]["recovery"], "continuation", "{ledger}");
    let continued = attempts[1]["output_tokens"].as_u64().unwrap();
    assert!(
        attempts[0]["output_tokens"].as_u64().unwrap() > 0,
        "{ledger}"
    );
    assert_eq!(
        usage["completion_tokens"].as_u64().unwrap(),
        ledger["output_tokens"].as_u64().unwrap(),
        "the usage sums every attempt: {usage} {ledger}"
    );
    assert!(usage["completion_tokens"].as_u64().unwrap() > continued);
}

#[tokio::test]
async fn an_anthropic_client_gets_the_continuation_as_more_deltas() {
    let (gw, _a, b) = gateway(CUT, "", "supports_prefill = true", "").await;
    let body = json!({"model": "smart", "max_tokens": 200, "stream": true,
        "messages": [{"role": "user", "content": "Hello"}]});
    let text = gw.post("/v1/messages", &body).await.text().await.unwrap();
    let events = sse_events(&text);
    assert_eq!(streamed_text(&events), DEFAULT_ANSWER, "{text}");
    let named = |name: &str| {
        events
            .iter()
            .filter(|e| e.event.as_deref() == Some(name))
            .count()
    };
    assert_eq!(named("message_start"), 1, "{text}");
    assert_eq!(named("content_block_start"), 1, "{text}");
    assert_eq!(named("message_stop"), 1, "{text}");
    assert_eq!(named("error"), 0, "{text}");
    assert_eq!(b.provider.stats().prefill_continuations, 1);
}

#[tokio::test]
async fn without_a_prefill_target_a_restart_is_spliced_on() {
    let (gw, _a, b) = gateway(CUT, "supports_prefill = false", "", "").await;
    let response = gw.chat(&request(true)).await;
    let headers = response.headers().clone();
    let events = sse_events(&response.text().await.unwrap());
    assert_eq!(streamed_text(&events), DEFAULT_ANSWER, "{events:?}");
    assert_eq!(finishes(&events), ["stop"]);
    assert_eq!(events.last().unwrap().data, "[DONE]");
    assert_eq!(b.calls(), 1);
    assert_eq!(b.provider.stats().prefill_continuations, 0);
    let ledger = gw.ledger(&headers).await;
    assert_eq!(ledger["result"], "ok", "{ledger}");
    let last = ledger["attempts"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["target"], "b", "{ledger}");
    assert_eq!(last["recovery"], "splice", "{ledger}");
}

#[tokio::test]
async fn a_restart_that_diverges_ends_with_the_original_break() {
    // `b` claims to take a prefill but refuses it (400), then answers differently.
    let b_faults =
        "supports_prefill = false\nanswer = \"Something else entirely, said differently.\"";
    let (gw, _a, b) = gateway(CUT, b_faults, "supports_prefill = true", "").await;
    let response = gw.chat(&request(true)).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let events = sse_events(&response.text().await.unwrap());
    assert!(DEFAULT_ANSWER.starts_with(&streamed_text(&events)));
    assert!(!streamed_text(&events).is_empty());
    assert_explicit_error(&events);
    assert!(
        b.calls() >= 2,
        "the continuation and the restart were tried"
    );
    let ledger = gw.ledger(&headers).await;
    assert_eq!(ledger["result"], "stream_error");
    let broke = ledger["stream_error"].as_str().unwrap();
    assert!(broke.starts_with("stream_interrupted"), "{ledger}");
    assert!(
        ledger["attempts"].as_array().unwrap().len() >= 3,
        "the break and the recovery attempts: {ledger}"
    );
}

#[tokio::test]
async fn a_cut_inside_a_tool_call_is_not_continued() {
    let a_faults = "cut_stream = { rate = 1.0, after_chunks = 2 }\n\
        tool_arguments = { city = \"Paris\", days = 3, units = \"metric\" }";
    let (gw, _a, b) = gateway(a_faults, "", "supports_prefill = true", "").await;
    let mut body = request(true);
    body["tools"] = json!([{"type": "function", "function": {"name": "weather",
        "parameters": {"type": "object", "properties": {}}}}]);
    let events = sse_events(&gw.chat(&body).await.text().await.unwrap());
    assert!(
        events.iter().any(|e| e.data.contains("\"tool_calls\"")),
        "part of the tool call arrived: {events:?}"
    );
    assert_explicit_error(&events);
    assert_eq!(b.calls(), 0, "no continuation of a tool call");
}

#[tokio::test]
async fn mid_stream_error_ends_with_an_explicit_error_as_before() {
    let (gw, _a, b) = gateway(CUT, "", "supports_prefill = true", "mid_stream = \"error\"").await;
    let events = sse_events(&gw.chat(&request(true)).await.text().await.unwrap());
    assert!(!streamed_text(&events).is_empty());
    assert_explicit_error(&events);
    assert_eq!(b.calls(), 0);
}

#[tokio::test]
async fn an_in_band_error_mid_stream_is_continued() {
    let a_faults = "inband_error = { rate = 1.0, after_chunks = 4 }";
    let (gw, _a, b) = gateway(a_faults, "", "supports_prefill = true", "").await;
    let events = sse_events(&gw.chat(&request(true)).await.text().await.unwrap());
    assert_eq!(streamed_text(&events), DEFAULT_ANSWER, "{events:?}");
    assert_eq!(finishes(&events), ["stop"]);
    assert_eq!(b.provider.stats().prefill_continuations, 1);
}

#[tokio::test]
async fn a_stall_past_the_idle_timeout_is_continued() {
    let a =
        Mock::openai("stall_stream = { rate = 1.0, after_chunks = 3, duration = \"3s\" }").await;
    let b = Mock::openai("").await;
    let toml = format!(
        "{}{}{}{}supports_prefill = true\n[routes.smart]\ntargets = [\"a\", \"b\"]\n",
        openai_provider("pa", &a),
        openai_provider("pb", &b),
        target("a", "pa", 100_000).replace("idle = \"5s\"", "idle = \"300ms\""),
        target("b", "pb", 100_000),
    );
    let gw = Gw::start(&toml).await;
    let response = gw.chat(&request(true)).await;
    let headers = response.headers().clone();
    let events = sse_events(&response.text().await.unwrap());
    assert_eq!(streamed_text(&events), DEFAULT_ANSWER, "{events:?}");
    assert_eq!(finishes(&events), ["stop"]);
    let ledger = gw.ledger(&headers).await;
    assert_eq!(ledger["result"], "ok", "{ledger}");
    assert_eq!(ledger["attempts"][1]["target"], "b", "{ledger}");
}

/// The value of the sample `name{labels}` in a scrape, 0 when it is absent (the
/// exposition leaves zero counters out).
fn sample(text: &str, name: &str, labels: &str) -> u64 {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

async fn scrape(gw: &Gw) -> String {
    let response = gw.client.get(gw.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

#[tokio::test]
async fn breaks_and_recoveries_are_counted_by_outcome_and_path() {
    // A continuation that finishes the answer.
    let (gw, _a, _b) = gateway(CUT, "", "supports_prefill = true", "").await;
    let events = sse_events(&gw.chat(&request(true)).await.text().await.unwrap());
    assert_eq!(streamed_text(&events), DEFAULT_ANSWER);
    let text = scrape(&gw).await;
    let breaks = "holdfast_stream_breaks_total";
    let recoveries = "holdfast_stream_recoveries_total";
    assert_eq!(
        sample(&text, breaks, "target=\"a\",outcome=\"stream_interrupted\""),
        1,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            recoveries,
            "route=\"smart\",path=\"continuation\",result=\"ok\""
        ),
        1,
        "{text}"
    );
    for labels in [
        "route=\"smart\",path=\"continuation\",result=\"failed\"",
        "route=\"smart\",path=\"splice\",result=\"ok\"",
        "route=\"smart\",path=\"splice\",result=\"failed\"",
    ] {
        assert_eq!(sample(&text, recoveries, labels), 0, "{labels}: {text}");
    }

    // A continuation refused and restarts that diverge: every try failed, and the
    // one break is still one break.
    let b_faults =
        "supports_prefill = false\nanswer = \"Something else entirely, said differently.\"";
    let (gw, _a, _b) = gateway(CUT, b_faults, "supports_prefill = true", "").await;
    let events = sse_events(&gw.chat(&request(true)).await.text().await.unwrap());
    assert_explicit_error(&events);
    let text = scrape(&gw).await;
    assert_eq!(
        sample(&text, breaks, "target=\"a\",outcome=\"stream_interrupted\""),
        1,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            recoveries,
            "route=\"smart\",path=\"continuation\",result=\"failed\""
        ),
        1,
        "{text}"
    );
    assert!(
        sample(
            &text,
            recoveries,
            "route=\"smart\",path=\"splice\",result=\"failed\""
        ) >= 1,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            recoveries,
            "route=\"smart\",path=\"splice\",result=\"ok\""
        ),
        0,
        "{text}"
    );

    // A break on a route that does not recover is counted too, with no recovery.
    let (gw, _a, _b) = gateway(CUT, "", "supports_prefill = true", "mid_stream = \"error\"").await;
    let events = sse_events(&gw.chat(&request(true)).await.text().await.unwrap());
    assert_explicit_error(&events);
    let text = scrape(&gw).await;
    assert_eq!(
        sample(&text, breaks, "target=\"a\",outcome=\"stream_interrupted\""),
        1,
        "{text}"
    );
    assert!(
        !text.contains("holdfast_stream_recoveries_total{"),
        "{text}"
    );
}

/// A raw upstream on 127.0.0.1 that answers every request with `body` as one chunked
/// event stream, ends the body cleanly, and then holds the connection open, as a
/// provider that never sends `[DONE]` but does not hang up either.
async fn raw_upstream(body: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                // The request itself does not matter: read its head and some body.
                let mut buf = vec![0u8; 65536];
                let _ = socket.read(&mut buf).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                            transfer-encoding: chunked\r\n\r\n";
                let reply = format!("{head}{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.flush().await;
                let clock = SystemClock::new();
                clock
                    .sleep_until(clock.now() + std::time::Duration::from_secs(30))
                    .await;
            });
        }
    });
    base
}

#[tokio::test]
async fn a_stream_that_ends_after_its_finish_reason_without_done_is_finalised_at_once() {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-raw", "object": "chat.completion.chunk", "created": 1,
            "model": "raw", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let events = [
        chunk(
            json!({"role": "assistant", "content": "Hello"}),
            Value::Null,
        ),
        chunk(json!({"content": " there."}), Value::Null),
        chunk(json!({}), json!("stop")),
        json!({"id": "chatcmpl-raw", "object": "chat.completion.chunk", "created": 1,
            "model": "raw", "choices": [],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}),
    ];
    let body: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    let base = raw_upstream(body).await;
    // An idle timeout far above the bound asserted below: "at once" is not "at the
    // idle timeout".
    let toml = format!(
        "[providers.raw]\nformat = \"openai\"\nbase_url = \"{base}\"\n{}\
         [routes.smart]\ntargets = [\"a\"]\n",
        target("a", "raw", 100_000),
    );
    let gw = Gw::start(&toml).await;
    let mut body = request(true);
    body["stream_options"] = json!({"include_usage": true});
    let clock = SystemClock::new();
    let started = clock.now();
    let response = gw.chat(&body).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let events = sse_events(&response.text().await.unwrap());
    let took = clock.now().saturating_duration_since(started);
    assert!(
        took < std::time::Duration::from_secs(2),
        "finalised at once, not at the 5 s idle timeout: {took:?}"
    );
    assert_eq!(streamed_text(&events), "Hello there.", "{events:?}");
    assert_eq!(finishes(&events), ["stop"]);
    assert_eq!(events.last().unwrap().data, "[DONE]", "{events:?}");
    assert!(error_event(&events).is_none(), "{events:?}");
    let usage = events
        .iter()
        .filter(|e| e.data != "[DONE]")
        .rev()
        .find_map(|e| e.json().get("usage").cloned().filter(|u| !u.is_null()))
        .expect("a usage chunk");
    assert_eq!(usage["completion_tokens"], 3, "{usage}");
    assert_eq!(usage["prompt_tokens"], 7, "{usage}");
    let ledger = gw.ledger(&headers).await;
    assert_eq!(ledger["result"], "ok", "{ledger}");
    assert_eq!(ledger["output_tokens"], 3, "{ledger}");
    assert_eq!(ledger["attempts"][0]["output_tokens"], 3, "{ledger}");
}
