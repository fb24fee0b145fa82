//! The discrete-event loop: simulated time, client arrivals, attempts and timers.
//!
//! One priority queue of events at instants (arrivals, attempt completions, call
//! timers), ordered by instant and then by a sequence number, drives every call through
//! the pure pipeline and executes its actions: `Start` samples the target at that
//! instant and schedules the completion, `WakeAt` schedules a timer that is delivered
//! only if it is still the call's latest, `Cancel` drops the pending completion (the
//! target still counted the call). The decision that shapes it: everything random is
//! drawn from generators forked from the one seed in a fixed order, the arrivals' stream
//! apart from the targets' streams, so that both policies see the very same clients and
//! the same seed always replays the same trace.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

use super::scenario::{PolicyKind, Scenario, pick};
use super::target::Ask;
use super::trace::{CallId, Entry, Trace};
use crate::clock::Instant;
use crate::deadline::Deadline;
use crate::outcome::Outcome;
use crate::pipeline::{Action, AttemptId, Call, Event, Policy, Registry, Request, StartAttempt};
use crate::rng::Rng;

/// Events processed per client request before the run is declared stuck.
const EVENTS_PER_CALL: u64 = 1_000;

/// Runs `scenario` under `kind` from `seed` and returns everything that happened.
pub(super) fn simulate(scenario: &Scenario, seed: u64, kind: PolicyKind) -> Trace {
    let mut world = World::new(scenario, seed, kind);
    world.run();
    world.trace
}

#[derive(Debug, Clone, Copy)]
enum What {
    Arrival,
    Completion {
        call: usize,
        attempt: AttemptId,
        outcome: Outcome,
    },
    Timer {
        call: usize,
        generation: u64,
    },
}

#[derive(Debug, Clone, Copy)]
struct Scheduled {
    at: Instant,
    seq: u64,
    what: What,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest first, and among
    /// equal instants the first scheduled.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

struct Slot {
    call: Call,
    ask: Ask,
    /// The generation of the call's latest `WakeAt`.
    wake: u64,
    /// Attempts started and neither finished nor cancelled.
    pending: Vec<AttemptId>,
}

struct World<'a> {
    scenario: &'a Scenario,
    policy: Arc<Policy>,
    registry: Registry,
    queue: BinaryHeap<Scheduled>,
    seq: u64,
    slots: Vec<Slot>,
    arrivals: Rng,
    targets: Vec<Rng>,
    /// Per target, when each call it is working on ends: its load.
    busy: Vec<BinaryHeap<Reverse<Instant>>>,
    agents: Vec<Arc<str>>,
    trace: Trace,
    last_arrival: Instant,
}

impl<'a> World<'a> {
    fn new(scenario: &'a Scenario, seed: u64, kind: PolicyKind) -> Self {
        let setup = scenario.setup(kind);
        let mut root = Rng::seeded(seed);
        let arrivals = root.fork();
        let targets = scenario.targets.iter().map(|_| root.fork()).collect();
        World {
            scenario,
            policy: setup.policy.clone(),
            registry: setup.registry.clone(),
            queue: BinaryHeap::new(),
            seq: 0,
            slots: Vec::new(),
            arrivals,
            busy: vec![BinaryHeap::new(); scenario.targets.len()],
            targets,
            agents: (0..scenario.clients.agents)
                .map(|i| Arc::from(format!("agent-{i}")))
                .collect(),
            trace: Trace::new(),
            last_arrival: Instant::from_origin(scenario.traffic.duration),
        }
    }

    fn run(&mut self) {
        self.schedule(Instant::ZERO, What::Arrival);
        let longest = self
            .scenario
            .clients
            .deadlines
            .iter()
            .map(|(_, d)| *d)
            .max();
        let horizon =
            self.last_arrival + longest.unwrap_or(Duration::ZERO) + Duration::from_secs(60);
        let mut budget = EVENTS_PER_CALL;
        while let Some(next) = self.queue.pop() {
            if next.at > horizon || budget == 0 {
                break; // stuck: the calls left open show up as `call_ends` violations
            }
            budget -= 1;
            match next.what {
                What::Arrival => {
                    budget = budget.saturating_add(EVENTS_PER_CALL);
                    self.arrive(next.at);
                }
                What::Completion {
                    call,
                    attempt,
                    outcome,
                } => self.complete(next.at, call, attempt, outcome),
                What::Timer { call, generation } => {
                    if self.slots.get(call).is_some_and(|s| s.wake == generation) {
                        self.handle(call, next.at, Event::Timer);
                    }
                }
            }
        }
    }

    fn schedule(&mut self, at: Instant, what: What) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at,
            seq: self.seq,
            what,
        });
    }

    /// A client request arrives: draw it, schedule the next one, start its call.
    fn arrive(&mut self, now: Instant) {
        let next = now + self.scenario.traffic.gap(&mut self.arrivals);
        if next < self.last_arrival {
            self.schedule(next, What::Arrival);
        }
        let clients = &self.scenario.clients;
        let rng = &mut self.arrivals;
        let deadline = pick(rng, &clients.deadlines).unwrap_or(Duration::from_secs(30));
        let (low, high) = pick(rng, &clients.prompt_tokens).unwrap_or((1_000, 1_000));
        let tokens = rng.range_inclusive(low, high);
        let known = rng.chance(clients.tokens_known);
        let bad = rng.chance(clients.bad_requests);
        let agent = match self.agents.len() {
            0 => None,
            n => self
                .agents
                .get(rng.range_inclusive(0, n as u64 - 1) as usize)
                .cloned(),
        };
        let request = Request {
            chain: self.scenario.chain.clone(),
            policy: self.policy.clone(),
            deadline: Deadline::after(now, deadline),
            agent,
            tokens: known.then_some(tokens),
            seed: rng.next_u64(),
            priority: crate::concurrency::Priority::Interactive,
        };
        let index = self.slots.len();
        self.trace.push(
            now,
            call_id(index),
            Entry::Arrived {
                deadline: request.deadline,
            },
        );
        self.slots.push(Slot {
            call: Call::new(request),
            ask: Ask { tokens, bad },
            wake: 0,
            pending: Vec::new(),
        });
        self.handle(index, now, Event::Start);
    }

    fn complete(&mut self, now: Instant, call: usize, attempt: AttemptId, outcome: Outcome) {
        let Some(slot) = self.slots.get_mut(call) else {
            return;
        };
        let Some(position) = slot.pending.iter().position(|a| *a == attempt) else {
            return; // cancelled: the answer is dropped
        };
        slot.pending.swap_remove(position);
        self.handle(call, now, Event::Finished { attempt, outcome });
    }

    /// Feeds `event` to call `index` and carries out its actions.
    fn handle(&mut self, index: usize, now: Instant, event: Event) {
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        let actions = slot.call.handle(&mut self.registry, now, event);
        for action in actions {
            self.apply(index, now, action);
        }
    }

    fn apply(&mut self, index: usize, now: Instant, action: Action) {
        let call = call_id(index);
        match action {
            Action::Start(start) => self.start(index, now, start),
            Action::WakeAt(at) => {
                let Some(slot) = self.slots.get_mut(index) else {
                    return;
                };
                slot.wake += 1;
                let generation = slot.wake;
                self.trace.push(now, call, Entry::WakeAt(at));
                self.schedule(
                    at.max(now),
                    What::Timer {
                        call: index,
                        generation,
                    },
                );
            }
            Action::Cancel(attempt) => {
                if let Some(slot) = self.slots.get_mut(index) {
                    slot.pending.retain(|a| *a != attempt);
                }
            }
            Action::Emit(event) => self.trace.push(now, call, Entry::Event(event)),
            Action::Done(verdict) => self.trace.push(now, call, Entry::Done(verdict)),
        }
    }

    /// Sends an attempt to its simulated target and schedules its answer.
    fn start(&mut self, index: usize, now: Instant, start: StartAttempt) {
        self.trace.push(now, call_id(index), Entry::Started(start));
        let target = start.target.0 as usize;
        let (Some(slot), Some(spec), Some(rng), Some(busy)) = (
            self.slots.get_mut(index),
            self.scenario.targets.get(target),
            self.targets.get_mut(target),
            self.busy.get_mut(target),
        ) else {
            return;
        };
        while busy.peek().is_some_and(|Reverse(end)| *end <= now) {
            busy.pop();
        }
        let in_flight = u32::try_from(busy.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        let answer = spec.profile.answer(now, slot.ask, in_flight, rng);
        let (after, outcome) = answer.within(start.timeout);
        // The target works on a call until it answers, whether or not the caller
        // still waits; a call it never answers holds it until the caller gives up.
        busy.push(Reverse(now + answer.latency.unwrap_or(after).max(after)));
        slot.pending.push(start.attempt);
        let what = What::Completion {
            call: index,
            attempt: start.attempt,
            outcome,
        };
        self.schedule(now + after, what);
    }
}

fn call_id(index: usize) -> CallId {
    CallId(u32::try_from(index).unwrap_or(u32::MAX))
}
