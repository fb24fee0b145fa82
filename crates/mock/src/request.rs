//! What the mock needs to know about a chat request, read leniently from raw JSON.
//!
//! A mock must accept anything a real client may send, in either provider's dialect,
//! so requests are read as [`serde_json::Value`] and only the few facts that shape the
//! answer are extracted; everything else is ignored. Only a body that is not a JSON
//! object or has no `messages` array is refused, as the real providers refuse it.

use serde_json::Value;

use crate::format::Format;

/// The facts of a chat request that shape the mock's answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Request {
    pub(crate) model: String,
    pub(crate) stream: bool,
    pub(crate) include_usage: bool,
    pub(crate) max_tokens: Option<u64>,
    /// Characters / 4 over all message and system text, at least 1.
    pub(crate) prompt_tokens: u64,
    /// The text of a final assistant message, if any.
    pub(crate) prefill: Option<String>,
    /// The tool to call, when tools are offered and the last message is not a result.
    pub(crate) tool: Option<String>,
    /// Whether JSON output was asked for.
    pub(crate) json: bool,
    /// The text of the system prompt and every message, a line each, for scripted
    /// replies ([`crate::Reply`]).
    pub(crate) text: String,
}

impl Request {
    /// Reads a request body; the error is the message the real provider would give.
    pub(crate) fn parse(format: Format, body: &[u8]) -> Result<Request, String> {
        let value: Value = serde_json::from_slice(body).map_err(|_| not_json(format))?;
        let Some(object) = value.as_object() else {
            return Err(not_json(format));
        };
        let Some(messages) = object.get("messages").and_then(Value::as_array) else {
            return Err(match format {
                Format::OpenAi => "Missing required parameter: 'messages'.".to_owned(),
                Format::Anthropic => "messages: Field required".to_owned(),
            });
        };
        let mut text = Text::default();
        text.add(&value["system"]);
        for message in messages {
            text.add(&message["content"]);
            text.add(&message["tool_calls"]);
        }
        let last = messages.last().unwrap_or(&Value::Null);
        Ok(Request {
            model: value["model"].as_str().unwrap_or("mock").to_owned(),
            stream: value["stream"].as_bool().unwrap_or(false),
            include_usage: value["stream_options"]["include_usage"]
                .as_bool()
                .unwrap_or(false),
            max_tokens: value["max_completion_tokens"]
                .as_u64()
                .or_else(|| value["max_tokens"].as_u64()),
            prompt_tokens: (text.chars as u64).div_ceil(4).max(1),
            prefill: prefill(last),
            tool: tool_to_call(&value, last),
            json: wants_json(&value),
            text: text.lines,
        })
    }
}

fn not_json(format: Format) -> String {
    match format {
        Format::OpenAi => "We could not parse the JSON body of your request. (HINT: This likely \
means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but \
what was sent was not valid JSON.)"
            .to_owned(),
        Format::Anthropic => {
            "There was an error parsing the body of your request: invalid JSON".to_owned()
        }
    }
}

/// The text of a request: every string inside its messages' content (plain strings,
/// text parts, nested tool results, tool inputs and call arguments alike), a line each,
/// and its length in characters (without the line breaks), from which the prompt's
/// tokens are estimated.
#[derive(Default)]
struct Text {
    lines: String,
    chars: usize,
}

impl Text {
    fn push(&mut self, text: &str) {
        self.chars += text.chars().count();
        self.lines.push_str(text);
        self.lines.push('\n');
    }

    fn add(&mut self, value: &Value) {
        match value {
            Value::String(text) => self.push(text),
            Value::Array(items) => items.iter().for_each(|item| self.add(item)),
            Value::Object(fields) => {
                for key in ["text", "content", "arguments", "function", "thinking"] {
                    if let Some(inner) = fields.get(key) {
                        self.add(inner);
                    }
                }
                if let Some(input) = fields.get("input") {
                    self.push(&input.to_string());
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

/// The text of a final assistant message, when it has any.
fn prefill(last: &Value) -> Option<String> {
    if last["role"].as_str() != Some("assistant") {
        return None;
    }
    let text = match &last["content"] {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|part| part["type"].as_str().is_none_or(|t| t == "text"))
            .filter_map(|part| part["text"].as_str())
            .collect(),
        _ => String::new(),
    };
    (!text.is_empty()).then_some(text)
}

fn is_tool_result(last: &Value) -> bool {
    let role = last["role"].as_str();
    if matches!(role, Some("tool" | "function")) {
        return true;
    }
    last["content"]
        .as_array()
        .is_some_and(|parts| parts.iter().any(|p| p["type"] == "tool_result"))
}

/// The tool to call: the one `tool_choice` names, else the first offered.
fn tool_to_call(request: &Value, last: &Value) -> Option<String> {
    let tools = request["tools"].as_array().filter(|t| !t.is_empty())?;
    let choice = &request["tool_choice"];
    if is_tool_result(last) || choice == "none" || choice["type"] == "none" {
        return None;
    }
    let named = choice["function"]["name"]
        .as_str()
        .or_else(|| choice["name"].as_str());
    let first = &tools[0];
    let name = named
        .or_else(|| first["function"]["name"].as_str())
        .or_else(|| first["name"].as_str())
        .unwrap_or("tool");
    Some(name.to_owned())
}

fn wants_json(request: &Value) -> bool {
    let kinds = [
        &request["response_format"]["type"],
        &request["output_format"]["type"],
    ];
    kinds
        .iter()
        .any(|kind| matches!(kind.as_str(), Some("json_object" | "json_schema")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Request {
        Request::parse(Format::OpenAi, value.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn reads_the_facts_that_shape_the_answer() {
        let req = parse(json!({
            "model": "gpt-4o", "stream": true, "stream_options": {"include_usage": true},
            "max_tokens": 7, "response_format": {"type": "json_object"},
            "messages": [{"role": "user", "content": "12345678"}]
        }));
        assert_eq!(req.model, "gpt-4o");
        assert!(req.stream && req.include_usage && req.json);
        assert_eq!((req.max_tokens, req.prompt_tokens), (Some(7), 2));
        assert_eq!((req.prefill, req.tool), (None, None));
        assert_eq!(req.text, "12345678\n");
    }

    #[test]
    fn counts_text_in_every_dialect() {
        let req = parse(json!({
            "system": [{"type": "text", "text": "1234"}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "1234"}]},
                {"role": "user", "content": [{"type": "tool_result", "content": "1234"}]}
            ]
        }));
        assert_eq!(req.prompt_tokens, 3);
    }

    #[test]
    fn finds_prefills_and_tools() {
        let req = parse(json!({"messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "text", "text": "Hol"}]}
        ]}));
        assert_eq!(req.prefill.as_deref(), Some("Hol"));
        let tools = json!([{"type": "function", "function": {"name": "lookup"}}]);
        let req = parse(json!({"tools": tools, "messages": [{"role": "user", "content": "x"}]}));
        assert_eq!(req.tool.as_deref(), Some("lookup"));
        let req = parse(json!({"tools": tools, "messages": [{"role": "tool", "content": "42"}]}));
        assert_eq!(req.tool, None);
        let req = parse(
            json!({"tools": [{"name": "a"}], "tool_choice": {"type": "tool", "name": "b"},
            "messages": [{"role": "user", "content": "x"}]}),
        );
        assert_eq!(req.tool.as_deref(), Some("b"));
    }

    #[test]
    fn refuses_what_real_providers_refuse() {
        assert!(Request::parse(Format::OpenAi, b"{not json").is_err());
        assert!(Request::parse(Format::Anthropic, b"[1]").is_err());
        let err = Request::parse(Format::Anthropic, br#"{"model":"x"}"#).unwrap_err();
        assert!(err.contains("messages"));
    }
}
