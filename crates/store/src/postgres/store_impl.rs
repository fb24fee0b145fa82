//! `Store` for [`PostgresStore`]: validate, then one transaction per call (a write of
//! one statement, such as a claim, is its own transaction), except advances and
//! submissions, whose concurrent callers share transactions (`batch`).
//!
//! Validation is the same code the SQLite backend runs, before a connection is taken;
//! a write function that fails drops its transaction, which rolls it back whole.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgConnection;

use super::{PostgresStore, coord, evals, examples, gates, health, reads, samples, writes};
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

/// Runs `$body` (an expression over `$c: &mut PgConnection` evaluating to a `Result`)
/// in a transaction, committed only if it succeeded.
macro_rules! in_tx {
    ($self:ident, |$c:ident| $body:expr) => {{
        let mut tx = $self.pool.begin().await?;
        let out = {
            let $c: &mut PgConnection = &mut *tx;
            $body
        };
        match out {
            Ok(value) => {
                tx.commit().await?;
                Ok(value)
            }
            Err(e) => Err(e),
        }
    }};
}

/// Runs `$body` on a pooled connection, outside a transaction: for reads, and for
/// writes that are one statement (a claim, a lease extension), which is atomic on its
/// own and saves the BEGIN and COMMIT round trips. A refusal's follow-up lookup (stale
/// or missing?) only reads.
macro_rules! on_conn {
    ($self:ident, |$c:ident| $body:expr) => {{
        let mut conn = $self.pool.acquire().await?;
        let $c: &mut PgConnection = &mut *conn;
        $body
    }};
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn put_workflow(&self, w: NewWorkflow, now_ms: u64) -> Result<WorkflowDef> {
        let definition = validate::workflow(&w, self.max_doc)?;
        let now = millis("now", now_ms)?;
        in_tx!(self, |c| writes::put_workflow(c, &w, &definition, now)
            .await)
    }

    async fn get_workflow(&self, name: &str, version: Option<u32>) -> Result<Option<WorkflowDef>> {
        on_conn!(self, |c| reads::workflow(c, name, version).await)
    }

    async fn list_workflows(&self) -> Result<Vec<WorkflowDef>> {
        on_conn!(self, |c| reads::workflows(c).await)
    }

    async fn submit_task(&self, t: NewTask, now_ms: u64) -> Result<Submitted> {
        let (input, pending) = validate::new_task(&t, self.max_doc)?;
        let now = millis("now", now_ms)?;
        self.batches.submit(t, input, pending, now).await
    }

    async fn get_task(&self, task_id: &str) -> Result<Option<Task>> {
        on_conn!(self, |c| reads::task(c, task_id).await)
    }

    async fn list_tasks(&self, filter: &TaskFilter) -> Result<TaskPage> {
        limit("filter.limit", filter.limit)?;
        on_conn!(self, |c| reads::tasks(c, filter).await)
    }

    async fn cancel_task(&self, task_id: &str, reason: &str, now_ms: u64) -> Result<Cancelled> {
        validate::text("reason", reason, self.max_doc)?;
        let now = millis("now", now_ms)?;
        in_tx!(self, |c| writes::cancel(c, task_id, reason, now).await)
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
        on_conn!(self, |c| writes::claim(c, node_id, expires, lim, now).await)
    }

    async fn heartbeat_task(
        &self,
        task_id: &str,
        token: FencingToken,
        lease: Duration,
        now_ms: u64,
    ) -> Result<u64> {
        let (expires, now) = (expiry(now_ms, lease)?, millis("now", now_ms)?);
        on_conn!(self, |c| writes::heartbeat(c, task_id, token, expires, now)
            .await)
    }

    async fn release_task(&self, task_id: &str, token: FencingToken, now_ms: u64) -> Result<()> {
        let now = millis("now", now_ms)?;
        on_conn!(self, |c| writes::release(c, task_id, token, now).await)
    }

    async fn release_node_tasks(&self, node_id: &str, now_ms: u64) -> Result<u64> {
        name("node_id", node_id)?;
        let now = millis("now", now_ms)?;
        on_conn!(self, |c| writes::release_node(c, node_id, now).await)
    }

    async fn advance(&self, a: Advance, now_ms: u64) -> Result<()> {
        let plan = plan::plan(&a, self.max_doc, now_ms)?;
        self.batches.advance(a, plan).await
    }

    async fn list_steps(&self, task_id: &str) -> Result<Vec<Step>> {
        on_conn!(self, |c| reads::steps(c, task_id).await)
    }

    async fn retry_queue(&self, tenant: Option<&str>, lim: u32) -> Result<Vec<Step>> {
        on_conn!(self, |c| reads::retry_queue(c, tenant, lim).await)
    }

    async fn append_events(&self, task_id: &str, events: Vec<NewEvent>, now_ms: u64) -> Result<()> {
        let mut docs = Vec::with_capacity(events.len());
        for e in &events {
            name("event.kind", &e.kind)?;
            docs.push((
                e.kind.as_str(),
                validate::json("event.data", &e.data, self.max_doc)?,
            ));
        }
        let now = millis("now", now_ms)?;
        in_tx!(self, |c| writes::append_events(c, task_id, &docs, now)
            .await)
    }

    async fn journal(&self, task_id: &str, after_seq: u64, lim: u32) -> Result<Vec<JournalEntry>> {
        on_conn!(self, |c| reads::journal(c, task_id, after_seq, lim).await)
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
        let from = coord::JobSource { queue, tenant };
        on_conn!(self, |c| coord::claim_jobs(
            c, &from, worker_id, expires, lim, now
        )
        .await)
    }

    async fn heartbeat_job(
        &self,
        job_id: &str,
        token: FencingToken,
        lease: Duration,
        now_ms: u64,
    ) -> Result<u64> {
        let (expires, now) = (expiry(now_ms, lease)?, millis("now", now_ms)?);
        on_conn!(self, |c| coord::heartbeat_job(
            c, job_id, token, expires, now
        )
        .await)
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
        let now = millis("now", now_ms)?;
        in_tx!(self, |c| coord::complete_job(
            c,
            job_id,
            token,
            &result,
            doc.as_deref(),
            now
        )
        .await)
    }

    async fn get_job(&self, job_id: &str) -> Result<Option<Job>> {
        on_conn!(self, |c| reads::job(c, job_id).await)
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
        in_tx!(self, |c| coord::acquire_lock(c, lock, holder, expires, now)
            .await)
    }

    async fn renew_lock(
        &self,
        lock: &str,
        token: FencingToken,
        lease: Duration,
        now_ms: u64,
    ) -> Result<u64> {
        let (expires, now) = (expiry(now_ms, lease)?, millis("now", now_ms)?);
        on_conn!(self, |c| coord::renew_lock(c, lock, token, expires, now)
            .await)
    }

    async fn release_lock(&self, lock: &str, token: FencingToken, _now_ms: u64) -> Result<()> {
        on_conn!(self, |c| coord::release_lock(c, lock, token).await)
    }

    async fn list_escalations(&self, filter: &EscalationFilter) -> Result<Vec<Escalation>> {
        on_conn!(self, |c| reads::escalations(c, filter).await)
    }

    async fn get_escalation(&self, id: &str) -> Result<Option<Escalation>> {
        on_conn!(self, |c| reads::escalation(c, id).await)
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
        let now = millis("now", now_ms)?;
        in_tx!(self, |c| coord::resolve(c, id, &resolution, by, now).await)
    }

    async fn record_config(&self, text: &str, now_ms: u64) -> Result<ConfigVersion> {
        validate::text("config.text", text, self.max_doc)?;
        let now = millis("now", now_ms)?;
        in_tx!(self, |c| coord::record_config(c, text, now).await)
    }

    async fn list_configs(&self, lim: u32) -> Result<Vec<ConfigVersion>> {
        on_conn!(self, |c| reads::configs(c, lim).await)
    }

    async fn get_config(&self, version: u64) -> Result<Option<StoredConfig>> {
        on_conn!(self, |c| reads::config(c, version).await)
    }

    async fn record_config_gate(&self, gate: &ConfigGate) -> Result<()> {
        let report = validate::json("gate.report", &gate.report, self.max_doc)?;
        validate::text("gate.action", &gate.action, 64)?;
        in_tx!(self, |c| gates::record(c, gate, &report).await)
    }

    async fn config_gates(&self, from: u64, to: u64) -> Result<Vec<ConfigGate>> {
        on_conn!(self, |c| gates::list(c, from, to).await)
    }

    async fn start_eval_run(&self, run: NewEvalRun, now_ms: u64) -> Result<EvalRunStart> {
        let docs = eval::check_run(&run, self.max_doc)?;
        let now = millis("now", now_ms)?;
        in_tx!(self, |c| evals::start(c, &run, &docs, now).await)
    }

    async fn get_eval_run(&self, tenant: &str, run_id: &str) -> Result<Option<EvalRun>> {
        on_conn!(self, |c| evals::run(c, tenant, run_id).await)
    }

    async fn list_eval_runs(&self, filter: &EvalRunFilter) -> Result<Vec<EvalRun>> {
        on_conn!(self, |c| evals::runs(c, filter).await)
    }

    async fn record_eval_result(
        &self,
        tenant: &str,
        run_id: &str,
        result: NewEvalResult,
        now_ms: u64,
    ) -> Result<()> {
        let docs = eval::check_result(tenant, run_id, &result, self.max_doc)?;
        let now = millis("now", now_ms)?;
        on_conn!(self, |c| evals::record(
            c,
            (tenant, run_id),
            &result,
            &docs,
            now
        )
        .await)
    }

    async fn eval_results(&self, tenant: &str, run_id: &str) -> Result<Vec<EvalResult>> {
        on_conn!(self, |c| evals::results(c, tenant, run_id).await)
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
        let now = millis("now", now_ms)?;
        on_conn!(self, |c| evals::finish(
            c,
            (tenant, run_id),
            status,
            summary.as_deref(),
            now
        )
        .await)
    }

    async fn add_example(&self, e: NewExample, now_ms: u64) -> Result<ExampleAdded> {
        example::check_new(&e, self.max_doc)?;
        let now = millis("now", now_ms)?;
        in_tx!(self, |c| examples::add(c, &e, now).await)
    }

    async fn get_example(&self, tenant: Option<&str>, id: u64) -> Result<Option<Example>> {
        on_conn!(self, |c| examples::get(c, tenant, id).await)
    }

    async fn list_examples(&self, filter: &ExampleFilter) -> Result<Vec<Example>> {
        on_conn!(self, |c| examples::list(c, filter).await)
    }

    async fn set_example_status(
        &self,
        tenant: Option<&str>,
        id: u64,
        status: ExampleStatus,
        now_ms: u64,
    ) -> Result<Example> {
        let now = millis("now", now_ms)?;
        in_tx!(self, |c| examples::set_status(c, tenant, id, status, now)
            .await)
    }

    async fn example_changes(&self, after_revision: u64, limit: u32) -> Result<Vec<Example>> {
        on_conn!(self, |c| examples::changes(c, after_revision, limit).await)
    }

    async fn record_example_uses(&self, uses: Vec<ExampleUse>) -> Result<()> {
        example::check_uses(&uses)?;
        if uses.is_empty() {
            return Ok(());
        }
        in_tx!(self, |c| examples::record_uses(c, &uses).await)
    }

    async fn put_example_vectors(&self, vectors: Vec<ExampleVector>) -> Result<()> {
        example::check_vectors(&vectors)?;
        if vectors.is_empty() {
            return Ok(());
        }
        in_tx!(self, |c| examples::put_vectors(c, &vectors).await)
    }

    async fn example_vectors(
        &self,
        tenant: &str,
        model: &str,
        ids: Vec<u64>,
    ) -> Result<Vec<ExampleVector>> {
        example::check_vector_read(tenant, model, &ids)?;
        on_conn!(self, |c| examples::vectors(c, tenant, model, &ids).await)
    }

    async fn add_quality_samples(&self, batch: Vec<NewQualitySample>) -> Result<Vec<Result<u64>>> {
        let mut checked = sample::CheckedBatch::check(batch, self.max_doc);
        let valid = checked.take_valid();
        let ids = if valid.is_empty() {
            Vec::new()
        } else {
            in_tx!(self, |c| samples::add_all(c, &valid).await)?
        };
        Ok(checked.answer(ids))
    }

    async fn get_quality_sample(
        &self,
        tenant: Option<&str>,
        id: u64,
    ) -> Result<Option<QualitySample>> {
        on_conn!(self, |c| samples::get(c, tenant, id).await)
    }

    async fn list_quality_samples(&self, filter: &SampleFilter) -> Result<Vec<QualitySample>> {
        on_conn!(self, |c| samples::list(c, filter).await)
    }

    async fn delete_quality_samples(&self, task_type: &str, before_ms: u64) -> Result<u64> {
        name("task_type", task_type)?;
        on_conn!(self, |c| samples::delete_before(c, task_type, before_ms)
            .await)
    }

    async fn exchange_health(&self, exchange: HealthExchange, now_ms: u64) -> Result<HealthReply> {
        crate::health::check(&exchange, now_ms)?;
        in_tx!(self, |c| health::exchange(c, &exchange, now_ms).await)
    }
}
