//! Talking to LLM providers: wire formats, translation, streaming, error classes, token
//! counts, prices and the HTTP client.
//!
//! The one decision that shapes this crate: the OpenAI chat-completions format is the
//! canonical form. Every client request becomes an [`openai::ChatRequest`]; a target
//! that speaks Anthropic gets it translated ([`translate`]) and its answers come back
//! OpenAI-shaped; a client that called `/v1/messages` gets them translated back. So
//! there is one request type and one response type everywhere past the edges.
//!
//! Errors leave this crate as a classified [`holdfast_policy::Outcome`] inside a
//! [`ProviderError`]: policy decisions never look at status codes.

pub mod anthropic;
pub mod classify;
pub mod client;
mod extra;
pub mod openai;
pub mod price;
pub mod sse;
pub mod tls;
pub mod tokens;
pub mod translate;

pub use client::{
    ApiKey, CallOptions, ChunkStream, Completion, Embedded, Endpoint, ProviderClient,
    ProviderError, Timeouts,
};
pub use price::{Price, PriceError, Usage};

use serde::{Deserialize, Serialize};

/// The wire format a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// OpenAI chat completions (`POST {base}/chat/completions`), also spoken by most
    /// OpenAI-compatible servers.
    OpenAi,
    /// Anthropic messages (`POST {base}/messages`).
    Anthropic,
}
