//! Graders: what a case asserts about its answer, and the verdict each gives.
//!
//! The decision that shapes them: every grader gives a score in `[0, 1]` and a reason,
//! deterministic ones 0 or 1, a rubric its judge's score. A case's score is the
//! weighted mean of its graders' scores, and it passes when that reaches its threshold
//! (1.0 by default: every grader must give full marks). So a model-graded rubric and a
//! regex weigh in the same currency, and a report can always say why a case failed.
//!
//! An assertion is written in a dataset line as a JSON object with a `type` and the
//! fields that type takes (`value`, `ignore_case`, `schema`, `name`, `arguments`,
//! `weight`); a field another type takes is refused, so a misplaced one is never
//! silently ignored. Assertions are compiled (regexes, JSON schemas) when the dataset
//! is loaded.

mod check;
pub(crate) mod judge;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::duration;
use crate::subject::Answer;

/// One assertion of a case: a check and its weight.
#[derive(Debug, Clone)]
pub struct Assertion {
    /// What is checked.
    pub check: Check,
    /// Its weight in the case's score, above 0; default 1.
    pub weight: f64,
}

/// What an assertion checks: a closed set.
#[derive(Debug, Clone)]
pub enum Check {
    /// The answer is `value`: the text (trimmed) for a string, else the answer's JSON.
    Equals {
        /// The value; the case's `expected` when not given.
        value: Value,
        /// Compare text without regard to case.
        ignore_case: bool,
    },
    /// The answer's text contains `value`.
    Contains {
        /// The text to find; the case's `expected` when not given.
        value: String,
        /// Search without regard to case.
        ignore_case: bool,
    },
    /// The answer's text matches a regular expression.
    Regex {
        /// The compiled expression (`(?i)` added for `ignore_case`).
        pattern: regex::Regex,
    },
    /// The answer is JSON.
    IsJson,
    /// The answer is JSON valid against a schema.
    JsonSchema {
        /// The schema, compiled.
        validator: Arc<jsonschema::Validator>,
    },
    /// The model called tool `name`, with arguments that include `arguments`.
    ToolCall {
        /// The tool's name.
        name: String,
        /// Fields the call's arguments must hold with these values (nested objects
        /// compared the same way, arrays and scalars exactly); any when `None`.
        arguments: Option<Value>,
    },
    /// The answer refuses (a refusal, a content filter, or a refusal's words).
    Refusal,
    /// The call cost at most this, in US dollars.
    MaxCost {
        /// The ceiling.
        usd: f64,
    },
    /// The call took at most this long.
    MaxLatency {
        /// The ceiling.
        limit: Duration,
    },
    /// A rubric judged by the suite's judge route.
    Rubric {
        /// What the judge checks the answer against.
        rubric: String,
    },
}

impl Check {
    /// The grader's name, as written in `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Check::Equals { .. } => "equals",
            Check::Contains { .. } => "contains",
            Check::Regex { .. } => "regex",
            Check::IsJson => "is_json",
            Check::JsonSchema { .. } => "json_schema",
            Check::ToolCall { .. } => "tool_call",
            Check::Refusal => "refusal",
            Check::MaxCost { .. } => "max_cost",
            Check::MaxLatency { .. } => "max_latency",
            Check::Rubric { .. } => "rubric",
        }
    }
}

/// One grader's verdict on an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The grader (`contains`, `rubric`…).
    pub grader: String,
    /// Its weight.
    pub weight: f64,
    /// Its score, in `[0, 1]`.
    pub score: f64,
    /// Why: what was found, or the judge's reason.
    pub reason: String,
    /// What the grading cost (a judge's call), in US dollars.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cost_usd: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// The verdict of a deterministic check on `answer`, which took `latency`. A rubric is
/// graded by [`judge::grade`], not here.
pub(crate) fn grade(assertion: &Assertion, answer: &Answer, latency: Duration) -> Verdict {
    let (passed, reason) = check::run(&assertion.check, answer, latency);
    Verdict {
        grader: assertion.check.kind().to_owned(),
        weight: assertion.weight,
        score: if passed { 1.0 } else { 0.0 },
        reason,
        cost_usd: 0.0,
    }
}

/// The weighted mean of `verdicts`' scores (0 when there are none).
pub(crate) fn score(verdicts: &[Verdict]) -> f64 {
    let total: f64 = verdicts.iter().map(|v| v.weight).sum();
    if total <= 0.0 {
        return 0.0;
    }
    let weighted: f64 = verdicts.iter().map(|v| v.weight * v.score).sum();
    (weighted / total).clamp(0.0, 1.0)
}

/// An assertion as written in a dataset line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAssert {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    ignore_case: Option<bool>,
    #[serde(default)]
    schema: Option<Value>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<Value>,
    #[serde(default)]
    weight: Option<f64>,
}

/// Field problems of one assertion: `(field, message)`, the field relative to it.
pub(crate) type Faults = Vec<(&'static str, String)>;

impl RawAssert {
    /// The assertion, compiled; `expected` stands in for a missing `value`, and
    /// `has_judge` says whether a rubric can be graded.
    pub(crate) fn compile(
        self,
        expected: Option<&Value>,
        has_judge: bool,
    ) -> Result<Assertion, Faults> {
        let mut faults = Faults::new();
        let weight = self.weight.unwrap_or(1.0);
        if !(weight.is_finite() && weight > 0.0) {
            faults.push(("weight", "must be above 0".to_owned()));
        }
        let takes: &[&str] = match self.kind.as_str() {
            "equals" | "contains" | "regex" => &["value", "ignore_case"],
            "json_schema" => &["schema"],
            "tool_call" => &["name", "arguments"],
            "max_cost" | "max_latency" | "rubric" => &["value"],
            "is_json" | "refusal" => &[],
            other => {
                let known = "equals, contains, regex, is_json, json_schema, tool_call, \
                             refusal, max_cost, max_latency, rubric";
                faults.push(("type", format!("unknown grader {other:?}; one of {known}")));
                return Err(faults);
            }
        };
        let given = [
            ("value", self.value.is_some()),
            ("ignore_case", self.ignore_case.is_some()),
            ("schema", self.schema.is_some()),
            ("name", self.name.is_some()),
            ("arguments", self.arguments.is_some()),
        ];
        for (field, set) in given {
            if set && !takes.contains(&field) {
                faults.push((field, format!("does not apply to {}", self.kind)));
            }
        }
        let check = self.check(expected, has_judge, &mut faults);
        match check {
            Some(check) if faults.is_empty() => Ok(Assertion { check, weight }),
            _ => Err(faults),
        }
    }

    // One arm per grader type: a closed set, matched whole, longer than most functions
    // because each type's fields are checked in its own arm.
    fn check(
        self,
        expected: Option<&Value>,
        has_judge: bool,
        faults: &mut Faults,
    ) -> Option<Check> {
        let ignore_case = self.ignore_case.unwrap_or(false);
        let written = self.value;
        let value = written.clone().or_else(|| expected.cloned());
        let text = |faults: &mut Faults, what: &str| match &value {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(_) => {
                faults.push(("value", format!("must be {what}")));
                None
            }
            None => {
                faults.push((
                    "value",
                    format!("{what} is required (or the case's `expected`)"),
                ));
                None
            }
        };
        match self.kind.as_str() {
            "equals" => match value {
                Some(value) => Some(Check::Equals { value, ignore_case }),
                None => {
                    faults.push(("value", "required (or the case's `expected`)".to_owned()));
                    None
                }
            },
            "contains" => {
                text(faults, "a text").map(|value| Check::Contains { value, ignore_case })
            }
            "regex" => {
                let source = text(faults, "a regular expression")?;
                let source = if ignore_case {
                    format!("(?i){source}")
                } else {
                    source
                };
                match regex::Regex::new(&source) {
                    Ok(pattern) => Some(Check::Regex { pattern }),
                    Err(e) => {
                        // regex's message spans lines (the pattern, a caret); its last
                        // line says what is wrong, and a problem is one line.
                        let text = e.to_string();
                        let why = text.lines().last().unwrap_or_default();
                        let why = why.strip_prefix("error: ").unwrap_or(why);
                        faults.push(("value", format!("not a regular expression: {why}")));
                        None
                    }
                }
            }
            "is_json" => Some(Check::IsJson),
            "json_schema" => match self.schema.map(|s| jsonschema::validator_for(&s)) {
                Some(Ok(validator)) => Some(Check::JsonSchema {
                    validator: Arc::new(validator),
                }),
                Some(Err(e)) => {
                    faults.push(("schema", format!("not a valid JSON schema: {e}")));
                    None
                }
                None => {
                    faults.push(("schema", "required".to_owned()));
                    None
                }
            },
            "tool_call" => match self.name.filter(|n| !n.trim().is_empty()) {
                Some(name) => Some(Check::ToolCall {
                    name,
                    arguments: self.arguments,
                }),
                None => {
                    faults.push(("name", "the tool's name is required".to_owned()));
                    None
                }
            },
            "refusal" => Some(Check::Refusal),
            "max_cost" => match written.as_ref().and_then(Value::as_f64) {
                Some(usd) if usd.is_finite() && usd >= 0.0 => Some(Check::MaxCost { usd }),
                _ => {
                    faults.push(("value", "US dollars, a number at least 0".to_owned()));
                    None
                }
            },
            "max_latency" => latency(written.as_ref(), faults),
            _ => {
                if !has_judge {
                    faults.push((
                        "type",
                        "a rubric needs a judge: set [judge] route in the suite".to_owned(),
                    ));
                }
                match written {
                    Some(Value::String(rubric)) if !rubric.trim().is_empty() => {
                        Some(Check::Rubric { rubric })
                    }
                    _ => {
                        faults.push(("value", "the rubric, a text, is required".to_owned()));
                        None
                    }
                }
            }
        }
    }
}

/// `max_latency`'s value: a duration (`"2s"`) or milliseconds.
fn latency(value: Option<&Value>, faults: &mut Faults) -> Option<Check> {
    let limit = match value {
        Some(Value::String(text)) => duration::parse(text),
        Some(Value::Number(ms)) => match ms.as_f64() {
            Some(ms) if ms.is_finite() && ms > 0.0 => Ok(Duration::from_secs_f64(ms / 1000.0)),
            _ => Err("milliseconds must be above 0".to_owned()),
        },
        _ => Err("a duration (\"2s\") or milliseconds is required".to_owned()),
    };
    match limit {
        Ok(limit) => Some(Check::MaxLatency { limit }),
        Err(e) => {
            faults.push(("value", e));
            None
        }
    }
}

#[cfg(test)]
mod tests;
