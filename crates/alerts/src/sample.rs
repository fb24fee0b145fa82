//! One reading of every signal, taken from the text `/metrics` serves.
//!
//! The decision: sample the exposition, not the counters behind it. Parsing a few
//! kilobytes every `eval_interval` costs nothing next to a request, and it means the
//! alerts read exactly the series a Prometheus server scraping us reads, by the same
//! names, so the in-process rules and the exported Prometheus rules agree by
//! construction, and the metrics module needs no second, alerts-shaped API.

use std::collections::{BTreeMap, HashSet};

use holdfast_policy::Instant;

use super::rules::{Fold, Signal};
use crate::exposition::Series;

/// Every signal at one instant; `None` when its metric is not exposed at all.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub(crate) at: Instant,
    pub(crate) values: [Option<f64>; Signal::ALL.len()],
    /// The signals kept apart by their selector's `by` label: by signal index, then
    /// label value.
    pub(crate) groups: BTreeMap<(usize, String), f64>,
}

impl Sample {
    /// A sample with every signal missing.
    pub(crate) fn empty(at: Instant) -> Sample {
        Sample {
            at,
            values: [None; Signal::ALL.len()],
            groups: BTreeMap::new(),
        }
    }

    /// The value of `signal`.
    pub(crate) fn get(&self, signal: Signal) -> Option<f64> {
        self.values[signal.index()]
    }

    /// The value of `signal` for `group` (a task type): zero while the signal is
    /// exposed and the group has no series yet.
    pub(crate) fn get_in(&self, signal: Signal, group: &str) -> Option<f64> {
        let key = (signal.index(), group.to_owned());
        self.get(signal)
            .map(|_| self.groups.get(&key).copied().unwrap_or(0.0))
    }

    /// The groups `signal` has a value for.
    pub(crate) fn groups_of(&self, signal: Signal) -> impl Iterator<Item = &str> {
        let index = signal.index();
        self.groups
            .keys()
            .filter(move |(i, _)| *i == index)
            .map(|(_, group)| group.as_str())
    }

    /// Sets `signal` for `group`, and the signal's total with it (for tests).
    #[cfg(test)]
    pub(crate) fn with_in(mut self, signal: Signal, group: &str, value: f64) -> Sample {
        let total = self.get(signal).unwrap_or(0.0) + value;
        self.values[signal.index()] = Some(total);
        self.groups
            .insert((signal.index(), group.to_owned()), value);
        self
    }

    /// Sets `signal` (for tests and synthetic series).
    #[cfg(test)]
    pub(crate) fn with(mut self, signal: Signal, value: f64) -> Sample {
        self.values[signal.index()] = Some(value);
        self
    }

    /// Reads every signal from a Prometheus text exposition.
    pub(crate) fn from_exposition(at: Instant, text: &str) -> Sample {
        // A declared family with no samples yet is zero; an undeclared one is missing.
        let mut declared: HashSet<String> = HashSet::new();
        let mut series = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    if kind == "histogram" || kind == "summary" {
                        declared.insert(format!("{name}_sum"));
                        declared.insert(format!("{name}_count"));
                    }
                    declared.insert(name.to_owned());
                }
            } else if !line.starts_with('#') && !line.trim().is_empty() {
                if let Some(parsed) = Series::parse(line) {
                    series.push(parsed);
                }
            }
        }
        let mut sample = Sample::empty(at);
        for signal in Signal::ALL {
            let selector = signal.selector();
            if !declared.contains(selector.metric) {
                continue;
            }
            let matching: Vec<&Series> = series
                .iter()
                .filter(|s| {
                    s.name == selector.metric
                        && selector.label.is_none_or(|(label, values)| {
                            s.labels
                                .iter()
                                .any(|(l, v)| l == label && values.contains(&v.as_str()))
                        })
                })
                .collect();
            if let Some(by) = selector.by {
                for s in &matching {
                    if let Some((_, group)) = s.labels.iter().find(|(l, _)| l == by) {
                        let key = (signal.index(), group.clone());
                        *sample.groups.entry(key).or_insert(0.0) += s.value;
                    }
                }
            }
            let matching = matching.into_iter();
            let value = match selector.fold {
                Fold::Sum => matching.map(|s| s.value).sum(),
                Fold::CountPositive => matching.filter(|s| s.value > 0.0).count() as f64,
                Fold::Min => match matching.map(|s| s.value).reduce(f64::min) {
                    Some(lowest) => lowest,
                    None => continue,
                },
            };
            sample.values[signal.index()] = Some(value);
        }
        sample
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP holdfast_attempts_total Attempts.
# TYPE holdfast_attempts_total counter
holdfast_attempts_total{target="a",outcome="ok"} 90
holdfast_attempts_total{target="b\"x",outcome="server_error"} 10
# TYPE holdfast_retries_total counter
# TYPE holdfast_retry_delay_seconds histogram
# TYPE holdfast_gave_up_total counter
holdfast_gave_up_total{route="r",reason="exhausted"} 3
holdfast_gave_up_total{route="r",reason="budget_exhausted"} 4
# TYPE holdfast_breaker_state gauge
holdfast_breaker_state{target="a"} 2
holdfast_breaker_state{target="b"} 0
holdfast_breaker_state{target="c"} 1
"#;

    #[test]
    fn reads_sums_filters_and_counts_from_the_exposition() {
        let s = Sample::from_exposition(Instant::ZERO, TEXT);
        assert_eq!(s.get(Signal::Attempts), Some(100.0));
        // Declared without samples: zero, not missing.
        assert_eq!(s.get(Signal::Retries), Some(0.0));
        assert_eq!(s.get(Signal::RetryDelayCount), Some(0.0));
        assert_eq!(s.get(Signal::Exhausted), Some(3.0));
        assert_eq!(s.get(Signal::BreakersNotClosed), Some(2.0));
        // Not exposed at all: missing.
        assert_eq!(s.get(Signal::BudgetRemaining), None);
        assert_eq!(s.get(Signal::OldestRetryingTask), None);
    }

    #[test]
    fn task_counts_are_kept_per_task_type_beside_their_sum() {
        let text = "# TYPE holdfast_tasks_total counter
            holdfast_tasks_total{workflow=\"a\",status=\"succeeded\"} 9
            holdfast_tasks_total{workflow=\"a\",status=\"failed\"} 1
            holdfast_tasks_total{workflow=\"b\",status=\"failed\"} 4
            holdfast_tasks_total{workflow=\"b\",status=\"submitted\"} 6
";
        let s = Sample::from_exposition(Instant::ZERO, text);
        assert_eq!(s.get(Signal::TasksFinished), Some(14.0));
        assert_eq!(s.get_in(Signal::TasksFinished, "a"), Some(10.0));
        assert_eq!(s.get_in(Signal::TasksFinished, "b"), Some(4.0));
        assert_eq!(s.get_in(Signal::TasksSucceeded, "b"), Some(0.0));
        let groups: Vec<&str> = s.groups_of(Signal::TasksFinished).collect();
        assert_eq!(groups, ["a", "b"]);
        assert_eq!(s.get_in(Signal::Attempts, "a"), None);
    }
}
