//! The deterministic graders: each a pure function of the answer (and its latency) to
//! pass or fail and a reason.
//!
//! The reason says what was found, not only that something was missing, so a failing
//! case in a report can be understood without rerunning it: `"Lyon." is not "Paris"`,
//! `no call to lookup (called: search)`.

use std::time::Duration;

use serde_json::Value;

use super::Check;
use crate::subject::Answer;

/// Words that open or carry a refusal, lowercase.
const REFUSALS: &[&str] = &[
    "i can't",
    "i cannot",
    "i can not",
    "i won't",
    "i will not",
    "i'm not able to",
    "i am not able to",
    "i'm unable to",
    "i am unable to",
    "i must decline",
    "i'm sorry, but",
    "i am sorry, but",
    "sorry, i can't",
    "sorry, but i can",
    "not able to help with",
    "can't help with",
    "cannot help with",
    "can't assist with",
    "cannot assist with",
];

/// Whether `check` holds for `answer`, which took `latency`, and why.
pub(super) fn run(check: &Check, answer: &Answer, latency: Duration) -> (bool, String) {
    match check {
        Check::Equals { value, ignore_case } => equals(value, *ignore_case, answer),
        Check::Contains { value, ignore_case } => {
            let found = if *ignore_case {
                answer.text.to_lowercase().contains(&value.to_lowercase())
            } else {
                answer.text.contains(value.as_str())
            };
            let verb = if found {
                "contains"
            } else {
                "does not contain"
            };
            (found, format!("{} {verb} {value:?}", shown(&answer.text)))
        }
        Check::Regex { pattern } => {
            let found = pattern.is_match(&answer.text);
            let verb = if found { "matches" } else { "does not match" };
            (
                found,
                format!("{} {verb} /{}/", shown(&answer.text), pattern),
            )
        }
        Check::IsJson => match answer.json() {
            Some(_) => (true, "the answer is JSON".to_owned()),
            None => (false, format!("{} is not JSON", shown(&answer.text))),
        },
        Check::JsonSchema { validator } => match answer.json() {
            None => (false, format!("{} is not JSON", shown(&answer.text))),
            Some(json) => match validator.validate(&json) {
                Ok(()) => (true, "the answer matches the schema".to_owned()),
                Err(e) => (false, format!("the answer does not match the schema: {e}")),
            },
        },
        Check::ToolCall { name, arguments } => tool_call(name, arguments.as_ref(), answer),
        Check::Refusal => refusal(answer),
        Check::MaxCost { usd } => {
            let ok = answer.cost_usd <= *usd;
            let verb = if ok { "within" } else { "over" };
            (
                ok,
                format!("cost ${:.6} is {verb} ${usd:.6}", answer.cost_usd),
            )
        }
        Check::MaxLatency { limit } => {
            let ok = latency <= *limit;
            let verb = if ok { "within" } else { "over" };
            (
                ok,
                format!(
                    "took {} ms, {verb} {} ms",
                    latency.as_millis(),
                    limit.as_millis()
                ),
            )
        }
        Check::Rubric { .. } => (false, "a rubric is graded by its judge".to_owned()),
    }
}

/// The text as a reason shows it: quoted, cut at 80 characters.
fn shown(text: &str) -> String {
    let cut: String = text.chars().take(80).collect();
    if cut.len() < text.len() {
        format!("{:?}…", cut)
    } else {
        format!("{cut:?}")
    }
}

fn equals(value: &Value, ignore_case: bool, answer: &Answer) -> (bool, String) {
    if let Value::String(want) = value {
        let got = answer.text.trim();
        let ok = if ignore_case {
            got.to_lowercase() == want.trim().to_lowercase()
        } else {
            got == want.trim()
        };
        let verb = if ok { "is" } else { "is not" };
        return (ok, format!("{} {verb} {want:?}", shown(got)));
    }
    match answer.json() {
        Some(got) if same(&got, value) => (true, format!("the answer is {value}")),
        Some(got) => (false, format!("{} is not {value}", shown(&got.to_string()))),
        None => (false, format!("{} is not JSON", shown(&answer.text))),
    }
}

/// JSON equality with numbers compared by value (`1` equals `1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Whether `got` holds every field of `want` with the same value (objects compared
/// the same way, all else exactly).
fn includes(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Object(got), Value::Object(want)) => want
            .iter()
            .all(|(k, w)| got.get(k).is_some_and(|g| includes(g, w))),
        _ => same(got, want),
    }
}

fn tool_call(name: &str, arguments: Option<&Value>, answer: &Answer) -> (bool, String) {
    let named: Vec<_> = answer
        .tool_calls
        .iter()
        .filter(|c| c.name == name)
        .collect();
    if named.is_empty() {
        let called: Vec<&str> = answer.tool_calls.iter().map(|c| c.name.as_str()).collect();
        let called = if called.is_empty() {
            "no tool".to_owned()
        } else {
            called.join(", ")
        };
        return (false, format!("no call to {name} (called: {called})"));
    }
    let Some(want) = arguments else {
        return (true, format!("called {name}"));
    };
    match named.iter().find(|c| includes(&c.arguments, want)) {
        Some(_) => (true, format!("called {name} with {want}")),
        None => (
            false,
            format!("called {name} with {}, not {want}", named[0].arguments),
        ),
    }
}

fn refusal(answer: &Answer) -> (bool, String) {
    if let Some(refusal) = &answer.refusal {
        return (true, format!("refused: {}", shown(refusal)));
    }
    if answer.finish_reason.as_deref() == Some("content_filter") {
        return (true, "refused by a content filter".to_owned());
    }
    let lower = answer.text.to_lowercase();
    match REFUSALS.iter().find(|words| lower.contains(*words)) {
        Some(words) => (true, format!("refused ({words:?})")),
        None => (false, format!("{} does not refuse", shown(&answer.text))),
    }
}
