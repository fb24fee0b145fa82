//! Counts over a sliding window of time, in fixed memory.
//!
//! Breakers, retry budgets and hedge budgets all ask "how many of X in the last W
//! seconds?". An exact answer needs every timestamp; a ring of `SLOTS` buckets answers
//! within one bucket's width in constant memory and time, which is what a hot path on
//! every call can afford. The window therefore covers between `W·(1 − 1/SLOTS)` and `W`.

use std::time::Duration;

use crate::clock::Instant;

/// Buckets per window.
pub const SLOTS: usize = 10;

/// Per-bucket counters of `N` kinds over a sliding window.
#[derive(Debug, Clone)]
pub struct Window<const N: usize> {
    slot_nanos: u64,
    /// For each slot, the index (time / slot width) it was last written at.
    epochs: [u64; SLOTS],
    counts: [[u64; N]; SLOTS],
}

impl<const N: usize> Window<N> {
    /// A window `span` long (at least `SLOTS` nanoseconds).
    pub fn new(span: Duration) -> Self {
        let span = u64::try_from(span.as_nanos()).unwrap_or(u64::MAX);
        Window {
            slot_nanos: (span / SLOTS as u64).max(1),
            epochs: [u64::MAX; SLOTS],
            counts: [[0; N]; SLOTS],
        }
    }

    /// The window's length.
    pub fn span(&self) -> Duration {
        Duration::from_nanos(self.slot_nanos.saturating_mul(SLOTS as u64))
    }

    /// The width of one bucket: the window's resolution.
    pub fn slot(&self) -> Duration {
        Duration::from_nanos(self.slot_nanos)
    }

    /// Adds `amount` to counter `kind` at `now`.
    pub fn add(&mut self, now: Instant, kind: usize, amount: u64) {
        let epoch = now.as_nanos() / self.slot_nanos;
        let slot = (epoch % SLOTS as u64) as usize;
        if self.epochs[slot] != epoch {
            self.epochs[slot] = epoch;
            self.counts[slot] = [0; N];
        }
        if let Some(count) = self.counts[slot].get_mut(kind) {
            *count = count.saturating_add(amount);
        }
    }

    /// Adds `amount` to counter `kind` in the bucket of `at`, an instant at or before
    /// `now`: an event counted when it began rather than when it was learned. Ignored
    /// when `at` has left the window ending at `now`.
    pub fn add_at(&mut self, now: Instant, at: Instant, kind: usize, amount: u64) {
        let current = now.as_nanos() / self.slot_nanos;
        let epoch = at.as_nanos() / self.slot_nanos;
        if epoch > current || epoch + (SLOTS as u64 - 1) < current {
            return;
        }
        self.add(at, kind, amount);
    }

    /// Every counter summed over the window ending at `now`.
    pub fn totals(&self, now: Instant) -> [u64; N] {
        let current = now.as_nanos() / self.slot_nanos;
        let oldest = current.saturating_sub(SLOTS as u64 - 1);
        let mut totals = [0u64; N];
        for (epoch, counts) in self.epochs.iter().zip(&self.counts) {
            if *epoch != u64::MAX && (oldest..=current).contains(epoch) {
                for (total, count) in totals.iter_mut().zip(counts) {
                    *total = total.saturating_add(*count);
                }
            }
        }
        totals
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.epochs = [u64::MAX; SLOTS];
        self.counts = [[0; N]; SLOTS];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_origin(Duration::from_millis(ms))
    }

    #[test]
    fn counts_expire_after_the_window() {
        let mut w: Window<2> = Window::new(Duration::from_secs(10));
        w.add(at(0), 0, 3);
        w.add(at(5_000), 1, 1);
        assert_eq!(w.totals(at(5_000)), [3, 1]);
        assert_eq!(w.totals(at(10_500)), [0, 1]);
        assert_eq!(w.totals(at(16_000)), [0, 0]);
    }

    #[test]
    fn a_reused_slot_starts_from_zero() {
        let mut w: Window<1> = Window::new(Duration::from_secs(1));
        w.add(at(0), 0, 5);
        w.add(at(1_000), 0, 1);
        assert_eq!(w.totals(at(1_000)), [1]);
    }

    #[test]
    fn an_event_counted_when_it_began_lands_in_its_bucket_or_nowhere() {
        let mut w: Window<1> = Window::new(Duration::from_secs(1));
        w.add(at(950), 0, 1);
        w.add_at(at(950), at(400), 0, 1);
        w.add_at(at(950), at(0), 0, 1);
        assert_eq!(w.totals(at(950)), [3]);
        assert_eq!(w.totals(at(1_350)), [2], "the one from 0 ms has left");
        w.add_at(at(1_350), at(300), 0, 5);
        assert_eq!(w.totals(at(1_350)), [2], "too old to count");
        w.add_at(at(1_350), at(2_000), 0, 5);
        assert_eq!(w.totals(at(1_350)), [2], "not yet");
    }

    #[test]
    fn unknown_kinds_are_ignored() {
        let mut w: Window<1> = Window::new(Duration::from_secs(1));
        w.add(at(0), 7, 5);
        assert_eq!(w.totals(at(0)), [0]);
    }
}
