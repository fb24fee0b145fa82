//! One case: call the subject, grade the answer, and say how it ended.
//!
//! The whole case (its call and its judges) runs under the suite's timeout on the
//! injected clock; the latency recorded is the call's alone, which is what a user
//! waits for. A content filter's refusal reaches the graders as a refusing answer, not
//! as an error: for an adversarial case it is often the right answer.

use std::sync::Arc;
use std::time::Duration;

use holdfast_policy::Clock;
use holdfast_store::EvalOutcome;

use crate::dataset::{Case, CaseInput};
use crate::duration;
use crate::grader::{self, Check, Verdict, judge};
use crate::result::CaseResult;
use crate::subject::{Answer, Chat, Subject, SubjectError, TaskCall};
use crate::suite::TaskType;

/// What every case of a run shares.
pub(crate) struct Context {
    pub(crate) subject: Arc<dyn Subject>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) task: TaskType,
    pub(crate) judge: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) case_score: f64,
    pub(crate) run_id: String,
}

/// Runs `case` to its result, within the timeout.
pub(crate) async fn run(ctx: &Context, case: &Case) -> CaseResult {
    let deadline = ctx.clock.now() + ctx.timeout;
    let sleep = ctx.clock.sleep_until(deadline);
    tokio::select! {
        result = graded(ctx, case) => result,
        () = sleep => errored(case, SubjectError::new(
            "timeout",
            format!("the case took longer than its {} ms", duration::millis(ctx.timeout)),
        ), duration::millis(ctx.timeout)),
    }
}

async fn graded(ctx: &Context, case: &Case) -> CaseResult {
    let started = ctx.clock.now();
    let called = call(ctx, case).await;
    let latency = ctx.clock.now().saturating_duration_since(started);
    let latency_ms = duration::millis(latency);
    let answer = match called {
        Ok(answer) => answer,
        Err(e) if e.code == "content_filter" => Answer {
            refusal: Some(e.message),
            finish_reason: Some("content_filter".to_owned()),
            cost_usd: e.cost_usd,
            ..Answer::default()
        },
        Err(e) => return errored(case, e, latency_ms),
    };
    let mut verdicts = Vec::with_capacity(case.asserts.len());
    for assertion in &case.asserts {
        let verdict = match (&assertion.check, &ctx.judge) {
            (Check::Rubric { rubric }, Some(route)) => {
                let chat = judge::chat(route, rubric, case, &answer, ctx.timeout);
                judge::grade(&*ctx.subject, chat, assertion.weight).await
            }
            (Check::Rubric { .. }, None) => Err(SubjectError::new(
                "invalid_answer",
                "a rubric needs the suite's [judge] route",
            )),
            _ => Ok(grader::grade(assertion, &answer, latency)),
        };
        match verdict {
            Ok(verdict) => verdicts.push(verdict),
            Err(e) => {
                let mut result = errored(case, e, latency_ms);
                result.cost_usd = answer.cost_usd;
                result.verdicts = verdicts;
                result.answer = Some(answer);
                return result;
            }
        }
    }
    finished(ctx, case, answer, verdicts, latency_ms)
}

/// Sends the case's input.
async fn call(ctx: &Context, case: &Case) -> Result<Answer, SubjectError> {
    let key = format!("eval/{}/{}", ctx.run_id, case.id);
    match (&ctx.task, &case.input) {
        (TaskType::Route { route }, CaseInput::Chat(body)) => {
            let chat = Chat {
                route: route.clone(),
                body: body.clone(),
                idempotency_key: Some(key),
                timeout: ctx.timeout,
            };
            ctx.subject.chat(chat).await
        }
        (TaskType::Workflow { workflow, version }, CaseInput::Task(input)) => {
            let task = TaskCall {
                workflow: workflow.clone(),
                version: *version,
                input: input.clone(),
                idempotency_key: key,
                timeout: ctx.timeout,
            };
            ctx.subject.task(task).await
        }
        (TaskType::Route { .. }, CaseInput::Task(_))
        | (TaskType::Workflow { .. }, CaseInput::Chat(_)) => Err(SubjectError::new(
            "invalid_input",
            "the case's input is not for this suite's task type",
        )),
    }
}

fn finished(
    ctx: &Context,
    case: &Case,
    answer: Answer,
    verdicts: Vec<Verdict>,
    latency_ms: u64,
) -> CaseResult {
    let score = grader::score(&verdicts);
    let threshold = case.threshold.unwrap_or(ctx.case_score);
    // A hair of tolerance: 0.7 + 0.2 + 0.1 weighted to 1.0 must pass at 1.0.
    let outcome = if score + 1e-9 >= threshold {
        EvalOutcome::Passed
    } else {
        EvalOutcome::Failed
    };
    CaseResult {
        case_id: case.id.clone(),
        outcome,
        score,
        tags: case.tags.clone(),
        verdicts,
        cost_usd: answer.cost_usd,
        answer: Some(answer),
        error: None,
        latency_ms,
    }
}

fn errored(case: &Case, error: SubjectError, latency_ms: u64) -> CaseResult {
    CaseResult {
        case_id: case.id.clone(),
        outcome: EvalOutcome::Error,
        score: 0.0,
        tags: case.tags.clone(),
        verdicts: Vec::new(),
        answer: None,
        cost_usd: error.cost_usd,
        error: Some(error.to_string()),
        latency_ms,
    }
}
