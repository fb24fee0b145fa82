//! The trace exporter's family of `/metrics`: spans lost on the way to the collector,
//! by why (a full queue, or a batch the collector did not take).

use holdfast_telemetry::Dropped;

use super::cells::Exposition;

/// `holdfast_telemetry_spans_dropped_total`, in the exposition format.
pub(crate) fn render(dropped: &Dropped) -> String {
    let name = "holdfast_telemetry_spans_dropped_total";
    let mut out = Exposition(String::with_capacity(256));
    out.family(
        name,
        "counter",
        "Spans not exported: the queue was full (reason=queue_full) or the collector did not take their batch (reason=export_failed).",
    );
    out.sample(name, &[("reason", "queue_full")], dropped.queue_full());
    out.sample(
        name,
        &[("reason", "export_failed")],
        dropped.export_failed(),
    );
    out.0
}
