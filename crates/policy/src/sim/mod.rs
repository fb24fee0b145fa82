//! The seeded simulator: many concurrent calls through the real pipeline, against
//! simulated targets with scripted faults, in simulated time.
//!
//! It exists to prove the policy rather than to illustrate it: every run is checked
//! against the invariants of DESIGN.md ([`check`]), and every scenario is also run under
//! a naive policy (fixed retries, no jitter, budget or breakers) so the table shows what
//! the policy buys. The decision that shapes it: the simulator is pure and drives the
//! very same [`Call`](crate::pipeline::Call) and [`Registry`](crate::pipeline::Registry)
//! the gateway uses, with no I/O, no clock and no threads; all randomness comes from
//! [`Rng`](crate::Rng) streams forked from one `u64` seed. So a seed is a complete
//! reproduction: the same seed gives the same [`Trace`](trace::Trace) and the same
//! digest, on every machine.
//!
//! ```
//! use holdfast_policy::sim::{self, PolicyKind, Scenario};
//!
//! let scenario = Scenario::named("503-20pct").unwrap();
//! let run = sim::run(&scenario, 7, PolicyKind::Holdfast);
//! assert!(run.violations.is_empty());
//! ```

pub mod capacity;
pub mod check;
mod engine;
mod invariant;
pub mod report;
pub mod scenario;
mod scenarios;
pub mod table;
pub mod target;
pub mod trace;

pub use capacity::{Capacity, Load};
pub use report::{Aggregate, SeedReport};
pub use scenario::{PolicyKind, Scenario};
pub use scenarios::{NAMES, ScenarioError};
pub use table::{Report, ScenarioReport};

/// Runs `scenario` under `policy` from `seed`: its figures, its broken invariants and
/// its trace's digest.
pub fn run(scenario: &Scenario, seed: u64, policy: PolicyKind) -> SeedReport {
    let trace = engine::simulate(scenario, seed, policy);
    SeedReport::new(scenario, policy, seed, &trace)
}

/// Runs `scenario` under `policy` from `seed` and returns the whole trace.
pub fn trace(scenario: &Scenario, seed: u64, policy: PolicyKind) -> trace::Trace {
    engine::simulate(scenario, seed, policy)
}
