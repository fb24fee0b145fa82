//! Input checks that run before any SQL, identically for both backends.
//!
//! Bad input never corrupts state (invariant 6): names, sizes and times are checked in
//! Rust before a transaction opens, so a refused call has written nothing and both
//! backends refuse exactly the same inputs with the same `InvalidInput { field }`.

use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::task::{NewTask, NewWorkflow};
use crate::{Result, StoreError};

/// The longest name (ids, workflow, step, lock, queue, node names), in bytes.
pub const MAX_NAME_LEN: usize = 200;

/// Checks an identifier: 1..=200 bytes of `[A-Za-z0-9_.:/@-]`.
pub(crate) fn name(field: &'static str, value: &str) -> Result<()> {
    if value.is_empty() || value.len() > MAX_NAME_LEN {
        return Err(StoreError::invalid(
            field,
            format!("must be 1..={MAX_NAME_LEN} bytes"),
        ));
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || "_.:/@-".contains(c);
    match value.chars().find(|c| !ok(*c)) {
        Some(c) => Err(StoreError::invalid(
            field,
            format!("{c:?} is not allowed; use letters, digits and _ . : / @ -"),
        )),
        None => Ok(()),
    }
}

/// Checks free text (an idempotency key, a reason): no control characters, bounded.
pub(crate) fn text(field: &'static str, value: &str, max: usize) -> Result<()> {
    if value.len() > max {
        return Err(StoreError::invalid(
            field,
            format!("longer than {max} bytes"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        return Err(StoreError::invalid(field, "contains control characters"));
    }
    Ok(())
}

/// Serialises a JSON document, refusing it beyond `max` bytes.
pub(crate) fn json(field: &'static str, value: &Value, max: usize) -> Result<String> {
    let text = serde_json::to_string(value)
        .map_err(|e| StoreError::invalid(field, format!("not serialisable: {e}")))?;
    if text.len() > max {
        return Err(StoreError::invalid(
            field,
            format!("{} bytes is over the limit of {max}", text.len()),
        ));
    }
    Ok(text)
}

/// Serialises an optional JSON document.
pub(crate) fn opt_json(
    field: &'static str,
    value: Option<&Value>,
    max: usize,
) -> Result<Option<String>> {
    value.map(|v| json(field, v, max)).transpose()
}

/// A time or duration in milliseconds as the databases store it.
pub(crate) fn millis(field: &'static str, ms: u64) -> Result<i64> {
    i64::try_from(ms).map_err(|_| StoreError::invalid(field, "out of range"))
}

/// `now_ms + lease`, as stored.
pub(crate) fn expiry(now_ms: u64, lease: Duration) -> Result<i64> {
    let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
    if lease_ms == 0 {
        return Err(StoreError::invalid("lease", "must be at least 1ms"));
    }
    millis("lease", now_ms.saturating_add(lease_ms))
}

/// A page size or batch limit in 1..=1000.
pub(crate) fn limit(field: &'static str, limit: u32) -> Result<i64> {
    if !(1..=1000).contains(&limit) {
        return Err(StoreError::invalid(field, "must be 1..=1000"));
    }
    Ok(i64::from(limit))
}

/// Reads a stored non-negative integer back.
pub(crate) fn unsigned(what: &'static str, v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::corrupt(what, format!("negative value {v}")))
}

/// Reads a stored JSON document back.
pub(crate) fn parse_json(what: &'static str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::corrupt(what, e.to_string()))
}

/// SHA-256 of a text, lowercase hex.
pub(crate) fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks a workflow registration and serialises its definition.
pub(crate) fn workflow(w: &NewWorkflow, max: usize) -> Result<String> {
    name("workflow.name", &w.name)?;
    if w.version == 0 {
        return Err(StoreError::invalid("workflow.version", "must be ≥ 1"));
    }
    json("workflow.definition", &w.definition, max)
}

/// Checks a submission; returns the serialised input and pending steps.
pub(crate) fn new_task(t: &NewTask, max: usize) -> Result<(String, String)> {
    name("task.task_id", &t.task_id)?;
    name("task.tenant", &t.tenant)?;
    name("task.workflow", &t.workflow)?;
    if let Some(key) = &t.idempotency_key {
        if key.is_empty() {
            return Err(StoreError::invalid(
                "task.idempotency_key",
                "must not be empty",
            ));
        }
        text("task.idempotency_key", key, 255)?;
    }
    for step in &t.pending_steps {
        name("task.pending_steps", step)?;
    }
    millis("task.run_at_ms", t.run_at_ms)?;
    if let Some(parent) = &t.traceparent {
        if parent.is_empty() || !parent.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(StoreError::invalid(
                "task.traceparent",
                "must be printable ASCII, not empty",
            ));
        }
        text("task.traceparent", parent, 255)?;
    }
    let input = json("task.input", &t.input, max)?;
    Ok((input, names_json(&t.pending_steps)))
}

/// A list of names as a JSON array.
pub(crate) fn names_json(names: &[String]) -> String {
    Value::from(names.to_vec()).to_string()
}
