//! Durable step completions per second, with the file system's own commit rates beside
//! them (measured in the same run, on the same directory).
//!
//! `cargo run --release -p holdfast-store --example store_bench`
//! Environment: `HOLDFAST_BENCH_DIR` (default `./target/store-bench`, must be a real
//! disk, not tmpfs), `HOLDFAST_TEST_POSTGRES_URL` to also measure PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use holdfast_policy::{Clock, SystemClock};
use holdfast_store::{
    Advance, NewEvent, NewTask, NewWorkflow, Options, StepStatus, StepUpdate, Store, TaskStatus,
};
use serde_json::json;

const T0: u64 = 1_700_000_000_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let clock = SystemClock::new();
    let dir = PathBuf::from(
        std::env::var("HOLDFAST_BENCH_DIR").unwrap_or_else(|_| "target/store-bench".into()),
    );
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    println!("directory: {}", dir.display());
    let single = raw_commits(&clock, &dir.join("raw1.db"), 1, 1500);
    let batched = raw_commits(&clock, &dir.join("raw100.db"), 100, 200);
    println!("raw SQLite WAL+FULL, 1 row/commit:     {single:>9.0} rows/s");
    println!("raw SQLite WAL+FULL, 100 rows/commit:  {batched:>9.0} rows/s");
    for (writers, steps) in [(1, 1500), (64, 300), (256, 100)] {
        let url = format!("sqlite://{}/holdfast-{writers}.db", dir.display());
        let store = holdfast_store::open(&url).await.unwrap();
        let rate = steps_per_second(&clock, store, writers, steps).await;
        println!(
            "holdfast SQLite, {writers:>3} writers:            {rate:>9.0} durable steps/s ({:.1}x raw single-row)",
            rate / single
        );
    }
    let Some(url) = std::env::var("HOLDFAST_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        println!("PostgreSQL: SKIPPED: HOLDFAST_TEST_POSTGRES_URL not set");
        return;
    };
    for (writers, steps) in [(1, 500), (64, 100)] {
        let schema = format!("hf_bench_{}_{writers}", std::process::id());
        let options = Options {
            postgres_schema: Some(schema.clone()),
            postgres_max_connections: 64,
            ..Options::default()
        };
        let store = holdfast_store::open_with(&url, options).await.unwrap();
        let rate = steps_per_second(&clock, store, writers, steps).await;
        println!("holdfast PostgreSQL, {writers:>3} writers:        {rate:>9.0} durable steps/s");
        drop_schema(&url, &schema).await;
    }
}

/// Commits `rows` rows per transaction, `commits` times; returns rows per second.
fn raw_commits(clock: &SystemClock, path: &Path, rows: usize, commits: usize) -> f64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)").unwrap();
    let start = clock.now();
    for _ in 0..commits {
        conn.execute_batch("BEGIN").unwrap();
        for _ in 0..rows {
            conn.prepare_cached("INSERT INTO t (v) VALUES ('{\"ok\":true}')")
                .unwrap()
                .execute([])
                .unwrap();
        }
        conn.execute_batch("COMMIT").unwrap();
    }
    (rows * commits) as f64 / clock.now().saturating_duration_since(start).as_secs_f64()
}

/// `writers` concurrent workers each commit `steps` step completions (a step result, the
/// task's new state and one journal event per advance) on a task of their own.
async fn steps_per_second(
    clock: &SystemClock,
    store: Arc<dyn Store>,
    writers: usize,
    steps: usize,
) -> f64 {
    let wf = NewWorkflow {
        name: "bench".into(),
        version: 1,
        definition: json!({}),
    };
    store.put_workflow(wf, T0).await.unwrap();
    for w in 0..writers {
        let task = NewTask {
            task_id: format!("task-{w}"),
            workflow: "bench".into(),
            workflow_version: 1,
            input: json!({"w": w}),
            idempotency_key: None,
            pending_steps: vec![],
            run_at_ms: T0,
        };
        store.submit_task(task, T0).await.unwrap();
    }
    let claims = store
        .claim_tasks("bench-node", Duration::from_secs(3600), writers as u32, T0)
        .await
        .unwrap();
    assert_eq!(claims.len(), writers);
    let start = clock.now();
    let handles: Vec<_> = claims
        .into_iter()
        .map(|claim| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..steps {
                    let step = StepUpdate {
                        name: format!("step-{i}"),
                        status: StepStatus::Succeeded,
                        attempt: 1,
                        output: Some(
                            json!({"text": "a model's answer of modest length", "tokens": 12}),
                        ),
                        error: None,
                        next_attempt_at_ms: None,
                        cost_usd: 0.0001,
                    };
                    let a = Advance {
                        step: Some(step),
                        events: vec![NewEvent {
                            kind: "step_succeeded".into(),
                            data: json!({"step": i}),
                        }],
                        ..Advance::new(&claim.task.task_id, claim.token, TaskStatus::Running)
                    };
                    store.advance(a, T0 + 1).await.unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    (writers * steps) as f64 / clock.now().saturating_duration_since(start).as_secs_f64()
}

async fn drop_schema(url: &str, schema: &str) {
    use sqlx::{Connection, Executor};
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    conn.execute(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE").as_str())
        .await
        .unwrap();
}
