//! `holdfast task`: submit tasks to a running server, look at them, cancel them.
//!
//! `submit` sends the idempotency key it is given as the `Idempotency-Key` header, so a
//! script that retries a submission after a timeout gets the first task back instead
//! of a second one.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{Value, json};

use super::remote::{Remote, Request, cell, json_arg, print_fields, print_json, print_table};
use super::usage;

/// `holdfast task` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Submit a task: one run of a workflow with an input.
    Submit(SubmitArgs),
    /// Show a task.
    Get {
        /// The task's id.
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// List tasks, newest first.
    List {
        /// Only tasks in this status (queued, running, waiting, succeeded, failed,
        /// cancelled).
        #[arg(long)]
        status: Option<String>,
        /// Only tasks of this workflow.
        #[arg(long)]
        workflow: Option<String>,
        /// At most this many (1..=1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        remote: Remote,
    },
    /// Cancel a task that has not finished.
    Cancel {
        /// The task's id.
        id: String,
        /// Why, for its journal.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
}

/// Arguments of `holdfast task submit`.
#[derive(Debug, clap::Args)]
pub(crate) struct SubmitArgs {
    /// The workflow's name.
    workflow: String,
    /// The input, as JSON (default `{}`).
    #[arg(long, conflicts_with = "input_file")]
    input: Option<String>,
    /// A file holding the input as JSON.
    #[arg(long)]
    input_file: Option<PathBuf>,
    /// The workflow version (default: the latest).
    #[arg(long)]
    version: Option<u32>,
    /// A second submission with the same key returns the first task.
    #[arg(long)]
    idempotency_key: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

/// The fields `task get` shows, in order.
const FIELDS: &[&str] = &[
    "task_id",
    "workflow",
    "workflow_version",
    "status",
    "completed_steps",
    "pending_steps",
    "retry_count",
    "last_error",
    "last_checkpoint",
    "cost_usd",
    "created_at_ms",
    "updated_at_ms",
    "next_run_at_ms",
    "input",
    "output",
];

/// Runs a `holdfast task` subcommand.
pub(crate) fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Submit(args) => submit(args),
        Command::Get { id, remote } => {
            let path = format!("/v1/tasks/{}", segment(&id)?);
            let (_, task) = remote.send(Request::get(&path))?;
            show(&remote, &task);
            Ok(ExitCode::SUCCESS)
        }
        Command::List {
            status,
            workflow,
            limit,
            remote,
        } => {
            let mut request = Request::get("/v1/tasks");
            request.query.push(("limit", limit.to_string()));
            if let Some(status) = status {
                request.query.push(("status", status));
            }
            if let Some(workflow) = workflow {
                request.query.push(("workflow", workflow));
            }
            let (_, body) = remote.send(request)?;
            if remote.json {
                print_json(&body);
            } else {
                let rows: Vec<Vec<String>> = body["tasks"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|t| {
                        vec![
                            cell(&t["task_id"]),
                            format!("{} v{}", cell(&t["workflow"]), cell(&t["workflow_version"])),
                            cell(&t["status"]),
                            cell(&t["retry_count"]),
                            cell(&t["cost_usd"]),
                            cell(&t["last_error"]),
                        ]
                    })
                    .collect();
                print_table(
                    &[
                        "TASK",
                        "WORKFLOW",
                        "STATUS",
                        "RETRIES",
                        "COST_USD",
                        "LAST_ERROR",
                    ],
                    &rows,
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Cancel { id, reason, remote } => {
            let path = format!("/v1/tasks/{}/cancel", segment(&id)?);
            let body = match reason {
                Some(reason) => json!({ "reason": reason }),
                None => json!({}),
            };
            let (_, answer) = remote.send(Request::post(&path, body))?;
            if remote.json {
                print_json(&answer);
            } else if answer["cancelled"] == true {
                println!("cancelled {id}");
            } else {
                println!(
                    "{id} had already finished ({}); nothing changed",
                    cell(&answer["task"]["status"])
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn submit(args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let input = match (&args.input, &args.input_file) {
        (Some(text), _) => json_arg("--input", text)?,
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| usage(format!("--input-file {}: {e}", file.display())))?;
            json_arg(&format!("--input-file {}", file.display()), &text)?
        }
        (None, None) => json!({}),
    };
    let mut body = json!({ "workflow": args.workflow, "input": input });
    if let Some(version) = args.version {
        body["version"] = json!(version);
    }
    let mut request = Request::post("/v1/tasks", body);
    if let Some(key) = args.idempotency_key {
        request.headers.push(("idempotency-key", key));
    }
    let (status, task) = args.remote.send(request)?;
    if args.remote.json {
        print_json(&task);
    } else {
        let what = if status == 201 {
            "submitted"
        } else {
            "already submitted"
        };
        println!(
            "{what} {} ({})",
            cell(&task["task_id"]),
            cell(&task["status"])
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn show(remote: &Remote, task: &Value) {
    if remote.json {
        print_json(task);
    } else {
        print_fields(task, FIELDS);
    }
}

/// An id as one URL path segment; ids never hold `/`, `?` or `#`.
pub(crate) fn segment(id: &str) -> anyhow::Result<&str> {
    if id.is_empty() || id.contains(['/', '?', '#', ' ']) {
        return Err(usage(format!("{id:?} is not an id")));
    }
    Ok(id)
}
