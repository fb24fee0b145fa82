//! The storage and the text of the metrics: flat arrays of atomics, cumulative
//! histograms, and the exposition writer.

use std::fmt::{Display, Write};
use std::sync::atomic::{AtomicU64, Ordering};

/// A label value with `\`, `"` and newlines escaped.
pub(super) fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A flat array of counters (or, through `add_f64`, float sums).
pub(super) struct Counters(Box<[AtomicU64]>);

impl Counters {
    pub(super) fn new(len: usize) -> Counters {
        Counters((0..len).map(|_| AtomicU64::new(0)).collect())
    }

    pub(super) fn add(&self, index: usize, n: u64) {
        if let Some(cell) = self.0.get(index) {
            cell.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub(super) fn set(&self, index: usize, n: u64) {
        if let Some(cell) = self.0.get(index) {
            cell.store(n, Ordering::Relaxed);
        }
    }

    pub(super) fn get(&self, index: usize) -> u64 {
        self.0.get(index).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    pub(super) fn add_f64(&self, index: usize, x: f64) {
        if let Some(cell) = self.0.get(index) {
            add_f64(cell, x);
        }
    }

    pub(super) fn get_f64(&self, index: usize) -> f64 {
        f64::from_bits(self.get(index))
    }
}

pub(super) fn add_f64(cell: &AtomicU64, x: f64) {
    let _ = cell.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
        Some((f64::from_bits(bits) + x).to_bits())
    });
}

/// A histogram with fixed bucket bounds.
pub(super) struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative), the last one for `+Inf`.
    buckets: Counters,
    count: AtomicU64,
    /// `f64` bits.
    sum: AtomicU64,
}

impl Histogram {
    pub(super) fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: Counters::new(bounds.len() + 1),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    pub(super) fn observe(&self, x: f64) {
        let x = if x.is_finite() { x.max(0.0) } else { 0.0 };
        let bucket = self
            .bounds
            .iter()
            .position(|b| x <= *b)
            .unwrap_or(self.bounds.len());
        self.buckets.add(bucket, 1);
        add_f64(&self.sum, x);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes `old`'s observations (into a histogram that has none yet).
    pub(super) fn carry_from(&self, old: &Histogram) {
        for i in 0..=self.bounds.len().min(old.bounds.len()) {
            self.buckets.set(i, old.buckets.get(i));
        }
        self.count
            .store(old.count.load(Ordering::Relaxed), Ordering::Relaxed);
        self.sum
            .store(old.sum.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Writes the histogram's series, if it observed anything.
    pub(super) fn render(&self, out: &mut Exposition, name: &str, label: (&str, &str)) {
        let count = self.count.load(Ordering::Relaxed);
        if count == 0 {
            return;
        }
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (i, bound) in self.bounds.iter().enumerate() {
            cumulative += self.buckets.get(i);
            let le = bound.to_string();
            out.sample(&bucket, &[label, ("le", &le)], cumulative);
        }
        cumulative += self.buckets.get(self.bounds.len());
        out.sample(&bucket, &[label, ("le", "+Inf")], cumulative);
        let sum = f64::from_bits(self.sum.load(Ordering::Relaxed));
        out.sample(&format!("{name}_sum"), &[label], sum);
        // The buckets were read one by one: their total is the consistent count.
        out.sample(&format!("{name}_count"), &[label], cumulative);
    }
}

/// The text being written.
pub(super) struct Exposition(pub(super) String);

impl Exposition {
    pub(super) fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    /// One sample; label values are already escaped.
    pub(super) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{label}=\"{value}\"");
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    pub(super) fn nonzero(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        if value != 0 {
            self.sample(name, labels, value);
        }
    }

    pub(super) fn per_target(
        &mut self,
        name: &str,
        help: &str,
        targets: &[String],
        values: &Counters,
    ) {
        self.family(name, "counter", help);
        for (t, target) in targets.iter().enumerate() {
            self.nonzero(name, &[("target", target)], values.get(t));
        }
    }

    pub(super) fn per_route(
        &mut self,
        name: &str,
        help: &str,
        routes: &[String],
        values: &Counters,
    ) {
        self.family(name, "counter", help);
        for (r, route) in routes.iter().enumerate() {
            self.nonzero(name, &[("route", route)], values.get(r));
        }
    }
}
