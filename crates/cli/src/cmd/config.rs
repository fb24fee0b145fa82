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
            check_workflows(&args)?;
            println!("{summary}");
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => Err(usage(errors.to_string())),
    }
}

/// Parses the workflow files `[engine] workflows` names, as `serve` would at start, so
/// that a broken definition is caught before a deploy.
fn check_workflows(args: &CheckArgs) -> anyhow::Result<()> {
    let options = holdfast_config::LoadOptions {
        path: Some(args.file.clone()),
        allow_missing_secrets: true,
        ..holdfast_config::LoadOptions::default()
    };
    let config = holdfast_config::load(options).map_err(|errors| usage(errors.to_string()))?;
    let mut problems = Vec::new();
    for file in &config.engine.workflows {
        let checked = super::serve::read_definition(file).and_then(|source| {
            holdfast_engine::parse(source).map_err(|e| match e {
                holdfast_engine::EngineError::Invalid { problems } => usage(
                    problems
                        .iter()
                        .map(|p| format!("{}: {p}", file.display()))
                        .collect::<Vec<_>>()
                        .join("\n"),
                ),
                other => usage(format!("{}: {other}", file.display())),
            })
        });
        if let Err(e) = checked {
            problems.push(e.to_string());
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(usage(problems.join("\n")))
    }
}
