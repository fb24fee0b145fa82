//! The mock provider's shared state: fault set, seeded randomness, time origin, counts.
//!
//! One [`MockProvider`] is shared by every connection (it is an `Arc` inside). Each
//! request forks its own generator from the seeded one under the lock, so what happens
//! to the n-th request depends only on the seed and n, whatever else runs concurrently
//! and however long its stream lasts.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use holdfast_policy::{Clock, Instant, Rng};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::Result;
use crate::faults::Faults;
use crate::format::Format;

/// How many requests `GET /admin/requests` remembers.
pub const REQUEST_LOG_CAPACITY: usize = 1000;

/// Counts since the start or the last reset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Chat requests received.
    pub total: u64,
    /// Of which asked for a stream.
    pub streaming: u64,
    /// Of which did not.
    pub non_streaming: u64,
    /// Answers that continued an assistant prefill.
    pub prefill_continuations: u64,
    /// Requests by the outcome class a correct client should assign
    /// ([`holdfast_policy::Outcome::class`]).
    pub by_outcome: BTreeMap<String, u64>,
    /// Requests by the fault that struck them (`none` when healthy).
    pub by_fault: BTreeMap<String, u64>,
}

/// One chat request as the mock saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Its number since the start or the last reset, from 1.
    pub seq: u64,
    /// Milliseconds since the time origin when it arrived.
    pub at_ms: u64,
    /// The path it was sent to.
    pub path: String,
    /// The model it named, if it could be read.
    pub model: Option<String>,
    /// Whether it asked for a stream.
    pub stream: bool,
    /// Its `Idempotency-Key` header, if any.
    pub idempotency_key: Option<String>,
    /// Its W3C `traceparent` header, if any: the caller's span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The outcome class a correct client should assign.
    pub outcome: String,
    /// The fault that struck it (`none` when healthy).
    pub fault: String,
    /// Whether its answer continued an assistant prefill.
    pub prefill_continued: bool,
}

/// A fault-injecting mock LLM provider; clones share one state.
#[derive(Clone)]
pub struct MockProvider {
    inner: Arc<Inner>,
}

struct Inner {
    format: Format,
    clock: Arc<dyn Clock>,
    faults: RwLock<Arc<Faults>>,
    state: Mutex<State>,
    shutdown: watch::Sender<bool>,
    /// Chat requests being answered now: the load `capacity` judges.
    in_flight: AtomicU32,
}

/// One request's share of the provider's load, given back when it is dropped.
pub(crate) struct Occupancy {
    inner: Arc<Inner>,
    /// Requests in flight when this one arrived, itself included.
    pub(crate) in_flight: u32,
}

impl Drop for Occupancy {
    fn drop(&mut self) {
        self.inner.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

struct State {
    seed: u64,
    rng: Rng,
    origin: Instant,
    seq: u64,
    stats: Stats,
    log: VecDeque<RequestRecord>,
}

/// A request's share of the provider's state, taken when it arrives.
pub(crate) struct Turn {
    pub(crate) seq: u64,
    pub(crate) rng: Rng,
    pub(crate) elapsed: Duration,
    /// Unix seconds.
    pub(crate) created: u64,
}

impl fmt::Debug for MockProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockProvider")
            .field("format", &self.inner.format)
            .finish_non_exhaustive()
    }
}

impl MockProvider {
    /// A provider impersonating `format`, with `faults` (validated here), randomness
    /// fixed by `seed`, and time from `clock` (its current instant is the origin of
    /// outage windows and flapping).
    pub fn new(format: Format, faults: Faults, seed: u64, clock: Arc<dyn Clock>) -> Result<Self> {
        faults.validate()?;
        let state = State {
            seed,
            rng: Rng::seeded(seed),
            origin: clock.now(),
            seq: 0,
            stats: Stats::default(),
            log: VecDeque::new(),
        };
        Ok(MockProvider {
            inner: Arc::new(Inner {
                format,
                clock,
                faults: RwLock::new(Arc::new(faults)),
                state: Mutex::new(state),
                shutdown: watch::Sender::new(false),
                in_flight: AtomicU32::new(0),
            }),
        })
    }

    /// The API it impersonates.
    pub fn format(&self) -> Format {
        self.inner.format
    }

    /// The current fault set.
    pub fn faults(&self) -> Faults {
        Faults::clone(&self.faults_snapshot())
    }

    /// Replaces the fault set if it is valid; otherwise keeps the old one.
    pub fn set_faults(&self, faults: Faults) -> Result<()> {
        faults.validate()?;
        *self.inner.faults.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(faults);
        Ok(())
    }

    /// The counts since the start or the last reset.
    pub fn stats(&self) -> Stats {
        self.state().stats.clone()
    }

    /// The last `limit` requests (at most [`REQUEST_LOG_CAPACITY`]), oldest first.
    pub fn requests(&self, limit: usize) -> Vec<RequestRecord> {
        let state = self.state();
        let skip = state.log.len().saturating_sub(limit);
        state.log.iter().skip(skip).cloned().collect()
    }

    /// Zeroes the counts and the request log, restarts the time origin, and re-seeds
    /// with `seed` (or the seed last given).
    pub fn reset(&self, seed: Option<u64>) {
        let now = self.inner.clock.now();
        let mut state = self.state();
        state.seed = seed.unwrap_or(state.seed);
        state.rng = Rng::seeded(state.seed);
        state.origin = now;
        state.seq = 0;
        state.stats = Stats::default();
        state.log.clear();
    }

    /// The seed in force.
    pub fn seed(&self) -> u64 {
        self.state().seed
    }

    /// Releases requests held by `silent` and cuts stalls short: for shutting down.
    pub fn shut_down(&self) {
        self.inner.shutdown.send_replace(true);
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn faults_snapshot(&self) -> Arc<Faults> {
        Arc::clone(&self.inner.faults.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Chat requests being answered now.
    pub fn in_flight(&self) -> u32 {
        self.inner.in_flight.load(Ordering::Acquire)
    }

    /// Counts a request in flight until the returned share is dropped.
    pub(crate) fn occupy(&self) -> Occupancy {
        let before = self.inner.in_flight.fetch_add(1, Ordering::AcqRel);
        Occupancy {
            inner: Arc::clone(&self.inner),
            in_flight: before.saturating_add(1),
        }
    }

    /// Numbers a new request and forks its generator.
    pub(crate) fn begin(&self) -> Turn {
        let now = self.inner.clock.now();
        let created = self.inner.clock.unix_millis() / 1000;
        let mut state = self.state();
        state.seq += 1;
        Turn {
            seq: state.seq,
            rng: state.rng.fork(),
            elapsed: now.saturating_duration_since(state.origin),
            created,
        }
    }

    /// Counts a request and remembers it.
    pub(crate) fn record(&self, record: RequestRecord) {
        let mut state = self.state();
        let stats = &mut state.stats;
        stats.total += 1;
        if record.stream {
            stats.streaming += 1;
        } else {
            stats.non_streaming += 1;
        }
        stats.prefill_continuations += u64::from(record.prefill_continued);
        *stats.by_outcome.entry(record.outcome.clone()).or_default() += 1;
        *stats.by_fault.entry(record.fault.clone()).or_default() += 1;
        if state.log.len() >= REQUEST_LOG_CAPACITY {
            state.log.pop_front();
        }
        state.log.push_back(record);
    }

    /// Sleeps `duration` on the provider's clock, or until shutdown.
    pub(crate) async fn pause(&self, duration: Duration) {
        if duration.is_zero() {
            return;
        }
        let clock = &self.inner.clock;
        tokio::select! {
            () = clock.sleep_until(clock.now() + duration) => {}
            () = self.until_shutdown() => {}
        }
    }

    /// Completes once [`MockProvider::shut_down`] has been called.
    pub(crate) async fn until_shutdown(&self) {
        let mut shutdown = self.inner.shutdown.subscribe();
        // An error means the sender is gone, which cannot happen while `self` lives.
        let _ = shutdown.wait_for(|down| *down).await;
    }
}
