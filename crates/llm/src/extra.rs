//! `Deserialize` for wire structs that keep unknown fields in an `extra` map, written
//! without serde's `#[serde(flatten)]`.
//!
//! Why: `flatten` makes serde buffer the whole object, and every object nested in it,
//! into an intermediate tree before it deserializes the struct from that tree. Reading
//! each answer and stream chunk twice was the largest single cost of the gateway's hot
//! path. [`deserialize_with_extra!`] writes the visitor a derive would write if it
//! could: known fields by name, anything else straight into `extra` as a `Value`. The
//! behaviour is the derive's: a missing required field, a duplicated known field and a
//! value of the wrong type are errors with serde's own messages (so
//! `serde_path_to_error` still names the field), and `null` is `None` for an `Option`.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A map key, borrowed from the input when it has no escapes.
pub(crate) struct Key<'de>(pub(crate) Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Implements `Deserialize` for `$ty`, a struct of the listed fields plus
/// `extra: Map<String, Value>`. Each field is `required`, `default` (its type's
/// `Default`) or `default(path)` (a function making the default); its JSON name is its
/// Rust name.
macro_rules! deserialize_with_extra {
    ($ty:ident, $expecting:literal, { $($field:ident: $kind:ident $(($default:path))?),* $(,)? }) => {
        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct FieldsVisitor;
                impl<'de> ::serde::de::Visitor<'de> for FieldsVisitor {
                    type Value = $ty;

                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        f.write_str($expecting)
                    }

                    fn visit_map<A: ::serde::de::MapAccess<'de>>(self, mut map: A) -> Result<$ty, A::Error> {
                        $(let mut $field = None;)*
                        let mut extra = ::serde_json::Map::new();
                        while let Some($crate::extra::Key(key)) = map.next_key()? {
                            match &*key {
                                $(stringify!($field) => {
                                    if $field.is_some() {
                                        return Err(::serde::de::Error::duplicate_field(stringify!($field)));
                                    }
                                    $field = Some(map.next_value()?);
                                })*
                                _ => {
                                    let value: ::serde_json::Value = map.next_value()?;
                                    extra.insert(key.into_owned(), value);
                                }
                            }
                        }
                        Ok($ty {
                            $($field: deserialize_with_extra!(@finish $field, $kind $(($default))?),)*
                            extra,
                        })
                    }
                }
                deserializer.deserialize_map(FieldsVisitor)
            }
        }
    };
    (@finish $field:ident, required) => {
        match $field {
            Some(value) => value,
            None => return Err(::serde::de::Error::missing_field(stringify!($field))),
        }
    };
    (@finish $field:ident, default) => {
        $field.unwrap_or_default()
    };
    (@finish $field:ident, default($default:path)) => {
        $field.unwrap_or_else($default)
    };
}

pub(crate) use deserialize_with_extra;
