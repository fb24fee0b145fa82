//! How fast the real binary gets around a faulty primary and back to it, with the
//! shipped defaults: no timeout, breaker or retry setting is tuned here, because a user
//! who tunes nothing must get these times.
//!
//! Each test is a provider fault from a failover suite (a primary that accepts the
//! connection and never answers, one whose first token takes 30 s, one that is down for
//! a while and then heals) with a healthy fallback behind it, and asserts the time the
//! client waits and which target served it, over real sockets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{ConfigBuilder, Gateway, Mock, Stopwatch, serial};

/// The longest a client may wait for the fallback's answer when the primary is silent.
const SILENCE_BUDGET: Duration = Duration::from_secs(12);

/// A route `smart` over `primary` then `fallback`, everything else at its default.
fn defaults(primary: &Mock, fallback: &Mock) -> ConfigBuilder {
    ConfigBuilder::default()
        .target("primary", primary, "")
        .target("fallback", fallback, "")
        .route("smart", &["primary", "fallback"], "")
}

/// Asks `smart` once, streamed or not: the status, the target that served and the time.
async fn timed_ask(gateway: &Gateway, stream: bool) -> (u16, Option<String>, Duration) {
    let clock = Stopwatch::start();
    let response = gateway
        .chat(&support::chat_body("smart", "hello", stream))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let target = support::header(response.headers(), "x-holdfast-target");
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    (status, target, clock.elapsed())
}

/// Asserts that both a plain and a streamed request are answered by the fallback in
/// [`SILENCE_BUDGET`], and that the primary was tried once per request, not retried.
async fn fallback_answers_in_time(primary: &Mock, gateway: &Gateway, fault: &str) {
    for stream in [false, true] {
        primary.reset().await;
        let (_, target, elapsed) = timed_ask(gateway, stream).await;
        eprintln!("{fault} (stream {stream}): served by {target:?} in {elapsed:?}");
        assert_eq!(target.as_deref(), Some("fallback"), "{fault}");
        assert!(
            elapsed <= SILENCE_BUDGET,
            "{fault} (stream {stream}): the client waited {elapsed:?}, more than {SILENCE_BUDGET:?}"
        );
        assert_eq!(
            primary.total().await,
            1,
            "{fault}: a silent primary is left for the fallback after one timeout"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_primary_is_answered_by_the_fallback_within_12s() {
    let _serial = serial().await;
    let primary = Mock::start("openai", &["--silent", "1"]);
    let fallback = Mock::start("openai", &[]);
    let gateway = Gateway::start(&defaults(&primary, &fallback));
    fallback_answers_in_time(&primary, &gateway, "silent primary").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_token_after_30s_is_answered_by_the_fallback_within_12s() {
    let _serial = serial().await;
    let primary = Mock::start("openai", &["--stall-first-byte", "1:30s"]);
    let fallback = Mock::start("openai", &[]);
    let gateway = Gateway::start(&defaults(&primary, &fallback));
    fallback_answers_in_time(&primary, &gateway, "first token after 30 s").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_falls_silent_after_answering_fast_is_left_within_seconds() {
    let _serial = serial().await;
    let primary = Mock::start("openai", &[]);
    let fallback = Mock::start("openai", &[]);
    let gateway = Gateway::start(&defaults(&primary, &fallback));
    for stream in [false, true] {
        for _ in 0..25 {
            let (_, target, _) = timed_ask(&gateway, stream).await;
            assert_eq!(target.as_deref(), Some("primary"));
        }
    }
    primary.set_faults(serde_json::json!({"silent": 1.0})).await;
    for stream in [false, true] {
        let (_, target, elapsed) = timed_ask(&gateway, stream).await;
        eprintln!("fell silent (stream {stream}): served by {target:?} in {elapsed:?}");
        assert_eq!(target.as_deref(), Some("fallback"));
        assert!(
            elapsed <= Duration::from_secs(3),
            "a target known to answer in milliseconds is declared silent at the 1 s floor, \
             not the 10 s ceiling: waited {elapsed:?} (stream {stream})"
        );
    }
}

/// How long the primary is down in the outage tests.
const OUTAGE: Duration = Duration::from_secs(60);

/// One request every this long, as in the failover suite.
const EVERY: Duration = Duration::from_secs(4);

/// Breaks `primary` (every call 503) for [`OUTAGE`] under one request every [`EVERY`],
/// each of which must be served; heals it and returns the instant it healed.
async fn outage_under_light_traffic(primary: &Mock, gateway: &Gateway) -> Stopwatch {
    primary
        .set_faults(serde_json::json!({"error_rates": {"503": 1.0}}))
        .await;
    let outage = Stopwatch::start();
    while outage.elapsed() < OUTAGE {
        let (status, target, elapsed) = timed_ask(gateway, false).await;
        assert_eq!(status, 200);
        assert_eq!(target.as_deref(), Some("fallback"), "during the outage");
        support::pause(EVERY.saturating_sub(elapsed)).await;
    }
    assert_ne!(
        gateway.breaker("primary").await,
        "closed",
        "a minute of failures opened the primary's breaker"
    );
    primary.set_faults(serde_json::json!({})).await;
    Stopwatch::start()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_probes_a_healed_primary_is_back_within_2s() {
    let _serial = serial().await;
    let primary = Mock::start("openai", &[]);
    let fallback = Mock::start("openai", &[]);
    let gateway = Gateway::start(&defaults(&primary, &fallback));
    let healed = outage_under_light_traffic(&primary, &gateway).await;
    while gateway.breaker("primary").await != "closed" {
        assert!(
            healed.elapsed() <= Duration::from_secs(2),
            "the primary's breaker is still {} {:?} after it healed",
            gateway.breaker("primary").await,
            healed.elapsed()
        );
        support::pause(Duration::from_millis(20)).await;
    }
    let back = healed.elapsed();
    eprintln!("with probes: breaker closed {back:?} after the primary healed");
    assert!(back <= Duration::from_secs(2), "closed after {back:?}");
    let (_, target, _) = timed_ask(&gateway, false).await;
    assert_eq!(target.as_deref(), Some("primary"));
    assert!(
        gateway
            .process
            .output()
            .contains("an active probe succeeded"),
        "the transition is logged with why:\n{}",
        gateway.process.output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_probes_a_healed_primary_is_back_within_30s() {
    let _serial = serial().await;
    let primary = Mock::start("openai", &[]);
    let fallback = Mock::start("openai", &[]);
    let config = ConfigBuilder::default()
        .target("primary", &primary, "probe = { enabled = false }")
        .target("fallback", &fallback, "")
        .route("smart", &["primary", "fallback"], "");
    let gateway = Gateway::start(&config);
    let healed = outage_under_light_traffic(&primary, &gateway).await;
    loop {
        let (status, target, elapsed) = timed_ask(&gateway, false).await;
        assert_eq!(status, 200, "every request is served");
        if target.as_deref() == Some("primary") {
            break;
        }
        assert!(
            healed.elapsed() <= Duration::from_secs(30),
            "no traffic on the primary {:?} after it healed",
            healed.elapsed()
        );
        support::pause(EVERY.saturating_sub(elapsed)).await;
    }
    let back = healed.elapsed();
    eprintln!("without probes: first request on the primary {back:?} after it healed");
    assert!(back <= Duration::from_secs(30), "back after {back:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_retry_on_next_a_503_moves_to_the_fallback_without_a_second_try() {
    let _serial = serial().await;
    let primary = Mock::start("openai", &["--rate-503", "1"]);
    let fallback = Mock::start("openai", &[]);
    let config = ConfigBuilder::default()
        .target("primary", &primary, "")
        .target("fallback", &fallback, "")
        .route("smart", &["primary", "fallback"], "retry_on = \"next\"");
    let gateway = Gateway::start(&config);
    for _ in 0..5 {
        let (_, target, _) = timed_ask(&gateway, false).await;
        assert_eq!(target.as_deref(), Some("fallback"));
    }
    assert_eq!(
        primary.total().await,
        5,
        "each request tried the primary once and moved on at once"
    );
}

/// When a Retry-After hold on a target ends under 8 concurrent clients, one call
/// reaches it first and the others wait for its answer, instead of all eight arriving
/// the moment the hold ends. The target answers in 300 ms, so every call that arrives
/// while the first is still out is a call the herd sent before any verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_of_a_retry_after_hold_lets_one_call_through_before_its_answer() {
    let _serial = serial().await;
    let primary = Mock::start("openai", &[]);
    let config = ConfigBuilder::default()
        .target("primary", &primary, "")
        .route("solo", &["primary"], "");
    let gateway = Gateway::start(&config);
    gateway.warm_up("solo").await;
    primary
        .set_faults(serde_json::json!({
            "outages": [{"start": "0s", "end": "200ms", "status": 429}],
            "error_rates": {"retry_after": "1s"},
            "latency": "300ms",
        }))
        .await;
    primary.reset().await;

    let clients: Vec<_> = (0..8)
        .map(|i| {
            let request = gateway.chat(&support::chat_body("solo", &format!("client {i}"), false));
            tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
        })
        .collect();
    for client in clients {
        assert_eq!(
            client.await.unwrap(),
            200,
            "every client is served in the end"
        );
    }

    let mut log = primary.requests().await;
    log.sort_by_key(|r| r["seq"].as_u64());
    let held: Vec<&serde_json::Value> = log
        .iter()
        .filter(|r| r["outcome"] == "rate_limited")
        .collect();
    assert_eq!(held.len(), 8, "all eight met the hold: {log:?}");
    let after: Vec<u64> = log
        .iter()
        .filter(|r| r["outcome"] != "rate_limited")
        .map(|r| r["at_ms"].as_u64().unwrap())
        .collect();
    let first = after[0];
    let before_its_answer = after.iter().filter(|&&at| at < first + 300).count();
    eprintln!(
        "calls that reached the target before the first verdict after the hold: {before_its_answer} (arrivals at {after:?} ms)"
    );
    assert!(
        before_its_answer <= 2,
        "{before_its_answer} calls reached the target before the first answer after the hold (arrivals at {after:?} ms)"
    );
}
