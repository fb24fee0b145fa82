//! The few-shot example library: people's corrections, kept per task type and
//! retrieved into the prompts of later calls.
//!
//! The store keeps the examples and merges near-duplicates on the key [`fingerprint`]
//! computes; [`Libraries`] holds every library's active examples in a lexical index
//! (BM25, [`index`]) and answers retrieval in memory, or, for a library configured
//! with [`Similarity::Embeddings`], by the cosine of vectors an [`Embedder`] gives; [`import`] reads a JSONL file of
//! examples whole before anything is added; [`correction`] turns a person's correction
//! into a new example, and into a labeled case of the task type's suite.

mod correction;
mod embedding;
pub mod import;
mod index;
mod label;
mod library;
mod text;

pub use correction::{Correction, add_correction};
pub use embedding::{Embedder, Similarity};
pub use import::Importer;
pub use label::{Labeled, label_correction, label_in_suites};
pub use library::{Counts, Libraries, Size};
pub use text::fingerprint;

/// An example as retrieval inserts it: an earlier user turn and the assistant's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shot {
    /// The example's id (what the ledger and the journal record).
    pub id: u64,
    /// The user turn.
    pub input: String,
    /// The assistant turn.
    pub output: String,
}

/// How a library chooses a call's examples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The k whose inputs are most similar to the call's input.
    Similar,
    /// The same k for every call (the library's oldest active examples).
    Fixed,
}
