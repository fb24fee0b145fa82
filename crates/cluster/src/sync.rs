//! The loop: each round collects what this node's registry wants (units) and has to
//! say (breaker openings, operator resets), exchanges it with the store within a
//! bounded wait, and applies the answer (grants, the other nodes' notes).

use std::collections::HashMap;
use std::sync::Arc;

use holdfast_policy::fallback::TargetId;
use holdfast_policy::pipeline::Registry;
use holdfast_policy::rate_limit::RateLimiter;
use holdfast_policy::{Clock, Instant};
use holdfast_store::Store;
use holdfast_store::health::{HealthExchange, HealthReply, NewBreakerNote, NoteKind, TokenTake};

use crate::{EXCHANGE_WAIT, Host, NOTES_EVERY, SharedHealth, TICK};

/// Where the node stands with the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No exchange has answered yet: limits wait for their first grants.
    Starting,
    /// Limits and breakers are shared.
    Up,
    /// The store did not answer: limits refill locally, breakers are this node's own.
    Down,
}

/// Whose limit a take is for.
#[derive(Debug, Clone)]
enum Owner {
    Target(Arc<str>),
    Key(Arc<str>),
}

/// Which limiter a take is for.
#[derive(Debug, Clone)]
struct Want {
    owner: Owner,
    limit: &'static str,
}

impl Want {
    /// The shared bucket's name. A target's is `TARGET#LIMIT` and a key's
    /// `KEY#key-LIMIT`: what follows the last `#` says whose it is, so a key and a
    /// target of the same name never share a bucket.
    fn bucket(&self) -> String {
        match &self.owner {
            Owner::Target(target) => format!("{target}#{}", self.limit),
            Owner::Key(key) => format!("{key}#key-{}", self.limit),
        }
    }

    /// The name `/metrics` counts its grants under.
    fn label(&self) -> String {
        match &self.owner {
            Owner::Target(target) => target.to_string(),
            Owner::Key(key) => format!("key:{key}"),
        }
    }
}

/// What one round sends.
#[derive(Debug, Default)]
struct Outgoing {
    takes: Vec<TokenTake>,
    wants: Vec<Want>,
    publish: Vec<NewBreakerNote>,
    /// The openings published this round, to publish again if the exchange fails.
    opened: Vec<Arc<str>>,
}

/// The loop's state between rounds.
struct Loop<H> {
    health: Arc<SharedHealth>,
    host: H,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    phase: Phase,
    after_note: u64,
    /// When this node started, in Unix milliseconds: older resets are history.
    started_ms: u64,
    /// The end of each target's latest opening this node published or applied.
    known_open: HashMap<Arc<str>, Instant>,
    last_exchange: Option<Instant>,
}

/// Shares `host`'s rate limits and breakers with the other nodes on `store`, until the
/// task running it is dropped.
pub async fn run<H: Host>(
    health: Arc<SharedHealth>,
    host: H,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
) {
    let mut state = Loop::new(health, host, store, clock);
    loop {
        state.round().await;
        let next = state.clock.now() + TICK;
        state.clock.sleep_until(next).await;
    }
}

impl<H: Host> Loop<H> {
    fn new(
        health: Arc<SharedHealth>,
        host: H,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Loop {
            health,
            host,
            store,
            phase: Phase::Starting,
            after_note: 0,
            started_ms: clock.unix_millis(),
            clock,
            known_open: HashMap::new(),
            last_exchange: None,
        }
    }

    async fn round(&mut self) {
        let now = self.clock.now();
        let unix = self.clock.unix_millis();
        let out = self.collect(now, unix);
        let quiet = out.takes.is_empty() && out.publish.is_empty();
        if quiet && self.last_exchange.is_some_and(|at| now < at + NOTES_EVERY) {
            return;
        }
        self.last_exchange = Some(now);
        let exchange = HealthExchange {
            takes: out.takes.clone(),
            publish: out.publish.clone(),
            after_note: self.after_note,
        };
        let sent = self.store.exchange_health(exchange, unix);
        let waited = self.clock.sleep_until(now + EXCHANGE_WAIT);
        let answer = tokio::select! {
            answer = sent => answer.map_err(|e| e.to_string()),
            () = waited => Err(format!("no answer within {} ms", EXCHANGE_WAIT.as_millis())),
        };
        match answer {
            Ok(reply) => self.apply(out, reply),
            Err(why) => self.fall_back(out, &why),
        }
    }

    /// Gathers the units wanted and the news to publish, under one lock of the registry.
    fn collect(&mut self, now: Instant, unix: u64) -> Outgoing {
        let mut out = Outgoing::default();
        let phase = self.phase;
        let known_open = &mut self.known_open;
        self.host.with_registry(|registry| {
            match phase {
                Phase::Up => registry.share_limits(TICK),
                Phase::Down => registry.unshare_limits(now),
                Phase::Starting => {}
            }
            for target in registry.targets() {
                let limits = [("requests", &target.requests), ("tokens", &target.tokens)];
                for (limit, limiter) in limits {
                    if let Some(limiter) = limiter {
                        let want = Want {
                            owner: Owner::Target(Arc::clone(&target.name)),
                            limit,
                        };
                        out.ask(want, limiter);
                    }
                }
                let Some(until) = target.breaker.as_ref().and_then(|b| b.open_until()) else {
                    continue;
                };
                if until <= now || known_open.get(&target.name) == Some(&until) {
                    continue;
                }
                known_open.insert(Arc::clone(&target.name), until);
                let left = u64::try_from(until.saturating_duration_since(now).as_millis())
                    .unwrap_or(u64::MAX);
                out.publish.push(NewBreakerNote {
                    target: target.name.to_string(),
                    node: self.health.node().to_owned(),
                    kind: NoteKind::Opened {
                        until_ms: unix.saturating_add(left),
                    },
                });
                out.opened.push(Arc::clone(&target.name));
            }
        });
        self.host.with_key_limits(&mut |key, limit, limiter| {
            match phase {
                Phase::Down => limiter.unshare(now),
                Phase::Up | Phase::Starting => limiter.share(TICK),
            }
            let want = Want {
                owner: Owner::Key(Arc::from(key)),
                limit,
            };
            out.ask(want, limiter);
        });
        for target in self.health.take_resets() {
            self.known_open.remove(target.as_str());
            out.publish.push(NewBreakerNote {
                target,
                node: self.health.node().to_owned(),
                kind: NoteKind::Reset,
            });
        }
        out
    }

    /// Hands out the grants and applies the other nodes' notes.
    fn apply(&mut self, out: Outgoing, reply: HealthReply) {
        let metrics = &self.health.metrics;
        if metrics.exchanged(true) {
            tracing::info!(
                node = self.health.node(),
                "sharing rate limits and breakers with the other nodes"
            );
        }
        self.phase = Phase::Up;
        self.after_note = reply
            .notes
            .iter()
            .map(|n| n.id)
            .fold(self.after_note, u64::max);
        for note in &out.publish {
            metrics.note("published", kind_name(note.kind));
        }
        let now = self.clock.now();
        let unix = self.clock.unix_millis();
        let (node, started_ms) = (self.health.node(), self.started_ms);
        let known_open = &mut self.known_open;
        let granted: Vec<(&Want, u64)> = out
            .wants
            .iter()
            .zip(reply.granted.iter().copied())
            .collect();
        for (want, units) in &granted {
            metrics.granted(&want.label(), want.limit, *units);
        }
        let for_keys: HashMap<String, u64> = granted
            .iter()
            .filter(|(want, _)| matches!(want.owner, Owner::Key(_)))
            .map(|(want, units)| (want.bucket(), *units))
            .collect();
        self.host.with_key_limits(&mut |key, limit, limiter| {
            limiter.share(TICK);
            let want = Want {
                owner: Owner::Key(Arc::from(key)),
                limit,
            };
            if let Some(units) = for_keys.get(&want.bucket()) {
                limiter.grant(*units);
            }
        });
        let moved = self.host.with_registry(|registry| {
            registry.share_limits(TICK);
            for (want, units) in &granted {
                let Owner::Target(target) = &want.owner else {
                    continue;
                };
                if let Some(limiter) = limiter(registry, target, want.limit) {
                    limiter.grant(*units);
                }
            }
            let mut moved = Vec::new();
            for note in reply.notes.iter().filter(|n| n.node != node) {
                let Some(id) = target_id(registry, &note.target) else {
                    continue;
                };
                let transition = match note.kind {
                    NoteKind::Opened { until_ms } if until_ms > unix => {
                        let until = now + std::time::Duration::from_millis(until_ms - unix);
                        let moved = registry.open_elsewhere(id, now, until);
                        if moved.is_some() {
                            known_open.insert(Arc::from(note.target.as_str()), until);
                        }
                        moved
                    }
                    NoteKind::Opened { .. } => None,
                    NoteKind::Reset if note.at_ms >= started_ms => {
                        known_open.remove(note.target.as_str());
                        registry.reset(id)
                    }
                    NoteKind::Reset => None,
                };
                if let Some(transition) = transition {
                    metrics.note("applied", kind_name(note.kind));
                    moved.push((id, transition));
                }
            }
            moved
        });
        for (id, transition) in moved {
            self.host.breaker_moved(id, &transition);
        }
    }

    /// The store did not answer: this node's limits refill on their own from now, and
    /// what it meant to publish waits for the store to come back.
    fn fall_back(&mut self, out: Outgoing, why: &str) {
        if self.health.metrics.exchanged(false) || self.phase == Phase::Starting {
            tracing::warn!(
                node = self.health.node(),
                why,
                "shared health unreachable: this node falls back to its own rate limits and breakers"
            );
        }
        self.phase = Phase::Down;
        for target in &out.opened {
            self.known_open.remove(target);
        }
        for note in out.publish {
            if note.kind == NoteKind::Reset {
                self.health.reset(&note.target);
            }
        }
        let now = self.clock.now();
        self.host
            .with_registry(|registry| registry.unshare_limits(now));
        self.host
            .with_key_limits(&mut |_, _, limiter| limiter.unshare(now));
    }
}

impl Outgoing {
    /// Asks for the units `limiter` needs this round, if any. A batch is what the limit
    /// earns in two ticks (at least one unit): a node at the limit is served every tick
    /// without waiting, and the units the nodes hold unspent stay a few ticks' worth.
    fn ask(&mut self, want: Want, limiter: &RateLimiter) {
        let batch = (limiter.per_second() * 2.0 * TICK.as_secs_f64())
            .ceil()
            .max(1.0) as u64;
        let units = limiter.wanted(batch);
        if units == 0 {
            return;
        }
        self.takes.push(TokenTake {
            bucket: want.bucket(),
            capacity: limiter.capacity() as f64,
            per_ms: limiter.per_second() / 1000.0,
            want: units,
        });
        self.wants.push(want);
    }
}

fn target_id(registry: &Registry, name: &str) -> Option<TargetId> {
    let index = registry.targets().iter().position(|t| &*t.name == name)?;
    u32::try_from(index).ok().map(TargetId)
}

fn limiter<'r>(
    registry: &'r mut Registry,
    target: &str,
    limit: &str,
) -> Option<&'r mut RateLimiter> {
    let id = target_id(registry, target)?;
    let health = registry.target_mut(id)?;
    match limit {
        "requests" => health.requests.as_mut(),
        _ => health.tokens.as_mut(),
    }
}

fn kind_name(kind: NoteKind) -> &'static str {
    match kind {
        NoteKind::Opened { .. } => "opened",
        NoteKind::Reset => "reset",
    }
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
