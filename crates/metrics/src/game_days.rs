//! Game days as the server keeps them: the results of the experiments the binary runs
//! against this deployment on `[chaos] schedule`, for the dashboard, `/metrics` and the
//! `chaos_failed` alert.
//!
//! The decision: the server keeps and shows results; it does not run experiments. The
//! chaos crate drives the server over HTTP as any client does, and this crate does not
//! depend on it. Results stay in memory (the last [`KEPT`]; the binary reads back its
//! `[chaos] history` file at start) and, like the task metrics, are shared by the
//! configurations that follow on reload (`carry.rs`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::cells::Exposition;

/// The most results kept.
const KEPT: usize = 100;

/// One run of a scheduled experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GameDayResult {
    /// The experiment's file.
    pub experiment: String,
    /// Its title.
    pub title: String,
    /// When the run started, Unix milliseconds.
    pub started_unix_ms: u64,
    /// Whether every probe held.
    pub passed: bool,
    /// The verdict in a line (which probe deviated, in which phase, when).
    pub verdict: String,
}

/// The results so far.
#[derive(Default)]
pub struct GameDays(Mutex<State>);

#[derive(Default)]
struct State {
    /// Newest last.
    runs: VecDeque<GameDayResult>,
    /// Whether each experiment's latest run failed.
    failing: BTreeMap<String, bool>,
    /// Runs by result: `[passed, failed]`.
    totals: [u64; 2],
}

impl GameDays {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a finished run (a new one, or one read back from the history at start).
    pub fn record(&self, run: GameDayResult) {
        let mut state = self.state();
        state.totals[usize::from(!run.passed)] += 1;
        state.failing.insert(run.experiment.clone(), !run.passed);
        if state.runs.len() == KEPT {
            state.runs.pop_front();
        }
        state.runs.push_back(run);
    }

    /// The results kept, newest first.
    pub fn runs(&self) -> Vec<GameDayResult> {
        self.state().runs.iter().rev().cloned().collect()
    }

    /// `holdfast_chaos_failing` and `holdfast_chaos_runs_total`, once a run finished.
    pub(super) fn render(&self, out: &mut Exposition) {
        let state = self.state();
        if state.failing.is_empty() {
            return;
        }
        out.family(
            "holdfast_chaos_failing",
            "gauge",
            "Scheduled experiments ([chaos] schedule) whose latest run did not pass.",
        );
        let failing = state.failing.values().filter(|f| **f).count();
        out.sample("holdfast_chaos_failing", &[], failing);
        let runs = "holdfast_chaos_runs_total";
        let help = "Runs of scheduled experiments, by result (since the [chaos] history began).";
        out.family(runs, "counter", help);
        for (result, n) in ["passed", "failed"].into_iter().zip(state.totals) {
            out.sample(runs, &[("result", result)], n);
        }
    }
}
