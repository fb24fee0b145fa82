//! What a suite runs against: the [`Subject`] trait, and the calls and answers it
//! carries.
//!
//! The decision: the runner never knows where the gateway is. A subject answers two
//! kinds of call, a chat through a route (a case of a route suite, and every judge's
//! verdict) and a task of a workflow (a case of a workflow suite). The server
//! implements it in process over the gateway's own pipeline, so a configuration can be
//! evaluated before it takes traffic; the binary implements it over HTTP, so any
//! deployment can be. Both go through the whole pipeline (routing, retries, fallback,
//! breakers, output checks, costs): a suite grades what users get.

use std::time::Duration;

use async_trait::async_trait;
use holdfast_llm::openai::{ChatResponse, FinishReason};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A chat through a route.
#[derive(Debug, Clone, PartialEq)]
pub struct Chat {
    /// The route to ask (the request's `model`).
    pub route: String,
    /// The request in the OpenAI chat format, a JSON object without `model` (the
    /// subject sets it to `route`); never streamed.
    pub body: Value,
    /// Sent as the call's `Idempotency-Key`, when set.
    pub idempotency_key: Option<String>,
    /// The call's deadline.
    pub timeout: Duration,
}

/// A task of a workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskCall {
    /// The workflow.
    pub workflow: String,
    /// Its version; the latest when `None`.
    pub version: Option<u32>,
    /// The task's input.
    pub input: Value,
    /// The submission's idempotency key: a case run again after an interruption finds
    /// its task instead of submitting a second one.
    pub idempotency_key: String,
    /// How long to wait for the task to finish.
    pub timeout: Duration,
}

/// A tool the model called.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The tool's name.
    pub name: String,
    /// Its arguments: the JSON the model wrote, or the text when it is not JSON.
    pub arguments: Value,
}

/// What a subject answered.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Answer {
    /// The text: a chat's message content, or a task's output (a string as it is,
    /// anything else as compact JSON).
    pub text: String,
    /// The model's refusal, when it refused (OpenAI's `refusal`, or a content filter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// The tools the model called.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// Why generation stopped (`stop`, `length`, `tool_calls`, `content_filter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// A task's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// What the call cost, in US dollars.
    #[serde(default)]
    pub cost_usd: f64,
    /// Who answered: the target of a chat, the task id of a workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_by: Option<String>,
    /// The gateway's request id (its ledger entry), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl Answer {
    /// The answer in a chat completion's first choice, costing `cost_usd`.
    pub fn from_chat(response: &ChatResponse, cost_usd: f64) -> Answer {
        let Some(choice) = response.choices.first() else {
            return Answer {
                cost_usd,
                ..Answer::default()
            };
        };
        let message = &choice.message;
        let tool_calls = message
            .tool_calls
            .iter()
            .flatten()
            .map(|call| ToolCall {
                name: call.function.name.clone(),
                arguments: serde_json::from_str(&call.function.arguments)
                    .unwrap_or_else(|_| Value::String(call.function.arguments.clone())),
            })
            .collect();
        let finish_reason = choice.finish_reason.map(|reason| {
            match reason {
                FinishReason::Stop => "stop",
                FinishReason::Length => "length",
                FinishReason::ToolCalls => "tool_calls",
                FinishReason::ContentFilter => "content_filter",
                FinishReason::FunctionCall => "function_call",
                FinishReason::Unknown => "unknown",
            }
            .to_owned()
        });
        Answer {
            text: message.content.clone().unwrap_or_default(),
            refusal: message.refusal.clone().filter(|r| !r.is_empty()),
            tool_calls,
            finish_reason,
            output: None,
            cost_usd,
            served_by: None,
            request_id: None,
        }
    }

    /// A streamed chat's answer: the text the client got, costing `cost_usd`.
    pub fn streamed(text: String, cost_usd: f64) -> Answer {
        Answer {
            text,
            finish_reason: Some("stop".to_owned()),
            cost_usd,
            ..Answer::default()
        }
    }

    /// A task's answer: its output, as text and as JSON.
    pub fn from_output(output: Value, cost_usd: f64, task_id: &str) -> Answer {
        let text = match &output {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        Answer {
            text,
            output: Some(output),
            cost_usd,
            served_by: Some(task_id.to_owned()),
            ..Answer::default()
        }
    }

    /// The answer as JSON, for graders that read JSON: a task's output, else the text
    /// parsed, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        match &self.output {
            Some(output) => match output {
                Value::String(text) => serde_json::from_str(text.trim()).ok(),
                other => Some(other.clone()),
            },
            None => serde_json::from_str(self.text.trim()).ok(),
        }
    }
}

/// Why a subject gave no answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SubjectError {
    /// What kind of failure: the gateway's error code (`upstream_error`,
    /// `content_filter`, `model_not_found`…), or `timeout`, `task_failed`,
    /// `unreachable`, `invalid_answer`.
    pub code: String,
    /// What happened, without secrets.
    pub message: String,
    /// What the failed call still cost (attempts that were paid for).
    pub cost_usd: f64,
}

impl SubjectError {
    /// A failure of `code` that cost nothing.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> SubjectError {
        SubjectError {
            code: code.into(),
            message: message.into(),
            cost_usd: 0.0,
        }
    }
}

/// What a suite runs against.
#[async_trait]
pub trait Subject: Send + Sync {
    /// Where the subject is, recorded with the run: `{"via": "http://…"}`, or
    /// `{"via": "in-process", …}` with what identifies the configuration.
    fn describe(&self) -> Value;

    /// Asks `call.route` through the gateway's whole pipeline.
    async fn chat(&self, call: Chat) -> Result<Answer, SubjectError>;

    /// Submits a task and waits for it to finish (or for `call.timeout`): its output is
    /// the answer; a task that fails is a `task_failed` error.
    async fn task(&self, call: TaskCall) -> Result<Answer, SubjectError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_chat_answer_keeps_text_tools_and_reason() {
        let response: ChatResponse = serde_json::from_value(json!({
            "id": "x", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "lookup", "arguments": "{\"city\":\"Paris\"}"}}]}}]
        }))
        .unwrap();
        let answer = Answer::from_chat(&response, 0.5);
        assert_eq!(answer.tool_calls[0].arguments, json!({"city": "Paris"}));
        assert_eq!(answer.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(answer.cost_usd, 0.5);
        let task = Answer::from_output(json!({"total": 3}), 0.1, "t-1");
        assert_eq!(task.text, r#"{"total":3}"#);
        assert_eq!(task.json(), Some(json!({"total": 3})));
    }
}
