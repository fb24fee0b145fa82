//! The one error type at the quality crate's boundary.
//!
//! A suite or dataset that does not load is [`QualityError::Invalid`] with every
//! problem located; the binary turns it into exit code 2. A case whose call fails is
//! not an error here: it is a case with the outcome `error`, counted in the report.

use holdfast_store::StoreError;

use crate::problem::Problems;

/// Everything loading a suite or running one can fail with.
#[derive(Debug, thiserror::Error)]
pub enum QualityError {
    /// A file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The suite or its dataset is invalid: every problem, with its file, line and
    /// field.
    #[error("{0}")]
    Invalid(Problems),
    /// A run setting is out of range (a concurrency of 0, a sample larger than the
    /// dataset is fine, a bad run id is not).
    #[error("{field}: {reason}")]
    Setting {
        /// The setting, as the caller names it (`concurrency`, `run_id`).
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A run to compare with (a baseline) is not in the store.
    #[error("no evaluation run {run_id} of tenant {tenant}")]
    NoSuchRun {
        /// The tenant looked in.
        tenant: String,
        /// The run looked for.
        run_id: String,
    },
    /// A stored run or result could not be read back as this crate wrote it.
    #[error("stored run {run_id}: {reason}")]
    Stored {
        /// The run.
        run_id: String,
        /// What could not be read.
        reason: String,
    },
    /// The store failed (or refused: a run id holding another suite is a conflict).
    #[error(transparent)]
    Store(#[from] StoreError),
}
