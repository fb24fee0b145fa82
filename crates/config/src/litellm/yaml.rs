//! A YAML document as a tree whose every node knows its line, so that the importer can
//! name the line of each key it cannot carry over.
//!
//! Built from the event stream of `yaml-rust2` (a maintained, pure-Rust YAML 1.2
//! parser) rather than its own tree, which drops positions. Anchors and aliases are
//! resolved; a `<<` merge key is honoured by [`Node::get`]. Scalars stay text: the
//! importer parses the few numbers and booleans it reads, and says which line held a
//! value it could not read.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// One value and the line it starts on (1-based).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) line: usize,
    pub(crate) value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// `null`, `~` or nothing.
    Null,
    /// Any other scalar, as written.
    Scalar(String),
    Seq(Vec<Node>),
    /// Keys in the order written.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The scalar's text.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(text) => Some(text),
            _ => None,
        }
    }

    /// The entries of a mapping (merge keys included, after the node's own); empty for
    /// anything else.
    pub(crate) fn entries(&self) -> Vec<(&str, &Node, &Node)> {
        let Value::Map(pairs) = &self.value else {
            return Vec::new();
        };
        let mut out: Vec<(&str, &Node, &Node)> = Vec::new();
        let mut merged = Vec::new();
        for (key, value) in pairs {
            match key.as_str() {
                Some("<<") => merged.push(value),
                Some(name) => out.push((name, key, value)),
                None => {}
            }
        }
        for source in merged {
            let sources: Vec<&Node> = match &source.value {
                Value::Seq(items) => items.iter().collect(),
                _ => vec![source],
            };
            for source in sources {
                for (name, key, value) in source.entries() {
                    if !out.iter().any(|(seen, _, _)| *seen == name) {
                        out.push((name, key, value));
                    }
                }
            }
        }
        out
    }

    /// The value of `key` in a mapping.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        self.entries()
            .into_iter()
            .find(|(name, _, _)| *name == key)
            .map(|(_, _, value)| value)
            .filter(|value| value.value != Value::Null)
    }

    /// The items of a sequence; empty for anything else.
    pub(crate) fn items(&self) -> &[Node] {
        match &self.value {
            Value::Seq(items) => items,
            _ => &[],
        }
    }
}

/// A YAML syntax error and its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub(crate) line: usize,
    pub(crate) message: String,
}

/// The first document of `text`, or `Null` for an empty one.
pub(crate) fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut builder = Builder::default();
    Parser::new_from_str(text)
        .load(&mut builder, false)
        .map_err(|e| SyntaxError {
            line: e.marker().line(),
            message: e.info().to_owned(),
        })?;
    Ok(builder.root.unwrap_or(Node {
        line: 1,
        value: Value::Null,
    }))
}

enum Frame {
    Seq(Node, usize),
    /// The mapping, its anchor, and a key waiting for its value.
    Map(Node, usize, Option<Node>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
}

impl Builder {
    fn finish(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq(seq, _)) => {
                if let Value::Seq(items) = &mut seq.value {
                    items.push(node);
                }
            }
            Some(Frame::Map(map, _, pending)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => {
                    if let Value::Map(pairs) = &mut map.value {
                        pairs.push((key, node));
                    }
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let line = mark.line();
        match event {
            Event::Scalar(text, style, anchor, _) => {
                let null = style == TScalarStyle::Plain
                    && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL");
                let value = if null {
                    Value::Null
                } else {
                    Value::Scalar(text)
                };
                self.finish(Node { line, value }, anchor);
            }
            Event::Alias(anchor) => {
                let node = self.anchors.get(&anchor).cloned().unwrap_or(Node {
                    line,
                    value: Value::Null,
                });
                self.finish(node, 0);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq(
                Node {
                    line,
                    value: Value::Seq(Vec::new()),
                },
                anchor,
            )),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map(
                Node {
                    line,
                    value: Value::Map(Vec::new()),
                },
                anchor,
                None,
            )),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(Frame::Seq(node, anchor) | Frame::Map(node, anchor, _)) =
                    self.stack.pop()
                {
                    self.finish(node, anchor);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_know_their_lines_and_aliases_and_merges_resolve() {
        let doc = parse(
            "base: &base\n  timeout: 30\nmodel_list:\n  - model_name: a\n    litellm_params:\n      <<: *base\n      model: gpt-4o\n",
        )
        .unwrap();
        let item = &doc.get("model_list").unwrap().items()[0];
        assert_eq!(item.line, 4);
        let params = item.get("litellm_params").unwrap();
        assert_eq!(params.get("model").unwrap().as_str(), Some("gpt-4o"));
        assert_eq!(params.get("model").unwrap().line, 7);
        assert_eq!(params.get("timeout").unwrap().as_str(), Some("30"));
    }

    #[test]
    fn a_syntax_error_has_its_line() {
        let error = parse("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(error.line >= 2, "{error:?}");
    }

    #[test]
    fn null_and_empty_read_as_absent() {
        let doc = parse("a: null\nb: ~\nc:\nd: 'null'\n").unwrap();
        assert!(doc.get("a").is_none() && doc.get("b").is_none() && doc.get("c").is_none());
        assert_eq!(doc.get("d").unwrap().as_str(), Some("null"));
    }
}
