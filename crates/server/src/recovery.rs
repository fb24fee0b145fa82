//! Mid-stream recovery: finishing an answer whose stream broke after the client got
//! part of it, when the route says `mid_stream = "continue"`.
//!
//! The decision that shapes it: the client must end up with the one answer it would
//! have got, or with the original break as an explicit error, never with a spliced
//! guess. So there are only two ways to finish: continuation (the same request with
//! the text already sent as an assistant prefill, on a target that takes one), and
//! restart and splice (the whole answer again, forwarded only past the text already
//! sent, and only when it begins with that text byte for byte), tried in that order
//! from the serving target down the route's chain. Each recovery call is
//! one ordinary pipeline call on a one-target chain, so breakers, Retry-After, the
//! retry budget and the deadline hold as for any call; its attempts join the ledger
//! entry. A partial tool call, a structured output or several choices are never
//! recovered.

use std::collections::VecDeque;
use std::sync::Arc;

use holdfast_config::MidStream;
use holdfast_llm::openai::{AssistantMessage, ChatChunk, ChatRequest, Content, Message};
use holdfast_llm::{ChunkStream, Usage};
use holdfast_policy::fallback::{Chain, Link, TargetId};

use crate::call::{self, Job};
use crate::events::{self, CallTrace};
use crate::gateway::{Gateway, RouteRuntime};
use crate::meta::RequestMeta;
use crate::output::OutputCheck;

/// How many recovery calls one stream may make, over all its breaks.
const MAX_RECOVERY_CALLS: u32 = 4;

/// A recovered stream: chunks already read (a splice's first), then the rest.
pub(crate) struct Resumed {
    queue: VecDeque<ChatChunk>,
    stream: Box<ChunkStream>,
    /// Text the continuation repeats first (the whitespace a prefill may not end with).
    skip: String,
}

impl Resumed {
    /// The next chunk, as [`ChunkStream::next`].
    pub(crate) async fn next(&mut self) -> Option<Result<ChatChunk, holdfast_llm::ProviderError>> {
        if let Some(chunk) = self.queue.pop_front() {
            return Some(Ok(chunk));
        }
        let mut item = self.stream.next().await;
        if let Some(Ok(chunk)) = &mut item
            && !self.skip.is_empty()
            && let Some(text) = content_mut(chunk)
        {
            let same = common_prefix(text, &self.skip);
            text.drain(..same);
            self.skip = if same == self.skip.len() || !text.is_empty() {
                String::new()
            } else {
                self.skip[same..].to_owned()
            };
        }
        item
    }
}

/// What recovery needs from the exchange, owned, because the relay outlives it.
pub(crate) struct Recovery {
    gateway: Gateway,
    id: Arc<str>,
    route: String,
    request: ChatRequest,
    meta: RequestMeta,
    tokens: u64,
    seed: u64,
    /// The target now serving the stream.
    serving: TargetId,
    /// The ledger number of the recovery attempt now serving, if one is.
    number: Option<u32>,
    calls_left: u32,
    /// `calls_left` when the last recovery try was counted in the metrics.
    reported: u32,
}

impl Recovery {
    /// Recovery for the stream of `job` served by `serving`, or `None` when the route
    /// or the request rules it out.
    pub(crate) fn for_job(
        gateway: &Gateway,
        job: &Job<'_>,
        serving: TargetId,
        key: &str,
    ) -> Option<Recovery> {
        let structured = !matches!(job.check, OutputCheck::NonEmpty);
        let choices = job.request.n.is_some_and(|n| n > 1);
        if job.route.mid_stream == MidStream::Error || structured || choices {
            return None;
        }
        Some(Recovery {
            gateway: gateway.clone(),
            id: Arc::clone(job.id),
            route: job.request.model.clone(),
            request: job.request.clone(),
            meta: RequestMeta {
                deadline: job.meta.deadline,
                agent: job.meta.agent.clone(),
                idempotency_key: Some(key.to_owned()),
                trace: job.meta.trace.clone(),
                priority: job.meta.priority,
            },
            tokens: job.tokens,
            seed: job.seed,
            serving,
            number: None,
            calls_left: MAX_RECOVERY_CALLS,
            reported: MAX_RECOVERY_CALLS,
        })
    }

    /// The prompt's tokens, as counted at the door.
    pub(crate) fn tokens(&self) -> u64 {
        self.tokens
    }

    /// The ledger number of the recovery attempt now serving, if one is.
    pub(crate) fn serving_number(&self) -> Option<u32> {
        self.number
    }

    /// A stream that finishes the answer after `delivered` reached the client, or
    /// `None`. The attempt that broke is settled in the ledger with `broken` first.
    pub(crate) async fn resume(&mut self, delivered: &str, broken: Usage) -> Option<Resumed> {
        if let Some(number) = self.number {
            self.settle(number, broken);
        }
        self.number = None;
        let gw = Arc::clone(&self.gateway.inner);
        let candidates = self.candidates();
        let takes_prefill = candidates
            .iter()
            .filter(|link| gw.target(link.target).is_some_and(|t| t.supports_prefill));
        for link in takes_prefill {
            let resumed = self.continue_on(link, delivered).await;
            self.report("continuation", resumed.is_some());
            if resumed.is_some() {
                return resumed;
            }
        }
        // Any target can restart, including one that refused the prefill after all.
        for link in &candidates {
            let resumed = self.splice_on(link, delivered).await;
            self.report("splice", resumed.is_some());
            if resumed.is_some() {
                return resumed;
            }
        }
        None
    }

    /// The target now serving the stream.
    pub(crate) fn serving(&self) -> TargetId {
        self.serving
    }

    /// Counts one recovery try in the metrics, when it made a call: a try the call
    /// limit refused never reached a target, so it is neither an `ok` nor a `failed`.
    fn report(&mut self, path: &'static str, ok: bool) {
        if self.calls_left < self.reported {
            self.reported = self.calls_left;
            events::recovery_tried(&self.gateway.inner, &self.route, path, ok);
        }
    }

    /// Records the usage of ledger attempt `number` (a recovery attempt).
    pub(crate) fn settle(&self, number: u32, usage: Usage) {
        let gw = &self.gateway.inner;
        gw.ledger
            .update(&self.id, |entry| entry.trace.settle(gw, number, usage));
    }

    /// The serving target and the ones after it in the route's chain.
    fn candidates(&self) -> Vec<Link> {
        let Some(route) = self.gateway.inner.routes.get(&self.route) else {
            return Vec::new();
        };
        let links = route.chain.links();
        let from = links
            .iter()
            .position(|l| l.target == self.serving)
            .unwrap_or(0);
        links[from..].to_vec()
    }

    async fn continue_on(&mut self, link: &Link, delivered: &str) -> Option<Resumed> {
        let prefill = delivered.trim_end();
        let mut request = self.request.clone();
        if !prefill.is_empty() {
            request.messages.push(Message::Assistant(AssistantMessage {
                content: Some(Content::Text(prefill.to_owned())),
                refusal: None,
                tool_calls: None,
                name: None,
                extra: serde_json::Map::new(),
            }));
        }
        let stream = self.call(link, &request, "continuation").await?;
        Some(Resumed {
            queue: VecDeque::new(),
            stream,
            skip: delivered[prefill.len()..].to_owned(),
        })
    }

    async fn splice_on(&mut self, link: &Link, delivered: &str) -> Option<Resumed> {
        let request = self.request.clone();
        let mut stream = self.call(link, &request, "splice").await?;
        let mut seen = String::new();
        loop {
            let mut chunk = match stream.next().await {
                Some(Ok(chunk)) => chunk,
                Some(Err(_)) | None => break,
            };
            let has_tools = chunk
                .choices
                .iter()
                .any(|c| c.delta.tool_calls.as_ref().is_some_and(|t| !t.is_empty()));
            if has_tools {
                break;
            }
            let before = seen.len();
            let text = content_mut(&mut chunk)
                .map(std::mem::take)
                .unwrap_or_default();
            seen.push_str(&text);
            if seen.len() < delivered.len() || seen == delivered {
                let ended = chunk.finish_reason().is_some();
                if !delivered.starts_with(&seen) || (ended && seen.len() < delivered.len()) {
                    break;
                }
                if seen.len() < delivered.len() || (!ended && chunk.usage.is_none()) {
                    continue;
                }
            } else if !seen.starts_with(delivered) {
                break;
            }
            let rest = &text[delivered.len().saturating_sub(before).min(text.len())..];
            if let Some(content) = content_mut(&mut chunk) {
                content.push_str(rest);
            }
            return Some(Resumed {
                queue: VecDeque::from([chunk]),
                stream,
                skip: String::new(),
            });
        }
        // This attempt cannot finish the answer: count what it used and move on.
        if let Some(number) = self.number.take() {
            let usage = stream
                .usage()
                .unwrap_or_else(|| estimate(self.tokens, &seen));
            self.settle(number, usage);
        }
        None
    }

    /// One pipeline call of `request` on `link` alone, up to its commit point; its
    /// attempts join the ledger entry, marked with the recovery `path`.
    async fn call(
        &mut self,
        link: &Link,
        request: &ChatRequest,
        path: &'static str,
    ) -> Option<Box<ChunkStream>> {
        if self.calls_left == 0 {
            return None;
        }
        self.calls_left -= 1;
        let gw = Arc::clone(&self.gateway.inner);
        let original = gw.routes.get(&self.route)?;
        let route = RouteRuntime {
            name: Arc::clone(&original.name),
            chain: Arc::new(Chain::new(vec![link.clone()]).ok()?),
            policy: Arc::clone(&original.policy),
            mid_stream: original.mid_stream,
            degraded: None,
            few_shot: None,
            smallest_window: original.smallest_window,
        };
        let check = OutputCheck::NonEmpty;
        let job = Job {
            gateway: &gw,
            route: &route,
            request,
            meta: &self.meta,
            check: &check,
            id: &self.id,
            tokens: self.tokens,
            seed: self.seed.wrapping_add(u64::from(self.calls_left)),
        };
        let ran = call::stream(&job).await;
        let base = self.join(ran.trace, path);
        let served = ran.result.ok()?;
        self.serving = served.target;
        self.number = ran.served_number.map(|n| n + base);
        Some(Box::new(served.response))
    }

    /// Adds a recovery call's attempts to the ledger entry, numbered after the ones
    /// there and marked with the recovery `path`; returns the offset added to their
    /// numbers.
    fn join(&self, trace: CallTrace, path: &'static str) -> u32 {
        let mut base = 0;
        self.gateway.inner.ledger.update(&self.id, |entry| {
            base = entry
                .trace
                .attempts
                .iter()
                .map(|a| a.number)
                .max()
                .unwrap_or(0);
            for mut attempt in trace.attempts {
                attempt.number += base;
                attempt.recovery = Some(path);
                entry.trace.attempts.push(attempt);
            }
            entry.trace.skipped.extend(trace.skipped);
        });
        base
    }
}

/// Usage of an attempt that sent `text` for a prompt of `tokens` before it broke: a
/// broken stream reports no usage, so it is estimated, a quarter of the text's bytes
/// as for prompts (`prompt.rs`). An exact count would load the tokenizer's tables
/// (some 45 MB, and about a second) in the middle of a stream being recovered.
pub(crate) fn estimate(tokens: u64, text: &str) -> Usage {
    Usage::new(tokens, (text.len() as u64).div_ceil(4))
}

/// The text content of the first choice's delta, if it has one.
pub(crate) fn content_mut(chunk: &mut ChatChunk) -> Option<&mut String> {
    chunk
        .choices
        .iter_mut()
        .find(|c| c.index == 0)
        .and_then(|c| c.delta.content.as_mut())
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.char_indices()
        .zip(b.chars())
        .take_while(|((_, x), y)| x == y)
        .last()
        .map_or(0, |((i, x), _)| i + x.len_utf8())
}
