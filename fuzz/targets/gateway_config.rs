//! Fuzz target: a configuration as the gateway takes it (at start and on
//! `POST /admin/config`): loaded, then built into the gateway's running state.
//!
//! The decision: a configuration the reader accepted must build or be refused with a
//! `ServerError`, never panic: validation is where a bad value is caught, and a value
//! that passes it (a huge size, a tiny window, a rate at its edge) reaches rate
//! limiters, breakers, caches and metrics that trust it.

use std::sync::Arc;

use holdfast_config::Config;
use holdfast_policy::SystemClock;
use holdfast_server::Gateway;

/// Runs one configuration text; returns its outcome.
pub(crate) fn run(data: &[u8]) -> String {
    let Ok(text) = std::str::from_utf8(data) else {
        return "not UTF-8".to_owned();
    };
    let env = |name: &str| match name {
        holdfast_config::ENV_CONFIG
        | holdfast_config::ENV_LISTEN
        | holdfast_config::ENV_STORE_URL => None,
        _ => Some("sk-fuzz-value".to_owned()),
    };
    let Ok(config) = Config::from_toml_str(text, "fuzz.toml", &env) else {
        return "refused by the reader".to_owned();
    };
    match Gateway::new(&config, Arc::new(SystemClock::new())) {
        Ok(_) => "ok".to_owned(),
        Err(e) => format!("refused by the gateway: {e}"),
    }
}
