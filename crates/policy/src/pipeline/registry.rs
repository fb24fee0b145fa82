//! The health every call shares: breakers, budgets, limits and latencies per target,
//! breakers per agent, the global retry budget and the hedge budget.
//!
//! Calls are independent state machines; what one call learns about a target (it is
//! failing, it asked for a Retry-After, it is slow) must change what the next call does,
//! so that knowledge lives here, behind one `&mut` that the driver guards with a mutex
//! and the simulator owns outright.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::Reopening;
use crate::breaker::{self, Breaker, Transition};
use crate::budget::{self, RetryBudget};
use crate::clock::Instant;
use crate::concurrency::{self, Limiter};
use crate::fallback::TargetId;
use crate::hedge::{HedgeBudget, LatencyTracker};
use crate::outcome::Outcome;
use crate::rate_limit::{self, RateLimiter};
use crate::setting::InvalidSetting;
use crate::shift::Recent;

/// Agent breakers kept at most: agent keys come from clients, so their number must be
/// bounded or a client could grow the registry without limit.
pub const MAX_AGENTS: usize = 10_000;

/// How latencies are aged for hedging.
const LATENCY_ROTATION: Duration = Duration::from_secs(60);

/// Per-target settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetSettings {
    /// The target's breaker; `None` disables it.
    pub breaker: Option<breaker::Config>,
    /// The target's own retry budget; `None` leaves only the global one.
    pub budget: Option<budget::Config>,
    /// Requests allowed per period.
    pub requests: Option<rate_limit::Config>,
    /// Prompt tokens allowed per period.
    pub tokens: Option<rate_limit::Config>,
    /// Its adaptive concurrency limit, wait queue and throttle; `None` lets every call
    /// through.
    pub concurrency: Option<concurrency::Config>,
}

/// Everything known about one target.
#[derive(Debug, Clone)]
pub struct TargetHealth {
    /// The target's name, for events and metrics.
    pub name: Arc<str>,
    /// Its breaker, if enabled.
    pub breaker: Option<Breaker>,
    /// Its retry budget, if it has one.
    pub budget: Option<RetryBudget>,
    /// Its request rate limit.
    pub requests: Option<RateLimiter>,
    /// Its token rate limit.
    pub tokens: Option<RateLimiter>,
    /// Its concurrency limiter, if enabled.
    pub limiter: Option<Limiter>,
    /// Recent latencies of successful attempts.
    pub latency: LatencyTracker,
    /// Recent successes and failures: how much traffic shifts off it (`shift.rs`).
    pub recent: Recent,
    /// Nothing is sent before this instant: the target's last Retry-After.
    pub not_before: Instant,
    /// What the end of that Retry-After hold lets through (`hold.rs`).
    pub reopening: Reopening,
    /// Out of rotation until this instant: an operator's drain (maintenance, a
    /// failover drill). `Instant::ZERO`: in rotation.
    pub drained_until: Instant,
    /// What it was built with: health is only handed over between equal settings.
    pub settings: TargetSettings,
}

/// Shared settings that are not per target.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The retry budget over all targets; `None` disables it.
    pub global_budget: Option<budget::Config>,
    /// The breaker each agent key gets; `None` disables per-agent breakers.
    pub agent_breaker: Option<breaker::Config>,
    /// Hedges allowed as a fraction of calls.
    pub hedge_ratio: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            global_budget: Some(budget::Config::default()),
            agent_breaker: Some(breaker::Config::default()),
            hedge_ratio: 0.05,
        }
    }
}

/// The shared health of every target and agent.
#[derive(Debug, Clone)]
pub struct Registry {
    targets: Vec<TargetHealth>,
    agents: HashMap<Arc<str>, Breaker>,
    agent_breaker: Option<breaker::Config>,
    /// The retry budget over all targets.
    pub global_budget: Option<RetryBudget>,
    /// The hedge budget over all calls.
    pub hedges: HedgeBudget,
    /// The last ticket handed to a call: its place in wait queues.
    tickets: u64,
    /// While `Some(wait)`, every rate limit takes its units from a bucket shared with
    /// other nodes (see [`RateLimiter::share`]), targets added later included.
    shared_limits: Option<Duration>,
}

impl Registry {
    /// An empty registry with validated `settings`.
    pub fn new(settings: Settings) -> Result<Self, InvalidSetting> {
        if let Some(config) = &settings.agent_breaker {
            config.validate()?;
        }
        crate::setting::check_range("hedge.budget", settings.hedge_ratio, 0.0, 1.0)?;
        Ok(Registry {
            targets: Vec::new(),
            agents: HashMap::new(),
            agent_breaker: settings.agent_breaker,
            global_budget: settings.global_budget.map(RetryBudget::new).transpose()?,
            hedges: HedgeBudget::new(settings.hedge_ratio, Duration::from_secs(10)),
            tickets: 0,
            shared_limits: None,
        })
    }

    /// Adds a target and returns its id.
    pub fn add_target(
        &mut self,
        name: &str,
        settings: TargetSettings,
        now: Instant,
    ) -> Result<TargetId, InvalidSetting> {
        let id = u32::try_from(self.targets.len())
            .map_err(|_| InvalidSetting::new("targets", "too many targets"))?;
        let share = |limiter: Option<RateLimiter>| {
            limiter.map(|mut limiter| {
                if let Some(wait) = self.shared_limits {
                    limiter.share(wait);
                }
                limiter
            })
        };
        let requests = share(
            settings
                .requests
                .map(|c| RateLimiter::new(c, now))
                .transpose()?,
        );
        let tokens = share(
            settings
                .tokens
                .map(|c| RateLimiter::new(c, now))
                .transpose()?,
        );
        self.targets.push(TargetHealth {
            name: Arc::from(name),
            settings: settings.clone(),
            breaker: settings.breaker.map(Breaker::new).transpose()?,
            budget: settings.budget.map(RetryBudget::new).transpose()?,
            requests,
            tokens,
            limiter: settings
                .concurrency
                .map(|c| Limiter::new(c, now))
                .transpose()?,
            latency: LatencyTracker::new(LATENCY_ROTATION, now),
            recent: Recent::default(),
            not_before: Instant::ZERO,
            reopening: Reopening::default(),
            drained_until: Instant::ZERO,
        });
        Ok(TargetId(id))
    }

    /// The target `id`.
    pub fn target(&self, id: TargetId) -> Option<&TargetHealth> {
        self.targets.get(id.0 as usize)
    }

    /// The target `id`, to change.
    pub fn target_mut(&mut self, id: TargetId) -> Option<&mut TargetHealth> {
        self.targets.get_mut(id.0 as usize)
    }

    /// Every target, in the order they were added (their ids are their indexes).
    pub fn targets(&self) -> &[TargetHealth] {
        &self.targets
    }

    /// The breaker of `agent`, created on first use; `None` if agent breakers are off,
    /// or if [`MAX_AGENTS`] breakers exist and none of them is closed (an open or
    /// half-open one is never forgotten to make room).
    pub fn agent_breaker(&mut self, agent: &Arc<str>) -> Option<&mut Breaker> {
        let config = self.agent_breaker?;
        if !self.agents.contains_key(agent) {
            if self.agents.len() >= MAX_AGENTS {
                let closed = self
                    .agents
                    .iter()
                    .find(|(_, b)| b.state() == crate::breaker::State::Closed)
                    .map(|(key, _)| key.clone())?;
                self.agents.remove(&closed);
            }
            let breaker = Breaker::new(config).ok()?;
            self.agents.insert(agent.clone(), breaker);
        }
        self.agents.get_mut(agent)
    }

    /// Every agent breaker, by agent key.
    pub fn agents(&self) -> impl Iterator<Item = (&Arc<str>, &Breaker)> {
        self.agents.iter()
    }

    /// A call that succeeded on `target` failed afterwards with `outcome` (a stream that
    /// broke after its first byte): its breaker counts the failure. Returns the
    /// breaker's change of state, if any, for the caller to publish.
    pub fn record_late_failure(
        &mut self,
        target: TargetId,
        now: Instant,
        outcome: Outcome,
    ) -> Option<Transition> {
        self.target_mut(target)?
            .breaker
            .as_mut()?
            .record_late_failure(now, outcome)
    }

    /// Takes `target` out of rotation until `until`: calls pass it over without trying
    /// it, as they pass over an open breaker, and go on along their chain; its breaker,
    /// budgets and Retry-After are left as they are. For maintenance, a provider's
    /// announced incident, or a failover drill. False if there is no such target.
    pub fn drain(&mut self, target: TargetId, until: Instant) -> bool {
        match self.target_mut(target) {
            Some(health) => {
                health.drained_until = until;
                true
            }
            None => false,
        }
    }

    /// An operator says `target` is fine: closes its breaker and forgets its pending
    /// Retry-After. Returns the breaker's change of state, if it was not closed; `None`
    /// also when there is no such target.
    pub fn reset(&mut self, target: TargetId) -> Option<Transition> {
        let health = self.target_mut(target)?;
        health.not_before = Instant::ZERO;
        health.reopening = Reopening::default();
        health.recent.clear();
        health.breaker.as_mut()?.reset()
    }

    /// Makes every rate limit take its units from grants of a bucket shared with other
    /// nodes, those of targets added later included; a call short of units waits
    /// `wait` for the next grant. Sharing again only changes the wait.
    pub fn share_limits(&mut self, wait: Duration) {
        self.shared_limits = Some(wait);
        for health in &mut self.targets {
            for limiter in [&mut health.requests, &mut health.tokens]
                .into_iter()
                .flatten()
            {
                limiter.share(wait);
            }
        }
    }

    /// Makes every rate limit refill on its own again from `now`: the shared bucket
    /// cannot be reached, and a node must not block calls on it.
    pub fn unshare_limits(&mut self, now: Instant) {
        self.shared_limits = None;
        for health in &mut self.targets {
            for limiter in [&mut health.requests, &mut health.tokens]
                .into_iter()
                .flatten()
            {
                limiter.unshare(now);
            }
        }
    }

    /// Whether rate limits take their units from a shared bucket.
    pub fn limits_shared(&self) -> bool {
        self.shared_limits.is_some()
    }

    /// Opens `target`'s breaker because another node's opened, until `until` (as that
    /// node's does). Returns the change of state; `None` when there is no such target
    /// or breaker, or it is already open at least that long.
    pub fn open_elsewhere(
        &mut self,
        target: TargetId,
        now: Instant,
        until: Instant,
    ) -> Option<Transition> {
        self.target_mut(target)?
            .breaker
            .as_mut()?
            .open_elsewhere(now, until)
    }

    /// Puts a drained `target` back in rotation now. False if there is no such target.
    pub fn restore(&mut self, target: TargetId) -> bool {
        self.drain(target, Instant::ZERO)
    }

    /// Takes over what `old` learned (a registry being replaced by this one, on a
    /// configuration reload): each target of the same name whose settings are equal
    /// and for which `same_place` holds keeps its breaker, budget, rate limits,
    /// latencies, recent failures, Retry-After and drain; the agent breakers and the
    /// global retry budget carry over when their settings are equal. A reload must not close a breaker that an
    /// outage opened, nor forget a Retry-After, and send the next burst to a target
    /// known to be down. Returns the targets that kept their health.
    pub fn inherit_health(
        &mut self,
        old: &Registry,
        same_place: impl Fn(&str) -> bool,
    ) -> Vec<TargetId> {
        let mut kept = Vec::new();
        for (index, target) in self.targets.iter_mut().enumerate() {
            let previous = old.targets.iter().find(|t| {
                t.name == target.name && t.settings == target.settings && same_place(&t.name)
            });
            if let Some(previous) = previous {
                *target = previous.clone();
                if let Some(limiter) = &mut target.limiter {
                    // The calls in flight finish against the old registry.
                    limiter.hand_over();
                }
                kept.push(TargetId(index as u32));
            }
        }
        self.tickets = self.tickets.max(old.tickets);
        if self.agent_breaker == old.agent_breaker {
            self.agents.clone_from(&old.agents);
        }
        let config = |b: &Option<RetryBudget>| b.as_ref().map(|b| *b.config());
        if config(&self.global_budget) == config(&old.global_budget) {
            self.global_budget.clone_from(&old.global_budget);
        }
        kept
    }

    /// A new ticket: calls that arrive later rank after earlier ones of equal
    /// priority and deadline.
    pub(crate) fn ticket(&mut self) -> u64 {
        self.tickets += 1;
        self.tickets
    }

    /// Whether a retry to `target` would be allowed by its budget and the global one.
    pub(crate) fn can_retry(&self, target: TargetId, now: Instant) -> bool {
        let global = self
            .global_budget
            .as_ref()
            .is_none_or(|b| b.can_withdraw(now));
        let own = self
            .target(target)
            .and_then(|t| t.budget.as_ref())
            .is_none_or(|b| b.can_withdraw(now));
        global && own
    }

    /// Takes one retry from both budgets; false (and nothing taken) if either is empty.
    pub(crate) fn withdraw_retry(&mut self, target: TargetId, now: Instant) -> bool {
        if !self.can_retry(target, now) {
            return false;
        }
        if let Some(budget) = &mut self.global_budget {
            budget.try_withdraw(now);
        }
        if let Some(budget) = self.target_mut(target).and_then(|t| t.budget.as_mut()) {
            budget.try_withdraw(now);
        }
        true
    }

    /// Credits a successful call to both budgets.
    pub(crate) fn deposit(&mut self, target: TargetId, now: Instant) {
        if let Some(budget) = &mut self.global_budget {
            budget.deposit(now);
        }
        if let Some(budget) = self.target_mut(target).and_then(|t| t.budget.as_mut()) {
            budget.deposit(now);
        }
    }
}
