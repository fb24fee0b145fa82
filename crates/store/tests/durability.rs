//! Invariant 2 on SQLite: a child process commits in a loop and is SIGKILLed at a
//! random point; reopening shows every acknowledged write and a consistent database.
//!
//! The child is this same test binary re-run with `DURABILITY_CHILD_DIR` set, filtered
//! to `child_writer`. (Power loss is the same promise one layer down: `synchronous=FULL`
//! fsyncs the WAL before any acknowledgement; a kill -9 test cannot pull the plug.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use holdfast_store::{
    Advance, NewEvent, NewTask, NewWorkflow, StepStatus, StepUpdate, Store, TaskStatus,
};
use serde_json::json;

const CHILD_ENV: &str = "DURABILITY_CHILD_DIR";
const T0: u64 = 1_700_000_000_000;

fn url(dir: &str) -> String {
    format!("sqlite://{dir}/holdfast.db")
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("holdfast-durability-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut submitted = HashSet::new();
    let mut advanced = HashSet::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while submitted.len() + advanced.len() < 1500 {
        let Some(line) = lines.next() else {
            panic!("child ended early")
        };
        let line = line.unwrap();
        if let Some(id) = line.strip_prefix("SUBMITTED ") {
            submitted.insert(id.to_string());
        } else if let Some(id) = line.strip_prefix("ADVANCED ") {
            advanced.insert(id.to_string());
        }
    }
    child.kill().unwrap(); // SIGKILL, mid-stream: more writes are in flight
    child.wait().unwrap();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = holdfast_store::open(&url(dir.to_str().unwrap()))
            .await
            .unwrap();
        for id in &submitted {
            assert!(
                store.get_task(id).await.unwrap().is_some(),
                "acknowledged task {id} lost"
            );
        }
        for id in &advanced {
            let task = store.get_task(id).await.unwrap().unwrap();
            assert_eq!(
                task.completed_steps,
                ["a"],
                "acknowledged step of {id} lost"
            );
            let journal = store.journal(id, 0, 10).await.unwrap();
            assert_eq!(
                journal.iter().map(|e| e.seq).collect::<Vec<_>>(),
                [1, 2],
                "{id}"
            );
        }
    });
    let conn = rusqlite::Connection::open(dir.join("holdfast.db")).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let orphans: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM steps WHERE task_id NOT IN (SELECT task_id FROM tasks)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The child: 16 concurrent writers submit tasks and commit their first step, printing
/// each acknowledgement, until killed. Does nothing unless run by the test above.
#[test]
fn child_writer() {
    let Some(dir) = std::env::var(CHILD_ENV).ok() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = holdfast_store::open(&url(&dir)).await.unwrap();
        let wf = NewWorkflow {
            name: "wf".into(),
            version: 1,
            definition: json!({}),
        };
        store.put_workflow(wf, T0).await.unwrap();
        let writers: Vec<_> = (0..16)
            .map(|w| tokio::spawn(write_forever(store.clone(), w)))
            .collect();
        for w in writers {
            w.await.unwrap();
        }
    });
}

async fn write_forever(store: Arc<dyn Store>, writer: usize) {
    for i in 0.. {
        let id = format!("w{writer}-{i}");
        let task = NewTask {
            task_id: id.clone(),
            tenant: "default".into(),
            workflow: "wf".into(),
            workflow_version: 1,
            input: json!({"i": i}),
            idempotency_key: None,
            pending_steps: vec!["a".into()],
            run_at_ms: T0,
            traceparent: None,
        };
        store.submit_task(task, T0).await.unwrap();
        println!("SUBMITTED {id}");
        let node = format!("node-{writer}");
        for claim in store
            .claim_tasks(&node, Duration::from_secs(600), 1, T0)
            .await
            .unwrap()
        {
            let step = StepUpdate {
                name: "a".into(),
                status: StepStatus::Succeeded,
                attempt: 1,
                output: Some(json!({"ok": i})),
                error: None,
                next_attempt_at_ms: None,
                cost_usd: 0.0,
            };
            let event = NewEvent {
                kind: "step_succeeded".into(),
                data: json!({}),
            };
            let a = Advance {
                step: Some(step),
                events: vec![event],
                ..Advance::new(&claim.task.task_id, claim.token, TaskStatus::Succeeded)
            };
            store.advance(a, T0).await.unwrap();
            println!("ADVANCED {}", claim.task.task_id);
        }
    }
}
