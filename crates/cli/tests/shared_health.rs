//! Health shared by three `holdfast serve` nodes on one PostgreSQL schema
//! (`[cluster] share_health = true`), over real sockets: the nodes hold one target's
//! 600 requests/min limit together within ±5% under load at all three, and a client
//! key's 300 requests/min limit the same way, a breaker opened
//! by one node is open on the other two within a second (and an operator's reset on one
//! closes it on all), a node whose store stops answering falls back to its own limits
//! and says so, and a SQLite store refuses the setting.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use support::{ConfigBuilder, Gateway, Mock, Stopwatch, TempDir, chat_body, pause};

/// A schema of its own in the test database, dropped at the end.
struct PgSchema {
    server: String,
    schema: String,
    url: String,
}

impl PgSchema {
    /// `None`, after a loud skip (a failure in CI), without `HOLDFAST_TEST_POSTGRES_URL`.
    fn for_test(prefix: &str) -> Option<PgSchema> {
        let server = support::needs::postgres_url()?;
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let schema = format!("{prefix}_{}_{millis}", std::process::id());
        let sep = if server.contains('?') { '&' } else { '?' };
        let url = format!("{server}{sep}schema={schema}");
        Some(PgSchema {
            server,
            schema,
            url,
        })
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .arg(&self.server)
            .arg("-qc")
            .arg(format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
            .output();
    }
}

/// Three nodes sharing health on `pg`, each with `config` and its own node id.
fn three_nodes(pg: &PgSchema, config: &ConfigBuilder) -> Vec<Gateway> {
    three_nodes_with_env(pg, config, &[])
}

/// As [`three_nodes`], with more environment variables.
fn three_nodes_with_env(
    pg: &PgSchema,
    config: &ConfigBuilder,
    env: &[(&str, &str)],
) -> Vec<Gateway> {
    ["a", "b", "c"]
        .iter()
        .map(|node| {
            let config = config
                .clone()
                .raw(&format!("[engine]\nnode_id = \"node-{node}\"\n"))
                .raw("[cluster]\nshare_health = true\n");
            let mut env = env.to_vec();
            env.push(("HOLDFAST_STORE_URL", &pg.url));
            Gateway::start_with_env(&config, &env)
        })
        .collect()
}

/// Loads every node with four clients (on `key`, if given), each sending again as soon
/// as it has an answer (after a short pause on a refusal): far more than the limit, at
/// every node. Once the shared bucket's full `burst` is spent, counts the calls that
/// reach `mock` over 30 s; answers them and the time they took.
async fn rate_after_burst(
    nodes: &Arc<Vec<Gateway>>,
    mock: &Mock,
    key: Option<&'static str>,
    burst: u64,
) -> (u64, Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for node in 0..nodes.len() {
        for _ in 0..4 {
            let (nodes, stop) = (Arc::clone(nodes), Arc::clone(&stop));
            clients.push(tokio::spawn(async move {
                let gateway = &nodes[node];
                while !stop.load(Ordering::Relaxed) {
                    let mut request = gateway.chat(&chat_body("m", "hello", false));
                    if let Some(key) = key {
                        request = request.bearer_auth(key);
                    }
                    let sent = request.timeout(Duration::from_secs(5)).send().await;
                    if !sent.is_ok_and(|r| r.status().is_success()) {
                        pause(Duration::from_millis(20)).await;
                    }
                }
            }));
        }
    }
    // The shared bucket starts full (the limit's burst): the window starts once the
    // burst is spent and the nodes take units only as fast as they refill.
    let started = Stopwatch::start();
    while mock.total().await < burst {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the {burst}-unit burst was not spent in 60 s: {} upstream calls",
            mock.total().await
        );
        pause(Duration::from_millis(100)).await;
    }
    pause(Duration::from_secs(2)).await;
    let before = mock.total().await;
    let watch = Stopwatch::start();
    pause(Duration::from_secs(30)).await;
    let calls = mock.total().await - before;
    let took = watch.elapsed();
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    (calls, took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_hold_a_shared_600_per_minute_limit_within_5_percent() {
    let Some(pg) = PgSchema::for_test("shared_limit") else {
        return;
    };
    let mock = Mock::start("openai", &[]);
    let config = ConfigBuilder::new()
        .target("limited", &mock, "requests_per_minute = 600")
        .route("m", &["limited"], "");
    let nodes = Arc::new(three_nodes(&pg, &config));
    let (calls, took) = rate_after_burst(&nodes, &mock, None, 600).await;
    let per_minute = calls as f64 * 60.0 / took.as_secs_f64();
    println!(
        "three nodes, one shared limit of 600/min: {calls} upstream calls in {:.2} s = {per_minute:.1}/min",
        took.as_secs_f64()
    );
    assert!(
        (570.0..=630.0).contains(&per_minute),
        "{per_minute:.1} upstream calls/min through three nodes holding 600/min together"
    );
    // Each node served its share: the limit is held together, not by one node alone.
    for gateway in nodes.iter() {
        let metrics = gateway.metrics().await;
        assert!(
            metrics.contains("holdfast_cluster_shared_health_up 1"),
            "{metrics}"
        );
        let granted = metrics
            .lines()
            .find(|l| l.starts_with("holdfast_cluster_units_granted_total{target=\"limited\""))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        assert!(granted >= 30, "node {} got {granted} units", gateway.base);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_hold_a_client_keys_shared_300_per_minute_limit_within_5_percent() {
    let Some(pg) = PgSchema::for_test("shared_key_limit") else {
        return;
    };
    const KEY: &str = "sk-shared-key-limit";
    let mock = Mock::start("openai", &[]);
    let config = ConfigBuilder::new()
        .target("open", &mock, "")
        .route("m", &["open"], "")
        .raw(
            "[[client_keys]]\nname = \"agent\"\nkey_env = \"HF_TEST_AGENT_KEY\"\n\
             requests_per_minute = 300\n",
        );
    let nodes = Arc::new(three_nodes_with_env(
        &pg,
        &config,
        &[("HF_TEST_AGENT_KEY", KEY)],
    ));
    let (calls, took) = rate_after_burst(&nodes, &mock, Some(KEY), 300).await;
    let per_minute = calls as f64 * 60.0 / took.as_secs_f64();
    println!(
        "three nodes, one client key limited to 300/min: {calls} answered in {:.2} s = {per_minute:.1}/min",
        took.as_secs_f64()
    );
    assert!(
        (285.0..=315.0).contains(&per_minute),
        "{per_minute:.1} requests/min answered for one key through three nodes holding 300/min together"
    );
    for gateway in nodes.iter() {
        let metrics = gateway.metrics().await;
        let granted = metrics
            .lines()
            .find(|l| l.starts_with("holdfast_cluster_units_granted_total{target=\"key:agent\""))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        assert!(granted >= 15, "node {} got {granted} units", gateway.base);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_breaker_opened_on_one_node_is_open_on_all_within_a_second() {
    let Some(pg) = PgSchema::for_test("shared_breaker") else {
        return;
    };
    let mock = Mock::start("openai", &[]);
    mock.set_faults(json!({"error_rates": {"503": 1.0}})).await;
    let config = ConfigBuilder::new()
        .target("flaky", &mock, "")
        .route("m", &["flaky"], "policy = \"trip\"")
        .policy(
            "trip",
            "retry = { max_attempts = 1 }\n\
             breaker = { min_calls = 3, consecutive_failures = 3, open_for = \"60s\", max_open_for = \"120s\" }",
        );
    let nodes = three_nodes(&pg, &config);
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    for node in [a, b, c] {
        assert_eq!(node.breaker("flaky").await, "closed");
    }
    // Only node A calls the failing target.
    let mut calls = 0;
    while a.breaker("flaky").await != "open" {
        a.ask("m").await;
        calls += 1;
        assert!(
            calls < 50,
            "node A's breaker did not open after {calls} failures"
        );
    }
    let opened = Stopwatch::start();
    for node in [b, c] {
        while node.breaker("flaky").await != "open" {
            assert!(
                opened.elapsed() < Duration::from_secs(1),
                "{} did not open within 1 s of node A",
                node.base
            );
            pause(Duration::from_millis(20)).await;
        }
    }
    println!(
        "node A's breaker open on B and C after {} ms",
        opened.elapsed().as_millis()
    );
    // B and C refuse the target without calling it.
    let upstream = mock.total().await;
    let (status, _, _) = b.ask("m").await;
    assert_ne!(status, 200);
    assert_eq!(
        mock.total().await,
        upstream,
        "an open breaker sends nothing"
    );
    let metrics = b.metrics().await;
    assert!(
        metrics.contains(
            "holdfast_cluster_breaker_notes_total{direction=\"applied\",kind=\"opened\"} 1"
        ),
        "{metrics}"
    );
    // An operator's reset on C (`holdfast targets reset`) closes it everywhere.
    let (code, out, err) = support::run(&["targets", "reset", "flaky", "--server", &c.base]);
    assert_eq!(code, Some(0), "{out}{err}");
    let reset_at = Stopwatch::start();
    for node in [a, b] {
        while node.breaker("flaky").await != "closed" {
            assert!(
                reset_at.elapsed() < Duration::from_secs(1),
                "{} did not close within 1 s of the reset on node C",
                node.base
            );
            pause(Duration::from_millis(20)).await;
        }
    }
}

/// A TCP relay to PostgreSQL that can stall every byte in both directions: the store
/// hangs without refusing, the worst case for a node that must not wait on it.
async fn stallable_relay(to: String, stalled: Arc<AtomicBool>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&to).await else {
                continue;
            };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            for (mut from, mut to) in [(client_read, server_write), (server_read, client_write)] {
                let stalled = Arc::clone(&stalled);
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 16 * 1024];
                    while let Ok(n) = from.read(&mut buffer).await {
                        while stalled.load(Ordering::Relaxed) {
                            pause(Duration::from_millis(10)).await;
                        }
                        if n == 0 || to.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        }
    });
    addr
}

/// `holdfast_cluster_shared_health_up` on `gateway`'s `/metrics`.
async fn shared_health_up(gateway: &Gateway) -> Option<String> {
    let metrics = gateway
        .client
        .get(gateway.url("/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("holdfast_cluster_shared_health_up "))
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_whose_store_hangs_falls_back_to_its_own_limits_and_says_so() {
    let Some(pg) = PgSchema::for_test("shared_fallback") else {
        return;
    };
    let server = pg
        .url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next());
    let server = server.unwrap().to_owned();
    let stalled = Arc::new(AtomicBool::new(false));
    let relay = stallable_relay(server.clone(), Arc::clone(&stalled)).await;
    let url = pg.url.replacen(&server, &relay, 1);
    let mock = Mock::start("openai", &[]);
    let config = ConfigBuilder::new()
        .target("limited", &mock, "requests_per_minute = 600")
        .route("m", &["limited"], "")
        .raw("[cluster]\nshare_health = true\n");
    let node = Gateway::start_with_env(&config, &[("HOLDFAST_STORE_URL", &url)]);
    let (status, _, _) = node.ask("m").await;
    assert_eq!(status, 200);
    assert_eq!(shared_health_up(&node).await.as_deref(), Some("1"));
    stalled.store(true, Ordering::Relaxed);
    let watch = Stopwatch::start();
    while shared_health_up(&node).await.as_deref() != Some("0") {
        assert!(
            watch.elapsed() < Duration::from_secs(3),
            "the node did not notice the hung store"
        );
        pause(Duration::from_millis(50)).await;
    }
    // Calls are served from the node's own limit, not held for the store. It refills
    // at 10 units/s from the fallback on, and the tests' policy waits at most 50 ms
    // (its backoff cap) for a unit: a few units are there first.
    pause(Duration::from_millis(400)).await;
    let served = Stopwatch::start();
    for _ in 0..3 {
        let response = node
            .chat(&chat_body("m", "hello", false))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let ledger = node.ledger_of(response.headers()).await;
        assert_eq!(status, 200, "{ledger}");
    }
    assert!(
        served.elapsed() < Duration::from_secs(2),
        "3 calls took {:?} with the store hung",
        served.elapsed()
    );
    assert!(
        node.process
            .output()
            .contains("falls back to its own rate limits and breakers"),
        "{}",
        node.process.output()
    );
    stalled.store(false, Ordering::Relaxed);
    let watch = Stopwatch::start();
    while shared_health_up(&node).await.as_deref() != Some("1") {
        assert!(
            watch.elapsed() < Duration::from_secs(10),
            "the node did not share again once the store answered"
        );
        pause(Duration::from_millis(50)).await;
    }
}

#[test]
fn share_health_on_a_sqlite_store_is_refused_with_a_clear_error() {
    let dir = TempDir::new("share-health-sqlite");
    let text = ConfigBuilder::new()
        .raw("[cluster]\nshare_health = true\n")
        .build(dir.path());
    let path = dir.write("holdfast.toml", &text);
    let (code, stdout, stderr) = support::run(&["config", "check", &path.display().to_string()]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("cluster.share_health"), "{stderr}");
    assert!(stderr.contains("postgres://"), "{stderr}");
}
