//! The HTTP client to providers: one canonical request in, one canonical answer (or a
//! classified [`ProviderError`]) out, whatever format the target speaks.
//!
//! The decision that shapes it: every wait races a deadline on the injected [`Clock`],
//! and each deadline has its own [`TimeoutKind`], so the policy can tell a dead host
//! (connect) from a slow model (first byte) from a stalled stream (idle) from a caller
//! who ran out of time (total, capped by the caller's deadline). Non-streamed calls get
//! no first-byte timeout: providers send their headers only once the whole answer is
//! generated, so "first byte" there would mean "total" and fire on every long answer.

mod endpoint;
mod error;
mod request;
mod stream;
mod transport;

pub use endpoint::{ApiKey, CallOptions, Completion, Embedded, Endpoint, Timeouts};
pub use error::ProviderError;
pub use stream::ChunkStream;
pub use transport::describe_causes;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use holdfast_policy::{Clock, Instant, Outcome, TimeoutKind};

use crate::openai::embeddings::{EmbeddingsRequest, EmbeddingsResponse};
use crate::openai::{ChatRequest, ChatResponse};
use crate::translate::to_openai_response;
use crate::{Format, Usage, anthropic, classify};
use transport::{Received, Transport};

/// A deadline and the kind of timeout its passing means.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    at: Instant,
    kind: TimeoutKind,
    started: Instant,
}

impl Deadline {
    /// The earlier of two deadlines.
    fn min(self, other: Deadline) -> Deadline {
        if other.at < self.at { other } else { self }
    }

    /// `fut`'s output, or the timeout error if the deadline passes first.
    async fn run<F: Future>(self, clock: &dyn Clock, fut: F) -> Result<F::Output, ProviderError> {
        tokio::select! {
            biased;
            out = fut => Ok(out),
            () = clock.sleep_until(self.at) => {
                let waited = clock.now().saturating_duration_since(self.started);
                Err(ProviderError::timeout(self.kind, waited))
            }
        }
    }
}

/// Largest non-streamed answer accepted: far above any real one.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// The HTTP client to providers. Build one per process and share it: it pools
/// connections per host.
#[derive(Clone)]
pub struct ProviderClient {
    clock: Arc<dyn Clock>,
    cache: Arc<Mutex<Cache>>,
}

/// What every call to the same place would otherwise build again, behind one lock.
#[derive(Default)]
struct Cache {
    /// One pool per connect timeout (set per client, not per request) and per way out
    /// (direct or through the environment's proxy).
    clients: HashMap<(Duration, bool), Arc<Transport>>,
    /// Each base URL's call URI and way out, by format (`Format as usize`): parsing a
    /// URL and matching it against the proxy settings cost more than the rest of
    /// building a request, and a gateway calls the same few URLs for ever.
    routes: HashMap<String, [Option<Route>; 2]>,
}

/// Where a base URL's calls go.
#[derive(Clone)]
struct Route {
    uri: http::Uri,
    proxied: bool,
}

impl fmt::Debug for ProviderClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderClient").finish_non_exhaustive()
    }
}

impl ProviderClient {
    /// A client reading time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        ProviderClient {
            clock,
            cache: Arc::new(Mutex::new(Cache::default())),
        }
    }

    /// The pooled client for `endpoint` and its call URI.
    fn transport(&self, endpoint: &Endpoint) -> Result<(Arc<Transport>, http::Uri), ProviderError> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let route = cache.route(endpoint)?;
        let slot = (endpoint.timeouts.connect, route.proxied);
        if let Some(client) = cache.clients.get(&slot) {
            return Ok((Arc::clone(client), route.uri));
        }
        let client = Transport::new(slot.0, slot.1)
            .map_err(|e| ProviderError::from_transport(&e, "building the HTTP client", None))?;
        let client = Arc::new(client);
        cache.clients.insert(slot, Arc::clone(&client));
        Ok((client, route.uri))
    }

    /// Sends `request` to `endpoint` and waits for the whole answer.
    ///
    /// Enforces the connect and total timeouts (the total capped by
    /// `options.timeout_cap`), `options.first_byte` on the response head when set, and
    /// the idle timeout while reading the body. An answer
    /// whose finish reason is `content_filter` is an error of class
    /// [`Outcome::ContentFiltered`] whose `body` holds the answer.
    pub async fn complete(
        &self,
        endpoint: &Endpoint,
        request: &ChatRequest,
        options: &CallOptions,
    ) -> Result<Completion, ProviderError> {
        let start = self.clock.now();
        let total = total_deadline(start, endpoint, options);
        let head = match options.first_byte {
            Some(wait) => Deadline {
                at: start + wait,
                kind: TimeoutKind::FirstByte,
                started: start,
            }
            .min(total),
            None => total,
        };
        let body = request::request_body(endpoint, request, false)?;
        let response = self.send(endpoint, body, options, false, head).await?;
        let status = response.status.as_u16();
        let retry_after = error::retry_after(&response.headers, self.clock.unix_millis());
        let bytes = self.read_body(response.body, endpoint, total).await?;
        if !(200..300).contains(&status) {
            return Err(ProviderError::from_http(
                status,
                retry_after,
                &bytes,
                key(endpoint),
            ));
        }
        let response = self.parse_answer(endpoint, &bytes)?;
        let body = (endpoint.format == Format::OpenAi).then(|| Bytes::from(bytes));
        if let Some(outcome) = response
            .choices
            .first()
            .and_then(|c| c.finish_reason)
            .and_then(classify::classify_finish_reason)
        {
            let mut err =
                ProviderError::new(outcome, "the provider's content filter cut the answer");
            err.status = Some(status);
            err.body = serde_json::to_value(&response).ok();
            return Err(err);
        }
        Ok(Completion {
            usage: response.usage.as_ref().map(Usage::from),
            response,
            body,
            status,
            latency: self.clock.now().saturating_duration_since(start),
        })
    }

    /// Sends `request` as a stream and returns once the headers and the first event
    /// arrived, so that a caller can still fail over before anything reaches its
    /// client. Enforces connect, first-byte (to the first event), idle and total
    /// timeouts; see [`ChunkStream`] for how the stream ends.
    pub async fn stream(
        &self,
        endpoint: &Endpoint,
        request: &ChatRequest,
        options: &CallOptions,
    ) -> Result<ChunkStream, ProviderError> {
        let start = self.clock.now();
        let total = total_deadline(start, endpoint, options);
        let first = Deadline {
            at: start + options.first_byte.unwrap_or(endpoint.timeouts.first_byte),
            kind: TimeoutKind::FirstByte,
            started: start,
        }
        .min(total);
        let body = request::request_body(endpoint, request, true)?;
        let response = self.send(endpoint, body, options, true, first).await?;
        let status = response.status.as_u16();
        if !(200..300).contains(&status) {
            let retry_after = error::retry_after(&response.headers, self.clock.unix_millis());
            let bytes = self.read_body(response.body, endpoint, total).await?;
            return Err(ProviderError::from_http(
                status,
                retry_after,
                &bytes,
                key(endpoint),
            ));
        }
        let created = self.clock.unix_millis() / 1000;
        let mut stream = ChunkStream::new(
            response,
            stream::Settings {
                format: endpoint.format,
                clock: Arc::clone(&self.clock),
                idle: endpoint.timeouts.idle,
                total,
                created,
                key: endpoint.api_key.clone(),
                started: start,
            },
        );
        stream.wait_first_event(first).await?;
        Ok(stream)
    }

    /// Sends `request` to `endpoint`'s embeddings endpoint (`{base}/embeddings`; an
    /// OpenAI-speaking target only) with the target's model, and waits for the whole
    /// answer, checked to hold one finite vector per input in input order. Enforces the
    /// connect, idle and total timeouts as [`ProviderClient::complete`] does.
    pub async fn embed(
        &self,
        endpoint: &Endpoint,
        request: &EmbeddingsRequest,
        options: &CallOptions,
    ) -> Result<Embedded, ProviderError> {
        if endpoint.format != Format::OpenAi {
            return Err(ProviderError::new(
                Outcome::BadRequest,
                "embeddings are served by openai targets only",
            ));
        }
        let start = self.clock.now();
        let total = total_deadline(start, endpoint, options);
        let mut outgoing = request.clone();
        outgoing.model.clone_from(&endpoint.model);
        let body = serde_json::to_vec(&outgoing).map_err(|e| {
            ProviderError::new(
                Outcome::BadRequest,
                format!("the request cannot be encoded: {e}"),
            )
        })?;
        let (client, chat) = self.transport(endpoint)?;
        let uri = chat
            .to_string()
            .replacen("/chat/completions", "/embeddings", 1);
        let uri = http::Uri::try_from(uri)
            .map_err(|e| ProviderError::new(Outcome::BadRequest, e.to_string()))?;
        let response = self
            .post(&client, uri, endpoint, body, options, false, total)
            .await?;
        let status = response.status.as_u16();
        let retry_after = error::retry_after(&response.headers, self.clock.unix_millis());
        let bytes = self.read_body(response.body, endpoint, total).await?;
        if !(200..300).contains(&status) {
            return Err(ProviderError::from_http(
                status,
                retry_after,
                &bytes,
                key(endpoint),
            ));
        }
        let invalid = |message: String| ProviderError::new(Outcome::InvalidOutput, message);
        let mut response: EmbeddingsResponse = serde_json::from_slice(&bytes).map_err(|e| {
            invalid(format!(
                "the answer is not a valid embeddings response: {e}"
            ))
        })?;
        response
            .check(request.input.texts().len())
            .map_err(invalid)?;
        Ok(Embedded {
            usage: Usage::new(response.usage.prompt_tokens, 0),
            response,
            latency: self.clock.now().saturating_duration_since(start),
        })
    }

    /// Asks `endpoint`'s provider for its model list (`GET …/models`), the cheapest
    /// call that proves it answers: an active health probe. Ok on a 2xx within
    /// `timeout`; otherwise the classified error.
    pub async fn probe_models(
        &self,
        endpoint: &Endpoint,
        timeout: Duration,
    ) -> Result<(), ProviderError> {
        let start = self.clock.now();
        let deadline = Deadline {
            at: start + timeout,
            kind: TimeoutKind::Total,
            started: start,
        };
        let (client, chat) = self.transport(endpoint)?;
        let chat = chat.to_string();
        let base = chat
            .strip_suffix("/chat/completions")
            .or_else(|| chat.strip_suffix("/messages"))
            .unwrap_or(&chat);
        let uri = http::Uri::try_from(format!("{base}/models"))
            .map_err(|e| ProviderError::new(Outcome::BadRequest, e.to_string()))?;
        let mut request = http::Request::get(uri)
            .body(Bytes::new())
            .map_err(|e| ProviderError::new(Outcome::BadRequest, e.to_string()))?;
        *request.headers_mut() = request::headers(endpoint, &CallOptions::default(), false)?;
        let response = deadline
            .run(&*self.clock, client.send(request))
            .await?
            .map_err(|e| ProviderError::from_transport(&e, "probing", key(endpoint)))?;
        let status = response.status.as_u16();
        let retry_after = error::retry_after(&response.headers, self.clock.unix_millis());
        let bytes = self.read_body(response.body, endpoint, deadline).await?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(ProviderError::from_http(
                status,
                retry_after,
                &bytes,
                key(endpoint),
            ))
        }
    }

    /// Sends the request and waits for the response head, racing `deadline`.
    async fn send(
        &self,
        endpoint: &Endpoint,
        body: Vec<u8>,
        options: &CallOptions,
        stream: bool,
        deadline: Deadline,
    ) -> Result<Received, ProviderError> {
        let (client, uri) = self.transport(endpoint)?;
        self.post(&client, uri, endpoint, body, options, stream, deadline)
            .await
    }

    /// Posts `body` to `uri` and waits for the response head, racing `deadline`.
    #[allow(clippy::too_many_arguments)]
    async fn post(
        &self,
        client: &Transport,
        uri: http::Uri,
        endpoint: &Endpoint,
        body: Vec<u8>,
        options: &CallOptions,
        stream: bool,
        deadline: Deadline,
    ) -> Result<Received, ProviderError> {
        let mut request = http::Request::post(uri)
            .body(Bytes::from(body))
            .map_err(|e| ProviderError::new(Outcome::BadRequest, e.to_string()))?;
        *request.headers_mut() = request::headers(endpoint, options, stream)?;
        deadline
            .run(&*self.clock, client.send(request))
            .await?
            .map_err(|e| ProviderError::from_transport(&e, "sending the request", key(endpoint)))
    }

    /// Reads a whole body, each read racing the idle and total deadlines.
    async fn read_body(
        &self,
        mut body: transport::BodyStream,
        endpoint: &Endpoint,
        total: Deadline,
    ) -> Result<Vec<u8>, ProviderError> {
        let mut whole = Vec::new();
        loop {
            let now = self.clock.now();
            let idle = Deadline {
                at: now + endpoint.timeouts.idle,
                kind: TimeoutKind::Idle,
                started: now,
            };
            match idle.min(total).run(&*self.clock, body.next()).await? {
                Some(Ok(bytes)) => {
                    if whole.len() + bytes.len() > MAX_BODY_BYTES {
                        return Err(ProviderError::new(
                            Outcome::InvalidOutput,
                            format!("the answer is larger than {MAX_BODY_BYTES} bytes"),
                        ));
                    }
                    whole.extend_from_slice(&bytes);
                }
                None => return Ok(whole),
                Some(Err(e)) => {
                    return Err(ProviderError::from_transport(
                        &e,
                        "reading the answer",
                        key(endpoint),
                    ));
                }
            }
        }
    }

    /// Parses a 2xx body into the canonical answer.
    fn parse_answer(
        &self,
        endpoint: &Endpoint,
        bytes: &[u8],
    ) -> Result<ChatResponse, ProviderError> {
        let invalid = |e: serde_json::Error| {
            ProviderError::new(
                Outcome::InvalidOutput,
                format!(
                    "the answer is not a valid {:?} response: {e}",
                    endpoint.format
                ),
            )
        };
        let response = match endpoint.format {
            Format::OpenAi => serde_json::from_slice::<ChatResponse>(bytes).map_err(invalid)?,
            Format::Anthropic => {
                let message: anthropic::MessagesResponse =
                    serde_json::from_slice(bytes).map_err(invalid)?;
                to_openai_response(&message, self.clock.unix_millis() / 1000)
            }
        };
        if response.choices.is_empty() {
            return Err(ProviderError::new(
                Outcome::InvalidOutput,
                "the answer has no choices",
            ));
        }
        Ok(response)
    }
}

impl Cache {
    /// `endpoint`'s call URI and way out, worked out once per base URL and format.
    fn route(&mut self, endpoint: &Endpoint) -> Result<Route, ProviderError> {
        let slot = endpoint.format as usize;
        if let Some(route) = self
            .routes
            .get(&endpoint.base_url)
            .and_then(|routes| routes[slot].as_ref())
        {
            return Ok(route.clone());
        }
        let uri: http::Uri = endpoint.url().parse().map_err(|e| {
            ProviderError::new(
                Outcome::Connection,
                format!("the target's URL is not a valid URL: {e}"),
            )
        })?;
        let route = Route {
            proxied: transport::proxied(&uri),
            uri,
        };
        self.routes.entry(endpoint.base_url.clone()).or_default()[slot] = Some(route.clone());
        Ok(route)
    }
}

fn key(endpoint: &Endpoint) -> Option<&ApiKey> {
    endpoint.api_key.as_ref()
}

fn total_deadline(start: Instant, endpoint: &Endpoint, options: &CallOptions) -> Deadline {
    let total = match options.timeout_cap {
        Some(cap) => endpoint.timeouts.total.min(cap),
        None => endpoint.timeouts.total,
    };
    Deadline {
        at: start + total,
        kind: TimeoutKind::Total,
        started: start,
    }
}
