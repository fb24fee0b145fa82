//! Suites run in process against the gateway: a route suite graded by a judge route
//! whose verdicts the mock provider scripts, and a workflow suite of a task per case.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use holdfast_policy::SystemClock;
use holdfast_quality::{NoProgress, RunSpec, Runner, Suite};
use holdfast_store::EvalOutcome;
use serde_json::{Value, json};
use support::{Gw, Mock, Scratch, openai_provider, target};

/// The model under test: Paris for France, a wrong city for Spain.
const ANSWERS: &str = r#"
[[replies]]
contains = "capital of France"
answer = "Paris."

[[replies]]
contains = "capital of Spain"
answer = "Lyon."
"#;

/// The judge: verdicts scripted by the answer it is shown. Anything else gets the
/// mock's default JSON, which is not a verdict.
const JUDGE: &str = r#"
[[replies]]
contains = "Answer:\nParis."
json_answer = { score = 1, reason = "names Paris, the capital" }

[[replies]]
contains = "Answer:\nLyon."
json_answer = { score = 0, reason = "Lyon is not the capital of Spain" }
"#;

const SUITE: &str = r#"
name = "capitals"
dataset = "capitals.jsonl"

[task]
route = "support"

[judge]
route = "judge"

[thresholds]
pass_rate = { labeled = 1.0 }
"#;

fn dataset() -> String {
    let case = |id: &str, question: &str, rubric: &str| {
        json!({
            "id": id,
            "input": [{"role": "user", "content": question}],
            "assert": [
                {"type": "rubric", "value": rubric, "weight": 3},
                {"type": "max_cost", "value": 1.0},
            ],
            "tags": ["labeled"],
        })
        .to_string()
    };
    [
        case(
            "france",
            "What is the capital of France?",
            "names the capital",
        ),
        case(
            "spain",
            "What is the capital of Spain?",
            "names the capital",
        ),
        case("story", "Tell me a story.", "is a story"),
    ]
    .join("\n")
}

async fn open_store(dir: &Scratch) -> Arc<dyn holdfast_store::Store> {
    holdfast_store::open(&format!("sqlite://{}/evals.db", dir.0.display()))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_suite_is_graded_by_a_judge_route_whose_verdicts_are_scripted() {
    let answers = Mock::openai(ANSWERS).await;
    let judge = Mock::openai(JUDGE).await;
    let toml = format!(
        "{}{}{}{}[routes.support]\ntargets = [\"a\"]\n[routes.judge]\ntargets = [\"j\"]\n\
         [policies.default]\nretry = {{ max_attempts = 1 }}\n",
        openai_provider("pa", &answers),
        openai_provider("pj", &judge),
        target("a", "pa", 100_000),
        target("j", "pj", 100_000),
    );
    let gw = Gw::start(&toml).await;
    let dir = Scratch::new("quality-route");
    let suite = Suite::parse(("capitals.toml", SUITE), ("capitals.jsonl", &dataset())).unwrap();
    let subject = gw.gateway.eval_subject("acme").await;
    assert_eq!(subject.describe()["via"], "in-process");
    let runner = Runner::new(
        open_store(&dir).await,
        subject,
        Arc::new(SystemClock::new()),
    );
    let outcome = runner
        .run(
            &suite,
            RunSpec::new(&suite, "r1", "acme"),
            &NoProgress,
            std::future::pending(),
        )
        .await
        .unwrap();
    let case = |id: &str| {
        outcome
            .results
            .iter()
            .find(|r| r.case_id == id)
            .unwrap()
            .clone()
    };

    let france = case("france");
    assert_eq!(france.outcome, EvalOutcome::Passed);
    let rubric = &france.verdicts[0];
    assert_eq!((rubric.grader.as_str(), rubric.score), ("rubric", 1.0));
    assert_eq!(rubric.reason, "names Paris, the capital");
    assert!(rubric.cost_usd > 0.0, "the judge's call is costed");
    let answer = france.answer.unwrap();
    assert_eq!(answer.text, "Paris.");
    assert_eq!(answer.served_by.as_deref(), Some("a"));
    assert!(answer.cost_usd > 0.0);

    let spain = case("spain");
    assert_eq!(spain.outcome, EvalOutcome::Failed);
    assert_eq!(spain.score, 0.25, "rubric 0 × 3 and max_cost 1 × 1");
    assert_eq!(spain.verdicts[0].reason, "Lyon is not the capital of Spain");

    // The judge answered the story with something that is not a verdict: the gateway's
    // schema check refuses it, and the case cannot be graded.
    let story = case("story");
    assert_eq!(story.outcome, EvalOutcome::Error);
    assert!(
        story.error.as_deref().unwrap().contains("the judge"),
        "{story:?}"
    );

    assert_eq!(answers.calls(), 3);
    assert_eq!(judge.calls(), 3);
    let report = outcome.report.unwrap();
    assert!(!report.gate.passed);
    assert_eq!(report.group("labeled").unwrap().passed, 1);
    // Each call is in the ledger, under the tenant that ran the suite.
    let id = answer.request_id.unwrap();
    let entry = gw.get_json(&format!("/v1/holdfast/requests/{id}")).await;
    assert_eq!(entry["endpoint"], "quality.eval");
    assert_eq!(entry["tenant"], "acme");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_suite_runs_a_task_per_case_and_grades_its_output() {
    let answers = Mock::openai(ANSWERS).await;
    let toml = format!(
        "{}{}[routes.support]\ntargets = [\"a\"]\n",
        openai_provider("pa", &answers),
        target("a", "pa", 100_000),
    );
    let dir = Scratch::new("quality-workflow");
    let gw = Gw::start_with_engine(&toml, &[], &dir).await;
    let workflow = json!({"name": "ask", "version": 1, "steps": [
        {"name": "reply", "kind": "llm", "route": "support", "prompt": "{{ input.question }}"}
    ]});
    let engine = gw.gateway.engine().unwrap();
    engine.register(workflow).await.unwrap();
    let suite_text =
        "name = \"ask\"\ndataset = \"ask.jsonl\"\n[task]\nworkflow = \"ask\"\nversion = 1\n";
    let line = |id: &str, question: &str, expected: &str| {
        json!({"id": id, "input": {"question": question}, "expected": expected,
               "assert": [{"type": "equals"}], "tags": ["labeled"]})
        .to_string()
    };
    let dataset = [
        line("france", "What is the capital of France?", "Paris."),
        line("spain", "What is the capital of Spain?", "Madrid."),
    ]
    .join("\n");
    let suite = Suite::parse(("ask.toml", suite_text), ("ask.jsonl", &dataset)).unwrap();
    let store = open_store(&dir).await;
    let runner = Runner::new(
        store,
        gw.gateway.eval_subject("acme").await,
        Arc::new(SystemClock::new()),
    );
    let outcome = runner
        .run(
            &suite,
            RunSpec::new(&suite, "w1", "acme"),
            &NoProgress,
            std::future::pending(),
        )
        .await
        .unwrap();
    let by_id = |id: &str| {
        outcome
            .results
            .iter()
            .find(|r| r.case_id == id)
            .unwrap()
            .clone()
    };
    let france = by_id("france");
    assert_eq!(france.outcome, EvalOutcome::Passed, "{france:?}");
    let answer = france.answer.unwrap();
    assert_eq!(answer.output, Some(Value::String("Paris.".into())));
    let task_id = answer.served_by.unwrap();
    let task = engine
        .task(&task_id, &holdfast_engine::Scope::Tenant("acme".into()))
        .await
        .unwrap();
    assert_eq!(task.idempotency_key.as_deref(), Some("eval/w1/france"));
    let spain = by_id("spain");
    assert_eq!(spain.outcome, EvalOutcome::Failed);
    assert!(
        spain.why().contains("\"Lyon.\" is not \"Madrid.\""),
        "{}",
        spain.why()
    );
}
