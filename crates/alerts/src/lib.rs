//! Alerts: rules over holdfast's own metrics, evaluated in process, announced to the
//! log, the dashboard (`GET /v1/holdfast/alerts`, served by holdfast-server) and
//! webhooks, and exported as a Prometheus rule file (`holdfast alerts
//! export-prometheus`).
//!
//! A crate of its own because none of it is HTTP serving: the server hands [`run`] a
//! way to read its exposition text and serves [`Alerting::snapshot`]; everything
//! between (sampling, evaluation, the state machine, delivery) lives here.
//!
//! How it fits together:
//!
//! - `rules.rs`: what each default rule computes, as signals defined by `/metrics`
//!   selectors (metric, label filter, fold) and an expression over them (a ratio of
//!   increases, a gauge, a trend, a ratio against its baseline).
//! - `sample.rs`: every `eval_interval`, one [`sample::Sample`] of every signal, read
//!   from the very exposition text `/metrics` serves.
//! - `eval.rs`: a pure function from a rule and the sample history to a value; the
//!   predictive rule fits a least-squares line over its window and reads it `horizon`
//!   ahead.
//! - `state.rs`: the pure state machine inactive → pending → firing → resolved, with
//!   hysteresis on the way out.
//! - `deliver.rs`: one log line per transition, and webhook POSTs through holdfast's
//!   own retry policy, off the evaluation path.
//! - `promql.rs`: the same rules as a Prometheus rule file, from the same selectors.
//!
//! The decision that shapes it: the rules read the metrics, not the events. The
//! policy and task events already feed `/metrics` through `events.rs`, their one
//! consumer; sampling what it wrote keeps that single writer, and makes the in-process
//! rules and the exported Prometheus rules the same rules by construction. The two
//! values the counters lacked are functions of time, so they became gauges this loop
//! refreshes with its clock before each sample (`metrics/alerting.rs`): the global
//! retry budget's balance (`holdfast_retry_budget_remaining`) and the age of the
//! oldest task still retrying a step (`holdfast_task_oldest_retry_seconds`, fed by
//! the engine's task events through `events.rs`).
//!
//! Rules are gateway-wide: they sum over routes, targets and workflows (the breaker
//! rule counts targets), so a notice says that something is wrong, and
//! `/v1/holdfast/targets` or `/metrics` say where.

mod deliver;
mod eval;
pub mod exposition;
pub mod promql;
mod rules;
mod sample;
mod state;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use holdfast_config::{AlertRule, Alerts};
use holdfast_policy::{Clock, Instant};
use serde::Serialize;
use serde_json::{Value, json};

use self::eval::{evaluate, history_needed};
use self::sample::Sample;
use self::state::{AlertState, Change, Phase};

/// Transitions the dashboard keeps.
const RECENT: usize = 200;

/// A firing or resolved notice: what the log, the dashboard and webhooks get. A
/// webhook receives it as the JSON body of a POST:
/// `{"alert", "severity", "state": "firing"|"resolved", "value", "threshold",
/// "summary", "started_at", "resolved_at"?}`. `value` and `threshold` are in the rule's
/// unit: a share for rates, seconds for durations, a count for `breaker_open`, a
/// factor over the baseline for baseline rules, projected retries for the budget.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    pub(crate) alert: &'static str,
    pub(crate) severity: &'static str,
    pub(crate) state: Change,
    pub(crate) value: f64,
    pub(crate) threshold: f64,
    pub(crate) summary: String,
    /// RFC 3339, UTC.
    pub(crate) started_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) resolved_at: Option<String>,
}

impl Notice {
    /// The quality gate failed on a configuration version: `value` failing suites,
    /// named with their failing cases in `summary`.
    pub fn gate_failed(summary: String, failing_suites: usize, unix_ms: u64) -> Notice {
        Notice {
            alert: "quality_gate",
            severity: "critical",
            state: Change::Firing,
            value: failing_suites as f64,
            threshold: 0.0,
            summary,
            started_at: rfc3339(unix_ms),
            resolved_at: None,
        }
    }
}

/// The rules, their states and the recent notices, shared with the dashboard.
pub struct Alerting {
    config: Alerts,
    board: Mutex<Board>,
    /// Where notices are posted, once the evaluation loop started.
    webhooks: std::sync::OnceLock<deliver::Webhooks>,
}

struct Board {
    /// By position in `config.rules`.
    states: Vec<AlertState>,
    recent: VecDeque<Notice>,
}

impl Alerting {
    /// The board of `config`'s rules, every one inactive.
    pub fn new(config: Alerts) -> Alerting {
        let states = vec![AlertState::default(); config.rules.len()];
        Alerting {
            config,
            board: Mutex::new(Board {
                states,
                recent: VecDeque::new(),
            }),
            webhooks: std::sync::OnceLock::new(),
        }
    }

    /// The rules, their webhooks and whether they are evaluated, as configured.
    pub fn config(&self) -> &Alerts {
        &self.config
    }

    /// Announces a notice that no rule raised (the quality gate's verdict on a
    /// configuration version): to the log, the dashboard's recent notices and the
    /// webhooks, like a rule's.
    pub fn announce(&self, notice: Notice) {
        deliver::log(&notice);
        self.remember(&notice);
        if let Some(webhooks) = self.webhooks.get() {
            webhooks.send(&Arc::new(notice));
        }
    }

    fn remember(&self, notice: &Notice) {
        let mut board = self.board.lock().unwrap_or_else(|e| e.into_inner());
        if board.recent.len() == RECENT {
            board.recent.pop_front();
        }
        board.recent.push_back(notice.clone());
    }

    /// Evaluates every enabled rule over `samples` (the last is now) and returns the
    /// notices of the alerts that changed.
    fn evaluate(&self, samples: &[Sample], now: Instant, unix_ms: u64) -> Vec<Notice> {
        let mut board = self.board.lock().unwrap_or_else(|e| e.into_inner());
        let mut notices = Vec::new();
        for (rule, state) in self.config.rules.iter().zip(board.states.iter_mut()) {
            if !rule.enabled {
                continue;
            }
            let reading = evaluate(rule, samples);
            let (next, transition) = state.step(rule, reading, now, unix_ms);
            *state = next;
            if let Some(t) = transition {
                let value = t.value.unwrap_or(f64::NAN);
                let mut summary = rules::summary(rule, value, t.eta);
                if reading == eval::Reading::NoData {
                    // Resolved for lack of data (traffic stopped, or a breaker keeps
                    // it away): say so rather than repeat the last bad value.
                    summary = format!("no data any more; last reading: {summary}");
                }
                notices.push(Notice {
                    alert: rule.kind.name(),
                    severity: rule.severity.name(),
                    state: t.change,
                    value: if value.is_finite() { value } else { 0.0 },
                    threshold: rule.threshold,
                    summary,
                    started_at: rfc3339(t.started_unix_ms),
                    resolved_at: t.resolved_unix_ms.map(rfc3339),
                });
            }
        }
        for notice in &notices {
            if board.recent.len() == RECENT {
                board.recent.pop_front();
            }
            board.recent.push_back(notice.clone());
        }
        notices
    }

    /// The dashboard's view: every rule with its state, and the recent notices.
    pub fn snapshot(&self) -> Value {
        let board = self.board.lock().unwrap_or_else(|e| e.into_inner());
        let alerts: Vec<Value> = self
            .config
            .rules
            .iter()
            .zip(&board.states)
            .map(|(rule, state)| rule_json(rule, state))
            .collect();
        let recent: Vec<&Notice> = board.recent.iter().rev().collect();
        json!({
            "enabled": self.config.enabled,
            "eval_interval_ms": self.config.eval_interval.as_millis() as u64,
            "alerts": alerts,
            "recent": recent,
        })
    }
}

fn rule_json(rule: &AlertRule, state: &AlertState) -> Value {
    let since = match state.phase {
        Phase::Firing { unix_ms, .. } => Some(rfc3339(unix_ms)),
        Phase::Inactive | Phase::Pending { .. } => None,
    };
    json!({
        "alert": rule.kind.name(),
        "enabled": rule.enabled,
        "severity": rule.severity.name(),
        "state": if rule.enabled { state.name() } else { "disabled" },
        "value": state.value.filter(|v| v.is_finite()),
        "threshold": rule.threshold,
        "for_ms": rule.for_duration.as_millis() as u64,
        "window_ms": rule.window.as_millis() as u64,
        "firing_since": since,
        "resolved_at": state.resolved_unix_ms.map(rfc3339),
        "summary": state.value.map(|v| rules::summary(rule, v, state.eta)),
    })
}

/// Stops the evaluation loop when dropped (when the server stops).
pub struct Running(tokio::task::JoinHandle<()>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts evaluating `alerts`' rules on the current runtime, unless alerts are
/// disabled. Every interval `exposition` is asked for the metrics text as of that
/// instant (the caller refreshes its time-derived gauges first), and one sample of
/// every signal is read from it.
pub fn start<F>(alerts: &Arc<Alerting>, clock: Arc<dyn Clock>, exposition: F) -> Option<Running>
where
    F: FnMut(Instant) -> String + Send + 'static,
{
    let config = &alerts.config;
    if !config.enabled {
        return None;
    }
    let webhooks = deliver::Webhooks::start(&config.webhooks, Arc::clone(&clock));
    if alerts.webhooks.set(webhooks).is_err() {
        tracing::warn!("alert rules are already evaluating; not starting them twice");
        return None;
    }
    tracing::info!(
        rules = config.rules.iter().filter(|r| r.enabled).count(),
        webhooks = config.webhooks.len(),
        interval_ms = config.eval_interval.as_millis() as u64,
        "alert rules evaluating"
    );
    Some(Running(tokio::spawn(run(
        Arc::clone(alerts),
        clock,
        exposition,
    ))))
}

/// Evaluates every interval. The alert board and its rules outlive configuration
/// reloads (`[alerts]` changes need a restart); `exposition` reads whatever
/// configuration is current at each tick.
async fn run<F>(alerts: Arc<Alerting>, clock: Arc<dyn Clock>, mut exposition: F)
where
    F: FnMut(Instant) -> String,
{
    let config = &alerts.config;
    let interval = config.eval_interval;
    let keep = history_needed(&config.rules, interval);
    let mut history: VecDeque<Sample> = VecDeque::new();
    let mut next = clock.now();
    loop {
        next = next + interval;
        clock.sleep_until(next).await;
        let now = clock.now();
        if now > next + interval {
            // Fell behind (a stalled runtime): evaluate once, not once per missed tick.
            next = now;
        }
        history.push_back(Sample::from_exposition(now, &exposition(now)));
        while history.len() > 2 && history[1].at + keep <= now {
            history.pop_front();
        }
        let notices = alerts.evaluate(history.make_contiguous(), now, clock.unix_millis());
        for notice in notices {
            deliver::log(&notice);
            if let Some(webhooks) = alerts.webhooks.get() {
                webhooks.send(&Arc::new(notice));
            }
        }
    }
}

/// `2026-11-23T17:48:20.123Z` from Unix milliseconds.
fn rfc3339(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        unix_ms % 1000
    )
}

/// Howard Hinnant's days-to-civil: the proleptic Gregorian date of a day number.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_456_100_123), "2026-11-23T17:48:20.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
