//! The embeddings endpoint (`POST /v1/embeddings`, OpenAI format): deterministic
//! vectors in which texts that share words are near.
//!
//! The decision that shapes it: a vector is the hashed bag of a text's lowercase words
//! (each word adds ±1 to one of [`DIMENSIONS`] coordinates, both chosen by the word's
//! FNV-1a hash), normalised to length 1. So the same text always gets the same vector,
//! on every run and machine, and the cosine of two texts grows with the words they
//! share: what a test of similarity retrieval needs from a model, without one. The
//! key check, the `auth` fault and outage windows apply as they do to chat, so a
//! client's handling of a failing embeddings provider can be tested.

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::chat::presented_key;
use crate::format::{Meta, Reply};
use crate::plan::{self, Rejection};
use crate::provider::{MockProvider, RequestRecord};

/// The length of every vector.
pub const DIMENSIONS: usize = 256;

/// The vector of `text`: its words hashed into [`DIMENSIONS`] signed counts, unit length
/// (all zeros for a text without words).
pub fn embed(text: &str) -> Vec<f32> {
    let mut vector = vec![0.0f32; DIMENSIONS];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let hash = word
            .to_lowercase()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        let at = (hash % DIMENSIONS as u64) as usize;
        vector[at] += if hash >> 63 == 0 { 1.0 } else { -1.0 };
    }
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    vector
}

/// Handles one embeddings request.
pub(crate) async fn embeddings(
    State(provider): State<MockProvider>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let faults = provider.faults_snapshot();
    let mut turn = provider.begin();
    let request: Result<(String, Vec<String>), String> = read(&body);
    let rejection = plan::refuse_key(&faults, presented_key(&headers).as_deref())
        .or_else(|| {
            plan::unavailable(&faults, turn.elapsed).map(|(status, _)| Rejection::Status {
                status,
                retry_after: None,
            })
        })
        .or_else(|| {
            request
                .as_ref()
                .err()
                .map(|e| Rejection::BadRequest(e.clone()))
        });
    let model = request.as_ref().map_or("mock", |r| r.0.as_str()).to_owned();
    provider.record(RequestRecord {
        seq: turn.seq,
        at_ms: u64::try_from(turn.elapsed.as_millis()).unwrap_or(u64::MAX),
        path: uri.path().to_owned(),
        model: Some(model.clone()),
        stream: false,
        idempotency_key: headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        traceparent: None,
        outcome: if rejection.is_some() { "error" } else { "ok" }.to_owned(),
        fault: if rejection.is_some() {
            "rejected"
        } else {
            "none"
        }
        .to_owned(),
        prefill_continued: false,
    });
    let texts = match (rejection, request) {
        (None, Ok((_, texts))) => texts,
        (rejection, _) => {
            let rejection = rejection.unwrap_or(Rejection::BadRequest("unreadable".into()));
            let meta = Meta {
                id_bits: 0,
                created: turn.created,
                model,
                prompt_tokens: 0,
                include_usage: false,
                stream: false,
            };
            return provider.format().error(&rejection, &meta).into_response();
        }
    };
    provider.pause(faults.latency.sample(&mut turn.rng)).await;
    let tokens: usize = texts.iter().map(|t| t.len().div_ceil(4)).sum();
    let data: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(index, text)| json!({"object": "embedding", "index": index, "embedding": embed(text)}))
        .collect();
    Reply::json(
        200,
        &json!({
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }),
    )
    .into_response()
}

/// The model and the texts of a body: `input` a string or an array of strings.
fn read(body: &[u8]) -> Result<(String, Vec<String>), String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let model = value["model"]
        .as_str()
        .ok_or("model: a string is required")?
        .to_owned();
    let texts = match &value["input"] {
        Value::String(text) => vec![text.clone()],
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or("input: every item must be a string")?,
        _ => return Err("input: a string or an array of strings is required".to_owned()),
    };
    Ok((model, texts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn the_same_text_gets_the_same_vector_and_shared_words_bring_texts_near() {
        let a = embed("My invoice was charged twice");
        assert_eq!(a, embed("my INVOICE was charged twice!"));
        assert!((cosine(&a, &a) - 1.0).abs() < 1e-5);
        let near = cosine(&a, &embed("charged twice on the invoice"));
        let far = cosine(&a, &embed("how do I reset a password"));
        assert!(near > 0.5 && near > far + 0.3, "near {near}, far {far}");
        assert_eq!(embed("").len(), DIMENSIONS);
    }
}
