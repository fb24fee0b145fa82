//! `holdfast drill`: a failover drill against a running server. One target of a route
//! is drained for a while under a trickle of real requests; the report says whether the
//! route kept answering, whether the target served nothing meanwhile, and how soon it
//! took its traffic back once restored. Exit 0 when every check held, 1 when one
//! failed, 2 when the drill could not run as asked.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use holdfast_chaos::{Drill, DrillError};
use holdfast_policy::SystemClock;

use super::remote::{Remote, print_json};
use super::usage;

/// Arguments of `holdfast drill`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The route the drill's requests ask for.
    #[arg(long)]
    route: String,
    /// The target to take out of rotation.
    #[arg(long)]
    target: String,
    /// How long the route runs as it is first.
    #[arg(long, default_value = "5s", value_parser = duration)]
    baseline: Duration,
    /// How long the target stays drained.
    #[arg(long = "for", default_value = "30s", value_parser = duration)]
    drained: Duration,
    /// How long the target may take to serve again once restored.
    #[arg(long, default_value = "30s", value_parser = duration)]
    recover: Duration,
    /// Requests per second (they reach real providers and cost money).
    #[arg(long, default_value_t = 2.0)]
    rate: f64,
    /// `max_tokens` of each request.
    #[arg(long, default_value_t = 8)]
    max_tokens: u32,
    /// The share of requests that must succeed while the target is drained.
    #[arg(long, default_value_t = 0.99)]
    min_success: f64,
    #[command(flatten)]
    remote: Remote,
}

fn duration(text: &str) -> Result<Duration, String> {
    holdfast_policy::setting::parse_duration("duration", text).map_err(|e| e.to_string())
}

/// Runs `holdfast drill`.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let drill = Drill {
        server: args.remote.server()?.to_owned(),
        key: args.remote.key().map(str::to_owned),
        route: args.route,
        target: args.target,
        baseline: args.baseline,
        drained: args.drained,
        recovery: args.recover,
        rate: args.rate,
        max_tokens: args.max_tokens,
        min_success: args.min_success,
    };
    let report = super::runtime()?
        .block_on(async {
            let clock = Arc::new(SystemClock::new());
            drill.run(clock).await
        })
        .map_err(|e| match e {
            DrillError::Invalid(message) => usage(message),
            server @ DrillError::Server(_) => anyhow::Error::new(server),
        })?;
    if args.remote.json {
        print_json(&report.to_json());
    } else {
        println!("{report}");
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
