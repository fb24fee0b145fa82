//! A person's correction becomes an example: a candidate for a reviewer to approve, or
//! active at once where the task type approves at once.

use holdfast_store::{ExampleAdded, ExampleSource, ExampleStatus, NewExample, StoreError};

use super::{Libraries, fingerprint};

/// A correction of one call: what the model was given and what it should have said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correction {
    /// The tenant whose call it was.
    pub tenant: String,
    /// The library of the call's task type.
    pub library: String,
    /// The call's input (the user turn the model answered).
    pub input: String,
    /// The right answer.
    pub output: String,
    /// Where the correction was made.
    pub source: ExampleSource,
    /// Who made it (the key's name).
    pub author: String,
    /// What it corrects (a request id, a task step).
    pub origin: Option<String>,
    /// Whether the task type takes corrections without a reviewer's approval.
    pub auto_approve: bool,
}

/// Adds a correction to its library (merged into a near-duplicate when there is one)
/// and, when it is active at once, brings the in-memory libraries up to date so the
/// next call retrieves it.
pub async fn add_correction(
    libraries: &Libraries,
    correction: Correction,
    now_ms: u64,
) -> Result<ExampleAdded, StoreError> {
    let status = if correction.auto_approve {
        ExampleStatus::Active
    } else {
        ExampleStatus::Candidate
    };
    let example = NewExample {
        fingerprint: fingerprint(&correction.input),
        tenant: correction.tenant,
        library: correction.library,
        input: correction.input,
        output: correction.output,
        source: correction.source,
        author: correction.author,
        origin: correction.origin,
        status,
    };
    let added = libraries.store().add_example(example, now_ms).await?;
    libraries.refresh().await?;
    Ok(added)
}
