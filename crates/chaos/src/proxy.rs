//! The LLM-aware fault proxy: `holdfast fault-proxy` sits between holdfast and a real
//! provider and injects, on the chat endpoints, every fault the mock provider knows.
//!
//! The one decision: the proxy does not describe faults a second time. It holds a
//! [`MockProvider`] for its fault set, seeded randomness, schedule (outage windows,
//! flapping), counts, request log and admin API, and asks it, per request, through
//! [`holdfast_mock::inject`]: when a fault strikes, the client gets exactly what the mock
//! would send; when none does, the request goes upstream after the fault set's latency
//! and the provider's answer comes back byte for byte, streamed as it arrives. Every
//! other path (`/v1/models`, …) is forwarded untouched.

use std::future::Future;
use std::task::Poll;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use holdfast_mock::{Forward, MockProvider};
use serde_json::json;

/// Headers that belong to one connection, not to the message: never forwarded.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::HOST,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// A proxy in front of one provider; clones share one state.
#[derive(Clone, Debug)]
pub struct FaultProxy {
    provider: MockProvider,
    upstream: String,
    http: reqwest::Client,
}

/// A proxy that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The upstream address is not an http(s) URL.
    #[error("upstream `{0}` is not an http:// or https:// URL")]
    Upstream(String),
    /// The HTTP client could not be built (no TLS roots, …).
    #[error("building the upstream HTTP client: {0}")]
    Client(String),
}

impl FaultProxy {
    /// A proxy forwarding to `upstream` (`https://api.openai.com`: the request's path
    /// is appended as it came), injecting `provider`'s faults in its wire format.
    pub fn new(provider: MockProvider, upstream: &str) -> Result<Self, ProxyError> {
        let upstream = upstream.trim_end_matches('/');
        let parsed =
            reqwest::Url::parse(upstream).map_err(|_| ProxyError::Upstream(upstream.to_owned()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ProxyError::Upstream(upstream.to_owned()));
        }
        // No overall timeout: a stream may last minutes; the client behind sets its own.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ProxyError::Client(e.to_string()))?;
        Ok(FaultProxy {
            provider,
            upstream: upstream.to_owned(),
            http,
        })
    }

    /// The mock whose fault set the proxy injects.
    pub fn provider(&self) -> &MockProvider {
        &self.provider
    }

    /// Sends a request upstream and turns the answer into a response, body streamed.
    async fn forward(self, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let url = format!("{}{path}", self.upstream);
        let mut request = self.http.request(method, url).body(body);
        for (name, value) in &headers {
            if !HOP_BY_HOP.contains(name) && name != header::CONTENT_LENGTH {
                request = request.header(name, value);
            }
        }
        match request.send().await {
            Ok(answer) => relay(answer),
            Err(err) => {
                // The key the request carries is in its headers, never in this message.
                tracing::warn!(error = %without_url(&err), "fault proxy: upstream unreachable");
                let body = json!({"error": {
                    "type": "upstream_unreachable",
                    "message": format!("the fault proxy could not reach the upstream provider: {}", without_url(&err)),
                }});
                (StatusCode::BAD_GATEWAY, axum::Json(body)).into_response()
            }
        }
    }
}

/// An error's text without the URL reqwest adds (it may carry a query with a key).
fn without_url(err: &reqwest::Error) -> String {
    let mut err_text = String::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(err);
    while let Some(cause) = source {
        if !err_text.is_empty() {
            err_text.push_str(": ");
        }
        err_text.push_str(&cause.to_string());
        source = cause.source();
    }
    if err_text.is_empty() {
        "connection failed".to_owned()
    } else {
        err_text
    }
}

/// The upstream's status, headers and body, the body passed on as it arrives.
fn relay(answer: reqwest::Response) -> Response {
    let status = answer.status();
    let mut headers = answer.headers().clone();
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    let mut response = Body::from_stream(coalesced(answer.bytes_stream())).into_response();
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// `chunks`, each joined with the chunks already waiting behind it: a burst of stream
/// events crosses the proxy as one write and one wake-up of the client instead of one
/// per event, and nothing is held back to wait for more.
fn coalesced<S>(chunks: S) -> impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static
where
    S: Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
{
    let mut chunks = Box::pin(chunks.fuse());
    // An error (or the end) met while joining is given on the next poll, after the bytes
    // before it.
    let mut held: Option<reqwest::Error> = None;
    futures_util::stream::poll_fn(move |cx| {
        if let Some(err) = held.take() {
            return Poll::Ready(Some(Err(err)));
        }
        let first = match chunks.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(first))) => first,
            other => return other,
        };
        let mut joined: Option<BytesMut> = None;
        loop {
            match chunks.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(next))) => joined
                    .get_or_insert_with(|| BytesMut::from(&first[..]))
                    .extend_from_slice(&next),
                Poll::Ready(Some(Err(err))) => {
                    held = Some(err);
                    break;
                }
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        Poll::Ready(Some(Ok(joined.map_or(first, BytesMut::freeze))))
    })
}

/// The proxy's routes: the chat paths of its format through the fault set, the mock's
/// admin API, and everything else forwarded.
pub fn router(proxy: FaultProxy) -> Router {
    let mut router = Router::new();
    for path in proxy.provider.format().chat_paths() {
        router = router.route(path, post(chat));
    }
    let admin = holdfast_mock::admin_routes().with_state(proxy.provider.clone());
    router.merge(admin).fallback(passthrough).with_state(proxy)
}

async fn chat(
    State(proxy): State<FaultProxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let provider = proxy.provider.clone();
    let (to_uri, to_headers) = (uri.clone(), headers.clone());
    let forward: Forward =
        Box::new(move |body| Box::pin(proxy.forward(method, to_uri, to_headers, body)));
    holdfast_mock::inject(&provider, &uri, &headers, body, Some(forward)).await
}

async fn passthrough(
    State(proxy): State<FaultProxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    proxy.forward(method, uri, headers, body).await
}

/// Serves `proxy` on `listener` until `shutdown` completes, then releases requests held
/// by a `silent` fault and finishes the ones in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    proxy: FaultProxy,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let provider = proxy.provider.clone();
    let app = router(proxy);
    // A relayed event leaves as soon as it arrives: Nagle's algorithm would hold a small
    // write back while the last is unacknowledged, and the proxy must stay invisible.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let signal = async move {
        shutdown.await;
        provider.shut_down();
    };
    axum::serve(listener, app.into_make_service())
        .with_graceful_shutdown(signal)
        .await
}
