//! The demo's figures and its final report, as text and as JSON.
//!
//! The decision: every figure is computed from one scrape of the server's own
//! `/metrics` ([`Figures::from_scrape`]), the same function for the live view and the
//! report, so neither can drift from what Prometheus would record. The one exception
//! is how people answered (approved, edited, rejected): `/metrics` counts escalations
//! opened but not their answers, so those come from the demo's reviewer, which gave
//! them through the engine's escalation API; they always add up to at most the
//! escalations opened that `/metrics` shows.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use super::scrape::Scrape;
use super::setup::PRIMARY;
use super::workload::{Answers, LLM_CALLS_PER_TASK, TOOL_CALLS_PER_TASK};

/// What `/metrics` says, in the terms the demo shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Figures {
    pub(crate) tasks_submitted: u64,
    pub(crate) tasks_completed: u64,
    pub(crate) tasks_failed: u64,
    pub(crate) tasks_cancelled: u64,
    pub(crate) compensations: u64,
    pub(crate) escalations: u64,
    pub(crate) llm_requests: u64,
    pub(crate) attempts: u64,
    pub(crate) retries: u64,
    pub(crate) fallbacks: u64,
    /// Targets passed over without an attempt (open breaker, Retry-After, rate limit).
    pub(crate) routed_around: u64,
    /// Calls that went around the primary because its breaker was open: a client
    /// without holdfast, which knows only the primary, would have sent them into its
    /// failures.
    pub(crate) around_open_primary: u64,
    /// Model steps the engine ran again because the gateway gave up on every target.
    pub(crate) llm_step_retries: u64,
    pub(crate) calls_with_failure: u64,
    pub(crate) success_after_retry: u64,
    /// Breaker transitions to open, by target.
    pub(crate) breaker_trips: BTreeMap<String, u64>,
    /// Breaker state by target: 0 closed, 1 half-open, 2 open.
    pub(crate) breaker_state: BTreeMap<String, u64>,
    /// Cost of every LLM attempt, in US dollars.
    pub(crate) cost_usd: f64,
    /// Tool calls (http steps) whose first attempt failed: each failed attempt is
    /// counted as `retrying` or `exhausted`, and the demo's tool fails a call at most
    /// once before it succeeds (or fails it for good with a status that is not retried),
    /// so failed attempts and failed first attempts are the same number.
    pub(crate) tool_first_failures: u64,
    /// Examples in the article library (the editor's corrections, active at once).
    pub(crate) examples: u64,
    /// Examples the model calls carried.
    pub(crate) examples_used: u64,
    /// Model calls that carried at least one example.
    pub(crate) calls_with_examples: u64,
}

impl Figures {
    pub(crate) fn from_scrape(scrape: &Scrape) -> Figures {
        let tasks = |status| scrape.count("holdfast_tasks_total", &[("status", status)]);
        let http = |result| {
            scrape.count(
                "holdfast_task_steps_total",
                &[("kind", "http"), ("result", result)],
            )
        };
        let counts = |map: BTreeMap<String, f64>| {
            map.into_iter()
                .map(|(k, v)| (k, v.max(0.0).round() as u64))
                .collect()
        };
        Figures {
            tasks_submitted: tasks("submitted"),
            tasks_completed: tasks("succeeded"),
            tasks_failed: tasks("failed"),
            tasks_cancelled: tasks("cancelled"),
            compensations: scrape.count("holdfast_compensations_total", &[]),
            escalations: scrape.count("holdfast_escalations_total", &[]),
            llm_requests: scrape.count("holdfast_requests_total", &[]),
            attempts: scrape.count("holdfast_attempts_total", &[]),
            retries: scrape.count("holdfast_retries_total", &[]),
            fallbacks: scrape.count("holdfast_fallbacks_total", &[]),
            routed_around: scrape.count("holdfast_skipped_total", &[]),
            around_open_primary: scrape.count(
                "holdfast_skipped_total",
                &[("target", PRIMARY), ("reason", "breaker_open")],
            ),
            llm_step_retries: scrape.count(
                "holdfast_task_steps_total",
                &[("kind", "llm"), ("result", "retrying")],
            ),
            calls_with_failure: scrape.count("holdfast_calls_with_failure_total", &[]),
            success_after_retry: scrape.count("holdfast_success_after_retry_total", &[]),
            breaker_trips: counts(scrape.by(
                "holdfast_breaker_transitions_total",
                "target",
                &[("to", "open")],
            )),
            breaker_state: counts(scrape.by("holdfast_breaker_state", "target", &[])),
            cost_usd: scrape.sum("holdfast_cost_usd_total", &[]),
            tool_first_failures: http("retrying") + http("exhausted"),
            examples: scrape.count(
                "holdfast_few_shot_library_examples",
                &[("status", "active")],
            ),
            examples_used: scrape.count("holdfast_few_shot_examples_used_total", &[]),
            calls_with_examples: scrape
                .count("holdfast_few_shot_retrievals_total", &[("result", "hit")]),
        }
    }

    /// Tasks that reached an end.
    pub(crate) fn finished(&self) -> u64 {
        self.tasks_completed + self.tasks_failed + self.tasks_cancelled
    }

    /// LLM requests a client without holdfast would have seen fail: those whose first
    /// attempt failed, and those that went around the primary's open breaker.
    pub(crate) fn naive_llm_failures(&self) -> u64 {
        self.calls_with_failure + self.around_open_primary
    }

    /// How many of the completed tasks a client without holdfast would have lost, as a
    /// range, since `/metrics` counts failed calls and not which task each belonged to.
    /// At most one task per failed call. At least: every task makes
    /// [`LLM_CALLS_PER_TASK`] model calls (plus the steps the engine ran again) and
    /// [`TOOL_CALLS_PER_TASK`] tool calls, so after setting aside the most that the
    /// tasks which did not complete could hold, the rest of the failed calls must be
    /// spread over at least this many completed tasks.
    pub(crate) fn tasks_lost(&self) -> (u64, u64) {
        let at_most =
            (self.naive_llm_failures() + self.tool_first_failures).min(self.tasks_completed);
        let others = self.tasks_failed + self.tasks_cancelled;
        let llm = self
            .naive_llm_failures()
            .saturating_sub(LLM_CALLS_PER_TASK * others + self.llm_step_retries)
            .div_ceil(LLM_CALLS_PER_TASK);
        let tool = self
            .tool_first_failures
            .saturating_sub(TOOL_CALLS_PER_TASK * others)
            .div_ceil(TOOL_CALLS_PER_TASK);
        (llm.max(tool).min(at_most), at_most)
    }
}

/// The name of a breaker state as the gauge encodes it.
pub(crate) fn state_name(state: u64) -> &'static str {
    match state {
        0 => "closed",
        1 => "half-open",
        _ => "open",
    }
}

/// The final report.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub(crate) duration: Duration,
    /// How long tasks were submitted (less than `duration` after a Ctrl-C).
    pub(crate) ran: Duration,
    pub(crate) tasks_per_second: f64,
    pub(crate) seed: u64,
    /// Targets in the route's order.
    pub(crate) targets: Vec<String>,
    pub(crate) metrics_url: String,
    pub(crate) figures: Figures,
    pub(crate) answers: Answers,
    /// The configuration change the quality gate judged, once it was sent.
    pub(crate) gate: Option<super::gate::Outcome>,
}

impl Report {
    /// The report for people.
    pub(crate) fn text(&self) -> String {
        let f = &self.figures;
        let a = &self.answers;
        let mut out = String::new();
        let cut = if self.ran < self.duration {
            format!(" (stopped after {}s by Ctrl-C)", self.ran.as_secs())
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "\nholdfast demo: {}s at {} tasks/s, seed {}{cut}\n",
            self.duration.as_secs(),
            self.tasks_per_second,
            self.seed
        );
        let _ = writeln!(
            out,
            "  tasks        {} submitted · {} completed · {} failed and compensated \
             ({} steps undone) · {} cancelled at the end",
            f.tasks_submitted,
            f.tasks_completed,
            f.tasks_failed,
            f.compensations,
            f.tasks_cancelled
        );
        let _ = writeln!(
            out,
            "  people       {} escalations · {} approved · {} edited · {} rejected",
            f.escalations, a.approved, a.edited, a.rejected
        );
        let _ = writeln!(
            out,
            "  examples     the editor's edits taught the article library {} examples · \
             {} model calls carried them ({} examples in all)",
            f.examples, f.calls_with_examples, f.examples_used
        );
        let _ = writeln!(
            out,
            "  LLM calls    {} requests · {} attempts · {} retries · {} fallbacks · \
             {} routed around a failing target · {} answered after a failure · ${:.4}",
            f.llm_requests,
            f.attempts,
            f.retries,
            f.fallbacks,
            f.routed_around,
            f.success_after_retry,
            f.cost_usd
        );
        let trips: Vec<String> = self
            .targets
            .iter()
            .map(|t| {
                let n = f.breaker_trips.get(t).copied().unwrap_or(0);
                format!("{t} {n}")
            })
            .collect();
        let _ = writeln!(
            out,
            "  breakers     trips: {} (now: {})",
            trips.join(" · "),
            self.states()
        );
        let _ = writeln!(
            out,
            "  tool calls   {} first attempts failed, retried or compensated",
            f.tool_first_failures
        );
        if let Some(gate) = &self.gate {
            let verdict = if gate.refused {
                format!(
                    "refused by the quality gate (version {}): {}",
                    gate.version.unwrap_or(0),
                    gate.summary
                )
            } else {
                gate.summary.clone()
            };
            let _ = writeln!(
                out,
                "  config       at {}s the route `{}` was pointed at the cheaper model `{}`: {verdict}\n               \
                 the cheaper model served {} requests: {} of the suite, {} of production",
                gate.at.as_secs(),
                super::workload::ROUTE,
                super::gate::CHEAP,
                gate.cheap_requests,
                gate.cheap_requests - gate.cheap_production_requests,
                gate.cheap_production_requests,
            );
        }
        let (least, most) = f.tasks_lost();
        let _ = writeln!(
            out,
            "\n  without holdfast (one attempt per call, no breaker, no fallback, no undo):\n    \
             {} LLM requests and {} tool calls failed on their first attempt, and {} LLM\n    \
             requests went around the primary's open breaker: each would have failed, and\n    \
             {} to {} of the {} completed tasks would have been lost with them.",
            f.calls_with_failure,
            f.tool_first_failures,
            f.around_open_primary,
            least,
            most,
            f.tasks_completed
        );
        let _ = writeln!(
            out,
            "\n  every figure but the people's answers is read from {}",
            self.metrics_url
        );
        out
    }

    /// `primary closed · second open · …`
    pub(crate) fn states(&self) -> String {
        states(&self.targets, &self.figures)
    }

    /// The report as JSON (`--json-report`).
    pub(crate) fn json(&self) -> Value {
        let f = &self.figures;
        let a = &self.answers;
        json!({
            "duration_s": self.duration.as_secs_f64(),
            "ran_s": self.ran.as_secs_f64(),
            "tasks_per_second": self.tasks_per_second,
            "seed": self.seed,
            "metrics_url": self.metrics_url,
            "tasks": {
                "submitted": f.tasks_submitted,
                "completed": f.tasks_completed,
                "failed": f.tasks_failed,
                "cancelled": f.tasks_cancelled,
                "compensations": f.compensations,
            },
            "escalations": {
                "opened": f.escalations,
                "approved": a.approved,
                "edited": a.edited,
                "rejected": a.rejected,
            },
            "llm": {
                "requests": f.llm_requests,
                "attempts": f.attempts,
                "retries": f.retries,
                "fallbacks": f.fallbacks,
                "routed_around": f.routed_around,
                "calls_with_failure": f.calls_with_failure,
                "success_after_retry": f.success_after_retry,
                "cost_usd": f.cost_usd,
            },
            "few_shot": {
                "library_examples": f.examples,
                "calls_with_examples": f.calls_with_examples,
                "examples_used": f.examples_used,
            },
            "breaker_trips": f.breaker_trips,
            "tool_calls": { "first_attempt_failed": f.tool_first_failures },
            "without_holdfast": {
                "llm_requests_failed": f.calls_with_failure,
                "tool_calls_failed": f.tool_first_failures,
                "llm_requests_around_open_primary": f.around_open_primary,
                "tasks_lost_at_least": f.tasks_lost().0,
                "tasks_lost_at_most": f.tasks_lost().1,
            },
            "quality_gate": self.gate.as_ref().map(super::gate::Outcome::json),
        })
    }
}

/// Each target's breaker state, in the route's order.
pub(crate) fn states(targets: &[String], figures: &Figures) -> String {
    targets
        .iter()
        .map(|t| {
            let state = figures.breaker_state.get(t).copied().unwrap_or(0);
            format!("{t} {}", state_name(state))
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_come_from_the_scrape() {
        let text = "holdfast_tasks_total{workflow=\"w\",status=\"submitted\"} 10\n\
            holdfast_tasks_total{workflow=\"w\",status=\"succeeded\"} 7\n\
            holdfast_tasks_total{workflow=\"w\",status=\"failed\"} 2\n\
            holdfast_task_steps_total{workflow=\"w\",kind=\"http\",result=\"retrying\"} 3\n\
            holdfast_task_steps_total{workflow=\"w\",kind=\"http\",result=\"exhausted\"} 1\n\
            holdfast_task_steps_total{workflow=\"w\",kind=\"llm\",result=\"retrying\"} 1\n\
            holdfast_calls_with_failure_total{route=\"r\"} 9\n\
            holdfast_breaker_transitions_total{target=\"p\",from=\"closed\",to=\"open\"} 1\n\
            holdfast_breaker_transitions_total{target=\"p\",from=\"half_open\",to=\"open\"} 2\n\
            holdfast_breaker_transitions_total{target=\"p\",from=\"open\",to=\"half_open\"} 2\n\
            holdfast_breaker_state{target=\"p\"} 2\n";
        let f = Figures::from_scrape(&Scrape::parse(text));
        assert_eq!(f.tasks_submitted, 10);
        assert_eq!(f.finished(), 9);
        assert_eq!(f.tool_first_failures, 4);
        assert_eq!(f.breaker_trips.get("p").copied(), Some(3));
        // 9 + 4 failed calls for 7 completed tasks; the 2 failed tasks may hold 4 LLM
        // and 6 tool failures and one model step ran twice, so at least
        // (9 - 4 - 1) / 2 = 2 completed tasks were hit.
        assert_eq!(f.tasks_lost(), (2, 7));
        assert_eq!(states(&["p".to_owned()], &f), "p open");
    }
}
