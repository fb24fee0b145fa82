//! The cap on the requests one client key has in flight (`max_concurrent_requests`).
//!
//! A rate limit bounds how often a key may start work; this bounds how much it may
//! hold at once: slow requests, long streams, bodies that trickle in. Without it one
//! key (a leaked one, a runaway agent) could take every connection the server has.
//!
//! The decision that shapes it: the slot is taken by the listener for every request
//! before it is routed ([`admit`]), and released when the response body ends or is
//! dropped ([`Held`]), so that every endpoint is covered without a handler having to
//! remember, and a stream holds its slot until its last byte (or until its client goes
//! away). The key is identified the way the handlers identify it
//! ([`ClientKeys::authenticate`](crate::auth::ClientKeys::authenticate)); a request
//! without a valid key is not counted here and is refused by its handler. Counts are
//! per key name and handed over on a reload, so a reload neither forgets the requests
//! in flight nor lets a key double its share.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use holdfast_config::ClientKey;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use crate::auth::Caller;
use crate::error::{ApiError, Flavor};
use crate::gateway::Inner;
use crate::respond;

/// Every client key's requests in flight, by the key's index in the configuration.
pub(crate) struct InFlight {
    keys: Vec<KeyCount>,
}

struct KeyCount {
    name: Arc<str>,
    limit: u32,
    held: Arc<AtomicU32>,
}

/// One request's place in its key's count; given back when dropped.
pub(crate) struct Slot(Arc<AtomicU32>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl InFlight {
    /// The counts for `keys`; a key of `previous` (the configuration a reload
    /// replaces) with the same name keeps its count.
    pub(crate) fn new(keys: &[ClientKey], previous: Option<&InFlight>) -> InFlight {
        let keys = keys
            .iter()
            .map(|key| {
                let held = previous
                    .and_then(|old| old.keys.iter().find(|k| *k.name == *key.name))
                    .map_or_else(Arc::default, |old| Arc::clone(&old.held));
                KeyCount {
                    name: Arc::from(key.name.as_str()),
                    limit: key.max_concurrent_requests,
                    held,
                }
            })
            .collect();
        InFlight { keys }
    }

    /// A slot for one more request of the key at `index`, if it is under its cap.
    pub(crate) fn enter(&self, index: usize) -> Result<Option<Slot>, ApiError> {
        let Some(key) = self.keys.get(index) else {
            return Ok(None);
        };
        let limit = key.limit;
        key.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < limit).then_some(held + 1)
            })
            .map(|_| Some(Slot(Arc::clone(&key.held))))
            .map_err(|_| ApiError::TooManyConcurrentRequests { limit })
    }

    /// Requests in flight for the key at `index`.
    #[cfg(test)]
    pub(crate) fn held(&self, index: usize) -> u32 {
        self.keys
            .get(index)
            .map_or(0, |k| k.held.load(Ordering::Acquire))
    }
}

/// Takes a slot for `request` when it carries a valid client key: `Ok(None)` when it
/// carries none (its handler refuses it, or the gateway is open), or the 429
/// ([`refusal`]) to send when the key is at its cap.
pub(crate) fn admit<B>(gw: &Inner, request: &Request<B>) -> Result<Option<Slot>, ApiError> {
    match gw.keys.authenticate(request.headers()) {
        Ok(Caller::Key(index)) => gw.inflight.enter(index),
        Ok(Caller::Anyone) | Err(_) => Ok(None),
    }
}

/// The answer to `request` when [`admit`] refused it, in its endpoint's format.
pub(crate) fn refusal<B>(gw: &Inner, request: &Request<B>, err: &ApiError) -> Response {
    let flavor = if request.uri().path().starts_with("/v1/messages") {
        Flavor::Anthropic
    } else {
        Flavor::OpenAi
    };
    respond::error(err, flavor, &gw.reply())
}

/// A response body holding its request's slot, if it took one, until it ends.
pub(crate) struct Held {
    body: Body,
    slot: Option<Slot>,
}

impl Held {
    /// `body`, holding `slot` until it ends or is dropped.
    pub(crate) fn new(body: Body, slot: Option<Slot>) -> Held {
        Held { body, slot }
    }
}

impl HttpBody for Held {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        if matches!(frame, Poll::Ready(None | Some(Err(_)))) {
            this.slot = None;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, limit: u32) -> ClientKey {
        ClientKey {
            name: name.into(),
            role: holdfast_config::Role::Agent,
            tenant: name.into(),
            key: None,
            requests: None,
            tokens: None,
            max_concurrent_requests: limit,
            priority: holdfast_policy::concurrency::Priority::Interactive,
        }
    }

    #[test]
    fn a_key_at_its_cap_is_refused_until_a_slot_is_given_back() {
        let counts = InFlight::new(&[key("a", 2), key("b", 1)], None);
        let first = counts.enter(0).unwrap();
        let _second = counts.enter(0).unwrap();
        assert_eq!(
            counts.enter(0).err(),
            Some(ApiError::TooManyConcurrentRequests { limit: 2 })
        );
        assert!(
            counts.enter(1).unwrap().is_some(),
            "another key's cap is its own"
        );
        drop(first);
        assert!(counts.enter(0).unwrap().is_some());
        assert!(
            counts.enter(7).unwrap().is_none(),
            "no such key: not counted"
        );
    }

    #[test]
    fn a_reload_keeps_the_counts_of_the_keys_it_keeps() {
        let old = InFlight::new(&[key("a", 5), key("gone", 5)], None);
        let held = old.enter(0).unwrap();
        let new = InFlight::new(&[key("new", 1), key("a", 1)], Some(&old));
        assert_eq!(new.held(1), 1);
        assert!(
            new.enter(1).is_err(),
            "the slot taken before the reload counts"
        );
        drop(held);
        assert_eq!(new.held(1), 0);
        assert!(new.enter(0).unwrap().is_some());
    }
}
