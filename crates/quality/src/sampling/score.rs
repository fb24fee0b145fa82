//! Scoring one sample: its graders, its judge within the budget, and its record; and
//! keeping a batch of them in one write.
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
    pub(super) counts: &'a Counts,
    pub(super) now_ms: u64,
}

/// Grades `exchange` (when the budget allows) and counts what became of it; answers
/// the sample to keep.
pub(super) async fn score(
    ctx: &Context<'_>,
    budget: &mut Budget,
    exchange: Exchange,
) -> NewQualitySample {
    let suite = &ctx.plan.suite;
    let needs_judge = suite
        .production
        .iter()
        .any(|a| matches!(a.check, Check::Rubric { .. }));
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
    let task = &exchange.task_type;
    match (graded.status, graded.score) {
        (SampleStatus::Scored, Some(score)) => {
            ctx.counts.scored(task, score, graded.judge_cost_usd)
        }
        (SampleStatus::SkippedBudget, _) => ctx.counts.update(task, |s| s.skipped_budget += 1),
        (SampleStatus::Scored | SampleStatus::Error, _) => ctx.counts.update(task, |s| {
            s.errors += 1;
            s.judge_cost_usd += graded.judge_cost_usd;
        }),
    }
    NewQualitySample {
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
    }
}

/// Keeps `samples` in one write; each one that could not be kept is counted as an
/// error of its task type and logged.
pub(super) async fn keep(store: &dyn Store, counts: &Counts, samples: Vec<NewQualitySample>) {
    if samples.is_empty() {
        return;
    }
    let tasks: Vec<String> = samples.iter().map(|s| s.task_type.clone()).collect();
    match store.add_quality_samples(samples).await {
        Ok(answers) => {
            for (task, answer) in tasks.iter().zip(answers) {
                if let Err(e) = answer {
                    tracing::warn!(task_type = %task, error = %e, "a production sample could not be kept");
                    counts.update(task, |s| s.errors += 1);
                }
            }
        }
        Err(e) => {
            tracing::warn!(samples = tasks.len(), error = %e, "production samples could not be kept");
            for task in &tasks {
                counts.update(task, |s| s.errors += 1);
            }
        }
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
