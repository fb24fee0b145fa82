//! The bounded queue between finished spans and the exporter.
//!
//! The decision: a request never waits for telemetry. A span is offered with
//! `try_send`; when the queue is full (the collector is down, slow or unreachable and
//! exports keep failing or timing out) the span is dropped and counted. One task
//! drains the queue and exports whatever has gathered while the previous export ran,
//! so batches grow with the load and no timer is needed. A batch the exporter refuses
//! or that outlives [`EXPORT_TIMEOUT`] is counted as dropped too.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tokio::sync::mpsc;

/// The most spans sent in one export.
const BATCH: usize = 512;
/// The longest one export may take before its spans are counted lost.
pub(crate) const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Spans lost on the way to the collector.
#[derive(Debug, Default)]
pub struct Dropped {
    queue_full: AtomicU64,
    export_failed: AtomicU64,
}

impl Dropped {
    /// Spans dropped because the queue was full.
    pub fn queue_full(&self) -> u64 {
        self.queue_full.load(Ordering::Relaxed)
    }

    /// Spans in batches the collector did not take.
    pub fn export_failed(&self) -> u64 {
        self.export_failed.load(Ordering::Relaxed)
    }

    /// `holdfast_telemetry_spans_dropped_total` in the Prometheus text format, for
    /// `/metrics`.
    pub fn exposition(&self) -> String {
        let name = "holdfast_telemetry_spans_dropped_total";
        format!(
            "# HELP {name} Spans not exported: the queue was full (reason=queue_full) or the \
             collector did not take their batch (reason=export_failed).\n\
             # TYPE {name} counter\n\
             {name}{{reason=\"queue_full\"}} {}\n\
             {name}{{reason=\"export_failed\"}} {}\n",
            self.queue_full(),
            self.export_failed()
        )
    }
}

/// The sending side; the receiving side is the export task.
#[derive(Debug)]
pub(crate) struct Queue {
    tx: mpsc::Sender<SpanData>,
    pub(crate) dropped: Arc<Dropped>,
}

impl Queue {
    /// A queue of `capacity` spans drained into `exporter` by a task on the current
    /// tokio runtime.
    pub(crate) fn start<E: SpanExporter + 'static>(exporter: E, capacity: usize) -> Queue {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let dropped = Arc::new(Dropped::default());
        tokio::spawn(drain(rx, exporter, Arc::clone(&dropped)));
        Queue { tx, dropped }
    }

    /// Offers `span` for export; counts it dropped when the queue is full.
    pub(crate) fn push(&self, span: SpanData) {
        if self.tx.try_send(span).is_err() {
            self.dropped.queue_full.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn drain<E: SpanExporter>(
    mut rx: mpsc::Receiver<SpanData>,
    exporter: E,
    dropped: Arc<Dropped>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(span) => batch.push(span),
                Err(_) => break,
            }
        }
        let count = batch.len() as u64;
        let exported = tokio::time::timeout(EXPORT_TIMEOUT, exporter.export(batch)).await;
        if !matches!(exported, Ok(Ok(()))) {
            dropped.export_failed.fetch_add(count, Ordering::Relaxed);
            tracing::debug!(spans = count, "a span batch did not reach the collector");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};

    /// An exporter that never answers: a collector that accepted the connection and
    /// went silent.
    #[derive(Debug)]
    struct Hung;

    impl SpanExporter for Hung {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            std::future::pending::<()>().await;
            Err(OTelSdkError::InternalFailure("unreachable".into()))
        }
    }

    #[tokio::test]
    async fn a_hung_collector_fills_the_queue_and_spans_are_dropped_not_waited_for() {
        let queue = Queue::start(Hung, 4);
        tokio::task::yield_now().await;
        for _ in 0..20 {
            queue.push(crate::gateway::tests::span());
        }
        // The task holds one batch in its hung export; the queue takes 4 more.
        assert!(queue.dropped.queue_full() >= 15, "{:?}", queue.dropped);
    }
}
