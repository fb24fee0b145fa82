//! Metrics across a configuration reload: counters never go back.
//!
//! A reload builds a new gateway state (`live.rs`), and Prometheus reads a counter that
//! drops as a restart of the process. The decision: when the reloaded configuration
//! names the same routes and the same targets in the same order, the running
//! [`Metrics`] is kept as it is (the label layout is the same, so every index still
//! means the same series). When the names change, the flat arrays must change size, so
//! a new [`Metrics`] is built for the new names and every total whose route and target
//! labels still exist is copied into it, label by label. The engine's task metrics and
//! the retrying-tasks table are not per route or target: they are shared, not copied.
//!
//! What this gives up, only on a reload that changes names: a count made by a request
//! still running on the old configuration after the copy lands in the old arrays and is
//! not seen on `/metrics`. Totals stay monotonic either way.

use std::collections::HashMap;
use std::sync::Arc;

use holdfast_policy::Outcome;

use super::Metrics;
use super::cells::{Counters, Histogram, escape};
use super::labels::{
    FALLBACK_REASONS, GIVE_UPS, RECOVERY_PATHS, RECOVERY_RESULTS, SKIP_REASONS, STATES, TOKEN_KINDS,
};

/// One axis of a flat counter array.
#[derive(Clone, Copy)]
enum Dim {
    Route,
    Target,
    Fixed(usize),
}

/// Old position → new position, for routes and targets; `None`: gone.
struct Moves {
    routes: Vec<Option<usize>>,
    targets: Vec<Option<usize>>,
    new_routes: usize,
    new_targets: usize,
}

impl Moves {
    fn between(old: &Metrics, new: &Metrics) -> Moves {
        let position = |names: &[String]| -> HashMap<String, usize> {
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i))
                .collect()
        };
        let (routes, targets) = (position(&new.routes), position(&new.targets));
        Moves {
            routes: old.routes.iter().map(|r| routes.get(r).copied()).collect(),
            targets: old
                .targets
                .iter()
                .map(|t| targets.get(t).copied())
                .collect(),
            new_routes: new.routes.len(),
            new_targets: new.targets.len(),
        }
    }

    fn old_len(&self, dim: Dim) -> usize {
        match dim {
            Dim::Route => self.routes.len(),
            Dim::Target => self.targets.len(),
            Dim::Fixed(n) => n,
        }
    }

    fn new_len(&self, dim: Dim) -> usize {
        match dim {
            Dim::Route => self.new_routes,
            Dim::Target => self.new_targets,
            Dim::Fixed(n) => n,
        }
    }

    /// Where old coordinate `at` on `dim` is now.
    fn map(&self, dim: Dim, at: usize) -> Option<usize> {
        match dim {
            Dim::Route => self.routes.get(at).copied().flatten(),
            Dim::Target => self.targets.get(at).copied().flatten(),
            Dim::Fixed(_) => Some(at),
        }
    }

    /// Copies every cell of `old` (laid out by `dims`) whose labels survive into `new`.
    fn counters(&self, old: &Counters, new: &Counters, dims: &[Dim]) {
        let len: usize = dims.iter().map(|d| self.old_len(*d)).product();
        for index in 0..len {
            let value = old.get(index);
            if value == 0 {
                continue;
            }
            if let Some(to) = self.index(index, dims) {
                // `set`, not `add`: the new array is fresh, the maps are one-to-one,
                // and some families hold `f64` bits.
                new.set(to, value);
            }
        }
    }

    /// The new flat index of old flat `index`, if all its labels survive.
    fn index(&self, index: usize, dims: &[Dim]) -> Option<usize> {
        let mut coordinates = [0_usize; 4];
        let mut rest = index;
        for (k, dim) in dims.iter().enumerate().rev() {
            let n = self.old_len(*dim).max(1);
            coordinates[k] = rest % n;
            rest /= n;
        }
        let mut to = 0;
        for (k, dim) in dims.iter().enumerate() {
            to = to * self.new_len(*dim) + self.map(*dim, coordinates[k])?;
        }
        Some(to)
    }

    fn histograms(&self, old: &[Histogram], new: &[Histogram], dim: Dim) {
        for (at, histogram) in old.iter().enumerate() {
            if let Some(to) = self.map(dim, at).and_then(|to| new.get(to)) {
                to.carry_from(histogram);
            }
        }
    }
}

impl Metrics {
    /// Whether these routes and targets (targets in `TargetId` order) are the ones this
    /// registry was built for, so that it can go on counting for them as it is.
    pub fn has_labels<'a>(
        &self,
        routes: impl IntoIterator<Item = &'a str>,
        targets: impl IntoIterator<Item = &'a str>,
    ) -> bool {
        let mut routes: Vec<String> = routes.into_iter().map(escape).collect();
        routes.sort_unstable();
        let targets: Vec<String> = targets.into_iter().map(escape).collect();
        routes == self.routes && targets == self.targets
    }

    /// Metrics for new routes and targets that start from `old`'s totals.
    pub fn succeeding<'a>(
        old: &Metrics,
        routes: impl IntoIterator<Item = &'a str>,
        targets: impl IntoIterator<Item = &'a str>,
    ) -> Metrics {
        let mut new = Metrics::new(routes, targets);
        new.tasks = Arc::clone(&old.tasks);
        new.store = Arc::clone(&old.store);
        new.retrying = Arc::clone(&old.retrying);
        let moves = Moves::between(old, &new);
        let outcomes = Dim::Fixed(Outcome::ALL.len());
        let states = Dim::Fixed(STATES.len());
        let (r, t) = (Dim::Route, Dim::Target);
        moves.histograms(&old.request_seconds, &new.request_seconds, r);
        moves.histograms(&old.retry_delay, &new.retry_delay, t);
        let families: [(&Counters, &Counters, &[Dim]); 15] = [
            (&old.attempts, &new.attempts, &[t, outcomes]),
            (&old.retries, &new.retries, &[t]),
            (
                &old.fallbacks,
                &new.fallbacks,
                &[t, t, Dim::Fixed(FALLBACK_REASONS.len())],
            ),
            (&old.success_after_retry, &new.success_after_retry, &[r]),
            (&old.calls_with_failure, &new.calls_with_failure, &[r]),
            (
                &old.breaker_transitions,
                &new.breaker_transitions,
                &[t, states, states],
            ),
            (
                &old.agent_breaker_transitions,
                &new.agent_breaker_transitions,
                &[states],
            ),
            (&old.budget_exhausted, &new.budget_exhausted, &[t]),
            (&old.hedges, &new.hedges, &[t]),
            (
                &old.skipped,
                &new.skipped,
                &[t, Dim::Fixed(SKIP_REASONS.len())],
            ),
            (&old.gave_up, &new.gave_up, &[r, Dim::Fixed(GIVE_UPS.len())]),
            (
                &old.tokens,
                &new.tokens,
                &[t, Dim::Fixed(TOKEN_KINDS.len())],
            ),
            (&old.cost, &new.cost, &[r, t]),
            (&old.stream_breaks, &new.stream_breaks, &[t, outcomes]),
            (
                &old.stream_recoveries,
                &new.stream_recoveries,
                &[
                    r,
                    Dim::Fixed(RECOVERY_PATHS.len()),
                    Dim::Fixed(RECOVERY_RESULTS.len()),
                ],
            ),
        ];
        // Breaker states are gauges, set from the registry the new state is built with
        // (`gateway.rs`): not carried.
        for (from, to, dims) in families {
            moves.counters(from, to, dims);
        }
        let requests = old.requests.lock().unwrap_or_else(|e| e.into_inner());
        let mut carried = new.requests.lock().unwrap_or_else(|e| e.into_inner());
        for ((route, result), count) in requests.iter() {
            if let Some(to) = moves.map(Dim::Route, *route) {
                carried.insert((to, result), *count);
            }
        }
        drop(carried);
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_follow_their_labels_into_new_metrics() {
        let old = Metrics::new(["smart", "cheap"], ["a", "b"]);
        old.attempt(1, Outcome::Ok, 0);
        old.attempt(1, Outcome::Ok, 1);
        old.attempt(0, Outcome::Ok, 0);
        old.cost(old.route("smart").unwrap_or(0), 1, 0.5);
        old.request(old.route("smart").unwrap_or(0), "ok", 0.2);
        old.fallback(0, 1, FALLBACK_REASONS[0]);
        // `a` and `cheap` are gone, `c` and `fast` are new; `b` moves to position 0.
        let new = Metrics::succeeding(&old, ["smart", "fast"], ["b", "c"]);
        let text = new.render();
        assert!(
            text.contains("holdfast_attempts_total{target=\"b\",outcome=\"ok\"} 2"),
            "{text}"
        );
        assert!(!text.contains("target=\"a\""), "{text}");
        assert!(
            text.contains("holdfast_retries_total{target=\"b\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("holdfast_cost_usd_total{route=\"smart\",target=\"b\"} 0.5"),
            "{text}"
        );
        assert!(
            text.contains("holdfast_requests_total{route=\"smart\",result=\"ok\"} 1"),
            "{text}"
        );
        assert!(new.has_labels(["fast", "smart"], ["b", "c"]));
        assert!(!new.has_labels(["smart"], ["b", "c"]));
    }
}
