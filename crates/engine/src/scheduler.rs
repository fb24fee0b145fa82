//! The scheduler: claims due tasks from the store and runs each to its next rest point.
//!
//! It holds no queue of its own: due work is whatever the store says is due (new
//! tasks, retries and timers whose time came, woken waits, expired leases of dead
//! nodes), claimed in batches with a lease. A busy node polls every `poll_interval`;
//! an idle one backs off to [`IDLE_POLL`], and anything that makes work on this node (a
//! submission, a worker's result, a person's answer) wakes it at once.

use tokio::task::JoinSet;

use crate::engine::{Engine, IDLE_POLL};
use crate::run;

impl Engine {
    /// Runs the scheduler until `shutdown` completes; tasks in flight then finish their
    /// current step (their leases would otherwise hold them for `lease`).
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        match self.recover().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                tasks = n,
                "took back the tasks this node held before it stopped"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not take back this node's tasks; they resume when their leases expire")
            }
        }
        let inner = self.inner.clone();
        let mut running = JoinSet::new();
        let mut idle: u32 = 0;
        tokio::pin!(shutdown);
        loop {
            while let Some(joined) = running.try_join_next() {
                if let Err(e) = joined {
                    tracing::error!(error = %e, "a task runner panicked");
                }
            }
            let free = inner
                .settings
                .max_concurrent_tasks
                .saturating_sub(running.len());
            let mut claimed = 0;
            if free > 0 {
                let now = inner.clock.unix_millis();
                let limit = free.min(64) as u32;
                match inner
                    .store
                    .claim_tasks(&inner.node_id, inner.settings.lease, limit, now)
                    .await
                {
                    Ok(claims) => {
                        claimed = claims.len();
                        for claim in claims {
                            let inner = inner.clone();
                            running.spawn(async move {
                                let task_id = claim.task.task_id.clone();
                                if let Err(e) = run::run(&inner, claim).await {
                                    log_stop(&task_id, &e);
                                }
                            });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "claiming tasks failed; retrying"),
                }
            }
            if claimed > 0 && claimed as u32 >= free.min(64) as u32 {
                // A full batch: there may be more due now.
                continue;
            }
            // An idle node polls less and less often, down to IDLE_POLL: a claim that
            // finds nothing still costs the store a transaction. Work found, a local
            // submission or answer, or a finished run brings it back to full speed.
            idle = if claimed > 0 { 0 } else { (idle + 1).min(16) };
            let every = inner
                .settings
                .poll_interval
                .saturating_mul(1 << idle.min(4))
                .min(IDLE_POLL.max(inner.settings.poll_interval));
            let wake = inner.clock.now() + every;
            tokio::select! {
                () = &mut shutdown => break,
                () = inner.wake.notified() => idle = 0,
                () = inner.clock.sleep_until(wake) => {}
                Some(_) = running.join_next(), if !running.is_empty() => idle = 0,
            }
        }
        while running.join_next().await.is_some() {}
    }
}

fn log_stop(task_id: &str, e: &run::Stop) {
    match e {
        run::Stop::Store(holdfast_store::StoreError::StaleLease { .. }) => {
            tracing::info!(task_id, "lease lost; another node runs the task now");
        }
        other => {
            tracing::warn!(task_id, error = %other, "task run stopped; it resumes when its lease expires")
        }
    }
}
