//! `[routes.NAME]`: the model names clients ask for.
//!
//! A client sends `"model": "smart"`; the route `smart` says which targets to try, in
//! order, under which policy, and what to do when a stream breaks or every target is
//! down. Clients never see target names, so targets can change without client changes.

use serde::Deserialize;

use crate::units::HumanDuration;

/// `[routes.NAME]`: a model name clients ask for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// The targets to try, in order of preference: names from `[targets]`, each at most
    /// once. At least one. Required.
    pub targets: Vec<String>,
    /// The policy's name, a key of `[policies]`. Default `"default"`.
    #[serde(default = "default_policy")]
    pub policy: String,
    /// What to do when a stream breaks after the client has received part of the
    /// answer (a cut, an idle stall, an in-band error, a run of malformed events).
    /// `"continue"` finishes it where that can be done correctly: first by sending the
    /// same request with the text already sent as an assistant prefill to the serving
    /// target or a later one in `targets` whose `supports_prefill` is true, streaming
    /// only the continuation; else by asking a target for the whole answer again and
    /// forwarding only what follows the text already sent, when the new answer begins
    /// with it byte for byte. Recovery calls go through the route's policy (breakers,
    /// retry budget, deadline). A partial tool call, a structured (`response_format`)
    /// output, or an answer that cannot be finished ends with an explicit error naming
    /// the original break. `"error"` always ends it with an explicit error. Default
    /// `"continue"`.
    #[serde(default)]
    pub mid_stream: MidStream,
    /// Graceful degradation when every target has failed. Default: none (the client
    /// gets the error).
    pub degraded: Option<Degraded>,
    /// Few-shot examples from a library of people's corrections, as `{ library =
    /// "triage", k = 4, mode = "similar" }`: each call gets up to `k` of the library's
    /// active examples as earlier user/assistant turns, after its system messages.
    /// Default: none.
    pub few_shot: Option<FewShot>,
    /// Where a retryable failure (429, 5xx, a timeout, a broken connection) is retried:
    /// `"same"` (default) retries the same target after the policy's backoff; `"next"`
    /// moves at once, without backoff, to the next target of `targets` that can take
    /// the call (breaker closed, no Retry-After pending), and retries the same target
    /// after the backoff only when none can; with `"next"`, new calls also skip the
    /// first target while it fails a share p > 5% of its recent calls, with
    /// probability 1 − 0.05/p (`holdfast_policy::shift`).
    #[serde(default)]
    pub retry_on: RetryOn,
}

/// `few_shot = { library = "…", k = 4, mode = "similar", auto_approve = false }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FewShot {
    /// The library's name (the task type's): 1..=200 bytes of letters, digits and
    /// `_ . : / @ -`. Required. Each tenant has its own examples under it.
    pub library: String,
    /// How many examples a call gets at most, 1..=32. Default 4.
    #[serde(default = "default_k")]
    pub k: u32,
    /// `"similar"`: the `k` examples whose inputs share the most words with the call's
    /// last user message (BM25), the most similar nearest to it; `"fixed"`: the same
    /// `k` (the library's oldest active examples) on every call. Default `"similar"`.
    #[serde(default)]
    pub mode: FewShotMode,
    /// Corrections of this route's answers become active examples at once instead of
    /// candidates waiting for a reviewer. Default `false`.
    #[serde(default)]
    pub auto_approve: bool,
}

fn default_k() -> u32 {
    4
}

/// How a route's examples are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FewShotMode {
    /// The most similar to the call's input.
    #[default]
    Similar,
    /// The same for every call.
    Fixed,
}

/// Where a retry goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryOn {
    /// The same target, after a backoff.
    #[default]
    Same,
    /// The next target that can take the call, at once.
    Next,
}

fn default_policy() -> String {
    "default".to_owned()
}

/// What happens when a stream breaks mid-answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MidStream {
    /// Finish the answer on another target when that is correct; else an explicit error.
    #[default]
    Continue,
    /// End the stream with an explicit error.
    Error,
}

/// Graceful degradation, as `{ cache = true, ttl = "10m", static_response = "…" }`:
/// what a client gets when every target of the route has failed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Degraded {
    /// Answer with the last successful answer to the same request, if one is cached.
    /// Default `false`.
    #[serde(default)]
    pub cache: bool,
    /// How long successful answers stay in that cache; > 0. Default `"10m"`.
    #[serde(default = "default_ttl")]
    pub ttl: HumanDuration,
    /// A fixed answer to give when nothing else is available (after the cache, if
    /// enabled); not empty when given. Default: none.
    pub static_response: Option<String>,
}

fn default_ttl() -> HumanDuration {
    HumanDuration::secs(600)
}
