//! Cases on task claims and leases: takeover after expiry, fencing, many claimers.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use holdfast_store::{Advance, StepStatus, Store, StoreError, TaskStatus};

use super::tasks::{LEASE, T0, event, new_task, running, step, workflow};

pub(crate) async fn a_restarted_node_releases_its_predecessors_leases_at_once(s: Arc<dyn Store>) {
    let mine = running(&s, "t1").await;
    s.submit_task(new_task("t2", None), T0).await.unwrap();
    let theirs = s.claim_tasks("node-b", LEASE, 10, T0).await.unwrap();
    assert_eq!(theirs.len(), 1);
    // node-a was killed and restarts under the same id, long before its lease expires.
    assert_eq!(s.release_node_tasks("node-a", T0 + 10).await.unwrap(), 1);
    assert_eq!(s.release_node_tasks("node-a", T0 + 10).await.unwrap(), 0);
    let again = s.claim_tasks("node-a", LEASE, 10, T0 + 10).await.unwrap();
    assert_eq!(again.len(), 1, "only node-a's task is free");
    assert_eq!(again[0].task.task_id, "t1");
    assert!(again[0].token > mine.token);
    // The killed incarnation's token is stale.
    let late = Advance::new("t1", mine.token, TaskStatus::Running);
    let err = s.advance(late, T0 + 11).await.unwrap_err();
    assert!(matches!(err, StoreError::StaleLease { .. }), "{err}");
    let err = s.release_node_tasks("node a", T0).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput { .. }), "{err}");
}

pub(crate) async fn expired_lease_is_taken_over_and_the_old_token_is_stale(s: Arc<dyn Store>) {
    let a = running(&s, "t1").await;
    assert_eq!(a.taken_over_from, None);
    // Before expiry, nobody else gets it.
    assert!(
        s.claim_tasks("node-b", LEASE, 10, T0 + 29_999)
            .await
            .unwrap()
            .is_empty()
    );
    // node-a dies; its lease expires; node-b takes the task over with a larger token.
    let b = s
        .claim_tasks("node-b", LEASE, 10, T0 + 30_000)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert!(b.token > a.token, "{} > {}", b.token, a.token);
    assert_eq!(b.taken_over_from.as_deref(), Some("node-a"));
    assert_eq!(
        b.task.lease.as_ref().map(|l| l.owner.as_str()),
        Some("node-b")
    );
    // node-a comes back and tries to commit: refused, nothing written.
    let late = Advance {
        step: Some(step("a", StepStatus::Succeeded)),
        events: vec![event("step_succeeded")],
        ..Advance::new("t1", a.token, TaskStatus::Running)
    };
    let err = s.advance(late.clone(), T0 + 30_001).await.unwrap_err();
    assert!(
        matches!(err, StoreError::StaleLease { kind: "task", token, .. } if token == a.token.0),
        "{err}"
    );
    let err = s
        .heartbeat_task("t1", a.token, LEASE, T0 + 30_001)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::StaleLease { .. }), "{err}");
    assert!(s.list_steps("t1").await.unwrap().is_empty());
    // node-b's token works.
    s.advance(
        Advance {
            token: b.token,
            ..late
        },
        T0 + 30_002,
    )
    .await
    .unwrap();
    assert_eq!(
        s.get_task("t1").await.unwrap().unwrap().completed_steps,
        ["a"]
    );
    // A lease that lapsed without a takeover cannot write either.
    let err = s
        .advance(
            Advance::new("t1", b.token, TaskStatus::Running),
            T0 + 60_000,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::StaleLease { .. }), "{err}");
    let err = s
        .advance(Advance::new("ghost", b.token, TaskStatus::Running), T0)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

pub(crate) async fn heartbeat_keeps_a_lease_and_release_frees_it(s: Arc<dyn Store>) {
    let a = running(&s, "t1").await;
    let expires = s
        .heartbeat_task("t1", a.token, LEASE, T0 + 20_000)
        .await
        .unwrap();
    assert_eq!(expires, T0 + 50_000);
    assert!(
        s.claim_tasks("node-b", LEASE, 10, T0 + 40_000)
            .await
            .unwrap()
            .is_empty()
    );
    s.release_task("t1", a.token, T0 + 41_000).await.unwrap();
    let task = s.get_task("t1").await.unwrap().unwrap();
    assert_eq!((task.status, task.lease), (TaskStatus::Queued, None));
    let b = s
        .claim_tasks("node-b", LEASE, 10, T0 + 41_000)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert!(b.token > a.token);
    assert_eq!(b.taken_over_from, None);
    let err = s
        .release_task("t1", a.token, T0 + 41_001)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::StaleLease { .. }), "{err}");
    let zero = s
        .heartbeat_task("t1", b.token, Duration::ZERO, T0 + 41_001)
        .await
        .unwrap_err();
    assert!(
        matches!(zero, StoreError::InvalidInput { field: "lease", .. }),
        "{zero}"
    );
}

pub(crate) async fn concurrent_claimers_never_share_a_task(s: Arc<dyn Store>) {
    workflow(&s).await;
    const TASKS: usize = 200;
    for i in 0..TASKS {
        s.submit_task(new_task(&format!("t{i:03}"), None), T0)
            .await
            .unwrap();
    }
    let mut handles = Vec::new();
    for node in 0..16 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let claims = s
                    .claim_tasks(&format!("node-{node}"), LEASE, 3, T0 + 1)
                    .await
                    .unwrap();
                if claims.is_empty() {
                    return mine;
                }
                mine.extend(claims.into_iter().map(|c| c.task.task_id));
            }
        }));
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for h in handles {
        for id in h.await.unwrap() {
            total += 1;
            assert!(seen.insert(id.clone()), "{id} claimed twice");
        }
    }
    assert_eq!((total, seen.len()), (TASKS, TASKS));
}

pub(crate) async fn failed_writes_in_a_batch_do_not_disturb_the_others(s: Arc<dyn Store>) {
    workflow(&s).await;
    for i in 0..32 {
        s.submit_task(new_task(&format!("t{i:02}"), None), T0)
            .await
            .unwrap();
    }
    let claims = s.claim_tasks("node-a", LEASE, 32, T0).await.unwrap();
    let mut handles = Vec::new();
    for (i, claim) in claims.into_iter().enumerate() {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            // Every other writer presents a stale token.
            let token = if i % 2 == 0 {
                claim.token
            } else {
                holdfast_store::FencingToken(claim.token.0 + 7)
            };
            let a = Advance {
                step: Some(step("a", StepStatus::Succeeded)),
                events: vec![event("step_succeeded")],
                ..Advance::new(&claim.task.task_id, token, TaskStatus::Running)
            };
            (claim.task.task_id, i % 2 == 0, s.advance(a, T0 + 1).await)
        }));
    }
    for h in handles {
        let (id, good, result) = h.await.unwrap();
        assert_eq!(result.is_ok(), good, "{id}: {result:?}");
        let steps = s.list_steps(&id).await.unwrap();
        assert_eq!(steps.len(), usize::from(good), "{id}");
        assert_eq!(
            s.journal(&id, 0, 10).await.unwrap().len(),
            1 + usize::from(good)
        );
    }
}
