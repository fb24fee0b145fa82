//! The progress bar of `holdfast eval run`: cases done of planned, the failures so far.
//!
//! Drawn on stderr, so the summary on stdout can be piped; indicatif hides it when
//! stderr is not a terminal (a CI log gets the summary only).

use std::sync::atomic::{AtomicU64, Ordering};

use holdfast_quality::{CaseResult, Progress};
use holdfast_store::EvalRun;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar over a run's cases.
pub(crate) struct Bar {
    bar: ProgressBar,
    not_passed: AtomicU64,
}

impl Bar {
    pub(crate) fn new() -> Bar {
        let style = ProgressStyle::with_template(
            "{prefix:.bold} [{bar:40.green/white}] {pos}/{len} cases · {per_sec} · {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("█▉▊▋▌▍▎▏ ");
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
            .with_style(style)
            .with_prefix("eval");
        Bar {
            bar,
            not_passed: AtomicU64::new(0),
        }
    }

    /// Clears the bar before the summary is printed.
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for Bar {
    fn started(&self, run: &EvalRun, planned: usize, done: usize) {
        if done > 0 {
            eprintln!(
                "resuming run {}: {done} of {planned} cases recorded before",
                run.run_id
            );
        }
        self.bar.set_length(planned as u64);
        self.bar.set_position(done as u64);
        self.bar.reset_eta();
        let resumed = if done > 0 {
            format!("resumed, {done} done before")
        } else {
            "0 not passed".to_owned()
        };
        self.bar.set_message(format!("{} · {resumed}", run.run_id));
    }

    fn finished(&self, result: &CaseResult) {
        if !result.passed() {
            self.not_passed.fetch_add(1, Ordering::Relaxed);
        }
        self.bar.inc(1);
        let not_passed = self.not_passed.load(Ordering::Relaxed);
        self.bar.set_message(format!("{not_passed} not passed"));
    }
}
