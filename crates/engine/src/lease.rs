//! Keeping a task's lease (and its lock) alive while a node works on it.
//!
//! A lease is how the store knows a node is alive: a node that stops renewing (it died,
//! or paused longer than the lease) loses its tasks to another node, whose claim gets
//! a larger fencing token, so the old node's next write is refused. The keeper renews
//! every third of the lease in the background, so that a long step does not lose its
//! task, and stops at the first refusal: the task is someone else's now.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use holdfast_store::FencingToken;
use tokio::sync::Notify;

use crate::engine::Inner;

/// Renews a task's lease, and its lock, in the background while the task runs.
pub(crate) struct LeaseKeeper {
    stop: Arc<Notify>,
    stopped: Arc<AtomicBool>,
    lock: Arc<Mutex<Option<(String, FencingToken)>>>,
}

impl LeaseKeeper {
    pub(crate) fn start(inner: &Inner, task_id: &str, token: FencingToken) -> Self {
        let stop = Arc::new(Notify::new());
        let stopped = Arc::new(AtomicBool::new(false));
        let lock: Arc<Mutex<Option<(String, FencingToken)>>> = Arc::new(Mutex::new(None));
        let (store, clock, lease) = (
            inner.store.clone(),
            inner.clock.clone(),
            inner.settings.lease,
        );
        let (task_id, stop2, stopped2, lock2) = (
            task_id.to_string(),
            stop.clone(),
            stopped.clone(),
            lock.clone(),
        );
        tokio::spawn(async move {
            let every = lease / 3;
            loop {
                let wake = clock.now() + every;
                tokio::select! {
                    () = stop2.notified() => return,
                    () = clock.sleep_until(wake) => {}
                }
                if stopped2.load(Ordering::Acquire) {
                    return;
                }
                let now = clock.unix_millis();
                if let Err(e) = store.heartbeat_task(&task_id, token, lease, now).await {
                    tracing::debug!(task_id, error = %e, "task lease not renewed");
                    return;
                }
                let held = lock2.lock().ok().and_then(|l| l.clone());
                if let Some((name, lock_token)) = held
                    && let Err(e) = store.renew_lock(&name, lock_token, lease, now).await
                {
                    tracing::debug!(task_id, lock = %name, error = %e, "lock lease not renewed");
                }
            }
        });
        LeaseKeeper {
            stop,
            stopped,
            lock,
        }
    }

    /// Renews this lock too from now on.
    pub(crate) fn hold_lock(&self, name: &str, token: FencingToken) {
        if let Ok(mut l) = self.lock.lock() {
            *l = Some((name.to_string(), token));
        }
    }

    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.stop.notify_one();
    }
}
