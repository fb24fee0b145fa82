//! Group commit: one writer thread, many writes per durable transaction.
//!
//! SQLite allows one writer at a time and an fsync costs the same whether a transaction
//! holds one row or a thousand, so throughput comes from sharing fsyncs, not from
//! weakening them. Every write is a closure sent to one thread that owns the write
//! connection (`journal_mode=WAL`, `synchronous=FULL`). The thread takes the first
//! waiting write, then drains every other write already queued (they arrived while the
//! previous commit was in flight: no timer, so a lone writer pays no added latency),
//! runs each inside its own `SAVEPOINT` in one `BEGIN IMMEDIATE` transaction, commits,
//! and only then answers each caller. A write that fails rolls back to its savepoint
//! and fails alone; a commit that fails fails every write in the batch. Nobody is told
//! "done" before the fsync of the transaction holding their write.
//!
//! This is why the SQLite backend uses `rusqlite` on a dedicated thread rather than
//! sqlx: sqlx's SQLite driver already runs each connection on its own thread and hops
//! a channel per statement; here a batch of step completions is plain function calls
//! on one connection with cached statements.

use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::{Result, StoreError};

/// A queued write: applied inside the batch transaction, answered after the commit.
trait WriteOp: Send {
    /// Runs the write; returns whether it succeeded (a failure is rolled back alone).
    fn apply(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the batch's commit is known.
    fn finish(self: Box<Self>, commit: &std::result::Result<(), String>);
}

struct Op<T, F> {
    f: Option<F>,
    result: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T: Send, F: FnOnce(&Connection) -> Result<T> + Send> WriteOp for Op<T, F> {
    fn apply(&mut self, conn: &Connection) -> bool {
        let Some(f) = self.f.take() else { return false };
        let result = f(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, commit: &std::result::Result<(), String>) {
        let answer = match (self.result, commit) {
            (Some(Ok(value)), Ok(())) => Ok(value),
            (Some(Ok(_)), Err(e)) => Err(StoreError::CommitFailed(e.clone())),
            (Some(Err(e)), _) => Err(e),
            (None, Err(e)) => Err(StoreError::CommitFailed(e.clone())),
            (None, Ok(())) => Err(StoreError::Closed),
        };
        // The caller may have gone away (its future dropped); the write stands anyway.
        let _ = self.reply.send(answer);
    }
}

/// The handle callers send writes through.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Box<dyn WriteOp>>,
}

impl Writer {
    /// Starts the writer thread on `conn`.
    pub(crate) fn start(conn: Connection, max_batch: usize) -> Result<Writer> {
        let (tx, rx) = mpsc::channel(max_batch.max(1) * 4);
        std::thread::Builder::new()
            .name("holdfast-sqlite-writer".into())
            .spawn(move || run(conn, rx, max_batch))
            .map_err(|source| StoreError::Io {
                path: "writer thread".into(),
                source,
            })?;
        Ok(Writer { tx })
    }

    /// Runs `f` in the next batch; resolves after that batch's commit.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let op = Op {
            f: Some(f),
            result: None,
            reply,
        };
        self.tx
            .send(Box::new(op))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

fn run(conn: Connection, mut rx: mpsc::Receiver<Box<dyn WriteOp>>, max_batch: usize) {
    let mut batch: Vec<Box<dyn WriteOp>> = Vec::with_capacity(max_batch);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let commit = commit_batch(&conn, &mut batch);
        for op in batch.drain(..) {
            op.finish(&commit);
        }
    }
}

fn commit_batch(
    conn: &Connection,
    batch: &mut [Box<dyn WriteOp>],
) -> std::result::Result<(), String> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| e.to_string())?;
    for op in batch.iter_mut() {
        if let Err(e) = savepoint(conn, op.as_mut()) {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e.to_string());
        }
    }
    conn.execute_batch("COMMIT").map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        e.to_string()
    })
}

fn savepoint(conn: &Connection, op: &mut dyn WriteOp) -> rusqlite::Result<()> {
    conn.prepare_cached("SAVEPOINT op")?.execute([])?;
    if !op.apply(conn) {
        conn.prepare_cached("ROLLBACK TO op")?.execute([])?;
    }
    conn.prepare_cached("RELEASE op")?.execute([])?;
    Ok(())
}

/// Read connections, used from tokio's blocking pool. WAL lets them read the last
/// committed state while the writer commits.
pub(crate) struct Readers {
    path: std::path::PathBuf,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl Readers {
    pub(crate) fn new(path: std::path::PathBuf, max_idle: usize) -> Arc<Readers> {
        Arc::new(Readers {
            path,
            idle: Mutex::new(Vec::new()),
            max_idle,
        })
    }

    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Runs `f` on a read connection.
    pub(crate) async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let readers = Arc::clone(self);
        let task = tokio::task::spawn_blocking(move || {
            let conn = readers.take()?;
            let result = f(&conn);
            readers.put(conn);
            result
        });
        task.await.map_err(|_| StoreError::Closed)?
    }

    fn take(&self) -> Result<Connection> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => super::connect(&self.path, true),
        }
    }

    fn put(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }
}
