//! Output validation: is this answer one the client can use?
//!
//! An empty answer, or one that breaks the `response_format` the client asked for, is
//! an attempt that failed with [`Outcome::InvalidOutput`](holdfast_policy::Outcome):
//! the pipeline retries it or falls back like any other failure, instead of handing
//! the client a 200 it cannot parse. The decision: the schema is compiled once per
//! request, before any upstream call, so that an invalid schema is the client's 400
//! and not a retry loop, and every attempt validates against the same compiled form.

use holdfast_llm::openai::{ChatRequest, ChatResponse, ResponseFormat};
use serde_json::Value;

use crate::error::ApiError;

/// What a non-streamed answer must satisfy.
pub(crate) enum OutputCheck {
    /// Not empty.
    NonEmpty,
    /// A JSON object (`response_format: json_object`, or a schema without a schema).
    JsonObject,
    /// JSON valid against the client's schema.
    Schema(Box<jsonschema::Validator>),
}

impl OutputCheck {
    /// The check `request` asks for; an invalid schema is a 400.
    pub(crate) fn for_request(request: &ChatRequest) -> Result<OutputCheck, ApiError> {
        match &request.response_format {
            None | Some(ResponseFormat::Text) => Ok(OutputCheck::NonEmpty),
            Some(ResponseFormat::JsonObject) => Ok(OutputCheck::JsonObject),
            Some(ResponseFormat::JsonSchema { json_schema }) => match &json_schema.schema {
                None => Ok(OutputCheck::JsonObject),
                Some(schema) => jsonschema::validator_for(schema)
                    .map(|v| OutputCheck::Schema(Box::new(v)))
                    .map_err(|e| ApiError::InvalidResponseFormat(e.to_string())),
            },
        }
    }

    /// Why `response` is not acceptable, if it is not.
    pub(crate) fn check(&self, response: &ChatResponse) -> Result<(), String> {
        let Some(choice) = response.choices.first() else {
            return Err("the answer has no choices".to_owned());
        };
        let message = &choice.message;
        let text = message.content.as_deref().unwrap_or("");
        let has_tools = message.tool_calls.as_ref().is_some_and(|c| !c.is_empty());
        let has_refusal = message.refusal.as_ref().is_some_and(|r| !r.is_empty());
        if text.trim().is_empty() && !has_tools && !has_refusal {
            return Err("the answer is empty".to_owned());
        }
        if has_tools && text.trim().is_empty() {
            return Ok(()); // a tool call answers for itself
        }
        match self {
            OutputCheck::NonEmpty => Ok(()),
            OutputCheck::JsonObject => match parse(text)? {
                Value::Object(_) => Ok(()),
                _ => Err("the answer is JSON but not an object".to_owned()),
            },
            OutputCheck::Schema(validator) => {
                let value = parse(text)?;
                match validator.validate(&value) {
                    Ok(()) => Ok(()),
                    Err(e) => Err(format!("the answer does not match the schema: {e}")),
                }
            }
        }
    }
}

fn parse(text: &str) -> Result<Value, String> {
    serde_json::from_str(text.trim()).map_err(|e| format!("the answer is not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(format: Value) -> ChatRequest {
        serde_json::from_value(json!({
            "model": "m", "messages": [{"role": "user", "content": "hi"}], "response_format": format
        }))
        .unwrap()
    }

    fn answer(text: &str) -> ChatResponse {
        serde_json::from_value(json!({
            "id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]
        }))
        .unwrap()
    }

    #[test]
    fn schema_answers_must_validate() {
        let schema = json!({"type": "json_schema", "json_schema": {"name": "a", "schema": {
            "type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}
        }}});
        let check = OutputCheck::for_request(&request(schema)).unwrap();
        assert!(check.check(&answer(r#"{"answer": "yes"}"#)).is_ok());
        assert!(check.check(&answer(r#"{"answer": 5}"#)).is_err());
        assert!(check.check(&answer("not json")).is_err());
        assert!(check.check(&answer("")).is_err());
    }

    #[test]
    fn an_invalid_schema_is_the_clients_error() {
        let schema =
            json!({"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": 12}}});
        let err = OutputCheck::for_request(&request(schema)).err().unwrap();
        assert_eq!(err.code(), "invalid_response_format");
    }
}
