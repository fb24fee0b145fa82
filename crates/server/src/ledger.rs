//! The attempt ledger: what happened to each recent request, for
//! `GET /v1/holdfast/requests/{id}`.
//!
//! A bounded ring: the newest [`LEDGER_CAPACITY`](crate::gateway::LEDGER_CAPACITY)
//! requests within [`LEDGER_MAX_BYTES`](crate::gateway::LEDGER_MAX_BYTES), the oldest
//! dropped first, so memory stays flat under any load, however large the entries (a
//! long provider error message in every attempt) are made. Entries are
//! written once when a call ends (or, for a stream, when it commits) and updated once
//! more when a stream ends, since only then are its usage and fate known. Only requests
//! that reached the pipeline (or were replayed, or degraded) are recorded: a request
//! refused at the door has nothing to trace. The moment an entry first holds a final
//! result (anything but `streaming`) is the request's end for the metrics too.

use arc_swap::ArcSwap;
use std::collections::{HashMap, VecDeque};
use std::mem::size_of;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::events::{self, AttemptRecord, CallTrace, SkipRecord};
use holdfast_metrics::Metrics;

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
    /// The few-shot examples the call carried, when its route has a library.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) few_shot: Option<Arc<crate::few_shot::Used>>,
    /// The pipeline's verdict, its attempts and skips.
    #[serde(flatten)]
    pub(crate) trace: CallTrace,
}

impl Entry {
    /// The bytes keeping this entry takes, near enough: the entry, what it alone owns
    /// on the heap (names it shares with the configuration are not counted), and its
    /// share of the ring's map and order.
    fn size(&self) -> usize {
        let attempts: usize = self
            .trace
            .attempts
            .iter()
            .map(|a| a.error.as_ref().map_or(0, String::capacity))
            .sum();
        size_of::<Entry>()
            + 64
            + 2 * self.request_id.len()
            + self.stream_error.as_ref().map_or(0, String::capacity)
            + self.trace.attempts.capacity() * size_of::<AttemptRecord>()
            + attempts
            + self.trace.skipped.capacity() * size_of::<SkipRecord>()
            + self.few_shot.as_ref().map_or(0, |u| u.size())
    }

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
    max_bytes: usize,
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
    /// What the entries take ([`Entry::size`]).
    bytes: usize,
}

impl Ring {
    /// Drops the oldest entries until at most `capacity` entries and `max_bytes` bytes
    /// are left; returns the first dropped, for freeing outside the lock.
    #[must_use]
    fn evict(&mut self, capacity: usize, max_bytes: usize) -> Option<Entry> {
        let mut first = None;
        while self.order.len() > capacity || (self.bytes > max_bytes && !self.order.is_empty()) {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(entry) = self.entries.remove(&old) {
                self.bytes = self.bytes.saturating_sub(entry.size());
                if first.is_none() {
                    first = Some(entry);
                }
            }
        }
        first
    }
}

impl Ledger {
    /// A ledger keeping at most `capacity` entries and `max_bytes` bytes of them,
    /// reporting final results to `metrics`.
    pub(crate) fn new(capacity: usize, max_bytes: usize, metrics: Arc<Metrics>) -> Self {
        Ledger {
            capacity: capacity.max(1),
            max_bytes,
            inner: Mutex::new(Ring::default()),
            metrics: ArcSwap::new(metrics),
        }
    }

    /// Records `entry`, dropping the oldest when full. An entry larger than the whole
    /// byte budget is counted in the metrics but not kept.
    pub(crate) fn insert(&self, mut entry: Entry) {
        entry.total();
        if entry.result != STREAMING {
            events::finished(&self.metrics.load(), &entry);
        }
        let size = entry.size();
        if size > self.max_bytes {
            return;
        }
        let id = Arc::clone(&entry.request_id);
        // What leaves the ring is freed after the lock is released: every request
        // passes through this lock, and freeing an entry's trace is most of the work.
        let mut ring = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let replaced = ring.entries.insert(Arc::clone(&id), entry);
        match &replaced {
            Some(old) => ring.bytes = ring.bytes.saturating_sub(old.size()),
            None => ring.order.push_back(id),
        }
        ring.bytes += size;
        let evicted = ring.evict(self.capacity, self.max_bytes);
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
        let ring = &mut *ring;
        if let Some(entry) = ring.entries.get_mut(id) {
            let was_final = entry.result != STREAMING;
            let before = entry.size();
            change(entry);
            entry.total();
            if !was_final && entry.result != STREAMING {
                events::finished(&self.metrics.load(), entry);
            }
            ring.bytes = ring.bytes.saturating_sub(before) + entry.size();
            drop(ring.evict(self.capacity, self.max_bytes));
        }
    }

    /// The route of request `id` and the examples it carried, if `scope` reaches its
    /// tenant and the entry is still kept (`Some((route, None))`: a route without a
    /// library).
    pub(crate) fn few_shot(
        &self,
        id: &str,
        scope: &holdfast_engine::Scope,
    ) -> Option<(Arc<str>, Option<Arc<crate::few_shot::Used>>)> {
        let ring = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        ring.entries
            .get(id)
            .filter(|e| scope.admits(&e.tenant))
            .map(|e| (Arc::clone(&e.route), e.few_shot.clone()))
    }

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
            few_shot: None,
            trace: CallTrace::default(),
        }
    }

    #[test]
    fn keeps_only_the_newest_entries() {
        let ledger = Ledger::new(2, 1 << 20, Arc::new(Metrics::new(["r"], [])));
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
        let ledger = Ledger::new(2, 1 << 20, Arc::new(Metrics::new(["r"], [])));
        ledger.insert(entry("a"));
        assert!(ledger.get_json("a", &Scope::Tenant("t".into())).is_some());
        assert!(ledger.get_json("a", &Scope::Tenant("u".into())).is_none());
    }

    fn with_error(id: &str, error_bytes: usize) -> Entry {
        let mut entry = entry(id);
        entry.stream_error = Some("x".repeat(error_bytes));
        entry
    }

    #[test]
    fn bytes_bound_the_entries_kept_the_oldest_dropped_first() {
        let one = with_error("a", 1000).size();
        let ledger = Ledger::new(100, 2 * one, Arc::new(Metrics::new(["r"], [])));
        for id in ["a", "b", "c"] {
            ledger.insert(with_error(id, 1000));
        }
        assert!(
            ledger.get_json("a", &Scope::All).is_none(),
            "the oldest went to make room"
        );
        assert!(
            ledger.get_json("b", &Scope::All).is_some()
                && ledger.get_json("c", &Scope::All).is_some()
        );
        ledger.insert(with_error("d", 1500));
        assert!(
            ledger.get_json("b", &Scope::All).is_none()
                && ledger.get_json("c", &Scope::All).is_none()
        );
        assert!(ledger.get_json("d", &Scope::All).is_some());
        let held = ledger.inner.lock().unwrap().bytes;
        assert!(held <= 2 * one, "{held} > {}", 2 * one);
    }

    #[test]
    fn an_entry_larger_than_the_budget_is_not_kept() {
        let ledger = Ledger::new(100, 4096, Arc::new(Metrics::new(["r"], [])));
        ledger.insert(entry("small"));
        ledger.insert(with_error("huge", 8192));
        assert!(ledger.get_json("huge", &Scope::All).is_none());
        assert!(
            ledger.get_json("small", &Scope::All).is_some(),
            "nothing was dropped for it"
        );
    }

    #[test]
    fn an_update_that_grows_an_entry_keeps_the_budget() {
        let base = entry("a").size();
        // Room for both as they are, and for the grown one alone, not for both.
        let budget = base + 1000 + base / 2;
        let ledger = Ledger::new(100, budget, Arc::new(Metrics::new(["r"], [])));
        ledger.insert(entry("a"));
        ledger.insert(entry("b"));
        ledger.update("b", |e| e.stream_error = Some("y".repeat(1000)));
        assert!(
            ledger.get_json("a", &Scope::All).is_none(),
            "the oldest made room for the growth"
        );
        assert!(ledger.get_json("b", &Scope::All).is_some());
        let ring = ledger.inner.lock().unwrap();
        assert_eq!(ring.bytes, ring.entries["b"].size());
    }
}
