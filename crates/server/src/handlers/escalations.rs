//! `/v1/escalations`: the human inbox. A `human` step, or a step whose retries ran out
//! with `on_exhausted = "escalate"`, waits here until a person approves, edits or
//! rejects it.
//!
//! An escalation is resolved once: a second answer is a 409 `conflict`, whoever gives
//! it, so two people clicking at once cannot both move the task. Who decided is
//! recorded as the name of the client key that answered (never the key, and never a
//! name written in the body: the audit record names who authenticated). The inbox is
//! for reviewers and up, each seeing its own tenant's escalations (operators and
//! admins read every tenant's, and answer only their own). An edit that corrects an
//! `llm` step's answer becomes a few-shot example of its library (`corrections.rs`).

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use holdfast_store::{EscalationFilter, Resolution};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::access::Reviewer;
use crate::engine_api::{admit, admit_json, bounded, engine_error, query, reply};
use crate::engine_json;
use crate::error::ApiError;
use crate::extract::Path;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    task_id: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
}

/// Lists escalations, oldest first: open ones by default, `status=all` for every one.
pub(crate) async fn list(caller: Reviewer, uri: Uri) -> Result<Response, ApiError> {
    let api = admit(&caller)?;
    let q: ListQuery = query(&uri)?;
    let open_only = match q.status.as_deref() {
        None | Some("" | "open") => true,
        Some("all") => false,
        Some(other) => {
            return Err(ApiError::InvalidRequest {
                message: format!("invalid `status` {other:?}: `open` or `all`"),
                param: Some("status".to_owned()),
            });
        }
    };
    let limit = bounded("limit", q.limit.unwrap_or(100), 1..=1000)?;
    let filter = EscalationFilter {
        tenant: None,
        open_only,
        task_id: q.task_id.filter(|t| !t.is_empty()),
        limit: limit as u32,
    };
    let list = api
        .engine
        .escalations(&filter, &api.principal.reads())
        .await
        .map_err(engine_error)?;
    let list: Vec<Value> = list.iter().map(engine_json::escalation).collect();
    Ok(reply(StatusCode::OK, &json!({ "escalations": list })))
}

/// One escalation.
pub(crate) async fn get(caller: Reviewer, Path(id): Path<String>) -> Result<Response, ApiError> {
    let api = admit(&caller)?;
    let esc = api
        .engine
        .escalation(&id, &api.principal.reads())
        .await
        .map_err(engine_error)?;
    Ok(reply(StatusCode::OK, &engine_json::escalation(&esc)))
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Action {
    Approve,
    Edit,
    Reject,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    action: Action,
    /// Present (even as `null`) for an edit.
    #[serde(default, deserialize_with = "crate::engine_api::present")]
    value: Option<Value>,
    #[serde(default)]
    reason: Option<String>,
    /// Refused with a clear message: who decided is the key's name.
    #[serde(default)]
    by: Option<Value>,
}

/// Records a person's decision and wakes the task.
pub(crate) async fn resolve(
    caller: Reviewer,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let (api, request): (_, ResolveBody) = admit_json(&caller, &headers, body, false).await?;
    let refuse = |message: &str, param: &str| ApiError::InvalidRequest {
        message: message.to_owned(),
        param: Some(param.to_owned()),
    };
    if request.by.is_some() {
        return Err(refuse(
            "`by` is not accepted: the decision is recorded under the name of the client \
             key that sends it",
            "by",
        ));
    }
    let resolution = match (request.action, request.value, request.reason) {
        (Action::Approve, None, None) => Resolution::Approve,
        (Action::Edit, Some(value), None) => Resolution::Edit(value),
        (Action::Edit, None, _) => return Err(refuse("`edit` needs a `value`", "value")),
        (Action::Reject, None, reason) => Resolution::Reject(
            reason
                .filter(|r| !r.trim().is_empty())
                .unwrap_or_else(|| "rejected without a reason".to_owned()),
        ),
        (Action::Approve | Action::Reject, Some(_), _) => {
            return Err(refuse("only `edit` takes a `value`", "value"));
        }
        (Action::Approve | Action::Edit, _, Some(_)) => {
            return Err(refuse("only `reject` takes a `reason`", "reason"));
        }
    };
    let esc = api
        .engine
        .resolve(
            &id,
            &api.principal.writes(),
            resolution,
            &api.principal.name,
        )
        .await
        .map_err(engine_error)?;
    caller.gateway.learn_from_escalation(&esc).await;
    Ok(reply(StatusCode::OK, &engine_json::escalation(&esc)))
}
