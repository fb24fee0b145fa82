//! Into the canonical OpenAI format: a `/v1/messages` client's request, and an
//! Anthropic target's answer.

use serde_json::{Map, Value, json};

use super::{TranslateError, finish_reason_from_anthropic};
use crate::anthropic::{self, ContentBlock, MessagesRequest, MessagesResponse, Role, System};
use crate::openai::{
    AssistantMessage, ChatRequest, ChatResponse, Choice, Content, ContentPart, FunctionCall,
    FunctionDef, FunctionName, ImageUrl, InstructionMessage, Message, NamedToolChoice,
    ResponseMessage, Stop, StreamOptions, Tool, ToolCall, ToolChoice, ToolChoiceMode, ToolMessage,
    Usage, UserMessage,
};

/// Translates a `/v1/messages` request to the canonical form.
///
/// `system` becomes a leading system message; `tool_result` blocks become `tool`
/// messages (before the rest of their user turn); `tool_use` blocks become `tool_calls`;
/// `max_tokens` becomes `max_completion_tokens`. Dropped: `top_k`, thinking blocks,
/// `is_error` on tool results, cache-control marks and other Anthropic-only fields.
/// Refused: server tools (no `input_schema`), images inside tool results.
pub fn to_openai_request(request: &MessagesRequest) -> Result<ChatRequest, TranslateError> {
    let mut messages = Vec::new();
    match &request.system {
        Some(System::Text(text)) => messages.push(instruction(Content::Text(text.clone()))),
        Some(System::Blocks(blocks)) => {
            messages.push(instruction(Content::Parts(text_parts("system", blocks)?)));
        }
        None => {}
    }
    for (i, message) in request.messages.iter().enumerate() {
        let field = format!("messages[{i}]");
        match message.role {
            Role::User => user_messages(&field, &message.content, &mut messages)?,
            Role::Assistant => messages.push(assistant_message(&message.content)),
        }
    }
    let stream = request.stream == Some(true);
    Ok(ChatRequest {
        model: request.model.clone(),
        messages,
        tools: request.tools.as_ref().map(|t| tools(t)).transpose()?,
        tool_choice: request.tool_choice.as_ref().and_then(tool_choice),
        parallel_tool_calls: request.tool_choice.as_ref().and_then(parallel_tool_calls),
        response_format: None,
        stream: request.stream,
        stream_options: stream.then(|| StreamOptions {
            include_usage: Some(true),
            extra: Map::new(),
        }),
        max_tokens: None,
        max_completion_tokens: Some(request.max_tokens),
        temperature: request.temperature,
        top_p: request.top_p,
        stop: request.stop_sequences.clone().map(Stop::Many),
        n: None,
        user: request.metadata.as_ref().and_then(|m| m.user_id.clone()),
        extra: Map::new(),
    })
}

fn instruction(content: Content) -> Message {
    Message::System(InstructionMessage {
        content,
        name: None,
        extra: Map::new(),
    })
}

fn text_parts(field: &str, blocks: &[ContentBlock]) -> Result<Vec<ContentPart>, TranslateError> {
    blocks
        .iter()
        .enumerate()
        .filter_map(|(j, block)| match block {
            ContentBlock::Text(t) => Some(Ok(ContentPart::Text {
                text: t.text.clone(),
            })),
            ContentBlock::Thinking(_) | ContentBlock::RedactedThinking(_) => None,
            ContentBlock::Image(_)
            | ContentBlock::Document(_)
            | ContentBlock::ToolUse(_)
            | ContentBlock::ToolResult(_)
            | ContentBlock::Unknown => Some(Err(TranslateError::unsupported(
                format!("{field}.content[{j}]"),
                "only text blocks are allowed here",
            ))),
        })
        .collect()
}

/// A user turn: its tool results as `tool` messages, then the rest as one user message.
fn user_messages(
    field: &str,
    content: &anthropic::Content,
    out: &mut Vec<Message>,
) -> Result<(), TranslateError> {
    let blocks = match content {
        anthropic::Content::Text(text) => {
            out.push(user(Content::Text(text.clone())));
            return Ok(());
        }
        anthropic::Content::Blocks(blocks) => blocks,
    };
    let mut parts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let field = format!("{field}.content[{j}]");
        match block {
            ContentBlock::Text(t) => parts.push(ContentPart::Text {
                text: t.text.clone(),
            }),
            ContentBlock::Image(m) => parts.push(ContentPart::ImageUrl {
                image_url: ImageUrl {
                    url: source_url(&field, &m.source)?,
                    detail: None,
                },
            }),
            ContentBlock::Document(m) => parts.push(ContentPart::File {
                file: json!({"filename": "document.pdf", "file_data": source_url(&field, &m.source)?}),
            }),
            ContentBlock::ToolResult(result) => out.push(tool_message(&field, result)?),
            ContentBlock::Thinking(_) | ContentBlock::RedactedThinking(_) => {}
            ContentBlock::ToolUse(_) | ContentBlock::Unknown => {
                return Err(TranslateError::unsupported(
                    field,
                    "this block is not allowed in a user turn",
                ));
            }
        }
    }
    match parts.as_slice() {
        [] => {}
        [ContentPart::Text { text }] => out.push(user(Content::Text(text.clone()))),
        _ => out.push(user(Content::Parts(parts))),
    }
    Ok(())
}

fn user(content: Content) -> Message {
    Message::User(UserMessage {
        content,
        name: None,
        extra: Map::new(),
    })
}

/// A `data:` URL for a base64 source, the URL of a url source.
fn source_url(field: &str, source: &Value) -> Result<String, TranslateError> {
    let text = |key: &str| source.get(key).and_then(Value::as_str);
    match text("type") {
        Some("base64") => match (text("media_type"), text("data")) {
            (Some(media_type), Some(data)) => Ok(format!("data:{media_type};base64,{data}")),
            _ => Err(TranslateError::unsupported(
                format!("{field}.source"),
                "a base64 source needs `media_type` and `data`",
            )),
        },
        Some("url") => text("url").map(str::to_owned).ok_or_else(|| {
            TranslateError::unsupported(format!("{field}.source"), "a url source needs `url`")
        }),
        _ => Err(TranslateError::unsupported(
            format!("{field}.source"),
            "only base64 and url sources can be translated",
        )),
    }
}

fn tool_message(
    field: &str,
    result: &anthropic::ToolResultBlock,
) -> Result<Message, TranslateError> {
    let content = match &result.content {
        None => Content::Text(String::new()),
        Some(anthropic::Content::Text(text)) => Content::Text(text.clone()),
        Some(anthropic::Content::Blocks(blocks)) => Content::Parts(text_parts(field, blocks)?),
    };
    Ok(Message::Tool(ToolMessage {
        content,
        tool_call_id: result.tool_use_id.clone(),
        extra: Map::new(),
    }))
}

fn assistant_message(content: &anthropic::Content) -> Message {
    let blocks: &[ContentBlock] = match content {
        anthropic::Content::Text(text) => {
            return Message::Assistant(AssistantMessage {
                content: Some(Content::Text(text.clone())),
                ..AssistantMessage::default()
            });
        }
        anthropic::Content::Blocks(blocks) => blocks,
    };
    let (text, calls) = text_and_calls(blocks);
    Message::Assistant(AssistantMessage {
        content: (!text.is_empty() || calls.is_empty()).then_some(Content::Text(text)),
        tool_calls: (!calls.is_empty()).then_some(calls),
        ..AssistantMessage::default()
    })
}

/// The text of the blocks, concatenated, and their tool uses as tool calls.
fn text_and_calls(blocks: &[ContentBlock]) -> (String, Vec<ToolCall>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in blocks {
        match block {
            ContentBlock::Text(t) => text.push_str(&t.text),
            ContentBlock::ToolUse(u) => calls.push(ToolCall {
                id: u.id.clone(),
                kind: "function".to_owned(),
                function: FunctionCall {
                    name: u.name.clone(),
                    arguments: u.input.to_string(),
                },
            }),
            ContentBlock::Image(_)
            | ContentBlock::Document(_)
            | ContentBlock::ToolResult(_)
            | ContentBlock::Thinking(_)
            | ContentBlock::RedactedThinking(_)
            | ContentBlock::Unknown => {}
        }
    }
    (text, calls)
}

fn tools(tools: &[anthropic::Tool]) -> Result<Vec<Tool>, TranslateError> {
    tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            let schema = tool.input_schema.clone().ok_or_else(|| {
                TranslateError::unsupported(
                    format!("tools[{i}]"),
                    "Anthropic server tools have no OpenAI equivalent",
                )
            })?;
            Ok(Tool {
                kind: "function".to_owned(),
                function: FunctionDef {
                    name: tool.name.clone(),
                    description: tool.description.clone(),
                    parameters: Some(schema),
                    strict: None,
                },
            })
        })
        .collect()
}

fn tool_choice(choice: &anthropic::ToolChoice) -> Option<ToolChoice> {
    Some(match choice {
        anthropic::ToolChoice::Auto { .. } => ToolChoice::Mode(ToolChoiceMode::Auto),
        anthropic::ToolChoice::Any { .. } => ToolChoice::Mode(ToolChoiceMode::Required),
        anthropic::ToolChoice::None => ToolChoice::Mode(ToolChoiceMode::None),
        anthropic::ToolChoice::Tool { name, .. } => ToolChoice::Named(NamedToolChoice {
            kind: "function".to_owned(),
            function: FunctionName { name: name.clone() },
        }),
    })
}

fn parallel_tool_calls(choice: &anthropic::ToolChoice) -> Option<bool> {
    match choice {
        anthropic::ToolChoice::Auto {
            disable_parallel_tool_use,
        }
        | anthropic::ToolChoice::Any {
            disable_parallel_tool_use,
        }
        | anthropic::ToolChoice::Tool {
            disable_parallel_tool_use,
            ..
        } => disable_parallel_tool_use.map(|d| !d),
        anthropic::ToolChoice::None => None,
    }
}

/// Translates an Anthropic target's answer to the canonical form. `created` is the
/// Unix time in seconds to stamp it with (Anthropic sends none).
pub fn to_openai_response(response: &MessagesResponse, created: u64) -> ChatResponse {
    let (text, calls) = text_and_calls(&response.content);
    let message = ResponseMessage {
        role: "assistant".to_owned(),
        content: (!text.is_empty() || calls.is_empty()).then_some(text),
        refusal: None,
        tool_calls: (!calls.is_empty()).then_some(calls),
        extra: Map::new(),
    };
    ChatResponse {
        id: response.id.clone(),
        object: "chat.completion".to_owned(),
        created,
        model: response.model.clone(),
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: response
                .stop_reason
                .as_deref()
                .map(finish_reason_from_anthropic),
            logprobs: None,
        }],
        usage: Some(usage_of(&response.usage)),
        extra: Map::new(),
    }
}

/// Anthropic usage in OpenAI's terms (cache reads and writes are prompt tokens too).
pub(super) fn usage_of(usage: &anthropic::Usage) -> Usage {
    let mut out = Usage::new(usage.total_input(), usage.output_tokens);
    if let Some(cached) = usage.cache_read_input_tokens.filter(|c| *c > 0) {
        out.extra.insert(
            "prompt_tokens_details".to_owned(),
            json!({"cached_tokens": cached}),
        );
    }
    out
}
