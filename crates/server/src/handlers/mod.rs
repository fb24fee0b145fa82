//! The HTTP handlers, one file each, and the router that maps paths to them.
//!
//! The decision: a handler is a thin adapter between HTTP and the gateway. It reads
//! what its endpoint needs and hands over to the shared flow (`exchange` for chats);
//! no policy, provider or ledger logic lives here, so the two chat dialects cannot
//! drift apart.

mod chat;
mod fallback;
mod health;
mod messages;
mod metrics;
mod models;
mod requests;
mod targets;

use axum::Router;
use axum::routing::{get, post};

use crate::gateway::Gateway;

/// The gateway's routes.
pub fn router(gateway: Gateway) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/messages", post(messages::messages))
        .route("/v1/models", get(models::models))
        .route("/health", get(health::health))
        .route("/metrics", get(metrics::metrics))
        .route("/v1/holdfast/requests/{id}", get(requests::request))
        .route("/v1/holdfast/targets", get(targets::targets))
        .fallback(fallback::not_found)
        .method_not_allowed_fallback(fallback::method_not_allowed)
        .with_state(gateway)
}
