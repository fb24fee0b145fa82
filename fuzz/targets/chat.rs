//! Fuzz target: the `POST /v1/chat/completions` body reader, and what the gateway does
//! next with a body it accepted (write it for an OpenAI target, translate it for an
//! Anthropic one).
//!
//! The decision: check properties, not only the absence of panics. A refusal is a 4xx
//! with a stable code and a message; an accepted request written out and read again is
//! accepted again as the same request, so what a target receives is what was checked.

// A broken property is a panic: that is what a fuzz target reports.
#![allow(clippy::expect_used)]

use holdfast_server::{ApiError, Flavor, read_chat_request};

/// Runs one body; returns its outcome (`ok` or the refusal's code and field).
pub(crate) fn run(body: &[u8]) -> String {
    match read_chat_request(body) {
        Err(err) => refusal(&err),
        Ok(request) => {
            let written = serde_json::to_vec(&request).expect("an accepted request serialises");
            let again = read_chat_request(&written)
                .unwrap_or_else(|e| panic!("an accepted request, written out, is refused: {e}"));
            assert_eq!(
                again, request,
                "an accepted request changed when written out and read again"
            );
            match holdfast_llm::translate::to_anthropic_request(&request) {
                Ok(anthropic) => {
                    serde_json::to_vec(&anthropic).expect("a translated request serialises");
                    format!("ok {}", shape(&written))
                }
                Err(e) => format!("ok, not translatable: {e}"),
            }
        }
    }
}

/// The fields of an accepted request and its messages' roles: what makes one accepted
/// input new to the pool.
pub(crate) fn shape(written: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(written).unwrap_or_default();
    let mut keys: Vec<&str> = value
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    let roles: Vec<&str> = value["messages"]
        .as_array()
        .map(|m| m.iter().filter_map(|m| m["role"].as_str()).collect())
        .unwrap_or_default();
    format!("{} {}", keys.join(","), roles.join(","))
}

/// Checks that a refusal is a client error with a code and a message; returns its
/// outcome.
pub(crate) fn refusal(err: &ApiError) -> String {
    let status = err.status().as_u16();
    assert!(
        (400..500).contains(&status),
        "a bad body got {status}: {err}"
    );
    assert!(
        !err.to_string().trim().is_empty(),
        "a refusal without a message"
    );
    for flavor in [Flavor::OpenAi, Flavor::Anthropic] {
        let body = err.body(flavor);
        assert_eq!(body["error"]["code"], err.code(), "{body}");
    }
    let param = err.body(Flavor::OpenAi)["error"]["param"].clone();
    let shown = err.to_string();
    let words: Vec<&str> = shown.split_whitespace().take(6).collect();
    format!("{} {param} {}", err.code(), words.join(" "))
}
