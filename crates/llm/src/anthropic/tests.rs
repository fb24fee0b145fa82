use serde_json::json;

use super::*;

#[test]
fn a_request_with_tools_and_blocks_round_trips() {
    let body = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_01", "name": "weather", "input": {"city": "Paris"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C", "is_error": false},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}}
            ]}
        ],
        "tools": [{"name": "weather", "description": "Weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
        "stop_sequences": ["END"],
        "temperature": 0.5,
        "stream": false,
        "metadata": {"user_id": "u1"},
        "thinking": {"type": "enabled", "budget_tokens": 2000}
    });
    let request: MessagesRequest = serde_json::from_value(body.clone()).unwrap();
    assert!(request.extra.contains_key("thinking"));
    assert_eq!(serde_json::to_value(&request).unwrap(), body);
}

#[test]
fn stream_events_parse_as_anthropic_sends_them() {
    let events = [
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
            "content": [], "model": "claude-sonnet-4-5", "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 25, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "ping"}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        json!({"type": "content_block_delta", "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": "{\"ci"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
            "usage": {"output_tokens": 15}}),
        json!({"type": "message_stop"}),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "citations_delta", "citation": {}}}),
        json!({"type": "brand_new_event"}),
    ];
    let parsed: Vec<StreamEvent> = events
        .iter()
        .map(|e| serde_json::from_value(e.clone()).unwrap())
        .collect();
    assert!(matches!(parsed[0], StreamEvent::MessageStart { .. }));
    assert!(matches!(
        parsed[9],
        StreamEvent::ContentBlockDelta {
            delta: BlockDelta::Unknown,
            ..
        }
    ));
    assert_eq!(parsed[10], StreamEvent::Unknown);
}

#[test]
fn an_error_body_parses() {
    let body: ErrorBody = serde_json::from_value(json!({
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
        "request_id": "req_1"
    }))
    .unwrap();
    assert_eq!(body.error.kind, "overloaded_error");
}
