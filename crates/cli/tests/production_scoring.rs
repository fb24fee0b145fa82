//! Production scoring end to end over real sockets: a route's answers are sampled and
//! scored by its suite's `[production]` graders (a judge route on a second mock and a
//! deterministic grader) after they were sent, so a sampled request never waits for
//! its slow judge; `/metrics` shows the score, the counts and the judge's cost; the
//! samples are listed through the API; one is promoted to a suite case through
//! `holdfast eval promote`, and promoting it again (a repeated id) changes nothing.
//! Streamed answers are sampled once the stream is complete, with the text the client
//! got, and a workflow's tasks that succeeded are sampled with their input and output
//! and scored by the workflow suite's graders, counted under the workflow's name.
//! (The `quality_score` alert firing on degraded answers is in `alerts.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{ConfigBuilder, Gateway, Mock, Stopwatch, TempDir, chat_body, pause, run};

/// How long the judge takes to answer: longer than any answer of the route may take.
const JUDGE_LATENCY: Duration = Duration::from_millis(1500);

const CASE: &str = r#"{"id": "c1", "input": [{"role": "user", "content": "hello"}], "expected": "scripted", "assert": [{"type": "contains"}], "tags": ["labeled"]}"#;

const SUITE: &str = "name = \"smart\"\ndataset = \"smart.jsonl\"\n[task]\nroute = \"smart\"\n\
    [judge]\nroute = \"judge\"\n[production]\nassert = [\n  \
    { type = \"rubric\", value = \"answers the question\" },\n  \
    { type = \"contains\", value = \"scripted answer\" },\n]\n";

/// The value of the series `name{labels}` on `/metrics`.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

async fn scrape(gateway: &Gateway) -> String {
    let response = gateway
        .client
        .get(gateway.url("/metrics"))
        .send()
        .await
        .unwrap();
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_sampled_and_scored_after_they_are_sent_and_one_is_promoted() {
    let answers = Mock::start("openai", &[]);
    let judge = Mock::start("openai", &["--latency", "1500ms"]);
    judge
        .set_faults(json!({
            "latency": "1500ms",
            "json_answer": {"score": 0.8, "reason": "it answers"},
        }))
        .await;
    let dir = TempDir::new("production-scoring");
    dir.write("smart.jsonl", CASE);
    let suite = dir.write("smart.toml", SUITE);
    let price = "price = { input_per_mtok = 1000, output_per_mtok = 1000 }";
    let config = ConfigBuilder::new()
        .target("primary", &answers, "")
        .target("judging", &judge, price)
        .route("smart", &["primary"], "")
        .route("judge", &["judging"], "")
        .raw(&format!(
            "[quality.sampling.smart]\nsuite = \"{}\"\nshare = 1.0\nbudget_per_hour = 5.0",
            suite.display()
        ));
    let gateway = Gateway::start(&config);
    gateway.warm_up("smart").await;

    // Every answer is sampled, and every one arrives before its judge could answer.
    let asked = 4;
    for i in 0..asked {
        let watch = Stopwatch::start();
        let response = gateway
            .chat(&chat_body("smart", &format!("question {i}"), false))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let _ = response.bytes().await.unwrap();
        let took = watch.elapsed();
        assert!(
            took < JUDGE_LATENCY,
            "a sampled request took {took:?}: it waited for its scoring"
        );
    }

    // The scorer catches up in the background (the warm-up's answer was sampled too).
    let total = f64::from(asked + 1);
    let scored = "holdfast_quality_samples_total{task_type=\"smart\",result=\"scored\"}";
    let mut text = String::new();
    for _ in 0..200 {
        text = scrape(&gateway).await;
        if metric(&text, scored) == Some(total) {
            break;
        }
        pause(Duration::from_millis(100)).await;
    }
    assert_eq!(metric(&text, scored), Some(total), "{text}");
    let sampled = "holdfast_quality_samples_total{task_type=\"smart\",result=\"sampled\"}";
    assert_eq!(metric(&text, sampled), Some(total), "{text}");
    // (0.8 from the judge + 1 from `contains`) / 2.
    let score = metric(&text, "holdfast_quality_score{task_type=\"smart\"}").unwrap();
    assert!((score - 0.9).abs() < 1e-9, "{text}");
    let cost = metric(
        &text,
        "holdfast_quality_judge_cost_usd_total{task_type=\"smart\"}",
    )
    .unwrap();
    assert!(cost > 0.0, "the judge's calls are priced: {text}");

    let listed = gateway
        .get_json("/v1/holdfast/samples?task_type=smart")
        .await;
    let samples = listed["samples"].as_array().unwrap();
    assert_eq!(samples.len(), asked as usize + 1, "{listed}");
    let newest = &samples[0];
    assert_eq!(newest["status"], "scored");
    assert_eq!(newest["input"]["messages"][0]["content"], "question 3");
    assert!(
        newest["answer"]["text"]
            .as_str()
            .unwrap()
            .contains("scripted answer")
    );
    assert_eq!(newest["verdicts"].as_array().unwrap().len(), 2, "{newest}");

    // Promoted through the binary into the suite's dataset, as a labeled case.
    let id = newest["id"].as_u64().unwrap().to_string();
    let suite_path = suite.display().to_string();
    let args = [
        "eval",
        "promote",
        &id,
        "--suite",
        &suite_path,
        "--server",
        &gateway.base,
        "--expected",
        "The scripted answer.",
    ];
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let dataset = std::fs::read_to_string(dir.path().join("smart.jsonl")).unwrap();
    let line: Value = serde_json::from_str(dataset.lines().last().unwrap()).unwrap();
    assert_eq!(line["id"], format!("sample-{id}"));
    assert_eq!(line["tags"], json!(["labeled"]));
    assert_eq!(line["expected"], "The scripted answer.");
    assert_eq!(line["input"]["messages"][0]["content"], "question 3");

    // Again: the id would repeat, so the suite refuses it and nothing is written.
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("smart.jsonl")).unwrap(),
        dataset
    );
}

/// Polls `/metrics` until `series` reads `want`; answers the last scrape.
async fn until_metric(gateway: &Gateway, series: &str, want: f64) -> String {
    let mut text = String::new();
    for _ in 0..200 {
        text = scrape(gateway).await;
        if metric(&text, series) == Some(want) {
            return text;
        }
        pause(Duration::from_millis(100)).await;
    }
    panic!("{series} never reached {want}:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_answers_and_finished_tasks_are_sampled_and_scored() {
    let answers = Mock::start("openai", &[]);
    let dir = TempDir::new("production-scoring-streams");
    dir.write("smart.jsonl", CASE);
    let route_suite = dir.write(
        "smart.toml",
        "name = \"smart\"\ndataset = \"smart.jsonl\"\n[task]\nroute = \"smart\"\n\
         [production]\nassert = [{ type = \"contains\", value = \"scripted answer\" }]\n",
    );
    let task_case = r#"{"id": "t1", "input": {"question": "hello"}, "expected": "scripted", "assert": [{"type": "contains"}], "tags": ["labeled"]}"#;
    dir.write("ask.jsonl", task_case);
    let workflow_suite = dir.write(
        "ask.toml",
        "name = \"ask\"\ndataset = \"ask.jsonl\"\n[task]\nworkflow = \"ask\"\n\
         [production]\nassert = [{ type = \"contains\", value = \"scripted answer\" }, \
         { type = \"contains\", value = \"never said\" }]\n",
    );
    let workflow = dir.write(
        "ask.json",
        r#"{"name": "ask", "version": 1, "steps": [
            {"name": "reply", "kind": "llm", "route": "smart", "prompt": "{{ input.question }}"}]}"#,
    );
    let config = ConfigBuilder::new()
        .target("primary", &answers, "")
        .route("smart", &["primary"], "")
        .raw(&format!(
            "[engine]\npoll_interval = \"50ms\"\nworkflows = [{:?}]\n",
            workflow.display().to_string()
        ))
        .raw(&format!(
            "[quality.sampling.smart]\nsuite = {:?}\nshare = 1.0\n\n\
             [quality.sampling.ask]\nsuite = {:?}\nshare = 1.0\n",
            route_suite.display().to_string(),
            workflow_suite.display().to_string()
        ));
    let gateway = Gateway::start(&config);

    // Streamed answers: each stream is whole for the client, then sampled.
    let streams = 3;
    for i in 0..streams {
        let body = chat_body("smart", &format!("streamed question {i}"), true);
        let response = gateway.chat(&body).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        let events = support::sse_events(&text);
        assert!(
            support::stream_text(&events).contains("scripted answer"),
            "{text}"
        );
    }
    let scored = "holdfast_quality_samples_total{task_type=\"smart\",result=\"scored\"}";
    let text = until_metric(&gateway, scored, f64::from(streams)).await;
    let score = metric(&text, "holdfast_quality_score{task_type=\"smart\"}").unwrap();
    assert!((score - 1.0).abs() < 1e-9, "{text}");
    let listed = gateway
        .get_json("/v1/holdfast/samples?task_type=smart")
        .await;
    let newest = &listed["samples"][0];
    assert_eq!(
        newest["input"]["messages"][0]["content"],
        "streamed question 2"
    );
    assert!(
        newest["answer"]["text"]
            .as_str()
            .unwrap()
            .contains("scripted answer"),
        "{newest}"
    );

    // Tasks: each one that succeeded is sampled with its input and output. Their
    // `llm` steps are not route answers a client got: `smart` counts no more.
    let tasks = 2;
    for i in 0..tasks {
        let input = json!({"workflow": "ask", "input": {"question": format!("task question {i}")}});
        let (status, task) = gateway.post_json("/v1/tasks", &input).await;
        assert_eq!(status, 201, "{task}");
    }
    let scored = "holdfast_quality_samples_total{task_type=\"ask\",result=\"scored\"}";
    let text = until_metric(&gateway, scored, f64::from(tasks)).await;
    // One grader of two passes on every task.
    let score = metric(&text, "holdfast_quality_score{task_type=\"ask\"}").unwrap();
    assert!((score - 0.5).abs() < 1e-9, "{text}");
    let sampled = "holdfast_quality_samples_total{task_type=\"smart\",result=\"sampled\"}";
    assert_eq!(metric(&text, sampled), Some(f64::from(streams)), "{text}");
    let listed = gateway.get_json("/v1/holdfast/samples?task_type=ask").await;
    let samples = listed["samples"].as_array().unwrap();
    assert_eq!(samples.len(), tasks as usize, "{listed}");
    let sample = &samples[0];
    assert!(
        sample["input"]["question"]
            .as_str()
            .unwrap()
            .starts_with("task question"),
        "{sample}"
    );
    assert!(
        sample["answer"]["output"]
            .as_str()
            .unwrap()
            .contains("scripted answer"),
        "{sample}"
    );
    assert_eq!(sample["suite"], "ask");
}
