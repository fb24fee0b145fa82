//! `[logging]` over the real binary: the filter and the format come from the
//! configuration, `HOLDFAST_LOG` wins over the filter, and lines sent to a pipe carry no
//! colour codes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use support::{ConfigBuilder, Gateway, Mock, chat_body};

fn config(mock: &Mock, logging: &str) -> ConfigBuilder {
    ConfigBuilder::new()
        .target("primary", mock, "")
        .route("smart", &["primary"], "")
        .raw(&format!("[logging]\n{logging}"))
}

/// Sends one chat request and reads the answer, so that the server logs something.
async fn one_request(gateway: &Gateway) {
    let answer = gateway
        .chat(&chat_body("smart", "hello", false))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success());
    answer.text().await.unwrap();
}

#[tokio::test]
async fn json_format_writes_one_json_object_per_line() {
    let mock = Mock::start("openai", &[]);
    let gateway = Gateway::start(&config(&mock, "format = \"json\"\nfilter = \"debug\""));
    one_request(&gateway).await;
    let output = gateway.process.output();
    let lines: Vec<&str> = output
        .lines()
        .filter(|line| !line.starts_with("listening on "))
        .collect();
    assert!(lines.len() >= 2, "debug logs some lines: {output}");
    for line in &lines {
        let object: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
        for field in ["timestamp", "level", "target"] {
            assert!(object.get(field).is_some(), "no `{field}`: {line}");
        }
    }
    assert!(
        lines
            .iter()
            .any(|line| line.contains("\"level\":\"DEBUG\"")),
        "the configured filter applies: {output}"
    );
}

#[tokio::test]
async fn json_lines_logged_while_a_request_is_served_carry_its_trace_and_span_ids() {
    let mock = Mock::start("openai", &[]);
    let gateway = Gateway::start(&config(&mock, "format = \"json\"\nfilter = \"debug\""));
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let answer = gateway
        .chat(&chat_body("smart", "hello", false))
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success());
    answer.text().await.unwrap();
    let output = gateway.process.output();
    let traced: Vec<Value> = output
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["span"]["trace_id"] == trace)
        .collect();
    assert!(!traced.is_empty(), "no line carries the trace id: {output}");
    assert!(
        traced
            .iter()
            .all(|line| line["span"]["span_id"] == "00f067aa0ba902b7"),
        "without export, the client's span is the request's: {output}"
    );
}

#[tokio::test]
async fn text_sent_to_a_pipe_has_no_colour_codes_and_the_filter_applies() {
    let mock = Mock::start("openai", &[]);
    let gateway = Gateway::start(&config(&mock, "filter = \"warn\""));
    one_request(&gateway).await;
    let output = gateway.process.output();
    assert!(
        !output.contains('\u{1b}'),
        "escape codes in piped logs: {output:?}"
    );
    assert!(
        !output.contains(" INFO "),
        "`warn` keeps info lines out: {output}"
    );
}

#[tokio::test]
async fn holdfast_log_wins_over_the_configured_filter() {
    let mock = Mock::start("openai", &[]);
    let gateway = Gateway::start_with_env(
        &config(&mock, "filter = \"warn\"\nformat = \"json\""),
        &[("HOLDFAST_LOG", "debug")],
    );
    one_request(&gateway).await;
    let output = gateway.process.output();
    assert!(
        output.contains("\"level\":\"DEBUG\""),
        "HOLDFAST_LOG=debug shows debug lines: {output}"
    );
}
