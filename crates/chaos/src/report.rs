//! How a drill reads to an operator: a table per phase, the checks with their
//! verdicts, and the same as JSON for a script.

use std::fmt;
use std::time::Duration;

use serde_json::{Value, json};

use crate::drill::{DrillReport, PhaseReport};

impl fmt::Display for DrillReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "failover drill: route {}, target {} drained",
            self.route, self.target
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<10} {:>8} {:>8} {:>9} {:>9} {:>10}  served by / failures",
            "phase", "requests", "ok", "p50", "p99", "cost"
        )?;
        for phase in &self.phases {
            writeln!(
                f,
                "{:<10} {:>8} {:>7.1}% {:>9} {:>9} {:>10}  {}",
                phase.phase.name(),
                phase.requests,
                phase.success_rate() * 100.0,
                human(phase.p50),
                human(phase.p99),
                format!("${:.4}", phase.cost_usd),
                spread(phase)
            )?;
        }
        writeln!(f)?;
        for check in &self.checks {
            let mark = if check.passed { "ok    " } else { "FAILED" };
            writeln!(f, "  {mark} {}", check.what)?;
        }
        let verdict = if self.passed() { "PASSED" } else { "FAILED" };
        write!(f, "\nverdict: {verdict}")
    }
}

impl DrillReport {
    /// The report as JSON: phases, checks and the verdict.
    pub fn to_json(&self) -> Value {
        let phases: Vec<Value> = self
            .phases
            .iter()
            .map(|p| {
                json!({
                    "phase": p.phase.name(),
                    "requests": p.requests,
                    "succeeded": p.succeeded,
                    "served_by": p.served_by,
                    "failures": p.failures,
                    "p50_ms": p.p50.as_secs_f64() * 1000.0,
                    "p99_ms": p.p99.as_secs_f64() * 1000.0,
                    "cost_usd": p.cost_usd,
                })
            })
            .collect();
        let checks: Vec<Value> = self
            .checks
            .iter()
            .map(|c| json!({"check": c.what, "passed": c.passed}))
            .collect();
        json!({
            "route": self.route,
            "target": self.target,
            "phases": phases,
            "returned_after_ms": self.returned_after.map(|d| d.as_secs_f64() * 1000.0),
            "checks": checks,
            "passed": self.passed(),
        })
    }
}

/// Who served, then what failed: `fallback 50 · primary 2 · upstream_error 1`.
fn spread(phase: &PhaseReport) -> String {
    let served = phase.served_by.iter().map(|(t, n)| format!("{t} {n}"));
    let failed = phase.failures.iter().map(|(c, n)| format!("{c} {n}"));
    let all: Vec<String> = served.chain(failed).collect();
    if all.is_empty() {
        "-".to_owned()
    } else {
        all.join(" · ")
    }
}

/// A duration as people read it: `2.6 ms`, `1.25 s`.
pub(crate) fn human(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.2} s", d.as_secs_f64())
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    }
}
