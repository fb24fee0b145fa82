//! Wires the health shared with other nodes (`[cluster] share_health`,
//! holdfast-cluster) to the running configuration: its loop reads and changes the
//! registry and the client keys current at each round (a reload swaps them), and the breaker moves another
//! node causes are logged and counted here as this node's own are.

use std::sync::Arc;

use holdfast_cluster::{Host, SharedHealth};
use holdfast_policy::breaker::Transition;
use holdfast_policy::fallback::TargetId;
use holdfast_policy::pipeline::Registry;
use holdfast_policy::rate_limit::RateLimiter;

use crate::gateway::Gateway;
use crate::live::Live;

/// Stops sharing when dropped (when the server stops).
pub struct SharingHealth(tokio::task::JoinHandle<()>);

impl Drop for SharingHealth {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Current(Arc<Live>);

impl Host for Current {
    fn with_registry<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        let inner = self.0.current();
        let mut registry = inner.registry.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut registry)
    }

    fn breaker_moved(&self, target: TargetId, transition: &Transition) {
        let inner = self.0.current();
        let index = target.0 as usize;
        inner
            .metrics
            .breaker_transition(index, transition.from, transition.to);
        inner.metrics.breaker_state(index, transition.to);
        crate::events::log_transition(&inner, target, transition);
    }

    fn with_key_limits(&self, f: &mut dyn FnMut(&str, &'static str, &mut RateLimiter)) {
        self.0.current().keys.for_each_limit(f);
    }
}

impl Gateway {
    /// Starts sharing rate limits and breakers with the other nodes on `store`, as
    /// node `node` (unique among them), on the current runtime.
    pub fn share_health(
        &self,
        store: Arc<dyn holdfast_store::Store>,
        node: String,
    ) -> SharingHealth {
        let health = SharedHealth::new(node);
        if self.inner.shared_health.set(Arc::clone(&health)).is_err() {
            tracing::warn!("health is already shared by this gateway; keeping the first");
        }
        let clock = Arc::clone(&self.live.current().clock);
        let host = Current(Arc::clone(&self.live));
        SharingHealth(tokio::spawn(holdfast_cluster::run(
            health, host, store, clock,
        )))
    }
}
