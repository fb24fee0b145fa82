//! PostgreSQL reads and writes of evaluation runs and their case results.
//!
//! A case result is one statement (`INSERT … SELECT … WHERE EXISTS … ON CONFLICT DO
//! NOTHING`), its own transaction, so concurrent cases of a run commit side by side
//! and PostgreSQL's group commit shares their fsyncs; only when it inserts nothing is
//! the reason looked up (the run is missing, or the case was recorded). Starting a run
//! locks the run's row, so two starts of the same id cannot both create it.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::eval::{
    EvalResult, EvalRun, EvalRunFilter, EvalRunStart, EvalStatus, NewEvalResult, NewEvalRun,
    ResultDocs, ResultRow, RunDocs, RunRow, other_suite,
};
use crate::validate::limit;
use crate::{Result, StoreError};

const RUN_COLS: &str = "run_id, tenant, suite, suite_sha256, subject::text, settings::text, \
    cases, status, summary::text, hf_ms(created_at), hf_ms(updated_at), hf_ms(finished_at)";

fn run_row(r: &PgRow) -> Result<RunRow> {
    Ok(RunRow {
        run_id: r.try_get(0)?,
        tenant: r.try_get(1)?,
        suite: r.try_get(2)?,
        suite_sha256: r.try_get(3)?,
        subject: r.try_get(4)?,
        settings: r.try_get(5)?,
        cases: r.try_get(6)?,
        status: r.try_get(7)?,
        summary: r.try_get(8)?,
        created_at: r.try_get(9)?,
        updated_at: r.try_get(10)?,
        finished_at: r.try_get(11)?,
    })
}

async fn run_locked(
    c: &mut PgConnection,
    tenant: &str,
    run_id: &str,
    lock: bool,
) -> Result<Option<EvalRun>> {
    let sql = format!(
        "SELECT {RUN_COLS} FROM eval_runs WHERE tenant = $1 AND run_id = $2{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let row = sqlx::query(&sql)
        .bind(tenant)
        .bind(run_id)
        .fetch_optional(c)
        .await?;
    row.map(|r| run_row(&r)?.into_run()).transpose()
}

pub(super) async fn run(
    c: &mut PgConnection,
    tenant: &str,
    run_id: &str,
) -> Result<Option<EvalRun>> {
    run_locked(c, tenant, run_id, false).await
}

pub(super) async fn runs(c: &mut PgConnection, filter: &EvalRunFilter) -> Result<Vec<EvalRun>> {
    let lim = limit("filter.limit", filter.limit)?;
    let sql = format!(
        "SELECT {RUN_COLS} FROM eval_runs WHERE ($1::text IS NULL OR tenant = $1) \
         AND ($2::text IS NULL OR suite = $2) ORDER BY created_at DESC, run_id DESC LIMIT $3"
    );
    let rows = sqlx::query(&sql)
        .bind(&filter.tenant)
        .bind(&filter.suite)
        .bind(lim)
        .fetch_all(c)
        .await?;
    rows.iter().map(|r| run_row(r)?.into_run()).collect()
}

/// Runs in a transaction the caller commits.
pub(super) async fn start(
    c: &mut PgConnection,
    new: &NewEvalRun,
    docs: &RunDocs,
    now: i64,
) -> Result<EvalRunStart> {
    let inserted = sqlx::query(
        "INSERT INTO eval_runs (tenant, run_id, suite, suite_sha256, subject, settings, cases, \
         status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5::json, $6::json, $7, \
         'running', hf_ts($8), hf_ts($8)) ON CONFLICT (tenant, run_id) DO NOTHING",
    )
    .bind(&new.tenant)
    .bind(&new.run_id)
    .bind(&new.suite)
    .bind(&new.suite_sha256)
    .bind(&docs.subject)
    .bind(&docs.settings)
    .bind(i64::from(new.cases))
    .bind(now)
    .execute(&mut *c)
    .await?
    .rows_affected();
    let missing = || StoreError::not_found("eval run", &new.run_id);
    let stored = run_locked(c, &new.tenant, &new.run_id, true)
        .await?
        .ok_or_else(missing)?;
    if inserted == 1 {
        return Ok(EvalRunStart::Created(stored));
    }
    if stored.suite != new.suite || stored.suite_sha256 != new.suite_sha256 {
        return Err(other_suite(&stored, new));
    }
    sqlx::query(
        "UPDATE eval_runs SET status = 'running', updated_at = hf_ts($3) \
         WHERE tenant = $1 AND run_id = $2",
    )
    .bind(&new.tenant)
    .bind(&new.run_id)
    .bind(now)
    .execute(&mut *c)
    .await?;
    let resumed = run(c, &new.tenant, &new.run_id)
        .await?
        .ok_or_else(missing)?;
    Ok(EvalRunStart::Resumed(resumed))
}

pub(super) async fn record(
    c: &mut PgConnection,
    (tenant, run_id): (&str, &str),
    r: &NewEvalResult,
    docs: &ResultDocs,
    now: i64,
) -> Result<()> {
    let inserted = sqlx::query(
        "INSERT INTO eval_results (tenant, run_id, case_id, outcome, score, tags, verdicts, \
         answer, error, cost_usd, latency_ms, recorded_at) \
         SELECT $1, $2, $3, $4, $5, $6::jsonb, $7::json, $8::json, $9, $10, $11, hf_ts($12) \
         WHERE EXISTS (SELECT 1 FROM eval_runs WHERE tenant = $1 AND run_id = $2) \
         ON CONFLICT (tenant, run_id, case_id) DO NOTHING",
    )
    .bind(tenant)
    .bind(run_id)
    .bind(&r.case_id)
    .bind(r.outcome.as_str())
    .bind(r.score)
    .bind(&docs.tags)
    .bind(&docs.verdicts)
    .bind(&docs.answer)
    .bind(&r.error)
    .bind(r.cost_usd)
    .bind(docs.latency_ms)
    .bind(now)
    .execute(&mut *c)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(());
    }
    match run(c, tenant, run_id).await? {
        None => Err(StoreError::not_found("eval run", run_id)),
        Some(_) => Err(StoreError::conflict(
            "eval result",
            format!("{run_id}/{}", r.case_id),
            "this case is already recorded in the run",
        )),
    }
}

pub(super) async fn results(
    c: &mut PgConnection,
    tenant: &str,
    run_id: &str,
) -> Result<Vec<EvalResult>> {
    let rows = sqlx::query(
        "SELECT case_id, outcome, score, tags::text, verdicts::text, answer::text, error, \
         cost_usd, latency_ms, hf_ms(recorded_at) FROM eval_results \
         WHERE tenant = $1 AND run_id = $2 ORDER BY seq",
    )
    .bind(tenant)
    .bind(run_id)
    .fetch_all(c)
    .await?;
    rows.iter()
        .map(|r| {
            ResultRow {
                case_id: r.try_get(0)?,
                outcome: r.try_get(1)?,
                score: r.try_get(2)?,
                tags: r.try_get(3)?,
                verdicts: r.try_get(4)?,
                answer: r.try_get(5)?,
                error: r.try_get(6)?,
                cost_usd: r.try_get(7)?,
                latency_ms: r.try_get(8)?,
                recorded_at: r.try_get(9)?,
            }
            .into_result()
        })
        .collect()
}

pub(super) async fn finish(
    c: &mut PgConnection,
    (tenant, run_id): (&str, &str),
    status: EvalStatus,
    summary: Option<&str>,
    now: i64,
) -> Result<EvalRun> {
    let sql = format!(
        "UPDATE eval_runs SET status = $3, summary = $4::json, updated_at = hf_ts($5), \
         finished_at = hf_ts($5) WHERE tenant = $1 AND run_id = $2 RETURNING {RUN_COLS}"
    );
    let row = sqlx::query(&sql)
        .bind(tenant)
        .bind(run_id)
        .bind(status.as_str())
        .bind(summary)
        .bind(now)
        .fetch_optional(c)
        .await?;
    match row {
        Some(r) => run_row(&r)?.into_run(),
        None => Err(StoreError::not_found("eval run", run_id)),
    }
}
