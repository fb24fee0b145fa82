//! `/v1/workers/…`: the protocol of the user's own workers, which run `worker` steps.
//!
//! A worker claims jobs of a queue with a lease, renews the lease with heartbeats while
//! it works, and reports an output or an error. Every call after the claim carries the
//! claim's fencing token: once a lease expired and another worker claimed the job, the
//! old token is refused with 409 `stale_lease`, so a worker that stalled cannot
//! overwrite its successor's result (invariant 3). The job's payload carries the step's
//! idempotency key (`task_id/step`), the same on every attempt, for the worker's own
//! side effects.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use holdfast_store::{FencingToken, JobResult};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::access::Agent;
use crate::engine_api::{admit_json, bounded, engine_error, reply};
use crate::engine_json;
use crate::error::ApiError;
use crate::extract::Path;

/// A job lease when the worker does not ask for one.
const DEFAULT_LEASE_MS: u64 = 30_000;
/// Leases a worker may ask for: 100 ms to one hour.
const LEASE_MS: std::ops::RangeInclusive<u64> = 100..=3_600_000;
/// Jobs one claim may take.
const CLAIM_LIMIT: std::ops::RangeInclusive<u64> = 1..=100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimBody {
    queue: String,
    worker_id: String,
    #[serde(default)]
    lease_ms: Option<u64>,
    #[serde(default)]
    limit: Option<u64>,
}

/// Claims up to `limit` jobs of a queue.
pub(crate) async fn claim(
    caller: Agent,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (api, request): (_, ClaimBody) = admit_json(&caller, &headers, body, false).await?;
    let lease = bounded(
        "lease_ms",
        request.lease_ms.unwrap_or(DEFAULT_LEASE_MS),
        LEASE_MS,
    )?;
    let limit = bounded("limit", request.limit.unwrap_or(1), CLAIM_LIMIT)?;
    let jobs = api
        .engine
        .claim_jobs(
            &request.queue,
            &api.principal.writes(),
            &request.worker_id,
            Duration::from_millis(lease),
            limit as u32,
        )
        .await
        .map_err(engine_error)?;
    let jobs: Vec<Value> = jobs.iter().map(engine_json::job).collect();
    Ok(reply(StatusCode::OK, &json!({ "jobs": jobs })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeartbeatBody {
    token: u64,
    #[serde(default)]
    lease_ms: Option<u64>,
}

/// Extends a job's lease.
pub(crate) async fn heartbeat(
    caller: Agent,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let (api, request): (_, HeartbeatBody) = admit_json(&caller, &headers, body, false).await?;
    let lease = bounded(
        "lease_ms",
        request.lease_ms.unwrap_or(DEFAULT_LEASE_MS),
        LEASE_MS,
    )?;
    let expires = api
        .engine
        .heartbeat_job(
            &id,
            &api.principal.writes(),
            FencingToken(request.token),
            Duration::from_millis(lease),
        )
        .await
        .map_err(engine_error)?;
    Ok(reply(
        StatusCode::OK,
        &json!({ "job_id": id, "lease_expires_at_ms": expires }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompleteBody {
    token: u64,
    /// Present (even as `null`) when the job succeeded.
    #[serde(default, deserialize_with = "crate::engine_api::present")]
    output: Option<Value>,
    #[serde(default)]
    error: Option<String>,
}

/// Records a job's result.
pub(crate) async fn complete(
    caller: Agent,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let (api, request): (_, CompleteBody) = admit_json(&caller, &headers, body, false).await?;
    let result = match (request.output, request.error) {
        (Some(output), None) => JobResult::Succeeded(output),
        (None, Some(error)) if !error.trim().is_empty() => JobResult::Failed(error),
        (None, Some(_)) => {
            return Err(ApiError::InvalidRequest {
                message: "invalid `error`: must not be empty".to_owned(),
                param: Some("error".to_owned()),
            });
        }
        (Some(_), Some(_)) | (None, None) => {
            return Err(ApiError::InvalidRequest {
                message: "give exactly one of `output` (the job succeeded) or `error` (it failed)"
                    .to_owned(),
                param: None,
            });
        }
    };
    let succeeded = matches!(result, JobResult::Succeeded(_));
    api.engine
        .complete_job(
            &id,
            &api.principal.writes(),
            FencingToken(request.token),
            result,
        )
        .await
        .map_err(engine_error)?;
    let status = if succeeded { "succeeded" } else { "failed" };
    Ok(reply(
        StatusCode::OK,
        &json!({ "job_id": id, "status": status }),
    ))
}
