//! The outbox: task submissions accepted while the store is down, kept in a local file
//! and submitted to the store, in order, once it is back (`[store] outbox = true`).
//!
//! The decision that shapes it: a queued submission is acknowledged (202 `queued`) only
//! after its line is in the file and the file is fsynced, so a kill -9 at any moment
//! loses nothing acknowledged; and replay is a plain submission under the entry's own
//! tenant and idempotency key, so a replay cut short by a crash and run again finds
//! the tasks it already stored instead of storing them twice. While entries wait, new
//! submissions queue behind them, so that the store receives them in the order they
//! were accepted. Only a submission that can be checked without the store is queued:
//! its workflow version must be known to this node (a task of an unknown workflow or
//! with a bad input is refused now, not lost later). The file is bounded
//! (`[store] outbox_max`): a submission that would take it past its bound is refused
//! with [`EngineError::OutboxFull`] rather than queued, so that a long outage ends in
//! clear refusals instead of a full disk.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use holdfast_store::Submitted;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::{Engine, Submission, check_input};
use crate::error::EngineError;
use crate::guard::StoreHealth;

/// How often waiting entries are offered to the store.
const REPLAY_EVERY: Duration = Duration::from_millis(200);

/// What a submission became.
#[derive(Debug, Clone, PartialEq)]
pub enum Accepted {
    /// Stored (new or existing), as [`Engine::submit`] answers.
    Stored(Box<Submitted>),
    /// Written to the outbox; it is submitted under this key once the store is back.
    Queued {
        /// The submission's idempotency key (the client's, or one given to it here).
        idempotency_key: String,
    },
}

/// What the outbox reports to whoever watches it (the server's metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxEvent {
    /// The file now holds `bytes` of waiting submissions, of at most `max_bytes`.
    Size {
        /// What the file holds.
        bytes: u64,
        /// Its bound (`store.outbox_max`).
        max_bytes: u64,
    },
    /// A submission was refused because it would have taken the file past its bound.
    Refused,
}

/// Where the outbox's [`OutboxEvent`]s go.
pub type OutboxEventSink = Arc<dyn Fn(&OutboxEvent) + Send + Sync>;

/// One queued submission, a line of the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    tenant: String,
    workflow: String,
    version: u32,
    input: Value,
    idempotency_key: String,
    queued_at_ms: u64,
    /// The submitter's `traceparent` (absent from lines written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    traceparent: Option<String>,
}

/// The outbox file and what is known of it.
pub(crate) struct Outbox {
    path: PathBuf,
    /// Held while the file is appended to or rewritten.
    file: tokio::sync::Mutex<()>,
    /// Whether the file may hold entries (it does after a push, until a replay empties it).
    pending: AtomicBool,
    /// The file's length in bytes, as this node wrote it.
    bytes: AtomicU64,
    /// The most it may hold (`store.outbox_max`).
    max_bytes: u64,
    events: Option<OutboxEventSink>,
    /// The store's health: while it is down, submissions are queued at once.
    health: Option<Arc<StoreHealth>>,
}

impl Engine {
    /// This engine with an outbox at `path` holding at most `max_bytes` (created if
    /// missing; entries left by an earlier run are replayed by
    /// [`Engine::drain_outbox`]). `health` lets submissions skip the store while it is
    /// known to be down; `events` hears the file's size and every refusal.
    pub fn with_outbox(
        self,
        path: PathBuf,
        max_bytes: u64,
        health: Option<Arc<StoreHealth>>,
        events: Option<OutboxEventSink>,
    ) -> Result<Engine, EngineError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| outbox_error(&path, &e))?;
        }
        let bytes = match std::fs::metadata(&path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(outbox_error(&path, &e)),
        };
        let outbox = Outbox {
            pending: AtomicBool::new(path.exists()),
            path,
            file: tokio::sync::Mutex::new(()),
            health,
            bytes: AtomicU64::new(bytes),
            max_bytes,
            events,
        };
        outbox.report_size();
        if self.inner.outbox.set(outbox).is_err() {
            tracing::warn!("an outbox is already attached to this engine; keeping the first");
        }
        Ok(self)
    }

    /// Submits a task, or, with an outbox, queues it there when the store cannot take
    /// it now (it is unavailable, or queued submissions still wait for it).
    pub async fn submit_or_queue(&self, submission: Submission) -> Result<Accepted, EngineError> {
        let Some(outbox) = self.inner.outbox.get() else {
            return self
                .submit(submission)
                .await
                .map(|s| Accepted::Stored(Box::new(s)));
        };
        let store_down = outbox.health.as_ref().is_some_and(|h| !h.is_up());
        if !store_down && !outbox.pending.load(Ordering::Acquire) {
            match self.submit(submission.clone()).await {
                Err(EngineError::Store(e)) if e.is_unavailable() => {}
                other => return other.map(|s| Accepted::Stored(Box::new(s))),
            }
        }
        self.queue(outbox, submission, store_down).await
    }

    /// Checks `submission` with what this node knows (or, unless the store is known to
    /// be down, reads) and appends it to the outbox.
    async fn queue(
        &self,
        outbox: &Outbox,
        submission: Submission,
        store_down: bool,
    ) -> Result<Accepted, EngineError> {
        let name = &submission.workflow;
        let version = match submission.version.or_else(|| self.inner.known_latest(name)) {
            Some(version) => version,
            None if !store_down => self.inner.latest_version(name).await?,
            None => return Err(unavailable()),
        };
        let workflow = match self.inner.known_workflow(name, version) {
            Some(workflow) => workflow,
            None if !store_down => self.inner.workflow(name, version).await?,
            None => return Err(unavailable()),
        };
        check_input(
            &workflow,
            &submission.input,
            self.inner.settings.max_input_bytes,
        )?;
        let now = self.inner.clock.unix_millis();
        let idempotency_key = match submission.idempotency_key {
            Some(key) => {
                crate::engine::check_key(&key)?;
                key
            }
            None => format!("queued-{}", self.inner.new_task_id(now)),
        };
        let entry = Entry {
            tenant: submission.tenant,
            workflow: workflow.name.clone(),
            version,
            input: submission.input,
            idempotency_key: idempotency_key.clone(),
            queued_at_ms: now,
            traceparent: submission
                .traceparent
                .filter(|t| crate::trace::parse(t).is_some()),
        };
        let mut line = serde_json::to_vec(&entry).map_err(|e| {
            EngineError::Store(holdfast_store::StoreError::Io {
                path: outbox.path.display().to_string(),
                source: std::io::Error::other(e),
            })
        })?;
        line.push(b'\n');
        let _file = outbox.file.lock().await;
        let used = outbox.bytes.load(Ordering::Acquire);
        let added = line.len() as u64;
        if used.saturating_add(added) > outbox.max_bytes {
            outbox.report(&OutboxEvent::Refused);
            tracing::warn!(
                used_bytes = used,
                max_bytes = outbox.max_bytes,
                "the store is unavailable and the outbox is full: the submission is refused"
            );
            return Err(EngineError::OutboxFull {
                used_bytes: used,
                max_bytes: outbox.max_bytes,
            });
        }
        let path = outbox.path.clone();
        tokio::task::spawn_blocking(move || append(&path, &line))
            .await
            .map_err(|e| outbox_error(&outbox.path, &std::io::Error::other(e)))?
            .map_err(|e| outbox_error(&outbox.path, &e))?;
        outbox.bytes.fetch_add(added, Ordering::AcqRel);
        outbox.report_size();
        outbox.pending.store(true, Ordering::Release);
        tracing::info!(
            workflow = %entry.workflow,
            tenant = %entry.tenant,
            "the store is unavailable: the submission is queued in the outbox"
        );
        Ok(Accepted::Queued { idempotency_key })
    }

    /// Offers the outbox's entries to the store every [`REPLAY_EVERY`] until
    /// `shutdown` completes. Without an outbox it returns at once.
    pub async fn drain_outbox(&self, shutdown: impl Future<Output = ()>) {
        let Some(outbox) = self.inner.outbox.get() else {
            return;
        };
        tokio::pin!(shutdown);
        loop {
            let up = outbox.health.as_ref().is_none_or(|h| h.is_up());
            if up && outbox.pending.load(Ordering::Acquire) {
                match self.replay(outbox).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(submissions = n, "queued submissions stored"),
                    Err(e) => {
                        tracing::warn!(error = %e, "the outbox could not be replayed; retrying")
                    }
                }
            }
            let next = self.inner.clock.now() + REPLAY_EVERY;
            tokio::select! {
                () = &mut shutdown => return,
                () = self.inner.clock.sleep_until(next) => {}
            }
        }
    }

    /// Submits the entries in order until the store fails; rewrites the file with what
    /// is left. Returns how many entries left the file.
    async fn replay(&self, outbox: &Outbox) -> Result<usize, EngineError> {
        let _file = outbox.file.lock().await;
        let path = outbox.path.clone();
        let entries = tokio::task::spawn_blocking(move || read(&path))
            .await
            .map_err(|e| outbox_error(&outbox.path, &std::io::Error::other(e)))?
            .map_err(|e| outbox_error(&outbox.path, &e))?;
        let mut done = 0;
        for entry in &entries {
            let submission = Submission {
                tenant: entry.tenant.clone(),
                workflow: entry.workflow.clone(),
                version: Some(entry.version),
                input: entry.input.clone(),
                idempotency_key: Some(entry.idempotency_key.clone()),
                traceparent: entry.traceparent.clone(),
            };
            match self.submit(submission).await {
                Ok(_) => {}
                Err(EngineError::Store(e)) if e.is_unavailable() => break,
                // Accepted with 202 and now refused (its workflow version vanished, or
                // the key names another task): nothing else can be done with it.
                Err(e) => tracing::error!(
                    idempotency_key = %entry.idempotency_key,
                    tenant = %entry.tenant,
                    workflow = %entry.workflow,
                    error = %e,
                    "a queued submission was refused when replayed; it is dropped"
                ),
            }
            done += 1;
        }
        if done == 0 && !entries.is_empty() {
            return Ok(0);
        }
        let rest = entries.get(done..).unwrap_or_default().to_vec();
        let left = rest.len();
        let path = outbox.path.clone();
        let bytes = tokio::task::spawn_blocking(move || rewrite(&path, &rest))
            .await
            .map_err(|e| outbox_error(&outbox.path, &std::io::Error::other(e)))?
            .map_err(|e| outbox_error(&outbox.path, &e))?;
        outbox.bytes.store(bytes, Ordering::Release);
        outbox.report_size();
        outbox.pending.store(left > 0, Ordering::Release);
        Ok(done)
    }
}

impl Outbox {
    fn report(&self, event: &OutboxEvent) {
        if let Some(events) = &self.events {
            events(event);
        }
    }

    fn report_size(&self) {
        self.report(&OutboxEvent::Size {
            bytes: self.bytes.load(Ordering::Acquire),
            max_bytes: self.max_bytes,
        });
    }
}

/// The error of a queued submission that cannot be checked without the store.
fn unavailable() -> EngineError {
    EngineError::Store(holdfast_store::StoreError::Unavailable { waited_ms: 0 })
}

fn outbox_error(path: &Path, e: &std::io::Error) -> EngineError {
    EngineError::Store(holdfast_store::StoreError::Io {
        path: path.display().to_string(),
        source: std::io::Error::new(e.kind(), e.to_string()),
    })
}

/// Appends `line` and makes it durable (the file, and its directory entry when the
/// file is new).
fn append(path: &Path, line: &[u8]) -> std::io::Result<()> {
    let created = !path.exists();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(line)?;
    file.sync_all()?;
    if created {
        sync_dir(path)?;
    }
    Ok(())
}

/// The entries of the file, in order. A last line without its newline was being
/// written when the process died, so it was never acknowledged: it is ignored. A
/// line that does not parse elsewhere is logged and skipped.
fn read(path: &Path) -> std::io::Result<Vec<Entry>> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut entries = Vec::new();
    for (n, line) in std::io::BufReader::new(file).split(b'\n').enumerate() {
        let line = line?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Entry>(&line) {
            Ok(entry) => entries.push(entry),
            Err(e) => tracing::warn!(
                path = %path.display(),
                line = n + 1,
                error = %e,
                "an outbox line does not parse (a write cut short by a crash?); skipped"
            ),
        }
    }
    Ok(entries)
}

/// Replaces the file with `rest` (removes it when empty), durably: a temporary file,
/// fsynced, renamed over it, and the directory fsynced. Returns the file's new length.
fn rewrite(path: &Path, rest: &[Entry]) -> std::io::Result<u64> {
    if rest.is_empty() {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        sync_dir(path)?;
        return Ok(0);
    }
    let temp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temp)?;
    let mut bytes = 0;
    for entry in rest {
        let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        file.write_all(&line)?;
        bytes += line.len() as u64;
    }
    file.sync_all()?;
    std::fs::rename(&temp, path)?;
    sync_dir(path)?;
    Ok(bytes)
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str) -> Entry {
        Entry {
            tenant: "acme".to_owned(),
            workflow: "w".to_owned(),
            version: 1,
            input: serde_json::json!({"n": 1}),
            idempotency_key: key.to_owned(),
            queued_at_ms: 7,
            traceparent: None,
        }
    }

    fn line(key: &str) -> Vec<u8> {
        let mut line = serde_json::to_vec(&entry(key)).unwrap();
        line.push(b'\n');
        line
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("holdfast-outbox-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("outbox.jsonl")
    }

    #[test]
    fn entries_come_back_in_order_and_a_torn_last_line_is_ignored() {
        let path = scratch("torn");
        append(&path, &line("a")).unwrap();
        append(&path, &line("b")).unwrap();
        // A write cut short by a crash: never acknowledged, so never replayed.
        let torn = line("c");
        append(&path, &torn[..torn.len() / 2]).unwrap();
        let keys: Vec<String> = read(&path)
            .unwrap()
            .into_iter()
            .map(|e| e.idempotency_key)
            .collect();
        assert_eq!(keys, ["a", "b"]);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_rewrite_keeps_what_is_left_and_removes_an_empty_file() {
        let path = scratch("rewrite");
        for key in ["a", "b", "c"] {
            append(&path, &line(key)).unwrap();
        }
        let entries = read(&path).unwrap();
        rewrite(&path, &entries[1..]).unwrap();
        let keys: Vec<String> = read(&path)
            .unwrap()
            .into_iter()
            .map(|e| e.idempotency_key)
            .collect();
        assert_eq!(keys, ["b", "c"]);
        rewrite(&path, &[]).unwrap();
        assert!(!path.exists());
        assert!(read(&path).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
