//! Load shedding over real sockets: a flood of interactive and batch calls against a
//! provider that serves four calls at once (`mock-provider --capacity 4`), behind a
//! target limited to four calls in flight. The provider is never pushed past its
//! capacity, interactive calls jump the queue ahead of batch calls that came first,
//! and the calls that cannot be served in time get 503 `overloaded_shed` with a
//! Retry-After instead of waiting without end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{ConfigBuilder, Gateway, Mock, Stopwatch, serial};

const BATCH: usize = 80;
const INTERACTIVE: usize = 12;

fn config(mock: &Mock) -> ConfigBuilder {
    let limit = r#"concurrency = { adaptive = true, initial = 4, min = 4, max = 4, max_wait = "1s", max_queue = 200 }"#;
    ConfigBuilder::new()
        .target("solo", mock, limit)
        .route("solo", &["solo"], "")
        .raw("[[client_keys]]\nname = \"fg\"\nkey_env = \"FG_KEY\"\npriority = \"interactive\"\n")
        .raw("[[client_keys]]\nname = \"bg\"\nkey_env = \"BG_KEY\"\npriority = \"batch\"\n")
}

/// One call as `key`: its status, its Retry-After, its error code and how long it took.
async fn ask(gateway: &Gateway, key: &str) -> (u16, Option<String>, Option<String>, Duration) {
    let clock = Stopwatch::start();
    let response = gateway
        .chat(&support::chat_body("solo", "hello", false))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = support::header(response.headers(), "retry-after");
    let text = response.text().await.unwrap();
    let code = support::openai_error(&text)
        .ok()
        .and_then(|e| e["error"]["code"].as_str().map(str::to_owned));
    (status, retry_after, code, clock.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_shed_with_retry_after_and_interactive_keys_are_served_first() {
    let _serial = serial().await;
    let mock = Mock::start("openai", &["--capacity", "4", "--latency", "100ms"]);
    let envs = [("FG_KEY", "sk-fg-test"), ("BG_KEY", "sk-bg-test")];
    let gateway = std::sync::Arc::new(Gateway::start_with_env(&config(&mock), &envs));

    let mut batch = Vec::new();
    for _ in 0..BATCH {
        let gateway = gateway.clone();
        batch.push(tokio::spawn(
            async move { ask(&gateway, "sk-bg-test").await },
        ));
    }
    // The batch calls are in line first.
    support::pause(Duration::from_millis(150)).await;
    let mut interactive = Vec::new();
    for _ in 0..INTERACTIVE {
        let gateway = gateway.clone();
        interactive.push(tokio::spawn(
            async move { ask(&gateway, "sk-fg-test").await },
        ));
    }
    let mut fg = Vec::new();
    for call in interactive {
        fg.push(call.await.unwrap());
    }
    let mut bg = Vec::new();
    for call in batch {
        bg.push(call.await.unwrap());
    }

    for (status, _, code, elapsed) in &fg {
        assert_eq!(
            *status, 200,
            "an interactive call was refused ({code:?}) after {elapsed:?}"
        );
    }
    let slowest_fg = fg.iter().map(|c| c.3).max().unwrap();
    let served_bg = bg.iter().filter(|c| c.0 == 200).count();
    let shed: Vec<_> = bg.iter().filter(|c| c.0 == 503).collect();
    eprintln!(
        "interactive: {} served, slowest {slowest_fg:?}; batch: {served_bg} served, {} shed",
        fg.len(),
        shed.len()
    );
    // Four slots of 100 ms serve about 40 calls a second: the 80 batch calls cannot all
    // be served within their longest wait of 1 s, and the 12 interactive ones that came
    // later are served ahead of those still waiting.
    assert!(!shed.is_empty(), "nothing was shed: {bg:?}");
    for (status, retry_after, code, _) in &shed {
        assert_eq!(code.as_deref(), Some("overloaded_shed"), "status {status}");
        let seconds: u64 = retry_after.as_deref().unwrap().parse().unwrap();
        assert!(seconds >= 1, "Retry-After {seconds}");
    }
    assert!(
        bg.iter().all(|c| c.0 == 200 || c.0 == 503),
        "a batch call ended otherwise: {bg:?}"
    );
    assert!(
        slowest_fg < Duration::from_secs(1),
        "interactive calls waited behind batch calls: slowest {slowest_fg:?}"
    );
    // holdfast held the provider within its capacity: it never refused a call.
    let stats = mock.stats().await;
    assert_eq!(
        stats["by_fault"]["over_capacity"].as_u64().unwrap_or(0),
        0,
        "{stats}"
    );
    let metrics = gateway.metrics().await;
    let sheds = metrics
        .lines()
        .find(|l| l.starts_with("holdfast_concurrency_sheds_total{target=\"solo\"}"))
        .unwrap_or_else(|| panic!("no shed counter in {metrics}"));
    assert!(sheds.ends_with(&format!(" {}", shed.len())), "{sheds}");
    // The dashboard's targets table reads the same state.
    let targets: serde_json::Value = gateway
        .client
        .get(gateway.url("/v1/holdfast/targets"))
        .bearer_auth("sk-fg-test")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let load = &targets["data"][0]["concurrency"];
    assert_eq!(load["limit"], 4, "{targets}");
    assert_eq!(load["in_flight"], 0, "{targets}");
    assert_eq!(load["sheds"].as_u64(), Some(shed.len() as u64), "{targets}");
}
