//! SQLite reads and writes of evaluation runs and their case results.
//!
//! Writes run on the group-commit writer like every other write, so recording a case
//! as it finishes costs a share of a commit, not a commit of its own: a suite run at a
//! few hundred cases a second stays a few dozen fsyncs a second. The checks (does the
//! run exist, was the case recorded) and the write are in the same savepoint, on the one
//! writer, so they cannot be separated.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::eval::{
    EvalResult, EvalRun, EvalRunFilter, EvalRunStart, EvalStatus, NewEvalResult, NewEvalRun,
    ResultDocs, ResultRow, RunDocs, RunRow, other_suite,
};
use crate::validate::limit;
use crate::{Result, StoreError};

const RUN_COLS: &str = "run_id, tenant, suite, suite_sha256, subject, settings, cases, status, \
    summary, created_at, updated_at, finished_at";

fn run_row(r: &Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        run_id: r.get(0)?,
        tenant: r.get(1)?,
        suite: r.get(2)?,
        suite_sha256: r.get(3)?,
        subject: r.get(4)?,
        settings: r.get(5)?,
        cases: r.get(6)?,
        status: r.get(7)?,
        summary: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
        finished_at: r.get(11)?,
    })
}

pub(super) fn run(conn: &Connection, tenant: &str, run_id: &str) -> Result<Option<EvalRun>> {
    let sql = format!("SELECT {RUN_COLS} FROM eval_runs WHERE tenant = ?1 AND run_id = ?2");
    conn.prepare_cached(&sql)?
        .query_row(params![tenant, run_id], run_row)
        .optional()?
        .map(RunRow::into_run)
        .transpose()
}

pub(super) fn runs(conn: &Connection, filter: &EvalRunFilter) -> Result<Vec<EvalRun>> {
    let lim = limit("filter.limit", filter.limit)?;
    let sql = format!(
        "SELECT {RUN_COLS} FROM eval_runs WHERE (?1 IS NULL OR tenant = ?1) \
         AND (?2 IS NULL OR suite = ?2) ORDER BY created_at DESC, run_id DESC LIMIT ?3"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![filter.tenant, filter.suite, lim], run_row)?;
    rows.map(|row| row?.into_run()).collect()
}

pub(super) fn start(
    conn: &Connection,
    new: &NewEvalRun,
    docs: &RunDocs,
    now: i64,
) -> Result<EvalRunStart> {
    if let Some(stored) = run(conn, &new.tenant, &new.run_id)? {
        if stored.suite != new.suite || stored.suite_sha256 != new.suite_sha256 {
            return Err(other_suite(&stored, new));
        }
        conn.prepare_cached(
            "UPDATE eval_runs SET status = 'running', updated_at = ?3 \
             WHERE tenant = ?1 AND run_id = ?2",
        )?
        .execute(params![new.tenant, new.run_id, now])?;
        let resumed = run(conn, &new.tenant, &new.run_id)?;
        return resumed
            .map(EvalRunStart::Resumed)
            .ok_or_else(|| StoreError::not_found("eval run", &new.run_id));
    }
    conn.prepare_cached(
        "INSERT INTO eval_runs (tenant, run_id, suite, suite_sha256, subject, settings, cases, \
         status, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'running', ?8, ?8)",
    )?
    .execute(params![
        new.tenant,
        new.run_id,
        new.suite,
        new.suite_sha256,
        docs.subject,
        docs.settings,
        new.cases,
        now
    ])?;
    let created = run(conn, &new.tenant, &new.run_id)?;
    created
        .map(EvalRunStart::Created)
        .ok_or_else(|| StoreError::not_found("eval run", &new.run_id))
}

pub(super) fn record(
    conn: &Connection,
    (tenant, run_id): (&str, &str),
    r: &NewEvalResult,
    docs: &ResultDocs,
    now: i64,
) -> Result<()> {
    let recorded: Option<i64> = conn
        .prepare_cached(
            "SELECT seq FROM eval_results WHERE tenant = ?1 AND run_id = ?2 AND case_id = ?3",
        )?
        .query_row(params![tenant, run_id, r.case_id], |row| row.get(0))
        .optional()?;
    if recorded.is_some() {
        let id = format!("{run_id}/{}", r.case_id);
        return Err(StoreError::conflict(
            "eval result",
            id,
            "this case is already recorded in the run",
        ));
    }
    let inserted = conn
        .prepare_cached(
            "INSERT INTO eval_results (tenant, run_id, case_id, outcome, score, tags, verdicts, \
             answer, error, cost_usd, latency_ms, recorded_at) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12 \
             WHERE EXISTS (SELECT 1 FROM eval_runs WHERE tenant = ?1 AND run_id = ?2)",
        )?
        .execute(params![
            tenant,
            run_id,
            r.case_id,
            r.outcome.as_str(),
            r.score,
            docs.tags,
            docs.verdicts,
            docs.answer,
            r.error,
            r.cost_usd,
            docs.latency_ms,
            now
        ])?;
    if inserted == 0 {
        return Err(StoreError::not_found("eval run", run_id));
    }
    Ok(())
}

pub(super) fn results(conn: &Connection, tenant: &str, run_id: &str) -> Result<Vec<EvalResult>> {
    let mut stmt = conn.prepare_cached(
        "SELECT case_id, outcome, score, tags, verdicts, answer, error, cost_usd, latency_ms, \
         recorded_at FROM eval_results WHERE tenant = ?1 AND run_id = ?2 ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![tenant, run_id], |r| {
        Ok(ResultRow {
            case_id: r.get(0)?,
            outcome: r.get(1)?,
            score: r.get(2)?,
            tags: r.get(3)?,
            verdicts: r.get(4)?,
            answer: r.get(5)?,
            error: r.get(6)?,
            cost_usd: r.get(7)?,
            latency_ms: r.get(8)?,
            recorded_at: r.get(9)?,
        })
    })?;
    rows.map(|row| row?.into_result()).collect()
}

pub(super) fn finish(
    conn: &Connection,
    (tenant, run_id): (&str, &str),
    status: EvalStatus,
    summary: Option<&str>,
    now: i64,
) -> Result<EvalRun> {
    let changed = conn
        .prepare_cached(
            "UPDATE eval_runs SET status = ?3, summary = ?4, \
             updated_at = ?5, finished_at = ?5 WHERE tenant = ?1 AND run_id = ?2",
        )?
        .execute(params![tenant, run_id, status.as_str(), summary, now])?;
    if changed == 0 {
        return Err(StoreError::not_found("eval run", run_id));
    }
    run(conn, tenant, run_id)?.ok_or_else(|| StoreError::not_found("eval run", run_id))
}
