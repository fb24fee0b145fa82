//! A suite: a task type, its dataset and its thresholds, loaded and checked whole.
//!
//! The decision that shapes it: a suite is validated completely before a single case
//! runs. A bad field in the suite file or a bad line in the dataset is reported with
//! its file, line and field, every problem at once, and nothing is called; a run that
//! starts can only fail case by case, never on its own input. The suite's digest
//! (SHA-256 of both files) is recorded with every run, so a run resumed under the
//! same id is known to run the same cases.

mod locate;
mod schema;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::dataset::{self, Case};
use crate::duration;
use crate::error::QualityError;
use crate::grader::Assertion;
use crate::names;
use crate::problem::{Problem, Problems};
use locate::Locator;
use schema::{RawRun, RawSuite, RawThresholds};

/// The key of `pass_rate` that means every case, whatever its tags.
pub const ALL: &str = "all";

/// What the cases run against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskType {
    /// A route: each case is a chat.
    Route {
        /// The route's name.
        route: String,
    },
    /// A workflow: each case is a task.
    Workflow {
        /// The workflow's name.
        workflow: String,
        /// Its version; the latest when `None`.
        version: Option<u32>,
    },
}

impl TaskType {
    /// `route smart` or `workflow article@2`, for people.
    pub fn label(&self) -> String {
        match self {
            TaskType::Route { route } => format!("route {route}"),
            TaskType::Workflow {
                workflow,
                version: Some(v),
            } => format!("workflow {workflow}@{v}"),
            TaskType::Workflow { workflow, .. } => format!("workflow {workflow}"),
        }
    }
}

/// How a suite runs, from `[run]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSettings {
    /// Cases in flight at once.
    pub concurrency: usize,
    /// The seed of the case order and of the sample.
    pub seed: u64,
    /// How many cases to run, drawn with the seed; all when `None`.
    pub sample: Option<usize>,
    /// How long one case may take.
    pub timeout: Duration,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            concurrency: 8,
            seed: 0,
            sample: None,
            timeout: Duration::from_secs(60),
        }
    }
}

/// What counts as passing, from `[thresholds]`; stored with every run so a report can
/// be rebuilt from the store alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// The score at which a case passes.
    pub case_score: f64,
    /// The least pass rate per tag (or [`ALL`]).
    pub pass_rate: BTreeMap<String, f64>,
    /// The most a case may cost on average, in US dollars.
    pub cost_per_case: Option<f64>,
    /// The slowest the 95th percentile of case latency may be, in milliseconds.
    pub p95_latency_ms: Option<u64>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            case_score: 1.0,
            pass_rate: BTreeMap::new(),
            cost_per_case: None,
            p95_latency_ms: None,
        }
    }
}

/// A loaded, checked suite.
#[derive(Debug, Clone)]
pub struct Suite {
    /// Its name.
    pub name: String,
    /// What it checks.
    pub description: Option<String>,
    /// Who answers for its task type's quality.
    pub owner: Option<String>,
    /// Where its task type's runbook is.
    pub runbook: Option<String>,
    /// What its cases run against.
    pub task: TaskType,
    /// The route that judges `rubric` graders.
    pub judge: Option<String>,
    /// How it runs.
    pub run: RunSettings,
    /// What counts as passing.
    pub thresholds: Thresholds,
    /// Its cases, in file order.
    pub cases: Vec<Case>,
    /// SHA-256 (hex) of the suite file and the dataset.
    pub digest: String,
    /// The graders of sampled production answers, from `[production]`.
    pub production: Vec<Assertion>,
}

impl Suite {
    /// Reads the suite file at `path` and the dataset it names (relative to it).
    pub fn load(path: &Path) -> Result<Suite, QualityError> {
        let text = read(path)?;
        let shown = path.display().to_string();
        let raw = parse_raw(&text, &shown).map_err(QualityError::Invalid)?;
        let dir = path.parent().unwrap_or(Path::new(""));
        let dataset_path: PathBuf = dir.join(&raw.dataset);
        let dataset_text = read(&dataset_path)?;
        build(
            raw,
            (&shown, &text),
            (&dataset_path.display().to_string(), &dataset_text),
        )
        .map_err(QualityError::Invalid)
    }

    /// A suite from its file's text and its dataset's text (whatever the suite's
    /// `dataset` says), named `suite_name` and `dataset_name` in problems.
    pub fn parse(
        (suite_name, suite_text): (&str, &str),
        (dataset_name, dataset_text): (&str, &str),
    ) -> Result<Suite, QualityError> {
        let raw = parse_raw(suite_text, suite_name).map_err(QualityError::Invalid)?;
        build(raw, (suite_name, suite_text), (dataset_name, dataset_text))
            .map_err(QualityError::Invalid)
    }

    /// The tags its cases carry, sorted.
    pub fn tags(&self) -> Vec<String> {
        let mut tags: Vec<String> = self.cases.iter().flat_map(|c| c.tags.clone()).collect();
        tags.sort();
        tags.dedup();
        tags
    }
}

/// The text of the suite file at `path` and the path of the dataset it names.
pub(crate) fn dataset_of(path: &Path) -> Result<(String, PathBuf), QualityError> {
    let text = read(path)?;
    let raw = parse_raw(&text, &path.display().to_string()).map_err(QualityError::Invalid)?;
    let dir = path.parent().unwrap_or(Path::new(""));
    let dataset = dir.join(&raw.dataset);
    Ok((text, dataset))
}

fn read(path: &Path) -> Result<String, QualityError> {
    std::fs::read_to_string(path).map_err(|source| QualityError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// The suite file, typed, or its first syntax or type error.
fn parse_raw(text: &str, file: &str) -> Result<RawSuite, Problems> {
    let locator = Locator::new(text);
    let deserializer = toml::de::Deserializer::parse(text).map_err(|e| {
        let at = locator.position(e.span().map_or(0, |s| s.start));
        one(file, Some(at), None, e.message())
    })?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        let keys: Vec<&str> = field.split('.').collect();
        let at = match inner.span() {
            Some(span) => locator.position(span.start),
            None => locator.find(&keys),
        };
        let field = (field != ".").then_some(field);
        one(file, Some(at), field, inner.message())
    })
}

fn one(file: &str, at: Option<locate::Position>, field: Option<String>, message: &str) -> Problems {
    Problems(vec![Problem {
        file: file.to_owned(),
        line: at.map(|p| p.line),
        column: at.map(|p| p.column),
        field,
        message: message.to_owned(),
    }])
}

/// Problems of the suite file, each located by its field's keys.
struct Found<'a> {
    file: &'a str,
    locator: Locator<'a>,
    problems: Vec<Problem>,
}

impl Found<'_> {
    fn add(&mut self, keys: &[&str], message: impl Into<String>) {
        let at = self.locator.find(keys);
        self.problems.push(Problem {
            file: self.file.to_owned(),
            line: Some(at.line),
            column: Some(at.column),
            field: Some(keys.join(".")),
            message: message.into(),
        });
    }
}

fn build(
    raw: RawSuite,
    (file, text): (&str, &str),
    (dataset_file, dataset_text): (&str, &str),
) -> Result<Suite, Problems> {
    let mut found = Found {
        file,
        locator: Locator::new(text),
        problems: Vec::new(),
    };
    if let Err(e) = names::check(&raw.name) {
        found.add(&["name"], e);
    }
    let task = task(&raw, &mut found);
    let judge = raw.judge.map(|j| j.route);
    if judge.as_deref().is_some_and(|r| r.trim().is_empty()) {
        found.add(&["judge", "route"], "must name a route");
    }
    let run = run_settings(&raw.run, &mut found);
    let thresholds = thresholds(&raw.thresholds, &mut found);
    let has_judge = judge.is_some();
    let mut production = Vec::with_capacity(raw.production.asserts.len());
    for assert in raw.production.asserts {
        match assert.compile(None, has_judge) {
            Ok(assertion) => production.push(assertion),
            Err(faults) => {
                for (field, message) in faults {
                    found.add(&["production", "assert", field], message);
                }
            }
        }
    }
    let cases = match &task {
        Some(task) => dataset::parse(dataset_file, dataset_text, task, judge.is_some()),
        None => Ok(Vec::new()),
    };
    let cases = match cases {
        Ok(cases) => {
            tags_exist(&thresholds, &cases, &mut found);
            cases
        }
        Err(Problems(more)) => {
            found.problems.extend(more);
            Vec::new()
        }
    };
    let (Some(task), true) = (task, found.problems.is_empty()) else {
        return Err(Problems(found.problems));
    };
    let mut digest = Sha256::new();
    digest.update(text.as_bytes());
    digest.update([0]);
    digest.update(dataset_text.as_bytes());
    Ok(Suite {
        name: raw.name,
        description: raw.description,
        owner: raw.owner.filter(|o| !o.trim().is_empty()),
        runbook: raw.runbook.filter(|r| !r.trim().is_empty()),
        task,
        judge,
        run,
        thresholds,
        cases,
        production,
        digest: digest
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    })
}

/// A pass rate for a tag no case carries would never be checked: a typo, refused.
fn tags_exist(thresholds: &Thresholds, cases: &[Case], found: &mut Found<'_>) {
    for tag in thresholds.pass_rate.keys() {
        if tag != ALL && !cases.iter().any(|c| c.tags.contains(tag)) {
            let message = format!("no case is tagged {tag:?} (`{ALL}` means every case)");
            found.add(&["thresholds", "pass_rate", tag], message);
        }
    }
}

fn task(raw: &RawSuite, found: &mut Found<'_>) -> Option<TaskType> {
    let t = &raw.task;
    let blank = |name: &Option<String>| name.as_deref().is_some_and(|n| n.trim().is_empty());
    if blank(&t.route) || blank(&t.workflow) {
        found.add(&["task"], "a route or workflow name must not be empty");
        return None;
    }
    match (&t.route, &t.workflow) {
        (Some(route), None) => {
            if t.version.is_some() {
                found.add(&["task", "version"], "only a workflow has a version");
            }
            Some(TaskType::Route {
                route: route.clone(),
            })
        }
        (None, Some(workflow)) => {
            if t.version == Some(0) {
                found.add(&["task", "version"], "must be at least 1");
            }
            Some(TaskType::Workflow {
                workflow: workflow.clone(),
                version: t.version,
            })
        }
        (Some(_), Some(_)) | (None, None) => {
            found.add(&["task"], "set exactly one of `route` and `workflow`");
            None
        }
    }
}

fn run_settings(raw: &RawRun, found: &mut Found<'_>) -> RunSettings {
    let mut run = RunSettings::default();
    match raw.concurrency {
        Some(n @ 1..=1024) => run.concurrency = n as usize,
        Some(_) => found.add(&["run", "concurrency"], "must be 1..=1024"),
        None => {}
    }
    run.seed = raw.seed.unwrap_or(0);
    match raw.sample {
        Some(0) => found.add(&["run", "sample"], "must be at least 1"),
        Some(n) => run.sample = Some(n as usize),
        None => {}
    }
    if let Some(text) = &raw.timeout {
        match duration::parse(text) {
            Ok(d) => run.timeout = d,
            Err(e) => found.add(&["run", "timeout"], e),
        }
    }
    run
}

fn thresholds(raw: &RawThresholds, found: &mut Found<'_>) -> Thresholds {
    let mut t = Thresholds::default();
    if let Some(score) = raw.case_score {
        if score > 0.0 && score <= 1.0 {
            t.case_score = score;
        } else {
            found.add(&["thresholds", "case_score"], "must be in (0, 1]");
        }
    }
    for (tag, rate) in &raw.pass_rate {
        if let Err(e) = names::check(tag) {
            found.add(&["thresholds", "pass_rate", tag], e);
        } else if !(0.0..=1.0).contains(rate) {
            found.add(&["thresholds", "pass_rate", tag], "must be in [0, 1]");
        } else {
            t.pass_rate.insert(tag.clone(), *rate);
        }
    }
    match raw.cost_per_case {
        Some(usd) if !(usd.is_finite() && usd >= 0.0) => {
            found.add(&["thresholds", "cost_per_case"], "must be at least 0");
        }
        usd => t.cost_per_case = usd,
    }
    if let Some(text) = &raw.p95_latency {
        match duration::parse(text) {
            Ok(d) => t.p95_latency_ms = Some(duration::millis(d)),
            Err(e) => found.add(&["thresholds", "p95_latency"], e),
        }
    }
    t
}

#[cfg(test)]
mod tests;
