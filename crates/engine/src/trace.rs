//! A task's place in a trace, derived from its id: the W3C `traceparent` a tool or a
//! worker hears for each attempt of a step.
//!
//! The decision: the ids are a hash of the task id (and the step and attempt), not
//! random numbers kept somewhere. A task moves between nodes, survives restarts and is
//! run by whichever node holds its lease; every one of them derives the same trace id,
//! the same span id for the task and for each attempt, with nothing stored, and the
//! spans built later from the task's events (`holdfast-telemetry`) carry those ids.

/// The header tools and workers read the calling step's span from.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// The task's trace id, never zero.
pub fn trace_id(task_id: &str) -> u128 {
    let high = u128::from(fnv1a(&["trace", task_id]));
    let low = u128::from(fnv1a(&["trace/low", task_id]));
    ((high << 64) | low).max(1)
}

/// The span id of the task itself.
pub fn task_span_id(task_id: &str) -> u64 {
    fnv1a(&["task", task_id]).max(1)
}

/// The span id of attempt `attempt` of `step`.
pub fn step_span_id(task_id: &str, step: &str, attempt: u32) -> u64 {
    fnv1a(&["step", task_id, step, &attempt.to_string()]).max(1)
}

/// The `traceparent` for attempt `attempt` of `step`: the task's trace, the attempt's
/// span, sampled.
pub fn traceparent(task_id: &str, step: &str, attempt: u32) -> String {
    format!(
        "00-{:032x}-{:016x}-01",
        trace_id(task_id),
        step_span_id(task_id, step, attempt)
    )
}

/// FNV-1a over the parts, each followed by a separator no id holds.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0u8]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_derives_the_same_ids_and_attempts_differ() {
        let a = traceparent("t-1", "fetch", 1);
        assert_eq!(a, traceparent("t-1", "fetch", 1));
        assert_ne!(a, traceparent("t-1", "fetch", 2));
        assert_ne!(trace_id("t-1"), trace_id("t-2"));
        assert_eq!(a.len(), 55);
        assert!(a.starts_with(&format!("00-{:032x}-", trace_id("t-1"))));
    }
}
