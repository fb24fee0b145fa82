//! `/v1/holdfast/samples`: production answers sampled by the quality loop, for
//! reviewers (their own tenant's; operators and admins every tenant's), and promoting
//! one to a case of its suite, for admins (it appends to a file on the server's disk).
//!
//! A promotion is checked by loading the suite with the new line before it is
//! written (`holdfast_quality::sampling::promote`): a line the suite would refuse
//! changes nothing and gets 400 with the suite's problem.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use holdfast_store::{QualitySample, SampleFilter};
use serde::Deserialize;
use serde_json::{Value, json};

use super::examples::store_error;
use crate::access::{Admin, Reviewer};
use crate::engine_api::{bounded, parse, query, read_body, reply};
use crate::error::ApiError;
use crate::extract::Path;
use crate::gateway::Gateway;
use crate::sampling::Sampling;
use holdfast_quality::sampling::sample_json;

fn sampling(gateway: &Gateway) -> Result<&Sampling, ApiError> {
    gateway
        .inner
        .sampling
        .get()
        .map(|s| &**s)
        .ok_or(ApiError::NotFound(
            "production sampling is not configured ([quality.sampling])".to_owned(),
        ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    task_type: Option<String>,
    #[serde(default)]
    before: Option<u64>,
    #[serde(default)]
    limit: Option<u64>,
}

/// Lists samples, newest first.
pub(crate) async fn list(caller: Reviewer, uri: Uri) -> Result<Response, ApiError> {
    let sampling = sampling(&caller.gateway)?;
    let q: ListQuery = query(&uri)?;
    let filter = SampleFilter {
        tenant: caller.principal.reads().tenant().map(str::to_owned),
        task_type: q.task_type.filter(|t| !t.is_empty()),
        before_id: q.before,
        limit: bounded("limit", q.limit.unwrap_or(100), 1..=1000)? as u32,
    };
    let list = sampling
        .store
        .list_quality_samples(&filter)
        .await
        .map_err(store_error)?;
    let list: Vec<Value> = list.iter().map(sample_json).collect();
    Ok(reply(StatusCode::OK, &json!({ "samples": list })))
}

async fn find(
    sampling: &Sampling,
    tenant: Option<&str>,
    id: &str,
) -> Result<QualitySample, ApiError> {
    let missing = || ApiError::NotFound(format!("sample {id:?} not found"));
    let id: u64 = id.parse().map_err(|_| missing())?;
    let found = sampling
        .store
        .get_quality_sample(tenant, id)
        .await
        .map_err(store_error)?;
    found.ok_or_else(missing)
}

/// One sample.
pub(crate) async fn get(caller: Reviewer, Path(id): Path<String>) -> Result<Response, ApiError> {
    let sampling = sampling(&caller.gateway)?;
    let found = find(sampling, caller.principal.reads().tenant(), &id).await?;
    Ok(reply(StatusCode::OK, &sample_json(&found)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PromoteBody {
    /// The right answer; the sampled answer's text when not given.
    #[serde(default)]
    expected: Option<Value>,
    /// The case's graders; `[{"type": "equals"}]` when not given.
    #[serde(default, rename = "assert")]
    asserts: Option<Vec<Value>>,
}

/// Appends the sample as a `labeled` case to the dataset of the suite that scored it.
pub(crate) async fn promote(
    caller: Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let gw = &caller.gateway.inner;
    gw.keys
        .admit_request(caller.principal.caller, gw.clock.now())?;
    let sampling = sampling(&caller.gateway)?;
    let bytes = read_body(&caller.gateway, &headers, body).await?;
    let request: PromoteBody = if bytes.is_empty() {
        PromoteBody::default()
    } else {
        parse(&bytes, false)?
    };
    let sample = find(sampling, caller.principal.writes().tenant(), &id).await?;
    let path = {
        let running = caller.gateway.live.running().await;
        running
            .config
            .quality
            .sampling
            .get(&sample.task_type)
            .map(|s| s.suite.clone())
    };
    let path = path
        .ok_or_else(|| ApiError::NotFound(format!("route {} is not sampled", sample.task_type)))?;
    let case = holdfast_quality::sampling::promoted_case(
        (sample.id, &sample.input, &sample.answer),
        request.expected,
        request.asserts,
    );
    let case_id =
        tokio::task::spawn_blocking(move || holdfast_quality::sampling::promote(&path, &case))
            .await
            .map_err(|e| ApiError::Internal(format!("promoting: {e}")))?
            .map_err(|e| ApiError::InvalidRequest {
                message: e.to_string(),
                param: None,
            })?;
    Ok(reply(
        StatusCode::OK,
        &json!({ "case_id": case_id, "sample": sample.id }),
    ))
}
