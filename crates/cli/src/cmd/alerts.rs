//! `holdfast alerts export-prometheus`: the alert rules of a configuration as a
//! Prometheus rule file, for teams that alert from their own Prometheus.
//!
//! The rules come from the configuration's `[alerts]` section (or the defaults with
//! none), resolved exactly as the server resolves them, so the file and the server's
//! own evaluation agree. Secrets are not needed: the file holds no webhook and no key.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use holdfast_config::{LoadOptions, Overrides, process_env};

use super::usage;

/// `holdfast alerts` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Write the alert rules as a Prometheus rule file (check it with
    /// `promtool check rules FILE`).
    ExportPrometheus(ExportArgs),
}

/// Arguments of `holdfast alerts export-prometheus`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// The configuration file whose `[alerts]` to export; the defaults without one.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where to write the rule file; standard output without one.
    #[arg(long)]
    output: Option<PathBuf>,
}

/// Runs a `holdfast alerts` subcommand.
pub(crate) fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::ExportPrometheus(args) => export(args),
    }
}

fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let options = LoadOptions {
        path: args.config,
        env: &process_env,
        overrides: Overrides::default(),
        // The rule file holds no secret, so exporting needs none of them set.
        allow_missing_secrets: true,
    };
    let config = holdfast_config::load(options).map_err(|errors| usage(errors.to_string()))?;
    let text = holdfast_alerts::promql::rule_file(&config.alerts);
    match args.output {
        Some(path) => {
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}
