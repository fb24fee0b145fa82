//! The trace of one simulated run: every arrival, attempt start, policy event, wake-up
//! and end of call, in the order the simulator saw them.
//!
//! The decision that shapes it: the invariant checks read *only* the trace, never the
//! simulator's or the pipeline's internals. A check therefore tests what an observer of
//! the pipeline's actions and events could see, and a hand-made trace is enough to show
//! that each check can fail. The digest (FNV-1a 64 over a stable encoding) lets tests
//! prove that one seed always gives the same run.

use crate::clock::Instant;
use crate::deadline::Deadline;
use crate::outcome::Outcome;
use crate::pipeline::{AttemptEvent, GiveUp, Next, PolicyEvent, Skip, StartAttempt, Verdict};

/// Identifies one client request (one pipeline call) in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u32);

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A client request arrived and its call started.
    Arrived {
        /// The client's deadline.
        deadline: Deadline,
    },
    /// The call started an attempt ([`Action::Start`](crate::pipeline::Action::Start)).
    Started(StartAttempt),
    /// The call asked to be woken ([`Action::WakeAt`](crate::pipeline::Action::WakeAt)).
    WakeAt(Instant),
    /// The call published an event.
    Event(PolicyEvent),
    /// The call ended.
    Done(Verdict),
}

/// One entry, when and for which call.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// When it happened, in simulated time.
    pub at: Instant,
    /// The call it belongs to.
    pub call: CallId,
    /// What happened.
    pub entry: Entry,
}

/// Everything that happened in one run, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trace {
    /// The records, in the order they happened (non-decreasing `at`).
    pub records: Vec<Record>,
}

impl Trace {
    /// An empty trace.
    pub fn new() -> Self {
        Trace::default()
    }

    /// Appends one record.
    pub fn push(&mut self, at: Instant, call: CallId, entry: Entry) {
        self.records.push(Record { at, call, entry });
    }

    /// FNV-1a 64 over a stable encoding of every record: equal traces give equal
    /// digests on every platform and build.
    pub fn digest(&self) -> u64 {
        let mut fnv = Fnv::new();
        for record in &self.records {
            fnv.u64(record.at.as_nanos());
            fnv.u64(u64::from(record.call.0));
            encode_entry(&mut fnv, &record.entry);
        }
        fnv.finish()
    }
}

/// FNV-1a, 64 bits.
struct Fnv(u64);

impl Fnv {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Self {
        Fnv(Self::OFFSET)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    fn u64(&mut self, value: u64) {
        self.bytes(&value.to_le_bytes());
    }

    fn str(&mut self, value: &str) {
        self.u64(value.len() as u64);
        self.bytes(value.as_bytes());
    }

    fn outcome(&mut self, outcome: Outcome) {
        self.str(outcome.class());
        self.u64(outcome.retry_after().map_or(u64::MAX, nanos));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn encode_entry(fnv: &mut Fnv, entry: &Entry) {
    match entry {
        Entry::Arrived { deadline } => {
            fnv.str("arrived");
            fnv.u64(deadline.instant().map_or(u64::MAX, Instant::as_nanos));
        }
        Entry::Started(start) => {
            fnv.str("started");
            fnv.u64(u64::from(start.attempt.0));
            fnv.u64(u64::from(start.target.0));
            fnv.u64(start.link as u64);
            fnv.u64(nanos(start.timeout));
            fnv.u64(u64::from(start.number));
            fnv.u64(u64::from(start.hedge));
        }
        Entry::WakeAt(at) => {
            fnv.str("wake");
            fnv.u64(at.as_nanos());
        }
        Entry::Event(event) => encode_event(fnv, event),
        Entry::Done(verdict) => {
            fnv.str("done");
            encode_verdict(fnv, *verdict);
        }
    }
}

fn encode_event(fnv: &mut Fnv, event: &PolicyEvent) {
    match event {
        PolicyEvent::Attempt(attempt) => encode_attempt(fnv, attempt),
        PolicyEvent::Skipped { target, reason } => {
            fnv.str("skipped");
            fnv.u64(u64::from(target.0));
            let (name, value) = match reason {
                Skip::BreakerOpen => ("breaker_open", 0),
                Skip::RetryAfter(until) => ("retry_after", until.as_nanos()),
                Skip::RateLimited(wait) => ("rate_limited", nanos(*wait)),
                Skip::TooLarge => ("too_large", 0),
                Skip::Drained => ("drained", 0),
                Skip::AtCapacity => ("at_capacity", 0),
                Skip::Throttled => ("throttled", 0),
                Skip::Shed => ("shed", 0),
                Skip::Shifted => ("shifted", 0),
            };
            fnv.str(name);
            fnv.u64(value);
        }
        PolicyEvent::TargetBreaker { target, transition } => {
            fnv.str("target_breaker");
            fnv.u64(u64::from(target.0));
            fnv.str(transition.to.name());
            fnv.u64(transition.open_until.map_or(u64::MAX, Instant::as_nanos));
        }
        PolicyEvent::AgentBreaker { agent, transition } => {
            fnv.str("agent_breaker");
            fnv.str(agent);
            fnv.str(transition.to.name());
            fnv.u64(transition.open_until.map_or(u64::MAX, Instant::as_nanos));
        }
        PolicyEvent::BudgetExhausted { target } => {
            fnv.str("budget_exhausted");
            fnv.u64(u64::from(target.0));
        }
        PolicyEvent::Hedged { original, target } => {
            fnv.str("hedged");
            fnv.u64(u64::from(original.0));
            fnv.u64(u64::from(target.0));
        }
        PolicyEvent::Finished {
            verdict,
            attempts,
            elapsed,
        } => {
            fnv.str("finished");
            encode_verdict(fnv, *verdict);
            fnv.u64(u64::from(*attempts));
            fnv.u64(nanos(*elapsed));
        }
    }
}

fn encode_attempt(fnv: &mut Fnv, attempt: &AttemptEvent) {
    fnv.str("attempt");
    fnv.u64(u64::from(attempt.attempt.0));
    fnv.u64(u64::from(attempt.target.0));
    fnv.u64(u64::from(attempt.number));
    fnv.u64(u64::from(attempt.retry));
    fnv.u64(attempt.started.as_nanos());
    fnv.outcome(attempt.outcome);
    fnv.u64(nanos(attempt.latency));
    fnv.u64(nanos(attempt.waited));
    fnv.u64(u64::from(attempt.hedge));
    match attempt.next {
        Next::Done => fnv.str("done"),
        Next::Retry { after } => {
            fnv.str("retry");
            fnv.u64(nanos(after));
        }
        Next::FallBack { to, because } => {
            fnv.str("fall_back");
            fnv.u64(u64::from(to.0));
            fnv.str(because.name());
        }
        Next::AwaitOther => fnv.str("await_other"),
        Next::GaveUp(reason) => {
            fnv.str("gave_up");
            fnv.str(reason.name());
        }
        Next::Cancelled => fnv.str("cancelled"),
    }
}

fn encode_verdict(fnv: &mut Fnv, verdict: Verdict) {
    match verdict {
        Verdict::Succeeded { attempt } => {
            fnv.str("succeeded");
            fnv.u64(u64::from(attempt.0));
        }
        Verdict::GaveUp { reason, last } => {
            fnv.str("gave_up");
            fnv.str(GiveUp::name(reason));
            match last {
                Some(outcome) => fnv.outcome(outcome),
                None => fnv.str("none"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_reference_vectors() {
        let mut fnv = Fnv::new();
        assert_eq!(fnv.finish(), 0xcbf2_9ce4_8422_2325);
        fnv.bytes(b"a");
        assert_eq!(fnv.finish(), 0xaf63_dc4c_8601_ec8c);
        let mut fnv = Fnv::new();
        fnv.bytes(b"foobar");
        assert_eq!(fnv.finish(), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn any_change_changes_the_digest() {
        let mut a = Trace::new();
        a.push(
            Instant::ZERO,
            CallId(0),
            Entry::Arrived {
                deadline: Deadline::NONE,
            },
        );
        let mut b = a.clone();
        assert_eq!(a.digest(), b.digest());
        b.push(Instant::ZERO, CallId(0), Entry::WakeAt(Instant::ZERO));
        a.push(Instant::ZERO, CallId(1), Entry::WakeAt(Instant::ZERO));
        assert_ne!(a.digest(), b.digest());
    }
}
