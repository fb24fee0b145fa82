//! SQLite writes on coordination records: worker jobs, locks, escalations, config.
//!
//! Every lease-guarded write here is a single `UPDATE … WHERE token = ? AND lease not
//! expired`: the fencing check and the write cannot be separated by another writer.
//! Lock tokens are never reset (release keeps the row), so they only grow.

use rusqlite::{Connection, OptionalExtension, params};

use super::reads;
use super::writes::{append_events, extend_lease, stale_or_missing};
use crate::coordination::{
    ConfigVersion, Escalation, Job, JobResult, LockAcquire, LockLease, NewEscalation, NewJob,
    Resolution,
};
use crate::fenced::{JOB, LOCK};
use crate::rows;
use crate::validate::sha256_hex;
use crate::{FencingToken, Result, StoreError};

pub(super) fn check_fence(
    conn: &Connection,
    lock: &str,
    token: FencingToken,
    now: i64,
) -> Result<()> {
    let current: Option<(i64, Option<String>, i64)> = conn
        .prepare_cached("SELECT token, holder, expires_at FROM locks WHERE name = ?1")?
        .query_row([lock], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    match current {
        None => Err(StoreError::not_found("lock", lock)),
        Some((t, Some(_), exp)) if t == token.0 as i64 && exp > now => Ok(()),
        Some(_) => Err(StoreError::stale("lock", lock, token.0)),
    }
}

pub(super) fn insert_jobs(
    conn: &Connection,
    task_id: &str,
    jobs: &[NewJob],
    payloads: &[String],
    now: i64,
) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO jobs (job_id, task_id, step, queue, payload, status, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?6)",
    )?;
    for (job, payload) in jobs.iter().zip(payloads) {
        stmt.execute(params![
            job.job_id, task_id, job.step, job.queue, payload, now
        ])?;
    }
    Ok(())
}

pub(super) fn insert_escalation(
    conn: &Connection,
    task_id: &str,
    e: &NewEscalation,
    payload: &str,
    now: i64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO escalations (escalation_id, task_id, step, reason, payload, status, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, 'open', ?6)",
    )?
    .execute(params![e.escalation_id, task_id, e.step, e.reason, payload, now])?;
    Ok(())
}

/// Wakes a task waiting on a job or an escalation and journals why.
fn wake(conn: &Connection, task_id: &str, kind: &str, data: String, now: i64) -> Result<()> {
    conn.prepare_cached(
        "UPDATE tasks SET status = 'queued', next_run_at = ?2, updated_at = ?2 \
         WHERE task_id = ?1 AND status = 'waiting'",
    )?
    .execute(params![task_id, now])?;
    append_events(conn, task_id, &[(kind, data)], now)
}

/// Where a worker claims from: a queue, only its tenant's jobs when it names one.
pub(super) struct JobSource<'a> {
    pub(super) queue: &'a str,
    pub(super) tenant: Option<&'a str>,
}

pub(super) fn claim_jobs(
    conn: &Connection,
    from: &JobSource<'_>,
    worker: &str,
    expires: i64,
    lim: i64,
    now: i64,
) -> Result<Vec<Job>> {
    let due: Vec<String> = conn
        .prepare_cached(
            "SELECT job_id FROM jobs j WHERE queue = ?1 AND (status = 'pending' OR \
             (status = 'claimed' AND lease_expires_at <= ?2)) AND (?4 IS NULL OR EXISTS \
             (SELECT 1 FROM tasks t WHERE t.task_id = j.task_id AND t.tenant = ?4)) \
             ORDER BY created_at, job_id LIMIT ?3",
        )?
        .query_map(params![from.queue, now, lim, from.tenant], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut stmt = conn.prepare_cached(
        "UPDATE jobs SET status = 'claimed', token = token + 1, worker = ?2, lease_expires_at = ?3, \
         updated_at = ?4 WHERE job_id = ?1",
    )?;
    let mut jobs = Vec::with_capacity(due.len());
    for job_id in due {
        stmt.execute(params![job_id, worker, expires, now])?;
        jobs.push(reads::job(conn, &job_id)?.ok_or_else(|| StoreError::not_found("job", &job_id))?);
    }
    Ok(jobs)
}

pub(super) fn heartbeat_job(
    conn: &Connection,
    job_id: &str,
    token: FencingToken,
    expires: i64,
    now: i64,
) -> Result<u64> {
    extend_lease(
        conn,
        JOB,
        "UPDATE jobs SET lease_expires_at = ?3, updated_at = ?4 WHERE job_id = ?1 \
             AND status = 'claimed' AND token = ?2 AND lease_expires_at > ?4",
        job_id,
        token,
        expires,
        now,
    )
}

pub(super) fn complete_job(
    conn: &Connection,
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
    let done: Option<(String, String)> = conn
        .prepare_cached(
            "UPDATE jobs SET status = ?3, result = ?4, error = ?5, lease_expires_at = NULL, \
             updated_at = ?6 WHERE job_id = ?1 AND status = 'claimed' AND token = ?2 \
             AND lease_expires_at > ?6 RETURNING task_id, step",
        )?
        .query_row(
            params![job_id, token.0 as i64, status, doc, error, now],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((task_id, step)) = done else {
        return Err(stale_or_missing(conn, JOB, job_id, token));
    };
    let data =
        serde_json::json!({ "job_id": job_id, "step": step, "status": status, "error": error });
    wake(conn, &task_id, "job_finished", data.to_string(), now)
}

pub(super) fn acquire_lock(
    conn: &Connection,
    name: &str,
    holder: &str,
    expires: i64,
    now: i64,
) -> Result<LockAcquire> {
    let token: Option<i64> = conn
        .prepare_cached(ACQUIRE_LOCK)?
        .query_row(params![name, holder, expires, now], |r| r.get(0))
        .optional()?;
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
    let (holder, exp): (Option<String>, i64) = conn
        .prepare_cached("SELECT holder, expires_at FROM locks WHERE name = ?1")?
        .query_row([name], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(LockAcquire::Busy {
        holder: holder.unwrap_or_default(),
        expires_at_ms: exp as u64,
    })
}

/// Takes a free, expired or own lock with the next token, in one statement.
pub(crate) const ACQUIRE_LOCK: &str = "INSERT INTO locks (name, holder, token, expires_at) \
    VALUES (?1, ?2, 1, ?3) ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
    token = locks.token + 1, expires_at = excluded.expires_at \
    WHERE locks.holder IS NULL OR locks.expires_at <= ?4 OR locks.holder = excluded.holder \
    RETURNING token";

pub(super) fn renew_lock(
    conn: &Connection,
    name: &str,
    token: FencingToken,
    expires: i64,
    now: i64,
) -> Result<u64> {
    extend_lease(
        conn,
        LOCK,
        "UPDATE locks SET expires_at = ?3 WHERE name = ?1 AND token = ?2 \
             AND holder IS NOT NULL AND expires_at > ?4",
        name,
        token,
        expires,
        now,
    )
}

pub(super) fn release_lock(conn: &Connection, name: &str, token: FencingToken) -> Result<()> {
    let changed = conn
        .prepare_cached("UPDATE locks SET holder = NULL, expires_at = 0 WHERE name = ?1 AND token = ?2 AND holder IS NOT NULL")?
        .execute(params![name, token.0 as i64])?;
    if changed == 0 {
        return Err(stale_or_missing(conn, LOCK, name, token));
    }
    Ok(())
}

pub(super) fn resolve(
    conn: &Connection,
    id: &str,
    resolution: &Resolution,
    by: &str,
    now: i64,
) -> Result<Escalation> {
    let (status, data) = rows::resolution_columns(resolution);
    let task_id: Option<String> = conn
        .prepare_cached(
            "UPDATE escalations SET status = ?2, resolution = ?3, resolved_by = ?4, resolved_at = ?5 \
             WHERE escalation_id = ?1 AND status = 'open' RETURNING task_id",
        )?
        .query_row(params![id, status.as_str(), data, by, now], |r| r.get(0))
        .optional()?;
    let Some(task_id) = task_id else {
        return match reads::escalation(conn, id)? {
            Some(e) => Err(StoreError::conflict(
                "escalation",
                id,
                format!("already {}", e.status),
            )),
            None => Err(StoreError::not_found("escalation", id)),
        };
    };
    let event = serde_json::json!({ "escalation_id": id, "decision": status.as_str(), "by": by });
    wake(
        conn,
        &task_id,
        "escalation_resolved",
        event.to_string(),
        now,
    )?;
    reads::escalation(conn, id)?.ok_or_else(|| StoreError::not_found("escalation", id))
}

pub(super) fn record_config(conn: &Connection, text: &str, now: i64) -> Result<ConfigVersion> {
    let sha256 = sha256_hex(text);
    let latest = reads::configs(conn, 1)?.into_iter().next();
    if let Some(latest) = latest.as_ref().filter(|l| l.sha256 == sha256) {
        return Ok(latest.clone());
    }
    let version = latest.map_or(1, |l| l.version + 1);
    conn.prepare_cached(
        "INSERT INTO config_versions (version, sha256, text, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![version as i64, sha256, text, now])?;
    Ok(ConfigVersion {
        version,
        sha256,
        created_at_ms: now as u64,
    })
}
