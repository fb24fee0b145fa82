//! The atomic advance on PostgreSQL: fence, task, step, journal, jobs, escalation.
//!
//! One transaction; the lease check is the `WHERE` clause of the task's `UPDATE`
//! (which also row-locks the task, serialising its journal numbering), the step upsert
//! refuses to overwrite a committed step, and any error drops the transaction
//! (invariant 1). The statements mirror the SQLite twin, `sqlite/advance.rs`.

use sqlx::PgConnection;

use super::coord;
use super::writes::{insert_events, stale_or_missing};
use crate::fenced::TASK;
use crate::plan::AdvancePlan;
use crate::task::{Advance, StepUpdate};
use crate::{Result, StoreError};

pub(super) async fn advance(c: &mut PgConnection, a: &Advance, p: &AdvancePlan) -> Result<()> {
    if let Some(fence) = &a.fence {
        coord::check_fence(c, &fence.lock, fence.token, p.now).await?;
    }
    let last_seq: Option<i64> = sqlx::query_scalar(ADVANCE_TASK)
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
        .bind(p.n_events())
        .fetch_optional(&mut *c)
        .await?;
    let Some(last_seq) = last_seq else {
        return Err(stale_or_missing(c, TASK, &a.task_id, a.token).await);
    };
    if let Some(step) = &a.step {
        upsert_step(c, &a.task_id, step, p).await?;
    }
    let kinds: Vec<&str> = a.events.iter().map(|e| e.kind.as_str()).collect();
    let data: Vec<&str> = p.events.iter().map(String::as_str).collect();
    insert_events(
        c,
        &a.task_id,
        last_seq - p.n_events() + 1,
        &kinds,
        &data,
        p.now,
    )
    .await?;
    coord::insert_jobs(c, &a.task_id, &a.jobs, &p.job_payloads, p.now).await?;
    if let (Some(e), Some(payload)) = (&a.escalation, &p.escalation_payload) {
        coord::insert_escalation(c, &a.task_id, e, payload, p.now).await?;
    }
    Ok(())
}

async fn upsert_step(
    c: &mut PgConnection,
    task_id: &str,
    s: &StepUpdate,
    p: &AdvancePlan,
) -> Result<()> {
    let changed = sqlx::query(UPSERT_STEP)
        .bind(task_id)
        .bind(&s.name)
        .bind(s.status.as_str())
        .bind(i64::from(s.attempt))
        .bind(p.step_output.as_deref())
        .bind(s.error.as_deref())
        .bind(s.next_attempt_at_ms.map(|t| t as i64))
        .bind(p.now)
        .execute(c)
        .await?
        .rows_affected();
    if changed == 0 {
        let id = format!("{task_id}/{}", s.name);
        return Err(StoreError::conflict("step", id, "already committed"));
    }
    Ok(())
}

/// The lease check and the task's new state, in one statement.
const ADVANCE_TASK: &str = "UPDATE tasks SET \
    status = $4, \
    lease_owner = CASE WHEN $4 = 'running' THEN lease_owner END, \
    lease_expires_at = CASE WHEN $4 = 'running' THEN lease_expires_at END, \
    next_run_at = CASE WHEN $4 = 'running' THEN next_run_at ELSE hf_ts($5) END, \
    pending_steps = COALESCE($6::jsonb, pending_steps), \
    output = COALESCE($7::json, output), \
    last_error = COALESCE($8, last_error), \
    retry_count = retry_count + $9, \
    cost_usd = cost_usd + $10, \
    completed_steps = CASE WHEN $11::text IS NOT NULL \
        AND NOT completed_steps @> jsonb_build_array($11::text) \
        THEN completed_steps || jsonb_build_array($11::text) ELSE completed_steps END, \
    checkpoint_step = COALESCE($12, checkpoint_step), \
    checkpoint_at = CASE WHEN $12::text IS NULL THEN checkpoint_at ELSE hf_ts($3) END, \
    event_seq = event_seq + $13, \
    updated_at = hf_ts($3) \
    WHERE task_id = $1 AND status = 'running' AND lease_token = $2 AND lease_expires_at > hf_ts($3) \
    RETURNING event_seq";

/// See the SQLite twin: a committed step may only become compensated.
const UPSERT_STEP: &str = "INSERT INTO steps \
    (task_id, name, status, attempt, output, error, next_attempt_at, updated_at) \
    VALUES ($1, $2, $3, $4, $5::json, $6, hf_ts($7), hf_ts($8)) \
    ON CONFLICT (task_id, name) DO UPDATE SET status = excluded.status, \
    attempt = excluded.attempt, output = COALESCE(excluded.output, steps.output), \
    error = excluded.error, next_attempt_at = excluded.next_attempt_at, \
    updated_at = excluded.updated_at \
    WHERE steps.status NOT IN ('skipped', 'compensated') \
    AND (steps.status <> 'succeeded' OR excluded.status = 'compensated')";
