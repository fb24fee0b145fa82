//! The artifact store as a `Store`, on SQLite and a directory: what rows hold, what
//! callers read, and what happens to values that are too large, shaped like a
//! reference, or whose object is gone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use holdfast_engine::{ArtifactSettings, ArtifactStore};
use holdfast_store::{
    ArtifactFault, NewTask, NewWorkflow, Store, StoreError, TaskFilter, TaskStatus,
};
use serde_json::{Value, json};

struct Fixture {
    raw: Arc<dyn Store>,
    store: ArtifactStore,
    objects: std::path::PathBuf,
    dir: std::path::PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn fixture(name: &str) -> Fixture {
    let dir =
        std::env::temp_dir().join(format!("holdfast-artifacts-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let raw = holdfast_store::open(&format!("sqlite://{}/h.db", dir.display()))
        .await
        .unwrap();
    let objects = dir.join("objects");
    let settings = ArtifactSettings {
        url: format!("file://{}", objects.display()),
        threshold: 1024,
        max_output: 64 * 1024,
        sweep_interval: Duration::from_secs(1),
        sweep_grace: Duration::from_secs(1),
    };
    let store = ArtifactStore::open(raw.clone(), settings).unwrap();
    let workflow = NewWorkflow {
        name: "w".into(),
        version: 1,
        definition: json!({"steps": []}),
    };
    store.put_workflow(workflow, 1).await.unwrap();
    Fixture {
        raw,
        store,
        objects,
        dir,
    }
}

fn task(id: &str, input: Value) -> NewTask {
    NewTask {
        task_id: id.into(),
        tenant: "acme".into(),
        workflow: "w".into(),
        workflow_version: 1,
        input,
        idempotency_key: None,
        pending_steps: vec![],
        run_at_ms: 1,
        traceparent: None,
    }
}

fn objects_of(f: &Fixture, task_id: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(f.objects.join("tasks").join(task_id))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_large_input_is_an_object_its_row_a_reference_and_callers_read_it_whole() {
    let f = fixture("large").await;
    let input = json!({"text": "x".repeat(4000)});
    let submitted = f
        .store
        .submit_task(task("t-1", input.clone()), 2)
        .await
        .unwrap();
    assert_eq!(submitted.task().input, input);
    let row = f.raw.get_task("t-1").await.unwrap().unwrap();
    let reference = &row.input["$holdfast_artifact"];
    assert_eq!(reference["bytes"], 4011, "{row:?}");
    assert_eq!(objects_of(&f, "t-1").len(), 1);
    assert_eq!(f.store.get_task("t-1").await.unwrap().unwrap().input, input);
    let page = f.store.list_tasks(&TaskFilter::default()).await.unwrap();
    assert_eq!(page.tasks[0].input, input);

    // A small input stays in its row as it was.
    f.store
        .submit_task(task("t-2", json!({"n": 1})), 3)
        .await
        .unwrap();
    let row = f.raw.get_task("t-2").await.unwrap().unwrap();
    assert_eq!(row.input, json!({"n": 1}));
}

/// A client that sends a reference of its own (naming another task's object, here)
/// gets back exactly what it sent: it is never read as a reference.
#[tokio::test]
async fn a_client_value_shaped_like_a_reference_is_kept_as_it_was_sent() {
    let f = fixture("forged").await;
    f.store
        .submit_task(task("t-1", json!({"secret": "s".repeat(4000)})), 2)
        .await
        .unwrap();
    let forged = f.raw.get_task("t-1").await.unwrap().unwrap().input;
    f.store
        .submit_task(task("t-2", forged.clone()), 3)
        .await
        .unwrap();
    let read = f.store.get_task("t-2").await.unwrap().unwrap();
    assert_eq!(read.input, forged);
}

#[tokio::test]
async fn a_value_past_max_output_is_refused_by_field_and_nothing_is_stored() {
    let f = fixture("too-large").await;
    let err = f
        .store
        .submit_task(task("t-1", json!("y".repeat(70 * 1024))), 2)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::InvalidInput {
                field: "task.input",
                ..
            }
        ),
        "{err}"
    );
    assert!(f.raw.get_task("t-1").await.unwrap().is_none());
    assert!(objects_of(&f, "t-1").is_empty());
}

#[tokio::test]
async fn a_missing_or_changed_object_is_named_and_a_task_claimed_with_it_fails_with_the_reason() {
    let f = fixture("missing").await;
    for id in ["t-1", "t-2"] {
        let input = json!({"text": format!("{id}{}", "z".repeat(4000))});
        f.store.submit_task(task(id, input), 2).await.unwrap();
    }
    let [gone] = objects_of(&f, "t-1").try_into().unwrap();
    std::fs::remove_file(gone).unwrap();
    let [changed] = objects_of(&f, "t-2").try_into().unwrap();
    let mut bytes = std::fs::read(&changed).unwrap();
    bytes[100] = b'!';
    std::fs::write(&changed, bytes).unwrap();

    let err = f.store.get_task("t-1").await.unwrap_err();
    let StoreError::ArtifactUnreadable {
        task_id,
        field,
        fault,
        ..
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!((task_id.as_str(), field.as_str()), ("t-1", "input"));
    assert_eq!(fault, &ArtifactFault::Missing);
    let err = f.store.get_task("t-2").await.unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::ArtifactUnreadable {
                fault: ArtifactFault::Corrupt { .. },
                ..
            }
        ),
        "{err}"
    );

    let claims = f
        .store
        .claim_tasks("n", Duration::from_secs(10), 10, 5)
        .await
        .unwrap();
    assert!(claims.is_empty(), "{claims:?}");
    for id in ["t-1", "t-2"] {
        let row = f.raw.get_task(id).await.unwrap().unwrap();
        assert_eq!(row.status, TaskStatus::Failed);
        let error = row.last_error.unwrap();
        assert!(error.contains(id) && error.contains("input"), "{error}");
    }
}
