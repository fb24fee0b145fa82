//! Coordination records: worker jobs, named locks, human escalations and config history.
//!
//! What shapes them is fencing. Every lease here (a worker's on a job, a holder's on a
//! lock) comes with a [`FencingToken`] that only grows for its job or lock name, and
//! every write made under a lease carries its token: a holder that stalled past its
//! lease and comes back is refused ([`crate::StoreError::StaleLease`]) instead of
//! overwriting its successor's work (invariant 3).

use serde_json::Value;

use crate::task::string_enum;

/// A fencing token: strictly greater for each new lease on the same task, job or lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FencingToken(pub u64);

impl std::fmt::Display for FencingToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

string_enum! {
    /// Where a worker job is.
    JobStatus {
        /// Waiting for a worker.
        Pending = "pending",
        /// Claimed by a worker holding a lease.
        Claimed = "claimed",
        /// The worker reported success.
        Succeeded = "succeeded",
        /// The worker reported failure.
        Failed = "failed",
        /// Its task was cancelled.
        Cancelled = "cancelled",
    }
}

/// A job for the user's own workers, enqueued by an [`crate::Advance`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// The job's id: a valid name (the engine uses task id + step, the step's
    /// idempotency key).
    pub job_id: String,
    /// The queue workers claim from: a valid name.
    pub queue: String,
    /// The step it runs.
    pub step: String,
    /// What the worker gets.
    pub payload: Value,
}

/// A stored worker job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Its id.
    pub job_id: String,
    /// Its task.
    pub task_id: String,
    /// Its task's tenant.
    pub tenant: String,
    /// The step it runs.
    pub step: String,
    /// Its queue.
    pub queue: String,
    /// What the worker gets.
    pub payload: Value,
    /// Where it is.
    pub status: JobStatus,
    /// The current (or last) lease's token; 0 before the first claim.
    pub token: FencingToken,
    /// The worker holding (or last holding) it.
    pub worker: Option<String>,
    /// When the current lease expires, in Unix milliseconds.
    pub lease_expires_at_ms: Option<u64>,
    /// The worker's result, once succeeded.
    pub result: Option<Value>,
    /// The worker's error, once failed.
    pub error: Option<String>,
}

/// How a worker finished a job.
#[derive(Debug, Clone, PartialEq)]
pub enum JobResult {
    /// It succeeded with this output.
    Succeeded(Value),
    /// It failed with this error.
    Failed(String),
}

/// A granted lock lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockLease {
    /// The lock's name.
    pub name: String,
    /// Who holds it.
    pub holder: String,
    /// Its fencing token, greater than every token granted before for this name.
    pub token: FencingToken,
    /// When the lease expires, in Unix milliseconds.
    pub expires_at_ms: u64,
}

/// What [`crate::Store::acquire_lock`] got: an expected outcome either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockAcquire {
    /// The lock is ours.
    Acquired(LockLease),
    /// Someone else holds an unexpired lease.
    Busy {
        /// Who holds it.
        holder: String,
        /// When their lease expires, in Unix milliseconds.
        expires_at_ms: u64,
    },
}

string_enum! {
    /// Where an escalation is.
    EscalationStatus {
        /// Waiting for a person.
        Open = "open",
        /// Approved as it was.
        Approved = "approved",
        /// Approved with an edited value.
        Edited = "edited",
        /// Rejected.
        Rejected = "rejected",
        /// Its task was cancelled first.
        Cancelled = "cancelled",
    }
}

/// An escalation to open, from an [`crate::Advance`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewEscalation {
    /// Its id: a valid name.
    pub escalation_id: String,
    /// The step that asks.
    pub step: String,
    /// Why a person is needed.
    pub reason: String,
    /// What the person sees (the step's input, the failing output…).
    pub payload: Value,
}

/// A person's decision on an escalation.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// Go on as proposed.
    Approve,
    /// Go on with this value instead.
    Edit(Value),
    /// Stop, for this reason.
    Reject(String),
}

/// A stored escalation.
#[derive(Debug, Clone, PartialEq)]
pub struct Escalation {
    /// Its id.
    pub escalation_id: String,
    /// Its task.
    pub task_id: String,
    /// Its task's tenant.
    pub tenant: String,
    /// The step that asked.
    pub step: String,
    /// Why.
    pub reason: String,
    /// What the person sees.
    pub payload: Value,
    /// Where it is.
    pub status: EscalationStatus,
    /// The decision, once resolved.
    pub resolution: Option<Resolution>,
    /// Who decided.
    pub resolved_by: Option<String>,
    /// When it was opened, in Unix milliseconds.
    pub created_at_ms: u64,
    /// When it was resolved, in Unix milliseconds.
    pub resolved_at_ms: Option<u64>,
}

/// Which escalations to list, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationFilter {
    /// Only those of this tenant's tasks; `None` for every tenant.
    pub tenant: Option<String>,
    /// Only open ones.
    pub open_only: bool,
    /// Only this task's.
    pub task_id: Option<String>,
    /// At most this many, 1..=1000.
    pub limit: u32,
}

impl Default for EscalationFilter {
    fn default() -> Self {
        EscalationFilter {
            tenant: None,
            open_only: true,
            task_id: None,
            limit: 100,
        }
    }
}

/// One stored version of the configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigVersion {
    /// Its version: 1, 2, 3… in the order recorded.
    pub version: u64,
    /// The SHA-256 of its text, lowercase hex.
    pub sha256: String,
    /// When it was recorded, in Unix milliseconds.
    pub created_at_ms: u64,
}

/// A stored configuration text with its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredConfig {
    /// Its version and hash.
    pub version: ConfigVersion,
    /// The file's text, verbatim.
    pub text: String,
}

/// The quality gate's verdict on a configuration version.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigGate {
    /// The version judged.
    pub version: u64,
    /// Whether every suite the gate ran passed.
    pub passed: bool,
    /// What was done: `applied`, `refused`, `rolled_back` or `alerted`.
    pub action: String,
    /// The report: each suite's run, checks and the cases that did not pass.
    pub report: serde_json::Value,
    /// When it was decided, in Unix milliseconds.
    pub decided_at_ms: u64,
}
