//! `holdfast config`: check a configuration file before it is served, and manage the
//! configuration of a running server.
//!
//! `check` reads a file locally; `import litellm` turns a LiteLLM proxy `config.yaml`
//! into a holdfast configuration (`holdfast_config::import_litellm`). `history`, `diff`, `rollback` and `reload` are HTTP
//! clients of a running `holdfast serve` (`/admin/config…`, `--server` and `--key` as
//! for `holdfast task`): the server validates, records and applies, so these commands
//! behave the same against any deployment and never touch the store directly.

mod diff;

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{Value, json};

use super::remote::{Remote, Request, cell, print_json, print_table};
use super::usage;

/// `holdfast config` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Validate a configuration file: every error with its file, line, column and field.
    Check(CheckArgs),
    /// Convert another gateway's configuration to holdfast's: the TOML goes to stdout
    /// (or --output), and what could not be carried over, with its line, to stderr.
    Import(ImportArgs),
    /// List the running server's configuration versions, newest first.
    History {
        /// How many versions to list (1 to 1000).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show how version B differs from version A, as a unified line diff.
    Diff {
        /// The older version.
        a: u64,
        /// The newer version.
        b: u64,
        #[command(flatten)]
        remote: Remote,
    },
    /// Apply a stored version again (default: the one before the running one); it is
    /// recorded as a new version.
    Rollback {
        /// The version to restore.
        #[arg(long)]
        to: Option<u64>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Send a configuration file to the running server (validated, then applied), or,
    /// without --file, make it read its own file again.
    Reload {
        /// The file to send.
        #[arg(long)]
        file: Option<PathBuf>,
        #[command(flatten)]
        remote: Remote,
    },
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

/// The configurations `holdfast config import` reads.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum ImportFrom {
    /// A LiteLLM proxy `config.yaml`.
    Litellm,
}

/// Arguments of `holdfast config import`.
#[derive(Debug, clap::Args)]
pub(crate) struct ImportArgs {
    /// Whose configuration it is.
    from: ImportFrom,
    /// The file to convert.
    file: PathBuf,
    /// Write the TOML here instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

/// Runs a `holdfast config` subcommand.
pub(crate) fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check(args) => check(args),
        Command::Import(args) => import(&args),
        Command::History { limit, remote } => history(limit, &remote),
        Command::Diff { a, b, remote } => diff(a, b, &remote),
        Command::Rollback { to, remote } => {
            let body = to.map_or_else(|| json!({}), |v| json!({"version": v}));
            applied(
                &remote,
                remote
                    .send(Request::post("/admin/config/rollback", body))?
                    .1,
            )
        }
        Command::Reload { file, remote } => {
            let request = match file {
                Some(file) => {
                    let text = std::fs::read_to_string(&file)
                        .map_err(|e| usage(format!("{}: cannot read: {e}", file.display())))?;
                    Request::post_text("/admin/config", "application/toml", text)
                }
                None => Request::post("/admin/config/reload", json!({})),
            };
            applied(&remote, remote.send(request)?.1)
        }
    }
}

fn import(args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let ImportFrom::Litellm = args.from;
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| usage(format!("{}: cannot read: {e}", args.file.display())))?;
    let imported = holdfast_config::import_litellm(&text, &holdfast_config::process_env)
        .map_err(|e| usage(format!("{}:{e}", args.file.display())))?;
    for note in &imported.notes {
        eprintln!("{}:{note}", args.file.display());
    }
    match &args.output {
        Some(path) => std::fs::write(path, &imported.toml)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?,
        None => print!("{}", imported.toml),
    }
    eprintln!(
        "converted; {} note(s) above. Check the result with `holdfast config check`.",
        imported.notes.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn history(limit: u32, remote: &Remote) -> anyhow::Result<ExitCode> {
    if !(1..=1000).contains(&limit) {
        return Err(usage(format!("--limit {limit}: expected 1 to 1000")));
    }
    let mut request = Request::get("/admin/config/history");
    request.query.push(("limit", limit.to_string()));
    let (_, body) = remote.send(request)?;
    if remote.json {
        print_json(&body);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = body["data"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|v| {
            let sha = cell(&v["sha256"]);
            vec![
                cell(&v["version"]),
                if v["applied"] == Value::Bool(true) {
                    "*".to_owned()
                } else {
                    String::new()
                },
                cell(&v["created_at_ms"]),
                sha.chars().take(12).collect(),
                note(v),
            ]
        })
        .collect();
    print_table(
        &["VERSION", "RUNNING", "CREATED_AT_MS", "SHA256", "NOTE"],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

/// What the history says of a version besides its figures: what it restored, and the
/// quality gate's verdict.
fn note(v: &Value) -> String {
    let mut note: Vec<String> = Vec::new();
    if let Some(from) = v["restored_from"].as_u64() {
        note.push(format!("restores {from}"));
    }
    let gate = &v["gate"];
    if let Some(action) = gate["action"].as_str() {
        let verdict = if gate["passed"] == true {
            "gate passed"
        } else {
            "gate FAILED"
        };
        let summary = gate["summary"].as_str().unwrap_or_default();
        note.push(format!("{verdict}, {action}: {summary}"));
    }
    note.join("; ")
}

fn diff(a: u64, b: u64, remote: &Remote) -> anyhow::Result<ExitCode> {
    let text = |v: u64| -> anyhow::Result<String> {
        let path = format!("/admin/config/versions/{v}");
        let (_, body) = remote.send(Request::get(&path))?;
        Ok(match body {
            Value::String(text) => text,
            // A text that happens to parse as JSON comes back as a value.
            other => other.to_string(),
        })
    };
    let (old, new) = (text(a)?, text(b)?);
    print!(
        "{}",
        diff::unified(&old, &new, &format!("version {a}"), &format!("version {b}"))
    );
    Ok(ExitCode::SUCCESS)
}

/// Prints a reload's or rollback's answer.
fn applied(remote: &Remote, body: Value) -> anyhow::Result<ExitCode> {
    if remote.json {
        print_json(&body);
    } else if body["changed"] == Value::Bool(true) {
        println!("applied: configuration version {}", cell(&body["version"]));
    } else {
        println!(
            "unchanged: the running configuration (version {}) has the same text",
            cell(&body["version"])
        );
    }
    Ok(ExitCode::SUCCESS)
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
