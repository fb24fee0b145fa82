//! The report on a run: pass rates per tag with their intervals, cost and latency, the
//! comparison with a baseline, the smallest detectable drop, and the gate's verdict.
//!
//! The decision: a report is a pure function of the stored run, its stored results
//! and, if given, a stored baseline with its results. It is built the same way at the
//! end of a run, by `holdfast eval show` and by `compare`, and it is stored with the run
//! as its summary, so the gate's verdict can always be explained from what is kept.
//! Its JSON form is this struct; [`Report::to_text`] writes the terminal summary and
//! [`html::render`] the self-contained HTML page.

mod compare;
mod gate;
pub mod html;
pub mod stored;
mod svg;
mod text;

use std::collections::BTreeSet;

use holdfast_store::{EvalOutcome, EvalRun};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::QualityError;
use crate::result::{CaseResult, Settings};
use crate::stats;
use crate::suite::ALL;

pub use compare::{Change, Comparison, Paired};
pub use gate::{Gate, GateCheck};

/// A run, summed up and judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The run.
    pub run_id: String,
    /// Its tenant.
    pub tenant: String,
    /// Its suite.
    pub suite: String,
    /// What it ran against (`route support`, `workflow article@2`).
    pub task: String,
    /// Where (`{"via": …}`), as the subject described itself.
    pub subject: Value,
    /// Its seed.
    pub seed: u64,
    /// When it was first started, in Unix milliseconds.
    pub started_at_ms: u64,
    /// When this report was made, in Unix milliseconds.
    pub finished_at_ms: u64,
    /// Cases reported on.
    pub cases: usize,
    /// Of which passed.
    pub passed: usize,
    /// Of which failed.
    pub failed: usize,
    /// Of which had no answer to grade.
    pub errors: usize,
    /// Pass rates: every case (`all`) first, then each tag.
    pub groups: Vec<Group>,
    /// Cost of a case's own call, in US dollars.
    pub cost_usd: Spread,
    /// What the judges cost in all, in US dollars.
    pub judge_cost_usd: f64,
    /// Latency of a case's own call, in milliseconds.
    pub latency_ms: Spread,
    /// The comparison with the baseline, when there is one.
    pub baseline: Option<Comparison>,
    /// The gate's verdict.
    pub gate: Gate,
    /// The cases that did not pass, with why.
    pub not_passed: Vec<CaseLine>,
}

/// The pass rate of the cases carrying a tag (or all of them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// The tag, or `all`.
    pub tag: String,
    /// Its cases.
    pub cases: usize,
    /// Of which passed.
    pub passed: usize,
    /// passed / cases.
    pub rate: f64,
    /// The Wilson 95% interval of the rate.
    pub interval: (f64, f64),
    /// Its threshold, if the suite sets one.
    pub threshold: Option<f64>,
    /// The smallest drop (a share of the cases) a comparison with a baseline of this
    /// size detects with 80% power; `None` below 6 cases.
    pub detectable_drop: Option<f64>,
    /// The comparison with the baseline on the cases both ran.
    pub paired: Option<Paired>,
}

/// A distribution over the cases.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// The sum.
    pub total: f64,
    /// The mean.
    pub mean: f64,
    /// The median.
    pub p50: f64,
    /// The 90th percentile.
    pub p90: f64,
    /// The 95th percentile.
    pub p95: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values` (nearest-rank percentiles).
    pub fn of(mut values: Vec<f64>) -> Spread {
        if values.is_empty() {
            return Spread::default();
        }
        values.sort_by(f64::total_cmp);
        let total: f64 = values.iter().sum();
        Spread {
            total,
            mean: total / values.len() as f64,
            p50: stats::quantile(&values, 0.50),
            p90: stats::quantile(&values, 0.90),
            p95: stats::quantile(&values, 0.95),
            p99: stats::quantile(&values, 0.99),
            max: values.last().copied().unwrap_or(0.0),
        }
    }
}

/// A case that did not pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseLine {
    /// The case.
    pub case_id: String,
    /// Failed or error.
    pub outcome: String,
    /// Its score.
    pub score: f64,
    /// Its tags.
    pub tags: Vec<String>,
    /// Why.
    pub why: String,
}

impl Report {
    /// The report on `run` from its `results`, compared with `baseline` if given.
    pub fn build(
        run: &EvalRun,
        results: &[CaseResult],
        baseline: Option<(&EvalRun, &[CaseResult])>,
    ) -> Result<Report, QualityError> {
        let settings = Settings::of(run)?;
        let thresholds = &settings.thresholds;
        let count = |o: EvalOutcome| results.iter().filter(|r| r.outcome == o).count();
        let comparison = baseline.map(|(base, base_results)| {
            compare::Comparison::of(&base.run_id, results, base_results)
        });
        let mut groups = Vec::new();
        for tag in group_names(results) {
            let members: Vec<&CaseResult> = results
                .iter()
                .filter(|r| tag == ALL || r.tags.contains(&tag))
                .collect();
            let paired = baseline.map(|(_, base)| compare::Paired::of(&tag, results, base));
            groups.push(group(
                &tag,
                &members,
                thresholds.pass_rate.get(&tag),
                paired,
            ));
        }
        let cost_usd = Spread::of(results.iter().map(|r| r.cost_usd).collect());
        let latency_ms = Spread::of(results.iter().map(|r| r.latency_ms as f64).collect());
        let gate = gate::judge(&groups, &cost_usd, &latency_ms, thresholds);
        let not_passed = results
            .iter()
            .filter(|r| !r.passed())
            .map(|r| CaseLine {
                case_id: r.case_id.clone(),
                outcome: r.outcome.as_str().to_owned(),
                score: r.score,
                tags: r.tags.clone(),
                why: r.why(),
            })
            .collect();
        Ok(Report {
            run_id: run.run_id.clone(),
            tenant: run.tenant.clone(),
            suite: run.suite.clone(),
            task: settings.task.label(),
            subject: run.subject.clone(),
            seed: settings.seed,
            started_at_ms: run.created_at_ms,
            finished_at_ms: run.finished_at_ms.unwrap_or(run.updated_at_ms),
            cases: results.len(),
            passed: count(EvalOutcome::Passed),
            failed: count(EvalOutcome::Failed),
            errors: count(EvalOutcome::Error),
            groups,
            cost_usd,
            judge_cost_usd: results.iter().map(CaseResult::judge_cost_usd).sum(),
            latency_ms,
            baseline: comparison,
            gate,
            not_passed,
        })
    }

    /// The group of `tag` (or `all`).
    pub fn group(&self, tag: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.tag == tag)
    }

    /// The terminal summary.
    pub fn to_text(&self) -> String {
        text::render(self)
    }
}

/// `all`, then every tag of the results, sorted.
fn group_names(results: &[CaseResult]) -> Vec<String> {
    let tags: BTreeSet<&String> = results.iter().flat_map(|r| &r.tags).collect();
    std::iter::once(ALL.to_owned())
        .chain(tags.into_iter().cloned())
        .collect()
}

fn group(
    tag: &str,
    members: &[&CaseResult],
    threshold: Option<&f64>,
    paired: Option<Paired>,
) -> Group {
    let passed = members.iter().filter(|r| r.passed()).count();
    let cases = members.len();
    // A comparison detects drops among the cases both runs ran; without one, the
    // suite's own size says what a future comparison could see.
    let n = paired.as_ref().map_or(cases, |p| p.pairs);
    Group {
        tag: tag.to_owned(),
        cases,
        passed,
        rate: if cases == 0 {
            0.0
        } else {
            passed as f64 / cases as f64
        },
        interval: stats::wilson(passed as u64, cases as u64),
        threshold: threshold.copied(),
        detectable_drop: stats::detectable_drop(n as u64),
        paired,
    }
}

#[cfg(test)]
mod tests;
