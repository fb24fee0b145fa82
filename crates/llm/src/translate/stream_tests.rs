use serde_json::{Value, json};

use super::*;
use crate::anthropic::StreamEvent;
use crate::openai::{ChatChunk, FinishReason};

fn anthropic_events() -> Vec<StreamEvent> {
    [
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
            "content": [], "model": "claude-sonnet-4-5", "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 472, "output_tokens": 2}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "ping"}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Okay,"}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " checking."}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use",
            "id": "toolu_01", "name": "get_weather", "input": {}}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"location\":"}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": " \"Paris\"}"}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
            "usage": {"output_tokens": 89}}),
        json!({"type": "message_stop"}),
    ]
    .into_iter()
    .map(|e| serde_json::from_value(e).unwrap())
    .collect()
}

fn chunks_from_anthropic() -> Vec<ChatChunk> {
    let mut translator = AnthropicStreamTranslator::new(1_700_000_000);
    let chunks = anthropic_events()
        .iter()
        .flat_map(|e| translator.push(e))
        .collect();
    assert!(translator.is_complete());
    assert_eq!(translator.finish_reason(), Some(FinishReason::ToolCalls));
    assert!(translator.finish().is_empty());
    chunks
}

#[test]
fn anthropic_events_become_openai_chunks_with_tool_deltas_and_usage() {
    let chunks: Vec<Value> = chunks_from_anthropic()
        .iter()
        .map(|c| {
            let mut v = serde_json::to_value(c).unwrap();
            let o = v.as_object_mut().unwrap();
            assert_eq!(o.remove("id"), Some(json!("msg_1")));
            assert_eq!(o.remove("model"), Some(json!("claude-sonnet-4-5")));
            assert_eq!(o.remove("object"), Some(json!("chat.completion.chunk")));
            assert_eq!(o.remove("created"), Some(json!(1_700_000_000u64)));
            v
        })
        .collect();
    let choice = |delta: Value, finish: Value| json!({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    assert_eq!(
        chunks,
        vec![
            choice(json!({"role": "assistant", "content": ""}), Value::Null),
            choice(json!({"content": "Okay,"}), Value::Null),
            choice(json!({"content": " checking."}), Value::Null),
            choice(
                json!({"tool_calls": [{"index": 0, "id": "toolu_01", "type": "function",
                "function": {"name": "get_weather", "arguments": ""}}]}),
                Value::Null
            ),
            choice(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"location\":"}}]}),
                Value::Null
            ),
            choice(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": " \"Paris\"}"}}]}),
                Value::Null
            ),
            choice(json!({}), json!("tool_calls")),
            json!({"choices": [], "usage": {"prompt_tokens": 472, "completion_tokens": 89, "total_tokens": 561}}),
        ]
    );
}

#[test]
fn openai_chunks_become_a_well_nested_anthropic_stream() {
    let mut translator = OpenAiStreamTranslator::new("claude-sonnet-4-5", 400);
    let mut events: Vec<StreamEvent> = chunks_from_anthropic()
        .iter()
        .flat_map(|c| translator.push(c))
        .collect();
    events.extend(translator.finish());
    assert!(translator.finish().is_empty());
    let types: Vec<String> = events
        .iter()
        .map(|e| {
            serde_json::to_value(e).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        types,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let last_delta = serde_json::to_value(&events[9]).unwrap();
    assert_eq!(
        last_delta,
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
            "usage": {"output_tokens": 89, "input_tokens": 472}})
    );
    let tool_start = serde_json::to_value(&events[5]).unwrap();
    assert_eq!(
        tool_start["content_block"],
        json!({"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}})
    );
}

#[test]
fn a_stream_round_trip_rebuilds_the_same_text_and_arguments() {
    // Anthropic -> OpenAI -> Anthropic -> OpenAI gives the same chunks as one translation.
    let once = chunks_from_anthropic();
    let mut to_anthropic = OpenAiStreamTranslator::new("m", 0);
    let mut events: Vec<StreamEvent> = once.iter().flat_map(|c| to_anthropic.push(c)).collect();
    events.extend(to_anthropic.finish());
    let mut to_openai = AnthropicStreamTranslator::new(1_700_000_000);
    let twice: Vec<ChatChunk> = events.iter().flat_map(|e| to_openai.push(e)).collect();
    assert_eq!(twice, once);
}

#[test]
fn parallel_openai_tool_calls_open_one_block_each() {
    let chunk = |v: Value| -> ChatChunk { serde_json::from_value(v).unwrap() };
    let mut translator = OpenAiStreamTranslator::new("gpt-4o", 0);
    let mut events = Vec::new();
    for c in [
        json!({"id": "c", "model": "gpt-4o", "choices": [{"index": 0, "delta": {"role": "assistant", "content": null}}]}),
        json!({"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "a", "arguments": ""}}]}}]}),
        json!({"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}}]}),
        json!({"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "b", "arguments": "{\"x\":1}"}}]}}]}),
        json!({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
    ] {
        events.extend(translator.push(&chunk(c)));
    }
    events.extend(translator.finish());
    let starts: Vec<Value> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => Some(json!([
                index,
                serde_json::to_value(content_block).unwrap()["id"]
            ])),
            _ => None,
        })
        .collect();
    assert_eq!(starts, vec![json!([0, "call_a"]), json!([1, "call_b"])]);
    assert!(matches!(
        &events[events.len() - 2],
        StreamEvent::MessageDelta { delta, .. } if delta.stop_reason.as_deref() == Some("tool_use")
    ));
}
