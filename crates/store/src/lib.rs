//! Durable state for holdfast: one [`Store`] trait, two backends.
//!
//! The engine and the server see only [`Store`] (as `Arc<dyn Store>`); [`open`] picks the
//! backend from the URL. SQLite (`sqlite://path`) is the single-machine default: one
//! writer thread commits under WAL with `synchronous=FULL` and batches every write that
//! arrives while the previous commit is in flight into one transaction (group commit),
//! so throughput comes from sharing fsyncs, never from skipping them. PostgreSQL
//! (`postgres://…`) lets several nodes share the work: ready tasks and jobs are claimed
//! with `FOR UPDATE SKIP LOCKED`, and leases are timestamps in the database. Both run
//! the same conformance suite (`tests/conformance`).
//!
//! Invariants the store holds for the engine: a step result, the task's new state and
//! its journal events commit in one transaction ([`Advance`], invariant 1); a write
//! acknowledged is durable (invariant 2); writes under a lease or lock carry a fencing
//! token and stale tokens are refused (invariant 3); bad input is refused before any
//! write (invariant 6).

pub mod coordination;
pub mod error;
pub mod eval;
pub mod example;
mod fenced;
pub mod health;
mod migrate;
mod plan;
mod postgres;
mod rows;
pub mod sample;
mod sqlite;
pub mod store;
pub mod task;
mod validate;

use std::sync::Arc;

pub use coordination::{
    ConfigGate, ConfigVersion, Escalation, EscalationFilter, EscalationStatus, FencingToken, Job,
    JobResult, JobStatus, LockAcquire, LockLease, NewEscalation, NewJob, Resolution, StoredConfig,
};
pub use error::{ArtifactFault, Result, StoreError};
pub use eval::{
    EvalOutcome, EvalResult, EvalRun, EvalRunFilter, EvalRunStart, EvalStatus, NewEvalResult,
    NewEvalRun,
};
pub use example::{
    Example, ExampleAdded, ExampleFilter, ExampleSource, ExampleStatus, ExampleUse, ExampleVector,
    NewExample,
};
pub use postgres::PostgresStore;
pub use sample::{NewQualitySample, QualitySample, SampleFilter, SampleStatus};
pub use sqlite::SqliteStore;
pub use store::Store;
pub use task::{
    Advance, Cancelled, Checkpoint, Fence, JournalEntry, Lease, NewEvent, NewTask, NewWorkflow,
    Step, StepStatus, StepUpdate, Submitted, Task, TaskClaim, TaskFilter, TaskPage, TaskStatus,
    WorkflowDef,
};
pub use validate::MAX_NAME_LEN;

/// Settings for [`open_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The largest JSON document (task input, outputs, payloads, event data, workflow
    /// definitions) and text (config, errors) accepted, in bytes; 1..=64 MiB, default
    /// 1 MiB. Larger inputs are refused with nothing stored.
    pub max_document_bytes: usize,
    /// PostgreSQL only: the schema to use (created if missing) instead of the
    /// connection's default `search_path`. Tests use one schema each.
    pub postgres_schema: Option<String>,
    /// PostgreSQL only: the pool's connections, 1..=1000, default 16.
    pub postgres_max_connections: u32,
    /// PostgreSQL only: how many batches of writes may commit at once, 1..=64,
    /// default 2. Concurrent advances (and submissions) queue and share one
    /// transaction per batch; each batch in flight holds a pooled connection (two when
    /// it holds both kinds). More batches overlap one's commit with another's work,
    /// but split the queue into smaller batches; on two cores, 2 did best (8 cut
    /// steps/s by a quarter).
    pub postgres_write_batches: usize,
    /// SQLite only: read connections besides the writer, 1..=64, default 4.
    pub sqlite_readers: usize,
    /// SQLite only: the most writes committed in one transaction, 1..=100000, default
    /// 1024.
    pub sqlite_max_batch: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_document_bytes: 1 << 20,
            postgres_schema: None,
            postgres_max_connections: 16,
            postgres_write_batches: 2,
            sqlite_readers: 4,
            sqlite_max_batch: 1024,
        }
    }
}

impl Options {
    fn validate(&self) -> Result<()> {
        let bad = |field, reason: &str| Err(StoreError::invalid(field, reason.to_string()));
        if !(1..=64 << 20).contains(&self.max_document_bytes) {
            return bad("store.max_document_bytes", "must be 1..=67108864");
        }
        if !(1..=1000).contains(&self.postgres_max_connections) {
            return bad("store.postgres_max_connections", "must be 1..=1000");
        }
        if !(1..=64).contains(&self.postgres_write_batches) {
            return bad("store.postgres_write_batches", "must be 1..=64");
        }
        if !(1..=64).contains(&self.sqlite_readers) {
            return bad("store.sqlite_readers", "must be 1..=64");
        }
        if !(1..=100_000).contains(&self.sqlite_max_batch) {
            return bad("store.sqlite_max_batch", "must be 1..=100000");
        }
        if let Some(schema) = &self.postgres_schema {
            let ok = !schema.is_empty()
                && schema.len() <= 63
                && schema
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return bad("store.postgres_schema", "must be 1..=63 of [A-Za-z0-9_]");
            }
        }
        Ok(())
    }
}

/// Opens the store at `url` with default [`Options`].
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    open_with(url, Options::default()).await
}

/// Opens the store at `url`: `sqlite://relative/path.db`, `sqlite:///absolute/path.db`
/// (the directory is created), or `postgres://user@host:port/db` (`postgresql://` too).
/// A PostgreSQL URL may name the schema to use with a `schema=NAME` query parameter
/// (created if missing), so that several deployments or tests share one database, and
/// TLS with `sslmode=require` (encrypted), `verify-ca` (and the certificate signed by
/// the CA in `sslrootcert=PATH` or a public web root) or `verify-full` (and issued for
/// the host); without `sslmode`, TLS is used when the server offers it (`prefer`).
/// Applies pending migrations.
pub async fn open_with(url: &str, mut options: Options) -> Result<Arc<dyn Store>> {
    match Backend::parse(url)? {
        Backend::Sqlite(path) => {
            options.validate()?;
            Ok(Arc::new(SqliteStore::open(path, options).await?))
        }
        Backend::Postgres => {
            let (url, schema) = take_schema(url);
            if schema.is_some() {
                options.postgres_schema = schema;
            }
            options.validate()?;
            Ok(Arc::new(PostgresStore::connect(&url, options).await?))
        }
    }
}

/// Splits a `schema=NAME` query parameter off a PostgreSQL URL (the driver would refuse
/// it); the other parameters stay.
fn take_schema(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None);
    };
    let mut schema = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("schema=") {
            Some(name) => {
                schema = Some(name.to_string());
                false
            }
            None => !pair.is_empty(),
        })
        .collect();
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    (url, schema)
}

/// Which backend a URL names.
#[derive(Debug, PartialEq, Eq)]
enum Backend {
    Sqlite(std::path::PathBuf),
    Postgres,
}

impl Backend {
    fn parse(url: &str) -> Result<Backend> {
        let bad = |reason: &str| StoreError::BadUrl {
            url: redact(url),
            reason: reason.to_string(),
        };
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() || path.ends_with('/') || path.contains('?') {
                return Err(bad("expected sqlite://path/to/file.db (no query string)"));
            }
            return Ok(Backend::Sqlite(path.into()));
        }
        if let Some(rest) = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
        {
            if rest.is_empty() || rest.starts_with('/') {
                return Err(bad("expected postgres://user@host:port/database"));
            }
            return Ok(Backend::Postgres);
        }
        Err(bad("the scheme must be sqlite:// or postgres://"))
    }
}

/// The URL without a password, for error messages (invariant 7): the userinfo's and
/// any `password=` query parameter's.
fn redact(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let head = match head.split_once("://") {
        // The last `@` ends the userinfo: a password may hold an unescaped `@`.
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split(':').next().unwrap_or_default();
                format!("{scheme}://{user}:***@{host}")
            }
            None => head.to_string(),
        },
        None => head.to_string(),
    };
    let Some(query) = query else { return head };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.to_ascii_lowercase().contains("password") => {
                format!("{key}=***")
            }
            _ => pair.to_string(),
        })
        .collect();
    format!("{head}?{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_the_backend_or_say_what_is_wrong() {
        assert_eq!(
            Backend::parse("sqlite://data/h.db").unwrap(),
            Backend::Sqlite("data/h.db".into())
        );
        assert_eq!(
            Backend::parse("sqlite:///abs/h.db").unwrap(),
            Backend::Sqlite("/abs/h.db".into())
        );
        assert_eq!(
            Backend::parse("postgres://u@localhost/db").unwrap(),
            Backend::Postgres
        );
        assert_eq!(
            Backend::parse("postgresql://u@localhost/db").unwrap(),
            Backend::Postgres
        );
        for bad in [
            "mysql://x/y",
            "sqlite://",
            "sqlite://dir/",
            "postgres://",
            "h.db",
            "",
        ] {
            assert!(
                matches!(Backend::parse(bad), Err(StoreError::BadUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_schema_parameter_is_taken_off_the_postgres_url() {
        assert_eq!(
            take_schema("postgres://u@h/db?schema=t1"),
            ("postgres://u@h/db".to_string(), Some("t1".to_string()))
        );
        assert_eq!(
            take_schema("postgres://u@h/db?sslmode=disable&schema=t2&x=1"),
            (
                "postgres://u@h/db?sslmode=disable&x=1".to_string(),
                Some("t2".to_string())
            )
        );
        assert_eq!(
            take_schema("postgres://u@h/db"),
            ("postgres://u@h/db".to_string(), None)
        );
    }

    #[test]
    fn bad_urls_never_echo_a_password() {
        let err = Backend::parse("mysql://admin:hunter2@db/x")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("admin:***@db/x"), "{err}");
        for (url, kept) in [
            (
                "postgres://u:p@ss@db/x?sslmode=require",
                "postgres://u:***@db/x?sslmode=require",
            ),
            (
                "postgres://db/x?password=hunter2&sslmode=verify-full",
                "postgres://db/x?password=***&sslmode=verify-full",
            ),
        ] {
            let redacted = redact(url);
            assert_eq!(redacted, kept);
        }
    }

    #[test]
    fn options_name_the_bad_field() {
        let o = Options {
            sqlite_readers: 0,
            ..Options::default()
        };
        assert!(matches!(
            o.validate(),
            Err(StoreError::InvalidInput {
                field: "store.sqlite_readers",
                ..
            })
        ));
        let o = Options {
            postgres_schema: Some("x; drop".into()),
            ..Options::default()
        };
        assert!(matches!(
            o.validate(),
            Err(StoreError::InvalidInput {
                field: "store.postgres_schema",
                ..
            })
        ));
    }
}
