//! `holdfast eval run` throughput: cases per second against the mock provider at
//! concurrency 32 with deterministic graders, beside the mock's own answer rate.
//!
//! Why the mock's rate as the ceiling: every case is one model call, so a suite can
//! never run faster than its model answers; the ratio says how much of that the
//! runner, the graders, the gateway's pipeline and the store (one durable write per
//! case) leave. Measured in the same run, alternating: the mock alone (the load
//! generator at concurrency 32), `eval run --config` (the gateway built in the eval's
//! process) and `eval run --server` (through `holdfast serve` over HTTP). Each eval
//! round is the whole command, from process start to exit, so suite loading, the
//! store's opening and the report are counted too. The target is 200 cases/s.
//!
//! Run: `cargo build --release -p holdfast && cargo run --release -p holdfast-bench --bin eval`

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use holdfast_bench::load::{self, Endpoint};
use holdfast_bench::measure::Stopwatch;
use holdfast_bench::process::{Scratch, Server, holdfast_binary};

/// Cases in the benchmark's suite.
const CASES: usize = 2000;
/// Cases in flight, as the issue sets it.
const CONCURRENCY: usize = 32;
/// Rounds per path, alternating.
const ROUNDS: usize = 2;
/// How long the mock is loaded alone per round.
const MOCK_SPAN: Duration = Duration::from_secs(2);
/// The target from the issue.
const MIN_CASES_PER_SECOND: f64 = 200.0;

fn main() -> anyhow::Result<()> {
    let binary = holdfast_binary()?;
    let scratch = Scratch::new("eval")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(&binary, &scratch.0))
}

async fn run(binary: &Path, dir: &Path) -> anyhow::Result<()> {
    let mock = Server::start(
        binary,
        &["mock-provider", "--listen", "127.0.0.1:0"].map(String::from),
        &[],
    )?;
    let config = write_files(dir, &mock)?;
    let serve = Server::start(
        binary,
        &[
            "serve".to_owned(),
            "--config".to_owned(),
            config.display().to_string(),
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--store-url".to_owned(),
            format!("sqlite://{}/serve.db", dir.display()),
        ],
        &[],
    )?;
    let client = load::client();
    let direct = Endpoint {
        uri: format!("http://{}/v1/chat/completions", mock.addr()).parse()?,
        body: Bytes::from_static(
            br#"{"model":"mock","messages":[{"role":"user","content":"Question 7: say something scripted."}]}"#,
        ),
        headers: Vec::new(),
    };
    load::throughput(&client, &direct, CONCURRENCY, Duration::from_millis(500)).await?;
    let (mut ceiling, mut in_process, mut over_http) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        ceiling.push(
            load::throughput(&client, &direct, CONCURRENCY, MOCK_SPAN)
                .await?
                .per_second,
        );
        let local = ["--config".to_owned(), config.display().to_string()];
        in_process.push(eval(binary, dir, &format!("local-{round}"), &local)?);
        let remote = ["--server".to_owned(), format!("http://{}", serve.addr())];
        over_http.push(eval(binary, dir, &format!("http-{round}"), &remote)?);
    }
    report(&ceiling, &in_process, &over_http);
    Ok(())
}

/// Writes the suite, its dataset and the gateway's configuration; returns the
/// configuration's path.
fn write_files(dir: &Path, mock: &Server) -> anyhow::Result<PathBuf> {
    let config = format!(
        "[providers.mock]\nformat = \"openai\"\nbase_url = \"http://{}/v1\"\n\n\
         [targets.small]\nprovider = \"mock\"\nmodel = \"mock-small\"\ncontext_window = 128000\n\
         requests_per_minute = 60000000\ntokens_per_minute = 6000000000\n\
         price = {{ input_per_mtok = 0.15, output_per_mtok = 0.6 }}\n\n\
         [routes.support]\ntargets = [\"small\"]\n",
        mock.addr()
    );
    let suite = "name = \"bench\"\ndataset = \"bench.jsonl\"\n[task]\nroute = \"support\"\n\
                 [thresholds]\npass_rate = { all = 1.0 }\ncost_per_case = 0.01\n";
    let mut dataset = String::with_capacity(CASES * 300);
    for i in 0..CASES {
        let case = serde_json::json!({
            "id": format!("case-{i:05}"),
            "input": [{"role": "user", "content": format!("Question {i}: say something scripted.")}],
            "assert": [
                {"type": "contains", "value": "scripted answer"},
                {"type": "regex", "value": "^Holdfast mock provider here\\."},
                {"type": "max_latency", "value": "5s"},
                {"type": "max_cost", "value": 0.001},
            ],
            "tags": ["labeled"],
        });
        dataset.push_str(&case.to_string());
        dataset.push('\n');
    }
    std::fs::write(dir.join("bench.toml"), suite)?;
    std::fs::write(dir.join("bench.jsonl"), dataset)?;
    let path = dir.join("holdfast.toml");
    std::fs::write(&path, config)?;
    Ok(path)
}

/// One whole `holdfast eval run` at concurrency 32: its cases per second, start to
/// exit. Fails unless every case passed (the gate's exit 0).
fn eval(binary: &Path, dir: &Path, run_id: &str, target: &[String]) -> anyhow::Result<f64> {
    let clock = Stopwatch::start();
    let output = Command::new(binary)
        .arg("eval")
        .arg("run")
        .arg(dir.join("bench.toml"))
        .args(target)
        .args([
            "--concurrency",
            &CONCURRENCY.to_string(),
            "--run-id",
            run_id,
        ])
        .arg("--store-url")
        .arg(format!("sqlite://{}/evals.db", dir.display()))
        .env_remove("HOLDFAST_SERVER")
        .env_remove("HOLDFAST_CLIENT_KEY")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} eval run", binary.display()))?;
    let elapsed = clock.elapsed();
    if !output.status.success() {
        bail!(
            "eval run {run_id} exited {:?}:\n{}\n{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(CASES as f64 / elapsed.as_secs_f64())
}

fn range(values: &[f64]) -> String {
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(0.0, f64::max);
    format!("{low:.0}–{high:.0}")
}

fn report(ceiling: &[f64], in_process: &[f64], over_http: &[f64]) {
    let best = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    println!(
        "holdfast eval run: {CASES} cases, concurrency {CONCURRENCY}, 4 deterministic graders each, \
         {ROUNDS} rounds"
    );
    println!(
        "  mock alone (the ceiling)       {:>11} answers/s",
        range(ceiling)
    );
    for (name, values) in [
        ("--config (in process)", in_process),
        ("--server (over HTTP)", over_http),
    ] {
        let ratio = best(values) / best(ceiling).max(1.0);
        let met = if best(values) >= MIN_CASES_PER_SECOND {
            "met"
        } else {
            "NOT met"
        };
        println!(
            "  eval run {name:<22} {:>11} cases/s  ({ratio:.2}× the mock; target ≥ {MIN_CASES_PER_SECOND:.0}: {met})",
            range(values)
        );
    }
}
