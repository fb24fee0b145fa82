//! `holdfast fault-proxy`: the mock provider's faults in front of a real provider.
//!
//! Point a provider's `base_url` at the proxy and the proxy at the provider: the chat
//! endpoint of the chosen format gets the fault set (the same file and flags as
//! `holdfast mock-provider`, replaced at run time with `POST /admin/faults`), every
//! request no fault strikes is forwarded byte for byte. The bound address is printed on
//! stdout (`listening on 127.0.0.1:PORT`) so that a test can start it on port 0.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
use holdfast_chaos::FaultProxy;
use holdfast_mock::{Format, MockProvider};
use holdfast_policy::SystemClock;

use super::mock_provider::{FaultArgs, faults};
use super::usage;

/// Arguments of `holdfast fault-proxy`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The provider to forward to, without the API path: `https://api.openai.com`
    /// (requests keep their path, `/v1/chat/completions`).
    #[arg(long)]
    upstream: String,
    /// Address to listen on; port 0 picks a free port. The admin API has no key: keep
    /// it on loopback or a private network.
    #[arg(long, default_value = "127.0.0.1:9100")]
    listen: SocketAddr,
    /// Wire format of the provider: openai or anthropic.
    #[arg(long, default_value = "openai")]
    format: String,
    /// Seed for every random fault.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    faults: FaultArgs,
}

/// Serves the proxy until Ctrl-C or SIGTERM.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let format = Format::from_str(&args.format).map_err(|e| usage(e.to_string()))?;
    let faults = faults(&args.faults)?;
    let provider = MockProvider::new(format, faults, args.seed, Arc::new(SystemClock::new()))
        .map_err(|e| usage(e.to_string()))?;
    let proxy = FaultProxy::new(provider, &args.upstream).map_err(|e| usage(e.to_string()))?;
    super::runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        println!("listening on {}", listener.local_addr()?);
        holdfast_chaos::proxy::serve(listener, proxy, super::shutdown_signal()).await?;
        anyhow::Ok(ExitCode::SUCCESS)
    })
}
