//! Undoing a committed step after its task failed: the step's `compensate` action,
//! retried in place with its own policy, under its own idempotency key.

use holdfast_policy::Outcome;
use holdfast_store::{Step, StepStatus, StepUpdate};
use serde_json::{Value, json};

use super::{Cx, Done, event, idempotency_key, step_result};
use crate::attempt::{Failure, Identity, Verdict, verdict};
use crate::definition::Action;
use crate::event::TaskEventKind;
use crate::machine::COMPENSATE_PREFIX;
use crate::run::Stop;

impl Cx<'_> {
    /// Undoes step `i`, retrying in place; a compensation that keeps failing fails the
    /// task with both errors.
    pub(crate) async fn compensate(
        &self,
        i: usize,
        record: Option<&Step>,
        ctx: &Value,
    ) -> Result<Done, Stop> {
        let step = &self.workflow.steps[i];
        let attempt = record.map_or(1, |r| r.attempt);
        let Some(comp) = &step.compensate else {
            return Ok(Done::waiting(i, None));
        };
        let key = format!("{}/compensate", idempotency_key(&self.task_id, &step.name));
        let agent = format!("{}/{}", self.workflow_name, step.name);
        let compensation = format!("{}/compensate", step.name);
        let traceparent = self
            .trace
            .traceparent(&self.task_id, &compensation, attempt);
        let id = Identity {
            tenant: &self.tenant,
            idempotency_key: &key,
            agent: &agent,
            fencing_token: self.fence.as_ref().map(|f| f.token.0),
            timeout: comp.timeout,
            traceparent: &traceparent,
            trace: self.trace,
        };
        let mut try_no = 1;
        let failure = loop {
            let result = match &comp.action {
                Action::Llm(a) => self.engine.runners.llm(a, ctx, id).await,
                Action::Http(a) => self.engine.runners.http(a, ctx, id).await,
                other => Err(Failure::new(
                    Outcome::BadRequest,
                    format!("a {} step cannot compensate", other.kind()),
                )),
            };
            match result {
                Ok(_) => {
                    let update = step_result(&step.name, StepStatus::Compensated, attempt);
                    let mut done =
                        Done::commit(i, update, event("compensated", json!({"step": step.name})));
                    done.live.push(TaskEventKind::Compensated {
                        step: step.name.clone(),
                    });
                    return Ok(done);
                }
                Err(failure) => {
                    let compensation = format!("{}/compensate", step.name);
                    let mut rng = self.engine.step_rng(&self.task_id, &compensation);
                    match verdict(&comp.retry, try_no, failure.outcome, &mut rng) {
                        Verdict::Retry { delay } => {
                            let wake = self.engine.clock.now() + delay;
                            self.engine.clock.sleep_until(wake).await;
                            try_no += 1;
                        }
                        Verdict::Exhausted => break failure,
                    }
                }
            }
        };
        let update = StepUpdate {
            error: Some(failure.message.clone()),
            cost_usd: failure.cost_usd,
            ..step_result(
                &format!("{COMPENSATE_PREFIX}{}", step.name),
                StepStatus::Failed,
                try_no,
            )
        };
        Ok(Done::commit(
            i,
            update,
            event(
                "compensation_failed",
                json!({"step": step.name, "error": failure.message}),
            ),
        ))
    }
}
