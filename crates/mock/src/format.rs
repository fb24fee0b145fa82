//! Which provider the mock impersonates, and the pieces both wire formats share.
//!
//! Each format's module ([`crate::openai`], [`crate::anthropic`]) builds that
//! provider's exact bodies, errors and stream events; [`Format`] dispatches to them with
//! exhaustive matches, so adding a format is a compile error everywhere it matters.

use std::fmt;
use std::str::FromStr;

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::answer::Answer;
use crate::plan::Rejection;
use crate::timing::Span;
use crate::{anthropic, openai};

/// The API the mock impersonates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Format {
    /// OpenAI chat completions: `POST /v1/chat/completions`, `GET /v1/models`.
    #[serde(rename = "openai")]
    OpenAi,
    /// Anthropic messages: `POST /v1/messages`, `GET /v1/models`.
    #[serde(rename = "anthropic")]
    Anthropic,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::OpenAi => "openai",
            Format::Anthropic => "anthropic",
        })
    }
}

/// The error for a format name other than `openai` or `anthropic`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format {0:?}: expected \"openai\" or \"anthropic\"")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "openai" => Ok(Format::OpenAi),
            "anthropic" => Ok(Format::Anthropic),
            _ => Err(UnknownFormat(s.to_owned())),
        }
    }
}

/// Per-request facts every response carries.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    /// Random bits for this response's ids.
    pub(crate) id_bits: u64,
    /// Unix seconds.
    pub(crate) created: u64,
    pub(crate) model: String,
    pub(crate) prompt_tokens: u64,
    pub(crate) include_usage: bool,
    /// Whether the answer is streamed.
    pub(crate) stream: bool,
}

/// One response, ready to send.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn json(status: u16, body: &Value) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: body.to_string(),
        }
    }

    /// The page a CDN in front of a provider shows for 502.
    pub(crate) fn bad_gateway() -> Reply {
        Reply {
            status: 502,
            content_type: "text/html",
            headers: Vec::new(),
            body: "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
                .to_owned(),
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, self.body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
        response
    }
}

/// A stream, as SSE frames: what always comes first, the content chunks, the end.
#[derive(Debug, Clone, Default)]
pub(crate) struct Frames {
    pub(crate) preamble: Vec<String>,
    pub(crate) deltas: Vec<String>,
    pub(crate) finish: Vec<String>,
}

/// One SSE frame, with an `event:` line when given.
pub(crate) fn sse(event: Option<&str>, data: &Value) -> String {
    match event {
        Some(event) => format!("event: {event}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

/// `Retry-After` in whole seconds (rounded up) and `retry-after-ms`.
pub(crate) fn retry_headers(retry_after: Option<Span>) -> Vec<(&'static str, String)> {
    let Some(wait) = retry_after else {
        return Vec::new();
    };
    let wait = wait.duration();
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    vec![
        ("retry-after", secs.to_string()),
        ("retry-after-ms", wait.as_millis().to_string()),
    ]
}

impl Format {
    /// The paths this format serves chat requests on.
    pub fn chat_paths(self) -> &'static [&'static str] {
        match self {
            Format::OpenAi => &["/v1/chat/completions", "/chat/completions"],
            Format::Anthropic => &["/v1/messages"],
        }
    }

    pub(crate) fn error(self, rejection: &Rejection, meta: &Meta) -> Reply {
        match self {
            Format::OpenAi => openai::error(rejection, meta),
            Format::Anthropic => anthropic::error(rejection, meta),
        }
    }

    pub(crate) fn not_found(self, method: &str, path: &str) -> Reply {
        match self {
            Format::OpenAi => openai::not_found(method, path),
            Format::Anthropic => anthropic::not_found(),
        }
    }

    pub(crate) fn completion(self, meta: &Meta, answer: &Answer) -> Value {
        match self {
            Format::OpenAi => openai::completion(meta, answer),
            Format::Anthropic => anthropic::completion(meta, answer),
        }
    }

    pub(crate) fn frames(self, meta: &Meta, answer: &Answer) -> Frames {
        match self {
            Format::OpenAi => openai::frames(meta, answer),
            Format::Anthropic => anthropic::frames(meta, answer),
        }
    }

    pub(crate) fn malformed_event(self, meta: &Meta) -> String {
        match self {
            Format::OpenAi => openai::malformed_event(meta),
            Format::Anthropic => anthropic::malformed_event(),
        }
    }

    pub(crate) fn inband_error(self) -> String {
        match self {
            Format::OpenAi => openai::inband_error(),
            Format::Anthropic => anthropic::inband_error(),
        }
    }

    pub(crate) fn models(self) -> Value {
        match self {
            Format::OpenAi => openai::models(),
            Format::Anthropic => anthropic::models(),
        }
    }

    /// The headers a successful response carries.
    pub(crate) fn success_headers(self, meta: &Meta) -> Vec<(&'static str, String)> {
        match self {
            Format::OpenAi => vec![("x-request-id", format!("req_{:024x}", meta.id_bits))],
            Format::Anthropic => vec![("request-id", format!("req_{:024x}", meta.id_bits))],
        }
    }
}
