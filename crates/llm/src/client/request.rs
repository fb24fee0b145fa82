//! The HTTP request for a target: its body in the target's format and its headers.
//!
//! The canonical request is never changed in place: each attempt builds its own body,
//! with the target's model name and stream settings, so that retries and fallbacks to
//! other targets start from the client's request as sent. An OpenAI body is written
//! from a borrowed view ([`Outgoing`]) rather than from a patched clone: the clone
//! copied every message's text once per attempt only to serialise it.

use holdfast_policy::Outcome;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::{CallOptions, Endpoint, ProviderError};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::openai::{ChatRequest, Message, ResponseFormat, Stop, StreamOptions, Tool, ToolChoice};
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
        Format::OpenAi => serde_json::to_vec(&Outgoing::new(request, &endpoint.model, stream)),
        Format::Anthropic => {
            let mut request = to_anthropic_request(request).map_err(|e| bad(e.to_string()))?;
            request.model.clone_from(&endpoint.model);
            request.stream = stream.then_some(true);
            serde_json::to_vec(&request)
        }
    };
    json.map_err(|e| bad(format!("the request cannot be encoded: {e}")))
}

/// The canonical request as sent to an OpenAI target: the target's model, `stream`
/// set only for streams, and streams asking for usage. Fields, their order and their
/// skipping mirror [`ChatRequest`]'s own `Serialize`, so the bytes are those of the
/// patched clone it replaces; [`Outgoing::new`] destructures the request without `..`,
/// so a field added to it fails to compile here instead of being dropped.
#[derive(Serialize)]
struct Outgoing<'a> {
    model: &'a str,
    messages: &'a [Message],
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<&'a Vec<Tool>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'a ToolChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<&'a ResponseFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<OutgoingStreamOptions<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<&'a Stop>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(flatten)]
    extra: &'a Map<String, Value>,
}

/// [`StreamOptions`] with usage asked for, its other fields passed through.
#[derive(Serialize)]
struct OutgoingStreamOptions<'a> {
    include_usage: Option<bool>,
    #[serde(flatten)]
    extra: Option<&'a Map<String, Value>>,
}

impl<'a> Outgoing<'a> {
    fn new(request: &'a ChatRequest, model: &'a str, stream: bool) -> Self {
        let ChatRequest {
            model: _,
            messages,
            tools,
            tool_choice,
            parallel_tool_calls,
            response_format,
            stream: _,
            stream_options,
            max_tokens,
            max_completion_tokens,
            temperature,
            top_p,
            stop,
            n,
            user,
            extra,
        } = request;
        let stream_options = stream.then(|| OutgoingStreamOptions {
            include_usage: Some(true),
            extra: stream_options.as_ref().map(|o: &'a StreamOptions| &o.extra),
        });
        Outgoing {
            model,
            messages,
            tools: tools.as_ref(),
            tool_choice: tool_choice.as_ref(),
            parallel_tool_calls: *parallel_tool_calls,
            response_format: response_format.as_ref(),
            stream: stream.then_some(true),
            stream_options,
            max_tokens: *max_tokens,
            max_completion_tokens: *max_completion_tokens,
            temperature: *temperature,
            top_p: *top_p,
            stop: stop.as_ref(),
            n: *n,
            user: user.as_deref(),
            extra,
        }
    }
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
        Format::OpenAi => match (&endpoint.api_key, &endpoint.azure_api_version) {
            (Some(key), None) => {
                headers.insert(
                    header::AUTHORIZATION,
                    secret(format!("Bearer {}", key.expose()))?,
                );
            }
            (Some(key), Some(_)) => {
                headers.insert("api-key", secret(key.expose().to_owned())?);
            }
            (None, _) => {}
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The body as it was built before [`Outgoing`]: a patched clone, serialised.
    fn patched_clone(request: &ChatRequest, model: &str, stream: bool) -> Vec<u8> {
        let mut request = request.clone();
        request.model = model.to_owned();
        if stream {
            request.stream = Some(true);
            let options = request.stream_options.get_or_insert_with(Default::default);
            options.include_usage = Some(true);
        } else {
            request.stream = None;
            request.stream_options = None;
        }
        serde_json::to_vec(&request).unwrap()
    }

    #[test]
    fn the_borrowed_view_writes_the_bytes_of_a_patched_clone() {
        let bodies = [
            serde_json::json!({"model": "alias", "messages": [{"role": "user", "content": "hi"}]}),
            serde_json::json!({
                "model": "alias", "stream": true, "max_tokens": 64, "temperature": 0.7,
                "top_p": 0.9, "n": 1, "user": "u-1", "stop": ["\n"], "seed": 7,
                "stream_options": {"include_usage": false, "future_option": 1},
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": [{"type": "text", "text": "ü \"quoted\""}]}
                ],
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
                "tool_choice": "auto", "parallel_tool_calls": false,
                "response_format": {"type": "json_object"},
                "logit_bias": {"50256": -100}
            }),
        ];
        for body in bodies {
            let request: ChatRequest = serde_json::from_value(body).unwrap();
            for stream in [false, true] {
                let view =
                    serde_json::to_vec(&Outgoing::new(&request, "target-model", stream)).unwrap();
                assert_eq!(
                    String::from_utf8(view).unwrap(),
                    String::from_utf8(patched_clone(&request, "target-model", stream)).unwrap(),
                    "stream = {stream}"
                );
            }
        }
    }
}
