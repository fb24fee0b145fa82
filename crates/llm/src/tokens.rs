//! Counting tokens before a provider does: for context-window checks, rate limits in
//! tokens, and cost estimates when a provider reports no usage.
//!
//! Counts use OpenAI's tiktoken encodings (embedded in `tiktoken-rs`; nothing is
//! downloaded) with the per-message overhead of OpenAI's cookbook, built once per
//! process in a `LazyLock` (building one takes about 100 ms). The decision: a count is an
//! estimate that must never fail or panic. Exact for OpenAI text; tools, images and
//! Anthropic models are approximations (Anthropic's tokenizer is not public: o200k
//! counts run within roughly 10-20% of Anthropic's). Encoding costs about a microsecond
//! per token: callers on an async runtime should move very large prompts to a blocking
//! thread.

use std::sync::LazyLock;

use tiktoken_rs::CoreBPE;

use crate::openai::{ChatRequest, Content, ContentPart, Message};

/// A tokenizer encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// GPT-4o, GPT-4.1, GPT-5, the o-series; also the default for unknown models.
    O200kBase,
    /// GPT-4, GPT-3.5 Turbo and the `text-embedding-3`/`ada-002` models.
    Cl100kBase,
}

impl Encoding {
    /// The encoding a model uses, by its name (a dated or fine-tuned name works too).
    pub fn for_model(model: &str) -> Encoding {
        let model = model.rsplit('/').next().unwrap_or(model); // "openai/gpt-4" style
        let model = model.strip_prefix("ft:").unwrap_or(model);
        let is_o200k = [
            "gpt-4o",
            "gpt-4.1",
            "gpt-4.5",
            "gpt-5",
            "chatgpt-4o",
            "o1",
            "o3",
            "o4",
        ]
        .iter()
        .any(|p| model.starts_with(p));
        let is_cl100k = [
            "gpt-4",
            "gpt-3.5",
            "gpt-35",
            "text-embedding-3",
            "text-embedding-ada",
        ]
        .iter()
        .any(|p| model.starts_with(p));
        if is_cl100k && !is_o200k {
            Encoding::Cl100kBase
        } else {
            Encoding::O200kBase
        }
    }

    fn bpe(self) -> Option<&'static CoreBPE> {
        static O200K: LazyLock<Option<CoreBPE>> = LazyLock::new(|| tiktoken_rs::o200k_base().ok());
        static CL100K: LazyLock<Option<CoreBPE>> =
            LazyLock::new(|| tiktoken_rs::cl100k_base().ok());
        match self {
            Encoding::O200kBase => O200K.as_ref(),
            Encoding::Cl100kBase => CL100K.as_ref(),
        }
    }

    /// Tokens of `text` (special tokens count as ordinary text, as in a user's prompt).
    pub fn count(self, text: &str) -> u64 {
        if text.is_empty() {
            return 0;
        }
        let Some(bpe) = self.bpe() else {
            return approximate(text);
        };
        // tiktoken-rs panics if its regex engine gives up on a pathological input;
        // an estimate must not take the caller down, so fall back to the approximation.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            bpe.encode_ordinary(text).len() as u64
        }))
        .unwrap_or_else(|_| approximate(text))
    }
}

/// About four bytes per token: the rule of thumb for English text.
fn approximate(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

/// Tokens every message costs beyond its content (`<|start|>role ... <|end|>`).
const TOKENS_PER_MESSAGE: u64 = 3;
/// Tokens a `name` costs beyond its text.
const TOKENS_PER_NAME: u64 = 1;
/// Tokens that prime the reply (`<|start|>assistant<|message|>`).
const REPLY_PRIMING: u64 = 3;
/// An image's cost at low detail; high detail costs more by tile (an approximation).
const TOKENS_PER_IMAGE: u64 = 85;
/// Overhead of the tool-definition preamble (an approximation of OpenAI's hidden format).
const TOOLS_PREAMBLE: u64 = 12;

/// Prompt tokens of a request for its model, as OpenAI would bill them (exact for text
/// messages, approximate for tools and images).
pub fn count_prompt_tokens(request: &ChatRequest) -> u64 {
    let encoding = Encoding::for_model(&request.model);
    let messages: u64 = request
        .messages
        .iter()
        .map(|m| count_message(encoding, m))
        .sum();
    let tools = match &request.tools {
        Some(tools) if !tools.is_empty() => {
            let json = serde_json::to_string(tools).unwrap_or_default();
            TOOLS_PREAMBLE + encoding.count(&json)
        }
        _ => 0,
    };
    messages + tools + REPLY_PRIMING
}

/// Tokens of generated text for `model`.
pub fn count_completion_tokens(model: &str, text: &str) -> u64 {
    Encoding::for_model(model).count(text)
}

fn count_message(encoding: Encoding, message: &Message) -> u64 {
    let (role, content, name) = match message {
        Message::System(m) => ("system", Some(&m.content), m.name.as_deref()),
        Message::Developer(m) => ("developer", Some(&m.content), m.name.as_deref()),
        Message::User(m) => ("user", Some(&m.content), m.name.as_deref()),
        Message::Assistant(m) => ("assistant", m.content.as_ref(), m.name.as_deref()),
        Message::Tool(m) => ("tool", Some(&m.content), None),
    };
    let mut tokens = TOKENS_PER_MESSAGE + encoding.count(role);
    tokens += content.map_or(0, |c| count_content(encoding, c));
    if let Some(name) = name {
        tokens += TOKENS_PER_NAME + encoding.count(name);
    }
    if let Message::Assistant(m) = message {
        for call in m.tool_calls.iter().flatten() {
            tokens +=
                encoding.count(&call.function.name) + encoding.count(&call.function.arguments);
        }
    }
    tokens
}

fn count_content(encoding: Encoding, content: &Content) -> u64 {
    match content {
        Content::Text(text) => encoding.count(text),
        Content::Parts(parts) => parts
            .iter()
            .map(|part| match part {
                ContentPart::Text { text } => encoding.count(text),
                ContentPart::Refusal { refusal } => encoding.count(refusal),
                ContentPart::ImageUrl { .. } => TOKENS_PER_IMAGE,
                ContentPart::InputAudio { input_audio } => {
                    approximate(&input_audio.to_string()) / 8
                }
                ContentPart::File { file } => approximate(&file.to_string()) / 8,
            })
            .sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(model: &str, messages: serde_json::Value) -> ChatRequest {
        serde_json::from_value(serde_json::json!({"model": model, "messages": messages})).unwrap()
    }

    #[test]
    fn models_pick_their_encoding() {
        for model in [
            "gpt-4o-mini",
            "o3-mini",
            "gpt-4.1",
            "gpt-5",
            "ft:gpt-4o:org::id",
            "claude-sonnet-4-5",
            "llama3",
        ] {
            assert_eq!(Encoding::for_model(model), Encoding::O200kBase, "{model}");
        }
        for model in [
            "gpt-4",
            "gpt-4-turbo",
            "gpt-3.5-turbo-0125",
            "openai/gpt-4-0613",
        ] {
            assert_eq!(Encoding::for_model(model), Encoding::Cl100kBase, "{model}");
        }
    }

    #[test]
    fn counts_match_openai_cookbook_values() {
        // From OpenAI's "How to count tokens with tiktoken" cookbook.
        assert_eq!(Encoding::Cl100kBase.count("tiktoken is great!"), 6);
        assert_eq!(Encoding::O200kBase.count("tiktoken is great!"), 6);
        let r = request(
            "gpt-3.5-turbo",
            serde_json::json!([
                {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
                {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
                {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
                {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
                {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to do better."},
                {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client deliverable."}
            ]),
        );
        assert_eq!(count_prompt_tokens(&r), 129);
    }

    #[test]
    fn completion_text_and_empty_text() {
        assert_eq!(count_completion_tokens("gpt-4o", ""), 0);
        assert!(count_completion_tokens("gpt-4o", "Hello, world") >= 3);
    }
}
