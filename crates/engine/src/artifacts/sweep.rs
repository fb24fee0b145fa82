//! Collecting orphaned objects: those of tasks no longer in the store.
//!
//! The decision: an object's key names its task, so the sweep needs one listing of the
//! objects and one read per task found there, and no index of references in the
//! database (which every commit would have to keep). An object younger than
//! `sweep_grace` is kept whatever the store says, because objects are written before
//! the row naming them commits: a submission in flight has an object and no task yet.
//! An object of a task that still exists is kept even if no row names it any more (a
//! step output written by an attempt whose commit was refused); it goes with its task.

use std::collections::HashMap;

use holdfast_policy::Clock;
use holdfast_store::Result;

use super::ArtifactStore;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Objects found.
    pub objects: u64,
    /// Objects deleted: their task is gone and they are older than the grace.
    pub deleted: u64,
}

impl ArtifactStore {
    /// Deletes the objects older than `sweep_grace` whose task the store no longer
    /// holds, as of `now_ms`.
    pub async fn sweep(&self, now_ms: u64) -> Result<Swept> {
        let grace = u64::try_from(self.settings.sweep_grace.as_millis()).unwrap_or(u64::MAX);
        let listed = self.objects.list().await?;
        let mut swept = Swept {
            objects: listed.len() as u64,
            deleted: 0,
        };
        let mut exists: HashMap<String, bool> = HashMap::new();
        for object in listed {
            if now_ms.saturating_sub(object.modified_ms) < grace {
                continue;
            }
            let alive = match exists.get(&object.task_id) {
                Some(alive) => *alive,
                None => {
                    let alive = self.inner.get_task(&object.task_id).await?.is_some();
                    exists.insert(object.task_id.clone(), alive);
                    alive
                }
            };
            if !alive {
                self.objects.delete(&object.location).await?;
                swept.deleted += 1;
            }
        }
        Ok(swept)
    }

    /// Sweeps every `sweep_interval` until `shutdown` completes; a failed sweep is
    /// logged and tried again at the next interval.
    pub async fn sweep_every_interval(
        &self,
        clock: &dyn Clock,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            let next = clock.now() + self.settings.sweep_interval;
            tokio::select! {
                () = &mut shutdown => return,
                () = clock.sleep_until(next) => {}
            }
            match self.sweep(clock.unix_millis()).await {
                Ok(swept) if swept.deleted > 0 => tracing::info!(
                    objects = swept.objects,
                    deleted = swept.deleted,
                    "artifacts: orphaned objects deleted"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "artifacts: the sweep failed"),
            }
        }
    }
}
