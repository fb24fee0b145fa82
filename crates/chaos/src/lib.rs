//! Operators' experiments against a running holdfast: what DESIGN calls failover drills
//! and chaos experiments.
//!
//! The one decision: everything here drives holdfast over HTTP, as a user's own
//! traffic and an operator's commands would, never from inside the process. So a drill
//! works against any deployment (one node or many, this build or the one in
//! production), and what it measures is what clients see: statuses, the
//! `x-holdfast-target` that served, latencies and cost. Start at [`drill`]; the fault
//! proxy ([`proxy`]) puts the mock provider's faults in front of a real provider; game days
//! ([`schedule`]) run experiments at set times.

mod api;
pub mod drill;
pub mod experiment;
pub mod proxy;
mod report;
pub mod schedule;

pub use drill::{Check, Drill, DrillError, DrillReport, Phase, PhaseReport};
pub use proxy::{FaultProxy, ProxyError};
