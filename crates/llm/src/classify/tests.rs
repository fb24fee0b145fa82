use serde_json::json;

use super::*;

const WAIT: Option<Duration> = Some(Duration::from_secs(7));

#[test]
fn real_provider_error_bodies_map_to_their_class() {
    use Outcome::*;
    let cases: Vec<(u16, serde_json::Value, Outcome)> = vec![
        // OpenAI
        (
            429,
            json!({"error": {"message": "Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Used 29000, Requested 2000. Please try again in 2s.", "type": "tokens", "param": null, "code": "rate_limit_exceeded"}}),
            RateLimited { retry_after: WAIT },
        ),
        (
            429,
            json!({"error": {"message": "You exceeded your current quota, please check your plan and billing details.", "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}}),
            QuotaExhausted,
        ),
        (
            401,
            json!({"error": {"message": "Incorrect API key provided: sk-abc***xyz.", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}),
            Auth,
        ),
        (
            403,
            json!({"error": {"message": "Project does not have access to model gpt-5", "type": "invalid_request_error", "param": null, "code": "model_not_found"}}),
            Auth,
        ),
        (
            400,
            json!({"error": {"message": "This model's maximum context length is 128000 tokens. However, your messages resulted in 130532 tokens. Please reduce the length of the messages.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}),
            ContextOverflow,
        ),
        (
            400,
            json!({"error": {"message": "This model's maximum context length is 8192 tokens.", "type": "invalid_request_error", "param": "messages", "code": null}}),
            ContextOverflow,
        ),
        (
            400,
            json!({"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.", "type": null, "param": "prompt", "code": "content_filter", "status": 400}}),
            ContentFiltered,
        ),
        (
            400,
            json!({"error": {"message": "Your request was rejected as a result of our safety system.", "type": "invalid_request_error", "param": null, "code": "content_policy_violation"}}),
            ContentFiltered,
        ),
        (
            400,
            json!({"error": {"message": "Invalid value for 'temperature'", "type": "invalid_request_error", "param": "temperature", "code": "invalid_value"}}),
            BadRequest,
        ),
        (
            404,
            json!({"error": {"message": "The model `gpt-9` does not exist or you do not have access to it.", "type": "invalid_request_error", "param": null, "code": "model_not_found"}}),
            NotFound,
        ),
        (
            500,
            json!({"error": {"message": "The server had an error while processing your request. Sorry about that!", "type": "server_error", "param": null, "code": null}}),
            ServerError,
        ),
        (
            503,
            json!({"error": {"message": "The engine is currently overloaded, please try again later", "type": "server_error", "param": null, "code": null}}),
            Overloaded { retry_after: WAIT },
        ),
        // Anthropic
        (
            529,
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            Overloaded { retry_after: WAIT },
        ),
        (
            429,
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Number of request tokens has exceeded your per-minute rate limit"}}),
            RateLimited { retry_after: WAIT },
        ),
        (
            400,
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long: 210511 tokens > 200000 maximum"}}),
            ContextOverflow,
        ),
        (
            400,
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."}}),
            QuotaExhausted,
        ),
        (
            401,
            json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}),
            Auth,
        ),
        (
            403,
            json!({"type": "error", "error": {"type": "permission_error", "message": "Your API key does not have permission to use the specified resource."}}),
            Auth,
        ),
        (
            404,
            json!({"type": "error", "error": {"type": "not_found_error", "message": "model: claude-9"}}),
            NotFound,
        ),
        (
            413,
            json!({"type": "error", "error": {"type": "request_too_large", "message": "Request exceeds the maximum allowed number of bytes."}}),
            BadRequest,
        ),
        (
            500,
            json!({"type": "error", "error": {"type": "api_error", "message": "Internal server error"}}),
            ServerError,
        ),
        // Status alone
        (408, json!(null), Timeout(TimeoutKind::Total)),
        (409, json!(null), BadRequest),
        (422, json!({"detail": "Unprocessable"}), BadRequest),
        (502, json!(null), ServerError),
        (504, json!(null), ServerError),
        (503, json!(null), Overloaded { retry_after: WAIT }),
        (200, json!(null), Ok),
        (302, json!(null), ServerError),
    ];
    for (status, body, expected) in cases {
        let bytes = body.to_string();
        assert_eq!(
            classify_http(status, WAIT, bytes.as_bytes()),
            expected,
            "{status} {body}"
        );
    }
}

#[test]
fn bodies_that_are_not_json_fall_back_to_the_status() {
    assert_eq!(
        classify_http(502, None, b"<html>Bad Gateway</html>"),
        Outcome::ServerError
    );
    assert_eq!(
        classify_http(429, None, b""),
        Outcome::RateLimited { retry_after: None }
    );
}

#[test]
fn in_band_stream_errors_map_by_type() {
    use Outcome::*;
    let cases = [
        (
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            Overloaded { retry_after: None },
        ),
        (
            json!({"type": "error", "error": {"type": "api_error", "message": "Internal server error"}}),
            ServerError,
        ),
        (
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}),
            RateLimited { retry_after: None },
        ),
        (
            json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error", "param": null, "code": null}}),
            ServerError,
        ),
        (
            json!({"error": {"message": "maximum context length exceeded", "type": "invalid_request_error"}}),
            ContextOverflow,
        ),
        (json!({"error": "something broke"}), ServerError),
    ];
    for (body, expected) in cases {
        assert_eq!(
            classify_stream_error(&ErrorInfo::from_json(&body)),
            expected,
            "{body}"
        );
    }
}

#[test]
fn a_content_filter_finish_is_a_failure_and_others_are_not() {
    assert_eq!(
        classify_finish_reason(FinishReason::ContentFilter),
        Some(Outcome::ContentFiltered)
    );
    assert_eq!(classify_finish_reason(FinishReason::Length), None);
}

#[test]
fn error_info_reads_loose_shapes() {
    let info = ErrorInfo::from_json(&json!({"error": "model overloaded"}));
    assert_eq!(info.message.as_deref(), Some("model overloaded"));
    let info = ErrorInfo::from_json(&json!({"error": {"code": 1234, "message": "x"}}));
    assert_eq!(info.code.as_deref(), Some("1234"));
}
