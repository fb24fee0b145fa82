//! The HTTP handlers, one file each, and the router that maps paths to them.
//!
//! The decision: a handler is a thin adapter between HTTP and the gateway. It reads
//! what its endpoint needs and hands over to the shared flow (`exchange` for chats);
//! no policy, provider or ledger logic lives here, so the two chat dialects cannot
//! drift apart.

mod admin_config;
mod admin_targets;
mod alerts;
mod chat;
mod escalations;
mod fallback;
mod health;
mod messages;
mod metrics;
mod models;
mod requests;
mod summary;
mod targets;
mod tasks;
mod workers;
mod workflows;

use axum::Router;
use axum::routing::{get, post};

use crate::gateway::Gateway;

/// The gateway's routes. The router's state is the live configuration; each handler
/// takes the [`Gateway`] current when its request arrived (`live.rs`).
pub fn router(gateway: Gateway) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/messages", post(messages::messages))
        .route("/v1/models", get(models::models))
        .route("/health", get(health::health))
        .route("/metrics", get(metrics::metrics))
        .route("/v1/holdfast/requests/{id}", get(requests::request))
        .route("/v1/holdfast/targets", get(targets::targets))
        .route("/v1/holdfast/alerts", get(alerts::alerts))
        .route("/v1/holdfast/summary", get(summary::summary))
        .route("/dashboard", get(crate::dashboard::page))
        .route("/dashboard/", get(crate::dashboard::page))
        .route("/dashboard/{file}", get(crate::dashboard::asset))
        .route(
            "/v1/workflows",
            post(workflows::register).get(workflows::list),
        )
        .route("/v1/workflows/{name}", get(workflows::latest))
        .route(
            "/v1/workflows/{name}/versions/{version}",
            get(workflows::version),
        )
        .route("/v1/tasks", post(tasks::submit).get(tasks::list))
        .route("/v1/tasks/{id}", get(tasks::get))
        .route("/v1/tasks/{id}/steps", get(tasks::steps))
        .route("/v1/tasks/{id}/journal", get(tasks::journal))
        .route("/v1/tasks/{id}/cancel", post(tasks::cancel))
        .route("/v1/retry-queue", get(tasks::retry_queue))
        .route("/v1/workers/claim", post(workers::claim))
        .route("/v1/workers/jobs/{id}/heartbeat", post(workers::heartbeat))
        .route("/v1/workers/jobs/{id}/complete", post(workers::complete))
        .route("/v1/escalations", get(escalations::list))
        .route("/v1/escalations/{id}", get(escalations::get))
        .route("/v1/escalations/{id}/resolve", post(escalations::resolve))
        .route("/admin/config", post(admin_config::reload_body))
        .route("/admin/config/reload", post(admin_config::reload_file))
        .route("/admin/config/rollback", post(admin_config::rollback))
        .route("/admin/config/history", get(admin_config::history))
        .route(
            "/admin/config/versions/{version}",
            get(admin_config::version),
        )
        .route("/admin/targets/{name}/drain", post(admin_targets::drain))
        .route(
            "/admin/targets/{name}/restore",
            post(admin_targets::restore),
        )
        .fallback(fallback::not_found)
        .method_not_allowed_fallback(fallback::method_not_allowed)
        .with_state(gateway.live)
}
