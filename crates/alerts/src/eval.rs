//! Evaluation: a rule's value over a series of samples, as a pure function.
//!
//! The decision: the evaluator sees only samples (instants and numbers) and a rule,
//! never the clock or the gateway, so every rule, the predictive projection included,
//! is tested with synthetic series in plain function calls. Windows are read the way
//! Prometheus' `increase` reads them, minus extrapolation: the latest sample against
//! the last sample at or before the window's start (or the oldest one, while the
//! history is shorter than the window).

use std::time::Duration;

use holdfast_config::AlertRule;
use holdfast_policy::Instant;

use super::rules::{Expr, Signal, expr};
use super::sample::Sample;

/// A rule's value now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Reading {
    /// Not enough data (a metric not exposed, too few events, no history): never fires.
    NoData,
    /// The value compared with the threshold, and for a falling trend the seconds until
    /// it crosses the threshold.
    Value { value: f64, eta: Option<f64> },
}

/// Evaluates `rule` over `samples` (oldest first; the last is now).
pub(crate) fn evaluate(rule: &AlertRule, samples: &[Sample]) -> Reading {
    let Some(now) = samples.last() else {
        return Reading::NoData;
    };
    let value = match expr(rule.kind) {
        Expr::Gauge(signal) => now.get(signal),
        Expr::Ratio { num, den } => {
            let start = at_or_before(samples, now.at - rule.window);
            ratio(start, now, num, den, rule.min_volume)
        }
        Expr::Baseline { num, den } => baseline(rule, samples, now, num, den),
        Expr::WorstRatio { num, den } => {
            let start = at_or_before(samples, now.at - rule.window);
            let ratios = now.groups_of(den).filter_map(|group| {
                let d = (now.get_in(den, group)? - start.get_in(den, group)?).max(0.0);
                if d <= 0.0 || d < rule.min_volume {
                    return None;
                }
                Some((now.get_in(num, group)? - start.get_in(num, group)?).max(0.0) / d)
            });
            if rule.fires_above() {
                ratios.reduce(f64::max)
            } else {
                ratios.reduce(f64::min)
            }
        }
        Expr::Trend { signal, spent } => {
            let start = at_or_before(samples, now.at - rule.window);
            let spending = increase(start, now, spent).is_some_and(|spent| spent > 0.0);
            // One sample has no trend either way: no data, as for a spending budget.
            if spending || samples.len() < 2 {
                return trend(rule, samples, now.at, signal);
            }
            now.get(signal)
        }
    };
    match value {
        Some(value) if value.is_finite() => Reading::Value { value, eta: None },
        Some(_) | None => Reading::NoData,
    }
}

/// The last sample at or before `t`, or the oldest one.
fn at_or_before(samples: &[Sample], t: Instant) -> &Sample {
    let after = samples.partition_point(|s| s.at <= t);
    &samples[after.saturating_sub(1)]
}

fn increase(from: &Sample, to: &Sample, signal: Signal) -> Option<f64> {
    // Counters of one process only grow; a drop would be a restart, which starts the
    // history over.
    Some((to.get(signal)? - from.get(signal)?).max(0.0))
}

fn ratio(from: &Sample, to: &Sample, num: Signal, den: Signal, min_volume: f64) -> Option<f64> {
    let d = increase(from, to, den)?;
    if d <= 0.0 || d < min_volume {
        return None;
    }
    Some(increase(from, to, num)? / d)
}

/// The ratio over the window divided by the ratio over the baseline window before it.
/// No data until the history covers both windows (a baseline from the first minutes
/// after a start is noise), and a zero baseline is no data: "twice nothing" is not a
/// baseline to compare with.
fn baseline(
    rule: &AlertRule,
    samples: &[Sample],
    now: &Sample,
    num: Signal,
    den: Signal,
) -> Option<f64> {
    let window_start = now.at - rule.window;
    let baseline_start = window_start - rule.baseline_window;
    if samples.first()?.at > baseline_start {
        return None;
    }
    let start = at_or_before(samples, window_start);
    let current = ratio(start, now, num, den, rule.min_volume)?;
    let base_start = at_or_before(samples, baseline_start);
    let base = ratio(base_start, start, num, den, rule.min_volume)?;
    (base > 0.0).then(|| current / base)
}

/// A least-squares line through the window's samples, read `horizon` after now.
fn trend(rule: &AlertRule, samples: &[Sample], now: Instant, signal: Signal) -> Reading {
    let start = now - rule.window;
    let points: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.at >= start)
        .filter_map(|s| Some((seconds_before(now, s.at), s.get(signal)?)))
        .collect();
    let Some((slope, at_now)) = fit(&points) else {
        return Reading::NoData;
    };
    let value = at_now + slope * rule.horizon.as_secs_f64();
    let threshold = rule.threshold;
    let eta = if at_now <= threshold {
        Some(0.0)
    } else if slope < 0.0 {
        Some((at_now - threshold) / -slope)
    } else {
        None
    };
    Reading::Value { value, eta }
}

/// Seconds from `now` back to `at`, negative (the fit's x axis has now at 0).
fn seconds_before(now: Instant, at: Instant) -> f64 {
    -now.saturating_duration_since(at).as_secs_f64()
}

/// The slope and the intercept at x = 0 of the least-squares line, if at least two
/// points span some time.
fn fit(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if sxx <= f64::EPSILON {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let slope = sxy / sxx;
    Some((slope, mean_y - slope * mean_x))
}

/// How much history evaluation needs: the longest window (baseline included) of the
/// enabled rules, plus a margin of two intervals.
pub(crate) fn history_needed(rules: &[AlertRule], interval: Duration) -> Duration {
    rules
        .iter()
        .filter(|r| r.enabled)
        .map(|r| match expr(r.kind) {
            Expr::Baseline { .. } => r.window + r.baseline_window,
            Expr::Ratio { .. } | Expr::WorstRatio { .. } | Expr::Trend { .. } => r.window,
            Expr::Gauge(_) => Duration::ZERO,
        })
        .max()
        .unwrap_or(Duration::ZERO)
        + interval * 2
}

#[cfg(test)]
#[path = "eval_tests.rs"]
mod tests;
