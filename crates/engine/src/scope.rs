//! The engine's API on tasks, worker jobs and escalations, each call within a [`Scope`]:
//! the tenants whose records the caller may reach.
//!
//! The decision that shapes it: another tenant's record is not "forbidden", it is
//! absent. Every call by id first reads the record's tenant and answers `NotFound` when
//! the scope does not admit it, exactly as for an id that never existed, so a caller
//! cannot even learn that another tenant's id is real. A record's tenant never changes
//! (it is its task's, fixed at submission), so checking before writing is not a race.
//! Lists and claims pass the tenant to the store, which filters in its query.

use std::sync::Arc;
use std::time::Duration;

use holdfast_store::{
    Cancelled, Escalation, EscalationFilter, FencingToken, Job, JobResult, JobStatus, JournalEntry,
    Resolution, Step, StoreError, Task, TaskFilter, TaskPage,
};

use crate::engine::{Engine, not_found};
use crate::error::EngineError;
use crate::event::{TaskEvent, TaskEventKind};

/// Which tenants' tasks (and their steps, journals, jobs and escalations) a call reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One tenant's.
    Tenant(String),
    /// Every tenant's: operators reading, and the engine's own callers (the demo, tests).
    All,
}

impl Scope {
    /// The one tenant, or `None` for every tenant.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Scope::Tenant(tenant) => Some(tenant),
            Scope::All => None,
        }
    }

    /// Whether a record of `tenant` is within reach.
    pub fn admits(&self, tenant: &str) -> bool {
        self.tenant().is_none_or(|own| own == tenant)
    }

    fn owned(&self) -> Option<String> {
        self.tenant().map(str::to_owned)
    }
}

impl Engine {
    /// A task.
    pub async fn task(&self, task_id: &str, scope: &Scope) -> Result<Task, EngineError> {
        self.inner
            .store
            .get_task(task_id)
            .await?
            .filter(|task| scope.admits(&task.tenant))
            .ok_or_else(|| not_found("task", task_id, None))
    }

    /// Tasks, newest first, of the scope's tenant (`filter.tenant` is set from it).
    pub async fn tasks(&self, filter: &TaskFilter, scope: &Scope) -> Result<TaskPage, EngineError> {
        let filter = TaskFilter {
            tenant: scope.owned(),
            ..filter.clone()
        };
        Ok(self.inner.store.list_tasks(&filter).await?)
    }

    /// A task's step records.
    pub async fn steps(&self, task_id: &str, scope: &Scope) -> Result<Vec<Step>, EngineError> {
        self.task(task_id, scope).await?;
        Ok(self.inner.store.list_steps(task_id).await?)
    }

    /// A task's journal after `after_seq`.
    pub async fn journal(
        &self,
        task_id: &str,
        scope: &Scope,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<JournalEntry>, EngineError> {
        self.task(task_id, scope).await?;
        Ok(self.inner.store.journal(task_id, after_seq, limit).await?)
    }

    /// The retry queue: steps waiting to be retried, soonest first.
    pub async fn retry_queue(&self, scope: &Scope, limit: u32) -> Result<Vec<Step>, EngineError> {
        Ok(self.inner.store.retry_queue(scope.tenant(), limit).await?)
    }

    /// Cancels a task that has not finished.
    pub async fn cancel(
        &self,
        task_id: &str,
        scope: &Scope,
        reason: &str,
    ) -> Result<Cancelled, EngineError> {
        self.task(task_id, scope).await?;
        let now = self.inner.clock.unix_millis();
        match self.inner.store.cancel_task(task_id, reason, now).await {
            Ok(cancelled) => {
                if let Cancelled::Cancelled(task) = &cancelled {
                    (self.inner.events)(&TaskEvent {
                        task_id: task.task_id.clone(),
                        workflow: Arc::from(task.workflow.as_str()),
                        trace: crate::trace::TaskTrace::of(
                            &task.task_id,
                            task.traceparent.as_deref(),
                        ),
                        kind: TaskEventKind::Cancelled,
                    });
                }
                Ok(cancelled)
            }
            Err(holdfast_store::StoreError::NotFound { .. }) => {
                Err(not_found("task", task_id, None))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Claims up to `limit` jobs of `queue` of the scope's tenant for `worker`, leased
    /// for `lease`.
    pub async fn claim_jobs(
        &self,
        queue: &str,
        scope: &Scope,
        worker: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Job>, EngineError> {
        let now = self.inner.clock.unix_millis();
        Ok(self
            .inner
            .store
            .claim_jobs(queue, scope.tenant(), worker, lease, limit, now)
            .await?)
    }

    /// Extends a job lease; a stale token is refused.
    pub async fn heartbeat_job(
        &self,
        job_id: &str,
        scope: &Scope,
        token: FencingToken,
        lease: Duration,
    ) -> Result<u64, EngineError> {
        self.job(job_id, scope).await?;
        let now = self.inner.clock.unix_millis();
        Ok(self
            .inner
            .store
            .heartbeat_job(job_id, token, lease, now)
            .await?)
    }

    /// A worker's result; a stale token is refused (the job was taken over). The same
    /// result sent again under the same token is accepted: an earlier send that the
    /// worker saw fail (a 503 while the store was slow) may have been recorded anyway.
    pub async fn complete_job(
        &self,
        job_id: &str,
        scope: &Scope,
        token: FencingToken,
        result: JobResult,
    ) -> Result<(), EngineError> {
        self.job(job_id, scope).await?;
        let now = self.inner.clock.unix_millis();
        match self
            .inner
            .store
            .complete_job(job_id, token, result.clone(), now)
            .await
        {
            Ok(()) => {}
            Err(StoreError::StaleLease { .. })
                if self
                    .job(job_id, scope)
                    .await
                    .is_ok_and(|job| recorded(&job, token, &result)) => {}
            Err(e) => return Err(e.into()),
        }
        self.inner.wake.notify_one();
        Ok(())
    }

    /// A job.
    pub async fn job(&self, job_id: &str, scope: &Scope) -> Result<Job, EngineError> {
        self.inner
            .store
            .get_job(job_id)
            .await?
            .filter(|job| scope.admits(&job.tenant))
            .ok_or_else(|| not_found("job", job_id, None))
    }

    /// Escalations matching `filter`, of the scope's tenant (`filter.tenant` is set
    /// from it).
    pub async fn escalations(
        &self,
        filter: &EscalationFilter,
        scope: &Scope,
    ) -> Result<Vec<Escalation>, EngineError> {
        let filter = EscalationFilter {
            tenant: scope.owned(),
            ..filter.clone()
        };
        Ok(self.inner.store.list_escalations(&filter).await?)
    }

    /// An escalation.
    pub async fn escalation(&self, id: &str, scope: &Scope) -> Result<Escalation, EngineError> {
        self.inner
            .store
            .get_escalation(id)
            .await?
            .filter(|esc| scope.admits(&esc.tenant))
            .ok_or_else(|| not_found("escalation", id, None))
    }

    /// Records a person's decision and wakes the task. `by` is who decided, as the
    /// caller authenticated it (the server passes the client key's name).
    pub async fn resolve(
        &self,
        id: &str,
        scope: &Scope,
        resolution: Resolution,
        by: &str,
    ) -> Result<Escalation, EngineError> {
        self.escalation(id, scope).await?;
        let now = self.inner.clock.unix_millis();
        let esc = self
            .inner
            .store
            .resolve_escalation(id, resolution, by, now)
            .await?;
        self.inner.wake.notify_one();
        self.inner.resolved(&esc).await;
        Ok(esc)
    }
}

/// Whether `job` already holds `result`, recorded under `token`.
fn recorded(job: &Job, token: FencingToken, result: &JobResult) -> bool {
    job.token == token
        && match (result, job.status) {
            (JobResult::Succeeded(output), JobStatus::Succeeded) => {
                job.result.as_ref() == Some(output)
            }
            (JobResult::Failed(error), JobStatus::Failed) => job.error.as_ref() == Some(error),
            (JobResult::Succeeded(_) | JobResult::Failed(_), _) => false,
        }
}
