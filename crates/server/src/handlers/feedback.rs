//! `POST /v1/holdfast/feedback`: a verdict on one call (a request id, or a task's llm
//! step), optionally with the right answer.
//!
//! A `bad` verdict with a `correction` adds the call's input and the correction to the
//! library of the call's route, as a candidate for a reviewer (or active at once where
//! the route says `auto_approve`); every verdict is counted
//! (`holdfast_few_shot_feedback_total`). The call is found in the attempt ledger (a
//! request id) or in the task's journal (a step): a call of another tenant, or one the
//! ledger no longer keeps, is a 404 like one that never was.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use holdfast_engine::Scope;
use holdfast_quality::fewshot::{Correction, add_correction};
use holdfast_store::ExampleSource;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::access::Agent;
use crate::engine_api::{admit, parse, read_body, reply};
use crate::error::ApiError;
use crate::gateway::Gateway;

use super::examples::{example_json, store_error};

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Verdict {
    Good,
    Bad,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackBody {
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    task_id: Option<String>,
    #[serde(default)]
    step: Option<String>,
    verdict: Verdict,
    #[serde(default)]
    correction: Option<String>,
}

/// The call a verdict is about: its library and its input.
struct Call {
    library: String,
    input: String,
    origin: String,
}

fn invalid(message: impl Into<String>, param: &str) -> ApiError {
    ApiError::InvalidRequest {
        message: message.into(),
        param: Some(param.to_owned()),
    }
}

/// Records a verdict, and a correction as an example.
pub(crate) async fn feedback(
    caller: Agent,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let gw = &caller.gateway.inner;
    gw.keys
        .admit_request(caller.principal.caller, gw.clock.now())?;
    let bytes = read_body(&caller.gateway, &headers, body).await?;
    let request: FeedbackBody = parse(&bytes, false)?;
    let correction = match (request.verdict, request.correction) {
        (Verdict::Bad, Some(c)) if c.trim().is_empty() => {
            return Err(invalid("`correction` must not be empty", "correction"));
        }
        (Verdict::Good, Some(_)) => {
            return Err(invalid(
                "only a `bad` verdict takes a `correction`",
                "correction",
            ));
        }
        (_, correction) => correction,
    };
    let scope = caller.principal.writes();
    let call = match (request.request_id, request.task_id, request.step) {
        (Some(id), None, None) => from_ledger(&caller.gateway, &id, &scope)?,
        (None, Some(task), Some(step)) => from_journal(&caller, &task, &step, &scope).await?,
        _ => {
            return Err(invalid(
                "name the call: `request_id`, or `task_id` and `step`",
                "request_id",
            ));
        }
    };
    let Some(libraries) = caller.gateway.libraries() else {
        return Err(ApiError::EngineUnavailable);
    };
    libraries.record_feedback(&call.library, request.verdict == Verdict::Good);
    let Some(output) = correction else {
        let answer = json!({"library": call.library, "example": Value::Null});
        return Ok(reply(StatusCode::OK, &answer));
    };
    let correction = Correction {
        tenant: caller.principal.tenant.to_string(),
        auto_approve: auto_approve(&caller.gateway, &call.library),
        library: call.library.clone(),
        input: call.input,
        output,
        source: ExampleSource::Feedback,
        author: caller.principal.name.to_string(),
        origin: Some(call.origin),
    };
    let added = add_correction(libraries, correction, gw.clock.unix_millis())
        .await
        .map_err(store_error)?;
    caller.gateway.label_correction(added.example());
    let merged = matches!(added, holdfast_store::ExampleAdded::Merged(_));
    let answer = json!({
        "library": call.library,
        "example": example_json(added.example()),
        "merged": merged,
    });
    Ok(reply(StatusCode::CREATED, &answer))
}

/// Whether a route keeping `library` takes corrections without a reviewer.
pub(crate) fn auto_approve(gateway: &Gateway, library: &str) -> bool {
    gateway.inner.routes.values().any(|r| {
        r.few_shot
            .as_ref()
            .is_some_and(|f| f.library == library && f.auto_approve)
    })
}

fn no_library(what: &str) -> ApiError {
    ApiError::InvalidRequest {
        message: format!("{what} kept no example library: its route has no `few_shot`"),
        param: None,
    }
}

fn from_ledger(gateway: &Gateway, id: &str, scope: &Scope) -> Result<Call, ApiError> {
    let Some((_, used)) = gateway.inner.ledger.few_shot(id, scope) else {
        return Err(ApiError::NotFound(format!(
            "request {id:?} not found (the ledger keeps the most recent requests)"
        )));
    };
    let used = used.ok_or_else(|| no_library(&format!("request {id:?}")))?;
    Ok(Call {
        library: used.library.clone(),
        input: used.input.clone(),
        origin: format!("request:{id}"),
    })
}

async fn from_journal(
    caller: &Agent,
    task: &str,
    step: &str,
    scope: &Scope,
) -> Result<Call, ApiError> {
    let api = admit(caller)?;
    let journal = api
        .engine
        .journal(task, scope, 0, 1000)
        .await
        .map_err(crate::engine_api::engine_error)?;
    let record = journal
        .iter()
        .rev()
        .filter(|e| e.kind == "step_succeeded" && e.data["step"] == step)
        .map(|e| &e.data["few_shot"])
        .next()
        .ok_or_else(|| {
            ApiError::NotFound(format!("no llm call of step {step:?} in task {task:?}"))
        })?;
    let (Some(library), Some(input)) = (record["library"].as_str(), record["input"].as_str())
    else {
        return Err(no_library(&format!("step {step:?} of task {task:?}")));
    };
    Ok(Call {
        library: library.to_owned(),
        input: input.to_owned(),
        origin: format!("task:{task}/{step}"),
    })
}
