//! A run against its baseline, case by case.
//!
//! Only the cases both runs ran are paired (a sampled or grown suite still compares
//! on what it shares), and only the cases whose outcome changed carry information:
//! `regressed` passed in the baseline and not now, `improved` the other way. The
//! exact McNemar test on those two counts says whether the run is worse than chance
//! would make it.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::result::CaseResult;
use crate::stats;
use crate::suite::ALL;

/// A group's pass rate against the baseline's, on the cases both ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paired {
    /// Cases both runs ran (in the group).
    pub pairs: usize,
    /// The baseline's pass rate on them.
    pub baseline_rate: f64,
    /// The run's pass rate on them.
    pub rate: f64,
    /// Passed in the baseline, not in the run.
    pub regressed: usize,
    /// Passed in the run, not in the baseline.
    pub improved: usize,
    /// The exact McNemar p-value of the difference.
    pub p_value: f64,
    /// Whether the run is worse with p < 0.05.
    pub significantly_worse: bool,
}

impl Paired {
    /// The comparison of `run` with `base` on the cases of `tag` (or all) both hold.
    pub(crate) fn of(tag: &str, run: &[CaseResult], base: &[CaseResult]) -> Paired {
        let base: HashMap<&str, &CaseResult> =
            base.iter().map(|r| (r.case_id.as_str(), r)).collect();
        let (mut pairs, mut base_passed, mut passed, mut regressed, mut improved) = (0, 0, 0, 0, 0);
        for now in run
            .iter()
            .filter(|r| tag == ALL || r.tags.iter().any(|t| t == tag))
        {
            let Some(before) = base.get(now.case_id.as_str()) else {
                continue;
            };
            pairs += 1;
            base_passed += usize::from(before.passed());
            passed += usize::from(now.passed());
            match (before.passed(), now.passed()) {
                (true, false) => regressed += 1,
                (false, true) => improved += 1,
                (true, true) | (false, false) => {}
            }
        }
        let rate = |k: usize| {
            if pairs == 0 {
                0.0
            } else {
                k as f64 / pairs as f64
            }
        };
        let p_value = stats::mcnemar_exact(regressed as u64, improved as u64);
        Paired {
            pairs,
            baseline_rate: rate(base_passed),
            rate: rate(passed),
            regressed,
            improved,
            p_value,
            significantly_worse: regressed > improved && p_value < stats::ALPHA,
        }
    }
}

/// A case whose outcome differs from the baseline's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The case.
    pub case_id: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// The baseline's outcome.
    pub before: String,
    /// The run's outcome.
    pub after: String,
    /// The baseline's score.
    pub before_score: f64,
    /// The run's score.
    pub after_score: f64,
    /// Why it does not pass now (regressions), or why it did not before (improvements).
    pub why: String,
}

/// The run against its baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The baseline run.
    pub run_id: String,
    /// Cases both ran.
    pub pairs: usize,
    /// Cases only the run ran.
    pub only_in_run: usize,
    /// Cases only the baseline ran.
    pub only_in_baseline: usize,
    /// Cases that passed before and do not now.
    pub regressed: Vec<Change>,
    /// Cases that pass now and did not before.
    pub improved: Vec<Change>,
}

impl Comparison {
    pub(crate) fn of(base_id: &str, run: &[CaseResult], base: &[CaseResult]) -> Comparison {
        let by_id: HashMap<&str, &CaseResult> =
            base.iter().map(|r| (r.case_id.as_str(), r)).collect();
        let mut comparison = Comparison {
            run_id: base_id.to_owned(),
            pairs: 0,
            only_in_run: 0,
            only_in_baseline: 0,
            regressed: Vec::new(),
            improved: Vec::new(),
        };
        for now in run {
            let Some(before) = by_id.get(now.case_id.as_str()) else {
                comparison.only_in_run += 1;
                continue;
            };
            comparison.pairs += 1;
            let change = |why: String| Change {
                case_id: now.case_id.clone(),
                tags: now.tags.clone(),
                before: before.outcome.as_str().to_owned(),
                after: now.outcome.as_str().to_owned(),
                before_score: before.score,
                after_score: now.score,
                why,
            };
            match (before.passed(), now.passed()) {
                (true, false) => comparison.regressed.push(change(now.why())),
                (false, true) => comparison.improved.push(change(before.why())),
                (true, true) | (false, false) => {}
            }
        }
        comparison.only_in_baseline = base.len().saturating_sub(comparison.pairs);
        comparison
            .regressed
            .sort_by(|a, b| a.case_id.cmp(&b.case_id));
        comparison
            .improved
            .sort_by(|a, b| a.case_id.cmp(&b.case_id));
        comparison
    }
}
