//! The store's metrics: `holdfast_store_up`, the time since its last change, and the
//! latency of its writes, fed by the store guard's `StoreEvent`s; and the outbox that
//! holds submissions while the store is down (its size, its bound, its refusals), fed
//! by the engine's `OutboxEvent`s.
//!
//! The decision: like the task metrics they are shared by every configuration that
//! follows on reload (`carry.rs`), because the guard's sink holds the first one; and
//! nothing is shown until a guard reports, so a gateway without a store says nothing
//! about one rather than a made-up `up`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use holdfast_engine::OutboxEvent;
use holdfast_engine::guard::{StoreEvent, StoreState};

use super::cells::{Exposition, Histogram};

/// Upper bounds of the write latency buckets, in seconds: from a group commit's
/// fsync to a guard's timeout.
const WRITE_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The store's gauges and write latency.
pub struct StoreMetrics {
    /// Whether a guard reported at all.
    known: AtomicBool,
    up: AtomicBool,
    /// Unix milliseconds of the latest change of state.
    since_ms: AtomicU64,
    write_seconds: Histogram,
    /// Whether an outbox reported at all (`[store] outbox` is on).
    outbox_known: AtomicBool,
    outbox_bytes: AtomicU64,
    outbox_max_bytes: AtomicU64,
    outbox_refused: AtomicU64,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        StoreMetrics {
            known: AtomicBool::new(false),
            up: AtomicBool::new(false),
            since_ms: AtomicU64::new(0),
            write_seconds: Histogram::new(WRITE_BUCKETS),
            outbox_known: AtomicBool::new(false),
            outbox_bytes: AtomicU64::new(0),
            outbox_max_bytes: AtomicU64::new(0),
            outbox_refused: AtomicU64::new(0),
        }
    }
}

impl StoreMetrics {
    /// Records what the guard reported.
    pub fn record(&self, event: &StoreEvent) {
        match event {
            StoreEvent::Changed(status) => {
                let up = match status.state {
                    StoreState::Up => true,
                    StoreState::Down => false,
                };
                self.up.store(up, Ordering::Relaxed);
                self.since_ms.store(status.since_ms, Ordering::Relaxed);
                self.known.store(true, Ordering::Relaxed);
            }
            StoreEvent::Wrote(took) => self.write_seconds.observe(took.as_secs_f64()),
        }
    }

    /// Records what the outbox reported.
    pub fn record_outbox(&self, event: &OutboxEvent) {
        match event {
            OutboxEvent::Size { bytes, max_bytes } => {
                self.outbox_bytes.store(*bytes, Ordering::Relaxed);
                self.outbox_max_bytes.store(*max_bytes, Ordering::Relaxed);
            }
            OutboxEvent::Refused => {
                self.outbox_refused.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.outbox_known.store(true, Ordering::Relaxed);
    }

    /// The outbox's size and bound in bytes, once an outbox reported: what `/ready`
    /// shows beside the store's state.
    pub fn outbox(&self) -> Option<(u64, u64)> {
        self.outbox_known.load(Ordering::Relaxed).then(|| {
            (
                self.outbox_bytes.load(Ordering::Relaxed),
                self.outbox_max_bytes.load(Ordering::Relaxed),
            )
        })
    }

    /// The exposition of the store's metrics, once a guard reported.
    pub(super) fn render(&self, out: &mut Exposition) {
        self.render_outbox(out);
        if !self.known.load(Ordering::Relaxed) {
            return;
        }
        out.family(
            "holdfast_store_up",
            "gauge",
            "1 while the store answers and writes within store.timeout, 0 while it cannot \
             be reached or cannot write.",
        );
        out.sample(
            "holdfast_store_up",
            &[],
            u8::from(self.up.load(Ordering::Relaxed)),
        );
        out.family(
            "holdfast_store_state_since_seconds",
            "gauge",
            "Unix time at which the store entered its current state (holdfast_store_up).",
        );
        let since = self.since_ms.load(Ordering::Relaxed) as f64 / 1000.0;
        out.sample("holdfast_store_state_since_seconds", &[], since);
        out.family(
            "holdfast_store_write_seconds",
            "histogram",
            "Time a write to the store took until it was committed (fsync included), \
             waiting included; writes that failed are not counted.",
        );
        self.write_seconds
            .render(out, "holdfast_store_write_seconds", ("store", "main"));
    }

    /// The outbox's size, bound and refusals, once an outbox reported.
    fn render_outbox(&self, out: &mut Exposition) {
        if !self.outbox_known.load(Ordering::Relaxed) {
            return;
        }
        out.family(
            "holdfast_outbox_bytes",
            "gauge",
            "Bytes of task submissions waiting in the outbox for the store to come back.",
        );
        let bytes = self.outbox_bytes.load(Ordering::Relaxed);
        out.sample("holdfast_outbox_bytes", &[], bytes);
        out.family(
            "holdfast_outbox_max_bytes",
            "gauge",
            "The most the outbox may hold (store.outbox_max).",
        );
        let max = self.outbox_max_bytes.load(Ordering::Relaxed);
        out.sample("holdfast_outbox_max_bytes", &[], max);
        out.family(
            "holdfast_outbox_refused_total",
            "counter",
            "Submissions answered 503 outbox_full: the store was unavailable and the outbox full.",
        );
        let refused = self.outbox_refused.load(Ordering::Relaxed);
        out.sample("holdfast_outbox_refused_total", &[], refused);
    }
}
