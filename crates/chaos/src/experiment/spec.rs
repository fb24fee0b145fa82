//! An experiment file as written: TOML in Chaos Toolkit's shape (a steady-state
//! hypothesis of probes with tolerances, a method, rollbacks), parsed and checked.
//!
//! The decision: a probe and an action are each one flat table with a `kind` (or
//! `action`) and the fields that kind needs, rather than one TOML shape per kind.
//! Files stay short and alike, and a missing or misplaced field is reported by this
//! module with the file, the line and the field (`steady_state.probes[2].target`),
//! instead of as a deserializer's guess between variants.

use std::collections::BTreeMap;
use std::path::Path;

use holdfast_mock::Span;
use serde::Deserialize;
use toml::Spanned;

/// An experiment that cannot be run as written.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("cannot read {file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// A syntax, type or value error at a place in the file.
    #[error("{file}:{line}: `{field}`: {message}")]
    At {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// The field's path.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// A parsed, checked experiment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// What it shows, in one line.
    pub title: String,
    /// Why it matters and what it does.
    #[serde(default)]
    pub description: String,
    /// Labels to choose experiments by.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Defaults of the `${name}` placeholders, which `--var name=value` overrides.
    #[serde(default)]
    pub configuration: BTreeMap<String, String>,
    /// The experiment's own traffic.
    pub traffic: Traffic,
    /// How long the hypothesis is checked before the method and after the rollbacks.
    #[serde(default)]
    pub phases: Phases,
    /// The steady state that must hold before, during and after.
    pub steady_state: SteadyState,
    /// The turbulence, in order; its actions together are the `during` phase.
    #[serde(default)]
    pub method: Vec<Spanned<Action>>,
    /// Actions that always run once the method ends or fails: they undo it.
    #[serde(default)]
    pub rollbacks: Vec<Spanned<Action>>,
}

/// Requests the experiment sends through holdfast while it runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    /// The route asked for (the request's `model`); or, instead, `workflow`.
    pub route: Option<String>,
    /// A workflow whose tasks are submitted (`POST /v1/tasks`) instead of chat requests.
    pub workflow: Option<String>,
    /// The input of each submitted task.
    #[serde(default)]
    pub input: toml::Table,
    /// Requests per second, more than 0 and at most 500.
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// `max_tokens` of each request.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// The prompt.
    #[serde(default = "default_prompt")]
    pub prompt: String,
    /// The `x-holdfast-agent` requests carry (per-agent breakers key off it).
    #[serde(default = "default_agent")]
    pub agent: String,
    /// The nodes the traffic is spread over, in turn, as a load balancer would
    /// (default: the server the run is given). Operator calls and task reads go to that
    /// server.
    #[serde(default)]
    pub servers: Vec<String>,
    /// Whether requests are streamed; a streamed request counts as answered only when
    /// its stream ends whole (`[DONE]`, no error event).
    #[serde(default)]
    pub stream: bool,
    /// Headers every request carries, as a client would send them
    /// (`{ "x-holdfast-deadline-ms" = "1000" }`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Each request is sent this many times in a row with one fresh `Idempotency-Key`,
    /// as a client resends a request whose answer it did not see; every send is a
    /// request of the phase. 1..=10; default 1 (sent once, with no key).
    #[serde(default = "default_repeat")]
    pub repeat: u32,
    /// The chat requests' `response_format` (`{ type = "json_object" }`). With it, an
    /// answer counts as answered only when its content is a JSON object; without it,
    /// only when its content is not empty (or it calls a tool).
    pub response_format: Option<toml::Table>,
}

fn default_repeat() -> u32 {
    1
}

fn default_rate() -> f64 {
    10.0
}
fn default_max_tokens() -> u32 {
    8
}
fn default_prompt() -> String {
    "holdfast chaos experiment: reply with one word.".to_owned()
}
fn default_agent() -> String {
    "holdfast-chaos".to_owned()
}

/// Lengths of the phases around the method.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phases {
    /// Steady state first (default 2s).
    #[serde(default = "default_phase")]
    pub before: Span,
    /// After the rollbacks (default 2s).
    #[serde(default = "default_phase")]
    pub after: Span,
    /// With workflow traffic: how long accepted tasks may take to finish once the
    /// traffic stops (default 30s).
    #[serde(default = "default_settle")]
    pub settle: Span,
}

fn default_settle() -> Span {
    Span::from_millis(30_000)
}

impl Default for Phases {
    fn default() -> Self {
        Phases {
            before: default_phase(),
            after: default_phase(),
            settle: default_settle(),
        }
    }
}

fn default_phase() -> Span {
    Span::from_millis(2000)
}

/// The hypothesis.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SteadyState {
    /// Its probes; every one must hold in each phase it names.
    pub probes: Vec<Spanned<Probe>>,
}

/// One measurement with its tolerance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    /// How the verdict names it ("calls to the dead target").
    pub name: String,
    /// What it measures.
    pub kind: ProbeKind,
    /// The lowest value that holds (a share from 0 to 1, a count, USD).
    pub min: Option<f64>,
    /// The highest value that holds (a share, a count, USD; for `latency` a duration).
    pub max: Option<Bound>,
    /// `traffic_share`: the target whose share is measured.
    pub target: Option<String>,
    /// `latency`: the percentile (default 99).
    pub percentile: Option<f64>,
    /// `upstream_calls`: the base URL of the mock provider or fault proxy counted.
    pub url: Option<String>,
    /// `metric`: the metric's name in holdfast's `/metrics`.
    pub metric: Option<String>,
    /// `metric`: labels a series must carry to count (all series summed).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `tasks_completed`: the statuses that count as done (default `["succeeded"]`;
    /// `["succeeded", "waiting"]` also counts a task waiting in the escalation inbox).
    #[serde(default = "default_statuses")]
    pub statuses: Vec<String>,
    /// `upstream_calls` and `metric`: judge the growth per request the experiment sent
    /// in the phase instead of the growth itself ("calls upstream per request ≤ 1.5").
    #[serde(default)]
    pub per_request: bool,
    /// The phases it is checked in (default all three).
    #[serde(default = "all_phases")]
    pub when: Vec<Phase>,
}

fn default_statuses() -> Vec<String> {
    vec!["succeeded".to_owned()]
}

/// A probe's upper bound: a number, or a duration for `latency`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
pub enum Bound {
    /// A share, a count or USD.
    Number(f64),
    /// A latency.
    Duration(Span),
}

/// What a probe measures; each reads the experiment's own traffic or a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    /// The share of the experiment's requests answered 2xx.
    SuccessRate,
    /// A percentile of the experiment's request latencies.
    Latency,
    /// The share of the experiment's answered requests that `target` served.
    TrafficShare,
    /// The mean cost of the experiment's answered requests, from `x-holdfast-cost-usd`.
    CostPerRequest,
    /// Requests a mock provider or fault proxy received in the phase (its admin API).
    UpstreamCalls,
    /// How much a counter of holdfast's `/metrics` grew in the phase.
    Metric,
    /// The share of the tasks accepted in the phase that reached one of the probe's
    /// `statuses` (default: succeeded) by the end.
    TasksCompleted,
    /// The share of the tasks accepted in the phase whose journal commits each step at
    /// most once: a node killed or paused mid-step must not get a step committed twice.
    StepsOnce,
}

impl ProbeKind {
    /// Whether it judges the accepted tasks, and so only once they have settled.
    pub fn on_tasks(self) -> bool {
        matches!(self, ProbeKind::TasksCompleted | ProbeKind::StepsOnce)
    }
}

/// A phase of an experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The steady state before the method.
    Before,
    /// While the method runs.
    During,
    /// After the rollbacks.
    After,
}

impl Phase {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Before => "before",
            Phase::During => "during",
            Phase::After => "after",
        }
    }
}

fn all_phases() -> Vec<Phase> {
    vec![Phase::Before, Phase::During, Phase::After]
}

/// One step of the method or of the rollbacks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// What it does.
    pub action: ActionKind,
    /// `faults`: the base URL of the mock provider or fault proxy.
    pub url: Option<String>,
    /// `faults`: the fault set to put in force (the mock's fault file as a table).
    pub faults: Option<toml::Table>,
    /// `drain` and `restore`: the target.
    pub target: Option<String>,
    /// `wait`: how long; `drain`: how long the drain lasts at most.
    pub duration: Option<Span>,
    /// `exec`: the program and its arguments (kill a node, restart it, pause a database).
    #[serde(default)]
    pub command: Vec<String>,
}

/// The actions an experiment can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Replace a mock provider's or fault proxy's fault set (`POST /admin/faults`).
    Faults,
    /// Take a target out of rotation on holdfast.
    Drain,
    /// Put a drained target back.
    Restore,
    /// Let the traffic run.
    Wait,
    /// Run a command; it must exit 0.
    Exec,
}

impl Experiment {
    /// Reads, fills in `${name}` placeholders (from `vars`, then `[configuration]`) and
    /// checks an experiment file.
    pub fn load(path: &Path, vars: &BTreeMap<String, String>) -> Result<Experiment, SpecError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            file: file.clone(),
            source,
        })?;
        Experiment::parse(&text, &file, vars)
    }

    /// Parses and checks an experiment's text; `file` names it in errors.
    pub fn parse(
        text: &str,
        file: &str,
        vars: &BTreeMap<String, String>,
    ) -> Result<Experiment, SpecError> {
        #[derive(Deserialize)]
        struct Defaults {
            #[serde(default)]
            configuration: BTreeMap<String, String>,
        }
        // Placeholders may sit anywhere, so the defaults are read from the raw text
        // first; a syntax error is reported by the full parse below.
        let defaults = toml::from_str::<Defaults>(text)
            .map(|d| d.configuration)
            .unwrap_or_default();
        let text = substitute(text, file, vars, &defaults)?;
        let deserializer = toml::Deserializer::parse(&text).map_err(|e| at(&text, file, &e))?;
        let experiment: Experiment =
            serde_path_to_error::deserialize(deserializer).map_err(|e| {
                let field = e.path().to_string();
                let inner = e.into_inner();
                let offset = inner.span().map_or(0, |s| s.start);
                SpecError::At {
                    file: file.to_owned(),
                    line: line_of(&text, offset),
                    field,
                    message: inner.message().to_owned(),
                }
            })?;
        experiment.check(&text, file)?;
        Ok(experiment)
    }
}

fn at(text: &str, file: &str, err: &toml::de::Error) -> SpecError {
    SpecError::At {
        file: file.to_owned(),
        line: line_of(text, err.span().map_or(0, |s| s.start)),
        field: String::new(),
        message: err.message().to_owned(),
    }
}

/// The 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Replaces every `${name}` with its value; an unknown name is an error at its line.
fn substitute(
    text: &str,
    file: &str,
    vars: &BTreeMap<String, String>,
    defaults: &BTreeMap<String, String>,
) -> Result<String, SpecError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let offset = text.len() - rest.len() + start;
        let Some(end) = after.find('}') else {
            return Err(SpecError::At {
                file: file.to_owned(),
                line: line_of(text, offset),
                field: String::new(),
                message: "`${` without its closing `}`".to_owned(),
            });
        };
        let name = &after[..end];
        let value = vars
            .get(name)
            .or_else(|| defaults.get(name))
            .ok_or_else(|| SpecError::At {
                file: file.to_owned(),
                line: line_of(text, offset),
                field: format!("${{{name}}}"),
                message: format!(
                    "no value for `{name}`: give it with --var {name}=VALUE or in [configuration]"
                ),
            })?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
