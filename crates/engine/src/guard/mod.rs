//! The guard around the store: every call waits at most `store.timeout`, and every
//! outcome tells the store's health (`/ready`, `holdfast_store_up`, the write latency).
//!
//! The decision that shapes it: the guard is a [`Store`] wrapping the real one, so the
//! engine, the API and the configuration history all pass through it without knowing
//! it is there, and no call anywhere can hang on a store that stopped answering. A
//! call past its bound is [`StoreError::Unavailable`]; a write cut off that way may
//! still commit later, which is safe because every write the API makes is idempotent
//! (a submission's key, a job's fencing token, a step committed once). A probe
//! ([`StoreGuard::watch`]) keeps the health current whether or not calls reach the store.

mod health;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use holdfast_policy::Clock;
use holdfast_store::{
    Advance, Cancelled, ConfigGate, ConfigVersion, Escalation, EscalationFilter, EvalResult,
    EvalRun, EvalRunFilter, EvalRunStart, EvalStatus, Example, ExampleAdded, ExampleFilter,
    ExampleStatus, ExampleUse, ExampleVector, FencingToken, Job, JobResult, JournalEntry,
    LockAcquire, NewEvalResult, NewEvalRun, NewEvent, NewExample, NewQualitySample, NewTask,
    NewWorkflow, QualitySample, Resolution, Result, SampleFilter, Step, Store, StoreError,
    StoredConfig, Submitted, Task, TaskClaim, TaskFilter, TaskPage, WorkflowDef,
};

use health::Observed;
pub use health::{DownCause, Status, StoreEvent, StoreEventSink, StoreHealth, StoreState};

const READ: bool = false;
const WRITE: bool = true;

/// The lock the probe takes, for [`PROBE_LEASE`]: a write of one row of its own, so a
/// store that answers reads but cannot write (a full disk, a lock held elsewhere) fails
/// it, while no task is ever kept waiting by it for longer than the lease.
const PROBE_LOCK: &str = "holdfast.store-probe";
/// Who holds [`PROBE_LOCK`].
const PROBE_HOLDER: &str = "holdfast.store-guard";
/// How long the probe holds its lock: it is never released, it lapses.
const PROBE_LEASE: Duration = Duration::from_millis(1);

/// How the guard bounds and watches the store.
#[derive(Debug, Clone, Copy)]
pub struct GuardSettings {
    /// The longest any call waits (`store.timeout`).
    pub timeout: Duration,
    /// How often the probe asks the store (`store.probe_interval`); the probe waits at
    /// most twice this, within `timeout`.
    pub probe_interval: Duration,
}

impl Default for GuardSettings {
    fn default() -> Self {
        GuardSettings {
            timeout: Duration::from_secs(3),
            probe_interval: Duration::from_millis(250),
        }
    }
}

/// A store whose every call is bounded in time and reported to its [`StoreHealth`].
pub struct StoreGuard {
    inner: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: GuardSettings,
    health: Arc<StoreHealth>,
}

impl std::fmt::Debug for StoreGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreGuard")
            .field("inner", &self.inner)
            .field("settings", &self.settings)
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

impl StoreGuard {
    /// Guards `inner`; `sink` hears every change of state and every write's latency.
    pub fn new(
        inner: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        settings: GuardSettings,
        sink: Option<StoreEventSink>,
    ) -> StoreGuard {
        let health = Arc::new(StoreHealth::new(clock.unix_millis(), sink));
        StoreGuard {
            inner,
            clock,
            settings,
            health,
        }
    }

    /// The store's health, shared with whoever shows it.
    pub fn health(&self) -> Arc<StoreHealth> {
        Arc::clone(&self.health)
    }

    /// Probes the store every `probe_interval` until `shutdown` completes, with a write
    /// of its own (its lock, taken for a millisecond), so a store that still reads but
    /// cannot write (a lock held elsewhere, a full disk, a read-only file) is seen as
    /// down, and a store whose writes failed is seen up again as soon as it writes.
    pub async fn watch(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let every = self.settings.probe_interval;
        let bound = every.saturating_mul(2).min(self.settings.timeout);
        loop {
            let now = self.clock.unix_millis();
            let probe = self
                .inner
                .acquire_lock(PROBE_LOCK, PROBE_HOLDER, PROBE_LEASE, now);
            let _ = self.bounded(WRITE, bound, probe).await;
            let next = self.clock.now() + every;
            tokio::select! {
                () = &mut shutdown => return,
                () = self.clock.sleep_until(next) => {}
            }
        }
    }

    async fn call<T>(&self, write: bool, call: impl Future<Output = Result<T>>) -> Result<T> {
        self.bounded(write, self.settings.timeout, call).await
    }

    /// `call`, given up after `bound`, its outcome told to the health.
    async fn bounded<T>(
        &self,
        write: bool,
        bound: Duration,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let start = self.clock.now();
        let result = tokio::select! {
            // The call first: most answer at their first poll, and then no timer is
            // registered for the bound.
            biased;
            result = call => result,
            () = self.clock.sleep_until(start + bound) => Err(StoreError::Unavailable {
                waited_ms: u64::try_from(bound.as_millis()).unwrap_or(u64::MAX),
            }),
        };
        let took = self.clock.now().saturating_duration_since(start);
        let observed = match &result {
            Err(StoreError::Unavailable { .. }) => Observed::Failed {
                write,
                cause: DownCause::Timeout,
            },
            Err(e) if e.is_unavailable() => Observed::Failed {
                write,
                cause: DownCause::Unreachable,
            },
            Ok(_) | Err(_) => Observed::Answered { write },
        };
        if write && result.is_ok() {
            self.health.wrote(took);
        }
        self.health.observe(observed, self.clock.unix_millis());
        result
    }
}

#[async_trait]
impl Store for StoreGuard {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn put_workflow(&self, workflow: NewWorkflow, now_ms: u64) -> Result<WorkflowDef> {
        self.call(WRITE, self.inner.put_workflow(workflow, now_ms))
            .await
    }

    async fn get_workflow(&self, name: &str, version: Option<u32>) -> Result<Option<WorkflowDef>> {
        self.call(READ, self.inner.get_workflow(name, version))
            .await
    }

    async fn list_workflows(&self) -> Result<Vec<WorkflowDef>> {
        self.call(READ, self.inner.list_workflows()).await
    }

    async fn submit_task(&self, task: NewTask, now_ms: u64) -> Result<Submitted> {
        self.call(WRITE, self.inner.submit_task(task, now_ms)).await
    }

    async fn get_task(&self, task_id: &str) -> Result<Option<Task>> {
        self.call(READ, self.inner.get_task(task_id)).await
    }

    async fn list_tasks(&self, filter: &TaskFilter) -> Result<TaskPage> {
        self.call(READ, self.inner.list_tasks(filter)).await
    }

    async fn cancel_task(&self, task_id: &str, reason: &str, now_ms: u64) -> Result<Cancelled> {
        self.call(WRITE, self.inner.cancel_task(task_id, reason, now_ms))
            .await
    }

    async fn claim_tasks(
        &self,
        node_id: &str,
        lease: Duration,
        limit: u32,
        now_ms: u64,
    ) -> Result<Vec<TaskClaim>> {
        self.call(WRITE, self.inner.claim_tasks(node_id, lease, limit, now_ms))
            .await
    }

    async fn heartbeat_task(
        &self,
        task_id: &str,
        token: FencingToken,
        lease: Duration,
        now_ms: u64,
    ) -> Result<u64> {
        self.call(
            WRITE,
            self.inner.heartbeat_task(task_id, token, lease, now_ms),
        )
        .await
    }

    async fn release_task(&self, task_id: &str, token: FencingToken, now_ms: u64) -> Result<()> {
        self.call(WRITE, self.inner.release_task(task_id, token, now_ms))
            .await
    }

    async fn release_node_tasks(&self, node_id: &str, now_ms: u64) -> Result<u64> {
        self.call(WRITE, self.inner.release_node_tasks(node_id, now_ms))
            .await
    }

    async fn advance(&self, advance: Advance, now_ms: u64) -> Result<()> {
        self.call(WRITE, self.inner.advance(advance, now_ms)).await
    }

    async fn list_steps(&self, task_id: &str) -> Result<Vec<Step>> {
        self.call(READ, self.inner.list_steps(task_id)).await
    }

    async fn retry_queue(&self, tenant: Option<&str>, limit: u32) -> Result<Vec<Step>> {
        self.call(READ, self.inner.retry_queue(tenant, limit)).await
    }

    async fn append_events(&self, task_id: &str, events: Vec<NewEvent>, now_ms: u64) -> Result<()> {
        self.call(WRITE, self.inner.append_events(task_id, events, now_ms))
            .await
    }

    async fn journal(
        &self,
        task_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<JournalEntry>> {
        self.call(READ, self.inner.journal(task_id, after_seq, limit))
            .await
    }

    async fn claim_jobs(
        &self,
        queue: &str,
        tenant: Option<&str>,
        worker_id: &str,
        lease: Duration,
        limit: u32,
        now_ms: u64,
    ) -> Result<Vec<Job>> {
        self.call(
            WRITE,
            self.inner
                .claim_jobs(queue, tenant, worker_id, lease, limit, now_ms),
        )
        .await
    }

    async fn heartbeat_job(
        &self,
        job_id: &str,
        token: FencingToken,
        lease: Duration,
        now_ms: u64,
    ) -> Result<u64> {
        self.call(
            WRITE,
            self.inner.heartbeat_job(job_id, token, lease, now_ms),
        )
        .await
    }

    async fn complete_job(
        &self,
        job_id: &str,
        token: FencingToken,
        result: JobResult,
        now_ms: u64,
    ) -> Result<()> {
        self.call(
            WRITE,
            self.inner.complete_job(job_id, token, result, now_ms),
        )
        .await
    }

    async fn get_job(&self, job_id: &str) -> Result<Option<Job>> {
        self.call(READ, self.inner.get_job(job_id)).await
    }

    async fn acquire_lock(
        &self,
        name: &str,
        holder: &str,
        lease: Duration,
        now_ms: u64,
    ) -> Result<LockAcquire> {
        self.call(WRITE, self.inner.acquire_lock(name, holder, lease, now_ms))
            .await
    }

    async fn renew_lock(
        &self,
        name: &str,
        token: FencingToken,
        lease: Duration,
        now_ms: u64,
    ) -> Result<u64> {
        self.call(WRITE, self.inner.renew_lock(name, token, lease, now_ms))
            .await
    }

    async fn release_lock(&self, name: &str, token: FencingToken, now_ms: u64) -> Result<()> {
        self.call(WRITE, self.inner.release_lock(name, token, now_ms))
            .await
    }

    async fn list_escalations(&self, filter: &EscalationFilter) -> Result<Vec<Escalation>> {
        self.call(READ, self.inner.list_escalations(filter)).await
    }

    async fn get_escalation(&self, escalation_id: &str) -> Result<Option<Escalation>> {
        self.call(READ, self.inner.get_escalation(escalation_id))
            .await
    }

    async fn resolve_escalation(
        &self,
        escalation_id: &str,
        resolution: Resolution,
        resolved_by: &str,
        now_ms: u64,
    ) -> Result<Escalation> {
        self.call(
            WRITE,
            self.inner
                .resolve_escalation(escalation_id, resolution, resolved_by, now_ms),
        )
        .await
    }

    async fn record_config(&self, text: &str, now_ms: u64) -> Result<ConfigVersion> {
        self.call(WRITE, self.inner.record_config(text, now_ms))
            .await
    }

    async fn list_configs(&self, limit: u32) -> Result<Vec<ConfigVersion>> {
        self.call(READ, self.inner.list_configs(limit)).await
    }

    async fn get_config(&self, version: u64) -> Result<Option<StoredConfig>> {
        self.call(READ, self.inner.get_config(version)).await
    }

    async fn record_config_gate(&self, gate: &ConfigGate) -> Result<()> {
        self.call(WRITE, self.inner.record_config_gate(gate)).await
    }

    async fn config_gates(&self, from: u64, to: u64) -> Result<Vec<ConfigGate>> {
        self.call(READ, self.inner.config_gates(from, to)).await
    }

    async fn add_example(&self, example: NewExample, now_ms: u64) -> Result<ExampleAdded> {
        self.call(WRITE, self.inner.add_example(example, now_ms))
            .await
    }

    async fn get_example(&self, tenant: Option<&str>, id: u64) -> Result<Option<Example>> {
        self.call(READ, self.inner.get_example(tenant, id)).await
    }

    async fn list_examples(&self, filter: &ExampleFilter) -> Result<Vec<Example>> {
        self.call(READ, self.inner.list_examples(filter)).await
    }

    async fn set_example_status(
        &self,
        tenant: Option<&str>,
        id: u64,
        status: ExampleStatus,
        now_ms: u64,
    ) -> Result<Example> {
        let call = self.inner.set_example_status(tenant, id, status, now_ms);
        self.call(WRITE, call).await
    }

    async fn example_changes(&self, after_revision: u64, limit: u32) -> Result<Vec<Example>> {
        self.call(READ, self.inner.example_changes(after_revision, limit))
            .await
    }

    async fn record_example_uses(&self, uses: Vec<ExampleUse>) -> Result<()> {
        self.call(WRITE, self.inner.record_example_uses(uses)).await
    }

    async fn put_example_vectors(&self, vectors: Vec<ExampleVector>) -> Result<()> {
        self.call(WRITE, self.inner.put_example_vectors(vectors))
            .await
    }

    async fn example_vectors(
        &self,
        tenant: &str,
        model: &str,
        ids: Vec<u64>,
    ) -> Result<Vec<ExampleVector>> {
        self.call(READ, self.inner.example_vectors(tenant, model, ids))
            .await
    }

    async fn add_quality_samples(
        &self,
        samples: Vec<NewQualitySample>,
    ) -> Result<Vec<Result<u64>>> {
        self.call(WRITE, self.inner.add_quality_samples(samples))
            .await
    }

    async fn get_quality_sample(
        &self,
        tenant: Option<&str>,
        id: u64,
    ) -> Result<Option<QualitySample>> {
        self.call(READ, self.inner.get_quality_sample(tenant, id))
            .await
    }

    async fn list_quality_samples(&self, filter: &SampleFilter) -> Result<Vec<QualitySample>> {
        self.call(READ, self.inner.list_quality_samples(filter))
            .await
    }

    async fn exchange_health(
        &self,
        exchange: holdfast_store::health::HealthExchange,
        now_ms: u64,
    ) -> Result<holdfast_store::health::HealthReply> {
        self.call(WRITE, self.inner.exchange_health(exchange, now_ms))
            .await
    }

    async fn delete_quality_samples(&self, task_type: &str, before_ms: u64) -> Result<u64> {
        self.call(
            WRITE,
            self.inner.delete_quality_samples(task_type, before_ms),
        )
        .await
    }

    async fn start_eval_run(&self, run: NewEvalRun, now_ms: u64) -> Result<EvalRunStart> {
        self.call(WRITE, self.inner.start_eval_run(run, now_ms))
            .await
    }

    async fn get_eval_run(&self, tenant: &str, run_id: &str) -> Result<Option<EvalRun>> {
        self.call(READ, self.inner.get_eval_run(tenant, run_id))
            .await
    }

    async fn list_eval_runs(&self, filter: &EvalRunFilter) -> Result<Vec<EvalRun>> {
        self.call(READ, self.inner.list_eval_runs(filter)).await
    }

    async fn record_eval_result(
        &self,
        tenant: &str,
        run_id: &str,
        result: NewEvalResult,
        now_ms: u64,
    ) -> Result<()> {
        let call = self
            .inner
            .record_eval_result(tenant, run_id, result, now_ms);
        self.call(WRITE, call).await
    }

    async fn eval_results(&self, tenant: &str, run_id: &str) -> Result<Vec<EvalResult>> {
        self.call(READ, self.inner.eval_results(tenant, run_id))
            .await
    }

    async fn finish_eval_run(
        &self,
        tenant: &str,
        run_id: &str,
        status: EvalStatus,
        summary: Option<serde_json::Value>,
        now_ms: u64,
    ) -> Result<EvalRun> {
        let call = self
            .inner
            .finish_eval_run(tenant, run_id, status, summary, now_ms);
        self.call(WRITE, call).await
    }
}
