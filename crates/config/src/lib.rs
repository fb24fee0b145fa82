//! The holdfast configuration file: its schema, loading, validation and the settings
//! the server runs with.
//!
//! The one decision that shapes this crate: the file as written ([`schema`], whose
//! doc comments are the reference for every field) and the configuration the server
//! runs with ([`Config`]) are different types. [`load`] layers defaults, the file,
//! the environment and flags, then validation checks ranges (through the policy crate's
//! own constructors) and references (a route naming a target), reads secrets from the
//! environment into [`Secret`]s, and reports *every* problem as a [`ConfigError`] with
//! its file, line, column and field:
//!
//! ```text
//! holdfast.toml:14:18: routes.smart.targets[1]: unknown target "gpt-5" (known: claude, gpt-4o)
//! ```
//!
//! Environment variables read: `HOLDFAST_CONFIG` (the file, when no path is given),
//! `HOLDFAST_LISTEN` (overrides `server.listen`), `HOLDFAST_STORE_URL` (overrides
//! `store.url`), `HOSTNAME` (the default `engine.node_id`), and every variable a `key_env`
//! field names.

mod alerts;
mod error;
mod litellm;
mod load;
mod locate;
mod path;
mod redact;
mod resolved;
pub mod schema;
mod secret;
mod units;
mod validate;

pub use alerts::{AlertKind, AlertRule, Alerts, Severity, Shape, Webhook};
pub use error::{ConfigError, ConfigErrors, Origin};
pub use litellm::{ImportError, Imported, Note, import_litellm};
pub use load::{
    DEFAULT_KEY_ENV_PREFIXES, ENV_CONFIG, ENV_KEY_ENV_PREFIXES, ENV_LISTEN, ENV_STORE_URL,
    LoadOptions, Overrides, check, load, parse_key_env_prefixes, process_env,
};
pub use redact::redact_config_text;
pub use resolved::{
    Chaos, ClientKey, Config, Degraded, Engine, FewShot, FewShotMode, GameDayTime, Idempotency,
    Listener, Logging, MidStream, Probe, Provider, Quality, QualityGate, QualitySampling, Route,
    ScheduledExperiment, Server, Source, Store, Summary, Target, Telemetry,
};
pub use schema::{LogFormat, OnFail, OtlpProtocol, ProbeKind, Role};
pub use secret::Secret;
pub use units::{ByteSize, HumanDuration};

/// Reads an environment variable.
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;
