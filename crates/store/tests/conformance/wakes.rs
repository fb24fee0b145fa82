//! Cases on waiting: timers on waiting tasks, and wakes that must never be lost whether
//! a job finishes (or an escalation is resolved) before or after the task's advance to
//! `Waiting` commits.

use std::sync::Arc;
use std::time::Duration;

use holdfast_store::{
    Advance, JobResult, NewEscalation, NewJob, Resolution, StepStatus, StepUpdate, Store,
    TaskStatus,
};
use serde_json::json;

use super::tasks::{LEASE, T0, event, new_task, running, step, workflow};

const JOB_LEASE: Duration = Duration::from_secs(10);

fn waiting_step(name: &str) -> StepUpdate {
    StepUpdate {
        output: None,
        ..step(name, StepStatus::Waiting)
    }
}

fn job(task: &str, step: &str) -> NewJob {
    NewJob {
        job_id: format!("{task}/{step}"),
        queue: "q".into(),
        step: step.into(),
        payload: json!({}),
    }
}

fn escalation(id: &str, step: &str) -> NewEscalation {
    NewEscalation {
        escalation_id: id.into(),
        step: step.into(),
        reason: "approve?".into(),
        payload: json!({}),
    }
}

async fn status(s: &Arc<dyn Store>, id: &str) -> (TaskStatus, Option<u64>) {
    let task = s.get_task(id).await.unwrap().unwrap();
    (task.status, task.next_run_at_ms)
}

async fn claimed_ids(s: &Arc<dyn Store>, now: u64) -> Vec<String> {
    let mut ids: Vec<String> = s
        .claim_tasks("node-b", LEASE, 64, now)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.task.task_id)
        .collect();
    ids.sort();
    ids
}

/// Claims the job `task/step` as worker `w` and completes it.
async fn finish_job(s: &Arc<dyn Store>, task: &str, step: &str, now: u64) {
    let job_id = format!("{task}/{step}");
    let jobs = s
        .claim_jobs("q", None, "w", JOB_LEASE, 100, now)
        .await
        .unwrap();
    let job = jobs.iter().find(|j| j.job_id == job_id).unwrap();
    s.complete_job(&job_id, job.token, JobResult::Succeeded(json!(1)), now)
        .await
        .unwrap();
}

pub(crate) async fn waiting_task_with_a_timer_is_claimed_when_due(s: Arc<dyn Store>) {
    let sleeper = running(&s, "sleeper").await;
    s.submit_task(new_task("idle", None), T0).await.unwrap();
    let idle = s
        .claim_tasks("node-a", LEASE, 1, T0)
        .await
        .unwrap()
        .pop()
        .unwrap();
    let sleep = Advance {
        step: Some(StepUpdate {
            next_attempt_at_ms: Some(T0 + 1_000),
            ..waiting_step("a")
        }),
        next_run_at_ms: Some(T0 + 1_000),
        events: vec![event("sleeping")],
        ..Advance::new("sleeper", sleeper.token, TaskStatus::Waiting)
    };
    s.advance(sleep, T0 + 1).await.unwrap();
    let forever = Advance {
        step: Some(waiting_step("a")),
        ..Advance::new("idle", idle.token, TaskStatus::Waiting)
    };
    s.advance(forever, T0 + 1).await.unwrap();
    let task = s.get_task("sleeper").await.unwrap().unwrap();
    assert_eq!(
        (task.status, task.next_run_at_ms, task.lease),
        (TaskStatus::Waiting, Some(T0 + 1_000), None)
    );
    assert_eq!(status(&s, "idle").await, (TaskStatus::Waiting, None));
    // A waiting step's timer is not a retry.
    assert!(s.retry_queue(None, 10).await.unwrap().is_empty());
    let steps = s.list_steps("sleeper").await.unwrap();
    assert_eq!(steps[0].next_attempt_at_ms, Some(T0 + 1_000));
    assert!(claimed_ids(&s, T0 + 999).await.is_empty());
    let claim = s
        .claim_tasks("node-b", LEASE, 64, T0 + 1_000)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(claim.task.task_id, "sleeper");
    assert!(claim.token > sleeper.token);
    assert_eq!(claim.taken_over_from, None);
    assert_eq!(claim.task.status, TaskStatus::Running);
    // Without a timer, a waiting task is never claimed, however late it is (the
    // sleeper's new lease has long expired by then, so it is claimed again).
    assert_eq!(claimed_ids(&s, T0 + 100_000_000).await, ["sleeper"]);
    assert_eq!(status(&s, "idle").await, (TaskStatus::Waiting, None));
}

pub(crate) async fn job_finished_before_the_advance_to_waiting_queues_the_task(s: Arc<dyn Store>) {
    let claim = running(&s, "t1").await;
    // The engine hands step a to a worker and keeps running the task.
    let hand_off = Advance {
        step: Some(waiting_step("a")),
        jobs: vec![job("t1", "a")],
        ..Advance::new("t1", claim.token, TaskStatus::Running)
    };
    s.advance(hand_off, T0 + 1).await.unwrap();
    // The worker finishes while the task is still running: the wake changes nothing.
    finish_job(&s, "t1", "a", T0 + 2).await;
    assert_eq!(status(&s, "t1").await.0, TaskStatus::Running);
    // The engine, having read the job as pending, now parks the task with a timer.
    let park = Advance {
        next_run_at_ms: Some(T0 + 3_600_000),
        events: vec![event("waiting_for_job")],
        ..Advance::new("t1", claim.token, TaskStatus::Waiting)
    };
    s.advance(park, T0 + 3).await.unwrap();
    let task = s.get_task("t1").await.unwrap().unwrap();
    assert_eq!(
        (task.status, task.next_run_at_ms, task.lease),
        (TaskStatus::Queued, Some(T0 + 3), None)
    );
    let kinds: Vec<String> = s
        .journal("t1", 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["submitted", "job_finished", "waiting_for_job"]);
    let again = s
        .claim_tasks("node-b", LEASE, 64, T0 + 3)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(again.task.task_id, "t1");
    // Once the step has taken its result, the finished job no longer wakes the task.
    let done = Advance {
        step: Some(step("a", StepStatus::Succeeded)),
        escalation: Some(escalation("esc-b", "b")),
        ..Advance::new("t1", again.token, TaskStatus::Waiting)
    };
    s.advance(done, T0 + 4).await.unwrap();
    assert_eq!(status(&s, "t1").await, (TaskStatus::Waiting, None));
}

pub(crate) async fn job_finished_after_the_advance_to_waiting_wakes_the_task(s: Arc<dyn Store>) {
    let claim = running(&s, "t1").await;
    let park = Advance {
        step: Some(waiting_step("a")),
        jobs: vec![job("t1", "a")],
        // A timeout an hour away must not delay the wake.
        next_run_at_ms: Some(T0 + 3_600_000),
        ..Advance::new("t1", claim.token, TaskStatus::Waiting)
    };
    s.advance(park, T0 + 1).await.unwrap();
    assert_eq!(
        status(&s, "t1").await,
        (TaskStatus::Waiting, Some(T0 + 3_600_000))
    );
    finish_job(&s, "t1", "a", T0 + 5).await;
    assert_eq!(status(&s, "t1").await, (TaskStatus::Queued, Some(T0 + 5)));
    assert_eq!(claimed_ids(&s, T0 + 5).await, ["t1"]);
}

pub(crate) async fn escalation_resolved_before_the_advance_to_waiting_queues_the_task(
    s: Arc<dyn Store>,
) {
    let claim = running(&s, "t1").await;
    let ask = Advance {
        step: Some(waiting_step("a")),
        escalation: Some(escalation("esc-1", "a")),
        ..Advance::new("t1", claim.token, TaskStatus::Running)
    };
    s.advance(ask, T0 + 1).await.unwrap();
    s.resolve_escalation("esc-1", Resolution::Approve, "alice", T0 + 2)
        .await
        .unwrap();
    assert_eq!(status(&s, "t1").await.0, TaskStatus::Running);
    let park = Advance {
        next_run_at_ms: Some(T0 + 86_400_000),
        ..Advance::new("t1", claim.token, TaskStatus::Waiting)
    };
    s.advance(park, T0 + 3).await.unwrap();
    assert_eq!(status(&s, "t1").await, (TaskStatus::Queued, Some(T0 + 3)));
    assert_eq!(claimed_ids(&s, T0 + 3).await, ["t1"]);
}

pub(crate) async fn escalation_resolved_after_the_advance_to_waiting_wakes_the_task(
    s: Arc<dyn Store>,
) {
    let claim = running(&s, "t1").await;
    let park = Advance {
        step: Some(waiting_step("a")),
        escalation: Some(escalation("esc-1", "a")),
        next_run_at_ms: Some(T0 + 86_400_000),
        ..Advance::new("t1", claim.token, TaskStatus::Waiting)
    };
    s.advance(park, T0 + 1).await.unwrap();
    assert_eq!(
        status(&s, "t1").await,
        (TaskStatus::Waiting, Some(T0 + 86_400_000))
    );
    s.resolve_escalation("esc-1", Resolution::Reject("no".into()), "bob", T0 + 7)
        .await
        .unwrap();
    assert_eq!(status(&s, "t1").await, (TaskStatus::Queued, Some(T0 + 7)));
    assert_eq!(claimed_ids(&s, T0 + 7).await, ["t1"]);
}

pub(crate) async fn an_old_finished_job_does_not_wake_a_step_waiting_on_a_new_one(
    s: Arc<dyn Store>,
) {
    let claim = running(&s, "t1").await;
    let first = Advance {
        step: Some(waiting_step("a")),
        jobs: vec![job("t1", "a")],
        ..Advance::new("t1", claim.token, TaskStatus::Running)
    };
    s.advance(first, T0 + 1).await.unwrap();
    finish_job(&s, "t1", "a", T0 + 2).await;
    // The engine tries again with a second job for the same step and parks the task.
    let second = Advance {
        step: Some(StepUpdate {
            attempt: 2,
            ..waiting_step("a")
        }),
        jobs: vec![NewJob {
            job_id: "t1/a-2".into(),
            ..job("t1", "a")
        }],
        ..Advance::new("t1", claim.token, TaskStatus::Waiting)
    };
    s.advance(second, T0 + 3).await.unwrap();
    assert_eq!(status(&s, "t1").await, (TaskStatus::Waiting, None));
    finish_job(&s, "t1", "a-2", T0 + 4).await;
    assert_eq!(status(&s, "t1").await, (TaskStatus::Queued, Some(T0 + 4)));
}

pub(crate) async fn completion_racing_the_advance_to_waiting_never_loses_the_wake(
    s: Arc<dyn Store>,
) {
    workflow(&s).await;
    const TASKS: usize = 24;
    for i in 0..TASKS {
        s.submit_task(new_task(&format!("t{i:02}"), None), T0)
            .await
            .unwrap();
    }
    let claims = s.claim_tasks("node-a", LEASE, 64, T0).await.unwrap();
    assert_eq!(claims.len(), TASKS);
    for c in &claims {
        let hand_off = Advance {
            step: Some(waiting_step("a")),
            jobs: vec![job(&c.task.task_id, "a")],
            ..Advance::new(&c.task.task_id, c.token, TaskStatus::Running)
        };
        s.advance(hand_off, T0 + 1).await.unwrap();
    }
    let jobs = s
        .claim_jobs("q", None, "w", JOB_LEASE, 100, T0 + 2)
        .await
        .unwrap();
    assert_eq!(jobs.len(), TASKS);
    let mut handles = Vec::new();
    for (c, j) in claims.into_iter().zip(jobs) {
        let (s1, s2) = (s.clone(), s.clone());
        handles.push(tokio::spawn(async move {
            s1.complete_job(&j.job_id, j.token, JobResult::Succeeded(json!(1)), T0 + 3)
                .await
                .unwrap();
        }));
        handles.push(tokio::spawn(async move {
            let park = Advance::new(&c.task.task_id, c.token, TaskStatus::Waiting);
            s2.advance(park, T0 + 3).await.unwrap();
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let woken = claimed_ids(&s, T0 + 3).await;
    assert_eq!(
        woken.len(),
        TASKS,
        "every task must be claimable: {woken:?}"
    );
}
