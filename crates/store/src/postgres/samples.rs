//! PostgreSQL reads and writes of the quality loop's production samples.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::Result;
use crate::sample::{NewQualitySample, QualitySample, SampleDocs, SampleFilter, SampleRow};
use crate::validate::{limit, millis, unsigned};

const COLS: &str = "id, tenant, task_type, suite, request_id, input, answer, status, score, \
    verdicts, judge_cost_usd, hf_ms(created_at)";

fn row(r: &PgRow) -> Result<SampleRow> {
    Ok(SampleRow {
        id: r.try_get(0)?,
        tenant: r.try_get(1)?,
        task_type: r.try_get(2)?,
        suite: r.try_get(3)?,
        request_id: r.try_get(4)?,
        input: r.try_get(5)?,
        answer: r.try_get(6)?,
        status: r.try_get(7)?,
        score: r.try_get(8)?,
        verdicts: r.try_get(9)?,
        judge_cost_usd: r.try_get(10)?,
        created_at: r.try_get(11)?,
    })
}

/// Inserts every sample of a checked batch, in order, inside the caller's transaction.
pub(super) async fn add_all(
    c: &mut PgConnection,
    batch: &[(NewQualitySample, SampleDocs)],
) -> Result<Vec<u64>> {
    let mut ids = Vec::with_capacity(batch.len());
    for (s, docs) in batch {
        ids.push(add(c, s, docs).await?);
    }
    Ok(ids)
}

async fn add(c: &mut PgConnection, s: &NewQualitySample, docs: &SampleDocs) -> Result<u64> {
    let created = millis("sample.created_at_ms", s.created_at_ms)?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO quality_samples (tenant, task_type, suite, request_id, input, answer, \
         status, score, verdicts, judge_cost_usd, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, hf_ts($11)) RETURNING id",
    )
    .bind(&s.tenant)
    .bind(&s.task_type)
    .bind(&s.suite)
    .bind(&s.request_id)
    .bind(&docs.input)
    .bind(&docs.answer)
    .bind(s.status.as_str())
    .bind(s.score)
    .bind(&docs.verdicts)
    .bind(s.judge_cost_usd)
    .bind(created)
    .fetch_one(c)
    .await?;
    unsigned("sample.id", id)
}

pub(super) async fn get(
    c: &mut PgConnection,
    tenant: Option<&str>,
    id: u64,
) -> Result<Option<QualitySample>> {
    let id = millis("sample.id", id)?;
    let sql = format!(
        "SELECT {COLS} FROM quality_samples WHERE id = $1 AND ($2::text IS NULL OR tenant = $2)"
    );
    let found = sqlx::query(&sql)
        .bind(id)
        .bind(tenant)
        .fetch_optional(c)
        .await?;
    found.map(|r| row(&r)?.into_sample()).transpose()
}

pub(super) async fn list(
    c: &mut PgConnection,
    filter: &SampleFilter,
) -> Result<Vec<QualitySample>> {
    let lim = limit("filter.limit", filter.limit)?;
    let before = filter
        .before_id
        .map(|id| millis("filter.before_id", id))
        .transpose()?;
    let sql = format!(
        "SELECT {COLS} FROM quality_samples WHERE ($1::text IS NULL OR tenant = $1) \
         AND ($2::text IS NULL OR task_type = $2) AND ($3::int8 IS NULL OR id < $3) \
         ORDER BY id DESC LIMIT $4"
    );
    let rows = sqlx::query(&sql)
        .bind(&filter.tenant)
        .bind(&filter.task_type)
        .bind(before)
        .bind(lim)
        .fetch_all(c)
        .await?;
    rows.iter().map(|r| row(r)?.into_sample()).collect()
}

pub(super) async fn delete_before(
    c: &mut PgConnection,
    task_type: &str,
    before_ms: u64,
) -> Result<u64> {
    let before = millis("before_ms", before_ms)?;
    let done =
        sqlx::query("DELETE FROM quality_samples WHERE task_type = $1 AND created_at < hf_ts($2)")
            .bind(task_type)
            .bind(before)
            .execute(c)
            .await?;
    Ok(done.rows_affected())
}
