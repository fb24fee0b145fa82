//! The gateway against injected upstream faults, end to end: the real binary serving
//! real sockets, mock providers failing the way real ones do.
//!
//! Each test is one acceptance criterion of the gateway's resilience (503s, outages,
//! long Retry-After, silence, stalled and cut streams, context overflow, auth errors,
//! deadlines, idempotency). They assert what a client sees (status, body, latency,
//! `x-holdfast-*` headers), what the providers saw (the mocks' own counts), and what the
//! attempt ledger says, so that a pass cannot come from the wrong mechanism.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use support::{
    ConfigBuilder, Gateway, Mock, Stopwatch, assert_openai_error, attempts, chat_body, field,
    finish_reasons, header, pause, serial, sse_events, stream_text,
};

/// A policy that tries each target once: latency then equals one timeout, not three.
const ONCE: &str = r#"retry = { max_attempts = 1, base = "10ms", cap = "50ms" }"#;

/// Short timeouts for a target that is expected to hang.
const SHORT_TIMEOUTS: &str =
    r#"timeouts = { connect = "300ms", first_byte = "300ms", idle = "300ms", total = "300ms" }"#;

async fn ok_json(gateway: &Gateway, body: &Value) -> (reqwest::header::HeaderMap, Value) {
    let response = gateway.chat(body).send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{status}: {text}");
    (headers, serde_json::from_str(&text).unwrap())
}

fn target_of(headers: &reqwest::header::HeaderMap) -> String {
    header(headers, "x-holdfast-target").expect("x-holdfast-target on a served answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_percent_503s_on_the_primary_all_succeed_with_few_upstream_calls() {
    let _serial = serial().await;
    let primary = Mock::start("openai", &["--rate-503", "0.2"]);
    let fallback = Mock::start("openai", &[]);
    let config = ConfigBuilder::new()
        .target("primary", &primary, "")
        .target("fallback", &fallback, "")
        .route("smart", &["primary", "fallback"], "");
    let gateway = Gateway::start(&config);

    const REQUESTS: usize = 300;
    const WORKERS: usize = 6;
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (client, url) = (gateway.client.clone(), gateway.url("/v1/chat/completions"));
        workers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for i in (w..REQUESTS).step_by(WORKERS) {
                let response = client
                    .post(&url)
                    .json(&chat_body("smart", &format!("request {i}"), false))
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status().is_success() => {
                        let body: Value = r.json().await.unwrap();
                        assert!(
                            body["choices"][0]["message"]["content"]
                                .as_str()
                                .is_some_and(|s| !s.is_empty())
                        );
                    }
                    Ok(r) => failures.push(format!(
                        "{}: {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    )),
                    Err(e) => failures.push(e.to_string()),
                }
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for worker in workers {
        failures.extend(worker.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} of {REQUESTS} client requests failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );

    let (p, f) = (primary.stats().await, fallback.total().await);
    let upstream = p["total"].as_u64().unwrap() + f;
    let per_request = upstream as f64 / REQUESTS as f64;
    eprintln!(
        "20% 503: {REQUESTS} client requests, {upstream} upstream calls ({per_request:.3} each); primary {p}, fallback {f}"
    );
    assert!(
        per_request <= 1.3,
        "{per_request:.3} upstream calls per client request (want ≤ 1.3)"
    );
}

/// What a traffic generator saw: when each request completed and who served it.
type Log = Arc<Mutex<Vec<(Duration, Result<String, String>)>>>;

/// Sends requests on `route` with `concurrency` workers until `stop`, recording for each
/// (its completion time since `clock` started, the target that served it or the error).
fn traffic(
    gateway: &Gateway,
    route: &str,
    concurrency: usize,
    clock: Arc<Stopwatch>,
    stop: Arc<AtomicBool>,
) -> (Log, Vec<tokio::task::JoinHandle<()>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for _ in 0..concurrency {
        let (client, url, route) = (
            gateway.client.clone(),
            gateway.url("/v1/chat/completions"),
            route.to_owned(),
        );
        let (log, clock, stop) = (Arc::clone(&log), Arc::clone(&clock), Arc::clone(&stop));
        handles.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let result = match client
                    .post(&url)
                    .json(&chat_body(&route, "hello", false))
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {
                        let target = header(r.headers(), "x-holdfast-target")
                            .unwrap_or_else(|| "<no x-holdfast-target>".into());
                        r.bytes().await.map(|_| target).map_err(|e| e.to_string())
                    }
                    Ok(r) => Err(format!(
                        "{}: {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    )),
                    Err(e) => Err(e.to_string()),
                };
                log.lock().unwrap().push((clock.elapsed(), result));
            }
        }));
    }
    (log, handles)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_outage_opens_the_breaker_and_traffic_returns_when_it_heals() {
    let _serial = serial().await;
    let primary = Mock::start("openai", &[]);
    let fallback = Mock::start("openai", &[]);
    let config = ConfigBuilder::new()
        .target("primary", &primary, "")
        .target("fallback", &fallback, "")
        .policy(
            "outage",
            r#"retry = { max_attempts = 2, base = "10ms", cap = "20ms" }
breaker = { failure_rate = 0.5, window = "5s", min_calls = 5, open_for = "500ms", max_open_for = "1s", half_open_probes = 1 }"#,
        )
        .route("smart", &["primary", "fallback"], "policy = \"outage\"");
    let gateway = Gateway::start(&config);

    // Healthy: the primary serves.
    for _ in 0..10 {
        let (headers, _) = ok_json(&gateway, &chat_body("smart", "warm up", false)).await;
        assert_eq!(target_of(&headers), "primary");
    }
    assert_eq!(gateway.breaker("primary").await, "closed");

    let clock = Arc::new(Stopwatch::start());
    let stop = Arc::new(AtomicBool::new(false));
    primary
        .set_faults(json!({"error_rates": {"503": 1.0}}))
        .await;
    let outage_at = clock.elapsed();
    let (log, handles) = traffic(&gateway, "smart", 4, Arc::clone(&clock), Arc::clone(&stop));

    // The breaker opens within 1 s.
    let opened_after = loop {
        if gateway.breaker("primary").await == "open" {
            break clock.elapsed() - outage_at;
        }
        assert!(
            clock.elapsed() - outage_at < Duration::from_secs(3),
            "the primary's breaker did not open within 3 s of its outage"
        );
        pause(Duration::from_millis(10)).await;
    };
    eprintln!("breaker opened {opened_after:?} after the outage began");
    assert!(
        opened_after <= Duration::from_secs(1),
        "the breaker opened {opened_after:?} after the outage (want ≤ 1 s)"
    );

    // While open: almost no traffic reaches the primary.
    let (p0, c0) = (primary.total().await, log.lock().unwrap().len());
    pause(Duration::from_millis(1500)).await;
    let (p1, c1) = (primary.total().await, log.lock().unwrap().len());
    let clients = (c1 - c0).max(1) as f64;
    let share = (p1 - p0) as f64 / clients;
    eprintln!(
        "while open: {} primary calls for {} client requests ({share:.4} each)",
        p1 - p0,
        c1 - c0
    );
    assert!(
        c1 - c0 >= 20,
        "too little traffic to judge ({} client requests in 1.5 s)",
        c1 - c0
    );
    assert!(
        share <= 0.05,
        "{share:.3} primary calls per client request while its breaker is open (want ≤ 0.05)"
    );

    // Heal: the primary serves again within 2 s.
    primary.set_faults(json!({})).await;
    let healed_at = clock.elapsed();
    let recovered_after = loop {
        let since = clock.elapsed() - healed_at;
        {
            let log = log.lock().unwrap();
            let after: Vec<_> = log.iter().filter(|(at, _)| *at > healed_at).collect();
            // The first of 5 consecutive answers from the primary.
            if let Some(window) = after
                .windows(5)
                .find(|w| w.iter().all(|(_, r)| r.as_deref() == Ok("primary")))
            {
                break window[0].0 - healed_at;
            }
        }
        assert!(
            since < Duration::from_secs(5),
            "traffic did not return to the primary within 5 s of it healing"
        );
        pause(Duration::from_millis(20)).await;
    };
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        handle.await.unwrap();
    }
    eprintln!("traffic returned to the primary {recovered_after:?} after it healed");
    assert!(
        recovered_after <= Duration::from_secs(2),
        "traffic returned {recovered_after:?} after healing (want ≤ 2 s)"
    );

    assert_eq!(gateway.breaker("primary").await, "closed");
    let log = log.lock().unwrap();
    let failed: Vec<_> = log.iter().filter_map(|(_, r)| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} client requests failed with a healthy fallback: {:?}",
        failed.len(),
        log.len(),
        &failed[..failed.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_longer_than_the_threshold_falls_back_without_waiting() {
    let _serial = serial().await;
    let primary = Mock::start("openai", &["--rate-429", "1", "--retry-after", "5s"]);
    let fallback = Mock::start("openai", &[]);
    let config = ConfigBuilder::new()
        .target("primary", &primary, "")
        .target("fallback", &fallback, "")
        .route("smart", &["primary", "fallback"], "")
        .route("warm", &["fallback"], "");
    let gateway = Gateway::start(&config);
    gateway.warm_up("warm").await;
    fallback.reset().await;

    let clock = Stopwatch::start();
    let (headers, _) = ok_json(&gateway, &chat_body("smart", "hello", false)).await;
    let elapsed = clock.elapsed();
    eprintln!(
        "429 + Retry-After 5s: answered in {elapsed:?} by {}",
        target_of(&headers)
    );
    assert!(
        elapsed < Duration::from_secs(1),
        "the client waited {elapsed:?} (want far below the 5 s Retry-After)"
    );
    assert_eq!(target_of(&headers), "fallback");
    assert_eq!(
        header(&headers, "x-holdfast-attempts").as_deref(),
        Some("2"),
        "one attempt on each target"
    );
    let cost = header(&headers, "x-holdfast-cost-usd").expect("x-holdfast-cost-usd");
    assert!(
        cost.parse::<f64>().is_ok_and(|c| c >= 0.0),
        "x-holdfast-cost-usd: {cost}"
    );
    assert_eq!(
        primary.total().await,
        1,
        "the primary is not retried before its Retry-After"
    );

    let ledger = gateway.ledger_of(&headers).await;
    let attempts = attempts(&ledger);
    let first = &attempts[0];
    assert_eq!(field(first, "target"), "primary", "ledger {ledger}");
    assert_eq!(field(first, "outcome"), "rate_limited", "ledger {ledger}");
    assert!(
        field(first, "next")
            .to_lowercase()
            .replace(['_', ' ', '-'], "")
            .contains("fallback"),
        "the ledger shows a fall-back after the 429: {ledger}"
    );
    let last = attempts.last().unwrap();
    assert_eq!(field(last, "target"), "fallback", "ledger {ledger}");
    assert_eq!(field(last, "outcome"), "ok", "ledger {ledger}");
    let waited = last.get("waited_ms").and_then(Value::as_f64).unwrap_or(0.0);
    assert!(
        waited < 1000.0,
        "the fallback attempt waited {waited} ms: {ledger}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_primary_times_out_and_the_fallback_serves() {
    let _serial = serial().await;
    let primary = Mock::start("openai", &["--silent", "1"]);
    let fallback = Mock::start("openai", &[]);
    let config = ConfigBuilder::new()
        .target("primary", &primary, SHORT_TIMEOUTS)
        .target("fallback", &fallback, "")
        .policy("once", ONCE)
        .route("smart", &["primary", "fallback"], "policy = \"once\"")
        .route("warm", &["fallback"], "");
    let gateway = Gateway::start(&config);
    gateway.warm_up("warm").await;

    for stream in [false, true] {
        let clock = Stopwatch::start();
        let response = gateway
            .chat(&chat_body("smart", "hello", stream))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let elapsed = clock.elapsed();
        eprintln!("silent primary (stream {stream}): {status} in {elapsed:?}");
        assert!(status.is_success(), "{status}: {text}");
        assert_eq!(target_of(&headers), "fallback");
        assert!(
            elapsed >= Duration::from_millis(250),
            "answered in {elapsed:?}: before the 300 ms timeout?"
        );
        assert!(
            elapsed <= Duration::from_millis(1200),
            "answered in {elapsed:?} (want ≈ the 300 ms timeout)"
        );
        if stream {
            assert!(
                !stream_text(&sse_events(&text)).is_empty(),
                "an empty stream: {text}"
            );
        }
        let ledger = gateway.ledger_of(&headers).await;
        let first = &attempts(&ledger)[0];
        assert_eq!(field(first, "target"), "primary", "ledger {ledger}");
        assert!(
            field(first, "outcome").starts_with("timeout"),
            "the primary's attempt is a timeout: {ledger}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_broken_before_the_first_byte_fails_over_to_the_fallback() {
    let _serial = serial().await;
    let stalled = Mock::start("openai", &["--stall-first-byte", "1:10s"]);
    let refusing = Mock::start("openai", &["--rate-503", "1"]);
    let fallback = Mock::start("openai", &[]);
    let config = ConfigBuilder::new()
        .target(
            "stalled",
            &stalled,
            r#"timeouts = { first_byte = "300ms", total = "30s" }"#,
        )
        .target("refusing", &refusing, "")
        .target("fallback", &fallback, "")
        .policy("once", ONCE)
        .route("stall", &["stalled", "fallback"], "policy = \"once\"")
        .route("refuse", &["refusing", "fallback"], "policy = \"once\"");
    let gateway = Gateway::start(&config);

    // The whole answer a healthy stream carries, for comparison.
    let expected = {
        let response = fallback.process.addr;
        let client = support::client();
        let body: Value = client
            .post(format!("http://{response}/v1/chat/completions"))
            .json(&chat_body("mock", "hello", false))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    fallback.reset().await;

    for route in ["stall", "refuse"] {
        let clock = Stopwatch::start();
        let response = gateway
            .chat(&chat_body(route, "hello", true))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        eprintln!("{route}: {status} in {:?}", clock.elapsed());
        assert!(status.is_success(), "{route}: {status}: {text}");
        assert_eq!(target_of(&headers), "fallback", "{route}");
        let events = sse_events(&text);
        assert_eq!(
            stream_text(&events),
            expected,
            "{route}: the fallback's whole answer"
        );
        assert_eq!(finish_reasons(&events), ["stop"], "{route}: {text}");
        assert_eq!(
            events.last().map(|e| e.data.as_str()),
            Some("[DONE]"),
            "{route}: {text}"
        );
        assert!(
            !text.contains("\"error\""),
            "{route}: a clean fail-over shows no error: {text}"
        );
    }
    assert_eq!(fallback.total().await, 2);
}

/// Reads a streamed body to its end, keeping what arrived if the connection breaks.
async fn read_stream(response: reqwest::Response) -> (String, Option<String>) {
    use futures_util::StreamExt;
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => body.extend_from_slice(&bytes),
            Err(e) => {
                return (
                    String::from_utf8_lossy(&body).into_owned(),
                    Some(e.to_string()),
                );
            }
        }
    }
    (String::from_utf8_lossy(&body).into_owned(), None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_cut_after_the_first_byte_ends_with_an_explicit_error() {
    let _serial = serial().await;
    let primary = Mock::start("openai", &["--cut-stream", "1:3"]);
    let fallback = Mock::start("openai", &[]);
    let config = ConfigBuilder::new()
        .target("primary", &primary, "")
        .target("fallback", &fallback, "supports_prefill = false")
        .route("solo", &["primary"], "mid_stream = \"error\"")
        .route("chain", &["primary", "fallback"], "mid_stream = \"error\"")
        // Continuing is asked for, but no target takes a prefill and the only one
        // cuts every answer at the same point, so no restart can be spliced on.
        .route("no_prefill", &["primary"], "mid_stream = \"continue\"");
    let gateway = Gateway::start(&config);

    for route in ["solo", "chain", "no_prefill"] {
        let response = gateway
            .chat(&chat_body(route, "hello", true))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let (text, broken) = read_stream(response).await;
        eprintln!("{route}: {status}, transport error {broken:?}");
        assert!(
            status.is_success(),
            "{route}: the stream had started: {status}: {text}"
        );
        let events = sse_events(&text);
        assert!(
            !stream_text(&events).is_empty(),
            "{route}: the first chunks reached the client: {text}"
        );
        let error = events
            .iter()
            .filter_map(|e| e.json())
            .find(|v| v.get("error").is_some());
        assert!(
            error.is_some(),
            "{route}: no explicit error event (transport: {broken:?}): {text}"
        );
        let error = error.unwrap();
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{route}: {error}"
        );
        let finishes = finish_reasons(&events);
        assert!(
            !finishes.iter().any(|f| f == "stop"),
            "{route}: a cut stream must not finish with `stop`: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_overflow_falls_back_to_the_larger_context_target() {
    let _serial = serial().await;
    let small = Mock::start("openai", &["--context-window", "50"]);
    let large = Mock::start("openai", &[]);
    // The small target declares more than its provider accepts, so holdfast tries it and
    // meets the provider's own overflow error.
    let config = ConfigBuilder::new()
        .target_sized("small", &small, 1000, "")
        .target_sized("large", &large, 200_000, "")
        .route("smart", &["small", "large"], "");
    let gateway = Gateway::start(&config);

    let prompt = "Tell me everything about this long document. ".repeat(50); // ≈ 560 tokens
    let (headers, body) = ok_json(&gateway, &chat_body("smart", &prompt, false)).await;
    assert_eq!(target_of(&headers), "large");
    assert!(
        body["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    assert!(
        small.total().await <= 1,
        "a context overflow is not retried on the same target"
    );
    assert_eq!(large.total().await, 1);
    let ledger = gateway.ledger_of(&headers).await;
    let attempts = attempts(&ledger);
    if field(&attempts[0], "target") == "small" {
        assert_eq!(
            field(&attempts[0], "outcome"),
            "context_overflow",
            "ledger {ledger}"
        );
    }

    // A short prompt still goes to the small target.
    let (headers, _) = ok_json(&gateway, &chat_body("smart", "short", false)).await;
    assert_eq!(target_of(&headers), "small");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_error_is_not_retried_and_is_reported_clearly() {
    let _serial = serial().await;
    let primary = Mock::start("openai", &["--auth-fail"]);
    let fallback = Mock::start("openai", &[]);
    let config = ConfigBuilder::new()
        .target("primary", &primary, "")
        .target("fallback", &fallback, "")
        .route("solo", &["primary"], "")
        .route("smart", &["primary", "fallback"], "");
    let gateway = Gateway::start(&config);

    // No fallback: one call, then a clear error.
    let response = gateway
        .chat(&chat_body("solo", "hello", false))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    eprintln!("auth error, no fallback: {status}: {text}");
    assert!(!status.is_success(), "{status}: {text}");
    let body = assert_openai_error(&text, "auth error");
    let message = body["error"]["message"].as_str().unwrap().to_lowercase();
    assert!(
        ["auth", "unauthori", "401", "key", "credential"]
            .iter()
            .any(|w| message.contains(w)),
        "the error says it is an authentication problem: {text}"
    );
    assert_eq!(primary.total().await, 1, "an auth error is not retried");

    // With a fallback: one call to the primary, the fallback serves.
    primary.reset().await;
    let (headers, _) = ok_json(&gateway, &chat_body("smart", "hello", false)).await;
    assert_eq!(target_of(&headers), "fallback");
    assert_eq!(primary.total().await, 1, "an auth error is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_header_bounds_the_answer_time() {
    let _serial = serial().await;
    let slow = Mock::start("openai", &["--latency", "3s"]);
    let silent = Mock::start("openai", &["--silent", "1"]);
    let failing = Mock::start("openai", &["--rate-503", "1"]);
    let config = ConfigBuilder::new()
        .target("slow", &slow, "")
        .target("silent", &silent, "")
        .target("failing", &failing, "")
        .policy(
            "default",
            r#"retry = { max_attempts = 5, base = "100ms", cap = "1s" }"#,
        )
        .route("slow", &["slow", "silent"], "")
        .route("failing", &["failing"], "");
    let gateway = Gateway::start(&config);

    // The first case runs on a cold gateway: the deadline holds from the first request.
    let mut failures = Vec::new();
    for (route, stream) in [
        ("slow", false),
        ("slow", true),
        ("failing", false),
        ("slow", false),
    ] {
        let clock = Stopwatch::start();
        let response = gateway
            .chat(&chat_body(route, "hello", stream))
            .header("x-holdfast-deadline-ms", "500")
            .send()
            .await
            .unwrap();
        let status = response.status();
        let (text, _) = read_stream(response).await;
        let elapsed = clock.elapsed();
        eprintln!("deadline 500 ms on {route} (stream {stream}): {status} in {elapsed:?}: {text}");
        if elapsed > Duration::from_millis(750) {
            failures.push(format!(
                "{route} (stream {stream}): answered in {elapsed:?} (deadline 500 ms)"
            ));
        }
        if !status.is_success() && !stream {
            assert_openai_error(&text, route);
        }
    }
    assert!(
        failures.is_empty(),
        "the deadline was overrun:\n{}",
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_one_idempotency_key_make_one_upstream_call() {
    let _serial = serial().await;
    let primary = Mock::start("openai", &["--latency", "400ms"]);
    let config =
        ConfigBuilder::new()
            .target("primary", &primary, "")
            .route("smart", &["primary"], "");
    let gateway = Gateway::start(&config);

    let body = chat_body("smart", "charge the card once", false);
    let send = || {
        let request = gateway
            .chat(&body)
            .header("Idempotency-Key", "e2e-idem-0001");
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (status, response.text().await.unwrap())
        }
    };
    let ((s1, b1), (s2, b2)) = tokio::join!(send(), send());
    assert!(s1.is_success() && s2.is_success(), "{s1}: {b1}\n{s2}: {b2}");
    assert_eq!(b1, b2, "both requests get the same answer");
    assert_eq!(
        primary.total().await,
        1,
        "one upstream call for one idempotency key"
    );

    // Later repeats are answered from memory too; another key is a new call.
    let (s3, b3) = send().await;
    assert!(s3.is_success());
    assert_eq!(b3, b1);
    assert_eq!(primary.total().await, 1);
    let other = gateway
        .chat(&body)
        .header("Idempotency-Key", "e2e-idem-0002")
        .send()
        .await
        .unwrap();
    assert!(other.status().is_success());
    assert_eq!(primary.total().await, 2);
}
