//! Chaos experiments: TOML files in Chaos Toolkit's shape, run against a live holdfast.
//!
//! An experiment sends its own steady trickle of requests through holdfast, checks a
//! steady-state hypothesis (probes with tolerances) before the method, injects the
//! method's turbulence (faults through a mock provider or the fault proxy, a drained
//! target, a killed node), always runs its rollbacks, and checks the hypothesis during
//! and after. The verdict names the first probe that deviated, in which phase and when.
//! Probes state a safeguard's promise ("success ≥ 99%", "the dead target sees ≤ 5
//! calls"), never today's exact timings, so that experiments outlive tuning.

mod action;
mod check;
mod html;
mod judge;
mod report;
mod run;
mod spec;
mod traffic;

pub use action::ActionLog;
pub use html::page as html_page;
pub use judge::Judgement;
pub use run::{PhaseSpan, Report, Runner, Sample, Verdict};
pub use spec::{
    Action, ActionKind, Bound, Experiment, Phase, Phases, Probe, ProbeKind, SpecError, SteadyState,
    Traffic,
};
pub use traffic::Settled;
