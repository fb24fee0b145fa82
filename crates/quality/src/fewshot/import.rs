//! Reading a JSONL file of examples, whole, before any of it is added.
//!
//! A line is `{"library": "...", "input": "...", "output": "...", "status"?:
//! "candidate" | "active"}` (`library` may be left to the command's `--library`; status
//! defaults to `active`: an imported file is a curated one). Every line is checked
//! first and every broken one named with its line and field; a file with a broken line
//! imports nothing, so fixing it and importing again never leaves half a file twice.

use holdfast_store::{ExampleSource, ExampleStatus, NewExample};
use serde::Deserialize;

use super::fingerprint;
use crate::names;
use crate::problem::{Problem, Problems};

/// The longest input or output imported, in bytes (the store's default document limit).
const MAX_TEXT: usize = 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    library: Option<String>,
    input: String,
    output: String,
    #[serde(default)]
    status: Option<String>,
}

/// Who imports, into which tenant, and the library of lines that name none.
#[derive(Debug, Clone)]
pub struct Importer<'a> {
    /// The file's name, as problems show it.
    pub file: &'a str,
    /// The tenant the examples go to.
    pub tenant: &'a str,
    /// The importing key's name.
    pub author: &'a str,
    /// The library of lines that name none.
    pub library: Option<&'a str>,
}

impl Importer<'_> {
    /// Every example of `text`, or every problem in it.
    pub fn parse(&self, text: &str) -> Result<Vec<NewExample>, Problems> {
        let mut examples = Vec::new();
        let mut problems = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            if raw.trim().is_empty() {
                continue;
            }
            match self.line(raw) {
                Ok(example) => examples.push(example),
                Err((field, message)) => problems.push(Problem {
                    file: self.file.to_owned(),
                    line: Some(i + 1),
                    column: None,
                    field,
                    message,
                }),
            }
        }
        if examples.is_empty() && problems.is_empty() {
            problems.push(Problem {
                file: self.file.to_owned(),
                line: None,
                column: None,
                field: None,
                message: "holds no example".into(),
            });
        }
        if problems.is_empty() {
            Ok(examples)
        } else {
            Err(Problems(problems))
        }
    }

    fn line(&self, raw: &str) -> Result<NewExample, (Option<String>, String)> {
        let line: Line = serde_json::from_str(raw).map_err(|e| (None, e.to_string()))?;
        let field = |name: &str, message: String| (Some(name.to_owned()), message);
        let library = line
            .library
            .as_deref()
            .or(self.library)
            .ok_or_else(|| field("library", "missing, and no --library given".into()))?;
        names::check(library).map_err(|m| field("library", m))?;
        if line.input.trim().is_empty() {
            return Err(field("input", "must not be empty".into()));
        }
        for (name, text) in [("input", &line.input), ("output", &line.output)] {
            if text.len() > MAX_TEXT {
                return Err(field(name, format!("longer than {MAX_TEXT} bytes")));
            }
            if text
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
            {
                return Err(field(name, "contains control characters".into()));
            }
        }
        let status = match line.status.as_deref() {
            None | Some("active") => ExampleStatus::Active,
            Some("candidate") => ExampleStatus::Candidate,
            Some(other) => {
                return Err(field(
                    "status",
                    format!("{other:?} is not candidate or active"),
                ));
            }
        };
        Ok(NewExample {
            tenant: self.tenant.to_owned(),
            library: library.to_owned(),
            fingerprint: fingerprint(&line.input),
            input: line.input,
            output: line.output,
            source: ExampleSource::Import,
            author: self.author.to_owned(),
            origin: Some(format!("import:{}", self.file)),
            status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn importer() -> Importer<'static> {
        Importer {
            file: "ex.jsonl",
            tenant: "acme",
            author: "ops",
            library: Some("triage"),
        }
    }

    #[test]
    fn every_line_is_read_with_its_library_and_status() {
        let text = r#"{"input": "a b", "output": "x"}

{"library": "other", "input": "c", "output": "y", "status": "candidate"}"#;
        let examples = importer().parse(text).unwrap_or_default();
        assert_eq!(examples.len(), 2);
        assert_eq!(
            (examples[0].library.as_str(), examples[0].status),
            ("triage", ExampleStatus::Active)
        );
        assert_eq!(
            (examples[1].library.as_str(), examples[1].status),
            ("other", ExampleStatus::Candidate)
        );
    }

    #[test]
    fn a_broken_line_is_named_and_nothing_is_returned() {
        let text = "{\"input\": \"a\", \"output\": \"x\"}\n{\"input\": \"b\"\n\
                    {\"input\": \"c\", \"output\": \"y\", \"status\": \"retired\"}\n\
                    {\"library\": \"two words\", \"input\": \"d\", \"output\": \"z\"}";
        let Err(problems) = importer().parse(text) else {
            panic!("a broken file was accepted")
        };
        let lines: Vec<_> = problems.0.iter().map(|p| p.line).collect();
        assert_eq!(lines, [Some(2), Some(3), Some(4)]);
        assert!(
            problems.to_string().starts_with("ex.jsonl:2: "),
            "{problems}"
        );
        assert!(problems.0[1].to_string().contains("status"), "{problems}");
    }

    #[test]
    fn an_empty_file_is_refused() {
        assert!(importer().parse("\n\n").is_err());
    }
}
