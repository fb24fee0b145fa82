//! Cases on worker jobs, named locks, escalations and config history.

use std::sync::Arc;
use std::time::Duration;

use holdfast_store::{
    Advance, ConfigGate, EscalationFilter, EscalationStatus, Fence, FencingToken, JobResult,
    JobStatus, LockAcquire, NewEscalation, NewJob, Resolution, StepStatus, Store, StoreError,
    TaskStatus,
};
use serde_json::json;

use super::tasks::{T0, running, step};

const JOB_LEASE: Duration = Duration::from_secs(10);

pub(crate) async fn worker_job_tokens_fence_stale_workers(s: Arc<dyn Store>) {
    let claim = running(&s, "t1").await;
    let job = NewJob {
        job_id: "t1/a".into(),
        queue: "resize".into(),
        step: "a".into(),
        payload: json!({"w": 1}),
    };
    let wait = Advance {
        jobs: vec![job],
        ..Advance::new("t1", claim.token, TaskStatus::Waiting)
    };
    s.advance(wait, T0 + 1).await.unwrap();
    assert!(
        s.claim_jobs("other-queue", None, "w1", JOB_LEASE, 10, T0 + 2)
            .await
            .unwrap()
            .is_empty()
    );
    let w1 = s
        .claim_jobs("resize", None, "w1", JOB_LEASE, 10, T0 + 2)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(
        (w1.status, w1.token, w1.payload.clone()),
        (JobStatus::Claimed, FencingToken(1), json!({"w": 1}))
    );
    assert!(
        s.claim_jobs("resize", None, "w2", JOB_LEASE, 10, T0 + 3)
            .await
            .unwrap()
            .is_empty()
    );
    s.heartbeat_job("t1/a", w1.token, JOB_LEASE, T0 + 5_000)
        .await
        .unwrap();
    // w1 stalls past its lease; w2 takes the job with a larger token.
    let w2 = s
        .claim_jobs("resize", None, "w2", JOB_LEASE, 10, T0 + 15_000)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert!(w2.token > w1.token);
    let err = s
        .complete_job(
            "t1/a",
            w1.token,
            JobResult::Succeeded(json!("stale")),
            T0 + 15_001,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::StaleLease { kind: "job", .. }),
        "{err}"
    );
    let err = s
        .heartbeat_job("t1/a", w1.token, JOB_LEASE, T0 + 15_001)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::StaleLease { kind: "job", .. }),
        "{err}"
    );
    assert_eq!(
        s.get_task("t1").await.unwrap().unwrap().status,
        TaskStatus::Waiting
    );
    s.complete_job(
        "t1/a",
        w2.token,
        JobResult::Succeeded(json!({"ok": true})),
        T0 + 15_002,
    )
    .await
    .unwrap();
    let job = s.get_job("t1/a").await.unwrap().unwrap();
    assert_eq!(
        (job.status, job.result),
        (JobStatus::Succeeded, Some(json!({"ok": true})))
    );
    let task = s.get_task("t1").await.unwrap().unwrap();
    assert_eq!(
        (task.status, task.next_run_at_ms),
        (TaskStatus::Queued, Some(T0 + 15_002))
    );
    let last = s.journal("t1", 0, 100).await.unwrap().pop().unwrap();
    assert_eq!(last.kind, "job_finished");
    let err = s
        .complete_job(
            "t1/a",
            w2.token,
            JobResult::Failed("again".into()),
            T0 + 15_003,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::StaleLease { .. }), "{err}");
    let err = s
        .complete_job("ghost", w2.token, JobResult::Failed("x".into()), T0)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

pub(crate) async fn lock_tokens_only_grow_and_fence_writes(s: Arc<dyn Store>) {
    let claim = running(&s, "t1").await;
    let lease = Duration::from_secs(5);
    let LockAcquire::Acquired(a) = s
        .acquire_lock("account:42", "node-a", lease, T0)
        .await
        .unwrap()
    else {
        panic!("free lock")
    };
    let busy = s
        .acquire_lock("account:42", "node-b", lease, T0 + 1)
        .await
        .unwrap();
    assert_eq!(
        busy,
        LockAcquire::Busy {
            holder: "node-a".into(),
            expires_at_ms: T0 + 5_000
        }
    );
    let LockAcquire::Acquired(b) = s
        .acquire_lock("account:42", "node-b", lease, T0 + 5_000)
        .await
        .unwrap()
    else {
        panic!("expired lock")
    };
    assert!(b.token > a.token);
    // A write fenced with the old holder's token is refused, and writes nothing.
    let fenced = |token| Advance {
        step: Some(step("a", StepStatus::Succeeded)),
        fence: Some(Fence {
            lock: "account:42".into(),
            token,
        }),
        ..Advance::new("t1", claim.token, TaskStatus::Running)
    };
    let err = s.advance(fenced(a.token), T0 + 5_001).await.unwrap_err();
    assert!(
        matches!(err, StoreError::StaleLease { kind: "lock", .. }),
        "{err}"
    );
    assert!(s.list_steps("t1").await.unwrap().is_empty());
    let err = s
        .renew_lock("account:42", a.token, lease, T0 + 5_001)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::StaleLease { kind: "lock", .. }),
        "{err}"
    );
    s.advance(fenced(b.token), T0 + 5_002).await.unwrap();
    assert_eq!(
        s.renew_lock("account:42", b.token, lease, T0 + 6_000)
            .await
            .unwrap(),
        T0 + 11_000
    );
    s.release_lock("account:42", b.token, T0 + 6_001)
        .await
        .unwrap();
    let LockAcquire::Acquired(c) = s
        .acquire_lock("account:42", "node-c", lease, T0 + 6_002)
        .await
        .unwrap()
    else {
        panic!("released lock")
    };
    assert!(c.token > b.token, "tokens survive release");
    let err = s
        .advance(fenced(FencingToken(1)), T0 + 6_003)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::StaleLease { .. }), "{err}");
    assert!(matches!(
        s.acquire_lock("bad name", "n", lease, T0).await,
        Err(StoreError::InvalidInput { .. })
    ));
}

pub(crate) async fn escalation_lifecycle(s: Arc<dyn Store>) {
    let claim = running(&s, "t1").await;
    let esc = NewEscalation {
        escalation_id: "esc-1".into(),
        step: "a".into(),
        reason: "step a exhausted its retries".into(),
        payload: json!({"draft": "hello"}),
    };
    let pause = Advance {
        escalation: Some(esc),
        ..Advance::new("t1", claim.token, TaskStatus::Waiting)
    };
    s.advance(pause, T0 + 1).await.unwrap();
    assert!(
        s.claim_tasks("node-b", super::tasks::LEASE, 10, T0 + 100_000)
            .await
            .unwrap()
            .is_empty()
    );
    let open = s
        .list_escalations(&EscalationFilter::default())
        .await
        .unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(
        (open[0].status, open[0].task_id.as_str()),
        (EscalationStatus::Open, "t1")
    );
    let edit = Resolution::Edit(json!({"draft": "hello, world"}));
    let resolved = s
        .resolve_escalation("esc-1", edit.clone(), "alice", T0 + 10)
        .await
        .unwrap();
    assert_eq!(
        (resolved.status, resolved.resolution),
        (EscalationStatus::Edited, Some(edit))
    );
    assert_eq!(
        (resolved.resolved_by.as_deref(), resolved.resolved_at_ms),
        (Some("alice"), Some(T0 + 10))
    );
    let err = s
        .resolve_escalation("esc-1", Resolution::Approve, "bob", T0 + 11)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                kind: "escalation",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        s.list_escalations(&EscalationFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    let all = EscalationFilter {
        open_only: false,
        task_id: Some("t1".into()),
        limit: 10,
        ..EscalationFilter::default()
    };
    assert_eq!(s.list_escalations(&all).await.unwrap().len(), 1);
    let task = s.get_task("t1").await.unwrap().unwrap();
    assert_eq!(task.status, TaskStatus::Queued);
    let last = s.journal("t1", 0, 100).await.unwrap().pop().unwrap();
    assert_eq!(last.kind, "escalation_resolved");
    let reject = Resolution::Reject("wrong customer".into());
    let claim = s
        .claim_tasks("node-b", super::tasks::LEASE, 1, T0 + 20)
        .await
        .unwrap()
        .pop()
        .unwrap();
    let esc2 = NewEscalation {
        escalation_id: "esc-2".into(),
        step: "b".into(),
        reason: "check".into(),
        payload: json!(null),
    };
    let pause = Advance {
        escalation: Some(esc2),
        ..Advance::new("t1", claim.token, TaskStatus::Waiting)
    };
    s.advance(pause, T0 + 21).await.unwrap();
    let rejected = s
        .resolve_escalation("esc-2", reject.clone(), "bob", T0 + 22)
        .await
        .unwrap();
    assert_eq!(rejected.resolution, Some(reject));
    let err = s
        .resolve_escalation("ghost", Resolution::Approve, "bob", T0)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

pub(crate) async fn config_history(s: Arc<dyn Store>) {
    let v1 = s.record_config("[store]\nurl = \"a\"\n", T0).await.unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(v1.sha256.len(), 64);
    let same = s
        .record_config("[store]\nurl = \"a\"\n", T0 + 1)
        .await
        .unwrap();
    assert_eq!(same, v1);
    let v2 = s
        .record_config("[store]\nurl = \"b\"\n", T0 + 2)
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    // Rolling back to v1's text records it again, as the newest version.
    let v3 = s
        .record_config("[store]\nurl = \"a\"\n", T0 + 3)
        .await
        .unwrap();
    assert_eq!((v3.version, v3.sha256.as_str()), (3, v1.sha256.as_str()));
    let listed: Vec<u64> = s
        .list_configs(10)
        .await
        .unwrap()
        .iter()
        .map(|c| c.version)
        .collect();
    assert_eq!(listed, [3, 2, 1]);
    let got = s.get_config(2).await.unwrap().unwrap();
    assert_eq!(
        (got.version, got.text.as_str()),
        (v2, "[store]\nurl = \"b\"\n")
    );
    assert!(s.get_config(9).await.unwrap().is_none());
    let empty = s.record_config("", T0 + 4).await.unwrap();
    assert_eq!(
        empty.sha256,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

pub(crate) async fn config_gates_are_kept_per_version(s: Arc<dyn Store>) {
    let v1 = s.record_config("a = 1\n", T0).await.unwrap().version;
    let v2 = s.record_config("a = 2\n", T0 + 1).await.unwrap().version;
    let gate = |version, passed, action: &str| ConfigGate {
        version,
        passed,
        action: action.to_owned(),
        report: json!({"suites": [{"suite": "support", "passed": passed}]}),
        decided_at_ms: T0 + 5,
    };
    s.record_config_gate(&gate(v2, false, "refused"))
        .await
        .unwrap();
    s.record_config_gate(&gate(v1, true, "applied"))
        .await
        .unwrap();
    // Gated again: the later verdict replaces the earlier.
    s.record_config_gate(&gate(v2, true, "applied"))
        .await
        .unwrap();
    let all = s.config_gates(1, 10).await.unwrap();
    assert_eq!(all, [gate(v1, true, "applied"), gate(v2, true, "applied")]);
    assert_eq!(
        s.config_gates(2, 2).await.unwrap(),
        [gate(v2, true, "applied")]
    );
    let err = s
        .record_config_gate(&gate(99, false, "refused"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    assert!(s.config_gates(3, 10).await.unwrap().is_empty());
}
