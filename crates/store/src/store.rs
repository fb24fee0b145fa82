//! The `Store` trait: everything durable that the engine and the server need.
//!
//! It is object-safe (`Arc<dyn Store>`, through `async_trait`) so that the server and the
//! engine hold one store whatever the backend, and it never reads the time: every call
//! that depends on time takes `now_ms`, Unix milliseconds from the caller's
//! `holdfast_policy::Clock`. Lease expiry is therefore decided on the callers' clocks;
//! nodes sharing a PostgreSQL database must keep their clocks within a small fraction of
//! a lease (NTP does), which is the usual contract of lease-based systems.

use std::time::Duration;

use async_trait::async_trait;

use crate::Result;
use crate::coordination::{
    ConfigGate, ConfigVersion, Escalation, EscalationFilter, FencingToken, Job, JobResult,
    LockAcquire, Resolution, StoredConfig,
};
use crate::eval::{
    EvalResult, EvalRun, EvalRunFilter, EvalRunStart, EvalStatus, NewEvalResult, NewEvalRun,
};
use crate::example::{
    Example, ExampleAdded, ExampleFilter, ExampleStatus, ExampleUse, ExampleVector, NewExample,
};
use crate::health::{HealthExchange, HealthReply};
use crate::sample::{NewQualitySample, QualitySample, SampleFilter};
use crate::task::{
    Advance, Cancelled, JournalEntry, NewEvent, NewTask, NewWorkflow, Step, Submitted, Task,
    TaskClaim, TaskFilter, TaskPage, WorkflowDef,
};

/// Durable state for holdfast. Every write is committed (durably, fsync included) before
/// its future resolves.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Which backend this is: `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;

    /// Registers a workflow version. Registering the same definition again is a no-op;
    /// a different definition under a stored `(name, version)` is a `Conflict`.
    async fn put_workflow(&self, workflow: NewWorkflow, now_ms: u64) -> Result<WorkflowDef>;
    /// A workflow version, or its latest version when `version` is `None`.
    async fn get_workflow(&self, name: &str, version: Option<u32>) -> Result<Option<WorkflowDef>>;
    /// Every registered workflow version, by name then version.
    async fn list_workflows(&self) -> Result<Vec<WorkflowDef>>;

    /// Stores a new task, or returns the existing one with the same idempotency key,
    /// atomically. Appends a `submitted` journal event to a new task.
    async fn submit_task(&self, task: NewTask, now_ms: u64) -> Result<Submitted>;
    /// A task by id.
    async fn get_task(&self, task_id: &str) -> Result<Option<Task>>;
    /// Tasks matching `filter`, newest first, a page at a time.
    async fn list_tasks(&self, filter: &TaskFilter) -> Result<TaskPage>;
    /// Cancels a task that has not finished: drops its lease (its holder's next write is
    /// refused), cancels its pending jobs and open escalations, journals `cancelled`.
    async fn cancel_task(&self, task_id: &str, reason: &str, now_ms: u64) -> Result<Cancelled>;

    /// Claims up to `limit` tasks whose `next_run_at` has come (`Queued` ones, `Waiting`
    /// ones whose timer is due, `Running` ones whose lease expired), soonest first, for
    /// `lease` from `now_ms`. Each claim gets a fencing token larger than any before for
    /// that task. Concurrent claimers never get the same task. Cheap when nothing is
    /// due (one index probe), so a scheduler may poll it often.
    async fn claim_tasks(
        &self,
        node_id: &str,
        lease: Duration,
        limit: u32,
        now_ms: u64,
    ) -> Result<Vec<TaskClaim>>;
    /// Extends a task lease to `now_ms + lease`; returns the new expiry.
    async fn heartbeat_task(
        &self,
        task_id: &str,
        token: FencingToken,
        lease: Duration,
        now_ms: u64,
    ) -> Result<u64>;
    /// Gives a task lease up early so that another node may claim the task at once.
    async fn release_task(&self, task_id: &str, token: FencingToken, now_ms: u64) -> Result<()>;
    /// Gives up every task lease `node_id` holds, in one write: a restarted node calls
    /// it for the leases of its killed predecessor (same node id), whose later writes
    /// are then refused as stale. Returns how many tasks were released.
    async fn release_node_tasks(&self, node_id: &str, now_ms: u64) -> Result<u64>;
    /// Commits one move of a task atomically (see [`Advance`]). Refused with
    /// `StaleLease` unless `advance.token` is the task's current, unexpired lease.
    async fn advance(&self, advance: Advance, now_ms: u64) -> Result<()>;
    /// A task's steps, by name.
    async fn list_steps(&self, task_id: &str) -> Result<Vec<Step>>;
    /// The retry queue: steps waiting to be retried, soonest first; only those of
    /// `tenant`'s tasks when it is given.
    async fn retry_queue(&self, tenant: Option<&str>, limit: u32) -> Result<Vec<Step>>;

    /// Appends events to a task's journal outside an advance (notes, observations).
    async fn append_events(&self, task_id: &str, events: Vec<NewEvent>, now_ms: u64) -> Result<()>;
    /// Up to `limit` journal entries of a task with `seq > after_seq`, in order.
    async fn journal(&self, task_id: &str, after_seq: u64, limit: u32)
    -> Result<Vec<JournalEntry>>;

    /// Claims up to `limit` jobs of `queue` that are pending or whose lease expired;
    /// only jobs of `tenant`'s tasks when it is given.
    async fn claim_jobs(
        &self,
        queue: &str,
        tenant: Option<&str>,
        worker_id: &str,
        lease: Duration,
        limit: u32,
        now_ms: u64,
    ) -> Result<Vec<Job>>;
    /// Extends a job lease; returns the new expiry.
    async fn heartbeat_job(
        &self,
        job_id: &str,
        token: FencingToken,
        lease: Duration,
        now_ms: u64,
    ) -> Result<u64>;
    /// Stores a job's result, wakes its waiting task (queued, due now, whatever its
    /// timer) and journals it. A task that is not waiting yet is not changed; its
    /// advance to `Waiting` will find the finished job (see [`Advance::next_run_at_ms`]).
    /// Refused with `StaleLease` unless `token` is the job's current, unexpired lease.
    async fn complete_job(
        &self,
        job_id: &str,
        token: FencingToken,
        result: JobResult,
        now_ms: u64,
    ) -> Result<()>;
    /// A job by id.
    async fn get_job(&self, job_id: &str) -> Result<Option<Job>>;

    /// Takes the named lock for `lease` if it is free or its lease expired, with a token
    /// greater than every token granted before for `name`.
    async fn acquire_lock(
        &self,
        name: &str,
        holder: &str,
        lease: Duration,
        now_ms: u64,
    ) -> Result<LockAcquire>;
    /// Extends a lock lease; returns the new expiry.
    async fn renew_lock(
        &self,
        name: &str,
        token: FencingToken,
        lease: Duration,
        now_ms: u64,
    ) -> Result<u64>;
    /// Releases a lock (its token stays, so the next one is larger).
    async fn release_lock(&self, name: &str, token: FencingToken, now_ms: u64) -> Result<()>;

    /// Escalations matching `filter`, oldest first.
    async fn list_escalations(&self, filter: &EscalationFilter) -> Result<Vec<Escalation>>;
    /// An escalation by id.
    async fn get_escalation(&self, escalation_id: &str) -> Result<Option<Escalation>>;
    /// Records a person's decision, wakes the task (as [`Store::complete_job`] does)
    /// and journals it. Resolving twice is a `Conflict`.
    async fn resolve_escalation(
        &self,
        escalation_id: &str,
        resolution: Resolution,
        resolved_by: &str,
        now_ms: u64,
    ) -> Result<Escalation>;

    /// Records a configuration text as a new version, unless it is the same text as the
    /// latest version, which is returned instead.
    async fn record_config(&self, text: &str, now_ms: u64) -> Result<ConfigVersion>;
    /// The newest `limit` configuration versions, newest first, without their text.
    async fn list_configs(&self, limit: u32) -> Result<Vec<ConfigVersion>>;
    /// A configuration version with its text.
    async fn get_config(&self, version: u64) -> Result<Option<StoredConfig>>;
    /// Records the quality gate's verdict on a recorded configuration version,
    /// replacing an earlier verdict on it (a version gated again). An unknown version
    /// is `NotFound`.
    async fn record_config_gate(&self, gate: &ConfigGate) -> Result<()>;
    /// The gate's verdicts on versions `from..=to`, oldest first.
    async fn config_gates(&self, from: u64, to: u64) -> Result<Vec<ConfigGate>>;

    /// Starts an evaluation run, or resumes the tenant's run with the same id (a rerun
    /// after an interruption): it is `running` again and keeps its settings and its
    /// recorded cases. The same id holding another suite, or the same suite with
    /// another digest (its file or dataset changed), is a `Conflict`.
    async fn start_eval_run(&self, run: NewEvalRun, now_ms: u64) -> Result<EvalRunStart>;
    /// A tenant's evaluation run.
    async fn get_eval_run(&self, tenant: &str, run_id: &str) -> Result<Option<EvalRun>>;
    /// Evaluation runs matching `filter`, newest first.
    async fn list_eval_runs(&self, filter: &EvalRunFilter) -> Result<Vec<EvalRun>>;
    /// Records one case's result in a run, as the case finishes. A case recorded
    /// before in the run is a `Conflict` (a case is never counted twice); a run that
    /// does not exist is `NotFound`.
    async fn record_eval_result(
        &self,
        tenant: &str,
        run_id: &str,
        result: NewEvalResult,
        now_ms: u64,
    ) -> Result<()>;
    /// A run's recorded results, in the order they were recorded.
    async fn eval_results(&self, tenant: &str, run_id: &str) -> Result<Vec<EvalResult>>;
    /// Ends a run as `Finished` or `Interrupted` (`Running` is refused), with its
    /// summary (`None` clears an earlier one).
    async fn finish_eval_run(
        &self,
        tenant: &str,
        run_id: &str,
        status: EvalStatus,
        summary: Option<serde_json::Value>,
        now_ms: u64,
    ) -> Result<EvalRun>;

    /// Adds an example to its library, or merges it into the library's example with the
    /// same fingerprint (see [`crate::example`]), atomically.
    async fn add_example(&self, example: NewExample, now_ms: u64) -> Result<ExampleAdded>;
    /// An example by id; another tenant's is `None`, as a missing one (`tenant` `None`
    /// sees every tenant's).
    async fn get_example(&self, tenant: Option<&str>, id: u64) -> Result<Option<Example>>;
    /// Examples matching `filter`, newest first.
    async fn list_examples(&self, filter: &ExampleFilter) -> Result<Vec<Example>>;
    /// Approves (`Active`), retires or reopens (`Candidate`) an example; the same status
    /// again changes nothing. Another tenant's example is `NotFound`.
    async fn set_example_status(
        &self,
        tenant: Option<&str>,
        id: u64,
        status: ExampleStatus,
        now_ms: u64,
    ) -> Result<Example>;
    /// Up to `limit` examples (every tenant's) changed after `after_revision`, in the
    /// order of their revisions: what a retrieval index applies to catch up.
    async fn example_changes(&self, after_revision: u64, limit: u32) -> Result<Vec<Example>>;
    /// Adds calls to examples' usage counts; an example of another tenant than the one
    /// named, or gone, is skipped.
    async fn record_example_uses(&self, uses: Vec<ExampleUse>) -> Result<()>;
    /// Keeps examples' embedding vectors (at most 1,000 at once), each replacing the
    /// example's vector under the same model; a vector naming an example that is not
    /// its tenant's (or is gone) is skipped.
    async fn put_example_vectors(&self, vectors: Vec<ExampleVector>) -> Result<()>;
    /// The vectors under `model` of those of `ids` (at most 1,000) that are `tenant`'s
    /// examples and have one, in no particular order.
    async fn example_vectors(
        &self,
        tenant: &str,
        model: &str,
        ids: Vec<u64>,
    ) -> Result<Vec<ExampleVector>>;

    // --- production samples of the quality loop ---
    /// Keeps production samples (scored or skipped) in one transaction; answers each
    /// one's id, in the order given, or why that one was refused (the others are kept
    /// all the same). An error of the whole call means none was kept.
    async fn add_quality_samples(&self, samples: Vec<NewQualitySample>)
    -> Result<Vec<Result<u64>>>;
    /// A sample by id; `None` when missing or of another tenant than the one named.
    async fn get_quality_sample(
        &self,
        tenant: Option<&str>,
        id: u64,
    ) -> Result<Option<QualitySample>>;
    /// Samples, newest first.
    async fn list_quality_samples(&self, filter: &SampleFilter) -> Result<Vec<QualitySample>>;
    /// Deletes `task_type`'s samples created before `before_ms` (the start of its
    /// retention period); answers how many.
    async fn delete_quality_samples(&self, task_type: &str, before_ms: u64) -> Result<u64>;

    // --- health shared by nodes ---
    /// One exchange of a node with the health it shares with the others, atomically:
    /// takes units from each named rate-limit bucket (created full on first use,
    /// refilled at `per_ms` up to `capacity` on the callers' clocks; a changed capacity
    /// or rate applies from now), publishes breaker notes and returns the notes after
    /// `after_note`. Notes older than an hour are dropped.
    async fn exchange_health(&self, exchange: HealthExchange, now_ms: u64) -> Result<HealthReply>;
}
