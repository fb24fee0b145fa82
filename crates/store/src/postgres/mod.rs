//! The PostgreSQL backend: one database shared by any number of holdfast nodes.
//!
//! PostgreSQL coordinates the nodes, so holdfast needs no consensus of its own: ready
//! tasks and jobs are claimed with `FOR UPDATE SKIP LOCKED` (concurrent claimers skip
//! each other's rows instead of queueing on them, and never get the same row), leases
//! are `timestamptz` columns, and a dead node's leases simply expire and its work
//! becomes claimable. Every call is one transaction, except that concurrent advances
//! and submissions share them (`batch`); durability is PostgreSQL's own (`synchronous_commit` as the
//! server is configured, `on` by default), and its WAL writer batches concurrent
//! commits into shared fsyncs (group commit).

mod advance;
mod batch;
mod coord;
mod evals;
mod examples;
mod gates;
mod health;
mod reads;
mod samples;
mod store_impl;
mod tls;
mod writes;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor};

use crate::migrate::{self, Migration};
use crate::{Options, Result, StoreError};

/// The PostgreSQL-backed [`crate::Store`].
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    batches: batch::Batcher,
    max_doc: usize,
}

/// The longest the pool tries to hand out a connection (see `open`).
const POOL_ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

impl PostgresStore {
    /// Connects to `url`, creates `options.postgres_schema` if set (and uses it on every
    /// connection), and applies pending migrations under an advisory lock so that nodes
    /// starting together migrate once. TLS is as the URL's `sslmode` and `sslrootcert`
    /// say; a first connection that fails says why ([`StoreError::Connect`]).
    pub async fn connect(url: &str, options: Options) -> Result<PostgresStore> {
        let connect: PgConnectOptions =
            url.parse().map_err(|e: sqlx::Error| StoreError::BadUrl {
                url: crate::redact(url),
                reason: e.to_string(),
            })?;
        let connect = connect.disable_statement_logging();
        let tls = tls::Tls::of(url, &connect);
        tls.check_root_cert(url)?;
        let mut conn = sqlx::PgConnection::connect_with(&connect)
            .await
            .map_err(|e| tls.explain(url, e))?;
        if let Some(schema) = &options.postgres_schema {
            // Concurrent `CREATE SCHEMA IF NOT EXISTS` can race on the catalog's unique
            // index when nodes start together; the migration lock orders them.
            let mut tx = conn.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *tx)
                .await?;
            sqlx::raw_sql(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        conn.close().await?;
        let search_path = options.postgres_schema.clone();
        let pool = PgPoolOptions::new()
            .max_connections(options.postgres_max_connections)
            // sqlx retries a refused connection until this passes, sleeping up to a
            // fifth of it between tries: with its default (30 s) a write queued while
            // the server was down waited seconds after it was back, and a batch worker
            // stuck in that loop held every write queued behind it. Callers bound their
            // own wait (the store guard); this bounds the pool's.
            .acquire_timeout(POOL_ACQUIRE_TIMEOUT)
            .after_connect(move |conn, _meta| {
                let search_path = search_path.clone();
                Box::pin(async move {
                    if let Some(schema) = search_path {
                        conn.execute(format!("SET search_path TO \"{schema}\"").as_str())
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(connect)
            .await?;
        apply_migrations(&pool, migrate::POSTGRES).await?;
        Ok(PostgresStore {
            batches: batch::Batcher::start(&pool, options.postgres_write_batches),
            pool,
            max_doc: options.max_document_bytes,
        })
    }

    /// Closes the pool's connections.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The advisory lock key that serialises schema creation and migrations.
const MIGRATION_LOCK: i64 = 7_206_120_431;

async fn apply_migrations(pool: &PgPool, migrations: &[Migration]) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(7206120431)")
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS hf_schema_version (version bigint PRIMARY KEY, \
         applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .execute(&mut *tx)
    .await?;
    let current: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0)::int8 FROM hf_schema_version")
            .fetch_one(&mut *tx)
            .await?;
    migrate::check_not_newer(current, migrations)?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM hf_schema_version")
        .fetch_all(&mut *tx)
        .await?;
    for m in migrations.iter().filter(|m| !applied.contains(&m.version)) {
        sqlx::raw_sql(m.sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO hf_schema_version (version) VALUES ($1)")
            .bind(m.version)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}
