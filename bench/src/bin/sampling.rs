//! Production scoring's cost on the request path: the same gateway, the same target,
//! one route sampled at 100% (graded by a deterministic grader and a judge route) and
//! two not (a route and its twin), measured in alternating rounds of one run. The
//! twin's difference from the unsampled route, round by round, is the noise the
//! sampled route's difference is judged against.
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

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use holdfast_bench::load::{self, Endpoint};
use holdfast_bench::measure::{Stopwatch, human, percentile};
use holdfast_bench::process::{Scratch, Server, holdfast_binary};

/// Requests per round, and rounds per route (alternating).
const ROUND: usize = 500;
const ROUNDS: usize = 8;

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
         [routes.plain]\ntargets = [\"primary\"]\n\n[routes.twin]\ntargets = [\"primary\"]\n\n[routes.sampled]\ntargets = [\"primary\"]\n\n\
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
    let scratch = Scratch::new("sampling")?;
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
    let (off, twin, on) = (endpoint("plain")?, endpoint("twin")?, endpoint("sampled")?);

    eprintln!("warming up…");
    load::latencies(&client, &off, 300).await?;
    load::latencies(&client, &twin, 300).await?;
    load::latencies(&client, &on, 300)
        .await
        .with_context(|| gateway.stderr_tail())?;
    let clock = Stopwatch::start();
    let (mut off_p50s, mut twin_p50s, mut on_p50s) = (Vec::new(), Vec::new(), Vec::new());
    let (mut plain, mut twins, mut sampled) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        for (route, all, medians) in [
            (&off, &mut plain, &mut off_p50s),
            (&twin, &mut twins, &mut twin_p50s),
            (&on, &mut sampled, &mut on_p50s),
        ] {
            let mut round = load::latencies(&client, route, ROUND).await?;
            round.sort_unstable();
            medians.push(percentile(&round, 50.0));
            all.extend(round);
        }
    }
    for all in [&mut plain, &mut twins, &mut sampled] {
        all.sort_unstable();
    }
    let counts = scrape(&gateway).await?;

    println!(
        "{} requests per route at concurrency 1, {ROUNDS} alternating rounds, in {}:",
        ROUND * ROUNDS,
        human(clock.elapsed())
    );
    for (label, all) in [
        ("sampling off  ", &plain),
        ("off, its twin ", &twins),
        ("sampling 100% ", &sampled),
    ] {
        println!(
            "  {label} p50 {:>10}  p99 {:>10}",
            human(percentile(all, 50.0)),
            human(percentile(all, 99.0))
        );
    }
    // Per round, each route's p50 against the unsampled route's of the same round: the
    // twin's differences are the noise, the sampled route's what sampling adds to it.
    let noise = Differences::of(&twin_p50s, &off_p50s);
    let added = Differences::of(&on_p50s, &off_p50s);
    println!(
        "p50 against sampling off, per round: twin {:+.1} µs (sd {:.1}), sampled {:+.1} µs (sd {:.1})",
        noise.mean, noise.sd, added.mean, added.sd
    );
    // Within noise: the sampled route's mean difference is no further from the twin's
    // than two standard errors of a round's difference allow.
    let margin = 2.0 * noise.sd.max(added.sd) * (2.0 / ROUNDS as f64).sqrt();
    let within = (added.mean - noise.mean).abs() <= margin;
    println!(
        "added p50 {:+.1} µs against the twin's, margin ±{margin:.1} µs: {} (ratio on/off p50 {:.3}×, p99 {:.3}×)",
        added.mean - noise.mean,
        if within {
            "within noise"
        } else {
            "NOT within noise"
        },
        percentile(&sampled, 50.0).as_secs_f64() / percentile(&plain, 50.0).as_secs_f64().max(1e-9),
        percentile(&sampled, 99.0).as_secs_f64() / percentile(&plain, 99.0).as_secs_f64().max(1e-9),
    );
    println!("scorer: {counts}");
    Ok(())
}

/// The mean and standard deviation of per-round differences, in microseconds.
struct Differences {
    mean: f64,
    sd: f64,
}

impl Differences {
    fn of(routes: &[Duration], baseline: &[Duration]) -> Differences {
        let d: Vec<f64> = routes
            .iter()
            .zip(baseline)
            .map(|(a, b)| (a.as_secs_f64() - b.as_secs_f64()) * 1e6)
            .collect();
        let n = d.len().max(1) as f64;
        let mean = d.iter().sum::<f64>() / n;
        let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        Differences {
            mean,
            sd: var.sqrt(),
        }
    }
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
