//! What the guard knows about the store: up or down, since when, and why, as a small
//! pure state that every store call and every probe reports to.
//!
//! The decision that shapes it: a failed write keeps the store down until a write
//! succeeds. A store that still reads but cannot write (a full disk, a read-only file,
//! a lock held by someone else) is down for everything that matters (submissions,
//! commits), and a read answering in between must not mark it up again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

/// The store's state as `/ready` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreState {
    /// The store answered the latest call (and the latest write succeeded).
    Up,
    /// The store could not be reached or could not write.
    Down,
}

/// Why the store is down, in words that name no host or path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DownCause {
    /// No answer within the guard's bound.
    Timeout,
    /// The connection failed or was lost, or the database refused work for now.
    Unreachable,
    /// A write failed (disk full, read-only, locked) while reads may still answer.
    Unwritable,
}

/// The store's state, since when (Unix milliseconds) and, when down, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Status {
    /// Up or down.
    pub state: StoreState,
    /// When it entered this state; the guard's start for the first state.
    pub since_ms: u64,
    /// Why it is down; `None` when up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<DownCause>,
}

/// What the guard reports to whoever watches the store (the server's metrics).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StoreEvent {
    /// The store changed state.
    Changed(Status),
    /// A write committed after this long, waiting included.
    Wrote(Duration),
}

/// Where the guard's [`StoreEvent`]s go.
pub type StoreEventSink = Arc<dyn Fn(&StoreEvent) + Send + Sync>;

/// How one call ended, as far as the store's health is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Observed {
    /// The store answered (success, or an answer about the request itself).
    Answered { write: bool },
    /// The store did not answer, or could not do it.
    Failed { write: bool, cause: DownCause },
}

/// The state machine, pure: observations and times in, the new status out when it
/// changed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Machine {
    status: Status,
    /// The latest failure was a write's (only a write that succeeds clears it).
    write_failed: bool,
}

impl Machine {
    pub(crate) fn new(now_ms: u64) -> Machine {
        Machine {
            status: Status {
                state: StoreState::Up,
                since_ms: now_ms,
                cause: None,
            },
            write_failed: false,
        }
    }

    pub(crate) fn status(&self) -> Status {
        self.status
    }

    /// Applies `observed` at `now_ms`; the new status if the state changed.
    pub(crate) fn observe(&mut self, observed: Observed, now_ms: u64) -> Option<Status> {
        let (state, cause) = match observed {
            Observed::Answered { write: false } if self.write_failed => return None,
            Observed::Answered { .. } => {
                self.write_failed = false;
                (StoreState::Up, None)
            }
            Observed::Failed { write, cause } => {
                self.write_failed |= write;
                let cause = if write && cause == DownCause::Unreachable {
                    DownCause::Unwritable
                } else {
                    cause
                };
                (StoreState::Down, Some(cause))
            }
        };
        if state == self.status.state {
            // Still down: keep the first cause and the time the outage began.
            return None;
        }
        self.status = Status {
            state,
            since_ms: now_ms,
            cause,
        };
        Some(self.status)
    }
}

/// The shared view of the store's health: the guard writes it, `/ready` reads it.
pub struct StoreHealth {
    machine: Mutex<Machine>,
    sink: Option<StoreEventSink>,
}

impl std::fmt::Debug for StoreHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHealth")
            .field("status", &self.status())
            .finish()
    }
}

impl StoreHealth {
    pub(crate) fn new(now_ms: u64, sink: Option<StoreEventSink>) -> StoreHealth {
        let health = StoreHealth {
            machine: Mutex::new(Machine::new(now_ms)),
            sink,
        };
        health.emit(&StoreEvent::Changed(health.status()));
        health
    }

    /// The store's state now.
    pub fn status(&self) -> Status {
        self.machine
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .status()
    }

    /// Whether the store is up.
    pub fn is_up(&self) -> bool {
        self.status().state == StoreState::Up
    }

    pub(crate) fn observe(&self, observed: Observed, now_ms: u64) {
        let changed = self
            .machine
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(observed, now_ms);
        if let Some(status) = changed {
            match status.state {
                StoreState::Down => tracing::warn!(
                    cause = ?status.cause,
                    "the store is unavailable; calls that need it answer 503 store_unavailable"
                ),
                StoreState::Up => tracing::info!("the store is available again"),
            }
            self.emit(&StoreEvent::Changed(status));
        }
    }

    pub(crate) fn wrote(&self, took: Duration) {
        self.emit(&StoreEvent::Wrote(took));
    }

    fn emit(&self, event: &StoreEvent) {
        if let Some(sink) = &self.sink {
            sink(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ_OK: Observed = Observed::Answered { write: false };
    const WRITE_OK: Observed = Observed::Answered { write: true };

    fn failed(write: bool, cause: DownCause) -> Observed {
        Observed::Failed { write, cause }
    }

    #[test]
    fn an_outage_keeps_its_start_and_first_cause() {
        let mut m = Machine::new(0);
        let down = m.observe(failed(false, DownCause::Timeout), 10).unwrap();
        assert_eq!(down.state, StoreState::Down);
        assert_eq!(down.cause, Some(DownCause::Timeout));
        assert_eq!(m.observe(failed(false, DownCause::Unreachable), 20), None);
        assert_eq!(m.status().since_ms, 10);
        let up = m.observe(READ_OK, 30).unwrap();
        assert_eq!(
            (up.state, up.since_ms, up.cause),
            (StoreState::Up, 30, None)
        );
    }

    #[test]
    fn a_read_does_not_lift_a_failed_write() {
        let mut m = Machine::new(0);
        let down = m.observe(failed(true, DownCause::Unreachable), 5).unwrap();
        assert_eq!(down.cause, Some(DownCause::Unwritable));
        assert_eq!(m.observe(READ_OK, 6), None);
        assert_eq!(m.status().state, StoreState::Down);
        assert!(m.observe(WRITE_OK, 7).is_some());
        assert_eq!(m.status().state, StoreState::Up);
    }

    #[test]
    fn answers_while_up_change_nothing() {
        let mut m = Machine::new(3);
        assert_eq!(m.observe(READ_OK, 4), None);
        assert_eq!(m.observe(WRITE_OK, 5), None);
        assert_eq!(m.status().since_ms, 3);
    }
}
