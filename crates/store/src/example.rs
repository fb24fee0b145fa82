//! The few-shot example library: input/output pairs per tenant and library (a task
//! type), fed by people's corrections, imports and feedback, retrieved into prompts.
//!
//! The decision that shapes it: the store merges near-duplicates itself, atomically,
//! on a key the caller computes (`fingerprint`, the quality crate's normalised input).
//! A library holds one example per fingerprint, so two corrections of the same input
//! can never both be retrieved, and whichever arrives last wins ([`merge`] says how a
//! merge treats the example's status). Every change of content or status gets the next
//! `revision`, so an in-memory retrieval index catches up by reading the changes after
//! the revision it holds ([`crate::Store::example_changes`]); usage counts are not
//! changes, so counting them never makes indexes reread anything.

use crate::task::string_enum;
use crate::validate::{self, millis, name};
use crate::{Result, StoreError};

string_enum! {
    /// Whether an example is retrieved.
    ExampleStatus {
        /// Proposed (a correction or feedback), waiting for a reviewer's approval.
        Candidate = "candidate",
        /// Approved: retrieved into prompts.
        Active = "active",
        /// Taken out by a reviewer: kept for the audit trail, never retrieved.
        Retired = "retired",
    }
}

string_enum! {
    /// Where an example came from.
    ExampleSource {
        /// `holdfast examples import`.
        Import = "import",
        /// A reviewer's edit of an llm step's output in the escalation inbox.
        Escalation = "escalation",
        /// `POST /v1/holdfast/feedback` with a correction.
        Feedback = "feedback",
    }
}

/// The longest fingerprint, in bytes.
pub const MAX_FINGERPRINT_LEN: usize = 128;

/// The longest author or origin, in bytes.
const MAX_LABEL_LEN: usize = 500;

/// An example to add to a library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewExample {
    /// The tenant it belongs to: a valid name.
    pub tenant: String,
    /// Its library (the task type's name): a valid name.
    pub library: String,
    /// Its near-duplicate key (1..=128 bytes): an example with the same key in the same
    /// library is merged into.
    pub fingerprint: String,
    /// The input, as the model sees it.
    pub input: String,
    /// The right output for it.
    pub output: String,
    /// Where it came from.
    pub source: ExampleSource,
    /// Who wrote it (the key's name), at most 500 bytes.
    pub author: String,
    /// What it corrects (a request id, a task step), at most 500 bytes.
    pub origin: Option<String>,
    /// `Candidate`, or `Active` when the library approves at once (`Retired` is refused).
    pub status: ExampleStatus,
}

/// A stored example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// Its id, unique across tenants.
    pub id: u64,
    /// Its tenant.
    pub tenant: String,
    /// Its library.
    pub library: String,
    /// Its near-duplicate key.
    pub fingerprint: String,
    /// The input.
    pub input: String,
    /// The right output.
    pub output: String,
    /// Where its current output came from.
    pub source: ExampleSource,
    /// Who wrote its current output.
    pub author: String,
    /// What its current output corrects.
    pub origin: Option<String>,
    /// Whether it is retrieved.
    pub status: ExampleStatus,
    /// How many near-duplicates were merged into it.
    pub merged: u64,
    /// How many calls it was retrieved into.
    pub times_used: u64,
    /// When it was last retrieved, in Unix milliseconds.
    pub last_used_at_ms: Option<u64>,
    /// When it was created, in Unix milliseconds.
    pub created_at_ms: u64,
    /// When its content or status last changed, in Unix milliseconds.
    pub updated_at_ms: u64,
    /// The store-wide revision of its last change.
    pub revision: u64,
}

/// What [`crate::Store::add_example`] did: an expected outcome either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExampleAdded {
    /// A new example.
    Created(Example),
    /// Merged into the library's example with the same fingerprint.
    Merged(Example),
}

impl ExampleAdded {
    /// The example, new or merged into.
    pub fn example(&self) -> &Example {
        match self {
            ExampleAdded::Created(e) | ExampleAdded::Merged(e) => e,
        }
    }
}

/// Which examples to list, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleFilter {
    /// Only this tenant's; `None` for every tenant.
    pub tenant: Option<String>,
    /// Only this library's.
    pub library: Option<String>,
    /// Only examples with this status.
    pub status: Option<ExampleStatus>,
    /// At most this many, 1..=1000.
    pub limit: u32,
}

impl Default for ExampleFilter {
    fn default() -> Self {
        ExampleFilter {
            tenant: None,
            library: None,
            status: None,
            limit: 100,
        }
    }
}

/// Calls that used an example, counted together (retrieval counts in memory and writes
/// the counts now and then, not one write per call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleUse {
    /// The example's tenant (an example of another tenant is not counted).
    pub tenant: String,
    /// The example.
    pub id: u64,
    /// How many calls used it.
    pub calls: u64,
    /// When it was last used, in Unix milliseconds.
    pub last_used_at_ms: u64,
}

/// The status an example has after a new one is merged into it: a different output
/// replaces the old one and takes the new one's status (a new correction waits for a
/// reviewer again, or is active at once where the library approves at once); the same
/// output again changes nothing but approves a candidate the new one arrives approved.
pub(crate) fn merge(stored: ExampleStatus, new: ExampleStatus, same_output: bool) -> ExampleStatus {
    match (same_output, stored, new) {
        (false, _, new) => new,
        (true, ExampleStatus::Candidate, ExampleStatus::Active) => ExampleStatus::Active,
        (true, stored, _) => stored,
    }
}

/// Checks an example to add, before anything is written.
pub(crate) fn check_new(e: &NewExample, max: usize) -> Result<()> {
    name("example.tenant", &e.tenant)?;
    name("example.library", &e.library)?;
    if e.fingerprint.is_empty() || e.fingerprint.len() > MAX_FINGERPRINT_LEN {
        return Err(StoreError::invalid(
            "example.fingerprint",
            format!("must be 1..={MAX_FINGERPRINT_LEN} bytes"),
        ));
    }
    validate::text("example.fingerprint", &e.fingerprint, MAX_FINGERPRINT_LEN)?;
    if e.input.trim().is_empty() {
        return Err(StoreError::invalid("example.input", "must not be empty"));
    }
    validate::text("example.input", &e.input, max)?;
    validate::text("example.output", &e.output, max)?;
    label("example.author", &e.author)?;
    if let Some(origin) = &e.origin {
        label("example.origin", origin)?;
    }
    if e.status == ExampleStatus::Retired {
        return Err(StoreError::invalid(
            "example.status",
            "a new example is a candidate or active",
        ));
    }
    Ok(())
}

fn label(field: &'static str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(StoreError::invalid(field, "must not be empty"));
    }
    validate::text(field, value, MAX_LABEL_LEN)
}

/// Checks usage counts to record.
pub(crate) fn check_uses(uses: &[ExampleUse]) -> Result<()> {
    for u in uses {
        name("example.tenant", &u.tenant)?;
        millis("example.id", u.id)?;
        millis("example.calls", u.calls)?;
        millis("example.last_used_at", u.last_used_at_ms)?;
    }
    Ok(())
}

/// The example columns, in the order every `SELECT` of an example lists them.
pub(crate) struct ExampleRow {
    pub(crate) id: i64,
    pub(crate) tenant: String,
    pub(crate) library: String,
    pub(crate) fingerprint: String,
    pub(crate) input: String,
    pub(crate) output: String,
    pub(crate) source: String,
    pub(crate) author: String,
    pub(crate) origin: Option<String>,
    pub(crate) status: String,
    pub(crate) merged: i64,
    pub(crate) times_used: i64,
    pub(crate) last_used_at: Option<i64>,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) revision: i64,
}

impl ExampleRow {
    pub(crate) fn into_example(self) -> Result<Example> {
        Ok(Example {
            id: validate::unsigned("example.id", self.id)?,
            tenant: self.tenant,
            library: self.library,
            fingerprint: self.fingerprint,
            input: self.input,
            output: self.output,
            source: ExampleSource::parse(&self.source)?,
            author: self.author,
            origin: self.origin,
            status: ExampleStatus::parse(&self.status)?,
            merged: validate::unsigned("example.merged", self.merged)?,
            times_used: validate::unsigned("example.times_used", self.times_used)?,
            last_used_at_ms: self
                .last_used_at
                .map(|t| validate::unsigned("example.last_used_at", t))
                .transpose()?,
            created_at_ms: validate::unsigned("example.created_at", self.created_at)?,
            updated_at_ms: validate::unsigned("example.updated_at", self.updated_at)?,
            revision: validate::unsigned("example.revision", self.revision)?,
        })
    }
}

/// The longest vector kept, in numbers.
pub const MAX_VECTOR_LEN: usize = 16_384;

/// The most vectors one read or write names.
pub const MAX_VECTORS: usize = 1000;

/// An example's embedding vector under one embedding model (a route), kept so that a
/// restarted node does not embed its libraries again.
#[derive(Debug, Clone, PartialEq)]
pub struct ExampleVector {
    /// The example's tenant: a vector for an example of another tenant (or for none) is
    /// not kept.
    pub tenant: String,
    /// The example.
    pub id: u64,
    /// What embedded it (the embedding route's name): a valid name.
    pub model: String,
    /// The vector: 1..=16,384 finite numbers.
    pub vector: Vec<f32>,
}

/// Checks vectors to keep.
pub(crate) fn check_vectors(vectors: &[ExampleVector]) -> Result<()> {
    if vectors.len() > MAX_VECTORS {
        return Err(StoreError::invalid(
            "vectors",
            format!("at most {MAX_VECTORS} at once"),
        ));
    }
    for v in vectors {
        name("vector.tenant", &v.tenant)?;
        name("vector.model", &v.model)?;
        millis("vector.id", v.id)?;
        if v.vector.is_empty() || v.vector.len() > MAX_VECTOR_LEN {
            return Err(StoreError::invalid(
                "vector.vector",
                format!("must hold 1..={MAX_VECTOR_LEN} numbers"),
            ));
        }
        if !v.vector.iter().all(|x| x.is_finite()) {
            return Err(StoreError::invalid(
                "vector.vector",
                "must be finite numbers",
            ));
        }
    }
    Ok(())
}

/// Checks a read of vectors.
pub(crate) fn check_vector_read(tenant: &str, model: &str, ids: &[u64]) -> Result<()> {
    name("tenant", tenant)?;
    name("model", model)?;
    if ids.len() > MAX_VECTORS {
        return Err(StoreError::invalid(
            "ids",
            format!("at most {MAX_VECTORS} at once"),
        ));
    }
    for id in ids {
        millis("id", *id)?;
    }
    Ok(())
}

/// A vector as stored: its numbers as little-endian `f32`s.
pub(crate) fn vector_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A stored vector read back.
pub(crate) fn vector_from_bytes(bytes: &[u8]) -> Result<Vec<f32>> {
    if bytes.is_empty() || bytes.len() % 4 != 0 {
        return Err(StoreError::corrupt(
            "vector",
            "not a whole number of 4-byte floats",
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}
