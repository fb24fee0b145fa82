//! `GET /v1/holdfast/targets`: each target's health as the pipeline sees it now.
//!
//! A snapshot of the shared registry (breaker state, when an open breaker may admit
//! again, a pending Retry-After, an operator's drain), taken under the registry lock and serialised after
//! it is released. Instants on the injected clock are shown as Unix milliseconds and
//! as time remaining.

use axum::http::StatusCode;
use axum::response::Response;
use holdfast_policy::Instant;
use serde_json::{Value, json};

use crate::access::Agent;
use crate::events::millis;
use crate::respond;

/// The targets' health.
pub(crate) async fn targets(caller: Agent) -> Response {
    let gateway = caller.gateway;
    let gw = &gateway.inner;
    let reply = gw.reply();
    let now = gw.clock.now();
    let unix = gw.clock.unix_millis();
    let at = |instant: Instant| -> Value {
        if instant <= now {
            return Value::Null;
        }
        let ahead = instant.saturating_duration_since(now);
        json!(unix.saturating_add(u64::try_from(ahead.as_millis()).unwrap_or(u64::MAX)))
    };
    let remaining = |instant: Instant| millis(instant.saturating_duration_since(now));
    let data: Vec<Value> = {
        let registry = gw.registry.lock().unwrap_or_else(|e| e.into_inner());
        gw.targets
            .iter()
            .zip(registry.targets())
            .map(|(target, health)| {
                let open_until = health
                    .breaker
                    .as_ref()
                    .and_then(|b| b.open_until())
                    .unwrap_or(Instant::ZERO);
                json!({
                    "name": &*target.name,
                    "provider": &target.provider,
                    "model": &target.endpoint.model,
                    "breaker": health.breaker.as_ref().map_or("disabled", |b| b.state().name()),
                    "open_until": at(open_until),
                    "open_remaining_ms": remaining(open_until),
                    "not_before": at(health.not_before),
                    "retry_after_ms": remaining(health.not_before),
                    "drained_until": at(health.drained_until),
                    "drained_remaining_ms": remaining(health.drained_until),
                    "concurrency": health.limiter.as_ref().map(|l| json!({
                        "limit": l.limit(), "in_flight": l.in_flight(),
                        "queued": l.queued(), "sheds": l.sheds(),
                    })),
                })
            })
            .collect()
    };
    let body = serde_json::to_vec(&json!({"object": "list", "data": data})).unwrap_or_default();
    respond::json(StatusCode::OK, body, &reply)
}
