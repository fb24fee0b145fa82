//! A task's place in a trace, derived from its id: the W3C `traceparent` a tool or a
//! worker hears for each attempt of a step.
//!
//! The decision: the ids are a hash of the task id (and the step and attempt), not
//! random numbers kept somewhere. A task moves between nodes, survives restarts and is
//! run by whichever node holds its lease; every one of them derives the same trace id,
//! the same span id for the task and for each attempt, with nothing stored, and the
//! spans built later from the task's events (`holdfast-telemetry`) carry those ids.
//! The one thing stored is the submitter's own `traceparent`, when it sent one
//! ([`TaskTrace`]): the task then joins the submitter's trace, its span a child of the
//! submitter's, on every node that runs it.

/// The header tools and workers read the calling step's span from.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// Where a task sits in a trace: the submitter's trace under its span, or a trace of
/// the task's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskTrace {
    /// The trace: the submitter's, or [`trace_id`] of the task.
    pub trace_id: u128,
    /// The submitter's span (the task span's parent) and its trace flags, if it sent a
    /// valid `traceparent`.
    pub parent: Option<(u64, u8)>,
}

impl TaskTrace {
    /// The trace of task `task_id`, submitted under `traceparent` (as stored with it;
    /// one that does not parse is ignored, as W3C Trace Context asks).
    pub fn of(task_id: &str, traceparent: Option<&str>) -> TaskTrace {
        match traceparent.and_then(parse) {
            Some((trace_id, span, flags)) => TaskTrace {
                trace_id,
                parent: Some((span, flags)),
            },
            None => TaskTrace {
                trace_id: trace_id(task_id),
                parent: None,
            },
        }
    }

    /// Whether the submitter asked for the trace to be recorded; `true` for a trace of
    /// the task's own (the exporter's ratio decides then).
    pub fn sampled(&self) -> bool {
        self.parent.is_none_or(|(_, flags)| flags & 1 == 1)
    }

    /// The `traceparent` for attempt `attempt` of `step`: this trace, the attempt's span.
    pub fn traceparent(&self, task_id: &str, step: &str, attempt: u32) -> String {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            step_span_id(task_id, step, attempt),
            u8::from(self.sampled())
        )
    }
}

/// A W3C `traceparent` of version `00`: its trace id, span id and flags; `None` when it
/// is malformed or names an all-zero id.
pub fn parse(traceparent: &str) -> Option<(u128, u64, u8)> {
    let mut parts = traceparent.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let lower_hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    if parts.next().is_some()
        || version != "00"
        || !lower_hex(trace, 32)
        || !lower_hex(span, 16)
        || !lower_hex(flags, 2)
    {
        return None;
    }
    let trace = u128::from_str_radix(trace, 16).ok()?;
    let span = u64::from_str_radix(span, 16).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    (trace != 0 && span != 0).then_some((trace, span, flags))
}

/// The task's own trace id (when its submitter sent none), never zero.
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
        let own = TaskTrace::of("t-1", None);
        let a = own.traceparent("t-1", "fetch", 1);
        assert_eq!(a, TaskTrace::of("t-1", None).traceparent("t-1", "fetch", 1));
        assert_ne!(a, own.traceparent("t-1", "fetch", 2));
        assert_ne!(trace_id("t-1"), trace_id("t-2"));
        assert_eq!(a.len(), 55);
        assert!(a.starts_with(&format!("00-{:032x}-", trace_id("t-1"))));
        assert!(a.ends_with("-01"));
    }

    #[test]
    fn a_submitters_traceparent_gives_the_trace_and_the_parent() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let joined = TaskTrace::of("t-1", Some(parent));
        assert_eq!(joined.trace_id, 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736);
        assert_eq!(joined.parent, Some((0x00f0_67aa_0ba9_02b7, 1)));
        let step = joined.traceparent("t-1", "fetch", 1);
        assert!(
            step.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{step}"
        );
        assert!(step.ends_with("-01"));
        // Not sampled by the submitter: the steps say so too.
        let quiet = TaskTrace::of("t-1", Some(&parent.replace("-01", "-00")));
        assert!(!quiet.sampled());
        assert!(quiet.traceparent("t-1", "fetch", 1).ends_with("-00"));
    }

    #[test]
    fn a_malformed_traceparent_is_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(
                TaskTrace::of("t-1", Some(bad)),
                TaskTrace::of("t-1", None),
                "{bad}"
            );
        }
    }
}
