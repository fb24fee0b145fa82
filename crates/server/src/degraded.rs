//! Graceful degradation: when every target failed, an answer that says it is degraded
//! beats an error, for the routes that opt in (`degraded = { cache, static_response }`).
//!
//! The decision: degrade only on failures that are not the client's doing (an outage,
//! a timeout, an open breaker), never on a bad request, a context overflow or a filter
//! refusal, where an old answer to another question would be wrong. The cache is keyed
//! by tenant, route and a hash of the request in canonical form (parsed and
//! re-serialised, with the stream flags removed, so key order and whitespace do not
//! matter and a streamed request can be answered from a non-streamed one), bounded in
//! answers and in bytes (the oldest evicted first; an answer larger than the whole byte
//! budget is not kept), and aged on the injected clock; the answer says how it was made
//! in `x-holdfast-degraded`. The hash is keyed with a secret drawn at start, so that no
//! tenant can craft a request whose key collides with another tenant's and plant an
//! answer for it.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use holdfast_config::Degraded;
use holdfast_llm::openai::{
    ChatRequest, ChatResponse, Choice, FinishReason, ResponseMessage, Usage,
};
use holdfast_policy::Instant;
use serde_json::Map;

use crate::error::ApiError;

/// A bounded cache of recent successful answers, over all routes.
pub(crate) struct DegradedCache {
    capacity: usize,
    max_bytes: usize,
    inner: Mutex<Entries>,
    /// The secret key of [`DegradedCache::key`].
    hasher: RandomState,
}

#[derive(Default)]
struct Entries {
    /// Each answer with its expiry and its size ([`size`]).
    map: HashMap<u64, (Arc<ChatResponse>, Instant, usize)>,
    order: VecDeque<u64>,
    bytes: usize,
}

/// What an entry costs besides its answer's JSON: the response's own structs, the
/// map's and the order's share, rounded up.
const ENTRY_OVERHEAD: usize = 512;

/// The bytes keeping `response` takes, near enough: its length as JSON (its text is
/// most of it) plus [`ENTRY_OVERHEAD`].
fn size(response: &ChatResponse) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, response);
    count.0 + ENTRY_OVERHEAD
}

impl DegradedCache {
    /// A cache keeping at most `capacity` answers and `max_bytes` bytes of them.
    pub(crate) fn new(capacity: usize, max_bytes: usize) -> Self {
        DegradedCache {
            capacity: capacity.max(1),
            max_bytes,
            inner: Mutex::new(Entries::default()),
            hasher: RandomState::new(),
        }
    }

    /// The key of `tenant`'s `request` on `route`: a keyed hash of its canonical form.
    pub(crate) fn key(&self, tenant: &str, route: &str, request: &ChatRequest) -> u64 {
        let mut canonical = request.clone();
        canonical.stream = None;
        canonical.stream_options = None;
        let mut hasher = self.hasher.build_hasher();
        tenant.hash(&mut hasher);
        route.hash(&mut hasher);
        serde_json::to_vec(&canonical)
            .unwrap_or_default()
            .hash(&mut hasher);
        hasher.finish()
    }

    /// Keeps `response` as the answer to `key` until `expires`, unless it is larger
    /// than the whole byte budget.
    pub(crate) fn remember(&self, key: u64, response: &ChatResponse, expires: Instant) {
        let size = size(response);
        if size > self.max_bytes {
            return;
        }
        let answer = Arc::new(response.clone());
        let mut entries = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match entries.map.insert(key, (answer, expires, size)) {
            Some((_, _, old)) => entries.bytes = entries.bytes.saturating_sub(old),
            None => entries.order.push_back(key),
        }
        entries.bytes += size;
        while entries.order.len() > self.capacity
            || (entries.bytes > self.max_bytes && !entries.order.is_empty())
        {
            if let Some(old) = entries.order.pop_front()
                && let Some((_, _, freed)) = entries.map.remove(&old)
            {
                entries.bytes = entries.bytes.saturating_sub(freed);
            }
        }
    }

    /// The answer kept for `key`, if it has not expired at `now`.
    pub(crate) fn recall(&self, key: u64, now: Instant) -> Option<Arc<ChatResponse>> {
        let entries = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .map
            .get(&key)
            .filter(|(_, expires, _)| *expires > now)
            .map(|(r, _, _)| Arc::clone(r))
    }
}

/// Whether a failure may be answered with a degraded response.
pub(crate) fn may_degrade(error: &ApiError) -> bool {
    match error {
        ApiError::UpstreamRateLimited { .. }
        | ApiError::UpstreamOverloaded { .. }
        | ApiError::UpstreamError(_)
        | ApiError::UpstreamTimeout(_)
        | ApiError::DeadlineExceeded
        | ApiError::UpstreamAuthFailed
        | ApiError::UpstreamQuotaExhausted
        | ApiError::UpstreamModelNotFound
        | ApiError::InvalidOutput(_)
        | ApiError::RetryBudgetExhausted
        | ApiError::TargetsUnavailable { .. }
        | ApiError::OverloadedShed { .. }
        | ApiError::AgentBreakerOpen => true,
        ApiError::InvalidJson(_)
        | ApiError::InvalidRequest { .. }
        | ApiError::InvalidHeader { .. }
        | ApiError::InvalidResponseFormat(_)
        | ApiError::MissingApiKey
        | ApiError::InvalidApiKey
        | ApiError::Forbidden { .. }
        | ApiError::CrossOrigin(_)
        | ApiError::UnsupportedMediaType(_)
        | ApiError::ModelNotFound(_)
        | ApiError::NotFound(_)
        | ApiError::MethodNotAllowed { .. }
        | ApiError::BodyTooLarge { .. }
        | ApiError::BodyReadTimeout { .. }
        | ApiError::IdempotencyKeyReused
        | ApiError::RateLimited { .. }
        | ApiError::TooManyConcurrentRequests { .. }
        | ApiError::PromptExceedsKeyLimit
        | ApiError::UpstreamBadRequest(_)
        | ApiError::ContextLengthExceeded(_)
        | ApiError::ContentFilter(_)
        | ApiError::PromptTooLarge
        | ApiError::InvalidInput { .. }
        | ApiError::InvalidConfig { .. }
        | ApiError::HistoryUnavailable(_)
        | ApiError::GateFailed { .. }
        | ApiError::Conflict(_)
        | ApiError::StaleLease(_)
        | ApiError::EngineUnavailable
        | ApiError::StoreUnavailable(_)
        | ApiError::OutboxFull(_)
        | ApiError::ArtifactUnreadable(_)
        | ApiError::Internal(_) => false,
    }
}

/// The degraded answer for a failed call, and how it was made (`cache` or `static`).
pub(crate) fn answer(
    cache: &DegradedCache,
    config: &Degraded,
    key: Option<u64>,
    route: &str,
    now: Instant,
    created: u64,
) -> Option<(Arc<ChatResponse>, &'static str)> {
    if config.cache
        && let Some(found) = key.and_then(|k| cache.recall(k, now))
    {
        return Some((found, "cache"));
    }
    let text = config.static_response.as_ref()?;
    Some((Arc::new(static_response(route, text, created)), "static"))
}

fn static_response(route: &str, text: &str, created: u64) -> ChatResponse {
    ChatResponse {
        id: "chatcmpl-holdfast-degraded".to_owned(),
        object: "chat.completion".to_owned(),
        created,
        model: route.to_owned(),
        choices: vec![Choice {
            index: 0,
            message: ResponseMessage {
                role: "assistant".to_owned(),
                content: Some(text.to_owned()),
                ..ResponseMessage::default()
            },
            finish_reason: Some(FinishReason::Stop),
            logprobs: None,
        }],
        usage: Some(Usage::new(0, 0)),
        extra: Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn request(text: &str, stream: bool) -> ChatRequest {
        serde_json::from_value(serde_json::json!({
            "model": "m", "stream": stream, "messages": [{"role": "user", "content": text}]
        }))
        .unwrap()
    }

    #[test]
    fn the_key_ignores_streaming_but_not_content_route_or_tenant() {
        let cache = DegradedCache::new(4, 1 << 20);
        let key = |tenant, route, text, stream| cache.key(tenant, route, &request(text, stream));
        assert_eq!(key("t", "r", "a", true), key("t", "r", "a", false));
        assert_ne!(key("t", "r", "a", false), key("t", "r", "b", false));
        assert_ne!(key("t", "r", "a", false), key("t", "s", "a", false));
        assert_ne!(key("t", "r", "a", false), key("u", "r", "a", false));
        // The hash is keyed per cache: another process cannot predict it.
        let other = DegradedCache::new(4, 1 << 20);
        assert_ne!(
            key("t", "r", "a", false),
            other.key("t", "r", &request("a", false))
        );
    }

    #[test]
    fn cached_answers_expire_then_static_takes_over() {
        let cache = DegradedCache::new(4, 1 << 20);
        let config = Degraded {
            cache: true,
            ttl: Duration::from_secs(10),
            static_response: Some("later".into()),
        };
        let at = |s| Instant::from_origin(Duration::from_secs(s));
        cache.remember(1, &static_response("r", "cached", 0), at(10));
        assert_eq!(
            answer(&cache, &config, Some(1), "r", at(5), 0).unwrap().1,
            "cache"
        );
        let (response, how) = answer(&cache, &config, Some(1), "r", at(11), 0).unwrap();
        assert_eq!(
            (how, response.choices[0].message.content.as_deref()),
            ("static", Some("later"))
        );
    }

    #[test]
    fn bytes_bound_the_answers_kept_and_a_too_large_one_is_not_kept() {
        let at = Instant::from_origin(Duration::from_secs(100));
        let answer = |text: &str| static_response("r", text, 0);
        let one = size(&answer(&"a".repeat(2000)));
        let cache = DegradedCache::new(100, 2 * one);
        for key in 1..=3 {
            cache.remember(key, &answer(&"a".repeat(2000)), at);
        }
        assert!(cache.recall(1, Instant::ZERO).is_none(), "the oldest went");
        assert!(cache.recall(2, Instant::ZERO).is_some());
        assert!(cache.recall(3, Instant::ZERO).is_some());
        cache.remember(4, &answer(&"b".repeat(3 * one)), at);
        assert!(
            cache.recall(4, Instant::ZERO).is_none(),
            "larger than the budget"
        );
        assert!(
            cache.recall(2, Instant::ZERO).is_some(),
            "nothing made room for it"
        );
        cache.remember(2, &answer("short"), at);
        let held = cache.inner.lock().unwrap().bytes;
        assert_eq!(
            held,
            one + size(&answer("short")),
            "a replaced answer is freed"
        );
    }
}
