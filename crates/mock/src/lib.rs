//! A fault-injecting mock LLM provider: `holdfast mock-provider`.
//!
//! It speaks the real OpenAI chat-completions or Anthropic messages wire format,
//! streaming and not, and injects every fault a real provider shows — error statuses,
//! auth and quota errors, context overflow, content filtering, latency, silence,
//! stalls, cut and malformed streams, in-band errors, outages and flapping — from a
//! [`Faults`] set that an admin API can replace at run time. Every random choice comes
//! from a seeded [`holdfast_policy::Rng`] and every wait from a
//! [`holdfast_policy::Clock`], so a run replays exactly from its seed.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use std::sync::Arc;
//! use holdfast_mock::{Faults, Format, MockProvider, serve};
//! use holdfast_policy::SystemClock;
//!
//! let faults = Faults::from_toml_str("error_rates = { \"429\" = 0.2 }").expect("valid faults");
//! let provider = MockProvider::new(Format::OpenAi, faults, 7, Arc::new(SystemClock::new()))
//!     .expect("valid faults");
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! serve(listener, provider, std::future::pending()).await
//! # }
//! ```

mod admin;
mod answer;
mod anthropic;
mod chat;
mod embeddings;
mod error;
mod faults;
mod format;
mod openai;
mod plan;
mod provider;
mod request;
mod server;
mod stream;
mod timing;
mod validate;

pub use chat::{Forward, inject};
pub use embeddings::{DIMENSIONS, embed};
pub use error::{MockError, Result};
pub use faults::{
    ApiKey, DEFAULT_ANSWER, ErrorRates, Faults, Flapping, Outage, Reply, Stall, StreamFault,
    StreamStall,
};
pub use format::{Format, UnknownFormat};
pub use provider::{MockProvider, REQUEST_LOG_CAPACITY, RequestRecord, Stats};
pub use server::{admin_routes, router, serve};
pub use timing::{Distribution, InvalidSpan, Span};
pub use validate::FAILURE_STATUSES;
