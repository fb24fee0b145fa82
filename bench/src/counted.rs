//! A [`Store`] that counts and times every call it passes on, to tell where an engine
//! run spends its store round trips.
//!
//! Why a wrapper rather than a profiler: the question a slow engine raises is which
//! calls it makes per step (commits, reads, claims, renewals) and how long each waits,
//! and that is exactly what sits at the `Store` boundary, on either backend. The time
//! summed per method is the time callers waited, overlapping when calls run at once;
//! it is not wall time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use holdfast_store::{
    Advance, Cancelled, ConfigGate, ConfigVersion, Escalation, EscalationFilter, EvalResult,
    EvalRun, EvalRunFilter, EvalRunStart, EvalStatus, Example, ExampleAdded, ExampleFilter,
    ExampleStatus, ExampleUse, ExampleVector, FencingToken, Job, JobResult, JournalEntry,
    LockAcquire, NewEvalResult, NewEvalRun, NewEvent, NewExample, NewQualitySample, NewTask,
    NewWorkflow, QualitySample, Resolution, Result, SampleFilter, Step, Store, StoredConfig,
    Submitted, Task, TaskClaim, TaskFilter, TaskPage, WorkflowDef,
};

use crate::measure::Stopwatch;

/// Calls and the time callers waited, per [`Store`] method.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    /// How many calls.
    pub calls: u64,
    /// Their summed duration.
    pub waited: Duration,
}

/// A store that tallies every call to the store inside it.
#[derive(Debug)]
pub struct CountedStore {
    inner: Arc<dyn Store>,
    tallies: Mutex<BTreeMap<&'static str, Tally>>,
}

impl CountedStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        CountedStore {
            inner,
            tallies: Mutex::new(BTreeMap::new()),
        }
    }

    /// The tallies so far, by method name.
    pub fn tallies(&self) -> BTreeMap<&'static str, Tally> {
        self.tallies.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Forgets the tallies so far.
    pub fn reset(&self) {
        if let Ok(mut t) = self.tallies.lock() {
            t.clear();
        }
    }

    async fn timed<T>(&self, method: &'static str, call: impl Future<Output = T>) -> T {
        let clock = Stopwatch::start();
        let value = call.await;
        let took = clock.elapsed();
        if let Ok(mut t) = self.tallies.lock() {
            let tally = t.entry(method).or_default();
            tally.calls += 1;
            tally.waited += took;
        }
        value
    }
}

#[async_trait]
impl Store for CountedStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn put_workflow(&self, workflow: NewWorkflow, now_ms: u64) -> Result<WorkflowDef> {
        self.timed("put_workflow", self.inner.put_workflow(workflow, now_ms))
            .await
    }

    async fn get_workflow(&self, name: &str, version: Option<u32>) -> Result<Option<WorkflowDef>> {
        self.timed("get_workflow", self.inner.get_workflow(name, version))
            .await
    }

    async fn list_workflows(&self) -> Result<Vec<WorkflowDef>> {
        self.timed("list_workflows", self.inner.list_workflows())
            .await
    }

    async fn submit_task(&self, task: NewTask, now_ms: u64) -> Result<Submitted> {
        self.timed("submit_task", self.inner.submit_task(task, now_ms))
            .await
    }

    async fn get_task(&self, task_id: &str) -> Result<Option<Task>> {
        self.timed("get_task", self.inner.get_task(task_id)).await
    }

    async fn list_tasks(&self, filter: &TaskFilter) -> Result<TaskPage> {
        self.timed("list_tasks", self.inner.list_tasks(filter))
            .await
    }

    async fn cancel_task(&self, task_id: &str, reason: &str, now_ms: u64) -> Result<Cancelled> {
        self.timed(
            "cancel_task",
            self.inner.cancel_task(task_id, reason, now_ms),
        )
        .await
    }

    async fn claim_tasks(
        &self,
        node_id: &str,
        lease: Duration,
        limit: u32,
        now_ms: u64,
    ) -> Result<Vec<TaskClaim>> {
        self.timed(
            "claim_tasks",
            self.inner.claim_tasks(node_id, lease, limit, now_ms),
        )
        .await
    }

    async fn heartbeat_task(
        &self,
        task_id: &str,
        token: FencingToken,
        lease: Duration,
        now_ms: u64,
    ) -> Result<u64> {
        self.timed(
            "heartbeat_task",
            self.inner.heartbeat_task(task_id, token, lease, now_ms),
        )
        .await
    }

    async fn release_task(&self, task_id: &str, token: FencingToken, now_ms: u64) -> Result<()> {
        self.timed(
            "release_task",
            self.inner.release_task(task_id, token, now_ms),
        )
        .await
    }

    async fn release_node_tasks(&self, node_id: &str, now_ms: u64) -> Result<u64> {
        self.timed(
            "release_node_tasks",
            self.inner.release_node_tasks(node_id, now_ms),
        )
        .await
    }

    async fn advance(&self, advance: Advance, now_ms: u64) -> Result<()> {
        self.timed("advance", self.inner.advance(advance, now_ms))
            .await
    }

    async fn list_steps(&self, task_id: &str) -> Result<Vec<Step>> {
        self.timed("list_steps", self.inner.list_steps(task_id))
            .await
    }

    async fn retry_queue(&self, tenant: Option<&str>, limit: u32) -> Result<Vec<Step>> {
        self.timed("retry_queue", self.inner.retry_queue(tenant, limit))
            .await
    }

    async fn append_events(&self, task_id: &str, events: Vec<NewEvent>, now_ms: u64) -> Result<()> {
        self.timed(
            "append_events",
            self.inner.append_events(task_id, events, now_ms),
        )
        .await
    }

    async fn journal(
        &self,
        task_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<JournalEntry>> {
        self.timed("journal", self.inner.journal(task_id, after_seq, limit))
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
        self.timed(
            "claim_jobs",
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
        self.timed(
            "heartbeat_job",
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
        self.timed(
            "complete_job",
            self.inner.complete_job(job_id, token, result, now_ms),
        )
        .await
    }

    async fn get_job(&self, job_id: &str) -> Result<Option<Job>> {
        self.timed("get_job", self.inner.get_job(job_id)).await
    }

    async fn acquire_lock(
        &self,
        name: &str,
        holder: &str,
        lease: Duration,
        now_ms: u64,
    ) -> Result<LockAcquire> {
        self.timed(
            "acquire_lock",
            self.inner.acquire_lock(name, holder, lease, now_ms),
        )
        .await
    }

    async fn renew_lock(
        &self,
        name: &str,
        token: FencingToken,
        lease: Duration,
        now_ms: u64,
    ) -> Result<u64> {
        self.timed(
            "renew_lock",
            self.inner.renew_lock(name, token, lease, now_ms),
        )
        .await
    }

    async fn release_lock(&self, name: &str, token: FencingToken, now_ms: u64) -> Result<()> {
        self.timed("release_lock", self.inner.release_lock(name, token, now_ms))
            .await
    }

    async fn list_escalations(&self, filter: &EscalationFilter) -> Result<Vec<Escalation>> {
        self.timed("list_escalations", self.inner.list_escalations(filter))
            .await
    }

    async fn get_escalation(&self, escalation_id: &str) -> Result<Option<Escalation>> {
        self.timed("get_escalation", self.inner.get_escalation(escalation_id))
            .await
    }

    async fn resolve_escalation(
        &self,
        escalation_id: &str,
        resolution: Resolution,
        resolved_by: &str,
        now_ms: u64,
    ) -> Result<Escalation> {
        self.timed(
            "resolve_escalation",
            self.inner
                .resolve_escalation(escalation_id, resolution, resolved_by, now_ms),
        )
        .await
    }

    async fn record_config(&self, text: &str, now_ms: u64) -> Result<ConfigVersion> {
        self.timed("record_config", self.inner.record_config(text, now_ms))
            .await
    }

    async fn list_configs(&self, limit: u32) -> Result<Vec<ConfigVersion>> {
        self.timed("list_configs", self.inner.list_configs(limit))
            .await
    }

    async fn get_config(&self, version: u64) -> Result<Option<StoredConfig>> {
        self.timed("get_config", self.inner.get_config(version))
            .await
    }

    async fn record_config_gate(&self, gate: &ConfigGate) -> Result<()> {
        self.timed("record_config_gate", self.inner.record_config_gate(gate))
            .await
    }

    async fn config_gates(&self, from: u64, to: u64) -> Result<Vec<ConfigGate>> {
        self.timed("config_gates", self.inner.config_gates(from, to))
            .await
    }

    async fn start_eval_run(&self, run: NewEvalRun, now_ms: u64) -> Result<EvalRunStart> {
        self.timed("start_eval_run", self.inner.start_eval_run(run, now_ms))
            .await
    }

    async fn get_eval_run(&self, tenant: &str, run_id: &str) -> Result<Option<EvalRun>> {
        self.timed("get_eval_run", self.inner.get_eval_run(tenant, run_id))
            .await
    }

    async fn list_eval_runs(&self, filter: &EvalRunFilter) -> Result<Vec<EvalRun>> {
        self.timed("list_eval_runs", self.inner.list_eval_runs(filter))
            .await
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
        self.timed("record_eval_result", call).await
    }

    async fn eval_results(&self, tenant: &str, run_id: &str) -> Result<Vec<EvalResult>> {
        self.timed("eval_results", self.inner.eval_results(tenant, run_id))
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
        self.timed("finish_eval_run", call).await
    }

    async fn add_example(&self, example: NewExample, now_ms: u64) -> Result<ExampleAdded> {
        self.timed("add_example", self.inner.add_example(example, now_ms))
            .await
    }

    async fn get_example(&self, tenant: Option<&str>, id: u64) -> Result<Option<Example>> {
        self.timed("get_example", self.inner.get_example(tenant, id))
            .await
    }

    async fn list_examples(&self, filter: &ExampleFilter) -> Result<Vec<Example>> {
        self.timed("list_examples", self.inner.list_examples(filter))
            .await
    }

    async fn set_example_status(
        &self,
        tenant: Option<&str>,
        id: u64,
        status: ExampleStatus,
        now_ms: u64,
    ) -> Result<Example> {
        let call = self.inner.set_example_status(tenant, id, status, now_ms);
        self.timed("set_example_status", call).await
    }

    async fn example_changes(&self, after_revision: u64, limit: u32) -> Result<Vec<Example>> {
        let call = self.inner.example_changes(after_revision, limit);
        self.timed("example_changes", call).await
    }

    async fn record_example_uses(&self, uses: Vec<ExampleUse>) -> Result<()> {
        self.timed("record_example_uses", self.inner.record_example_uses(uses))
            .await
    }

    async fn put_example_vectors(&self, vectors: Vec<ExampleVector>) -> Result<()> {
        self.timed(
            "put_example_vectors",
            self.inner.put_example_vectors(vectors),
        )
        .await
    }

    async fn example_vectors(
        &self,
        tenant: &str,
        model: &str,
        ids: Vec<u64>,
    ) -> Result<Vec<ExampleVector>> {
        self.timed(
            "example_vectors",
            self.inner.example_vectors(tenant, model, ids),
        )
        .await
    }

    async fn add_quality_samples(
        &self,
        samples: Vec<NewQualitySample>,
    ) -> Result<Vec<Result<u64>>> {
        self.timed(
            "add_quality_samples",
            self.inner.add_quality_samples(samples),
        )
        .await
    }

    async fn get_quality_sample(
        &self,
        tenant: Option<&str>,
        id: u64,
    ) -> Result<Option<QualitySample>> {
        self.timed(
            "get_quality_sample",
            self.inner.get_quality_sample(tenant, id),
        )
        .await
    }

    async fn list_quality_samples(&self, filter: &SampleFilter) -> Result<Vec<QualitySample>> {
        self.timed(
            "list_quality_samples",
            self.inner.list_quality_samples(filter),
        )
        .await
    }

    async fn exchange_health(
        &self,
        exchange: holdfast_store::health::HealthExchange,
        now_ms: u64,
    ) -> Result<holdfast_store::health::HealthReply> {
        self.timed(
            "exchange_health",
            self.inner.exchange_health(exchange, now_ms),
        )
        .await
    }

    async fn delete_quality_samples(&self, task_type: &str, before_ms: u64) -> Result<u64> {
        self.timed(
            "delete_quality_samples",
            self.inner.delete_quality_samples(task_type, before_ms),
        )
        .await
    }
}
