//! The scripted answer to one request: text, JSON or a tool call, cut into chunks.
//!
//! The answer is decided once, before any byte is sent, and is the same for the same
//! request and fault set: streamed and whole answers carry the same text, so a test can
//! compare them, and a prefill continues exactly where the scripted text says it should.
//! Text is chunked word by word (each chunk carries its leading whitespace), as real
//! providers stream roughly a token at a time.

use crate::faults::Faults;
use crate::request::Request;

/// Why the answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
}

/// What the answer holds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Content {
    /// Text, in stream chunks; the whole text is their concatenation.
    Text(Vec<String>),
    /// A call to a tool; `pieces` concatenate to `arguments`.
    Tool {
        name: String,
        arguments: String,
        pieces: Vec<String>,
    },
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answer {
    pub(crate) content: Content,
    pub(crate) finish: Finish,
    pub(crate) completion_tokens: u64,
    /// Whether the answer continues a prefill that is a prefix of the script.
    pub(crate) continued_prefill: bool,
}

/// Tokens in `text`, estimated as characters / 4 rounded up.
pub(crate) fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

impl Answer {
    /// The answer to `request` under `faults`; `filtered` when the content filter stops it.
    pub(crate) fn build(request: &Request, faults: &Faults, filtered: bool) -> Answer {
        let reply = faults.replies.iter().find(|reply| {
            request.text.contains(reply.contains.as_str())
                && reply
                    .and_contains
                    .as_deref()
                    .is_none_or(|also| request.text.contains(also))
        });
        if filtered {
            return Answer {
                content: Content::Text(Vec::new()),
                finish: Finish::ContentFilter,
                completion_tokens: 0,
                continued_prefill: false,
            };
        }
        if let Some(name) = &request.tool {
            let arguments = reply
                .and_then(|r| r.tool_arguments.as_ref())
                .unwrap_or(&faults.tool_arguments)
                .to_string();
            return Answer {
                completion_tokens: estimate_tokens(name) + estimate_tokens(&arguments) + 1,
                content: Content::Tool {
                    name: name.clone(),
                    pieces: fixed_pieces(&arguments, ARGUMENT_PIECE_CHARS),
                    arguments,
                },
                finish: Finish::ToolCalls,
                continued_prefill: false,
            };
        }
        let script = if request.json {
            reply
                .and_then(|r| r.json_answer.as_ref())
                .unwrap_or(&faults.json_answer)
                .to_string()
        } else {
            reply
                .and_then(|r| r.answer.clone())
                .unwrap_or_else(|| faults.answer.clone())
        };
        let (rest, continued_prefill) = match &request.prefill {
            Some(prefill) if script.starts_with(prefill.as_str()) => {
                (&script[prefill.len()..], true)
            }
            Some(_) | None => (script.as_str(), false),
        };
        let (chunks, finish) = truncate(word_chunks(rest), request.max_tokens);
        let completion_tokens = estimate_tokens(&chunks.concat());
        Answer {
            content: Content::Text(chunks),
            finish,
            completion_tokens,
            continued_prefill,
        }
    }

    /// The whole text (empty for a tool call).
    pub(crate) fn text(&self) -> String {
        match &self.content {
            Content::Text(chunks) => chunks.concat(),
            Content::Tool { .. } => String::new(),
        }
    }
}

/// Characters per streamed piece of tool-call arguments.
const ARGUMENT_PIECE_CHARS: usize = 8;

/// Splits `text` into pieces of `size` characters.
fn fixed_pieces(text: &str, size: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(size.max(1))
        .map(|c| c.iter().collect())
        .collect()
}

/// Splits `text` into chunks of leading whitespace plus one word.
fn word_chunks(text: &str) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    for c in text.chars() {
        if c.is_whitespace() && in_word {
            chunks.push(std::mem::take(&mut current));
            in_word = false;
        }
        in_word |= !c.is_whitespace();
        current.push(c);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// Keeps the chunks that fit in `max_tokens`; `Length` when some were dropped.
fn truncate(chunks: Vec<String>, max_tokens: Option<u64>) -> (Vec<String>, Finish) {
    let Some(max) = max_tokens else {
        return (chunks, Finish::Stop);
    };
    let mut kept = Vec::new();
    let mut text = String::new();
    for chunk in &chunks {
        text.push_str(chunk);
        if estimate_tokens(&text) > max {
            return (kept, Finish::Length);
        }
        kept.push(chunk.clone());
    }
    (kept, Finish::Stop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::DEFAULT_ANSWER;

    fn request() -> Request {
        Request {
            model: "m".into(),
            stream: false,
            include_usage: false,
            max_tokens: None,
            prompt_tokens: 1,
            prefill: None,
            tool: None,
            json: false,
            text: "What is the capital of France?\n".into(),
        }
    }

    #[test]
    fn chunks_are_words_with_their_leading_space() {
        assert_eq!(word_chunks("ab  cd e"), vec!["ab", "  cd", " e"]);
        assert_eq!(word_chunks(" x"), vec![" x"]);
        assert!(word_chunks("").is_empty());
    }

    #[test]
    fn the_default_answer_is_about_forty_tokens() {
        let answer = Answer::build(&request(), &Faults::default(), false);
        assert_eq!(answer.text(), DEFAULT_ANSWER);
        assert!(
            (35..=50).contains(&answer.completion_tokens),
            "{}",
            answer.completion_tokens
        );
        assert_eq!(answer.finish, Finish::Stop);
    }

    #[test]
    fn max_tokens_cuts_at_a_chunk_and_says_length() {
        let req = Request {
            max_tokens: Some(5),
            ..request()
        };
        let answer = Answer::build(&req, &Faults::default(), false);
        assert_eq!(answer.finish, Finish::Length);
        assert!(answer.completion_tokens <= 5 && answer.completion_tokens > 0);
        assert!(DEFAULT_ANSWER.starts_with(&answer.text()));
    }

    #[test]
    fn a_prefix_prefill_is_continued_and_others_are_not() {
        let req = Request {
            prefill: Some("Holdfast mo".into()),
            ..request()
        };
        let answer = Answer::build(&req, &Faults::default(), false);
        assert!(answer.continued_prefill);
        assert_eq!(format!("Holdfast mo{}", answer.text()), DEFAULT_ANSWER);
        let req = Request {
            prefill: Some("Something else".into()),
            ..request()
        };
        let answer = Answer::build(&req, &Faults::default(), false);
        assert!(!answer.continued_prefill);
        assert_eq!(answer.text(), DEFAULT_ANSWER);
    }

    #[test]
    fn tools_and_json_change_the_content() {
        let req = Request {
            tool: Some("lookup".into()),
            ..request()
        };
        let faults = Faults {
            tool_arguments: serde_json::json!({"city": "Paris, France"}),
            ..Faults::default()
        };
        let answer = Answer::build(&req, &faults, false);
        let Content::Tool {
            name,
            arguments,
            pieces,
        } = &answer.content
        else {
            panic!()
        };
        assert_eq!(
            (name.as_str(), answer.finish),
            ("lookup", Finish::ToolCalls)
        );
        assert_eq!(&pieces.concat(), arguments);
        assert!(pieces.len() > 1);
        let req = Request {
            json: true,
            ..request()
        };
        let answer = Answer::build(&req, &Faults::default(), false);
        let parsed: serde_json::Value = serde_json::from_str(&answer.text()).unwrap();
        assert_eq!(parsed["ok"], true);
    }

    #[test]
    fn a_reply_that_needs_an_example_answers_only_when_the_prompt_shows_it() {
        let faults = Faults::from_toml_str(
            r#"
            [[replies]]
            contains = "France"
            and_contains = "Paris."
            answer = "Paris."

            [[replies]]
            contains = "France"
            answer = "Lyon."
            "#,
        )
        .unwrap();
        assert_eq!(Answer::build(&request(), &faults, false).text(), "Lyon.");
        let shown = Request {
            text: format!("What is the capital of Italy?\nRome.\n{}", request().text),
            ..request()
        };
        assert_eq!(Answer::build(&shown, &faults, false).text(), "Lyon.");
        let shown = Request {
            text: format!("What is the capital of Spain?\nParis.\n{}", request().text),
            ..request()
        };
        assert_eq!(Answer::build(&shown, &faults, false).text(), "Paris.");
        assert!(
            Faults::from_toml_str("[[replies]]\ncontains = \"x\"\nand_contains = \"\"").is_err()
        );
    }

    #[test]
    fn the_first_matching_reply_answers_and_the_rest_fall_back() {
        let faults = Faults::from_toml_str(
            r#"
            [[replies]]
            contains = "capital of Spain"
            answer = "Madrid."

            [[replies]]
            contains = "capital of France"
            answer = "Paris."
            json_answer = { city = "Paris" }

            [[replies]]
            contains = "France"
            answer = "never: an earlier reply matches first"
            "#,
        )
        .unwrap();
        assert_eq!(Answer::build(&request(), &faults, false).text(), "Paris.");
        let json = Request {
            json: true,
            ..request()
        };
        let answer = Answer::build(&json, &faults, false);
        assert_eq!(answer.text(), r#"{"city":"Paris"}"#);
        let tool = Request {
            tool: Some("lookup".into()),
            ..request()
        };
        let Content::Tool { arguments, .. } = Answer::build(&tool, &faults, false).content else {
            panic!("a tool call")
        };
        assert_eq!(
            arguments, "{}",
            "the reply leaves the tool arguments as they were"
        );
        let other = Request {
            text: "Tell me a story.\n".into(),
            ..request()
        };
        assert_eq!(Answer::build(&other, &faults, false).text(), DEFAULT_ANSWER);
    }
}
