//! A case's result and a run's settings, as this crate computes them and as the store
//! keeps them.
//!
//! The store knows runs and results only as columns and JSON documents; this module
//! is the one place that writes those documents and reads them back, so a report can be
//! rebuilt from the store alone (`holdfast eval show`, `compare`) with the same
//! thresholds the run was gated with.

use holdfast_store::{EvalOutcome, EvalResult, EvalRun, NewEvalResult};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::QualityError;
use crate::grader::Verdict;
use crate::subject::Answer;
use crate::suite::{TaskType, Thresholds};

/// How one case of a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseResult {
    /// The case's id.
    pub case_id: String,
    /// Passed, failed or error.
    pub outcome: EvalOutcome,
    /// The weighted mean of its graders' scores (0 for an error).
    pub score: f64,
    /// Its tags.
    pub tags: Vec<String>,
    /// Each grader's verdict.
    pub verdicts: Vec<Verdict>,
    /// The answer graded, when there was one.
    pub answer: Option<Answer>,
    /// Why there was nothing to grade, for an error.
    pub error: Option<String>,
    /// What the case's own call cost (judges not included), in US dollars.
    pub cost_usd: f64,
    /// How long the case's own call took, in milliseconds.
    pub latency_ms: u64,
}

impl CaseResult {
    /// Whether it passed.
    pub fn passed(&self) -> bool {
        self.outcome == EvalOutcome::Passed
    }

    /// What its judges cost, in US dollars.
    pub fn judge_cost_usd(&self) -> f64 {
        self.verdicts.iter().map(|v| v.cost_usd).sum()
    }

    /// Why it did not pass, in one line: the error, or its failing graders' reasons.
    pub fn why(&self) -> String {
        if let Some(error) = &self.error {
            return error.clone();
        }
        let failing: Vec<String> = self
            .verdicts
            .iter()
            .filter(|v| v.score < 1.0)
            .map(|v| format!("{} ({:.2}): {}", v.grader, v.score, v.reason))
            .collect();
        failing.join("; ")
    }

    pub(crate) fn to_store(&self) -> NewEvalResult {
        NewEvalResult {
            case_id: self.case_id.clone(),
            outcome: self.outcome,
            score: self.score,
            tags: self.tags.clone(),
            verdicts: serde_json::to_value(&self.verdicts).unwrap_or(Value::Null),
            answer: self
                .answer
                .as_ref()
                .and_then(|a| serde_json::to_value(a).ok())
                .unwrap_or(Value::Null),
            error: self.error.clone(),
            cost_usd: self.cost_usd,
            latency_ms: self.latency_ms,
        }
    }

    /// A result as the store keeps it, read back.
    pub fn from_store(run_id: &str, stored: EvalResult) -> Result<CaseResult, QualityError> {
        let bad = |what: &str, e: serde_json::Error| QualityError::Stored {
            run_id: run_id.to_owned(),
            reason: format!("case {}: {what}: {e}", stored.case_id),
        };
        let verdicts =
            serde_json::from_value(stored.verdicts.clone()).map_err(|e| bad("verdicts", e))?;
        let answer = match &stored.answer {
            Value::Null => None,
            other => Some(serde_json::from_value(other.clone()).map_err(|e| bad("answer", e))?),
        };
        Ok(CaseResult {
            case_id: stored.case_id,
            outcome: stored.outcome,
            score: stored.score,
            tags: stored.tags,
            verdicts,
            answer,
            error: stored.error,
            cost_usd: stored.cost_usd,
            latency_ms: stored.latency_ms,
        })
    }
}

/// How a run was set up: stored with it, read by reports and by a resumed run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Settings {
    /// What it ran against.
    pub(crate) task: TaskType,
    /// The judge route.
    pub(crate) judge: Option<String>,
    /// The seed of the order and the sample.
    pub(crate) seed: u64,
    /// How many cases were drawn; all when `None`.
    pub(crate) sample: Option<usize>,
    /// Cases in flight at once (of the first start).
    pub(crate) concurrency: usize,
    /// One case's time limit, in milliseconds.
    pub(crate) timeout_ms: u64,
    /// The run it is compared with.
    pub(crate) baseline: Option<String>,
    /// What counts as passing.
    pub(crate) thresholds: Thresholds,
}

impl Settings {
    /// The settings stored with `run`.
    pub(crate) fn of(run: &EvalRun) -> Result<Settings, QualityError> {
        serde_json::from_value(run.settings.clone()).map_err(|e| QualityError::Stored {
            run_id: run.run_id.clone(),
            reason: format!("settings: {e}"),
        })
    }

    pub(crate) fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}
