//! The live terminal view: what the demo is doing, redrawn in place as it runs.
//!
//! The decision: on a terminal, `indicatif` bars redraw a few lines in place (time,
//! tasks, model calls, breakers, what holdfast saved); anywhere else (a pipe, a log, a
//! CI job) one plain status line every few seconds, since redrawn lines would be
//! noise there. Both show the same [`Figures`], read from `/metrics`.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::report::{Figures, states};
use super::workload::Answers;

/// How often the plain view prints a line.
const PLAIN_EVERY: Duration = Duration::from_secs(3);

/// Where the run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Submitting tasks.
    Running,
    /// No new tasks; waiting for those in flight.
    Finishing,
}

/// The view, on a terminal or not.
pub(crate) enum View {
    Bars(Bars),
    Plain {
        duration: Duration,
        targets: Vec<String>,
        last: Option<Duration>,
    },
}

/// The terminal view's lines.
pub(crate) struct Bars {
    duration: Duration,
    targets: Vec<String>,
    _multi: MultiProgress,
    time: ProgressBar,
    tasks: ProgressBar,
    llm: ProgressBar,
    breakers: ProgressBar,
    saved: ProgressBar,
}

impl View {
    /// Bars when stdout is a terminal, plain lines otherwise.
    pub(crate) fn new(duration: Duration, targets: Vec<String>) -> View {
        if !std::io::stdout().is_terminal() {
            return View::Plain {
                duration,
                targets,
                last: None,
            };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let bar = |template: &str, len: u64| {
            let style = ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("█▉▊▋▌▍▎▏ ");
            multi.add(ProgressBar::new(len).with_style(style))
        };
        let line =
            |prefix: &'static str| bar("{prefix:>10.bold} {wide_msg}", 0).with_prefix(prefix);
        let time = bar(
            "{prefix:>10.bold} [{bar:40.cyan/blue}] {msg}",
            duration.as_millis() as u64,
        )
        .with_prefix("time");
        let tasks = bar("{prefix:>10.bold} [{bar:40.green/white}] {msg}", 0).with_prefix("tasks");
        View::Bars(Bars {
            duration,
            targets,
            time,
            tasks,
            llm: line("LLM calls"),
            breakers: line("breakers"),
            saved: line("saved"),
            _multi: multi,
        })
    }

    /// Shows the figures at `elapsed` into the run.
    pub(crate) fn update(
        &mut self,
        elapsed: Duration,
        phase: Phase,
        figures: &Figures,
        answers: Answers,
    ) {
        match self {
            View::Bars(bars) => bars.update(elapsed, phase, figures, answers),
            View::Plain {
                duration,
                targets,
                last,
            } => {
                let due = last.is_none_or(|at| elapsed >= at + PLAIN_EVERY);
                if due {
                    *last = Some(elapsed);
                    println!(
                        "{}",
                        plain(elapsed, *duration, phase, targets, figures, answers)
                    );
                }
            }
        }
    }

    /// Leaves the last state on screen.
    pub(crate) fn finish(&self) {
        if let View::Bars(bars) = self {
            for bar in [
                &bars.time,
                &bars.tasks,
                &bars.llm,
                &bars.breakers,
                &bars.saved,
            ] {
                bar.abandon();
            }
        }
    }
}

impl Bars {
    fn update(&self, elapsed: Duration, phase: Phase, f: &Figures, answers: Answers) {
        let shown = elapsed.min(self.duration);
        self.time.set_position(shown.as_millis() as u64);
        self.time.set_message(match phase {
            Phase::Running => format!("{}s / {}s", shown.as_secs(), self.duration.as_secs()),
            Phase::Finishing => "no new tasks; finishing the ones in flight".to_owned(),
        });
        self.tasks.set_length(f.tasks_submitted.max(1));
        self.tasks.set_position(f.finished());
        self.tasks.set_message(format!(
            "{} submitted · {} completed · {} failed (compensated) · {} waiting on a person",
            f.tasks_submitted,
            f.tasks_completed,
            f.tasks_failed,
            waiting(f, answers)
        ));
        self.llm.set_message(format!(
            "{} requests · {} attempts · {} retries · {} fallbacks · {} routed around · ${:.4}",
            f.llm_requests, f.attempts, f.retries, f.fallbacks, f.routed_around, f.cost_usd
        ));
        self.breakers.set_message(format!(
            "{}  (trips: {})",
            states(&self.targets, f),
            trips(f)
        ));
        self.saved.set_message(format!(
            "{} LLM calls and {} tool calls failed at first and were rescued; \
             {} calls went around the primary's open breaker",
            f.calls_with_failure, f.tool_first_failures, f.around_open_primary
        ));
    }
}

/// Escalations opened that the editor has not answered yet.
fn waiting(f: &Figures, answers: Answers) -> u64 {
    f.escalations.saturating_sub(answers.total())
}

fn trips(f: &Figures) -> u64 {
    f.breaker_trips.values().sum()
}

/// One status line for a log.
fn plain(
    elapsed: Duration,
    duration: Duration,
    phase: Phase,
    targets: &[String],
    f: &Figures,
    answers: Answers,
) -> String {
    let when = match phase {
        Phase::Running => format!("{:>3}s/{}s", elapsed.as_secs(), duration.as_secs()),
        Phase::Finishing => "finishing".to_owned(),
    };
    format!(
        "[{when}] tasks {} submitted, {} completed, {} failed, {} waiting on a person | \
         llm {} requests, {} retries, {} fallbacks, {} routed around, ${:.4} | breakers {}",
        f.tasks_submitted,
        f.tasks_completed,
        f.tasks_failed,
        waiting(f, answers),
        f.llm_requests,
        f.retries,
        f.fallbacks,
        f.routed_around,
        f.cost_usd,
        states(targets, f)
    )
}
