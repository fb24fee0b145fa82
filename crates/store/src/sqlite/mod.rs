//! The SQLite backend: an embedded file, durable on every acknowledged write.
//!
//! One writer thread commits batches (group commit, see [`writer`]) with
//! `journal_mode=WAL` and `synchronous=FULL`, so a write acknowledged has been fsynced
//! to the WAL: it survives kill -9 and power loss. Reads use separate connections and
//! see the last committed state. Claims need no `SKIP LOCKED` here: SQLite has one
//! writer, so claim-and-lease is serial by construction.

mod advance;
mod coord;
mod evals;
mod examples;
mod gates;
mod health;
mod reads;
mod samples;
mod store_impl;
mod writer;
mod writes;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension};

use crate::migrate::{self, Migration};
use crate::{Options, Result, StoreError};

/// The SQLite-backed [`crate::Store`].
pub struct SqliteStore {
    writer: writer::Writer,
    readers: Arc<writer::Readers>,
    max_doc: usize,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.readers_path())
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating it and its directory if needed) the database at `path`, applies
    /// pending migrations and starts the writer thread.
    pub async fn open(path: impl Into<PathBuf>, options: Options) -> Result<SqliteStore> {
        let path = path.into();
        let (conn, path) = tokio::task::spawn_blocking(move || prepare(path))
            .await
            .map_err(|_| StoreError::Closed)??;
        Ok(SqliteStore {
            writer: writer::Writer::start(conn, options.sqlite_max_batch)?,
            readers: writer::Readers::new(path, options.sqlite_readers),
            max_doc: options.max_document_bytes,
        })
    }

    fn readers_path(&self) -> &Path {
        self.readers.path()
    }
}

fn prepare(path: PathBuf) -> Result<(Connection, PathBuf)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let conn = connect(&path, false)?;
    apply_migrations(&conn, migrate::SQLITE)?;
    Ok((conn, path))
}

/// Opens a connection with the pragmas every connection needs.
pub(crate) fn connect(path: &Path, read_only: bool) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // WAL is persistent in the file; FULL makes every commit fsync the WAL.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::corrupt(
            "journal_mode",
            format!("expected wal, got {mode}"),
        ));
    }
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
    if read_only {
        conn.execute_batch("PRAGMA query_only = ON;")?;
    } else {
        // Checkpoints run on the writer, between commits. A step rewrites the same few
        // hot pages (its task's row, the ends of its steps and journal) again and again,
        // and a checkpoint copies each page once however often it changed, so checkpointing
        // every 8000 pages (a WAL of ~32 MB) instead of 1000 copies far fewer pages and
        // stalls the writer an eighth as often. Durability is untouched: every commit
        // still fsyncs the WAL.
        conn.execute_batch("PRAGMA wal_autocheckpoint = 8000;")?;
    }
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn apply_migrations(conn: &Connection, migrations: &[Migration]) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS hf_schema_version (version INTEGER PRIMARY KEY, \
         applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    )?;
    let current = |conn: &Connection| -> Result<i64> {
        Ok(conn.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM hf_schema_version",
            [],
            |r| r.get(0),
        )?)
    };
    migrate::check_not_newer(current(conn)?, migrations)?;
    // SQLite's way to change a table's shape (create, copy, drop, rename) drops a table
    // that others reference, so foreign keys are off while a migration runs (the pragma
    // is a no-op inside a transaction) and checked whole before it commits.
    conn.execute_batch("PRAGMA foreign_keys = OFF")?;
    let applied = migrations.iter().try_for_each(|m| {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let step = (|| -> Result<()> {
            let applied: bool = conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM hf_schema_version WHERE version = ?1)",
                [m.version],
                |r| r.get(0),
            )?;
            if !applied {
                conn.execute_batch(m.sql)?;
                check_foreign_keys(conn, m.version)?;
                conn.execute(
                    "INSERT INTO hf_schema_version (version) VALUES (?1)",
                    [m.version],
                )?;
            }
            Ok(())
        })();
        match step {
            Ok(()) => Ok(conn.execute_batch("COMMIT")?),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    });
    conn.execute_batch("PRAGMA foreign_keys = ON")?;
    applied
}

/// Refuses a migration that left a reference dangling.
fn check_foreign_keys(conn: &Connection, version: i64) -> Result<()> {
    let broken: Option<String> = conn
        .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
        .optional()?;
    match broken {
        None => Ok(()),
        Some(table) => Err(StoreError::corrupt(
            "migration",
            format!("migration {version} left a dangling reference in table {table}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A migration numbered into a gap below the highest applied version (a change
    /// developed beside another one) still runs.
    #[test]
    fn a_migration_in_a_gap_runs_after_a_higher_one() {
        let conn = Connection::open_in_memory().unwrap();
        let one = Migration {
            version: 1,
            sql: "CREATE TABLE one (x INTEGER)",
        };
        let two = Migration {
            version: 2,
            sql: "CREATE TABLE two (x INTEGER)",
        };
        let three = Migration {
            version: 3,
            sql: "CREATE TABLE three (x INTEGER)",
        };
        apply_migrations(&conn, &[one, three]).unwrap();
        let one = Migration {
            version: 1,
            sql: "CREATE TABLE one (x INTEGER)",
        };
        let three = Migration {
            version: 3,
            sql: "CREATE TABLE three (x INTEGER)",
        };
        apply_migrations(&conn, &[one, two, three]).unwrap();
        let tables: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('one', 'two', 'three')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 3);
    }
}
