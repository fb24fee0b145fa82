//! `holdfast eval show RUN`: a stored run's report, rebuilt from the store.
//!
//! A run that was interrupted is shown on the cases it recorded, and says so.

use std::path::PathBuf;
use std::process::ExitCode;

use holdfast_store::EvalStatus;

use super::{Records, failure, write_reports};
use crate::cmd::remote::print_json;

/// Arguments of `holdfast eval show`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The run's id.
    run_id: String,
    /// Print the report as JSON instead of the summary.
    #[arg(long)]
    json: bool,
    /// Also write the report as one self-contained HTML page to this file.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    #[command(flatten)]
    records: Records,
}

/// Runs `holdfast eval show`.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    crate::cmd::runtime()?.block_on(async {
        let store = args.records.open().await?;
        let tenant = &args.records.tenant;
        let (run, _) = holdfast_quality::report::stored::load(&*store, tenant, &args.run_id)
            .await
            .map_err(failure)?;
        let (report, results) =
            holdfast_quality::report::stored::report(&*store, tenant, &args.run_id, None)
                .await
                .map_err(failure)?;
        if args.json {
            print_json(&serde_json::to_value(&report)?);
        } else {
            if run.status != EvalStatus::Finished {
                println!(
                    "{}: {} of {} cases recorded",
                    run.status,
                    results.len(),
                    run.cases
                );
            }
            print!("{}", report.to_text());
        }
        write_reports(&report, &results, None, args.html.as_deref())?;
        Ok(ExitCode::SUCCESS)
    })
}
