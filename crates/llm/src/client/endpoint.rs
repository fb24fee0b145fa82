//! What a call is sent to and with: the endpoint, its key and timeouts, per-call
//! options, and what a successful call returns.
//!
//! The key is a type of its own so that no `Debug`, `Display` or log line can print it:
//! only [`ApiKey::expose`] reads it, at the one place that writes the auth header.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;

use crate::openai::ChatResponse;
use crate::{Format, Usage};

/// A provider API key. `Debug` and `Display` print `**REDACTED**`; only
/// [`ApiKey::expose`] gives the key, for the one header that carries it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// The key itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**REDACTED**")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**REDACTED**")
    }
}

/// The timeouts of one attempt. Each must be above zero to be useful.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing the TCP (and TLS) connection.
    pub connect: Duration,
    /// Streams: from sending the request to the first event (unless the call's
    /// [`CallOptions::first_byte`] says otherwise). With `learns_first_byte`, the
    /// ceiling of a timeout the caller learns from the target's latency.
    pub first_byte: Duration,
    /// Whether the caller learns the first-byte timeout from the target's observed
    /// latency (the target did not set one) rather than using `first_byte` as it is.
    pub learns_first_byte: bool,
    /// Between two reads of a started response.
    pub idle: Duration,
    /// The whole attempt, body included.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(2),
            first_byte: Duration::from_secs(10),
            learns_first_byte: false,
            idle: Duration::from_secs(15),
            total: Duration::from_secs(120),
        }
    }
}

/// One deployment of a model at a provider.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// The format it speaks.
    pub format: Format,
    /// The API base, e.g. `https://api.openai.com/v1` or `https://api.anthropic.com/v1`;
    /// `/chat/completions` or `/messages` is appended.
    pub base_url: String,
    /// The key, when the provider needs one.
    pub api_key: Option<ApiKey>,
    /// The provider's model name, which replaces the request's `model`.
    pub model: String,
    /// The attempt's timeouts.
    pub timeouts: Timeouts,
    /// Azure OpenAI (an `openai` endpoint only): sent as `?api-version=`, and the key
    /// goes in the `api-key` header instead of `Authorization`.
    pub azure_api_version: Option<String>,
}

impl Endpoint {
    pub(crate) fn url(&self) -> String {
        let base = self.base_url.trim_end_matches('/');
        match (self.format, &self.azure_api_version) {
            (Format::OpenAi, None) => format!("{base}/chat/completions"),
            (Format::OpenAi, Some(version)) => {
                format!("{base}/chat/completions?api-version={version}")
            }
            (Format::Anthropic, _) => format!("{base}/messages"),
        }
    }
}

/// Per-call options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallOptions {
    /// Sent as `Idempotency-Key`, the same on every attempt of one logical call.
    pub idempotency_key: Option<String>,
    /// Caps the total timeout (the caller's remaining deadline).
    pub timeout_cap: Option<Duration>,
    /// The first-byte timeout of this call, replacing the endpoint's for a stream; for
    /// a non-streamed call, the longest wait for the response head (a silent provider),
    /// which otherwise only the total timeout bounds. Capped by the total.
    pub first_byte: Option<Duration>,
    /// Extra headers (e.g. `anthropic-beta`); they cannot replace the auth headers.
    pub headers: Vec<(String, String)>,
}

/// A successful embeddings call.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedded {
    /// The answer, checked: one vector per input, in input order.
    pub response: crate::openai::embeddings::EmbeddingsResponse,
    /// Tokens read (embeddings generate none).
    pub usage: Usage,
    /// From sending the request to the whole answer.
    pub latency: Duration,
}

/// A successful non-streamed call.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The answer, OpenAI-shaped.
    pub response: ChatResponse,
    /// The provider's body as sent, when the target speaks OpenAI: `response`'s own
    /// bytes, so that an OpenAI client can be answered without serialising it again
    /// (and with every field exactly as the provider wrote it).
    pub body: Option<Bytes>,
    /// Tokens used, when the provider reported them.
    pub usage: Option<Usage>,
    /// The HTTP status.
    pub status: u16,
    /// From sending the request to the whole answer.
    pub latency: Duration,
}
