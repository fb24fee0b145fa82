//! Production scoring's cost on the request path: the same gateway, the same target,
//! one route sampled at 100% (graded by a deterministic grader and a judge route) and
//! one not, measured in alternating rounds of one run.
//!
//! Why this baseline: sampling's promise is that scoring happens after the answer is
//! sent, off the request path, on a bounded queue. Two routes of one process share
//! everything (the listener, the policy, the mock) but the sampler, so the difference
//! of their p50 is what sampling adds to a request. The scorer's own work (the judge's
//! calls, the store's writes) runs meanwhile on the same two cores and weighs on both
//! routes alike; what it cannot keep up with is dropped and counted (its figure is
//! printed from `/metrics`). The target, from the issue: added p50 within noise.
//!
//! Run: `cargo build --release -p holdfast && cargo run --release -p holdfast-bench --bin sampling`

use std::path::{Path, PathBuf};

use anyhow::Context;
use bytes::Bytes;
use holdfast_bench::load::{self, Endpoint};
use holdfast_bench::measure::{Stopwatch, human, percentile};
use holdfast_bench::process::{Server, holdfast_binary};

/// Requests per round, and rounds per route (alternating).
const ROUND: usize = 500;
const ROUNDS: usize = 6;

/// A scratch directory for the config, the suite and the store, removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn chat(model: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"model":"{model}","max_tokens":64,"messages":[{{"role":"user","content":"Say something scripted."}}]}}"#
    ))
}

const SUITE: &str = "name = \"sampled\"\ndataset = \"sampled.jsonl\"\n[task]\nroute = \"sampled\"\n\
    [judge]\nroute = \"judge\"\n[production]\nassert = [\n  \
    { type = \"rubric\", value = \"answers the question\" },\n  \
    { type = \"contains\", value = \"scripted\" },\n]\n";

const CASE: &str = r#"{"id": "c1", "input": [{"role": "user", "content": "hello"}], "expected": "scripted", "assert": [{"type": "contains"}], "tags": ["labeled"]}"#;

fn config(mock: &Server, dir: &Path) -> String {
    let base = format!("http://{}/v1", mock.addr());
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[store]\nurl = \"sqlite://{store}/holdfast.db\"\n\n\
         [providers.mock]\nformat = \"openai\"\nbase_url = \"{base}\"\n\n\
         [targets.primary]\nprovider = \"mock\"\nmodel = \"mock-primary\"\ncontext_window = 128000\n\
         price = {{ input_per_mtok = 2.5, output_per_mtok = 10.0 }}\n\n\
         [routes.plain]\ntargets = [\"primary\"]\n\n[routes.sampled]\ntargets = [\"primary\"]\n\n\
         [routes.judge]\ntargets = [\"primary\"]\n\n\
         [quality.sampling.sampled]\nsuite = \"sampled.toml\"\nshare = 1.0\nbudget_per_hour = 1000.0\n",
        store = dir.display(),
    )
}

fn main() -> anyhow::Result<()> {
    let binary = holdfast_binary()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(&binary))
}

async fn run(binary: &Path) -> anyhow::Result<()> {
    let scratch = Scratch(
        std::env::temp_dir().join(format!("holdfast-bench-sampling-{}", std::process::id())),
    );
    let _ = std::fs::remove_dir_all(&scratch.0);
    std::fs::create_dir_all(&scratch.0)?;
    // The judge's verdict: what the mock answers when JSON output is asked for.
    let faults = scratch.0.join("faults.toml");
    std::fs::write(
        &faults,
        "json_answer = { score = 0.9, reason = \"it answers\" }\n",
    )?;
    let mock_args = [
        "mock-provider".to_owned(),
        "--listen".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--faults".to_owned(),
        faults.display().to_string(),
    ];
    let mock = Server::start(binary, &mock_args, &[]).context("starting the mock provider")?;
    std::fs::write(scratch.0.join("sampled.toml"), SUITE)?;
    std::fs::write(scratch.0.join("sampled.jsonl"), CASE)?;
    let config_path = scratch.0.join("holdfast.toml");
    std::fs::write(&config_path, config(&mock, &scratch.0))?;
    let serve_args = [
        "serve".to_owned(),
        "--config".to_owned(),
        config_path.display().to_string(),
    ];
    let gateway = Server::start(binary, &serve_args, &[]).context("starting holdfast serve")?;
    let client = load::client();
    let endpoint = |route: &str| -> anyhow::Result<Endpoint> {
        Ok(Endpoint {
            uri: format!("http://{}/v1/chat/completions", gateway.addr()).parse()?,
            body: chat(route),
            headers: Vec::new(),
        })
    };
    let (off, on) = (endpoint("plain")?, endpoint("sampled")?);

    eprintln!("warming up…");
    load::latencies(&client, &off, 300).await?;
    load::latencies(&client, &on, 300)
        .await
        .with_context(|| gateway.stderr_tail())?;
    let clock = Stopwatch::start();
    let (mut plain, mut sampled) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        plain.extend(load::latencies(&client, &off, ROUND).await?);
        sampled.extend(load::latencies(&client, &on, ROUND).await?);
    }
    plain.sort_unstable();
    sampled.sort_unstable();
    let counts = scrape(&gateway).await?;

    let (p50_off, p50_on) = (percentile(&plain, 50.0), percentile(&sampled, 50.0));
    let (p99_off, p99_on) = (percentile(&plain, 99.0), percentile(&sampled, 99.0));
    println!(
        "{} requests per route at concurrency 1, {ROUNDS} alternating rounds, in {}:",
        ROUND * ROUNDS,
        human(clock.elapsed())
    );
    println!(
        "  sampling off   p50 {:>10}  p99 {:>10}",
        human(p50_off),
        human(p99_off)
    );
    println!(
        "  sampling 100%  p50 {:>10}  p99 {:>10}",
        human(p50_on),
        human(p99_on)
    );
    let added = p50_on.as_secs_f64() - p50_off.as_secs_f64();
    println!(
        "added p50 {:+.1} µs, ratio on/off p50 {:.3}×, p99 {:.3}×",
        added * 1e6,
        p50_on.as_secs_f64() / p50_off.as_secs_f64().max(1e-9),
        p99_on.as_secs_f64() / p99_off.as_secs_f64().max(1e-9),
    );
    println!("scorer: {counts}");
    Ok(())
}

/// The sampled route's counts from `/metrics`, as one line.
async fn scrape(gateway: &Server) -> anyhow::Result<String> {
    let uri: hyper::Uri = format!("http://{}/metrics", gateway.addr()).parse()?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<Bytes>>();
    let response = client.get(uri).await?;
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await?
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    let parts: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("holdfast_quality_samples_total"))
        .filter_map(|l| {
            let result = l.split("result=\"").nth(1)?.split('"').next()?;
            let value = l.rsplit(' ').next()?;
            Some(format!("{result} {value}"))
        })
        .collect();
    Ok(parts.join(", "))
}
