//! Workflow definitions: the format users write (JSON or TOML), parsed and checked once.
//!
//! The decision that shapes this module: a definition is validated completely before
//! anything is stored, and every problem is reported with the path of the field that
//! causes it (`steps[2].prompt: template names unknown step "fetchh"`), so that a bad
//! workflow never reaches the store (invariant 6). What comes out, [`Workflow`], is
//! resolved: dependencies are indices, templates are known to parse and to name only
//! steps that finish before them, durations are `Duration`s, the retry policy is a
//! policy-crate [`Backoff`].
//!
//! ```json
//! {"name": "research", "version": 1,
//!  "input_schema": {"type": "object", "required": ["topic"]},
//!  "steps": [
//!    {"name": "fetch", "kind": "http", "method": "GET", "url": "https://example.com/?q={{ input.topic }}"},
//!    {"name": "draft", "kind": "llm", "route": "smart", "prompt": "Summarise: {{ steps.fetch.output }}"},
//!    {"name": "review", "kind": "human", "prompt": "Publish this?", "payload": "{{ steps.draft.output }}"},
//!    {"name": "publish", "kind": "worker", "queue": "publisher",
//!     "compensate": {"kind": "http", "method": "DELETE", "url": "https://example.com/posts/{{ task.id }}"}}]}
//! ```

mod check;
mod graph;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use holdfast_policy::backoff::{self, Backoff, Jitter};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{EngineError, Problem};
use check::{ParsedStep, check_name, check_template, parse_step, serde_problem, templates_of};
use graph::{ancestors, find_cycle};

/// The longest step or workflow name.
pub const MAX_STEP_NAME: usize = 64;
/// The most steps in one workflow.
pub const MAX_STEPS: usize = 200;

/// A checked workflow definition.
#[derive(Debug, Clone)]
pub struct Workflow {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: u32,
    /// What it is for.
    pub description: Option<String>,
    /// The JSON schema every task input must satisfy.
    pub input_schema: Option<Value>,
    /// The named lock a task holds while it runs (a template over the input).
    pub lock: Option<String>,
    /// The steps, in the order written.
    pub steps: Vec<StepDef>,
    /// The step whose output is the task's output (index); the last one by default.
    pub output_step: usize,
    /// The definition as written (stored verbatim).
    pub source: Value,
}

impl Workflow {
    /// The step named `name`.
    pub fn step(&self, name: &str) -> Option<(usize, &StepDef)> {
        self.steps.iter().enumerate().find(|(_, s)| s.name == name)
    }
}

/// One checked step.
#[derive(Debug, Clone)]
pub struct StepDef {
    /// Its name: unique in the workflow, `[A-Za-z_][A-Za-z0-9_]*`.
    pub name: String,
    /// What it does.
    pub action: Action,
    /// The steps (indices) that must be committed before it runs.
    pub depends_on: Vec<usize>,
    /// How failed attempts are retried.
    pub retry: Backoff,
    /// How long one attempt may take (for `human`: until the escalation times out).
    pub timeout: Duration,
    /// What happens once retries are exhausted.
    pub on_exhausted: OnExhausted,
    /// What undoes it if the task fails after it succeeded.
    pub compensate: Option<Compensation>,
}

/// A compensation: an action (never a human or a sleep) with its own retry policy.
#[derive(Debug, Clone)]
pub struct Compensation {
    /// What to run.
    pub action: Action,
    /// How failed attempts are retried.
    pub retry: Backoff,
    /// How long one attempt may take.
    pub timeout: Duration,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A model call through the gateway's pipeline.
    Llm(LlmAction),
    /// A tool call over HTTP.
    Http(HttpAction),
    /// A job for the user's own workers.
    Worker(WorkerAction),
    /// A person decides (approve, edit, reject).
    Human(HumanAction),
    /// A durable timer.
    Sleep(SleepAction),
}

impl Action {
    /// The kind's name as written.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Llm(_) => "llm",
            Action::Http(_) => "http",
            Action::Worker(_) => "worker",
            Action::Human(_) => "human",
            Action::Sleep(_) => "sleep",
        }
    }
}

/// `kind = "llm"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmAction {
    /// The route alias (a model name clients would send).
    pub route: String,
    /// The user message, a template.
    pub prompt: String,
    /// The system prompt, a template.
    #[serde(default)]
    pub system: Option<String>,
    /// The most tokens to generate.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// A JSON schema: the answer must be JSON satisfying it, and becomes the output as
    /// JSON; without it the output is the answer's text.
    #[serde(default)]
    pub output_schema: Option<Value>,
    /// Few-shot examples for this step's call, as a route's: `{ library = "triage", k =
    /// 4, mode = "similar" }`. It replaces the route's own `few_shot` for this step, so
    /// steps sharing a route can learn from their own corrections. Default: the route's.
    #[serde(default)]
    pub few_shot: Option<FewShot>,
}

/// An `llm` step's `few_shot`: which library, how many examples, chosen how.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FewShot {
    /// The library's name: 1..=200 bytes of letters, digits and `_ . : / @ -`.
    pub library: String,
    /// How many examples the call gets at most, 1..=32. Default 4.
    #[serde(default = "default_k")]
    pub k: u32,
    /// `similar` (the examples whose inputs are nearest the prompt) or `fixed` (the
    /// library's oldest active examples). Default `similar`.
    #[serde(default)]
    pub mode: FewShotMode,
}

fn default_k() -> u32 {
    4
}

/// How a step's examples are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FewShotMode {
    /// The most similar to the call's prompt.
    #[default]
    Similar,
    /// The same for every call.
    Fixed,
}

/// `kind = "http"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpAction {
    /// GET, POST, PUT, PATCH or DELETE; POST by default.
    #[serde(default = "default_method")]
    pub method: String,
    /// The URL, a template.
    pub url: String,
    /// Headers; values are templates.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The JSON body; every string in it is a template.
    #[serde(default)]
    pub body: Option<Value>,
}

fn default_method() -> String {
    "POST".to_string()
}

/// `kind = "worker"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerAction {
    /// The queue the user's workers claim from.
    pub queue: String,
    /// What the worker gets; every string in it is a template.
    #[serde(default)]
    pub payload: Option<Value>,
}

/// `kind = "human"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HumanAction {
    /// What the person is asked, a template.
    pub prompt: String,
    /// What the person approves or edits; every string in it is a template. Approving
    /// makes it the step's output.
    #[serde(default)]
    pub payload: Option<Value>,
    /// What happens when nobody answered within the step's `timeout`.
    #[serde(default)]
    pub on_timeout: OnTimeout,
}

/// `kind = "sleep"`.
#[derive(Debug, Clone, PartialEq)]
pub struct SleepAction {
    /// How long.
    pub duration: Duration,
}

/// What a step does when its retries are exhausted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnExhausted {
    /// The task fails (and compensates).
    #[default]
    Fail,
    /// A person decides: approve retries the step, edit supplies its output, reject
    /// fails the task.
    Escalate,
    /// The step is skipped (its output is null) and the task goes on.
    Skip,
}

/// What an unanswered human step does when its timeout passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    /// It keeps waiting (the default: a person must answer).
    #[default]
    Wait,
    /// It is approved as proposed.
    Approve,
    /// It is rejected: the task fails and compensates.
    Reject,
    /// The step is skipped.
    Skip,
}

/// The common fields of a step, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommonSpec {
    name: String,
    kind: String,
    #[serde(default)]
    depends_on: Option<Vec<String>>,
    #[serde(default)]
    retry: Option<RetrySpec>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    on_exhausted: OnExhausted,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetrySpec {
    #[serde(default)]
    max_attempts: Option<u32>,
    #[serde(default)]
    base: Option<String>,
    #[serde(default)]
    cap: Option<String>,
    #[serde(default)]
    jitter: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkflowSpec {
    name: String,
    #[serde(default = "one")]
    version: u32,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    input_schema: Option<Value>,
    #[serde(default)]
    lock: Option<String>,
    #[serde(default)]
    output: Option<String>,
    steps: Vec<Map<String, Value>>,
}

fn one() -> u32 {
    1
}

/// The step fields common to every kind; the rest belong to the kind.
const COMMON: [&str; 7] = [
    "name",
    "kind",
    "depends_on",
    "retry",
    "timeout",
    "on_exhausted",
    "compensate",
];

/// The default attempt timeout of a step, and of a compensation.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The default retry policy of a step: 3 attempts, 1 s base, 60 s cap, full jitter.
pub fn default_retry() -> backoff::Config {
    backoff::Config {
        base: Duration::from_secs(1),
        cap: Duration::from_secs(60),
        max_attempts: 3,
        jitter: Jitter::Full,
    }
}

/// Parses a definition written as TOML.
pub fn parse_toml(text: &str) -> Result<Workflow, EngineError> {
    let value: toml::Value = toml::from_str(text).map_err(|e| {
        EngineError::invalid(vec![Problem::new(
            "",
            format!("not valid TOML: {}", e.message()),
        )])
    })?;
    let json = serde_json::to_value(value).map_err(|e| {
        EngineError::invalid(vec![Problem::new("", format!("not representable: {e}"))])
    })?;
    parse(json)
}

/// Checks a definition written as JSON and resolves it. Reports every problem found.
pub fn parse(source: Value) -> Result<Workflow, EngineError> {
    let spec: WorkflowSpec = serde_path_to_error::deserialize(&source)
        .map_err(|e| EngineError::invalid(vec![serde_problem("", &e)]))?;
    let mut problems = Vec::new();
    check_name("name", &spec.name, &mut problems);
    if spec.version == 0 {
        problems.push(Problem::new("version", "must be ≥ 1"));
    }
    if spec.steps.is_empty() {
        problems.push(Problem::new("steps", "a workflow needs at least one step"));
    }
    if spec.steps.len() > MAX_STEPS {
        problems.push(Problem::new(
            "steps",
            format!("{} steps; at most {MAX_STEPS}", spec.steps.len()),
        ));
    }
    if let Some(schema) = &spec.input_schema
        && let Err(e) = jsonschema::validator_for(schema)
    {
        problems.push(Problem::new(
            "input_schema",
            format!("not a valid JSON schema: {e}"),
        ));
    }

    let mut parsed = Vec::with_capacity(spec.steps.len());
    for (i, raw) in spec.steps.iter().enumerate() {
        parsed.push(parse_step(&format!("steps[{i}]"), raw, &mut problems));
    }
    let names: HashMap<String, usize> = parsed
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.as_ref().map(|p| (p.name.clone(), i)))
        .collect();
    let mut seen = HashSet::new();
    for (i, p) in parsed.iter().enumerate() {
        if let Some(p) = p
            && !seen.insert(p.name.as_str())
        {
            problems.push(Problem::new(
                format!("steps[{i}].name"),
                format!("{:?} is used by an earlier step", p.name),
            ));
        }
    }
    if !problems.is_empty() {
        return Err(EngineError::invalid(problems));
    }
    let parsed: Vec<ParsedStep> = parsed.into_iter().flatten().collect();

    // Steps run in order unless they say what they wait for.
    let mut deps = Vec::with_capacity(parsed.len());
    for (i, step) in parsed.iter().enumerate() {
        match &step.depends_on {
            None => deps.push(if i == 0 { vec![] } else { vec![i - 1] }),
            Some(list) => {
                let mut resolved = Vec::new();
                for (j, dep) in list.iter().enumerate() {
                    match names.get(dep.as_str()) {
                        Some(&d) if d == i => problems.push(Problem::new(
                            format!("steps[{i}].depends_on[{j}]"),
                            "a step cannot depend on itself",
                        )),
                        Some(&d) => resolved.push(d),
                        None => problems.push(Problem::new(
                            format!("steps[{i}].depends_on[{j}]"),
                            format!("unknown step {dep:?}"),
                        )),
                    }
                }
                deps.push(resolved);
            }
        }
    }
    if problems.is_empty()
        && let Some(cycle) = find_cycle(&deps)
    {
        let path: Vec<&str> = cycle.iter().map(|&i| parsed[i].name.as_str()).collect();
        problems.push(Problem::new(
            format!("steps[{}].depends_on", cycle[0]),
            format!("depends_on forms a cycle: {}", path.join(" → ")),
        ));
    }
    if !problems.is_empty() {
        return Err(EngineError::invalid(problems));
    }

    // Templates may name only steps that are committed before theirs.
    let ancestors = ancestors(&deps);
    let all: HashSet<&str> = names.keys().map(String::as_str).collect();
    for (i, step) in parsed.iter().enumerate() {
        let before: HashSet<&str> = ancestors[i]
            .iter()
            .map(|&a| parsed[a].name.as_str())
            .collect();
        for (field, text) in step.templates() {
            check_template(
                &format!("steps[{i}].{field}"),
                &text,
                &all,
                Some(&before),
                &mut problems,
            );
        }
        if let Some(c) = &step.compensate {
            for (field, text) in templates_of(&c.action) {
                // A compensation runs after its step, so it may read its own output.
                let mut mine = before.clone();
                mine.insert(step.name.as_str());
                check_template(
                    &format!("steps[{i}].compensate.{field}"),
                    &text,
                    &all,
                    Some(&mine),
                    &mut problems,
                );
            }
        }
    }
    if let Some(lock) = &spec.lock {
        check_template("lock", lock, &all, Some(&HashSet::new()), &mut problems);
    }
    let output_step = match &spec.output {
        None => parsed.len().saturating_sub(1),
        Some(name) => match names.get(name.as_str()) {
            Some(&i) => i,
            None => {
                problems.push(Problem::new("output", format!("unknown step {name:?}")));
                0
            }
        },
    };
    if !problems.is_empty() {
        return Err(EngineError::invalid(problems));
    }

    let steps = parsed
        .into_iter()
        .zip(deps)
        .map(|(p, depends_on)| StepDef {
            name: p.name,
            action: p.action,
            depends_on,
            retry: p.retry,
            timeout: p.timeout,
            on_exhausted: p.on_exhausted,
            compensate: p.compensate,
        })
        .collect();
    Ok(Workflow {
        name: spec.name,
        version: spec.version,
        description: spec.description,
        input_schema: spec.input_schema,
        lock: spec.lock,
        steps,
        output_step,
        source,
    })
}
