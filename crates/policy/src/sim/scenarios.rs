//! The built-in scenarios, by name: the failures holdfast exists to absorb.
//!
//! Every scenario has realistic shape rather than tuned numbers: tens of requests per
//! second with Poisson arrivals, client deadlines of 10 s and 30 s, a route with a
//! fallback, production defaults for the holdfast policy (full-jitter backoff 200 ms..10 s
//! with 3 attempts per target, the default global retry budget, fail-over when a
//! Retry-After exceeds 2 s) and breakers whose 10 s window and 20-call minimum let them
//! trip within seconds at this traffic. The decision that shapes the module: a scenario
//! scripts the *targets*, never the outcome for the policy, so that whatever the two
//! policies make of the same faults is their own doing.

use std::sync::Arc;
use std::time::Duration;

use super::capacity::Capacity;
use super::scenario::{Arrivals, Clients, Scenario, Setup, Traffic};
use super::target::{FaultWindow, Flapping, Latency, Profile, Slow, Target};
use crate::breaker;
use crate::budget;
use crate::fallback::{Chain, Link, TargetId};
use crate::hedge;
use crate::outcome::{Outcome, TimeoutKind};
use crate::pipeline::RetryOn;
use crate::setting::InvalidSetting;

/// Every built-in scenario's name, in report order.
pub const NAMES: [&str; 7] = [
    "total-outage",
    "503-20pct",
    "429-storm",
    "slow-target",
    "flapping",
    "brownout",
    "mixed",
];

/// Why a scenario could not be had.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScenarioError {
    /// No built-in scenario has this name.
    #[error("unknown scenario `{name}` (known: {})", NAMES.join(", "))]
    Unknown {
        /// The name asked for.
        name: String,
    },
    /// The scenario's settings are invalid (a bug in the scenario).
    #[error("scenario `{name}`: {source}")]
    Invalid {
        /// The scenario.
        name: String,
        /// The refused setting.
        source: InvalidSetting,
    },
}

impl Scenario {
    /// The built-in scenario called `name`.
    pub fn named(name: &str) -> Result<Scenario, ScenarioError> {
        let build = match name {
            "total-outage" => total_outage,
            "503-20pct" => overloaded_20pct,
            "429-storm" => rate_limit_storm,
            "slow-target" => slow_target,
            "flapping" => flapping,
            "brownout" => brownout,
            "mixed" => mixed,
            _ => {
                return Err(ScenarioError::Unknown {
                    name: name.to_owned(),
                });
            }
        };
        build().map_err(|source| ScenarioError::Invalid {
            name: name.to_owned(),
            source,
        })
    }

    /// Every built-in scenario, in the order of [`NAMES`].
    pub fn all() -> Result<Vec<Scenario>, ScenarioError> {
        NAMES.iter().map(|name| Scenario::named(name)).collect()
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Breaker defaults, with a window and minimum volume suited to tens of requests per
/// second.
fn breaker() -> breaker::Config {
    breaker::Config {
        window: secs(10),
        min_calls: 20,
        ..breaker::Config::default()
    }
}

fn traffic() -> Traffic {
    Traffic {
        rate: 20.0,
        arrivals: Arrivals::Poisson,
        duration: secs(60),
    }
}

fn clients() -> Clients {
    Clients {
        deadlines: vec![(0.3, secs(10)), (0.7, secs(30))],
        agents: 4,
        prompt_tokens: vec![(0.9, (300, 4_000)), (0.1, (4_000, 30_000))],
        tokens_known: 1.0,
        bad_requests: 0.0,
    }
}

fn link(target: u32, window: u64, timeout: Duration) -> Link {
    Link {
        target: TargetId(target),
        context_window: Some(window),
        attempt_timeout: timeout,
        takes_filtered: false,
    }
}

/// A primary and a fallback deployment of the same 128k-token model.
fn primary_and_fallback(
    primary: Profile,
    fallback: Profile,
) -> Result<(Vec<Target>, Chain), InvalidSetting> {
    let targets = vec![
        Target {
            name: "primary",
            profile: Profile {
                context_window: Some(128_000),
                ..primary
            },
        },
        Target {
            name: "fallback",
            profile: Profile {
                context_window: Some(128_000),
                ..fallback
            },
        },
    ];
    let chain = Chain::new(vec![link(0, 128_000, secs(20)), link(1, 128_000, secs(20))])?;
    Ok((targets, chain))
}

fn normal_latency() -> Latency {
    Latency::log_normal_ms(1_000, 6_000)
}

fn scenario(
    name: &'static str,
    summary: &'static str,
    targets: Vec<Target>,
    chain: Chain,
    clients: Clients,
    holdfast: Setup,
) -> Result<Scenario, InvalidSetting> {
    Ok(Scenario {
        name,
        summary,
        naive: Setup::naive(&targets)?,
        targets,
        chain: Arc::new(chain),
        traffic: traffic(),
        clients,
        holdfast,
    })
}

fn total_outage() -> Result<Scenario, InvalidSetting> {
    let primary = Profile::down(Outcome::Overloaded { retry_after: None });
    let mut fallback = Profile::down(Outcome::ServerError);
    fallback.errors = vec![(0.7, Outcome::ServerError), (0.3, Outcome::Connection)];
    let (targets, chain) = primary_and_fallback(primary, fallback)?;
    let holdfast = Setup::holdfast(&targets, breaker(), None, None)?;
    let summary = "every target fails fast (503 on the primary, 500 and resets on the fallback)";
    scenario("total-outage", summary, targets, chain, clients(), holdfast)
}

fn overloaded_20pct() -> Result<Scenario, InvalidSetting> {
    let mut primary = Profile::healthy(normal_latency());
    primary.errors = vec![(0.2, Outcome::Overloaded { retry_after: None })];
    let (targets, chain) = primary_and_fallback(primary, Profile::healthy(normal_latency()))?;
    let mut holdfast = Setup::holdfast(&targets, breaker(), None, None)?;
    // What a route with a healthy fallback is given when a 503 should not wait: retries
    // go to the fallback at once, and traffic shifts off the primary (`shift.rs`).
    Arc::make_mut(&mut holdfast.policy).retry_on = RetryOn::Next;
    let summary = "the primary answers 503 to 20% of calls; the fallback is healthy (holdfast: retry_on = \"next\")";
    scenario("503-20pct", summary, targets, chain, clients(), holdfast)
}

fn rate_limit_storm() -> Result<Scenario, InvalidSetting> {
    let mut primary = Profile::healthy(normal_latency());
    primary.windows = vec![FaultWindow {
        from: secs(10),
        until: secs(40),
        outcome: Outcome::RateLimited {
            retry_after: Some(secs(5)),
        },
        rate: 1.0,
    }];
    let (targets, chain) = primary_and_fallback(primary, Profile::healthy(normal_latency()))?;
    let holdfast = Setup::holdfast(&targets, breaker(), None, None)?;
    let summary =
        "the primary answers 429 with Retry-After 5s during [10s, 40s); the fallback is healthy";
    scenario("429-storm", summary, targets, chain, clients(), holdfast)
}

/// The primary browns out: it serves 100 calls at once at full speed, while 100
/// requests/s answered in 1.35 s on average keep about 135 in flight; beyond 100 its
/// calls slow down and beyond 200 it refuses them ([`Capacity`]). The fallback has room
/// for 200. Both also fail 5% of calls whatever the load. Every call sent beyond
/// capacity slows the others, so the retries a policy adds are what decides whether the
/// primary serves at its best or collapses; only the retry budget and the breakers
/// stand between it and a retry storm.
fn brownout() -> Result<Scenario, InvalidSetting> {
    let mut primary = Profile::healthy(normal_latency());
    primary.errors = vec![(0.05, Outcome::Overloaded { retry_after: None })];
    primary.capacity = Some(Capacity::new(100)?);
    let mut fallback = Profile::healthy(normal_latency());
    fallback.errors = vec![(0.05, Outcome::ServerError)];
    fallback.capacity = Some(Capacity::new(200)?);
    let (targets, chain) = primary_and_fallback(primary, fallback)?;
    let holdfast = Setup::holdfast(&targets, breaker(), None, None)?;
    let summary = "at 100 req/s the primary needs ~135 calls in flight and serves 100 at full speed: beyond, calls slow down (up to 4x) and beyond 200 get 503; the fallback has room for 200; both fail 5% anyway";
    let mut brownout = scenario("brownout", summary, targets, chain, clients(), holdfast)?;
    brownout.traffic = Traffic {
        rate: 100.0,
        duration: secs(30),
        ..traffic()
    };
    Ok(brownout)
}

fn slow_target() -> Result<Scenario, InvalidSetting> {
    let mut primary = Profile::healthy(Latency::log_normal_ms(2_000, 10_000));
    primary.slow = Some(Slow {
        fraction: 0.7,
        latency: Latency::uniform_ms(20_000, 60_000),
    });
    let (targets, chain) = primary_and_fallback(primary, Profile::healthy(normal_latency()))?;
    let holdfast = Setup::holdfast(&targets, breaker(), None, Some(hedge::Config::default()))?;
    let summary = "70% of the primary's calls take 20-60s and time out; the fallback is healthy";
    scenario("slow-target", summary, targets, chain, clients(), holdfast)
}

fn flapping() -> Result<Scenario, InvalidSetting> {
    let mut primary = Profile::healthy(normal_latency());
    primary.flapping = Some(Flapping {
        up: secs(20),
        down: secs(10),
        outcome: Outcome::ServerError,
    });
    let (targets, chain) = primary_and_fallback(primary, Profile::healthy(normal_latency()))?;
    let holdfast = Setup::holdfast(&targets, breaker(), None, None)?;
    let summary = "the primary alternates 20s healthy and 10s of 500s; the fallback is healthy";
    scenario("flapping", summary, targets, chain, clients(), holdfast)
}

/// A 128k primary with every kind of trouble, a secondary whose key is refused, and a
/// 1M-token model behind them for what does not fit.
fn mixed_targets() -> Vec<Target> {
    let mut primary = Profile::healthy(normal_latency());
    primary.errors = vec![
        (
            0.05,
            Outcome::RateLimited {
                retry_after: Some(secs(1)),
            },
        ),
        (0.03, Outcome::ServerError),
        (0.02, Outcome::Timeout(TimeoutKind::FirstByte)),
        (0.01, Outcome::Connection),
    ];
    primary.slow = Some(Slow {
        fraction: 0.03,
        latency: Latency::uniform_ms(15_000, 40_000),
    });
    primary.context_window = Some(128_000);
    let mut secondary = Profile::down(Outcome::Auth);
    secondary.context_window = Some(128_000);
    let mut large = Profile::healthy(Latency::log_normal_ms(2_000, 12_000));
    large.errors = vec![
        (0.02, Outcome::ServerError),
        (
            0.01,
            Outcome::Overloaded {
                retry_after: Some(secs(3)),
            },
        ),
    ];
    large.context_window = Some(1_000_000);
    vec![
        Target {
            name: "primary",
            profile: primary,
        },
        Target {
            name: "secondary",
            profile: secondary,
        },
        Target {
            name: "large",
            profile: large,
        },
    ]
}

fn mixed() -> Result<Scenario, InvalidSetting> {
    let targets = mixed_targets();
    let chain = Chain::new(vec![
        link(0, 128_000, secs(20)),
        link(1, 128_000, secs(20)),
        link(2, 1_000_000, secs(30)),
    ])?;
    let target_budget = budget::Config {
        min_per_second: 5.0,
        ..budget::Config::default()
    };
    let hedge = Some(hedge::Config::default());
    let holdfast = Setup::holdfast(&targets, breaker(), Some(target_budget), hedge)?;
    let clients = Clients {
        prompt_tokens: vec![
            (0.9, (300, 8_000)),
            (0.08, (8_000, 100_000)),
            (0.02, (150_000, 400_000)),
        ],
        tokens_known: 0.5,
        bad_requests: 0.01,
        ..clients()
    };
    let summary = "429s, 500s, hangs and resets on the primary, a refused key on the secondary, \
                   context overflows and 1% bad requests";
    scenario("mixed", summary, targets, chain, clients, holdfast)
}
