//! How a row says "this value is an object": a small JSON reference in place of the
//! value, and an escape for the rare value that looks like one.
//!
//! The decision: the reference lives in the same JSON column as the value it replaces,
//! so neither backend's schema nor its SQL changes, and a row without artifacts reads
//! exactly as before. Only the top level of a value is ever replaced, so telling a
//! reference from a value is one look at the top level. A value written by a client
//! that happens to have the reference's shape is wrapped as a literal on the way in,
//! so it can never be taken for a reference (and never read another task's object).

use serde_json::{Map, Value};

/// The key of a reference: `{"$holdfast_artifact": {"sha256": "…", "bytes": N}}`.
pub(crate) const REFERENCE_KEY: &str = "$holdfast_artifact";
/// The key of an escaped value: `{"$holdfast_literal": value}`.
const LITERAL_KEY: &str = "$holdfast_literal";

/// An object's identity as a row holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reference {
    /// The SHA-256 of the value's JSON bytes, in lowercase hex.
    pub(crate) sha256: String,
    /// How many bytes the value's JSON has.
    pub(crate) bytes: u64,
}

impl Reference {
    /// The JSON a row holds in place of the value.
    pub(crate) fn to_value(&self) -> Value {
        let mut inner = Map::new();
        inner.insert("sha256".into(), Value::String(self.sha256.clone()));
        inner.insert("bytes".into(), Value::from(self.bytes));
        let mut outer = Map::new();
        outer.insert(REFERENCE_KEY.into(), Value::Object(inner));
        Value::Object(outer)
    }
}

/// What a stored value is.
#[derive(Debug, PartialEq)]
pub(crate) enum Stored {
    /// A value kept in the row itself.
    Inline(Value),
    /// A value kept as an object.
    Object(Reference),
}

/// Whether `value` has the shape of a reference or a literal, and so must be escaped
/// before it is stored inline.
fn looks_like_ours(value: &Value) -> bool {
    match value {
        Value::Object(map) if map.len() == 1 => {
            map.contains_key(REFERENCE_KEY) || map.contains_key(LITERAL_KEY)
        }
        _ => false,
    }
}

/// The value to store inline for `value`: itself, or itself wrapped as a literal.
pub(crate) fn escape(value: Value) -> Value {
    if looks_like_ours(&value) {
        let mut outer = Map::new();
        outer.insert(LITERAL_KEY.into(), value);
        Value::Object(outer)
    } else {
        value
    }
}

/// Reads a stored value: a reference, an escaped literal (unwrapped) or a plain value.
/// A reference whose fields are malformed is read as the value it is (only holdfast
/// writes references, and it writes them whole).
pub(crate) fn read(value: Value) -> Stored {
    let Value::Object(mut map) = value else {
        return Stored::Inline(value);
    };
    if map.len() != 1 {
        return Stored::Inline(Value::Object(map));
    }
    if let Some(literal) = map.remove(LITERAL_KEY) {
        return Stored::Inline(literal);
    }
    if let Some(reference) = map.get(REFERENCE_KEY).and_then(parse_reference) {
        return Stored::Object(reference);
    }
    Stored::Inline(Value::Object(map))
}

/// Whether a stored value is a reference, without taking it apart.
#[cfg(test)]
pub(crate) fn is_reference(value: &Value) -> bool {
    match value {
        Value::Object(map) if map.len() == 1 => {
            map.get(REFERENCE_KEY).and_then(parse_reference).is_some()
        }
        _ => false,
    }
}

fn parse_reference(inner: &Value) -> Option<Reference> {
    let sha256 = inner.get("sha256")?.as_str()?;
    let valid = sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !valid {
        return None;
    }
    Some(Reference {
        sha256: sha256.to_owned(),
        bytes: inner.get("bytes")?.as_u64()?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn reference() -> Reference {
        Reference {
            sha256: "ab".repeat(32),
            bytes: 12,
        }
    }

    #[test]
    fn a_reference_reads_back_as_itself() {
        assert_eq!(read(reference().to_value()), Stored::Object(reference()));
        assert!(is_reference(&reference().to_value()));
    }

    #[test]
    fn plain_values_pass_untouched() {
        for value in [
            json!(null),
            json!("text"),
            json!({"a": 1}),
            json!({"$holdfast_artifact": 1, "other": 2}),
        ] {
            assert_eq!(escape(value.clone()), value);
            assert_eq!(read(value.clone()), Stored::Inline(value));
        }
    }

    /// A client's value shaped like a reference must never be read as one: it could
    /// name another task's object.
    #[test]
    fn a_value_shaped_like_a_reference_is_escaped_and_reads_back_whole() {
        for value in [
            reference().to_value(),
            json!({"$holdfast_literal": {"x": 1}}),
            json!({"$holdfast_artifact": "nonsense"}),
        ] {
            let stored = escape(value.clone());
            assert_ne!(stored, value);
            assert!(!is_reference(&stored));
            assert_eq!(read(stored), Stored::Inline(value));
        }
    }

    #[test]
    fn a_malformed_reference_is_not_one() {
        for bad in [
            json!({"$holdfast_artifact": {"sha256": "AB".repeat(32), "bytes": 1}}),
            json!({"$holdfast_artifact": {"sha256": "ab", "bytes": 1}}),
            json!({"$holdfast_artifact": {"sha256": "ab".repeat(32)}}),
        ] {
            assert!(!is_reference(&bad));
            assert_eq!(read(bad.clone()), Stored::Inline(bad));
        }
    }
}
