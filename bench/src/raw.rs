//! Raw commit rates of a database: the physical limit a durable engine on it works under.
//!
//! A durable-steps figure says little without the rate the same database on the same
//! disk commits at when nothing but a one-row insert is asked of it, so the engine
//! benchmark measures these in the same run and prints the ratio. SQLite is measured
//! the way holdfast opens it (WAL, `synchronous=FULL`: every commit fsyncs); PostgreSQL
//! with the server's own `synchronous_commit`, from one connection (one commit waits
//! for the last) and from many (the server shares WAL flushes between them).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::measure::Stopwatch;

/// Rows per commit of the batched figures.
pub const BATCH_ROWS: usize = 100;

/// How long each raw measurement runs.
const SPAN: Duration = Duration::from_secs(2);

/// One database's raw figures.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawRates {
    /// One-row commits per second from one writer.
    pub commits: f64,
    /// One-row commits per second from many concurrent writers (`None`: one writer is
    /// all the backend has, as in SQLite).
    pub commits_concurrent: Option<f64>,
    /// Rows per second at [`BATCH_ROWS`] rows per commit.
    pub rows_batched: f64,
}

/// SQLite in WAL mode with `synchronous=FULL`, in a fresh file under `dir`.
pub fn sqlite(dir: &Path) -> anyhow::Result<RawRates> {
    Ok(RawRates {
        commits: sqlite_rows_per_second(&dir.join("raw-1.db"), 1)?,
        commits_concurrent: None,
        rows_batched: sqlite_rows_per_second(&dir.join("raw-100.db"), BATCH_ROWS)?,
    })
}

/// Commits `rows` rows per transaction for [`SPAN`]; returns rows per second.
fn sqlite_rows_per_second(path: &Path, rows: usize) -> anyhow::Result<f64> {
    let _ = std::fs::remove_file(path);
    let conn =
        rusqlite::Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
    )?;
    let clock = Stopwatch::start();
    let mut written = 0usize;
    while clock.elapsed() < SPAN {
        conn.execute_batch("BEGIN")?;
        for _ in 0..rows {
            conn.prepare_cached("INSERT INTO t (v) VALUES ('{\"ok\":true}')")?
                .execute([])?;
        }
        conn.execute_batch("COMMIT")?;
        written += rows;
    }
    Ok(written as f64 / clock.elapsed().as_secs_f64())
}

/// PostgreSQL at `url`, in a schema of its own (`schema`, dropped afterwards).
pub async fn postgres(url: &str, schema: &str, concurrent: usize) -> anyhow::Result<RawRates> {
    use sqlx::Executor;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(concurrent.max(1) as u32)
        .connect(url)
        .await
        .context("connecting to PostgreSQL")?;
    pool.execute(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE").as_str())
        .await?;
    pool.execute(format!("CREATE SCHEMA \"{schema}\"").as_str())
        .await?;
    let table = format!("\"{schema}\".t");
    pool.execute(format!("CREATE TABLE {table} (id bigserial PRIMARY KEY, v json)").as_str())
        .await?;
    let one = format!("INSERT INTO {table} (v) VALUES ('{{\"ok\":true}}')");
    let batch = format!(
        "INSERT INTO {table} (v) SELECT '{{\"ok\":true}}' FROM generate_series(1, {BATCH_ROWS})"
    );
    let result = async {
        anyhow::Ok(RawRates {
            commits: pg_rows_per_second(&pool, &one, 1, 1).await?,
            commits_concurrent: Some(pg_rows_per_second(&pool, &one, 1, concurrent).await?),
            rows_batched: pg_rows_per_second(&pool, &batch, BATCH_ROWS, 1).await?,
        })
    }
    .await;
    let dropped = pool
        .execute(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE").as_str())
        .await;
    pool.close().await;
    let rates = result?;
    dropped.context("dropping the raw benchmark's schema")?;
    Ok(rates)
}

/// `writers` connections each run `sql` (autocommit: one commit, `rows` rows) in a loop
/// for [`SPAN`]; returns rows per second.
async fn pg_rows_per_second(
    pool: &sqlx::PgPool,
    sql: &str,
    rows: usize,
    writers: usize,
) -> anyhow::Result<f64> {
    let clock = Stopwatch::start();
    let handles: Vec<_> = (0..writers)
        .map(|_| {
            let (pool, sql) = (pool.clone(), sql.to_string());
            tokio::spawn(async move {
                let mut commits = 0usize;
                while clock.elapsed() < SPAN {
                    sqlx::query(&sql).execute(&pool).await?;
                    commits += 1;
                }
                anyhow::Ok(commits)
            })
        })
        .collect();
    let mut commits = 0;
    for h in handles {
        commits += h.await??;
    }
    Ok((commits * rows) as f64 / clock.elapsed().as_secs_f64())
}
