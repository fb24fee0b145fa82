//! PostgreSQL writes on tasks: submit, claim, lease upkeep, cancel, journal appends.
//!
//! Each runs inside one transaction that the caller commits, or is one statement and
//! so a transaction of its own (submit, claims); an error drops the transaction, which
//! rolls everything back. Claims lock their rows with `FOR UPDATE SKIP LOCKED`, so
//! concurrent nodes partition the ready work between them.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::reads::{self, TASK_COL_COUNT, TASK_COLS, task_row};
use crate::fenced::{Fenced, TASK};
use crate::task::{Cancelled, NewTask, NewWorkflow, Submitted, TaskClaim, WorkflowDef};
use crate::validate::millis;
use crate::{FencingToken, Result, StoreError};

pub(super) async fn put_workflow(
    c: &mut PgConnection,
    w: &NewWorkflow,
    definition: &str,
    now: i64,
) -> Result<WorkflowDef> {
    let inserted = sqlx::query(
        "INSERT INTO workflows (name, version, definition, created_at) VALUES ($1, $2, $3::json, hf_ts($4)) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&w.name)
    .bind(i64::from(w.version))
    .bind(definition)
    .bind(now)
    .execute(&mut *c)
    .await?
    .rows_affected();
    let stored = reads::workflow(c, &w.name, Some(w.version)).await?;
    let stored = stored.ok_or_else(|| StoreError::not_found("workflow", &w.name))?;
    if inserted == 0 && stored.definition != w.definition {
        let id = format!("{}@{}", w.name, w.version);
        return Err(StoreError::conflict(
            "workflow",
            id,
            "versions are immutable; register a new version",
        ));
    }
    Ok(stored)
}

/// Submits a task with one call of `hf_submit` (migrations 0005, 0011): one round trip, one
/// statement, so one transaction of its own.
pub(super) async fn submit(
    c: &mut PgConnection,
    t: &NewTask,
    input: &str,
    pending: &str,
    now: i64,
) -> Result<Submitted> {
    // The composite the function returns, spread back into a `tasks` row named `t`, so
    // that the usual column list and decoder apply; its code comes after them.
    let sql = format!(
        "SELECT {} FROM hf_submit($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) s \
         CROSS JOIN LATERAL (SELECT (s.task).*) t",
        submit_cols()
    );
    let row = sqlx::query(&sql)
        .bind(&t.task_id)
        .bind(&t.tenant)
        .bind(&t.workflow)
        .bind(i64::from(t.workflow_version))
        .bind(input)
        .bind(t.idempotency_key.as_deref())
        .bind(pending)
        .bind(millis("task.run_at_ms", t.run_at_ms)?)
        .bind(now)
        .bind(t.traceparent.as_deref())
        .fetch_one(&mut *c)
        .await?;
    submitted(&row, t)
}

/// The columns that `hf_submit` and `hf_submit_many` are read with: the task as
/// [`TASK_COLS`] reads it, then the code.
pub(super) fn submit_cols() -> String {
    format!("{TASK_COLS}, s.code")
}

/// A row of `hf_submit`'s (or `hf_submit_many`'s) result as the caller's answer.
pub(super) fn submitted(row: &PgRow, t: &NewTask) -> Result<Submitted> {
    let code: i32 = row.try_get(TASK_COL_COUNT)?;
    match code {
        0 => Ok(Submitted::Created(task_row(row)?.into_task()?)),
        1 => Ok(Submitted::Existing(task_row(row)?.into_task()?)),
        2 => Err(StoreError::not_found(
            "workflow",
            format!("{}@{}", t.workflow, t.workflow_version),
        )),
        3 => Err(StoreError::conflict(
            "task",
            &t.task_id,
            "a task with this id exists",
        )),
        other => Err(StoreError::corrupt(
            "hf_submit",
            format!("returned {other}"),
        )),
    }
}

/// Submission number `n` (from 1) of a batch, as an element of `hf_submit_many`'s JSON
/// array: the values [`submit`] binds, under the names the function reads.
pub(super) fn submit_json(
    n: usize,
    t: &NewTask,
    input: &str,
    pending: &str,
    now: i64,
) -> Result<serde_json::Value> {
    Ok(serde_json::json!({
        "n": n,
        "task_id": t.task_id,
        "tenant": t.tenant,
        "workflow": t.workflow,
        "version": i64::from(t.workflow_version),
        "input": input,
        "key": t.idempotency_key,
        "pending": pending,
        "run_at": millis("task.run_at_ms", t.run_at_ms)?,
        "now": now,
        "traceparent": t.traceparent,
    }))
}

/// Appends events to a task's journal, numbering them from its `event_seq`.
pub(super) async fn append_events(
    c: &mut PgConnection,
    task_id: &str,
    events: &[(&str, String)],
    now: i64,
) -> Result<()> {
    let n = events.len() as i64;
    let last: Option<i64> = sqlx::query_scalar(
        "UPDATE tasks SET event_seq = event_seq + $2 WHERE task_id = $1 RETURNING event_seq",
    )
    .bind(task_id)
    .bind(n)
    .fetch_optional(&mut *c)
    .await?;
    let last = last.ok_or_else(|| StoreError::not_found("task", task_id))?;
    let (kinds, data): (Vec<&str>, Vec<&str>) =
        events.iter().map(|(k, d)| (*k, d.as_str())).unzip();
    insert_events(c, task_id, last - n + 1, &kinds, &data, now).await
}

pub(super) async fn insert_events(
    c: &mut PgConnection,
    task_id: &str,
    first: i64,
    kinds: &[&str],
    data: &[&str],
    now: i64,
) -> Result<()> {
    if kinds.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO events (task_id, seq, at, kind, data) \
         SELECT $1, $2 + e.n - 1, hf_ts($3), e.kind, e.data::json \
         FROM unnest($4::text[], $5::text[]) WITH ORDINALITY AS e(kind, data, n)",
    )
    .bind(task_id)
    .bind(first)
    .bind(now)
    .bind(kinds)
    .bind(data)
    .execute(c)
    .await?;
    Ok(())
}

/// A running task's `next_run_at` is its lease's expiry, so the partial index's range
/// scan (`next_run_at <= now`) stops at the first task not yet due and never wades
/// through live leases: an idle scheduler's poll is one index probe.
pub(super) async fn claim(
    c: &mut PgConnection,
    node: &str,
    expires: i64,
    lim: i64,
    now: i64,
) -> Result<Vec<TaskClaim>> {
    let sql = format!(
        "WITH due AS (SELECT task_id, lease_owner, lease_expires_at FROM tasks \
           WHERE status IN ('queued', 'running', 'waiting') AND next_run_at <= hf_ts($1) \
           AND (lease_expires_at IS NULL OR lease_expires_at <= hf_ts($1)) \
           ORDER BY next_run_at, seq LIMIT $2 FOR UPDATE SKIP LOCKED) \
         UPDATE tasks t SET status = 'running', lease_owner = $3, lease_token = t.lease_token + 1, \
           lease_expires_at = hf_ts($4), next_run_at = hf_ts($4), updated_at = hf_ts($1) \
         FROM due WHERE t.task_id = due.task_id \
         RETURNING {TASK_COLS}, CASE WHEN due.lease_expires_at IS NOT NULL THEN due.lease_owner END"
    );
    let rows = sqlx::query(&sql)
        .bind(now)
        .bind(lim)
        .bind(node)
        .bind(expires)
        .fetch_all(c)
        .await?;
    rows.iter()
        .map(|r| {
            let task = task_row(r)?.into_task()?;
            let token = task.lease.as_ref().map_or(FencingToken(0), |l| l.token);
            Ok(TaskClaim {
                task,
                token,
                taken_over_from: r.try_get(TASK_COL_COUNT)?,
            })
        })
        .collect()
}

/// Why a lease-guarded update matched no row: the thing is missing, or the lease stale.
pub(super) async fn stale_or_missing(
    c: &mut PgConnection,
    fenced: Fenced,
    id: &str,
    token: FencingToken,
) -> StoreError {
    let sql = format!("SELECT 1 FROM {} WHERE {} = $1", fenced.table, fenced.key);
    match sqlx::query(&sql).bind(id).fetch_optional(c).await {
        Ok(Some(_)) => StoreError::stale(fenced.kind, id, token.0),
        Ok(None) => StoreError::not_found(fenced.kind, id),
        Err(e) => e.into(),
    }
}

/// Runs `sql`, a lease extension bound as (id, token, expires, now), and returns the
/// new expiry; a stale token or a missing row is an error.
pub(super) async fn extend_lease(
    c: &mut PgConnection,
    fenced: Fenced,
    sql: &str,
    id: &str,
    token: FencingToken,
    expires: i64,
    now: i64,
) -> Result<u64> {
    let changed = sqlx::query(sql)
        .bind(id)
        .bind(token.0 as i64)
        .bind(expires)
        .bind(now)
        .execute(&mut *c)
        .await?
        .rows_affected();
    if changed == 0 {
        return Err(stale_or_missing(c, fenced, id, token).await);
    }
    Ok(expires as u64)
}

pub(super) async fn heartbeat(
    c: &mut PgConnection,
    task_id: &str,
    token: FencingToken,
    expires: i64,
    now: i64,
) -> Result<u64> {
    extend_lease(
        c,
        TASK,
        "UPDATE tasks SET lease_expires_at = hf_ts($3), next_run_at = hf_ts($3) \
         WHERE task_id = $1 AND status = 'running' AND lease_token = $2 \
         AND lease_expires_at > hf_ts($4)",
        task_id,
        token,
        expires,
        now,
    )
    .await
}

pub(super) async fn release(
    c: &mut PgConnection,
    task_id: &str,
    token: FencingToken,
    now: i64,
) -> Result<()> {
    let changed = sqlx::query(
        "UPDATE tasks SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, \
         next_run_at = hf_ts($3), updated_at = hf_ts($3) \
         WHERE task_id = $1 AND status = 'running' AND lease_token = $2",
    )
    .bind(task_id)
    .bind(token.0 as i64)
    .bind(now)
    .execute(&mut *c)
    .await?
    .rows_affected();
    if changed == 0 {
        return Err(stale_or_missing(c, TASK, task_id, token).await);
    }
    Ok(())
}

pub(super) async fn release_node(c: &mut PgConnection, node: &str, now: i64) -> Result<u64> {
    let changed = sqlx::query(
        "UPDATE tasks SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, \
         next_run_at = hf_ts($2), updated_at = hf_ts($2) \
         WHERE status = 'running' AND lease_owner = $1",
    )
    .bind(node)
    .bind(now)
    .execute(&mut *c)
    .await?
    .rows_affected();
    Ok(changed)
}

pub(super) async fn cancel(
    c: &mut PgConnection,
    task_id: &str,
    reason: &str,
    now: i64,
) -> Result<Cancelled> {
    let changed = sqlx::query(
        "UPDATE tasks SET status = 'cancelled', lease_owner = NULL, lease_expires_at = NULL, \
         next_run_at = NULL, updated_at = hf_ts($2) \
         WHERE task_id = $1 AND status NOT IN ('succeeded', 'failed', 'cancelled')",
    )
    .bind(task_id)
    .bind(now)
    .execute(&mut *c)
    .await?
    .rows_affected();
    if changed == 0 {
        let task = reads::task(c, task_id)
            .await?
            .ok_or_else(|| StoreError::not_found("task", task_id))?;
        return Ok(Cancelled::AlreadyFinished(task));
    }
    sqlx::query(
        "UPDATE jobs SET status = 'cancelled', lease_expires_at = NULL, updated_at = hf_ts($2) \
         WHERE task_id = $1 AND status IN ('pending', 'claimed')",
    )
    .bind(task_id)
    .bind(now)
    .execute(&mut *c)
    .await?;
    sqlx::query("UPDATE escalations SET status = 'cancelled', resolved_at = hf_ts($2) WHERE task_id = $1 AND status = 'open'")
        .bind(task_id)
        .bind(now)
        .execute(&mut *c)
        .await?;
    let data = serde_json::json!({ "reason": reason }).to_string();
    append_events(c, task_id, &[("cancelled", data)], now).await?;
    let task = reads::task(c, task_id)
        .await?
        .ok_or_else(|| StoreError::not_found("task", task_id))?;
    Ok(Cancelled::Cancelled(task))
}
