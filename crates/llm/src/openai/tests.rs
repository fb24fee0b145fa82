use serde_json::json;

use super::*;

fn parse(v: serde_json::Value) -> Result<ChatRequest, RequestError> {
    ChatRequest::from_json(v.to_string().as_bytes())
}

#[test]
fn a_full_request_round_trips_with_unknown_fields_intact() {
    let body = json!({
        "model": "gpt-4o",
        "messages": [
            {"role": "developer", "content": "Be terse."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this image?"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}
            ], "name": "ann"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "look", "arguments": "{\"q\":1}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "a cat"}
        ],
        "tools": [{"type": "function", "function": {
            "name": "look", "description": "Look", "parameters": {"type": "object"}, "strict": true}}],
        "tool_choice": {"type": "function", "function": {"name": "look"}},
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "answer", "schema": {"type": "object"}, "strict": true}},
        "stream": true,
        "stream_options": {"include_usage": true},
        "max_completion_tokens": 100,
        "temperature": 0.2,
        "stop": ["\n\n"],
        "seed": 7,
        "logit_bias": {"50256": -100},
        "reasoning_effort": "low"
    });
    let request = parse(body.clone()).unwrap();
    assert_eq!(request.extra["seed"], json!(7));
    assert_eq!(request.extra["reasoning_effort"], json!("low"));
    assert!(matches!(
        request.response_format,
        Some(ResponseFormat::JsonSchema { .. })
    ));
    assert!(matches!(request.messages[2], Message::Assistant(_)));
    let back = serde_json::to_value(&request).unwrap();
    // `content: null` is dropped on the way out; everything else is identical.
    let mut expected = body;
    expected["messages"][2]
        .as_object_mut()
        .unwrap()
        .remove("content");
    assert_eq!(back, expected);
}

#[test]
fn tool_choice_modes_parse() {
    for mode in ["none", "auto", "required"] {
        let c: ToolChoice = serde_json::from_value(json!(mode)).unwrap();
        assert!(matches!(c, ToolChoice::Mode(_)));
    }
}

#[test]
fn errors_name_the_field() {
    let cases = [
        (json!({"model": "m", "messages": []}), "`messages`"),
        (
            json!({"model": "", "messages": [{"role": "user", "content": "x"}]}),
            "`model`",
        ),
        (
            json!({"model": "m", "temperature": 3.5, "messages": [{"role": "user", "content": "x"}]}),
            "`temperature`",
        ),
        (
            json!({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}),
            "`max_tokens`",
        ),
        (
            json!({"model": "m", "messages": [{"role": "tool", "content": "x", "tool_call_id": ""}]}),
            "`messages[0].tool_call_id`",
        ),
        (
            json!({"model": "m", "messages": [{"role": "assistant"}]}),
            "`messages[0].content`",
        ),
    ];
    for (body, field) in cases {
        let err = parse(body).unwrap_err().to_string();
        assert!(err.contains(field), "{err} should name {field}");
    }
}

#[test]
fn malformed_bodies_get_serde_messages_that_say_what_is_wrong() {
    let cases = [
        (
            json!({"model": "m", "max_tokens": -1, "messages": [{"role": "user", "content": "x"}]}),
            "max_tokens",
        ),
        (json!({"model": "m"}), "missing field `messages`"),
        (
            json!({"model": "m", "messages": [{"role": "robot", "content": "x"}]}),
            "unknown variant `robot`",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": 5}]}),
            "a string or an array of content parts",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "video"}]}]}),
            "unknown variant `video`",
        ),
    ];
    for (body, needle) in cases {
        let err = parse(body).unwrap_err();
        assert!(matches!(err, RequestError::Json(_)));
        assert!(
            err.to_string().contains(needle),
            "{err} should contain {needle}"
        );
    }
}

#[test]
fn a_response_and_its_chunks_parse_as_openai_sends_them() {
    let response: ChatResponse = serde_json::from_value(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000u64,
        "model": "gpt-4o-2024-08-06", "system_fingerprint": "fp_1",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi", "refusal": null,
            "annotations": []}, "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10,
            "prompt_tokens_details": {"cached_tokens": 0}}
    }))
    .unwrap();
    assert_eq!(response.choices[0].finish_reason, Some(FinishReason::Stop));
    assert_eq!(response.extra["system_fingerprint"], json!("fp_1"));
    let chunk: ChatChunk = serde_json::from_value(json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"a"}}]},
            "logprobs": null, "finish_reason": null}],
        "usage": null
    }))
    .unwrap();
    let call = &chunk.choices[0].delta.tool_calls.as_ref().unwrap()[0];
    assert_eq!(
        call.function.as_ref().unwrap().arguments.as_deref(),
        Some("{\"a")
    );
    let odd: FinishReason = serde_json::from_value(json!("something_new")).unwrap();
    assert_eq!(odd, FinishReason::Unknown);
}

/// The answer types are read by `extra.rs`'s visitor, not serde's derive: it must keep
/// the derive's behaviour, from bytes (borrowed keys) as from a `Value` (owned keys).
#[test]
fn answers_read_like_the_derive_would_read_them() {
    let text = r#"{"id":"c1","choices":[{"message":{"content":"Hi","annotations":[1]}}],
        "usage":{"prompt_tokens":2,"completion_tokens":3,"total_tokens":5,"x\"y":true},
        "service_tier":"default"}"#;
    let from_bytes: ChatResponse = serde_json::from_str(text).unwrap();
    let value: serde_json::Value = serde_json::from_str(text).unwrap();
    let from_value: ChatResponse = serde_json::from_value(value.clone()).unwrap();
    assert_eq!(from_bytes, from_value);
    // Defaults for what was left out, extras kept, escaped keys unescaped.
    assert_eq!(from_bytes.object, "chat.completion");
    assert_eq!(from_bytes.created, 0);
    assert_eq!(from_bytes.choices[0].message.role, "assistant");
    assert_eq!(
        from_bytes.choices[0].message.extra["annotations"],
        json!([1])
    );
    let usage = from_bytes.usage.as_ref().unwrap();
    assert_eq!((usage.prompt_tokens, usage.total_tokens), (2, 5));
    assert_eq!(usage.extra["x\"y"], json!(true));
    assert_eq!(from_bytes.extra["service_tier"], json!("default"));
    // Written back, every field is there again.
    let written = serde_json::to_value(&from_bytes).unwrap();
    assert_eq!(written["service_tier"], value["service_tier"]);
    assert_eq!(written["usage"], value["usage"]);

    let error = |text: &str| {
        serde_json::from_str::<ChatResponse>(text)
            .unwrap_err()
            .to_string()
    };
    assert!(error(r#"{"choices":[]}"#).contains("missing field `id`"));
    assert!(error(r#"{"id":"a"}"#).contains("missing field `choices`"));
    assert!(error(r#"{"id":"a","id":"b","choices":[]}"#).contains("duplicate field `id`"));
    assert!(error(r#"{"id":7,"choices":[]}"#).contains("invalid type: integer `7`"));
    assert!(error(r#"[]"#).contains("a chat.completion object"));
    // `null` is `None` for an option, an error for a number.
    let nulls: ChatResponse =
        serde_json::from_str(r#"{"id":"a","choices":[],"usage":null}"#).unwrap();
    assert_eq!(nulls.usage, None);
    assert!(error(r#"{"id":"a","choices":[],"created":null}"#).contains("invalid type: null"));
    // A path to the field at fault, through serde_path_to_error.
    let deserializer = &mut serde_json::Deserializer::from_str(
        r#"{"id":"a","choices":[{"message":{"content":5}}]}"#,
    );
    let err = serde_path_to_error::deserialize::<_, ChatResponse>(deserializer).unwrap_err();
    assert_eq!(err.path().to_string(), "choices[0].message.content");
}
