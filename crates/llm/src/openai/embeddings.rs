//! OpenAI embeddings wire types (`POST /v1/embeddings`): what the gateway accepts,
//! sends to an OpenAI-speaking target and answers.
//!
//! The decision that shapes it: only text inputs are modelled (a string or a list of
//! strings), since holdfast embeds text (a few-shot library's inputs, a caller's
//! texts) and counts, prices and checks what it can read; token-array inputs are
//! refused with a message naming the field rather than passed through unread. The
//! answer is checked whole ([`EmbeddingsResponse::check`]) before anyone uses it: one
//! vector per input, in order, each of the same length and finite.

use serde::{Deserialize, Serialize};

/// The most inputs one request may carry (OpenAI's own limit).
pub const MAX_INPUTS: usize = 2048;

/// A `POST /v1/embeddings` request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingsRequest {
    /// The model (or holdfast route alias) asked for.
    pub model: String,
    /// The text or texts to embed.
    pub input: EmbeddingInput,
    /// `"float"` (the only format holdfast reads). Default `"float"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<String>,
    /// The vectors' length, for models that can shorten them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    /// The end user, passed on to the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// One text or several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    /// One text.
    One(String),
    /// Several texts, answered in order.
    Many(Vec<String>),
}

impl EmbeddingInput {
    /// The texts, in order.
    pub fn texts(&self) -> Vec<&str> {
        match self {
            EmbeddingInput::One(text) => vec![text.as_str()],
            EmbeddingInput::Many(texts) => texts.iter().map(String::as_str).collect(),
        }
    }
}

impl EmbeddingsRequest {
    /// A request for the vectors of `texts` from `model`.
    pub fn new(model: impl Into<String>, texts: Vec<String>) -> Self {
        EmbeddingsRequest {
            model: model.into(),
            input: EmbeddingInput::Many(texts),
            encoding_format: None,
            dimensions: None,
            user: None,
        }
    }

    /// Reads a client's body: the field at fault is named in the error.
    pub fn from_json(body: &[u8]) -> Result<Self, String> {
        let request: EmbeddingsRequest = serde_json::from_slice(body).map_err(|e| {
            let e = e.to_string();
            if e.contains("did not match any variant") {
                "input: must be a string or an array of strings".to_owned()
            } else {
                e
            }
        })?;
        request.validate()?;
        Ok(request)
    }

    /// Checks what holdfast relies on: a model, 1..=2048 non-empty texts, floats.
    pub fn validate(&self) -> Result<(), String> {
        if self.model.is_empty() {
            return Err("model: must not be empty".to_owned());
        }
        let texts = self.input.texts();
        if texts.is_empty() || texts.len() > MAX_INPUTS {
            return Err(format!("input: must hold 1..={MAX_INPUTS} texts"));
        }
        if let Some(i) = texts.iter().position(|t| t.is_empty()) {
            return Err(format!("input[{i}]: must not be empty"));
        }
        match self.encoding_format.as_deref() {
            None | Some("float") => {}
            Some(other) => {
                return Err(format!(
                    "encoding_format: {other:?} is not supported; use \"float\""
                ));
            }
        }
        if self.dimensions == Some(0) {
            return Err("dimensions: must be at least 1".to_owned());
        }
        Ok(())
    }
}

/// A `POST /v1/embeddings` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsResponse {
    /// Always `"list"`.
    #[serde(default = "list")]
    pub object: String,
    /// One vector per input, with the input's index.
    pub data: Vec<Embedding>,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// Tokens read.
    #[serde(default)]
    pub usage: EmbeddingUsage,
}

fn list() -> String {
    "list".to_owned()
}

/// One input's vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    /// Always `"embedding"`.
    #[serde(default = "embedding")]
    pub object: String,
    /// The input it belongs to.
    pub index: usize,
    /// The vector.
    pub embedding: Vec<f32>,
}

fn embedding() -> String {
    "embedding".to_owned()
}

/// Tokens an embeddings call read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingUsage {
    /// Tokens of the inputs.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// The same (embeddings generate nothing).
    #[serde(default)]
    pub total_tokens: u64,
}

impl EmbeddingsResponse {
    /// Checks that it answers `inputs` texts: one non-empty, finite vector per input,
    /// all of one length; sorts them by index.
    pub fn check(&mut self, inputs: usize) -> Result<(), String> {
        self.data.sort_by_key(|e| e.index);
        if self.data.len() != inputs || self.data.iter().enumerate().any(|(i, e)| e.index != i) {
            return Err(format!(
                "the answer does not hold one vector per input ({} for {inputs})",
                self.data.len()
            ));
        }
        let dims = self.data.first().map_or(0, |e| e.embedding.len());
        if dims == 0 {
            return Err("the answer's vectors are empty".to_owned());
        }
        for e in &self.data {
            if e.embedding.len() != dims || !e.embedding.iter().all(|x| x.is_finite()) {
                return Err(format!(
                    "vector {} is not {dims} finite numbers like the first",
                    e.index
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_or_a_list_is_read_and_anything_else_names_the_field() {
        let one = EmbeddingsRequest::from_json(br#"{"model":"m","input":"hello"}"#).unwrap();
        assert_eq!(one.input.texts(), ["hello"]);
        let many = EmbeddingsRequest::from_json(br#"{"model":"m","input":["a","b"]}"#).unwrap();
        assert_eq!(many.input.texts(), ["a", "b"]);
        let tokens = EmbeddingsRequest::from_json(br#"{"model":"m","input":[[1,2]]}"#);
        assert!(tokens.unwrap_err().starts_with("input:"));
        let empty = EmbeddingsRequest::from_json(br#"{"model":"m","input":["a",""]}"#);
        assert_eq!(empty.unwrap_err(), "input[1]: must not be empty");
        let base64 = EmbeddingsRequest::from_json(
            br#"{"model":"m","input":"a","encoding_format":"base64"}"#,
        );
        assert!(base64.unwrap_err().starts_with("encoding_format:"));
    }

    #[test]
    fn an_answer_is_checked_whole_and_put_in_input_order() {
        let vector = |index, embedding: Vec<f32>| Embedding {
            object: "embedding".into(),
            index,
            embedding,
        };
        let mut answer = EmbeddingsResponse {
            object: "list".into(),
            data: vec![vector(1, vec![0.0, 1.0]), vector(0, vec![1.0, 0.0])],
            model: "m".into(),
            usage: EmbeddingUsage::default(),
        };
        answer.check(2).unwrap();
        assert_eq!(answer.data[0].embedding, [1.0, 0.0]);
        assert!(answer.clone().check(3).is_err());
        answer.data[1].embedding = vec![f32::NAN, 0.0];
        assert!(answer.check(2).is_err());
    }
}
