//! `POST /v1/workflows`, `GET /v1/workflows`, `GET /v1/workflows/{name}` and
//! `GET /v1/workflows/{name}/versions/{version}`: registering and reading workflow
//! definitions.
//!
//! A definition is JSON, or TOML when the request says `Content-Type: application/toml`;
//! either way the engine checks all of it and answers every problem with its field
//! path before anything is stored. Registering the same definition again answers 200
//! with the stored one (201 the first time), so a deploy script may register on every
//! run; a changed definition under a registered version is a 409.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use crate::access::{Admin, Agent};
use crate::engine_api::{admit, admit_write, engine_error, parse, read_body, reply};
use crate::engine_json;
use crate::error::ApiError;
use crate::extract::Path;

/// Registers a definition.
pub(crate) async fn register(
    caller: Admin,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let api = admit_write(&caller)?;
    let body = read_body(&caller.gateway, &headers, body).await?;
    let is_toml = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("toml"));
    let source: Value = if is_toml {
        let text = std::str::from_utf8(&body)
            .map_err(|_| ApiError::InvalidJson("the TOML body is not UTF-8".to_owned()))?;
        holdfast_engine::parse_toml(text)
            .map_err(engine_error)?
            .source
    } else {
        parse(&body, false)?
    };
    let name = source
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let version = match source.get("version") {
        None => Some(1),
        Some(v) => v.as_u64().and_then(|v| u32::try_from(v).ok()),
    };
    let existed = match (&name, version) {
        (Some(name), Some(version)) => api.engine.workflow(name, Some(version)).await.is_ok(),
        _ => false,
    };
    let def = api.engine.register(source).await.map_err(engine_error)?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(reply(status, &engine_json::workflow(&def)))
}

/// Every registered workflow version.
pub(crate) async fn list(caller: Agent) -> Result<Response, ApiError> {
    let api = admit(&caller)?;
    let defs = api.engine.workflows().await.map_err(engine_error)?;
    let list: Vec<Value> = defs.iter().map(engine_json::workflow).collect();
    Ok(reply(StatusCode::OK, &json!({ "workflows": list })))
}

/// A workflow's latest version.
pub(crate) async fn latest(caller: Agent, Path(name): Path<String>) -> Result<Response, ApiError> {
    let api = admit(&caller)?;
    let def = api
        .engine
        .workflow(&name, None)
        .await
        .map_err(engine_error)?;
    Ok(reply(StatusCode::OK, &engine_json::workflow(&def)))
}

/// One version of a workflow.
pub(crate) async fn version(
    caller: Agent,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let api = admit(&caller)?;
    let version: u32 =
        version
            .parse()
            .ok()
            .filter(|v| *v >= 1)
            .ok_or_else(|| ApiError::InvalidRequest {
                message: format!("invalid version {version:?}: a whole number ≥ 1"),
                param: Some("version".to_owned()),
            })?;
    let def = api
        .engine
        .workflow(&name, Some(version))
        .await
        .map_err(engine_error)?;
    Ok(reply(StatusCode::OK, &engine_json::workflow(&def)))
}
