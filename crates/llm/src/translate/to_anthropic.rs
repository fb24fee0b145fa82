//! Into the Anthropic format: a canonical request for an Anthropic target, and a
//! canonical answer for a client of `/v1/messages`.

use serde_json::{Map, Value, json};

use super::{TranslateError, parse_arguments, stop_reason_from_openai};
use crate::anthropic::{
    self, ContentBlock, MediaBlock, MessagesRequest, MessagesResponse, Metadata, Role, System,
    TextBlock, Tool, ToolChoice, ToolResultBlock, ToolUseBlock,
};
use crate::openai::{
    AssistantMessage, ChatRequest, ChatResponse, Content, ContentPart, Message, ToolChoiceMode,
    ToolMessage,
};

/// `max_tokens` for Anthropic (where it is required) when the client set no cap.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Fields of an OpenAI request's `extra` that Anthropic understands, passed through
/// (OpenAI SDK users set them with `extra_body`).
const ANTHROPIC_EXTRAS: [&str; 1] = ["thinking"];

/// Translates a canonical request for an Anthropic target.
///
/// `system` and `developer` messages (wherever they are) become `system`; `tool`
/// messages become `tool_result` blocks of a user turn; consecutive turns of one role
/// are merged (Anthropic wants alternation); `max_tokens` defaults to
/// [`DEFAULT_MAX_TOKENS`]; `temperature` is clamped to Anthropic's 0..=1. Dropped: other
/// OpenAI-only hints in `extra` (`seed`, `logit_bias`, ...) and `response_format`, which
/// Anthropic has no field for (the gateway validates the output instead).
/// Refused: `n` > 1, audio input, non-PDF files.
pub fn to_anthropic_request(request: &ChatRequest) -> Result<MessagesRequest, TranslateError> {
    if request.n.is_some_and(|n| n > 1) {
        return Err(TranslateError::unsupported(
            "n",
            "Anthropic generates one choice per request",
        ));
    }
    let (system, messages) = conversation(request)?;
    let has_tools = request.tools.as_ref().is_some_and(|t| !t.is_empty());
    let extra: Map<String, Value> = ANTHROPIC_EXTRAS
        .iter()
        .filter_map(|k| request.extra.get(*k).map(|v| ((*k).to_owned(), v.clone())))
        .collect();
    Ok(MessagesRequest {
        model: request.model.clone(),
        max_tokens: request.output_cap().unwrap_or(DEFAULT_MAX_TOKENS),
        messages,
        system: system_of(system),
        tools: if has_tools {
            Some(tools(request)?)
        } else {
            None
        },
        tool_choice: if has_tools {
            tool_choice(request)
        } else {
            None
        },
        stop_sequences: request.stop.as_ref().map(|s| s.to_vec()),
        temperature: request.temperature.map(|t| t.clamp(0.0, 1.0)),
        top_p: request.top_p,
        top_k: request
            .extra
            .get("top_k")
            .and_then(Value::as_u64)
            .and_then(|k| u32::try_from(k).ok()),
        stream: request.stream,
        metadata: request.user.as_ref().map(|user| Metadata {
            user_id: Some(user.clone()),
            extra: Map::new(),
        }),
        extra,
    })
}

/// The system blocks and the merged turns of a request's messages.
fn conversation(
    request: &ChatRequest,
) -> Result<(Vec<ContentBlock>, Vec<anthropic::Message>), TranslateError> {
    let mut system = Vec::new();
    let mut messages: Vec<anthropic::Message> = Vec::new();
    for (i, message) in request.messages.iter().enumerate() {
        let field = format!("messages[{i}]");
        let (role, content) = match message {
            Message::System(m) | Message::Developer(m) => {
                system.extend(text_blocks(&field, &m.content)?);
                continue;
            }
            Message::User(m) => (Role::User, user_content(&field, &m.content)?),
            Message::Assistant(m) => match assistant_content(&field, m)? {
                Some(content) => (Role::Assistant, content),
                None => continue,
            },
            Message::Tool(m) => (Role::User, tool_result(&field, m)?),
        };
        push_merged(&mut messages, role, content);
    }
    Ok((system, messages))
}

fn system_of(mut blocks: Vec<ContentBlock>) -> Option<System> {
    match blocks.len() {
        0 => None,
        1 => match blocks.pop() {
            Some(ContentBlock::Text(t)) if t.extra.is_empty() => Some(System::Text(t.text)),
            Some(other) => Some(System::Blocks(vec![other])),
            None => None,
        },
        _ => Some(System::Blocks(blocks)),
    }
}

/// Appends a turn, merging it into the previous one if that has the same role.
fn push_merged(messages: &mut Vec<anthropic::Message>, role: Role, content: anthropic::Content) {
    match messages.last_mut() {
        Some(last) if last.role == role => {
            let previous = std::mem::replace(&mut last.content, anthropic::Content::Blocks(vec![]));
            let mut blocks = previous.into_blocks();
            blocks.extend(content.into_blocks());
            last.content = anthropic::Content::Blocks(blocks);
        }
        _ => messages.push(anthropic::Message { role, content }),
    }
}

fn text_blocks(field: &str, content: &Content) -> Result<Vec<ContentBlock>, TranslateError> {
    match content {
        Content::Text(text) => Ok(vec![ContentBlock::text(text.as_str())]),
        Content::Parts(parts) => parts
            .iter()
            .enumerate()
            .map(|(j, part)| match part {
                ContentPart::Text { text } => Ok(ContentBlock::text(text.as_str())),
                ContentPart::Refusal { refusal } => Ok(ContentBlock::text(refusal.as_str())),
                ContentPart::ImageUrl { .. }
                | ContentPart::InputAudio { .. }
                | ContentPart::File { .. } => Err(TranslateError::unsupported(
                    format!("{field}.content[{j}]"),
                    "only text parts are allowed here",
                )),
            })
            .collect(),
    }
}

fn user_content(field: &str, content: &Content) -> Result<anthropic::Content, TranslateError> {
    let parts = match content {
        Content::Text(text) => return Ok(anthropic::Content::Text(text.clone())),
        Content::Parts(parts) => parts,
    };
    let blocks = parts
        .iter()
        .enumerate()
        .map(|(j, part)| {
            let field = format!("{field}.content[{j}]");
            match part {
                ContentPart::Text { text } => Ok(ContentBlock::text(text.as_str())),
                ContentPart::Refusal { refusal } => Ok(ContentBlock::text(refusal.as_str())),
                ContentPart::ImageUrl { image_url } => {
                    Ok(ContentBlock::Image(media(&image_url.url)))
                }
                ContentPart::File { file } => file_block(&field, file),
                ContentPart::InputAudio { .. } => Err(TranslateError::unsupported(
                    field,
                    "Anthropic does not accept audio input",
                )),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(anthropic::Content::Blocks(blocks))
}

/// An image or document source from a URL: `data:` URLs become base64 sources.
fn media(url: &str) -> MediaBlock {
    let source = match parse_data_url(url) {
        Some((media_type, data)) => {
            json!({"type": "base64", "media_type": media_type, "data": data})
        }
        None => json!({"type": "url", "url": url}),
    };
    MediaBlock {
        source,
        extra: Map::new(),
    }
}

/// `data:<media type>;base64,<data>` as (media type, data).
pub(super) fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some((media_type, data))
}

fn file_block(field: &str, file: &Value) -> Result<ContentBlock, TranslateError> {
    match file.get("file_data").and_then(Value::as_str) {
        Some(data) if data.starts_with("data:application/pdf;base64,") => {
            Ok(ContentBlock::Document(media(data)))
        }
        _ => Err(TranslateError::unsupported(
            field,
            "only inline PDF files (`file_data` as a data: URL) can be sent to Anthropic",
        )),
    }
}

fn assistant_content(
    field: &str,
    message: &AssistantMessage,
) -> Result<Option<anthropic::Content>, TranslateError> {
    let mut blocks: Vec<ContentBlock> = match &message.content {
        Some(content) => text_blocks(field, content)?,
        None => Vec::new(),
    };
    // Anthropic refuses empty text blocks.
    blocks.retain(|b| !matches!(b, ContentBlock::Text(t) if t.text.is_empty()));
    for (j, call) in message.tool_calls.iter().flatten().enumerate() {
        let input = parse_arguments(
            &format!("{field}.tool_calls[{j}].function.arguments"),
            &call.function.arguments,
        )?;
        blocks.push(ContentBlock::ToolUse(ToolUseBlock {
            id: call.id.clone(),
            name: call.function.name.clone(),
            input,
        }));
    }
    Ok(match blocks.as_slice() {
        [] => None,
        [ContentBlock::Text(t)] if t.extra.is_empty() => {
            Some(anthropic::Content::Text(t.text.clone()))
        }
        _ => Some(anthropic::Content::Blocks(blocks)),
    })
}

fn tool_result(field: &str, message: &ToolMessage) -> Result<anthropic::Content, TranslateError> {
    let content = match &message.content {
        Content::Text(text) => anthropic::Content::Text(text.clone()),
        Content::Parts(_) => anthropic::Content::Blocks(text_blocks(field, &message.content)?),
    };
    Ok(anthropic::Content::Blocks(vec![ContentBlock::ToolResult(
        ToolResultBlock {
            tool_use_id: message.tool_call_id.clone(),
            content: Some(content),
            is_error: None,
            extra: Map::new(),
        },
    )]))
}

fn tools(request: &ChatRequest) -> Result<Vec<Tool>, TranslateError> {
    request
        .tools
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, tool)| {
            if tool.kind != "function" {
                return Err(TranslateError::unsupported(
                    format!("tools[{i}].type"),
                    "only function tools can be sent to Anthropic",
                ));
            }
            let schema = tool
                .function
                .parameters
                .clone()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            Ok(Tool {
                name: tool.function.name.clone(),
                description: tool.function.description.clone(),
                input_schema: Some(schema),
                extra: Map::new(),
            })
        })
        .collect()
}

fn tool_choice(request: &ChatRequest) -> Option<ToolChoice> {
    let disable = (request.parallel_tool_calls == Some(false)).then_some(true);
    match &request.tool_choice {
        None if disable.is_some() => Some(ToolChoice::Auto {
            disable_parallel_tool_use: disable,
        }),
        None => None,
        Some(crate::openai::ToolChoice::Mode(ToolChoiceMode::None)) => Some(ToolChoice::None),
        Some(crate::openai::ToolChoice::Mode(ToolChoiceMode::Auto)) => Some(ToolChoice::Auto {
            disable_parallel_tool_use: disable,
        }),
        Some(crate::openai::ToolChoice::Mode(ToolChoiceMode::Required)) => Some(ToolChoice::Any {
            disable_parallel_tool_use: disable,
        }),
        Some(crate::openai::ToolChoice::Named(named)) => Some(ToolChoice::Tool {
            name: named.function.name.clone(),
            disable_parallel_tool_use: disable,
        }),
    }
}

/// Translates a canonical answer for a client of `/v1/messages`: the first choice's
/// refusal, text and tool calls become blocks, `finish_reason` becomes `stop_reason`,
/// and cached prompt tokens are reported as `cache_read_input_tokens`.
pub fn to_anthropic_response(response: &ChatResponse) -> Result<MessagesResponse, TranslateError> {
    let choice = response
        .choices
        .first()
        .ok_or_else(|| TranslateError::unsupported("choices", "the answer has no choice"))?;
    let message = &choice.message;
    let mut content = Vec::new();
    for text in [&message.refusal, &message.content].into_iter().flatten() {
        if !text.is_empty() {
            content.push(ContentBlock::Text(TextBlock {
                text: text.clone(),
                extra: Map::new(),
            }));
        }
    }
    for (j, call) in message.tool_calls.iter().flatten().enumerate() {
        let field = format!("choices[0].message.tool_calls[{j}].function.arguments");
        content.push(ContentBlock::ToolUse(ToolUseBlock {
            id: call.id.clone(),
            name: call.function.name.clone(),
            input: parse_arguments(&field, &call.function.arguments)?,
        }));
    }
    Ok(MessagesResponse {
        id: response.id.clone(),
        kind: "message".to_owned(),
        role: Role::Assistant,
        content,
        model: response.model.clone(),
        stop_reason: choice
            .finish_reason
            .map(|r| stop_reason_from_openai(r).to_owned()),
        stop_sequence: None,
        usage: response.usage.as_ref().map(usage_of).unwrap_or_default(),
    })
}

/// OpenAI usage in Anthropic's terms (cache reads counted apart from input).
pub(super) fn usage_of(usage: &crate::openai::Usage) -> anthropic::Usage {
    let cached = usage
        .extra
        .get("prompt_tokens_details")
        .and_then(|d| d.get("cached_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
        .min(usage.prompt_tokens);
    anthropic::Usage {
        input_tokens: usage.prompt_tokens - cached,
        output_tokens: usage.completion_tokens,
        cache_creation_input_tokens: None,
        cache_read_input_tokens: (cached > 0).then_some(cached),
        extra: Map::new(),
    }
}
