//! [`Path`]: axum's path extractor, refusing in the gateway's error format.
//!
//! axum answers a path it cannot decode (`/v1/tasks/%FF`, not UTF-8 once
//! percent-decoded) with a plain-text 400 of its own, outside `docs/errors.md`. The
//! decision: every handler takes its path parameters through this wrapper, whose
//! rejection is an [`ApiError`] (400 `invalid_request` naming the parameter), so a bad
//! id gets the same JSON error as every other bad input.

use axum::extract::FromRequestParts;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The request's path parameters, deserialised as `T`.
pub(crate) struct Path<T>(pub(crate) T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(refusal(&rejection)),
        }
    }
}

/// The client's error for a path axum could not read.
fn refusal(rejection: &PathRejection) -> ApiError {
    let key = match rejection {
        PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
            ErrorKind::InvalidUtf8InPathParam { key } => Some(key.clone()),
            ErrorKind::ParseErrorAtKey { key, .. } => Some(key.clone()),
            _ => None,
        },
        _ => None,
    };
    let message = match (rejection, &key) {
        (PathRejection::FailedToDeserializePathParams(e), Some(key))
            if matches!(e.kind(), ErrorKind::InvalidUtf8InPathParam { .. }) =>
        {
            format!("invalid path: `{key}` is not UTF-8 text once percent-decoded")
        }
        _ => format!("invalid path: {}", rejection.body_text()),
    };
    ApiError::InvalidRequest {
        message,
        param: key,
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::get;

    use super::*;

    async fn get_id(Path(id): Path<String>) -> String {
        id
    }

    #[tokio::test]
    async fn a_path_that_is_not_utf8_is_a_json_invalid_request() {
        let app = Router::new().route("/tasks/{id}", get(get_id));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let ok = client
            .get(format!("http://{addr}/tasks/t-1"))
            .send()
            .await
            .unwrap();
        assert_eq!(ok.text().await.unwrap(), "t-1");
        let response = client
            .get(format!("http://{addr}/tasks/%FF%FE"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_request");
        assert_eq!(body["error"]["param"], "id");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("`id` is not UTF-8"), "{message}");
    }
}
