//! `holdfast simulate`: the policy under seeded fault scenarios, checked and compared.

use std::process::ExitCode;

use holdfast_policy::sim::{self, Report, Scenario};

use super::usage;

/// Arguments of `holdfast simulate`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Seeds to run per scenario (seeds 0..N).
    #[arg(long, default_value_t = 1000)]
    seeds: u64,
    /// Run only this scenario (default: all).
    #[arg(long)]
    scenario: Option<String>,
    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,
}

/// Runs the simulation and prints the table; fails if any invariant broke.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.list {
        for name in sim::NAMES {
            println!("{name}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.seeds == 0 {
        return Err(usage("--seeds must be at least 1"));
    }
    let scenarios = match &args.scenario {
        Some(name) => vec![Scenario::named(name).map_err(|e| usage(e.to_string()))?],
        None => Scenario::all().map_err(|e| usage(e.to_string()))?,
    };
    let report = Report::run(&scenarios, 0..args.seeds);
    println!("{report}");
    let broken = report.violations().count();
    if broken > 0 {
        eprintln!("{broken} invariant violations");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
