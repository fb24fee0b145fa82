//! `holdfast escalations`: the human inbox from the command line. List what waits for
//! a person; approve, edit or reject it.

use std::process::ExitCode;

use serde_json::json;

use super::remote::{Remote, Request, cell, json_arg, print_json, print_table};
use super::task::segment;

/// `holdfast escalations` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// List open escalations, oldest first.
    List {
        /// Resolved ones too.
        #[arg(long)]
        all: bool,
        /// Only this task's.
        #[arg(long)]
        task: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Answer an escalation: approve it, edit its value, or reject it.
    Resolve(ResolveArgs),
}

/// Arguments of `holdfast escalations resolve`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("decision").required(true).args(["approve", "edit", "reject"])))]
pub(crate) struct ResolveArgs {
    /// The escalation's id.
    id: String,
    /// Go on as proposed.
    #[arg(long)]
    approve: bool,
    /// Go on with this value (JSON) instead.
    #[arg(long, value_name = "JSON")]
    edit: Option<String>,
    /// Stop the task, for this reason.
    #[arg(long, value_name = "REASON")]
    reject: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

/// Runs a `holdfast escalations` subcommand.
pub(crate) fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::List { all, task, remote } => {
            let mut request = Request::get("/v1/escalations");
            request
                .query
                .push(("status", if all { "all" } else { "open" }.to_owned()));
            if let Some(task) = task {
                request.query.push(("task_id", task));
            }
            let (_, body) = remote.send(request)?;
            if remote.json {
                print_json(&body);
            } else {
                let rows: Vec<Vec<String>> = body["escalations"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|e| {
                        vec![
                            cell(&e["escalation_id"]),
                            cell(&e["step"]),
                            cell(&e["status"]),
                            cell(&e["reason"]),
                            cell(&e["payload"]),
                        ]
                    })
                    .collect();
                print_table(
                    &["ESCALATION", "STEP", "STATUS", "REASON", "PAYLOAD"],
                    &rows,
                );
            }
        }
        Command::Resolve(args) => {
            let body = if args.approve {
                json!({"action": "approve"})
            } else if let Some(value) = &args.edit {
                json!({"action": "edit", "value": json_arg("--edit", value)?})
            } else {
                json!({"action": "reject", "reason": args.reject})
            };
            let path = format!("/v1/escalations/{}/resolve", segment(&args.id)?);
            let (_, esc) = args.remote.send(Request::post(&path, body))?;
            if args.remote.json {
                print_json(&esc);
            } else {
                println!(
                    "{} {} by {}",
                    cell(&esc["escalation_id"]),
                    cell(&esc["status"]),
                    cell(&esc["resolved_by"])
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
