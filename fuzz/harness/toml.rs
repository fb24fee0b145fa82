//! TOML-aware mutations, line by line: a value of another type or past its range, a
//! key or table given twice, a table turned into an array of tables, nesting deep in
//! inline arrays, inline tables and dotted keys, lines dropped, swapped or borrowed
//! from another file.
//!
//! The decision: work on lines rather than a parsed tree. Configurations and
//! definitions are written one `key = value` per line, so a line is the unit a person
//! gets wrong, and text keeps what a tree would lose (comments, the order of tables,
//! a key given twice).

use super::bytes::INTERESTING_NUMBERS;
use super::rng::Rng;

/// Mutates `data` as TOML lines; false when it is not UTF-8 text.
pub(crate) fn mutate(data: &mut Vec<u8>, rng: &mut Rng, other: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    let i = rng.below(lines.len());
    match rng.below(9) {
        0..=2 => {
            if let Some(eq) = lines[i].find('=') {
                let key = lines[i][..eq].trim_end().to_owned();
                lines[i] = format!("{key} = {}", value(rng));
            } else {
                lines.insert(i, format!("{} = {}", rng.pick(KEYS), value(rng)));
            }
        }
        3 => {
            let copy = lines[i].clone();
            lines.insert(rng.below(lines.len() + 1), copy);
        }
        4 => {
            lines.remove(i);
        }
        5 => {
            let j = rng.below(lines.len());
            lines.swap(i, j);
        }
        6 => {
            let theirs: Vec<&str> = std::str::from_utf8(other)
                .map(|t| t.lines().collect())
                .unwrap_or_default();
            if !theirs.is_empty() {
                let start = rng.below(theirs.len());
                let n = rng.len(theirs.len() - start).min(theirs.len() - start);
                for (k, line) in theirs[start..start + n].iter().enumerate() {
                    lines.insert((i + k).min(lines.len()), (*line).to_owned());
                }
            }
        }
        7 => {
            let line = &lines[i];
            lines[i] = if let Some(rest) = line.strip_prefix("[[") {
                format!("[{}", rest.trim_end_matches(']').to_owned() + "]")
            } else if let Some(rest) = line.strip_prefix('[') {
                format!("[[{rest}]")
            } else {
                format!("[{}]", rng.pick(KEYS))
            };
        }
        _ => {
            let depth = rng.len(5_000);
            let key = vec![*rng.pick(KEYS); depth].join(".");
            lines.insert(i, format!("{key} = 1"));
        }
    }
    let mut out = lines.join(if rng.one_in(16) { "\r\n" } else { "\n" });
    out.push('\n');
    *data = out.into_bytes();
    true
}

/// A TOML value chosen to be wrong somewhere: another type, out of range, huge,
/// deeply nested, or a string that a field parses further (durations, sizes, URLs).
fn value(rng: &mut Rng) -> String {
    match rng.below(10) {
        0 => (*rng.pick(INTERESTING_NUMBERS)).to_owned(),
        1 => (*rng.pick(&[
            "true",
            "false",
            "nan",
            "-inf",
            "+inf",
            "0x7fffffffffffffff",
            "0o777",
            "0b1",
            "1_000",
            "1979-05-27T07:32:00Z",
            "07:32:00",
            "1979-05-27",
        ]))
        .to_owned(),
        2 => format!("{:?}", rng.pick(STRINGS)),
        3 => {
            let depth = rng.len(10_000);
            format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
        }
        4 => {
            let depth = rng.len(10_000);
            format!("{}1{}", "{a = ".repeat(depth), " }".repeat(depth))
        }
        5 => "[]".to_owned(),
        6 => "{}".to_owned(),
        7 => format!("\"{}\"", "x".repeat(rng.len(100_000))),
        8 => (*rng.pick(&[
            "\"\"\"\nmulti\nline\"\"\"",
            "'''raw\\n'''",
            "\"\\u0000\"",
            "\"\\uD800\"",
            "'",
            "\"",
            "[1, \"two\", 3.0]",
            "{ a = 1, a = 2 }",
        ]))
        .to_owned(),
        _ => format!("\"{}\"", rng.pick(STRINGS)),
    }
}

/// Keys of holdfast's configuration and workflow files.
const KEYS: &[&str] = &[
    "server",
    "listen",
    "body_limit",
    "store",
    "url",
    "providers",
    "targets",
    "routes",
    "policies",
    "client_keys",
    "name",
    "key_env",
    "format",
    "base_url",
    "provider",
    "model",
    "context_window",
    "price",
    "timeouts",
    "retry",
    "budget",
    "breaker",
    "engine",
    "alerts",
    "steps",
    "kind",
    "depends_on",
    "timeout",
    "version",
    "prompt",
    "route",
    "max_attempts",
    "base",
    "cap",
    "jitter",
    "requests_per_minute",
    "tokens_per_minute",
    "degraded",
    "idempotency",
    "ttl",
    "logging",
    "webhooks",
    "workflows",
    "payload",
    "queue",
];

/// Strings that some field parses further.
const STRINGS: &[&str] = &[
    "",
    "0s",
    "-1s",
    "1.5.5s",
    "99999999999999999999h",
    "18446744073709551615ms",
    "1e309s",
    "1ns",
    "24h",
    "25h",
    "0B",
    "1EiB",
    "99999999999TiB",
    "-1KiB",
    "1.5MiB",
    "http://",
    "http://[::1",
    "https://user:pass@host:99999/x",
    "ftp://x",
    "sqlite://",
    "sqlite:///dev/null/x",
    "postgres://",
    "127.0.0.1:0",
    "0.0.0.0:99999",
    "[::]:80",
    "{{ input }}",
    "{{",
    "💩",
    "\u{0}",
    "\u{202E}",
    "a b",
    "A",
    "full",
    "decorrelated",
    "none",
    "openai",
    "anthropic",
    "llm",
    "http",
    "worker",
    "human",
    "sleep",
    "fail",
    "skip",
    "escalate",
];
