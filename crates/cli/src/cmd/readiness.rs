//! `holdfast readiness`: the production checklist, checked against a running
//! deployment (`GET /admin/readiness`, an operator key).
//!
//! The server checks what a machine can (it holds the configuration, the workflows and
//! the gate's runs); this command prints each item with its verdict and reason, then
//! what a person must check, and exits 0 only when every machine check passes.

use std::process::ExitCode;

use holdfast_quality::readiness::Checklist;

use super::remote::{Remote, Request, print_json};

/// Arguments of `holdfast readiness`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    remote: Remote,
}

/// Runs `holdfast readiness`: exit 0 ready, 1 not ready.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (_, body) = args.remote.send(Request::get("/admin/readiness"))?;
    let checklist: Checklist = serde_json::from_value(body.clone())
        .map_err(|e| anyhow::anyhow!("the server's checklist could not be read: {e}"))?;
    if args.remote.json {
        print_json(&body);
    } else {
        print!("{}", checklist.to_text());
    }
    Ok(if checklist.ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
