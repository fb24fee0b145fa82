//! The running totals behind the dashboard's summary (`GET /v1/holdfast/summary`):
//! requests by result, attempts, retries, fallbacks, cost and tokens, attempts and
//! failures per target, and tasks by what happened to them.
//!
//! The decision: totals, not rates. The counters only ever grow (since the process
//! started), so a client that polls can take the difference of two readings over the
//! time between them and get every rate it wants over any window, with no window kept
//! here. Reading is a pass over the same atomics the exposition reads; nothing here is
//! written, so the one-writer rule of `events.rs` holds.

use holdfast_policy::Outcome;

use super::Metrics;
use super::labels::outcome_index;

/// One reading of the totals since the process started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    /// Finished requests by their ledger `result` (`ok`, `error`, `degraded`, …).
    pub requests: Vec<(&'static str, u64)>,
    /// Upstream attempts, retries among them, and fallbacks to another target.
    pub attempts: u64,
    pub retries: u64,
    pub fallbacks: u64,
    /// USD spent on attempts.
    pub cost_usd: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Per target, in `TargetId` order: (attempts, attempts whose outcome was not `ok`).
    pub targets: Vec<(u64, u64)>,
    /// Tasks submitted, succeeded, failed and cancelled.
    pub tasks: [u64; 4],
}

impl Metrics {
    /// The totals as of now.
    pub fn totals(&self) -> Totals {
        let mut requests: Vec<(&'static str, u64)> = Vec::new();
        {
            let map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
            for ((_, result), n) in map.iter() {
                match requests.iter_mut().find(|(r, _)| r == result) {
                    Some((_, total)) => *total += n,
                    None => requests.push((result, *n)),
                }
            }
        }
        requests.sort_unstable();
        let t = self.targets.len();
        let outcomes = Outcome::ALL.len();
        let ok = outcome_index(Outcome::Ok);
        let targets = (0..t)
            .map(|target| {
                let all: u64 = (0..outcomes)
                    .map(|o| self.attempts.get(target * outcomes + o))
                    .sum();
                let ok = self.attempts.get(target * outcomes + ok);
                (all, all.saturating_sub(ok))
            })
            .collect::<Vec<_>>();
        let fallbacks_len = t * t * super::labels::FALLBACK_REASONS.len();
        let routes = self.routes.len();
        Totals {
            requests,
            attempts: targets.iter().map(|(all, _)| all).sum(),
            retries: (0..t).map(|i| self.retries.get(i)).sum(),
            fallbacks: (0..fallbacks_len).map(|i| self.fallbacks.get(i)).sum(),
            cost_usd: (0..routes * t).map(|i| self.cost.get_f64(i)).sum(),
            input_tokens: (0..t).map(|i| self.tokens.get(i * 2)).sum(),
            output_tokens: (0..t).map(|i| self.tokens.get(i * 2 + 1)).sum(),
            targets,
            tasks: self.tasks.status_totals(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_up_what_was_recorded() {
        let metrics = Metrics::new(["r"], ["a", "b"]);
        metrics.request(0, "ok", 0.1);
        metrics.request(0, "ok", 0.1);
        metrics.request(0, "error", 0.1);
        metrics.attempt(0, Outcome::ServerError, 0);
        metrics.attempt(0, Outcome::Ok, 1);
        metrics.attempt(1, Outcome::Ok, 0);
        metrics.cost(0, 0, 0.25);
        metrics.cost(0, 1, 0.5);
        metrics.tokens(1, 10, 20);
        let totals = metrics.totals();
        assert_eq!(totals.requests, vec![("error", 1), ("ok", 2)]);
        assert_eq!((totals.attempts, totals.retries), (3, 1));
        assert_eq!(totals.targets, vec![(2, 1), (1, 0)]);
        assert!((totals.cost_usd - 0.75).abs() < 1e-9);
        assert_eq!((totals.input_tokens, totals.output_tokens), (10, 20));
        assert_eq!(totals.tasks, [0; 4]);
    }
}
