//! `holdfast workflow`: register workflow definitions with a running server and list
//! them.
//!
//! A TOML file is converted to JSON (and checked, every problem with its field path)
//! here before it is sent; the server checks the JSON again, so a file that passes
//! here and fails there is reported with the server's message.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::Value;

use super::remote::{Remote, Request, cell, print_json, print_table};

/// `holdfast workflow` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Register a workflow definition (a .json or .toml file).
    Register {
        /// The definition file.
        file: PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
    /// List the registered workflow versions.
    List {
        #[command(flatten)]
        remote: Remote,
    },
}

/// Runs a `holdfast workflow` subcommand.
pub(crate) fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Register { file, remote } => {
            let source = super::serve::read_definition(&file)?;
            let (status, body) = remote.send(Request::post("/v1/workflows", source))?;
            if remote.json {
                print_json(&body);
            } else if status == 201 {
                println!(
                    "registered {} v{}",
                    cell(&body["name"]),
                    cell(&body["version"])
                );
            } else {
                println!(
                    "already registered {} v{} (identical definition)",
                    cell(&body["name"]),
                    cell(&body["version"])
                );
            }
        }
        Command::List { remote } => {
            let (_, body) = remote.send(Request::get("/v1/workflows"))?;
            if remote.json {
                print_json(&body);
            } else {
                let rows: Vec<Vec<String>> = body["workflows"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|w: &Value| {
                        let steps = w["definition"]["steps"].as_array().map_or(0, Vec::len);
                        vec![cell(&w["name"]), cell(&w["version"]), steps.to_string()]
                    })
                    .collect();
                print_table(&["NAME", "VERSION", "STEPS"], &rows);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
