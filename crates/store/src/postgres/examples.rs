//! PostgreSQL reads and writes of the few-shot example library.
//!
//! Every change of an example's content or status takes one transaction lock first
//! (`pg_advisory_xact_lock`), so changes commit one after another in the order of their
//! revisions: an index reading the changes after its revision can never pass over one
//! committed late with a smaller revision. Changes are people's corrections and
//! approvals, a few a second at most, so the lock costs nothing that matters; usage
//! counts take no lock and no revision.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::example::{
    self, Example, ExampleAdded, ExampleFilter, ExampleRow, ExampleStatus, ExampleUse,
    ExampleVector, NewExample,
};
use crate::validate::{limit, millis};
use crate::{Result, StoreError};

/// The advisory lock key that serialises example changes.
const CHANGE_LOCK: i64 = 7_206_120_432;

const COLS: &str = "id, tenant, library, fingerprint, input, output, source, author, origin, \
    status, merged, times_used, hf_ms(last_used_at), hf_ms(created_at), hf_ms(updated_at), \
    revision";

fn row(r: &PgRow) -> Result<ExampleRow> {
    Ok(ExampleRow {
        id: r.try_get(0)?,
        tenant: r.try_get(1)?,
        library: r.try_get(2)?,
        fingerprint: r.try_get(3)?,
        input: r.try_get(4)?,
        output: r.try_get(5)?,
        source: r.try_get(6)?,
        author: r.try_get(7)?,
        origin: r.try_get(8)?,
        status: r.try_get(9)?,
        merged: r.try_get(10)?,
        times_used: r.try_get(11)?,
        last_used_at: r.try_get(12)?,
        created_at: r.try_get(13)?,
        updated_at: r.try_get(14)?,
        revision: r.try_get(15)?,
    })
}

/// Takes the change lock and returns the next revision. Runs in a transaction.
async fn next_revision(c: &mut PgConnection) -> Result<i64> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(CHANGE_LOCK)
        .execute(&mut *c)
        .await?;
    Ok(
        sqlx::query_scalar("SELECT COALESCE(MAX(revision), 0)::int8 + 1 FROM examples")
            .fetch_one(&mut *c)
            .await?,
    )
}

pub(super) async fn get(
    c: &mut PgConnection,
    tenant: Option<&str>,
    id: u64,
) -> Result<Option<Example>> {
    let id = millis("example.id", id)?;
    let sql =
        format!("SELECT {COLS} FROM examples WHERE id = $1 AND ($2::text IS NULL OR tenant = $2)");
    let found = sqlx::query(&sql)
        .bind(id)
        .bind(tenant)
        .fetch_optional(c)
        .await?;
    found.map(|r| row(&r)?.into_example()).transpose()
}

/// Runs in a transaction the caller commits.
pub(super) async fn add(c: &mut PgConnection, e: &NewExample, now: i64) -> Result<ExampleAdded> {
    let revision = next_revision(c).await?;
    let sql = format!(
        "SELECT {COLS} FROM examples WHERE tenant = $1 AND library = $2 AND fingerprint = $3"
    );
    let stored = sqlx::query(&sql)
        .bind(&e.tenant)
        .bind(&e.library)
        .bind(&e.fingerprint)
        .fetch_optional(&mut *c)
        .await?
        .map(|r| row(&r)?.into_example())
        .transpose()?;
    let missing = || StoreError::not_found("example", &e.fingerprint);
    if let Some(stored) = stored {
        let same = stored.output == e.output;
        let status = example::merge(stored.status, e.status, same);
        let id = millis("example.id", stored.id)?;
        let sql = if same {
            "UPDATE examples SET merged = merged + 1, status = $2, updated_at = hf_ts($3), \
             revision = $4 WHERE id = $1"
        } else {
            "UPDATE examples SET merged = merged + 1, status = $2, updated_at = hf_ts($3), \
             revision = $4, input = $5, output = $6, source = $7, author = $8, origin = $9 \
             WHERE id = $1"
        };
        let query = sqlx::query(sql)
            .bind(id)
            .bind(status.as_str())
            .bind(now)
            .bind(revision);
        let query = if same {
            query
        } else {
            query
                .bind(&e.input)
                .bind(&e.output)
                .bind(e.source.as_str())
                .bind(&e.author)
                .bind(&e.origin)
        };
        query.execute(&mut *c).await?;
        return get(c, None, stored.id)
            .await?
            .map(ExampleAdded::Merged)
            .ok_or_else(missing);
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO examples (tenant, library, fingerprint, input, output, source, author, \
         origin, status, created_at, updated_at, revision) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, hf_ts($10), hf_ts($10), $11) RETURNING id",
    )
    .bind(&e.tenant)
    .bind(&e.library)
    .bind(&e.fingerprint)
    .bind(&e.input)
    .bind(&e.output)
    .bind(e.source.as_str())
    .bind(&e.author)
    .bind(&e.origin)
    .bind(e.status.as_str())
    .bind(now)
    .bind(revision)
    .fetch_one(&mut *c)
    .await?;
    let id = u64::try_from(id).map_err(|_| StoreError::corrupt("example.id", id.to_string()))?;
    get(c, None, id)
        .await?
        .map(ExampleAdded::Created)
        .ok_or_else(missing)
}

pub(super) async fn list(c: &mut PgConnection, filter: &ExampleFilter) -> Result<Vec<Example>> {
    let lim = limit("filter.limit", filter.limit)?;
    let sql = format!(
        "SELECT {COLS} FROM examples WHERE ($1::text IS NULL OR tenant = $1) \
         AND ($2::text IS NULL OR library = $2) AND ($3::text IS NULL OR status = $3) \
         ORDER BY id DESC LIMIT $4"
    );
    let rows = sqlx::query(&sql)
        .bind(&filter.tenant)
        .bind(&filter.library)
        .bind(filter.status.map(ExampleStatus::as_str))
        .bind(lim)
        .fetch_all(c)
        .await?;
    rows.iter().map(|r| row(r)?.into_example()).collect()
}

/// Runs in a transaction the caller commits.
pub(super) async fn set_status(
    c: &mut PgConnection,
    tenant: Option<&str>,
    id: u64,
    status: ExampleStatus,
    now: i64,
) -> Result<Example> {
    let missing = || StoreError::not_found("example", id.to_string());
    let revision = next_revision(c).await?;
    let stored = get(c, tenant, id).await?.ok_or_else(missing)?;
    if stored.status == status {
        return Ok(stored);
    }
    sqlx::query(
        "UPDATE examples SET status = $2, updated_at = hf_ts($3), revision = $4 WHERE id = $1",
    )
    .bind(millis("example.id", id)?)
    .bind(status.as_str())
    .bind(now)
    .bind(revision)
    .execute(&mut *c)
    .await?;
    get(c, tenant, id).await?.ok_or_else(missing)
}

pub(super) async fn changes(c: &mut PgConnection, after: u64, lim: u32) -> Result<Vec<Example>> {
    let lim = limit("limit", lim)?;
    let after = millis("after_revision", after)?;
    let sql = format!("SELECT {COLS} FROM examples WHERE revision > $1 ORDER BY revision LIMIT $2");
    let rows = sqlx::query(&sql).bind(after).bind(lim).fetch_all(c).await?;
    rows.iter().map(|r| row(r)?.into_example()).collect()
}

/// Runs in a transaction the caller commits.
pub(super) async fn record_uses(c: &mut PgConnection, uses: &[ExampleUse]) -> Result<()> {
    for u in uses {
        sqlx::query(
            "UPDATE examples SET times_used = times_used + $3, \
             last_used_at = GREATEST(last_used_at, hf_ts($4)) WHERE id = $1 AND tenant = $2",
        )
        .bind(millis("example.id", u.id)?)
        .bind(&u.tenant)
        .bind(millis("example.calls", u.calls)?)
        .bind(millis("example.last_used_at", u.last_used_at_ms)?)
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

pub(super) async fn put_vectors(c: &mut PgConnection, vectors: &[ExampleVector]) -> Result<()> {
    for v in vectors {
        sqlx::query(
            "INSERT INTO example_vectors (example_id, tenant, model, vector) \
             SELECT id, tenant, $3, $4 FROM examples WHERE id = $1 AND tenant = $2 \
             ON CONFLICT (example_id, model) DO UPDATE SET vector = excluded.vector",
        )
        .bind(millis("vector.id", v.id)?)
        .bind(&v.tenant)
        .bind(&v.model)
        .bind(example::vector_bytes(&v.vector))
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

pub(super) async fn vectors(
    c: &mut PgConnection,
    tenant: &str,
    model: &str,
    ids: &[u64],
) -> Result<Vec<ExampleVector>> {
    let ids = ids
        .iter()
        .map(|id| millis("id", *id))
        .collect::<Result<Vec<i64>>>()?;
    let rows = sqlx::query(
        "SELECT example_id, vector FROM example_vectors \
         WHERE tenant = $1 AND model = $2 AND example_id = ANY($3)",
    )
    .bind(tenant)
    .bind(model)
    .bind(&ids)
    .fetch_all(&mut *c)
    .await?;
    rows.iter()
        .map(|r| {
            let id: i64 = r.try_get(0)?;
            let bytes: Vec<u8> = r.try_get(1)?;
            Ok(ExampleVector {
                tenant: tenant.to_owned(),
                id: crate::validate::unsigned("vector.id", id)?,
                model: model.to_owned(),
                vector: example::vector_from_bytes(&bytes)?,
            })
        })
        .collect()
}
