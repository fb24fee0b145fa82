//! `holdfast targets`: each target's health on a running server, and an operator's
//! drain: take a target out of rotation (maintenance, an announced incident, a failover
//! drill) and put it back, without a configuration change; and an operator's reset of
//! a target's breaker and pending Retry-After.

use std::process::ExitCode;

use serde_json::json;

use super::remote::{Remote, Request, cell, print_json, print_table};
use super::task::segment;

/// `holdfast targets` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Each target's breaker, pending Retry-After and drain.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Take a target out of rotation for a while: calls pass it over and go on along
    /// their route's chain.
    Drain {
        /// The target's name.
        name: String,
        /// How long (`30s`, `10m`, `2h`; at most 24h).
        #[arg(long = "for", value_name = "DURATION")]
        duration: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Put a drained target back in rotation now.
    Restore {
        /// The target's name.
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Close a target's breaker and forget its pending Retry-After (an operator who
    /// knows the provider recovered); logged by the server.
    Reset {
        /// The target's name.
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
}

/// Runs a `holdfast targets` subcommand.
pub(crate) fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::List { remote } => {
            let (_, body) = remote.send(Request::get("/v1/holdfast/targets"))?;
            if remote.json {
                print_json(&body);
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = body["data"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|t| {
                    vec![
                        cell(&t["name"]),
                        cell(&t["model"]),
                        cell(&t["breaker"]),
                        seconds(&t["retry_after_ms"]),
                        seconds(&t["drained_remaining_ms"]),
                    ]
                })
                .collect();
            print_table(
                &["TARGET", "MODEL", "BREAKER", "RETRY AFTER", "DRAINED FOR"],
                &rows,
            );
        }
        Command::Drain {
            name,
            duration,
            remote,
        } => {
            let path = format!("/admin/targets/{}/drain", segment(&name)?);
            let (_, body) = remote.send(Request::post(&path, json!({"for": duration})))?;
            report(&remote, &body, &name);
        }
        Command::Reset { name, remote } => {
            let path = format!("/admin/targets/{}/reset", segment(&name)?);
            let (_, body) = remote.send(Request::post(&path, json!({})))?;
            if remote.json {
                print_json(&body);
            } else {
                println!("{name}: breaker {}", cell(&body["breaker"]));
            }
        }
        Command::Restore { name, remote } => {
            let path = format!("/admin/targets/{}/restore", segment(&name)?);
            let (_, body) = remote.send(Request::post(&path, json!({})))?;
            report(&remote, &body, &name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn report(remote: &Remote, body: &serde_json::Value, name: &str) {
    if remote.json {
        print_json(body);
    } else if body["drained_until_ms"].is_null() {
        println!("{name}: in rotation");
    } else {
        println!(
            "{name}: drained for {}",
            seconds(&body["drained_remaining_ms"])
        );
    }
}

/// Milliseconds as seconds, `-` for none.
fn seconds(ms: &serde_json::Value) -> String {
    match ms.as_f64() {
        Some(ms) if ms > 0.0 => format!("{:.1}s", ms / 1000.0),
        _ => "-".to_owned(),
    }
}
