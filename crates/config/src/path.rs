//! Field paths as a user would write them: `routes.smart.targets[1]`,
//! `targets."claude-3.5".model`.
//!
//! Every error names the field it is about, and the same path is what the locator
//! follows through the parsed document to find the line and column, so a path is data
//! (keys and indices), rendered only at the edge.

use std::fmt;

/// One step of a [`FieldPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// The path of a field from the document's root.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct FieldPath(Vec<Segment>);

impl FieldPath {
    /// The path of a top-level key.
    pub(crate) fn root(key: &str) -> Self {
        FieldPath(vec![Segment::Key(key.to_owned())])
    }

    /// This path followed by `key`.
    pub(crate) fn key(&self, key: &str) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Key(key.to_owned()));
        path
    }

    /// This path followed by `[index]`.
    pub(crate) fn index(&self, index: usize) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Index(index));
        path
    }

    /// This path followed by the dotted keys of `dotted` (`"retry.cap"`), as the policy
    /// crate names its fields.
    pub(crate) fn dotted(&self, dotted: &str) -> Self {
        let mut path = self.clone();
        path.0
            .extend(dotted.split('.').map(|key| Segment::Key(key.to_owned())));
        path
    }

    /// The segments, from the root.
    pub(crate) fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// Appends a segment.
    pub(crate) fn push(&mut self, segment: Segment) {
        self.0.push(segment);
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Index(index) => write!(f, "[{index}]")?,
                Segment::Key(key) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    write_key(f, key)?;
                }
            }
        }
        Ok(())
    }
}

/// Writes a key bare when TOML allows it, quoted otherwise.
fn write_key(f: &mut fmt::Formatter<'_>, key: &str) -> fmt::Result {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        f.write_str(key)
    } else {
        write!(f, "{key:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_toml() {
        let path = FieldPath::root("routes")
            .key("smart")
            .key("targets")
            .index(1);
        assert_eq!(path.to_string(), "routes.smart.targets[1]");
        let quoted = FieldPath::root("targets").key("claude-3.5").key("model");
        assert_eq!(quoted.to_string(), "targets.\"claude-3.5\".model");
        let dotted = FieldPath::root("policies")
            .key("default")
            .dotted("retry.cap");
        assert_eq!(dotted.to_string(), "policies.default.retry.cap");
        assert_eq!(
            FieldPath::root("client_keys")
                .index(0)
                .key("name")
                .to_string(),
            "client_keys[0].name"
        );
    }
}
