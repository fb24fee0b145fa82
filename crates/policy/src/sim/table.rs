//! The report over many seeds: both policies side by side per scenario, as one table.
//!
//! The decision that shapes it: the table shows rates per client request and per seed,
//! never raw totals alone, so that runs of 10 or 10,000 seeds read the same, and every
//! broken invariant gets its own line with its seed, so that it can be replayed with
//! [`run`](super::run).

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use super::check::Violation;
use super::report::{Aggregate, ratio};
use super::scenario::{PolicyKind, Scenario};

/// Both policies over the same seeds of one scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioReport {
    /// The scenario's name.
    pub scenario: &'static str,
    /// What it simulates.
    pub summary: &'static str,
    /// The holdfast policy's figures.
    pub holdfast: Aggregate,
    /// The naive policy's figures.
    pub naive: Aggregate,
}

impl ScenarioReport {
    /// Runs `scenario` under both policies for every seed in `seeds`.
    pub fn run(scenario: &Scenario, seeds: Range<u64>) -> Self {
        let mut report = ScenarioReport {
            scenario: scenario.name,
            summary: scenario.summary,
            holdfast: Aggregate::default(),
            naive: Aggregate::default(),
        };
        for seed in seeds {
            report
                .holdfast
                .add(&super::run(scenario, seed, PolicyKind::Holdfast));
            report
                .naive
                .add(&super::run(scenario, seed, PolicyKind::Naive));
        }
        report
    }

    /// The figures of `policy`.
    pub fn policy(&self, policy: PolicyKind) -> &Aggregate {
        match policy {
            PolicyKind::Holdfast => &self.holdfast,
            PolicyKind::Naive => &self.naive,
        }
    }
}

/// Every scenario's report, printable as one table.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The seeds each scenario ran.
    pub seeds: Range<u64>,
    /// One report per scenario, in order.
    pub scenarios: Vec<ScenarioReport>,
}

impl Report {
    /// Runs every scenario under both policies for every seed in `seeds`.
    /// Scenarios are independent, so each runs on its own thread; every seed inside
    /// one stays sequential and deterministic.
    pub fn run(scenarios: &[Scenario], seeds: Range<u64>) -> Self {
        let reports = std::thread::scope(|scope| {
            let runs: Vec<_> = scenarios
                .iter()
                .map(|s| {
                    let seeds = seeds.clone();
                    scope.spawn(move || ScenarioReport::run(s, seeds))
                })
                .collect();
            runs.into_iter()
                .map(|run| {
                    run.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
        Report {
            scenarios: reports,
            seeds,
        }
    }

    /// Every violation: scenario, policy, seed and what broke.
    pub fn violations(&self) -> impl Iterator<Item = (&'static str, PolicyKind, u64, &Violation)> {
        self.scenarios.iter().flat_map(|s| {
            [PolicyKind::Holdfast, PolicyKind::Naive]
                .into_iter()
                .flat_map(move |kind| {
                    s.policy(kind)
                        .violations
                        .iter()
                        .map(move |(seed, v)| (s.scenario, kind, *seed, v))
                })
        })
    }
}

/// Violations printed in full; the rest are counted.
const SHOWN_VIOLATIONS: usize = 100;

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (start, end) = (self.seeds.start, self.seeds.end);
        let seeds = end.saturating_sub(start);
        writeln!(f, "{seeds} seeds per scenario (seeds {start}..{end})")?;
        write_header(f)?;
        for (name, kind, figures) in self.rows() {
            write_row(f, name, kind, figures)?;
        }
        writeln!(f, "\nrequests without an answer, by reason")?;
        for (name, kind, figures) in self.rows() {
            let reasons: Vec<String> = figures
                .gave_up
                .iter()
                .map(|(why, n)| format!("{why} {n}"))
                .collect();
            let reasons = if reasons.is_empty() {
                "none".to_owned()
            } else {
                reasons.join(", ")
            };
            writeln!(f, "{name:<13} {:<9} {reasons}", kind.name())?;
        }
        writeln!(f)?;
        for scenario in &self.scenarios {
            writeln!(f, "{:<13} {}", scenario.scenario, scenario.summary)?;
        }
        let total = self.violations().count();
        writeln!(f, "\ninvariant violations: {total}")?;
        for (scenario, kind, seed, violation) in self.violations().take(SHOWN_VIOLATIONS) {
            writeln!(f, "  {scenario} {} seed {seed}: {violation}", kind.name())?;
        }
        if total > SHOWN_VIOLATIONS {
            writeln!(f, "  … and {} more", total - SHOWN_VIOLATIONS)?;
        }
        Ok(())
    }
}

impl Report {
    /// One row per scenario and policy; the scenario's name only on its first row.
    fn rows(&self) -> impl Iterator<Item = (&'static str, PolicyKind, &Aggregate)> {
        self.scenarios.iter().flat_map(|s| {
            [(s.scenario, PolicyKind::Holdfast), ("", PolicyKind::Naive)]
                .into_iter()
                .map(move |(name, kind)| (name, kind, s.policy(kind)))
        })
    }
}

const COLUMNS: [(&str, &str, usize); 10] = [
    ("requests", "", 9),
    ("success", "", 8),
    ("upstream", "/req", 9),
    ("retries", "/req", 8),
    ("fallbacks", "/req", 10),
    ("trips", "/seed", 6),
    ("p50", "latency", 8),
    ("p99", "latency", 8),
    ("timed out", "", 9),
    ("violations", "", 10),
];

fn write_header(f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{:<13} {:<9}", "scenario", "policy")?;
    for (title, _, width) in COLUMNS {
        write!(f, " {title:>width$}")?;
    }
    write!(f, "\n{:<23}", "")?;
    for (_, unit, width) in COLUMNS {
        write!(f, " {unit:>width$}")?;
    }
    writeln!(f)
}

fn write_row(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    kind: PolicyKind,
    a: &Aggregate,
) -> fmt::Result {
    let cells = [
        a.requests.to_string(),
        format!("{:.3}%", 100.0 * a.success_rate()),
        format!("{:.3}", a.per_request(a.upstream)),
        format!("{:.3}", a.per_request(a.retries)),
        format!("{:.3}", a.per_request(a.fallbacks)),
        format!("{:.1}", ratio(a.breaker_trips, a.seeds)),
        human(a.latency(50.0)),
        human(a.latency(99.0)),
        a.timed_out.to_string(),
        a.violations.len().to_string(),
    ];
    write!(f, "{name:<13} {:<9}", kind.name())?;
    for (cell, (_, _, width)) in cells.iter().zip(COLUMNS) {
        write!(f, " {cell:>width$}")?;
    }
    writeln!(f)
}

/// `850ms`, `1.25s`, `12.3s`.
fn human(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..10_000 => format!("{:.2}s", d.as_secs_f64()),
        _ => format!("{:.1}s", d.as_secs_f64()),
    }
}
