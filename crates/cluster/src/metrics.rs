//! What `/metrics` shows of the shared health: whether it is reachable, how the
//! exchanges went, the units granted per target and limit, and the breaker notes
//! published and applied.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The counters; written by the loop only.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    up: AtomicBool,
    exchanges_ok: AtomicU64,
    exchanges_failed: AtomicU64,
    fallbacks: AtomicU64,
    /// Units granted by (target, limit).
    granted: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// Notes by (direction, kind).
    notes: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl Metrics {
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Records an exchange; answers whether the state changed.
    pub(crate) fn exchanged(&self, ok: bool) -> bool {
        let counter = if ok {
            &self.exchanges_ok
        } else {
            &self.exchanges_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let was = self.up.swap(ok, Ordering::Relaxed);
        if was && !ok {
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
        }
        was != ok
    }

    pub(crate) fn granted(&self, target: &str, limit: &'static str, units: u64) {
        let mut granted = self.granted.lock().unwrap_or_else(|e| e.into_inner());
        *granted.entry((target.to_owned(), limit)).or_default() += units;
    }

    pub(crate) fn note(&self, direction: &'static str, kind: &'static str) {
        let mut notes = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        *notes.entry((direction, kind)).or_default() += 1;
    }

    pub(crate) fn exposition(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP holdfast_cluster_shared_health_up 1 while this node shares rate limits \
             and breakers through the store, 0 while it falls back to its own.\n\
             # TYPE holdfast_cluster_shared_health_up gauge\n\
             holdfast_cluster_shared_health_up {}",
            u8::from(self.is_up())
        );
        let _ = writeln!(
            out,
            "# HELP holdfast_cluster_exchanges_total Exchanges with the shared health, by result.\n\
             # TYPE holdfast_cluster_exchanges_total counter\n\
             holdfast_cluster_exchanges_total{{result=\"ok\"}} {}\n\
             holdfast_cluster_exchanges_total{{result=\"failed\"}} {}",
            self.exchanges_ok.load(Ordering::Relaxed),
            self.exchanges_failed.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP holdfast_cluster_fallbacks_total Times this node lost the shared health \
             and fell back to its own limits and breakers.\n\
             # TYPE holdfast_cluster_fallbacks_total counter\n\
             holdfast_cluster_fallbacks_total {}",
            self.fallbacks.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP holdfast_cluster_units_granted_total Rate-limit units granted to this \
             node by the shared buckets, by target and limit.\n\
             # TYPE holdfast_cluster_units_granted_total counter"
        );
        for ((target, limit), units) in self
            .granted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "holdfast_cluster_units_granted_total{{target=\"{}\",limit=\"{limit}\"}} {units}",
                escape(target)
            );
        }
        let _ = writeln!(
            out,
            "# HELP holdfast_cluster_breaker_notes_total Breaker notes this node published or \
             applied, by kind (opened, reset).\n\
             # TYPE holdfast_cluster_breaker_notes_total counter"
        );
        for ((direction, kind), n) in self.notes.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "holdfast_cluster_breaker_notes_total{{direction=\"{direction}\",kind=\"{kind}\"}} {n}"
            );
        }
        out
    }
}

/// A label value as the text format wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_store_counts_one_fallback_and_shows_down() {
        let m = Metrics::default();
        assert!(m.exchanged(true));
        assert!(!m.exchanged(true));
        assert!(m.exchanged(false));
        assert!(!m.exchanged(false));
        m.granted("gpt \"4\"", "requests", 3);
        m.note("applied", "opened");
        let text = m.exposition();
        assert!(
            text.contains("holdfast_cluster_shared_health_up 0\n"),
            "{text}"
        );
        assert!(
            text.contains("holdfast_cluster_fallbacks_total 1\n"),
            "{text}"
        );
        assert!(text.contains("{result=\"failed\"} 2\n"), "{text}");
        assert!(
            text.contains("{target=\"gpt \\\"4\\\"\",limit=\"requests\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("{direction=\"applied\",kind=\"opened\"} 1\n"),
            "{text}"
        );
    }
}
