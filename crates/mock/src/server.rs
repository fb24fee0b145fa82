//! The HTTP surface: routes for the impersonated API and the admin API, and `serve`.
//!
//! Only the impersonated format's paths exist; anything else answers 404 in that
//! provider's own error shape, so a client pointed at the wrong kind of provider fails
//! as it would in production. `serve` takes a bound listener and a shutdown future, so
//! tests bind port 0 and stop the server when they are done.

use std::future::Future;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;

use crate::chat::{chat, presented_key};
use crate::embeddings::embeddings;
use crate::format::{Format, Meta};
use crate::plan;
use crate::provider::MockProvider;
use crate::{admin, format::Reply};

/// The mock's routes: the chat and models endpoints of its format (and embeddings for
/// OpenAI), and `/admin/*`.
pub fn router(provider: MockProvider) -> Router {
    let mut router = Router::new();
    for path in provider.format().chat_paths() {
        router = router.route(path, post(chat));
    }
    if provider.format() == Format::OpenAi {
        router = router
            .route("/models", get(models))
            .route("/embeddings", post(embeddings))
            .route("/v1/embeddings", post(embeddings));
    }
    router
        .route("/v1/models", get(models))
        .merge(admin_routes())
        .fallback(not_found)
        .with_state(provider)
}

/// The admin API alone (`/admin/faults`, `/admin/stats`, `/admin/requests`,
/// `/admin/reset`), for a server that injects the mock's faults into other traffic.
pub fn admin_routes() -> Router<MockProvider> {
    Router::new()
        .route(
            "/admin/faults",
            get(admin::get_faults).post(admin::set_faults),
        )
        .route("/admin/stats", get(admin::stats))
        .route("/admin/requests", get(admin::requests))
        .route("/admin/reset", post(admin::reset))
}

/// Serves `provider` on `listener` until `shutdown` completes, then releases held
/// requests and finishes the ones in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    provider: MockProvider,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(provider.clone());
    let signal = async move {
        shutdown.await;
        provider.shut_down();
    };
    // Each event of a stream leaves as soon as it is written, as a provider's does:
    // Nagle's algorithm would hold a small write back while the last is unacknowledged.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    // Routes resolved once, not rebuilt per connection (see `holdfast_server::serve`).
    axum::serve(listener, app.into_make_service())
        .with_graceful_shutdown(signal)
        .await
}

/// `GET /v1/models`: a fixed list, behind the same key check as chat.
async fn models(State(provider): State<MockProvider>, headers: HeaderMap) -> Response {
    let format = provider.format();
    let faults = provider.faults_snapshot();
    let refused = plan::refuse_key(&faults, presented_key(&headers).as_deref());
    match refused {
        Some(rejection) => {
            let meta = Meta {
                id_bits: 0,
                created: 0,
                model: "mock".to_owned(),
                prompt_tokens: 0,
                include_usage: false,
                stream: false,
            };
            format.error(&rejection, &meta).into_response()
        }
        None => Reply::json(200, &format.models()).into_response(),
    }
}

async fn not_found(State(provider): State<MockProvider>, method: Method, uri: Uri) -> Response {
    provider
        .format()
        .not_found(method.as_str(), uri.path())
        .into_response()
}
