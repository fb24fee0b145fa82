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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use holdfast_policy::backoff::{self, Backoff, Jitter};
use holdfast_policy::setting::parse_duration;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{EngineError, Problem};
use crate::template;

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

struct ParsedStep {
    name: String,
    action: Action,
    depends_on: Option<Vec<String>>,
    retry: Backoff,
    timeout: Duration,
    on_exhausted: OnExhausted,
    compensate: Option<Compensation>,
}

impl ParsedStep {
    fn templates(&self) -> Vec<(String, String)> {
        templates_of(&self.action)
    }
}

/// Every template of an action, with its field path.
fn templates_of(action: &Action) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let json = |prefix: &str, value: &Option<Value>, out: &mut Vec<(String, String)>| {
        if let Some(v) = value {
            template::strings_in(v, prefix, &mut |path, s| out.push((path, s.to_string())));
        }
    };
    match action {
        Action::Llm(a) => {
            out.push(("prompt".into(), a.prompt.clone()));
            if let Some(s) = &a.system {
                out.push(("system".into(), s.clone()));
            }
        }
        Action::Http(a) => {
            out.push(("url".into(), a.url.clone()));
            for (k, v) in &a.headers {
                out.push((format!("headers.{k}"), v.clone()));
            }
            json("body", &a.body, &mut out);
        }
        Action::Worker(a) => json("payload", &a.payload, &mut out),
        Action::Human(a) => {
            out.push(("prompt".into(), a.prompt.clone()));
            json("payload", &a.payload, &mut out);
        }
        Action::Sleep(_) => {}
    }
    out
}

fn check_template(
    path: &str,
    text: &str,
    all: &HashSet<&str>,
    before: Option<&HashSet<&str>>,
    problems: &mut Vec<Problem>,
) {
    let refs = match template::references(text) {
        Ok(refs) => refs,
        Err(e) => {
            problems.push(Problem::new(path, e));
            return;
        }
    };
    for root in &refs.roots {
        if !["input", "steps", "task"].contains(&root.as_str()) {
            problems.push(Problem::new(
                path,
                format!("template names unknown variable {root:?} (known: input, steps, task)"),
            ));
        }
    }
    for step in &refs.steps {
        if !all.contains(step.as_str()) {
            problems.push(Problem::new(
                path,
                format!("template names unknown step {step:?}"),
            ));
        } else if before.is_some_and(|b| !b.contains(step.as_str())) {
            problems.push(Problem::new(
                path,
                format!(
                    "template names step {step:?}, which does not finish before this one (add it to depends_on)"
                ),
            ));
        }
    }
}

fn parse_step(
    path: &str,
    raw: &Map<String, Value>,
    problems: &mut Vec<Problem>,
) -> Option<ParsedStep> {
    let (common, rest): (Map<String, Value>, Map<String, Value>) = raw
        .iter()
        .filter(|(k, _)| k.as_str() != "compensate")
        .map(|(k, v)| (k.clone(), v.clone()))
        .partition(|(k, _)| COMMON.contains(&k.as_str()));
    let compensate = raw.get("compensate");
    let common: CommonSpec = match serde_path_to_error::deserialize(Value::Object(common)) {
        Ok(c) => c,
        Err(e) => {
            problems.push(serde_problem(path, &e));
            return None;
        }
    };
    let before = problems.len();
    check_step_name(&format!("{path}.name"), &common.name, problems);
    let action = parse_action(path, &common.kind, rest, problems);
    let retry = parse_retry(&format!("{path}.retry"), common.retry.as_ref(), problems);
    let timeout = parse_timeout(
        &format!("{path}.timeout"),
        common.timeout.as_deref(),
        problems,
    );
    let compensate =
        compensate.and_then(|c| parse_compensation(&format!("{path}.compensate"), c, problems));
    if matches!(action, Some(Action::Human(_))) && common.on_exhausted == OnExhausted::Escalate {
        problems.push(Problem::new(
            format!("{path}.on_exhausted"),
            "a human step cannot escalate to a human",
        ));
    }
    if problems.len() > before {
        return None;
    }
    Some(ParsedStep {
        name: common.name,
        action: action?,
        depends_on: common.depends_on,
        retry: retry?,
        timeout: timeout?,
        on_exhausted: common.on_exhausted,
        compensate,
    })
}

fn parse_compensation(
    path: &str,
    raw: &Value,
    problems: &mut Vec<Problem>,
) -> Option<Compensation> {
    let Value::Object(map) = raw else {
        problems.push(Problem::new(path, "must be a table: {kind = \"http\", …}"));
        return None;
    };
    let mut rest = map.clone();
    let kind = match rest.remove("kind") {
        Some(Value::String(k)) => k,
        _ => {
            problems.push(Problem::new(format!("{path}.kind"), "missing: llm or http"));
            return None;
        }
    };
    let retry = match rest.remove("retry") {
        None => parse_retry(&format!("{path}.retry"), None, problems),
        Some(v) => match serde_path_to_error::deserialize::<_, RetrySpec>(v) {
            Ok(spec) => parse_retry(&format!("{path}.retry"), Some(&spec), problems),
            Err(e) => {
                problems.push(serde_problem(&format!("{path}.retry"), &e));
                None
            }
        },
    };
    let timeout = match rest.remove("timeout") {
        None => Some(DEFAULT_TIMEOUT),
        Some(Value::String(t)) => parse_timeout(&format!("{path}.timeout"), Some(&t), problems),
        Some(_) => {
            problems.push(Problem::new(
                format!("{path}.timeout"),
                "must be a duration such as \"30s\"",
            ));
            None
        }
    };
    if !matches!(kind.as_str(), "llm" | "http") {
        problems.push(Problem::new(
            format!("{path}.kind"),
            format!("{kind:?} cannot compensate; use llm or http"),
        ));
        return None;
    }
    let action = parse_action(path, &kind, rest, problems)?;
    Some(Compensation {
        action,
        retry: retry?,
        timeout: timeout?,
    })
}

fn parse_action(
    path: &str,
    kind: &str,
    rest: Map<String, Value>,
    problems: &mut Vec<Problem>,
) -> Option<Action> {
    fn de<T: serde::de::DeserializeOwned>(
        path: &str,
        rest: Map<String, Value>,
        problems: &mut Vec<Problem>,
    ) -> Option<T> {
        serde_path_to_error::deserialize(Value::Object(rest))
            .map_err(|e| problems.push(serde_problem(path, &e)))
            .ok()
    }
    let action = match kind {
        "llm" => Action::Llm(de(path, rest, problems)?),
        "http" => Action::Http(de(path, rest, problems)?),
        "worker" => Action::Worker(de(path, rest, problems)?),
        "human" => Action::Human(de(path, rest, problems)?),
        "sleep" => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Spec {
                duration: String,
            }
            let spec: Spec = de(path, rest, problems)?;
            match parse_duration("duration", &spec.duration) {
                Ok(duration) => Action::Sleep(SleepAction { duration }),
                Err(e) => {
                    problems.push(Problem::new(format!("{path}.duration"), e.problem));
                    return None;
                }
            }
        }
        other => {
            problems.push(Problem::new(
                format!("{path}.kind"),
                format!("unknown step kind {other:?} (known: llm, http, worker, human, sleep)"),
            ));
            return None;
        }
    };
    check_action(path, &action, problems);
    Some(action)
}

fn check_action(path: &str, action: &Action, problems: &mut Vec<Problem>) {
    match action {
        Action::Llm(a) => {
            if a.route.trim().is_empty() {
                problems.push(Problem::new(format!("{path}.route"), "must name a route"));
            }
            if a.max_tokens == Some(0) {
                problems.push(Problem::new(format!("{path}.max_tokens"), "must be ≥ 1"));
            }
            if let Some(t) = a.temperature
                && !(0.0..=2.0).contains(&t)
            {
                problems.push(Problem::new(
                    format!("{path}.temperature"),
                    "must be within 0..=2",
                ));
            }
            if let Some(schema) = &a.output_schema
                && let Err(e) = jsonschema::validator_for(schema)
            {
                problems.push(Problem::new(
                    format!("{path}.output_schema"),
                    format!("not a valid JSON schema: {e}"),
                ));
            }
        }
        Action::Http(a) => {
            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&a.method.as_str()) {
                problems.push(Problem::new(
                    format!("{path}.method"),
                    format!("{:?} is not one of GET, POST, PUT, PATCH, DELETE", a.method),
                ));
            }
            let literal = !a.url.contains("{{") && !a.url.contains("{%");
            if literal && reqwest::Url::parse(&a.url).is_err() {
                problems.push(Problem::new(format!("{path}.url"), "not a valid URL"));
            }
            if !a.url.starts_with("http://") && !a.url.starts_with("https://") {
                problems.push(Problem::new(
                    format!("{path}.url"),
                    "must start with http:// or https://",
                ));
            }
            for name in a.headers.keys() {
                if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    problems.push(Problem::new(
                        format!("{path}.headers.{name}"),
                        "not a valid header name",
                    ));
                }
            }
        }
        Action::Worker(a) => check_name(&format!("{path}.queue"), &a.queue, problems),
        Action::Human(_) | Action::Sleep(_) => {}
    }
}

fn parse_retry(
    path: &str,
    spec: Option<&RetrySpec>,
    problems: &mut Vec<Problem>,
) -> Option<Backoff> {
    let mut config = default_retry();
    let before = problems.len();
    if let Some(spec) = spec {
        if let Some(n) = spec.max_attempts {
            config.max_attempts = n;
        }
        let mut duration = |field: &str, text: &Option<String>, out: &mut Duration| {
            if let Some(t) = text {
                match parse_duration("retry", t) {
                    Ok(d) => *out = d,
                    Err(e) => problems.push(Problem::new(format!("{path}.{field}"), e.problem)),
                }
            }
        };
        duration("base", &spec.base, &mut config.base);
        duration("cap", &spec.cap, &mut config.cap);
        match spec.jitter.as_deref() {
            None | Some("full") => {}
            Some("none") => config.jitter = Jitter::None,
            Some("decorrelated") => config.jitter = Jitter::Decorrelated,
            Some(other) => problems.push(Problem::new(
                format!("{path}.jitter"),
                format!("{other:?} is not one of full, decorrelated, none"),
            )),
        }
    }
    if problems.len() > before {
        return None;
    }
    Backoff::new(config)
        .map_err(|e| {
            let field = e.field.strip_prefix("retry.").unwrap_or(e.field);
            problems.push(Problem::new(format!("{path}.{field}"), e.problem));
        })
        .ok()
}

fn parse_timeout(path: &str, text: Option<&str>, problems: &mut Vec<Problem>) -> Option<Duration> {
    let Some(text) = text else {
        return Some(DEFAULT_TIMEOUT);
    };
    match parse_duration("timeout", text) {
        Ok(d) if d.is_zero() => {
            problems.push(Problem::new(path, "must be > 0"));
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            problems.push(Problem::new(path, e.problem));
            None
        }
    }
}

/// A workflow name or a queue: what the store accepts as a name, without `/` so that
/// it is one segment of a URL path (`/v1/workflows/{name}`).
fn check_name(path: &str, name: &str, problems: &mut Vec<Problem>) {
    let ok = |c: char| c.is_ascii_alphanumeric() || "_.:@-".contains(c);
    if name.is_empty() || name.len() > 200 || !name.chars().all(ok) {
        problems.push(Problem::new(
            path,
            format!("{name:?} must be 1..=200 of letters, digits and _ . : @ -"),
        ));
    }
}

/// A step name: an identifier, so templates can say `steps.name.output`.
fn check_step_name(path: &str, name: &str, problems: &mut Vec<Problem>) {
    let mut chars = name.chars();
    let ok = name.len() <= MAX_STEP_NAME
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        problems.push(Problem::new(
            path,
            format!(
                "{name:?} must be an identifier ([A-Za-z_][A-Za-z0-9_]*, at most {MAX_STEP_NAME})"
            ),
        ));
    }
}

fn serde_problem(prefix: &str, e: &serde_path_to_error::Error<serde_json::Error>) -> Problem {
    let inner = e.path().to_string();
    let path = match (prefix.is_empty(), inner == ".") {
        (_, true) => prefix.to_string(),
        (true, false) => inner,
        (false, false) => format!("{prefix}.{inner}"),
    };
    Problem::new(path, e.inner().to_string())
}

/// A cycle in the dependency graph, as step indices, if there is one.
fn find_cycle(deps: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        i: usize,
        deps: &[Vec<usize>],
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        marks[i] = Mark::Open;
        stack.push(i);
        for &d in &deps[i] {
            match marks[d] {
                Mark::Open => {
                    let start = stack.iter().position(|&s| s == d).unwrap_or(0);
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(d);
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(d, deps, marks, stack) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks[i] = Mark::Done;
        None
    }
    let mut marks = vec![Mark::New; deps.len()];
    for i in 0..deps.len() {
        if marks[i] == Mark::New
            && let Some(c) = visit(i, deps, &mut marks, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

/// For each step, every step that must be committed before it (transitively).
fn ancestors(deps: &[Vec<usize>]) -> Vec<HashSet<usize>> {
    let mut memo: Vec<Option<HashSet<usize>>> = vec![None; deps.len()];
    fn of(i: usize, deps: &[Vec<usize>], memo: &mut Vec<Option<HashSet<usize>>>) -> HashSet<usize> {
        if let Some(s) = &memo[i] {
            return s.clone();
        }
        let mut set = HashSet::new();
        for &d in &deps[i] {
            set.insert(d);
            set.extend(of(d, deps, memo));
        }
        memo[i] = Some(set.clone());
        set
    }
    (0..deps.len()).map(|i| of(i, deps, &mut memo)).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn problems(def: Value) -> Vec<String> {
        match parse(def) {
            Ok(_) => vec![],
            Err(EngineError::Invalid { problems }) => {
                problems.iter().map(ToString::to_string).collect()
            }
            Err(other) => vec![format!("unexpected: {other}")],
        }
    }

    fn wf(steps: Value) -> Value {
        json!({"name": "w", "steps": steps})
    }

    #[test]
    fn a_sequential_workflow_resolves_its_dependencies_in_order() {
        let w = parse(wf(json!([
            {"name": "a", "kind": "sleep", "duration": "1ms"},
            {"name": "b", "kind": "http", "url": "http://x/{{ steps.a.output }}"},
            {"name": "c", "kind": "llm", "route": "r", "prompt": "{{ input.q }} {{ steps.b.output }}"},
        ])))
        .unwrap();
        assert_eq!(w.version, 1);
        let deps: Vec<_> = w.steps.iter().map(|s| s.depends_on.clone()).collect();
        assert_eq!(deps, vec![vec![], vec![0], vec![1]]);
        assert_eq!(w.output_step, 2);
        assert_eq!(
            w.steps[0].action,
            Action::Sleep(SleepAction {
                duration: Duration::from_millis(1)
            })
        );
    }

    #[test]
    fn an_unknown_step_kind_names_its_field() {
        let p = problems(wf(json!([{"name": "a", "kind": "teleport"}])));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("steps[0].kind: unknown step kind \"teleport\""),
            "{p:?}"
        );
    }

    #[test]
    fn a_depends_on_cycle_is_named() {
        let p = problems(wf(json!([
            {"name": "a", "kind": "sleep", "duration": "1s", "depends_on": ["c"]},
            {"name": "b", "kind": "sleep", "duration": "1s", "depends_on": ["a"]},
            {"name": "c", "kind": "sleep", "duration": "1s", "depends_on": ["b"]},
        ])));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("depends_on forms a cycle: a → c → b → a"),
            "{p:?}"
        );
    }

    #[test]
    fn a_template_naming_an_unknown_or_later_step_is_refused() {
        let p = problems(wf(json!([
            {"name": "a", "kind": "llm", "route": "r", "prompt": "{{ steps.nope.output }}"},
            {"name": "b", "kind": "llm", "route": "r", "prompt": "{{ steps.c.output }}"},
            {"name": "c", "kind": "sleep", "duration": "1s"},
        ])));
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].starts_with("steps[0].prompt: template names unknown step \"nope\""),
            "{p:?}"
        );
        assert!(
            p[1].starts_with(
                "steps[1].prompt: template names step \"c\", which does not finish before"
            ),
            "{p:?}"
        );
    }

    #[test]
    fn parallel_steps_see_only_their_dependencies() {
        let ok = parse(wf(json!([
            {"name": "a", "kind": "sleep", "duration": "1s"},
            {"name": "b", "kind": "sleep", "duration": "1s", "depends_on": []},
            {"name": "c", "kind": "llm", "route": "r", "prompt": "{{ steps.a.output }}{{ steps.b.output }}", "depends_on": ["a", "b"]},
        ])))
        .unwrap();
        assert_eq!(ok.steps[1].depends_on, Vec::<usize>::new());
        let p = problems(wf(json!([
            {"name": "a", "kind": "sleep", "duration": "1s"},
            {"name": "b", "kind": "llm", "route": "r", "prompt": "{{ steps.a.output }}", "depends_on": []},
        ])));
        assert_eq!(p.len(), 1, "{p:?}");
    }

    #[test]
    fn field_errors_carry_their_path() {
        let p = problems(wf(json!([
            {"name": "a", "kind": "http", "url": "ftp://x", "method": "FETCH", "timeout": "soon",
             "retry": {"max_attempts": 0}},
            {"name": "b-c", "kind": "worker", "queue": "q", "colour": "red"},
            {"name": "d", "kind": "llm", "route": "r", "prompt": "{{ nope }}",
             "compensate": {"kind": "human", "prompt": "x"}},
        ])));
        let joined = p.join("\n");
        for expected in [
            "steps[0].method:",
            "steps[0].url: must start with http",
            "steps[0].timeout:",
            "steps[0].retry.max_attempts:",
            "steps[1].colour: unknown field `colour`",
            "steps[2].compensate.kind: \"human\" cannot compensate",
        ] {
            assert!(
                joined.contains(expected),
                "missing {expected:?} in:\n{joined}"
            );
        }
    }

    #[test]
    fn workflow_level_errors_carry_their_path() {
        let p = problems(
            json!({"name": "w w", "version": 0, "steps": [], "input_schema": {"type": 12}}),
        );
        let joined = p.join("\n");
        for expected in [
            "name:",
            "version: must be ≥ 1",
            "steps: a workflow needs",
            "input_schema: not a valid JSON schema",
        ] {
            assert!(
                joined.contains(expected),
                "missing {expected:?} in:\n{joined}"
            );
        }
        let p = problems(
            json!({"name": "w", "steps": [{"name": "a", "kind": "sleep", "duration": "1s"}], "extra": 1}),
        );
        assert!(p[0].contains("unknown field `extra`"), "{p:?}");
        let p = problems(
            json!({"name": "w", "steps": [{"name": "a", "kind": "sleep", "duration": "1s"}, {"name": "a", "kind": "sleep", "duration": "1s"}]}),
        );
        assert!(
            p[0].starts_with("steps[1].name: \"a\" is used by an earlier step"),
            "{p:?}"
        );
    }

    #[test]
    fn toml_definitions_parse_like_json() {
        let w = parse_toml(
            r#"
            name = "t"
            version = 2
            [[steps]]
            name = "a"
            kind = "http"
            method = "GET"
            url = "http://localhost/{{ input.id }}"
            retry = { max_attempts = 5, base = "100ms", cap = "2s" }
            on_exhausted = "escalate"
            "#,
        )
        .unwrap();
        assert_eq!(w.version, 2);
        assert_eq!(w.steps[0].retry.max_attempts(), 5);
        assert_eq!(w.steps[0].on_exhausted, OnExhausted::Escalate);
        assert!(parse_toml("name = ").is_err());
    }
}
