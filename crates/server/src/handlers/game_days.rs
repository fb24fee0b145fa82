//! `GET /v1/holdfast/game-days`: the results of the scheduled experiments (`[chaos]
//! schedule`), newest first, for the dashboard's game-day panel; and where the binary,
//! which runs them, hands each result in ([`Gateway::game_day_sink`]).
//!
//! For operators: an experiment's verdict names targets and their health.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use crate::access::Operator;
use crate::gateway::Gateway;
use crate::respond;
use holdfast_metrics::GameDayResult;

/// Takes each finished run of a scheduled experiment.
pub type GameDaySink = Arc<dyn Fn(GameDayResult) + Send + Sync>;

impl Gateway {
    /// Where finished game days go: this gateway's (and its reloads') dashboard panel,
    /// `/metrics` (`holdfast_chaos_failing`) and so the `chaos_failed` alert.
    pub fn game_day_sink(&self) -> GameDaySink {
        let game_days = Arc::clone(&self.inner.metrics.game_days);
        Arc::new(move |result| game_days.record(result))
    }
}

/// The results kept, newest first.
pub(crate) async fn list(caller: Operator) -> Response {
    let gw = &caller.gateway.inner;
    let reply = gw.reply();
    let runs = gw.metrics.game_days.runs();
    let body = serde_json::to_vec(&json!({ "runs": runs })).unwrap_or_default();
    respond::json(StatusCode::OK, body, &reply)
}
