//! The holdfast HTTP server: an OpenAI- and Anthropic-compatible gateway in which
//! every LLM call runs through the resilience policy.
//!
//! Clients point their SDK at holdfast: `POST /v1/chat/completions` (OpenAI) or
//! `POST /v1/messages` (Anthropic), streaming or not. Each request is routed by its
//! `model` (a route alias) to a chain of targets and run by the policy crate's driver
//! over one shared registry of target health; answers are validated, costed and traced
//! in an attempt ledger (`GET /v1/holdfast/requests/{id}`) and counted for
//! `GET /metrics` (Prometheus text format). The HTTP contract, error codes included,
//! is in `docs/errors.md`.
//!
//! The one decision that shapes this crate: the gateway owns HTTP and nothing else.
//! Retry, fallback and breaking are the policy crate's; wire formats, translation and
//! provider errors are the llm crate's; this crate wires them to sockets, turns their
//! results into the client's status codes, and never reaches around them.
//!
//! ```no_run
//! # async fn run(config: holdfast_config::Config) -> Result<(), holdfast_server::ServerError> {
//! use std::sync::Arc;
//! let gateway = holdfast_server::Gateway::new(&config, Arc::new(holdfast_policy::SystemClock::new()))?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! holdfast_server::serve(listener, gateway, std::future::pending()).await
//! # }
//! ```

mod access;
mod alerts;
mod auth;
mod call;
mod cluster;
mod corrections;
mod dashboard;
mod degraded;
mod embeddings;
mod engine_api;
mod engine_json;
mod error;
mod events;
mod exchange;
mod extract;
mod failure;
mod few_shot;
mod gateway;
mod handlers;
mod idempotency;
mod inflight;
mod inproc;
mod intake;
mod ledger;
mod listener;
mod live;
mod llm_step;
mod meta;
mod output;
mod probe;
mod prompt;
mod quality;
mod readiness;
mod ready;
mod recovery;
mod respond;
mod rollout;
mod sampling;
mod spans;
mod sse;
mod streaming;
mod transport;

use std::future::Future;

pub use access::OPEN_TENANT;
pub use cluster::SharingHealth;
pub use error::{ApiError, ConfigProblem, Flavor, ServerError};
pub use gateway::{
    DEGRADED_CACHE_CAPACITY, DEGRADED_CACHE_MAX_BYTES, Gateway, LEDGER_CAPACITY, LEDGER_MAX_BYTES,
};
pub use handlers::{GameDaySink, Rule, read_chat_request, read_messages_request, router, rules};
pub use holdfast_metrics::GameDayResult;
pub use live::{Applied, ConfigFile, ReloadError};
pub use meta::{
    AGENT, ATTEMPTS, COST, DEADLINE_MS, DEGRADED, IDEMPOTENCY_KEY, REPLAYED, REQUEST_ID, TARGET,
};
pub use rollout::Decision;

/// Serves `gateway` on `listener` until `shutdown` completes, then lets the requests in
/// flight (streams included) finish.
///
/// The listener is guarded by `[server]`'s timeouts and caps (see `listener/`): a
/// request head, a request body and a kept-alive connection's idleness are each timed,
/// and at most `max_connections` connections are served at once.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gateway: Gateway,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    if gateway.is_open() {
        tracing::warn!(
            "no client keys are configured: the gateway accepts requests without a key, \
             addressed to its loopback address only"
        );
    }
    if let Ok(addr) = listener.local_addr() {
        gateway.live.bind(addr);
    }
    let _alerts = alerts::start(&gateway);
    let _probes = probe::start(&gateway);
    let _few_shot = few_shot::start(&gateway);
    sampling::start(&gateway);
    // The routes are resolved once, here, and the result shared by every connection:
    // resolving them per connection would rebuild the whole route table each time
    // (~18 KiB, held as long as the connection lives: 18 MiB with 1,000 clients
    // streaming).
    let app = router(gateway.clone()).with_state(());
    listener::serve(listener, app, &gateway, shutdown).await;
    Ok(())
}
