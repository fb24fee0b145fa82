//! What production scoring has done, per task type: the counts and the recent mean
//! score `/metrics` shows.
//!
//! The decision: the score shown is the mean of the last [`RECENT`] scored samples, a
//! gauge, rather than a histogram of every score ever. An alert on quality asks "are
//! the answers of the last minutes worse than the threshold?", which a gauge answers
//! in one comparison; a histogram's buckets would have to be rated over a window the
//! sampling rate decides. The counters (sampled, scored, skipped, dropped, errors,
//! judge cost) only grow, as Prometheus counters must.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

/// How many recent scores the mean covers.
pub const RECENT: usize = 50;

/// One task type's counts, as of a moment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskStats {
    /// Answers chosen for sampling.
    pub sampled: u64,
    /// Samples scored by their graders.
    pub scored: u64,
    /// Samples kept unscored because the judge's budget for the hour was spent.
    pub skipped_budget: u64,
    /// Samples dropped because the scoring queue was full.
    pub dropped: u64,
    /// Samples that could not be graded (a judge failed) or kept (the store failed).
    pub errors: u64,
    /// What the judges cost, in US dollars.
    pub judge_cost_usd: f64,
    /// The mean score of the last [`RECENT`] scored samples, once there is one.
    pub recent_score: Option<f64>,
}

#[derive(Default)]
struct Entry {
    stats: TaskStats,
    recent: VecDeque<f64>,
}

/// Every task type's counts, shared by the request path and the scorer.
#[derive(Default)]
pub(crate) struct Counts {
    by_task: Mutex<BTreeMap<String, Entry>>,
}

impl Counts {
    /// Counts for `tasks`, each at zero, so `/metrics` shows them before any traffic.
    pub(crate) fn new<'a>(tasks: impl IntoIterator<Item = &'a str>) -> Counts {
        let by_task = tasks
            .into_iter()
            .map(|t| (t.to_owned(), Entry::default()))
            .collect();
        Counts {
            by_task: Mutex::new(by_task),
        }
    }

    /// Changes `task`'s counts.
    pub(crate) fn update(&self, task: &str, change: impl FnOnce(&mut TaskStats)) {
        let mut by_task = self.by_task.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = by_task.get_mut(task) {
            change(&mut entry.stats);
        }
    }

    /// Records a scored sample of `task`.
    pub(crate) fn scored(&self, task: &str, score: f64, judge_cost_usd: f64) {
        let mut by_task = self.by_task.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = by_task.get_mut(task) else {
            return;
        };
        entry.stats.scored += 1;
        entry.stats.judge_cost_usd += judge_cost_usd;
        if entry.recent.len() == RECENT {
            entry.recent.pop_front();
        }
        entry.recent.push_back(score);
        let sum: f64 = entry.recent.iter().sum();
        entry.stats.recent_score = Some(sum / entry.recent.len() as f64);
    }

    /// Every task type's counts, by name.
    pub(crate) fn snapshot(&self) -> Vec<(String, TaskStats)> {
        let by_task = self.by_task.lock().unwrap_or_else(|e| e.into_inner());
        by_task
            .iter()
            .map(|(task, entry)| (task.clone(), entry.stats.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_score_is_the_mean_of_the_recent_samples() {
        let counts = Counts::new(["support"]);
        for _ in 0..RECENT {
            counts.scored("support", 1.0, 0.001);
        }
        for _ in 0..RECENT / 2 {
            counts.scored("support", 0.0, 0.0);
        }
        let (_, stats) = &counts.snapshot()[0];
        assert_eq!(stats.scored, (RECENT + RECENT / 2) as u64);
        assert_eq!(stats.recent_score, Some(0.5), "the oldest ones fell out");
        counts.scored("unknown", 1.0, 0.0);
        assert_eq!(counts.snapshot().len(), 1, "only configured task types");
    }
}
