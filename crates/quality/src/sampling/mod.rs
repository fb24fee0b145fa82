//! Production scoring: a share of a task type's answers (a route's chats, streamed or
//! not, or a workflow's finished tasks) is sampled and scored in the background by its
//! suite's `[production]` graders.
//!
//! The decision that shapes it: the request path does two cheap things and nothing
//! else. [`Sampler::wants`] draws whether this answer is sampled (a counter through a
//! mixing function: no lock, no random source); [`Sampler::offer`] hands the exchange
//! to a bounded queue without waiting, and a full queue drops it (counted). Grading,
//! the judge's calls and the store's write happen on the [`Scorer`]'s own task, after
//! the answer was sent, so a sampled request is exactly as fast as another one, and a
//! slow judge or store fills the queue and drops samples rather than slowing traffic.
//! The scorer runs on a thread of its own at the lowest CPU priority
//! ([`Scorer::spawn_background`]), so on a busy machine scoring waits, answers do not.
//! It works in batches: once woken by an exchange it lets more gather for
//! [`GATHER`] (offers made meanwhile wake nobody), grades them, and keeps them in one
//! store write, so at a high sampling rate its wake-ups and commits stay a few per
//! second instead of one per answer, sharing the machine with the gateway.
//! The judge's cost per hour is bounded per task type (`budget.rs`); a sample arriving
//! once it is spent is kept unscored (`skipped_budget`). Samples hold users' inputs, so
//! the scorer deletes those older than the task type's retention period.

mod background;
mod budget;
mod exposition;
mod promote;
mod score;
mod stats;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use holdfast_policy::Clock;
use holdfast_store::{Store, Task};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::subject::{Answer, Subject};
use crate::suite::{Suite, TaskType};
pub use promote::{promote, promoted_case, sample_json};
pub use stats::{RECENT, TaskStats};

/// How many exchanges wait for scoring at most, by default.
pub const QUEUE: usize = 1024;

/// How long the scorer lets exchanges gather after the first one of a batch.
pub const GATHER: Duration = Duration::from_millis(100);

/// The most exchanges scored and kept as one batch.
const BATCH: usize = 128;

/// How often samples past their retention period are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// How one task type is sampled.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The suite whose `[production]` graders and judge score the samples; its task
    /// is the task type sampled.
    pub suite: Arc<Suite>,
    /// The share of answers sampled, in [0, 1].
    pub share: f64,
    /// The judge's budget per hour, in US dollars.
    pub budget_per_hour: f64,
    /// How long samples are kept.
    pub retention: Duration,
}

impl Plan {
    /// The plan of `task_type` (a route's or a workflow's name): its suite loaded from
    /// `suite`, which must run against that route or workflow and have `[production]`
    /// graders; the refusal says why, naming the file.
    pub fn load(
        task_type: &str,
        suite: &Path,
        share: f64,
        budget_per_hour: f64,
        retention: Duration,
    ) -> Result<Plan, String> {
        let at = suite.display();
        let suite = Suite::load(suite).map_err(|e| format!("{at}: {e}"))?;
        let runs_against = match &suite.task {
            TaskType::Route { route } => route == task_type,
            TaskType::Workflow { workflow, .. } => workflow == task_type,
        };
        if !runs_against {
            return Err(format!(
                "{at}: the suite's [task] is not route or workflow {task_type:?}"
            ));
        }
        if suite.production.is_empty() {
            return Err(format!("{at}: the suite has no [production] graders"));
        }
        Ok(Plan {
            suite: Arc::new(suite),
            share,
            budget_per_hour,
            retention,
        })
    }

    /// Checks that the task type is served here: a route among `routes`, or a
    /// workflow among `workflows`.
    pub fn check_served(&self, routes: &[&str], workflows: &[&str]) -> Result<(), String> {
        let served = match &self.suite.task {
            TaskType::Route { route } => routes.contains(&route.as_str()),
            TaskType::Workflow { workflow, .. } => workflows.contains(&workflow.as_str()),
        };
        if served {
            return Ok(());
        }
        let what = self.suite.task.label();
        Err(format!("no {what} is configured or registered"))
    }

    /// The task type's name: the suite's route (or workflow).
    pub fn task_type(&self) -> &str {
        match &self.suite.task {
            TaskType::Route { route } => route,
            TaskType::Workflow { workflow, .. } => workflow,
        }
    }
}

/// One finished production exchange, as the gateway saw it.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The caller's tenant.
    pub tenant: String,
    /// The task type (the route asked, or the task's workflow).
    pub task_type: String,
    /// The gateway's request id, or the task's id.
    pub request_id: String,
    /// The request in the OpenAI chat format, without `model` and `stream`; or the
    /// task's input.
    pub input: Value,
    /// What was answered.
    pub answer: Answer,
    /// How long the client waited.
    pub latency: Duration,
    /// When the answer was sent, in Unix milliseconds.
    pub at_ms: u64,
}

impl Exchange {
    /// A chat request as a sample keeps it: without `model` and `stream`.
    pub fn chat_input(request: &impl serde::Serialize) -> Value {
        let mut input = serde_json::to_value(request).unwrap_or(Value::Null);
        if let Some(fields) = input.as_object_mut() {
            fields.remove("model");
            fields.remove("stream");
        }
        input
    }

    /// A task that succeeded in `latency`, as a sample of its workflow; `None` for
    /// the suites' own tasks (a gate's or an evaluation's), which are not production.
    pub fn of_task(task: Task, latency: Duration, at_ms: u64) -> Option<Exchange> {
        let evaluated = task
            .idempotency_key
            .as_deref()
            .is_some_and(|k| k.starts_with("eval/"));
        if evaluated || task.tenant.starts_with(crate::rollout::TASK_TENANT_PREFIX) {
            return None;
        }
        let output = task.output.unwrap_or(Value::Null);
        Some(Exchange {
            answer: Answer::from_output(output, task.cost_usd, &task.task_id),
            tenant: task.tenant,
            task_type: task.workflow,
            request_id: task.task_id,
            input: task.input,
            latency,
            at_ms,
        })
    }
}

/// The request path's side: decides and hands over.
pub struct Sampler {
    plans: HashMap<String, Plan>,
    queue: mpsc::Sender<Exchange>,
    counts: Arc<stats::Counts>,
    draws: AtomicU64,
}

/// The background side: grades, keeps and forgets samples.
pub struct Scorer {
    plans: HashMap<String, Plan>,
    queue: mpsc::Receiver<Exchange>,
    counts: Arc<stats::Counts>,
}

impl Sampler {
    /// A sampler for `plans` (one per task type) with a queue of `capacity` (at least
    /// 1), and the scorer that empties it; `seed` starts the draws.
    pub fn new(plans: Vec<Plan>, capacity: usize, seed: u64) -> (Sampler, Scorer) {
        let plans: HashMap<String, Plan> = plans
            .into_iter()
            .map(|p| (p.task_type().to_owned(), p))
            .collect();
        let counts = Arc::new(stats::Counts::new(plans.keys().map(String::as_str)));
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let sampler = Sampler {
            plans: plans.clone(),
            queue: tx,
            counts: Arc::clone(&counts),
            draws: AtomicU64::new(seed),
        };
        let scorer = Scorer {
            plans,
            queue: rx,
            counts,
        };
        (sampler, scorer)
    }

    /// Whether this answer of `task_type` is sampled.
    pub fn wants(&self, task_type: &str) -> bool {
        let Some(plan) = self.plans.get(task_type) else {
            return false;
        };
        if plan.share <= 0.0 {
            return false;
        }
        let draw = mix(self.draws.fetch_add(1, Ordering::Relaxed));
        // The top 53 bits as a fraction in [0, 1).
        let fraction = (draw >> 11) as f64 / (1u64 << 53) as f64;
        fraction < plan.share
    }

    /// Queues `exchange` for scoring without waiting; a full queue drops it.
    pub fn offer(&self, exchange: Exchange) {
        let task = exchange.task_type.clone();
        self.counts.update(&task, |s| s.sampled += 1);
        if self.queue.try_send(exchange).is_err() {
            self.counts.update(&task, |s| s.dropped += 1);
        }
    }

    /// Every task type's counts, by name.
    pub fn stats(&self) -> Vec<(String, TaskStats)> {
        self.counts.snapshot()
    }

    /// The suite that scores `task_type`, if it is sampled.
    pub fn suite(&self, task_type: &str) -> Option<&Arc<Suite>> {
        self.plans.get(task_type).map(|p| &p.suite)
    }
}

impl Scorer {
    /// Scores queued exchanges until every [`Sampler`] is dropped, judging through
    /// `subject` and keeping samples in `store`; deletes samples past their retention
    /// period once a minute.
    pub async fn run(
        mut self,
        store: Arc<dyn Store>,
        subject: Arc<dyn Subject>,
        clock: Arc<dyn Clock>,
    ) {
        let mut budgets: HashMap<String, budget::Budget> = self
            .plans
            .iter()
            .map(|(task, plan)| (task.clone(), budget::Budget::new(plan.budget_per_hour)))
            .collect();
        let mut next_purge = clock.now();
        loop {
            if clock.now() >= next_purge {
                purge(&*store, &self.plans, clock.unix_millis()).await;
                next_purge = clock.now() + PURGE_EVERY;
            }
            let wait = clock.sleep_until(next_purge);
            let first = tokio::select! {
                received = self.queue.recv() => match received {
                    Some(exchange) => exchange,
                    None => return,
                },
                () = wait => continue,
            };
            let mut batch = vec![first];
            self.drain_into(&mut batch);
            if batch.len() < BATCH {
                clock.sleep_until(clock.now() + GATHER).await;
                self.drain_into(&mut batch);
            }
            let mut samples = Vec::with_capacity(batch.len());
            for exchange in batch {
                let (Some(plan), Some(budget)) = (
                    self.plans.get(&exchange.task_type),
                    budgets.get_mut(&exchange.task_type),
                ) else {
                    continue;
                };
                let ctx = score::Context {
                    plan,
                    subject: &*subject,
                    counts: &self.counts,
                    now_ms: clock.unix_millis(),
                };
                samples.push(score::score(&ctx, budget, exchange).await);
            }
            score::keep(&*store, &self.counts, samples).await;
        }
    }

    /// Moves what is queued into `batch`, up to [`BATCH`], without waiting.
    fn drain_into(&mut self, batch: &mut Vec<Exchange>) {
        while batch.len() < BATCH {
            match self.queue.try_recv() {
                Ok(exchange) => batch.push(exchange),
                Err(_) => return,
            }
        }
    }
}

async fn purge(store: &dyn Store, plans: &HashMap<String, Plan>, now_ms: u64) {
    for (task, plan) in plans {
        let retention = u64::try_from(plan.retention.as_millis()).unwrap_or(u64::MAX);
        let before = now_ms.saturating_sub(retention);
        if let Err(e) = store.delete_quality_samples(task, before).await {
            tracing::warn!(task_type = %task, error = %e, "samples past their retention could not be deleted");
        }
    }
}

/// SplitMix64's finaliser: consecutive counters give well-spread draws.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
