//! holdfast's traces: OpenTelemetry spans for gateway requests and their attempts, and
//! for workflow tasks and their steps, exported over OTLP.
//!
//! The decision that shapes this crate: spans are built after the fact from what the
//! gateway and the engine already record (the policy's attempt events as the server's
//! ledger holds them, the engine's `TaskEvent`s), not by threading span calls through
//! the pipeline. Only the span ids must exist early, so that a provider, a tool or a
//! worker hears the `traceparent` of the attempt or step that called it; those are
//! drawn when the request arrives ([`Trace`]) or derived from the task's id
//! (`holdfast_engine::trace`). A finished span goes into a bounded queue
//! ([`Telemetry`]); when the collector is down or slow the queue fills and spans are
//! dropped and counted, never waited for.
//!
//! A separate crate, not a module of the server: the server is the HTTP surface only,
//! and the exporter's setup belongs to the binary, which builds this once and hands it
//! to both.

mod context;
mod export;
mod gateway;
mod queue;
mod tasks;

pub use context::{TRACEPARENT, TRACESTATE, Trace};
pub use export::{Telemetry, TelemetryError};
pub use gateway::{Attempt, AttemptSpan, Request};
pub use opentelemetry::trace::SpanId;
pub use queue::Dropped;
