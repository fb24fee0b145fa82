//! Production scoring's families of `/metrics`, in the Prometheus text format.
//!
//! Written here, beside the counts, so the server only appends the text. Labels are
//! task types, names the configuration validated (letters, digits and `_ . : / @ -`),
//! so they need no escaping.

use std::fmt::Write;

use super::Sampler;

impl Sampler {
    /// The families: the recent mean score, the samples by what became of them, and
    /// the judges' cost, per task type.
    pub fn exposition(&self) -> String {
        let stats = self.stats();
        let mut out = String::with_capacity(1024);
        let _ = writeln!(
            out,
            "# HELP holdfast_quality_score Mean score (0 to 1) of the last {} scored production samples.\n\
             # TYPE holdfast_quality_score gauge",
            super::RECENT
        );
        for (task, s) in &stats {
            if let Some(score) = s.recent_score {
                let _ = writeln!(
                    out,
                    "holdfast_quality_score{{task_type=\"{task}\"}} {score}"
                );
            }
        }
        out.push_str(
            "# HELP holdfast_quality_samples_total Production answers sampled, and what became of them: \
             scored, skipped_budget (the judge's budget for the hour was spent), dropped (the scoring \
             queue was full), error (ungradable or not kept).\n\
             # TYPE holdfast_quality_samples_total counter\n",
        );
        for (task, s) in &stats {
            for (result, n) in [
                ("sampled", s.sampled),
                ("scored", s.scored),
                ("skipped_budget", s.skipped_budget),
                ("dropped", s.dropped),
                ("error", s.errors),
            ] {
                let _ = writeln!(
                    out,
                    "holdfast_quality_samples_total{{task_type=\"{task}\",result=\"{result}\"}} {n}"
                );
            }
        }
        out.push_str(
            "# HELP holdfast_quality_judge_cost_usd_total What judging production samples cost, in US dollars.\n\
             # TYPE holdfast_quality_judge_cost_usd_total counter\n",
        );
        for (task, s) in &stats {
            let _ = writeln!(
                out,
                "holdfast_quality_judge_cost_usd_total{{task_type=\"{task}\"}} {}",
                s.judge_cost_usd
            );
        }
        out
    }
}
