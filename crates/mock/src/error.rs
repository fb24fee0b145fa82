//! The crate's one error type.
//!
//! Loading and validating a fault set are the only fallible operations a user calls;
//! each error says which field or file is at fault, so that `holdfast mock-provider`
//! and the admin API can show it as it is.

use std::path::PathBuf;

/// What went wrong loading or validating a fault set.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// A field holds a value outside its valid range.
    #[error("invalid fault setting `{field}`: {reason}")]
    Invalid {
        /// The field's path, such as `error_rates.429` or `outages[1].end`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A TOML fault file could not be parsed.
    #[error("invalid fault file (TOML): {0}")]
    Toml(#[from] toml::de::Error),
    /// A JSON fault set could not be parsed.
    #[error("invalid fault set (JSON): {0}")]
    Json(#[from] serde_json::Error),
    /// A fault file could not be read.
    #[error("cannot read fault file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
}

impl MockError {
    pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> Self {
        MockError::Invalid {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = MockError> = std::result::Result<T, E>;
