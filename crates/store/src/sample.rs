//! Production answers sampled by the quality loop, each with its input and its score.
//!
//! The decision that shapes them: a sample is written once, after it was scored (or
//! skipped because the scoring budget was spent, or found ungradable), never updated;
//! what a dashboard sorts and filters on (task type, status, score, judge cost, time)
//! are columns, the input, the answer and the graders' verdicts are JSON documents the
//! quality crate writes and reads back. Samples are written in batches (one
//! transaction for many), because the scorer keeps one per production answer and a
//! commit per answer would cost the gateway's machine more than the answer's scoring;
//! an invalid sample in a batch is refused alone. Samples hold users' inputs, so they are kept
//! only for a retention period: [`crate::Store::delete_quality_samples`] removes those
//! older than a time. A sample belongs to a tenant; another tenant's is not found.

use serde_json::Value;

use crate::task::string_enum;
use crate::validate::{self, name};
use crate::{Result, StoreError};

string_enum! {
    /// What became of a sampled answer.
    SampleStatus {
        /// Its graders gave it a score.
        Scored = "scored",
        /// The task type's scoring budget for the hour was spent: kept, not scored.
        SkippedBudget = "skipped_budget",
        /// It could not be graded (its judge failed or answered no verdict).
        Error = "error",
    }
}

/// A sample to keep.
#[derive(Debug, Clone, PartialEq)]
pub struct NewQualitySample {
    /// The tenant whose request it was: a valid name.
    pub tenant: String,
    /// Its task type (the route): a valid name.
    pub task_type: String,
    /// The suite whose graders scored it: a valid name.
    pub suite: String,
    /// The gateway's request id (at most 200 bytes of text).
    pub request_id: String,
    /// The request as the gateway read it (OpenAI chat format).
    pub input: Value,
    /// The answer, as the quality crate writes it.
    pub answer: Value,
    /// What became of it.
    pub status: SampleStatus,
    /// Its score in `[0, 1]`, when scored.
    pub score: Option<f64>,
    /// The graders' verdicts (a JSON array), or why it could not be graded.
    pub verdicts: Value,
    /// What its judges cost, in US dollars (at least 0).
    pub judge_cost_usd: f64,
    /// When the answer was sent, in Unix milliseconds.
    pub created_at_ms: u64,
}

/// A kept sample.
#[derive(Debug, Clone, PartialEq)]
pub struct QualitySample {
    /// Its id, given by the store, growing.
    pub id: u64,
    /// Its tenant.
    pub tenant: String,
    /// Its task type.
    pub task_type: String,
    /// The suite that scored it.
    pub suite: String,
    /// The gateway's request id.
    pub request_id: String,
    /// The request.
    pub input: Value,
    /// The answer.
    pub answer: Value,
    /// What became of it.
    pub status: SampleStatus,
    /// Its score, when scored.
    pub score: Option<f64>,
    /// The graders' verdicts.
    pub verdicts: Value,
    /// What its judges cost, in US dollars.
    pub judge_cost_usd: f64,
    /// When the answer was sent, in Unix milliseconds.
    pub created_at_ms: u64,
}

/// Which samples to list: newest first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SampleFilter {
    /// Only this tenant's; every tenant's when `None`.
    pub tenant: Option<String>,
    /// Only this task type's.
    pub task_type: Option<String>,
    /// Only samples with an id below this one (the next page).
    pub before_id: Option<u64>,
    /// At most this many, 1..=1000.
    pub limit: u32,
}

/// The sample's documents as stored: input, answer, verdicts.
pub(crate) struct SampleDocs {
    pub(crate) input: String,
    pub(crate) answer: String,
    pub(crate) verdicts: String,
}

/// A batch of samples checked before any SQL: the valid ones with their documents, in
/// order, and each sample's refusal (`None` for the valid ones).
pub(crate) struct CheckedBatch {
    pub(crate) valid: Vec<(NewQualitySample, SampleDocs)>,
    refused: Vec<Option<StoreError>>,
}

impl CheckedBatch {
    /// Checks each of `samples`.
    pub(crate) fn check(samples: Vec<NewQualitySample>, max_doc: usize) -> CheckedBatch {
        let mut valid = Vec::with_capacity(samples.len());
        let mut refused = Vec::with_capacity(samples.len());
        for s in samples {
            match check_new(&s, max_doc) {
                Ok(docs) => {
                    valid.push((s, docs));
                    refused.push(None);
                }
                Err(e) => refused.push(Some(e)),
            }
        }
        CheckedBatch { valid, refused }
    }

    /// Takes the valid samples out, leaving what [`CheckedBatch::answer`] needs.
    pub(crate) fn take_valid(&mut self) -> Vec<(NewQualitySample, SampleDocs)> {
        std::mem::take(&mut self.valid)
    }

    /// Each sample's answer, in the order given: its id (`ids` are the valid samples'
    /// ids, in order) or its refusal.
    pub(crate) fn answer(self, ids: Vec<u64>) -> Vec<Result<u64>> {
        let mut ids = ids.into_iter();
        self.refused
            .into_iter()
            .map(|refusal| match refusal {
                Some(e) => Err(e),
                None => ids
                    .next()
                    .ok_or_else(|| StoreError::invalid("sample", "no id was assigned")),
            })
            .collect()
    }
}

/// Checks a sample before any SQL and serialises its documents.
pub(crate) fn check_new(s: &NewQualitySample, max_doc: usize) -> Result<SampleDocs> {
    name("sample.tenant", &s.tenant)?;
    name("sample.task_type", &s.task_type)?;
    name("sample.suite", &s.suite)?;
    validate::text("sample.request_id", &s.request_id, validate::MAX_NAME_LEN)?;
    validate::millis("sample.created_at_ms", s.created_at_ms)?;
    if let Some(score) = s.score
        && !(0.0..=1.0).contains(&score)
    {
        return Err(StoreError::invalid("sample.score", "must be in [0, 1]"));
    }
    if !(s.judge_cost_usd.is_finite() && s.judge_cost_usd >= 0.0) {
        return Err(StoreError::invalid(
            "sample.judge_cost_usd",
            "must be at least 0",
        ));
    }
    Ok(SampleDocs {
        input: validate::json("sample.input", &s.input, max_doc)?,
        answer: validate::json("sample.answer", &s.answer, max_doc)?,
        verdicts: validate::json("sample.verdicts", &s.verdicts, max_doc)?,
    })
}

/// A stored row, as both backends read it.
pub(crate) struct SampleRow {
    pub(crate) id: i64,
    pub(crate) tenant: String,
    pub(crate) task_type: String,
    pub(crate) suite: String,
    pub(crate) request_id: String,
    pub(crate) input: String,
    pub(crate) answer: String,
    pub(crate) status: String,
    pub(crate) score: Option<f64>,
    pub(crate) verdicts: String,
    pub(crate) judge_cost_usd: f64,
    pub(crate) created_at: i64,
}

impl SampleRow {
    /// The sample, or a corruption error naming what cannot be read.
    pub(crate) fn into_sample(self) -> Result<QualitySample> {
        Ok(QualitySample {
            id: validate::unsigned("sample.id", self.id)?,
            tenant: self.tenant,
            task_type: self.task_type,
            suite: self.suite,
            request_id: self.request_id,
            input: validate::parse_json("sample.input", &self.input)?,
            answer: validate::parse_json("sample.answer", &self.answer)?,
            status: SampleStatus::parse(&self.status)?,
            score: self.score,
            verdicts: validate::parse_json("sample.verdicts", &self.verdicts)?,
            judge_cost_usd: self.judge_cost_usd,
            created_at_ms: validate::unsigned("sample.created_at", self.created_at)?,
        })
    }
}
