//! From a field path or a byte offset to a line and column in the file.
//!
//! Semantic errors (an unknown target, a cap below its base) are found after
//! deserialization, when the spans are gone; instead of threading `Spanned` through
//! every schema type, the locator re-parses the text with spans once and walks it by
//! path. A path that is only partly in the file (a default) lands on the nearest table
//! that is.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

use crate::path::{FieldPath, Segment};

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

    /// Where the field at `path` is written, or the nearest enclosing table that is.
    pub(crate) fn find(&self, path: &FieldPath) -> Position {
        self.position(self.span(path).map_or(0, |span| span.start))
    }

    /// The span of the value at `path`, or of the nearest enclosing one in the file.
    pub(crate) fn span(&self, path: &FieldPath) -> Option<Range<usize>> {
        let mut best = None;
        let mut table = Some(&self.root);
        let mut value: Option<&DeValue<'t>> = None;
        for segment in path.segments() {
            let next = match (segment, table, value) {
                (Segment::Key(key), Some(table), _) => table
                    .iter()
                    .find(|(k, _)| k.get_ref().as_ref() == key.as_str())
                    .map(|(_, v)| v),
                (Segment::Index(i), _, Some(DeValue::Array(array))) => array.get(*i),
                (Segment::Key(_), None, _) | (Segment::Index(_), _, _) => None,
            };
            let Some(next) = next else { break };
            best = Some(next.span());
            value = Some(next.get_ref());
            table = next.get_ref().as_table();
        }
        best
    }

    /// The path of the last key written at or before `offset`: where a syntax error is.
    pub(crate) fn path_at(&self, offset: usize) -> Option<FieldPath> {
        let mut best: Option<(usize, FieldPath)> = None;
        walk(&self.root, &FieldPath::default(), &mut |start, path| {
            if start <= offset && best.as_ref().is_none_or(|(s, _)| start >= *s) {
                best = Some((start, path.clone()));
            }
        });
        best.map(|(_, path)| path)
    }

    /// The byte offset where `path` is written, for ordering by position in the file.
    pub(crate) fn offset(&self, path: &FieldPath) -> usize {
        self.span(path).map_or(usize::MAX, |span| span.start)
    }
}

/// Calls `visit` with the key span start and path of every key under `table`.
fn walk(table: &DeTable<'_>, prefix: &FieldPath, visit: &mut dyn FnMut(usize, &FieldPath)) {
    for (key, value) in table.iter() {
        let path = prefix.key(key.get_ref());
        visit(key.span().start, &path);
        walk_value(value.get_ref(), &path, visit);
    }
}

fn walk_value(value: &DeValue<'_>, path: &FieldPath, visit: &mut dyn FnMut(usize, &FieldPath)) {
    match value {
        DeValue::Table(table) => walk(table, path, visit),
        DeValue::Array(array) => {
            for (i, item) in array.iter().enumerate() {
                walk_value(item.get_ref(), &path.index(i), visit);
            }
        }
        DeValue::String(_)
        | DeValue::Integer(_)
        | DeValue::Float(_)
        | DeValue::Boolean(_)
        | DeValue::Datetime(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[server]\nlisten = \"x\"\n\n[routes.smart]\ntargets = [\"a\", \"gpt-5\"]\n";

    #[test]
    fn finds_values_by_path() {
        let locator = Locator::new(TEXT);
        let path = FieldPath::root("routes")
            .key("smart")
            .key("targets")
            .index(1);
        assert_eq!(
            locator.find(&path),
            Position {
                line: 5,
                column: 17
            }
        );
        let listen = FieldPath::root("server").key("listen");
        assert_eq!(
            locator.find(&listen),
            Position {
                line: 2,
                column: 10
            }
        );
    }

    #[test]
    fn missing_fields_land_on_their_table() {
        let locator = Locator::new(TEXT);
        let path = FieldPath::root("routes").key("smart").key("policy");
        assert_eq!(locator.find(&path), Position { line: 4, column: 1 });
        assert_eq!(
            locator.find(&FieldPath::root("nothing")),
            Position { line: 1, column: 1 }
        );
    }

    #[test]
    fn columns_count_characters() {
        let locator = Locator::new("a = \"é\"\nb = 1\n");
        assert_eq!(locator.position(9), Position { line: 2, column: 1 });
        assert_eq!(locator.position(7), Position { line: 1, column: 7 });
    }

    #[test]
    fn path_at_names_the_key_being_written() {
        let text = "[targets.a]\nmodel = \"x\"\nn = [1\n";
        let locator = Locator::new(text);
        let path = locator.path_at(text.len()).map(|p| p.to_string());
        assert_eq!(path.as_deref(), Some("targets.a.n"));
    }
}
