//! Running one client request through the policy pipeline.
//!
//! The decision: a handler never talks to a provider. It describes the call (route,
//! canonical request, deadline, agent, tokens, output check) as a [`Job`]; this module
//! builds the pipeline's `Request`, runs the one shared driver over the one shared
//! registry with a per-request transport, and hands back the answer or the client's
//! error together with the call's trace and response headers. Streams and whole
//! answers differ only in the transport.

use std::sync::Arc;

use holdfast_llm::openai::ChatRequest;
use holdfast_llm::openai::embeddings::EmbeddingsRequest;
use holdfast_llm::{ChunkStream, Completion, Embedded};
use holdfast_policy::Instant;
use holdfast_policy::driver::{self, Served, Transport};
use holdfast_policy::pipeline::{self, PolicyEvent};

use crate::error::ApiError;
use crate::events::CallTrace;
use crate::failure::{earliest_free, to_api_error};
use crate::gateway::{Inner, RouteRuntime};
use crate::meta::{Reply, RequestMeta};
use crate::output::OutputCheck;
use crate::transport::{AttemptError, AttemptNote, Attempts, Completing, Embedding, Streaming};

/// One client request, ready for the pipeline.
pub(crate) struct Job<'a> {
    pub(crate) gateway: &'a Inner,
    pub(crate) route: &'a RouteRuntime,
    pub(crate) request: &'a ChatRequest,
    pub(crate) meta: &'a RequestMeta,
    pub(crate) check: &'a OutputCheck,
    pub(crate) id: &'a Arc<str>,
    pub(crate) tokens: u64,
    pub(crate) seed: u64,
}

/// A finished call: the answer or the client's error, with its trace and headers.
pub(crate) struct Ran<R> {
    pub(crate) result: Result<Served<R>, ApiError>,
    pub(crate) trace: CallTrace,
    pub(crate) reply: Reply,
    /// The serving attempt's number, when one served.
    pub(crate) served_number: Option<u32>,
}

/// Runs `job`, waiting for whole, validated answers.
pub(crate) async fn complete(job: &Job<'_>) -> Ran<Completion> {
    let transport = Completing(
        attempts(job.gateway, job.meta, job.id),
        job.request,
        job.check,
    );
    run(&job.lane(), &transport, || transport.0.take_notes()).await
}

/// Runs `job` up to the commit point of a stream.
pub(crate) async fn stream(job: &Job<'_>) -> Ran<ChunkStream> {
    let transport = Streaming(attempts(job.gateway, job.meta, job.id), job.request);
    run(&job.lane(), &transport, || transport.0.take_notes()).await
}

/// Runs an embeddings call of `lane` for `request`.
pub(crate) async fn embed(lane: &Lane<'_>, request: &EmbeddingsRequest) -> Ran<Embedded> {
    let transport = Embedding(attempts(lane.gateway, lane.meta, lane.id), request);
    run(lane, &transport, || transport.0.take_notes()).await
}

fn attempts<'a>(gateway: &'a Inner, meta: &'a RequestMeta, id: &'a str) -> Attempts<'a> {
    // Every attempt carries the same key: the client's, else the request id.
    let key = meta.idempotency_key.as_deref().unwrap_or(id);
    Attempts::new(gateway, key, &meta.trace)
}

/// What the pipeline needs of a call, whatever it asks a provider for.
pub(crate) struct Lane<'a> {
    pub(crate) gateway: &'a Inner,
    pub(crate) route: &'a RouteRuntime,
    pub(crate) meta: &'a RequestMeta,
    pub(crate) id: &'a Arc<str>,
    pub(crate) tokens: u64,
    pub(crate) seed: u64,
}

impl Job<'_> {
    fn lane(&self) -> Lane<'_> {
        let (gateway, route, meta, id) = (self.gateway, self.route, self.meta, self.id);
        let (tokens, seed) = (self.tokens, self.seed);
        Lane {
            gateway,
            route,
            meta,
            id,
            tokens,
            seed,
        }
    }
}

async fn run<T>(
    job: &Lane<'_>,
    transport: &T,
    notes: impl FnOnce() -> Vec<AttemptNote>,
) -> Ran<T::Response>
where
    T: Transport<Error = AttemptError>,
{
    let gateway = job.gateway;
    let request = pipeline::Request {
        chain: Arc::clone(&job.route.chain),
        policy: Arc::clone(&job.route.policy),
        deadline: job.meta.deadline,
        agent: job.meta.agent.clone(),
        tokens: Some(job.tokens),
        seed: job.seed,
        priority: job.meta.priority,
    };
    let run = driver::run(
        pipeline::Call::new(request),
        &gateway.registry,
        &*gateway.clock,
        transport,
    )
    .await;
    let now = gateway.clock.now();
    let trace = CallTrace::from_events(gateway, &job.route.name, &run.events, &notes(), now);
    let mut reply = Reply::new(job.id);
    reply.attempts = trace.attempt_count();
    reply.cost_usd = trace.cost_usd();
    let result = match run.result {
        Ok(served) => {
            reply.target = Some(gateway.target_name(served.target));
            Ok(served)
        }
        Err(failure) => Err(client_error(job, &failure, now)),
    };
    let served_number = result
        .as_ref()
        .ok()
        .and_then(|served| number_of(&run.events, served.attempt));
    Ran {
        result,
        trace,
        reply,
        served_number,
    }
}

/// The client's error for a call that gave up at `now`.
fn client_error(job: &Lane<'_>, failure: &driver::Failure<AttemptError>, now: Instant) -> ApiError {
    to_api_error(failure, || {
        let registry = job
            .gateway
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        earliest_free(
            &registry,
            job.route.chain.links().iter().map(|l| l.target),
            now,
        )
    })
}

fn number_of(events: &[PolicyEvent], attempt: pipeline::AttemptId) -> Option<u32> {
    events.iter().find_map(|event| match event {
        PolicyEvent::Attempt(a) if a.attempt == attempt => Some(a.number),
        _ => None,
    })
}
