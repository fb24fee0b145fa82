//! [`ApiError`]: every way a gateway request can fail, as the client sees it.
//!
//! The decision that shapes it: errors leave the server through one rendering path
//! ([`ApiError::render`], which `IntoResponse` uses), so the status, the stable `code`
//! from the closed list in `docs/errors.md` and the logging rule live in one place.
//! Client errors (4xx) are shown as they are and logged at debug level only; internal
//! errors are logged and shown as a generic message. Upstream failures are not the
//! client's fault but not ours either: they are shown (the provider's message is
//! redacted by the llm crate) and logged at debug level, since the ledger keeps them.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The wire dialect an error is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `{"error":{"message","type","param","code"}}`, for OpenAI-style endpoints.
    OpenAi,
    /// `{"type":"error","error":{"type","message"}}`, for `/v1/messages`.
    Anthropic,
}

/// A failed gateway request. Each variant has one HTTP status and one stable code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON of the request's shape (bad JSON, wrong types, bad UTF-8).
    #[error("invalid request body: {0}")]
    InvalidJson(String),
    /// A field has a value no target accepts.
    #[error("{message}")]
    InvalidRequest {
        /// What is wrong.
        message: String,
        /// The field at fault, when known.
        param: Option<String>,
    },
    /// A request header holds a value holdfast cannot use.
    #[error("invalid header {header}: {reason}")]
    InvalidHeader {
        /// The header's name.
        header: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// `response_format.json_schema.schema` is not a valid JSON schema.
    #[error("invalid response_format.json_schema.schema: {0}")]
    InvalidResponseFormat(String),
    /// No client key was presented and the gateway requires one.
    #[error("missing API key: send `Authorization: Bearer KEY` or `x-api-key: KEY`")]
    MissingApiKey,
    /// The presented key is not one of the configured client keys.
    #[error("invalid API key")]
    InvalidApiKey,
    /// The key's role is below what the endpoint needs.
    #[error("this endpoint needs the `{needed}` role; the key `{key}` has the `{has}` role")]
    Forbidden {
        /// The least role the endpoint needs.
        needed: holdfast_config::Role,
        /// The key's role.
        has: holdfast_config::Role,
        /// The key's name (never the key).
        key: String,
    },
    /// Without client keys, a request from another origin than holdfast's own: a web
    /// page the user visits, or a name rebound to this machine (DNS rebinding).
    #[error("{0}")]
    CrossOrigin(String),
    /// Without client keys, a write whose body is not of the type the endpoint takes
    /// (a type a browser could send from any page without asking).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The requested model is not a configured route.
    #[error("the model `{0}` does not exist")]
    ModelNotFound(String),
    /// No such path or resource.
    #[error("{0}")]
    NotFound(String),
    /// The path exists but not with this method.
    #[error("{method} is not allowed on {path}; the `Allow` header lists the methods it takes")]
    MethodNotAllowed {
        /// The method the client used.
        method: String,
        /// The path it used it on.
        path: String,
    },
    /// The body is larger than `server.body_limit`.
    #[error("the request body is larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The request body did not arrive within `server.body_read_timeout` of its head.
    #[error("the request body did not arrive in time: it must arrive whole within {}s of the request head", secs(*timeout))]
    BodyReadTimeout {
        /// The server's `body_read_timeout`.
        timeout: Duration,
    },
    /// The same `Idempotency-Key` was used with a different request body.
    #[error("the Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    /// The client key's own request or token rate limit is reached.
    #[error("rate limit of this API key reached ({what} per minute); retry after {}s", secs(*retry_after))]
    RateLimited {
        /// `requests` or `tokens`.
        what: &'static str,
        /// When enough capacity is back.
        retry_after: Duration,
    },
    /// The client key already has its `max_concurrent_requests` in flight.
    #[error(
        "this API key has reached its max_concurrent_requests: {limit} in flight at once, a stream counting until it ends; retry once one has finished"
    )]
    TooManyConcurrentRequests {
        /// The key's `max_concurrent_requests`.
        limit: u32,
    },
    /// The prompt is larger than this key's whole token rate limit.
    #[error("the prompt is larger than this API key's tokens-per-minute limit")]
    PromptExceedsKeyLimit,
    /// The upstream answered 429 and no other target could serve.
    #[error("upstream rate limited: {message}")]
    UpstreamRateLimited {
        /// The provider's message.
        message: String,
        /// The wait the provider asked for, if any.
        retry_after: Option<Duration>,
    },
    /// The upstream is overloaded and no other target could serve.
    #[error("upstream overloaded: {message}")]
    UpstreamOverloaded {
        /// The provider's message.
        message: String,
        /// The wait the provider asked for, if any.
        retry_after: Option<Duration>,
    },
    /// The upstream failed (5xx, connection, broken stream) on every target tried.
    #[error("upstream error: {0}")]
    UpstreamError(String),
    /// The upstream timed out on every target tried.
    #[error("upstream timeout: {0}")]
    UpstreamTimeout(String),
    /// The request's `x-holdfast-deadline-ms` passed.
    #[error("the request deadline passed before an answer arrived")]
    DeadlineExceeded,
    /// The provider refused holdfast's own key: an operator problem, not the client's.
    #[error("the upstream provider refused holdfast's credentials")]
    UpstreamAuthFailed,
    /// The provider account's quota or credit is used up.
    #[error("the upstream provider's quota is exhausted")]
    UpstreamQuotaExhausted,
    /// The provider does not know the configured model.
    #[error("the upstream provider does not know the configured model")]
    UpstreamModelNotFound,
    /// The provider refused the request as malformed.
    #[error("{0}")]
    UpstreamBadRequest(String),
    /// The prompt does not fit the context window of any target that could take it.
    #[error("{0}")]
    ContextLengthExceeded(String),
    /// A content filter refused the request or the answer.
    #[error("{0}")]
    ContentFilter(String),
    /// The answers did not validate (empty, not JSON, not matching the schema).
    #[error("no valid answer: {0}")]
    InvalidOutput(String),
    /// The prompt is larger than every target's context window or token limit.
    #[error("the prompt is larger than every target's context window")]
    PromptTooLarge,
    /// The retry budget is spent: retrying now would feed a retry storm.
    #[error("the retry budget is exhausted; retry later")]
    RetryBudgetExhausted,
    /// Every target that could serve is at its concurrency limit and the request could
    /// not be served in time: shed, to be sent again after `retry_after`.
    #[error("every target of the route is at its concurrency limit; retry later")]
    OverloadedShed {
        /// When a new try has a fair chance.
        retry_after: Duration,
    },
    /// Every target is unavailable (breaker open, Retry-After pending, rate limited).
    #[error("every target of the route is unavailable")]
    TargetsUnavailable {
        /// When the first target frees up, if known.
        retry_after: Option<Duration>,
    },
    /// The calling agent's (`x-holdfast-agent`) breaker is open.
    #[error("the breaker of this agent is open; retry later")]
    AgentBreakerOpen,
    /// A workflow definition or a task input is invalid: every problem, at its path.
    #[error("{message}")]
    InvalidInput {
        /// A summary of the problems.
        message: String,
        /// Each problem: the field path and what is wrong there.
        problems: Vec<(String, String)>,
    },
    /// A configuration sent for reload (or stored for rollback) does not load, or
    /// changes a setting that needs a restart: every problem, located. Nothing changed.
    #[error("{message}")]
    InvalidConfig {
        /// A summary of the problems.
        message: String,
        /// Each problem with its line, column and field when known.
        problems: Vec<ConfigProblem>,
    },
    /// The configuration history cannot be read or written (no store, a store error).
    #[error("{0}")]
    HistoryUnavailable(String),
    /// The quality gate refused a configuration version: its suites failed on the
    /// routes it changed. The version is recorded in the history with its verdict;
    /// the running configuration is unchanged.
    #[error("{message}")]
    GateFailed {
        /// Which suites failed, on which checks and cases.
        message: String,
        /// The refused version.
        version: u64,
        /// The gate's report.
        report: Value,
    },
    /// The write contradicts what is stored (a workflow version registered with another
    /// definition, an escalation resolved twice).
    #[error("{0}")]
    Conflict(String),
    /// A worker's (or node's) lease token is no longer current; nothing was written.
    #[error("{0}")]
    StaleLease(String),
    /// The workflow endpoints were called on a server built without an engine.
    #[error("the workflow engine is not running on this server")]
    EngineUnavailable,
    /// The store did not answer within `store.timeout`, or could not be reached or
    /// written: nothing is known to be recorded. Retrying with the same idempotency key
    /// (or fencing token) is safe.
    #[error(
        "the store is unavailable ({0}); nothing is known to be recorded: retry with the \
         same Idempotency-Key"
    )]
    StoreUnavailable(String),
    /// The store is unavailable and the outbox holds `store.outbox_max`: the submission
    /// was not queued. The message says how full it is.
    #[error("{0}")]
    OutboxFull(String),
    /// A value kept in the artifact store is missing or no longer matches its digest:
    /// the message names the task and the field. Retrying does not help.
    #[error("{0}")]
    ArtifactUnreadable(String),
    /// A bug or an unexpected failure inside holdfast; the details are logged only.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The wait advertised when the store is unavailable: the guard's probe notices the
/// store's return within a second, so a sooner retry would only find it still down.
const STORE_RETRY_AFTER: Duration = Duration::from_secs(1);

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidJson(_)
            | ApiError::InvalidRequest { .. }
            | ApiError::InvalidHeader { .. }
            | ApiError::InvalidResponseFormat(_)
            | ApiError::UpstreamBadRequest(_)
            | ApiError::ContextLengthExceeded(_)
            | ApiError::ContentFilter(_)
            | ApiError::PromptTooLarge
            | ApiError::InvalidInput { .. }
            | ApiError::InvalidConfig { .. } => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) | ApiError::StaleLease(_) => StatusCode::CONFLICT,
            ApiError::GateFailed { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::MissingApiKey | ApiError::InvalidApiKey => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } | ApiError::CrossOrigin(_) => StatusCode::FORBIDDEN,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::ModelNotFound(_) | ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyReadTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. }
            | ApiError::TooManyConcurrentRequests { .. }
            | ApiError::PromptExceedsKeyLimit
            | ApiError::UpstreamRateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::UpstreamError(_)
            | ApiError::UpstreamAuthFailed
            | ApiError::UpstreamQuotaExhausted
            | ApiError::UpstreamModelNotFound
            | ApiError::InvalidOutput(_) => StatusCode::BAD_GATEWAY,
            ApiError::UpstreamOverloaded { .. }
            | ApiError::RetryBudgetExhausted
            | ApiError::OverloadedShed { .. }
            | ApiError::TargetsUnavailable { .. }
            | ApiError::AgentBreakerOpen
            | ApiError::EngineUnavailable
            | ApiError::StoreUnavailable(_)
            | ApiError::OutboxFull(_)
            | ApiError::HistoryUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::UpstreamTimeout(_) | ApiError::DeadlineExceeded => {
                StatusCode::GATEWAY_TIMEOUT
            }
            ApiError::ArtifactUnreadable(_) | ApiError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The stable code, from the closed list in `docs/errors.md`.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::InvalidRequest { .. } => "invalid_request",
            ApiError::InvalidHeader { .. } => "invalid_header",
            ApiError::InvalidResponseFormat(_) => "invalid_response_format",
            ApiError::MissingApiKey => "missing_api_key",
            ApiError::InvalidApiKey => "invalid_api_key",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::CrossOrigin(_) => "cross_origin_refused",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::ModelNotFound(_) => "model_not_found",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::BodyTooLarge { .. } => "request_too_large",
            ApiError::BodyReadTimeout { .. } => "request_timeout",
            ApiError::IdempotencyKeyReused => "idempotency_key_reused",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::TooManyConcurrentRequests { .. } => "too_many_concurrent_requests",
            ApiError::PromptExceedsKeyLimit => "prompt_exceeds_key_limit",
            ApiError::UpstreamRateLimited { .. } => "upstream_rate_limited",
            ApiError::UpstreamOverloaded { .. } => "upstream_overloaded",
            ApiError::UpstreamError(_) => "upstream_error",
            ApiError::UpstreamTimeout(_) => "upstream_timeout",
            ApiError::DeadlineExceeded => "deadline_exceeded",
            ApiError::UpstreamAuthFailed => "upstream_auth_failed",
            ApiError::UpstreamQuotaExhausted => "upstream_quota_exhausted",
            ApiError::UpstreamModelNotFound => "upstream_model_not_found",
            ApiError::UpstreamBadRequest(_) => "upstream_bad_request",
            ApiError::ContextLengthExceeded(_) => "context_length_exceeded",
            ApiError::ContentFilter(_) => "content_filter",
            ApiError::InvalidOutput(_) => "invalid_output",
            ApiError::PromptTooLarge => "prompt_too_large",
            ApiError::RetryBudgetExhausted => "retry_budget_exhausted",
            ApiError::OverloadedShed { .. } => "overloaded_shed",
            ApiError::TargetsUnavailable { .. } => "targets_unavailable",
            ApiError::AgentBreakerOpen => "agent_breaker_open",
            ApiError::InvalidInput { .. } => "invalid_input",
            ApiError::InvalidConfig { .. } => "invalid_config",
            ApiError::HistoryUnavailable(_) => "history_unavailable",
            ApiError::GateFailed { .. } => "gate_failed",
            ApiError::Conflict(_) => "conflict",
            ApiError::StaleLease(_) => "stale_lease",
            ApiError::EngineUnavailable => "engine_unavailable",
            ApiError::StoreUnavailable(_) => "store_unavailable",
            ApiError::OutboxFull(_) => "outbox_full",
            ApiError::ArtifactUnreadable(_) => "artifact_unreadable",
            ApiError::Internal(_) => "internal_error",
        }
    }

    /// The field at fault, for OpenAI's `param`.
    fn param(&self) -> Option<&str> {
        match self {
            ApiError::InvalidRequest { param, .. } => param.as_deref(),
            ApiError::InvalidInput { problems, .. } => match problems.as_slice() {
                [(path, _)] if !path.is_empty() => Some(path),
                _ => None,
            },
            ApiError::InvalidHeader { header, .. } => Some(header),
            ApiError::InvalidResponseFormat(_) => Some("response_format"),
            ApiError::ModelNotFound(_) | ApiError::PromptTooLarge => Some("model"),
            _ => None,
        }
    }

    /// The wait to advertise in `Retry-After`, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::RateLimited { retry_after, .. } => Some(*retry_after),
            ApiError::UpstreamRateLimited { retry_after, .. }
            | ApiError::UpstreamOverloaded { retry_after, .. }
            | ApiError::TargetsUnavailable { retry_after } => *retry_after,
            ApiError::StoreUnavailable(_) | ApiError::OutboxFull(_) => Some(STORE_RETRY_AFTER),
            ApiError::OverloadedShed { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// Whether holdfast itself is at fault (logged as an error, shown generically).
    pub fn is_internal(&self) -> bool {
        matches!(self, ApiError::Internal(_))
    }

    /// What the client reads: the message, or a generic one for internal errors.
    fn public_message(&self) -> String {
        if self.is_internal() {
            "internal error in holdfast; the request id is in x-holdfast-request-id".to_owned()
        } else {
            self.to_string()
        }
    }

    /// OpenAI's `type` for this error.
    fn openai_type(&self) -> &'static str {
        match self.status().as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            429 => "rate_limit_error",
            500 => "server_error",
            s if s >= 500 => "upstream_error",
            _ => "invalid_request_error",
        }
    }

    /// Anthropic's `error.type` for this error.
    fn anthropic_type(&self) -> &'static str {
        match self.status().as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            503 => "overloaded_error",
            s if s >= 500 => "api_error",
            _ => "invalid_request_error",
        }
    }

    /// The error's JSON body in `flavor`.
    pub fn body(&self, flavor: Flavor) -> Value {
        match flavor {
            Flavor::OpenAi => {
                let mut body = json!({"error": {
                    "message": self.public_message(),
                    "type": self.openai_type(),
                    "param": self.param(),
                    "code": self.code(),
                }});
                if let ApiError::InvalidInput { problems, .. } = self {
                    let list: Vec<Value> = problems
                        .iter()
                        .map(|(path, message)| json!({"path": path, "message": message}))
                        .collect();
                    body["error"]["problems"] = Value::Array(list);
                }
                if let ApiError::InvalidConfig { problems, .. } = self {
                    let list: Vec<Value> = problems
                        .iter()
                        .map(|p| {
                            json!({"line": p.line, "column": p.column, "field": p.field,
                                   "message": p.message})
                        })
                        .collect();
                    body["error"]["problems"] = Value::Array(list);
                }
                if let ApiError::GateFailed {
                    version, report, ..
                } = self
                {
                    body["error"]["version"] = json!(version);
                    body["error"]["gate"] = report.clone();
                }
                body
            }
            Flavor::Anthropic => json!({"type": "error", "error": {
                "type": self.anthropic_type(),
                "message": self.public_message(),
                "code": self.code(),
            }}),
        }
    }

    /// The one place an error becomes a response: status, body, `Retry-After`, log.
    pub fn render(&self, flavor: Flavor) -> Response {
        if self.is_internal() {
            tracing::error!(code = self.code(), error = %self, "internal error");
        } else {
            tracing::debug!(code = self.code(), error = %self, "request refused");
        }
        let body = serde_json::to_vec(&self.body(flavor)).unwrap_or_default();
        let mut response = (self.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(wait) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs(wait)));
        }
        if matches!(
            self,
            ApiError::BodyTooLarge { .. } | ApiError::BodyReadTimeout { .. }
        ) {
            // The rest of the body was never read, so the connection cannot carry
            // another request: say so, or a keep-alive client reuses a dead socket.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// One problem of a refused configuration, where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// 1-based line in the text, when the problem is in it.
    pub line: Option<usize>,
    /// 1-based column, in characters.
    pub column: Option<usize>,
    /// The field's path, such as `routes.smart.targets[0]`.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// Whole seconds to wait, rounded up, at least 1.
pub(crate) fn secs(wait: Duration) -> u64 {
    let whole = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    whole.max(1)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.render(Flavor::OpenAi)
    }
}

/// Why the server could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration cannot be served as it is (a missing secret, a bad setting).
    #[error("the configuration cannot be served: {0}")]
    Config(String),
    /// The listener failed.
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(secs(Duration::from_millis(1)), 1);
        assert_eq!(secs(Duration::from_millis(5_000)), 5);
        assert_eq!(secs(Duration::from_millis(5_001)), 6);
        assert_eq!(secs(Duration::ZERO), 1);
    }

    #[test]
    fn internal_errors_are_shown_generically() {
        let body = ApiError::Internal("lock poisoned at x.rs:10".into()).body(Flavor::OpenAi);
        let message = body["error"]["message"].as_str().unwrap();
        assert!(!message.contains("x.rs"), "{message}");
        assert_eq!(body["error"]["code"], "internal_error");
    }

    #[test]
    fn anthropic_flavor_has_the_anthropic_shape() {
        let body = ApiError::UpstreamOverloaded {
            message: "busy".into(),
            retry_after: None,
        }
        .body(Flavor::Anthropic);
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "overloaded_error");
    }
}
