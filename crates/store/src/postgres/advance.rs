//! The atomic advance on PostgreSQL: one call of `hf_advance` (migration 0003), one
//! round trip; and what the batched path (`batch`, `hf_advance_many`) shares with it:
//! the values sent and the meaning of the codes returned.
//!
//! The function runs fence, task, step, journal, jobs, escalation and the wake check
//! in order, inside the single statement's own transaction: the lease check is the
//! `WHERE` clause of the task's `UPDATE` (which also row-locks the task, serialising
//! its journal numbering and ordering it against `complete_job`), the step upsert
//! refuses to overwrite a committed step by raising `HF409`, and any error undoes the
//! whole statement (invariant 1). Five round trips per advance (BEGIN, task, step,
//! events, COMMIT) made the network, not the disk, the limit; the statements mirror
//! the SQLite twin, `sqlite/advance.rs`.

use sqlx::PgPool;

use crate::plan::AdvancePlan;
use crate::task::Advance;
use crate::{Result, StoreError};

/// The SQLSTATE `hf_advance` raises when the step is already committed.
const STEP_COMMITTED: &str = "HF409";

pub(super) async fn advance(pool: &PgPool, a: &Advance, p: &AdvancePlan) -> Result<()> {
    let step = a.step.as_ref();
    let kinds: Vec<&str> = a.events.iter().map(|e| e.kind.as_str()).collect();
    let data: Vec<&str> = p.events.iter().map(String::as_str).collect();
    let job_ids: Vec<&str> = a.jobs.iter().map(|j| j.job_id.as_str()).collect();
    let job_queues: Vec<&str> = a.jobs.iter().map(|j| j.queue.as_str()).collect();
    let job_steps: Vec<&str> = a.jobs.iter().map(|j| j.step.as_str()).collect();
    let job_payloads: Vec<&str> = p.job_payloads.iter().map(String::as_str).collect();
    let escalation = a.escalation.as_ref();
    let outcome: std::result::Result<i32, sqlx::Error> = sqlx::query_scalar(ADVANCE)
        .bind(&a.task_id)
        .bind(a.token.0 as i64)
        .bind(p.now)
        .bind(p.status)
        .bind(p.next_run)
        .bind(p.pending.as_deref())
        .bind(p.output.as_deref())
        .bind(p.last_error.as_deref())
        .bind(p.retried)
        .bind(p.cost)
        .bind(p.completed.as_deref())
        .bind(p.checkpoint.as_deref())
        .bind(step.map(|s| s.status.as_str()))
        .bind(step.map(|s| i64::from(s.attempt)))
        .bind(p.step_output.as_deref())
        .bind(step.and_then(|s| s.error.as_deref()))
        .bind(step.and_then(|s| s.next_attempt_at_ms).map(|t| t as i64))
        .bind(&kinds)
        .bind(&data)
        .bind(&job_ids)
        .bind(&job_queues)
        .bind(&job_steps)
        .bind(&job_payloads)
        .bind(escalation.map(|e| e.escalation_id.as_str()))
        .bind(escalation.map(|e| e.step.as_str()))
        .bind(escalation.map(|e| e.reason.as_str()))
        .bind(p.escalation_payload.as_deref())
        .bind(a.fence.as_ref().map(|f| f.lock.as_str()))
        .bind(a.fence.as_ref().map(|f| f.token.0 as i64))
        .bind(p.waits)
        .fetch_one(pool)
        .await;
    match outcome {
        Ok(code) => answer(code, a, p),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(STEP_COMMITTED) => {
            answer(STEP_COMMITTED_CODE, a, p)
        }
        Err(e) => Err(e.into()),
    }
}

/// The code `hf_advance_many` reports for an advance whose step was already committed
/// (`hf_advance` raises `HF409` for it instead, to undo its task update).
pub(super) const STEP_COMMITTED_CODE: i32 = 5;

/// Turns `hf_advance`'s result code (or [`STEP_COMMITTED_CODE`]) into the caller's
/// answer; the single and the batched paths share it so that they refuse alike.
pub(super) fn answer(code: i32, a: &Advance, p: &AdvancePlan) -> Result<()> {
    let fence = || a.fence.as_ref().map_or("", |f| f.lock.as_str());
    match code {
        0 => Ok(()),
        1 => Err(StoreError::stale("task", &a.task_id, a.token.0)),
        4 => Err(StoreError::not_found("task", &a.task_id)),
        2 => Err(StoreError::not_found("lock", fence())),
        3 => Err(StoreError::stale(
            "lock",
            fence(),
            a.fence.as_ref().map_or(0, |f| f.token.0),
        )),
        STEP_COMMITTED_CODE => {
            let id = format!("{}/{}", a.task_id, p.checkpoint.as_deref().unwrap_or(""));
            Err(StoreError::conflict("step", id, "already committed"))
        }
        other => Err(StoreError::corrupt(
            "hf_advance",
            format!("returned {other}"),
        )),
    }
}

/// Advance number `i` (from 1) of a batch, as an element of `hf_advance_many`'s JSON
/// array: the values bound to `hf_advance`'s parameters above, under the same names,
/// fence excepted (fenced advances are not batched). Documents travel as JSON strings
/// of their text, so that they are stored byte for byte as the single path stores them.
pub(super) fn to_json(i: usize, a: &Advance, p: &AdvancePlan) -> serde_json::Value {
    let step = a.step.as_ref();
    let escalation = a.escalation.as_ref();
    serde_json::json!({
        "i": i,
        "task": a.task_id,
        "token": a.token.0 as i64,
        "now": p.now,
        "status": p.status,
        "next_run": p.next_run,
        "pending": p.pending,
        "output": p.output,
        "last_error": p.last_error,
        "retried": p.retried,
        "cost": p.cost,
        "completed": p.completed,
        "checkpoint": p.checkpoint,
        "step_status": step.map(|s| s.status.as_str()),
        "step_attempt": step.map(|s| i64::from(s.attempt)),
        "step_output": p.step_output,
        "step_error": step.and_then(|s| s.error.as_deref()),
        "step_next": step.and_then(|s| s.next_attempt_at_ms).map(|t| t as i64),
        "kinds": a.events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        "data": p.events,
        "job_ids": a.jobs.iter().map(|j| j.job_id.as_str()).collect::<Vec<_>>(),
        "job_queues": a.jobs.iter().map(|j| j.queue.as_str()).collect::<Vec<_>>(),
        "job_steps": a.jobs.iter().map(|j| j.step.as_str()).collect::<Vec<_>>(),
        "job_payloads": p.job_payloads,
        "esc_id": escalation.map(|e| e.escalation_id.as_str()),
        "esc_step": escalation.map(|e| e.step.as_str()),
        "esc_reason": escalation.map(|e| e.reason.as_str()),
        "esc_payload": p.escalation_payload,
        "waits": p.waits,
    })
}

const ADVANCE: &str = "SELECT hf_advance($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
    $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30)";
