//! `holdfast eval run SUITE`: run a suite, or resume a run, and gate it.
//!
//! The suite and its dataset are checked whole first (a bad line exits 2 with its
//! file, line and field, and nothing is called). Then every case goes through the
//! gateway: built in this process from `--config FILE`, or the server at `--server
//! URL` (with `--key`). Each case is stored as it finishes; Ctrl-C stops the run with
//! what finished kept, and the same command with the printed `--run-id` resumes it.
//! At the end: the summary on stdout, `--json` and `--html` reports, exit 0 when the
//! gate passed and 1 when it failed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use holdfast_config::{LoadOptions, process_env};
use holdfast_policy::{Clock, SystemClock};
use holdfast_quality::{RunSpec, Runner, Subject, Suite, TaskType};
use holdfast_server::Gateway;
use holdfast_store::Store;
use tokio::sync::watch;

use super::http::HttpSubject;
use super::progress::Bar;
use super::{Records, failure, usage, verdict, write_reports};
use crate::cmd::remote::DEFAULT_SERVER;
use crate::cmd::serve;

/// Arguments of `holdfast eval run`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The suite file (TOML); its dataset is read relative to it.
    suite: PathBuf,
    /// The holdfast server to evaluate.
    #[arg(long, env = "HOLDFAST_SERVER", conflicts_with = "config")]
    server: Option<String>,
    /// The client key to present to the server.
    #[arg(long, env = "HOLDFAST_CLIENT_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Evaluate this configuration in process instead of a server: the gateway (and,
    /// for a workflow suite, the engine) is built from the file, nothing listens.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Cases in flight at once (default: the suite's `[run] concurrency`).
    #[arg(long)]
    concurrency: Option<usize>,
    /// The seed of the case order and the sample (default: the suite's).
    #[arg(long)]
    seed: Option<u64>,
    /// Run only this many cases, drawn with the seed.
    #[arg(long)]
    sample: Option<usize>,
    /// The run's id: a new one starts a run, a stored one resumes it (default: the
    /// suite's name and the time).
    #[arg(long)]
    run_id: Option<String>,
    /// A stored run to compare with, case by case.
    #[arg(long)]
    baseline: Option<String>,
    /// Write the report and every case as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the report as one self-contained HTML page to this file.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    #[command(flatten)]
    records: Records,
}

/// Runs `holdfast eval run`.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let suite = Suite::load(&args.suite).map_err(failure)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let run_id = match &args.run_id {
        Some(id) => id.clone(),
        None => default_run_id(&suite.name, clock.unix_millis()),
    };
    let mut spec = RunSpec::new(&suite, &run_id, &args.records.tenant);
    if let Some(n) = args.concurrency {
        spec.settings.concurrency = n;
    }
    if let Some(seed) = args.seed {
        spec.settings.seed = seed;
    }
    if args.sample.is_some() {
        spec.settings.sample = args.sample;
    }
    spec.baseline.clone_from(&args.baseline);
    super::super::runtime()?.block_on(evaluate(args, suite, spec, clock))
}

async fn evaluate(
    args: Args,
    suite: Suite,
    spec: RunSpec,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<ExitCode> {
    let store = args.records.open().await?;
    let (stop_engine, engine_stopped) = watch::channel(false);
    let subject = subject(&args, &suite, &store, &clock, engine_stopped).await?;
    eprintln!(
        "run {} of suite {} ({}); resume with: holdfast eval run {} --run-id {}",
        spec.run_id,
        suite.name,
        suite.task.label(),
        args.suite.display(),
        spec.run_id
    );
    let bar = Bar::new();
    let runner = Runner::new(store, subject, clock);
    let outcome = runner
        .run(&suite, spec, &bar, crate::cmd::shutdown_signal())
        .await;
    bar.finish();
    let _ = stop_engine.send(true);
    let outcome = outcome.map_err(failure)?;
    let Some(report) = &outcome.report else {
        eprintln!(
            "interrupted: {} of {} cases recorded; run the same command with --run-id {} to resume",
            outcome.results.len(),
            outcome.run.cases,
            outcome.run.run_id
        );
        return Ok(ExitCode::from(130));
    };
    print!("{}", report.to_text());
    write_reports(
        report,
        &outcome.results,
        args.json.as_deref(),
        args.html.as_deref(),
    )?;
    Ok(verdict(report))
}

/// What the cases run against: the server, or the configuration built here.
async fn subject(
    args: &Args,
    suite: &Suite,
    store: &Arc<dyn Store>,
    clock: &Arc<dyn Clock>,
    engine_stopped: watch::Receiver<bool>,
) -> anyhow::Result<Arc<dyn Subject>> {
    let Some(path) = &args.config else {
        let server = args.server.as_deref().unwrap_or(DEFAULT_SERVER);
        if !(server.starts_with("http://") || server.starts_with("https://")) {
            return Err(usage(format!(
                "--server {server:?}: expected a URL like {DEFAULT_SERVER}"
            )));
        }
        let subject = HttpSubject::connect(server, args.key.clone(), Arc::clone(clock)).await?;
        return Ok(Arc::new(subject));
    };
    let options = LoadOptions {
        path: Some(path.clone()),
        env: &process_env,
        ..LoadOptions::default()
    };
    let config = holdfast_config::load(options).map_err(|errors| usage(errors.to_string()))?;
    let mut gateway = Gateway::new(&config, Arc::clone(clock)).map_err(|e| usage(e.to_string()))?;
    if matches!(suite.task, TaskType::Workflow { .. }) {
        let engine = holdfast_engine::Engine::new(
            Arc::clone(store),
            Arc::clone(clock),
            serve::engine_settings(&config),
            Some(gateway.llm()),
            gateway.task_events(),
        );
        for file in &config.engine.workflows {
            serve::register(&engine, file)
                .await
                .with_context(|| format!("registering the workflows of {}", path.display()))?;
        }
        gateway = gateway.with_engine(engine.clone());
        let mut stopped = engine_stopped;
        tokio::spawn(async move {
            engine
                .run(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await;
        });
    }
    Ok(gateway.eval_subject(&args.records.tenant).await)
}

/// `SUITE-YYYYMMDD-HHMMSS` (UTC) for a run started at `unix_ms`.
fn default_run_id(suite: &str, unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let (h, min, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
    format!("{suite}-{y:04}{m:02}{d:02}-{h:02}{min:02}{s:02}")
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_read_as_utc_times() {
        assert_eq!(default_run_id("s", 0), "s-19700101-000000");
        // 2024-02-29 12:34:56 UTC.
        assert_eq!(default_run_id("s", 1_709_210_096_000), "s-20240229-123456");
    }
}
