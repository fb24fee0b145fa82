//! The store alone, without the engine: durable step completions and 3-step workflows
//! per second from many concurrent writers, beside each database's raw commit rates
//! measured in the same run on the same disk (`raw.rs`), since a figure without the
//! rate the disk can fsync at says little. For tuning the store; the engine benchmark
//! (`--bin engine`) measures what users get.
//!
//! Run: `cargo run --release -p holdfast-bench --bin store`
//! Environment: `HOLDFAST_BENCH_DIR` (default `target/store-bench`; a real disk, not
//! tmpfs), `HOLDFAST_TEST_POSTGRES_URL` to measure PostgreSQL too,
//! `HOLDFAST_BENCH_ONLY=sqlite` or `=postgres` for one backend.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use holdfast_bench::measure::Stopwatch;
use holdfast_bench::raw;
use holdfast_store::{
    Advance, NewEvent, NewTask, NewWorkflow, Options, StepStatus, StepUpdate, Store, TaskStatus,
};
use serde_json::json;

const T0: u64 = 1_700_000_000_000;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let dir = PathBuf::from(
        std::env::var("HOLDFAST_BENCH_DIR").unwrap_or_else(|_| "target/store-bench".into()),
    );
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let only = std::env::var("HOLDFAST_BENCH_ONLY").unwrap_or_default();
    if only != "postgres" {
        sqlite(&dir).await?;
    }
    if only != "sqlite" {
        postgres().await?;
    }
    Ok(())
}

async fn sqlite(dir: &Path) -> anyhow::Result<()> {
    println!("directory: {}", dir.display());
    let raw = raw::sqlite(dir)?;
    let single = raw.commits;
    println!("raw SQLite WAL+FULL, 1 row/commit:     {single:>9.0} rows/s (= commits/s)");
    println!(
        "raw SQLite WAL+FULL, {} rows/commit:  {:>9.0} rows/s",
        raw::BATCH_ROWS,
        raw.rows_batched
    );
    for (writers, steps) in [(1, 1500), (64, 300), (256, 100)] {
        let url = format!("sqlite://{}/holdfast-{writers}.db", dir.display());
        let store = holdfast_store::open(&url).await?;
        let rate = steps_per_second(store, writers, steps).await?;
        println!(
            "holdfast SQLite, {writers:>3} writers:            {rate:>9.0} durable steps/s ({:.1}x raw single-row)",
            rate / single
        );
    }
    for (drivers, each) in [(64, 40), (256, 10)] {
        let url = format!("sqlite://{}/holdfast-wf-{drivers}.db", dir.display());
        let store = holdfast_store::open(&url).await?;
        let rate = workflows_per_second(store, drivers, each).await?;
        println!(
            "holdfast SQLite, {drivers:>3} drivers:            {rate:>9.0} 3-step workflows/s (5 writes each)"
        );
    }
    Ok(())
}

async fn postgres() -> anyhow::Result<()> {
    let Some(url) = holdfast_bench::needs::postgres_url() else {
        return Ok(());
    };
    let raw = raw::postgres(&url, &format!("hf_bench_{}_raw", std::process::id()), 64).await?;
    println!(
        "raw PostgreSQL, 1 row/commit,   1 conn:  {:>9.0} commits/s",
        raw.commits
    );
    if let Some(concurrent) = raw.commits_concurrent {
        println!("raw PostgreSQL, 1 row/commit,  64 conns: {concurrent:>9.0} commits/s");
    }
    for (writers, steps) in [(1, 500), (64, 100), (256, 40)] {
        let schema = format!("hf_bench_{}_{writers}", std::process::id());
        let store = holdfast_store::open_with(&url, pg_options(&schema)).await?;
        let rate = steps_per_second(store, writers, steps).await;
        drop_schema(&url, &schema).await?;
        println!(
            "holdfast PostgreSQL, {writers:>3} writers:        {:>9.0} durable steps/s",
            rate?
        );
    }
    for (drivers, each) in [(64, 20)] {
        let schema = format!("hf_bench_{}_wf{drivers}", std::process::id());
        let store = holdfast_store::open_with(&url, pg_options(&schema)).await?;
        let rate = workflows_per_second(store, drivers, each).await;
        drop_schema(&url, &schema).await?;
        println!(
            "holdfast PostgreSQL, {drivers:>3} drivers:        {:>9.0} 3-step workflows/s (5 writes each)",
            rate?
        );
    }
    Ok(())
}

fn pg_options(schema: &str) -> Options {
    Options {
        postgres_schema: Some(schema.to_string()),
        postgres_max_connections: 64,
        ..Options::default()
    }
}

/// `drivers` concurrent drivers each run `each` workflows of 3 steps, as the engine
/// would: submit a task, claim one, commit two steps while running and the third with
/// the task's success. Returns workflows per second.
async fn workflows_per_second(
    store: Arc<dyn Store>,
    drivers: usize,
    each: usize,
) -> anyhow::Result<f64> {
    let wf = NewWorkflow {
        name: "bench".into(),
        version: 1,
        definition: json!({"steps": ["plan", "call", "answer"]}),
    };
    store.put_workflow(wf, T0).await?;
    let clock = Stopwatch::start();
    let handles: Vec<_> = (0..drivers)
        .map(|d| {
            let store = store.clone();
            tokio::spawn(async move {
                let node = format!("node-{d}");
                for i in 0..each {
                    let steps: Vec<String> = ["plan", "call", "answer"].map(String::from).into();
                    let task = NewTask {
                        task_id: format!("wf-{d}-{i}"),
                        tenant: "bench".into(),
                        workflow: "bench".into(),
                        workflow_version: 1,
                        input: json!({"question": "what is the answer?", "d": d}),
                        idempotency_key: None,
                        pending_steps: steps.clone(),
                        run_at_ms: T0,
                        traceparent: None,
                    };
                    store.submit_task(task, T0).await?;
                    // Every driver claims once per task it submitted, so there is always
                    // one for it; it may be another driver's.
                    let claim = loop {
                        let lease = Duration::from_secs(3600);
                        let mut got = store.claim_tasks(&node, lease, 1, T0 + 1).await?;
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
                        store.advance(a, T0 + 2).await?;
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for h in handles {
        h.await??;
    }
    Ok((drivers * each) as f64 / clock.elapsed().as_secs_f64())
}

/// `writers` concurrent workers each commit `steps` step completions (a step result, the
/// task's new state and one journal event per advance) on a task of their own.
async fn steps_per_second(
    store: Arc<dyn Store>,
    writers: usize,
    steps: usize,
) -> anyhow::Result<f64> {
    let wf = NewWorkflow {
        name: "bench".into(),
        version: 1,
        definition: json!({}),
    };
    store.put_workflow(wf, T0).await?;
    for w in 0..writers {
        let task = NewTask {
            task_id: format!("task-{w}"),
            tenant: "bench".into(),
            workflow: "bench".into(),
            workflow_version: 1,
            input: json!({"w": w}),
            idempotency_key: None,
            pending_steps: vec![],
            run_at_ms: T0,
            traceparent: None,
        };
        store.submit_task(task, T0).await?;
    }
    let claims = store
        .claim_tasks("bench-node", Duration::from_secs(3600), writers as u32, T0)
        .await?;
    anyhow::ensure!(
        claims.len() == writers,
        "claimed {} of {writers} tasks",
        claims.len()
    );
    let clock = Stopwatch::start();
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
                    store.advance(a, T0 + 1).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for h in handles {
        h.await??;
    }
    Ok((writers * steps) as f64 / clock.elapsed().as_secs_f64())
}

async fn drop_schema(url: &str, schema: &str) -> anyhow::Result<()> {
    use sqlx::{Connection, Executor};
    let mut conn = sqlx::PgConnection::connect(url).await?;
    conn.execute(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE").as_str())
        .await?;
    Ok(())
}
