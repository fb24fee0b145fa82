//! The HTTP handlers, one file each, and the router that maps paths to them.
//!
//! The decision: a handler is a thin adapter between HTTP and the gateway. It reads
//! what its endpoint needs and hands over to the shared flow (`exchange` for chats);
//! no policy, provider or ledger logic lives here, so the two chat dialects cannot
//! drift apart. Who may call a route is said once, in the table below, and held by the
//! extractor each handler takes (`access.rs`).

mod admin_config;
mod admin_targets;
mod alerts;
mod chat;
mod escalations;
mod examples;
mod fallback;
mod feedback;
mod game_days;
mod health;
mod messages;
mod metrics;
mod models;
mod readiness;
mod ready;
mod requests;
mod samples;
mod summary;
mod targets;
mod tasks;
mod workers;
mod workflows;

use std::sync::Arc;

use axum::Router;
use holdfast_config::Role;

use crate::gateway::Gateway;
use crate::live::Live;

/// One route and the least role it needs: what `docs/security.md` tabulates and the
/// access test checks route by route, role by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The path as the router matches it (`/v1/tasks/{id}`).
    pub path: &'static str,
    /// The least role; `None` for a route open to anyone (health, metrics, the
    /// dashboard's static files).
    pub role: Option<Role>,
}

macro_rules! role {
    (public) => {
        None
    };
    (agent) => {
        Some(Role::Agent)
    };
    (reviewer) => {
        Some(Role::Reviewer)
    };
    (operator) => {
        Some(Role::Operator)
    };
    (admin) => {
        Some(Role::Admin)
    };
}

/// The route table, written once: it builds the router and lists the rules, so that a
/// route cannot be served without a rule.
macro_rules! routes {
    ($($method:ident $path:literal $role:ident => $handler:path;)*) => {
        /// Every route the router serves, with the least role it needs.
        pub fn rules() -> Vec<Rule> {
            vec![$(Rule {
                method: stringify!($method),
                path: $path,
                role: role!($role),
            }),*]
        }

        fn table(router: Router<Arc<Live>>) -> Router<Arc<Live>> {
            router $(.route($path, axum::routing::$method($handler)))*
        }
    };
}

routes! {
    post "/v1/chat/completions" agent => chat::chat_completions;
    post "/v1/messages" agent => messages::messages;
    post "/v1/embeddings" agent => crate::embeddings::embeddings;
    get "/v1/models" agent => models::models;
    get "/health" public => health::health;
    get "/ready" public => ready::ready;
    get "/metrics" public => metrics::metrics;
    get "/v1/holdfast/requests/{id}" agent => requests::request;
    get "/v1/holdfast/targets" agent => targets::targets;
    get "/v1/holdfast/alerts" operator => alerts::alerts;
    get "/v1/holdfast/summary" operator => summary::summary;
    get "/v1/holdfast/game-days" operator => game_days::list;
    get "/dashboard" public => crate::dashboard::page;
    get "/dashboard/" public => crate::dashboard::page;
    get "/dashboard/{file}" public => crate::dashboard::asset;
    post "/v1/workflows" admin => workflows::register;
    get "/v1/workflows" agent => workflows::list;
    get "/v1/workflows/{name}" agent => workflows::latest;
    get "/v1/workflows/{name}/versions/{version}" agent => workflows::version;
    post "/v1/tasks" agent => tasks::submit;
    get "/v1/tasks" agent => tasks::list;
    get "/v1/tasks/{id}" agent => tasks::get;
    get "/v1/tasks/{id}/steps" agent => tasks::steps;
    get "/v1/tasks/{id}/journal" agent => tasks::journal;
    post "/v1/tasks/{id}/cancel" agent => tasks::cancel;
    get "/v1/retry-queue" agent => tasks::retry_queue;
    post "/v1/workers/claim" agent => workers::claim;
    post "/v1/workers/jobs/{id}/heartbeat" agent => workers::heartbeat;
    post "/v1/workers/jobs/{id}/complete" agent => workers::complete;
    get "/v1/escalations" reviewer => escalations::list;
    get "/v1/escalations/{id}" reviewer => escalations::get;
    post "/v1/escalations/{id}/resolve" reviewer => escalations::resolve;
    post "/v1/holdfast/feedback" agent => feedback::feedback;
    get "/v1/holdfast/examples" reviewer => examples::list;
    post "/v1/holdfast/examples/import" reviewer => examples::import;
    get "/v1/holdfast/examples/{id}" reviewer => examples::get;
    post "/v1/holdfast/examples/{id}/approve" reviewer => examples::approve;
    post "/v1/holdfast/examples/{id}/retire" reviewer => examples::retire;
    get "/v1/holdfast/samples" reviewer => samples::list;
    get "/v1/holdfast/samples/{id}" reviewer => samples::get;
    post "/v1/holdfast/samples/{id}/promote" admin => samples::promote;
    post "/admin/config" admin => admin_config::reload_body;
    post "/admin/config/reload" admin => admin_config::reload_file;
    post "/admin/config/rollback" admin => admin_config::rollback;
    get "/admin/config/history" operator => admin_config::history;
    get "/admin/config/versions/{version}" operator => admin_config::version;
    get "/admin/readiness" operator => readiness::readiness;
    post "/admin/targets/{name}/drain" operator => admin_targets::drain;
    post "/admin/targets/{name}/restore" operator => admin_targets::restore;
    post "/admin/targets/{name}/reset" operator => admin_targets::reset;
}

pub use chat::read_chat_request;
pub(crate) use feedback::auto_approve;
pub use game_days::GameDaySink;
pub use messages::read_messages_request;

/// The gateway's routes. The router's state is the live configuration; each handler
/// takes the [`Gateway`] current when its request arrived (`live.rs`), through the
/// extractor of its role (`access.rs`).
pub fn router(gateway: Gateway) -> Router {
    table(Router::new())
        .fallback(fallback::not_found)
        .method_not_allowed_fallback(fallback::method_not_allowed)
        .with_state(gateway.live)
}
