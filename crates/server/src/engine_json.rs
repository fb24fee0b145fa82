//! The JSON shapes of the workflow API: tasks, steps, journal entries, workflow
//! definitions, worker jobs and escalations as clients read them.
//!
//! The decision: the store's records are not `Serialize`, and should not be (their
//! shape is the database's business), so the wire shape is written here, once, field
//! by field. Times are Unix milliseconds in fields ending in `_ms`; absent values are
//! `null`, never left out, so that clients see every field of the documented shape.
//! A task's lease token is not shown: it is the fencing token of the node running it.

use holdfast_store::{
    Escalation, Job, JournalEntry, Resolution, Step, Task, TaskStatus, WorkflowDef,
};
use serde_json::{Value, json};

/// A task.
pub(crate) fn task(task: &Task) -> Value {
    json!({
        "task_id": task.task_id,
        "workflow": task.workflow,
        "workflow_version": task.workflow_version,
        "status": task.status.as_str(),
        "input": task.input,
        "output": task.output,
        "idempotency_key": task.idempotency_key,
        "completed_steps": task.completed_steps,
        "pending_steps": task.pending_steps,
        "retry_count": task.retry_count,
        "last_error": task.last_error,
        "last_checkpoint": task.last_checkpoint.as_ref().map(|c| json!({
            "step": c.step,
            "at_ms": c.at_ms,
        })),
        "cost_usd": task.cost_usd,
        "created_at_ms": task.created_at_ms,
        "updated_at_ms": task.updated_at_ms,
        "next_run_at_ms": task.next_run_at_ms,
        "lease": task.lease.as_ref().map(|l| json!({
            "owner": l.owner,
            "expires_at_ms": l.expires_at_ms,
        })),
    })
}

/// A step record.
pub(crate) fn step(step: &Step) -> Value {
    json!({
        "task_id": step.task_id,
        "name": step.name,
        "status": step.status.as_str(),
        "attempt": step.attempt,
        "output": step.output,
        "error": step.error,
        "next_attempt_at_ms": step.next_attempt_at_ms,
        "updated_at_ms": step.updated_at_ms,
    })
}

/// A journal entry.
pub(crate) fn journal_entry(entry: &JournalEntry) -> Value {
    json!({
        "task_id": entry.task_id,
        "seq": entry.seq,
        "at_ms": entry.at_ms,
        "kind": entry.kind,
        "data": entry.data,
    })
}

/// A registered workflow version.
pub(crate) fn workflow(def: &WorkflowDef) -> Value {
    json!({
        "name": def.name,
        "version": def.version,
        "definition": def.definition,
        "created_at_ms": def.created_at_ms,
    })
}

/// A worker job, as its worker sees it: the token is what the worker presents on
/// heartbeats and on completion.
pub(crate) fn job(job: &Job) -> Value {
    json!({
        "job_id": job.job_id,
        "task_id": job.task_id,
        "step": job.step,
        "queue": job.queue,
        "payload": job.payload,
        "idempotency_key": holdfast_engine::idempotency_key(&job.task_id, &job.step),
        "status": job.status.as_str(),
        "token": job.token.0,
        "worker_id": job.worker,
        "lease_expires_at_ms": job.lease_expires_at_ms,
    })
}

/// An escalation.
pub(crate) fn escalation(esc: &Escalation) -> Value {
    json!({
        "escalation_id": esc.escalation_id,
        "task_id": esc.task_id,
        "step": esc.step,
        "reason": esc.reason,
        "payload": esc.payload,
        "status": esc.status.as_str(),
        "resolution": esc.resolution.as_ref().map(resolution),
        "resolved_by": esc.resolved_by,
        "created_at_ms": esc.created_at_ms,
        "resolved_at_ms": esc.resolved_at_ms,
    })
}

fn resolution(r: &Resolution) -> Value {
    match r {
        Resolution::Approve => json!({"action": "approve"}),
        Resolution::Edit(value) => json!({"action": "edit", "value": value}),
        Resolution::Reject(reason) => json!({"action": "reject", "reason": reason}),
    }
}

/// The status named `text`, or the list of valid ones.
pub(crate) fn task_status(text: &str) -> Result<TaskStatus, String> {
    TaskStatus::ALL
        .iter()
        .copied()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| {
            let all: Vec<&str> = TaskStatus::ALL.iter().map(|s| s.as_str()).collect();
            format!("unknown status {text:?}; one of {}", all.join(", "))
        })
}
