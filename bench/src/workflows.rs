//! The workflow engine driven in process: N tasks of a 3-step workflow whose steps do
//! no work of their own, from the first submission to the last task succeeded.
//!
//! The steps are zero sleeps, which complete in process and commit a step result each,
//! so the figure is exactly what a durable step costs the engine and the store. The
//! store is wrapped in a [`CountedStore`], so a slow run says which calls it made per
//! step and how long they waited; the process's and the machine's CPU time say whether
//! the run was bound by CPU or by waiting on the disk.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, bail};
use holdfast_engine::{Engine, EventSink, Settings, Submission, TaskEvent, TaskEventKind};
use holdfast_policy::SystemClock;
use holdfast_store::Store;
use serde_json::json;
use tokio::sync::watch;

use crate::counted::{CountedStore, Tally};
use crate::measure::{Stopwatch, pause};

/// The workflow every task runs.
pub const WORKFLOW: &str = "bench-3-steps";

/// Steps per workflow.
pub const STEPS: usize = 3;

/// The longest a run may take before it is called stuck.
const STUCK: Duration = Duration::from_secs(600);

/// The 3-step workflow of zero sleeps.
pub fn definition(step_sleep: &str) -> serde_json::Value {
    json!({
        "name": WORKFLOW,
        "version": 1,
        "steps": [
            {"name": "plan", "kind": "sleep", "duration": step_sleep},
            {"name": "call", "kind": "sleep", "duration": step_sleep},
            {"name": "answer", "kind": "sleep", "duration": step_sleep},
        ],
    })
}

/// How to run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Tasks to submit.
    pub tasks: usize,
    /// Engines (schedulers) on the one store, 1..=4.
    pub engines: usize,
    /// Concurrent submitters.
    pub submitters: usize,
    /// Each engine's `max_concurrent_tasks`.
    pub max_concurrent: usize,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Tasks that succeeded.
    pub succeeded: u64,
    /// Step results committed (from the engines' events).
    pub steps: u64,
    /// Tasks that failed (should be none).
    pub failed: u64,
    /// From the first submission to the last task succeeded.
    pub elapsed: Duration,
    /// From the first submission to the last one acknowledged.
    pub submitting: Duration,
    /// CPU time of this process over the run.
    pub cpu: Duration,
    /// The machine's busy fraction over the run (all cores, 0..=1).
    pub machine_busy: f64,
    /// Store calls during the run.
    pub tallies: BTreeMap<&'static str, Tally>,
}

impl Measured {
    /// Durable steps per second.
    pub fn steps_per_second(&self) -> f64 {
        self.steps as f64 / self.elapsed.as_secs_f64()
    }

    /// Workflows per second.
    pub fn workflows_per_second(&self) -> f64 {
        self.succeeded as f64 / self.elapsed.as_secs_f64()
    }
}

/// Counts the engines' events; the time of the last success.
#[derive(Default)]
struct Counter {
    steps: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    start: OnceLock<Stopwatch>,
    last_done_nanos: AtomicU64,
}

impl Counter {
    fn sink(self: &Arc<Self>) -> EventSink {
        let me = self.clone();
        Arc::new(move |e: &TaskEvent| match &e.kind {
            TaskEventKind::StepSucceeded { .. } => {
                me.steps.fetch_add(1, Ordering::Relaxed);
            }
            TaskEventKind::Succeeded { .. } | TaskEventKind::Failed { .. } => {
                if matches!(e.kind, TaskEventKind::Succeeded { .. }) {
                    me.succeeded.fetch_add(1, Ordering::Relaxed);
                } else {
                    me.failed.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(start) = me.start.get() {
                    let nanos = start.elapsed().as_nanos() as u64;
                    me.last_done_nanos.fetch_max(nanos, Ordering::Relaxed);
                }
            }
            _ => {}
        })
    }

    fn done(&self) -> u64 {
        self.succeeded.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }
}

/// Registers the workflow, starts `plan.engines` engines on `store`, submits
/// `plan.tasks` tasks from `plan.submitters` submitters, and waits for every task.
pub async fn run(store: Arc<CountedStore>, plan: Plan) -> anyhow::Result<Measured> {
    let counter = Arc::new(Counter::default());
    let clock = Arc::new(SystemClock::new());
    let dyn_store: Arc<dyn Store> = store.clone();
    let engines: Vec<Engine> = (0..plan.engines.max(1))
        .map(|i| {
            let settings = Settings {
                node_id: format!("bench-node-{i}"),
                max_concurrent_tasks: plan.max_concurrent,
                ..Settings::default()
            };
            Engine::new(
                dyn_store.clone(),
                clock.clone(),
                settings,
                None,
                counter.sink(),
            )
        })
        .collect();
    engines[0]
        .register(definition("0ms"))
        .await
        .context("registering the workflow")?;
    let (stop, stopped) = watch::channel(false);
    let schedulers: Vec<_> = engines
        .iter()
        .map(|engine| {
            let (engine, mut stopped) = (engine.clone(), stopped.clone());
            tokio::spawn(async move {
                engine
                    .run(async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                    .await;
            })
        })
        .collect();
    // Let the schedulers start (their recovery scan) before the clock starts.
    pause(Duration::from_millis(50)).await;
    store.reset();
    let cpu_before = crate::cpu::process()?;
    let machine_before = crate::cpu::machine()?;
    let start = Stopwatch::start();
    let _ = counter.start.set(start);
    submit_all(&engines, plan).await?;
    let submitting = start.elapsed();
    while counter.done() < plan.tasks as u64 {
        if start.elapsed() > STUCK {
            bail!(
                "stuck: {} of {} tasks done after {STUCK:?}",
                counter.done(),
                plan.tasks
            );
        }
        pause(Duration::from_millis(2)).await;
    }
    let elapsed = Duration::from_nanos(counter.last_done_nanos.load(Ordering::Relaxed));
    let cpu = crate::cpu::process()?.saturating_sub(cpu_before);
    let machine_busy = crate::cpu::machine()?.busy_since(&machine_before);
    let tallies = store.tallies();
    let _ = stop.send(true);
    for s in schedulers {
        s.await.context("a scheduler panicked")?;
    }
    Ok(Measured {
        succeeded: counter.succeeded.load(Ordering::Relaxed),
        steps: counter.steps.load(Ordering::Relaxed),
        failed: counter.failed.load(Ordering::Relaxed),
        elapsed,
        submitting,
        cpu,
        machine_busy,
        tallies,
    })
}

/// Submits `plan.tasks` tasks, spread over the engines, from concurrent submitters.
async fn submit_all(engines: &[Engine], plan: Plan) -> anyhow::Result<()> {
    let submitters = plan.submitters.max(1);
    let handles: Vec<_> = (0..submitters)
        .map(|s| {
            let engine = engines[s % engines.len()].clone();
            let mine = (s..plan.tasks).step_by(submitters).collect::<Vec<_>>();
            tokio::spawn(async move {
                for i in mine {
                    engine
                        .submit(Submission {
                            tenant: "bench".into(),
                            workflow: WORKFLOW.to_string(),
                            version: None,
                            input: json!({"n": i}),
                            idempotency_key: None,
                            traceparent: None,
                        })
                        .await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for h in handles {
        h.await.context("a submitter panicked")??;
    }
    Ok(())
}

/// Submissions per second alone: `tasks` tasks from `submitters` submitters into a
/// store no scheduler runs on.
pub async fn submissions_per_second(
    store: Arc<dyn Store>,
    tasks: usize,
    submitters: usize,
) -> anyhow::Result<f64> {
    let engine = Engine::new(
        store,
        Arc::new(SystemClock::new()),
        Settings::default(),
        None,
        Arc::new(|_: &TaskEvent| {}),
    );
    engine.register(definition("0ms")).await?;
    let plan = Plan {
        tasks,
        engines: 1,
        submitters,
        max_concurrent: 1,
    };
    let start = Stopwatch::start();
    submit_all(&[engine], plan).await?;
    Ok(tasks as f64 / start.elapsed().as_secs_f64())
}
