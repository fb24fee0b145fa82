//! Layered loading: defaults, then the file, then the environment, then flags.
//!
//! One function decides precedence for every value (restate's `config_loader.rs`), so
//! "which setting won?" has one answer to read. Parsing happens in two passes over the
//! same text: serde for the typed document, and a spanned parse that locates every
//! error (serde's and validation's) at a line, column and field.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_path_to_error::Segment as SerdeSegment;
use toml::de::DeTable;

use crate::error::{At, ConfigError, ConfigErrors, Kind, Problem};
use crate::locate::Locator;
use crate::path::{FieldPath, Segment};
use crate::resolved::{Config, Source, Summary};
use crate::schema::Document;
use crate::validate::{self, Inputs, Layered};
use crate::{Env, Origin};

/// The environment variable naming the file, when [`LoadOptions::path`] is `None`.
pub const ENV_CONFIG: &str = "HOLDFAST_CONFIG";
/// The environment variable that overrides `server.listen`.
pub const ENV_LISTEN: &str = "HOLDFAST_LISTEN";
/// The environment variable that overrides `store.url`.
pub const ENV_STORE_URL: &str = "HOLDFAST_STORE_URL";

/// The source name of a configuration loaded without a file.
pub(crate) const NO_FILE: &str = "<defaults>";

/// Values given as command-line flags; they win over the file and the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--listen`: overrides `server.listen` and `HOLDFAST_LISTEN`.
    pub listen: Option<String>,
    /// `--store-url`: overrides `store.url` and `HOLDFAST_STORE_URL`.
    pub store_url: Option<String>,
}

/// How to load a configuration.
pub struct LoadOptions<'a> {
    /// The file. `None`: the file named by `HOLDFAST_CONFIG`, or no file at all
    /// (defaults, environment and flags only).
    pub path: Option<PathBuf>,
    /// Reads an environment variable; [`process_env`] for the real one, a closure over
    /// a map in tests. Variables set to the empty string count as unset.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Flag values.
    pub overrides: Overrides,
    /// Accept `key_env` variables that are not set (for `config check` on a machine
    /// without the secrets); they are listed in [`Config::missing_secrets`].
    pub allow_missing_secrets: bool,
}

/// No file, the process environment, no flags, secrets required.
impl Default for LoadOptions<'static> {
    fn default() -> Self {
        LoadOptions {
            path: None,
            env: &process_env,
            overrides: Overrides::default(),
            allow_missing_secrets: false,
        }
    }
}

/// Reads a variable of this process's environment (`None` if unset or not UTF-8).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Loads a configuration: the defaults, then the file, then `HOLDFAST_LISTEN` and
/// `HOLDFAST_STORE_URL`, then the flags; reads the secrets its `key_env` fields name;
/// validates everything. Returns every error found, each with its file, line, column
/// and field.
pub fn load(options: LoadOptions<'_>) -> Result<Config, ConfigErrors> {
    let env = options.env;
    let path = options
        .path
        .or_else(|| set(env, ENV_CONFIG).map(PathBuf::from));
    let (name, text) = match path {
        Some(path) => match std::fs::read_to_string(&path) {
            Ok(text) => (path.display().to_string(), text),
            Err(source) => return Err(ConfigError::Read { path, source }.into()),
        },
        None => (NO_FILE.to_owned(), String::new()),
    };
    build(
        &text,
        &name,
        env,
        &options.overrides,
        options.allow_missing_secrets,
        None,
    )
}

/// Checks the file at `path` as `holdfast config check` does, with the process
/// environment (overrides included) and no flags.
pub fn check(path: &Path, allow_missing_secrets: bool) -> Result<Summary, ConfigErrors> {
    let options = LoadOptions {
        path: Some(path.to_owned()),
        allow_missing_secrets,
        ..LoadOptions::default()
    };
    load(options).map(|config| config.summary())
}

impl Config {
    /// A configuration from `text`, named `source_name` in errors, with the
    /// environment overrides of `env` applied, no flags, and secrets required. For
    /// tests and for configurations sent through the API.
    pub fn from_toml_str(
        text: &str,
        source_name: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        build(text, source_name, env, &Overrides::default(), false, None)
    }

    /// A configuration sent through the API, as [`Config::from_toml_str`] reads one,
    /// except that every `key_env` must start with one of `key_env_prefixes` (see
    /// [`DEFAULT_KEY_ENV_PREFIXES`]); a variable without one is refused at its line and
    /// field, and never read.
    pub fn from_posted_text(
        text: &str,
        source_name: &str,
        env: &dyn Fn(&str) -> Option<String>,
        key_env_prefixes: &[String],
    ) -> Result<Config, ConfigErrors> {
        let prefixes = Some(key_env_prefixes);
        build(
            text,
            source_name,
            env,
            &Overrides::default(),
            false,
            prefixes,
        )
    }
}

/// The prefixes a `key_env` of a configuration sent through the API may start with,
/// unless `holdfast serve --key-env-prefixes` (or [`ENV_KEY_ENV_PREFIXES`]) says
/// otherwise: holdfast's own variables and the usual names of model providers' keys.
pub const DEFAULT_KEY_ENV_PREFIXES: &[&str] = &[
    "HOLDFAST_",
    "OPENAI_",
    "ANTHROPIC_",
    "AZURE_OPENAI_",
    "GEMINI_",
    "MISTRAL_",
];

/// The environment variable that replaces [`DEFAULT_KEY_ENV_PREFIXES`]: a
/// comma-separated list.
pub const ENV_KEY_ENV_PREFIXES: &str = "HOLDFAST_KEY_ENV_PREFIXES";

/// A comma-separated list of prefixes, trimmed, empty entries dropped.
pub fn parse_key_env_prefixes(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

fn build(
    text: &str,
    name: &str,
    env: Env<'_>,
    overrides: &Overrides,
    allow_missing_secrets: bool,
    key_env_prefixes: Option<&[String]>,
) -> Result<Config, ConfigErrors> {
    let locator = Locator::new(text);
    let doc = parse(text, name, &locator)?;
    let listen = layer(
        &doc.server.listen,
        env,
        ENV_LISTEN,
        &overrides.listen,
        "--listen",
    );
    let store_url = layer(
        &doc.store.url,
        env,
        ENV_STORE_URL,
        &overrides.store_url,
        "--store-url",
    );
    let inputs = Inputs {
        env,
        allow_missing_secrets,
        key_env_prefixes,
        listen,
        store_url,
        locator: &locator,
    };
    let source = Source {
        name: name.to_owned(),
        text: Arc::from(text),
        version: version(text),
    };
    validate::run(&doc, inputs, source).map_err(|problems| {
        ConfigErrors::new(
            problems
                .into_iter()
                .map(|p| locate(p, name, &locator))
                .collect(),
        )
    })
}

/// The value that wins: the flag, else the environment variable, else the file's.
fn layer(file: &str, env: Env<'_>, var: &str, flag: &Option<String>, flag_name: &str) -> Layered {
    if let Some(value) = flag {
        return Layered {
            value: value.clone(),
            origin: Some(Origin::Flag(flag_name.to_owned())),
        };
    }
    match set(env, var) {
        Some(value) => Layered {
            value,
            origin: Some(Origin::Env(var.to_owned())),
        },
        None => Layered {
            value: file.to_owned(),
            origin: None,
        },
    }
}

/// A variable's value, unless it is unset or empty.
fn set(env: Env<'_>, var: &str) -> Option<String> {
    env(var).filter(|value| !value.is_empty())
}

/// The typed document, or the first syntax or type error.
fn parse(text: &str, name: &str, locator: &Locator<'_>) -> Result<Document, ConfigErrors> {
    let (table, errors) = DeTable::parse_recoverable(text);
    // Only the first: after it the parser guesses, and its guesses cascade into noise.
    let first = errors
        .iter()
        .min_by_key(|e| e.span().map_or(0, |span| span.start));
    if let Some(error) = first {
        let offset = error.span().map_or(0, |span| span.start);
        let at = locator.position(offset);
        return Err(ConfigError::Syntax {
            file: name.to_owned(),
            line: at.line,
            column: at.column,
            field: locator.path_at(offset).map(|p| p.to_string()),
            message: error.message().to_owned(),
        }
        .into());
    }
    let deserializer = toml::de::Deserializer::from(table);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let mut path = FieldPath::default();
        for segment in e.path().iter() {
            match segment {
                SerdeSegment::Seq { index } => path.push(Segment::Index(*index)),
                SerdeSegment::Map { key } | SerdeSegment::Enum { variant: key } => {
                    path.push(Segment::Key(key.clone()))
                }
                SerdeSegment::Unknown => {}
            }
        }
        let inner = e.into_inner();
        let at = match inner.span() {
            Some(span) => locator.position(span.start),
            None => locator.find(&path),
        };
        ConfigError::Field {
            file: name.to_owned(),
            line: at.line,
            column: at.column,
            field: path.to_string(),
            message: inner.message().to_owned(),
        }
        .into()
    })
}

/// Puts a validation problem at its line and column.
fn locate(problem: Problem, file: &str, locator: &Locator<'_>) -> ConfigError {
    match (problem.at, problem.kind) {
        (At::Override(origin, path), Kind::Invalid(message) | Kind::MissingSecret(message)) => {
            ConfigError::Override {
                origin,
                field: path.to_string(),
                message,
            }
        }
        (At::File(path), Kind::Invalid(message)) => {
            let at = locator.find(&path);
            ConfigError::Field {
                file: file.to_owned(),
                line: at.line,
                column: at.column,
                field: path.to_string(),
                message,
            }
        }
        (At::File(path), Kind::MissingSecret(var)) => {
            let at = locator.find(&path);
            ConfigError::MissingSecret {
                file: file.to_owned(),
                line: at.line,
                column: at.column,
                field: path.to_string(),
                var,
            }
        }
    }
}

/// 16 hex digits of the 64-bit FNV-1a hash of `text`: stable across machines and
/// releases, unlike `std`'s hasher. Identifies a version; it is not a security measure.
fn version(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_the_fnv1a_hash() {
        assert_eq!(version(""), "cbf29ce484222325");
        assert_eq!(version("a"), "af63dc4c8601ec8c");
        assert_ne!(version("x = 1"), version("x = 2"));
    }
}
