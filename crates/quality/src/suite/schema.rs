//! The suite file as written: these doc comments are the reference for every field
//! (`docs/quality.md` repeats them with an example).
//!
//! Every table refuses fields it does not know, so a misspelt threshold is an error
//! with its line, not a threshold silently not applied. Ranges and cross-field rules
//! are checked after parsing (`suite/mod.rs`), with the same file, line and field.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A suite file (TOML).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSuite {
    /// The suite's name: 1..=200 of letters, digits and `_ . : / @ -`. Runs are listed
    /// and compared by it.
    pub(crate) name: String,
    /// What the suite checks, for people.
    #[serde(default)]
    pub(crate) description: Option<String>,
    /// Who answers for the task type's quality (a team, a person), for people and
    /// `holdfast readiness`.
    #[serde(default)]
    pub(crate) owner: Option<String>,
    /// Where the task type's runbook is (a URL or a path): what to do when its gate or
    /// its alerts fire. Checked by `holdfast readiness`.
    #[serde(default)]
    pub(crate) runbook: Option<String>,
    /// The dataset: a JSONL file, one case per line, relative to the suite file.
    pub(crate) dataset: String,
    /// The task type the cases run against: a route or a workflow.
    pub(crate) task: RawTask,
    /// The judge of `rubric` graders; required when any case has one.
    #[serde(default)]
    pub(crate) judge: Option<RawJudge>,
    /// How the suite runs.
    #[serde(default)]
    pub(crate) run: RawRun,
    /// What counts as passing.
    #[serde(default)]
    pub(crate) thresholds: RawThresholds,
    /// How the task type's production answers are scored when sampled.
    #[serde(default)]
    pub(crate) production: RawProduction,
}

/// `[production]`: the graders of sampled production answers
/// (`[quality.sampling.ROUTE]` in the server's configuration names this suite).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProduction {
    /// The graders, written as a dataset line's `assert` (inline tables:
    /// `assert = [{ type = "rubric", value = "polite and on topic" }, { type =
    /// "is_json" }]`). A production answer has no expected answer, so `equals` and
    /// `contains` must give their `value`. A case's score is their weighted mean.
    #[serde(default, rename = "assert")]
    pub(crate) asserts: Vec<crate::grader::RawAssert>,
}

/// `[task]`: exactly one of `route` and `workflow`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTask {
    /// A route of the gateway (a client's `model`): each case's `input` is a chat
    /// request (its `messages`, or an object with `messages` and other OpenAI request
    /// fields such as `tools`, `response_format`, `temperature`, `max_tokens`), sent
    /// through the gateway's whole pipeline.
    #[serde(default)]
    pub(crate) route: Option<String>,
    /// A registered workflow: each case's `input` is a task input, and a task per
    /// case runs to its end; its output is the answer.
    #[serde(default)]
    pub(crate) workflow: Option<String>,
    /// The workflow's version, at least 1; the latest when not set.
    #[serde(default)]
    pub(crate) version: Option<u32>,
}

/// `[judge]`: who grades `rubric` graders.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJudge {
    /// The route that judges: a rubric's verdict is a call through holdfast like any
    /// other, with its route's retries, fallback and costs. Its answer must be JSON
    /// `{"score": 0..1, "reason": "…"}` (the request asks for it with a JSON schema).
    pub(crate) route: String,
}

/// `[run]`: how the suite runs; each may be overridden on the command line.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRun {
    /// Cases in flight at once, 1..=1024; default 8.
    #[serde(default)]
    pub(crate) concurrency: Option<u32>,
    /// The seed of the case order and of the sample; default 0. The same seed runs the
    /// same cases in the same order.
    #[serde(default)]
    pub(crate) seed: Option<u64>,
    /// Run only this many cases (at least 1), drawn with the seed; default all.
    #[serde(default)]
    pub(crate) sample: Option<u32>,
    /// How long one case may take (its call and its judges), a duration (`"30s"`,
    /// `"500ms"`), at most a day; default `"60s"`. A case over it is an `error`.
    #[serde(default)]
    pub(crate) timeout: Option<String>,
}

/// `[thresholds]`: what counts as passing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawThresholds {
    /// The score, in (0, 1], at which a case passes (a case's score is the weighted
    /// mean of its graders' scores); a case's own `threshold` wins. Default 1.0: every
    /// grader must give full marks.
    #[serde(default)]
    pub(crate) case_score: Option<f64>,
    /// The least pass rate, in [0, 1], per tag (`labeled = 0.9`), or over every case
    /// (`all = 0.85`). The gate fails on a rate below its threshold, and on a rate
    /// significantly below the baseline's (exact McNemar, p < 0.05) whether it has a
    /// threshold or not.
    #[serde(default)]
    pub(crate) pass_rate: BTreeMap<String, f64>,
    /// The most a case may cost on average, in US dollars (at least 0); judges'
    /// calls are not counted. Not checked when not set.
    #[serde(default)]
    pub(crate) cost_per_case: Option<f64>,
    /// The slowest the 95th percentile of case latency may be, a duration
    /// (`"2s"`). Not checked when not set.
    #[serde(default)]
    pub(crate) p95_latency: Option<String>,
}
