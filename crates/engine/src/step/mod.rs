//! One piece of a task's work: an attempt of a step, a look at a waiting step, a
//! compensation. Each produces a [`Done`]: the step result to commit and what to journal
//! with it, or the news that the step still waits.
//!
//! Nothing here writes the task's state: [`crate::run`] commits every `Done` under the
//! claim's fencing token. The only writes here are to things outside the task that a
//! person or a timer owns (resolving an escalation whose timeout passed). That split is
//! what lets several steps of one task run at once while their results are committed
//! one by one, in the order they finish.

mod compensate;
mod wait;

use std::sync::Arc;
use std::time::Duration;

use holdfast_policy::Outcome;
use holdfast_store::{Fence, NewEscalation, NewEvent, NewJob, StepStatus, StepUpdate};
use serde_json::{Value, json};

use crate::attempt::{Failure, Identity, Success, Verdict, verdict};
use crate::definition::{Action, OnExhausted, OnTimeout, Workflow};
use crate::engine::Inner;
use crate::event::{TaskEvent, TaskEventKind};
use crate::run::Stop;
use crate::template;

/// Waits shorter than this are slept through while holding the lease, instead of being
/// written to the store and claimed again: a round trip costs more than the wait.
pub(crate) const SHORT_WAIT: Duration = Duration::from_millis(200);

/// The step's idempotency key: the same on every attempt (invariant 1).
pub fn idempotency_key(task_id: &str, step: &str) -> String {
    format!("{task_id}/{step}")
}

/// The id of the worker job of a step's attempt.
pub fn job_id(task_id: &str, step: &str, attempt: u32) -> String {
    format!("{task_id}:{step}:{attempt}")
}

/// The id of the escalation opened by a step's attempt.
pub fn escalation_id(task_id: &str, step: &str, attempt: u32) -> String {
    format!("{task_id}:{step}:{attempt}")
}

/// What one piece of work produced.
pub(crate) struct Done {
    pub(crate) step: usize,
    pub(crate) update: Option<StepUpdate>,
    pub(crate) events: Vec<NewEvent>,
    pub(crate) jobs: Vec<NewJob>,
    pub(crate) escalation: Option<NewEscalation>,
    pub(crate) live: Vec<TaskEventKind>,
    /// The step still waits (until the timer, if any); nothing to commit.
    pub(crate) still_waiting: Option<Option<u64>>,
}

impl Done {
    fn commit(step: usize, update: StepUpdate, event: NewEvent) -> Self {
        Done {
            step,
            update: Some(update),
            events: vec![event],
            jobs: vec![],
            escalation: None,
            live: vec![],
            still_waiting: None,
        }
    }

    fn waiting(step: usize, until: Option<u64>) -> Self {
        Done {
            step,
            update: None,
            events: vec![],
            jobs: vec![],
            escalation: None,
            live: vec![],
            still_waiting: Some(until),
        }
    }
}

/// A step result with only its name, status and attempt; the rest by struct update.
pub(crate) fn step_result(name: &str, status: StepStatus, attempt: u32) -> StepUpdate {
    StepUpdate {
        name: name.to_string(),
        status,
        attempt,
        output: None,
        error: None,
        next_attempt_at_ms: None,
        cost_usd: 0.0,
    }
}

pub(crate) fn event(kind: &str, data: Value) -> NewEvent {
    NewEvent {
        kind: kind.to_string(),
        data,
    }
}

/// What a piece of work needs to know about its task; shared by pieces running at once.
pub(crate) struct Cx<'a> {
    pub(crate) engine: &'a Inner,
    pub(crate) task_id: String,
    /// The task's tenant: its model calls are made (and accounted) as that tenant's.
    pub(crate) tenant: Arc<str>,
    pub(crate) workflow_name: Arc<str>,
    pub(crate) input: Value,
    pub(crate) workflow: Arc<Workflow>,
    /// The task's lock, once taken: its token goes with every write and tool call.
    pub(crate) fence: Option<Fence>,
    /// Its place in a trace: tools and workers hear its steps' spans in it.
    pub(crate) trace: crate::trace::TaskTrace,
}

impl Cx<'_> {
    pub(crate) fn now(&self) -> u64 {
        self.engine.clock.unix_millis()
    }

    pub(crate) fn emit(&self, kind: TaskEventKind) {
        (self.engine.events)(&TaskEvent {
            task_id: self.task_id.clone(),
            workflow: self.workflow_name.clone(),
            trace: self.trace,
            kind,
        });
    }

    /// Runs attempt `attempt` of step `i`.
    pub(crate) async fn attempt(&self, i: usize, attempt: u32, ctx: &Value) -> Result<Done, Stop> {
        let step = &self.workflow.steps[i];
        let key = idempotency_key(&self.task_id, &step.name);
        let agent = format!("{}/{}", self.workflow_name, step.name);
        let now = self.now();
        let traceparent = self.trace.traceparent(&self.task_id, &step.name, attempt);
        let id = Identity {
            tenant: &self.tenant,
            idempotency_key: &key,
            agent: &agent,
            fencing_token: self.fence.as_ref().map(|f| f.token.0),
            timeout: step.timeout,
            traceparent: &traceparent,
            trace: self.trace,
        };
        let result = match &step.action {
            Action::Llm(a) => self.engine.runners.llm(a, ctx, id).await,
            Action::Http(a) => self.engine.runners.http(a, ctx, id).await,
            Action::Worker(w) => {
                let payload = match &w.payload {
                    Some(p) => template::render_json(p, ctx),
                    None => Ok(self.input.clone()),
                };
                return Ok(match payload {
                    Ok(payload) => self.enqueue(i, attempt, &w.queue, payload, &key),
                    Err(e) => self.failed(i, attempt, Failure::new(Outcome::BadRequest, e)),
                });
            }
            Action::Human(h) => {
                let asked = template::render(&h.prompt, ctx).and_then(|prompt| {
                    let payload = match &h.payload {
                        Some(p) => template::render_json(p, ctx)?,
                        None => Value::Null,
                    };
                    Ok((prompt, payload))
                });
                return Ok(match asked {
                    Ok((prompt, payload)) => {
                        let timer = (h.on_timeout != OnTimeout::Wait)
                            .then(|| now + step.timeout.as_millis() as u64);
                        self.escalate(i, attempt, prompt, payload, timer)
                    }
                    Err(e) => self.failed(i, attempt, Failure::new(Outcome::BadRequest, e)),
                });
            }
            Action::Sleep(s) => {
                if s.duration <= SHORT_WAIT {
                    let wake = self.engine.clock.now() + s.duration;
                    self.engine.clock.sleep_until(wake).await;
                    Ok(Success {
                        output: Value::Null,
                        cost_usd: 0.0,
                        few_shot: None,
                    })
                } else {
                    let until = now + s.duration.as_millis() as u64;
                    let update = StepUpdate {
                        next_attempt_at_ms: Some(until),
                        ..step_result(&step.name, StepStatus::Waiting, attempt)
                    };
                    return Ok(Done::commit(
                        i,
                        update,
                        event("sleeping", json!({"step": step.name, "until_ms": until})),
                    ));
                }
            }
        };
        Ok(match result {
            Ok(success) => self.succeeded(i, attempt, success),
            Err(failure) => self.failed(i, attempt, failure),
        })
    }

    fn succeeded(&self, i: usize, attempt: u32, success: Success) -> Done {
        let step = &self.workflow.steps[i];
        let update = StepUpdate {
            output: Some(success.output),
            cost_usd: success.cost_usd,
            ..step_result(&step.name, StepStatus::Succeeded, attempt)
        };
        let mut data = json!({"step": step.name, "attempt": attempt, "cost_usd": success.cost_usd});
        if let Some(few_shot) = success.few_shot {
            data["few_shot"] = few_shot;
        }
        let mut done = Done::commit(i, update, event("step_succeeded", data));
        done.live.push(TaskEventKind::StepSucceeded {
            step: step.name.clone(),
            kind: step.action.kind(),
            attempt,
            duration: Duration::ZERO,
            cost_usd: success.cost_usd,
        });
        done
    }

    /// A failed attempt: back to the retry queue, or `on_exhausted`.
    fn failed(&self, i: usize, attempt: u32, failure: Failure) -> Done {
        let step = &self.workflow.steps[i];
        let class = failure.outcome.class();
        let kind = step.action.kind();
        let mut rng = self.engine.step_rng(&self.task_id, &step.name);
        match verdict(&step.retry, attempt, failure.outcome, &mut rng) {
            Verdict::Retry { delay } => {
                let at = self.now() + delay.as_millis() as u64;
                let update = StepUpdate {
                    error: Some(failure.message.clone()),
                    next_attempt_at_ms: Some(at),
                    cost_usd: failure.cost_usd,
                    ..step_result(&step.name, StepStatus::Retrying, attempt)
                };
                let mut done = Done::commit(
                    i,
                    update,
                    event(
                        "step_retrying",
                        json!({"step": step.name, "attempt": attempt, "class": class,
                               "error": failure.message, "next_attempt_at_ms": at}),
                    ),
                );
                done.live.push(TaskEventKind::StepRetrying {
                    step: step.name.clone(),
                    kind,
                    attempt,
                    class,
                    delay,
                });
                done
            }
            Verdict::Exhausted => self.exhausted(i, attempt, failure),
        }
    }

    fn exhausted(&self, i: usize, attempt: u32, failure: Failure) -> Done {
        let step = &self.workflow.steps[i];
        let class = failure.outcome.class();
        let then = match step.on_exhausted {
            OnExhausted::Fail => "fail",
            OnExhausted::Skip => "skip",
            OnExhausted::Escalate => "escalate",
        };
        let live = TaskEventKind::StepExhausted {
            step: step.name.clone(),
            kind: step.action.kind(),
            class,
            then,
        };
        let mut done = match step.on_exhausted {
            OnExhausted::Escalate => {
                let reason = format!(
                    "step {:?} failed after {attempt} attempt(s): {}",
                    step.name, failure.message
                );
                let payload = json!({"error": failure.message, "class": class, "attempt": attempt});
                self.escalate(i, attempt, reason, payload, None)
            }
            OnExhausted::Fail | OnExhausted::Skip => {
                let status = if step.on_exhausted == OnExhausted::Skip {
                    StepStatus::Skipped
                } else {
                    StepStatus::Failed
                };
                let update = StepUpdate {
                    name: step.name.clone(),
                    status,
                    attempt,
                    output: None,
                    error: Some(failure.message.clone()),
                    next_attempt_at_ms: None,
                    cost_usd: failure.cost_usd,
                };
                Done::commit(
                    i,
                    update,
                    event(
                        &format!("step_{status}"),
                        json!({"step": step.name, "attempt": attempt, "class": class, "error": failure.message}),
                    ),
                )
            }
        };
        done.live.insert(0, live);
        if let Some(u) = &mut done.update {
            u.cost_usd = failure.cost_usd;
        }
        done
    }

    /// Opens an escalation for step `i`; the step waits for a person.
    fn escalate(
        &self,
        i: usize,
        attempt: u32,
        reason: String,
        payload: Value,
        timer: Option<u64>,
    ) -> Done {
        let step = &self.workflow.steps[i];
        let id = escalation_id(&self.task_id, &step.name, attempt);
        let update = StepUpdate {
            next_attempt_at_ms: timer,
            ..step_result(&step.name, StepStatus::Waiting, attempt)
        };
        let mut done = Done::commit(
            i,
            update,
            event(
                "escalated",
                json!({"step": step.name, "escalation_id": id, "reason": reason}),
            ),
        );
        done.escalation = Some(NewEscalation {
            escalation_id: id,
            step: step.name.clone(),
            reason,
            payload,
        });
        done.live.push(TaskEventKind::Escalated {
            step: step.name.clone(),
        });
        done
    }

    /// Enqueues a worker job for step `i`; the step waits for a worker.
    fn enqueue(&self, i: usize, attempt: u32, queue: &str, input: Value, key: &str) -> Done {
        let step = &self.workflow.steps[i];
        let id = job_id(&self.task_id, &step.name, attempt);
        let update = step_result(&step.name, StepStatus::Waiting, attempt);
        let mut done = Done::commit(
            i,
            update,
            event(
                "job_enqueued",
                json!({"step": step.name, "job_id": id, "queue": queue}),
            ),
        );
        done.jobs.push(NewJob {
            job_id: id,
            queue: queue.to_string(),
            step: step.name.clone(),
            payload: json!({
                "task_id": self.task_id,
                "step": step.name,
                "attempt": attempt,
                "idempotency_key": key,
                "traceparent": self.trace.traceparent(&self.task_id, &step.name, attempt),
                "input": input,
            }),
        });
        done
    }
}
