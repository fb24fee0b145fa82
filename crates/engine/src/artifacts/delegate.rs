//! [`ArtifactStore`] as a [`Store`]: values offloaded on the way in, read back whole on
//! the way out; every other call passes through. Longer than a module should be
//! because it is one method per `Store` method, as the store guard is.

use std::time::Duration;

use async_trait::async_trait;
use holdfast_store::{
    Advance, Cancelled, ConfigGate, ConfigVersion, Escalation, EscalationFilter, EvalResult,
    EvalRun, EvalRunFilter, EvalRunStart, EvalStatus, Example, ExampleAdded, ExampleFilter,
    ExampleStatus, ExampleUse, ExampleVector, FencingToken, Job, JobResult, JournalEntry,
    LockAcquire, NewEvalResult, NewEvalRun, NewEvent, NewExample, NewQualitySample, NewTask,
    NewWorkflow, QualitySample, Resolution, Result, SampleFilter, Step, Store, StoreError,
    StoredConfig, Submitted, Task, TaskClaim, TaskFilter, TaskPage, TaskStatus, WorkflowDef,
};
use serde_json::json;

use super::{ArtifactStore, Written, reference};

impl ArtifactStore {
    async fn resolve_steps(&self, steps: Vec<Step>) -> Result<Vec<Step>> {
        let mut resolved = Vec::with_capacity(steps.len());
        for mut step in steps {
            if let Some(output) = step.output.take() {
                let field = format!("steps.{}.output", step.name);
                step.output = Some(self.resolve(&step.task_id, &field, output).await?);
            }
            resolved.push(step);
        }
        Ok(resolved)
    }

    async fn resolve_job(&self, mut job: Job) -> Result<Job> {
        let payload = std::mem::take(&mut job.payload);
        let field = format!("jobs.{}.payload", job.job_id);
        job.payload = self.resolve(&job.task_id, &field, payload).await?;
        if let Some(result) = job.result.take() {
            let field = format!("jobs.{}.result", job.job_id);
            job.result = Some(self.resolve(&job.task_id, &field, result).await?);
        }
        Ok(job)
    }

    async fn resolve_escalation_payload(&self, mut escalation: Escalation) -> Result<Escalation> {
        let payload = std::mem::take(&mut escalation.payload);
        let field = format!("escalations.{}.payload", escalation.escalation_id);
        escalation.payload = self.resolve(&escalation.task_id, &field, payload).await?;
        Ok(escalation)
    }

    /// Fails a claimed task whose stored input or output can no longer be read, with
    /// the reason as its error.
    pub(crate) async fn fail_unreadable(
        &self,
        task_id: &str,
        token: FencingToken,
        err: &StoreError,
        now_ms: u64,
    ) -> Result<()> {
        let error = err.to_string();
        tracing::error!(task_id, error = %error, "a task's stored value is unreadable; failing it");
        let mut advance = Advance::new(task_id, token, TaskStatus::Failed);
        advance.events = vec![NewEvent {
            kind: "task_failed".into(),
            data: json!({"error": error}),
        }];
        advance.last_error = Some(error);
        match self.inner.advance(advance, now_ms).await {
            // Another node took it meanwhile: its claim meets the same fault.
            Ok(()) | Err(StoreError::StaleLease { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl Store for ArtifactStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn put_workflow(&self, workflow: NewWorkflow, now_ms: u64) -> Result<WorkflowDef> {
        self.inner.put_workflow(workflow, now_ms).await
    }

    async fn get_workflow(&self, name: &str, version: Option<u32>) -> Result<Option<WorkflowDef>> {
        self.inner.get_workflow(name, version).await
    }

    async fn list_workflows(&self) -> Result<Vec<WorkflowDef>> {
        self.inner.list_workflows().await
    }

    async fn submit_task(&self, mut task: NewTask, now_ms: u64) -> Result<Submitted> {
        let input = std::mem::take(&mut task.input);
        let mut written = Written::default();
        let original = self.is_large(&input).then(|| input.clone());
        task.input = self
            .offload(&task.task_id, "task.input", input, &mut written)
            .await?;
        let submitted = self.inner.submit_task(task, now_ms).await?;
        Ok(match submitted {
            // A new task's input is the one just given: no need to read it back.
            Submitted::Created(mut task) => match original {
                Some(input) => {
                    task.input = input;
                    Submitted::Created(self.resolve_task(task).await?)
                }
                None => Submitted::Created(self.resolve_task(task).await?),
            },
            Submitted::Existing(task) => Submitted::Existing(self.resolve_task(task).await?),
        })
    }

    async fn get_task(&self, task_id: &str) -> Result<Option<Task>> {
        match self.inner.get_task(task_id).await? {
            Some(task) => Ok(Some(self.resolve_task(task).await?)),
            None => Ok(None),
        }
    }

    async fn list_tasks(&self, filter: &TaskFilter) -> Result<TaskPage> {
        let page = self.inner.list_tasks(filter).await?;
        let mut tasks = Vec::with_capacity(page.tasks.len());
        for task in page.tasks {
            tasks.push(self.resolve_task(task).await?);
        }
        Ok(TaskPage {
            tasks,
            next_cursor: page.next_cursor,
        })
    }

    async fn cancel_task(&self, task_id: &str, reason: &str, now_ms: u64) -> Result<Cancelled> {
        Ok(
            match self.inner.cancel_task(task_id, reason, now_ms).await? {
                Cancelled::Cancelled(task) => Cancelled::Cancelled(self.resolve_task(task).await?),
                Cancelled::AlreadyFinished(task) => {
                    Cancelled::AlreadyFinished(self.resolve_task(task).await?)
                }
            },
        )
    }

    async fn claim_tasks(
        &self,
        node_id: &str,
        lease: Duration,
        limit: u32,
        now_ms: u64,
    ) -> Result<Vec<TaskClaim>> {
        let claims = self
            .inner
            .claim_tasks(node_id, lease, limit, now_ms)
            .await?;
        let mut ready = Vec::with_capacity(claims.len());
        for claim in claims {
            let TaskClaim {
                task,
                token,
                taken_over_from,
            } = claim;
            let task_id = task.task_id.clone();
            match self.resolve_task(task).await {
                Ok(task) => ready.push(TaskClaim {
                    task,
                    token,
                    taken_over_from,
                }),
                // Its input will never read back: fail it with the reason now rather
                // than claim it again at every lease expiry.
                Err(e @ StoreError::ArtifactUnreadable { .. }) => {
                    self.fail_unreadable(&task_id, token, &e, now_ms).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(ready)
    }

    async fn heartbeat_task(
        &self,
        task_id: &str,
        token: FencingToken,
        lease: Duration,
        now_ms: u64,
    ) -> Result<u64> {
        self.inner
            .heartbeat_task(task_id, token, lease, now_ms)
            .await
    }

    async fn release_task(&self, task_id: &str, token: FencingToken, now_ms: u64) -> Result<()> {
        self.inner.release_task(task_id, token, now_ms).await
    }

    async fn release_node_tasks(&self, node_id: &str, now_ms: u64) -> Result<u64> {
        self.inner.release_node_tasks(node_id, now_ms).await
    }

    async fn advance(&self, mut advance: Advance, now_ms: u64) -> Result<()> {
        let task_id = advance.task_id.clone();
        let mut written = Written::default();
        if let Some(step) = &mut advance.step
            && let Some(output) = step.output.take()
        {
            step.output = Some(
                self.offload(&task_id, "step.output", output, &mut written)
                    .await?,
            );
        }
        if let Some(output) = advance.output.take() {
            advance.output = Some(
                self.offload(&task_id, "task.output", output, &mut written)
                    .await?,
            );
        }
        for job in &mut advance.jobs {
            let payload = std::mem::take(&mut job.payload);
            job.payload = self
                .offload(&task_id, "job.payload", payload, &mut written)
                .await?;
        }
        if let Some(escalation) = &mut advance.escalation {
            let payload = std::mem::take(&mut escalation.payload);
            escalation.payload = self
                .offload(&task_id, "escalation.payload", payload, &mut written)
                .await?;
        }
        self.inner.advance(advance, now_ms).await
    }

    async fn list_steps(&self, task_id: &str) -> Result<Vec<Step>> {
        let steps = self.inner.list_steps(task_id).await?;
        self.resolve_steps(steps).await
    }

    async fn retry_queue(&self, tenant: Option<&str>, limit: u32) -> Result<Vec<Step>> {
        let steps = self.inner.retry_queue(tenant, limit).await?;
        self.resolve_steps(steps).await
    }

    async fn append_events(&self, task_id: &str, events: Vec<NewEvent>, now_ms: u64) -> Result<()> {
        self.inner.append_events(task_id, events, now_ms).await
    }

    async fn journal(
        &self,
        task_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<JournalEntry>> {
        self.inner.journal(task_id, after_seq, limit).await
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
        let jobs = self
            .inner
            .claim_jobs(queue, tenant, worker_id, lease, limit, now_ms)
            .await?;
        let mut resolved = Vec::with_capacity(jobs.len());
        for job in jobs {
            resolved.push(self.resolve_job(job).await?);
        }
        Ok(resolved)
    }

    async fn heartbeat_job(
        &self,
        job_id: &str,
        token: FencingToken,
        lease: Duration,
        now_ms: u64,
    ) -> Result<u64> {
        self.inner.heartbeat_job(job_id, token, lease, now_ms).await
    }

    async fn complete_job(
        &self,
        job_id: &str,
        token: FencingToken,
        result: JobResult,
        now_ms: u64,
    ) -> Result<()> {
        let result = match result {
            JobResult::Succeeded(value) if self.is_large(&value) => {
                // An object is kept under its task, which only the job's row names.
                let Some(job) = self.inner.get_job(job_id).await? else {
                    return Err(StoreError::NotFound {
                        kind: "job",
                        id: job_id.to_owned(),
                    });
                };
                let mut written = Written::default();
                let value = self
                    .offload(&job.task_id, "job.result", value, &mut written)
                    .await?;
                JobResult::Succeeded(value)
            }
            JobResult::Succeeded(value) => JobResult::Succeeded(reference::escape(value)),
            failed @ JobResult::Failed { .. } => failed,
        };
        self.inner.complete_job(job_id, token, result, now_ms).await
    }

    async fn get_job(&self, job_id: &str) -> Result<Option<Job>> {
        match self.inner.get_job(job_id).await? {
            Some(job) => Ok(Some(self.resolve_job(job).await?)),
            None => Ok(None),
        }
    }

    async fn acquire_lock(
        &self,
        name: &str,
        holder: &str,
        lease: Duration,
        now_ms: u64,
    ) -> Result<LockAcquire> {
        self.inner.acquire_lock(name, holder, lease, now_ms).await
    }

    async fn renew_lock(
        &self,
        name: &str,
        token: FencingToken,
        lease: Duration,
        now_ms: u64,
    ) -> Result<u64> {
        self.inner.renew_lock(name, token, lease, now_ms).await
    }

    async fn release_lock(&self, name: &str, token: FencingToken, now_ms: u64) -> Result<()> {
        self.inner.release_lock(name, token, now_ms).await
    }

    async fn list_escalations(&self, filter: &EscalationFilter) -> Result<Vec<Escalation>> {
        let escalations = self.inner.list_escalations(filter).await?;
        let mut resolved = Vec::with_capacity(escalations.len());
        for escalation in escalations {
            resolved.push(self.resolve_escalation_payload(escalation).await?);
        }
        Ok(resolved)
    }

    async fn get_escalation(&self, escalation_id: &str) -> Result<Option<Escalation>> {
        match self.inner.get_escalation(escalation_id).await? {
            Some(e) => Ok(Some(self.resolve_escalation_payload(e).await?)),
            None => Ok(None),
        }
    }

    async fn resolve_escalation(
        &self,
        escalation_id: &str,
        resolution: Resolution,
        resolved_by: &str,
        now_ms: u64,
    ) -> Result<Escalation> {
        let escalation = self
            .inner
            .resolve_escalation(escalation_id, resolution, resolved_by, now_ms)
            .await?;
        self.resolve_escalation_payload(escalation).await
    }

    async fn record_config(&self, text: &str, now_ms: u64) -> Result<ConfigVersion> {
        self.inner.record_config(text, now_ms).await
    }

    async fn list_configs(&self, limit: u32) -> Result<Vec<ConfigVersion>> {
        self.inner.list_configs(limit).await
    }

    async fn get_config(&self, version: u64) -> Result<Option<StoredConfig>> {
        self.inner.get_config(version).await
    }

    async fn record_config_gate(&self, gate: &ConfigGate) -> Result<()> {
        self.inner.record_config_gate(gate).await
    }

    async fn config_gates(&self, from: u64, to: u64) -> Result<Vec<ConfigGate>> {
        self.inner.config_gates(from, to).await
    }

    async fn add_example(&self, example: NewExample, now_ms: u64) -> Result<ExampleAdded> {
        self.inner.add_example(example, now_ms).await
    }

    async fn get_example(&self, tenant: Option<&str>, id: u64) -> Result<Option<Example>> {
        self.inner.get_example(tenant, id).await
    }

    async fn list_examples(&self, filter: &ExampleFilter) -> Result<Vec<Example>> {
        self.inner.list_examples(filter).await
    }

    async fn set_example_status(
        &self,
        tenant: Option<&str>,
        id: u64,
        status: ExampleStatus,
        now_ms: u64,
    ) -> Result<Example> {
        let call = self.inner.set_example_status(tenant, id, status, now_ms);
        call.await
    }

    async fn example_changes(&self, after_revision: u64, limit: u32) -> Result<Vec<Example>> {
        self.inner.example_changes(after_revision, limit).await
    }

    async fn record_example_uses(&self, uses: Vec<ExampleUse>) -> Result<()> {
        self.inner.record_example_uses(uses).await
    }

    async fn put_example_vectors(&self, vectors: Vec<ExampleVector>) -> Result<()> {
        self.inner.put_example_vectors(vectors).await
    }

    async fn example_vectors(
        &self,
        tenant: &str,
        model: &str,
        ids: Vec<u64>,
    ) -> Result<Vec<ExampleVector>> {
        self.inner.example_vectors(tenant, model, ids).await
    }

    async fn add_quality_samples(
        &self,
        samples: Vec<NewQualitySample>,
    ) -> Result<Vec<Result<u64>>> {
        self.inner.add_quality_samples(samples).await
    }

    async fn get_quality_sample(
        &self,
        tenant: Option<&str>,
        id: u64,
    ) -> Result<Option<QualitySample>> {
        self.inner.get_quality_sample(tenant, id).await
    }

    async fn list_quality_samples(&self, filter: &SampleFilter) -> Result<Vec<QualitySample>> {
        self.inner.list_quality_samples(filter).await
    }

    async fn exchange_health(
        &self,
        exchange: holdfast_store::health::HealthExchange,
        now_ms: u64,
    ) -> Result<holdfast_store::health::HealthReply> {
        self.inner.exchange_health(exchange, now_ms).await
    }

    async fn delete_quality_samples(&self, task_type: &str, before_ms: u64) -> Result<u64> {
        self.inner
            .delete_quality_samples(task_type, before_ms)
            .await
    }

    async fn start_eval_run(&self, run: NewEvalRun, now_ms: u64) -> Result<EvalRunStart> {
        self.inner.start_eval_run(run, now_ms).await
    }

    async fn get_eval_run(&self, tenant: &str, run_id: &str) -> Result<Option<EvalRun>> {
        self.inner.get_eval_run(tenant, run_id).await
    }

    async fn list_eval_runs(&self, filter: &EvalRunFilter) -> Result<Vec<EvalRun>> {
        self.inner.list_eval_runs(filter).await
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
        call.await
    }

    async fn eval_results(&self, tenant: &str, run_id: &str) -> Result<Vec<EvalResult>> {
        self.inner.eval_results(tenant, run_id).await
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
        call.await
    }
}
