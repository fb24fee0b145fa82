//! A failover drill: take one target of a route out of rotation for a while, under a
//! steady trickle of real requests, and check that the route keeps answering, that the
//! drained target serves nothing meanwhile, and that it takes its traffic back once
//! restored.
//!
//! Three phases: `baseline` (the route as it is), `drained` (the target drained with
//! `POST /admin/targets/{name}/drain` for the phase plus a margin) and `recovery`
//! (restored; requests go on until the target serves one again, or the phase ends).
//! The target is restored however the drill ends, and its drain has an end of its own
//! in any case, so an interrupted drill cannot keep a target out.
//!
//! The decision: requests go at a fixed rate, small (`max_tokens` 8 by default, one
//! fixed prompt) and marked `x-holdfast-agent: holdfast-drill`, not as fast as
//! possible: a drill runs against real providers and costs money, which the report
//! adds up from `x-holdfast-cost-usd`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use holdfast_policy::{Clock, Instant};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::api::{Api, list_of};

/// How much longer than its phase the drain is asked for: the restore ends it, and
/// the margin covers a slow restore without letting the target back too early.
const DRAIN_MARGIN: Duration = Duration::from_secs(30);

/// The longest a drill request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The agent name drill requests carry, so the operator's own traffic is told apart.
pub const AGENT: &str = "holdfast-drill";

/// What to drill, against which server.
#[derive(Debug, Clone)]
pub struct Drill {
    /// The server's base URL (`http://127.0.0.1:8080`).
    pub server: String,
    /// The client key, when the server has keys.
    pub key: Option<String>,
    /// The route the requests ask for.
    pub route: String,
    /// The target taken out of rotation.
    pub target: String,
    /// How long the route runs as it is first.
    pub baseline: Duration,
    /// How long the target stays drained.
    pub drained: Duration,
    /// How long the target may take to serve again once restored.
    pub recovery: Duration,
    /// Requests per second.
    pub rate: f64,
    /// `max_tokens` of each request.
    pub max_tokens: u32,
    /// The share of requests that must succeed while the target is drained (0 to 1).
    pub min_success: f64,
}

/// A phase of the drill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The route as it is.
    Baseline,
    /// The target out of rotation.
    Drained,
    /// The target restored.
    Recovery,
}

impl Phase {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Baseline => "baseline",
            Phase::Drained => "drained",
            Phase::Recovery => "recovery",
        }
    }
}

/// What the requests of one phase met.
#[derive(Debug, Clone)]
pub struct PhaseReport {
    /// The phase.
    pub phase: Phase,
    /// Requests sent.
    pub requests: u64,
    /// Requests answered with a 2xx.
    pub succeeded: u64,
    /// Successful requests by the target that served them.
    pub served_by: BTreeMap<String, u64>,
    /// Failed requests by their error code (`unreachable` when no answer came).
    pub failures: BTreeMap<String, u64>,
    /// Median latency of all requests.
    pub p50: Duration,
    /// 99th percentile latency of all requests.
    pub p99: Duration,
    /// What the phase cost, from `x-holdfast-cost-usd`.
    pub cost_usd: f64,
}

impl PhaseReport {
    /// The share of requests that succeeded (1 when none were sent).
    pub fn success_rate(&self) -> f64 {
        if self.requests == 0 {
            1.0
        } else {
            self.succeeded as f64 / self.requests as f64
        }
    }

    /// How many requests `target` served.
    pub fn served(&self, target: &str) -> u64 {
        self.served_by.get(target).copied().unwrap_or(0)
    }
}

/// One verdict of the drill.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked.
    pub what: String,
    /// Whether it held.
    pub passed: bool,
}

/// A finished drill.
#[derive(Debug, Clone)]
pub struct DrillReport {
    /// The route and target drilled.
    pub route: String,
    /// The drained target.
    pub target: String,
    /// Baseline, drained and recovery, in order.
    pub phases: Vec<PhaseReport>,
    /// From the restore to the first request the target served, when it did.
    pub returned_after: Option<Duration>,
    /// The verdicts.
    pub checks: Vec<Check>,
}

impl DrillReport {
    /// Whether every check held.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// The phase's report.
    pub fn phase(&self, phase: Phase) -> Option<&PhaseReport> {
        self.phases.iter().find(|p| p.phase == phase)
    }
}

/// A drill that could not be run (as opposed to one that ran and failed its checks).
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    /// A setting cannot work.
    #[error("{0}")]
    Invalid(String),
    /// The server could not be reached or refused an operator call.
    #[error("{0}")]
    Server(String),
}

/// One request's result.
struct Sent {
    phase: Phase,
    started: Instant,
    latency: Duration,
    outcome: Result<(String, f64), String>,
}

impl Drill {
    /// Runs the drill, reading time from `clock`.
    pub async fn run(&self, clock: Arc<dyn Clock>) -> Result<DrillReport, DrillError> {
        self.validate()?;
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| DrillError::Server(format!("building the HTTP client: {e}")))?;
        let api = Api::new(http, &self.server, self.key.clone(), AGENT);
        self.preflight(&api).await?;

        let mut sent = self.traffic(&api, &clock, Phase::Baseline, None).await;
        let drain_for = self.drained + DRAIN_MARGIN;
        let path = format!("/admin/targets/{}/drain", self.target);
        let body = json!({"for": format!("{}s", drain_for.as_secs())});
        api.call(reqwest::Method::POST, &path, Some(body))
            .await
            .map_err(DrillError::Server)?;
        sent.extend(self.traffic(&api, &clock, Phase::Drained, None).await);
        // Restored before anything else can fail: the drill must not leave it out.
        let restore = format!("/admin/targets/{}/restore", self.target);
        api.call(reqwest::Method::POST, &restore, Some(json!({})))
            .await
            .map_err(DrillError::Server)?;
        let restored_at = clock.now();
        sent.extend(
            self.traffic(&api, &clock, Phase::Recovery, Some(&self.target))
                .await,
        );
        Ok(self.report(&sent, restored_at))
    }

    fn validate(&self) -> Result<(), DrillError> {
        let invalid = |m: String| Err(DrillError::Invalid(m));
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 1000.0) {
            return invalid(format!(
                "rate {}: expected more than 0 and at most 1000 requests per second",
                self.rate
            ));
        }
        if !(0.0..=1.0).contains(&self.min_success) {
            return invalid(format!(
                "min-success {}: expected a share from 0 to 1",
                self.min_success
            ));
        }
        if self.drained.is_zero() || self.recovery.is_zero() {
            return invalid("the drained and recovery phases must last more than 0".into());
        }
        if self.target.is_empty() || self.target.contains(['/', '?', '#', ' ']) {
            return invalid(format!("{:?} is not a target name", self.target));
        }
        Ok(())
    }

    /// Checks that the route and the target exist before anything is drained.
    async fn preflight(&self, api: &Api) -> Result<(), DrillError> {
        let models = api
            .call(reqwest::Method::GET, "/v1/models", None)
            .await
            .map_err(DrillError::Server)?;
        let routes: Vec<&str> = list_of(&models, "id");
        if !routes.contains(&self.route.as_str()) {
            return Err(DrillError::Invalid(format!(
                "the server has no route {:?} (routes: {})",
                self.route,
                routes.join(", ")
            )));
        }
        let targets = api
            .call(reqwest::Method::GET, "/v1/holdfast/targets", None)
            .await
            .map_err(DrillError::Server)?;
        let names: Vec<&str> = list_of(&targets, "name");
        if !names.contains(&self.target.as_str()) {
            return Err(DrillError::Invalid(format!(
                "the server has no target {:?} (targets: {})",
                self.target,
                names.join(", ")
            )));
        }
        Ok(())
    }

    /// Sends requests at the drill's rate for `phase`'s length; with `until_served`,
    /// stops early once that target has served a request.
    async fn traffic(
        &self,
        api: &Api,
        clock: &Arc<dyn Clock>,
        phase: Phase,
        until_served: Option<&str>,
    ) -> Vec<Sent> {
        let length = match phase {
            Phase::Baseline => self.baseline,
            Phase::Drained => self.drained,
            Phase::Recovery => self.recovery,
        };
        let interval = Duration::from_secs_f64(1.0 / self.rate);
        let start = clock.now();
        let end = start + length;
        let mut next = start;
        let mut running = JoinSet::new();
        let mut done = Vec::new();
        while clock.now() < end {
            let (api, timer) = (api.clone(), Arc::clone(clock));
            let body = self.body();
            running.spawn(async move {
                let started = timer.now();
                let outcome = api
                    .chat(body)
                    .await
                    .map(|served| (served.target, served.cost_usd));
                Sent {
                    phase,
                    started,
                    latency: timer.now().saturating_duration_since(started),
                    outcome,
                }
            });
            while let Some(result) = running.try_join_next() {
                if let Ok(sent) = result {
                    done.push(sent);
                }
            }
            let back = until_served.is_some_and(|target| {
                done.iter()
                    .any(|s| matches!(&s.outcome, Ok((t, _)) if t == target))
            });
            if back {
                break;
            }
            next = next + interval;
            clock.sleep_until(next).await;
        }
        while let Some(result) = running.join_next().await {
            if let Ok(sent) = result {
                done.push(sent);
            }
        }
        done
    }

    fn body(&self) -> Value {
        json!({
            "model": self.route,
            "max_tokens": self.max_tokens,
            "messages": [{"role": "user", "content": "holdfast failover drill: reply with one word."}],
        })
    }

    fn report(&self, sent: &[Sent], restored_at: Instant) -> DrillReport {
        let phases: Vec<PhaseReport> = [Phase::Baseline, Phase::Drained, Phase::Recovery]
            .into_iter()
            .map(|phase| phase_report(phase, sent))
            .collect();
        let returned_after = sent
            .iter()
            .filter(|s| s.phase == Phase::Recovery)
            .filter(|s| matches!(&s.outcome, Ok((t, _)) if *t == self.target))
            .map(|s| (s.started + s.latency).saturating_duration_since(restored_at))
            .min();
        let [baseline, drained, _] = [&phases[0], &phases[1], &phases[2]];
        let target = &self.target;
        let mut checks = vec![
            Check {
                what: format!(
                    "the route answered before the drill: {}/{} (≥ {:.1}%)",
                    baseline.succeeded,
                    baseline.requests,
                    self.min_success * 100.0
                ),
                passed: baseline.success_rate() >= self.min_success,
            },
            Check {
                what: format!(
                    "the route answered while {target} was drained: {}/{} (≥ {:.1}%)",
                    drained.succeeded,
                    drained.requests,
                    self.min_success * 100.0
                ),
                passed: drained.requests > 0 && drained.success_rate() >= self.min_success,
            },
            Check {
                what: format!(
                    "{target} served nothing while drained ({} requests)",
                    drained.served(target)
                ),
                passed: drained.served(target) == 0,
            },
        ];
        if baseline.served(target) > 0 {
            checks.push(Check {
                what: match returned_after {
                    Some(after) => format!(
                        "{target} took traffic back {} after its restore",
                        crate::report::human(after)
                    ),
                    None => format!(
                        "{target} took no traffic back within {:.1} s of its restore",
                        self.recovery.as_secs_f64()
                    ),
                },
                passed: returned_after.is_some(),
            });
        }
        DrillReport {
            route: self.route.clone(),
            target: self.target.clone(),
            phases,
            returned_after,
            checks,
        }
    }
}

fn phase_report(phase: Phase, sent: &[Sent]) -> PhaseReport {
    let mut report = PhaseReport {
        phase,
        requests: 0,
        succeeded: 0,
        served_by: BTreeMap::new(),
        failures: BTreeMap::new(),
        p50: Duration::ZERO,
        p99: Duration::ZERO,
        cost_usd: 0.0,
    };
    let mut latencies = Vec::new();
    for s in sent.iter().filter(|s| s.phase == phase) {
        report.requests += 1;
        latencies.push(s.latency);
        match &s.outcome {
            Ok((target, cost)) => {
                report.succeeded += 1;
                *report.served_by.entry(target.clone()).or_default() += 1;
                report.cost_usd += cost;
            }
            Err(code) => *report.failures.entry(code.clone()).or_default() += 1,
        }
    }
    latencies.sort_unstable();
    let rank = |p: f64| {
        let i = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        latencies
            .get(i.saturating_sub(1).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    report.p50 = rank(50.0);
    report.p99 = rank(99.0);
    report
}
