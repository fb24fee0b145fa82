//! Group commit for advances on PostgreSQL: the advances of many tasks share one
//! transaction, one round trip and one commit.
//!
//! The engine commits one advance per finished step, from many tasks at once, and a
//! PostgreSQL server commits only so many transactions a second however little each
//! holds, so one transaction per advance capped durable steps at that rate. Advances
//! are therefore queued to a few workers; a worker takes the first waiting advance and
//! every other one already queued (most arrived while its previous commit was in flight)
//! and commits them with one call of `hf_advance_many` (migration 0004), which checks
//! each advance as `hf_advance` would and writes the ones that pass with set-based
//! statements, so a stale or conflicting one is refused alone. Nobody waits for
//! company: a lone advance runs at once, on the single path (`hf_advance`), and nobody
//! is answered before the commit of the statement holding their advance.
//!
//! Submissions are batched the same way (`hf_submit_many`, migration 0005): the engine
//! found them as costly as steps, one commit each.
//!
//! Why workers and not a batch per caller: several workers keep several commits in
//! flight (PostgreSQL's WAL writer flushes concurrent commits together), while each
//! batch stays large enough to pay for its round trip.

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};

use sqlx::Row;

use super::reads::TASK_COL_COUNT;
use super::{advance, writes};
use crate::plan::AdvancePlan;
use crate::task::{Advance, NewTask, Submitted};
use crate::{Result, StoreError};

/// The most advances in one batch: enough for every task a node runs at once to share
/// a commit, few enough that one statement's locks and work stay small.
const MAX_BATCH: usize = 256;

/// The most document bytes in one batch: PostgreSQL refuses a `jsonb` value past
/// 256 MiB, and one advance may carry up to `max_document_bytes` (64 MiB at most) in
/// each of several documents. A batch that is still refused falls back to one by one.
const MAX_BATCH_BYTES: usize = 16 << 20;

/// An advance waiting for its batch, and where to send its answer.
struct Item {
    advance: Advance,
    plan: AdvancePlan,
    reply: oneshot::Sender<Result<()>>,
}

/// A submission waiting for its batch (checked and serialised), and where to send its
/// answer.
struct SubmitItem {
    task: NewTask,
    input: String,
    pending: String,
    now: i64,
    reply: oneshot::Sender<Result<Submitted>>,
}

/// A queued write.
enum Op {
    /// Both boxed: the queue moves pointers, whatever a write holds.
    Advance(Box<Item>),
    Submit(Box<SubmitItem>),
}

impl Op {
    fn doc_bytes(&self) -> usize {
        match self {
            Op::Advance(i) => i.plan.doc_bytes(),
            Op::Submit(s) => s.input.len() + s.pending.len(),
        }
    }
}

/// The handle callers queue advances through; the workers stop when every handle is
/// dropped.
#[derive(Debug, Clone)]
pub(super) struct Batcher {
    queue: mpsc::Sender<Op>,
}

impl Batcher {
    /// Starts `workers` workers (`Options::postgres_write_batches`) on the current
    /// tokio runtime, which must outlive the store (as its pool's connections must).
    pub(super) fn start(pool: &PgPool, workers: usize) -> Batcher {
        let (queue, rx) = mpsc::channel(MAX_BATCH * workers.max(1) * 4);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..workers {
            tokio::spawn(work(pool.clone(), Arc::clone(&rx)));
        }
        Batcher { queue }
    }

    /// Commits `advance` in the next batch; resolves after that batch's commit.
    pub(super) async fn advance(&self, advance: Advance, plan: AdvancePlan) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        let item = Item {
            advance,
            plan,
            reply,
        };
        self.queue
            .send(Op::Advance(Box::new(item)))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Submits `task` (checked: `input` and `pending` are its serialised documents) in
    /// the next batch; resolves after that batch's commit.
    pub(super) async fn submit(
        &self,
        task: NewTask,
        input: String,
        pending: String,
        now: i64,
    ) -> Result<Submitted> {
        let (reply, answer) = oneshot::channel();
        let item = SubmitItem {
            task,
            input,
            pending,
            now,
            reply,
        };
        self.queue
            .send(Op::Submit(Box::new(item)))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

/// One worker: gathers a batch under the queue's lock (so that workers split the queue
/// instead of each taking one advance), then commits it without the lock, while the
/// next worker gathers.
async fn work(pool: PgPool, rx: Arc<Mutex<mpsc::Receiver<Op>>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut bytes = first.doc_bytes();
            batch.push(first);
            while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                match rx.try_recv() {
                    Ok(op) => {
                        bytes += op.doc_bytes();
                        batch.push(op);
                    }
                    Err(_) => break,
                }
            }
        }
        let mut advances = Vec::new();
        let mut submits = Vec::new();
        for op in batch.drain(..) {
            match op {
                Op::Advance(a) => advances.push(*a),
                Op::Submit(s) => submits.push(*s),
            }
        }
        // Two statements on two connections, each its own transaction: neither kind
        // waits for the other's commit.
        tokio::join!(
            commit(&pool, &mut advances),
            commit_submits(&pool, &mut submits)
        );
    }
}

/// Commits `batch` and answers every caller in it.
async fn commit(pool: &PgPool, batch: &mut Vec<Item>) {
    // `hf_advance_many` checks each advance against its task as it was before the
    // batch, and takes no named locks: a second advance of a task, and a fenced one,
    // run alone after it (they were queued together, so neither caller had been
    // answered and their order is the batch's choice).
    let mut seen = HashSet::new();
    let (mut together, mut alone): (Vec<Item>, Vec<Item>) = batch.drain(..).partition(|i| {
        let first = seen.insert(i.advance.task_id.clone());
        first && i.advance.fence.is_none()
    });
    if together.len() > 1 {
        commit_together(pool, &mut together).await;
    }
    one_by_one(pool, &mut together).await;
    one_by_one(pool, &mut alone).await;
}

/// Commits `batch` (two or more advances of distinct tasks, none fenced) with one
/// call of `hf_advance_many`, and answers every caller in it.
async fn commit_together(pool: &PgPool, batch: &mut Vec<Item>) {
    let doc = serde_json::Value::Array(
        batch
            .iter()
            .enumerate()
            .map(|(n, i)| advance::to_json(n + 1, &i.advance, &i.plan))
            .collect(),
    )
    .to_string();
    let codes: std::result::Result<Vec<i32>, sqlx::Error> =
        sqlx::query_scalar("SELECT hf_advance_many($1::jsonb)")
            .bind(doc)
            .fetch_one(pool)
            .await;
    match codes {
        Ok(codes) if codes.len() == batch.len() => {
            for (item, code) in batch.drain(..).zip(codes) {
                let answer = advance::answer(code, &item.advance, &item.plan);
                // The caller may have gone away (its future dropped); the write stands.
                let _ = item.reply.send(answer);
            }
        }
        Ok(codes) => {
            let reason = format!("{} results for {} advances", codes.len(), batch.len());
            for item in batch.drain(..) {
                let _ = item
                    .reply
                    .send(Err(StoreError::corrupt("hf_advance_many", reason.clone())));
            }
        }
        // The server refused the statement, so none of the batch is committed: the
        // caller runs each advance alone, to give each its own answer exactly as on the
        // single path (a duplicate job id, say, fails only the advance that carries it).
        Err(sqlx::Error::Database(_)) => {}
        Err(e) => {
            for item in batch.drain(..) {
                let _ = item.reply.send(Err(StoreError::Postgres(replicate(&e))));
            }
        }
    }
}

/// Commits `batch` (submissions) with one call of `hf_submit_many`, or alone when it
/// holds one, and answers every caller in it.
async fn commit_submits(pool: &PgPool, batch: &mut Vec<SubmitItem>) {
    if batch.len() > 1 {
        submit_together(pool, batch).await;
    }
    for item in batch.drain(..) {
        let answer = submit_alone(pool, &item).await;
        let _ = item.reply.send(answer);
    }
}

async fn submit_alone(pool: &PgPool, s: &SubmitItem) -> Result<Submitted> {
    let mut conn = pool.acquire().await?;
    writes::submit(&mut conn, &s.task, &s.input, &s.pending, s.now).await
}

/// Commits two or more submissions in one statement; on a refusal of the statement
/// (nothing committed) leaves them in `batch` to run alone.
async fn submit_together(pool: &PgPool, batch: &mut Vec<SubmitItem>) {
    let mut doc = Vec::with_capacity(batch.len());
    for (n, s) in batch.iter().enumerate() {
        match writes::submit_json(n + 1, &s.task, &s.input, &s.pending, s.now) {
            Ok(v) => doc.push(v),
            // Checked already; if not, each runs alone and gets its own refusal.
            Err(_) => return,
        }
    }
    let sql = format!(
        "SELECT {}, s.i FROM hf_submit_many($1::jsonb) s \
         CROSS JOIN LATERAL (SELECT (s.task).*) t",
        writes::submit_cols()
    );
    let rows = sqlx::query(&sql)
        .bind(serde_json::Value::Array(doc).to_string())
        .fetch_all(pool)
        .await;
    match rows {
        Ok(rows) => {
            let mut answers: Vec<Option<Result<Submitted>>> = batch.iter().map(|_| None).collect();
            for row in &rows {
                let Ok(n) = row.try_get::<i32, _>(TASK_COL_COUNT + 1) else {
                    continue;
                };
                let Some(k) = usize::try_from(n).ok().and_then(|n| n.checked_sub(1)) else {
                    continue;
                };
                if let (Some(item), Some(slot)) = (batch.get(k), answers.get_mut(k)) {
                    *slot = Some(writes::submitted(row, &item.task));
                }
            }
            for (item, answer) in batch.drain(..).zip(answers) {
                let answer = answer.unwrap_or_else(|| {
                    Err(StoreError::corrupt(
                        "hf_submit_many",
                        "a submission without a result",
                    ))
                });
                let _ = item.reply.send(answer);
            }
        }
        // Refused whole, so nothing committed: each runs alone (see `commit_together`).
        Err(sqlx::Error::Database(_)) => {}
        Err(e) => {
            for item in batch.drain(..) {
                let _ = item.reply.send(Err(StoreError::Postgres(replicate(&e))));
            }
        }
    }
}

/// Runs each advance of `batch` in a transaction of its own.
async fn one_by_one(pool: &PgPool, batch: &mut Vec<Item>) {
    for item in batch.drain(..) {
        let answer = advance::advance(pool, &item.advance, &item.plan).await;
        let _ = item.reply.send(answer);
    }
}

/// The same failure for every caller of a batch that failed short of the server
/// (`sqlx::Error` is not `Clone`): the kinds callers may branch on are kept.
fn replicate(e: &sqlx::Error) -> sqlx::Error {
    match e {
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        sqlx::Error::WorkerCrashed => sqlx::Error::WorkerCrashed,
        sqlx::Error::Io(io) => sqlx::Error::Io(std::io::Error::new(io.kind(), io.to_string())),
        other => sqlx::Error::Protocol(other.to_string()),
    }
}
