//! One module per subcommand, and what they share: the exit-code convention and the
//! runtime they run on.

pub(crate) mod alerts;
pub(crate) mod chaos;
pub(crate) mod config;
pub(crate) mod demo;
pub(crate) mod drill;
pub(crate) mod escalations;
pub(crate) mod eval;
pub(crate) mod examples;
pub(crate) mod fault_proxy;
pub(crate) mod game_days;
pub(crate) mod mock_provider;
pub(crate) mod readiness;
pub(crate) mod remote;
pub(crate) mod serve;
pub(crate) mod simulate;
pub(crate) mod targets;
pub(crate) mod task;
pub(crate) mod workflow;

use std::fmt;

/// Bad usage or bad input (a config, a fault file, a flag): the user must change
/// something. Exits with code 2; every other failure exits with 1.
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Wraps a message as a [`UsageError`].
pub(crate) fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

/// The process exit code for `err`.
pub(crate) fn exit_code(err: &anyhow::Error) -> u8 {
    if err
        .chain()
        .any(|cause| cause.downcast_ref::<UsageError>().is_some())
    {
        2
    } else {
        1
    }
}

/// A multi-threaded tokio runtime for the serving commands.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Completes on Ctrl-C or SIGTERM: the signal to shut down gracefully.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
