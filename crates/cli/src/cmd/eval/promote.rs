//! `holdfast eval promote SAMPLE_ID --suite FILE`: a sampled production answer,
//! read from the server, appended to a suite's dataset as a `labeled` case.
//!
//! The suite file is the binary's own (as for `holdfast eval run`); the line is
//! checked by loading the suite with it before it is written, so a promotion the
//! suite would refuse (a repeated id, an input the gateway would not take) changes
//! nothing and exits 2 with the problem.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{Value, json};

use crate::cmd::remote::{Remote, Request, json_arg, print_json};

/// Arguments of `holdfast eval promote`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The sample's id (`GET /v1/holdfast/samples`).
    sample_id: u64,
    /// The suite file whose dataset the case is appended to.
    #[arg(long)]
    suite: PathBuf,
    /// The right answer: JSON, or else plain text (default: the sampled answer's text).
    #[arg(long)]
    expected: Option<String>,
    /// The case's graders, a JSON array (default: `[{"type": "equals"}]`).
    #[arg(long = "assert")]
    asserts: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

/// Runs `holdfast eval promote`.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let asserts = match &args.asserts {
        Some(text) => match json_arg("--assert", text)? {
            Value::Array(items) => Some(items),
            _ => return Err(super::usage("--assert: expected a JSON array of graders")),
        },
        None => None,
    };
    let expected = args
        .expected
        .map(|text| serde_json::from_str(&text).unwrap_or(Value::String(text)));
    let path = format!("/v1/holdfast/samples/{}", args.sample_id);
    let (_, sample) = args.remote.send(Request::get(&path))?;
    let case = holdfast_quality::sampling::promoted_case(
        (args.sample_id, &sample["input"], &sample["answer"]),
        expected,
        asserts,
    );
    let case_id =
        holdfast_quality::sampling::promote(&args.suite, &case).map_err(super::failure)?;
    if args.remote.json {
        print_json(&json!({"case_id": case_id, "suite": args.suite.display().to_string()}));
    } else {
        println!(
            "appended case {case_id} to the dataset of {}",
            args.suite.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
