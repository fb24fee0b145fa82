//! Health shared by several nodes on one database: rate-limit buckets and breaker notes.
//!
//! With `[cluster] share_health`, nodes hold a target's rate limit together and learn of
//! each other's breaker openings. The decision that shapes it: a node never asks the
//! store per call. It exchanges with the store a few times a second, in one round trip
//! ([`crate::Store::exchange_health`]) that takes units from the shared buckets in small
//! batches, publishes what its breakers did and reads what the others' did. A bucket
//! refills on the callers' clocks, like leases (see [`crate::store`]).

use crate::validate::{millis, text};
use crate::{Result, StoreError};

/// Longest bucket or target name.
const MAX_KEY: usize = 512;

/// Notes returned by one exchange at most; the rest come with the next.
pub const NOTES_PER_EXCHANGE: u32 = 1000;

/// How long a breaker note is kept: long enough for a node started late to learn of an
/// open breaker (an open time is at most `max_open_for`, a few minutes).
pub const NOTE_RETENTION_MS: u64 = 3_600_000;

/// Units to take from one shared bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenTake {
    /// The bucket's name (a target and the kind of its limit).
    pub bucket: String,
    /// Units a full bucket holds; > 0. A new bucket starts full.
    pub capacity: f64,
    /// Units earned per millisecond; > 0.
    pub per_ms: f64,
    /// Units wanted; at most what the bucket holds is granted, in whole units.
    pub want: u64,
}

/// What a node's breaker did, for the other nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteKind {
    /// It opened until this instant, in Unix milliseconds.
    Opened {
        /// When it stops refusing calls.
        until_ms: u64,
    },
    /// An operator reset it (`holdfast targets reset`).
    Reset,
}

/// A breaker note to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBreakerNote {
    /// The target whose breaker it is.
    pub target: String,
    /// The node that publishes it.
    pub node: String,
    /// What happened.
    pub kind: NoteKind,
}

/// A published breaker note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerNote {
    /// Its id: greater for each note published later.
    pub id: u64,
    /// The target whose breaker it is.
    pub target: String,
    /// The node that published it.
    pub node: String,
    /// What happened.
    pub kind: NoteKind,
    /// When it was published, in Unix milliseconds.
    pub at_ms: u64,
}

/// One exchange of a node with the shared health.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthExchange {
    /// Units to take, each from its bucket.
    pub takes: Vec<TokenTake>,
    /// Notes to publish.
    pub publish: Vec<NewBreakerNote>,
    /// Notes with an id above this are returned (0: every kept note).
    pub after_note: u64,
}

/// What an exchange got.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthReply {
    /// Units granted, in the order of [`HealthExchange::takes`].
    pub granted: Vec<u64>,
    /// Notes after [`HealthExchange::after_note`], this node's own included, oldest
    /// first, at most [`NOTES_PER_EXCHANGE`].
    pub notes: Vec<BreakerNote>,
}

/// Checks an exchange before any of it is written.
pub(crate) fn check(exchange: &HealthExchange, now_ms: u64) -> Result<()> {
    millis("now", now_ms)?;
    millis("after_note", exchange.after_note)?;
    for take in &exchange.takes {
        key("take.bucket", &take.bucket)?;
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(take.capacity) || !positive(take.per_ms) {
            return Err(StoreError::invalid(
                "take",
                "capacity and per_ms must be finite and more than 0",
            ));
        }
        millis("take.want", take.want)?;
    }
    for note in &exchange.publish {
        key("note.target", &note.target)?;
        key("note.node", &note.node)?;
        if let NoteKind::Opened { until_ms } = note.kind {
            millis("note.until_ms", until_ms)?;
        }
    }
    Ok(())
}

fn key(field: &'static str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(StoreError::invalid(field, "must not be empty"));
    }
    text(field, value, MAX_KEY)
}

/// A bucket's units after refilling from `updated_ms` to `now_ms`.
pub(crate) fn refilled(take: &TokenTake, available: f64, updated_ms: i64, now_ms: i64) -> f64 {
    let elapsed = (now_ms - updated_ms).max(0) as f64;
    (available + elapsed * take.per_ms).min(take.capacity)
}

/// Units granted from `available`.
pub(crate) fn granted(take: &TokenTake, available: f64) -> u64 {
    (take.want as f64).min(available.max(0.0).floor()) as u64
}

/// The stored form of a note's kind: its end for an opening, `None` for a reset.
pub(crate) fn until_column(kind: NoteKind) -> Option<i64> {
    match kind {
        NoteKind::Opened { until_ms } => i64::try_from(until_ms).ok(),
        NoteKind::Reset => None,
    }
}

/// A note from its stored columns.
pub(crate) fn note(
    id: i64,
    target: String,
    node: String,
    until: Option<i64>,
    at: i64,
) -> BreakerNote {
    let ms = |v: i64| u64::try_from(v).unwrap_or(0);
    BreakerNote {
        id: ms(id),
        target,
        node,
        kind: match until {
            Some(until) => NoteKind::Opened {
                until_ms: ms(until),
            },
            None => NoteKind::Reset,
        },
        at_ms: ms(at),
    }
}
