//! `holdfast eval`: run evaluation suites and read their runs.
//!
//! The decision: the binary is the runner in both modes. Against `--config FILE` the
//! gateway is built from the file in this process (no server); against `--server URL`
//! every case is a call to the running server's OpenAI-compatible endpoint (or
//! `/v1/tasks`), as a client's would be. Either way the runs are kept in a store this
//! command opens (`--store-url`, by default an embedded SQLite file of its own), so a
//! run interrupted by Ctrl-C resumes from that store, and `list`, `show` and `compare`
//! read it. Exit codes: 0 the gate passed, 1 it failed (or something broke), 2 bad usage
//! or a bad suite or dataset, 130 interrupted (resume with the same `--run-id`).

mod compare;
mod http;
mod list;
mod progress;
mod promote;
mod run;
mod show;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use holdfast_quality::{CaseResult, QualityError, Report};
use holdfast_store::Store;
use serde_json::json;

use super::usage;

/// The store runs are kept in when `--store-url` is not given.
pub(crate) const DEFAULT_STORE_URL: &str = "sqlite://holdfast-data/evals.db";

/// `holdfast eval` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Run a suite (or resume a run): every case through the gateway, graded, stored,
    /// reported, gated.
    Run(Box<run::Args>),
    /// List stored runs, newest first.
    List(list::Args),
    /// Show a stored run's report.
    Show(show::Args),
    /// Compare a stored run with another as its baseline.
    Compare(compare::Args),
    /// Append a sampled production answer to a suite's dataset as a labeled case.
    Promote(promote::Args),
}

/// Where runs are kept and whose they are.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Records {
    /// The store runs are kept in (`sqlite://PATH` or `postgres://…`).
    #[arg(long, env = "HOLDFAST_EVAL_STORE_URL", default_value = DEFAULT_STORE_URL)]
    store_url: String,
    /// The tenant runs belong to.
    #[arg(long, default_value = holdfast_server::OPEN_TENANT)]
    tenant: String,
}

impl Records {
    /// Opens the store.
    pub(crate) async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        // The URL stays out of the message: a postgres URL may hold a password.
        holdfast_store::open(&self.store_url)
            .await
            .context("opening the evaluation store (--store-url)")
    }
}

/// Runs a `holdfast eval` subcommand.
pub(crate) fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(args) => run::run(*args),
        Command::List(args) => list::run(args),
        Command::Show(args) => show::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Promote(args) => promote::run(args),
    }
}

/// A quality error as the binary reports it: bad files and settings are usage errors
/// (exit 2), the rest failures (exit 1).
pub(crate) fn failure(err: QualityError) -> anyhow::Error {
    match err {
        QualityError::Invalid(_) | QualityError::Read { .. } | QualityError::Setting { .. } => {
            usage(err.to_string())
        }
        QualityError::NoSuchRun { .. } => usage(err.to_string()),
        QualityError::Stored { .. } | QualityError::Store(_) => anyhow::Error::new(err),
    }
}

/// Writes the report (with its cases) as JSON to `json` and as HTML to `html`.
pub(crate) fn write_reports(
    report: &Report,
    results: &[CaseResult],
    json: Option<&Path>,
    html: Option<&Path>,
) -> anyhow::Result<()> {
    if let Some(path) = json {
        let cases: Vec<serde_json::Value> = results.iter().map(case_json).collect();
        let doc = json!({"report": report, "cases": cases});
        let text = serde_json::to_string_pretty(&doc)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = html {
        let page = holdfast_quality::report::html::render(report, results);
        std::fs::write(path, page).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// A case's result as the JSON report lists it.
fn case_json(r: &CaseResult) -> serde_json::Value {
    json!({
        "id": r.case_id,
        "outcome": r.outcome.as_str(),
        "score": r.score,
        "tags": r.tags,
        "verdicts": r.verdicts,
        "answer": r.answer,
        "error": r.error,
        "cost_usd": r.cost_usd,
        "latency_ms": r.latency_ms,
    })
}

/// The exit code of a gate's verdict.
pub(crate) fn verdict(report: &Report) -> ExitCode {
    if report.gate.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
