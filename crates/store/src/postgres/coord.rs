//! PostgreSQL writes on coordination records: worker jobs, locks, escalations, config.
//!
//! A fence check (in `hf_advance`) takes the lock row `FOR SHARE`, so no new holder can
//! commit a larger token until the fenced write has committed: the write is ordered
//! before the lock changes hands, never after. Job claims use `SKIP LOCKED` like task
//! claims. Completing a job and resolving an escalation lock their task's row first,
//! as an advance does: whichever comes second sees the other, so a wake is never lost
//! between a task's read of its job and its advance to `Waiting`.

use sqlx::{PgConnection, Row};

use super::reads::{self, JOB_COLS, job_row};
use super::writes::{append_events, extend_lease, stale_or_missing};
use crate::coordination::{
    ConfigVersion, Escalation, Job, JobResult, LockAcquire, LockLease, Resolution,
};
use crate::fenced::{JOB, LOCK};
use crate::rows;
use crate::validate::sha256_hex;
use crate::{FencingToken, Result, StoreError};

/// Locks the row of the task that `sql` (bound to `id`) names, before the caller reads
/// or writes what decides a wake. `None` when `id` names nothing.
async fn lock_task(c: &mut PgConnection, sql: &str, id: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(sql)
        .bind(id)
        .fetch_optional(&mut *c)
        .await?)
}

/// Wakes a task waiting on a job or an escalation (queued, due now, whatever its timer)
/// and journals why. The caller holds the task's row lock.
async fn wake(
    c: &mut PgConnection,
    task_id: &str,
    kind: &str,
    data: String,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE tasks SET status = 'queued', next_run_at = hf_ts($2), updated_at = hf_ts($2) \
         WHERE task_id = $1 AND status = 'waiting'",
    )
    .bind(task_id)
    .bind(now)
    .execute(&mut *c)
    .await?;
    append_events(c, task_id, &[(kind, data)], now).await
}

/// Where a worker claims from: a queue, only its tenant's jobs when it names one.
pub(super) struct JobSource<'a> {
    pub(super) queue: &'a str,
    pub(super) tenant: Option<&'a str>,
}

pub(super) async fn claim_jobs(
    c: &mut PgConnection,
    from: &JobSource<'_>,
    worker: &str,
    expires: i64,
    lim: i64,
    now: i64,
) -> Result<Vec<Job>> {
    // The task's tenant comes back through `t` (JOB_COLS reads it).
    let sql = format!(
        "WITH due AS (SELECT j.job_id FROM jobs j WHERE j.queue = $1 AND (j.status = 'pending' OR \
           (j.status = 'claimed' AND j.lease_expires_at <= hf_ts($2))) AND ($6::text IS NULL OR \
           EXISTS (SELECT 1 FROM tasks t WHERE t.task_id = j.task_id AND t.tenant = $6)) \
           ORDER BY j.created_at, j.job_id LIMIT $3 FOR UPDATE OF j SKIP LOCKED) \
         UPDATE jobs j SET status = 'claimed', token = j.token + 1, worker = $4, \
           lease_expires_at = hf_ts($5), updated_at = hf_ts($2) \
         FROM due, tasks t WHERE j.job_id = due.job_id AND t.task_id = j.task_id \
         RETURNING {JOB_COLS}"
    );
    let rows = sqlx::query(&sql)
        .bind(from.queue)
        .bind(now)
        .bind(lim)
        .bind(worker)
        .bind(expires)
        .bind(from.tenant)
        .fetch_all(c)
        .await?;
    rows.iter().map(job_row).collect()
}

pub(super) async fn heartbeat_job(
    c: &mut PgConnection,
    job_id: &str,
    token: FencingToken,
    expires: i64,
    now: i64,
) -> Result<u64> {
    extend_lease(
        c,
        JOB,
        "UPDATE jobs SET lease_expires_at = hf_ts($3), updated_at = hf_ts($4) WHERE job_id = $1 \
         AND status = 'claimed' AND token = $2 AND lease_expires_at > hf_ts($4)",
        job_id,
        token,
        expires,
        now,
    )
    .await
}

pub(super) async fn complete_job(
    c: &mut PgConnection,
    job_id: &str,
    token: FencingToken,
    result: &JobResult,
    doc: Option<&str>,
    now: i64,
) -> Result<()> {
    let (status, error) = match result {
        JobResult::Succeeded(_) => ("succeeded", None),
        JobResult::Failed(e) => ("failed", Some(e.as_str())),
    };
    lock_task(
        c,
        "SELECT t.task_id FROM jobs j JOIN tasks t ON t.task_id = j.task_id \
         WHERE j.job_id = $1 FOR UPDATE OF t",
        job_id,
    )
    .await?;
    let row = sqlx::query(
        "UPDATE jobs SET status = $3, result = $4::json, error = $5, lease_expires_at = NULL, \
         updated_at = hf_ts($6) WHERE job_id = $1 AND status = 'claimed' AND token = $2 \
         AND lease_expires_at > hf_ts($6) RETURNING task_id, step",
    )
    .bind(job_id)
    .bind(token.0 as i64)
    .bind(status)
    .bind(doc)
    .bind(error)
    .bind(now)
    .fetch_optional(&mut *c)
    .await?;
    let Some(row) = row else {
        return Err(stale_or_missing(c, JOB, job_id, token).await);
    };
    let (task_id, step): (String, String) = (row.try_get(0)?, row.try_get(1)?);
    let data =
        serde_json::json!({ "job_id": job_id, "step": step, "status": status, "error": error });
    wake(c, &task_id, "job_finished", data.to_string(), now).await
}

pub(super) async fn acquire_lock(
    c: &mut PgConnection,
    name: &str,
    holder: &str,
    expires: i64,
    now: i64,
) -> Result<LockAcquire> {
    let token: Option<i64> = sqlx::query_scalar(
        "INSERT INTO locks (name, holder, token, expires_at) VALUES ($1, $2, 1, hf_ts($3)) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, token = locks.token + 1, \
         expires_at = excluded.expires_at \
         WHERE locks.holder IS NULL OR locks.expires_at <= hf_ts($4) OR locks.holder = excluded.holder \
         RETURNING token",
    )
    .bind(name)
    .bind(holder)
    .bind(expires)
    .bind(now)
    .fetch_optional(&mut *c)
    .await?;
    if let Some(token) = token {
        let token = FencingToken(token as u64);
        let (name, holder) = (name.to_string(), holder.to_string());
        return Ok(LockAcquire::Acquired(LockLease {
            name,
            holder,
            token,
            expires_at_ms: expires as u64,
        }));
    }
    let row = sqlx::query("SELECT holder, hf_ms(expires_at) FROM locks WHERE name = $1")
        .bind(name)
        .fetch_one(c)
        .await?;
    let (holder, exp): (Option<String>, i64) = (row.try_get(0)?, row.try_get(1)?);
    Ok(LockAcquire::Busy {
        holder: holder.unwrap_or_default(),
        expires_at_ms: exp as u64,
    })
}

pub(super) async fn renew_lock(
    c: &mut PgConnection,
    name: &str,
    token: FencingToken,
    expires: i64,
    now: i64,
) -> Result<u64> {
    extend_lease(
        c,
        LOCK,
        "UPDATE locks SET expires_at = hf_ts($3) WHERE name = $1 AND token = $2 \
         AND holder IS NOT NULL AND expires_at > hf_ts($4)",
        name,
        token,
        expires,
        now,
    )
    .await
}

pub(super) async fn release_lock(
    c: &mut PgConnection,
    name: &str,
    token: FencingToken,
) -> Result<()> {
    let changed = sqlx::query(
        "UPDATE locks SET holder = NULL, expires_at = hf_ts(0) WHERE name = $1 AND token = $2 AND holder IS NOT NULL",
    )
    .bind(name)
    .bind(token.0 as i64)
    .execute(&mut *c)
    .await?
    .rows_affected();
    if changed == 0 {
        return Err(stale_or_missing(c, LOCK, name, token).await);
    }
    Ok(())
}

pub(super) async fn resolve(
    c: &mut PgConnection,
    id: &str,
    resolution: &Resolution,
    by: &str,
    now: i64,
) -> Result<Escalation> {
    let (status, data) = rows::resolution_columns(resolution);
    lock_task(
        c,
        "SELECT t.task_id FROM escalations e JOIN tasks t ON t.task_id = e.task_id \
         WHERE e.escalation_id = $1 FOR UPDATE OF t",
        id,
    )
    .await?;
    let task_id: Option<String> = sqlx::query_scalar(
        "UPDATE escalations SET status = $2, resolution = $3::json, resolved_by = $4, resolved_at = hf_ts($5) \
         WHERE escalation_id = $1 AND status = 'open' RETURNING task_id",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(data)
    .bind(by)
    .bind(now)
    .fetch_optional(&mut *c)
    .await?;
    let Some(task_id) = task_id else {
        return match reads::escalation(c, id).await? {
            Some(e) => Err(StoreError::conflict(
                "escalation",
                id,
                format!("already {}", e.status),
            )),
            None => Err(StoreError::not_found("escalation", id)),
        };
    };
    let event = serde_json::json!({ "escalation_id": id, "decision": status.as_str(), "by": by });
    wake(c, &task_id, "escalation_resolved", event.to_string(), now).await?;
    reads::escalation(c, id)
        .await?
        .ok_or_else(|| StoreError::not_found("escalation", id))
}

pub(super) async fn record_config(
    c: &mut PgConnection,
    text: &str,
    now: i64,
) -> Result<ConfigVersion> {
    // Versions are dense and ordered: one recorder at a time.
    sqlx::query("LOCK TABLE config_versions IN EXCLUSIVE MODE")
        .execute(&mut *c)
        .await?;
    let sha256 = sha256_hex(text);
    let latest = reads::configs(c, 1).await?.into_iter().next();
    if let Some(latest) = latest.as_ref().filter(|l| l.sha256 == sha256) {
        return Ok(latest.clone());
    }
    let version = latest.map_or(1, |l| l.version + 1);
    sqlx::query("INSERT INTO config_versions (version, sha256, text, created_at) VALUES ($1, $2, $3, hf_ts($4))")
        .bind(version as i64)
        .bind(&sha256)
        .bind(text)
        .bind(now)
        .execute(c)
        .await?;
    Ok(ConfigVersion {
        version,
        sha256,
        created_at_ms: now as u64,
    })
}
