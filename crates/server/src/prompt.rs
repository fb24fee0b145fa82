//! A request's prompt tokens, counted exactly only where the count decides something.
//!
//! The pipeline needs the prompt's size for two things: the context-window pre-check
//! and token rate limits. An exact count (tiktoken) costs CPU per request and, once
//! loaded, some 45 MB of encoder tables: more than the whole gateway otherwise holds.
//! The decision: bound the count from above by the body's size (a token is at least one
//! byte of text, and the JSON around the text outweighs the per-message overhead); when
//! that bound fits the route's smallest context window, no exact count can change the
//! pre-check, so a cheap estimate (a quarter of the body's bytes, which errs high) is
//! used, for rate limits too. Only prompts that may not fit a window are counted
//! exactly (large ones on a blocking thread), so the tables load only if such a prompt
//! ever comes.

use std::sync::Arc;

use holdfast_llm::openai::ChatRequest;
use holdfast_llm::tokens::count_prompt_tokens;

/// Bodies above this are tokenised on a blocking thread.
const BLOCKING_TOKENIZE_BYTES: usize = 256 * 1024;

/// Slack for what the body's size does not bound (images cost a fixed 85 tokens each).
const BOUND_SLACK: u64 = 1024;

/// An upper bound on the prompt tokens of a body of `body_len` bytes.
fn upper_bound(body_len: usize) -> u64 {
    (body_len as u64)
        .saturating_mul(2)
        .saturating_add(BOUND_SLACK)
}

/// The prompt's tokens: exact when the bound does not fit `smallest_window` (the
/// route's smallest context window), else an estimate.
pub(crate) async fn tokens(
    request: &Arc<ChatRequest>,
    body_len: usize,
    smallest_window: u64,
) -> u64 {
    if upper_bound(body_len) <= smallest_window {
        return (body_len as u64).div_ceil(4);
    }
    if body_len < BLOCKING_TOKENIZE_BYTES {
        return count_prompt_tokens(request);
    }
    let request = Arc::clone(request);
    // A join error means the counting thread panicked (the tokeniser catches its own
    // panics): count nothing rather than fail the request.
    tokio::task::spawn_blocking(move || count_prompt_tokens(&request))
        .await
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &str) -> Arc<ChatRequest> {
        let json =
            serde_json::json!({"model": "m", "messages": [{"role": "user", "content": text}]});
        Arc::new(serde_json::from_value(json).unwrap())
    }

    #[tokio::test]
    async fn small_prompts_far_from_every_window_are_estimated() {
        let body = serde_json::to_vec(&*request("hello there")).unwrap().len();
        let estimate = tokens(&request("hello there"), body, 128_000).await;
        assert_eq!(estimate, (body as u64).div_ceil(4));
    }

    #[tokio::test]
    async fn prompts_that_may_not_fit_a_window_are_counted_exactly() {
        let text = "word ".repeat(2_000);
        let body = serde_json::to_vec(&*request(&text)).unwrap().len();
        let exact = count_prompt_tokens(&request(&text));
        assert_eq!(tokens(&request(&text), body, 4_000).await, exact);
        assert!(
            tokens(&request(&text), body, 128_000).await >= exact,
            "the estimate errs high"
        );
    }

    #[test]
    fn the_bound_is_above_any_exact_count() {
        for text in ["a", "hello world", &"ü".repeat(500), &"1 2 3 ".repeat(300)] {
            let request = request(text);
            let body = serde_json::to_vec(&*request).unwrap().len();
            assert!(upper_bound(body) >= count_prompt_tokens(&request), "{text}");
        }
    }
}
