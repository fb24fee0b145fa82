//! Cases on many advances at once: on PostgreSQL concurrent advances share a
//! transaction (`postgres/batch.rs`), as writes do on SQLite (`sqlite/writer.rs`), and
//! each must still be answered as if it had been committed alone.

use std::sync::Arc;

use holdfast_store::{
    Advance, FencingToken, NewJob, NewTask, StepStatus, Store, StoreError, Submitted, TaskClaim,
    TaskStatus,
};
use serde_json::json;

use super::tasks::{LEASE, T0, event, new_task, step, workflow};

/// Submits and claims `n` tasks `t00`, `t01`, …, in id order.
async fn claimed(s: &Arc<dyn Store>, n: usize) -> Vec<TaskClaim> {
    workflow(s).await;
    for i in 0..n {
        s.submit_task(new_task(&format!("t{i:02}"), None), T0)
            .await
            .unwrap();
    }
    let mut claims = s.claim_tasks("node-a", LEASE, n as u32, T0).await.unwrap();
    claims.sort_by(|a, b| a.task.task_id.cmp(&b.task.task_id));
    assert_eq!(claims.len(), n);
    claims
}

/// Runs every advance at once; the answers come back in the same order.
async fn all_at_once(s: &Arc<dyn Store>, advances: Vec<Advance>) -> Vec<Result<(), StoreError>> {
    let handles: Vec<_> = advances
        .into_iter()
        .map(|a| {
            let s = s.clone();
            tokio::spawn(async move { s.advance(a, T0 + 1).await })
        })
        .collect();
    let mut answers = Vec::new();
    for h in handles {
        answers.push(h.await.unwrap());
    }
    answers
}

pub(crate) async fn concurrent_advances_of_many_tasks_all_commit(s: Arc<dyn Store>) {
    let claims = claimed(&s, 48).await;
    let handles: Vec<_> = claims
        .into_iter()
        .map(|claim| {
            let s = s.clone();
            tokio::spawn(async move {
                let id = claim.task.task_id.clone();
                for n in 0..5 {
                    let last = n == 4;
                    let a = Advance {
                        step: Some(step(&format!("s{n}"), StepStatus::Succeeded)),
                        events: vec![event("step_succeeded"), event("note")],
                        output: last.then(|| json!({"zeta": "ünï", "alpha": [1, 2.5, null]})),
                        jobs: if last {
                            vec![NewJob {
                                job_id: format!("{id}-job"),
                                queue: "q".into(),
                                step: "s4".into(),
                                payload: json!({"b": 1, "a": "\"quoted\""}),
                            }]
                        } else {
                            vec![]
                        },
                        ..Advance::new(&id, claim.token, TaskStatus::Running)
                    };
                    s.advance(a, T0 + 1 + n).await.unwrap();
                }
                id
            })
        })
        .collect();
    for h in handles {
        let id = h.await.unwrap();
        let task = s.get_task(&id).await.unwrap().unwrap();
        let names: Vec<String> = (0..5).map(|n| format!("s{n}")).collect();
        assert_eq!(task.completed_steps, names, "{id}");
        assert_eq!(task.status, TaskStatus::Running);
        assert_eq!(
            task.output,
            Some(json!({"zeta": "ünï", "alpha": [1, 2.5, null]}))
        );
        assert_eq!(s.list_steps(&id).await.unwrap().len(), 5);
        let seqs: Vec<u64> = s
            .journal(&id, 0, 100)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, (1..=11).collect::<Vec<u64>>(), "{id}");
        let job = s.get_job(&format!("{id}-job")).await.unwrap().unwrap();
        assert_eq!(job.payload, json!({"b": 1, "a": "\"quoted\""}));
    }
}

pub(crate) async fn a_stale_advance_among_many_is_refused_alone(s: Arc<dyn Store>) {
    let claims = claimed(&s, 40).await;
    let stale = |i: usize| i % 5 == 3;
    let advances = claims
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let token = if stale(i) {
                FencingToken(c.token.0 + 1)
            } else {
                c.token
            };
            Advance {
                step: Some(step("a", StepStatus::Succeeded)),
                events: vec![event("step_succeeded")],
                ..Advance::new(&c.task.task_id, token, TaskStatus::Running)
            }
        })
        .collect();
    let answers = all_at_once(&s, advances).await;
    for (i, (claim, answer)) in claims.iter().zip(answers).enumerate() {
        let id = &claim.task.task_id;
        if stale(i) {
            match answer {
                Err(StoreError::StaleLease {
                    kind: "task",
                    id: got,
                    token,
                }) => assert_eq!((got.as_str(), token), (id.as_str(), claim.token.0 + 1)),
                other => panic!("{id}: {other:?}"),
            }
            assert_eq!(s.get_task(id).await.unwrap().unwrap(), claim.task);
        } else {
            answer.unwrap();
            assert_eq!(s.list_steps(id).await.unwrap().len(), 1);
        }
        let journal = s.journal(id, 0, 10).await.unwrap();
        assert_eq!(journal.len(), if stale(i) { 1 } else { 2 }, "{id}");
    }
}

pub(crate) async fn a_step_committed_twice_among_many_is_a_conflict_alone(s: Arc<dyn Store>) {
    let claims = claimed(&s, 40).await;
    for c in &claims {
        let a = Advance {
            step: Some(step("a", StepStatus::Succeeded)),
            events: vec![event("step_succeeded")],
            ..Advance::new(&c.task.task_id, c.token, TaskStatus::Running)
        };
        s.advance(a, T0 + 1).await.unwrap();
    }
    let mut before = Vec::new();
    for c in &claims {
        before.push(s.get_task(&c.task.task_id).await.unwrap().unwrap());
    }
    let again = |i: usize| i % 4 == 1;
    let advances = claims
        .iter()
        .enumerate()
        .map(|(i, c)| Advance {
            step: Some(step(
                if again(i) { "a" } else { "b" },
                StepStatus::Succeeded,
            )),
            events: vec![event("step_succeeded")],
            ..Advance::new(&c.task.task_id, c.token, TaskStatus::Running)
        })
        .collect();
    let answers = all_at_once(&s, advances).await;
    for (i, ((claim, answer), before)) in claims.iter().zip(answers).zip(before).enumerate() {
        let id = &claim.task.task_id;
        if again(i) {
            match answer {
                Err(StoreError::Conflict {
                    kind: "step",
                    id: got,
                    ..
                }) => assert_eq!(got, format!("{id}/a")),
                other => panic!("{id}: {other:?}"),
            }
            assert_eq!(s.get_task(id).await.unwrap().unwrap(), before);
            assert_eq!(s.journal(id, 0, 10).await.unwrap().len(), 2, "{id}");
        } else {
            answer.unwrap();
            let task = s.get_task(id).await.unwrap().unwrap();
            assert_eq!(task.completed_steps, ["a", "b"], "{id}");
            assert_eq!(s.journal(id, 0, 10).await.unwrap().len(), 3, "{id}");
        }
    }
}

pub(crate) async fn a_duplicate_job_among_many_fails_alone(s: Arc<dyn Store>) {
    let claims = claimed(&s, 32).await;
    // Two advances carry the same job id: whichever commits second must fail, and
    // with nothing of it written, while the other thirty commit.
    let dup = |i: usize| i == 7 || i == 23;
    let advances = claims
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let job_id = if dup(i) {
                "dup-job".to_string()
            } else {
                format!("job-{i}")
            };
            Advance {
                step: Some(step("a", StepStatus::Waiting)),
                events: vec![event("job_queued")],
                jobs: vec![NewJob {
                    job_id,
                    queue: "q".into(),
                    step: "a".into(),
                    payload: json!({"i": i}),
                }],
                ..Advance::new(&c.task.task_id, c.token, TaskStatus::Waiting)
            }
        })
        .collect();
    let answers = all_at_once(&s, advances).await;
    let mut failed = Vec::new();
    for (i, (claim, answer)) in claims.iter().zip(answers).enumerate() {
        let id = &claim.task.task_id;
        match answer {
            Ok(()) => {
                assert_eq!(
                    s.get_task(id).await.unwrap().unwrap().status,
                    TaskStatus::Waiting
                );
            }
            Err(e) => {
                assert!(dup(i), "{id}: {e}");
                assert_eq!(s.get_task(id).await.unwrap().unwrap(), claim.task);
                assert!(s.list_steps(id).await.unwrap().is_empty());
                failed.push(i);
            }
        }
    }
    assert_eq!(failed.len(), 1, "{failed:?}");
}

pub(crate) async fn concurrent_submissions_are_each_answered_alone(s: Arc<dyn Store>) {
    workflow(&s).await;
    s.submit_task(new_task("taken", None), T0).await.unwrap();
    let mut handles = Vec::new();
    for i in 0..40 {
        let s = s.clone();
        let task = match i {
            // The same key from three submitters: one task.
            0..=2 => new_task(&format!("keyed{i}"), Some("k1")),
            3 => new_task("taken", None),
            4 => NewTask {
                workflow_version: 9,
                ..new_task("no-workflow", None)
            },
            _ => new_task(&format!("s{i:02}"), None),
        };
        handles.push(tokio::spawn(
            async move { (i, s.submit_task(task, T0).await) },
        ));
    }
    let mut keyed = Vec::new();
    for h in handles {
        let (i, answer) = h.await.unwrap();
        match (i, answer) {
            (0..=2, Ok(submitted)) => keyed.push(submitted),
            (3, Err(StoreError::Conflict { kind: "task", .. })) => {}
            (
                4,
                Err(StoreError::NotFound {
                    kind: "workflow", ..
                }),
            ) => {}
            (5.., Ok(Submitted::Created(task))) => {
                assert_eq!(task.task_id, format!("s{i:02}"));
                assert_eq!(task.status, TaskStatus::Queued);
                assert_eq!(s.journal(&task.task_id, 0, 10).await.unwrap().len(), 1);
            }
            (i, other) => panic!("{i}: {other:?}"),
        }
    }
    let created = keyed
        .iter()
        .filter(|k| matches!(k, Submitted::Created(_)))
        .count();
    assert_eq!(created, 1, "{keyed:?}");
    let ids: std::collections::HashSet<&str> = keyed
        .iter()
        .map(|k| match k {
            Submitted::Created(t) | Submitted::Existing(t) => t.task_id.as_str(),
        })
        .collect();
    assert_eq!(ids.len(), 1);
    assert!(s.get_task("no-workflow").await.unwrap().is_none());
}
