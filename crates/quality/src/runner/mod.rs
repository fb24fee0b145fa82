//! The runner: a suite's cases through a subject, concurrently, seeded, resumable.
//!
//! The decisions that shape it:
//! - Seeded: the cases are shuffled (and sampled) with the run's seed, so the same
//!   seed runs the same cases in the same order, and a resumed run plans exactly the
//!   cases it planned at its start (the seed and sample are stored with the run and
//!   win over what the caller passes).
//! - Resumable: each case's result is written to the store the moment the case
//!   finishes, from the task that ran it; an interrupted run loses only the cases in
//!   flight, and running it again under the same id skips every case recorded.
//! - Concurrent within a limit: at most `concurrency` cases are in flight, each on its
//!   own tokio task (an in-process subject does real work per call, which must spread
//!   over the runtime's threads).
//! - Stoppable: `stop` completing (Ctrl-C) cancels the cases in flight and marks the
//!   run interrupted; a failure of the store ends the run the same way, with the error.

mod case;

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use holdfast_policy::{Clock, Rng};
use holdfast_store::{EvalRun, EvalRunStart, EvalStatus, NewEvalRun, Store, StoreError};
use tokio::task::JoinSet;

use crate::dataset::Case;
use crate::duration;
use crate::error::QualityError;
use crate::names;
use crate::report::Report;
use crate::result::{CaseResult, Settings};
use crate::subject::Subject;
use crate::suite::{RunSettings, Suite};

/// One run of a suite.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The run's id, its tenant's own: a new id starts a run, a known one resumes it.
    pub run_id: String,
    /// The tenant the run belongs to.
    pub tenant: String,
    /// How it runs: the suite's `[run]` and the caller's overrides. A resumed run keeps
    /// its stored seed and sample.
    pub settings: RunSettings,
    /// The run of the same tenant to compare with.
    pub baseline: Option<String>,
}

impl RunSpec {
    /// A run of `suite` with its own settings and no baseline.
    pub fn new(suite: &Suite, run_id: &str, tenant: &str) -> RunSpec {
        RunSpec {
            run_id: run_id.to_owned(),
            tenant: tenant.to_owned(),
            settings: suite.run.clone(),
            baseline: None,
        }
    }
}

/// Told about a run as it goes (a progress bar).
pub trait Progress: Send + Sync {
    /// The run started or resumed: `planned` cases, `done` of them already recorded.
    fn started(&self, run: &EvalRun, planned: usize, done: usize);
    /// A case finished (and is recorded).
    fn finished(&self, result: &CaseResult);
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn started(&self, _run: &EvalRun, _planned: usize, _done: usize) {}
    fn finished(&self, _result: &CaseResult) {}
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The run as stored at its end.
    pub run: EvalRun,
    /// Whether it resumed an earlier start.
    pub resumed: bool,
    /// Cases recorded before this start (skipped).
    pub skipped: usize,
    /// The results of every planned case recorded so far, this start's and earlier.
    pub results: Vec<CaseResult>,
    /// The report, when every planned case is recorded; `None` when interrupted.
    pub report: Option<Report>,
}

impl RunOutcome {
    /// Whether it stopped before every case ran.
    pub fn interrupted(&self) -> bool {
        self.report.is_none()
    }
}

/// Runs suites through one subject into one store.
pub struct Runner {
    store: Arc<dyn Store>,
    subject: Arc<dyn Subject>,
    clock: Arc<dyn Clock>,
}

impl Runner {
    /// A runner calling `subject`, recording in `store`, timing with `clock`.
    pub fn new(store: Arc<dyn Store>, subject: Arc<dyn Subject>, clock: Arc<dyn Clock>) -> Runner {
        Runner {
            store,
            subject,
            clock,
        }
    }

    /// Runs (or resumes) `spec` of `suite` until every planned case is recorded or
    /// `stop` completes, and, when all are, reports on it and stores the report.
    pub async fn run(
        &self,
        suite: &Suite,
        spec: RunSpec,
        progress: &dyn Progress,
        stop: impl Future<Output = ()>,
    ) -> Result<RunOutcome, QualityError> {
        check_spec(&spec)?;
        if let Some(baseline) = &spec.baseline {
            self.load_run(&spec.tenant, baseline).await?;
        }
        let started = self.start(suite, &spec).await?;
        let resumed = matches!(started, EvalRunStart::Resumed(_));
        let run = started.run().clone();
        let stored = Settings::of(&run)?;
        let planned = plan(&suite.cases, stored.seed, stored.sample);
        let remaining = self.remaining(&run, &planned).await?;
        let skipped = planned.len() - remaining.len();
        progress.started(&run, planned.len(), skipped);
        let ctx = Arc::new(case::Context {
            subject: Arc::clone(&self.subject),
            clock: Arc::clone(&self.clock),
            task: suite.task.clone(),
            judge: suite.judge.clone(),
            timeout: spec.settings.timeout,
            case_score: stored.thresholds.case_score,
            run_id: spec.run_id.clone(),
        });
        let executed = tokio::select! {
            executed = self.execute(&ctx, &spec, remaining, progress) => executed,
            () = stop => Err(None),
        };
        let baseline = spec.baseline.clone().or(stored.baseline.clone());
        match executed {
            Ok(()) => {
                self.conclude(run, planned, baseline, resumed, skipped)
                    .await
            }
            Err(failure) => {
                let run = self.interrupt(&run).await?;
                if let Some(error) = failure {
                    return Err(error.into());
                }
                let results = self.results(&run, &planned).await?;
                Ok(RunOutcome {
                    run,
                    resumed,
                    skipped,
                    results,
                    report: None,
                })
            }
        }
    }

    /// The planned cases not yet recorded in `run`, in order.
    async fn remaining(&self, run: &EvalRun, planned: &[&Case]) -> Result<Vec<Case>, QualityError> {
        let done: HashSet<String> = self
            .store
            .eval_results(&run.tenant, &run.run_id)
            .await?
            .into_iter()
            .map(|r| r.case_id)
            .collect();
        Ok(planned
            .iter()
            .filter(|c| !done.contains(&c.id))
            .map(|c| (*c).clone())
            .collect())
    }

    /// Marks `run` interrupted: resumable, with what it recorded.
    async fn interrupt(&self, run: &EvalRun) -> Result<EvalRun, QualityError> {
        let now = self.clock.unix_millis();
        let status = EvalStatus::Interrupted;
        Ok(self
            .store
            .finish_eval_run(&run.tenant, &run.run_id, status, None, now)
            .await?)
    }

    async fn start(&self, suite: &Suite, spec: &RunSpec) -> Result<EvalRunStart, QualityError> {
        let settings = Settings {
            task: suite.task.clone(),
            judge: suite.judge.clone(),
            seed: spec.settings.seed,
            sample: spec.settings.sample,
            concurrency: spec.settings.concurrency,
            timeout_ms: duration::millis(spec.settings.timeout),
            baseline: spec.baseline.clone(),
            thresholds: suite.thresholds.clone(),
        };
        let planned = plan(&suite.cases, settings.seed, settings.sample).len();
        let new = NewEvalRun {
            run_id: spec.run_id.clone(),
            tenant: spec.tenant.clone(),
            suite: suite.name.clone(),
            suite_sha256: suite.digest.clone(),
            subject: self.subject.describe(),
            settings: settings.to_value(),
            cases: u32::try_from(planned).unwrap_or(u32::MAX),
        };
        let now = self.clock.unix_millis();
        Ok(self.store.start_eval_run(new, now).await?)
    }

    /// Runs `cases`, at most `concurrency` at once, each recorded as it finishes.
    /// `Err(Some(e))`: the store failed.
    async fn execute(
        &self,
        ctx: &Arc<case::Context>,
        spec: &RunSpec,
        cases: Vec<Case>,
        progress: &dyn Progress,
    ) -> Result<(), Option<StoreError>> {
        let mut pending = cases.into_iter();
        let mut running = JoinSet::new();
        loop {
            while running.len() < spec.settings.concurrency {
                let Some(case) = pending.next() else { break };
                let ctx = Arc::clone(ctx);
                let store = Arc::clone(&self.store);
                let (tenant, run_id) = (spec.tenant.clone(), spec.run_id.clone());
                running.spawn(async move {
                    let result = case::run(&ctx, &case).await;
                    let now = ctx.clock.unix_millis();
                    match store
                        .record_eval_result(&tenant, &run_id, result.to_store(), now)
                        .await
                    {
                        // Another runner of the same run recorded it first: it counts once.
                        Ok(()) | Err(StoreError::Conflict { .. }) => Ok(result),
                        Err(e) => Err(e),
                    }
                });
            }
            let Some(joined) = running.join_next().await else {
                return Ok(());
            };
            match joined {
                Ok(Ok(result)) => progress.finished(&result),
                Ok(Err(e)) => return Err(Some(e)),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => return Err(None),
            }
        }
    }

    /// Every planned case is recorded: build the report, store it with the run.
    async fn conclude(
        &self,
        run: EvalRun,
        planned: Vec<&Case>,
        baseline: Option<String>,
        resumed: bool,
        skipped: usize,
    ) -> Result<RunOutcome, QualityError> {
        let results = self.results(&run, &planned).await?;
        let baseline = match &baseline {
            Some(id) => {
                let base = self.load_run(&run.tenant, id).await?;
                let base_results = self.results(&base, &[]).await?;
                Some((base, base_results))
            }
            None => None,
        };
        let now = self.clock.unix_millis();
        let mut report = Report::build(
            &run,
            &results,
            baseline.as_ref().map(|(r, res)| (r, res.as_slice())),
        )?;
        report.finished_at_ms = now;
        let summary = serde_json::to_value(&report).ok();
        let run = self
            .store
            .finish_eval_run(&run.tenant, &run.run_id, EvalStatus::Finished, summary, now)
            .await?;
        Ok(RunOutcome {
            run,
            resumed,
            skipped,
            results,
            report: Some(report),
        })
    }

    /// A stored run of `tenant`.
    async fn load_run(&self, tenant: &str, run_id: &str) -> Result<EvalRun, QualityError> {
        self.store
            .get_eval_run(tenant, run_id)
            .await?
            .ok_or_else(|| QualityError::NoSuchRun {
                tenant: tenant.to_owned(),
                run_id: run_id.to_owned(),
            })
    }

    /// `run`'s recorded results, only those of `planned` cases when it is not empty.
    async fn results(
        &self,
        run: &EvalRun,
        planned: &[&Case],
    ) -> Result<Vec<CaseResult>, QualityError> {
        let ids: HashSet<&str> = planned.iter().map(|c| c.id.as_str()).collect();
        let stored = self.store.eval_results(&run.tenant, &run.run_id).await?;
        stored
            .into_iter()
            .filter(|r| ids.is_empty() || ids.contains(r.case_id.as_str()))
            .map(|r| CaseResult::from_store(&run.run_id, r))
            .collect()
    }
}

fn check_spec(spec: &RunSpec) -> Result<(), QualityError> {
    let bad = |field, reason: String| Err(QualityError::Setting { field, reason });
    if let Err(e) = names::check(&spec.run_id) {
        return bad("run_id", e);
    }
    if let Err(e) = names::check(&spec.tenant) {
        return bad("tenant", e);
    }
    if let Some(Err(e)) = spec.baseline.as_deref().map(names::check) {
        return bad("baseline", e);
    }
    if spec.baseline.as_deref() == Some(spec.run_id.as_str()) {
        return bad("baseline", "a run cannot be its own baseline".to_owned());
    }
    if !(1..=1024).contains(&spec.settings.concurrency) {
        return bad("concurrency", "must be 1..=1024".to_owned());
    }
    if spec.settings.sample == Some(0) {
        return bad("sample", "must be at least 1".to_owned());
    }
    Ok(())
}

/// The cases to run, in order: shuffled with `seed` (Fisher–Yates), the first `sample`.
pub(crate) fn plan(cases: &[Case], seed: u64, sample: Option<usize>) -> Vec<&Case> {
    let mut order: Vec<&Case> = cases.iter().collect();
    let mut rng = Rng::seeded(seed);
    for i in (1..order.len()).rev() {
        let j = rng.range_inclusive(0, i as u64) as usize;
        order.swap(i, j);
    }
    if let Some(n) = sample {
        order.truncate(n);
    }
    order
}
