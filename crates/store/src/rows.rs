//! Raw rows as both backends read them, and their conversion into the public records.
//!
//! Each backend reads columns into these plain structs (strings and integers, as
//! stored); the conversion into [`Task`], [`Job`]… is written once here, so a corrupt
//! value is reported the same way whichever database it came from.

use serde_json::Value;

use crate::coordination::{
    ConfigVersion, Escalation, EscalationStatus, FencingToken, Job, JobStatus, Resolution,
};
use crate::task::{
    Checkpoint, JournalEntry, Lease, Step, StepStatus, Task, TaskStatus, WorkflowDef,
};
use crate::validate::{parse_json, unsigned};
use crate::{Result, StoreError};

/// The task columns, in the order every `SELECT` of a task lists them.
pub(crate) struct TaskRow {
    pub(crate) task_id: String,
    pub(crate) tenant: String,
    pub(crate) workflow: String,
    pub(crate) workflow_version: i64,
    pub(crate) status: String,
    pub(crate) input: String,
    pub(crate) output: Option<String>,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) completed_steps: String,
    pub(crate) pending_steps: String,
    pub(crate) retry_count: i64,
    pub(crate) last_error: Option<String>,
    pub(crate) checkpoint_step: Option<String>,
    pub(crate) checkpoint_at: Option<i64>,
    pub(crate) cost_usd: f64,
    pub(crate) next_run_at: Option<i64>,
    pub(crate) lease_owner: Option<String>,
    pub(crate) lease_token: i64,
    pub(crate) lease_expires_at: Option<i64>,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) traceparent: Option<String>,
}

fn version(what: &'static str, v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| StoreError::corrupt(what, format!("version {v}")))
}

fn opt_ms(what: &'static str, v: Option<i64>) -> Result<Option<u64>> {
    v.map(|v| unsigned(what, v)).transpose()
}

fn opt_json(what: &'static str, v: Option<&str>) -> Result<Option<Value>> {
    v.map(|v| parse_json(what, v)).transpose()
}

fn names(what: &'static str, text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| StoreError::corrupt(what, e.to_string()))
}

impl TaskRow {
    pub(crate) fn into_task(self) -> Result<Task> {
        let lease = match (self.lease_owner, self.lease_expires_at) {
            (Some(owner), Some(exp)) => Some(Lease {
                owner,
                token: FencingToken(unsigned("task.lease_token", self.lease_token)?),
                expires_at_ms: unsigned("task.lease_expires_at", exp)?,
            }),
            _ => None,
        };
        let last_checkpoint = match (self.checkpoint_step, self.checkpoint_at) {
            (Some(step), Some(at)) => Some(Checkpoint {
                step,
                at_ms: unsigned("task.checkpoint_at", at)?,
            }),
            _ => None,
        };
        Ok(Task {
            task_id: self.task_id,
            tenant: self.tenant,
            workflow: self.workflow,
            workflow_version: version("task.workflow_version", self.workflow_version)?,
            status: TaskStatus::parse(&self.status)?,
            input: parse_json("task.input", &self.input)?,
            output: opt_json("task.output", self.output.as_deref())?,
            idempotency_key: self.idempotency_key,
            completed_steps: names("task.completed_steps", &self.completed_steps)?,
            pending_steps: names("task.pending_steps", &self.pending_steps)?,
            retry_count: u32::try_from(self.retry_count).unwrap_or(u32::MAX),
            last_error: self.last_error,
            last_checkpoint,
            cost_usd: self.cost_usd,
            next_run_at_ms: opt_ms("task.next_run_at", self.next_run_at)?,
            lease,
            created_at_ms: unsigned("task.created_at", self.created_at)?,
            updated_at_ms: unsigned("task.updated_at", self.updated_at)?,
            traceparent: self.traceparent,
        })
    }
}

/// A workflow row: name, version, definition, created_at.
pub(crate) fn workflow(
    name: String,
    v: i64,
    definition: &str,
    created_at: i64,
) -> Result<WorkflowDef> {
    Ok(WorkflowDef {
        name,
        version: version("workflow.version", v)?,
        definition: parse_json("workflow.definition", definition)?,
        created_at_ms: unsigned("workflow.created_at", created_at)?,
    })
}

/// The step columns.
pub(crate) struct StepRow {
    pub(crate) task_id: String,
    pub(crate) name: String,
    pub(crate) status: String,
    pub(crate) attempt: i64,
    pub(crate) output: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) next_attempt_at: Option<i64>,
    pub(crate) updated_at: i64,
}

impl StepRow {
    pub(crate) fn into_step(self) -> Result<Step> {
        Ok(Step {
            task_id: self.task_id,
            name: self.name,
            status: StepStatus::parse(&self.status)?,
            attempt: u32::try_from(self.attempt).unwrap_or(u32::MAX),
            output: opt_json("step.output", self.output.as_deref())?,
            error: self.error,
            next_attempt_at_ms: opt_ms("step.next_attempt_at", self.next_attempt_at)?,
            updated_at_ms: unsigned("step.updated_at", self.updated_at)?,
        })
    }
}

/// A journal row: task_id, seq, at, kind, data.
pub(crate) fn journal(
    task_id: String,
    seq: i64,
    at: i64,
    kind: String,
    data: &str,
) -> Result<JournalEntry> {
    Ok(JournalEntry {
        task_id,
        seq: unsigned("event.seq", seq)?,
        at_ms: unsigned("event.at", at)?,
        kind,
        data: parse_json("event.data", data)?,
    })
}

/// The job columns.
pub(crate) struct JobRow {
    pub(crate) job_id: String,
    pub(crate) task_id: String,
    pub(crate) tenant: String,
    pub(crate) step: String,
    pub(crate) queue: String,
    pub(crate) payload: String,
    pub(crate) status: String,
    pub(crate) token: i64,
    pub(crate) worker: Option<String>,
    pub(crate) lease_expires_at: Option<i64>,
    pub(crate) result: Option<String>,
    pub(crate) error: Option<String>,
}

impl JobRow {
    pub(crate) fn into_job(self) -> Result<Job> {
        Ok(Job {
            job_id: self.job_id,
            task_id: self.task_id,
            tenant: self.tenant,
            step: self.step,
            queue: self.queue,
            payload: parse_json("job.payload", &self.payload)?,
            status: JobStatus::parse(&self.status)?,
            token: FencingToken(unsigned("job.token", self.token)?),
            worker: self.worker,
            lease_expires_at_ms: opt_ms("job.lease_expires_at", self.lease_expires_at)?,
            result: opt_json("job.result", self.result.as_deref())?,
            error: self.error,
        })
    }
}

/// The escalation columns.
pub(crate) struct EscalationRow {
    pub(crate) escalation_id: String,
    pub(crate) task_id: String,
    pub(crate) tenant: String,
    pub(crate) step: String,
    pub(crate) reason: String,
    pub(crate) payload: String,
    pub(crate) status: String,
    pub(crate) resolution: Option<String>,
    pub(crate) resolved_by: Option<String>,
    pub(crate) created_at: i64,
    pub(crate) resolved_at: Option<i64>,
}

impl EscalationRow {
    pub(crate) fn into_escalation(self) -> Result<Escalation> {
        let status = EscalationStatus::parse(&self.status)?;
        let data = opt_json("escalation.resolution", self.resolution.as_deref())?;
        let resolution = match (status, data) {
            (EscalationStatus::Approved, _) => Some(Resolution::Approve),
            (EscalationStatus::Edited, Some(v)) => Some(Resolution::Edit(v)),
            (EscalationStatus::Rejected, Some(Value::String(reason))) => {
                Some(Resolution::Reject(reason))
            }
            (EscalationStatus::Open | EscalationStatus::Cancelled, _) => None,
            (EscalationStatus::Edited | EscalationStatus::Rejected, other) => {
                return Err(StoreError::corrupt(
                    "escalation.resolution",
                    format!("{other:?}"),
                ));
            }
        };
        Ok(Escalation {
            escalation_id: self.escalation_id,
            task_id: self.task_id,
            tenant: self.tenant,
            step: self.step,
            reason: self.reason,
            payload: parse_json("escalation.payload", &self.payload)?,
            status,
            resolution,
            resolved_by: self.resolved_by,
            created_at_ms: unsigned("escalation.created_at", self.created_at)?,
            resolved_at_ms: opt_ms("escalation.resolved_at", self.resolved_at)?,
        })
    }
}

/// How a resolution is stored: its status and its data.
pub(crate) fn resolution_columns(r: &Resolution) -> (EscalationStatus, Option<String>) {
    match r {
        Resolution::Approve => (EscalationStatus::Approved, None),
        Resolution::Edit(v) => (EscalationStatus::Edited, Some(v.to_string())),
        Resolution::Reject(reason) => (
            EscalationStatus::Rejected,
            Some(Value::from(reason.as_str()).to_string()),
        ),
    }
}

/// A config version row: version, sha256, created_at.
pub(crate) fn config_version(v: i64, sha256: String, created_at: i64) -> Result<ConfigVersion> {
    Ok(ConfigVersion {
        version: unsigned("config.version", v)?,
        sha256,
        created_at_ms: unsigned("config.created_at", created_at)?,
    })
}

/// A config gate row: version, passed, action, report (JSON text), decided_at.
pub(crate) fn config_gate(
    version: i64,
    passed: bool,
    action: String,
    report: &str,
    decided_at: i64,
) -> Result<crate::coordination::ConfigGate> {
    Ok(crate::coordination::ConfigGate {
        version: unsigned("gate.version", version)?,
        passed,
        action,
        report: serde_json::from_str(report)
            .map_err(|e| crate::StoreError::corrupt("config gate report", e.to_string()))?,
        decided_at_ms: unsigned("gate.decided_at", decided_at)?,
    })
}
