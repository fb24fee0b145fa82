//! `GET /metrics`: every metric in the Prometheus text exposition format (0.0.4).
//!
//! No key needed, like `/health`: a scraper should not hold a client key, and nothing in
//! the scrape names an agent, a request or a key (labels are routes, targets and closed
//! sets of classes and reasons). What is counted and why is holdfast-metrics' business.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use holdfast_metrics::CONTENT_TYPE;

use crate::gateway::Gateway;

/// The scrape.
pub(crate) async fn metrics(State(gateway): State<Gateway>) -> Response {
    let gw = &gateway.inner;
    let mut text = gw.metrics.render();
    let limiters = {
        let registry = gw.registry.lock().unwrap_or_else(|e| e.into_inner());
        holdfast_metrics::limiter::render(&registry)
    };
    text.push_str(&limiters);
    if let Some(libraries) = gateway.libraries() {
        text.push_str(&holdfast_metrics::few_shot::render(libraries));
    }
    if let Some(telemetry) = gw.ledger.telemetry() {
        text.push_str(&telemetry.dropped().exposition());
    }
    if let Some(shared) = gw.shared_health.get() {
        text.push_str(&shared.exposition());
    }
    if let Some(sampling) = gw.sampling.get() {
        text.push_str(&sampling.sampler.exposition());
    }
    let mut response = (StatusCode::OK, text).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    gw.reply().apply(headers);
    response
}
