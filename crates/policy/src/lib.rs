//! The resilience policy every holdfast call goes through.
//!
//! An LLM request, a tool call and a workflow step are each a *call* made under a
//! *policy*: classify every outcome ([`outcome`]), retry what can succeed on retry with
//! backoff and jitter ([`backoff`]) while a retry budget lasts ([`budget`]), stop sending
//! to a failing target ([`breaker`]), respect rate limits ([`rate_limit`]) and one
//! deadline across everything ([`deadline`]), fall back along a chain of targets
//! ([`fallback`]), hedge slow attempts ([`hedge`]) and call a target silent after a
//! wait learned from its latency ([`silence`]), and, on a route that fails over at
//! once, shift traffic off a target in proportion to its recent failures ([`shift`]).
//! [`pipeline`] composes these into one pure state machine; [`driver`] runs it over a
//! [`driver::Transport`].
//!
//! Nothing here does I/O or reads the time on its own: time comes from a [`Clock`], and
//! randomness from a seeded [`Rng`], so that every behaviour can be replayed exactly.

pub mod backoff;
pub mod breaker;
pub mod budget;
pub mod clock;
pub mod concurrency;
pub mod deadline;
pub mod driver;
pub mod fallback;
pub mod hedge;
pub mod outcome;
pub mod pipeline;
pub mod rate_limit;
pub mod rng;
pub mod setting;
pub mod shift;
mod significance;
pub mod silence;
pub mod sim;
pub mod window;

#[cfg(any(test, feature = "test-util"))]
pub use clock::ManualClock;
pub use clock::{Clock, Instant, SystemClock};
pub use deadline::Deadline;
pub use outcome::{Health, Outcome, TimeoutKind};
pub use rng::Rng;
pub use setting::InvalidSetting;
