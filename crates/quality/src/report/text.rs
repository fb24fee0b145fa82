//! The terminal summary of a report: a few lines a person reads after a run.
//!
//! Every pass rate is shown with its interval and, when a baseline is given, its
//! change and p-value; the smallest detectable drop is always said, so a small suite
//! is not read as a fine-grained guard. Then what changed, what failed, and the gate.

use std::fmt::Write as _;

use super::{Group, Report};

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn points(x: f64) -> String {
    format!("{:.0} pts", x * 100.0)
}

/// How many failing cases the summary lists (the HTML and JSON list all).
const SHOWN_FAILURES: usize = 10;

pub(super) fn render(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "suite {} · {} · run {} (tenant {}, seed {})",
        r.suite, r.task, r.run_id, r.tenant, r.seed
    );
    let _ = writeln!(
        out,
        "{} cases: {} passed, {} failed, {} errors",
        r.cases, r.passed, r.failed, r.errors
    );
    let width = r.groups.iter().map(|g| g.tag.len()).max().unwrap_or(3);
    for g in &r.groups {
        let _ = writeln!(out, "  {}", group_line(g, width));
    }
    let _ = writeln!(
        out,
        "cost per case: mean ${:.6}, p95 ${:.6}, total ${:.6} (judges ${:.6})",
        r.cost_usd.mean, r.cost_usd.p95, r.cost_usd.total, r.judge_cost_usd
    );
    let _ = writeln!(
        out,
        "latency: p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        r.latency_ms.p50, r.latency_ms.p95, r.latency_ms.p99, r.latency_ms.max
    );
    let _ = writeln!(
        out,
        "detects: the smallest drop a comparison with a baseline sees at this size (80% \
         power, exact McNemar, p < 0.05); none under 6 cases"
    );
    if let Some(c) = &r.baseline {
        let _ = writeln!(
            out,
            "against baseline {}: {} cases paired, {} regressed, {} improved",
            c.run_id,
            c.pairs,
            c.regressed.len(),
            c.improved.len()
        );
        for change in c.regressed.iter().take(SHOWN_FAILURES) {
            let _ = writeln!(out, "  regressed {}: {}", change.case_id, change.why);
        }
        for change in c.improved.iter().take(SHOWN_FAILURES) {
            let _ = writeln!(out, "  improved  {}", change.case_id);
        }
    }
    for line in r.not_passed.iter().take(SHOWN_FAILURES) {
        let _ = writeln!(
            out,
            "  {} {} ({:.2}): {}",
            line.outcome, line.case_id, line.score, line.why
        );
    }
    if r.not_passed.len() > SHOWN_FAILURES {
        let _ = writeln!(out, "  … and {} more", r.not_passed.len() - SHOWN_FAILURES);
    }
    let failed: Vec<String> = r
        .gate
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    if r.gate.passed {
        let _ = writeln!(out, "gate: passed ({} checks)", r.gate.checks.len());
    } else {
        let _ = writeln!(out, "gate: FAILED");
        for f in failed {
            let _ = writeln!(out, "  {f}");
        }
    }
    out
}

fn group_line(g: &Group, width: usize) -> String {
    let (low, high) = g.interval;
    let mut line = format!(
        "{:<width$}  {:>4}/{:<4} {:>6}  [{} – {}]",
        g.tag,
        g.passed,
        g.cases,
        pct(g.rate),
        pct(low),
        pct(high)
    );
    let threshold = match g.threshold {
        Some(t) => {
            let mark = if g.rate >= t { "ok" } else { "BELOW" };
            format!("threshold {} {mark}", pct(t))
        }
        None => String::new(),
    };
    let _ = write!(line, "  {threshold:<24}");
    let detects = g.detectable_drop.map_or_else(|| "none".to_owned(), points);
    let _ = write!(line, "detects {detects:<7}");
    if let Some(p) = &g.paired {
        let delta = (p.rate - p.baseline_rate) * 100.0;
        let _ = write!(
            line,
            "  vs baseline {} ({delta:+.1} pts, p = {:.3}{})",
            pct(p.baseline_rate),
            p.p_value,
            if p.significantly_worse { ", WORSE" } else { "" }
        );
    }
    line.trim_end().to_owned()
}
