//! SSE-aware mutations: streams as providers send them when they misbehave (events
//! without a blank line, fields without a colon, mixed line endings, a BOM in the
//! middle, a `data:` payload that is almost the right JSON, a stream that stops
//! inside an event).
//!
//! The decision: mutate at the level of lines and of the JSON inside `data:` lines,
//! the two places a provider's bug shows up; byte-level mutations (applied too) cover
//! the rest.

use super::json;
use super::rng::Rng;

/// Mutates `data` as an event stream; false when it has no lines to work on.
pub(crate) fn mutate(data: &mut Vec<u8>, rng: &mut Rng, other: &[u8]) -> bool {
    let mut lines: Vec<Vec<u8>> = data
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec())
        .collect();
    if lines.len() < 2 {
        return false;
    }
    let i = rng.below(lines.len());
    match rng.below(7) {
        0 => {
            // The JSON of a `data:` line, mutated as JSON.
            let Some(payload) = lines[i].strip_prefix(b"data: ").map(<[u8]>::to_vec) else {
                return false;
            };
            let mut payload = payload;
            if !json::mutate(&mut payload, rng, other) {
                return false;
            }
            let mut line = b"data: ".to_vec();
            line.extend(payload.iter().filter(|b| **b != b'\n' && **b != b'\r'));
            lines[i] = line;
        }
        1 => {
            lines.remove(i);
        }
        2 => {
            let copy = lines[i].clone();
            let times = if rng.one_in(8) { rng.len(500) } else { 1 };
            for _ in 0..times {
                lines.insert(i, copy.clone());
            }
        }
        3 => {
            let field = rng.pick(FIELDS).as_bytes().to_vec();
            lines.insert(i, field);
        }
        4 => {
            let j = rng.below(lines.len());
            lines.swap(i, j);
        }
        5 => {
            // Split one data line in two: the payload now spans `data:` lines.
            let line = lines[i].clone();
            if line.len() > 8 {
                let cut = 6 + rng.below(line.len() - 6);
                let mut second = b"data:".to_vec();
                second.extend_from_slice(&line[cut..]);
                lines[i] = line[..cut].to_vec();
                lines.insert(i + 1, second);
            }
        }
        _ => {
            lines.truncate(i.max(1));
        }
    }
    let ending: &[u8] = match rng.below(8) {
        0 => b"\r\n",
        1 => b"\r",
        _ => b"\n",
    };
    *data = lines.join(ending);
    true
}

/// Lines a stream may carry.
const FIELDS: &[&str] = &[
    "",
    ":",
    ": keep-alive",
    "data",
    "data:",
    "data: [DONE]",
    "data: {}",
    "data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}",
    "data: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"x\"}}",
    "data: {\"type\":\"message_stop\"}",
    "data: {\"type\":\"content_block_delta\",\"index\":99,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}",
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\"}}",
    "data: {\"type\":\"content_block_start\",\"index\":4294967295,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{}}}",
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":18446744073709551615}}",
    "data: {\"choices\":[{\"index\":4294967295,\"delta\":{\"content\":\"x\"}}]}",
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":99999,\"function\":{\"arguments\":\"{\"}}]}}]}",
    "event: message_stop",
    "event: error",
    "event:",
    "id: 1",
    "id: \u{0}",
    "retry: 10",
    "retry: 99999999999999999999999",
    "retry: -1",
    "\u{FEFF}data: x",
];
