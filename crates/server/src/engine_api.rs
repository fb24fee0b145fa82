//! What the workflow endpoints share: attaching the engine to the gateway, the door
//! every workflow request passes after its role's extractor (the key's request limit,
//! an engine to talk to, a bounded body), and the one mapping from [`EngineError`] to
//! [`ApiError`].
//!
//! The decision that shapes it: the engine is optional and attached after the gateway
//! is built ([`Gateway::with_engine`]), because the engine needs the gateway first (its
//! `llm` steps run through the gateway's own pipeline, [`Gateway::llm`]). The gateway
//! holds the engine; the engine holds the gateway only weakly, so dropping the last
//! `Gateway` frees both. Without an engine every workflow endpoint answers 503
//! `engine_unavailable`, after authentication, so an unauthenticated caller learns
//! nothing about the server's setup.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use holdfast_engine::{Engine, EngineError, EventSink, Llm};
use holdfast_store::StoreError;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::access::{Authorized, Principal};
use crate::error::ApiError;
use crate::gateway::Gateway;

impl Gateway {
    /// This gateway with `engine` behind its workflow endpoints (`/v1/workflows`,
    /// `/v1/tasks`, `/v1/workers`, `/v1/escalations`, `/v1/retry-queue`). Attaching a
    /// second engine keeps the first.
    pub fn with_engine(self, engine: Engine) -> Gateway {
        let libraries = holdfast_quality::fewshot::Libraries::new(Arc::clone(engine.store()));
        let embedder = crate::embeddings::GatewayEmbedder(Arc::downgrade(&self.live));
        libraries.set_embedder(Arc::new(embedder));
        libraries.configure(crate::few_shot::similarity(&self.inner.few_shot_embeddings));
        let _ = self.inner.libraries.set(Arc::new(libraries));
        if self.inner.engine.set(engine).is_err() {
            tracing::warn!("an engine is already attached to this gateway; keeping the first");
        }
        self
    }

    /// The attached engine, if any.
    pub fn engine(&self) -> Option<&Engine> {
        self.inner.engine.get()
    }

    /// The engine's model caller for `llm` steps: this gateway's own pipeline, in
    /// process (`llm_step.rs`).
    pub fn llm(&self) -> Arc<dyn Llm> {
        Arc::new(crate::llm_step::GatewayLlm::new(Arc::downgrade(&self.live)))
    }

    /// Where the engine sends its task events: this gateway's metrics, and its
    /// production sampling of workflows.
    pub fn task_events(&self) -> EventSink {
        let metrics = Arc::clone(&self.inner.metrics);
        let live = Arc::downgrade(&self.live);
        Arc::new(move |event| {
            crate::events::task_event(&metrics, event);
            crate::sampling::offer_task(&live, event);
        })
    }
}

/// A workflow request that passed the door.
pub(crate) struct Admitted {
    /// The engine to ask.
    pub(crate) engine: Engine,
    /// Who is calling (checked by the route's extractor, `access.rs`).
    pub(crate) principal: Principal,
}

/// A read through the door: an engine is attached. Reads do not spend the key's
/// request limit, as the gateway's other views (`/v1/holdfast/*`) do not: the limit
/// meters work (model calls, submissions, answers), and a dashboard polling its views
/// must not starve the key's calls.
pub(crate) fn admit<N>(caller: &Authorized<N>) -> Result<Admitted, ApiError> {
    let engine = caller
        .gateway
        .inner
        .engine
        .get()
        .cloned()
        .ok_or(ApiError::EngineUnavailable)?;
    Ok(Admitted {
        engine,
        principal: caller.principal.clone(),
    })
}

/// A write through the door: the key's request limit spent, then that an engine is
/// attached.
pub(crate) fn admit_write<N>(caller: &Authorized<N>) -> Result<Admitted, ApiError> {
    let gw = &caller.gateway.inner;
    gw.keys
        .admit_request(caller.principal.caller, gw.clock.now())?;
    admit(caller)
}

/// The body, read through `server.body_limit`.
pub(crate) async fn read_body(
    gateway: &Gateway,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, ApiError> {
    let limit = gateway.inner.body_limit;
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

/// `body` parsed as `T`; an error names the field at fault. An empty body is `{}`
/// when `empty_is_object`, so that optional bodies (`cancel`) may be left out.
pub(crate) fn parse<T: DeserializeOwned>(
    body: &[u8],
    empty_is_object: bool,
) -> Result<T, ApiError> {
    let body: &[u8] = if empty_is_object && body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    let mut json = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            ApiError::InvalidJson(inner.to_string())
        } else {
            ApiError::InvalidJson(format!("{path}: {inner}"))
        }
    })?;
    json.end()
        .map_err(|e| ApiError::InvalidJson(format!("trailing data after the JSON: {e}")))?;
    Ok(value)
}

/// A JSON write through the door ([`admit_write`]), the body read within the limit
/// and parsed as `T` (see [`parse`] for `empty_is_object`).
pub(crate) async fn admit_json<T: DeserializeOwned, N>(
    caller: &Authorized<N>,
    headers: &HeaderMap,
    body: Body,
    empty_is_object: bool,
) -> Result<(Admitted, T), ApiError> {
    let api = admit_write(caller)?;
    let body = read_body(&caller.gateway, headers, body).await?;
    Ok((api, parse(&body, empty_is_object)?))
}

/// `Some` for a field that is present, `null` included (`#[serde(deserialize_with)]`),
/// so that `{"output": null}` is an answer and a missing `output` is not.
pub(crate) fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<serde_json::Value>, D::Error> {
    <serde_json::Value as serde::Deserialize>::deserialize(deserializer).map(Some)
}

/// The query string parsed as `T`; unknown parameters are refused when `T` says so, and
/// so is a parameter that is not UTF-8 once percent-decoded (which axum would read
/// with replacement characters, answering a question the client did not ask).
pub(crate) fn query<T: DeserializeOwned>(uri: &Uri) -> Result<T, ApiError> {
    for pair in uri.query().unwrap_or_default().split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decodes = |text: &str| {
            percent_encoding::percent_decode_str(&text.replace('+', " "))
                .decode_utf8()
                .is_ok()
        };
        if !decodes(name) || !decodes(value) {
            let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
            return Err(ApiError::InvalidRequest {
                message: format!(
                    "invalid query string: `{name}` is not UTF-8 text once percent-decoded"
                ),
                param: Some(name.into_owned()),
            });
        }
    }
    Query::<T>::try_from_uri(uri)
        .map(|Query(q)| q)
        .map_err(|e| query_refusal(&e.body_text()))
}

/// axum's `Failed to deserialize query string: limit: invalid digit found in string`
/// as `invalid query string: `limit` is not a whole number ≥ 0`, naming the parameter.
fn query_refusal(text: &str) -> ApiError {
    let detail = text
        .strip_prefix("Failed to deserialize query string: ")
        .unwrap_or(text);
    let (param, reason) = match detail.split_once(": ") {
        Some((name, reason)) if !name.contains(' ') => (Some(name.to_owned()), reason),
        _ => (None, detail),
    };
    let reason = match reason {
        "invalid digit found in string" | "cannot parse integer from empty string" => {
            "is not a whole number ≥ 0"
        }
        "number too large to fit in target type" => "is too large",
        other => other,
    };
    let message = match &param {
        Some(name) if !reason.starts_with("unknown field") => {
            format!("invalid query string: `{name}` {reason}")
        }
        _ => format!("invalid query string: {reason}"),
    };
    ApiError::InvalidRequest { message, param }
}

/// Checks that `value` is within `range`, naming `field` if not.
pub(crate) fn bounded(
    field: &str,
    value: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ApiError> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::InvalidRequest {
            message: format!(
                "invalid `{field}`: {value} is not in {}..={}",
                range.start(),
                range.end()
            ),
            param: Some(field.to_owned()),
        })
    }
}

/// A JSON answer.
pub(crate) fn reply(status: StatusCode, value: &impl Serialize) -> Response {
    (status, Json(value)).into_response()
}

/// The client's error for an engine refusal.
pub(crate) fn engine_error(err: EngineError) -> ApiError {
    match err {
        EngineError::Invalid { problems } => {
            let message = match problems.as_slice() {
                [one] => one.to_string(),
                many => format!(
                    "{} problems: {}",
                    many.len(),
                    many.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            };
            ApiError::InvalidInput {
                message,
                problems: problems.into_iter().map(|p| (p.path, p.message)).collect(),
            }
        }
        EngineError::NotFound { .. } => ApiError::NotFound(err.to_string()),
        EngineError::Conflict { .. } => ApiError::Conflict(err.to_string()),
        EngineError::OutboxFull { .. } => ApiError::OutboxFull(err.to_string()),
        EngineError::Store(store) => store_error(store),
    }
}

fn store_error(err: StoreError) -> ApiError {
    if err.is_unavailable() {
        // The cause is logged, not shown: it may name the database's host.
        tracing::warn!(error = %err, "a request found the store unavailable");
        let shown = match err {
            // The outbox's answer for a submission it cannot check while the store is
            // known to be down (a workflow this node has not read yet).
            StoreError::Unavailable { waited_ms: 0 } => "it is down".to_owned(),
            StoreError::Unavailable { waited_ms } => format!("no answer within {waited_ms} ms"),
            _ => "it cannot be reached or cannot write".to_owned(),
        };
        return ApiError::StoreUnavailable(shown);
    }
    match err {
        StoreError::InvalidInput { field, reason } => ApiError::InvalidInput {
            message: format!("{field}: {reason}"),
            problems: vec![(field.to_owned(), reason)],
        },
        StoreError::NotFound { kind, id } => ApiError::NotFound(format!("{kind} {id:?} not found")),
        StoreError::StaleLease { kind, id, token } => ApiError::StaleLease(format!(
            "stale lease: token {token} no longer holds {kind} {id:?} (its lease expired and it \
             was claimed again, or its task was cancelled); nothing was recorded"
        )),
        StoreError::Conflict { kind, id, reason } => {
            ApiError::Conflict(format!("conflict on {kind} {id:?}: {reason}"))
        }
        unreadable @ StoreError::ArtifactUnreadable { .. } => {
            tracing::error!(error = %unreadable, "a stored value is unreadable");
            ApiError::ArtifactUnreadable(unreadable.to_string())
        }
        other => ApiError::Internal(format!("store: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Filter {
        #[allow(dead_code)] // read by serde only
        workflow: Option<String>,
    }

    /// Regression: `?workflow=%FF` was read as U+FFFD and answered an empty list.
    #[test]
    fn a_query_value_that_is_not_utf8_is_refused_with_its_name() {
        let uri: Uri = "/v1/tasks?workflow=%FF".parse().unwrap();
        let err = query::<Filter>(&uri).err().unwrap();
        assert_eq!(err.code(), "invalid_request");
        assert!(err.to_string().contains("`workflow` is not UTF-8"), "{err}");
        let fine: Uri = "/v1/tasks?workflow=caf%C3%A9+au+lait".parse().unwrap();
        assert!(query::<Filter>(&fine).is_ok());
    }

    #[derive(serde::Deserialize)]
    struct Limit {
        #[allow(dead_code)] // read by serde only
        limit: Option<u64>,
    }

    #[test]
    fn a_bad_number_in_a_query_names_its_parameter() {
        for (query_text, says) in [
            ("limit=-1", "`limit` is not a whole number ≥ 0"),
            ("limit=99999999999999999999999", "`limit` is too large"),
        ] {
            let uri: Uri = format!("/v1/tasks?{query_text}").parse().unwrap();
            let err = query::<Limit>(&uri).err().unwrap();
            assert!(err.to_string().contains(says), "{err}");
            assert_eq!(err.body(crate::Flavor::OpenAi)["error"]["param"], "limit");
        }
    }
}
