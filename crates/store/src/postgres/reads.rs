//! PostgreSQL reads: row mapping and the queries behind the `Store` getters.
//!
//! Times leave the database as Unix milliseconds (`hf_ms`) and documents as text, so
//! rows map into the same raw structs as SQLite's and convert through one code path.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::Result;
use crate::coordination::{ConfigVersion, Escalation, EscalationFilter, Job, StoredConfig};
use crate::rows::{self, EscalationRow, JobRow, StepRow, TaskRow};
use crate::task::{JournalEntry, Step, Task, TaskFilter, TaskPage, WorkflowDef};
use crate::validate::{limit, millis, unsigned};

/// Task columns of `tasks t`, in [`TaskRow`]'s order.
pub(super) const TASK_COLS: &str = "t.task_id, t.workflow, t.workflow_version, t.status, \
    t.input::text, t.output::text, t.idempotency_key, t.completed_steps::text, \
    t.pending_steps::text, t.retry_count, t.last_error, t.checkpoint_step, hf_ms(t.checkpoint_at), \
    t.cost_usd, hf_ms(t.next_run_at), t.lease_owner, t.lease_token, hf_ms(t.lease_expires_at), \
    hf_ms(t.created_at), hf_ms(t.updated_at), t.tenant, t.traceparent";

/// How many columns [`TASK_COLS`] selects: a query's own columns come after them.
pub(super) const TASK_COL_COUNT: usize = 22;

pub(super) fn task_row(r: &PgRow) -> Result<TaskRow> {
    Ok(TaskRow {
        task_id: r.try_get(0)?,
        workflow: r.try_get(1)?,
        workflow_version: r.try_get(2)?,
        status: r.try_get(3)?,
        input: r.try_get(4)?,
        output: r.try_get(5)?,
        idempotency_key: r.try_get(6)?,
        completed_steps: r.try_get(7)?,
        pending_steps: r.try_get(8)?,
        retry_count: r.try_get(9)?,
        last_error: r.try_get(10)?,
        checkpoint_step: r.try_get(11)?,
        checkpoint_at: r.try_get(12)?,
        cost_usd: r.try_get(13)?,
        next_run_at: r.try_get(14)?,
        lease_owner: r.try_get(15)?,
        lease_token: r.try_get(16)?,
        lease_expires_at: r.try_get(17)?,
        created_at: r.try_get(18)?,
        updated_at: r.try_get(19)?,
        tenant: r.try_get(20)?,
        traceparent: r.try_get(21)?,
    })
}

pub(super) async fn task(conn: &mut PgConnection, task_id: &str) -> Result<Option<Task>> {
    let sql = format!("SELECT {TASK_COLS} FROM tasks t WHERE t.task_id = $1");
    let row = sqlx::query(&sql).bind(task_id).fetch_optional(conn).await?;
    row.map(|r| task_row(&r)?.into_task()).transpose()
}

pub(super) async fn tasks(conn: &mut PgConnection, f: &TaskFilter) -> Result<TaskPage> {
    let lim = limit("filter.limit", f.limit)?;
    let cursor = millis("filter.cursor", f.cursor.unwrap_or(i64::MAX as u64))?;
    let sql = format!(
        "SELECT {TASK_COLS}, t.seq FROM tasks t WHERE t.seq < $1 AND ($2::text IS NULL OR t.status = $2) \
         AND ($3::text IS NULL OR t.workflow = $3) AND ($5::text IS NULL OR t.tenant = $5) \
         ORDER BY t.seq DESC LIMIT $4"
    );
    let found = sqlx::query(&sql)
        .bind(cursor)
        .bind(f.status.map(|s| s.as_str()))
        .bind(f.workflow.as_deref())
        .bind(lim + 1)
        .bind(f.tenant.as_deref())
        .fetch_all(conn)
        .await?;
    let more = found.len() > f.limit as usize;
    let mut tasks = Vec::with_capacity(found.len());
    let mut next_cursor = None;
    for r in found.iter().take(f.limit as usize) {
        tasks.push(task_row(r)?.into_task()?);
        next_cursor = Some(unsigned("task.seq", r.try_get(TASK_COL_COUNT)?)?);
    }
    Ok(TaskPage {
        tasks,
        next_cursor: next_cursor.filter(|_| more),
    })
}

fn workflow_row(r: &PgRow) -> Result<WorkflowDef> {
    let definition: String = r.try_get(2)?;
    rows::workflow(r.try_get(0)?, r.try_get(1)?, &definition, r.try_get(3)?)
}

pub(super) async fn workflow(
    conn: &mut PgConnection,
    name: &str,
    version: Option<u32>,
) -> Result<Option<WorkflowDef>> {
    let row = sqlx::query(
        "SELECT name, version, definition::text, hf_ms(created_at) FROM workflows \
         WHERE name = $1 AND ($2::int8 IS NULL OR version = $2) ORDER BY version DESC LIMIT 1",
    )
    .bind(name)
    .bind(version.map(i64::from))
    .fetch_optional(conn)
    .await?;
    row.map(|r| workflow_row(&r)).transpose()
}

pub(super) async fn workflows(conn: &mut PgConnection) -> Result<Vec<WorkflowDef>> {
    let rows = sqlx::query(
        "SELECT name, version, definition::text, hf_ms(created_at) FROM workflows ORDER BY name, version",
    )
    .fetch_all(conn)
    .await?;
    rows.iter().map(workflow_row).collect()
}

const STEP_COLS: &str = "s.task_id, s.name, s.status, s.attempt, s.output::text, s.error, \
    hf_ms(s.next_attempt_at), hf_ms(s.updated_at)";

fn step_row(r: &PgRow) -> Result<Step> {
    StepRow {
        task_id: r.try_get(0)?,
        name: r.try_get(1)?,
        status: r.try_get(2)?,
        attempt: r.try_get(3)?,
        output: r.try_get(4)?,
        error: r.try_get(5)?,
        next_attempt_at: r.try_get(6)?,
        updated_at: r.try_get(7)?,
    }
    .into_step()
}

pub(super) async fn steps(conn: &mut PgConnection, task_id: &str) -> Result<Vec<Step>> {
    let sql = format!("SELECT {STEP_COLS} FROM steps s WHERE s.task_id = $1 ORDER BY s.name");
    let rows = sqlx::query(&sql).bind(task_id).fetch_all(conn).await?;
    rows.iter().map(step_row).collect()
}

pub(super) async fn retry_queue(
    conn: &mut PgConnection,
    tenant: Option<&str>,
    lim: u32,
) -> Result<Vec<Step>> {
    let lim = limit("limit", lim)?;
    let sql = format!(
        "SELECT {STEP_COLS} FROM steps s WHERE s.status = 'retrying' AND ($2::text IS NULL OR \
         EXISTS (SELECT 1 FROM tasks t WHERE t.task_id = s.task_id AND t.tenant = $2)) \
         ORDER BY s.next_attempt_at, s.task_id, s.name LIMIT $1"
    );
    let rows = sqlx::query(&sql)
        .bind(lim)
        .bind(tenant)
        .fetch_all(conn)
        .await?;
    rows.iter().map(step_row).collect()
}

pub(super) async fn journal(
    conn: &mut PgConnection,
    task_id: &str,
    after: u64,
    lim: u32,
) -> Result<Vec<JournalEntry>> {
    let lim = limit("limit", lim)?;
    let rows = sqlx::query(
        "SELECT task_id, seq, hf_ms(at), kind, data::text FROM events WHERE task_id = $1 AND seq > $2 \
         ORDER BY seq LIMIT $3",
    )
    .bind(task_id)
    .bind(millis("after_seq", after)?)
    .bind(lim)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let data: String = r.try_get(4)?;
            rows::journal(
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                &data,
            )
        })
        .collect()
}

/// Job columns of `jobs j`, then its task's tenant: a query joins `tasks t`.
pub(super) const JOB_COLS: &str = "j.job_id, j.task_id, j.step, j.queue, j.payload::text, j.status, \
    j.token, j.worker, hf_ms(j.lease_expires_at), j.result::text, j.error, t.tenant";

pub(super) fn job_row(r: &PgRow) -> Result<Job> {
    JobRow {
        job_id: r.try_get(0)?,
        task_id: r.try_get(1)?,
        step: r.try_get(2)?,
        queue: r.try_get(3)?,
        payload: r.try_get(4)?,
        status: r.try_get(5)?,
        token: r.try_get(6)?,
        worker: r.try_get(7)?,
        lease_expires_at: r.try_get(8)?,
        result: r.try_get(9)?,
        error: r.try_get(10)?,
        tenant: r.try_get(11)?,
    }
    .into_job()
}

pub(super) async fn job(conn: &mut PgConnection, job_id: &str) -> Result<Option<Job>> {
    let sql = format!(
        "SELECT {JOB_COLS} FROM jobs j JOIN tasks t ON t.task_id = j.task_id WHERE j.job_id = $1"
    );
    let row = sqlx::query(&sql).bind(job_id).fetch_optional(conn).await?;
    row.map(|r| job_row(&r)).transpose()
}

/// Escalation columns of `escalations e`, then its task's tenant: a query joins
/// `tasks t`.
const ESCALATION_COLS: &str = "e.escalation_id, e.task_id, e.step, e.reason, e.payload::text, \
    e.status, e.resolution::text, e.resolved_by, hf_ms(e.created_at), hf_ms(e.resolved_at), \
    t.tenant";

fn escalation_row(r: &PgRow) -> Result<Escalation> {
    EscalationRow {
        escalation_id: r.try_get(0)?,
        task_id: r.try_get(1)?,
        step: r.try_get(2)?,
        reason: r.try_get(3)?,
        payload: r.try_get(4)?,
        status: r.try_get(5)?,
        resolution: r.try_get(6)?,
        resolved_by: r.try_get(7)?,
        created_at: r.try_get(8)?,
        resolved_at: r.try_get(9)?,
        tenant: r.try_get(10)?,
    }
    .into_escalation()
}

pub(super) async fn escalation(conn: &mut PgConnection, id: &str) -> Result<Option<Escalation>> {
    let sql = format!(
        "SELECT {ESCALATION_COLS} FROM escalations e JOIN tasks t ON t.task_id = e.task_id \
         WHERE e.escalation_id = $1"
    );
    let row = sqlx::query(&sql).bind(id).fetch_optional(conn).await?;
    row.map(|r| escalation_row(&r)).transpose()
}

pub(super) async fn escalations(
    conn: &mut PgConnection,
    f: &EscalationFilter,
) -> Result<Vec<Escalation>> {
    let lim = limit("filter.limit", f.limit)?;
    let sql = format!(
        "SELECT {ESCALATION_COLS} FROM escalations e JOIN tasks t ON t.task_id = e.task_id \
         WHERE (NOT $1 OR e.status = 'open') AND ($2::text IS NULL OR e.task_id = $2) \
         AND ($4::text IS NULL OR t.tenant = $4) ORDER BY e.created_at, e.escalation_id LIMIT $3"
    );
    let rows = sqlx::query(&sql)
        .bind(f.open_only)
        .bind(f.task_id.as_deref())
        .bind(lim)
        .bind(f.tenant.as_deref())
        .fetch_all(conn)
        .await?;
    rows.iter().map(escalation_row).collect()
}

pub(super) async fn configs(conn: &mut PgConnection, lim: u32) -> Result<Vec<ConfigVersion>> {
    let lim = limit("limit", lim)?;
    let rows = sqlx::query(
        "SELECT version, sha256, hf_ms(created_at) FROM config_versions ORDER BY version DESC LIMIT $1",
    )
    .bind(lim)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| rows::config_version(r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))
        .collect()
}

pub(super) async fn config(conn: &mut PgConnection, version: u64) -> Result<Option<StoredConfig>> {
    let row = sqlx::query(
        "SELECT version, sha256, hf_ms(created_at), text FROM config_versions WHERE version = $1",
    )
    .bind(millis("version", version)?)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        let version = rows::config_version(r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)?;
        Ok(StoredConfig {
            version,
            text: r.try_get(3)?,
        })
    })
    .transpose()
}
