//! `holdfast eval list`: the stored runs, newest first, with their verdicts.

use std::process::ExitCode;

use holdfast_store::{EvalRun, EvalRunFilter};
use serde_json::{Value, json};

use super::Records;
use crate::cmd::remote::{print_json, print_table};

/// Arguments of `holdfast eval list`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Only runs of this suite.
    #[arg(long)]
    suite: Option<String>,
    /// At most this many (1..=1000).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    records: Records,
}

/// Runs `holdfast eval list`.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    crate::cmd::runtime()?.block_on(async {
        let store = args.records.open().await?;
        let filter = EvalRunFilter {
            tenant: Some(args.records.tenant.clone()),
            suite: args.suite.clone(),
            limit: args.limit,
        };
        let runs = store.list_eval_runs(&filter).await?;
        if args.json {
            print_json(&Value::Array(runs.iter().map(row_json).collect()));
        } else {
            let rows: Vec<Vec<String>> = runs.iter().map(row).collect();
            print_table(
                &[
                    "run",
                    "suite",
                    "status",
                    "cases",
                    "passed",
                    "gate",
                    "started (unix ms)",
                ],
                &rows,
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn row_json(run: &EvalRun) -> Value {
    let summary = run.summary.as_ref();
    json!({
        "run_id": run.run_id,
        "suite": run.suite,
        "status": run.status.as_str(),
        "cases": run.cases,
        "passed": summary.map(|s| s["passed"].clone()),
        "gate_passed": summary.map(|s| s["gate"]["passed"].clone()),
        "subject": run.subject,
        "created_at_ms": run.created_at_ms,
        "finished_at_ms": run.finished_at_ms,
    })
}

fn row(run: &EvalRun) -> Vec<String> {
    let summary = run.summary.as_ref();
    let passed = summary
        .and_then(|s| {
            Some(format!(
                "{}/{}",
                s["passed"].as_u64()?,
                s["cases"].as_u64()?
            ))
        })
        .unwrap_or_else(|| "-".to_owned());
    let gate = match summary.and_then(|s| s["gate"]["passed"].as_bool()) {
        Some(true) => "passed",
        Some(false) => "FAILED",
        None => "-",
    };
    vec![
        run.run_id.clone(),
        run.suite.clone(),
        run.status.as_str().to_owned(),
        run.cases.to_string(),
        passed,
        gate.to_owned(),
        run.created_at_ms.to_string(),
    ]
}
