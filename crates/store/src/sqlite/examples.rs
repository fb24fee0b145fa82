//! SQLite reads and writes of the few-shot example library.
//!
//! Adding an example looks up its fingerprint and inserts or merges in the same write
//! on the one writer, so two near-duplicates arriving together cannot both be created;
//! the next revision is the largest plus one, which the single writer makes safe.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::example::{
    self, Example, ExampleAdded, ExampleFilter, ExampleRow, ExampleStatus, ExampleUse,
    ExampleVector, NewExample,
};
use crate::validate::{limit, millis};
use crate::{Result, StoreError};

const COLS: &str = "id, tenant, library, fingerprint, input, output, source, author, origin, \
    status, merged, times_used, last_used_at, created_at, updated_at, revision";

fn row(r: &Row<'_>) -> rusqlite::Result<ExampleRow> {
    Ok(ExampleRow {
        id: r.get(0)?,
        tenant: r.get(1)?,
        library: r.get(2)?,
        fingerprint: r.get(3)?,
        input: r.get(4)?,
        output: r.get(5)?,
        source: r.get(6)?,
        author: r.get(7)?,
        origin: r.get(8)?,
        status: r.get(9)?,
        merged: r.get(10)?,
        times_used: r.get(11)?,
        last_used_at: r.get(12)?,
        created_at: r.get(13)?,
        updated_at: r.get(14)?,
        revision: r.get(15)?,
    })
}

fn next_revision(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT COALESCE(MAX(revision), 0) + 1 FROM examples")?
        .query_row([], |r| r.get(0))?)
}

pub(super) fn get(conn: &Connection, tenant: Option<&str>, id: u64) -> Result<Option<Example>> {
    let id = millis("example.id", id)?;
    let sql = format!("SELECT {COLS} FROM examples WHERE id = ?1 AND (?2 IS NULL OR tenant = ?2)");
    conn.prepare_cached(&sql)?
        .query_row(params![id, tenant], row)
        .optional()?
        .map(ExampleRow::into_example)
        .transpose()
}

fn by_fingerprint(conn: &Connection, e: &NewExample) -> Result<Option<Example>> {
    let sql = format!(
        "SELECT {COLS} FROM examples WHERE tenant = ?1 AND library = ?2 AND fingerprint = ?3"
    );
    conn.prepare_cached(&sql)?
        .query_row(params![e.tenant, e.library, e.fingerprint], row)
        .optional()?
        .map(ExampleRow::into_example)
        .transpose()
}

pub(super) fn add(conn: &Connection, e: &NewExample, now: i64) -> Result<ExampleAdded> {
    let revision = next_revision(conn)?;
    let missing = || StoreError::not_found("example", &e.fingerprint);
    if let Some(stored) = by_fingerprint(conn, e)? {
        let same = stored.output == e.output;
        let status = example::merge(stored.status, e.status, same);
        let id = millis("example.id", stored.id)?;
        if same {
            conn.prepare_cached(
                "UPDATE examples SET merged = merged + 1, status = ?2, updated_at = ?3, \
                 revision = ?4 WHERE id = ?1",
            )?
            .execute(params![id, status.as_str(), now, revision])?;
        } else {
            conn.prepare_cached(
                "UPDATE examples SET merged = merged + 1, status = ?2, updated_at = ?3, \
                 revision = ?4, input = ?5, output = ?6, source = ?7, author = ?8, origin = ?9 \
                 WHERE id = ?1",
            )?
            .execute(params![
                id,
                status.as_str(),
                now,
                revision,
                e.input,
                e.output,
                e.source.as_str(),
                e.author,
                e.origin
            ])?;
        }
        return get(conn, None, stored.id)?
            .map(ExampleAdded::Merged)
            .ok_or_else(missing);
    }
    conn.prepare_cached(
        "INSERT INTO examples (tenant, library, fingerprint, input, output, source, author, \
         origin, status, created_at, updated_at, revision) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11)",
    )?
    .execute(params![
        e.tenant,
        e.library,
        e.fingerprint,
        e.input,
        e.output,
        e.source.as_str(),
        e.author,
        e.origin,
        e.status.as_str(),
        now,
        revision
    ])?;
    let id = u64::try_from(conn.last_insert_rowid())
        .map_err(|_| StoreError::corrupt("example.id", "negative rowid"))?;
    get(conn, None, id)?
        .map(ExampleAdded::Created)
        .ok_or_else(missing)
}

pub(super) fn list(conn: &Connection, filter: &ExampleFilter) -> Result<Vec<Example>> {
    let lim = limit("filter.limit", filter.limit)?;
    let sql = format!(
        "SELECT {COLS} FROM examples WHERE (?1 IS NULL OR tenant = ?1) \
         AND (?2 IS NULL OR library = ?2) AND (?3 IS NULL OR status = ?3) \
         ORDER BY id DESC LIMIT ?4"
    );
    let status = filter.status.map(ExampleStatus::as_str);
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![filter.tenant, filter.library, status, lim], row)?;
    rows.map(|r| r?.into_example()).collect()
}

pub(super) fn set_status(
    conn: &Connection,
    tenant: Option<&str>,
    id: u64,
    status: ExampleStatus,
    now: i64,
) -> Result<Example> {
    let missing = || StoreError::not_found("example", id.to_string());
    let stored = get(conn, tenant, id)?.ok_or_else(missing)?;
    if stored.status == status {
        return Ok(stored);
    }
    let revision = next_revision(conn)?;
    conn.prepare_cached(
        "UPDATE examples SET status = ?2, updated_at = ?3, revision = ?4 WHERE id = ?1",
    )?
    .execute(params![
        millis("example.id", id)?,
        status.as_str(),
        now,
        revision
    ])?;
    get(conn, tenant, id)?.ok_or_else(missing)
}

pub(super) fn changes(conn: &Connection, after: u64, lim: u32) -> Result<Vec<Example>> {
    let lim = limit("limit", lim)?;
    let after = millis("after_revision", after)?;
    let sql = format!("SELECT {COLS} FROM examples WHERE revision > ?1 ORDER BY revision LIMIT ?2");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![after, lim], row)?;
    rows.map(|r| r?.into_example()).collect()
}

pub(super) fn record_uses(conn: &Connection, uses: &[ExampleUse]) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "UPDATE examples SET times_used = times_used + ?3, \
         last_used_at = MAX(COALESCE(last_used_at, 0), ?4) WHERE id = ?1 AND tenant = ?2",
    )?;
    for u in uses {
        stmt.execute(params![
            millis("example.id", u.id)?,
            u.tenant,
            millis("example.calls", u.calls)?,
            millis("example.last_used_at", u.last_used_at_ms)?
        ])?;
    }
    Ok(())
}

pub(super) fn put_vectors(conn: &Connection, vectors: &[ExampleVector]) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO example_vectors (example_id, tenant, model, vector) \
         SELECT id, tenant, ?3, ?4 FROM examples WHERE id = ?1 AND tenant = ?2 \
         ON CONFLICT (example_id, model) DO UPDATE SET vector = excluded.vector",
    )?;
    for v in vectors {
        stmt.execute(params![
            millis("vector.id", v.id)?,
            v.tenant,
            v.model,
            example::vector_bytes(&v.vector)
        ])?;
    }
    Ok(())
}

pub(super) fn vectors(
    conn: &Connection,
    tenant: &str,
    model: &str,
    ids: &[u64],
) -> Result<Vec<ExampleVector>> {
    let mut stmt = conn.prepare_cached(
        "SELECT vector FROM example_vectors WHERE example_id = ?1 AND tenant = ?2 AND model = ?3",
    )?;
    let mut found = Vec::new();
    for &id in ids {
        let bytes: Option<Vec<u8>> = stmt
            .query_row(params![millis("id", id)?, tenant, model], |r| r.get(0))
            .optional()?;
        if let Some(bytes) = bytes {
            found.push(ExampleVector {
                tenant: tenant.to_owned(),
                id,
                model: model.to_owned(),
                vector: example::vector_from_bytes(&bytes)?,
            });
        }
    }
    Ok(found)
}
