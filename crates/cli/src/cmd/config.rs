//! `holdfast config`: check a configuration file before it is served.

use std::path::PathBuf;
use std::process::ExitCode;

use super::usage;

/// `holdfast config` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Validate a configuration file: every error with its file, line, column and field.
    Check(CheckArgs),
}

/// Arguments of `holdfast config check`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// The configuration file.
    file: PathBuf,
    /// Accept key_env variables that are not set (to check a file away from its
    /// secrets); they are listed instead.
    #[arg(long)]
    allow_missing_secrets: bool,
}

/// Runs a `holdfast config` subcommand.
pub(crate) fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check(args) => check(args),
    }
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    match holdfast_config::check(&args.file, args.allow_missing_secrets) {
        Ok(summary) => {
            println!("{summary}");
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => Err(usage(errors.to_string())),
    }
}
