//! Looking at a waiting step again: has its timer come, its worker finished, its
//! person answered (or failed to answer in time)?

use holdfast_policy::Outcome;
use holdfast_store::{
    EscalationStatus, JobStatus, Resolution, Step, StepStatus, StepUpdate, StoreError,
};
use serde_json::{Value, json};

use super::{Cx, Done, escalation_id, event, idempotency_key, job_id, step_result};
use crate::attempt::{Failure, Success};
use crate::definition::{Action, OnExhausted, OnTimeout, StepDef};
use crate::run::Stop;

impl Cx<'_> {
    /// Looks at a waiting step again: its timer, its job, its escalation.
    pub(crate) async fn check(
        &self,
        i: usize,
        record: Option<&Step>,
        ctx: &Value,
    ) -> Result<Done, Stop> {
        let step = &self.workflow.steps[i];
        let Some(record) = record else {
            return Ok(Done::waiting(i, None));
        };
        let attempt = record.attempt;
        let store = &self.engine.store;
        let now = self.now();
        let esc_id = escalation_id(&self.task_id, &step.name, attempt);
        if matches!(step.action, Action::Human(_)) || step.on_exhausted == OnExhausted::Escalate {
            if let Some(esc) = store.get_escalation(&esc_id).await? {
                return self.answered(i, step, record, esc, now).await;
            }
        }
        match &step.action {
            Action::Sleep(_) => {
                let until = record.next_attempt_at_ms.unwrap_or(0);
                if until <= now {
                    Ok(self.succeeded(
                        i,
                        attempt,
                        Success {
                            output: Value::Null,
                            cost_usd: 0.0,
                            few_shot: None,
                        },
                    ))
                } else {
                    Ok(Done::waiting(i, Some(until)))
                }
            }
            Action::Worker(w) => {
                let id = job_id(&self.task_id, &step.name, attempt);
                match store.get_job(&id).await? {
                    None => {
                        // The wait was committed without its job (it cannot be): ask again.
                        let key = idempotency_key(&self.task_id, &step.name);
                        Ok(self.enqueue(i, attempt + 1, &w.queue, self.input.clone(), &key))
                    }
                    Some(job) => {
                        match job.status {
                            JobStatus::Pending | JobStatus::Claimed => Ok(Done::waiting(i, None)),
                            JobStatus::Succeeded => Ok(self.succeeded(
                                i,
                                attempt,
                                Success {
                                    output: job.result.unwrap_or(Value::Null),
                                    cost_usd: 0.0,
                                    few_shot: None,
                                },
                            )),
                            JobStatus::Failed => {
                                let message =
                                    format!("worker failed: {}", job.error.unwrap_or_default());
                                Ok(self.failed(
                                    i,
                                    attempt,
                                    Failure::new(Outcome::ServerError, message),
                                ))
                            }
                            JobStatus::Cancelled => Ok(self.exhausted(
                                i,
                                attempt,
                                Failure::new(Outcome::Cancelled, "the job was cancelled"),
                            )),
                        }
                    }
                }
            }
            Action::Human(_) => {
                // The escalation is missing though the wait was committed with it: ask again.
                Ok(Box::pin(self.attempt(i, attempt + 1, ctx)).await?)
            }
            Action::Llm(_) | Action::Http(_) => Ok(Done::waiting(i, None)),
        }
    }

    /// A person's answer (or the lack of one) to a step's escalation.
    async fn answered(
        &self,
        i: usize,
        step: &StepDef,
        record: &Step,
        mut esc: holdfast_store::Escalation,
        now: u64,
    ) -> Result<Done, Stop> {
        let attempt = record.attempt;
        if esc.status == EscalationStatus::Open {
            let on_timeout = match &step.action {
                Action::Human(h) => h.on_timeout,
                _ => OnTimeout::Wait,
            };
            let due = record
                .next_attempt_at_ms
                .filter(|_| on_timeout != OnTimeout::Wait);
            match due {
                Some(at) if at <= now => {
                    let resolution = match on_timeout {
                        OnTimeout::Reject => {
                            Resolution::Reject("no answer before the timeout".into())
                        }
                        OnTimeout::Approve | OnTimeout::Skip | OnTimeout::Wait => {
                            Resolution::Approve
                        }
                    };
                    match self
                        .engine
                        .store
                        .resolve_escalation(&esc.escalation_id, resolution, "holdfast:timeout", now)
                        .await
                    {
                        Ok(resolved) => {
                            self.engine.resolved(&resolved).await;
                            esc = resolved;
                        }
                        // Someone answered first: use their answer.
                        Err(StoreError::Conflict { .. }) => {
                            match self.engine.store.get_escalation(&esc.escalation_id).await? {
                                Some(e) => esc = e,
                                None => return Ok(Done::waiting(i, None)),
                            }
                        }
                        Err(e) => return Err(e.into()),
                    }
                    if on_timeout == OnTimeout::Skip
                        && esc.resolved_by.as_deref() == Some("holdfast:timeout")
                    {
                        let update = StepUpdate {
                            error: Some("no answer before the timeout".into()),
                            ..step_result(&step.name, StepStatus::Skipped, attempt)
                        };
                        return Ok(Done::commit(
                            i,
                            update,
                            event(
                                "step_skipped",
                                json!({"step": step.name, "reason": "timeout"}),
                            ),
                        ));
                    }
                }
                _ => return Ok(Done::waiting(i, due)),
            }
        }
        let by = esc.resolved_by.clone().unwrap_or_default();
        let human = matches!(step.action, Action::Human(_));
        Ok(match esc.resolution {
            Some(Resolution::Approve) if human => self.succeeded(
                i,
                attempt,
                Success {
                    output: esc.payload,
                    cost_usd: 0.0,
                    few_shot: None,
                },
            ),
            Some(Resolution::Approve) => {
                // Approval of a failed step: one more attempt, due now.
                let update = StepUpdate {
                    error: record.error.clone(),
                    next_attempt_at_ms: Some(now),
                    ..step_result(&step.name, StepStatus::Retrying, attempt)
                };
                Done::commit(
                    i,
                    update,
                    event("escalation_approved", json!({"step": step.name, "by": by})),
                )
            }
            Some(Resolution::Edit(value)) => {
                let mut done = self.succeeded(
                    i,
                    attempt,
                    Success {
                        output: value,
                        cost_usd: 0.0,
                        few_shot: None,
                    },
                );
                done.events.insert(
                    0,
                    event("escalation_edited", json!({"step": step.name, "by": by})),
                );
                done
            }
            Some(Resolution::Reject(reason)) => {
                let update = StepUpdate {
                    error: Some(format!("rejected by {by}: {reason}")),
                    ..step_result(&step.name, StepStatus::Failed, attempt)
                };
                Done::commit(
                    i,
                    update,
                    event(
                        "escalation_rejected",
                        json!({"step": step.name, "by": by, "reason": reason}),
                    ),
                )
            }
            None => {
                let update = StepUpdate {
                    error: Some(format!("escalation {}", esc.status)),
                    ..step_result(&step.name, StepStatus::Failed, attempt)
                };
                Done::commit(
                    i,
                    update,
                    event(
                        "step_failed",
                        json!({"step": step.name, "error": "escalation closed"}),
                    ),
                )
            }
        })
    }
}
