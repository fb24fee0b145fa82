//! The holdfast workflow engine: agent jobs as durable, versioned workflows of steps.
//!
//! A workflow ([`definition`]) is a list of steps of five kinds: `llm` (a model call
//! through the gateway's own policy pipeline), `http` (a tool call), `worker` (a job for
//! the user's own process, with a lease and a fencing token), `human` (an escalation
//! that pauses the task until a person approves, edits or rejects) and `sleep` (a
//! durable timer). A task is one run of a workflow version with an input.
//!
//! The decision that shapes this crate: the task's state lives only in the store, and
//! every move is one [`holdfast_store::Advance`], committed atomically under the task
//! lease's fencing token. What to do next is a pure function of the committed records
//! ([`machine`]); the scheduler ([`Engine::run`]) claims due tasks, runs them to their
//! next rest point ([`run`]) and lets go. So a crash loses only attempts in flight, which
//! run again with the same idempotency key (task id + step name), a committed step never
//! runs again, and several nodes on one PostgreSQL database share the work through
//! leases alone.
//!
//! Failed attempts are classified like the gateway's ([`holdfast_policy::Outcome`]) and
//! go to the retry queue with backoff; exhausted steps fail, skip or escalate; a failed
//! task runs its steps' compensations in reverse commit order.

pub mod artifacts;
pub mod attempt;
pub mod definition;
pub mod egress;
mod engine;
pub mod error;
pub mod event;
pub mod guard;
mod lease;
pub mod machine;
pub mod outbox;
mod run;
mod scheduler;
mod scope;
mod step;
pub mod template;
pub mod trace;

pub use artifacts::{ArtifactSettings, ArtifactStore};
pub use attempt::{FENCING_HEADER, Failure, IDEMPOTENCY_HEADER, Llm, LlmAnswer, LlmRequest};
pub use definition::{FewShot, FewShotMode, Workflow, parse, parse_toml};
pub use engine::{Engine, Settings, Submission};
pub use error::{EngineError, Problem};
pub use event::{EventSink, TaskEvent, TaskEventKind};
pub use guard::{GuardSettings, StoreGuard, StoreHealth};
pub use outbox::{Accepted, OutboxEvent, OutboxEventSink};
pub use scope::Scope;
pub use step::{escalation_id, idempotency_key, job_id};
