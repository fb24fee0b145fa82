//! SQLite writes on tasks: submit, claim, lease upkeep, cancel, journal appends.
//!
//! Each function runs inside the writer's batch transaction (in its own savepoint), so
//! it sees a consistent database and may fail half-way: everything it did is rolled
//! back with its savepoint and nothing partial is ever committed. A lease check is the
//! `WHERE` clause of the `UPDATE` that uses it, so check and write are one statement.

use rusqlite::{Connection, OptionalExtension, params};

use super::reads;
use crate::fenced::{Fenced, TASK};
use crate::task::{Cancelled, NewTask, NewWorkflow, Submitted, TaskClaim, WorkflowDef};
use crate::validate::millis;
use crate::{FencingToken, Result, StoreError};

pub(super) fn put_workflow(
    conn: &Connection,
    w: &NewWorkflow,
    definition: &str,
    now: i64,
) -> Result<WorkflowDef> {
    if let Some(existing) = reads::workflow(conn, &w.name, Some(w.version))? {
        if existing.definition == w.definition {
            return Ok(existing);
        }
        let id = format!("{}@{}", w.name, w.version);
        return Err(StoreError::conflict(
            "workflow",
            id,
            "versions are immutable; register a new version",
        ));
    }
    conn.prepare_cached(
        "INSERT INTO workflows (name, version, definition, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![w.name, w.version, definition, now])?;
    reads::workflow(conn, &w.name, Some(w.version))?
        .ok_or_else(|| StoreError::not_found("workflow", &w.name))
}

pub(super) fn submit(
    conn: &Connection,
    t: &NewTask,
    input: &str,
    pending: &str,
    now: i64,
) -> Result<Submitted> {
    if let Some(key) = &t.idempotency_key {
        if let Some(existing) = reads::task_by_key(conn, &t.tenant, key)? {
            return Ok(Submitted::Existing(existing));
        }
    }
    if reads::workflow(conn, &t.workflow, Some(t.workflow_version))?.is_none() {
        return Err(StoreError::not_found(
            "workflow",
            format!("{}@{}", t.workflow, t.workflow_version),
        ));
    }
    if reads::task(conn, &t.task_id)?.is_some() {
        return Err(StoreError::conflict(
            "task",
            &t.task_id,
            "a task with this id exists",
        ));
    }
    conn.prepare_cached(
        "INSERT INTO tasks (task_id, workflow, workflow_version, status, input, idempotency_key, \
         pending_steps, next_run_at, created_at, updated_at, tenant, traceparent) \
         VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10)",
    )?
    .execute(params![
        t.task_id,
        t.workflow,
        t.workflow_version,
        input,
        t.idempotency_key,
        pending,
        millis("task.run_at_ms", t.run_at_ms)?,
        now,
        t.tenant,
        t.traceparent
    ])?;
    append_events(conn, &t.task_id, &[("submitted", "{}".to_string())], now)?;
    let task =
        reads::task(conn, &t.task_id)?.ok_or_else(|| StoreError::not_found("task", &t.task_id))?;
    Ok(Submitted::Created(task))
}

/// Appends events to a task's journal, numbering them from its `event_seq`.
pub(super) fn append_events(
    conn: &Connection,
    task_id: &str,
    events: &[(&str, String)],
    now: i64,
) -> Result<()> {
    let n = events.len() as i64;
    let last: Option<i64> = conn
        .prepare_cached(
            "UPDATE tasks SET event_seq = event_seq + ?2 WHERE task_id = ?1 RETURNING event_seq",
        )?
        .query_row(params![task_id, n], |r| r.get(0))
        .optional()?;
    let last = last.ok_or_else(|| StoreError::not_found("task", task_id))?;
    insert_events(
        conn,
        task_id,
        last - n + 1,
        events.iter().map(|(k, d)| (*k, d.as_str())),
        now,
    )
}

pub(super) fn insert_events<'a>(
    conn: &Connection,
    task_id: &str,
    first_seq: i64,
    events: impl Iterator<Item = (&'a str, &'a str)>,
    now: i64,
) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO events (task_id, seq, at, kind, data) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (i, (kind, data)) in events.enumerate() {
        stmt.execute(params![task_id, first_seq + i as i64, now, kind, data])?;
    }
    Ok(())
}

pub(super) fn claim(
    conn: &Connection,
    node: &str,
    expires: i64,
    lim: i64,
    now: i64,
) -> Result<Vec<TaskClaim>> {
    // The partial index holds only claimable statuses, ordered by when they are due; a
    // running task's `next_run_at` is its lease's expiry, so the range scan stops at
    // the first task not yet due and never wades through live leases. `INDEXED BY`
    // because, without statistics, the planner prefers `tasks_by_status` and sorts
    // every queued, running and waiting task on each poll.
    let due: Vec<(i64, Option<String>)> = conn
        .prepare_cached(
            "SELECT seq, CASE WHEN lease_expires_at IS NOT NULL THEN lease_owner END \
             FROM tasks INDEXED BY tasks_ready WHERE status IN ('queued', 'running', 'waiting') AND next_run_at <= ?1 \
             AND (lease_expires_at IS NULL OR lease_expires_at <= ?1) \
             ORDER BY next_run_at, seq LIMIT ?2",
        )?
        .query_map(params![now, lim], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut claims = Vec::with_capacity(due.len());
    let sql = format!(
        "UPDATE tasks SET status = 'running', lease_owner = ?2, lease_token = lease_token + 1, \
         lease_expires_at = ?3, next_run_at = ?3, updated_at = ?4 WHERE seq = ?1 \
         RETURNING {}",
        reads::TASK_COLS
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    for (seq, previous) in due {
        let row = stmt.query_row(params![seq, node, expires, now], reads::task_row)?;
        let task = row.into_task()?;
        let token = task.lease.as_ref().map_or(FencingToken(0), |l| l.token);
        claims.push(TaskClaim {
            task,
            token,
            taken_over_from: previous,
        });
    }
    Ok(claims)
}

/// Why a lease-guarded update matched no row: the thing is missing, or the lease stale.
pub(super) fn stale_or_missing(
    conn: &Connection,
    fenced: Fenced,
    id: &str,
    token: FencingToken,
) -> StoreError {
    let sql = format!("SELECT 1 FROM {} WHERE {} = ?1", fenced.table, fenced.key);
    let exists = conn
        .prepare_cached(&sql)
        .and_then(|mut s| s.query_row([id], |_| Ok(())).optional());
    match exists {
        Ok(Some(())) => StoreError::stale(fenced.kind, id, token.0),
        Ok(None) => StoreError::not_found(fenced.kind, id),
        Err(e) => e.into(),
    }
}

/// Runs `sql`, a lease extension bound as (id, token, expires, now), and returns the
/// new expiry; a stale token or a missing row is an error.
pub(super) fn extend_lease(
    conn: &Connection,
    fenced: Fenced,
    sql: &str,
    id: &str,
    token: FencingToken,
    expires: i64,
    now: i64,
) -> Result<u64> {
    let changed = conn
        .prepare_cached(sql)?
        .execute(params![id, token.0 as i64, expires, now])?;
    if changed == 0 {
        return Err(stale_or_missing(conn, fenced, id, token));
    }
    Ok(expires as u64)
}

pub(super) fn heartbeat(
    conn: &Connection,
    task_id: &str,
    token: FencingToken,
    expires: i64,
    now: i64,
) -> Result<u64> {
    extend_lease(
        conn,
        TASK,
        "UPDATE tasks SET lease_expires_at = ?3, next_run_at = ?3 WHERE task_id = ?1 \
             AND status = 'running' AND lease_token = ?2 AND lease_expires_at > ?4",
        task_id,
        token,
        expires,
        now,
    )
}

pub(super) fn release(
    conn: &Connection,
    task_id: &str,
    token: FencingToken,
    now: i64,
) -> Result<()> {
    let changed = conn
        .prepare_cached(
            "UPDATE tasks SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, \
             next_run_at = ?3, updated_at = ?3 \
             WHERE task_id = ?1 AND status = 'running' AND lease_token = ?2",
        )?
        .execute(params![task_id, token.0 as i64, now])?;
    if changed == 0 {
        return Err(stale_or_missing(conn, TASK, task_id, token));
    }
    Ok(())
}

pub(super) fn release_node(conn: &Connection, node: &str, now: i64) -> Result<u64> {
    let changed = conn
        .prepare_cached(
            "UPDATE tasks SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, \
             next_run_at = ?2, updated_at = ?2 WHERE status = 'running' AND lease_owner = ?1",
        )?
        .execute(params![node, now])?;
    Ok(changed as u64)
}

pub(super) fn cancel(
    conn: &Connection,
    task_id: &str,
    reason: &str,
    now: i64,
) -> Result<Cancelled> {
    let changed = conn
        .prepare_cached(
            "UPDATE tasks SET status = 'cancelled', lease_owner = NULL, lease_expires_at = NULL, \
             next_run_at = NULL, updated_at = ?2 \
             WHERE task_id = ?1 AND status NOT IN ('succeeded', 'failed', 'cancelled')",
        )?
        .execute(params![task_id, now])?;
    let task = || reads::task(conn, task_id)?.ok_or_else(|| StoreError::not_found("task", task_id));
    if changed == 0 {
        return Ok(Cancelled::AlreadyFinished(task()?));
    }
    conn.prepare_cached(
        "UPDATE jobs SET status = 'cancelled', lease_expires_at = NULL, updated_at = ?2 \
         WHERE task_id = ?1 AND status IN ('pending', 'claimed')",
    )?
    .execute(params![task_id, now])?;
    conn.prepare_cached(
        "UPDATE escalations SET status = 'cancelled', resolved_at = ?2 WHERE task_id = ?1 AND status = 'open'",
    )?
    .execute(params![task_id, now])?;
    let data = serde_json::json!({ "reason": reason }).to_string();
    append_events(conn, task_id, &[("cancelled", data)], now)?;
    Ok(Cancelled::Cancelled(task()?))
}
