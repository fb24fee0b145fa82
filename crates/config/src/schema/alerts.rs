//! `[alerts]`: the alert rules the server evaluates over its own metrics, and where
//! their firing and resolved notices go.
//!
//! Every rule ships with a production default (the table in
//! [`AlertKind`](crate::AlertKind)'s docs); a `[alerts.rules.NAME]` table overrides
//! only the fields it writes, so `[alerts.rules.retry_rate] threshold = 0.2` keeps the
//! default window, `for` and severity. Rule names are a closed set: a typo is an error,
//! not a rule that never fires.
//!
//! ```toml
//! [alerts]
//! eval_interval = "5s"
//! webhooks = [{ url = "https://alerts.example.com/holdfast", secret_env = "HOOK_TOKEN" }]
//!
//! [alerts.rules.breaker_open]
//! for = "2m"
//! severity = "critical"
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::units::HumanDuration;

/// `[alerts]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Alerts {
    /// Whether the server evaluates alert rules at all. Default `true`.
    pub enabled: bool,
    /// How often the rules are evaluated, and so how often the metrics are sampled;
    /// `"10ms"` to `"5m"` and at most every rule's `window`. Default `"5s"`.
    pub eval_interval: HumanDuration,
    /// `[[alerts.webhooks]]` or `webhooks = [{ url = … }]`: where firing and resolved
    /// notices are POSTed as JSON, each through holdfast's own retry policy. Default:
    /// none (notices still go to the log and `GET /v1/holdfast/alerts`).
    pub webhooks: Vec<Webhook>,
    /// `[alerts.rules.NAME]`: overrides of the default rules, by rule name
    /// (`retry_rate`, `success_after_retry`, `retry_delay`, `breaker_open`,
    /// `max_retries_exceeded`, `retry_budget_exhaustion`, `task_retrying_long`,
    /// `escalation_rate`, `cost_per_task`, `completion_rate`, `store_unreachable`,
    /// `chaos_failed`).
    /// Default: none (every
    /// default applies).
    pub rules: BTreeMap<String, RuleOverride>,
}

impl Default for Alerts {
    fn default() -> Self {
        Alerts {
            enabled: true,
            eval_interval: HumanDuration::secs(5),
            webhooks: Vec::new(),
            rules: BTreeMap::new(),
        }
    }
}

/// One webhook receiver.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// The URL notices are POSTed to: `http://` or `https://` with a host. Required.
    pub url: String,
    /// The environment variable holding a token sent as `Authorization: Bearer TOKEN`,
    /// so the receiver can tell holdfast's calls from anyone else's. The token never
    /// goes in the file, a log or a notice. Default: no `Authorization` header.
    pub secret_env: Option<String>,
}

/// `[alerts.rules.NAME]`: what to change in one default rule. Every field is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuleOverride {
    /// Whether the rule is evaluated. Default `true`.
    pub enabled: Option<bool>,
    /// The value the rule compares against. A number for rates and ratios
    /// (`retry_rate`: `0.1`, a share in `(0, 1]`; `escalation_rate` and
    /// `cost_per_task`: the factor over the baseline, > 1), a count for
    /// `breaker_open` (targets whose breaker is not closed, ≥ 0) and `chaos_failed`
    /// (scheduled experiments whose latest run failed, ≥ 0), retries left for
    /// `retry_budget_exhaustion` (≥ 0), the value of `holdfast_store_up` it fires below
    /// for `store_unreachable` (`0.5`, in `(0, 0.9]`), and a duration for `retry_delay`
    /// and `task_retrying_long` (`"60s"`, `"30m"`).
    pub threshold: Option<Threshold>,
    /// How long the condition must hold before the alert fires; `"0s"` fires at the
    /// first evaluation that sees it. Written `for`. At most `"24h"`.
    #[serde(rename = "for")]
    pub for_duration: Option<HumanDuration>,
    /// The window rates and trends are computed over; at least `eval_interval`, at
    /// most `"24h"`. Not for `breaker_open`, `task_retrying_long`, `store_unreachable`
    /// and `chaos_failed`, which read a current value.
    pub window: Option<HumanDuration>,
    /// `"info"`, `"warning"` or `"critical"`.
    pub severity: Option<Severity>,
    /// The fewest events in the window (attempts, calls, retries or tasks, the rule's
    /// denominator) for a rate to count: fewer is "no data", and no data never fires.
    /// ≥ 0. Only for rate and baseline rules.
    pub min_volume: Option<f64>,
    /// How far ahead a predictive rule projects its trend (`retry_budget_exhaustion`
    /// only); > 0, at most `"24h"`.
    pub horizon: Option<HumanDuration>,
    /// The window before `window` that a baseline rule compares with
    /// (`escalation_rate`, `cost_per_task` only); > 0, at most `"168h"`.
    pub baseline_window: Option<HumanDuration>,
}

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// `"info"`: worth knowing, no action needed.
    Info,
    /// `"warning"`: something degrades; look soon.
    Warning,
    /// `"critical"`: users are affected now.
    Critical,
}

impl Severity {
    /// Its name in the file, the log and notices.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// A threshold as written: a number, or a duration string for rules about time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    /// A plain number (`0.1`, `2`).
    Number(f64),
    /// A duration (`"60s"`).
    Duration(HumanDuration),
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ThresholdVisitor)
    }
}

struct ThresholdVisitor;

impl Visitor<'_> for ThresholdVisitor {
    type Value = Threshold;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number like 0.1, or a duration like \"60s\"")
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Threshold, E> {
        Ok(Threshold::Number(n))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Threshold, E> {
        Ok(Threshold::Number(n as f64))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Threshold, E> {
        Ok(Threshold::Number(n as f64))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Threshold, E> {
        holdfast_policy::setting::parse_duration("threshold", text)
            .map(|d| Threshold::Duration(HumanDuration(d)))
            .map_err(|e| E::custom(e.problem))
    }
}
