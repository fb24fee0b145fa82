//! `[quality]`: the quality loop's settings in the server's configuration.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::units::HumanDuration;

/// `[quality]`: how configuration changes are judged by evaluation suites.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quality {
    /// `gate = { suites = [...], on_fail = "refuse" }`: every new configuration
    /// version (a reload, a text sent through the API, a rollback) is judged by the
    /// suites whose route it changed before it takes traffic. Default: no gate.
    pub gate: Option<Gate>,
    /// `[quality.sampling.NAME]`: production answers of a route, or finished tasks of a
    /// workflow, sampled and scored in the background by its suite's graders, one
    /// table per route or workflow. Default: none.
    pub sampling: BTreeMap<String, Sampling>,
    /// `[quality.few_shot.LIBRARY]`: how a few-shot library (the `library` a route's
    /// or an llm step's `few_shot` names) finds the examples similar to a call's
    /// input. A library not named here uses the built-in lexical index.
    pub few_shot: BTreeMap<String, FewShotLibrary>,
}

/// `[quality.few_shot.LIBRARY]`, e.g. `similarity = "embeddings", embedding_route =
/// "embed"`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FewShotLibrary {
    /// `"lexical"` (default): BM25 over the inputs' words, built in. `"embeddings"`:
    /// the cosine of vectors from `embedding_route`; each example is embedded once
    /// when it becomes active (its vector kept in the store) and each call's input
    /// when the call is made, unless the tenant has no embedded example yet (then the
    /// lexical index answers, counted in `holdfast_few_shot_embedding_fallbacks_total`
    /// with `reason="no_vectors"`). When the route fails, the call's examples come from
    /// the lexical index (logged, and counted there with `reason="embedding_failed"`):
    /// the call itself never fails.
    #[serde(default)]
    pub similarity: FewShotSimilarity,
    /// The route that embeds (`POST /v1/embeddings` through its targets, which must
    /// speak `openai`): required with `"embeddings"`, refused otherwise.
    pub embedding_route: Option<String>,
}

/// How a library measures similarity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FewShotSimilarity {
    /// BM25 over the inputs' words.
    #[default]
    Lexical,
    /// Cosine of embedding vectors.
    Embeddings,
}

/// `[quality.sampling.NAME]`: how a route's production answers, or a workflow's
/// finished tasks, are sampled and scored.
///
/// A sampled answer is kept with its request (users' inputs: see `retention`) and
/// scored after it was sent, off the request path, on a bounded queue (an answer that
/// finds the queue full is dropped and counted), by the suite's `[production]` graders
/// and its `[judge]` route. A route's whole and streamed answers are sampled (a
/// stream's once it is complete, as the client got its text); a workflow's tasks that
/// succeeded are sampled with their input and output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sampling {
    /// The suite file (`.toml`) whose `[production]` graders score the samples; its
    /// `[task]` must be this route or this workflow (checked at start). A relative path is relative to this
    /// configuration file's directory.
    pub suite: String,
    /// The share of the route's successful answers sampled, in [0, 1]; default 0.05.
    #[serde(default = "default_share")]
    pub share: f64,
    /// The most the judge's calls may cost per hour, in US dollars (at least 0);
    /// default 1.0. Once spent, samples are kept but not scored (`skipped_budget`)
    /// until the hour is over.
    #[serde(default = "default_budget")]
    pub budget_per_hour: f64,
    /// How long samples (requests and answers) are kept before they are deleted, at
    /// least `"1m"`; default `"168h"` (7 days).
    #[serde(default = "default_retention")]
    pub retention: HumanDuration,
}

fn default_share() -> f64 {
    0.05
}

fn default_budget() -> f64 {
    1.0
}

fn default_retention() -> HumanDuration {
    HumanDuration::secs(7 * 24 * 3600)
}

/// The gate on configuration versions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    /// Suite files (`.toml`, as `holdfast eval run` takes them); a relative path is
    /// relative to this configuration file's directory. A suite runs when the new
    /// version changes its route: the route's targets, their settings or providers,
    /// or its policy. At least one.
    pub suites: Vec<String>,
    /// What a failed gate does: `"refuse"` (the version never takes traffic: its
    /// routes are built beside the running ones and the suites run through them
    /// first), `"rollback"` (the version goes live, the suites run through it, and a
    /// failure restores the previous version) or `"alert"` (the suites run first, the
    /// version goes live whatever they say, and a failure raises an alert). Default
    /// `"refuse"`.
    #[serde(default)]
    pub on_fail: OnFail,
}

/// What a failed gate does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFail {
    /// The version is refused before it takes traffic.
    #[default]
    Refuse,
    /// The version goes live and is rolled back when its gate fails.
    Rollback,
    /// The version goes live; a failed gate raises an alert.
    Alert,
}

impl OnFail {
    /// Its name as written.
    pub fn name(self) -> &'static str {
        match self {
            OnFail::Refuse => "refuse",
            OnFail::Rollback => "rollback",
            OnFail::Alert => "alert",
        }
    }
}
