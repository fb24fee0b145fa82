//! `[alerts]`: overrides merged onto the default rules, each value checked against the
//! rule it belongs to.
//!
//! The decision: a field that does not apply to a rule (`horizon` on a rate rule, a
//! duration threshold on a ratio) is an error at that field, not ignored, because a
//! value the server silently drops is a rule that never does what its author meant.
//! Webhook URLs are parsed here so a bad one stops `config check`, not the first alert.

use std::time::Duration;

use super::{Checker, known};
use crate::alerts::{AlertKind, AlertRule, Alerts, Shape, Webhook};
use crate::path::FieldPath;
use crate::schema::{self, Threshold};

const MIN_INTERVAL: Duration = Duration::from_millis(10);
const MAX_INTERVAL: Duration = Duration::from_secs(300);
const DAY: Duration = Duration::from_secs(24 * 3600);
const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);
/// Samples of history the server keeps at most (about 12 MB).
const MAX_SAMPLES: f64 = 50_000.0;

/// Checks `[alerts]`.
pub(super) fn alerts(c: &mut Checker<'_>, raw: &schema::Alerts) -> Option<Alerts> {
    let path = FieldPath::root("alerts");
    let before = c.problems.len();
    let interval = raw.eval_interval.0;
    if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
        c.invalid(path.key("eval_interval"), "must be \"10ms\" to \"5m\"");
    }
    let webhooks = raw
        .webhooks
        .iter()
        .enumerate()
        .filter_map(|(i, hook)| webhook(c, &path.key("webhooks").index(i), hook))
        .collect();
    let mut rules: Vec<AlertRule> = AlertKind::ALL
        .iter()
        .map(|k| AlertRule::default_for(*k))
        .collect();
    for (name, change) in &raw.rules {
        let at = path.key("rules").key(name);
        let Some(kind) = AlertKind::from_name(name) else {
            let names: Vec<String> = AlertKind::ALL.iter().map(|k| k.name().into()).collect();
            c.invalid(
                at,
                format!("unknown alert rule {name:?} {}", known(names.iter())),
            );
            continue;
        };
        if let Some(rule) = rules.iter_mut().find(|r| r.kind == kind) {
            apply(c, &at, rule, change);
        }
    }
    for rule in rules
        .iter()
        .filter(|r| r.enabled && r.kind.shape() != Shape::Gauge)
    {
        let at = path.key("rules").key(rule.kind.name());
        if rule.window < interval {
            c.invalid(at.key("window"), "must be at least `alerts.eval_interval`");
            continue;
        }
        // The server keeps one sample per interval over the longest window; bound it.
        let history = match rule.kind.shape() {
            Shape::Baseline => rule.window + rule.baseline_window,
            Shape::Rate | Shape::Trend | Shape::Gauge => rule.window,
        };
        if !interval.is_zero() && history.as_secs_f64() / interval.as_secs_f64() > MAX_SAMPLES {
            c.invalid(
                at.key("window"),
                format!(
                    "with `alerts.eval_interval` {interval:?} this needs more than {MAX_SAMPLES} \
                     samples; raise the interval or shorten the window"
                ),
            );
        }
    }
    if c.problems.len() > before {
        return None;
    }
    Some(Alerts {
        enabled: raw.enabled,
        eval_interval: interval,
        webhooks,
        rules,
    })
}

fn webhook(c: &mut Checker<'_>, path: &FieldPath, raw: &schema::Webhook) -> Option<Webhook> {
    // The URL itself stays out of messages: many receivers put a token in its path.
    let problem = match url::Url::parse(&raw.url) {
        Ok(url) if !matches!(url.scheme(), "http" | "https") => Some(format!(
            "has scheme `{}`; a webhook must be http:// or https://",
            url.scheme()
        )),
        Ok(url) if url.host_str().is_none_or(str::is_empty) => Some("has no host".to_owned()),
        Ok(url) if !url.username().is_empty() || url.password().is_some() => Some(
            "must not carry credentials in the URL; use `secret_env` for a bearer token".to_owned(),
        ),
        Ok(_) => None,
        Err(e) => Some(format!(
            "is not a URL ({e}); write it like \"https://alerts.example.com/hook\""
        )),
    };
    if let Some(problem) = problem {
        c.invalid(path.key("url"), problem);
        return None;
    }
    let secret = match &raw.secret_env {
        Some(var) => Some(c.secret(path.key("secret_env"), var)?),
        None => None,
    };
    Some(Webhook {
        url: raw.url.clone(),
        secret,
    })
}

/// Applies one `[alerts.rules.NAME]` table to its default.
fn apply(c: &mut Checker<'_>, at: &FieldPath, rule: &mut AlertRule, raw: &schema::RuleOverride) {
    let shape = rule.kind.shape();
    if let Some(enabled) = raw.enabled {
        rule.enabled = enabled;
    }
    if let Some(severity) = raw.severity {
        rule.severity = severity;
    }
    if let Some(threshold) = raw.threshold {
        if let Some(value) = threshold_value(c, &at.key("threshold"), rule.kind, threshold) {
            rule.threshold = value;
        }
    }
    if let Some(hold) = raw.for_duration {
        if hold.0 > DAY {
            c.invalid(at.key("for"), "must be at most \"24h\"");
        }
        rule.for_duration = hold.0;
    }
    if let Some(window) = raw.window {
        if shape == Shape::Gauge {
            c.invalid(at.key("window"), not_for(rule.kind, "rules with a window"));
        } else if window.0.is_zero() || window.0 > DAY {
            c.invalid(
                at.key("window"),
                "must be longer than zero and at most \"24h\"",
            );
        }
        rule.window = window.0;
    }
    if let Some(volume) = raw.min_volume {
        if !matches!(shape, Shape::Rate | Shape::Baseline) {
            c.invalid(at.key("min_volume"), not_for(rule.kind, "rate rules"));
        } else if !volume.is_finite() || volume < 0.0 {
            c.invalid(at.key("min_volume"), "must be a number ≥ 0");
        }
        rule.min_volume = volume;
    }
    if let Some(horizon) = raw.horizon {
        if shape != Shape::Trend {
            c.invalid(at.key("horizon"), not_for(rule.kind, "predictive rules"));
        } else if horizon.0.is_zero() || horizon.0 > DAY {
            c.invalid(
                at.key("horizon"),
                "must be longer than zero and at most \"24h\"",
            );
        }
        rule.horizon = horizon.0;
    }
    if let Some(baseline) = raw.baseline_window {
        if shape != Shape::Baseline {
            c.invalid(
                at.key("baseline_window"),
                not_for(rule.kind, "baseline rules"),
            );
        } else if baseline.0.is_zero() || baseline.0 > WEEK {
            c.invalid(
                at.key("baseline_window"),
                "must be longer than zero and at most \"168h\"",
            );
        }
        rule.baseline_window = baseline.0;
    }
}

fn not_for(kind: AlertKind, only: &str) -> String {
    format!("does not apply to `{}` (only to {only})", kind.name())
}

/// The threshold as a number (seconds for durations), if it suits `kind`.
fn threshold_value(
    c: &mut Checker<'_>,
    at: &FieldPath,
    kind: AlertKind,
    raw: Threshold,
) -> Option<f64> {
    let problem = match (kind.threshold_is_duration(), raw) {
        (true, Threshold::Duration(d)) if d.0.is_zero() => {
            Some("must be longer than zero".to_owned())
        }
        (true, Threshold::Duration(d)) => return Some(d.0.as_secs_f64()),
        (true, Threshold::Number(n)) => Some(format!(
            "{n} has no unit: `{}` takes a duration like \"{n}s\"",
            kind.name()
        )),
        (false, Threshold::Duration(_)) => {
            Some(format!("`{}` takes a number, not a duration", kind.name()))
        }
        (false, Threshold::Number(n)) => number_problem(kind, n),
    };
    match problem {
        Some(problem) => {
            c.invalid(at.clone(), problem);
            None
        }
        None => match raw {
            Threshold::Number(n) => Some(n),
            Threshold::Duration(d) => Some(d.0.as_secs_f64()),
        },
    }
}

fn number_problem(kind: AlertKind, n: f64) -> Option<String> {
    let ok = n.is_finite()
        && match kind {
            AlertKind::RetryRate
            | AlertKind::SuccessAfterRetry
            | AlertKind::MaxRetriesExceeded
            | AlertKind::CompletionRate => n > 0.0 && n <= 1.0,
            // Below 1 by more than the resolve band, or a firing alert never resolves.
            AlertKind::StoreUnreachable | AlertKind::QualityScore => n > 0.0 && n <= 0.9,
            AlertKind::BreakerOpen | AlertKind::RetryBudgetExhaustion | AlertKind::ChaosFailed => {
                n >= 0.0
            }
            AlertKind::EscalationRate | AlertKind::CostPerTask => n > 1.0,
            AlertKind::RetryDelay | AlertKind::TaskRetryingLong => false,
        };
    if ok {
        return None;
    }
    Some(match kind {
        AlertKind::RetryRate
        | AlertKind::SuccessAfterRetry
        | AlertKind::MaxRetriesExceeded
        | AlertKind::CompletionRate => {
            format!("{n} is not a share in (0, 1]")
        }
        AlertKind::BreakerOpen => format!("{n} is not a count of targets ≥ 0"),
        AlertKind::ChaosFailed => format!("{n} is not a count of experiments ≥ 0"),
        AlertKind::StoreUnreachable => {
            format!("{n} is not a value of holdfast_store_up in (0, 0.9]")
        }
        AlertKind::QualityScore => format!("{n} is not a score in (0, 0.9]"),
        AlertKind::RetryBudgetExhaustion => format!("{n} is not a number of retries ≥ 0"),
        AlertKind::EscalationRate | AlertKind::CostPerTask => {
            format!("{n} is not a factor over the baseline > 1")
        }
        AlertKind::RetryDelay | AlertKind::TaskRetryingLong => {
            format!("{n} is not a duration")
        }
    })
}
