//! Fuzz target: the configuration reader (`holdfast_config`, from text), as
//! `holdfast serve`, `holdfast config check` and `POST /admin/config` run it.
//!
//! The decision: check the promises the reader makes, not only the absence of panics.
//! Every refusal names a line inside the text (when it names one) and says what is
//! wrong; a secret read from the environment never shows in an error or in the loaded
//! configuration's `Debug` (invariant 7).

use holdfast_config::Config;

/// The value every `key_env` variable holds during the run.
const SECRET: &str = "sk-fuzz-SECRET-5b2f0e91";

/// Runs one configuration text; returns its outcome.
pub(crate) fn run(data: &[u8]) -> String {
    let Ok(text) = std::str::from_utf8(data) else {
        return "not UTF-8".to_owned();
    };
    let env = |name: &str| match name {
        holdfast_config::ENV_CONFIG
        | holdfast_config::ENV_LISTEN
        | holdfast_config::ENV_STORE_URL => None,
        // The default `engine.node_id`, not a secret.
        "HOSTNAME" => Some("fuzz-host".to_owned()),
        _ => Some(SECRET.to_owned()),
    };
    match Config::from_toml_str(text, "fuzz.toml", &env) {
        Ok(config) => {
            let shown = format!("{config:?}");
            assert!(
                !shown.contains(SECRET),
                "a secret shows in the configuration's Debug"
            );
            let summary = format!("{:?}", config.summary());
            assert!(!summary.contains(SECRET), "a secret shows in the summary");
            "ok".to_owned()
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "a refusal without an error");
            let lines = text.lines().count() + 1;
            let mut outcome = String::new();
            for error in errors.errors() {
                let shown = error.to_string();
                assert!(
                    !shown.contains(SECRET),
                    "a secret shows in an error: {shown}"
                );
                assert!(
                    !format!("{error:?}").contains(SECRET),
                    "a secret shows in an error's Debug"
                );
                if let Some((line, column)) = error.line_column() {
                    assert!(
                        (1..=lines).contains(&line),
                        "line {line} of {lines}: {shown}"
                    );
                    assert!(column >= 1, "column {column}: {shown}");
                }
                if outcome.is_empty() {
                    outcome = format!("{} {}", error.field().unwrap_or("-"), first_words(&shown));
                }
            }
            outcome
        }
    }
}

/// The start of an error message, past its `file:line:column:` prefix.
fn first_words(shown: &str) -> String {
    let message = shown.rsplit_once(": ").map_or(shown, |(_, m)| m);
    message
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
