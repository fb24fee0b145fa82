//! The task state machine: what a task must do next, as a pure function of its
//! workflow, its committed step records and the time.
//!
//! Everything the scheduler does starts here, and nothing here does I/O, so every rule
//! (order and `depends_on`, the retry queue's timers, failure switching the task to
//! compensation in reverse commit order, when a task is done) is tested without a store.
//! A step's own life (attempt → retrying → exhausted → fail, skip or escalate) is in
//! [`crate::outcome`]; this module decides only between steps.

use std::collections::HashMap;

use holdfast_store::{Step, StepStatus};
use serde_json::Value;

use crate::definition::Workflow;

/// The prefix of the record that says a step's compensation failed for good.
pub const COMPENSATE_PREFIX: &str = "compensate:";

/// What a task knows: its workflow, its step records, what it committed in which order.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// The workflow version the task runs.
    pub workflow: &'a Workflow,
    /// The task's step records, by name.
    pub steps: &'a HashMap<String, Step>,
    /// The task's `completed_steps`, in commit order.
    pub completed: &'a [String],
    /// Now, in Unix milliseconds.
    pub now_ms: u64,
}

/// One piece of work a task can do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Run attempt `attempt` of step `step`.
    Run {
        /// The step's index.
        step: usize,
        /// The attempt, from 1.
        attempt: u32,
    },
    /// Step `step` waits on something (a timer, a worker job, a person): look again.
    Check {
        /// The step's index.
        step: usize,
    },
    /// Undo step `step`, which had succeeded, because the task failed.
    Compensate {
        /// The step's index.
        step: usize,
    },
}

/// What the task should do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// This work, all of which may run at once.
    Work(Vec<Work>),
    /// Nothing can run now; the earliest retry is due at `until` (Unix milliseconds).
    Idle {
        /// When the retry queue's earliest step for this task is due.
        until: Option<u64>,
    },
    /// Every step is committed: the task succeeds with this output.
    Succeed {
        /// The output of the workflow's output step (null if it was skipped).
        output: Value,
    },
    /// A step failed for good and every compensation has run: the task fails.
    Fail {
        /// Why.
        error: String,
    },
}

/// Decides what the task does next.
pub fn next(view: View<'_>) -> Next {
    if let Some(error) = failure(view) {
        return compensate_or_fail(view, error);
    }
    let mut work = Vec::new();
    let mut until: Option<u64> = None;
    let mut done = 0;
    for (i, step) in view.workflow.steps.iter().enumerate() {
        let record = view.steps.get(&step.name);
        match record.map(|r| r.status) {
            Some(StepStatus::Succeeded | StepStatus::Skipped | StepStatus::Compensated) => {
                done += 1;
            }
            Some(StepStatus::Waiting) => work.push(Work::Check { step: i }),
            Some(StepStatus::Retrying) => {
                let r = record.map_or((0, 0), |r| (r.attempt, r.next_attempt_at_ms.unwrap_or(0)));
                if r.1 <= view.now_ms {
                    work.push(Work::Run {
                        step: i,
                        attempt: r.0 + 1,
                    });
                } else {
                    until = Some(until.map_or(r.1, |u| u.min(r.1)));
                }
            }
            // Unreachable here: a failed step sends the task to compensation above.
            Some(StepStatus::Failed) => {}
            None => {
                let ready = step.depends_on.iter().all(|&d| committed(view, d));
                if ready {
                    work.push(Work::Run {
                        step: i,
                        attempt: 1,
                    });
                }
            }
        }
    }
    if done == view.workflow.steps.len() {
        let out = &view.workflow.steps[view.workflow.output_step];
        let output = view
            .steps
            .get(&out.name)
            .and_then(|r| r.output.clone())
            .unwrap_or(Value::Null);
        return Next::Succeed { output };
    }
    if work.is_empty() {
        Next::Idle { until }
    } else {
        Next::Work(work)
    }
}

/// Whether step `i` is committed as succeeded or skipped (its dependents may run).
fn committed(view: View<'_>, i: usize) -> bool {
    view.steps
        .get(&view.workflow.steps[i].name)
        .is_some_and(|r| matches!(r.status, StepStatus::Succeeded | StepStatus::Skipped))
}

/// The error of the step that failed for good, if one did.
fn failure(view: View<'_>) -> Option<String> {
    view.workflow.steps.iter().find_map(|s| {
        let r = view.steps.get(&s.name)?;
        (r.status == StepStatus::Failed).then(|| {
            format!(
                "step {:?} failed: {}",
                s.name,
                r.error.as_deref().unwrap_or("no error recorded")
            )
        })
    })
}

/// After a failure: undo committed steps, newest first, one at a time; then fail.
fn compensate_or_fail(view: View<'_>, error: String) -> Next {
    for name in view.completed.iter().rev() {
        let Some((i, step)) = view.workflow.step(name) else {
            continue;
        };
        if step.compensate.is_none() {
            continue;
        }
        if let Some(failed) = view.steps.get(&format!("{COMPENSATE_PREFIX}{name}"))
            && failed.status == StepStatus::Failed
        {
            return Next::Fail {
                error: format!(
                    "{error}; compensating {name:?} failed: {}",
                    failed.error.as_deref().unwrap_or("no error recorded")
                ),
            };
        }
        if view.steps.get(name).map(|r| r.status) == Some(StepStatus::Succeeded) {
            return Next::Work(vec![Work::Compensate { step: i }]);
        }
    }
    Next::Fail { error }
}

/// The names of the steps not yet committed, in workflow order (`pending_steps`).
pub fn pending(workflow: &Workflow, steps: &HashMap<String, Step>) -> Vec<String> {
    workflow
        .steps
        .iter()
        .filter(|s| {
            !steps
                .get(&s.name)
                .is_some_and(|r| r.status.is_committed() || r.status == StepStatus::Failed)
        })
        .map(|s| s.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::definition::parse;

    fn record(name: &str, status: StepStatus, attempt: u32, next_at: Option<u64>) -> Step {
        Step {
            task_id: "t".into(),
            name: name.into(),
            status,
            attempt,
            output: (status == StepStatus::Succeeded).then(|| json!(format!("out-{name}"))),
            error: (status == StepStatus::Failed).then(|| "boom".to_string()),
            next_attempt_at_ms: next_at,
            updated_at_ms: 0,
        }
    }

    fn run(workflow: &Workflow, records: &[Step], completed: &[&str], now_ms: u64) -> Next {
        let steps = records
            .iter()
            .map(|r| (r.name.clone(), r.clone()))
            .collect();
        let completed: Vec<String> = completed.iter().map(|s| s.to_string()).collect();
        next(View {
            workflow,
            steps: &steps,
            completed: &completed,
            now_ms,
        })
    }

    fn three() -> Workflow {
        let http = |name: &str| {
            json!({"name": name, "kind": "http", "url": "http://x/",
            "compensate": {"kind": "http", "url": "http://x/undo"}})
        };
        parse(json!({"name": "w", "steps": [http("a"), http("b"), http("c")]})).unwrap()
    }

    #[test]
    fn steps_run_in_order_and_the_last_output_is_the_task_output() {
        let w = three();
        use StepStatus::*;
        assert_eq!(
            run(&w, &[], &[], 0),
            Next::Work(vec![Work::Run {
                step: 0,
                attempt: 1
            }])
        );
        let a = record("a", Succeeded, 1, None);
        assert_eq!(
            run(&w, std::slice::from_ref(&a), &["a"], 0),
            Next::Work(vec![Work::Run {
                step: 1,
                attempt: 1
            }])
        );
        let all = [
            a,
            record("b", Succeeded, 1, None),
            record("c", Succeeded, 2, None),
        ];
        assert_eq!(
            run(&w, &all, &["a", "b", "c"], 0),
            Next::Succeed {
                output: json!("out-c")
            }
        );
    }

    #[test]
    fn a_retrying_step_waits_for_its_time_in_the_queue() {
        let w = three();
        let recs = [record("a", StepStatus::Retrying, 2, Some(500))];
        assert_eq!(run(&w, &recs, &[], 499), Next::Idle { until: Some(500) });
        assert_eq!(
            run(&w, &recs, &[], 500),
            Next::Work(vec![Work::Run {
                step: 0,
                attempt: 3
            }])
        );
    }

    #[test]
    fn parallel_steps_run_together_and_join() {
        let w = parse(json!({"name": "w", "steps": [
            {"name": "a", "kind": "sleep", "duration": "1s"},
            {"name": "b", "kind": "sleep", "duration": "1s", "depends_on": []},
            {"name": "c", "kind": "sleep", "duration": "1s", "depends_on": ["a", "b"]},
        ]}))
        .unwrap();
        assert_eq!(
            run(&w, &[], &[], 0),
            Next::Work(vec![
                Work::Run {
                    step: 0,
                    attempt: 1
                },
                Work::Run {
                    step: 1,
                    attempt: 1
                }
            ])
        );
        let a = record("a", StepStatus::Succeeded, 1, None);
        let b_waiting = record("b", StepStatus::Waiting, 1, Some(9));
        assert_eq!(
            run(&w, &[a.clone(), b_waiting], &["a"], 0),
            Next::Work(vec![Work::Check { step: 1 }])
        );
        let b = record("b", StepStatus::Skipped, 1, None);
        assert_eq!(
            run(&w, &[a, b], &["a", "b"], 0),
            Next::Work(vec![Work::Run {
                step: 2,
                attempt: 1
            }])
        );
    }

    #[test]
    fn a_failure_compensates_in_reverse_commit_order_then_fails() {
        let w = three();
        use StepStatus::*;
        let mut recs = vec![
            record("a", Succeeded, 1, None),
            record("b", Succeeded, 1, None),
            record("c", Failed, 3, None),
        ];
        assert_eq!(
            run(&w, &recs, &["a", "b"], 0),
            Next::Work(vec![Work::Compensate { step: 1 }])
        );
        recs[1].status = Compensated;
        assert_eq!(
            run(&w, &recs, &["a", "b"], 0),
            Next::Work(vec![Work::Compensate { step: 0 }])
        );
        recs[0].status = Compensated;
        match run(&w, &recs, &["a", "b"], 0) {
            Next::Fail { error } => assert_eq!(error, "step \"c\" failed: boom"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_failed_compensation_fails_the_task_and_says_so() {
        let w = three();
        use StepStatus::*;
        let recs = [
            record("a", Succeeded, 1, None),
            record("b", Failed, 1, None),
            record("compensate:a", Failed, 3, None),
        ];
        match run(&w, &recs, &["a"], 0) {
            Next::Fail { error } => assert!(error.contains("compensating \"a\" failed"), "{error}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pending_lists_what_is_not_committed() {
        let w = three();
        let steps = [
            record("a", StepStatus::Succeeded, 1, None),
            record("b", StepStatus::Retrying, 1, Some(1)),
        ]
        .into_iter()
        .map(|r| (r.name.clone(), r))
        .collect();
        assert_eq!(pending(&w, &steps), vec!["b".to_string(), "c".to_string()]);
    }
}
