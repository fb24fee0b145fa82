//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;

use holdfast_config::{Config, ConfigError, ConfigErrors};

/// An environment holding exactly `vars`.
pub fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

/// The secrets the example file names, with recognisable values.
pub const SECRETS: &[(&str, &str)] = &[
    ("OPENAI_API_KEY", "sk-openai-SECRET-1"),
    ("ANTHROPIC_API_KEY", "sk-ant-SECRET-2"),
    ("HOLDFAST_CLIENT_KEY", "hf-client-SECRET-3"),
    ("HOLDFAST_BATCH_KEY", "hf-batch-SECRET-4"),
];

/// The example configuration's text.
#[allow(clippy::expect_used)] // a helper of tests, which panic on failure
pub fn example() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/holdfast.toml");
    std::fs::read_to_string(path).expect("example file")
}

/// Loads `text` as `holdfast.toml` with `vars`.
pub fn load(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
    Config::from_toml_str(text, "holdfast.toml", &env(vars))
}

/// The errors `text` produces with `vars`; panics if it loads.
pub fn errors(text: &str, vars: &[(&str, &str)]) -> Vec<ConfigError> {
    match load(text, vars) {
        Ok(_) => panic!("loaded, expected errors:\n{text}"),
        Err(errors) => errors.into_vec(),
    }
}
