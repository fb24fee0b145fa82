//! Every grader passes an answer that meets it and fails one that does not.

use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::json;

use super::*;
use crate::dataset::{Case, CaseInput};
use crate::subject::{Chat, Subject, SubjectError, TaskCall, ToolCall};

fn compile(raw: Value, expected: Option<Value>) -> Assertion {
    let raw: RawAssert = serde_json::from_value(raw).unwrap();
    raw.compile(expected.as_ref(), true).unwrap()
}

fn text(text: &str) -> Answer {
    Answer {
        text: text.to_owned(),
        ..Answer::default()
    }
}

/// `(assertion, expected, passing answer, failing answer)`, graded at 120 ms.
fn both_ways(raw: Value, expected: Option<Value>, pass: Answer, fail: Answer) {
    let a = compile(raw.clone(), expected);
    let latency = Duration::from_millis(120);
    let good = grade(&a, &pass, latency);
    let bad = grade(&a, &fail, latency);
    assert_eq!(
        good.score, 1.0,
        "{raw} should pass {pass:?}: {}",
        good.reason
    );
    assert_eq!(bad.score, 0.0, "{raw} should fail {fail:?}: {}", bad.reason);
    assert_eq!(good.grader, raw["type"].as_str().unwrap());
    assert!(!bad.reason.is_empty());
}

#[test]
fn equals() {
    both_ways(
        json!({"type": "equals", "value": "Paris"}),
        None,
        text(" Paris\n"),
        text("Lyon"),
    );
    both_ways(
        json!({"type": "equals", "ignore_case": true}),
        Some(json!("paris")),
        text("PARIS"),
        text("Paris, France"),
    );
    both_ways(
        json!({"type": "equals", "value": {"total": 3}}),
        None,
        text(r#"{"total": 3.0}"#),
        text(r#"{"total": 4}"#),
    );
}

#[test]
fn contains() {
    both_ways(
        json!({"type": "contains", "value": "refund"}),
        None,
        text("Your refund is on its way."),
        text("No."),
    );
    both_ways(
        json!({"type": "contains", "ignore_case": true}),
        Some(json!("PARIS")),
        text("it is paris"),
        text("Lyon"),
    );
}

#[test]
fn regex() {
    both_ways(
        json!({"type": "regex", "value": r"^\d{3}-\d{4}$"}),
        None,
        text("555-1234"),
        text("call 555-1234"),
    );
}

#[test]
fn is_json() {
    both_ways(
        json!({"type": "is_json"}),
        None,
        text(r#" {"a": 1} "#),
        text("{a: 1}"),
    );
    let task = Answer::from_output(json!({"done": true}), 0.0, "t");
    assert_eq!(
        grade(
            &compile(json!({"type": "is_json"}), None),
            &task,
            Duration::ZERO
        )
        .score,
        1.0
    );
}

#[test]
fn json_schema() {
    let schema =
        json!({"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}});
    both_ways(
        json!({"type": "json_schema", "schema": schema}),
        None,
        text(r#"{"city": "Paris"}"#),
        text(r#"{"city": 75}"#),
    );
}

#[test]
fn tool_call() {
    let call = |name: &str, arguments: Value| Answer {
        tool_calls: vec![ToolCall {
            name: name.into(),
            arguments,
        }],
        ..Answer::default()
    };
    both_ways(
        json!({"type": "tool_call", "name": "lookup", "arguments": {"city": "Paris", "units": {"temp": "C"}}}),
        None,
        call(
            "lookup",
            json!({"city": "Paris", "units": {"temp": "C", "wind": "kmh"}, "day": 1}),
        ),
        call("lookup", json!({"city": "Lyon", "units": {"temp": "C"}})),
    );
    both_ways(
        json!({"type": "tool_call", "name": "lookup"}),
        None,
        call("lookup", json!({})),
        call("search", json!({})),
    );
}

#[test]
fn refusal() {
    both_ways(
        json!({"type": "refusal"}),
        None,
        text("I'm sorry, but I can't help with that."),
        text("Sure! Step one…"),
    );
    let filtered = Answer {
        finish_reason: Some("content_filter".into()),
        ..Answer::default()
    };
    let refused = Answer {
        refusal: Some("no".into()),
        ..Answer::default()
    };
    let a = compile(json!({"type": "refusal"}), None);
    assert_eq!(grade(&a, &filtered, Duration::ZERO).score, 1.0);
    assert_eq!(grade(&a, &refused, Duration::ZERO).score, 1.0);
}

#[test]
fn max_cost() {
    let costing = |usd: f64| Answer {
        cost_usd: usd,
        ..Answer::default()
    };
    both_ways(
        json!({"type": "max_cost", "value": 0.01}),
        None,
        costing(0.01),
        costing(0.0101),
    );
}

#[test]
fn max_latency() {
    let a = compile(json!({"type": "max_latency", "value": 100}), None);
    assert_eq!(grade(&a, &text("a"), Duration::from_millis(100)).score, 1.0);
    assert_eq!(grade(&a, &text("a"), Duration::from_millis(101)).score, 0.0);
}

#[test]
fn a_case_score_is_the_weighted_mean() {
    let verdict = |weight, score| Verdict {
        grader: "x".into(),
        weight,
        score,
        reason: String::new(),
        cost_usd: 0.0,
    };
    assert_eq!(score(&[verdict(1.0, 1.0), verdict(3.0, 0.0)]), 0.25);
    assert_eq!(score(&[verdict(2.0, 0.5), verdict(2.0, 1.0)]), 0.75);
    assert_eq!(score(&[]), 0.0);
}

/// A judge whose verdicts are scripted by what the answer says.
struct ScriptedJudge {
    asked: Mutex<Vec<Chat>>,
}

#[async_trait]
impl Subject for ScriptedJudge {
    fn describe(&self) -> Value {
        json!({"via": "scripted"})
    }

    async fn chat(&self, call: Chat) -> Result<Answer, SubjectError> {
        let prompt = call.body["messages"][1]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.asked.lock().unwrap().push(call);
        let verdict = if prompt.ends_with("Answer:\nParis.") {
            json!({"score": 0.9, "reason": "names the capital"})
        } else if prompt.ends_with("Answer:\ngibberish") {
            return Ok(Answer {
                text: "I think it is fine".into(),
                cost_usd: 0.002,
                ..Answer::default()
            });
        } else {
            json!({"score": 0.1, "reason": "wrong city"})
        };
        Ok(Answer {
            text: verdict.to_string(),
            cost_usd: 0.001,
            ..Answer::default()
        })
    }

    async fn task(&self, _call: TaskCall) -> Result<Answer, SubjectError> {
        Err(SubjectError::new("invalid_input", "a judge runs no tasks"))
    }
}

#[tokio::test]
async fn rubric_scores_come_from_the_judge_route_with_its_reason() {
    let judge = ScriptedJudge {
        asked: Mutex::new(Vec::new()),
    };
    let case = Case {
        id: "capital".into(),
        input: CaseInput::Chat(
            json!({"messages": [{"role": "user", "content": "Capital of France?"}]}),
        ),
        expected: Some(json!("Paris")),
        asserts: Vec::new(),
        tags: vec!["labeled".into()],
        threshold: None,
        line: 1,
    };
    let ask = |answer: &str| {
        judge::chat(
            "judge",
            "names the capital of France",
            &case,
            &text(answer),
            Duration::from_secs(1),
        )
    };
    let good = judge::grade(&judge, ask("Paris."), 2.0).await.unwrap();
    assert_eq!(
        (good.score, good.weight, good.reason.as_str()),
        (0.9, 2.0, "names the capital")
    );
    assert_eq!(good.cost_usd, 0.001);
    let bad = judge::grade(&judge, ask("Lyon."), 1.0).await.unwrap();
    assert_eq!((bad.score, bad.reason.as_str()), (0.1, "wrong city"));
    let broken = judge::grade(&judge, ask("gibberish"), 1.0)
        .await
        .unwrap_err();
    assert_eq!(broken.code, "invalid_answer");
    assert_eq!(broken.cost_usd, 0.002);
    let asked = judge.asked.lock().unwrap();
    assert_eq!(asked[0].route, "judge");
    let prompt = asked[0].body["messages"][1]["content"].as_str().unwrap();
    assert!(prompt.starts_with("Rubric:\nnames the capital of France\n\nInput:\nuser: Capital of France?\n\nExpected:\nParis\n"), "{prompt}");
    assert_eq!(
        asked[0].body["response_format"]["json_schema"]["schema"]["required"],
        json!(["score", "reason"])
    );
}
