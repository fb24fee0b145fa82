//! The attempt ledger: what happened to each recent request, for
//! `GET /v1/holdfast/requests/{id}`.
//!
//! A bounded ring: the newest [`LEDGER_CAPACITY`](crate::gateway::LEDGER_CAPACITY)
//! requests, the oldest dropped first, so memory stays flat under any load. Entries are
//! written once when a call ends (or, for a stream, when it commits) and updated once
//! more when a stream ends, since only then are its usage and fate known. Only requests
//! that reached the pipeline (or were replayed, or degraded) are recorded: a request
//! refused at the door has nothing to trace. The moment an entry first holds a final
//! result (anything but `streaming`) is the request's end for the metrics too.

use arc_swap::ArcSwap;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::events::{self, CallTrace};
use crate::metrics::Metrics;

/// One request's record.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Entry {
    pub(crate) request_id: Arc<str>,
    /// The tenant of the key that made the request: only it (and operators) may read
    /// the entry.
    pub(crate) tenant: Arc<str>,
    pub(crate) route: Arc<str>,
    /// `chat.completions` or `messages`.
    pub(crate) endpoint: &'static str,
    pub(crate) stream: bool,
    /// The HTTP status the client got.
    pub(crate) status: u16,
    /// `ok`, `error`, `degraded`, `streaming` (still running), `stream_error` or
    /// `client_closed`.
    pub(crate) result: &'static str,
    /// The error code the client got, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error_code: Option<&'static str>,
    /// How a committed stream broke off, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) stream_error: Option<String>,
    /// The target that served, if one did.
    pub(crate) target: Option<Arc<str>>,
    /// `cache` or `static` for a degraded answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) degraded: Option<&'static str>,
    /// Unix milliseconds when the request arrived.
    pub(crate) started_at_ms: u64,
    /// From arrival to the answer (for a stream: to its end, once it ended).
    pub(crate) latency_ms: f64,
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
    pub(crate) cost_usd: f64,
    /// The pipeline's verdict, its attempts and skips.
    #[serde(flatten)]
    pub(crate) trace: CallTrace,
}

impl Entry {
    /// Sums tokens and cost over the attempts.
    pub(crate) fn total(&mut self) {
        self.input_tokens = self.trace.attempts.iter().map(|a| a.input_tokens).sum();
        self.output_tokens = self.trace.attempts.iter().map(|a| a.output_tokens).sum();
        self.cost_usd = self.trace.cost_usd();
    }
}

/// The ring of recent entries.
pub(crate) struct Ledger {
    capacity: usize,
    inner: Mutex<Ring>,
    /// The current configuration's metrics: the ledger outlives a reload
    /// (`live.rs`), and a request that ends after one is counted under its route in
    /// the new metrics.
    metrics: ArcSwap<Metrics>,
}

/// The result of a stream that has not ended yet.
const STREAMING: &str = "streaming";

#[derive(Default)]
struct Ring {
    order: VecDeque<Arc<str>>,
    entries: HashMap<Arc<str>, Entry>,
}

impl Ledger {
    /// A ledger keeping at most `capacity` entries, reporting final results to `metrics`.
    pub(crate) fn new(capacity: usize, metrics: Arc<Metrics>) -> Self {
        Ledger {
            capacity: capacity.max(1),
            inner: Mutex::new(Ring::default()),
            metrics: ArcSwap::new(metrics),
        }
    }

    /// Records `entry`, dropping the oldest when full.
    pub(crate) fn insert(&self, mut entry: Entry) {
        entry.total();
        if entry.result != STREAMING {
            events::finished(&self.metrics.load(), &entry);
        }
        let id = Arc::clone(&entry.request_id);
        // What leaves the ring is freed after the lock is released: every request
        // passes through this lock, and freeing an entry's trace is most of the work.
        let mut ring = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let replaced = ring.entries.insert(Arc::clone(&id), entry);
        if replaced.is_none() {
            ring.order.push_back(id);
        }
        let mut evicted = None;
        while ring.order.len() > self.capacity {
            if let Some(old) = ring.order.pop_front() {
                evicted = ring.entries.remove(&old);
            }
        }
        drop(ring);
        drop((replaced, evicted));
    }

    /// Counts final results in `metrics` from now on (a reload changed them).
    pub(crate) fn count_in(&self, metrics: Arc<Metrics>) {
        self.metrics.store(metrics);
    }

    /// Changes the entry of `id`, if it is still kept.
    pub(crate) fn update(&self, id: &str, change: impl FnOnce(&mut Entry)) {
        let mut ring = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = ring.entries.get_mut(id) {
            let was_final = entry.result != STREAMING;
            change(entry);
            entry.total();
            if !was_final && entry.result != STREAMING {
                events::finished(&self.metrics.load(), entry);
            }
        }
    }

    /// The entry of `id` as JSON, if it is still kept.
    /// The entry of request `id` as JSON, if `scope` reaches its tenant; another
    /// tenant's entry is as absent as one that was never written.
    pub(crate) fn get_json(&self, id: &str, scope: &holdfast_engine::Scope) -> Option<Vec<u8>> {
        let ring = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        ring.entries
            .get(id)
            .filter(|e| scope.admits(&e.tenant))
            .and_then(|e| serde_json::to_vec(e).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use holdfast_engine::Scope;

    fn entry(id: &str) -> Entry {
        Entry {
            request_id: Arc::from(id),
            tenant: Arc::from("t"),
            route: Arc::from("r"),
            endpoint: "chat.completions",
            stream: false,
            status: 200,
            result: "ok",
            error_code: None,
            stream_error: None,
            target: None,
            degraded: None,
            started_at_ms: 0,
            latency_ms: 0.0,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: 0.0,
            trace: CallTrace::default(),
        }
    }

    #[test]
    fn keeps_only_the_newest_entries() {
        let ledger = Ledger::new(2, Arc::new(Metrics::new(["r"], [])));
        for id in ["a", "b", "c"] {
            ledger.insert(entry(id));
        }
        let all = &Scope::All;
        assert!(ledger.get_json("a", all).is_none());
        assert!(ledger.get_json("b", all).is_some() && ledger.get_json("c", all).is_some());
        ledger.update("c", |e| e.status = 502);
        let json: serde_json::Value =
            serde_json::from_slice(&ledger.get_json("c", all).unwrap()).unwrap();
        assert_eq!(json["status"], 502);
        assert!(json["attempts"].is_array());
    }

    #[test]
    fn another_tenants_entry_is_absent() {
        let ledger = Ledger::new(2, Arc::new(Metrics::new(["r"], [])));
        ledger.insert(entry("a"));
        assert!(ledger.get_json("a", &Scope::Tenant("t".into())).is_some());
        assert!(ledger.get_json("a", &Scope::Tenant("u".into())).is_none());
    }
}
