//! `Idempotency-Key`: a repeated request gets the first answer, not a second call.
//!
//! The decision: a key is *claimed* before the call. The first request becomes the
//! leader and calls upstream; a concurrent duplicate waits on a `watch` channel for the
//! leader to finish instead of calling upstream too, then replays its answer. Only
//! successful answers are kept (a failure may well succeed when retried, which is why
//! clients retry): when the leader fails, its claim is dropped and one waiter becomes
//! the next leader. Keys are scoped by client key name, matched with a hash of the
//! method, path and body (same key with another body is a 422), expire after the TTL
//! on the injected clock, and at most `capacity` answers and `max_bytes` bytes of them
//! are kept, the oldest evicted first. An answer larger than `max_bytes` is not kept at
//! all (its client still gets it): the claim is dropped as for a failure, so a repeat
//! calls upstream again rather than evicting every other answer for one.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use holdfast_policy::Instant;
use tokio::sync::watch;

use crate::error::ApiError;
use crate::meta::{REPLAYED, Reply};

/// A kept answer.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) status: StatusCode,
    pub(crate) content_type: &'static str,
    pub(crate) body: Bytes,
    pub(crate) reply: Reply,
}

/// What a kept answer costs besides its body and key: the slot, the `Stored`, the
/// order entry and the map's own share, rounded up.
const ENTRY_OVERHEAD: usize = 256;

impl Stored {
    /// The bytes keeping this answer under `key` takes.
    fn size(&self, key: &str) -> usize {
        let reply = self.reply.request_id.as_deref().map_or(0, str::len)
            + self.reply.target.as_deref().map_or(0, str::len);
        self.body.len() + reply + 2 * key.len() + ENTRY_OVERHEAD
    }

    /// The answer again, marked as a replay.
    pub(crate) fn replay(&self) -> Response {
        let mut response = (self.status, self.body.clone()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        self.reply.apply(headers);
        headers.insert(REPLAYED, HeaderValue::from_static("true"));
        response
    }
}

/// What a claim found.
pub(crate) enum Claim {
    /// No earlier request: call upstream, then [`Leader::complete`].
    Leader(Leader),
    /// An earlier request's answer.
    Replay(Arc<Stored>),
}

enum Slot {
    Pending {
        hash: u64,
        token: u64,
        done: watch::Receiver<()>,
    },
    Done {
        hash: u64,
        stored: Arc<Stored>,
        expires: Instant,
        /// What it counts against `max_bytes`.
        size: usize,
    },
}

struct Table {
    slots: HashMap<String, Slot>,
    /// Completed keys in completion order, with their expiry, for eviction.
    order: VecDeque<(String, Instant)>,
    /// The bytes the completed answers take ([`Stored::size`]).
    bytes: usize,
    next_token: u64,
}

/// How much the store keeps.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    ttl: Duration,
    capacity: usize,
    max_bytes: usize,
}

/// The store of claimed keys and kept answers.
pub(crate) struct IdempotencyStore {
    bounds: Bounds,
    table: Arc<Mutex<Table>>,
}

/// The right and duty to answer a key: complete it, or drop it to let a waiter try.
pub(crate) struct Leader {
    table: Arc<Mutex<Table>>,
    key: String,
    token: u64,
    bounds: Bounds,
    _done: watch::Sender<()>,
}

/// The hash that tells "the same request" from "another request with the same key".
pub(crate) fn request_hash(path: &str, body: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    path.hash(&mut hasher);
    body.hash(&mut hasher);
    hasher.finish()
}

impl IdempotencyStore {
    /// A store keeping answers for `ttl`, at most `capacity` of them and `max_bytes`
    /// bytes of them.
    pub(crate) fn new(ttl: Duration, capacity: u64, max_bytes: u64) -> Self {
        let table = Table {
            slots: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            next_token: 0,
        };
        let bounds = Bounds {
            ttl,
            capacity: usize::try_from(capacity).unwrap_or(usize::MAX).max(1),
            max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
        };
        IdempotencyStore {
            bounds,
            table: Arc::new(Mutex::new(table)),
        }
    }

    /// Claims `key` (scoped by `scope`) for a request hashing to `hash`, waiting for a
    /// concurrent leader first. `now` reads the injected clock.
    pub(crate) async fn claim(
        &self,
        scope: &str,
        key: &str,
        hash: u64,
        now: impl Fn() -> Instant,
    ) -> Result<Claim, ApiError> {
        let key = format!("{scope}\u{0}{key}");
        loop {
            let mut done = {
                let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
                table.expire(now());
                match table.slots.get(&key) {
                    None => return Ok(Claim::Leader(self.lead(&mut table, key, hash))),
                    Some(Slot::Pending { hash: h, .. } | Slot::Done { hash: h, .. })
                        if *h != hash =>
                    {
                        return Err(ApiError::IdempotencyKeyReused);
                    }
                    Some(Slot::Done { stored, .. }) => {
                        return Ok(Claim::Replay(Arc::clone(stored)));
                    }
                    Some(Slot::Pending { done, .. }) => done.clone(),
                }
            };
            // Ends when the leader completes or gives up (its sender is dropped).
            while done.changed().await.is_ok() {}
        }
    }

    fn lead(&self, table: &mut Table, key: String, hash: u64) -> Leader {
        let (sender, receiver) = watch::channel(());
        table.next_token += 1;
        let token = table.next_token;
        table.slots.insert(
            key.clone(),
            Slot::Pending {
                hash,
                token,
                done: receiver,
            },
        );
        Leader {
            table: Arc::clone(&self.table),
            key,
            token,
            bounds: self.bounds,
            _done: sender,
        }
    }
}

impl Table {
    /// Drops answers whose TTL has passed (the oldest first).
    fn expire(&mut self, now: Instant) {
        while let Some((_, expires)) = self.order.front() {
            if *expires > now {
                break;
            }
            self.evict_oldest();
        }
    }

    /// Drops the oldest completed answer.
    fn evict_oldest(&mut self) {
        let Some((key, expires)) = self.order.pop_front() else {
            return;
        };
        if let Some(Slot::Done {
            expires: e, size, ..
        }) = self.slots.get(&key)
            && *e == expires
        {
            self.bytes = self.bytes.saturating_sub(*size);
            self.slots.remove(&key);
        }
    }
}

impl Leader {
    /// The largest answer the store keeps: a stream longer than this need not be
    /// recorded.
    pub(crate) fn max_bytes(&self) -> usize {
        self.bounds.max_bytes
    }

    /// Keeps `stored` as the key's answer from `now` on; waiters replay it. An answer
    /// over `max_bytes` is not kept: as when a leader fails, a waiter takes over.
    pub(crate) fn complete(self, stored: Stored, now: Instant) {
        let size = stored.size(&self.key);
        if size > self.bounds.max_bytes {
            tracing::debug!(
                bytes = size,
                max_bytes = self.bounds.max_bytes,
                "an answer larger than idempotency.max_bytes is not kept"
            );
            return;
        }
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let Some(Slot::Pending { hash, token, .. }) = table.slots.get(&self.key) else {
            return;
        };
        if *token != self.token {
            return;
        }
        let (hash, expires) = (*hash, now + self.bounds.ttl);
        table.slots.insert(
            self.key.clone(),
            Slot::Done {
                hash,
                stored: Arc::new(stored),
                expires,
                size,
            },
        );
        table.order.push_back((self.key.clone(), expires));
        table.bytes += size;
        while table.order.len() > self.bounds.capacity
            || (table.bytes > self.bounds.max_bytes && !table.order.is_empty())
        {
            table.evict_oldest();
        }
        drop(table);
        // `self` drops here: its sender wakes the waiters, which find `Done`.
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(table.slots.get(&self.key), Some(Slot::Pending { token, .. }) if *token == self.token)
        {
            table.slots.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> Stored {
        sized(2)
    }

    /// An answer whose body is `len` bytes.
    fn sized(len: usize) -> Stored {
        Stored {
            status: StatusCode::OK,
            content_type: "application/json",
            body: Bytes::from(vec![b' '; len]),
            reply: Reply::default(),
        }
    }

    /// Claims `key` and completes it with `answer`.
    fn keep(store: &IdempotencyStore, key: &str, answer: Stored) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let Ok(Claim::Leader(leader)) = rt.block_on(store.claim("", key, 1, || at(0))) else {
            panic!()
        };
        leader.complete(answer, at(0));
    }

    fn kept(store: &IdempotencyStore) -> (Vec<String>, usize) {
        let table = store.table.lock().unwrap();
        let mut keys: Vec<String> = table
            .slots
            .keys()
            .map(|k| k.trim_start_matches('\u{0}').to_owned())
            .collect();
        keys.sort();
        (keys, table.bytes)
    }

    fn at(secs: u64) -> Instant {
        Instant::from_origin(Duration::from_secs(secs))
    }

    #[tokio::test]
    async fn same_body_replays_other_body_conflicts_and_ttl_expires() {
        let store = IdempotencyStore::new(Duration::from_secs(10), 10, 1 << 20);
        let Ok(Claim::Leader(leader)) = store.claim("", "k", 1, || at(0)).await else {
            panic!()
        };
        leader.complete(stored(), at(0));
        assert!(matches!(
            store.claim("", "k", 1, || at(5)).await,
            Ok(Claim::Replay(_))
        ));
        assert!(matches!(
            store.claim("", "k", 2, || at(5)).await,
            Err(ApiError::IdempotencyKeyReused)
        ));
        assert!(matches!(
            store.claim("other", "k", 2, || at(5)).await,
            Ok(Claim::Leader(_))
        ));
        assert!(matches!(
            store.claim("", "k", 2, || at(11)).await,
            Ok(Claim::Leader(_))
        ));
    }

    #[tokio::test]
    async fn a_waiter_takes_over_when_the_leader_fails() {
        let store = Arc::new(IdempotencyStore::new(Duration::from_secs(10), 10, 1 << 20));
        let Ok(Claim::Leader(leader)) = store.claim("", "k", 1, || at(0)).await else {
            panic!()
        };
        let waiter = {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                matches!(
                    store.claim("", "k", 1, || at(0)).await,
                    Ok(Claim::Leader(_))
                )
            })
        };
        tokio::task::yield_now().await;
        drop(leader);
        assert!(waiter.await.unwrap());
    }

    #[test]
    fn bytes_bound_the_answers_kept_the_oldest_evicted_first() {
        let one = sized(4000).size("\u{0}a");
        let store = IdempotencyStore::new(Duration::from_secs(10), 100, 2 * one as u64 + 10);
        for key in ["a", "b"] {
            keep(&store, key, sized(4000));
        }
        assert_eq!(kept(&store), (vec!["a".into(), "b".into()], 2 * one));
        keep(&store, "c", sized(4000));
        assert_eq!(
            kept(&store),
            (vec!["b".into(), "c".into()], 2 * one),
            "the oldest went to make room"
        );
        keep(&store, "d", sized(8000));
        let (keys, bytes) = kept(&store);
        assert_eq!(keys, ["d"], "a larger answer evicts as many as it needs");
        assert!(bytes <= 2 * one + 10);
    }

    #[tokio::test]
    async fn an_answer_over_the_budget_is_not_kept_and_a_waiter_takes_over() {
        let store = Arc::new(IdempotencyStore::new(Duration::from_secs(10), 10, 2048));
        keep_async(&store, "small", sized(100)).await;
        let Ok(Claim::Leader(leader)) = store.claim("", "big", 1, || at(0)).await else {
            panic!()
        };
        let waiter = {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                matches!(
                    store.claim("", "big", 1, || at(0)).await,
                    Ok(Claim::Leader(_))
                )
            })
        };
        tokio::task::yield_now().await;
        leader.complete(sized(4096), at(0));
        assert!(waiter.await.unwrap(), "the duplicate calls upstream itself");
        let (keys, _) = kept(&store);
        assert_eq!(keys, ["small"], "nothing was evicted for it");
    }

    async fn keep_async(store: &IdempotencyStore, key: &str, answer: Stored) {
        let Ok(Claim::Leader(leader)) = store.claim("", key, 1, || at(0)).await else {
            panic!()
        };
        leader.complete(answer, at(0));
    }

    #[test]
    fn capacity_bounds_the_answers_kept() {
        let store = IdempotencyStore::new(Duration::from_secs(10), 2, 1 << 20);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for key in ["a", "b", "c"] {
            let Ok(Claim::Leader(leader)) = rt.block_on(store.claim("", key, 1, || at(0))) else {
                panic!()
            };
            leader.complete(stored(), at(0));
        }
        let table = store.table.lock().unwrap();
        assert_eq!(table.slots.len(), 2);
        assert!(!table.slots.contains_key("\u{0}a"));
    }
}
