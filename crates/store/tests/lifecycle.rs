//! Opening and sharing a store: migrations refuse a newer schema, reopening is
//! idempotent, and several PostgreSQL nodes share one database's work.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../test-support/needs.rs"]
mod needs;

use std::collections::HashSet;
use std::time::Duration;

use holdfast_store::{NewTask, NewWorkflow, Options, StoreError};
use serde_json::json;
use sqlx::{Connection, Executor};

const T0: u64 = 1_700_000_000_000;

#[tokio::test]
async fn sqlite_refuses_a_schema_newer_than_the_binary() {
    let dir = std::env::temp_dir().join(format!("holdfast-lifecycle-{}", std::process::id()));
    let url = format!("sqlite://{}/nested/dir/h.db", dir.display());
    drop(holdfast_store::open(&url).await.unwrap());
    drop(holdfast_store::open(&url).await.unwrap()); // reopening migrates nothing
    let conn = rusqlite::Connection::open(dir.join("nested/dir/h.db")).unwrap();
    conn.execute("INSERT INTO hf_schema_version (version) VALUES (999)", [])
        .unwrap();
    let err = holdfast_store::open(&url).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                found: 999,
                supported
            } if supported < 999
        ),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade holdfast"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn in_schema(schema: &str) -> Options {
    Options {
        postgres_schema: Some(schema.into()),
        postgres_max_connections: 4,
        ..Options::default()
    }
}

async fn drop_schema(url: &str, schema: &str) {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    conn.execute(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE").as_str())
        .await
        .unwrap();
}

#[tokio::test]
async fn postgres_refuses_a_schema_newer_than_the_binary() {
    let Some(url) = needs::postgres_url() else {
        return;
    };
    let schema = format!("hf_{}_newer", std::process::id());
    drop(
        holdfast_store::open_with(&url, in_schema(&schema))
            .await
            .unwrap(),
    );
    drop(
        holdfast_store::open_with(&url, in_schema(&schema))
            .await
            .unwrap(),
    );
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    conn.execute(
        format!("INSERT INTO \"{schema}\".hf_schema_version (version) VALUES (999)").as_str(),
    )
    .await
    .unwrap();
    let err = holdfast_store::open_with(&url, in_schema(&schema))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                found: 999,
                supported
            } if supported < 999
        ),
        "{err}"
    );
    drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_nodes_share_work_and_take_over_a_dead_nodes_tasks() {
    let Some(url) = needs::postgres_url() else {
        return;
    };
    let schema = format!("hf_{}_nodes", std::process::id());
    // Two "nodes": separate stores (pools), one database, migrated concurrently.
    let (a, b) = tokio::join!(
        holdfast_store::open_with(&url, in_schema(&schema)),
        holdfast_store::open_with(&url, in_schema(&schema)),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let wf = NewWorkflow {
        name: "wf".into(),
        version: 1,
        definition: json!({}),
    };
    a.put_workflow(wf, T0).await.unwrap();
    for i in 0..20 {
        let task = NewTask {
            task_id: format!("t{i}"),
            tenant: "default".into(),
            workflow: "wf".into(),
            workflow_version: 1,
            input: json!(i),
            idempotency_key: None,
            pending_steps: vec![],
            run_at_ms: T0,
            traceparent: None,
        };
        b.submit_task(task, T0).await.unwrap();
    }
    let lease = Duration::from_secs(30);
    let (on_a, on_b) = tokio::join!(
        a.claim_tasks("node-a", lease, 10, T0),
        b.claim_tasks("node-b", lease, 10, T0)
    );
    let ids = |claims: &[holdfast_store::TaskClaim]| {
        claims
            .iter()
            .map(|c| c.task.task_id.clone())
            .collect::<HashSet<_>>()
    };
    let (on_a, on_b) = (on_a.unwrap(), on_b.unwrap());
    assert_eq!((on_a.len(), on_b.len()), (10, 10));
    assert!(ids(&on_a).is_disjoint(&ids(&on_b)));
    drop(a); // node-a dies without a word
    assert!(
        b.claim_tasks("node-b", lease, 20, T0 + 29_000)
            .await
            .unwrap()
            .is_empty()
    );
    let taken = b
        .claim_tasks("node-b", lease, 20, T0 + 30_000)
        .await
        .unwrap();
    assert_eq!(
        ids(&taken),
        ids(&on_a).union(&ids(&on_b)).cloned().collect(),
        "every expired lease"
    );
    assert!(taken.iter().all(|c| c.taken_over_from.is_some()));
    drop(b);
    drop_schema(&url, &schema).await;
}

/// Rows as a store before tenants (schema 2 on SQLite, 5 on PostgreSQL) held them: a
/// task with an idempotency key, waiting on a job and an escalation, with a step and
/// its journal. `$NOW` is replaced by the dialect's timestamp of `T0`.
const BEFORE_TENANTS: &str = "
INSERT INTO workflows (name, version, definition, created_at) VALUES ('wf', 1, '{}', $NOW);
INSERT INTO tasks (task_id, workflow, workflow_version, status, input, idempotency_key,
    created_at, updated_at, event_seq)
    VALUES ('old', 'wf', 1, 'waiting', '{}', 'order-1', $NOW, $NOW, 1);
INSERT INTO steps (task_id, name, status, attempt, updated_at)
    VALUES ('old', 'a', 'waiting', 1, $NOW);
INSERT INTO events (task_id, seq, at, kind, data) VALUES ('old', 1, $NOW, 'submitted', '{}');
INSERT INTO jobs (job_id, task_id, step, queue, payload, status, created_at, updated_at)
    VALUES ('old/a', 'old', 'a', 'q', '{}', 'pending', $NOW, $NOW);
INSERT INTO escalations (escalation_id, task_id, step, reason, payload, status, created_at)
    VALUES ('esc-old', 'old', 'a', 'why', '{}', 'open', $NOW);
";

/// What a migrated store must show of [`BEFORE_TENANTS`]: every record, in the tenant
/// `default`, and the key still that tenant's own.
async fn check_migrated(store: std::sync::Arc<dyn holdfast_store::Store>) {
    let task = store.get_task("old").await.unwrap().unwrap();
    assert_eq!(
        (task.tenant.as_str(), task.idempotency_key.as_deref()),
        ("default", Some("order-1"))
    );
    let job = store.get_job("old/a").await.unwrap().unwrap();
    let esc = store.get_escalation("esc-old").await.unwrap().unwrap();
    assert_eq!(
        (job.tenant.as_str(), esc.tenant.as_str()),
        ("default", "default")
    );
    assert_eq!(store.list_steps("old").await.unwrap().len(), 1);
    assert_eq!(store.journal("old", 0, 10).await.unwrap().len(), 1);
    let submit = |tenant: &str, id: &str| NewTask {
        task_id: id.into(),
        tenant: tenant.into(),
        workflow: "wf".into(),
        workflow_version: 1,
        input: json!({}),
        idempotency_key: Some("order-1".into()),
        pending_steps: vec![],
        run_at_ms: T0,
        traceparent: None,
    };
    let same = store
        .submit_task(submit("default", "again"), T0)
        .await
        .unwrap();
    assert_eq!(same, holdfast_store::Submitted::Existing(task));
    let other = store.submit_task(submit("acme", "new"), T0).await.unwrap();
    assert!(
        matches!(other, holdfast_store::Submitted::Created(_)),
        "{other:?}"
    );
}

#[tokio::test]
async fn sqlite_tasks_stored_before_tenants_move_to_the_default_tenant() {
    let dir = std::env::temp_dir().join(format!("holdfast-tenants-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("h.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON; CREATE TABLE hf_schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);").unwrap();
        conn.execute_batch(include_str!("../migrations/sqlite/0001_init.sql"))
            .unwrap();
        conn.execute_batch(include_str!("../migrations/sqlite/0002_waiting_timers.sql"))
            .unwrap();
        conn.execute_batch("INSERT INTO hf_schema_version (version) VALUES (1), (2);")
            .unwrap();
        conn.execute_batch(&BEFORE_TENANTS.replace("$NOW", &T0.to_string()))
            .unwrap();
    }
    let url = format!("sqlite://{}", path.display());
    check_migrated(holdfast_store::open(&url).await.unwrap()).await;
    let conn = rusqlite::Connection::open(&path).unwrap();
    let broken: Vec<String> = conn
        .prepare("PRAGMA foreign_key_check")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(broken.is_empty(), "dangling references in {broken:?}");
    let indexes: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tasks' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        indexes,
        [
            "tasks_by_status",
            "tasks_by_tenant",
            "tasks_by_workflow",
            "tasks_ready"
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn postgres_tasks_stored_before_tenants_move_to_the_default_tenant() {
    let Some(url) = needs::postgres_url() else {
        return;
    };
    let schema = format!("hf_{}_tenants", std::process::id());
    drop_schema(&url, &schema).await;
    {
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        let setup = format!(
            "CREATE SCHEMA \"{schema}\"; SET search_path TO \"{schema}\"; \
             CREATE TABLE hf_schema_version (version bigint PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());"
        );
        conn.execute(setup.as_str()).await.unwrap();
        for sql in [
            include_str!("../migrations/postgres/0001_init.sql"),
            include_str!("../migrations/postgres/0002_waiting_timers.sql"),
            include_str!("../migrations/postgres/0003_advance_function.sql"),
            include_str!("../migrations/postgres/0004_advance_many.sql"),
            include_str!("../migrations/postgres/0005_submit_function.sql"),
        ] {
            conn.execute(sql).await.unwrap();
        }
        conn.execute("INSERT INTO hf_schema_version (version) VALUES (1), (2), (3), (4), (5)")
            .await
            .unwrap();
        let rows = BEFORE_TENANTS.replace("$NOW", &format!("hf_ts({T0})"));
        conn.execute(rows.as_str()).await.unwrap();
    }
    let store = holdfast_store::open_with(&url, in_schema(&schema))
        .await
        .unwrap();
    check_migrated(store).await;
    drop_schema(&url, &schema).await;
}
