//! `POST /v1/embeddings`, and the embedder of the few-shot libraries: an embeddings
//! call through a route's pipeline, as a chat call is.
//!
//! The decision: a route serves embeddings when its targets do (OpenAI format); the
//! request is routed by its `model` and made by the same policy driver as a chat call
//! (`call::embed`): retries, fallback, breakers, budget, costs, metrics and a ledger
//! entry (endpoint `embeddings`, or `few_shot.embed` for a library's own calls, under
//! the tenant whose examples or call it embeds). What it does not get: idempotent
//! replay and degraded answers, which have no meaning for a vector.

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use holdfast_llm::openai::embeddings::{EmbeddingsRequest, EmbeddingsResponse};
use holdfast_policy::Deadline;
use holdfast_quality::fewshot::Embedder;

use crate::access::Agent;
use crate::call::{self, Lane};
use crate::error::{ApiError, Flavor};
use crate::events::millis;
use crate::gateway::Inner;
use crate::intake::Door;
use crate::ledger::Entry;
use crate::live::Live;
use crate::meta::{Reply, RequestMeta};

/// The longest a library's embedding call may take: it delays a call's examples.
const LIBRARY_TIMEOUT: Duration = Duration::from_secs(10);

/// Handles one `POST /v1/embeddings`.
pub(crate) async fn embeddings(caller: Agent, headers: HeaderMap, body: Body) -> Response {
    let door = match Door::open(caller, &headers, body, Flavor::OpenAi, "embeddings").await {
        Ok(door) => door,
        Err(refused) => return refused,
    };
    let request = match EmbeddingsRequest::from_json(&door.body) {
        Ok(request) => request,
        Err(message) => {
            return door.refuse(&ApiError::InvalidRequest {
                message,
                param: None,
            });
        }
    };
    let (tenant, meta) = (&door.principal.tenant, &door.meta);
    let gw = &door.gateway.inner;
    let (answer, reply) = run(
        gw,
        tenant,
        door.endpoint,
        meta,
        (&door.id, door.seed),
        &request,
    )
    .await;
    match answer.and_then(|a| serde_json::to_vec(&a).map_err(|e| ApiError::Internal(e.to_string())))
    {
        Ok(body) => crate::respond::json(StatusCode::OK, body, &reply),
        Err(err) => crate::respond::error(&err, Flavor::OpenAi, &reply),
    }
}

/// Embeds `request` through the route its `model` names, writing a ledger entry.
async fn run(
    gw: &Inner,
    tenant: &Arc<str>,
    endpoint: &'static str,
    meta: &RequestMeta,
    (id, seed): (&Arc<str>, u64),
    request: &EmbeddingsRequest,
) -> (Result<EmbeddingsResponse, ApiError>, Reply) {
    let Some(route) = gw.routes.get(&request.model) else {
        return (
            Err(ApiError::ModelNotFound(request.model.clone())),
            Reply::new(id),
        );
    };
    let (started, started_ms) = (gw.clock.now(), gw.clock.unix_millis());
    let texts = request.input.texts();
    let tokens = texts.iter().map(|t| t.len().div_ceil(4) as u64).sum();
    let lane = Lane {
        gateway: gw,
        route,
        meta,
        id,
        tokens,
        seed,
    };
    let ran = call::embed(&lane, request).await;
    let answer = ran.result.map(|served| served.response.response);
    let err = answer.as_ref().err();
    gw.ledger.insert(Entry {
        request_id: Arc::clone(id),
        tenant: Arc::clone(tenant),
        route: Arc::clone(&route.name),
        endpoint,
        stream: false,
        status: err.map_or(200, |e| e.status().as_u16()),
        result: if err.is_some() { "error" } else { "ok" },
        error_code: err.map(ApiError::code),
        stream_error: None,
        target: ran.reply.target.clone(),
        degraded: None,
        started_at_ms: started_ms,
        latency_ms: millis(gw.clock.now().saturating_duration_since(started)),
        input_tokens: 0,
        output_tokens: 0,
        cost_usd: 0.0,
        few_shot: None,
        trace: ran.trace,
        spans: None,
    });
    (answer, ran.reply)
}

/// The gateway as the libraries' embedder. Holds the live configuration weakly: the
/// gateway holds the libraries, which hold this.
pub(crate) struct GatewayEmbedder(pub(crate) Weak<Live>);

#[async_trait]
impl Embedder for GatewayEmbedder {
    async fn embed(
        &self,
        tenant: &str,
        route: &str,
        texts: Vec<String>,
    ) -> Result<Vec<Vec<f32>>, String> {
        let Some(gw) = self.0.upgrade().map(|live| live.current()) else {
            return Err("the gateway is shutting down".to_owned());
        };
        let meta = RequestMeta {
            deadline: Deadline::after(gw.clock.now(), LIBRARY_TIMEOUT),
            agent: None,
            idempotency_key: None,
            trace: holdfast_telemetry::Trace::default(),
            priority: holdfast_policy::concurrency::Priority::default(),
        };
        let (id, seed) = gw.next_request();
        let request = EmbeddingsRequest::new(route, texts);
        let tenant = Arc::from(tenant);
        let (answer, _) = run(&gw, &tenant, "few_shot.embed", &meta, (&id, seed), &request).await;
        let answer = answer.map_err(|e| e.to_string())?;
        Ok(answer.data.into_iter().map(|e| e.embedding).collect())
    }
}
