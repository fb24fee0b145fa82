//! `/admin/config…`: reload the configuration, read its history, roll it back.
//!
//! Writes are for admins, reading the history for operators (`access.rs`): a
//! configuration decides where all traffic goes. The decision: these handlers only translate HTTP; loading,
//! validating, building, recording and swapping are `live.rs`'s, shared with SIGHUP.
//! A refused configuration answers 400 `invalid_config` with every problem's `line`,
//! `column`, `field` and `message`, and the running configuration keeps serving.
//!
//! - `POST /admin/config`: the body is the new TOML text (`Content-Type:
//!   application/toml`, or `text/plain`, or none), UTF-8, not empty, at most 1 MiB.
//! - `POST /admin/config/reload`: read the file the server started with again.
//! - `POST /admin/config/rollback` `{"version"?: N}`: apply stored version N again
//!   (default: the one before the running one), recorded as a new version.
//! - `GET /admin/config/history?limit=N` (1..=1000, default 20): newest first, each
//!   version with the quality gate's decision on it when a gate judged it
//!   (`gate: {passed, action, summary, report}`).
//! - `GET /admin/config/versions/{v}`: the stored text (TOML), with the secrets a URL
//!   in it may carry (user info, query values, token-like path segments) shown as
//!   `**REDACTED**` (`holdfast_config::redact_config_text`). The store keeps the text verbatim, so a rollback
//!   applies the real one.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::Query;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use holdfast_config::ConfigError;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::{Value, json};

use crate::access::{Admin, Operator};
use crate::engine_api::{read_body, reply};
use crate::error::{ApiError, ConfigProblem};
use crate::extract::Path;
use crate::live::{Applied, ReloadError};

/// The largest configuration text accepted: far above any real file, far below
/// `server.body_limit`'s range.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The default and the largest `limit` of the history.
const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 1000;

/// `POST /admin/config`: applies the TOML text in the body.
pub(crate) async fn reload_body(
    caller: Admin,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let gateway = caller.gateway;
    check_content_type(&headers)?;
    let body = read_config(&headers, body).await?;
    let text = std::str::from_utf8(&body).map_err(|e| {
        invalid_body(format!(
            "the body is not UTF-8 text (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    if text.trim().is_empty() {
        return Err(invalid_body(
            "the body is empty: send the configuration's TOML text".to_owned(),
        ));
    }
    let applied = gateway.reload_text(text).await.map_err(refusal)?;
    Ok(applied_reply(&applied))
}

/// `POST /admin/config/reload`: reads the configuration file again.
pub(crate) async fn reload_file(caller: Admin) -> Result<Response, ApiError> {
    let gateway = caller.gateway;
    let applied = gateway.reload_file().await.map_err(refusal)?;
    Ok(applied_reply(&applied))
}

/// The body of `POST /admin/config/rollback`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    version: Option<u64>,
}

/// `POST /admin/config/rollback`: applies a stored version again.
pub(crate) async fn rollback(
    caller: Admin,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let gateway = caller.gateway;
    let body = read_body(&gateway, &headers, body).await?;
    let to = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let parsed: RollbackBody = serde_json::from_slice(&body)
            .map_err(|e| ApiError::InvalidJson(format!("expected {{\"version\": N}}: {e}")))?;
        parsed.version
    };
    let applied = gateway.rollback(to).await.map_err(refusal)?;
    Ok(applied_reply(&applied))
}

/// `GET /admin/config/history`: the versions, newest first.
pub(crate) async fn history(
    caller: Operator,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let gateway = caller.gateway;
    let mut limit = DEFAULT_LIMIT;
    for (name, value) in &query {
        match name.as_str() {
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| ApiError::InvalidRequest {
                        message: format!("invalid `limit` {value:?}: expected 1 to {MAX_LIMIT}"),
                        param: Some("limit".to_owned()),
                    })?;
            }
            other => {
                return Err(ApiError::InvalidRequest {
                    message: format!("unknown query parameter `{other}`"),
                    param: Some(other.to_owned()),
                });
            }
        }
    }
    let rows = gateway.history(limit).await.map_err(refusal)?;
    let data: Vec<Value> = rows
        .iter()
        .map(|row| {
            let mut v = json!({
                "version": row.version.version,
                "sha256": row.version.sha256,
                "created_at_ms": row.version.created_at_ms,
                "applied": row.applied,
            });
            if let Some(from) = row.restored_from {
                v["restored_from"] = json!(from);
            }
            if let Some(gate) = &row.gate {
                let summary = gate.report["summary"].as_str().unwrap_or_default();
                v["gate"] = gate_json(gate.passed, &gate.action, summary, &gate.report);
            }
            v
        })
        .collect();
    Ok(reply(
        StatusCode::OK,
        &json!({"object": "list", "data": data}),
    ))
}

/// `GET /admin/config/versions/{v}`: the stored text.
pub(crate) async fn version(
    caller: Operator,
    Path(version): Path<String>,
) -> Result<Response, ApiError> {
    let gateway = caller.gateway;
    let v: u64 = version.parse().map_err(|_| ApiError::InvalidRequest {
        message: format!("invalid version {version:?}: expected a whole number"),
        param: Some("version".to_owned()),
    })?;
    let text = gateway.version_text(v).await.map_err(refusal)?;
    let mut response = (StatusCode::OK, holdfast_config::redact_config_text(&text)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/toml; charset=utf-8"),
    );
    Ok(response)
}

/// The body, refused with 413 above [`MAX_CONFIG_BYTES`].
async fn read_config(headers: &HeaderMap, body: Body) -> Result<bytes::Bytes, ApiError> {
    let limit = MAX_CONFIG_BYTES;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    match Limited::new(body, limit as usize).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::BodyTooLarge { limit })
        }
        // A body that trickled in past `server.body_read_timeout` is a 408.
        Err(e) => Err(crate::listener::timed_out(&*e)
            .unwrap_or_else(|| invalid_body(format!("the body could not be read: {e}")))),
    }
}

fn applied_reply(applied: &Applied) -> Response {
    let mut body = json!({"version": applied.version, "changed": applied.changed});
    if let Some(gate) = &applied.gate {
        body["gate"] = gate_json(gate.passed, gate.action, &gate.summary, &gate.report);
    }
    reply(StatusCode::OK, &body)
}

/// A gate's decision as the reload's answer and the history show it.
fn gate_json(passed: bool, action: &str, summary: &str, report: &Value) -> Value {
    json!({"passed": passed, "action": action, "summary": summary, "report": report})
}

/// A TOML body only: a JSON body is almost surely a client sending the wrong thing.
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let value = value.to_str().unwrap_or_default().to_ascii_lowercase();
    let essence = value.split(';').next().unwrap_or_default().trim();
    match essence {
        "application/toml" | "text/toml" | "text/x-toml" | "text/plain" => Ok(()),
        _ => Err(ApiError::InvalidHeader {
            header: "content-type",
            reason: format!("expected application/toml, got {essence:?}"),
        }),
    }
}

fn invalid_body(message: String) -> ApiError {
    ApiError::InvalidConfig {
        problems: vec![ConfigProblem {
            line: None,
            column: None,
            field: None,
            message: message.clone(),
        }],
        message,
    }
}

/// The client's error for a refused reload or history request.
fn refusal(err: ReloadError) -> ApiError {
    match err {
        ReloadError::Invalid(errors) => {
            let problems: Vec<ConfigProblem> = errors.errors().iter().map(problem).collect();
            let message = match problems.len() {
                1 => format!("the configuration is invalid: {}", errors.errors()[0]),
                n => format!(
                    "the configuration is invalid ({n} problems): {}",
                    errors
                        .errors()
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            };
            ApiError::InvalidConfig { message, problems }
        }
        ReloadError::NeedsRestart(fields) => ApiError::InvalidConfig {
            message: format!(
                "the configuration cannot be reloaded: {}",
                ReloadError::NeedsRestart(fields.clone())
            ),
            problems: fields
                .into_iter()
                .map(|(field, message)| ConfigProblem {
                    line: None,
                    column: None,
                    field: Some(field),
                    message,
                })
                .collect(),
        },
        ReloadError::Unservable(message) => invalid_body(message),
        ReloadError::NoSuchVersion(_) => ApiError::NotFound(err.to_string()),
        ReloadError::NoPrevious => ApiError::Conflict(err.to_string()),
        ReloadError::NoHistory | ReloadError::Store(_) => {
            ApiError::HistoryUnavailable(err.to_string())
        }
        ReloadError::GateFailed { version, decision } => ApiError::GateFailed {
            message: format!(
                "configuration version {version} refused by the quality gate: {}",
                decision.summary
            ),
            version,
            report: decision.report,
        },
    }
}

/// One located problem, its message without the location the other fields carry.
fn problem(error: &ConfigError) -> ConfigProblem {
    let (line, column) = error
        .line_column()
        .map_or((None, None), |(l, c)| (Some(l), Some(c)));
    let message = match error {
        ConfigError::Syntax { message, .. }
        | ConfigError::Field { message, .. }
        | ConfigError::Override { message, .. } => message.clone(),
        ConfigError::MissingSecret { var, .. } => {
            format!("environment variable {var} is not set")
        }
        ConfigError::Read { .. } => error.to_string(),
    };
    ConfigProblem {
        line,
        column,
        field: error.field().map(str::to_owned),
        message,
    }
}
