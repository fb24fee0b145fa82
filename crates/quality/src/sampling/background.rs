//! The scorer's own thread, at the lowest CPU priority the system gives.
//!
//! Why: the scorer's work (grading, the judge's calls, the store's writes) is as large
//! as the traffic it samples, and it shares the machine with the requests it samples.
//! Run on the gateway's runtime it takes turns with them, so a sampled route's answers
//! wait on scoring that could as well happen a few milliseconds later. On a thread of
//! its own, niced to 19 (Linux gives a thread its own nice value), the kernel runs it
//! only on time the gateway's threads leave over, and a busy machine delays scoring,
//! never answers. Its runtime is a current-thread one: its I/O (the judge's calls made
//! on new connections, the store's round trips) is driven by the same niced thread.

use std::sync::Arc;

use holdfast_policy::Clock;
use holdfast_store::Store;

use super::Scorer;
use crate::subject::Subject;

/// The nice value the scorer's thread asks for: the lowest priority.
const NICE: i32 = 19;

impl Scorer {
    /// Runs the scorer on a thread of its own at the lowest CPU priority, until every
    /// sampler is dropped; as [`Scorer::run`] otherwise. An error means the thread or
    /// its runtime could not be started (nothing is scored then).
    pub fn spawn_background(
        self,
        store: Arc<dyn Store>,
        subject: Arc<dyn Subject>,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("holdfast-scorer".into())
            .spawn(move || {
                lower_priority();
                runtime.block_on(self.run(store, subject, clock));
            })
    }
}

/// Lowers the calling thread's CPU priority; scoring goes on at the usual priority
/// where the system refuses.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // On Linux a thread has its own nice value, and PRIO_PROCESS with a thread id
        // sets that thread's alone.
        let thread = rustix::thread::gettid();
        if let Err(e) = rustix::process::setpriority_process(Some(thread), NICE) {
            tracing::debug!(error = %e, "the scorer's thread keeps the usual CPU priority");
        }
    }
}
