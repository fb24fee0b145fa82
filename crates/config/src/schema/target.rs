//! `[providers.NAME]` and `[targets.NAME]`: who holdfast calls, and which model there.
//!
//! A provider is an API (a base URL, a wire format and a key); a target is one model at
//! one provider. Several targets may share a provider; breakers, rate limits, prices
//! and timeouts belong to the target, because that is what fails and costs.

use holdfast_llm::Format;
use serde::Deserialize;

use crate::units::HumanDuration;

/// `[providers.NAME]`: an API holdfast calls.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// The wire format it speaks: `"openai"` (chat completions, also spoken by most
    /// OpenAI-compatible servers) or `"anthropic"` (messages). Required.
    pub format: Format,
    /// The API base URL, `http://` or `https://`, such as `"https://api.openai.com/v1"`
    /// or `"https://api.anthropic.com/v1"`; `/chat/completions` or `/messages` is
    /// appended. Required.
    pub base_url: String,
    /// The environment variable holding the API key; when given, it must be set and not
    /// empty. Optional: a local server or the mock provider needs no key.
    pub key_env: Option<String>,
    /// Azure OpenAI: its API version (`"2024-10-21"`), sent as `?api-version=`; the key
    /// then goes in the `api-key` header. `format = "openai"` only, with `base_url` the
    /// deployment's (`https://NAME.openai.azure.com/openai/deployments/DEPLOYMENT`).
    /// Optional.
    pub azure_api_version: Option<String>,
}

/// `[targets.NAME]`: one model at one provider. The name is what routes list and what
/// metrics show.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The provider's name, a key of `[providers]`. Required.
    pub provider: String,
    /// The model name sent to the provider, such as `"gpt-4o"`. Required, not empty.
    pub model: String,
    /// The model's context window in tokens; at least 1. A request larger than this
    /// skips the target (and may fall back to a larger one). Required.
    pub context_window: u64,
    /// The price, in US dollars per million tokens. Default: free (for local models).
    #[serde(default)]
    pub price: Price,
    /// The timeouts of one attempt.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Requests per minute holdfast sends to this target; at least 1. Over it, calls wait
    /// or fall back. Default: unlimited.
    pub requests_per_minute: Option<u64>,
    /// Prompt tokens per minute holdfast sends to this target; at least 1. Default:
    /// unlimited.
    pub tokens_per_minute: Option<u64>,
    /// Whether the target continues a partial answer given as an assistant prefill, so
    /// that a stream cut mid-answer can be finished here. Default: `true` for
    /// `anthropic` providers, `false` for `openai`.
    pub supports_prefill: Option<bool>,
    /// Whether requests that another target's content filter refused may fall back
    /// here. Default `false`.
    #[serde(default)]
    pub takes_filtered: bool,
    /// Active health probes while the target's breaker is open.
    #[serde(default)]
    pub probe: Probe,
    /// Load shedding: an adaptive limit on the calls in flight to this target.
    #[serde(default)]
    pub concurrency: Concurrency,
}

/// `concurrency = { adaptive = true }`: holdfast learns how many calls the target
/// serves at once without slowing down (its latency per output token against its
/// no-load latency, and its 429s, 503s and timeouts) and sends no more. Calls over the
/// limit wait in a queue, interactive keys before batch keys and then by deadline, or
/// go to the next target of their route; a call that cannot be served in time is
/// refused with 503 `overloaded_shed` and a Retry-After. A target that keeps refusing
/// work is also throttled on holdfast's side (Google SRE's client-side throttling).
/// Off by default.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Concurrency {
    /// Whether to limit. Default `false`.
    pub adaptive: bool,
    /// The limit before anything is learned; within `min..=max`. Default 4.
    pub initial: u32,
    /// The lowest limit; at least 1. Default 1.
    pub min: u32,
    /// The highest limit; at least `min`. Default 1000.
    pub max: u32,
    /// Recent latency up to this multiple of the long-run latency counts as no load
    /// (more when the target's latencies vary so much that a smaller rise could be
    /// chance); 1.0 to 10.0. Default 1.1.
    pub tolerance: f64,
    /// Calls that may wait for a slot; at least 1. Default 1000.
    pub max_queue: u32,
    /// The longest a call waits for a slot; longer than zero. Default `"5s"`.
    pub max_wait: HumanDuration,
    /// Whether to throttle a target that keeps refusing work. Default `true`.
    pub throttle: bool,
}

impl Default for Concurrency {
    fn default() -> Self {
        Concurrency {
            adaptive: false,
            initial: 4,
            min: 1,
            max: 1_000,
            tolerance: 1.1,
            max_queue: 1_000,
            max_wait: HumanDuration::secs(5),
            throttle: true,
        }
    }
}

/// `probe = { every = "2s", kind = "completion" }`: while the target's breaker is open,
/// holdfast sends it a cheap call every `every` on its own, and closes the breaker as
/// soon as one succeeds, so traffic returns within `every` of the target healing
/// instead of after a timer. `probe = { enabled = false }` leaves recovery to the
/// breaker's open time and half-open probes of real traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Probe {
    /// Whether to probe. Default `true`.
    pub enabled: bool,
    /// Between two probes; at least `"100ms"`. Default `"2s"`.
    pub every: HumanDuration,
    /// `"completion"` (default): a one-token chat completion, which fails exactly when
    /// the target's calls fail. `"models"`: `GET …/models`, free, but served apart from
    /// the model itself at most providers, so it may answer through an outage of the
    /// calls.
    pub kind: ProbeKind,
}

impl Default for Probe {
    fn default() -> Self {
        Probe {
            enabled: true,
            every: HumanDuration::secs(2),
            kind: ProbeKind::Completion,
        }
    }
}

/// What an active probe sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    /// A one-token chat completion.
    Completion,
    /// `GET …/models`.
    Models,
}

/// A price, as `{ input_per_mtok = 2.5, output_per_mtok = 10.0 }`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// US dollars per million input (prompt) tokens; finite and ≥ 0. Required.
    pub input_per_mtok: f64,
    /// US dollars per million output (completion) tokens; finite and ≥ 0. Required.
    pub output_per_mtok: f64,
}

/// The timeouts of one attempt on a target, as
/// `{ connect = "2s", first_byte = "10s", idle = "15s", total = "120s" }`. Each is > 0
/// and at most `total`. A request's own deadline may cut them shorter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// Establishing the connection (TCP and TLS). Default `"2s"`.
    pub connect: HumanDuration,
    /// From sending the request to the first event of a stream. Left out (the
    /// default), it is learned from the target's recent latency: its 99th percentile
    /// times 3, at least 1s and at most `"10s"` (at most `total` for a whole answer,
    /// which arrives with its first byte); `"10s"` until enough calls are known. A
    /// whole (non-streamed) answer is cut short by it only when another target of the
    /// route could take the call. Set, it is used as it is, for streams only.
    pub first_byte: Option<HumanDuration>,
    /// Between two reads of a response that has started. Default `"15s"`.
    pub idle: HumanDuration,
    /// The whole attempt, body included. Default `"120s"`.
    pub total: HumanDuration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: HumanDuration::secs(2),
            first_byte: None,
            idle: HumanDuration::secs(15),
            total: HumanDuration::secs(120),
        }
    }
}
