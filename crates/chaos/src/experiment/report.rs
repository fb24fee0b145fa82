//! How an experiment reads to an operator (the verdict, then each probe per phase) and
//! to a script (JSON with the whole record).

use std::fmt;

use serde_json::{Value, json};

use super::run::{Report, Verdict};

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Passed => f.write_str("PASSED: the steady state held throughout"),
            Verdict::Deviated { probe, phase, at } => write!(
                f,
                "DEVIATED: \"{probe}\" did not hold {} (at +{:.1} s)",
                phase.name(),
                at.as_secs_f64()
            ),
            Verdict::NotSteady { probe } => write!(
                f,
                "NOT STEADY: \"{probe}\" did not hold before the method; nothing was injected"
            ),
            Verdict::Failed(why) => write!(f, "FAILED: {why}"),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "experiment: {} ({})", self.title, self.file)?;
        writeln!(
            f,
            "{:<8} {:<36} {:>22} {:>16}  held",
            "phase", "probe", "value", "tolerance"
        )?;
        for j in &self.judgements {
            writeln!(
                f,
                "{:<8} {:<36} {:>22} {:>16}  {}",
                j.phase.name(),
                j.probe,
                j.shown,
                j.tolerance,
                if j.held { "yes" } else { "NO" }
            )?;
        }
        write!(f, "verdict: {}", self.verdict)
    }
}

impl Report {
    /// The report as JSON: the verdict, every judgement, the actions and the requests.
    pub fn to_json(&self) -> Value {
        let secs = |d: std::time::Duration| d.as_secs_f64();
        let verdict = match &self.verdict {
            Verdict::Passed => json!({"status": "passed"}),
            Verdict::Deviated { probe, phase, at } => json!({
                "status": "deviated", "probe": probe, "phase": phase.name(), "at_s": secs(*at),
            }),
            Verdict::NotSteady { probe } => json!({"status": "not_steady", "probe": probe}),
            Verdict::Failed(why) => json!({"status": "failed", "error": why}),
        };
        json!({
            "title": self.title,
            "file": self.file,
            "started_unix_ms": self.started_unix_ms,
            "passed": self.verdict.passed(),
            "verdict": verdict,
            "phases": self.phases.iter().map(|p| json!({
                "phase": p.phase.name(), "start_s": secs(p.start), "end_s": secs(p.end),
            })).collect::<Vec<_>>(),
            "fault_windows": self.fault_windows.iter().map(|(a, b)| json!([secs(*a), secs(*b)])).collect::<Vec<_>>(),
            "judgements": self.judgements.iter().map(|j| json!({
                "probe": j.probe, "phase": j.phase.name(), "value": j.value, "shown": j.shown,
                "tolerance": j.tolerance, "held": j.held,
                "deviated_at_s": (!j.held).then(|| secs(j.deviated_at)),
            })).collect::<Vec<_>>(),
            "actions": self.actions.iter().map(|a| json!({
                "list": a.list, "what": a.what, "at_s": secs(a.at), "done_s": secs(a.done), "error": a.error,
            })).collect::<Vec<_>>(),
            "requests": self.samples.len(),
            "tasks": self.tasks.statuses,
            "steps_twice": self.tasks.twice.iter()
                .filter(|(_, t)| t.as_ref().map_or(true, |steps| !steps.is_empty()))
                .map(|(id, t)| (id.clone(), match t {
                    Ok(steps) => json!(steps),
                    Err(why) => json!({ "unread": why }),
                }))
                .collect::<serde_json::Map<String, Value>>(),
        })
    }
}
