//! Cases on steps: a committed step stays committed, the retry queue's order, and the
//! journal's numbering.

use std::sync::Arc;

use holdfast_store::{Advance, StepStatus, StepUpdate, Store, StoreError, TaskStatus};
use serde_json::json;

use super::tasks::{LEASE, T0, event, new_task, running, step, workflow};

pub(crate) async fn committed_step_is_never_committed_again(s: Arc<dyn Store>) {
    let claim = running(&s, "t1").await;
    let commit = || Advance {
        step: Some(step("a", StepStatus::Succeeded)),
        events: vec![event("step_succeeded")],
        ..Advance::new("t1", claim.token, TaskStatus::Running)
    };
    s.advance(commit(), T0 + 1).await.unwrap();
    let before = s.get_task("t1").await.unwrap().unwrap();
    let err = s.advance(commit(), T0 + 2).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { kind: "step", .. }),
        "{err}"
    );
    assert_eq!(s.get_task("t1").await.unwrap().unwrap(), before);
    assert_eq!(s.journal("t1", 0, 100).await.unwrap().len(), 2);
    let compensate = Advance {
        step: Some(StepUpdate {
            output: None,
            ..step("a", StepStatus::Compensated)
        }),
        ..Advance::new("t1", claim.token, TaskStatus::Running)
    };
    s.advance(compensate, T0 + 3).await.unwrap();
    let steps = s.list_steps("t1").await.unwrap();
    assert_eq!(steps[0].status, StepStatus::Compensated);
}

pub(crate) async fn retry_queue_orders_by_next_attempt(s: Arc<dyn Store>) {
    workflow(&s).await;
    for (id, delay) in [("late", 900), ("soon", 100), ("middle", 500)] {
        s.submit_task(new_task(id, None), T0).await.unwrap();
        let claim = s
            .claim_tasks("node-a", LEASE, 1, T0)
            .await
            .unwrap()
            .pop()
            .unwrap();
        let retry = StepUpdate {
            next_attempt_at_ms: Some(T0 + delay),
            ..step("a", StepStatus::Retrying)
        };
        let a = Advance {
            step: Some(retry),
            next_run_at_ms: Some(T0 + delay),
            events: vec![event("step_retry_scheduled")],
            ..Advance::new(&claim.task.task_id, claim.token, TaskStatus::Queued)
        };
        s.advance(a, T0 + 1).await.unwrap();
    }
    let queue = s.retry_queue(None, 10).await.unwrap();
    let order: Vec<(&str, Option<u64>)> = queue
        .iter()
        .map(|st| (st.task_id.as_str(), st.next_attempt_at_ms))
        .collect();
    assert_eq!(
        order,
        [
            ("soon", Some(T0 + 100)),
            ("middle", Some(T0 + 500)),
            ("late", Some(T0 + 900))
        ]
    );
    let task = s.get_task("soon").await.unwrap().unwrap();
    assert_eq!(
        (task.status, task.retry_count, task.next_run_at_ms),
        (TaskStatus::Queued, 1, Some(T0 + 100))
    );
    assert_eq!(task.last_error.as_deref(), Some("timeout"));
    assert!(
        s.claim_tasks("node-b", LEASE, 10, T0 + 99)
            .await
            .unwrap()
            .is_empty()
    );
    let due = s.claim_tasks("node-b", LEASE, 10, T0 + 500).await.unwrap();
    let mut ids: Vec<_> = due.iter().map(|c| c.task.task_id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["middle", "soon"]);
}

pub(crate) async fn journal_is_ordered_and_pages(s: Arc<dyn Store>) {
    let claim = running(&s, "t1").await;
    s.append_events("t1", vec![event("e2"), event("e3")], T0 + 1)
        .await
        .unwrap();
    let a = Advance {
        events: vec![event("e4"), event("e5")],
        ..Advance::new("t1", claim.token, TaskStatus::Running)
    };
    s.advance(a, T0 + 2).await.unwrap();
    s.append_events("t1", vec![event("e6")], T0 + 3)
        .await
        .unwrap();
    let all = s.journal("t1", 0, 100).await.unwrap();
    let seqs: Vec<u64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
    assert_eq!(all[1].kind, "e2");
    assert_eq!(all[1].data, json!({"k": "e2"}));
    assert_eq!(all[5].at_ms, T0 + 3);
    let page: Vec<u64> = s
        .journal("t1", 3, 2)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(page, [4, 5]);
    let err = s
        .append_events("ghost", vec![event("x")], T0)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}
