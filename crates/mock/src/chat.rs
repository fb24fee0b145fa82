//! The chat endpoint: `POST /v1/chat/completions` or `POST /v1/messages`.
//!
//! The handler reads the request, asks [`crate::plan`] what happens to it, records that
//! before any waiting (so that tests see silent requests in the log), then waits and
//! answers. Every response, healthy or not, is built by the format's own module.
//!
//! The same decision serves the fault proxy (`holdfast fault-proxy`): [`inject`] takes a
//! [`Forward`] that answers the requests no fault strikes, so a proxy sends exactly what
//! the mock would send when a fault strikes and the real provider's bytes otherwise.

use std::future::Future;
use std::pin::Pin;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::answer::Answer;
use crate::faults::Faults;
use crate::format::{Format, Meta, Reply};
use crate::plan::{self, Action, Context, Plan, Quirk, Rejection};
use crate::provider::{MockProvider, RequestRecord};
use crate::request::Request;
use crate::stream::{self, Script};

/// The key a request presents: `Authorization: Bearer …` or `x-api-key`.
pub(crate) fn presented_key(headers: &HeaderMap) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let key = bearer.or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    key.map(|k| k.trim().to_owned())
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Answers a request that no fault strikes, in place of the mock's scripted answer:
/// given the request's body, the response to send (a proxy's upstream answer).
pub type Forward = Box<dyn FnOnce(Bytes) -> Pin<Box<dyn Future<Output = Response> + Send>> + Send>;

/// Handles one chat request as the mock.
pub(crate) async fn chat(
    State(provider): State<MockProvider>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    inject(&provider, &uri, &headers, body, None).await
}

/// Decides what `provider`'s fault set does to one chat request and answers it: with
/// the fault's response when one strikes, otherwise after the latency the fault set
/// asks for, with `forward`'s response when given and the scripted answer when not.
/// A request the mock cannot read is forwarded too: the provider behind is the judge.
pub async fn inject(
    provider: &MockProvider,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
    forward: Option<Forward>,
) -> Response {
    let format = provider.format();
    let faults = provider.faults_snapshot();
    let mut turn = provider.begin();
    let occupancy = provider.occupy();
    let parsed = Request::parse(format, &body);
    let key = presented_key(headers);
    let ctx = Context {
        faults: &faults,
        format,
        presented_key: key.as_deref(),
        request: parsed.as_ref().map_err(String::as_str),
        elapsed: turn.elapsed,
    };
    let plan = plan::decide(&ctx, &mut turn.rng);
    let plan = plan::under_load(plan, faults.capacity, occupancy.in_flight);
    let request = parsed.ok();
    let answer = match (&plan.action, &request) {
        (Action::Answer { filtered, .. }, Some(req)) => {
            Some(Answer::build(req, &faults, *filtered))
        }
        _ => None,
    };
    let meta = Meta {
        id_bits: turn.rng.next_u64(),
        created: turn.created,
        model: request
            .as_ref()
            .map_or_else(|| "mock".to_owned(), |r| r.model.clone()),
        prompt_tokens: request.as_ref().map_or(0, |r| r.prompt_tokens),
        include_usage: request.as_ref().is_some_and(|r| r.include_usage),
        stream: request.as_ref().is_some_and(|r| r.stream),
    };
    let record = RequestRecord {
        seq: turn.seq,
        at_ms: u64::try_from(turn.elapsed.as_millis()).unwrap_or(u64::MAX),
        path: uri.path().to_owned(),
        model: request.map(|r| r.model),
        stream: meta.stream,
        idempotency_key: header_text(headers, "idempotency-key"),
        traceparent: header_text(headers, "traceparent"),
        outcome: plan.outcome.class().to_owned(),
        fault: plan.fault.to_owned(),
        prefill_continued: answer.as_ref().is_some_and(|a| a.continued_prefill),
    };
    tracing::debug!(seq = record.seq, path = %record.path, outcome = %record.outcome,
        fault = %record.fault, "mock chat request");
    provider.record(record);
    if let Some(forward) = forward {
        let healthy = matches!(
            plan.action,
            Action::Answer {
                filtered: false,
                quirk: Quirk::None,
                ..
            }
        );
        if healthy || plan.fault == "bad_request" {
            provider.pause(plan.delay).await;
            if let Action::Answer { stall, .. } = plan.action {
                provider.pause(stall).await;
            }
            let response = forward(body).await;
            drop(occupancy);
            return response;
        }
    }
    let response = respond(provider, &faults, plan, &meta, answer, turn.rng).await;
    drop(occupancy);
    response
}

async fn respond(
    provider: &MockProvider,
    faults: &Faults,
    plan: Plan,
    meta: &Meta,
    answer: Option<Answer>,
    rng: holdfast_policy::Rng,
) -> Response {
    let format = provider.format();
    provider.pause(plan.delay).await;
    let (stall, quirk) = match plan.action {
        Action::Reject(rejection) => return format.error(&rejection, meta).into_response(),
        Action::Silent => {
            provider.until_shutdown().await;
            let rejection = Rejection::Status {
                status: 503,
                retry_after: None,
            };
            return format.error(&rejection, meta).into_response();
        }
        Action::Answer { stall, quirk, .. } => (stall, quirk),
    };
    let Some(answer) = answer else {
        let rejection = Rejection::BadRequest("unreadable request".to_owned());
        return format.error(&rejection, meta).into_response();
    };
    provider.pause(stall).await;
    if meta.stream && quirk != Quirk::Malformed {
        let script = Script {
            quirk,
            malformed_event: format.malformed_event(meta),
            inband_error: format.inband_error(),
            token_interval: faults.token_interval.clone(),
            rng,
        };
        return stream_response(provider, format, meta, &answer, script);
    }
    let mut body = format.completion(meta, &answer).to_string();
    if quirk == Quirk::Malformed {
        let half = (0..=body.len() / 2)
            .rev()
            .find(|i| body.is_char_boundary(*i))
            .unwrap_or(0);
        body.truncate(half);
    }
    let mut reply = Reply::json(200, &serde_json::Value::Null);
    reply.body = body;
    reply.headers = format.success_headers(meta);
    reply.into_response()
}

fn stream_response(
    provider: &MockProvider,
    format: Format,
    meta: &Meta,
    answer: &Answer,
    script: Script,
) -> Response {
    let frames = format.frames(meta, answer);
    let mut response = Body::new(stream::body(provider.clone(), frames, script)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    for (name, value) in format.success_headers(meta) {
        if let Ok(value) = header::HeaderValue::from_str(&value) {
            headers.insert(header::HeaderName::from_static(name), value);
        }
    }
    response
}
