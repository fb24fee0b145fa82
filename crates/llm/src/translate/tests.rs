use serde_json::json;

use super::*;
use crate::anthropic::{MessagesRequest, MessagesResponse};
use crate::openai::{ChatRequest, ChatResponse};

fn openai_request(v: serde_json::Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

fn agent_turns() -> serde_json::Value {
    json!({
        "model": "smart",
        "messages": [
            {"role": "system", "content": "You are a weather bot."},
            {"role": "developer", "content": [{"type": "text", "text": "Use Celsius."}]},
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "24C"}]},
            {"role": "user", "content": [
                {"type": "text", "text": "And this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0"}}
            ]}
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "description": "Current weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
        "tool_choice": "required",
        "parallel_tool_calls": false,
        "stop": "END",
        "temperature": 1.4,
        "user": "u-42",
        "seed": 3,
        "top_k": 5
    })
}

#[test]
fn an_openai_agent_conversation_becomes_a_valid_anthropic_request() {
    let request = to_anthropic_request(&openai_request(agent_turns())).unwrap();
    let expected = json!({
        "model": "smart",
        "max_tokens": 4096,
        "system": [{"type": "text", "text": "You are a weather bot."}, {"type": "text", "text": "Use Celsius."}],
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "weather", "input": {"city": "Rome"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "24C"}]},
                {"type": "text", "text": "And this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0"}}
            ]}
        ],
        "tools": [{"name": "weather", "description": "Current weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "stop_sequences": ["END"],
        "temperature": 1.0,
        "top_k": 5,
        "metadata": {"user_id": "u-42"}
    });
    assert_eq!(serde_json::to_value(&request).unwrap(), expected);
}

#[test]
fn what_anthropic_cannot_express_is_refused_with_the_field() {
    let mut body = agent_turns();
    body["n"] = json!(2);
    let err = to_anthropic_request(&openai_request(body)).unwrap_err();
    assert!(err.to_string().contains("`n`"), "{err}");

    let mut body = agent_turns();
    body["messages"][3]["tool_calls"][0]["function"]["arguments"] = json!("{not json");
    let err = to_anthropic_request(&openai_request(body)).unwrap_err();
    assert!(
        err.to_string()
            .contains("messages[3].tool_calls[0].function.arguments"),
        "{err}"
    );

    let body = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}}]}]});
    let err = to_anthropic_request(&openai_request(body)).unwrap_err();
    assert!(err.to_string().contains("messages[0].content[0]"), "{err}");
}

#[test]
fn the_output_cap_prefers_max_completion_tokens() {
    let body = json!({"model": "m", "max_tokens": 10, "max_completion_tokens": 20,
        "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(
        to_anthropic_request(&openai_request(body))
            .unwrap()
            .max_tokens,
        20
    );
}

#[test]
fn an_anthropic_answer_with_tool_use_becomes_an_openai_answer() {
    let response: MessagesResponse = serde_json::from_value(json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_01", "name": "weather", "input": {"city": "Paris"}}
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 100, "output_tokens": 20, "cache_read_input_tokens": 50,
            "cache_creation_input_tokens": 0}
    }))
    .unwrap();
    let openai = to_openai_response(&response, 1_700_000_000);
    assert_eq!(
        serde_json::to_value(&openai).unwrap(),
        json!({
            "id": "msg_01", "object": "chat.completion", "created": 1_700_000_000u64,
            "model": "claude-sonnet-4-5",
            "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls",
                "message": {"role": "assistant", "content": "Checking.", "refusal": null, "tool_calls": [
                    {"id": "toolu_01", "type": "function",
                     "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
            "usage": {"prompt_tokens": 150, "completion_tokens": 20, "total_tokens": 170,
                "prompt_tokens_details": {"cached_tokens": 50}}
        })
    );
}

#[test]
fn stop_reasons_map_both_ways() {
    use crate::openai::FinishReason::*;
    for (anthropic, openai) in [
        ("end_turn", Stop),
        ("stop_sequence", Stop),
        ("max_tokens", Length),
        ("tool_use", ToolCalls),
        ("refusal", ContentFilter),
    ] {
        assert_eq!(finish_reason_from_anthropic(anthropic), openai);
    }
    assert_eq!(stop_reason_from_openai(Length), "max_tokens");
    assert_eq!(stop_reason_from_openai(ToolCalls), "tool_use");
}

fn anthropic_client_request() -> serde_json::Value {
    json!({
        "model": "smart",
        "max_tokens": 512,
        "system": "Be terse.",
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_01", "name": "weather", "input": {"city": "Paris"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C"},
                {"type": "text", "text": "Thanks. And this picture?"},
                {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}
            ]}
        ],
        "tools": [{"name": "weather", "description": "Current weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "weather", "disable_parallel_tool_use": true},
        "stop_sequences": ["END"],
        "temperature": 0.3,
        "stream": true,
        "metadata": {"user_id": "u1"}
    })
}

#[test]
fn an_anthropic_client_request_becomes_canonical() {
    let request: MessagesRequest = serde_json::from_value(anthropic_client_request()).unwrap();
    let openai = to_openai_request(&request).unwrap();
    assert_eq!(
        serde_json::to_value(&openai).unwrap(),
        json!({
            "model": "smart",
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "toolu_01", "type": "function",
                     "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "toolu_01", "content": "18C"},
                {"role": "user", "content": [
                    {"type": "text", "text": "Thanks. And this picture?"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}
            ],
            "tools": [{"type": "function", "function": {"name": "weather",
                "description": "Current weather", "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "weather"}},
            "parallel_tool_calls": false,
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_completion_tokens": 512,
            "temperature": 0.3,
            "stop": ["END"],
            "user": "u1"
        })
    );
}

#[test]
fn an_anthropic_request_survives_the_round_trip_through_the_canonical_form() {
    let original: MessagesRequest = serde_json::from_value(anthropic_client_request()).unwrap();
    let back = to_anthropic_request(&to_openai_request(&original).unwrap()).unwrap();
    // Tool results and the text after them merge back into one user turn: identical.
    assert_eq!(
        serde_json::to_value(&back).unwrap(),
        anthropic_client_request()
    );
}

#[test]
fn an_openai_answer_becomes_an_anthropic_answer_and_back() {
    let response: ChatResponse = serde_json::from_value(json!({
        "id": "chatcmpl-9", "object": "chat.completion", "created": 5, "model": "gpt-4o",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": null, "message": {
            "role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}]}}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42,
            "prompt_tokens_details": {"cached_tokens": 10}}
    }))
    .unwrap();
    let anthropic = to_anthropic_response(&response).unwrap();
    assert_eq!(
        serde_json::to_value(&anthropic).unwrap(),
        json!({
            "id": "chatcmpl-9", "type": "message", "role": "assistant", "model": "gpt-4o",
            "content": [{"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Rome"}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 20, "output_tokens": 12, "cache_read_input_tokens": 10}
        })
    );
    let back = to_openai_response(&anthropic, 5);
    assert_eq!(back.choices, response.choices);
    assert_eq!(back.usage, response.usage);
}

#[test]
fn a_refusal_and_an_empty_answer_translate() {
    let response: ChatResponse = serde_json::from_value(json!({
        "id": "c", "choices": [{"index": 0, "finish_reason": "content_filter",
            "message": {"role": "assistant", "content": null, "refusal": "I can't help with that."}}]
    }))
    .unwrap();
    let anthropic = to_anthropic_response(&response).unwrap();
    assert_eq!(anthropic.stop_reason.as_deref(), Some("refusal"));
    assert_eq!(anthropic.content.len(), 1);
    let empty: ChatResponse = serde_json::from_value(json!({"id": "c", "choices": []})).unwrap();
    assert!(to_anthropic_response(&empty).is_err());
}
