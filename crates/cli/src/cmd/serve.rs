//! `holdfast serve --config FILE`: the gateway.
//!
//! Loads and validates the configuration (every error printed with its file, line and
//! field, exit code 2), binds, prints `listening on ADDR` on stdout once the socket is
//! bound (so a test can start it on port 0 and read the port), and serves until Ctrl-C
//! or SIGTERM, letting requests in flight finish.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use holdfast_config::{LoadOptions, Overrides, process_env};
use holdfast_policy::SystemClock;
use holdfast_server::Gateway;

use super::usage;

/// Arguments of `holdfast serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The configuration file (TOML); `HOLDFAST_CONFIG` when not given.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on, overriding `server.listen` and `HOLDFAST_LISTEN`; port 0
    /// picks a free port.
    #[arg(long)]
    listen: Option<String>,
}

/// Serves the gateway until Ctrl-C or SIGTERM.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.config.is_none()
        && process_env(holdfast_config::ENV_CONFIG).is_none_or(|v| v.is_empty())
    {
        return Err(usage(
            "no configuration: pass --config FILE or set HOLDFAST_CONFIG",
        ));
    }
    let options = LoadOptions {
        path: args.config,
        env: &process_env,
        overrides: Overrides {
            listen: args.listen,
            store_url: None,
        },
        allow_missing_secrets: false,
    };
    let config = holdfast_config::load(options).map_err(|errors| usage(errors.to_string()))?;
    super::runtime()?.block_on(async move {
        let gateway = Gateway::new(&config, Arc::new(SystemClock::new()))
            .map_err(|e| usage(e.to_string()))?;
        let listen = config.server.listen;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        println!("listening on {}", listener.local_addr()?);
        tracing::info!(
            routes = config.routes.len(),
            targets = config.targets.len(),
            version = %config.source.version,
            "holdfast gateway serving"
        );
        holdfast_server::serve(listener, gateway, super::shutdown_signal()).await?;
        anyhow::Ok(ExitCode::SUCCESS)
    })
}
