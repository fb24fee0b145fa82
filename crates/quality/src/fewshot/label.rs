//! A correction as a labeled case of its task type's evaluation suite: the input the
//! model was given, the answer a person said is right, tagged `labeled` and
//! `correction`, appended to the suite's JSONL dataset. Production corrections are the
//! most valuable labels (real failures on real inputs), so the suite that gates the
//! task type learns them as the few-shot library does.
//!
//! The decision: a case is added only to a suite of that very route (`[task] route`),
//! whose cases are chat requests like the corrected call; the case's id is the
//! example's, so a correction merged into an example already labeled adds nothing; and
//! the suite is read (and so checked) with the new line before it is written, so that a
//! dataset is never left broken.

use std::io::Write;
use std::path::{Path, PathBuf};

use holdfast_store::Example;
use serde_json::json;

use crate::error::QualityError;
use crate::suite::{Suite, TaskType};

/// A correction to label: the example it became and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labeled<'a> {
    /// The route whose call it corrects.
    pub route: &'a str,
    /// The example's id.
    pub example_id: u64,
    /// The call's input (the user turn).
    pub input: &'a str,
    /// The right answer.
    pub output: &'a str,
}

/// Appends `labeled` to the dataset of the suite in `suite_file` when the suite's task
/// is its route and the dataset has no case for the example yet; the dataset written,
/// if one was.
pub fn label_correction(
    suite_file: &Path,
    labeled: &Labeled<'_>,
) -> Result<Option<PathBuf>, QualityError> {
    let suite = Suite::load(suite_file)?;
    let id = format!("correction-{}", labeled.example_id);
    let ours = matches!(&suite.task, TaskType::Route { route } if route == labeled.route);
    if !ours || suite.cases.iter().any(|c| c.id == id) {
        return Ok(None);
    }
    let dataset = dataset_of(suite_file)?;
    let shown = dataset.display().to_string();
    let read = |source| QualityError::Read {
        path: shown.clone(),
        source,
    };
    let text = std::fs::read_to_string(&dataset).map_err(read)?;
    let newline = if text.is_empty() || text.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    let line = json!({
        "id": id,
        "tags": ["labeled", "correction"],
        "input": [{"role": "user", "content": labeled.input}],
        "expected": labeled.output,
        "assert": [{"type": "equals"}],
    })
    .to_string();
    let suite_text = std::fs::read_to_string(suite_file).map_err(|source| QualityError::Read {
        path: suite_file.display().to_string(),
        source,
    })?;
    let whole = format!("{text}{newline}{line}\n");
    let suite_name = suite_file.display().to_string();
    Suite::parse((&suite_name, &suite_text), (&shown, &whole))?;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&dataset)
        .map_err(read)?;
    file.write_all(format!("{newline}{line}\n").as_bytes())
        .and_then(|()| file.sync_data())
        .map_err(read)?;
    Ok(Some(dataset))
}

/// Labels `example` (a correction of one of `routes`) in each of `suites`; the suites
/// that could not take it, with why.
pub fn label_in_suites(
    suites: &[PathBuf],
    routes: &[String],
    example: &Example,
) -> Vec<(PathBuf, QualityError)> {
    let mut failed = Vec::new();
    for suite in suites {
        for route in routes {
            let labeled = Labeled {
                route,
                example_id: example.id,
                input: &example.input,
                output: &example.output,
            };
            if let Err(e) = label_correction(suite, &labeled) {
                failed.push((suite.clone(), e));
            }
        }
    }
    failed
}

/// The dataset a suite file names, relative to it.
fn dataset_of(suite_file: &Path) -> Result<PathBuf, QualityError> {
    let text = std::fs::read_to_string(suite_file).map_err(|source| QualityError::Read {
        path: suite_file.display().to_string(),
        source,
    })?;
    let dataset = toml::from_str::<toml::Table>(&text)
        .ok()
        .and_then(|t| t.get("dataset").and_then(|d| d.as_str()).map(str::to_owned))
        .unwrap_or_default();
    Ok(suite_file.parent().unwrap_or(Path::new("")).join(dataset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suite(dir: &Path, route: &str, dataset: &str) -> PathBuf {
        let file = dir.join(format!("{route}.toml"));
        std::fs::write(
            &file,
            format!(
                "name = \"{route}\"\ndataset = \"{route}.jsonl\"\n[task]\nroute = \"{route}\"\n"
            ),
        )
        .unwrap();
        std::fs::write(dir.join(format!("{route}.jsonl")), dataset).unwrap();
        file
    }

    fn dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("holdfast-label-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_correction_becomes_a_labeled_case_of_its_routes_suite_once() {
        let dir = dir("once");
        let first = r#"{"id": "a", "tags": ["labeled"], "input": [{"role": "user", "content": "x"}], "assert": [{"type": "equals", "value": "y"}]}"#;
        let file = suite(&dir, "triage", first);
        let labeled = Labeled {
            route: "triage",
            example_id: 7,
            input: "Ticket: charged twice",
            output: "billing",
        };
        let written = label_correction(&file, &labeled).unwrap();
        assert_eq!(written, Some(dir.join("triage.jsonl")));
        let suite = Suite::load(&file).unwrap();
        let case = suite.cases.iter().find(|c| c.id == "correction-7").unwrap();
        assert_eq!(case.tags, ["labeled", "correction"]);
        assert_eq!(case.expected, Some(json!("billing")));
        assert_eq!(suite.cases.len(), 2);
        // The same example again, or another route's correction: nothing is added.
        assert_eq!(label_correction(&file, &labeled).unwrap(), None);
        let other = Labeled {
            route: "other",
            ..labeled
        };
        assert_eq!(label_correction(&file, &other).unwrap(), None);
        assert_eq!(Suite::load(&file).unwrap().cases.len(), 2);
    }
}
