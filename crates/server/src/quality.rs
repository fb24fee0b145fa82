//! The quality loop's [`Subject`] in process: a suite's cases and its judges run
//! through a gateway state, with no HTTP in between.
//!
//! The decision: a subject holds one gateway state (`Arc<Inner>`) for its whole life,
//! so a suite run evaluates exactly one configuration, whatever reloads happen
//! meanwhile; [`Gateway::eval_subject`] takes the state running now. Chats are made by
//! `inproc.rs` like the engine's `llm` steps (the whole pipeline, the ledger under
//! `quality.eval`, no key limits, no replay, no degraded answers: a canned answer must
//! not be graded as the route's own); tasks are submitted to the attached engine as
//! the case's tenant and waited for. A case's idempotency key makes a case resumed after
//! an interruption find its task instead of starting a second one.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use holdfast_engine::{Scope, Submission};
use holdfast_quality::{Answer, Chat, Subject, SubjectError, TaskCall};
use holdfast_store::{Submitted, TaskStatus};
use serde_json::{Value, json};

use crate::gateway::{Gateway, Inner};
use crate::inproc::{self, Local, Refused};

/// How often a task is looked at while it runs: from the first to the last, doubling.
const FIRST_POLL: Duration = Duration::from_millis(10);
const LAST_POLL: Duration = Duration::from_millis(250);

impl Gateway {
    /// The subject a suite runs against in process: the configuration running now (one
    /// state for the whole run), calls and tasks made as `tenant`.
    pub async fn eval_subject(&self, tenant: &str) -> Arc<dyn Subject> {
        let (inner, describe) = {
            let running = self.live.running().await;
            let describe = json!({
                "via": "in-process",
                "config": running.config.source.name,
                "config_version": running.version,
            });
            (self.live.current(), describe)
        };
        Arc::new(GatewaySubject::new(inner, tenant, describe))
    }
}

/// A gateway state as a suite's subject.
pub(crate) struct GatewaySubject {
    inner: Arc<Inner>,
    tenant: Arc<str>,
    /// The tenant its tasks run as (a gate's, for its tasks to run on `inner`).
    task_tenant: Arc<str>,
    describe: Value,
}

impl GatewaySubject {
    /// A subject over `inner`, any gateway state (the running one, or a candidate
    /// built beside it before it takes traffic), calling as `tenant`; `describe` is
    /// what the runs record it as.
    pub(crate) fn new(inner: Arc<Inner>, tenant: &str, describe: Value) -> GatewaySubject {
        GatewaySubject {
            inner,
            tenant: Arc::from(tenant),
            task_tenant: Arc::from(tenant),
            describe,
        }
    }

    /// The same subject submitting its tasks as `tenant`.
    pub(crate) fn with_task_tenant(self, tenant: &str) -> GatewaySubject {
        GatewaySubject {
            task_tenant: Arc::from(tenant),
            ..self
        }
    }
}

fn refused(Refused { error, cost_usd }: Refused) -> SubjectError {
    SubjectError {
        code: error.code().to_owned(),
        message: error.to_string(),
        cost_usd,
    }
}

#[async_trait]
impl Subject for GatewaySubject {
    fn describe(&self) -> Value {
        self.describe.clone()
    }

    async fn chat(&self, call: Chat) -> Result<Answer, SubjectError> {
        let mut body = call.body;
        body["model"] = Value::String(call.route);
        body["stream"] = Value::Bool(false);
        let bytes = serde_json::to_vec(&body)
            .map_err(|e| SubjectError::new("invalid_request", e.to_string()))?;
        let local = Local {
            body: &bytes,
            tenant: &self.tenant,
            agent: None,
            idempotency_key: call.idempotency_key,
            timeout: call.timeout,
            endpoint: "quality.eval",
            few_shot: None,
            step_trace: None,
        };
        let answered = inproc::complete(&self.inner, local)
            .await
            .map_err(refused)?;
        let mut answer = Answer::from_chat(&answered.response, answered.cost_usd);
        answer.served_by = answered.target.map(|t| t.to_string());
        answer.request_id = Some(answered.request_id.to_string());
        Ok(answer)
    }

    async fn task(&self, call: TaskCall) -> Result<Answer, SubjectError> {
        let Some(engine) = self.inner.engine.get() else {
            return Err(SubjectError::new(
                "engine_unavailable",
                "this gateway runs no workflow engine",
            ));
        };
        let submitted = engine
            .submit(Submission {
                tenant: self.task_tenant.to_string(),
                workflow: call.workflow,
                version: call.version,
                input: call.input,
                idempotency_key: Some(call.idempotency_key),
                traceparent: None,
            })
            .await
            .map_err(|e| SubjectError::new("task_refused", e.to_string()))?;
        let task_id = match submitted {
            Submitted::Created(task) | Submitted::Existing(task) => task.task_id,
        };
        let clock = &self.inner.clock;
        let deadline = clock.now() + call.timeout;
        let scope = Scope::Tenant(self.task_tenant.to_string());
        let mut pause = FIRST_POLL;
        loop {
            let task = engine
                .task(&task_id, &scope)
                .await
                .map_err(|e| SubjectError::new("task_lost", e.to_string()))?;
            let failed = |code: &str| SubjectError {
                code: code.to_owned(),
                message: format!(
                    "task {task_id}: {}",
                    task.last_error.as_deref().unwrap_or("no error recorded")
                ),
                cost_usd: task.cost_usd,
            };
            match task.status {
                TaskStatus::Succeeded => {
                    let output = task.output.clone().unwrap_or(Value::Null);
                    return Ok(Answer::from_output(output, task.cost_usd, &task_id));
                }
                TaskStatus::Failed => return Err(failed("task_failed")),
                TaskStatus::Cancelled => return Err(failed("task_cancelled")),
                TaskStatus::Queued | TaskStatus::Running | TaskStatus::Waiting => {}
            }
            if clock.now() >= deadline {
                return Err(SubjectError {
                    code: "timeout".to_owned(),
                    message: format!(
                        "task {task_id} is still {} at the case's timeout",
                        task.status
                    ),
                    cost_usd: task.cost_usd,
                });
            }
            clock.sleep_until(clock.now() + pause).await;
            pause = (pause * 2).min(LAST_POLL);
        }
    }
}
