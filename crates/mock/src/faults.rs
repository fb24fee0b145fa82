//! The fault set: what the mock does wrong, how often, and what it answers otherwise.
//!
//! Everything is optional and defaults to a healthy provider, so a fault file names
//! only the faults it wants. The random faults partition one uniform draw per request
//! (in the order of [`Faults::random_faults`]) instead of each drawing on its own: the
//! configured rates are then exact rather than shadowed by the faults checked first,
//! and each request suffers at most one of them. Streaming-only faults apply only to
//! streaming requests and `malformed` only to the others, so each mode has its own
//! partition whose rates must sum to at most 1.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{MockError, Result};
use crate::timing::{Distribution, Span};

/// The default scripted answer: about forty tokens, long enough to stream in chunks.
pub const DEFAULT_ANSWER: &str = "Holdfast mock provider here. This is a scripted answer, \
returned the same way every time, so that tests can check exactly what arrives. It is \
long enough to be streamed in several small chunks.";

/// Every fault the mock can inject and the answers it gives when healthy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Probability per request of each plain HTTP error status.
    pub error_rates: ErrorRates,
    /// When true, every request is refused with 401.
    pub auth: bool,
    /// When set, requests must present this key (`Authorization: Bearer` or
    /// `x-api-key`); a missing or wrong key is 401. Unset: any key or none is accepted.
    pub api_key: Option<ApiKey>,
    /// Probability in `[0, 1]` of a quota/credit error (OpenAI 429 `insufficient_quota`,
    /// Anthropic 400 "credit balance is too low").
    pub quota: f64,
    /// The context window in tokens (at least 1). A request whose prompt estimate
    /// (characters / 4 over all message text) exceeds it gets the context-overflow error.
    pub context_window: Option<u64>,
    /// Probability in `[0, 1]` that the content filter stops the answer: a 200 with
    /// OpenAI finish_reason `content_filter` or Anthropic stop_reason `refusal` and no
    /// text, as both providers report output filtering.
    pub content_filter: f64,
    /// Calls served at full speed at once (at least 1): beyond it every call's latency
    /// is multiplied by calls in flight / capacity, and beyond twice it calls are
    /// refused at once with 503, as a provider in a brownout does. Unset: no limit.
    pub capacity: Option<u32>,
    /// Time before the first byte of every response.
    pub latency: Distribution,
    /// Time before an error status (of `error_rates`, `outages` or `flapping`) is
    /// answered, instead of `latency`. Unset: `latency`, an error that took the work of
    /// an answer; `"0ms"`: a refusal sent at once, as a provider's load balancer sends
    /// its 503s.
    pub error_latency: Option<Distribution>,
    /// Time before each streamed content chunk.
    pub token_interval: Distribution,
    /// Probability in `[0, 1]` of accepting a request and never answering it.
    pub silent: f64,
    /// A stall before the first byte, after which the answer is normal.
    pub stall_before_first_byte: Stall,
    /// Streams `after_chunks` content chunks, then drops the connection.
    pub cut_stream: StreamFault,
    /// Streams `after_chunks` content chunks, stalls for `duration`, then goes on.
    pub stall_stream: StreamStall,
    /// Probability in `[0, 1]` of a 200 with broken JSON (non-streaming requests).
    pub malformed: f64,
    /// Probability in `[0, 1]` of one unparseable `data:` line in the middle of an
    /// otherwise valid stream (streaming requests).
    pub malformed_event: f64,
    /// Streams `after_chunks` content chunks, then an in-band error event.
    pub inband_error: StreamFault,
    /// Windows of time (since start or the last reset) during which every request
    /// gets the window's status.
    pub outages: Vec<Outage>,
    /// Alternates `period_up` healthy and `period_down` failing, from the time origin.
    pub flapping: Option<Flapping>,
    /// Whether a final assistant message (a prefill) is continued; when false it gets
    /// the real 400 "does not support assistant message prefill".
    pub supports_prefill: bool,
    /// The scripted text answer.
    pub answer: String,
    /// The answer when the request asks for JSON output (`response_format` or
    /// Anthropic `output_format`).
    pub json_answer: serde_json::Value,
    /// The arguments of the tool call made when the request offers tools.
    pub tool_arguments: serde_json::Value,
    /// Answers by prompt: the first reply whose `contains` appears in the request's
    /// message text replaces the answers above for that request. Unmatched requests get
    /// the answers above.
    pub replies: Vec<Reply>,
}

/// A scripted answer for the requests whose message text contains `contains`; each
/// field it leaves unset keeps the fault set's own (`answer`, `json_answer`,
/// `tool_arguments`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    /// Text to look for in the request's messages (system, user, assistant and tool
    /// text alike), case-sensitive; not empty.
    pub contains: String,
    /// Text that must also appear for the reply to apply; not empty when given. It
    /// scripts a model that answers an input right only when the prompt shows how (a
    /// few-shot example whose answer is this text): without it the next matching reply
    /// answers, or the fault set's own answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub and_contains: Option<String>,
    /// The text answer.
    #[serde(default)]
    pub answer: Option<String>,
    /// The answer when JSON output is asked for.
    #[serde(default)]
    pub json_answer: Option<serde_json::Value>,
    /// The arguments of the tool call made when tools are offered.
    #[serde(default)]
    pub tool_arguments: Option<serde_json::Value>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            error_rates: ErrorRates::default(),
            auth: false,
            api_key: None,
            quota: 0.0,
            context_window: None,
            content_filter: 0.0,
            capacity: None,
            latency: Distribution::default(),
            error_latency: None,
            token_interval: Distribution::default(),
            silent: 0.0,
            stall_before_first_byte: Stall::default(),
            cut_stream: StreamFault::default(),
            stall_stream: StreamStall::default(),
            malformed: 0.0,
            malformed_event: 0.0,
            inband_error: StreamFault::default(),
            outages: Vec::new(),
            flapping: None,
            supports_prefill: true,
            answer: DEFAULT_ANSWER.to_owned(),
            json_answer: serde_json::json!({"answer": "holdfast mock", "ok": true}),
            tool_arguments: serde_json::json!({}),
            replies: Vec::new(),
        }
    }
}

/// Probability per request (each in `[0, 1]`) of each plain HTTP error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ErrorRates {
    /// 429 rate limited, with `retry_after`.
    #[serde(rename = "429")]
    pub rate_limited: f64,
    /// 500 internal server error.
    #[serde(rename = "500")]
    pub internal: f64,
    /// 502 bad gateway (an HTML page from the CDN, as real providers show it).
    #[serde(rename = "502")]
    pub bad_gateway: f64,
    /// 503 service unavailable.
    #[serde(rename = "503")]
    pub unavailable: f64,
    /// 529 overloaded (Anthropic's `overloaded_error`).
    #[serde(rename = "529")]
    pub overloaded: f64,
    /// The wait a 429 asks for (`Retry-After` in whole seconds, rounded up, and
    /// `retry-after-ms`); `null` sends none. Default 1s.
    pub retry_after: Option<Span>,
}

impl Default for ErrorRates {
    fn default() -> Self {
        ErrorRates {
            rate_limited: 0.0,
            internal: 0.0,
            bad_gateway: 0.0,
            unavailable: 0.0,
            overloaded: 0.0,
            retry_after: Some(Span::from_millis(1000)),
        }
    }
}

/// A key the mock requires. Neither its `Debug` nor its serialised form (what
/// `GET /admin/faults` shows) reveals it; posting the redacted form back keeps the key.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct ApiKey(pub String);

impl ApiKey {
    /// What the key is shown as.
    pub const REDACTED: &'static str = "**REDACTED**";

    /// Whether this is the redacted placeholder rather than a key.
    pub fn is_redacted(&self) -> bool {
        self.0 == Self::REDACTED
    }
}

impl Serialize for ApiKey {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(Self::REDACTED)
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("**REDACTED**")
    }
}

/// A random stall.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Stall {
    /// Probability in `[0, 1]`.
    pub rate: f64,
    /// How long it lasts (default 10s).
    pub duration: Span,
}

impl Default for Stall {
    fn default() -> Self {
        Stall {
            rate: 0.0,
            duration: Span::from_millis(10_000),
        }
    }
}

/// A random fault that strikes a stream after some content chunks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamFault {
    /// Probability in `[0, 1]`.
    pub rate: f64,
    /// Content chunks sent before the fault (default 3); the preamble (OpenAI's role
    /// chunk, Anthropic's `message_start` and `content_block_start`) always precedes.
    pub after_chunks: u32,
}

impl Default for StreamFault {
    fn default() -> Self {
        StreamFault {
            rate: 0.0,
            after_chunks: 3,
        }
    }
}

/// A random stall in the middle of a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamStall {
    /// Probability in `[0, 1]`.
    pub rate: f64,
    /// Content chunks sent before the stall (default 3).
    pub after_chunks: u32,
    /// How long it lasts (default 10s).
    pub duration: Span,
}

impl Default for StreamStall {
    fn default() -> Self {
        StreamStall {
            rate: 0.0,
            after_chunks: 3,
            duration: Span::from_millis(10_000),
        }
    }
}

/// A window of total failure, in time since the start or the last reset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outage {
    /// When it begins (inclusive).
    pub start: Span,
    /// When it ends (exclusive); not before `start`.
    pub end: Span,
    /// The status every request gets: 429, 500, 502, 503 (default) or 529.
    #[serde(default = "default_failure_status")]
    pub status: u16,
}

/// A provider that alternates between healthy and failing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flapping {
    /// How long each healthy phase lasts; the cycle starts healthy.
    pub period_up: Span,
    /// How long each failing phase lasts.
    pub period_down: Span,
    /// The status while failing: 429, 500, 502, 503 (default) or 529.
    #[serde(default = "default_failure_status")]
    pub status: u16,
}

fn default_failure_status() -> u16 {
    503
}

impl Faults {
    /// Parses and validates a fault set written in TOML.
    pub fn from_toml_str(text: &str) -> Result<Faults> {
        let faults: Faults = toml::from_str(text)?;
        faults.validate()?;
        Ok(faults)
    }

    /// Parses and validates a fault set written in JSON.
    pub fn from_json_str(text: &str) -> Result<Faults> {
        let faults: Faults = serde_json::from_str(text)?;
        faults.validate()?;
        Ok(faults)
    }

    /// Reads a fault file: JSON when its name ends in `.json`, TOML otherwise.
    pub fn load(path: &Path) -> Result<Faults> {
        let text = std::fs::read_to_string(path).map_err(|source| MockError::Read {
            path: path.to_owned(),
            source,
        })?;
        let is_json = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
        if is_json {
            Faults::from_json_str(&text)
        } else {
            Faults::from_toml_str(&text)
        }
    }
}
