//! Scoring one sample: its graders, its judge within the budget, and its record.
//!
//! A sample is graded like a case without an expected answer (`[production]` graders
//! give their own values), so a rubric's judge reads the same prompt as in a suite
//! run. Whatever becomes of it (scored, skipped, ungradable), the sample is kept with
//! its input, so a person can read it and promote it to a suite case.

use holdfast_store::{NewQualitySample, SampleStatus, Store};
use serde_json::{Value, json};

use super::budget::Budget;
use super::stats::Counts;
use super::{Exchange, Plan};
use crate::dataset::{Case, CaseInput};
use crate::grader::{self, Check, Verdict, judge};
use crate::subject::Subject;
use crate::suite::TaskType;

/// What scoring one sample needs.
pub(super) struct Context<'a> {
    pub(super) plan: &'a Plan,
    pub(super) subject: &'a dyn Subject,
    pub(super) store: &'a dyn Store,
    pub(super) counts: &'a Counts,
    pub(super) now_ms: u64,
}

/// Grades `exchange` (when the budget allows), keeps it, and counts what happened.
pub(super) async fn score(ctx: &Context<'_>, budget: &mut Budget, exchange: Exchange) {
    let suite = &ctx.plan.suite;
    let needs_judge = suite
        .production
        .iter()
        .any(|a| matches!(a.check, Check::Rubric { .. }));
    let task = exchange.task_type.clone();
    let graded = if budget.allows(ctx.now_ms, needs_judge) {
        let graded = grade(ctx, &exchange).await;
        budget.spend(ctx.now_ms, graded.judge_cost_usd);
        graded
    } else {
        Graded {
            status: SampleStatus::SkippedBudget,
            score: None,
            verdicts: json!([]),
            judge_cost_usd: 0.0,
        }
    };
    let sample = NewQualitySample {
        tenant: exchange.tenant,
        task_type: exchange.task_type,
        suite: suite.name.clone(),
        request_id: exchange.request_id,
        input: exchange.input,
        answer: serde_json::to_value(&exchange.answer).unwrap_or(Value::Null),
        status: graded.status,
        score: graded.score,
        verdicts: graded.verdicts,
        judge_cost_usd: graded.judge_cost_usd,
        created_at_ms: exchange.at_ms,
    };
    let kept = ctx.store.add_quality_sample(sample).await;
    if let Err(e) = &kept {
        tracing::warn!(task_type = %task, error = %e, "a production sample could not be kept");
    }
    match (graded.status, graded.score) {
        (SampleStatus::Scored, Some(score)) => {
            ctx.counts.scored(&task, score, graded.judge_cost_usd)
        }
        (SampleStatus::SkippedBudget, _) => ctx.counts.update(&task, |s| s.skipped_budget += 1),
        (SampleStatus::Scored | SampleStatus::Error, _) => ctx.counts.update(&task, |s| {
            s.errors += 1;
            s.judge_cost_usd += graded.judge_cost_usd;
        }),
    }
    if kept.is_err() {
        ctx.counts.update(&task, |s| s.errors += 1);
    }
}

struct Graded {
    status: SampleStatus,
    score: Option<f64>,
    verdicts: Value,
    judge_cost_usd: f64,
}

async fn grade(ctx: &Context<'_>, exchange: &Exchange) -> Graded {
    let suite = &ctx.plan.suite;
    let input = match &suite.task {
        TaskType::Route { .. } => CaseInput::Chat(exchange.input.clone()),
        TaskType::Workflow { .. } => CaseInput::Task(exchange.input.clone()),
    };
    let case = Case {
        id: exchange.request_id.clone(),
        input,
        expected: None,
        asserts: Vec::new(),
        tags: Vec::new(),
        threshold: None,
        line: 0,
    };
    let mut verdicts: Vec<Verdict> = Vec::with_capacity(suite.production.len());
    let mut cost = 0.0;
    for assertion in &suite.production {
        let verdict = match (&assertion.check, &suite.judge) {
            (Check::Rubric { rubric }, Some(route)) => {
                let chat = judge::chat(route, rubric, &case, &exchange.answer, suite.run.timeout);
                judge::grade(ctx.subject, chat, assertion.weight).await
            }
            (Check::Rubric { .. }, None) => Err(crate::SubjectError::new(
                "invalid_answer",
                "a rubric needs the suite's [judge] route",
            )),
            _ => Ok(grader::grade(assertion, &exchange.answer, exchange.latency)),
        };
        match verdict {
            Ok(verdict) => {
                cost += verdict.cost_usd;
                verdicts.push(verdict);
            }
            Err(e) => {
                return Graded {
                    status: SampleStatus::Error,
                    score: None,
                    verdicts: json!({"error": e.to_string(), "verdicts": verdicts}),
                    judge_cost_usd: cost + e.cost_usd,
                };
            }
        }
    }
    let score = grader::score(&verdicts);
    Graded {
        status: SampleStatus::Scored,
        score: Some(score),
        verdicts: serde_json::to_value(&verdicts).unwrap_or(Value::Null),
        judge_cost_usd: cost,
    }
}
