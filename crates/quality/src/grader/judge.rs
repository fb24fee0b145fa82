//! Model-graded rubrics: a judge route reads the case and the answer and gives a score
//! and a reason.
//!
//! The decision: the judge is a route, called through the same [`Subject`] as the case
//! itself, so a verdict gets holdfast's retries, fallback, breakers and costs, and its
//! answer is checked by the gateway against a JSON schema (`score` in `[0, 1]`, a
//! `reason`) before it reaches here. The prompt is plain text in a fixed layout
//! (`docs/quality.md` shows it), so a scripted judge (the mock provider's `replies`)
//! can tell cases apart by what follows `Answer:`.

use std::time::Duration;

use serde_json::{Value, json};

use super::Verdict;
use crate::dataset::{Case, CaseInput};
use crate::subject::{Answer, Chat, Subject, SubjectError};

/// What the judge is told it is doing.
pub(crate) const SYSTEM: &str = "You grade an answer against a rubric. Read the rubric, the input \
the answer was given, the expected answer if there is one, and the answer. Reply with JSON \
only: {\"score\": a number from 0 (fails the rubric) to 1 (fully meets it), \"reason\": one \
sentence saying why}.";

/// The user message: the rubric, the case and the answer, each under its heading.
pub(crate) fn prompt(rubric: &str, case: &Case, answer: &Answer) -> String {
    let mut text = format!("Rubric:\n{rubric}\n\nInput:\n{}\n", input_text(&case.input));
    if let Some(expected) = &case.expected {
        let expected = match expected {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        text.push_str(&format!("\nExpected:\n{expected}\n"));
    }
    text.push_str(&format!("\nAnswer:\n{}", answer_text(answer)));
    text
}

/// A case's input as the judge reads it: a chat's messages as `role: content` lines, a
/// task's input as JSON.
fn input_text(input: &CaseInput) -> String {
    match input {
        CaseInput::Task(value) => value.to_string(),
        CaseInput::Chat(body) => {
            let lines: Vec<String> = body["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| {
                    let content = match &m["content"] {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    format!("{}: {content}", m["role"].as_str().unwrap_or("user"))
                })
                .collect();
            lines.join("\n")
        }
    }
}

/// The answer as the judge reads it: its text, its refusal, its tool calls.
fn answer_text(answer: &Answer) -> String {
    let mut text = answer.text.clone();
    if let Some(refusal) = &answer.refusal {
        text.push_str(&format!("\n(refused: {refusal})"));
    }
    for call in &answer.tool_calls {
        text.push_str(&format!("\n(called {} with {})", call.name, call.arguments));
    }
    text
}

/// The schema the judge's answer must match, enforced by the gateway.
fn verdict_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "reason": {"type": "string"}
        },
        "required": ["score", "reason"],
        "additionalProperties": false
    })
}

/// The chat that asks `route` for a verdict.
pub(crate) fn chat(
    route: &str,
    rubric: &str,
    case: &Case,
    answer: &Answer,
    timeout: Duration,
) -> Chat {
    Chat {
        route: route.to_owned(),
        body: json!({
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": prompt(rubric, case, answer)},
            ],
            "temperature": 0,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "verdict", "strict": true, "schema": verdict_schema()},
            },
        }),
        idempotency_key: None,
        timeout,
    }
}

/// Asks the judge for a rubric's verdict on `answer`. A judge that cannot answer, or
/// answers something that is not a verdict, is an error: the case cannot be graded.
pub(crate) async fn grade(
    subject: &dyn Subject,
    call: Chat,
    weight: f64,
) -> Result<Verdict, SubjectError> {
    let answer = subject.chat(call).await.map_err(|mut e| {
        e.message = format!("the judge: {}", e.message);
        e
    })?;
    let verdict = parse(&answer.text).map_err(|reason| SubjectError {
        code: "invalid_answer".to_owned(),
        message: format!("the judge's answer is not a verdict: {reason}"),
        cost_usd: answer.cost_usd,
    })?;
    Ok(Verdict {
        grader: "rubric".to_owned(),
        weight,
        score: verdict.0,
        reason: verdict.1,
        cost_usd: answer.cost_usd,
    })
}

/// A verdict's score and reason from the judge's text.
fn parse(text: &str) -> Result<(f64, String), String> {
    let value: Value = serde_json::from_str(text.trim()).map_err(|e| e.to_string())?;
    let score = value["score"]
        .as_f64()
        .filter(|s| (0.0..=1.0).contains(s))
        .ok_or("`score` must be a number from 0 to 1")?;
    let reason = value["reason"].as_str().unwrap_or_default().to_owned();
    Ok((score, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_read_or_refused() {
        assert_eq!(
            parse(r#" {"score": 0.75, "reason": "mostly"} "#),
            Ok((0.75, "mostly".to_owned()))
        );
        assert!(parse(r#"{"score": 2, "reason": "x"}"#).is_err());
        assert!(parse("great answer").is_err());
        assert!(parse(r#"{"reason": "no score"}"#).is_err());
    }
}
