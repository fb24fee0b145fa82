//! Workflows, tasks, steps and the journal: the records the engine's state machine reads
//! and the one write ([`Advance`]) through which it moves a task forward.
//!
//! The decision that shapes this module is invariant 1: a step's result, the task's new
//! state, the journal events saying so and any follow-up work (a worker job, an
//! escalation) are *one* value, [`Advance`], that the store commits in one transaction or
//! not at all, guarded by the task lease's fencing token. Derived fields stay derived:
//! the store, not the caller, appends to `completed_steps`, counts retries, adds cost and
//! records `last_checkpoint`, so they cannot drift from the step records.

use serde_json::Value;

use crate::FencingToken;
use crate::coordination::{NewEscalation, NewJob};

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            /// Every value, once.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored (and API) spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the stored spelling.
            pub fn parse(text: &str) -> crate::Result<Self> {
                match text {
                    $($text => Ok($name::$variant),)+
                    other => Err(crate::StoreError::corrupt(stringify!($name), other.to_string())),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use string_enum;

string_enum! {
    /// Where a task is in its life. A task is claimed once its `next_run_at` has come:
    /// a `Queued` one, a `Waiting` one whose timer is due (a waiting task without a
    /// timer is never claimed; a wake queues it), and a `Running` one whose lease has
    /// expired (its node died; a running task's `next_run_at` is its lease's expiry).
    TaskStatus {
        /// Waiting for its `next_run_at` (new, or a step scheduled for retry).
        Queued = "queued",
        /// Claimed by a node holding a lease.
        Running = "running",
        /// Paused on something outside (a worker job, a human escalation) or on a timer
        /// (a durable sleep, a human step's timeout). A job finishing or an escalation
        /// being resolved queues it at once; so does its `next_run_at` coming, if set.
        Waiting = "waiting",
        /// Finished successfully.
        Succeeded = "succeeded",
        /// Finished with an error.
        Failed = "failed",
        /// Cancelled by a user.
        Cancelled = "cancelled",
    }
}

impl TaskStatus {
    /// Whether the task has finished and will never run again.
    pub fn is_terminal(self) -> bool {
        match self {
            TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Cancelled => true,
            TaskStatus::Queued | TaskStatus::Running | TaskStatus::Waiting => false,
        }
    }
}

string_enum! {
    /// The state of one step of a task.
    StepStatus {
        /// Committed with an output; never runs again.
        Succeeded = "succeeded",
        /// Failed and will be retried at `next_attempt_at_ms` (it is in the retry queue).
        Retrying = "retrying",
        /// Failed for good.
        Failed = "failed",
        /// Skipped (`on_exhausted = "skip"`); never runs again.
        Skipped = "skipped",
        /// Handed to a worker job or an escalation, or sleeping; waiting for it. While a
        /// step is `Waiting`, a job or escalation of it that finishes wakes its task, even
        /// one that finished before the task's advance to `Waiting` committed.
        Waiting = "waiting",
        /// Its compensation ran after the task failed.
        Compensated = "compensated",
    }
}

impl StepStatus {
    /// Whether a record in this state is final for the step (invariant 1: such a step is
    /// never committed again).
    pub fn is_committed(self) -> bool {
        match self {
            StepStatus::Succeeded | StepStatus::Skipped | StepStatus::Compensated => true,
            StepStatus::Retrying | StepStatus::Failed | StepStatus::Waiting => false,
        }
    }
}

/// A workflow definition to register. `(name, version)` is immutable once stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWorkflow {
    /// The workflow's name: 1–200 characters of `[A-Za-z0-9_.:/@-]`.
    pub name: String,
    /// Its version, ≥ 1.
    pub version: u32,
    /// The definition as JSON (the engine's format; the store keeps it verbatim).
    pub definition: Value,
}

/// A stored workflow definition.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowDef {
    /// The workflow's name.
    pub name: String,
    /// Its version.
    pub version: u32,
    /// The definition.
    pub definition: Value,
    /// When it was registered, in Unix milliseconds.
    pub created_at_ms: u64,
}

/// A task to submit.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// The new task's id (the caller generates it): a valid name.
    pub task_id: String,
    /// The tenant it belongs to: a valid name. Idempotency keys are the tenant's own:
    /// another tenant's task with the same key is another task.
    pub tenant: String,
    /// The workflow it runs; must be registered.
    pub workflow: String,
    /// The workflow version it runs; must be registered.
    pub workflow_version: u32,
    /// The task's input, at most the store's `max_document_bytes` when serialised.
    pub input: Value,
    /// A client's idempotency key: a second submission of the same tenant with the same
    /// key returns the first task. 1–255 bytes, no control characters.
    pub idempotency_key: Option<String>,
    /// The steps the task will run, in order (shown as `pending_steps`).
    pub pending_steps: Vec<String>,
    /// When it may first run, in Unix milliseconds (usually `now`).
    pub run_at_ms: u64,
    /// The submitter's W3C `traceparent`, when it sent one: the task's spans join its
    /// trace. At most 255 bytes of printable ASCII.
    pub traceparent: Option<String>,
}

/// What a submission did: an expected outcome, not an error.
#[derive(Debug, Clone, PartialEq)]
pub enum Submitted {
    /// A new task was stored.
    Created(Task),
    /// A task with this idempotency key already existed; nothing was written.
    Existing(Task),
}

impl Submitted {
    /// The task, new or existing.
    pub fn task(&self) -> &Task {
        match self {
            Submitted::Created(task) | Submitted::Existing(task) => task,
        }
    }
}

/// The lease a node holds on a running task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The node holding it.
    pub owner: String,
    /// Its fencing token; every claim of the task gets a larger one.
    pub token: FencingToken,
    /// When it expires, in Unix milliseconds.
    pub expires_at_ms: u64,
}

/// The last step result committed for a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The step whose result was committed.
    pub step: String,
    /// When, in Unix milliseconds.
    pub at_ms: u64,
}

/// A task as stored and as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Its id.
    pub task_id: String,
    /// The tenant it belongs to.
    pub tenant: String,
    /// The workflow it runs.
    pub workflow: String,
    /// The workflow version it runs.
    pub workflow_version: u32,
    /// Where it is in its life.
    pub status: TaskStatus,
    /// Its input.
    pub input: Value,
    /// Its output, once succeeded.
    pub output: Option<Value>,
    /// The idempotency key it was submitted with.
    pub idempotency_key: Option<String>,
    /// Steps committed as succeeded or skipped, in commit order.
    pub completed_steps: Vec<String>,
    /// Steps still to run, as the engine last said.
    pub pending_steps: Vec<String>,
    /// Step results recorded as `Retrying`, over the task's life.
    pub retry_count: u32,
    /// The last error a step or the task reported.
    pub last_error: Option<String>,
    /// The last step result committed.
    pub last_checkpoint: Option<Checkpoint>,
    /// Money spent so far, in US dollars.
    pub cost_usd: f64,
    /// When the task may next be claimed, in Unix milliseconds: when it is due
    /// (`Queued`), its timer (`Waiting`, if it has one), its lease's expiry (`Running`).
    pub next_run_at_ms: Option<u64>,
    /// The lease of the node running it, if any.
    pub lease: Option<Lease>,
    /// When it was submitted, in Unix milliseconds.
    pub created_at_ms: u64,
    /// When it last changed, in Unix milliseconds.
    pub updated_at_ms: u64,
    /// The submitter's W3C `traceparent`, if it sent one.
    pub traceparent: Option<String>,
}

/// Which tasks to list, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFilter {
    /// Only tasks of this tenant; `None` for every tenant.
    pub tenant: Option<String>,
    /// Only tasks in this status.
    pub status: Option<TaskStatus>,
    /// Only tasks of this workflow (any version).
    pub workflow: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<u64>,
    /// Page size, 1..=1000.
    pub limit: u32,
}

impl Default for TaskFilter {
    fn default() -> Self {
        TaskFilter {
            tenant: None,
            status: None,
            workflow: None,
            cursor: None,
            limit: 100,
        }
    }
}

/// One page of tasks.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskPage {
    /// The tasks, newest first.
    pub tasks: Vec<Task>,
    /// Pass as `cursor` to get the next page; `None` on the last page.
    pub next_cursor: Option<u64>,
}

/// A task claimed by a node.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskClaim {
    /// The task, with its new lease.
    pub task: Task,
    /// The lease's fencing token, to present on every [`Advance`].
    pub token: FencingToken,
    /// The node whose expired lease this claim took over, if any (it died).
    pub taken_over_from: Option<String>,
}

/// What [`crate::Store::cancel_task`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Cancelled {
    /// The task was cancelled now.
    Cancelled(Task),
    /// The task had already finished; nothing changed.
    AlreadyFinished(Task),
}

/// A step result to commit.
#[derive(Debug, Clone, PartialEq)]
pub struct StepUpdate {
    /// The step's name.
    pub name: String,
    /// Its new state.
    pub status: StepStatus,
    /// Which attempt this result is from, from 1.
    pub attempt: u32,
    /// Its output, when it succeeded.
    pub output: Option<Value>,
    /// Its error, when it failed.
    pub error: Option<String>,
    /// When it runs again; required when `status` is `Retrying` (the retry queue's
    /// order). On a `Waiting` step it is an optional timer, kept for the engine to read
    /// back: when the step's sleep ends or its escalation times out. The store does not
    /// act on a step's timer; the task's `next_run_at_ms` (see [`Advance`]) is what
    /// makes it claimable then. `retry_queue` lists only `Retrying` steps.
    pub next_attempt_at_ms: Option<u64>,
    /// What the attempt cost, in US dollars; added to the task's cost.
    pub cost_usd: f64,
}

/// A stored step.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Its task.
    pub task_id: String,
    /// Its name.
    pub name: String,
    /// Its state.
    pub status: StepStatus,
    /// The attempt of the last result.
    pub attempt: u32,
    /// Its output, when it succeeded.
    pub output: Option<Value>,
    /// Its last error.
    pub error: Option<String>,
    /// When it runs again (the retry queue's order).
    pub next_attempt_at_ms: Option<u64>,
    /// When it last changed, in Unix milliseconds.
    pub updated_at_ms: u64,
}

/// An event to append to a task's journal.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// What happened: a valid name such as `step_succeeded`.
    pub kind: String,
    /// Details.
    pub data: Value,
}

/// One entry of a task's journal.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    /// Its task.
    pub task_id: String,
    /// Its position in the task's journal: 1, 2, 3… with no gaps.
    pub seq: u64,
    /// When it was appended, in Unix milliseconds.
    pub at_ms: u64,
    /// What happened.
    pub kind: String,
    /// Details.
    pub data: Value,
}

/// A lock fence: the write is refused unless `token` is the current token of the named
/// lock and its lease has not expired (invariant 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The lock's name.
    pub lock: String,
    /// The token the writer holds.
    pub token: FencingToken,
}

/// One atomic move of a task: everything here commits together or not at all.
#[derive(Debug, Clone, PartialEq)]
pub struct Advance {
    /// The task.
    pub task_id: String,
    /// The task lease's token from the claim; a stale one is refused.
    pub token: FencingToken,
    /// The task's new status. The lease is kept only if it is `Running`.
    pub status: TaskStatus,
    /// The step result to commit, if any.
    pub step: Option<StepUpdate>,
    /// The steps still to run, if changed.
    pub pending_steps: Option<Vec<String>>,
    /// When the task may next be claimed. For `Queued`: when it is due (defaults to
    /// `now`). For `Waiting`: an optional timer (a durable sleep's end, a human step's
    /// timeout); the task is claimed when it comes unless a job or escalation wakes it
    /// first, and without one it waits until woken. Ignored for other statuses.
    ///
    /// An advance to `Waiting` is stored as `Queued`, due `now`, when the task already has
    /// a finished job or a resolved escalation for a step that is (after this advance)
    /// still `Waiting`: it finished while the task was running, and its wake found
    /// nothing to wake. The events are journalled as given.
    pub next_run_at_ms: Option<u64>,
    /// A task-level error to show (a step's error is recorded on its own).
    pub last_error: Option<String>,
    /// The task's output (for `Succeeded`).
    pub output: Option<Value>,
    /// Journal events, in order.
    pub events: Vec<NewEvent>,
    /// Worker jobs to enqueue.
    pub jobs: Vec<NewJob>,
    /// An escalation to open.
    pub escalation: Option<NewEscalation>,
    /// A lock whose current token this write must carry.
    pub fence: Option<Fence>,
}

impl Advance {
    /// An advance that changes only the status; fill in the rest with struct update.
    pub fn new(task_id: impl Into<String>, token: FencingToken, status: TaskStatus) -> Self {
        Advance {
            task_id: task_id.into(),
            token,
            status,
            step: None,
            pending_steps: None,
            next_run_at_ms: None,
            last_error: None,
            output: None,
            events: Vec::new(),
            jobs: Vec::new(),
            escalation: None,
            fence: None,
        }
    }
}
