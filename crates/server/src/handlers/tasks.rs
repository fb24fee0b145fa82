//! `/v1/tasks` and `/v1/retry-queue`: submitting tasks and reading how they are doing.
//!
//! Submission is idempotent when the client gives a key (in the body's
//! `idempotency_key` or the `Idempotency-Key` header): the first submission answers
//! 201 with the new task, every later one 200 with that same task, and nothing runs
//! twice. Once the answer is 2xx the task is durable (invariant 2): 202 `queued` (the
//! store is down and `[store] outbox` is on) is durable in the node's outbox file and
//! becomes the task once the store is back.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use holdfast_engine::{Accepted, Submission};
use holdfast_store::{Cancelled, Submitted, TaskFilter};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::access::Agent;
use crate::engine_api::{admit, admit_json, bounded, engine_error, query, reply};
use crate::engine_json;
use crate::error::ApiError;
use crate::extract::Path;

/// The most items one list answer holds.
const MAX_LIMIT: u64 = 1000;
/// Items in a list answer when the client does not say.
const DEFAULT_LIMIT: u64 = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    workflow: String,
    #[serde(default)]
    version: Option<u32>,
    input: Value,
    #[serde(default)]
    idempotency_key: Option<String>,
}

/// Submits a task.
pub(crate) async fn submit(
    caller: Agent,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (api, request): (_, SubmitBody) = admit_json(&caller, &headers, body, false).await?;
    let header_key = match headers.get(crate::meta::IDEMPOTENCY_KEY) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ApiError::InvalidHeader {
                    header: crate::meta::IDEMPOTENCY_KEY,
                    reason: "must be visible ASCII".to_owned(),
                })?
                .trim()
                .to_owned(),
        ),
    };
    let key = match (request.idempotency_key, header_key) {
        (Some(body), Some(header)) if body != header => {
            return Err(ApiError::InvalidRequest {
                message: "the Idempotency-Key header and the body's `idempotency_key` differ"
                    .to_owned(),
                param: Some("idempotency_key".to_owned()),
            });
        }
        (Some(key), _) | (None, Some(key)) => Some(key),
        (None, None) => None,
    };
    let accepted = api
        .engine
        .submit_or_queue(Submission {
            tenant: api.principal.tenant.to_string(),
            workflow: request.workflow,
            version: request.version,
            input: request.input,
            idempotency_key: key,
            // The task's spans join the submitter's trace, on every node that runs it.
            traceparent: headers
                .get(holdfast_engine::trace::TRACEPARENT_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        })
        .await
        .map_err(engine_error)?;
    Ok(match accepted {
        Accepted::Stored(submitted) => match *submitted {
            Submitted::Created(task) => reply(StatusCode::CREATED, &engine_json::task(&task)),
            Submitted::Existing(task) => reply(StatusCode::OK, &engine_json::task(&task)),
        },
        // The store is down and `[store] outbox` is on: durable in the outbox, stored
        // once the store is back. The same key then answers the task.
        Accepted::Queued { idempotency_key } => reply(
            StatusCode::ACCEPTED,
            &json!({"status": "queued", "idempotency_key": idempotency_key}),
        ),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    workflow: Option<String>,
    #[serde(default)]
    cursor: Option<u64>,
    #[serde(default)]
    limit: Option<u64>,
}

/// Lists tasks, newest first, a page at a time.
pub(crate) async fn list(caller: Agent, uri: Uri) -> Result<Response, ApiError> {
    let api = admit(&caller)?;
    let q: ListQuery = query(&uri)?;
    let status = q
        .status
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(engine_json::task_status)
        .transpose()
        .map_err(|message| ApiError::InvalidRequest {
            message,
            param: Some("status".to_owned()),
        })?;
    let limit = bounded("limit", q.limit.unwrap_or(DEFAULT_LIMIT), 1..=MAX_LIMIT)?;
    let filter = TaskFilter {
        tenant: None,
        status,
        workflow: q.workflow.filter(|w| !w.is_empty()),
        cursor: q.cursor,
        limit: limit as u32,
    };
    let page = api
        .engine
        .tasks(&filter, &api.principal.reads())
        .await
        .map_err(engine_error)?;
    let tasks: Vec<Value> = page.tasks.iter().map(engine_json::task).collect();
    Ok(reply(
        StatusCode::OK,
        &json!({ "tasks": tasks, "next_cursor": page.next_cursor }),
    ))
}

/// One task.
pub(crate) async fn get(caller: Agent, Path(id): Path<String>) -> Result<Response, ApiError> {
    let api = admit(&caller)?;
    let task = api
        .engine
        .task(&id, &api.principal.reads())
        .await
        .map_err(engine_error)?;
    Ok(reply(StatusCode::OK, &engine_json::task(&task)))
}

/// A task's step records.
pub(crate) async fn steps(caller: Agent, Path(id): Path<String>) -> Result<Response, ApiError> {
    let api = admit(&caller)?;
    let steps = api
        .engine
        .steps(&id, &api.principal.reads())
        .await
        .map_err(engine_error)?;
    let steps: Vec<Value> = steps.iter().map(engine_json::step).collect();
    Ok(reply(StatusCode::OK, &json!({ "steps": steps })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JournalQuery {
    #[serde(default)]
    after: Option<u64>,
    #[serde(default)]
    limit: Option<u64>,
}

/// A task's journal after a sequence number.
pub(crate) async fn journal(
    caller: Agent,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let api = admit(&caller)?;
    let q: JournalQuery = query(&uri)?;
    let limit = bounded("limit", q.limit.unwrap_or(DEFAULT_LIMIT), 1..=MAX_LIMIT)?;
    let entries = api
        .engine
        .journal(
            &id,
            &api.principal.reads(),
            q.after.unwrap_or(0),
            limit as u32,
        )
        .await
        .map_err(engine_error)?;
    let entries: Vec<Value> = entries.iter().map(engine_json::journal_entry).collect();
    Ok(reply(StatusCode::OK, &json!({ "entries": entries })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    #[serde(default)]
    reason: Option<String>,
}

/// Cancels a task that has not finished; a finished one is answered as it is, with
/// `cancelled: false`.
pub(crate) async fn cancel(
    caller: Agent,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let (api, request): (_, CancelBody) = admit_json(&caller, &headers, body, true).await?;
    let reason = request
        .reason
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| format!("cancelled by {}", api.principal.name));
    let cancelled = api
        .engine
        .cancel(&id, &api.principal.writes(), &reason)
        .await
        .map_err(engine_error)?;
    let (cancelled, task) = match &cancelled {
        Cancelled::Cancelled(task) => (true, task),
        Cancelled::AlreadyFinished(task) => (false, task),
    };
    Ok(reply(
        StatusCode::OK,
        &json!({ "cancelled": cancelled, "task": engine_json::task(task) }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitQuery {
    #[serde(default)]
    limit: Option<u64>,
}

/// Steps waiting to be retried, soonest first.
pub(crate) async fn retry_queue(caller: Agent, uri: Uri) -> Result<Response, ApiError> {
    let api = admit(&caller)?;
    let q: LimitQuery = query(&uri)?;
    let limit = bounded("limit", q.limit.unwrap_or(DEFAULT_LIMIT), 1..=MAX_LIMIT)?;
    let steps = api
        .engine
        .retry_queue(&api.principal.reads(), limit as u32)
        .await
        .map_err(engine_error)?;
    let steps: Vec<Value> = steps.iter().map(engine_json::step).collect();
    Ok(reply(StatusCode::OK, &json!({ "steps": steps })))
}
