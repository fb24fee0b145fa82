//! The quality loop: is what holdfast's agents return right?
//!
//! A [`Suite`] is a task type (a route, or a workflow), a dataset of cases (JSONL: an
//! input, an optional expected answer, a list of graders, tags such as `labeled` and
//! `adversarial`) and thresholds. The [`Runner`] calls every case through a
//! [`Subject`], grades its answer (deterministic graders and model-graded rubrics, the
//! judge itself a route called through the same subject), records each case in the
//! store as it finishes (so an interrupted run resumes where it stopped), and builds a
//! [`Report`]: pass rates per tag with Wilson intervals, cost and latency, the paired
//! comparison to a baseline run (exact McNemar), the smallest drop the suite can
//! detect, and the gate's verdict.
//!
//! The decision that shapes this crate: it never speaks HTTP and never builds a
//! gateway. What a case runs against is the [`Subject`] trait: the server implements it
//! in process over the gateway's own pipeline (a running server, or a candidate
//! configuration built beside it), the binary over HTTP against any deployment. So one
//! runner, one set of graders and one statistics module serve `holdfast eval`, gated
//! rollouts and production scoring alike, and a suite run is a function call:
//!
//! ```no_run
//! # async fn run(
//! #     subject: std::sync::Arc<dyn holdfast_quality::Subject>,
//! #     store: std::sync::Arc<dyn holdfast_store::Store>,
//! # ) -> Result<(), holdfast_quality::QualityError> {
//! use std::sync::Arc;
//! use holdfast_quality::{Runner, RunSpec, Suite};
//!
//! let suite = Suite::load(std::path::Path::new("support.toml"))?;
//! let clock = Arc::new(holdfast_policy::SystemClock::new());
//! let runner = Runner::new(store, subject, clock);
//! let spec = RunSpec::new(&suite, "nightly-1", "default");
//! let outcome = runner.run(&suite, spec, &holdfast_quality::NoProgress, std::future::pending()).await?;
//! if let Some(report) = &outcome.report {
//!     println!("{}", report.to_text());
//! }
//! # Ok(())
//! # }
//! ```

mod dataset;
mod duration;
mod error;
pub mod fewshot;
mod grader;
mod names;
mod problem;
pub mod readiness;
pub mod report;
mod result;
pub mod rollout;
mod runner;
pub mod sampling;
pub mod stats;
mod subject;
mod suite;

pub use dataset::{Case, CaseInput};
pub use error::QualityError;
pub use grader::{Assertion, Check, Verdict};
pub use problem::{Problem, Problems};
pub use report::Report;
pub use result::CaseResult;
pub use runner::{NoProgress, Progress, RunOutcome, RunSpec, Runner};
pub use subject::{Answer, Chat, Subject, SubjectError, TaskCall, ToolCall};
pub use suite::{ALL, RunSettings, Suite, TaskType, Thresholds};
