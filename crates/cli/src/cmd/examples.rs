//! `holdfast examples`: the few-shot libraries from the command line. List a library's
//! examples, show one, approve or retire it, import a JSONL file whole, export a
//! library as JSONL (which `import` reads back).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};

use super::remote::{Remote, Request, cell, print_json, print_table};

/// `holdfast examples` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// List examples, newest first.
    List(ListArgs),
    /// Show one example.
    Show {
        /// The example's id.
        id: u64,
        #[command(flatten)]
        remote: Remote,
    },
    /// Approve an example: calls retrieve it from now on.
    Approve {
        /// The example's id.
        id: u64,
        #[command(flatten)]
        remote: Remote,
    },
    /// Retire an example: never retrieved again, kept for the record.
    Retire {
        /// The example's id.
        id: u64,
        #[command(flatten)]
        remote: Remote,
    },
    /// Import a JSONL file (`{"library"?, "input", "output", "status"?}` a line): every
    /// line is checked first, and a file with a broken line imports nothing.
    Import {
        /// The file.
        file: PathBuf,
        /// The library of lines that name none.
        #[arg(long)]
        library: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Export examples as JSONL on standard output.
    Export(ListArgs),
}

/// Which examples `list` and `export` show.
#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// Only this library's.
    #[arg(long)]
    library: Option<String>,
    /// Only these: candidate, active or retired.
    #[arg(long)]
    status: Option<String>,
    /// At most this many (1..=1000).
    #[arg(long, default_value_t = 100)]
    limit: u32,
    #[command(flatten)]
    remote: Remote,
}

impl ListArgs {
    fn fetch(&self) -> anyhow::Result<Vec<Value>> {
        let mut request = Request::get("/v1/holdfast/examples");
        request.query.push(("limit", self.limit.to_string()));
        if let Some(library) = &self.library {
            request.query.push(("library", library.clone()));
        }
        if let Some(status) = &self.status {
            request.query.push(("status", status.clone()));
        }
        let (_, body) = self.remote.send(request)?;
        Ok(body["examples"].as_array().cloned().unwrap_or_default())
    }
}

/// Runs a `holdfast examples` subcommand.
pub(crate) fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::List(args) => {
            let examples = args.fetch()?;
            if args.remote.json {
                print_json(&json!({ "examples": examples }));
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = examples
                .iter()
                .map(|e| {
                    [
                        "id",
                        "library",
                        "status",
                        "source",
                        "author",
                        "times_used",
                        "input",
                        "output",
                    ]
                    .iter()
                    .map(|field| short(&cell(&e[*field])))
                    .collect()
                })
                .collect();
            print_table(
                &[
                    "ID", "LIBRARY", "STATUS", "SOURCE", "AUTHOR", "USED", "INPUT", "OUTPUT",
                ],
                &rows,
            );
        }
        Command::Show { id, remote } => {
            let (_, example) = remote.send(Request::get(&format!("/v1/holdfast/examples/{id}")))?;
            print_json(&example);
        }
        Command::Approve { id, remote } => change(id, "approve", &remote)?,
        Command::Retire { id, remote } => change(id, "retire", &remote)?,
        Command::Import {
            file,
            library,
            remote,
        } => {
            let lines = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let body =
                json!({"file": file.display().to_string(), "library": library, "lines": lines});
            let (_, answer) = remote.send(Request::post("/v1/holdfast/examples/import", body))?;
            if remote.json {
                print_json(&answer);
            } else {
                println!(
                    "imported {}: {} new, {} merged into near-duplicates",
                    file.display(),
                    cell(&answer["created"]),
                    cell(&answer["merged"])
                );
            }
        }
        Command::Export(args) => {
            for e in args.fetch()?.iter().rev() {
                let line = json!({
                    "library": e["library"],
                    "input": e["input"],
                    "output": e["output"],
                    "status": if e["status"] == "active" { "active" } else { "candidate" },
                });
                if e["status"] != "retired" {
                    println!("{line}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn change(id: u64, action: &str, remote: &Remote) -> anyhow::Result<()> {
    let path = format!("/v1/holdfast/examples/{id}/{action}");
    let (_, example) = remote.send(Request::post(&path, json!({})))?;
    if remote.json {
        print_json(&example);
    } else {
        println!(
            "example {id} of {} is {}",
            cell(&example["library"]),
            cell(&example["status"])
        );
    }
    Ok(())
}

/// A cell cut to 40 characters, so a table stays readable.
fn short(text: &str) -> String {
    let flat = text.replace(['\n', '\r'], " ");
    if flat.chars().count() <= 40 {
        return flat;
    }
    let cut: String = flat.chars().take(39).collect();
    format!("{cut}…")
}
