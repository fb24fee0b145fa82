//! What exporting traces costs a request when the collector is down: two `holdfast
//! serve` processes on the gateway benchmark's configuration, one with export off and
//! one exporting every request's spans (sampling 1.0) over OTLP/gRPC to an address
//! where nothing listens, measured side by side with the mock direct as the baseline.
//!
//! Why a dead collector: it is the case the exporter must survive without a request
//! noticing (every batch fails, the queue fills, spans are dropped and counted), and
//! the one an operator meets when the collector is restarted. Alternating rounds on the
//! same client leave only the difference between the two gateways.
//!
//! Run: `cargo build --release -p holdfast && cargo run --release -p holdfast-bench --bin telemetry`

use std::time::Duration;

use anyhow::Context;
use holdfast_bench::gateway::{KEY, KEY_ENV, chat, config};
use holdfast_bench::load::{self, Endpoint};
use holdfast_bench::measure::{human, percentile};
use holdfast_bench::process::{Server, holdfast_binary};

/// Requests per concurrency-1 round, and rounds per path.
const ROUND: usize = 750;
const ROUNDS: usize = 4;

/// A collector address where nothing listens (the discard port, closed on any machine
/// that runs this).
const DEAD_COLLECTOR: &str = "http://127.0.0.1:9";

fn main() -> anyhow::Result<()> {
    let binary = holdfast_binary()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(&binary))
}

/// A `holdfast serve` on the gateway benchmark's configuration plus `extra`.
fn gateway(
    binary: &std::path::Path,
    mock: &Server,
    name: &str,
    extra: &str,
) -> anyhow::Result<(Server, std::path::PathBuf)> {
    let dir = std::env::temp_dir().join(format!(
        "holdfast-bench-telemetry-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("holdfast.toml");
    std::fs::write(&path, config(mock.addr(), &dir, extra))?;
    let args = [
        "serve".to_owned(),
        "--config".to_owned(),
        path.display().to_string(),
    ];
    let server = Server::start(binary, &args, &[(KEY_ENV.to_owned(), KEY.to_owned())])
        .with_context(|| format!("starting holdfast serve ({name})"))?;
    Ok((server, dir))
}

fn endpoint(server: &Server, model: &str, key: bool) -> anyhow::Result<Endpoint> {
    Ok(Endpoint {
        uri: format!("http://{}/v1/chat/completions", server.addr()).parse()?,
        body: chat(model, false),
        headers: if key {
            vec![("authorization".into(), format!("Bearer {KEY}"))]
        } else {
            Vec::new()
        },
    })
}

async fn run(binary: &std::path::Path) -> anyhow::Result<()> {
    let mock_args = [
        "mock-provider",
        "--listen",
        "127.0.0.1:0",
        "--format",
        "openai",
    ]
    .map(String::from);
    let mock = Server::start(binary, &mock_args, &[]).context("starting the mock provider")?;
    let (off, off_dir) = gateway(binary, &mock, "off", "")?;
    let exporting =
        format!("[telemetry]\notlp_endpoint = \"{DEAD_COLLECTOR}\"\nprotocol = \"grpc\"\n");
    let (on, on_dir) = gateway(binary, &mock, "on", &exporting)?;
    let client = load::client();
    let paths = [
        (
            "direct to the mock",
            endpoint(&mock, "mock-primary", false)?,
        ),
        ("holdfast, export off", endpoint(&off, "bench", true)?),
        (
            "holdfast, export on, collector down",
            endpoint(&on, "bench", true)?,
        ),
    ];
    eprintln!("warming up…");
    for (_, path) in &paths {
        load::latencies(&client, path, 300).await?;
    }
    eprintln!("latency at concurrency 1, {ROUNDS} alternating rounds of {ROUND}…");
    let mut samples: [Vec<Duration>; 3] = Default::default();
    for _ in 0..ROUNDS {
        for (i, (_, path)) in paths.iter().enumerate() {
            samples[i].extend(load::latencies(&client, path, ROUND).await?);
        }
    }
    let dropped = dropped_spans(&on).await?;
    println!();
    println!(
        "{:<38} {:>10} {:>10} {:>12} {:>12}",
        "path (c=1)", "p50", "p99", "added p50", "added p99"
    );
    let direct = &mut samples[0].clone();
    direct.sort_unstable();
    let (d50, d99) = (percentile(direct, 50.0), percentile(direct, 99.0));
    for ((name, _), sample) in paths.iter().zip(samples.iter_mut()) {
        sample.sort_unstable();
        let (p50, p99) = (percentile(sample, 50.0), percentile(sample, 99.0));
        println!(
            "{name:<38} {:>10} {:>10} {:>12} {:>12}",
            human(p50),
            human(p99),
            format!("+{}", human(p50.saturating_sub(d50))),
            format!("+{}", human(p99.saturating_sub(d99)))
        );
    }
    let (off50, on50) = (percentile(&samples[1], 50.0), percentile(&samples[2], 50.0));
    let delta = on50.as_secs_f64() - off50.as_secs_f64();
    println!(
        "export on (collector down) vs off: p50 {:+.1} µs ({:.3}×); spans dropped and counted: {dropped}",
        delta * 1e6,
        on50.as_secs_f64() / off50.as_secs_f64().max(f64::MIN_POSITIVE)
    );
    drop((on, off));
    let _ = std::fs::remove_dir_all(on_dir);
    let _ = std::fs::remove_dir_all(off_dir);
    Ok(())
}

/// `holdfast_telemetry_spans_dropped_total` summed over its reasons.
async fn dropped_spans(server: &Server) -> anyhow::Result<f64> {
    let url = format!("http://{}/metrics", server.addr());
    let text = reqwest::get(&url).await?.text().await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("holdfast_telemetry_spans_dropped_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}
