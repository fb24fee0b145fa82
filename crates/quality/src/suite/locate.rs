//! From a field path or a byte offset to a line and column of a suite file.
//!
//! Range checks run after deserialisation, when serde's spans are gone; the file is
//! parsed once more with spans and walked by key, as the configuration crate does. A
//! field that is not in the file (a default) lands on the nearest table that is.

use toml::de::{DeTable, DeValue};

/// A place in the file, 1-based; the column counts characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

/// The parsed document with its spans.
pub(crate) struct Locator<'t> {
    text: &'t str,
    root: DeTable<'t>,
}

impl<'t> Locator<'t> {
    /// Parses `text`, keeping what a syntax error leaves usable.
    pub(crate) fn new(text: &'t str) -> Self {
        let (root, _errors) = DeTable::parse_recoverable(text);
        Locator {
            text,
            root: root.into_inner(),
        }
    }

    /// The line and column of byte `offset`.
    pub(crate) fn position(&self, offset: usize) -> Position {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position {
            line: before.matches('\n').count() + 1,
            column: before.get(line_start..).map_or(0, |s| s.chars().count()) + 1,
        }
    }

    /// Where the value at `keys` is written, or the nearest enclosing table that is.
    pub(crate) fn find(&self, keys: &[&str]) -> Position {
        let mut best = 0;
        let mut table = Some(&self.root);
        for key in keys {
            let Some(found) = table.and_then(|t| {
                t.iter()
                    .find(|(k, _)| k.get_ref().as_ref() == *key)
                    .map(|(_, v)| v)
            }) else {
                break;
            };
            best = found.span().start;
            table = match found.get_ref() {
                DeValue::Table(inner) => Some(inner),
                _ => None,
            };
        }
        self.position(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_values_and_falls_back_to_their_table() {
        let text = "name = \"s\"\n\n[thresholds]\npass_rate = { labeled = 2 }\n";
        let locator = Locator::new(text);
        let at = locator.find(&["thresholds", "pass_rate", "labeled"]);
        assert_eq!((at.line, at.column), (4, 25));
        assert_eq!(locator.find(&["thresholds", "cost_per_case"]).line, 3);
        assert_eq!(locator.find(&["name"]), Position { line: 1, column: 8 });
    }
}
