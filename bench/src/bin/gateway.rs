//! The gateway's cost: going through `holdfast serve` (full policy on) versus going
//! straight to the provider, measured side by side in one run.
//!
//! Why a same-run ratio: on a shared 2-core machine absolute figures drift from run to
//! run, and the mock provider and the load generator compete with holdfast for the same
//! cores. Driving the direct path and the gateway path with the same client, in
//! alternating rounds, leaves only holdfast's own cost in the difference.
//!
//! Measures: added latency (p50, p99) at concurrency 1; throughput at concurrency 32 and
//! 256 as a ratio to direct; the gateway's resident memory idle and with 1,000 streams
//! open. Loopback only, about 40 s. Beside them, the CPU time per request of the mock
//! (direct and through) and of holdfast, from the kernel's per-thread counters: a
//! steadier figure than the ratios, by which a change to the hot path can be judged.
//!
//! Run: `cargo build --release -p holdfast && cargo run --release -p holdfast-bench --bin gateway`

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use holdfast_bench::gateway::{KEY, KEY_ENV, chat, config};
use holdfast_bench::load::{self, Endpoint, HttpClient};
use holdfast_bench::measure::{Stopwatch, human, percentile};
use holdfast_bench::process::{Scratch, Server, holdfast_binary};

/// Requests per concurrency-1 round, and rounds (alternating direct and through).
const LATENCY_ROUND: usize = 750;
const LATENCY_ROUNDS: usize = 4;
/// Throughput: each round's length, and rounds per path.
const THROUGHPUT_SPAN: Duration = Duration::from_secs(2);
const THROUGHPUT_ROUNDS: usize = 2;
const STREAMS: usize = 1000;

/// The targets, from the issue.
const MAX_ADDED_P50: Duration = Duration::from_micros(250);
const MAX_ADDED_P99: Duration = Duration::from_millis(1);
const MIN_THROUGHPUT_RATIO_32: f64 = 0.4;
const MAX_RSS_IDLE: u64 = 30 << 20;
const MAX_RSS_STREAMS: u64 = 100 << 20;

fn main() -> anyhow::Result<()> {
    let binary = holdfast_binary()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let clock = Stopwatch::start();
    let report = runtime.block_on(run(&binary))?;
    report.print(clock.elapsed());
    Ok(())
}

struct Report {
    direct_c1: Vec<Duration>,
    through_c1: Vec<Duration>,
    /// (concurrency, direct req/s, through req/s)
    throughput: Vec<(usize, f64, f64)>,
    rss_idle: u64,
    /// After the latency and throughput phases, before the streams open: what the
    /// streams figure starts from.
    rss_loaded: u64,
    rss_streams: u64,
    streams_opened_in: Duration,
    /// CPU per request, by phase: (phase, mock going direct, mock through, holdfast).
    cpu: Vec<(String, Duration, Duration, Duration)>,
}

/// CPU time spent by the mock and by holdfast over a number of requests.
#[derive(Default, Clone, Copy)]
struct Cpu {
    mock: Duration,
    gateway: Duration,
    requests: u64,
}

impl Cpu {
    /// Runs `f`, which answers some requests, adding the CPU the two servers spent.
    async fn count<F>(&mut self, mock: &Server, gateway: &Server, f: F) -> anyhow::Result<()>
    where
        F: std::future::Future<Output = anyhow::Result<u64>>,
    {
        let (m0, g0) = (mock.cpu_time()?, gateway.cpu_time()?);
        self.requests += f.await?;
        self.mock += mock.cpu_time()?.saturating_sub(m0);
        self.gateway += gateway.cpu_time()?.saturating_sub(g0);
        Ok(())
    }

    fn per_request(total: Duration, requests: u64) -> Duration {
        total / u32::try_from(requests.max(1)).unwrap_or(u32::MAX)
    }
}

async fn run(binary: &Path) -> anyhow::Result<Report> {
    let mock_args = [
        "mock-provider",
        "--listen",
        "127.0.0.1:0",
        "--format",
        "openai",
    ]
    .map(String::from);
    let mock = Server::start(binary, &mock_args, &[]).context("starting the mock provider")?;
    let scratch = Scratch::new("gateway")?;
    let config_path = scratch.0.join("holdfast.toml");
    std::fs::write(&config_path, config(mock.addr(), &scratch.0, ""))?;
    let serve_args = [
        "serve".to_owned(),
        "--config".to_owned(),
        config_path.display().to_string(),
        "--listen".into(),
        "127.0.0.1:0".into(),
    ];
    let gateway = Server::start(binary, &serve_args, &[(KEY_ENV.to_owned(), KEY.to_owned())])
        .context("starting holdfast serve")?;

    let client = load::client();
    let direct = Endpoint {
        uri: format!("http://{}/v1/chat/completions", mock.addr()).parse()?,
        body: chat("mock-primary", false),
        headers: Vec::new(),
    };
    let through = Endpoint {
        uri: format!("http://{}/v1/chat/completions", gateway.addr()).parse()?,
        body: chat("bench", false),
        headers: vec![("authorization".into(), format!("Bearer {KEY}"))],
    };

    eprintln!("warming up…");
    load::latencies(&client, &direct, 300).await?;
    load::latencies(&client, &through, 300)
        .await
        .with_context(|| gateway.stderr_tail())?;
    let rss_idle = gateway.rss_bytes()?;

    eprintln!("latency at concurrency 1…");
    let (mut direct_c1, mut through_c1) = (Vec::new(), Vec::new());
    let (mut cpu_direct, mut cpu_through) = (Cpu::default(), Cpu::default());
    let mut cpu = Vec::new();
    for _ in 0..LATENCY_ROUNDS {
        cpu_direct
            .count(&mock, &gateway, async {
                direct_c1.extend(load::latencies(&client, &direct, LATENCY_ROUND).await?);
                Ok(LATENCY_ROUND as u64)
            })
            .await?;
        cpu_through
            .count(&mock, &gateway, async {
                through_c1.extend(load::latencies(&client, &through, LATENCY_ROUND).await?);
                Ok(LATENCY_ROUND as u64)
            })
            .await?;
    }
    direct_c1.sort_unstable();
    through_c1.sort_unstable();
    cpu.push(cpu_row("concurrency 1", cpu_direct, cpu_through));

    let mut throughput = Vec::new();
    for concurrency in [32, 256] {
        eprintln!("throughput at concurrency {concurrency}…");
        let (mut d, mut t) = (0.0, 0.0);
        let (mut cpu_direct, mut cpu_through) = (Cpu::default(), Cpu::default());
        for _ in 0..THROUGHPUT_ROUNDS {
            cpu_direct
                .count(&mock, &gateway, async {
                    let run =
                        load::throughput(&client, &direct, concurrency, THROUGHPUT_SPAN).await?;
                    d += run.per_second;
                    Ok(run.completed)
                })
                .await?;
            cpu_through
                .count(&mock, &gateway, async {
                    let run =
                        load::throughput(&client, &through, concurrency, THROUGHPUT_SPAN).await?;
                    t += run.per_second;
                    Ok(run.completed)
                })
                .await?;
        }
        cpu.push(cpu_row(
            &format!("concurrency {concurrency}"),
            cpu_direct,
            cpu_through,
        ));
        throughput.push((
            concurrency,
            d / THROUGHPUT_ROUNDS as f64,
            t / THROUGHPUT_ROUNDS as f64,
        ));
    }

    let rss_loaded = gateway.rss_bytes()?;
    let (rss_streams, streams_opened_in) = streams(&client, &mock, &gateway).await?;
    Ok(Report {
        direct_c1,
        through_c1,
        throughput,
        rss_idle,
        rss_loaded,
        rss_streams,
        streams_opened_in,
        cpu,
    })
}

fn cpu_row(phase: &str, direct: Cpu, through: Cpu) -> (String, Duration, Duration, Duration) {
    (
        phase.to_owned(),
        Cpu::per_request(direct.mock, direct.requests),
        Cpu::per_request(through.mock, through.requests),
        Cpu::per_request(through.gateway, through.requests),
    )
}

/// Opens `STREAMS` streams through the gateway (the mock sends a chunk every 500 ms so
/// they stay open) and reads the gateway's RSS while all are open.
async fn streams(
    client: &HttpClient,
    mock: &Server,
    gateway: &Server,
) -> anyhow::Result<(u64, Duration)> {
    eprintln!("opening {STREAMS} streams…");
    let slow = Endpoint {
        uri: format!("http://{}/admin/faults", mock.addr()).parse()?,
        body: Bytes::from_static(br#"{"token_interval": "500ms"}"#),
        headers: Vec::new(),
    };
    slow.call(client)
        .await
        .context("slowing the mock's streams")?;
    let streaming = Endpoint {
        uri: format!("http://{}/v1/chat/completions", gateway.addr()).parse()?,
        body: chat("bench", true),
        headers: vec![("authorization".into(), format!("Bearer {KEY}"))],
    };
    let clock = Stopwatch::start();
    let bodies = tokio::time::timeout(
        Duration::from_secs(60),
        load::open_streams(client, &streaming, STREAMS),
    )
    .await
    .context("1,000 streams did not open within 60 s")??;
    let opened_in = clock.elapsed();
    let rss = gateway.rss_bytes()?;
    drop(bodies);
    Ok((rss, opened_in))
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

impl Report {
    fn print(&self, total: Duration) {
        let p = |samples: &[Duration], q: f64| percentile(samples, q);
        let (d50, t50) = (p(&self.direct_c1, 50.0), p(&self.through_c1, 50.0));
        let (d99, t99) = (p(&self.direct_c1, 99.0), p(&self.through_c1, 99.0));
        let added50 = t50.saturating_sub(d50);
        let added99 = t99.saturating_sub(d99);
        println!();
        println!(
            "holdfast gateway vs direct to the mock (loopback, mock latency 0, same client; {} samples per path at c=1)",
            self.direct_c1.len()
        );
        println!(
            "{:<34} {:>12} {:>12} {:>14} {:>12}  verdict",
            "measure", "direct", "holdfast", "added / ratio", "target"
        );
        let row = |name: &str,
                   direct: String,
                   through: String,
                   diff: String,
                   target: String,
                   ok: bool| {
            println!(
                "{name:<34} {direct:>12} {through:>12} {diff:>14} {target:>12}  {}",
                verdict(ok)
            );
        };
        row(
            "latency p50, concurrency 1",
            human(d50),
            human(t50),
            format!("+{}", human(added50)),
            format!("≤ +{}", human(MAX_ADDED_P50)),
            added50 <= MAX_ADDED_P50,
        );
        row(
            "latency p99, concurrency 1",
            human(d99),
            human(t99),
            format!("+{}", human(added99)),
            format!("≤ +{}", human(MAX_ADDED_P99)),
            added99 <= MAX_ADDED_P99,
        );
        for &(concurrency, direct, through) in &self.throughput {
            let ratio = through / direct.max(f64::MIN_POSITIVE);
            let (target, ok) = if concurrency == 32 {
                (
                    format!("≥ {MIN_THROUGHPUT_RATIO_32:.1}×"),
                    ratio >= MIN_THROUGHPUT_RATIO_32,
                )
            } else {
                ("(reported)".to_owned(), true)
            };
            row(
                &format!("throughput, concurrency {concurrency}"),
                format!("{direct:.0}/s"),
                format!("{through:.0}/s"),
                format!("{ratio:.2}×"),
                target,
                ok,
            );
        }
        row(
            "RSS idle",
            "-".into(),
            mib(self.rss_idle),
            "-".into(),
            format!("≤ {}", mib(MAX_RSS_IDLE)),
            self.rss_idle <= MAX_RSS_IDLE,
        );
        row(
            "RSS after the load phases",
            "-".into(),
            mib(self.rss_loaded),
            "-".into(),
            "(reported)".into(),
            true,
        );
        row(
            &format!("RSS with {STREAMS} open streams"),
            "-".into(),
            mib(self.rss_streams),
            "-".into(),
            format!("≤ {}", mib(MAX_RSS_STREAMS)),
            self.rss_streams <= MAX_RSS_STREAMS,
        );
        println!();
        println!(
            "{:<34} {:>12} {:>12} {:>14}",
            "CPU per request", "mock direct", "mock through", "holdfast"
        );
        for (phase, direct, mock, gateway) in &self.cpu {
            println!(
                "{phase:<34} {:>12} {:>12} {:>14}",
                human(*direct),
                human(*mock),
                human(*gateway)
            );
        }
        println!(
            "({STREAMS} streams opened in {}; whole run {:.1} s)",
            human(self.streams_opened_in),
            total.as_secs_f64()
        );
    }
}
