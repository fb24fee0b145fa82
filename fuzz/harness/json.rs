//! JSON-aware mutations: the shapes a hostile client sends on purpose rather than by
//! accident (a field of the wrong type, numbers past every integer type, nesting
//! thousands deep, a key given twice, unknown keys, huge strings, escapes that name
//! lone surrogates or NUL, a subtree moved from another document).
//!
//! The decision: mutate the parsed tree, then write it back, and express what a tree
//! cannot hold (nesting deeper than serde_json reads, a repeated key, a number no `f64`
//! holds) as raw text spliced in at a placeholder. So every output is either valid JSON
//! or invalid in exactly one deliberate way.

use serde_json::{Map, Value};

use super::bytes::{INTERESTING_NUMBERS, MAX_INPUT};
use super::rng::Rng;

/// Marks a string that is replaced by raw text after serialisation.
const RAW: &str = "\u{E000}raw";

/// Mutates `data` as JSON when it parses as JSON; returns false (and leaves it alone)
/// when it does not.
pub(crate) fn mutate(data: &mut Vec<u8>, rng: &mut Rng, other: &[u8]) -> bool {
    let Ok(mut doc) = serde_json::from_slice::<Value>(data) else {
        return false;
    };
    let donor = serde_json::from_slice::<Value>(other).ok();
    let mut raws = Vec::new();
    let count = count_nodes(&doc);
    let target = rng.below(count);
    let mut seen = 0;
    let keep_kind = rng.one_in(2);
    visit(&mut doc, target, &mut seen, &mut |node| {
        if keep_kind {
            vary(node, rng, donor.as_ref());
        } else {
            change(node, rng, donor.as_ref(), &mut raws);
        }
    });
    let Ok(mut text) = serde_json::to_string(&doc) else {
        return false;
    };
    for (i, raw) in raws.iter().enumerate() {
        text = text.replacen(&format!("\"{RAW}{i}\""), raw, 1);
    }
    if text.len() > MAX_INPUT {
        return false;
    }
    *data = text.into_bytes();
    true
}

fn count_nodes(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(count_nodes).sum(),
        Value::Object(map) => map.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// Calls `f` on the `target`-th node in pre-order.
fn visit(value: &mut Value, target: usize, seen: &mut usize, f: &mut dyn FnMut(&mut Value)) {
    if *seen == target {
        *seen += 1;
        f(value);
        return;
    }
    *seen += 1;
    match value {
        Value::Array(items) => {
            for item in items {
                if *seen > target {
                    return;
                }
                visit(item, target, seen, f);
            }
        }
        Value::Object(map) => {
            for item in map.values_mut() {
                if *seen > target {
                    return;
                }
                visit(item, target, seen, f);
            }
        }
        _ => {}
    }
}

fn raw(raws: &mut Vec<String>, text: String) -> Value {
    raws.push(text);
    Value::String(format!("{RAW}{}", raws.len() - 1))
}

/// One change to `node` that keeps its JSON type, so that the document usually still
/// has the reader's shape and the case reaches the checks past the parser.
fn vary(node: &mut Value, rng: &mut Rng, donor: Option<&Value>) {
    match node {
        Value::String(text) => {
            *text = match rng.below(4) {
                0 => (*rng.pick(ODD_STRINGS)).to_owned(),
                1 => long_string(rng),
                2 => donor.and_then(|d| pick_string(d, rng)).unwrap_or_default(),
                _ => {
                    let mut chars: Vec<char> = text.chars().collect();
                    if !chars.is_empty() {
                        let i = rng.below(chars.len());
                        chars[i] = *rng.pick(&['\u{0}', 'é', '\u{FFFF}', '\n', '"', '\\', '💩']);
                    }
                    chars.into_iter().collect()
                }
            };
        }
        Value::Number(_) => {
            *node = match rng.below(6) {
                0 => serde_json::json!(0),
                1 => serde_json::json!(-1),
                2 => serde_json::json!(u64::from(u32::MAX) + 1),
                3 => serde_json::json!(u64::MAX),
                4 => serde_json::json!(1e300),
                _ => serde_json::json!(rng.below(5)),
            };
        }
        Value::Bool(b) => *b = !*b,
        Value::Array(items) if !items.is_empty() => {
            let i = rng.below(items.len());
            match rng.below(3) {
                0 => {
                    items.remove(i);
                }
                1 => {
                    let copy = items[i].clone();
                    items.insert(rng.below(items.len() + 1), copy);
                }
                _ => {
                    let j = rng.below(items.len());
                    items.swap(i, j);
                }
            }
        }
        Value::Object(map) if !map.is_empty() && rng.one_in(2) => {
            let key = map
                .keys()
                .nth(rng.below(map.len()))
                .cloned()
                .unwrap_or_default();
            map.remove(&key);
        }
        Value::Object(map) => {
            if let Some((key, value)) = donor.and_then(|d| pick_member(d, rng)) {
                map.insert(key, value);
            }
        }
        Value::Array(_) | Value::Null => {}
    }
}

/// A string somewhere in `donor`.
fn pick_string(donor: &Value, rng: &mut Rng) -> Option<String> {
    let mut found = Vec::new();
    collect(donor, &mut |v| {
        if let Value::String(s) = v {
            found.push(s.clone());
        }
    });
    (!found.is_empty()).then(|| rng.pick(&found).clone())
}

/// A key and its value from some object in `donor`.
fn pick_member(donor: &Value, rng: &mut Rng) -> Option<(String, Value)> {
    let mut found = Vec::new();
    collect(donor, &mut |v| {
        if let Value::Object(map) = v {
            found.extend(map.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    });
    (!found.is_empty()).then(|| rng.pick(&found).clone())
}

fn collect(value: &Value, f: &mut dyn FnMut(&Value)) {
    f(value);
    match value {
        Value::Array(items) => items.iter().for_each(|v| collect(v, f)),
        Value::Object(map) => map.values().for_each(|v| collect(v, f)),
        _ => {}
    }
}

/// One change to `node`, of its type or its shape.
fn change(node: &mut Value, rng: &mut Rng, donor: Option<&Value>, raws: &mut Vec<String>) {
    match rng.below(12) {
        0 => *node = swap_type(node, rng),
        1 => *node = raw(raws, (*rng.pick(INTERESTING_NUMBERS)).to_owned()),
        2 => *node = raw(raws, deep_nesting(rng)),
        3 => *node = Value::String(long_string(rng)),
        4 => *node = Value::String((*rng.pick(ODD_STRINGS)).to_owned()),
        5 => *node = raw(raws, (*rng.pick(ODD_ESCAPES)).to_owned()),
        6 => match node {
            Value::Object(map) if !map.is_empty() => {
                let key = map
                    .keys()
                    .nth(rng.below(map.len()))
                    .cloned()
                    .unwrap_or_default();
                map.remove(&key);
            }
            Value::Array(items) if !items.is_empty() => {
                let i = rng.below(items.len());
                items.remove(i);
            }
            _ => *node = Value::Null,
        },
        7 => match node {
            Value::Object(map) if !map.is_empty() => {
                let (key, value) = map
                    .iter()
                    .nth(rng.below(map.len()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .unwrap_or_default();
                let mut text = serde_json::to_string(&*map).unwrap_or_default();
                text.pop(); // the closing brace
                let copy = swap_type(&value, rng);
                let key = serde_json::to_string(&key).unwrap_or_default();
                let copy = serde_json::to_string(&copy).unwrap_or_default();
                text.push_str(&format!(",{key}:{copy}}}"));
                *node = raw(raws, text);
            }
            _ => *node = Value::Object(Map::new()),
        },
        8 => match node {
            Value::Object(map) => {
                let key = (*rng.pick(ODD_KEYS)).to_owned();
                map.insert(key, swap_type(&Value::Null, rng));
            }
            Value::Array(items) if !items.is_empty() => {
                let item = items[rng.below(items.len())].clone();
                let times = rng.len(2000);
                for _ in 0..times {
                    items.push(item.clone());
                }
            }
            _ => *node = Value::Array(vec![node.clone()]),
        },
        9 => match donor {
            Some(donor) => *node = pick_subtree(donor, rng),
            None => *node = Value::Array(Vec::new()),
        },
        10 => {
            let inner = node.clone();
            *node = if rng.one_in(2) {
                Value::Array(vec![inner])
            } else {
                let mut map = Map::new();
                map.insert("value".to_owned(), inner);
                Value::Object(map)
            };
        }
        _ => *node = Value::Object(Map::new()),
    }
}

/// The same node as another JSON type.
fn swap_type(node: &Value, rng: &mut Rng) -> Value {
    match rng.below(7) {
        0 => Value::Null,
        1 => Value::Bool(rng.one_in(2)),
        2 => serde_json::json!(rng.next_u64() as i64),
        3 => serde_json::json!(-1.5e300),
        4 => Value::String(node.to_string()),
        5 => Value::Array(vec![node.clone()]),
        _ => serde_json::json!({"type": "text", "text": node.to_string()}),
    }
}

fn pick_subtree(donor: &Value, rng: &mut Rng) -> Value {
    let count = count_nodes(donor);
    let target = rng.below(count);
    let mut seen = 0;
    let mut copy = donor.clone();
    let mut found = Value::Null;
    visit(&mut copy, target, &mut seen, &mut |node| {
        found = node.clone()
    });
    found
}

/// Arrays or objects nested far past any parser's limit, closed or not.
fn deep_nesting(rng: &mut Rng) -> String {
    let depth = match rng.below(4) {
        0 => 127 + rng.below(4),
        1 => 1000,
        2 => 100_000,
        _ => rng.len(20_000),
    };
    let (open, close) = match rng.below(3) {
        0 => ("[", "]"),
        1 => ("{\"a\":", "}"),
        _ => ("[{\"a\":", "}]"),
    };
    let mut text = open.repeat(depth);
    text.push_str("null");
    if !rng.one_in(4) {
        text.push_str(&close.repeat(depth));
    }
    text
}

fn long_string(rng: &mut Rng) -> String {
    let unit = *rng.pick(&["x", "é", "✓", "💩", " ", "\n", "{{", "\\"]);
    unit.repeat(rng.len(100_000))
}

/// Strings that mean something to some reader: template syntax, format strings,
/// durations and sizes at their edges, URLs, paths, names with odd characters.
const ODD_STRINGS: &[&str] = &[
    "",
    " ",
    "\u{0}",
    "{{ input }}",
    "{{",
    "{% for x in y %}",
    "{{ steps.a.output }}",
    "%s%n",
    "-1s",
    "0s",
    "1.5.5s",
    "99999999999999999999h",
    "18446744073709551615ms",
    "1e309s",
    "NaN",
    "inf",
    "-0",
    "http://[::1]:99999/",
    "http://user:pass@127.0.0.1:0/",
    "file:///etc/passwd",
    "../../../../etc/passwd",
    "a/b",
    "💩",
    "\u{202E}evil",
    "function",
    "user",
    "assistant",
    "tool",
    "system",
    "developer",
    "json_schema",
    "json_object",
    "text",
    "image_url",
    "tool_use",
    "tool_result",
    "auto",
    "none",
    "required",
];

/// String bodies written with escapes serde must decode (or refuse) itself.
const ODD_ESCAPES: &[&str] = &[
    "\"\\ud800\"",
    "\"\\udc00\"",
    "\"\\ud800\\u0041\"",
    "\"\\u0000\"",
    "\"\\uZZZZ\"",
    "\"\\x41\"",
    "\"\\",
    "\"unterminated",
    "'single'",
    "NaN",
    "Infinity",
    "-Infinity",
    "undefined",
    "0x10",
    "01",
    "+1",
    ".5",
    "1.",
    "1e",
    "--1",
    "tru",
    "nul",
];

/// Keys a reader may not expect: unknown fields, fields of other shapes, empty.
const ODD_KEYS: &[&str] = &[
    "",
    "unknown_field",
    "extra",
    "role",
    "type",
    "content",
    "model",
    "stream",
    "__proto__",
    "steps",
    "kind",
    "depends_on",
    "input_schema",
    "$ref",
    "version",
];
