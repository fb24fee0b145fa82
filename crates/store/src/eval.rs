//! Evaluation runs of the quality loop and their per-case results.
//!
//! The decision that shapes them: a run is written case by case, as each case finishes,
//! never as one document at the end. A run interrupted (Ctrl-C, a crash, a deploy)
//! keeps every case it finished, and running it again under the same id skips them
//! ([`crate::Store::start_eval_run`] answers [`EvalRunStart::Resumed`]). A case is
//! recorded at most once per run, so a resumed run cannot count a case twice. Runs
//! belong to a tenant, and a run id is its tenant's own, as task idempotency keys are.
//!
//! The store keeps what the quality crate computes without knowing its types: the
//! outcome, score, cost and latency are columns (what a dashboard sorts and sums),
//! the graders' verdicts, the answer, the run's settings and its summary are JSON
//! documents the quality crate writes and reads back.

use serde_json::Value;

use crate::task::string_enum;
use crate::validate::{self, millis, name};
use crate::{Result, StoreError};

string_enum! {
    /// Where an evaluation run is.
    EvalStatus {
        /// Started (or resumed) and not finished.
        Running = "running",
        /// Stopped before every case was run; running it again resumes it.
        Interrupted = "interrupted",
        /// Every case ran and the summary is written.
        Finished = "finished",
    }
}

string_enum! {
    /// How one case of a run ended.
    EvalOutcome {
        /// Its score reached its threshold.
        Passed = "passed",
        /// Its score fell short.
        Failed = "failed",
        /// No answer could be graded: the call failed, timed out, or a judge could not
        /// give a verdict.
        Error = "error",
    }
}

/// A run to start.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvalRun {
    /// Its id, the tenant's own: a valid name.
    pub run_id: String,
    /// The tenant it belongs to: a valid name.
    pub tenant: String,
    /// The suite's name: a valid name.
    pub suite: String,
    /// A digest of the suite and its dataset (at most 128 bytes): a run resumed under
    /// the same id must run the same cases.
    pub suite_sha256: String,
    /// What it runs against (a route or workflow, where, at which configuration).
    pub subject: Value,
    /// How it runs (seed, sample, thresholds…), as the quality crate writes it.
    pub settings: Value,
    /// How many cases it plans to run.
    pub cases: u32,
}

/// A stored run.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalRun {
    /// Its id.
    pub run_id: String,
    /// Its tenant.
    pub tenant: String,
    /// Its suite.
    pub suite: String,
    /// The digest of its suite and dataset.
    pub suite_sha256: String,
    /// What it ran against.
    pub subject: Value,
    /// How it ran.
    pub settings: Value,
    /// How many cases it planned to run.
    pub cases: u32,
    /// Where it is.
    pub status: EvalStatus,
    /// Its summary (the report), once finished.
    pub summary: Option<Value>,
    /// When it was first started, in Unix milliseconds.
    pub created_at_ms: u64,
    /// When it was last started, resumed or finished, in Unix milliseconds.
    pub updated_at_ms: u64,
    /// When it finished or was interrupted last, in Unix milliseconds.
    pub finished_at_ms: Option<u64>,
}

/// What [`crate::Store::start_eval_run`] did: an expected outcome either way.
#[derive(Debug, Clone, PartialEq)]
pub enum EvalRunStart {
    /// A new run.
    Created(EvalRun),
    /// The tenant's run with that id, of the same suite, running again: its recorded
    /// cases are done, its stored settings stand.
    Resumed(EvalRun),
}

impl EvalRunStart {
    /// The run, new or resumed.
    pub fn run(&self) -> &EvalRun {
        match self {
            EvalRunStart::Created(run) | EvalRunStart::Resumed(run) => run,
        }
    }
}

/// One case's result, to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvalResult {
    /// The case's id in its dataset: a valid name.
    pub case_id: String,
    /// How it ended.
    pub outcome: EvalOutcome,
    /// Its score: the weighted mean of its graders' scores, in `[0, 1]`.
    pub score: f64,
    /// Its tags (valid names).
    pub tags: Vec<String>,
    /// Each grader's verdict and reason.
    pub verdicts: Value,
    /// The answer graded (`null` when there was none).
    pub answer: Value,
    /// Why there was no answer to grade, for [`EvalOutcome::Error`].
    pub error: Option<String>,
    /// What the call cost, in US dollars (finite, at least 0).
    pub cost_usd: f64,
    /// How long the call took, in milliseconds.
    pub latency_ms: u64,
}

/// A recorded case result.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalResult {
    /// The case's id.
    pub case_id: String,
    /// How it ended.
    pub outcome: EvalOutcome,
    /// Its score.
    pub score: f64,
    /// Its tags.
    pub tags: Vec<String>,
    /// Each grader's verdict and reason.
    pub verdicts: Value,
    /// The answer graded.
    pub answer: Value,
    /// Why there was no answer to grade.
    pub error: Option<String>,
    /// What the call cost, in US dollars.
    pub cost_usd: f64,
    /// How long the call took, in milliseconds.
    pub latency_ms: u64,
    /// When it was recorded, in Unix milliseconds.
    pub recorded_at_ms: u64,
}

/// Which runs to list, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalRunFilter {
    /// Only this tenant's; `None` for every tenant.
    pub tenant: Option<String>,
    /// Only runs of this suite.
    pub suite: Option<String>,
    /// At most this many, 1..=1000.
    pub limit: u32,
}

impl Default for EvalRunFilter {
    fn default() -> Self {
        EvalRunFilter {
            tenant: None,
            suite: None,
            limit: 100,
        }
    }
}

/// A run's documents, serialised and checked.
pub(crate) struct RunDocs {
    pub(crate) subject: String,
    pub(crate) settings: String,
}

/// Checks a run to start; returns its documents as stored.
pub(crate) fn check_run(run: &NewEvalRun, max: usize) -> Result<RunDocs> {
    name("eval.run_id", &run.run_id)?;
    name("eval.tenant", &run.tenant)?;
    name("eval.suite", &run.suite)?;
    if run.suite_sha256.is_empty() || run.suite_sha256.len() > 128 {
        return Err(StoreError::invalid(
            "eval.suite_sha256",
            "must be 1..=128 bytes",
        ));
    }
    validate::text("eval.suite_sha256", &run.suite_sha256, 128)?;
    Ok(RunDocs {
        subject: validate::json("eval.subject", &run.subject, max)?,
        settings: validate::json("eval.settings", &run.settings, max)?,
    })
}

/// A result's documents, serialised and checked.
pub(crate) struct ResultDocs {
    pub(crate) tags: String,
    pub(crate) verdicts: String,
    pub(crate) answer: String,
    pub(crate) latency_ms: i64,
}

/// Checks a case result to record; returns its documents as stored.
pub(crate) fn check_result(
    tenant: &str,
    run_id: &str,
    r: &NewEvalResult,
    max: usize,
) -> Result<ResultDocs> {
    name("eval.tenant", tenant)?;
    name("eval.run_id", run_id)?;
    name("eval.case_id", &r.case_id)?;
    for tag in &r.tags {
        name("eval.tags", tag)?;
    }
    if !(r.score.is_finite() && (0.0..=1.0).contains(&r.score)) {
        return Err(StoreError::invalid("eval.score", "must be in [0, 1]"));
    }
    if !(r.cost_usd.is_finite() && r.cost_usd >= 0.0) {
        return Err(StoreError::invalid(
            "eval.cost_usd",
            "must be a finite amount, at least 0",
        ));
    }
    if let Some(error) = &r.error {
        validate::text("eval.error", error, max)?;
    }
    Ok(ResultDocs {
        tags: validate::names_json(&r.tags),
        verdicts: validate::json("eval.verdicts", &r.verdicts, max)?,
        answer: validate::json("eval.answer", &r.answer, max)?,
        latency_ms: millis("eval.latency_ms", r.latency_ms)?,
    })
}

/// Checks how a run ends; returns its summary as stored.
pub(crate) fn check_finish(
    tenant: &str,
    run_id: &str,
    status: EvalStatus,
    summary: Option<&Value>,
    max: usize,
) -> Result<Option<String>> {
    name("eval.tenant", tenant)?;
    name("eval.run_id", run_id)?;
    if status == EvalStatus::Running {
        return Err(StoreError::invalid(
            "eval.status",
            "a run ends finished or interrupted",
        ));
    }
    validate::opt_json("eval.summary", summary, max)
}

/// The refusal of a run id that holds another suite, or the same suite changed.
pub(crate) fn other_suite(stored: &EvalRun, run: &NewEvalRun) -> StoreError {
    let reason = if stored.suite == run.suite {
        "the suite or its dataset changed since the run started; give the new run another id"
            .to_owned()
    } else {
        format!("it is a run of suite {}", stored.suite)
    };
    StoreError::conflict("eval run", &run.run_id, reason)
}

/// The run columns, in the order every `SELECT` of a run lists them.
pub(crate) struct RunRow {
    pub(crate) run_id: String,
    pub(crate) tenant: String,
    pub(crate) suite: String,
    pub(crate) suite_sha256: String,
    pub(crate) subject: String,
    pub(crate) settings: String,
    pub(crate) cases: i64,
    pub(crate) status: String,
    pub(crate) summary: Option<String>,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) finished_at: Option<i64>,
}

impl RunRow {
    pub(crate) fn into_run(self) -> Result<EvalRun> {
        let cases = u32::try_from(self.cases)
            .map_err(|_| StoreError::corrupt("eval.cases", self.cases.to_string()))?;
        Ok(EvalRun {
            run_id: self.run_id,
            tenant: self.tenant,
            suite: self.suite,
            suite_sha256: self.suite_sha256,
            subject: validate::parse_json("eval.subject", &self.subject)?,
            settings: validate::parse_json("eval.settings", &self.settings)?,
            cases,
            status: EvalStatus::parse(&self.status)?,
            summary: self
                .summary
                .map(|s| validate::parse_json("eval.summary", &s))
                .transpose()?,
            created_at_ms: validate::unsigned("eval.created_at", self.created_at)?,
            updated_at_ms: validate::unsigned("eval.updated_at", self.updated_at)?,
            finished_at_ms: self
                .finished_at
                .map(|t| validate::unsigned("eval.finished_at", t))
                .transpose()?,
        })
    }
}

/// The result columns, in the order every `SELECT` of a result lists them.
pub(crate) struct ResultRow {
    pub(crate) case_id: String,
    pub(crate) outcome: String,
    pub(crate) score: f64,
    pub(crate) tags: String,
    pub(crate) verdicts: String,
    pub(crate) answer: String,
    pub(crate) error: Option<String>,
    pub(crate) cost_usd: f64,
    pub(crate) latency_ms: i64,
    pub(crate) recorded_at: i64,
}

impl ResultRow {
    pub(crate) fn into_result(self) -> Result<EvalResult> {
        Ok(EvalResult {
            case_id: self.case_id,
            outcome: EvalOutcome::parse(&self.outcome)?,
            score: self.score,
            tags: serde_json::from_str(&self.tags)
                .map_err(|e| StoreError::corrupt("eval.tags", e.to_string()))?,
            verdicts: validate::parse_json("eval.verdicts", &self.verdicts)?,
            answer: validate::parse_json("eval.answer", &self.answer)?,
            error: self.error,
            cost_usd: self.cost_usd,
            latency_ms: validate::unsigned("eval.latency_ms", self.latency_ms)?,
            recorded_at_ms: validate::unsigned("eval.recorded_at", self.recorded_at)?,
        })
    }
}
