//! The dataset: JSONL, one case per line, each checked whole with its line and field.
//!
//! A line is `{"id", "input", "expected"?, "assert": [...], "tags": [...],
//! "threshold"?}`. The decision: a route case's input is checked as the gateway would
//! check it (the request is built with the route as its `model` and parsed by the llm
//! crate's own reader), so a case the gateway would refuse is refused here, at its
//! line, before any call; a workflow input is the engine's to check at submission.
//! Every case is tagged `labeled` (an ordinary input with a known good answer) or
//! `adversarial` (a hard or hostile one), or both, so pass rates are never blended
//! across the two without saying so.

use std::collections::HashMap;

use holdfast_llm::openai::ChatRequest;
use serde::Deserialize;
use serde_json::Value;

use crate::grader::{Assertion, RawAssert};
use crate::names;
use crate::problem::{Problem, Problems};
use crate::suite::{ALL, TaskType};

/// What a case sends.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseInput {
    /// A chat request in the OpenAI format, without `model`.
    Chat(Value),
    /// A task input.
    Task(Value),
}

/// One case of a dataset.
#[derive(Debug, Clone)]
pub struct Case {
    /// Its id, unique in the dataset.
    pub id: String,
    /// What it sends.
    pub input: CaseInput,
    /// The expected answer, if the case has one: what `equals` and `contains` compare
    /// with when they name no value, and what a judge is shown.
    pub expected: Option<Value>,
    /// Its graders.
    pub asserts: Vec<Assertion>,
    /// Its tags: `labeled` or `adversarial`, and any others.
    pub tags: Vec<String>,
    /// The score at which it passes, when it has its own.
    pub threshold: Option<f64>,
    /// Its line in the dataset.
    pub line: usize,
}

/// A line as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    id: String,
    input: Value,
    #[serde(default)]
    expected: Option<Value>,
    #[serde(rename = "assert")]
    asserts: Vec<RawAssert>,
    tags: Vec<String>,
    #[serde(default)]
    threshold: Option<f64>,
}

/// The tags a case must carry at least one of.
const KINDS: [&str; 2] = ["labeled", "adversarial"];

/// Parses and checks every line of `text` (named `file` in problems) for `task`;
/// `has_judge` says whether `rubric` graders can be graded.
pub(crate) fn parse(
    file: &str,
    text: &str,
    task: &TaskType,
    has_judge: bool,
) -> Result<Vec<Case>, Problems> {
    let mut cases = Vec::new();
    let mut problems = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let raw = match read_line(line) {
            Ok(raw) => raw,
            Err(unread) => {
                problems.push(Problem {
                    file: file.to_owned(),
                    line: Some(number),
                    column: unread.column,
                    field: unread.field,
                    message: unread.message,
                });
                continue;
            }
        };
        let mut problem = |field: Option<String>, message: String| {
            problems.push(Problem {
                file: file.to_owned(),
                line: Some(number),
                column: None,
                field,
                message,
            });
        };
        if let Some(first) = seen.insert(raw.id.clone(), number) {
            problem(
                Some("id".to_owned()),
                format!("{:?} is already the id of line {first}", raw.id),
            );
        }
        match check(raw, number, task, has_judge) {
            Ok(case) => cases.push(case),
            Err(faults) => faults
                .into_iter()
                .for_each(|(field, message)| problem(Some(field), message)),
        }
    }
    if cases.is_empty() && problems.is_empty() {
        problems.push(Problem {
            file: file.to_owned(),
            line: None,
            column: None,
            field: None,
            message: "the dataset has no cases".to_owned(),
        });
    }
    if problems.is_empty() {
        Ok(cases)
    } else {
        Err(Problems(problems))
    }
}

/// Why a line could not be read: its first JSON or type error.
struct Unread {
    field: Option<String>,
    column: Option<usize>,
    message: String,
}

impl Unread {
    /// serde_json's error, its position (always line 1 of the line) as a column.
    fn of(field: Option<String>, e: &serde_json::Error) -> Unread {
        let text = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        Unread {
            field,
            column: (e.line() > 0).then_some(e.column()),
            message: text.strip_suffix(&suffix).unwrap_or(&text).to_owned(),
        }
    }
}

/// A line's fields, or the first JSON or type error with its path.
fn read_line(line: &str) -> Result<RawCase, Unread> {
    let mut de = serde_json::Deserializer::from_str(line);
    let raw: RawCase = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let field = (path != ".").then_some(path);
        Unread::of(field, e.inner())
    })?;
    de.end().map_err(|e| Unread {
        message: format!("one case per line: {}", Unread::of(None, &e).message),
        ..Unread::of(None, &e)
    })?;
    Ok(raw)
}

/// A line's case, or its field problems.
fn check(
    raw: RawCase,
    line: usize,
    task: &TaskType,
    has_judge: bool,
) -> Result<Case, Vec<(String, String)>> {
    let mut faults = Vec::new();
    if let Err(e) = names::check(&raw.id) {
        faults.push(("id".to_owned(), e));
    }
    check_tags(&raw.tags, &mut faults);
    if let Some(t) = raw.threshold.filter(|t| !(*t > 0.0 && *t <= 1.0)) {
        faults.push(("threshold".to_owned(), format!("{t} is not in (0, 1]")));
    }
    let input = match task {
        TaskType::Route { route } => chat_input(route, raw.input)
            .map_err(|e| faults.push(("input".to_owned(), e)))
            .ok(),
        TaskType::Workflow { .. } => Some(CaseInput::Task(raw.input)),
    };
    if raw.asserts.is_empty() {
        faults.push((
            "assert".to_owned(),
            "a case needs at least one grader".to_owned(),
        ));
    }
    let mut asserts = Vec::new();
    for (i, a) in raw.asserts.into_iter().enumerate() {
        match a.compile(raw.expected.as_ref(), has_judge) {
            Ok(assertion) => asserts.push(assertion),
            Err(errors) => faults.extend(
                errors
                    .into_iter()
                    .map(|(field, e)| (format!("assert[{i}].{field}"), e)),
            ),
        }
    }
    match input {
        Some(input) if faults.is_empty() => Ok(Case {
            id: raw.id,
            input,
            expected: raw.expected,
            asserts,
            tags: raw.tags,
            threshold: raw.threshold,
            line,
        }),
        _ => Err(faults),
    }
}

fn check_tags(tags: &[String], faults: &mut Vec<(String, String)>) {
    for (i, tag) in tags.iter().enumerate() {
        if let Err(e) = names::check(tag) {
            faults.push((format!("tags[{i}]"), e));
        } else if tag == ALL {
            faults.push((
                format!("tags[{i}]"),
                format!("{ALL:?} is reserved: it means every case"),
            ));
        }
    }
    if !tags.iter().any(|t| KINDS.contains(&t.as_str())) {
        faults.push((
            "tags".to_owned(),
            "tag the case \"labeled\" (an ordinary input) or \"adversarial\" (a hard one)"
                .to_owned(),
        ));
    }
}

/// A route case's request: its messages (an array), or a request object without
/// `model`; checked as the gateway checks a request for `route`.
fn chat_input(route: &str, input: Value) -> Result<CaseInput, String> {
    let mut body = match input {
        Value::Array(messages) => serde_json::json!({ "messages": messages }),
        Value::Object(fields) => Value::Object(fields),
        _ => {
            return Err(
                "a route's input is its messages (an array) or a chat request (an object)"
                    .to_owned(),
            );
        }
    };
    if body.get("model").is_some() {
        return Err("`model` is the suite's route; leave it out".to_owned());
    }
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        return Err("cases are not streamed; leave `stream` out".to_owned());
    }
    body["model"] = Value::String(route.to_owned());
    let bytes = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
    ChatRequest::from_json(&bytes).map_err(|e| e.to_string())?;
    if let Value::Object(fields) = &mut body {
        fields.remove("model");
    }
    Ok(CaseInput::Chat(body))
}
