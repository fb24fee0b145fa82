//! `GET /admin/readiness`: the production checklist of the running deployment, for
//! operators (it reads the configuration, the workflows and the gate's runs).

use axum::http::StatusCode;
use axum::response::Response;

use crate::access::Operator;
use crate::engine_api::reply;
use crate::error::ApiError;

/// `GET /admin/readiness`: `{config_version, ready, items: [{section, name, passed,
/// reason}], for_people: [...]}`.
pub(crate) async fn readiness(caller: Operator) -> Result<Response, ApiError> {
    let checklist = caller.gateway.readiness().await?;
    let body = serde_json::to_value(&checklist)
        .map_err(|e| ApiError::Internal(format!("the checklist as JSON: {e}")))?;
    Ok(reply(StatusCode::OK, &body))
}
