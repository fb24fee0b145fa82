//! `holdfast eval compare RUN BASELINE`: a stored run gated against another, case by
//! case (exact McNemar on the cases both ran).
//!
//! Exits 1 when that gate fails, so a script can compare two runs after the fact as
//! `eval run --baseline` does at once.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{Records, failure, verdict, write_reports};
use crate::cmd::remote::print_json;

/// Arguments of `holdfast eval compare`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The run to judge.
    run_id: String,
    /// The run to compare it with.
    baseline: String,
    /// Print the report as JSON instead of the summary.
    #[arg(long)]
    json: bool,
    /// Also write the report as one self-contained HTML page to this file.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    #[command(flatten)]
    records: Records,
}

/// Runs `holdfast eval compare`.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    crate::cmd::runtime()?.block_on(async {
        let store = args.records.open().await?;
        let (report, results) = holdfast_quality::report::stored::report(
            &*store,
            &args.records.tenant,
            &args.run_id,
            Some(&args.baseline),
        )
        .await
        .map_err(failure)?;
        if args.json {
            print_json(&serde_json::to_value(&report)?);
        } else {
            print!("{}", report.to_text());
        }
        write_reports(&report, &results, None, args.html.as_deref())?;
        Ok(verdict(&report))
    })
}
