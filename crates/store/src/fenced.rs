//! The rows a fencing token guards (tasks, worker jobs, locks), described once for both
//! backends: a guarded write that matches no row is either a stale token or a missing
//! row, and extending a lease is the same statement shape on each of them.

/// A kind of row guarded by a fencing token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fenced {
    /// Its name in errors.
    pub(crate) kind: &'static str,
    /// Its table.
    pub(crate) table: &'static str,
    /// Its key column.
    pub(crate) key: &'static str,
}

/// A task, leased to a node.
pub(crate) const TASK: Fenced = Fenced {
    kind: "task",
    table: "tasks",
    key: "task_id",
};

/// A worker job, leased to a worker.
pub(crate) const JOB: Fenced = Fenced {
    kind: "job",
    table: "jobs",
    key: "job_id",
};

/// A named lock, leased to a holder.
pub(crate) const LOCK: Fenced = Fenced {
    kind: "lock",
    table: "locks",
    key: "name",
};
