//! The server's side of alerting (holdfast-alerts): it starts the evaluation loop on
//! the gateway's own exposition and says how alerts are routed for `holdfast
//! readiness`. The rules, their evaluation and delivery live in holdfast-alerts.

use std::sync::Arc;

use holdfast_alerts::{Alerting, Running};
use holdfast_policy::Instant;

use crate::gateway::{Gateway, Inner};

/// Starts evaluating `gateway`'s alert rules on the current runtime, unless alerts
/// are disabled. Each tick reads the configuration current then: a reload (`live.rs`)
/// swaps the registry and maybe the metrics.
pub(crate) fn start(gateway: &Gateway) -> Option<Running> {
    let inner = &gateway.inner;
    let live = Arc::clone(&gateway.live);
    holdfast_alerts::start(&inner.alerts, Arc::clone(&inner.clock), move |now| {
        exposition(&live.current(), now)
    })
}

/// Refreshes the time-derived gauges, then renders the exposition the rules sample.
fn exposition(inner: &Inner, now: Instant) -> String {
    let balance = {
        let registry = inner.registry.lock().unwrap_or_else(|e| e.into_inner());
        registry.global_budget.as_ref().map(|b| b.balance(now))
    };
    inner.metrics.set_retry_budget(balance);
    inner.metrics.age_retrying(now);
    let mut text = inner.metrics.render();
    if let Some(sampling) = inner.sampling.get() {
        text.push_str(&sampling.sampler.exposition());
    }
    text
}

/// Whether rules are evaluated, how many webhooks notices go to, and the enabled
/// rules' names: what `holdfast readiness` checks.
pub(crate) fn routing(alerts: &Alerting) -> holdfast_quality::readiness::AlertRouting {
    let config = alerts.config();
    holdfast_quality::readiness::AlertRouting {
        enabled: config.enabled,
        webhooks: config.webhooks.len(),
        rules: config
            .rules
            .iter()
            .filter(|r| r.enabled)
            .map(|r| r.kind.name().to_owned())
            .collect(),
    }
}
