//! A scenario: the targets and their faults, the route, the clients and their traffic,
//! and the two policies to compare on them.
//!
//! The decision that shapes it: a scenario is built and validated once, up front, into
//! a ready [`Registry`] per policy; a run clones it. So a scenario with a bad setting
//! fails where it is written, with the field's name, and [`run`](super::run) cannot fail.
//! The naive policy is derived from the targets alone ([`Setup::naive`]), so that every
//! scenario compares holdfast with the same straw man: the same pipeline with 3 fixed
//! retries, no jitter, no budget, no breakers and no Retry-After fail-over.

use std::sync::Arc;
use std::time::Duration;

use super::check::Limits;
use super::target::Target;
use crate::backoff::{self, Backoff, Jitter};
use crate::breaker;
use crate::budget;
use crate::concurrency;
use crate::fallback::Chain;
use crate::hedge;
use crate::pipeline::{Policy, Registry, Settings, TargetSettings};
use crate::rng::Rng;
use crate::setting::InvalidSetting;

/// Which policy a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyKind {
    /// The scenario's holdfast policy: budgets, breakers, jitter, Retry-After fail-over.
    Holdfast,
    /// Three fixed retries with plain exponential backoff, and nothing else.
    Naive,
}

impl PolicyKind {
    /// A stable name for reports.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Holdfast => "holdfast",
            PolicyKind::Naive => "naive",
        }
    }
}

/// How client requests arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrivals {
    /// A Poisson process: exponential gaps between requests.
    Poisson,
    /// Evenly spaced.
    Fixed,
}

/// The client traffic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Traffic {
    /// Requests per second; > 0.
    pub rate: f64,
    /// How they are spaced.
    pub arrivals: Arrivals,
    /// Requests arrive during `[0, duration)`; the simulation then runs until every call
    /// has ended.
    pub duration: Duration,
}

impl Traffic {
    /// The gap before the next arrival.
    pub(super) fn gap(&self, rng: &mut Rng) -> Duration {
        let mean = 1.0 / self.rate.max(1e-9);
        let gap = match self.arrivals {
            Arrivals::Fixed => mean,
            Arrivals::Poisson => -mean * (1.0 - rng.unit()).ln(),
        };
        Duration::try_from_secs_f64(gap).unwrap_or(Duration::from_secs(1))
    }
}

/// What the clients send.
#[derive(Debug, Clone, PartialEq)]
pub struct Clients {
    /// Per-request deadlines, as (weight, deadline).
    pub deadlines: Vec<(f64, Duration)>,
    /// Agent keys the requests are spread over uniformly; 0 sends none.
    pub agents: u32,
    /// Prompt sizes, as (weight, (fewest tokens, most tokens)).
    pub prompt_tokens: Vec<(f64, (u64, u64))>,
    /// The fraction of requests whose token count the gateway knows (and checks
    /// against context windows before sending), in `[0, 1]`.
    pub tokens_known: f64,
    /// The fraction of malformed requests, which every target refuses, in `[0, 1]`.
    pub bad_requests: f64,
}

/// Picks one of `choices` by weight; `None` when there is none.
pub(super) fn pick<T: Copy>(rng: &mut Rng, choices: &[(f64, T)]) -> Option<T> {
    let total: f64 = choices.iter().map(|(w, _)| w.max(0.0)).sum();
    let mut draw = rng.unit() * total;
    for (weight, choice) in choices {
        draw -= weight.max(0.0);
        if draw < 0.0 {
            return Some(*choice);
        }
    }
    choices.last().map(|(_, choice)| *choice)
}

/// One policy, ready to run: the route's policy, a fresh registry holding every target,
/// and the limits its runs are checked against.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The route's policy.
    pub policy: Arc<Policy>,
    /// The shared state before any traffic; each run starts from a clone.
    pub registry: Registry,
    /// What the invariant checks hold its runs to.
    pub limits: Limits,
}

impl Setup {
    /// A setup from its parts; `targets` gives each target's settings, in order.
    pub fn new(
        targets: &[Target],
        policy: Policy,
        settings: Settings,
        target_settings: &[TargetSettings],
    ) -> Result<Self, InvalidSetting> {
        policy.validate()?;
        if target_settings.len() != targets.len() {
            return Err(InvalidSetting::new(
                "targets",
                "one target settings per target",
            ));
        }
        let global_budget = settings.global_budget;
        let mut registry = Registry::new(settings)?;
        for (target, settings) in targets.iter().zip(target_settings) {
            registry.add_target(target.name, settings.clone(), crate::clock::Instant::ZERO)?;
        }
        let limits = Limits {
            global_budget,
            target_budgets: target_settings.iter().map(|t| t.budget).collect(),
            half_open_probes: target_settings
                .iter()
                .map(|t| t.breaker.map(|b| b.half_open_probes))
                .collect(),
            backoff_cap: policy.backoff.config().cap,
        };
        Ok(Setup {
            policy: Arc::new(policy),
            registry,
            limits,
        })
    }

    /// The naive policy over `targets`: the same pipeline with 3 retries (4 attempts per
    /// target), exponential backoff without jitter, no retry budget, no breakers, no
    /// hedging and no fail-over on a long Retry-After.
    pub fn naive(targets: &[Target]) -> Result<Self, InvalidSetting> {
        let backoff = Backoff::new(backoff::Config {
            max_attempts: 4,
            jitter: Jitter::None,
            ..backoff::Config::default()
        })?;
        let mut policy = Policy::new(backoff);
        policy.fail_over_when_retry_after_exceeds = Duration::from_secs(24 * 3600);
        let settings = Settings {
            global_budget: None,
            agent_breaker: None,
            hedge_ratio: 0.0,
        };
        let plain = vec![TargetSettings::default(); targets.len()];
        Setup::new(targets, policy, settings, &plain)
    }

    /// The holdfast policy over `targets` with production defaults: full-jitter backoff
    /// 200 ms..10 s with 3 attempts per target, the default global retry budget,
    /// `breaker` on every target and on every agent, fail-over when a Retry-After
    /// exceeds 2 s, and the given per-target budget and hedging.
    pub fn holdfast(
        targets: &[Target],
        breaker: breaker::Config,
        target_budget: Option<budget::Config>,
        hedge: Option<hedge::Config>,
    ) -> Result<Self, InvalidSetting> {
        Setup::holdfast_limited(targets, breaker, target_budget, hedge, None)
    }

    /// [`Setup::holdfast`], with `concurrency` limiting every target.
    pub fn holdfast_limited(
        targets: &[Target],
        breaker: breaker::Config,
        target_budget: Option<budget::Config>,
        hedge: Option<hedge::Config>,
        concurrency: Option<concurrency::Config>,
    ) -> Result<Self, InvalidSetting> {
        let mut policy = Policy::new(Backoff::new(backoff::Config::default())?);
        policy.fail_over_when_retry_after_exceeds = Duration::from_secs(2);
        policy.hedge = hedge;
        let settings = Settings {
            global_budget: Some(budget::Config::default()),
            agent_breaker: Some(breaker),
            hedge_ratio: hedge.map_or(0.0, |h| h.budget),
        };
        let each = TargetSettings {
            breaker: Some(breaker),
            budget: target_budget,
            requests: None,
            tokens: None,
            concurrency,
        };
        Setup::new(targets, policy, settings, &vec![each; targets.len()])
    }
}

/// A named situation to simulate.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Its name, as `holdfast simulate --scenario NAME` takes it.
    pub name: &'static str,
    /// One line on what it shows.
    pub summary: &'static str,
    /// The targets; target `i` is [`TargetId(i)`](crate::fallback::TargetId).
    pub targets: Vec<Target>,
    /// The route every request takes.
    pub chain: Arc<Chain>,
    /// The client traffic.
    pub traffic: Traffic,
    /// What the clients send.
    pub clients: Clients,
    /// The holdfast policy.
    pub holdfast: Setup,
    /// The naive policy.
    pub naive: Setup,
}

impl Scenario {
    /// The setup of `kind`.
    pub fn setup(&self, kind: PolicyKind) -> &Setup {
        match kind {
            PolicyKind::Holdfast => &self.holdfast,
            PolicyKind::Naive => &self.naive,
        }
    }
}
