//! Recovery under load: what a provider fault costs the clients of `holdfast serve`,
//! measured against the same gateway's healthy figures in the same run.
//!
//! Two faults on the primary of a two-target route (`primary`, then `fallback`), both
//! mock providers answering in 50 ms, with the shipped defaults for everything the
//! faults exercise (breaker, probes, budgets, backoff):
//!
//! 1. A total outage under 150 requests/s, sent open-loop (a request every 6.7 ms
//!    whatever the answers do, as independent clients send them): how soon the
//!    primary's breaker opens, how many calls the dead primary still gets per client
//!    request while it is open, and goodput during the outage against the healthy
//!    phase before it.
//! 2. 20% of the primary's calls answered 503, under 8 closed-loop clients: goodput and
//!    success against the healthy phase, with `retry_on = "same"` (back off and retry
//!    the primary) and `retry_on = "next"` (go to the fallback at once, and shift load
//!    off the primary while it fails). Twice: with 503s that take the 50 ms of an answer,
//!    and with 503s sent at once, as a provider's load balancer refuses calls.
//! 3. A 1 s Retry-After on a route's only target met by 8 concurrent clients: how many
//!    calls reach the target when the hold ends, before the first of them is answered
//!    (the mock answers in 300 ms then); without the hold's single probe, all 8 would.
//!
//! Run: `cargo build --release -p holdfast && cargo run --release -p holdfast-bench --bin outage`
//! (the same without `--release` measures a debug build).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use holdfast_bench::load::{self, Endpoint, HttpClient};
use holdfast_bench::measure::{Stopwatch, pause};
use holdfast_bench::process::{Scratch, Server, holdfast_binary};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

/// Open-loop rate of the outage scenario.
const RATE: f64 = 150.0;
const HEALTHY_SPAN: Duration = Duration::from_secs(5);
const OUTAGE_SPAN: Duration = Duration::from_secs(8);
/// Closed-loop clients and span of each phase of the error-rate scenario.
const CLIENTS: usize = 8;
const PHASE_SPAN: Duration = Duration::from_secs(5);

/// The targets, from the issue.
const MAX_TIME_TO_OPEN: Duration = Duration::from_secs(1);
const MAX_DEAD_CALLS_PER_REQUEST: f64 = 0.05;
const MIN_OUTAGE_GOODPUT: f64 = 0.8;
const MIN_NEXT_GOODPUT: f64 = 0.9;
const MAX_HERD: usize = 2;
/// Clients of the Retry-After scenario, and its target's answer time once the hold ends.
const HELD_CLIENTS: usize = 8;
const HELD_ANSWER_MS: u64 = 300;

fn main() -> anyhow::Result<()> {
    let binary = holdfast_binary()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(&binary))
}

/// A mock provider answering in 50 ms.
struct Mock {
    server: Server,
}

impl Mock {
    fn start(binary: &Path) -> anyhow::Result<Mock> {
        let args = [
            "mock-provider",
            "--listen",
            "127.0.0.1:0",
            "--format",
            "openai",
        ]
        .map(String::from);
        Ok(Mock {
            server: Server::start(binary, &args, &[])?,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr())
    }

    /// Sets the fault set (50 ms answers plus `faults`).
    async fn faults(&self, client: &HttpClient, mut faults: Value) -> anyhow::Result<()> {
        faults["latency"] = json!("50ms");
        post(client, &self.url("/admin/faults"), &faults).await?;
        Ok(())
    }

    /// Requests received since the start.
    async fn total(&self, client: &HttpClient) -> anyhow::Result<u64> {
        let stats = get(client, &self.url("/admin/stats")).await?;
        stats["total"].as_u64().context("stats without total")
    }

    /// Sets `faults` as they are (no latency added).
    async fn set(&self, client: &HttpClient, faults: &Value) -> anyhow::Result<()> {
        post(client, &self.url("/admin/faults"), faults).await?;
        Ok(())
    }

    /// Zeroes the counts and the request log and restarts the mock's clock.
    async fn reset(&self, client: &HttpClient) -> anyhow::Result<()> {
        post(client, &self.url("/admin/reset"), &json!({})).await?;
        Ok(())
    }

    /// The request log, oldest first: each entry's `seq`, `at_ms` and `outcome`.
    async fn requests(&self, client: &HttpClient) -> anyhow::Result<Vec<Value>> {
        let log = get(client, &self.url("/admin/requests")).await?;
        log.as_array()
            .cloned()
            .context("a request log that is not an array")
    }
}

async fn get(client: &HttpClient, url: &str) -> anyhow::Result<Value> {
    let request = hyper::Request::get(url).body(Full::new(Bytes::new()))?;
    read(client, request).await
}

async fn post(client: &HttpClient, url: &str, body: &Value) -> anyhow::Result<Value> {
    let request = hyper::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))?;
    read(client, request).await
}

async fn read(client: &HttpClient, request: hyper::Request<Full<Bytes>>) -> anyhow::Result<Value> {
    let uri = request.uri().clone();
    let response = client.request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!("{uri}: {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(serde_json::from_slice(&body)?)
}

/// The gateway's configuration: the two mocks behind `same` and `next`, the primary
/// alone behind `solo`, defaults everywhere else.
fn config(primary: &Mock, fallback: &Mock, dir: &Path) -> String {
    let target = |name: &str, mock: &Mock| {
        format!(
            "[providers.{name}]\nformat = \"openai\"\nbase_url = \"{}\"\n\n\
             [targets.{name}]\nprovider = \"{name}\"\nmodel = \"mock-{name}\"\ncontext_window = 128000\n\n",
            mock.url("/v1")
        )
    };
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[store]\nurl = \"sqlite://{store}/holdfast.db\"\n\n\
         [logging]\nfilter = \"warn\"\n\n{p}{f}\
         [routes.same]\ntargets = [\"primary\", \"fallback\"]\n\n\
         [routes.next]\ntargets = [\"primary\", \"fallback\"]\nretry_on = \"next\"\n\n\
         [routes.solo]\ntargets = [\"primary\"]\n",
        store = dir.display(),
        p = target("primary", primary),
        f = target("fallback", fallback),
    )
}

fn chat(route: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"model":"{route}","max_tokens":16,"messages":[{{"role":"user","content":"Say something scripted."}}]}}"#
    ))
}

/// Successes and failures of an open-loop run, counted by the moment each was sent.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
}

/// Sends at `RATE` for `span`, each request on its own task; returns once all are
/// answered.
async fn open_loop(client: &HttpClient, endpoint: &Endpoint, span: Duration) -> (u64, u64) {
    let tally = Arc::new(Tally::default());
    let interval = Duration::from_secs_f64(1.0 / RATE);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let clock = Stopwatch::start();
    let mut sent = tokio::task::JoinSet::new();
    while clock.elapsed() < span {
        ticker.tick().await;
        let (client, endpoint, tally) = (client.clone(), endpoint.clone(), Arc::clone(&tally));
        sent.spawn(async move {
            let counter = match endpoint.call(&client).await {
                Ok(()) => &tally.ok,
                Err(_) => &tally.failed,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        });
    }
    while sent.join_next().await.is_some() {}
    (
        tally.ok.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    )
}

/// Polls the primary's breaker until it is open; the time it took, or `None` within
/// `limit`.
async fn until_open(client: &HttpClient, gateway: &Server, limit: Duration) -> Option<Duration> {
    let url = format!("http://{}/v1/holdfast/targets", gateway.addr());
    let clock = Stopwatch::start();
    while clock.elapsed() < limit {
        if let Ok(targets) = get(client, &url).await
            && breaker_of(&targets, "primary").as_deref() == Some("open")
        {
            return Some(clock.elapsed());
        }
        pause(Duration::from_millis(10)).await;
    }
    None
}

fn breaker_of(targets: &Value, name: &str) -> Option<String> {
    targets["data"]
        .as_array()?
        .iter()
        .find(|t| t["name"] == name)?["breaker"]
        .as_str()
        .map(str::to_owned)
}

/// Closed-loop: `CLIENTS` workers back to back for `span`; (successes/s, success share).
async fn closed_loop(client: &HttpClient, endpoint: &Endpoint, span: Duration) -> (f64, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (client, endpoint) = (client.clone(), endpoint.clone());
        let (stop, tally) = (Arc::clone(&stop), Arc::clone(&tally));
        workers.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let counter = match endpoint.call(&client).await {
                    Ok(()) => &tally.ok,
                    Err(_) => &tally.failed,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let clock = Stopwatch::start();
    pause(span).await;
    let (ok, failed) = (
        tally.ok.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    let elapsed = clock.elapsed();
    stop.store(true, Ordering::Relaxed);
    while workers.join_next().await.is_some() {}
    let share = ok as f64 / (ok + failed).max(1) as f64;
    (ok as f64 / elapsed.as_secs_f64(), share)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

async fn run(binary: &Path) -> anyhow::Result<()> {
    let client = load::client();
    let primary = Mock::start(binary).context("starting the primary mock")?;
    let fallback = Mock::start(binary).context("starting the fallback mock")?;
    for mock in [&primary, &fallback] {
        mock.faults(&client, json!({})).await?;
    }
    let scratch = Scratch::new("outage")?;
    let config_path = scratch.0.join("holdfast.toml");
    std::fs::write(&config_path, config(&primary, &fallback, &scratch.0))?;
    let serve_args = ["serve", "--config", &config_path.display().to_string()].map(String::from);
    let gateway = Server::start(binary, &serve_args, &[]).context("starting holdfast serve")?;
    let endpoint = |route: &str| -> anyhow::Result<Endpoint> {
        Ok(Endpoint {
            uri: format!("http://{}/v1/chat/completions", gateway.addr()).parse()?,
            body: chat(route),
            headers: Vec::new(),
        })
    };
    let same = endpoint("same")?;
    let next = endpoint("next")?;
    load::latencies(&client, &same, 50)
        .await
        .with_context(|| gateway.stderr_tail())?;

    eprintln!("1. total outage of the primary at {RATE} requests/s…");
    let (healthy_ok, _) = open_loop(&client, &same, HEALTHY_SPAN).await;
    let healthy_rate = healthy_ok as f64 / HEALTHY_SPAN.as_secs_f64();
    primary
        .faults(&client, json!({"error_rates": {"503": 1.0}}))
        .await?;
    let outage = {
        let (client, same) = (client.clone(), same.clone());
        tokio::spawn(async move { open_loop(&client, &same, OUTAGE_SPAN).await })
    };
    let opened = until_open(&client, &gateway, OUTAGE_SPAN).await;
    let dead_at_open = primary.total(&client).await?;
    let open_clock = Stopwatch::start();
    let (outage_ok, outage_failed) = outage.await?;
    let open_span = open_clock.elapsed();
    let dead_calls = primary.total(&client).await? - dead_at_open;
    let outage_rate = outage_ok as f64 / OUTAGE_SPAN.as_secs_f64();
    let per_request = dead_calls as f64 / (RATE * open_span.as_secs_f64());
    primary.faults(&client, json!({})).await?;

    eprintln!("2. 20% of the primary's calls answered 503, {CLIENTS} clients…");
    pause(Duration::from_secs(3)).await; // the breaker closes on its probes
    let (healthy_cl, _) = closed_loop(&client, &same, PHASE_SPAN).await;
    primary
        .faults(&client, json!({"error_rates": {"503": 0.2}}))
        .await?;
    let slow = ErrorRun::measure(&client, &same, &next).await;
    primary
        .faults(
            &client,
            json!({"error_rates": {"503": 0.2}, "error_latency": "0ms"}),
        )
        .await?;
    let fast = ErrorRun::measure(&client, &same, &next).await;

    eprintln!("3. a 1 s Retry-After ending under {HELD_CLIENTS} clients…");
    let herd = herd(&client, &primary, &endpoint("solo")?).await?;

    println!("recovery under load: holdfast serve, shipped defaults, mocks answering in 50 ms");
    println!();
    println!("total outage of the primary, {RATE} requests/s open-loop");
    match opened {
        Some(t) => println!(
            "  breaker open after          {:>7.0} ms   target ≤ {} ms: {}",
            t.as_secs_f64() * 1e3,
            MAX_TIME_TO_OPEN.as_millis(),
            verdict(t <= MAX_TIME_TO_OPEN)
        ),
        None => println!("  breaker open after          never in {OUTAGE_SPAN:?}: MISSED"),
    }
    println!(
        "  dead-primary calls/request  {per_request:>10.3}   target ≤ {MAX_DEAD_CALLS_PER_REQUEST}: {} ({dead_calls} calls in {:.1} s open)",
        verdict(per_request <= MAX_DEAD_CALLS_PER_REQUEST),
        open_span.as_secs_f64()
    );
    let outage_ratio = outage_rate / healthy_rate;
    println!(
        "  goodput                     {outage_rate:>7.1}/s   healthy {healthy_rate:.1}/s, ×{outage_ratio:.2}, target ≥ ×{MIN_OUTAGE_GOODPUT}: {} ({outage_failed} failed)",
        verdict(outage_ratio >= MIN_OUTAGE_GOODPUT)
    );
    println!();
    println!("20% 503s on the primary, {CLIENTS} closed-loop clients (healthy {healthy_cl:.1}/s)");
    slow.print("503s after the 50 ms of an answer", healthy_cl);
    fast.print("503s at once", healthy_cl);
    println!();
    println!(
        "a 1 s Retry-After on the only target, {HELD_CLIENTS} clients, answers in {HELD_ANSWER_MS} ms after it"
    );
    println!(
        "  calls before the first verdict {:>4}   target ≤ {MAX_HERD}: {} (of {} after the hold; {} served)",
        herd.before_verdict,
        verdict(herd.before_verdict <= MAX_HERD && herd.served == HELD_CLIENTS),
        herd.after_hold,
        herd.served
    );
    Ok(())
}

/// Goodput and success share of each route under one kind of 503s.
struct ErrorRun {
    same: (f64, f64),
    next: (f64, f64),
}

impl ErrorRun {
    async fn measure(client: &HttpClient, same: &Endpoint, next: &Endpoint) -> ErrorRun {
        ErrorRun {
            same: closed_loop(client, same, PHASE_SPAN).await,
            next: closed_loop(client, next, PHASE_SPAN).await,
        }
    }

    fn print(&self, title: &str, healthy: f64) {
        println!("  {title}");
        let (same, same_share) = self.same;
        println!(
            "    retry_on = \"same\"        {same:>7.1}/s   ×{:.2}, success {:.2}%",
            same / healthy,
            same_share * 100.0
        );
        let (next, next_share) = self.next;
        let ratio = next / healthy;
        println!(
            "    retry_on = \"next\"        {next:>7.1}/s   ×{ratio:.2}, success {:.2}%   target ≥ ×{MIN_NEXT_GOODPUT} and 100%: {}",
            next_share * 100.0,
            verdict(ratio >= MIN_NEXT_GOODPUT && next_share >= 1.0)
        );
    }
}

/// What the end of a Retry-After hold let through.
struct Herd {
    /// Calls that reached the target after the hold, before the first was answered.
    before_verdict: usize,
    /// Calls that reached it after the hold in all.
    after_hold: usize,
    /// Clients answered with a success.
    served: usize,
}

/// `HELD_CLIENTS` clients each send one call on `solo` while the primary answers 429
/// with a 1 s Retry-After (for its first 200 ms), then answers in `HELD_ANSWER_MS`:
/// every call that reaches it within that time of the first one after the hold came
/// before any verdict.
async fn herd(client: &HttpClient, primary: &Mock, solo: &Endpoint) -> anyhow::Result<Herd> {
    primary
        .set(
            client,
            &json!({
                "outages": [{"start": "0s", "end": "200ms", "status": 429}],
                "error_rates": {"retry_after": "1s"},
                "latency": format!("{HELD_ANSWER_MS}ms"),
            }),
        )
        .await?;
    primary.reset(client).await?;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..HELD_CLIENTS {
        let (client, solo) = (client.clone(), solo.clone());
        calls.spawn(async move { solo.call(&client).await.is_ok() });
    }
    let mut served = 0;
    while let Some(ok) = calls.join_next().await {
        served += usize::from(ok?);
    }
    let mut log = primary.requests(client).await?;
    primary.faults(client, json!({})).await?;
    log.sort_by_key(|r| r["seq"].as_u64());
    let after: Vec<u64> = log
        .iter()
        .filter(|r| r["outcome"] != "rate_limited")
        .filter_map(|r| r["at_ms"].as_u64())
        .collect();
    let first = after
        .first()
        .copied()
        .context("no call reached the primary after the hold")?;
    Ok(Herd {
        before_verdict: after
            .iter()
            .filter(|&&at| at < first + HELD_ANSWER_MS)
            .count(),
        after_hold: after.len(),
        served,
    })
}
