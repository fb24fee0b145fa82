//! `/admin/targets/{name}/drain` and `/admin/targets/{name}/restore`: take a target out
//! of rotation and put it back, without a configuration change; and
//! `/admin/targets/{name}/reset`: close its breaker and forget a pending Retry-After,
//! when an operator knows better than the evidence (a provider's incident is over).
//!
//! For maintenance, a provider's announced incident, or a failover drill. A drained
//! target is passed over by every call as an open breaker is (skip reason `drained` in
//! the ledger and in `holdfast_skipped_total`), and its breaker, budgets and
//! Retry-After are left as they are. The decision: a drain always has an end (`for`,
//! at most [`MAX_DRAIN`]), so a drain someone forgot cannot keep a target out for
//! ever; `restore` ends it sooner. A reload that keeps the target keeps its drain.
//!
//! - `POST /admin/targets/{name}/drain` `{"for": "30s"}`
//! - `POST /admin/targets/{name}/restore` (no body)
//!
//! Both answer the target's drain state: `{"name", "drained_until_ms",
//! "drained_remaining_ms"}` (`null` and 0 when in rotation).

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use holdfast_policy::Instant;
use holdfast_policy::fallback::TargetId;
use serde::Deserialize;
use serde_json::json;

use crate::access::Operator;
use crate::engine_api::{parse, read_body, reply};
use crate::error::ApiError;
use crate::events::millis;
use crate::extract::Path;
use crate::gateway::Inner;

/// The longest drain: a day.
pub(crate) const MAX_DRAIN: Duration = Duration::from_secs(24 * 3600);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DrainBody {
    /// How long, as `"30s"`, `"10m"`, `"2h"`.
    #[serde(rename = "for")]
    duration: String,
}

/// `POST /admin/targets/{name}/drain`.
pub(crate) async fn drain(
    caller: Operator,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let gateway = caller.gateway;
    let gw = &gateway.inner;
    let target = target_id(gw, &name)?;
    let body = read_body(&gateway, &headers, body).await?;
    let request: DrainBody = parse(&body, false)?;
    let duration = holdfast_policy::setting::parse_duration("for", &request.duration)
        .map_err(|e| invalid_for(e.to_string()))?;
    if duration.is_zero() || duration > MAX_DRAIN {
        return Err(invalid_for(format!(
            "`for` must be more than 0 and at most {}h",
            MAX_DRAIN.as_secs() / 3600
        )));
    }
    let until = gw.clock.now() + duration;
    gw.registry
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain(target, until);
    tracing::warn!(target = %name, seconds = duration.as_secs_f64(), "target drained");
    Ok(state(gw, target, &name))
}

/// `POST /admin/targets/{name}/restore`.
pub(crate) async fn restore(
    caller: Operator,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let gateway = caller.gateway;
    let gw = &gateway.inner;
    let target = target_id(gw, &name)?;
    gw.registry
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .restore(target);
    tracing::info!(target = %name, "target restored");
    Ok(state(gw, target, &name))
}

/// `POST /admin/targets/{name}/reset`: answers `{"name", "breaker", "retry_after_ms"}`
/// as they are after the reset.
pub(crate) async fn reset(
    caller: Operator,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let gateway = caller.gateway;
    let gw = &gateway.inner;
    let target = target_id(gw, &name)?;
    let (transition, breaker) = {
        let mut registry = gw.registry.lock().unwrap_or_else(|e| e.into_inner());
        let transition = registry.reset(target);
        let breaker = registry
            .target(target)
            .and_then(|h| h.breaker.as_ref())
            .map(|b| b.state().name());
        (transition, breaker)
    };
    if let Some(transition) = &transition {
        let index = target.0 as usize;
        gw.metrics
            .breaker_transition(index, transition.from, transition.to);
        gw.metrics.breaker_state(index, transition.to);
        crate::events::log_transition(gw, target, transition);
    }
    if let Some(shared) = gw.shared_health.get() {
        shared.reset(&name);
    }
    tracing::warn!(target = %name, "target reset: breaker closed, Retry-After forgotten");
    Ok(reply(
        StatusCode::OK,
        &json!({"name": name, "breaker": breaker, "retry_after_ms": 0}),
    ))
}

fn target_id(gw: &Inner, name: &str) -> Result<TargetId, ApiError> {
    gw.targets
        .iter()
        .position(|t| &*t.name == name)
        .and_then(|index| u32::try_from(index).ok())
        .map(TargetId)
        .ok_or_else(|| ApiError::NotFound(format!("no target named {name:?}")))
}

fn invalid_for(message: String) -> ApiError {
    ApiError::InvalidRequest {
        message,
        param: Some("for".to_owned()),
    }
}

/// The target's drain state.
fn state(gw: &Inner, target: TargetId, name: &str) -> Response {
    let until = gw
        .registry
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .target(target)
        .map_or(Instant::ZERO, |t| t.drained_until);
    let now = gw.clock.now();
    let remaining = until.saturating_duration_since(now);
    let until_ms = (until > now).then(|| {
        gw.clock
            .unix_millis()
            .saturating_add(u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX))
    });
    reply(
        StatusCode::OK,
        &json!({
            "name": name,
            "drained_until_ms": until_ms,
            "drained_remaining_ms": millis(remaining),
        }),
    )
}
