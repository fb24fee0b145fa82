//! Fuzz target: the `POST /v1/messages` body reader (Anthropic's format, translated to
//! the canonical request at the edge), and what the gateway does next with a body it
//! accepted (write it for an OpenAI target, translate it back for an Anthropic one).
//!
//! The decision: the same properties as the chat target, since both readers end in the
//! same canonical request: a refusal is a 4xx with a code, and the canonical request
//! an Anthropic body became survives being written out and read again.

// A broken property is a panic: that is what a fuzz target reports.
#![allow(clippy::expect_used)]

use holdfast_server::{read_chat_request, read_messages_request};

use super::chat::{refusal, shape};

/// Runs one body; returns its outcome.
pub(crate) fn run(body: &[u8]) -> String {
    match read_messages_request(body) {
        Err(err) => refusal(&err),
        Ok(request) => {
            let written = serde_json::to_vec(&request).expect("a canonical request serialises");
            let again = read_chat_request(&written).unwrap_or_else(|e| {
                panic!(
                    "an accepted Anthropic body became a canonical request the gateway refuses: {e}"
                )
            });
            assert_eq!(
                again, request,
                "the canonical request changed when written out and read again"
            );
            match holdfast_llm::translate::to_anthropic_request(&request) {
                Ok(back) => {
                    serde_json::to_vec(&back).expect("a translated request serialises");
                    format!("ok {}", shape(&written))
                }
                Err(e) => format!("ok, not translatable back: {e}"),
            }
        }
    }
}
