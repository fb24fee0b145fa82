//! `holdfast chaos run FILE… ` and `holdfast chaos list [DIR]`: chaos experiments (TOML
//! files, see docs/chaos.md) against a running server. `run` shows a live view on
//! stderr, prints each verdict (or `--json`), writes one HTML report with plots when
//! asked (`--html FILE`), and exits 0 when every experiment held, 1 when one did not,
//! 2 when a file cannot be run as written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use holdfast_chaos::experiment::{Experiment, Runner, html_page};
use holdfast_policy::SystemClock;
use serde_json::json;

use super::remote::{Remote, print_json};
use super::usage;

/// `holdfast chaos …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Run experiments, one after the other, against a running server.
    Run(RunArgs),
    /// List the experiments of a directory (default `chaos/`) and check them.
    List(ListArgs),
}

/// Arguments of `holdfast chaos run`.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// Experiment files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// A value for a `${NAME}` placeholder: `NAME=VALUE` (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    vars: Vec<String>,
    /// Write one self-contained HTML report with plots to this file.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// No live view on stderr.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    remote: Remote,
}

/// Arguments of `holdfast chaos list`.
#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// The directory of experiments.
    #[arg(default_value = "chaos")]
    dir: PathBuf,
    /// A value for a `${NAME}` placeholder: `NAME=VALUE` (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    vars: Vec<String>,
}

/// Runs `holdfast chaos`.
pub(crate) fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(args) => run_experiments(args),
        Command::List(args) => list(args),
    }
}

fn vars(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
                .ok_or_else(|| usage(format!("--var {pair}: expected NAME=VALUE")))
        })
        .collect()
}

fn load(path: &Path, vars: &BTreeMap<String, String>) -> anyhow::Result<Experiment> {
    Experiment::load(path, vars).map_err(|e| usage(e.to_string()))
}

fn run_experiments(args: RunArgs) -> anyhow::Result<ExitCode> {
    let vars = vars(&args.vars)?;
    // Every file is checked before the first one runs: a typo in the third must not
    // surface after the first two have injected faults.
    let experiments = args
        .files
        .iter()
        .map(|path| load(path, &vars).map(|e| (path.display().to_string(), e)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let quiet = args.quiet;
    let runner = Runner {
        server: args.remote.server()?.to_owned(),
        key: args.remote.key().map(str::to_owned),
        clock: Arc::new(SystemClock::new()),
        progress: Arc::new(move |line: &str| {
            if !quiet {
                eprintln!("{line}");
            }
        }),
    };
    let reports = super::runtime()?.block_on(async {
        let mut reports = Vec::new();
        for (file, experiment) in &experiments {
            if !quiet {
                eprintln!("experiment: {} ({file})", experiment.title);
            }
            let report = runner
                .run(experiment, file)
                .await
                .map_err(anyhow::Error::msg)?;
            if !args.remote.json {
                println!("{report}\n");
            }
            reports.push(report);
        }
        anyhow::Ok(reports)
    })?;
    let passed = reports.iter().all(|r| r.verdict.passed());
    if let Some(path) = &args.html {
        std::fs::write(path, html_page(&reports))
            .with_context(|| format!("writing {}", path.display()))?;
        if !quiet {
            eprintln!("report: {}", path.display());
        }
    }
    if args.remote.json {
        let all: Vec<_> = reports.iter().map(|r| r.to_json()).collect();
        print_json(&json!({"passed": passed, "experiments": all}));
    }
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let vars = vars(&args.vars)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.dir)
        .with_context(|| format!("reading {}", args.dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    let mut bad = 0;
    for path in &files {
        match Experiment::load(path, &vars) {
            Ok(e) => println!(
                "{:<44} {}{}",
                path.display(),
                e.title,
                if e.tags.is_empty() {
                    String::new()
                } else {
                    format!("  [{}]", e.tags.join(", "))
                }
            ),
            Err(err) => {
                bad += 1;
                println!("{:<44} INVALID: {err}", path.display());
            }
        }
    }
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
