//! The atomic advance on SQLite: fence, task, step, journal, jobs, escalation.
//!
//! Everything runs in the writer's batch transaction inside this write's savepoint;
//! the lease check is the `WHERE` clause of the task's `UPDATE`, and the step upsert
//! refuses to overwrite a committed step, so a failure anywhere rolls back all of it
//! (invariant 1). Nothing is visible until the batch commits; the one order that
//! matters is that the wake check runs last, once the step record says whether the
//! step still waits. On SQLite that check cannot race a job's completion: the writer
//! thread runs one write at a time.

use rusqlite::{Connection, OptionalExtension, params};

use super::coord;
use super::writes::{insert_events, stale_or_missing};
use crate::fenced::TASK;
use crate::plan::AdvancePlan;
use crate::task::{Advance, StepUpdate};
use crate::{Result, StoreError};

pub(super) fn advance(conn: &Connection, a: &Advance, p: &AdvancePlan) -> Result<()> {
    if let Some(fence) = &a.fence {
        coord::check_fence(conn, &fence.lock, fence.token, p.now)?;
    }
    let last_seq: Option<i64> = conn
        .prepare_cached(ADVANCE_TASK)?
        .query_row(
            params![
                a.task_id,
                a.token.0 as i64,
                p.now,
                p.status,
                p.next_run,
                p.pending,
                p.output,
                p.last_error,
                p.retried,
                p.cost,
                p.completed,
                p.checkpoint,
                p.n_events(),
            ],
            |r| r.get(0),
        )
        .optional()?;
    let Some(last_seq) = last_seq else {
        return Err(stale_or_missing(conn, TASK, &a.task_id, a.token));
    };
    if let Some(step) = &a.step {
        upsert_step(conn, &a.task_id, step, p)?;
    }
    let events = a
        .events
        .iter()
        .zip(&p.events)
        .map(|(e, d)| (e.kind.as_str(), d.as_str()));
    insert_events(conn, &a.task_id, last_seq - p.n_events() + 1, events, p.now)?;
    coord::insert_jobs(conn, &a.task_id, &a.jobs, &p.job_payloads, p.now)?;
    if let (Some(e), Some(payload)) = (&a.escalation, &p.escalation_payload) {
        coord::insert_escalation(conn, &a.task_id, e, payload, p.now)?;
    }
    if p.waits {
        conn.prepare_cached(QUEUE_IF_WOKEN)?
            .execute(params![a.task_id, p.now])?;
    }
    Ok(())
}

fn upsert_step(conn: &Connection, task_id: &str, s: &StepUpdate, p: &AdvancePlan) -> Result<()> {
    let changed = conn.prepare_cached(UPSERT_STEP)?.execute(params![
        task_id,
        s.name,
        s.status.as_str(),
        s.attempt,
        p.step_output,
        s.error,
        s.next_attempt_at_ms.map(|t| t as i64),
        p.now,
    ])?;
    if changed == 0 {
        let id = format!("{task_id}/{}", s.name);
        return Err(StoreError::conflict("step", id, "already committed"));
    }
    Ok(())
}

/// The lease check and the task's new state, in one statement. `completed_steps` needs
/// no duplicate check: a step reaches `succeeded` or `skipped` once (the step upsert,
/// in the same savepoint, refuses a second time and undoes this update with it).
const ADVANCE_TASK: &str = "UPDATE tasks SET \
    status = ?4, \
    lease_owner = CASE WHEN ?4 = 'running' THEN lease_owner END, \
    lease_expires_at = CASE WHEN ?4 = 'running' THEN lease_expires_at END, \
    next_run_at = CASE WHEN ?4 = 'running' THEN next_run_at ELSE ?5 END, \
    pending_steps = COALESCE(?6, pending_steps), \
    output = COALESCE(?7, output), \
    last_error = COALESCE(?8, last_error), \
    retry_count = retry_count + ?9, \
    cost_usd = cost_usd + ?10, \
    completed_steps = CASE WHEN ?11 IS NULL THEN completed_steps \
        ELSE json_insert(completed_steps, '$[#]', ?11) END, \
    checkpoint_step = COALESCE(?12, checkpoint_step), \
    checkpoint_at = CASE WHEN ?12 IS NULL THEN checkpoint_at ELSE ?3 END, \
    event_seq = event_seq + ?13, \
    updated_at = ?3 \
    WHERE task_id = ?1 AND status = 'running' AND lease_token = ?2 AND lease_expires_at > ?3 \
    RETURNING event_seq";

/// A committed step (succeeded, skipped) may only become compensated; a compensated one
/// never changes (invariant 1). No row changed means the step was already committed.
const UPSERT_STEP: &str = "INSERT INTO steps \
    (task_id, name, status, attempt, output, error, next_attempt_at, updated_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
    ON CONFLICT (task_id, name) DO UPDATE SET status = excluded.status, \
    attempt = excluded.attempt, output = COALESCE(excluded.output, steps.output), \
    error = excluded.error, next_attempt_at = excluded.next_attempt_at, \
    updated_at = excluded.updated_at \
    WHERE steps.status NOT IN ('skipped', 'compensated') \
    AND (steps.status <> 'succeeded' OR excluded.status = 'compensated')";

/// Turns an advance to `waiting` into `queued`, due now, when a step of the task is
/// `waiting`, has a finished job or a resolved escalation, and waits on nothing else
/// (no job of it pending or claimed, no escalation of it open): the wake for it came
/// while the task was running and changed nothing, so waiting now would be for ever.
/// The last condition keeps an old finished job of a step that waits on a newer one
/// from waking the task again and again.
pub(crate) const QUEUE_IF_WOKEN: &str = "UPDATE tasks SET status = 'queued', next_run_at = ?2 \
    WHERE task_id = ?1 AND status = 'waiting' AND EXISTS (SELECT 1 FROM steps s \
    WHERE s.task_id = ?1 AND s.status = 'waiting' \
    AND (EXISTS (SELECT 1 FROM jobs j WHERE j.task_id = ?1 AND j.step = s.name \
            AND j.status IN ('succeeded', 'failed')) \
        OR EXISTS (SELECT 1 FROM escalations e WHERE e.task_id = ?1 AND e.step = s.name \
            AND e.status IN ('approved', 'edited', 'rejected'))) \
    AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.task_id = ?1 AND j.step = s.name \
        AND j.status IN ('pending', 'claimed')) \
    AND NOT EXISTS (SELECT 1 FROM escalations e WHERE e.task_id = ?1 AND e.step = s.name \
        AND e.status = 'open'))";
