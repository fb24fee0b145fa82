//! Durable step completions and 3-step workflows per second, with each database's own
//! raw commit rates beside them (measured in the same run, on the same disk), since a
//! figure without the rate the disk can fsync at says little.
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
    // `HOLDFAST_BENCH_ONLY=sqlite` or `=postgres` measures one backend.
    let only = std::env::var("HOLDFAST_BENCH_ONLY").unwrap_or_default();
    if only != "postgres" {
        sqlite(&clock, &dir).await;
    }
    if only != "sqlite" {
        postgres(&clock).await;
    }
}

async fn sqlite(clock: &SystemClock, dir: &Path) {
    println!("directory: {}", dir.display());
    let single = raw_commits(clock, &dir.join("raw1.db"), 1, 1500);
    let batched = raw_commits(clock, &dir.join("raw100.db"), 100, 200);
    println!("raw SQLite WAL+FULL, 1 row/commit:     {single:>9.0} rows/s (= commits/s)");
    println!("raw SQLite WAL+FULL, 100 rows/commit:  {batched:>9.0} rows/s");
    for (writers, steps) in [(1, 1500), (64, 300), (256, 100)] {
        let url = format!("sqlite://{}/holdfast-{writers}.db", dir.display());
        let store = holdfast_store::open(&url).await.unwrap();
        let rate = steps_per_second(clock, store, writers, steps).await;
        println!(
            "holdfast SQLite, {writers:>3} writers:            {rate:>9.0} durable steps/s ({:.1}x raw single-row)",
            rate / single
        );
    }
    for (drivers, each) in [(64, 40), (256, 10)] {
        let url = format!("sqlite://{}/holdfast-wf-{drivers}.db", dir.display());
        let store = holdfast_store::open(&url).await.unwrap();
        let rate = workflows_per_second(clock, store, drivers, each).await;
        println!(
            "holdfast SQLite, {drivers:>3} drivers:            {rate:>9.0} 3-step workflows/s (5 writes each)"
        );
    }
}

async fn postgres(clock: &SystemClock) {
    let Some(url) = std::env::var("HOLDFAST_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        println!("PostgreSQL: SKIPPED: HOLDFAST_TEST_POSTGRES_URL not set");
        return;
    };
    for writers in [1, 64] {
        let rate = raw_pg_commits(clock, &url, writers, 6400 / writers.min(16)).await;
        println!("raw PostgreSQL, 1 row/commit, {writers:>3} conns: {rate:>9.0} commits/s");
    }
    for (writers, steps) in [(1, 500), (64, 100), (256, 40)] {
        let schema = format!("hf_bench_{}_{writers}", std::process::id());
        let store = holdfast_store::open_with(&url, pg_options(&schema))
            .await
            .unwrap();
        let rate = steps_per_second(clock, store, writers, steps).await;
        println!("holdfast PostgreSQL, {writers:>3} writers:        {rate:>9.0} durable steps/s");
        drop_schema(&url, &schema).await;
    }
    for (drivers, each) in [(64, 20)] {
        let schema = format!("hf_bench_{}_wf{drivers}", std::process::id());
        let store = holdfast_store::open_with(&url, pg_options(&schema))
            .await
            .unwrap();
        let rate = workflows_per_second(clock, store, drivers, each).await;
        println!(
            "holdfast PostgreSQL, {drivers:>3} drivers:        {rate:>9.0} 3-step workflows/s (5 writes each)"
        );
        drop_schema(&url, &schema).await;
    }
}

fn pg_options(schema: &str) -> Options {
    Options {
        postgres_schema: Some(schema.to_string()),
        postgres_max_connections: 64,
        ..Options::default()
    }
}

/// `conns` connections each commit `commits` single-row inserts (autocommit, with the
/// server's own `synchronous_commit`); returns commits per second.
async fn raw_pg_commits(clock: &SystemClock, url: &str, conns: usize, commits: usize) -> f64 {
    use sqlx::Executor;
    let schema = format!("hf_bench_{}_raw{conns}", std::process::id());
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(conns as u32)
        .connect(url)
        .await
        .unwrap();
    pool.execute(format!("CREATE SCHEMA \"{schema}\"").as_str())
        .await
        .unwrap();
    let table = format!("\"{schema}\".t");
    pool.execute(format!("CREATE TABLE {table} (id bigserial PRIMARY KEY, v json)").as_str())
        .await
        .unwrap();
    let sql = format!("INSERT INTO {table} (v) VALUES ('{{\"ok\":true}}')");
    let start = clock.now();
    let handles: Vec<_> = (0..conns)
        .map(|_| {
            let (pool, sql) = (pool.clone(), sql.clone());
            tokio::spawn(async move {
                for _ in 0..commits {
                    sqlx::query(&sql).execute(&pool).await.unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let rate =
        (conns * commits) as f64 / clock.now().saturating_duration_since(start).as_secs_f64();
    pool.close().await;
    drop_schema(url, &schema).await;
    rate
}

/// `drivers` concurrent drivers each run `each` workflows of 3 steps, as the engine
/// would: submit a task, claim one, commit two steps while running and the third with
/// the task's success. Returns workflows per second.
async fn workflows_per_second(
    clock: &SystemClock,
    store: Arc<dyn Store>,
    drivers: usize,
    each: usize,
) -> f64 {
    let wf = NewWorkflow {
        name: "bench".into(),
        version: 1,
        definition: json!({"steps": ["plan", "call", "answer"]}),
    };
    store.put_workflow(wf, T0).await.unwrap();
    let start = clock.now();
    let handles: Vec<_> = (0..drivers)
        .map(|d| {
            let store = store.clone();
            tokio::spawn(async move {
                let node = format!("node-{d}");
                for i in 0..each {
                    let steps: Vec<String> = ["plan", "call", "answer"].map(String::from).into();
                    let task = NewTask {
                        task_id: format!("wf-{d}-{i}"),
                        workflow: "bench".into(),
                        workflow_version: 1,
                        input: json!({"question": "what is the answer?", "d": d}),
                        idempotency_key: None,
                        pending_steps: steps.clone(),
                        run_at_ms: T0,
                    };
                    store.submit_task(task, T0).await.unwrap();
                    // Every driver claims once per task it submitted, so there is always
                    // one for it; it may be another driver's.
                    let claim = loop {
                        let lease = Duration::from_secs(3600);
                        let mut got = store.claim_tasks(&node, lease, 1, T0 + 1).await.unwrap();
                        if let Some(claim) = got.pop() {
                            break claim;
                        }
                    };
                    for (n, name) in steps.iter().enumerate() {
                        let last = n + 1 == steps.len();
                        let step = StepUpdate {
                            name: name.clone(),
                            status: StepStatus::Succeeded,
                            attempt: 1,
                            output: Some(json!({"text": "a model's answer", "tokens": 12})),
                            error: None,
                            next_attempt_at_ms: None,
                            cost_usd: 0.0001,
                        };
                        let status = if last {
                            TaskStatus::Succeeded
                        } else {
                            TaskStatus::Running
                        };
                        let a = Advance {
                            step: Some(step),
                            pending_steps: Some(steps[n + 1..].to_vec()),
                            output: last.then(|| json!({"answer": 42})),
                            events: vec![NewEvent {
                                kind: "step_succeeded".into(),
                                data: json!({"step": name}),
                            }],
                            ..Advance::new(&claim.task.task_id, claim.token, status)
                        };
                        store.advance(a, T0 + 2).await.unwrap();
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    (drivers * each) as f64 / clock.now().saturating_duration_since(start).as_secs_f64()
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
