//! The one error type at the store's boundary.
//!
//! Callers branch on *what* went wrong, never on which backend said it: a stale fencing
//! token is [`StoreError::StaleLease`] on SQLite and on PostgreSQL alike, and bad input
//! is [`StoreError::InvalidInput`] naming the field before any SQL runs. Driver errors
//! are kept as sources for logs; they are internal errors to the server.

/// Everything a [`crate::Store`] call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The caller's input was refused before anything was written.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The offending field, e.g. `task.input` or `lock.name`.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// The named thing does not exist.
    #[error("{kind} not found: {id}")]
    NotFound {
        /// What was looked for: `task`, `workflow`, `job`, `escalation`, `lock`.
        kind: &'static str,
        /// Its id or name.
        id: String,
    },
    /// A lease or fencing token is no longer current: the lease expired, another holder
    /// took over with a larger token, or the work was cancelled. The write did nothing.
    #[error("stale lease on {kind} {id}: token {token} is no longer current")]
    StaleLease {
        /// `task`, `job` or `lock`.
        kind: &'static str,
        /// Its id or name.
        id: String,
        /// The token the caller presented.
        token: u64,
    },
    /// The write contradicts what is already stored (an immutable workflow version with
    /// another definition, a step committed twice, an escalation resolved twice).
    #[error("conflict on {kind} {id}: {reason}")]
    Conflict {
        /// What it conflicts on.
        kind: &'static str,
        /// Its id or name.
        id: String,
        /// What is already there.
        reason: String,
    },
    /// The URL names no backend this build knows, or is malformed.
    #[error("bad store url {url:?}: {reason}")]
    BadUrl {
        /// The URL as given, with any password removed.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database could not be reached: the server refused the connection, asked for
    /// a password it was not given, has no TLS while the URL asks for it, or presented a
    /// certificate that did not verify. `reason` names the cause and the setting behind it.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The URL as given, with any password removed.
        url: String,
        /// What went wrong, in words an operator can act on.
        reason: String,
    },
    /// The database was migrated by a newer holdfast than this one.
    #[error(
        "database schema version {found} is newer than this binary supports ({supported}); \
         upgrade holdfast"
    )]
    SchemaTooNew {
        /// The version found in the database.
        found: i64,
        /// The newest version this binary knows.
        supported: i64,
    },
    /// A stored value could not be decoded (a corrupt row or an unknown enum value).
    #[error("corrupt stored {what}: {reason}")]
    Corrupt {
        /// What was being decoded.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// The transaction holding this write failed to commit; the write is not stored.
    #[error("commit failed: {0}")]
    CommitFailed(String),
    /// The store is shut down (its writer thread stopped).
    #[error("store is closed")]
    Closed,
    /// The store did not answer within the caller's bound (a guard around the store
    /// gave up waiting). A write may still be committed after this: retry it under the
    /// same idempotency key or fencing token.
    #[error("the store did not answer within {waited_ms} ms")]
    Unavailable {
        /// How long the caller waited.
        waited_ms: u64,
    },
    /// A large value kept as an object in the artifact store (a step output, a task
    /// input) could not be read back whole: the object is missing, or its bytes no
    /// longer hash to the digest its row holds. Retrying does not help.
    #[error("task {task_id}, {field}: artifact sha256:{sha256} {fault}")]
    ArtifactUnreadable {
        /// The task whose value it is.
        task_id: String,
        /// Where the value belongs, e.g. `steps.fetch.output` or `input`.
        field: String,
        /// The digest the row holds.
        sha256: String,
        /// What is wrong with the object.
        fault: ArtifactFault,
    },
    /// The artifact store could not be reached or refused a write (a network error,
    /// a full disk, missing credentials). The row was not written; retrying may help.
    #[error("the artifact store failed: {0}")]
    ArtifactUnavailable(String),
    /// An I/O error outside the database (creating the data directory).
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// SQLite reported an error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL (or the connection to it) reported an error.
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
}

/// What is wrong with an object read back from the artifact store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactFault {
    /// No object under its key.
    #[error("is missing")]
    Missing,
    /// Its bytes hash to another digest: it was changed or truncated.
    #[error("is corrupt: its bytes hash to sha256:{found}")]
    Corrupt {
        /// The digest of the bytes found.
        found: String,
    },
    /// Its bytes hash right but are not the JSON value written (never expected: a
    /// writer other than holdfast put them there).
    #[error("is not JSON: {0}")]
    NotJson(String),
}

/// The store's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// Whether this error says the store could not be reached or could not write (a
    /// connection refused or lost, a database shutting down, a disk full or read-only,
    /// a lock held too long, a wait past its bound), as opposed to an answer about the
    /// request itself (not found, conflict, stale lease, bad input, corrupt row). The
    /// first kind passes when the store is back; the second does not.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::InvalidInput { .. }
            | StoreError::NotFound { .. }
            | StoreError::StaleLease { .. }
            | StoreError::Conflict { .. }
            | StoreError::BadUrl { .. }
            | StoreError::SchemaTooNew { .. }
            | StoreError::Corrupt { .. }
            | StoreError::ArtifactUnreadable { .. } => false,
            StoreError::Connect { .. }
            | StoreError::CommitFailed(_)
            | StoreError::Closed
            | StoreError::Unavailable { .. }
            | StoreError::ArtifactUnavailable(_)
            | StoreError::Io { .. } => true,
            StoreError::Sqlite(e) => sqlite_unavailable(e),
            StoreError::Postgres(e) => postgres_unavailable(e),
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        StoreError::InvalidInput {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        StoreError::NotFound {
            kind,
            id: id.into(),
        }
    }

    pub(crate) fn stale(kind: &'static str, id: impl Into<String>, token: u64) -> Self {
        StoreError::StaleLease {
            kind,
            id: id.into(),
            token,
        }
    }

    pub(crate) fn conflict(
        kind: &'static str,
        id: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        StoreError::Conflict {
            kind,
            id: id.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn corrupt(what: &'static str, reason: impl Into<String>) -> Self {
        StoreError::Corrupt {
            what,
            reason: reason.into(),
        }
    }
}

/// SQLite's codes for a database that cannot be written or read right now.
fn sqlite_unavailable(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode;
    match e {
        rusqlite::Error::SqliteFailure(failure, _) => matches!(
            failure.code,
            ErrorCode::DiskFull
                | ErrorCode::ReadOnly
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::PermissionDenied
                | ErrorCode::FileLockingProtocolFailed
        ),
        _ => false,
    }
}

/// A connection that failed or was lost, or a server refusing work for a while
/// (SQLSTATE classes 08 connection exception, 53 insufficient resources, 57P operator
/// intervention such as a shutdown).
fn postgres_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || code.starts_with("53") || code.starts_with("57P")
        }),
        _ => false,
    }
}
