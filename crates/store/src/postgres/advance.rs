//! The atomic advance on PostgreSQL: one call of `hf_advance` (migration 0003), one
//! round trip.
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
    let fence = || a.fence.as_ref().map_or("", |f| f.lock.as_str());
    match outcome {
        Ok(0) => Ok(()),
        Ok(1) => Err(StoreError::stale("task", &a.task_id, a.token.0)),
        Ok(4) => Err(StoreError::not_found("task", &a.task_id)),
        Ok(2) => Err(StoreError::not_found("lock", fence())),
        Ok(3) => Err(StoreError::stale(
            "lock",
            fence(),
            a.fence.as_ref().map_or(0, |f| f.token.0),
        )),
        Ok(other) => Err(StoreError::corrupt(
            "hf_advance",
            format!("returned {other}"),
        )),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(STEP_COMMITTED) => {
            let id = format!("{}/{}", a.task_id, p.checkpoint.as_deref().unwrap_or(""));
            Err(StoreError::conflict("step", id, "already committed"))
        }
        Err(e) => Err(e.into()),
    }
}

const ADVANCE: &str = "SELECT hf_advance($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
    $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30)";
