//! The door every chat request passes after its role's extractor (`access.rs`): a
//! request id, the key's request limit, the holdfast headers, and the body within its
//! size limit.
//!
//! The decision: checks run cheapest first and before the body is read, so that a
//! request without a valid key or over its rate costs no body read and no parse, and
//! every refusal already carries the request id in `x-holdfast-request-id`. Bodies are
//! read through a length limit (and refused early on a `Content-Length` over it), so a
//! huge body costs at most `server.body_limit` bytes of memory.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use bytes::Bytes;
use holdfast_llm::openai::RequestError;
use holdfast_policy::Instant;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::access::{Agent, Principal};
use crate::error::{ApiError, Flavor};
use crate::gateway::Gateway;
use crate::idempotency::{Claim, request_hash};
use crate::meta::{Reply, RequestMeta};
use crate::respond;

/// A request that passed the door.
pub(crate) struct Door {
    pub(crate) gateway: Gateway,
    pub(crate) id: Arc<str>,
    pub(crate) seed: u64,
    pub(crate) started: Instant,
    pub(crate) started_ms: u64,
    /// Who is calling: its tenant scopes the ledger entry, the idempotency key, the
    /// degraded cache and the agent's breaker.
    pub(crate) principal: Principal,
    pub(crate) meta: RequestMeta,
    pub(crate) body: Bytes,
    pub(crate) flavor: Flavor,
    /// `chat.completions` or `messages`, for the ledger and the idempotency hash.
    pub(crate) endpoint: &'static str,
    /// The few-shot examples the request was given (`few_shot.rs`), once routed.
    pub(crate) few_shot: Option<Arc<crate::few_shot::Used>>,
}

impl Door {
    /// Lets a request in, or answers it with the reason it may not enter.
    pub(crate) async fn open(
        caller: Agent,
        headers: &HeaderMap,
        body: Body,
        flavor: Flavor,
        endpoint: &'static str,
    ) -> Result<Door, Response> {
        let Agent {
            gateway, principal, ..
        } = caller;
        let gw = &gateway.inner;
        let (id, seed) = gw.next_request();
        let started = gw.clock.now();
        let started_ms = gw.clock.unix_millis();
        let checked = async {
            let mut meta = RequestMeta::from_headers(headers, started)?;
            if let Some(telemetry) = gw.ledger.telemetry() {
                meta.trace = telemetry.begin(headers);
            }
            // One tenant's runaway agent must not open the breaker of another
            // tenant's agent of the same name.
            meta.agent = meta
                .agent
                .map(|agent| Arc::from(format!("{}/{agent}", principal.tenant)));
            meta.priority = gw.keys.priority(principal.caller);
            gw.keys.admit_request(principal.caller, started)?;
            let body = read_body(body, headers, gw.body_limit).await?;
            Ok::<_, ApiError>((meta, body))
        };
        match checked.await {
            Ok((meta, body)) => Ok(Door {
                gateway: gateway.clone(),
                id,
                seed,
                started,
                started_ms,
                principal,
                meta,
                body,
                flavor,
                endpoint,
                few_shot: None,
            }),
            Err(err) => Err(respond::error(&err, flavor, &Reply::new(&id))),
        }
    }

    /// The error response for this request.
    pub(crate) fn refuse(&self, err: &ApiError) -> Response {
        respond::error(err, self.flavor, &Reply::new(&self.id))
    }

    /// Claims the request's `Idempotency-Key`, if it sent one.
    pub(crate) async fn claim(&self) -> Result<Option<Claim>, ApiError> {
        let Some(key) = &self.meta.idempotency_key else {
            return Ok(None);
        };
        let gw = &self.gateway.inner;
        let hash = request_hash(self.endpoint, &self.body);
        let clock = &gw.clock;
        gw.idempotency
            .claim(&self.principal.tenant, key, hash, || clock.now())
            .await
            .map(Some)
    }
}

async fn read_body(body: Body, headers: &HeaderMap, limit: u64) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    let cap = usize::try_from(limit).unwrap_or(usize::MAX);
    match Limited::new(body, cap).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::BodyTooLarge { limit })
        }
        // A body that trickled in past `server.body_read_timeout` is a 408.
        Err(e) => Err(crate::listener::timed_out(&*e)
            .unwrap_or_else(|| ApiError::InvalidJson(format!("the body could not be read: {e}")))),
    }
}

/// A chat request's parse or validation error as the client's error.
pub(crate) fn request_error(err: RequestError) -> ApiError {
    match err {
        RequestError::Json(message) => ApiError::InvalidJson(message),
        RequestError::Invalid { field, reason } => ApiError::InvalidRequest {
            message: format!("invalid `{field}`: {reason}"),
            param: Some(field),
        },
    }
}
