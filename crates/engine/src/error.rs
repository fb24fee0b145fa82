//! [`EngineError`]: what the engine's API refuses, and why, in terms a caller can act on.
//!
//! Bad input is the common case and carries every [`Problem`] found, each with the path
//! of the field at fault, so that a user fixes a definition or an input in one pass;
//! store failures pass through with their own kind (not found, conflict, stale lease).

use holdfast_store::StoreError;

/// One problem with a definition or an input, at a field path such as `steps[2].prompt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: a field path (`steps[1].depends_on[0]`, `input.topic`); empty for the whole.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why the engine refused a request.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The definition or input is invalid; nothing was stored.
    #[error("{}", join(problems))]
    Invalid {
        /// Every problem found.
        problems: Vec<Problem>,
    },
    /// What was named does not exist.
    #[error("{what} {id:?} not found")]
    NotFound {
        /// What kind of thing.
        what: &'static str,
        /// Its name or id.
        id: String,
    },
    /// The request contradicts what is stored (an idempotency key reused for another
    /// submission); nothing was written.
    #[error("{what} {id:?}: {reason}")]
    Conflict {
        /// What kind of thing.
        what: &'static str,
        /// Its name or id.
        id: String,
        /// What contradicts what.
        reason: String,
    },
    /// The store is unavailable and the outbox holds as much as it may
    /// (`store.outbox_max`): the submission was neither stored nor queued.
    #[error(
        "the store is unavailable and the outbox is full ({used_bytes} of {max_bytes} bytes, \
         store.outbox_max): the submission was not queued; retry once the store is back"
    )]
    OutboxFull {
        /// What the outbox holds.
        used_bytes: u64,
        /// Its bound.
        max_bytes: u64,
    },
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl EngineError {
    /// An `Invalid` error.
    pub fn invalid(problems: Vec<Problem>) -> Self {
        EngineError::Invalid { problems }
    }

    /// An `Invalid` error with one problem.
    pub fn invalid_at(path: impl Into<String>, message: impl Into<String>) -> Self {
        EngineError::Invalid {
            problems: vec![Problem::new(path, message)],
        }
    }
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
