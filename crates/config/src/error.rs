//! What can be wrong with a configuration, located for the person who wrote it.
//!
//! Every error carries its file, line, column and field path as data and prints as one
//! line, `holdfast.toml:14:18: routes.smart.targets[1]: unknown target "gpt-5"`, so an
//! editor can jump to it and `config check` can print one error per line. Validation
//! collects every problem it finds, not only the first: fixing a file should not take
//! one run per mistake.

use std::fmt;
use std::path::PathBuf;

use crate::path::FieldPath;

/// Where a value that overrides the file came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// An environment variable, such as `HOLDFAST_LISTEN`.
    Env(String),
    /// A command-line flag, such as `--listen`.
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// One thing wrong with a configuration.
///
/// No variant ever holds a secret's value: a missing secret names its variable only.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The text is not valid TOML.
    #[error("{file}:{line}:{column}: {}{message}", field_prefix(field.as_deref()))]
    Syntax {
        /// The file's name as given.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// The last field written before the error, when there is one.
        field: Option<String>,
        /// What the parser expected.
        message: String,
    },
    /// A field has the wrong type, an invalid value, or refers to something unknown.
    #[error("{file}:{line}:{column}: {field}: {message}")]
    Field {
        /// The file's name as given.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// The field's path, such as `routes.smart.targets[1]`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A `key_env` names an environment variable that is not set (or is empty).
    #[error("{file}:{line}:{column}: {field}: environment variable {var} is not set")]
    MissingSecret {
        /// The file's name as given.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// The field naming the variable, such as `providers.openai.key_env`.
        field: String,
        /// The variable's name (never its value).
        var: String,
    },
    /// A value given by an environment variable or a flag is invalid.
    #[error("{origin}: {field}: {message}")]
    Override {
        /// Where the value came from.
        origin: Origin,
        /// The field it overrides, such as `server.listen`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

fn field_prefix(field: Option<&str>) -> String {
    field.map(|f| format!("{f}: ")).unwrap_or_default()
}

impl ConfigError {
    /// The field the error is about, when it is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Syntax { field, .. } => field.as_deref(),
            ConfigError::Field { field, .. }
            | ConfigError::MissingSecret { field, .. }
            | ConfigError::Override { field, .. } => Some(field),
        }
    }

    /// The 1-based line and column, when the error is in the file.
    pub fn line_column(&self) -> Option<(usize, usize)> {
        match self {
            ConfigError::Syntax { line, column, .. }
            | ConfigError::Field { line, column, .. }
            | ConfigError::MissingSecret { line, column, .. } => Some((*line, *column)),
            ConfigError::Read { .. } | ConfigError::Override { .. } => None,
        }
    }
}

/// Every error found in one configuration, in file order; never empty.
#[derive(Debug, thiserror::Error)]
pub struct ConfigErrors(Vec<ConfigError>);

impl ConfigErrors {
    /// Wraps `errors`, sorted by line and column (overrides last).
    pub(crate) fn new(mut errors: Vec<ConfigError>) -> Self {
        errors.sort_by_key(|e| e.line_column().unwrap_or((usize::MAX, usize::MAX)));
        ConfigErrors(errors)
    }

    /// The errors.
    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }

    /// How many errors there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none (never true for a returned value).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The errors, by value.
    pub fn into_vec(self) -> Vec<ConfigError> {
        self.0
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        ConfigErrors(vec![error])
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// One error per line.
impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// A problem found by validation, before it is located in the file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Problem {
    pub(crate) at: At,
    pub(crate) kind: Kind,
}

/// Where a problem is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum At {
    /// A field in the file (or its default).
    File(FieldPath),
    /// A field overridden from outside the file.
    Override(Origin, FieldPath),
}

/// What the problem is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// A bad value, with the message.
    Invalid(String),
    /// An unset secret variable.
    MissingSecret(String),
}

impl Problem {
    /// A bad value at `path`.
    pub(crate) fn invalid(path: FieldPath, message: impl Into<String>) -> Self {
        Problem {
            at: At::File(path),
            kind: Kind::Invalid(message.into()),
        }
    }
}
