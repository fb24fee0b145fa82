//! Large values in object storage: step outputs, task inputs and outputs, worker job
//! payloads and results above a threshold are written as objects, and their rows keep
//! a reference (the SHA-256 and the size) in their place.
//!
//! The decision that shapes it: like the store guard, [`ArtifactStore`] is a [`Store`]
//! wrapping the store, so the engine, the API and the outbox's replay pass through it
//! without knowing it is there, every caller still sees values whole, and neither
//! backend's schema changes (the reference is JSON in the value's own column, see
//! [`reference`]). An object is written, and fsynced on the file backend, before the row
//! that refers to it is committed, so a committed row never names an object not yet
//! written; an object whose row never committed (a crash in between, a stale lease, a
//! duplicate submission) is an orphan, collected by [`ArtifactStore::sweep`] with those
//! of deleted tasks. Reads check the digest: a missing or changed object is
//! [`StoreError::ArtifactUnreadable`], naming the task and the field.

mod delegate;
mod objects;
mod reference;
mod sweep;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use holdfast_store::{ArtifactFault, Result, Store, StoreError, Task};
use serde_json::Value;

pub use objects::UrlError;
use objects::{Fetch, Objects, digest};
use reference::{Reference, Stored};
pub use sweep::Swept;

/// Where large values go and from what size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactSettings {
    /// `file:///path` or `s3://bucket/prefix`.
    pub url: String,
    /// Values whose JSON is larger than this many bytes become objects.
    pub threshold: usize,
    /// The largest value accepted, in bytes of JSON; larger ones are refused.
    pub max_output: usize,
    /// How often the sweep looks for orphaned objects.
    pub sweep_interval: Duration,
    /// How old an orphan must be before the sweep deletes it: an object is written
    /// before its row commits, so a younger one may be a commit in flight.
    pub sweep_grace: Duration,
}

/// A store that keeps large values as objects; see the module documentation.
pub struct ArtifactStore {
    inner: Arc<dyn Store>,
    objects: Objects,
    settings: ArtifactSettings,
}

impl std::fmt::Debug for ArtifactStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactStore")
            .field("inner", &self.inner)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The values one write has put already, so that a value given twice (a step's output
/// that is also the task's) is written once.
#[derive(Default)]
pub(crate) struct Written(HashSet<String>);

impl ArtifactStore {
    /// Wraps `inner`, opening the object store `settings.url` names.
    pub fn open(inner: Arc<dyn Store>, settings: ArtifactSettings) -> Result<Self, UrlError> {
        let objects = Objects::open(&settings.url)?;
        Ok(ArtifactStore {
            inner,
            objects,
            settings,
        })
    }

    /// The form of `value` a row of `task_id` holds: the value itself (escaped if it
    /// looks like a reference), or a reference to the object now holding it. A value
    /// past `max_output` is refused as invalid `field`.
    pub(crate) async fn offload(
        &self,
        task_id: &str,
        field: &'static str,
        value: Value,
        written: &mut Written,
    ) -> Result<Value> {
        let limit = self.settings.max_output.max(self.settings.threshold);
        let size = json_size(&value, limit + 1);
        if size > self.settings.max_output {
            return Err(StoreError::InvalidInput {
                field,
                reason: format!(
                    "is larger than artifacts.max_output ({} bytes of JSON)",
                    self.settings.max_output
                ),
            });
        }
        if size <= self.settings.threshold {
            return Ok(reference::escape(value));
        }
        let bytes = serde_json::to_vec(&value).map_err(|e| StoreError::InvalidInput {
            field,
            reason: e.to_string(),
        })?;
        let sha256 = digest(&bytes);
        let reference = Reference {
            sha256,
            bytes: bytes.len() as u64,
        };
        if written.0.insert(reference.sha256.clone()) {
            self.objects
                .put(task_id, &reference.sha256, Bytes::from(bytes))
                .await?;
        }
        Ok(reference.to_value())
    }

    /// The value a row of `task_id` holds at `field`, read back whole.
    pub(crate) async fn resolve(&self, task_id: &str, field: &str, stored: Value) -> Result<Value> {
        let reference = match reference::read(stored) {
            Stored::Inline(value) => return Ok(value),
            Stored::Object(reference) => reference,
        };
        let unreadable = |fault| StoreError::ArtifactUnreadable {
            task_id: task_id.to_owned(),
            field: field.to_owned(),
            sha256: reference.sha256.clone(),
            fault,
        };
        let bytes = match self.objects.get(task_id, &reference.sha256).await {
            Ok(bytes) => bytes,
            Err(Fetch::Fault(fault)) => return Err(unreadable(fault)),
            Err(Fetch::Unavailable(e)) => return Err(e),
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| unreadable(ArtifactFault::NotJson(e.to_string())))
    }

    /// `task` with its input and output read back whole.
    pub(crate) async fn resolve_task(&self, mut task: Task) -> Result<Task> {
        let input = std::mem::take(&mut task.input);
        task.input = self.resolve(&task.task_id, "input", input).await?;
        if let Some(output) = task.output.take() {
            task.output = Some(self.resolve(&task.task_id, "output", output).await?);
        }
        Ok(task)
    }

    /// Whether `value` would become an object: more than `threshold` bytes of JSON.
    pub(crate) fn is_large(&self, value: &Value) -> bool {
        json_size(value, self.settings.threshold + 1) > self.settings.threshold
    }
}

/// The length of `value`'s JSON, counted up to `stop` (past it, any number ≥ `stop`),
/// so a large value is never serialised just to learn that it is large.
fn json_size(value: &Value, stop: usize) -> usize {
    struct Count {
        n: usize,
        stop: usize,
    }
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.n += buf.len();
            if self.n >= self.stop {
                return Err(std::io::Error::other("past the bound"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count { n: 0, stop };
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.n,
        Err(_) => count.n.max(stop),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sizes_are_exact_below_the_bound_and_at_least_it_above() {
        let value = json!({"a": [1, 2, 3]});
        let exact = serde_json::to_vec(&value).unwrap().len();
        assert_eq!(json_size(&value, 1000), exact);
        let big = json!("x".repeat(10_000));
        assert!(json_size(&big, 100) >= 100);
    }
}
