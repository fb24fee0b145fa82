//! The gate: does the run pass?
//!
//! It fails on any of: a pass rate below its threshold; a pass rate significantly
//! below the baseline's on the same cases (exact McNemar, p < 0.05), whether or not
//! the group has a threshold (checked for every group of at least 6 paired cases: under
//! that, no change can be significant); a mean cost per case above `cost_per_case`; a 95th
//! percentile latency above `p95_latency`. Each check is listed with its figures, so
//! a failed gate names what failed and by how much.

use serde::{Deserialize, Serialize};

use super::{Group, Spread};
use crate::stats;
use crate::suite::Thresholds;

/// The gate's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    /// Whether every check passed.
    pub passed: bool,
    /// Each check, in order: pass rates, the baseline, cost, latency.
    pub checks: Vec<GateCheck>,
}

/// One check of the gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateCheck {
    /// What was checked: `pass_rate labeled`, `baseline all`, `cost_per_case`,
    /// `p95_latency`.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// The figures, in words.
    pub detail: String,
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

pub(super) fn judge(groups: &[Group], cost: &Spread, latency: &Spread, t: &Thresholds) -> Gate {
    let mut checks = Vec::new();
    for g in groups {
        if let Some(threshold) = g.threshold {
            let passed = g.rate >= threshold;
            let relation = if passed { "at least" } else { "below" };
            checks.push(GateCheck {
                name: format!("pass_rate {}", g.tag),
                passed,
                detail: format!(
                    "{} ({}/{}, 95% interval {}–{}) is {relation} {}",
                    pct(g.rate),
                    g.passed,
                    g.cases,
                    pct(g.interval.0),
                    pct(g.interval.1),
                    pct(threshold)
                ),
            });
        }
    }
    for g in groups {
        // Under 6 pairs no change can be significant: the check could not fail.
        let Some(p) = g
            .paired
            .as_ref()
            .filter(|p| p.pairs as u64 >= stats::min_discordant())
        else {
            continue;
        };
        let verdict = if p.significantly_worse {
            "significantly worse"
        } else {
            "not significantly worse"
        };
        checks.push(GateCheck {
            name: format!("baseline {}", g.tag),
            passed: !p.significantly_worse,
            detail: format!(
                "{} against {} on {} cases ({} regressed, {} improved, p = {:.4}): {verdict}",
                pct(p.rate),
                pct(p.baseline_rate),
                p.pairs,
                p.regressed,
                p.improved,
                p.p_value
            ),
        });
    }
    if let Some(max) = t.cost_per_case {
        let passed = cost.mean <= max;
        checks.push(GateCheck {
            name: "cost_per_case".to_owned(),
            passed,
            detail: format!(
                "mean ${:.6} per case is {} ${max:.6}",
                cost.mean,
                if passed { "within" } else { "above" }
            ),
        });
    }
    if let Some(max) = t.p95_latency_ms {
        let passed = latency.p95 <= max as f64;
        checks.push(GateCheck {
            name: "p95_latency".to_owned(),
            passed,
            detail: format!(
                "p95 {:.0} ms is {} {max} ms",
                latency.p95,
                if passed { "within" } else { "above" }
            ),
        });
    }
    Gate {
        passed: checks.iter().all(|c| c.passed),
        checks,
    }
}
