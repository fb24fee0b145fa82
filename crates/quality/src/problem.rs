//! What is wrong with a suite or its dataset, located for the person who wrote it.
//!
//! A problem prints as one line, `support.jsonl:12: assert[1].pattern: unclosed group`
//! (a column after the line when it is known), as `holdfast config check` prints a
//! configuration's, so an editor can jump to it. Loading collects every problem it finds
//! instead of stopping at the first: fixing a dataset should not take one run per typo.

use std::fmt;

/// One thing wrong with a suite file or a dataset line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file, as named.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column in characters, when known.
    pub column: Option<usize>,
    /// The field's path (`thresholds.pass_rate.labeled`, `assert[1].pattern`), when
    /// the problem is in one field.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        f.write_str(": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found, in file order; never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl std::error::Error for Problems {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_is_one_line_an_editor_can_follow() {
        let mut p = Problem {
            file: "d.jsonl".into(),
            line: Some(3),
            column: None,
            field: Some("assert[0].pattern".into()),
            message: "unclosed group".into(),
        };
        assert_eq!(
            p.to_string(),
            "d.jsonl:3: assert[0].pattern: unclosed group"
        );
        p.column = Some(9);
        p.field = None;
        assert_eq!(p.to_string(), "d.jsonl:3:9: unclosed group");
    }
}
