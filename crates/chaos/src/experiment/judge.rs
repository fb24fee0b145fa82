//! Judging probes against the record: the requests of a phase and the counters read at
//! its boundaries. Pure functions, so a verdict can be checked without a server.

use std::collections::BTreeMap;
use std::time::Duration;

use toml::Spanned;

use super::run::{PhaseSpan, Sample};
use super::spec::{Bound, Phase, Probe, ProbeKind};
use super::traffic::Settled;
use crate::api::Api;

/// One probe in one phase.
#[derive(Debug, Clone)]
pub struct Judgement {
    /// The probe's name.
    pub probe: String,
    /// The phase.
    pub phase: Phase,
    /// What was measured, when it could be.
    pub value: Option<f64>,
    /// The value as people read it (`97.5%`, `1.20 s`, `12 calls`).
    pub shown: String,
    /// The tolerance (`≥ 99%`).
    pub tolerance: String,
    /// Whether it held.
    pub held: bool,
    /// When it stopped holding, since the start (the phase's end for counters).
    pub deviated_at: Duration,
}

/// The counters the probes read, at one instant: one value per probe (`None` for a
/// probe that reads the traffic, or when the read failed, with why).
#[derive(Debug, Clone)]
pub(crate) struct Counters(Vec<Result<Option<f64>, String>>);

impl Counters {
    /// Reads every counter the probes need.
    pub(crate) async fn read(probes: &[Spanned<Probe>], api: &Api) -> Counters {
        let mut values = Vec::with_capacity(probes.len());
        let mut metrics: Option<Result<String, String>> = None;
        for probe in probes.iter().map(Spanned::get_ref) {
            let value = match probe.kind {
                ProbeKind::UpstreamCalls => {
                    let url = probe.url.clone().unwrap_or_default();
                    upstream_total(&url).await.map(Some)
                }
                ProbeKind::Metric => {
                    if metrics.is_none() {
                        metrics = Some(api.text("/metrics").await);
                    }
                    match &metrics {
                        Some(Ok(text)) => Ok(Some(metric_sum(text, probe))),
                        Some(Err(e)) => Err(e.clone()),
                        None => Ok(None),
                    }
                }
                ProbeKind::SuccessRate
                | ProbeKind::Latency
                | ProbeKind::TrafficShare
                | ProbeKind::CostPerRequest
                | ProbeKind::TasksCompleted
                | ProbeKind::StepsOnce => Ok(None),
            };
            values.push(value);
        }
        Counters(values)
    }
}

impl Counters {
    /// The values of the probes not on tasks, in order: the counters of the probes
    /// judged while the experiment runs.
    pub(crate) fn off_tasks(&self, probes: &[Spanned<Probe>]) -> Counters {
        let kept = probes.iter().zip(&self.0);
        Counters(
            kept.filter(|(p, _)| !p.get_ref().kind.on_tasks())
                .map(|(_, v)| v.clone())
                .collect(),
        )
    }
}

/// The requests a mock provider or fault proxy has received (`GET /admin/stats`).
async fn upstream_total(base: &str) -> Result<f64, String> {
    let url = format!("{}/admin/stats", base.trim_end_matches('/'));
    let stats: serde_json::Value = reqwest::get(&url)
        .await
        .map_err(|e| format!("GET {url}: {}", e.without_url()))?
        .json()
        .await
        .map_err(|e| format!("GET {url}: {}", e.without_url()))?;
    stats["total"]
        .as_f64()
        .ok_or_else(|| format!("GET {url}: no `total` in the answer"))
}

/// The sum of the series of `probe.metric` carrying all of `probe.labels`.
fn metric_sum(text: &str, probe: &Probe) -> f64 {
    let name = probe.metric.as_deref().unwrap_or_default();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, labels) = series.split_once('{').unwrap_or((series, ""));
            if metric != name {
                return None;
            }
            let all = probe
                .labels
                .iter()
                .all(|(k, v)| labels.contains(&format!("{k}=\"{v}\"")));
            all.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// Judges every probe in every recorded phase it names.
pub(crate) fn all(
    probes: &[Spanned<Probe>],
    phases: &[PhaseSpan],
    counters: &[Counters],
    samples: &[Sample],
    tasks: &Settled,
) -> Vec<Judgement> {
    let mut out = Vec::new();
    for (k, span) in phases.iter().enumerate() {
        let in_phase: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.at >= span.start && s.at < span.end)
            .collect();
        for (i, probe) in probes.iter().map(Spanned::get_ref).enumerate() {
            if !probe.when.contains(&span.phase) {
                continue;
            }
            let delta = match (counters.get(k), counters.get(k + 1)) {
                (Some(a), Some(b)) => match (&a.0[i], &b.0[i]) {
                    (Ok(Some(a)), Ok(Some(b))) => Ok(Some(b - a)),
                    (Err(e), _) | (_, Err(e)) => Err(e.clone()),
                    _ => Ok(None),
                },
                _ => Err("the counters were not read".to_owned()),
            };
            out.push(one(probe, span, &in_phase, delta, tasks));
        }
    }
    out
}

fn one(
    probe: &Probe,
    span: &PhaseSpan,
    samples: &[&Sample],
    delta: Result<Option<f64>, String>,
    tasks: &Settled,
) -> Judgement {
    let min = probe.min;
    let max = match probe.max {
        Some(Bound::Number(v)) => Some(v),
        Some(Bound::Duration(d)) => Some(d.as_secs_f64()),
        None => None,
    };
    let answered: Vec<&Sample> = samples
        .iter()
        .copied()
        .filter(|s| s.outcome.is_ok())
        .collect();
    let share = |n: usize, of: usize| (of > 0).then(|| n as f64 / of as f64);
    // (value, shown, the first sample that went against the tolerance)
    let (value, shown, first_bad): (Option<f64>, String, Option<Duration>) = match probe.kind {
        ProbeKind::SuccessRate => {
            let value = share(answered.len(), samples.len());
            let bad = samples.iter().find(|s| s.outcome.is_err()).map(|s| s.at);
            (value, percent(value, samples.len()), bad)
        }
        ProbeKind::TrafficShare => {
            let target = probe.target.as_deref().unwrap_or_default();
            let by = |s: &Sample| matches!(&s.outcome, Ok((t, _)) if t == target);
            let value = share(answered.iter().filter(|s| by(s)).count(), answered.len());
            let low = min.is_some_and(|m| value.unwrap_or(0.0) < m);
            let bad = answered.iter().find(|s| by(s) != low).map(|s| s.at);
            (value, percent(value, answered.len()), bad)
        }
        ProbeKind::Latency => {
            let mut latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
            latencies.sort_unstable();
            let p = probe.percentile.unwrap_or(99.0);
            let value = (!latencies.is_empty()).then(|| rank(&latencies, p).as_secs_f64());
            let bad = max.and_then(|m| {
                samples
                    .iter()
                    .find(|s| s.latency.as_secs_f64() > m)
                    .map(|s| s.at)
            });
            let shown =
                value.map_or_else(|| "no requests".to_owned(), |v| format!("p{p} {v:.3} s"));
            (value, shown, bad)
        }
        ProbeKind::TasksCompleted => {
            let accepted: Vec<&str> = samples.iter().filter_map(|s| s.task.as_deref()).collect();
            let done = |status: &String| probe.statuses.contains(status);
            let succeeded = accepted
                .iter()
                .filter(|id| tasks.statuses.get(**id).is_some_and(done))
                .count();
            let value = share(succeeded, accepted.len());
            let shown = value.map_or_else(
                || "no tasks accepted".to_owned(),
                |v| format!("{:.1}% of {} tasks", v * 100.0, accepted.len()),
            );
            (value, shown, None)
        }
        ProbeKind::StepsOnce => {
            let accepted: Vec<&str> = samples.iter().filter_map(|s| s.task.as_deref()).collect();
            let unread = accepted
                .iter()
                .find_map(|id| tasks.twice.get(*id).and_then(|t| t.as_ref().err()));
            let twice: Vec<(&str, &Vec<String>)> = accepted
                .iter()
                .filter_map(|id| match tasks.twice.get(*id) {
                    Some(Ok(steps)) if !steps.is_empty() => Some((*id, steps)),
                    _ => None,
                })
                .collect();
            match unread {
                // A journal that cannot be read proves nothing either way.
                Some(why) => (None, format!("a journal was not read: {why}"), None),
                None => {
                    let value = share(accepted.len() - twice.len(), accepted.len());
                    let shown = match (value, twice.first()) {
                        (None, _) => "no tasks accepted".to_owned(),
                        (Some(_), Some((id, steps))) => format!(
                            "{} of {} tasks committed a step twice (task {id}: {})",
                            twice.len(),
                            accepted.len(),
                            steps.join(", ")
                        ),
                        (Some(_), None) => {
                            format!("every step once in {} tasks", accepted.len())
                        }
                    };
                    (value, shown, None)
                }
            }
        }
        ProbeKind::CostPerRequest => {
            let total: f64 = answered
                .iter()
                .filter_map(|s| s.outcome.as_ref().ok().map(|(_, c)| *c))
                .sum();
            let value = (!answered.is_empty()).then(|| total / answered.len() as f64);
            let shown = value.map_or_else(|| "no answers".to_owned(), |v| format!("${v:.6}"));
            (value, shown, None)
        }
        ProbeKind::UpstreamCalls | ProbeKind::Metric => match delta {
            Ok(value) if probe.per_request => {
                let value =
                    value.and_then(|v| (!samples.is_empty()).then(|| v / samples.len() as f64));
                let shown = value.map_or_else(
                    || "no requests".to_owned(),
                    |v| format!("{v:.2} per request ({} requests)", samples.len()),
                );
                (value, shown, None)
            }
            Ok(value) => {
                let shown = value.map_or_else(|| "not read".to_owned(), |v| format!("{v}"));
                (value, shown, None)
            }
            Err(e) => (None, e, None),
        },
    };
    let held = value.is_some_and(|v| min.is_none_or(|m| v >= m) && max.is_none_or(|m| v <= m));
    Judgement {
        probe: probe.name.clone(),
        phase: span.phase,
        value,
        shown,
        tolerance: tolerance(probe, min, max),
        held,
        deviated_at: if held {
            Duration::ZERO
        } else {
            first_bad.unwrap_or(span.end).clamp(span.start, span.end)
        },
    }
}

fn percent(value: Option<f64>, of: usize) -> String {
    value.map_or_else(
        || "no requests".to_owned(),
        |v| format!("{:.1}% of {of}", v * 100.0),
    )
}

fn tolerance(probe: &Probe, min: Option<f64>, max: Option<f64>) -> String {
    let shown = |v: f64| match probe.kind {
        ProbeKind::SuccessRate
        | ProbeKind::TrafficShare
        | ProbeKind::TasksCompleted
        | ProbeKind::StepsOnce => format!("{:.1}%", v * 100.0),
        ProbeKind::Latency => format!("{v:.3} s"),
        ProbeKind::CostPerRequest => format!("${v:.6}"),
        ProbeKind::UpstreamCalls | ProbeKind::Metric => format!("{v}"),
    };
    match (min, max) {
        (Some(a), Some(b)) => format!("{} … {}", shown(a), shown(b)),
        (Some(a), None) => format!("≥ {}", shown(a)),
        (None, Some(b)) => format!("≤ {}", shown(b)),
        (None, None) => String::new(),
    }
}

/// The nearest-rank percentile of sorted latencies.
pub(crate) fn rank(sorted: &[Duration], p: f64) -> Duration {
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted
        .get(i.saturating_sub(1).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

/// A line for the live view: `ok 19/20 · p99 12.0 ms · primary 15 · fallback 4`.
pub(crate) fn summary<'a>(samples: impl Iterator<Item = &'a Sample>) -> String {
    let (mut n, mut ok) = (0, 0);
    let mut latencies = Vec::new();
    let mut by: BTreeMap<String, u64> = BTreeMap::new();
    for s in samples {
        n += 1;
        latencies.push(s.latency);
        match &s.outcome {
            Ok((t, _)) => {
                ok += 1;
                *by.entry(t.clone()).or_default() += 1;
            }
            Err(code) => *by.entry(code.clone()).or_default() += 1,
        }
    }
    latencies.sort_unstable();
    let spread: Vec<String> = by.iter().map(|(k, v)| format!("{k} {v}")).collect();
    format!(
        "ok {ok}/{n} · p99 {:.1} ms · {}",
        rank(&latencies, 99.0).as_secs_f64() * 1000.0,
        spread.join(" · ")
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::experiment::spec::Experiment;

    fn probes(text: &str) -> Vec<Spanned<Probe>> {
        let file = format!("title = \"t\"\n[traffic]\nroute = \"r\"\n{text}");
        Experiment::parse(&file, "t.toml", &BTreeMap::new())
            .unwrap()
            .steady_state
            .probes
    }

    fn sample(ms: u64, outcome: Result<&str, &str>) -> Sample {
        Sample {
            at: Duration::from_millis(ms),
            latency: Duration::from_millis(10),
            outcome: outcome.map(|t| (t.to_owned(), 0.0)).map_err(str::to_owned),
            task: None,
        }
    }

    fn during(start: u64, end: u64) -> PhaseSpan {
        PhaseSpan {
            phase: Phase::During,
            start: Duration::from_millis(start),
            end: Duration::from_millis(end),
        }
    }

    #[test]
    fn a_success_rate_deviates_at_its_first_failure_in_the_phase() {
        let probes =
            probes("[[steady_state.probes]]\nname = \"ok\"\nkind = \"success_rate\"\nmin = 0.9\n");
        let samples = [
            sample(500, Err("http_503")),
            sample(1100, Ok("a")),
            sample(1200, Err("http_503")),
            sample(1300, Ok("a")),
        ];
        let counters = [Counters(vec![Ok(None)]), Counters(vec![Ok(None)])];
        let judged = all(
            &probes,
            &[during(1000, 2000)],
            &counters,
            &samples,
            &Settled::default(),
        );
        assert_eq!(judged.len(), 1);
        assert!(!judged[0].held);
        assert_eq!(judged[0].value, Some(2.0 / 3.0));
        assert_eq!(judged[0].deviated_at, Duration::from_millis(1200));
    }

    #[test]
    fn upstream_calls_per_request_divide_the_counter_growth_by_the_phase_requests() {
        let probes = probes(
            "[[steady_state.probes]]\nname = \"calls\"\nkind = \"upstream_calls\"\nurl = \"http://x\"\nper_request = true\nmax = 1.5\n",
        );
        let samples = [sample(1100, Err("x")), sample(1200, Err("x"))];
        let counters = [
            Counters(vec![Ok(Some(10.0))]),
            Counters(vec![Ok(Some(16.0))]),
        ];
        let judged = all(
            &probes,
            &[during(1000, 2000)],
            &counters,
            &samples,
            &Settled::default(),
        );
        assert_eq!(judged[0].value, Some(3.0));
        assert!(!judged[0].held);
        assert_eq!(judged[0].deviated_at, Duration::from_millis(2000));
    }

    #[test]
    fn a_counter_that_could_not_be_read_does_not_hold() {
        let probes = probes(
            "[[steady_state.probes]]\nname = \"calls\"\nkind = \"upstream_calls\"\nurl = \"http://x\"\nmax = 5\n",
        );
        let counters = [
            Counters(vec![Err("unreachable".to_owned())]),
            Counters(vec![Ok(Some(1.0))]),
        ];
        let judged = all(
            &probes,
            &[during(0, 1000)],
            &counters,
            &[],
            &Settled::default(),
        );
        assert!(!judged[0].held);
        assert_eq!(judged[0].shown, "unreachable");
    }

    #[test]
    fn a_step_committed_twice_breaks_steps_once_and_an_unread_journal_is_not_judged() {
        let probes =
            probes("[[steady_state.probes]]\nname = \"once\"\nkind = \"steps_once\"\nmin = 1.0\n");
        let task = |ms, id: &str| Sample {
            task: Some(id.to_owned()),
            ..sample(ms, Ok("a"))
        };
        let samples = [task(1100, "t1"), task(1200, "t2")];
        let counters = [Counters(vec![Ok(None)]), Counters(vec![Ok(None)])];
        let mut settled = Settled::default();
        settled.twice.insert("t1".to_owned(), Ok(Vec::new()));
        settled
            .twice
            .insert("t2".to_owned(), Ok(vec!["call".to_owned()]));
        let judged = all(
            &probes,
            &[during(1000, 2000)],
            &counters,
            &samples,
            &settled,
        );
        assert_eq!(judged[0].value, Some(0.5));
        assert!(!judged[0].held);
        assert!(
            judged[0].shown.contains("task t2: call"),
            "{}",
            judged[0].shown
        );

        settled.twice.insert("t2".to_owned(), Ok(Vec::new()));
        let judged = all(
            &probes,
            &[during(1000, 2000)],
            &counters,
            &samples,
            &settled,
        );
        assert!(judged[0].held, "{}", judged[0].shown);

        settled
            .twice
            .insert("t2".to_owned(), Err("http_503".to_owned()));
        let judged = all(
            &probes,
            &[during(1000, 2000)],
            &counters,
            &samples,
            &settled,
        );
        assert_eq!(judged[0].value, None);
        assert!(!judged[0].held);
    }
}
