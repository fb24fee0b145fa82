//! A sampled production answer shown, and promoted to a suite case.
//!
//! The decision: the dataset is only ever appended to, and only with a line that the
//! suite accepts. The new line is checked by loading the suite with it (its input as
//! the gateway would read it, its graders compiled, its id unique) before a byte is
//! written, so a promotion that would break the suite changes nothing.

use std::io::Write;
use std::path::Path;

use holdfast_store::QualitySample;
use serde_json::{Value, json};

use crate::error::QualityError;
use crate::suite::{self, Suite};

/// A kept sample as the API shows it.
pub fn sample_json(s: &QualitySample) -> Value {
    json!({
        "id": s.id, "tenant": s.tenant, "task_type": s.task_type, "suite": s.suite,
        "request_id": s.request_id, "input": s.input, "answer": s.answer,
        "status": s.status.as_str(), "score": s.score, "verdicts": s.verdicts,
        "judge_cost_usd": s.judge_cost_usd, "created_at_ms": s.created_at_ms,
    })
}

/// The dataset line for a sample (its id, its stored `input` and `answer`): tagged
/// `labeled`, `expected` the given answer (or, when none is given, the sampled
/// answer's text, which the person promoting it vouches for), graded by `asserts` (by
/// default `equals` against `expected`).
pub fn promoted_case(
    sample: (u64, &Value, &Value),
    expected: Option<Value>,
    asserts: Option<Vec<Value>>,
) -> Value {
    let (id, input, answer) = sample;
    let expected = expected.unwrap_or_else(|| answer["text"].clone());
    let asserts = asserts.unwrap_or_else(|| vec![json!({"type": "equals"})]);
    json!({
        "id": format!("sample-{id}"),
        "input": input,
        "expected": expected,
        "assert": asserts,
        "tags": ["labeled"],
    })
}

/// Appends `case` to the dataset of the suite at `suite_path` once the suite loads
/// with it; answers the case's id.
pub fn promote(suite_path: &Path, case: &Value) -> Result<String, QualityError> {
    let (suite_text, dataset_path) = suite::dataset_of(suite_path)?;
    let dataset_text =
        std::fs::read_to_string(&dataset_path).map_err(|source| QualityError::Read {
            path: dataset_path.display().to_string(),
            source,
        })?;
    let separator = if dataset_text.is_empty() || dataset_text.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    let line = format!("{separator}{case}\n");
    let candidate = format!("{dataset_text}{line}");
    Suite::parse(
        (&suite_path.display().to_string(), &suite_text),
        (&dataset_path.display().to_string(), &candidate),
    )?;
    let written = std::fs::OpenOptions::new()
        .append(true)
        .open(&dataset_path)
        .and_then(|mut file| {
            file.write_all(line.as_bytes())
                .and_then(|()| file.sync_all())
        });
    written.map_err(|source| QualityError::Read {
        path: dataset_path.display().to_string(),
        source,
    })?;
    Ok(case["id"].as_str().unwrap_or_default().to_owned())
}
