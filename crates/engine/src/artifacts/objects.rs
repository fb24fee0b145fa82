//! The object store behind artifacts: a directory (`file:///path`) or an S3 bucket
//! (`s3://bucket/prefix`, any S3-compatible server), through the `object_store` crate.
//!
//! The decision: objects are keyed by their task and their content,
//! `PREFIX/tasks/TASK/SHA256`. The digest makes a write idempotent (a commit retried
//! after a failure writes the same key) and lets a read check the bytes; the task in
//! the key makes a reference readable only within its own task (a reference can never
//! reach another task's, or tenant's, object) and lets the sweep find the objects of a
//! task that is gone without reading any row.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use holdfast_store::{ArtifactFault, StoreError};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use sha2::{Digest, Sha256};

/// Why an artifact store URL was refused.
#[derive(Debug, thiserror::Error)]
#[error("artifacts.url {url:?}: {reason}")]
pub struct UrlError {
    /// The URL as given (it holds no secret: credentials come from the environment).
    pub url: String,
    /// What is wrong with it.
    pub reason: String,
}

/// One artifact store.
#[derive(Debug, Clone)]
pub(crate) struct Objects {
    store: Arc<dyn ObjectStore>,
    /// `PREFIX/tasks`: every key lives under it.
    root: Path,
    /// Where the objects are, for fsync after a write (the file backend).
    dir: Option<std::path::PathBuf>,
}

/// One object found by a listing.
#[derive(Debug)]
pub(crate) struct Listed {
    pub(crate) task_id: String,
    pub(crate) location: Path,
    pub(crate) modified_ms: u64,
}

impl Objects {
    /// Opens the store `url` names. S3's endpoint, region and credentials come from the
    /// environment (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP` for a plain-HTTP test server). A
    /// directory is created if missing.
    pub(crate) fn open(url: &str) -> Result<Objects, UrlError> {
        let bad = |reason: String| UrlError {
            url: url.to_owned(),
            reason,
        };
        let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        match parsed.scheme() {
            "file" => {
                let dir = parsed
                    .to_file_path()
                    .map_err(|()| bad("expected file:///absolute/path".into()))?;
                std::fs::create_dir_all(&dir)
                    .map_err(|e| bad(format!("cannot create {}: {e}", dir.display())))?;
                let local = LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| bad(format!("cannot open {}: {e}", dir.display())))?;
                Ok(Objects {
                    store: Arc::new(local),
                    root: Path::from("tasks"),
                    dir: Some(dir),
                })
            }
            "s3" => {
                let bucket = parsed.host_str().unwrap_or_default();
                if bucket.is_empty() {
                    return Err(bad("expected s3://bucket/prefix".into()));
                }
                let s3 = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()
                    .map_err(|e| bad(e.to_string()))?;
                let prefix = parsed.path().trim_matches('/');
                let root = if prefix.is_empty() {
                    Path::from("tasks")
                } else {
                    Path::from(format!("{prefix}/tasks"))
                };
                Ok(Objects {
                    store: Arc::new(s3),
                    root,
                    dir: None,
                })
            }
            other => Err(bad(format!("the scheme {other:?} is not file:// or s3://"))),
        }
    }

    fn key(&self, task_id: &str, sha256: &str) -> Path {
        self.root
            .child(encode_segment(task_id).as_str())
            .child(sha256)
    }

    /// Writes `bytes` (whose digest is `sha256`) for `task_id`, unless that object is
    /// there already; durable (fsynced, on the file backend) once this returns.
    pub(crate) async fn put(
        &self,
        task_id: &str,
        sha256: &str,
        bytes: Bytes,
    ) -> Result<(), StoreError> {
        let key = self.key(task_id, sha256);
        if self.store.head(&key).await.is_ok() {
            return Ok(());
        }
        self.store
            .put(&key, PutPayload::from_bytes(bytes))
            .await
            .map_err(unavailable)?;
        if let Some(dir) = &self.dir {
            let file = dir.join(key.as_ref());
            tokio::task::spawn_blocking(move || sync(&file))
                .await
                .map_err(|e| StoreError::ArtifactUnavailable(e.to_string()))?
                .map_err(|e| StoreError::ArtifactUnavailable(format!("fsync: {e}")))?;
        }
        Ok(())
    }

    /// The bytes of `task_id`'s object `sha256`, checked against the digest.
    pub(crate) async fn get(&self, task_id: &str, sha256: &str) -> Result<Bytes, Fetch> {
        let key = self.key(task_id, sha256);
        let got = match self.store.get(&key).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Fetch::Fault(ArtifactFault::Missing));
            }
            Err(e) => return Err(Fetch::Unavailable(unavailable(e))),
        };
        let bytes = got
            .bytes()
            .await
            .map_err(|e| Fetch::Unavailable(unavailable(e)))?;
        let found = digest(&bytes);
        if found != sha256 {
            return Err(Fetch::Fault(ArtifactFault::Corrupt { found }));
        }
        Ok(bytes)
    }

    /// Every object, with its task and when it was written.
    pub(crate) async fn list(&self) -> Result<Vec<Listed>, StoreError> {
        let mut listing = self.store.list(Some(&self.root));
        let depth = self.root.parts().count();
        let mut found = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(unavailable)?;
            let Some(segment) = meta.location.parts().nth(depth) else {
                continue;
            };
            let Some(task_id) = decode_segment(segment.as_ref()) else {
                continue;
            };
            found.push(Listed {
                task_id,
                modified_ms: u64::try_from(meta.last_modified.timestamp_millis()).unwrap_or(0),
                location: meta.location,
            });
        }
        Ok(found)
    }

    /// Deletes one listed object (gone already is fine).
    pub(crate) async fn delete(&self, location: &Path) -> Result<(), StoreError> {
        match self.store.delete(location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }
}

/// A read that did not give the bytes.
#[derive(Debug)]
pub(crate) enum Fetch {
    /// The object is missing or not what was written.
    Fault(ArtifactFault),
    /// The artifact store could not answer.
    Unavailable(StoreError),
}

/// The SHA-256 of `bytes`, in lowercase hex.
pub(crate) fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for b in hash {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 15)]));
    }
    hex
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn unavailable(e: object_store::Error) -> StoreError {
    StoreError::ArtifactUnavailable(e.to_string())
}

/// Flushes a file just written and the directory holding its name, so an object
/// survives power loss as the row referring to it does.
fn sync(file: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::open(file)?.sync_all()?;
    if let Some(dir) = file.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// A task id as one key segment: bytes outside `[A-Za-z0-9_.-]` (a task id may hold
/// `/`, `:` or `@`) as `%XX`, reversibly.
fn encode_segment(task_id: &str) -> String {
    let mut out = String::with_capacity(task_id.len());
    for b in task_id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)].to_ascii_uppercase()));
            out.push(char::from(HEX[usize::from(b & 15)].to_ascii_uppercase()));
        }
    }
    out
}

/// The task id an [`encode_segment`] segment holds; `None` for a name holdfast did not
/// write.
fn decode_segment(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_round_trip_through_a_key_segment() {
        for id in ["t-1", "a/b:c@d", "100%", "é"] {
            let segment = encode_segment(id);
            assert!(!segment.contains('/'), "{segment}");
            assert_eq!(decode_segment(&segment).as_deref(), Some(id));
        }
        assert_eq!(decode_segment("%zz"), None);
    }

    #[test]
    fn urls_other_than_file_and_s3_are_refused_with_the_reason() {
        for bad in ["http://x/y", "file://relative", "s3:///prefix", "nonsense"] {
            let err = Objects::open(bad).unwrap_err();
            assert_eq!(err.url, bad);
            assert!(!err.reason.is_empty());
        }
    }

    #[test]
    fn the_digest_is_sha256_in_hex() {
        assert_eq!(
            digest(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
