//! The demo's tool: a tiny in-process HTTP service that the workflow's `http` steps
//! call (fact-check, publish, announce) and that their compensations undo.
//!
//! It fails the way real tools do, on purpose: a few percent of calls get a transient
//! 503 on their first attempt (the engine retries them), and a small share of
//! announcements are refused for good with a 422 (not retried, so the task fails and
//! its earlier steps are compensated). Decisions are keyed by the step's
//! `Idempotency-Key` (`task_id/step`, the same on every attempt) and the seed, so a
//! call fails at most once before it succeeds, and a run replays from its seed. The
//! undo endpoints never fail: a compensation that fails would only hide the point.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use serde_json::json;

/// How the tool misbehaves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Faults {
    /// Share of calls whose first attempt gets a 503.
    pub(crate) transient: f64,
    /// Share of announcements refused for good.
    pub(crate) permanent: f64,
    pub(crate) seed: u64,
}

struct Tool {
    faults: Faults,
    /// Keys that have had their first attempt.
    seen: Mutex<HashSet<String>>,
}

/// Binds `127.0.0.1:0` and serves the tool until `shutdown`; returns its address.
pub(crate) async fn start(
    faults: Faults,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the demo's tool on 127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let tool = Arc::new(Tool {
        faults,
        seen: Mutex::new(HashSet::new()),
    });
    let app = Router::new()
        .route("/fact-checks", post(fact_check))
        .route("/fact-checks/{id}", delete(undo))
        .route("/articles", post(publish))
        .route("/articles/{id}", delete(undo))
        .route("/announcements", post(announce))
        .with_state(tool);
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "the demo's tool stopped");
        }
    });
    Ok(addr)
}

async fn fact_check(State(tool): State<Arc<Tool>>, headers: HeaderMap) -> Response {
    if let Some(refused) = tool.misbehave(&headers, false) {
        return refused;
    }
    (
        StatusCode::CREATED,
        axum::Json(json!({"verdict": "supported", "claims_checked": 3})),
    )
        .into_response()
}

async fn publish(State(tool): State<Arc<Tool>>, headers: HeaderMap) -> Response {
    if let Some(refused) = tool.misbehave(&headers, false) {
        return refused;
    }
    let key = idempotency_key(&headers).unwrap_or_default();
    let task = key.split('/').next().unwrap_or_default();
    (
        StatusCode::CREATED,
        axum::Json(json!({"url": format!("https://blog.example/articles/{task}")})),
    )
        .into_response()
}

async fn announce(State(tool): State<Arc<Tool>>, headers: HeaderMap) -> Response {
    if let Some(refused) = tool.misbehave(&headers, true) {
        return refused;
    }
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({"subscribers": 1200})),
    )
        .into_response()
}

/// A compensation: never fails, so that every failed task is rolled back.
async fn undo(Path(id): Path<String>) -> Response {
    axum::Json(json!({"undone": id})).into_response()
}

impl Tool {
    /// The failure this call gets, if any.
    fn misbehave(&self, headers: &HeaderMap, may_refuse: bool) -> Option<Response> {
        let key = idempotency_key(headers)?;
        if may_refuse && draw(self.faults.seed, &key, 1) < self.faults.permanent {
            let body = json!({"error": "the subscriber list refused this announcement"});
            return Some((StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response());
        }
        let first = self
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone());
        if first && draw(self.faults.seed, &key, 2) < self.faults.transient {
            let body = json!({"error": "temporarily unavailable"});
            return Some((StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response());
        }
        None
    }
}

fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get(holdfast_engine::IDEMPOTENCY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A uniform number in `[0, 1)` fixed by the seed, the key and `salt` (FNV-1a, then
/// the policy's generator): the same call always draws the same number.
fn draw(seed: u64, key: &str, salt: u64) -> f64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    holdfast_policy::Rng::seeded(hash).unit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_stable_and_spread() {
        assert_eq!(draw(7, "t-1/publish", 2), draw(7, "t-1/publish", 2));
        let below = (0..1000)
            .filter(|i| draw(7, &format!("t-{i}/publish"), 2) < 0.1)
            .count();
        assert!((50..150).contains(&below), "{below}");
    }
}
