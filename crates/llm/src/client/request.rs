//! The HTTP request for a target: its body in the target's format and its headers.
//!
//! The canonical request is never changed in place: each attempt builds its own body,
//! with the target's model name and stream settings, so that retries and fallbacks to
//! other targets start from the client's request as sent.

use holdfast_policy::Outcome;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::{CallOptions, Endpoint, ProviderError};
use crate::openai::ChatRequest;
use crate::translate::to_anthropic_request;
use crate::{Format, anthropic};

/// The body for the target: the canonical request with the target's model, or its
/// Anthropic translation. OpenAI streams always ask for usage.
pub(super) fn request_body(
    endpoint: &Endpoint,
    request: &ChatRequest,
    stream: bool,
) -> Result<Vec<u8>, ProviderError> {
    let bad = |message: String| ProviderError::new(Outcome::BadRequest, message);
    let json = match endpoint.format {
        Format::OpenAi => {
            let mut request = request.clone();
            request.model.clone_from(&endpoint.model);
            if stream {
                request.stream = Some(true);
                let options = request.stream_options.get_or_insert_with(Default::default);
                options.include_usage = Some(true);
            } else {
                request.stream = None;
                request.stream_options = None;
            }
            serde_json::to_vec(&request)
        }
        Format::Anthropic => {
            let mut request = to_anthropic_request(request).map_err(|e| bad(e.to_string()))?;
            request.model.clone_from(&endpoint.model);
            request.stream = stream.then_some(true);
            serde_json::to_vec(&request)
        }
    };
    json.map_err(|e| bad(format!("the request cannot be encoded: {e}")))
}

pub(super) fn headers(
    endpoint: &Endpoint,
    options: &CallOptions,
    stream: bool,
) -> Result<HeaderMap, ProviderError> {
    let bad =
        |what: &str| ProviderError::new(Outcome::BadRequest, format!("invalid header {what}"));
    let mut headers = HeaderMap::new();
    for (name, value) in &options.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad(name))?;
        let value = HeaderValue::from_str(value).map_err(|_| bad(name.as_str()))?;
        headers.append(name, value);
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let accept = if stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    headers.insert(header::ACCEPT, HeaderValue::from_static(accept));
    if let Some(id) = &options.idempotency_key {
        let value = HeaderValue::from_str(id).map_err(|_| bad("Idempotency-Key"))?;
        headers.insert("idempotency-key", value);
    }
    auth(endpoint, &mut headers)?;
    Ok(headers)
}

/// The target's auth headers (marked sensitive, so no debug output shows them).
fn auth(endpoint: &Endpoint, headers: &mut HeaderMap) -> Result<(), ProviderError> {
    let secret = |text: String| {
        let mut value = HeaderValue::from_str(&text).map_err(|_| {
            ProviderError::new(Outcome::Auth, "the API key is not a valid header value")
        })?;
        value.set_sensitive(true);
        Ok::<_, ProviderError>(value)
    };
    match endpoint.format {
        Format::OpenAi => {
            if let Some(key) = &endpoint.api_key {
                headers.insert(
                    header::AUTHORIZATION,
                    secret(format!("Bearer {}", key.expose()))?,
                );
            }
        }
        Format::Anthropic => {
            if let Some(key) = &endpoint.api_key {
                headers.insert("x-api-key", secret(key.expose().to_owned())?);
            }
            headers
                .entry("anthropic-version")
                .or_insert(HeaderValue::from_static(anthropic::API_VERSION));
        }
    }
    Ok(())
}
