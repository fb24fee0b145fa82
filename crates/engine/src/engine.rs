//! [`Engine`]: the API the server and the CLI use, and the scheduler that runs tasks.
//!
//! The decision that shapes it: the store is the only shared state. The scheduler
//! claims due tasks from the store with a lease (any number of nodes can do the same
//! against one PostgreSQL database), runs each to its next rest point, and polls again;
//! an API call on this node (a submission, a worker's result, a person's answer) only
//! nudges the local scheduler so that work starts without waiting for the next poll.
//! A node that dies simply stops renewing its leases; another node claims its tasks
//! once they expire and resumes them from their last checkpoint.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use holdfast_policy::{Clock, Rng};
use holdfast_store::{FencingToken, NewTask, NewWorkflow, Store, Submitted, Task, WorkflowDef};
use serde_json::Value;
use tokio::sync::Notify;

use crate::attempt::{Llm, Runners};
use crate::definition::{self, Workflow};
use crate::egress::Rules;
use crate::error::{EngineError, Problem};
use crate::event::{EventSink, TaskEvent, TaskEventKind};
use crate::lease::LeaseKeeper;
use crate::trace::TaskTrace;

/// The longest an idle node waits between polls for due work (timers, retries, expired
/// leases of dead nodes); never shorter than `Settings::poll_interval`.
pub(crate) const IDLE_POLL: Duration = Duration::from_millis(200);

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This node's name in leases: stable across restarts, so that a restarted node
    /// takes its own unfinished tasks back at once instead of waiting for their leases.
    pub node_id: String,
    /// How long a task lease lasts without renewal; a dead node's tasks are taken over
    /// this long after its last renewal.
    pub lease: Duration,
    /// How often a busy scheduler looks for due work; an idle one backs off to
    /// 200 ms.
    pub poll_interval: Duration,
    /// The most tasks this node runs at once.
    pub max_concurrent_tasks: usize,
    /// The largest task input, in bytes of JSON.
    pub max_input_bytes: usize,
    /// The most bytes of a tool's answer (an `http` step) kept as its output.
    pub max_response_bytes: usize,
    /// Where `http` steps may send requests. The default: any public address, nothing
    /// else, no redirects.
    pub egress: Rules,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            node_id: "node-1".to_string(),
            lease: Duration::from_secs(10),
            poll_interval: Duration::from_millis(50),
            max_concurrent_tasks: 1024,
            max_input_bytes: 256 * 1024,
            max_response_bytes: crate::attempt::MAX_RESPONSE_BYTES,
            egress: Rules::default(),
        }
    }
}

/// A task to submit.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    /// The tenant the task belongs to (a valid store name).
    pub tenant: String,
    /// The workflow's name.
    pub workflow: String,
    /// Its version; the latest when `None`. The task keeps it for its whole life.
    pub version: Option<u32>,
    /// The input.
    pub input: Value,
    /// A second submission of the same tenant with the same key returns the first
    /// task; with another workflow or input it is refused as a conflict.
    pub idempotency_key: Option<String>,
    /// The submitter's W3C `traceparent`: the task's spans join its trace. One that
    /// does not parse is ignored.
    pub traceparent: Option<String>,
}

/// The workflow engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("node_id", &self.inner.node_id)
            .field("backend", &self.inner.store.backend())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) node_id: String,
    pub(crate) settings: Settings,
    pub(crate) runners: Runners,
    pub(crate) events: EventSink,
    workflows: RwLock<HashMap<(String, u32), Arc<Workflow>>>,
    /// The latest version of each workflow, as last read, and when (Unix ms).
    latest: RwLock<HashMap<String, (u32, u64)>>,
    pub(crate) wake: Notify,
    /// Where submissions wait while the store is down, when configured (`outbox.rs`).
    pub(crate) outbox: std::sync::OnceLock<crate::outbox::Outbox>,
    seed: AtomicU64,
    ids: AtomicU64,
}

impl Engine {
    /// An engine over `store`. `llm` runs `llm` steps (the gateway); without it they fail
    /// with a clear error. `events` receives every [`TaskEvent`].
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        settings: Settings,
        llm: Option<Arc<dyn Llm>>,
        events: EventSink,
    ) -> Self {
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Engine {
            inner: Arc::new(Inner {
                runners: Runners::new(llm, clock.clone(), settings.egress.clone())
                    .with_max_response_bytes(settings.max_response_bytes),
                store,
                clock,
                node_id: settings.node_id.clone(),
                settings,
                events,
                workflows: RwLock::new(HashMap::new()),
                latest: RwLock::new(HashMap::new()),
                wake: Notify::new(),
                outbox: std::sync::OnceLock::new(),
                seed: AtomicU64::new(seed),
                ids: AtomicU64::new(0),
            }),
        }
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Checks a definition and registers it. The same definition again is a no-op; a
    /// different one under a registered version is a conflict.
    pub async fn register(&self, source: Value) -> Result<WorkflowDef, EngineError> {
        let workflow = definition::parse(source)?;
        let now = self.inner.clock.unix_millis();
        let def = self
            .inner
            .store
            .put_workflow(
                NewWorkflow {
                    name: workflow.name.clone(),
                    version: workflow.version,
                    definition: workflow.source.clone(),
                },
                now,
            )
            .await?;
        if let Ok(mut latest) = self.inner.latest.write() {
            latest.remove(&def.name);
        }
        Ok(def)
    }

    /// A registered workflow, its latest version when `version` is `None`.
    pub async fn workflow(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<WorkflowDef, EngineError> {
        self.inner
            .store
            .get_workflow(name, version)
            .await?
            .ok_or_else(|| not_found("workflow", name, version))
    }

    /// Every registered workflow version.
    pub async fn workflows(&self) -> Result<Vec<WorkflowDef>, EngineError> {
        Ok(self.inner.store.list_workflows().await?)
    }

    /// Accepts a task: checks its input against the workflow, stores it and wakes the
    /// scheduler. Once this returns, the task is durable (invariant 2). The same
    /// idempotency key again returns the tenant's existing task, unless the submission
    /// differs from it (another workflow, version or input): that is a `Conflict`, not
    /// a silent answer with some other task's outputs.
    pub async fn submit(&self, submission: Submission) -> Result<Submitted, EngineError> {
        let version = match submission.version {
            Some(v) => v,
            None => self.inner.latest_version(&submission.workflow).await?,
        };
        let workflow = self.inner.workflow(&submission.workflow, version).await?;
        check_input(
            &workflow,
            &submission.input,
            self.inner.settings.max_input_bytes,
        )?;
        if let Some(key) = &submission.idempotency_key {
            check_key(key)?;
        }
        let now = self.inner.clock.unix_millis();
        let task = NewTask {
            task_id: self.inner.new_task_id(now),
            tenant: submission.tenant,
            workflow: workflow.name.clone(),
            workflow_version: workflow.version,
            input: submission.input,
            idempotency_key: submission.idempotency_key,
            pending_steps: workflow.steps.iter().map(|s| s.name.clone()).collect(),
            run_at_ms: now,
            // One that does not parse is dropped: the task starts a trace of its own.
            traceparent: submission
                .traceparent
                .filter(|t| crate::trace::parse(t).is_some()),
        };
        let asked = (task.input.clone(), submission.version);
        let submitted = self.inner.store.submit_task(task, now).await?;
        if let Submitted::Existing(existing) = &submitted {
            same_submission(existing, &workflow.name, asked.1, &asked.0)?;
        }
        if let Submitted::Created(task) = &submitted {
            (self.inner.events)(&TaskEvent {
                task_id: task.task_id.clone(),
                workflow: Arc::from(task.workflow.as_str()),
                trace: TaskTrace::of(&task.task_id, task.traceparent.as_deref()),
                kind: TaskEventKind::Submitted,
            });
            self.inner.wake.notify_one();
        }
        Ok(submitted)
    }
}

impl Engine {
    /// Gives up the leases this node's previous run held (it was killed), in one write,
    /// so that its tasks resume now instead of when the leases expire. Safe because a
    /// node id names one running process: the process that held these leases is gone,
    /// and its tokens are stale from now on. Returns how many tasks were released.
    pub async fn recover(&self) -> Result<u64, EngineError> {
        let now = self.inner.clock.unix_millis();
        Ok(self
            .inner
            .store
            .release_node_tasks(&self.inner.node_id, now)
            .await?)
    }
}

/// Refuses a repeated idempotency key whose submission is not the one it first named.
fn same_submission(
    existing: &Task,
    workflow: &str,
    version: Option<u32>,
    input: &Value,
) -> Result<(), EngineError> {
    let differs = if existing.workflow != workflow {
        "another workflow"
    } else if version.is_some_and(|v| v != existing.workflow_version) {
        "another workflow version"
    } else if &existing.input != input {
        "another input"
    } else {
        return Ok(());
    };
    Err(EngineError::Conflict {
        what: "idempotency key",
        id: existing.idempotency_key.clone().unwrap_or_default(),
        reason: format!(
            "already used for task {} with {differs}; use a new key for a new task",
            existing.task_id
        ),
    })
}

pub(crate) fn not_found(what: &'static str, id: &str, version: Option<u32>) -> EngineError {
    let id = match version {
        Some(v) => format!("{id} v{v}"),
        None => id.to_string(),
    };
    EngineError::NotFound { what, id }
}

/// Checks a task's input: its size, then the workflow's input schema (every error, each
/// at its path under `input`).
/// Refuses an idempotency key the store would not keep.
pub(crate) fn check_key(key: &str) -> Result<(), EngineError> {
    if key.is_empty() || key.len() > 255 || key.chars().any(char::is_control) {
        return Err(EngineError::invalid_at(
            "idempotency_key",
            "must be 1..=255 bytes without control characters",
        ));
    }
    Ok(())
}

pub(crate) fn check_input(
    workflow: &Workflow,
    input: &Value,
    max_bytes: usize,
) -> Result<(), EngineError> {
    let size = serde_json::to_vec(input)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > max_bytes {
        return Err(EngineError::invalid_at(
            "input",
            format!("{size} bytes; at most {max_bytes}"),
        ));
    }
    let Some(schema) = &workflow.input_schema else {
        return Ok(());
    };
    let validator = jsonschema::validator_for(schema)
        .map_err(|e| EngineError::invalid_at("input_schema", e.to_string()))?;
    let problems: Vec<Problem> = validator
        .iter_errors(input)
        .map(|e| {
            let pointer = e.instance_path().to_string();
            let path: String = pointer
                .split('/')
                .skip(1)
                .map(|p| {
                    if p.chars().all(|c| c.is_ascii_digit()) {
                        format!("[{p}]")
                    } else {
                        format!(".{p}")
                    }
                })
                .collect();
            Problem::new(format!("input{path}"), e.to_string())
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(EngineError::invalid(problems))
    }
}

/// How long the latest version of a workflow, as read, is trusted for submissions. A
/// version registered on this node is seen at once; one registered on another node
/// sharing the database, within this long.
const LATEST_TTL_MS: u64 = 1_000;

impl Inner {
    /// The latest registered version of `name`, read from the store at most once per
    /// [`LATEST_TTL_MS`]: submissions are the hottest path and the answer rarely changes.
    pub(crate) async fn latest_version(&self, name: &str) -> Result<u32, EngineError> {
        let now = self.clock.unix_millis();
        if let Ok(latest) = self.latest.read()
            && let Some(&(version, read_at)) = latest.get(name)
            && now.saturating_sub(read_at) < LATEST_TTL_MS
        {
            return Ok(version);
        }
        let def = self
            .store
            .get_workflow(name, None)
            .await?
            .ok_or_else(|| not_found("workflow", name, None))?;
        self.remember_latest(name, def.version, now);
        Ok(def.version)
    }

    /// Tells the event sink that `esc` was answered; the workflow's name comes from its
    /// task (one read: answers are rare).
    pub(crate) async fn resolved(&self, esc: &holdfast_store::Escalation) {
        let Ok(Some(task)) = self.store.get_task(&esc.task_id).await else {
            return;
        };
        let resolution = match esc.status {
            holdfast_store::EscalationStatus::Approved => "approved",
            holdfast_store::EscalationStatus::Edited => "edited",
            holdfast_store::EscalationStatus::Rejected => "rejected",
            holdfast_store::EscalationStatus::Open
            | holdfast_store::EscalationStatus::Cancelled => {
                return;
            }
        };
        (self.events)(&TaskEvent {
            task_id: esc.task_id.clone(),
            workflow: Arc::from(task.workflow.as_str()),
            trace: TaskTrace::of(&task.task_id, task.traceparent.as_deref()),
            kind: TaskEventKind::EscalationResolved {
                step: esc.step.clone(),
                resolution,
            },
        });
    }

    fn remember_latest(&self, name: &str, version: u32, now: u64) {
        if let Ok(mut latest) = self.latest.write() {
            // Bounded like the definitions: one entry per registered workflow name.
            latest.insert(name.to_string(), (version, now));
        }
    }

    /// The latest version of `name` this node read, however long ago.
    pub(crate) fn known_latest(&self, name: &str) -> Option<u32> {
        self.latest
            .read()
            .ok()
            .and_then(|latest| latest.get(name).map(|&(version, _)| version))
    }

    /// A workflow version this node already parsed.
    pub(crate) fn known_workflow(&self, name: &str, version: u32) -> Option<Arc<Workflow>> {
        self.workflows
            .read()
            .ok()
            .and_then(|cache| cache.get(&(name.to_string(), version)).cloned())
    }

    /// A checked workflow version, parsed once per process.
    pub(crate) async fn workflow(
        &self,
        name: &str,
        version: u32,
    ) -> Result<Arc<Workflow>, EngineError> {
        let key = (name.to_string(), version);
        if let Ok(cache) = self.workflows.read()
            && let Some(w) = cache.get(&key)
        {
            return Ok(w.clone());
        }
        let def = self
            .store
            .get_workflow(name, Some(version))
            .await?
            .ok_or_else(|| not_found("workflow", name, Some(version)))?;
        let workflow = Arc::new(definition::parse(def.definition)?);
        if let Ok(mut cache) = self.workflows.write() {
            cache.insert(key, workflow.clone());
        }
        Ok(workflow)
    }

    /// The jitter generator of `step` of `task_id`: the same on each of its attempts
    /// (`attempt::verdict`).
    pub(crate) fn step_rng(&self, task_id: &str, step: &str) -> Rng {
        crate::attempt::step_rng(self.seed.load(Ordering::Relaxed), task_id, step)
    }

    /// A new task id: time first (ids sort by submission), then randomness.
    pub(crate) fn new_task_id(&self, now_ms: u64) -> String {
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        let mut rng = Rng::seeded(self.seed.load(Ordering::Relaxed) ^ n.rotate_left(17));
        format!("t-{now_ms:012x}-{:016x}", rng.next_u64())
    }

    /// Starts renewing a task's lease (and, once taken, its lock) until stopped.
    pub(crate) fn keep_lease(self: &Inner, task_id: &str, token: FencingToken) -> LeaseKeeper {
        LeaseKeeper::start(self, task_id, token)
    }
}
