//! Fuzz targets: the workflow definition reader (`holdfast_engine`), JSON and TOML, as
//! `POST /v1/workflows` and `[engine] workflows` files run it.
//!
//! The decision: check the promises the reader makes, not only the absence of panics.
//! Every refusal lists problems that say what is wrong; an accepted definition's
//! stored source (what the store keeps and a restart reads again) is accepted again
//! as the same workflow.

use holdfast_engine::{EngineError, Workflow};

/// Runs one JSON definition; returns its outcome.
pub(crate) fn run_json(data: &[u8]) -> String {
    match serde_json::from_slice(data) {
        Ok(source) => outcome(holdfast_engine::parse(source)),
        Err(_) => "not JSON".to_owned(),
    }
}

/// Runs one TOML definition; returns its outcome.
pub(crate) fn run_toml(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(text) => outcome(holdfast_engine::parse_toml(text)),
        Err(_) => "not UTF-8".to_owned(),
    }
}

fn outcome(parsed: Result<Workflow, EngineError>) -> String {
    match parsed {
        Ok(workflow) => {
            let again = holdfast_engine::parse(workflow.source.clone()).unwrap_or_else(|e| {
                panic!("an accepted definition's stored source is refused: {e}")
            });
            assert_eq!(again.name, workflow.name);
            assert_eq!(again.version, workflow.version);
            assert_eq!(again.steps.len(), workflow.steps.len());
            assert_eq!(again.output_step, workflow.output_step);
            format!("ok {}", workflow.steps.len().min(4))
        }
        Err(EngineError::Invalid { problems }) => {
            assert!(!problems.is_empty(), "a refusal without a problem");
            for problem in &problems {
                assert!(
                    !problem.message.trim().is_empty(),
                    "a problem without a message at {:?}",
                    problem.path
                );
            }
            let first = &problems[0];
            let words: Vec<&str> = first.message.split_whitespace().take(3).collect();
            format!("{} {}", first.path, words.join(" "))
        }
        Err(other) => panic!("reading a definition touched the store: {other}"),
    }
}
