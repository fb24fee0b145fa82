//! `holdfast config check` over broken configuration files, end to end.
//!
//! A configuration mistake must be found before the gateway serves, and the message must
//! say where: the file, the line and the field. Each case below breaks one line of a
//! valid file and names the line and the field the message must point at.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{TempDir, run};

/// A valid file; the cases replace one of its lines (numbered from 1).
const VALID: &str = r#"[server]
listen = "127.0.0.1:0"
body_limit = "1MiB"

[providers.openai]
format = "openai"
base_url = "http://127.0.0.1:9/v1"

[targets.gpt]
provider = "openai"
model = "gpt-4o"
context_window = 128000
timeouts = { first_byte = "2s", total = "30s" }

[routes.smart]
targets = ["gpt"]
policy = "default"

[policies.default]
retry = { max_attempts = 3, base = "200ms", cap = "10s" }
breaker = { failure_rate = 0.5, min_calls = 20 }
"#;

/// (what is broken, the line replaced, its new text, the field the message must name).
const CASES: &[(&str, usize, &str, &str)] = &[
    ("unknown field", 3, "body_limt = \"1MiB\"", "body_limt"),
    ("bad size", 3, "body_limit = \"lots\"", "server.body_limit"),
    (
        "unknown format",
        6,
        "format = \"cohere\"",
        "providers.openai.format",
    ),
    (
        "base_url without http",
        7,
        "base_url = \"ftp://127.0.0.1/v1\"",
        "providers.openai.base_url",
    ),
    (
        "unknown provider",
        10,
        "provider = \"openaj\"",
        "targets.gpt.provider",
    ),
    (
        "context window is text",
        12,
        "context_window = \"big\"",
        "targets.gpt.context_window",
    ),
    (
        "context window is zero",
        12,
        "context_window = 0",
        "targets.gpt.context_window",
    ),
    (
        "bad duration",
        13,
        "timeouts = { first_byte = \"soon\", total = \"30s\" }",
        "targets.gpt.timeouts.first_byte",
    ),
    (
        "first byte after total",
        13,
        "timeouts = { first_byte = \"60s\", total = \"30s\" }",
        "targets.gpt.timeouts",
    ),
    (
        "unknown target",
        16,
        "targets = [\"gpt\", \"gpt-5\"]",
        "routes.smart.targets",
    ),
    ("no targets", 16, "targets = []", "routes.smart.targets"),
    (
        "unknown policy",
        17,
        "policy = \"patient\"",
        "routes.smart.policy",
    ),
    (
        "zero attempts",
        20,
        "retry = { max_attempts = 0, base = \"200ms\", cap = \"10s\" }",
        "policies.default.retry.max_attempts",
    ),
    (
        "base above cap",
        20,
        "retry = { max_attempts = 3, base = \"20s\", cap = \"10s\" }",
        "policies.default.retry",
    ),
    (
        "failure rate above 1",
        21,
        "breaker = { failure_rate = 1.5, min_calls = 20 }",
        "policies.default.breaker.failure_rate",
    ),
    ("TOML syntax", 15, "[routes.smart", ""),
];

fn with_line(line: usize, text: &str) -> String {
    VALID
        .lines()
        .enumerate()
        .map(|(i, l)| if i + 1 == line { text } else { l })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Runs `holdfast config check FILE` (or `--config FILE`, whichever the CLI takes).
fn check(path: &str) -> (Option<i32>, String) {
    let (code, stdout, stderr) = run(&["config", "check", path]);
    let output = format!("{stdout}{stderr}");
    if output.contains("unexpected argument") {
        let (code, stdout, stderr) = run(&["config", "check", "--config", path]);
        return (code, format!("{stdout}{stderr}"));
    }
    (code, output)
}

#[test]
fn config_check_names_the_line_and_field_of_every_mistake() {
    let dir = TempDir::new("config-check");
    let valid = dir.write("valid.toml", VALID);
    let (code, output) = check(&valid.display().to_string());
    assert_eq!(code, Some(0), "the valid file passes:\n{output}");

    let mut failures = Vec::new();
    for (i, (what, line, text, field)) in CASES.iter().enumerate() {
        let path = dir.write(&format!("broken-{i}.toml"), &with_line(*line, text));
        let (code, output) = check(&path.display().to_string());
        eprintln!("{what}: exit {code:?}: {}", output.trim());
        let located = output.contains(&format!(":{line}:"));
        // A clear message: one short line after the `FILE:LINE:COLUMN:` prefix.
        let message = output.trim().rsplit(".toml:").next().unwrap_or_default();
        let readable = message.len() <= 200;
        if code == Some(0) || !located || !output.contains(field) || !readable {
            failures.push(format!(
                "{what} (line {line}, field `{field}`): exit {code:?}, message: {}",
                output.trim()
            ));
        }
    }
    assert!(CASES.len() >= 10);
    assert!(
        failures.is_empty(),
        "{} of {} broken configs not reported with their line and field:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

/// Without client keys every caller is an admin: `serve` keeps such a server on
/// loopback unless told otherwise, and says how to fix it.
#[test]
fn serve_without_keys_refuses_to_listen_beyond_loopback() {
    let dir = TempDir::new("open-mode");
    let path = dir.write("open.toml", VALID);
    let path = path.display().to_string();
    let (code, stdout, stderr) = run(&["serve", "--config", &path, "--listen", "0.0.0.0:0"]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(!stdout.contains("listening on"), "{stdout}");
    for hint in [
        "0.0.0.0:0",
        "client_keys",
        "127.0.0.1",
        "--insecure-no-auth",
    ] {
        assert!(stderr.contains(hint), "{hint} not in: {stderr}");
    }
}
