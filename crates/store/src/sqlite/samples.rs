//! SQLite reads and writes of the quality loop's production samples.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::Result;
use crate::sample::{NewQualitySample, QualitySample, SampleDocs, SampleFilter, SampleRow};
use crate::validate::{limit, millis};

const COLS: &str = "id, tenant, task_type, suite, request_id, input, answer, status, score, \
    verdicts, judge_cost_usd, created_at";

fn row(r: &Row<'_>) -> rusqlite::Result<SampleRow> {
    Ok(SampleRow {
        id: r.get(0)?,
        tenant: r.get(1)?,
        task_type: r.get(2)?,
        suite: r.get(3)?,
        request_id: r.get(4)?,
        input: r.get(5)?,
        answer: r.get(6)?,
        status: r.get(7)?,
        score: r.get(8)?,
        verdicts: r.get(9)?,
        judge_cost_usd: r.get(10)?,
        created_at: r.get(11)?,
    })
}

/// Inserts every sample of a checked batch, in order, inside the writer's transaction.
pub(super) fn add_all(
    conn: &Connection,
    batch: &[(NewQualitySample, SampleDocs)],
) -> Result<Vec<u64>> {
    batch.iter().map(|(s, docs)| add(conn, s, docs)).collect()
}

fn add(conn: &Connection, s: &NewQualitySample, docs: &SampleDocs) -> Result<u64> {
    let created = millis("sample.created_at_ms", s.created_at_ms)?;
    conn.prepare_cached(
        "INSERT INTO quality_samples (tenant, task_type, suite, request_id, input, answer, \
         status, score, verdicts, judge_cost_usd, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        s.tenant,
        s.task_type,
        s.suite,
        s.request_id,
        docs.input,
        docs.answer,
        s.status.as_str(),
        s.score,
        docs.verdicts,
        s.judge_cost_usd,
        created
    ])?;
    crate::validate::unsigned("sample.id", conn.last_insert_rowid())
}

pub(super) fn get(
    conn: &Connection,
    tenant: Option<&str>,
    id: u64,
) -> Result<Option<QualitySample>> {
    let id = millis("sample.id", id)?;
    let sql =
        format!("SELECT {COLS} FROM quality_samples WHERE id = ?1 AND (?2 IS NULL OR tenant = ?2)");
    conn.prepare_cached(&sql)?
        .query_row(params![id, tenant], row)
        .optional()?
        .map(SampleRow::into_sample)
        .transpose()
}

pub(super) fn list(conn: &Connection, filter: &SampleFilter) -> Result<Vec<QualitySample>> {
    let lim = limit("filter.limit", filter.limit)?;
    let before = filter
        .before_id
        .map(|id| millis("filter.before_id", id))
        .transpose()?;
    let sql = format!(
        "SELECT {COLS} FROM quality_samples WHERE (?1 IS NULL OR tenant = ?1) \
         AND (?2 IS NULL OR task_type = ?2) AND (?3 IS NULL OR id < ?3) \
         ORDER BY id DESC LIMIT ?4"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![filter.tenant, filter.task_type, before, lim], row)?;
    rows.map(|r| r?.into_sample()).collect()
}

pub(super) fn delete_before(conn: &Connection, task_type: &str, before_ms: u64) -> Result<u64> {
    let before = millis("before_ms", before_ms)?;
    let deleted = conn
        .prepare_cached("DELETE FROM quality_samples WHERE task_type = ?1 AND created_at < ?2")?
        .execute(params![task_type, before])?;
    Ok(deleted as u64)
}
