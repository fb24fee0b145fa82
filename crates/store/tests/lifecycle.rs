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
                supported: 2
            }
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
                supported: 5
            }
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
            workflow: "wf".into(),
            workflow_version: 1,
            input: json!(i),
            idempotency_key: None,
            pending_steps: vec![],
            run_at_ms: T0,
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
