//! One chat exchange, whatever the dialect: route, check, count, claim, call, answer.
//!
//! The decision: both `/v1/chat/completions` and `/v1/messages` arrive here with the
//! canonical OpenAI request and a [`Dialect`]; everything between the door and the
//! client's bytes (routing, the output check, token limits, idempotency, the pipeline,
//! degradation, the ledger) is written once. The dialect matters only when an answer
//! or an error is written out.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use holdfast_llm::openai::{ChatRequest, ChatResponse};
use holdfast_llm::translate::{OpenAiStreamTranslator, to_anthropic_response};

use crate::call::{self, Job, Ran};
use crate::degraded::{self, may_degrade};
use crate::error::{ApiError, Flavor};
use crate::events::{CallTrace, millis};
use crate::gateway::RouteRuntime;
use crate::idempotency::{Claim, Leader, Stored};
use crate::intake::Door;
use crate::ledger::Entry;
use crate::meta::Reply;
use crate::output::OutputCheck;
use crate::prompt;
use crate::respond;
use crate::sse::{Encoder, Relay, Source, chunks_of};
use crate::streaming;

/// The client's wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// OpenAI chat completions.
    OpenAi,
    /// Anthropic messages.
    Anthropic,
}

impl Dialect {
    /// How errors are written for this dialect.
    pub(crate) fn flavor(self) -> Flavor {
        match self {
            Dialect::OpenAi => Flavor::OpenAi,
            Dialect::Anthropic => Flavor::Anthropic,
        }
    }
}

/// Serves a canonical `request` that passed `door`, every line it logs carrying the
/// request's trace and span ids when it has them.
pub(crate) async fn serve(door: Door, request: ChatRequest, dialect: Dialect) -> Response {
    let span = crate::spans::log_span(&door.meta.trace);
    tracing::Instrument::instrument(answer(door, request, dialect), span).await
}

async fn answer(mut door: Door, mut request: ChatRequest, dialect: Dialect) -> Response {
    let gw = Arc::clone(&door.gateway.inner);
    let Some(route) = gw.routes.get(&request.model) else {
        return door.refuse(&ApiError::ModelNotFound(request.model.clone()));
    };
    door.few_shot = crate::few_shot::insert(
        gw.libraries.get(),
        route.few_shot.as_ref(),
        &door.principal.tenant,
        &mut request,
        gw.clock.unix_millis(),
    )
    .await
    .map(Arc::new);
    let check = match OutputCheck::for_request(&request) {
        Ok(check) => check,
        Err(err) => return door.refuse(&err),
    };
    let request = Arc::new(request);
    let body_len = door.body.len() + crate::few_shot::added_bytes(door.few_shot.as_ref());
    let tokens = prompt::tokens(&request, body_len, route.smallest_window).await;
    if let Err(err) = gw
        .keys
        .admit_tokens(door.principal.caller, gw.clock.now(), tokens)
    {
        return door.refuse(&err);
    }
    let leader = match door.claim().await {
        Ok(None) => None,
        Ok(Some(Claim::Leader(leader))) => Some(leader),
        Ok(Some(Claim::Replay(stored))) => return stored.replay(),
        Err(err) => return door.refuse(&err),
    };
    let job = Job {
        gateway: &gw,
        route,
        request: &request,
        meta: &door.meta,
        check: &check,
        id: &door.id,
        tokens,
        seed: door.seed,
    };
    if request.is_stream() {
        streaming::serve(&door, &job, dialect, leader).await
    } else {
        whole(&door, &job, dialect, leader).await
    }
}

/// A non-streamed exchange.
async fn whole(door: &Door, job: &Job<'_>, dialect: Dialect, leader: Option<Leader>) -> Response {
    let Ran {
        result,
        trace,
        mut reply,
        ..
    } = call::complete(job).await;
    let served = match result {
        Ok(served) => served,
        Err(err) => return failed(door, job, dialect, err, trace, reply),
    };
    let response = &served.response.response;
    remember(door, job.route, job.request, response);
    let body = match encode(response, served.response.body.as_ref(), dialect) {
        Ok(body) => body,
        Err(err) => {
            reply.target = None;
            record(door, job.route, false, &err, "error", None, &reply, trace);
            return respond::error(&err, dialect.flavor(), &reply);
        }
    };
    if let Some(leader) = leader {
        let stored = Stored {
            status: StatusCode::OK,
            content_type: "application/json",
            body: body.clone(),
            reply: reply.clone(),
        };
        leader.complete(stored, door.gateway.inner.clock.now());
    }
    let mut entry = entry(door, job.route, false, 200, "ok", &reply, trace);
    entry.target.clone_from(&reply.target);
    door.gateway.inner.ledger.insert(entry);
    crate::sampling::offer(door, &job.route.name, job.request, response, reply.cost_usd);
    respond::json(StatusCode::OK, body, &reply)
}

/// A whole answer in the client's dialect: an OpenAI target's own bytes for an OpenAI
/// client, else serialised once.
fn encode(
    response: &ChatResponse,
    provider_body: Option<&Bytes>,
    dialect: Dialect,
) -> Result<Bytes, ApiError> {
    let json = match (dialect, provider_body) {
        (Dialect::OpenAi, Some(body)) => return Ok(body.clone()),
        (Dialect::OpenAi, None) => serde_json::to_vec(response),
        (Dialect::Anthropic, _) => {
            let message = to_anthropic_response(response)
                .map_err(|e| ApiError::InvalidOutput(e.to_string()))?;
            serde_json::to_vec(&message)
        }
    };
    json.map(Bytes::from)
        .map_err(|e| ApiError::Internal(format!("serialising the answer: {e}")))
}

/// Keeps a successful answer for degraded mode, when the route caches.
fn remember(door: &Door, route: &RouteRuntime, request: &ChatRequest, response: &ChatResponse) {
    let Some(config) = route.degraded.as_ref().filter(|d| d.cache) else {
        return;
    };
    let gw = &door.gateway.inner;
    let expires = gw.clock.now() + config.ttl;
    let key = gw
        .degraded
        .key(&door.principal.tenant, &route.name, request);
    gw.degraded.remember(key, response, expires);
}

/// A call that gave up: a degraded answer if the route has one, else the error.
pub(crate) fn failed(
    door: &Door,
    job: &Job<'_>,
    dialect: Dialect,
    err: ApiError,
    trace: CallTrace,
    mut reply: Reply,
) -> Response {
    let stream = job.request.is_stream();
    let Some((response, how)) = degraded_answer(door, job, &err) else {
        record(door, job.route, stream, &err, "error", None, &reply, trace);
        return respond::error(&err, dialect.flavor(), &reply);
    };
    reply.degraded = Some(how);
    let result = "degraded";
    record(
        door,
        job.route,
        stream,
        &err,
        result,
        Some(how),
        &reply,
        trace,
    );
    if stream {
        let encoder = encoder(dialect, job.request, &job.route.name, job.tokens);
        let source = Source::Replay(chunks_of(&response).into_iter());
        let relay = Relay::new(source, encoder, None, Box::new(|_, _| {}));
        return respond::sse(relay.into_body(), &reply);
    }
    match encode(&response, None, dialect) {
        Ok(body) => respond::json(StatusCode::OK, body, &reply),
        Err(err) => respond::error(&err, dialect.flavor(), &reply),
    }
}

/// The route's degraded answer for `err`, if it has one and `err` allows it.
fn degraded_answer(
    door: &Door,
    job: &Job<'_>,
    err: &ApiError,
) -> Option<(Arc<ChatResponse>, &'static str)> {
    let gw = &door.gateway.inner;
    let config = job.route.degraded.as_ref().filter(|_| may_degrade(err))?;
    let key = config.cache.then(|| {
        gw.degraded
            .key(&door.principal.tenant, &job.route.name, job.request)
    });
    let now = gw.clock.now();
    let created = gw.clock.unix_millis() / 1000;
    degraded::answer(&gw.degraded, config, key, &job.route.name, now, created)
}

/// The SSE writer for the client's dialect.
pub(crate) fn encoder(
    dialect: Dialect,
    request: &ChatRequest,
    route: &str,
    tokens: u64,
) -> Encoder {
    match dialect {
        Dialect::OpenAi => Encoder::OpenAi {
            include_usage: request
                .stream_options
                .as_ref()
                .and_then(|o| o.include_usage)
                == Some(true),
        },
        Dialect::Anthropic => {
            Encoder::Anthropic(Box::new(OpenAiStreamTranslator::new(route, tokens)))
        }
    }
}

/// Records a failed (or degraded) exchange in the ledger.
#[allow(clippy::too_many_arguments)]
fn record(
    door: &Door,
    route: &RouteRuntime,
    stream: bool,
    err: &ApiError,
    result: &'static str,
    how: Option<&'static str>,
    reply: &Reply,
    trace: CallTrace,
) {
    let status = if how.is_some() {
        200
    } else {
        err.status().as_u16()
    };
    let mut entry = entry(door, route, stream, status, result, reply, trace);
    entry.error_code = Some(err.code());
    entry.degraded = how;
    door.gateway.inner.ledger.insert(entry);
}

/// A ledger entry for this exchange, as of now.
pub(crate) fn entry(
    door: &Door,
    route: &RouteRuntime,
    stream: bool,
    status: u16,
    result: &'static str,
    reply: &Reply,
    trace: CallTrace,
) -> Entry {
    let gw = &door.gateway.inner;
    Entry {
        request_id: Arc::clone(&door.id),
        tenant: Arc::clone(&door.principal.tenant),
        route: Arc::clone(&route.name),
        endpoint: door.endpoint,
        stream,
        status,
        result,
        error_code: None,
        stream_error: None,
        target: reply.target.clone(),
        degraded: None,
        started_at_ms: door.started_ms,
        latency_ms: millis(gw.clock.now().saturating_duration_since(door.started)),
        input_tokens: 0,
        output_tokens: 0,
        cost_usd: 0.0,
        few_shot: door.few_shot.clone(),
        trace,
        spans: crate::spans::Spans::of(door),
    }
}
