//! Health shared by several holdfast nodes on one PostgreSQL database
//! (`[cluster] share_health = true`): a target's rate limits, and a client key's, are
//! held by all nodes together, and a breaker that opens on one node (or an operator's reset on one) is
//! applied on every node within a fraction of a second.
//!
//! The decision that shapes it: no call ever waits on the database. Each node keeps its
//! own registry (breakers, limiters) and every call asks only that, as on one node; a
//! background loop ([`run`]) exchanges with the store every [`TICK`], in one round trip:
//! it takes units for each limiter in small batches (what the limit earns in two ticks,
//! so the units idle in the nodes' hands stay a small fraction of the limit), publishes
//! the breaker openings and resets of this node and applies those of the others. When
//! the store does not answer within [`EXCHANGE_WAIT`], the node falls back to its own
//! limits and breakers (each limiter refills locally at the configured rate), logs it
//! and shows it on `/metrics`, and shares again once the store answers.

mod metrics;
mod sync;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use holdfast_policy::breaker::Transition;
use holdfast_policy::fallback::TargetId;
use holdfast_policy::pipeline::Registry;
use holdfast_policy::rate_limit::RateLimiter;

pub use sync::run;

/// How often a node exchanges with the store while it wants units or has news.
pub const TICK: Duration = Duration::from_millis(50);

/// How often a node reads the other nodes' breaker notes when it has nothing to take
/// or publish: an opening reaches every node within this plus one exchange.
pub const NOTES_EVERY: Duration = Duration::from_millis(200);

/// The longest an exchange may take before the node falls back to its own limits.
pub const EXCHANGE_WAIT: Duration = Duration::from_millis(500);

/// What the loop needs of the gateway it serves.
pub trait Host: Send + Sync + 'static {
    /// Runs `f` on the registry that calls use now (a reload may have replaced it).
    fn with_registry<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R;
    /// A target's breaker moved because of another node: log and count it as the
    /// gateway does its own breakers' moves.
    fn breaker_moved(&self, target: TargetId, transition: &Transition);
    /// Runs `f` on each rate limit of the client keys that calls use now, with the
    /// key's name and the limit's ("requests" or "tokens"). None by default.
    fn with_key_limits(&self, f: &mut dyn FnMut(&str, &'static str, &mut RateLimiter)) {
        let _ = f;
    }
}

/// This node's handle on the shared health: its identity, the operator resets waiting
/// to be published, and what `/metrics` shows.
#[derive(Debug)]
pub struct SharedHealth {
    node: String,
    resets: Mutex<Vec<String>>,
    metrics: metrics::Metrics,
}

impl SharedHealth {
    /// A handle for the node named `node`, unique among the nodes sharing the store.
    pub fn new(node: String) -> Arc<SharedHealth> {
        Arc::new(SharedHealth {
            node,
            resets: Mutex::new(Vec::new()),
            metrics: metrics::Metrics::default(),
        })
    }

    /// The node's name in the notes it publishes.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// An operator reset `target` on this node: every other node resets it too.
    pub fn reset(&self, target: &str) {
        self.resets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(target.to_owned());
    }

    /// Whether the last exchange with the store succeeded (limits are shared).
    pub fn is_up(&self) -> bool {
        self.metrics.is_up()
    }

    /// The shared health's metrics in the Prometheus text format.
    pub fn exposition(&self) -> String {
        self.metrics.exposition()
    }

    fn take_resets(&self) -> Vec<String> {
        std::mem::take(&mut *self.resets.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
