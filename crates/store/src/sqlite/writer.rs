//! Group commit: one writer thread, many writes per durable transaction.
//!
//! SQLite allows one writer at a time and an fsync costs the same whether a transaction
//! holds one row or a thousand, so throughput comes from sharing fsyncs, not from
//! weakening them. Every write is a closure sent to one thread that owns the write
//! connection (`journal_mode=WAL`, `synchronous=FULL`). The thread takes the first
//! waiting write and every other write that arrives (most arrived while the previous
//! commit was in flight), runs each inside its own `SAVEPOINT` in one `BEGIN IMMEDIATE`
//! transaction as it comes, commits, and only then answers each caller. The batch is
//! sized by what came back: the callers a commit answers mostly return at once with
//! their next write, so the next batch keeps taking writes until it is as large as the
//! last, yielding the CPU a bounded number of times while the queue is momentarily
//! empty. Without that, the first caller back got a commit of its own, the rest waited
//! for the next one, and half the fsyncs carried a handful of writes. A lone writer's
//! last batch was 1, so it never waits. A write that fails rolls back to its savepoint
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
    // How many callers the last commit answered: most of them come straight back with
    // their next write, so the next batch waits (briefly) for about as many.
    let mut expected = 1;
    while let Some(first) = rx.blocking_recv() {
        let commit = fill_and_commit(&conn, &mut rx, &mut batch, first, expected, max_batch);
        expected = batch.len();
        for op in batch.drain(..) {
            op.finish(&commit);
        }
    }
}

/// How many times in a row the writer yields its CPU to callers on their way back
/// before it commits a batch smaller than the last one. A lone writer never waits (its
/// last batch was 1); a burst that ends costs one short wait, after which `expected`
/// has dropped to what really came.
const PATIENCE: u32 = 64;

/// Opens the transaction, applies `first` and every write that arrives until the batch
/// is as large as the last one (or `max_batch`, or nobody came for [`PATIENCE`] yields),
/// then commits. Writes are applied as they arrive, so the SQL work overlaps the
/// callers' trips back instead of waiting for them; nobody is answered before COMMIT.
fn fill_and_commit(
    conn: &Connection,
    rx: &mut mpsc::Receiver<Box<dyn WriteOp>>,
    batch: &mut Vec<Box<dyn WriteOp>>,
    first: Box<dyn WriteOp>,
    expected: usize,
    max_batch: usize,
) -> std::result::Result<(), String> {
    batch.push(first);
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| e.to_string())?;
    let mut applied = 0;
    let mut idle = 0;
    loop {
        while applied < batch.len() {
            if let Err(e) = savepoint(conn, batch[applied].as_mut()) {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e.to_string());
            }
            applied += 1;
        }
        if batch.len() >= max_batch {
            break;
        }
        match rx.try_recv() {
            Ok(op) => {
                batch.push(op);
                idle = 0;
            }
            Err(mpsc::error::TryRecvError::Empty) if batch.len() < expected && idle < PATIENCE => {
                idle += 1;
                std::thread::yield_now();
            }
            Err(_) => break,
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
