//! SQLite reads: row mapping and the queries behind the `Store` getters.
//!
//! Reads run on their own connections (WAL snapshots), never queued behind the writer's
//! fsync; the writer uses the same functions when a write must return what it wrote.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::Result;
use crate::coordination::{ConfigVersion, Escalation, EscalationFilter, Job, StoredConfig};
use crate::rows::{self, EscalationRow, JobRow, StepRow, TaskRow};
use crate::task::{JournalEntry, Step, Task, TaskFilter, TaskPage, WorkflowDef};
use crate::validate::{limit, millis, unsigned};

pub(super) const TASK_COLS: &str = "task_id, workflow, workflow_version, status, input, output, \
    idempotency_key, completed_steps, pending_steps, retry_count, last_error, checkpoint_step, \
    checkpoint_at, cost_usd, next_run_at, lease_owner, lease_token, lease_expires_at, created_at, \
    updated_at, tenant, traceparent";

/// How many columns [`TASK_COLS`] selects: a query's own columns come after them.
const TASK_COL_COUNT: usize = 22;

pub(super) fn task_row(r: &Row<'_>) -> rusqlite::Result<TaskRow> {
    Ok(TaskRow {
        task_id: r.get(0)?,
        workflow: r.get(1)?,
        workflow_version: r.get(2)?,
        status: r.get(3)?,
        input: r.get(4)?,
        output: r.get(5)?,
        idempotency_key: r.get(6)?,
        completed_steps: r.get(7)?,
        pending_steps: r.get(8)?,
        retry_count: r.get(9)?,
        last_error: r.get(10)?,
        checkpoint_step: r.get(11)?,
        checkpoint_at: r.get(12)?,
        cost_usd: r.get(13)?,
        next_run_at: r.get(14)?,
        lease_owner: r.get(15)?,
        lease_token: r.get(16)?,
        lease_expires_at: r.get(17)?,
        created_at: r.get(18)?,
        updated_at: r.get(19)?,
        tenant: r.get(20)?,
        traceparent: r.get(21)?,
    })
}

pub(super) fn task(conn: &Connection, task_id: &str) -> Result<Option<Task>> {
    let sql = format!("SELECT {TASK_COLS} FROM tasks WHERE task_id = ?1");
    let row = conn
        .prepare_cached(&sql)?
        .query_row([task_id], task_row)
        .optional()?;
    row.map(TaskRow::into_task).transpose()
}

pub(super) fn task_by_key(conn: &Connection, tenant: &str, key: &str) -> Result<Option<Task>> {
    let sql = format!("SELECT {TASK_COLS} FROM tasks WHERE tenant = ?1 AND idempotency_key = ?2");
    let row = conn
        .prepare_cached(&sql)?
        .query_row([tenant, key], task_row)
        .optional()?;
    row.map(TaskRow::into_task).transpose()
}

pub(super) fn tasks(conn: &Connection, f: &TaskFilter) -> Result<TaskPage> {
    let lim = limit("filter.limit", f.limit)?;
    let cursor = millis("filter.cursor", f.cursor.unwrap_or(i64::MAX as u64))?;
    let sql = format!(
        "SELECT {TASK_COLS}, seq FROM tasks WHERE seq < ?1 AND (?2 IS NULL OR status = ?2) \
         AND (?3 IS NULL OR workflow = ?3) AND (?5 IS NULL OR tenant = ?5) \
         ORDER BY seq DESC LIMIT ?4"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let status = f.status.map(|s| s.as_str());
    let rows = stmt.query_map(
        params![cursor, status, f.workflow, lim + 1, f.tenant],
        |r| Ok((task_row(r)?, r.get::<_, i64>(TASK_COL_COUNT)?)),
    )?;
    let mut found = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    let more = found.len() > f.limit as usize;
    found.truncate(f.limit as usize);
    let next_cursor = match (more, found.last()) {
        (true, Some((_, seq))) => Some(unsigned("task.seq", *seq)?),
        _ => None,
    };
    let tasks = found
        .into_iter()
        .map(|(row, _)| row.into_task())
        .collect::<Result<_>>()?;
    Ok(TaskPage { tasks, next_cursor })
}

pub(super) fn workflow(
    conn: &Connection,
    name: &str,
    version: Option<u32>,
) -> Result<Option<WorkflowDef>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, version, definition, created_at FROM workflows \
         WHERE name = ?1 AND (?2 IS NULL OR version = ?2) ORDER BY version DESC LIMIT 1",
    )?;
    let row = stmt
        .query_row(params![name, version], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, String>(2)?, r.get(3)?))
        })
        .optional()?;
    row.map(|(n, v, d, c)| rows::workflow(n, v, &d, c))
        .transpose()
}

pub(super) fn workflows(conn: &Connection) -> Result<Vec<WorkflowDef>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, version, definition, created_at FROM workflows ORDER BY name, version",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get::<_, String>(2)?, r.get(3)?))
    })?;
    rows.map(|r| {
        let (n, v, d, c) = r?;
        rows::workflow(n, v, &d, c)
    })
    .collect()
}

const STEP_COLS: &str =
    "task_id, name, status, attempt, output, error, next_attempt_at, updated_at";

fn step_row(r: &Row<'_>) -> rusqlite::Result<StepRow> {
    Ok(StepRow {
        task_id: r.get(0)?,
        name: r.get(1)?,
        status: r.get(2)?,
        attempt: r.get(3)?,
        output: r.get(4)?,
        error: r.get(5)?,
        next_attempt_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

pub(super) fn steps(conn: &Connection, task_id: &str) -> Result<Vec<Step>> {
    let sql = format!("SELECT {STEP_COLS} FROM steps WHERE task_id = ?1 ORDER BY name");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([task_id], step_row)?;
    rows.map(|r| r?.into_step()).collect()
}

pub(super) fn retry_queue(conn: &Connection, tenant: Option<&str>, lim: u32) -> Result<Vec<Step>> {
    let lim = limit("limit", lim)?;
    let sql = format!(
        "SELECT {STEP_COLS} FROM steps s WHERE status = 'retrying' AND (?2 IS NULL OR EXISTS \
         (SELECT 1 FROM tasks t WHERE t.task_id = s.task_id AND t.tenant = ?2)) \
         ORDER BY next_attempt_at, task_id, name LIMIT ?1"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![lim, tenant], step_row)?;
    rows.map(|r| r?.into_step()).collect()
}

pub(super) fn journal(
    conn: &Connection,
    task_id: &str,
    after: u64,
    lim: u32,
) -> Result<Vec<JournalEntry>> {
    let lim = limit("limit", lim)?;
    let after = millis("after_seq", after)?;
    let mut stmt = conn.prepare_cached(
        "SELECT task_id, seq, at, kind, data FROM events WHERE task_id = ?1 AND seq > ?2 \
         ORDER BY seq LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![task_id, after, lim], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    rows.map(|r| {
        let (t, s, a, k, d) = r?;
        rows::journal(t, s, a, k, &d)
    })
    .collect()
}

/// Job columns of `jobs j`, then its task's tenant: a query joins `tasks t`.
const JOB_COLS: &str = "j.job_id, j.task_id, j.step, j.queue, j.payload, j.status, j.token, \
    j.worker, j.lease_expires_at, j.result, j.error, t.tenant";

fn job_row(r: &Row<'_>) -> rusqlite::Result<JobRow> {
    Ok(JobRow {
        job_id: r.get(0)?,
        task_id: r.get(1)?,
        step: r.get(2)?,
        queue: r.get(3)?,
        payload: r.get(4)?,
        status: r.get(5)?,
        token: r.get(6)?,
        worker: r.get(7)?,
        lease_expires_at: r.get(8)?,
        result: r.get(9)?,
        error: r.get(10)?,
        tenant: r.get(11)?,
    })
}

pub(super) fn job(conn: &Connection, job_id: &str) -> Result<Option<Job>> {
    let sql = format!(
        "SELECT {JOB_COLS} FROM jobs j JOIN tasks t ON t.task_id = j.task_id WHERE j.job_id = ?1"
    );
    let row = conn
        .prepare_cached(&sql)?
        .query_row([job_id], job_row)
        .optional()?;
    row.map(JobRow::into_job).transpose()
}

/// Escalation columns of `escalations e`, then its task's tenant: a query joins
/// `tasks t`.
const ESCALATION_COLS: &str = "e.escalation_id, e.task_id, e.step, e.reason, e.payload, e.status, \
    e.resolution, e.resolved_by, e.created_at, e.resolved_at, t.tenant";

fn escalation_row(r: &Row<'_>) -> rusqlite::Result<EscalationRow> {
    Ok(EscalationRow {
        escalation_id: r.get(0)?,
        task_id: r.get(1)?,
        step: r.get(2)?,
        reason: r.get(3)?,
        payload: r.get(4)?,
        status: r.get(5)?,
        resolution: r.get(6)?,
        resolved_by: r.get(7)?,
        created_at: r.get(8)?,
        resolved_at: r.get(9)?,
        tenant: r.get(10)?,
    })
}

pub(super) fn escalation(conn: &Connection, id: &str) -> Result<Option<Escalation>> {
    let sql = format!(
        "SELECT {ESCALATION_COLS} FROM escalations e JOIN tasks t ON t.task_id = e.task_id \
         WHERE e.escalation_id = ?1"
    );
    let row = conn
        .prepare_cached(&sql)?
        .query_row([id], escalation_row)
        .optional()?;
    row.map(EscalationRow::into_escalation).transpose()
}

pub(super) fn escalations(conn: &Connection, f: &EscalationFilter) -> Result<Vec<Escalation>> {
    let lim = limit("filter.limit", f.limit)?;
    let sql = format!(
        "SELECT {ESCALATION_COLS} FROM escalations e JOIN tasks t ON t.task_id = e.task_id \
         WHERE (?1 = 0 OR e.status = 'open') AND (?2 IS NULL OR e.task_id = ?2) \
         AND (?4 IS NULL OR t.tenant = ?4) ORDER BY e.created_at, e.escalation_id LIMIT ?3"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![f.open_only, f.task_id, lim, f.tenant],
        escalation_row,
    )?;
    rows.map(|r| r?.into_escalation()).collect()
}

pub(super) fn configs(conn: &Connection, lim: u32) -> Result<Vec<ConfigVersion>> {
    let lim = limit("limit", lim)?;
    let mut stmt = conn.prepare_cached(
        "SELECT version, sha256, created_at FROM config_versions ORDER BY version DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([lim], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.map(|r| {
        let (v, h, c) = r?;
        rows::config_version(v, h, c)
    })
    .collect()
}

pub(super) fn config(conn: &Connection, version: u64) -> Result<Option<StoredConfig>> {
    let v = millis("version", version)?;
    let mut stmt = conn.prepare_cached(
        "SELECT version, sha256, created_at, text FROM config_versions WHERE version = ?1",
    )?;
    let row = stmt
        .query_row([v], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, String>(3)?))
        })
        .optional()?;
    row.map(|(v, h, c, text)| {
        Ok(StoredConfig {
            version: rows::config_version(v, h, c)?,
            text,
        })
    })
    .transpose()
}
