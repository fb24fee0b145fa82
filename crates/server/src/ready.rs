//! Readiness: whether this node can do its work now, dependency by dependency, with
//! each one's state and since when (`GET /ready`).
//!
//! The decision that shapes it: readiness is about what the node cannot do without,
//! and is kept apart from liveness (`/health`), which a store outage must not fail (a
//! restart would not bring the store back, and model calls keep working meanwhile).
//! The store is such a dependency: without it no task is accepted or advanced. Model
//! providers are not: a node whose targets are down still answers (fallbacks, degraded
//! answers, fast errors), and every node shares them, so taking it out of a load
//! balancer would help no one; their health is `/v1/holdfast/targets`. The store's
//! state is the guard's (`holdfast_engine::guard`), attached with
//! [`Gateway::with_store_health`].

use std::sync::Arc;

use holdfast_engine::guard::{StoreEventSink, StoreHealth, StoreState};
use serde_json::{Value, json};

use crate::gateway::Gateway;

impl Gateway {
    /// This gateway with the store guard's health behind `/ready`. Attaching a second
    /// one keeps the first.
    pub fn with_store_health(self, health: Arc<StoreHealth>) -> Gateway {
        if self.inner.store_health.set(health).is_err() {
            tracing::warn!("a store health is already attached to this gateway; keeping the first");
        }
        self
    }

    /// Where the store guard sends its events: this gateway's metrics
    /// (`holdfast_store_up`, `holdfast_store_write_seconds`).
    pub fn store_events(&self) -> StoreEventSink {
        let store = Arc::clone(&self.inner.metrics.store);
        Arc::new(move |event| store.record(event))
    }

    /// Where the engine's outbox reports its size and refusals: `/metrics`, and its size
    /// on `/ready`.
    pub fn outbox_events(&self) -> holdfast_engine::OutboxEventSink {
        let store = Arc::clone(&self.inner.metrics.store);
        Arc::new(move |event| store.record_outbox(event))
    }

    /// Whether the node is ready, and the body of `/ready`.
    pub(crate) fn dependencies(&self) -> (bool, Value) {
        let now_ms = self.inner.clock.unix_millis();
        let mut checks = serde_json::Map::new();
        let mut ready = true;
        if let Some(health) = self.inner.store_health.get() {
            let status = health.status();
            ready &= status.state == StoreState::Up;
            let mut check = json!({
                "state": status.state,
                "since_ms": status.since_ms,
                "for_ms": now_ms.saturating_sub(status.since_ms),
            });
            if let (Some(cause), Some(object)) = (status.cause, check.as_object_mut()) {
                object.insert("cause".to_owned(), json!(cause));
            }
            // The outbox holds what the store cannot take yet: its fill is the store's
            // health as this node lives it (the same figures `/metrics` shows).
            let outbox = self.inner.metrics.store.outbox();
            if let (Some((bytes, max_bytes)), Some(object)) = (outbox, check.as_object_mut()) {
                let outbox = json!({"bytes": bytes, "max_bytes": max_bytes});
                object.insert("outbox".to_owned(), outbox);
            }
            checks.insert("store".to_owned(), check);
        }
        let body = json!({
            "status": if ready { "ready" } else { "unready" },
            "checks": checks,
        });
        (ready, body)
    }
}
