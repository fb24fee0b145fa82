//! `Store` for [`SqliteStore`]: validate in the caller's task, then hand the write to
//! the group-commit writer or the read to a read connection.
//!
//! Validation runs before anything is queued, so a refused call never reaches the
//! database and never shares a batch with good writes.

use std::time::Duration;

use async_trait::async_trait;

use super::{SqliteStore, advance, coord, evals, examples, gates, health, reads, samples, writes};
use crate::coordination::{
    ConfigGate, ConfigVersion, Escalation, EscalationFilter, Job, JobResult, LockAcquire,
    Resolution, StoredConfig,
};
use crate::eval::{
    self, EvalResult, EvalRun, EvalRunFilter, EvalRunStart, EvalStatus, NewEvalResult, NewEvalRun,
};
use crate::example::{
    self, Example, ExampleAdded, ExampleFilter, ExampleStatus, ExampleUse, ExampleVector,
    NewExample,
};
use crate::health::{HealthExchange, HealthReply};
use crate::plan;
use crate::sample::{self, NewQualitySample, QualitySample, SampleFilter};
use crate::task::{
    Advance, Cancelled, JournalEntry, NewEvent, NewTask, NewWorkflow, Step, Submitted, Task,
    TaskClaim, TaskFilter, TaskPage, WorkflowDef,
};
use crate::validate::{self, expiry, limit, millis, name};
use crate::{FencingToken, Result, Store};

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn put_workflow(&self, w: NewWorkflow, now_ms: u64) -> Result<WorkflowDef> {
        let definition = validate::workflow(&w, self.max_doc)?;
        let now = millis("now", now_ms)?;
        self.writer
            .write(move |c| writes::put_workflow(c, &w, &definition, now))
            .await
    }

    async fn get_workflow(&self, name: &str, version: Option<u32>) -> Result<Option<WorkflowDef>> {
        let name = name.to_string();
        self.readers
            .read(move |c| reads::workflow(c, &name, version))
            .await
    }

    async fn list_workflows(&self) -> Result<Vec<WorkflowDef>> {
        self.readers.read(reads::workflows).await
    }

    async fn submit_task(&self, t: NewTask, now_ms: u64) -> Result<Submitted> {
        let (input, pending) = validate::new_task(&t, self.max_doc)?;
        let now = millis("now", now_ms)?;
        self.writer
            .write(move |c| writes::submit(c, &t, &input, &pending, now))
            .await
    }

    async fn get_task(&self, task_id: &str) -> Result<Option<Task>> {
        let id = task_id.to_string();
        self.readers.read(move |c| reads::task(c, &id)).await
    }

    async fn list_tasks(&self, filter: &TaskFilter) -> Result<TaskPage> {
        limit("filter.limit", filter.limit)?;
        let filter = filter.clone();
        self.readers.read(move |c| reads::tasks(c, &filter)).await
    }

    async fn cancel_task(&self, task_id: &str, reason: &str, now_ms: u64) -> Result<Cancelled> {
        validate::text("reason", reason, self.max_doc)?;
        let (id, reason, now) = (
            task_id.to_string(),
            reason.to_string(),
            millis("now", now_ms)?,
        );
        self.writer
            .write(move |c| writes::cancel(c, &id, &reason, now))
            .await
    }

    async fn claim_tasks(
        &self,
        node_id: &str,
        lease: Duration,
        lim: u32,
        now_ms: u64,
    ) -> Result<Vec<TaskClaim>> {
        name("node_id", node_id)?;
        let (expires, lim, now) = (
            expiry(now_ms, lease)?,
            limit("limit", lim)?,
            millis("now", now_ms)?,
        );
        let node = node_id.to_string();
        self.writer
            .write(move |c| writes::claim(c, &node, expires, lim, now))
            .await
    }

    async fn heartbeat_task(
        &self,
        task_id: &str,
        token: FencingToken,
        lease: Duration,
        now_ms: u64,
    ) -> Result<u64> {
        let (id, expires, now) = (
            task_id.to_string(),
            expiry(now_ms, lease)?,
            millis("now", now_ms)?,
        );
        self.writer
            .write(move |c| writes::heartbeat(c, &id, token, expires, now))
            .await
    }

    async fn release_task(&self, task_id: &str, token: FencingToken, now_ms: u64) -> Result<()> {
        let (id, now) = (task_id.to_string(), millis("now", now_ms)?);
        self.writer
            .write(move |c| writes::release(c, &id, token, now))
            .await
    }

    async fn release_node_tasks(&self, node_id: &str, now_ms: u64) -> Result<u64> {
        name("node_id", node_id)?;
        let (node, now) = (node_id.to_string(), millis("now", now_ms)?);
        self.writer
            .write(move |c| writes::release_node(c, &node, now))
            .await
    }

    async fn advance(&self, a: Advance, now_ms: u64) -> Result<()> {
        let plan = plan::plan(&a, self.max_doc, now_ms)?;
        self.writer
            .write(move |c| advance::advance(c, &a, &plan))
            .await
    }

    async fn list_steps(&self, task_id: &str) -> Result<Vec<Step>> {
        let id = task_id.to_string();
        self.readers.read(move |c| reads::steps(c, &id)).await
    }

    async fn retry_queue(&self, tenant: Option<&str>, lim: u32) -> Result<Vec<Step>> {
        let tenant = tenant.map(str::to_string);
        self.readers
            .read(move |c| reads::retry_queue(c, tenant.as_deref(), lim))
            .await
    }

    async fn append_events(&self, task_id: &str, events: Vec<NewEvent>, now_ms: u64) -> Result<()> {
        let mut docs = Vec::with_capacity(events.len());
        for e in events {
            name("event.kind", &e.kind)?;
            docs.push((e.kind, validate::json("event.data", &e.data, self.max_doc)?));
        }
        let (id, now) = (task_id.to_string(), millis("now", now_ms)?);
        self.writer
            .write(move |c| {
                let events: Vec<(&str, String)> =
                    docs.iter().map(|(k, d)| (k.as_str(), d.clone())).collect();
                writes::append_events(c, &id, &events, now)
            })
            .await
    }

    async fn journal(&self, task_id: &str, after_seq: u64, lim: u32) -> Result<Vec<JournalEntry>> {
        let id = task_id.to_string();
        self.readers
            .read(move |c| reads::journal(c, &id, after_seq, lim))
            .await
    }

    async fn claim_jobs(
        &self,
        queue: &str,
        tenant: Option<&str>,
        worker_id: &str,
        lease: Duration,
        lim: u32,
        now_ms: u64,
    ) -> Result<Vec<Job>> {
        name("queue", queue)?;
        name("worker_id", worker_id)?;
        let (expires, lim, now) = (
            expiry(now_ms, lease)?,
            limit("limit", lim)?,
            millis("now", now_ms)?,
        );
        let (queue, worker) = (queue.to_string(), worker_id.to_string());
        let tenant = tenant.map(str::to_string);
        self.writer
            .write(move |c| {
                let from = coord::JobSource {
                    queue: &queue,
                    tenant: tenant.as_deref(),
                };
                coord::claim_jobs(c, &from, &worker, expires, lim, now)
            })
            .await
    }

    async fn heartbeat_job(
        &self,
        job_id: &str,
        token: FencingToken,
        lease: Duration,
        now_ms: u64,
    ) -> Result<u64> {
        let (id, expires, now) = (
            job_id.to_string(),
            expiry(now_ms, lease)?,
            millis("now", now_ms)?,
        );
        self.writer
            .write(move |c| coord::heartbeat_job(c, &id, token, expires, now))
            .await
    }

    async fn complete_job(
        &self,
        job_id: &str,
        token: FencingToken,
        result: JobResult,
        now_ms: u64,
    ) -> Result<()> {
        let doc = match &result {
            JobResult::Succeeded(v) => Some(validate::json("job.result", v, self.max_doc)?),
            JobResult::Failed(e) => validate::text("job.error", e, self.max_doc).map(|()| None)?,
        };
        let (id, now) = (job_id.to_string(), millis("now", now_ms)?);
        self.writer
            .write(move |c| coord::complete_job(c, &id, token, &result, doc.as_deref(), now))
            .await
    }

    async fn get_job(&self, job_id: &str) -> Result<Option<Job>> {
        let id = job_id.to_string();
        self.readers.read(move |c| reads::job(c, &id)).await
    }

    async fn acquire_lock(
        &self,
        lock: &str,
        holder: &str,
        lease: Duration,
        now_ms: u64,
    ) -> Result<LockAcquire> {
        name("lock.name", lock)?;
        name("lock.holder", holder)?;
        let (expires, now) = (expiry(now_ms, lease)?, millis("now", now_ms)?);
        let (lock, holder) = (lock.to_string(), holder.to_string());
        self.writer
            .write(move |c| coord::acquire_lock(c, &lock, &holder, expires, now))
            .await
    }

    async fn renew_lock(
        &self,
        lock: &str,
        token: FencingToken,
        lease: Duration,
        now_ms: u64,
    ) -> Result<u64> {
        let (lock, expires, now) = (
            lock.to_string(),
            expiry(now_ms, lease)?,
            millis("now", now_ms)?,
        );
        self.writer
            .write(move |c| coord::renew_lock(c, &lock, token, expires, now))
            .await
    }

    async fn release_lock(&self, lock: &str, token: FencingToken, _now_ms: u64) -> Result<()> {
        let lock = lock.to_string();
        self.writer
            .write(move |c| coord::release_lock(c, &lock, token))
            .await
    }

    async fn list_escalations(&self, filter: &EscalationFilter) -> Result<Vec<Escalation>> {
        let filter = filter.clone();
        self.readers
            .read(move |c| reads::escalations(c, &filter))
            .await
    }

    async fn get_escalation(&self, id: &str) -> Result<Option<Escalation>> {
        let id = id.to_string();
        self.readers.read(move |c| reads::escalation(c, &id)).await
    }

    async fn resolve_escalation(
        &self,
        id: &str,
        resolution: Resolution,
        by: &str,
        now_ms: u64,
    ) -> Result<Escalation> {
        name("resolved_by", by)?;
        if let Resolution::Edit(v) = &resolution {
            validate::json("resolution.edit", v, self.max_doc)?;
        }
        if let Resolution::Reject(reason) = &resolution {
            validate::text("resolution.reject", reason, self.max_doc)?;
        }
        let (id, by, now) = (id.to_string(), by.to_string(), millis("now", now_ms)?);
        self.writer
            .write(move |c| coord::resolve(c, &id, &resolution, &by, now))
            .await
    }

    async fn record_config(&self, text: &str, now_ms: u64) -> Result<ConfigVersion> {
        validate::text("config.text", text, self.max_doc)?;
        let (text, now) = (text.to_string(), millis("now", now_ms)?);
        self.writer
            .write(move |c| coord::record_config(c, &text, now))
            .await
    }

    async fn list_configs(&self, lim: u32) -> Result<Vec<ConfigVersion>> {
        self.readers.read(move |c| reads::configs(c, lim)).await
    }

    async fn get_config(&self, version: u64) -> Result<Option<StoredConfig>> {
        self.readers.read(move |c| reads::config(c, version)).await
    }

    async fn record_config_gate(&self, gate: &ConfigGate) -> Result<()> {
        let report = validate::json("gate.report", &gate.report, self.max_doc)?;
        validate::text("gate.action", &gate.action, 64)?;
        let gate = gate.clone();
        self.writer
            .write(move |c| gates::record(c, &gate, &report))
            .await
    }

    async fn config_gates(&self, from: u64, to: u64) -> Result<Vec<ConfigGate>> {
        self.readers.read(move |c| gates::list(c, from, to)).await
    }

    async fn start_eval_run(&self, run: NewEvalRun, now_ms: u64) -> Result<EvalRunStart> {
        let docs = eval::check_run(&run, self.max_doc)?;
        let now = millis("now", now_ms)?;
        self.writer
            .write(move |c| evals::start(c, &run, &docs, now))
            .await
    }

    async fn get_eval_run(&self, tenant: &str, run_id: &str) -> Result<Option<EvalRun>> {
        let (tenant, run_id) = (tenant.to_string(), run_id.to_string());
        self.readers
            .read(move |c| evals::run(c, &tenant, &run_id))
            .await
    }

    async fn list_eval_runs(&self, filter: &EvalRunFilter) -> Result<Vec<EvalRun>> {
        limit("filter.limit", filter.limit)?;
        let filter = filter.clone();
        self.readers.read(move |c| evals::runs(c, &filter)).await
    }

    async fn record_eval_result(
        &self,
        tenant: &str,
        run_id: &str,
        result: NewEvalResult,
        now_ms: u64,
    ) -> Result<()> {
        let docs = eval::check_result(tenant, run_id, &result, self.max_doc)?;
        let (tenant, run_id, now) = (
            tenant.to_string(),
            run_id.to_string(),
            millis("now", now_ms)?,
        );
        self.writer
            .write(move |c| evals::record(c, (&tenant, &run_id), &result, &docs, now))
            .await
    }

    async fn eval_results(&self, tenant: &str, run_id: &str) -> Result<Vec<EvalResult>> {
        let (tenant, run_id) = (tenant.to_string(), run_id.to_string());
        self.readers
            .read(move |c| evals::results(c, &tenant, &run_id))
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
        let summary = eval::check_finish(tenant, run_id, status, summary.as_ref(), self.max_doc)?;
        let (tenant, run_id, now) = (
            tenant.to_string(),
            run_id.to_string(),
            millis("now", now_ms)?,
        );
        self.writer
            .write(move |c| evals::finish(c, (&tenant, &run_id), status, summary.as_deref(), now))
            .await
    }

    async fn add_example(&self, e: NewExample, now_ms: u64) -> Result<ExampleAdded> {
        example::check_new(&e, self.max_doc)?;
        let now = millis("now", now_ms)?;
        self.writer.write(move |c| examples::add(c, &e, now)).await
    }

    async fn get_example(&self, tenant: Option<&str>, id: u64) -> Result<Option<Example>> {
        let tenant = tenant.map(str::to_owned);
        self.readers
            .read(move |c| examples::get(c, tenant.as_deref(), id))
            .await
    }

    async fn list_examples(&self, filter: &ExampleFilter) -> Result<Vec<Example>> {
        let filter = filter.clone();
        self.readers.read(move |c| examples::list(c, &filter)).await
    }

    async fn set_example_status(
        &self,
        tenant: Option<&str>,
        id: u64,
        status: ExampleStatus,
        now_ms: u64,
    ) -> Result<Example> {
        let now = millis("now", now_ms)?;
        let tenant = tenant.map(str::to_owned);
        self.writer
            .write(move |c| examples::set_status(c, tenant.as_deref(), id, status, now))
            .await
    }

    async fn example_changes(&self, after_revision: u64, limit: u32) -> Result<Vec<Example>> {
        self.readers
            .read(move |c| examples::changes(c, after_revision, limit))
            .await
    }

    async fn record_example_uses(&self, uses: Vec<ExampleUse>) -> Result<()> {
        example::check_uses(&uses)?;
        if uses.is_empty() {
            return Ok(());
        }
        self.writer
            .write(move |c| examples::record_uses(c, &uses))
            .await
    }

    async fn put_example_vectors(&self, vectors: Vec<ExampleVector>) -> Result<()> {
        example::check_vectors(&vectors)?;
        if vectors.is_empty() {
            return Ok(());
        }
        self.writer
            .write(move |c| examples::put_vectors(c, &vectors))
            .await
    }

    async fn example_vectors(
        &self,
        tenant: &str,
        model: &str,
        ids: Vec<u64>,
    ) -> Result<Vec<ExampleVector>> {
        example::check_vector_read(tenant, model, &ids)?;
        let (tenant, model) = (tenant.to_owned(), model.to_owned());
        self.readers
            .read(move |c| examples::vectors(c, &tenant, &model, &ids))
            .await
    }

    async fn add_quality_samples(&self, batch: Vec<NewQualitySample>) -> Result<Vec<Result<u64>>> {
        let mut checked = sample::CheckedBatch::check(batch, self.max_doc);
        let valid = checked.take_valid();
        let ids = if valid.is_empty() {
            Vec::new()
        } else {
            self.writer
                .write(move |c| samples::add_all(c, &valid))
                .await?
        };
        Ok(checked.answer(ids))
    }

    async fn get_quality_sample(
        &self,
        tenant: Option<&str>,
        id: u64,
    ) -> Result<Option<QualitySample>> {
        let tenant = tenant.map(str::to_owned);
        self.readers
            .read(move |c| samples::get(c, tenant.as_deref(), id))
            .await
    }

    async fn list_quality_samples(&self, filter: &SampleFilter) -> Result<Vec<QualitySample>> {
        limit("filter.limit", filter.limit)?;
        let filter = filter.clone();
        self.readers.read(move |c| samples::list(c, &filter)).await
    }

    async fn delete_quality_samples(&self, task_type: &str, before_ms: u64) -> Result<u64> {
        name("task_type", task_type)?;
        millis("before_ms", before_ms)?;
        let task_type = task_type.to_owned();
        self.writer
            .write(move |c| samples::delete_before(c, &task_type, before_ms))
            .await
    }

    async fn exchange_health(&self, exchange: HealthExchange, now_ms: u64) -> Result<HealthReply> {
        crate::health::check(&exchange, now_ms)?;
        self.writer
            .write(move |c| health::exchange(c, &exchange, now_ms))
            .await
    }
}
