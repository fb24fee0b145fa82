//! `[artifacts]`: where large step outputs and task inputs are kept, as written.

use serde::Deserialize;

use crate::units::{ByteSize, HumanDuration};

/// `[artifacts]`: large values (step outputs, task inputs and outputs, worker job
/// payloads and results) kept as objects, the database row holding only a reference
/// (the value's SHA-256 and size). The API returns values whole; a read checks the
/// digest, and an object found missing or changed fails the read with
/// `artifact_unreadable`, naming the task and the field. Without `url`, every value
/// lives in its row, at most 1 MiB.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Artifacts {
    /// Where objects go: `file:///ABSOLUTE/PATH` (a directory, created if missing;
    /// each object is fsynced before its row commits) or `s3://BUCKET/PREFIX` (an
    /// existing bucket on S3 or any S3-compatible server). S3 settings come from the
    /// environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
    /// `AWS_ENDPOINT_URL` (another server than AWS) and `AWS_ALLOW_HTTP=true` (a server
    /// without TLS). Objects are keyed `PREFIX/tasks/TASK_ID/SHA256`. Default: none
    /// (no artifacts).
    pub url: Option<String>,
    /// Values whose JSON is larger than this become objects; `"1KiB"` to `"1MiB"`.
    /// Default `"256KiB"`.
    pub threshold: ByteSize,
    /// The largest value accepted, in bytes of JSON: a step output, a task input (which
    /// `engine.max_input_bytes` may then raise to this), a worker's result; from
    /// `threshold` to `"256MiB"`. A value is held whole in memory while it passes
    /// through. Default `"64MiB"`.
    pub max_output: ByteSize,
    /// How often the sweep deletes orphaned objects (those of tasks no longer in the
    /// store); `"1s"` or more. Default `"1h"`.
    pub sweep_interval: HumanDuration,
    /// How old an orphan must be before the sweep deletes it: objects are written
    /// before the row naming them commits, so keep it well above `engine.lease` and
    /// `store.timeout`; `"1s"` or more. Default `"1h"`.
    pub sweep_grace: HumanDuration,
}

impl Default for Artifacts {
    fn default() -> Self {
        Artifacts {
            url: None,
            threshold: ByteSize(256 << 10),
            max_output: ByteSize(64 << 20),
            sweep_interval: HumanDuration::secs(3600),
            sweep_grace: HumanDuration::secs(3600),
        }
    }
}
