//! Cases on workflows, tasks, steps, the retry queue and the journal.

use std::sync::Arc;
use std::time::Duration;

use holdfast_store::{
    Advance, Cancelled, NewEscalation, NewEvent, NewTask, NewWorkflow, StepStatus, StepUpdate,
    Store, StoreError, Submitted, TaskClaim, TaskFilter, TaskStatus,
};
use serde_json::json;

pub(crate) const T0: u64 = 1_700_000_000_000;
pub(crate) const LEASE: Duration = Duration::from_secs(30);

pub(crate) async fn workflow(s: &Arc<dyn Store>) {
    let w = NewWorkflow {
        name: "wf".into(),
        version: 1,
        definition: json!({"steps": ["a", "b"]}),
    };
    s.put_workflow(w, T0).await.unwrap();
}

pub(crate) fn new_task(id: &str, key: Option<&str>) -> NewTask {
    NewTask {
        task_id: id.into(),
        tenant: "acme".into(),
        workflow: "wf".into(),
        workflow_version: 1,
        input: json!({"id": id}),
        idempotency_key: key.map(String::from),
        pending_steps: vec!["a".into(), "b".into()],
        run_at_ms: T0,
        traceparent: None,
    }
}

/// A registered workflow and one task claimed by `node-a`.
pub(crate) async fn running(s: &Arc<dyn Store>, id: &str) -> TaskClaim {
    workflow(s).await;
    s.submit_task(new_task(id, None), T0).await.unwrap();
    let mut claims = s.claim_tasks("node-a", LEASE, 1, T0).await.unwrap();
    assert_eq!(claims.len(), 1);
    claims.pop().unwrap()
}

pub(crate) fn step(name: &str, status: StepStatus) -> StepUpdate {
    StepUpdate {
        name: name.into(),
        status,
        attempt: 1,
        output: (status == StepStatus::Succeeded).then(|| json!({"from": name})),
        error: (status == StepStatus::Retrying).then(|| "timeout".to_string()),
        next_attempt_at_ms: None,
        cost_usd: 0.25,
    }
}

pub(crate) fn event(kind: &str) -> NewEvent {
    NewEvent {
        kind: kind.into(),
        data: json!({"k": kind}),
    }
}

pub(crate) async fn workflow_versions_are_immutable(s: Arc<dyn Store>) {
    workflow(&s).await;
    workflow(&s).await; // the same definition again: a no-op
    let changed = NewWorkflow {
        name: "wf".into(),
        version: 1,
        definition: json!({"steps": ["other"]}),
    };
    let err = s.put_workflow(changed.clone(), T0).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                kind: "workflow",
                ..
            }
        ),
        "{err}"
    );
    s.put_workflow(
        NewWorkflow {
            version: 2,
            ..changed
        },
        T0 + 1,
    )
    .await
    .unwrap();
    let latest = s.get_workflow("wf", None).await.unwrap().unwrap();
    assert_eq!(latest.version, 2);
    let v1 = s.get_workflow("wf", Some(1)).await.unwrap().unwrap();
    assert_eq!(v1.definition, json!({"steps": ["a", "b"]}));
    assert_eq!(s.list_workflows().await.unwrap().len(), 2);
    assert!(s.get_workflow("nope", None).await.unwrap().is_none());
}

pub(crate) async fn submit_with_the_same_key_returns_the_same_task(s: Arc<dyn Store>) {
    workflow(&s).await;
    let first = s
        .submit_task(new_task("t1", Some("key-1")), T0)
        .await
        .unwrap();
    let Submitted::Created(task) = first else {
        panic!("expected a new task")
    };
    assert_eq!(task.status, TaskStatus::Queued);
    assert_eq!(task.pending_steps, vec!["a", "b"]);
    assert_eq!(
        (task.retry_count, task.cost_usd, task.last_error.clone()),
        (0, 0.0, None)
    );
    let again = s
        .submit_task(new_task("t2", Some("key-1")), T0 + 5)
        .await
        .unwrap();
    assert_eq!(again, Submitted::Existing(task.clone()));
    assert!(s.get_task("t2").await.unwrap().is_none());
    let err = s
        .submit_task(new_task("t1", Some("key-2")), T0)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { kind: "task", .. }),
        "{err}"
    );
    assert_eq!(s.journal("t1", 0, 100).await.unwrap().len(), 1);
}

pub(crate) async fn concurrent_duplicate_submits_create_one_task(s: Arc<dyn Store>) {
    workflow(&s).await;
    let mut handles = Vec::new();
    for i in 0..16 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            s.submit_task(new_task(&format!("dup-{i}"), Some("same-key")), T0)
                .await
                .unwrap()
        }));
    }
    let mut created = 0;
    let mut ids = std::collections::HashSet::new();
    for h in handles {
        let submitted = h.await.unwrap();
        created += usize::from(matches!(submitted, Submitted::Created(_)));
        ids.insert(submitted.task().task_id.clone());
    }
    assert_eq!((created, ids.len()), (1, 1));
    let page = s.list_tasks(&TaskFilter::default()).await.unwrap();
    assert_eq!(page.tasks.len(), 1);
}

pub(crate) async fn advance_commits_step_task_and_journal_together(s: Arc<dyn Store>) {
    let claim = running(&s, "t1").await;
    let a = Advance {
        step: Some(step("a", StepStatus::Succeeded)),
        pending_steps: Some(vec!["b".into()]),
        events: vec![event("step_succeeded")],
        ..Advance::new("t1", claim.token, TaskStatus::Running)
    };
    s.advance(a, T0 + 10).await.unwrap();
    let task = s.get_task("t1").await.unwrap().unwrap();
    assert_eq!(task.status, TaskStatus::Running);
    assert_eq!(task.completed_steps, vec!["a"]);
    assert_eq!(task.pending_steps, vec!["b"]);
    assert_eq!(
        task.last_checkpoint
            .as_ref()
            .map(|c| (c.step.as_str(), c.at_ms)),
        Some(("a", T0 + 10))
    );
    assert_eq!(task.cost_usd, 0.25);
    assert_eq!(task.lease.as_ref().map(|l| l.token), Some(claim.token));
    let steps = s.list_steps("t1").await.unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].output, Some(json!({"from": "a"})));
    let done = Advance {
        step: Some(step("b", StepStatus::Succeeded)),
        pending_steps: Some(vec![]),
        output: Some(json!({"answer": 42})),
        events: vec![event("step_succeeded"), event("task_succeeded")],
        ..Advance::new("t1", claim.token, TaskStatus::Succeeded)
    };
    s.advance(done, T0 + 20).await.unwrap();
    let task = s.get_task("t1").await.unwrap().unwrap();
    assert_eq!(task.status, TaskStatus::Succeeded);
    assert_eq!(task.completed_steps, vec!["a", "b"]);
    assert_eq!(task.output, Some(json!({"answer": 42})));
    assert_eq!((task.lease, task.cost_usd), (None, 0.5));
    let kinds: Vec<String> = s
        .journal("t1", 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "submitted",
            "step_succeeded",
            "step_succeeded",
            "task_succeeded"
        ]
    );
}

pub(crate) async fn failure_mid_advance_leaves_nothing_partial(s: Arc<dyn Store>) {
    let claim = running(&s, "t1").await;
    let escalation = NewEscalation {
        escalation_id: "esc-1".into(),
        step: "a".into(),
        reason: "needs a look".into(),
        payload: json!({}),
    };
    let first = Advance {
        escalation: Some(escalation.clone()),
        ..Advance::new("t1", claim.token, TaskStatus::Running)
    };
    s.advance(first, T0 + 1).await.unwrap();
    let before = s.get_task("t1").await.unwrap().unwrap();
    let journal_before = s.journal("t1", 0, 100).await.unwrap();
    // The task update, the step upsert and the events run before the escalation insert,
    // which then fails on its duplicate id: the database aborts mid-transaction.
    let doomed = Advance {
        step: Some(step("a", StepStatus::Succeeded)),
        pending_steps: Some(vec!["b".into()]),
        events: vec![event("step_succeeded")],
        escalation: Some(escalation),
        ..Advance::new("t1", claim.token, TaskStatus::Waiting)
    };
    assert!(s.advance(doomed, T0 + 2).await.is_err());
    assert_eq!(s.get_task("t1").await.unwrap().unwrap(), before);
    assert!(s.list_steps("t1").await.unwrap().is_empty());
    assert_eq!(s.journal("t1", 0, 100).await.unwrap(), journal_before);
}

pub(crate) async fn list_tasks_filters_and_pages(s: Arc<dyn Store>) {
    workflow(&s).await;
    for i in 0..5 {
        s.submit_task(new_task(&format!("t{i}"), None), T0 + i)
            .await
            .unwrap();
    }
    s.claim_tasks("node-a", LEASE, 2, T0 + 10).await.unwrap();
    let first = s
        .list_tasks(&TaskFilter {
            limit: 2,
            ..TaskFilter::default()
        })
        .await
        .unwrap();
    let ids: Vec<_> = first.tasks.iter().map(|t| t.task_id.as_str()).collect();
    assert_eq!(ids, ["t4", "t3"]);
    let rest = TaskFilter {
        limit: 10,
        cursor: first.next_cursor,
        ..TaskFilter::default()
    };
    let rest = s.list_tasks(&rest).await.unwrap();
    let ids: Vec<_> = rest.tasks.iter().map(|t| t.task_id.as_str()).collect();
    assert_eq!((ids, rest.next_cursor), (vec!["t2", "t1", "t0"], None));
    let running = TaskFilter {
        status: Some(TaskStatus::Running),
        ..TaskFilter::default()
    };
    assert_eq!(s.list_tasks(&running).await.unwrap().tasks.len(), 2);
    let other = TaskFilter {
        workflow: Some("other".into()),
        ..TaskFilter::default()
    };
    assert!(s.list_tasks(&other).await.unwrap().tasks.is_empty());
}

pub(crate) async fn cancel_fences_the_running_node(s: Arc<dyn Store>) {
    let claim = running(&s, "t1").await;
    let Cancelled::Cancelled(task) = s.cancel_task("t1", "user asked", T0 + 5).await.unwrap()
    else {
        panic!("expected a cancellation")
    };
    assert_eq!((task.status, task.lease), (TaskStatus::Cancelled, None));
    let late = Advance {
        step: Some(step("a", StepStatus::Succeeded)),
        ..Advance::new("t1", claim.token, TaskStatus::Running)
    };
    let err = s.advance(late, T0 + 6).await.unwrap_err();
    assert!(
        matches!(err, StoreError::StaleLease { kind: "task", .. }),
        "{err}"
    );
    assert!(s.list_steps("t1").await.unwrap().is_empty());
    assert!(matches!(
        s.cancel_task("t1", "again", T0 + 7).await.unwrap(),
        Cancelled::AlreadyFinished(_)
    ));
    assert!(
        s.claim_tasks("node-b", LEASE, 10, T0 + 100_000)
            .await
            .unwrap()
            .is_empty()
    );
    let last = s.journal("t1", 0, 100).await.unwrap().pop().unwrap();
    assert_eq!(
        (last.kind.as_str(), last.data),
        ("cancelled", json!({"reason": "user asked"}))
    );
    let err = s.cancel_task("ghost", "x", T0).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

pub(crate) async fn bad_input_is_refused_with_nothing_stored(s: Arc<dyn Store>) {
    workflow(&s).await;
    let huge = json!({"blob": "x".repeat(crate::harness::MAX_DOC)});
    let err = s
        .submit_task(
            NewTask {
                input: huge.clone(),
                ..new_task("t1", None)
            },
            T0,
        )
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
    for bad_id in ["", "has space", "semi;colon", &"x".repeat(201)] {
        let err = s.submit_task(new_task(bad_id, None), T0).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::InvalidInput {
                    field: "task.task_id",
                    ..
                }
            ),
            "{err}"
        );
    }
    let err = s
        .submit_task(
            NewTask {
                workflow: "ghost".into(),
                ..new_task("t1", None)
            },
            T0,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotFound {
                kind: "workflow",
                ..
            }
        ),
        "{err}"
    );
    let bad_wf = NewWorkflow {
        name: "bad name".into(),
        version: 1,
        definition: json!({}),
    };
    assert!(matches!(
        s.put_workflow(bad_wf, T0).await,
        Err(StoreError::InvalidInput { .. })
    ));
    assert!(
        s.list_tasks(&TaskFilter::default())
            .await
            .unwrap()
            .tasks
            .is_empty()
    );
    // An oversized output on a real advance: refused, the task unchanged.
    s.submit_task(new_task("t1", None), T0).await.unwrap();
    let claim = s
        .claim_tasks("node-a", LEASE, 1, T0)
        .await
        .unwrap()
        .pop()
        .unwrap();
    let before = s.get_task("t1").await.unwrap().unwrap();
    let a = Advance {
        output: Some(huge),
        ..Advance::new("t1", claim.token, TaskStatus::Succeeded)
    };
    let err = s.advance(a, T0 + 1).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::InvalidInput {
                field: "advance.output",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(s.get_task("t1").await.unwrap().unwrap(), before);
    let bad_retry = Advance {
        step: Some(step("a", StepStatus::Retrying)),
        ..Advance::new("t1", claim.token, TaskStatus::Queued)
    };
    assert!(matches!(
        s.advance(bad_retry, T0 + 1).await,
        Err(StoreError::InvalidInput { .. })
    ));
    assert!(matches!(
        s.claim_tasks("bad node", LEASE, 1, T0).await,
        Err(StoreError::InvalidInput { .. })
    ));
    assert!(matches!(
        s.claim_tasks("n", LEASE, 0, T0).await,
        Err(StoreError::InvalidInput { .. })
    ));
    assert_eq!(s.get_task("t1").await.unwrap().unwrap(), before);
}

/// The submitter's `traceparent` comes back with the task from every read, the claim
/// included (a node resuming the task after a restart reads it there), whether the
/// submission went alone or in a batch; a control character in it is refused.
pub(crate) async fn a_tasks_traceparent_is_kept_for_whoever_runs_it(s: Arc<dyn Store>) {
    workflow(&s).await;
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let traced = NewTask {
        traceparent: Some(parent.to_owned()),
        ..new_task("traced", Some("tp-1"))
    };
    let created = s.submit_task(traced.clone(), T0).await.unwrap();
    assert_eq!(created.task().traceparent.as_deref(), Some(parent));
    // Submitted together, each keeps its own.
    let (a, b) = tokio::join!(
        s.submit_task(new_task("untraced", None), T0),
        s.submit_task(traced, T0)
    );
    assert_eq!(a.unwrap().task().traceparent, None);
    assert_eq!(b.unwrap().task().traceparent.as_deref(), Some(parent));
    let read = s.get_task("traced").await.unwrap().unwrap();
    assert_eq!(read.traceparent.as_deref(), Some(parent));
    let claims = s.claim_tasks("node-a", LEASE, 10, T0).await.unwrap();
    let claimed = claims.iter().find(|c| c.task.task_id == "traced").unwrap();
    assert_eq!(claimed.task.traceparent.as_deref(), Some(parent));
    let bad = NewTask {
        traceparent: Some("00-\n".to_owned()),
        ..new_task("bad-parent", None)
    };
    let refused = s.submit_task(bad, T0).await.unwrap_err();
    assert!(
        matches!(
            refused,
            StoreError::InvalidInput {
                field: "task.traceparent",
                ..
            }
        ),
        "{refused}"
    );
    assert!(s.get_task("bad-parent").await.unwrap().is_none());
}
