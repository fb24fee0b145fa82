//! Running an experiment: traffic from start to end, the hypothesis checked on the
//! `before` phase, the method, the rollbacks (always), the hypothesis checked on the
//! `during` and `after` phases, and a verdict naming the first probe that deviated.
//!
//! The decision: probes are judged on what was recorded, after the run, not polled
//! while it runs. Every request is kept with its start time, and counters are read at
//! each phase boundary, so a verdict is a pure function of the record (and the HTML
//! report plots the same record). Only a failing `before` changes the course: as in
//! Chaos Toolkit, no turbulence is injected into a system that is not steady.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use holdfast_policy::{Clock, Instant};
use tokio::sync::watch;

use super::action::ActionLog;
use super::judge::{self, Counters, Judgement};
use super::spec::{Action, Experiment, Phase};
use super::traffic::Settled;
use crate::api::Api;

/// The longest one request of the experiment may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How often the live view reports.
const TICK: Duration = Duration::from_secs(1);

/// One request of the experiment's traffic.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When it was sent, since the experiment's start.
    pub at: Duration,
    /// How long its answer took.
    pub latency: Duration,
    /// Who served it and its cost, or the error code (a task accepted is served by
    /// `accepted`).
    pub outcome: Result<(String, f64), String>,
    /// The task it submitted, with workflow traffic.
    pub task: Option<String>,
}

/// When a phase ran, since the experiment's start.
#[derive(Debug, Clone, Copy)]
pub struct PhaseSpan {
    /// The phase.
    pub phase: Phase,
    /// Its start.
    pub start: Duration,
    /// Its end.
    pub end: Duration,
}

/// How an experiment ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Every probe held in every phase it names.
    Passed,
    /// A probe did not hold.
    Deviated {
        /// The probe's name.
        probe: String,
        /// The phase it deviated in.
        phase: Phase,
        /// When, since the start.
        at: Duration,
    },
    /// The steady state did not hold before the method; nothing was injected.
    NotSteady {
        /// The probe that did not hold.
        probe: String,
    },
    /// An action failed; the rollbacks ran.
    Failed(String),
}

impl Verdict {
    /// Whether the experiment passed.
    pub fn passed(&self) -> bool {
        matches!(self, Verdict::Passed)
    }
}

/// A finished experiment: the record and the verdict.
#[derive(Debug, Clone)]
pub struct Report {
    /// The experiment's title.
    pub title: String,
    /// The file it came from.
    pub file: String,
    /// When it started, Unix milliseconds.
    pub started_unix_ms: u64,
    /// The phases as they ran.
    pub phases: Vec<PhaseSpan>,
    /// Every request.
    pub samples: Vec<Sample>,
    /// The method's and the rollbacks' actions.
    pub actions: Vec<ActionLog>,
    /// When faults were in force (from the first action to the end of the rollbacks).
    pub fault_windows: Vec<(Duration, Duration)>,
    /// With workflow traffic: each accepted task's status at the end, and the steps
    /// committed twice when a probe asked.
    pub tasks: Settled,
    /// Each probe in each phase.
    pub judgements: Vec<Judgement>,
    /// The verdict.
    pub verdict: Verdict,
}

/// Where and how an experiment runs.
#[derive(Clone)]
pub struct Runner {
    /// holdfast's base URL.
    pub server: String,
    /// The client key, when the server has keys.
    pub key: Option<String>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Where the live view goes (one line at a time).
    pub progress: Arc<dyn Fn(&str) + Send + Sync>,
}

/// One run in progress: what the traffic module and this one share.
pub(super) struct Run<'a> {
    pub(super) runner: &'a Runner,
    pub(super) experiment: &'a Experiment,
    pub(super) api: Api,
    pub(super) start: Instant,
    pub(super) samples: Arc<Mutex<Vec<Sample>>>,
}

impl Runner {
    /// Runs `experiment` (read from `file`).
    pub async fn run(&self, experiment: &Experiment, file: &str) -> Result<Report, String> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        let api = Api::new(
            http,
            &self.server,
            self.key.clone(),
            &experiment.traffic.agent,
        );
        let run = Run {
            runner: self,
            experiment,
            api,
            start: self.clock.now(),
            samples: Arc::new(Mutex::new(Vec::new())),
        };
        Ok(run.go(file).await)
    }
}

impl Run<'_> {
    pub(super) fn since_start(&self) -> Duration {
        self.runner
            .clock
            .now()
            .saturating_duration_since(self.start)
    }

    async fn go(self, file: &str) -> Report {
        let started_unix_ms = self.runner.clock.unix_millis();
        let (stop, stopped) = watch::channel(false);
        let traffic = tokio::spawn(self.traffic(stopped));
        let probes = &self.experiment.steady_state.probes;
        let mut counters = vec![Counters::read(probes, &self.api).await];
        let mut phases = Vec::new();
        let mut actions = Vec::new();
        let before = self.experiment.phases.before.duration();
        phases.push(self.phase(Phase::Before, before).await);
        counters.push(Counters::read(probes, &self.api).await);
        // Judged at its end, as the gate before the method: a request still in flight
        // then belongs to the method's turbulence, not to the steady state.
        let before_judged = self.judge(&phases, &counters);
        let not_steady = before_judged
            .iter()
            .find(|j| !j.held)
            .map(|j| j.probe.clone());
        let steady = not_steady.is_none();

        let fault_start = self.since_start();
        let mut failure = None;
        let during_start = self.since_start();
        if steady {
            failure = self
                .actions("method", &self.experiment.method, &mut actions)
                .await;
        }
        let during_end = self.since_start();
        counters.push(Counters::read(probes, &self.api).await);
        let rollback_failure = self
            .actions("rollbacks", &self.experiment.rollbacks, &mut actions)
            .await;
        failure = failure.or(rollback_failure);
        let fault_end = self.since_start();
        let after = self.experiment.phases.after.duration();
        let after_start = self.since_start();
        if steady {
            phases.push(PhaseSpan {
                phase: Phase::During,
                start: during_start,
                end: during_end,
            });
            self.pause(after, Phase::After).await;
            phases.push(PhaseSpan {
                phase: Phase::After,
                start: after_start,
                end: self.since_start(),
            });
            counters.push(Counters::read(probes, &self.api).await);
        }
        stop.send_replace(true);
        let _ = traffic.await;
        let mut samples = std::mem::take(&mut *lock(&self.samples));
        samples.sort_by_key(|s| s.at);
        let tasks = self.settle(&samples).await;
        let mut judgements = before_judged;
        judgements.extend(
            judge::all(probes, &phases, &counters, &samples, &tasks)
                .into_iter()
                .filter(|j| j.phase != Phase::Before || is_on_tasks(probes, &j.probe)),
        );
        let verdict = verdict(not_steady, failure, &judgements);
        Report {
            title: self.experiment.title.clone(),
            file: file.to_owned(),
            started_unix_ms,
            phases,
            samples,
            actions,
            fault_windows: if steady {
                vec![(fault_start, fault_end)]
            } else {
                Vec::new()
            },
            tasks,
            judgements,
            verdict,
        }
    }

    /// Judges the phases so far, but for the probes on tasks: those wait for the
    /// tasks to finish, at the end.
    fn judge(&self, phases: &[PhaseSpan], counters: &[Counters]) -> Vec<Judgement> {
        let samples = lock(&self.samples).clone();
        let probes: Vec<_> = self
            .experiment
            .steady_state
            .probes
            .iter()
            .filter(|p| !p.get_ref().kind.on_tasks())
            .cloned()
            .collect();
        let counters: Vec<Counters> = counters
            .iter()
            .map(|c| c.off_tasks(&self.experiment.steady_state.probes))
            .collect();
        judge::all(&probes, phases, &counters, &samples, &Settled::default())
    }

    async fn phase(&self, phase: Phase, length: Duration) -> PhaseSpan {
        let start = self.since_start();
        self.pause(length, phase).await;
        PhaseSpan {
            phase,
            start,
            end: self.since_start(),
        }
    }

    /// Runs `list`'s actions in order; the first failure stops the list.
    async fn actions(
        &self,
        list: &str,
        actions: &[toml::Spanned<Action>],
        log: &mut Vec<ActionLog>,
    ) -> Option<String> {
        for action in actions {
            let action = action.get_ref();
            let at = self.since_start();
            (self.runner.progress)(&format!(
                "[{:>6.1}s] {list}: {}",
                at.as_secs_f64(),
                action.describe()
            ));
            let result = match action.action {
                super::spec::ActionKind::Wait => {
                    let length = action.duration.map(|d| d.duration()).unwrap_or_default();
                    self.pause(length, Phase::During).await;
                    Ok(())
                }
                _ => action.apply(&self.api).await,
            };
            let failed = result.as_ref().err().cloned();
            log.push(ActionLog {
                list: list.to_owned(),
                what: action.describe(),
                at,
                done: self.since_start(),
                error: failed.clone(),
            });
            if let Some(error) = failed {
                (self.runner.progress)(&format!("  {list} failed: {error}"));
                return Some(format!("{list}: {}: {error}", action.describe()));
            }
        }
        None
    }

    /// Waits `length`, reporting the traffic of the last second as it goes.
    async fn pause(&self, length: Duration, phase: Phase) {
        let clock = &self.runner.clock;
        let end = clock.now() + length;
        loop {
            let now = clock.now();
            if now >= end {
                return;
            }
            let step = end.saturating_duration_since(now).min(TICK);
            clock.sleep_until(now + step).await;
            let at = self.since_start();
            let line = {
                let samples = lock(&self.samples);
                let recent = samples.iter().filter(|s| s.at + TICK >= at);
                judge::summary(recent)
            };
            (self.runner.progress)(&format!(
                "[{:>6.1}s] {:<7} {line}",
                at.as_secs_f64(),
                phase.name()
            ));
        }
    }
}

/// Whether the probe named `name` judges tasks (and so is judged at the end only).
fn is_on_tasks(probes: &[toml::Spanned<super::spec::Probe>], name: &str) -> bool {
    probes
        .iter()
        .any(|p| p.get_ref().name == name && p.get_ref().kind.on_tasks())
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The verdict: not steady before the method, else the first failure of an action,
/// else the earliest deviation.
fn verdict(
    not_steady: Option<String>,
    failure: Option<String>,
    judgements: &[Judgement],
) -> Verdict {
    if let Some(probe) = not_steady {
        return Verdict::NotSteady { probe };
    }
    if let Some(failure) = failure {
        return Verdict::Failed(failure);
    }
    match judgements
        .iter()
        .filter(|j| !j.held)
        .min_by_key(|j| (j.deviated_at, j.phase))
    {
        Some(j) => Verdict::Deviated {
            probe: j.probe.clone(),
            phase: j.phase,
            at: j.deviated_at,
        },
        None => Verdict::Passed,
    }
}
