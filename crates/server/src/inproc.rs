//! A gateway call made in process, without HTTP: the engine's `llm` steps and the
//! quality loop's cases and judges.
//!
//! The decision: such a call is a client's call without the door. The request is the
//! OpenAI-format body a client would send, parsed by the same reader, routed by its
//! `model`, checked for its `response_format`, and run by the same
//! [`call::complete`](crate::call::complete) as `POST /v1/chat/completions`: the
//! policy driver with its retries, fallback, breakers and budget, the costs, the
//! metrics, and an entry in the attempt ledger under its own endpoint name. What the
//! door adds for clients and these calls do not need: a key's rate limits, the
//! in-memory idempotent replay and degraded answers (a canned answer must not become a
//! committed step output, nor be graded as the route's own).

use std::sync::Arc;
use std::time::Duration;

use holdfast_llm::openai::{ChatRequest, ChatResponse};
use holdfast_policy::Deadline;

use crate::call::{self, Job};
use crate::error::ApiError;
use crate::events::millis;
use crate::gateway::Inner;
use crate::ledger::Entry;
use crate::meta::RequestMeta;
use crate::output::OutputCheck;
use crate::prompt;

/// One call to make.
pub(crate) struct Local<'a> {
    /// The request body, JSON in the OpenAI chat format (`model` is the route).
    pub(crate) body: &'a [u8],
    /// Whose call it is (the ledger entry's tenant).
    pub(crate) tenant: &'a str,
    /// The agent it calls as, for the per-agent breaker.
    pub(crate) agent: Option<Arc<str>>,
    /// Sent upstream as `Idempotency-Key` on every attempt.
    pub(crate) idempotency_key: Option<String>,
    /// The call's deadline, from now.
    pub(crate) timeout: Duration,
    /// The ledger's name for where the call came from (`workflow.llm`, `quality.eval`).
    pub(crate) endpoint: &'static str,
    /// Few-shot examples of the caller's own (an `llm` step's), replacing the route's.
    pub(crate) few_shot: Option<holdfast_config::FewShot>,
    /// The caller's span (an `llm` step attempt's `traceparent`) and its task's trace:
    /// when traces are exported, the call gets its spans under it, recorded when the
    /// task's are.
    pub(crate) step_trace: Option<(&'a str, holdfast_engine::trace::TaskTrace)>,
}

/// A call that was answered.
pub(crate) struct Answered {
    /// The whole, checked answer.
    pub(crate) response: ChatResponse,
    /// What its attempts cost.
    pub(crate) cost_usd: f64,
    /// The target that served it.
    pub(crate) target: Option<Arc<str>>,
    /// Its ledger entry's id.
    pub(crate) request_id: Arc<str>,
    /// The few-shot examples it carried, when its route has a library.
    pub(crate) few_shot: Option<Arc<crate::few_shot::Used>>,
}

/// A call that was not: the error a client would have got, and what it still cost.
pub(crate) struct Refused {
    pub(crate) error: ApiError,
    pub(crate) cost_usd: f64,
}

impl From<ApiError> for Refused {
    fn from(error: ApiError) -> Self {
        Refused {
            error,
            cost_usd: 0.0,
        }
    }
}

/// Makes `local` through `gw`'s pipeline and records it in the ledger.
pub(crate) async fn complete(gw: &Inner, local: Local<'_>) -> Result<Answered, Refused> {
    let mut request = ChatRequest::from_json(local.body).map_err(crate::intake::request_error)?;
    let Some(route) = gw.routes.get(&request.model) else {
        return Err(ApiError::ModelNotFound(request.model.clone()).into());
    };
    let few_shot = crate::few_shot::insert(
        gw.libraries.get(),
        local.few_shot.as_ref().or(route.few_shot.as_ref()),
        local.tenant,
        &mut request,
        gw.clock.unix_millis(),
    )
    .await
    .map(Arc::new);
    let check = OutputCheck::for_request(&request)?;
    let request = Arc::new(request);
    let body_len = local.body.len() + crate::few_shot::added_bytes(few_shot.as_ref());
    let tokens = prompt::tokens(&request, body_len, route.smallest_window).await;
    let started = gw.clock.now();
    let started_ms = gw.clock.unix_millis();
    let traced = local
        .step_trace
        .and_then(|step| crate::spans::Spans::local(gw, step, (started, started_ms)));
    let meta = RequestMeta {
        deadline: Deadline::after(started, local.timeout),
        agent: local.agent,
        idempotency_key: local.idempotency_key,
        trace: traced
            .as_ref()
            .map(|spans| spans.trace().clone())
            .unwrap_or_default(),
        priority: holdfast_policy::concurrency::Priority::default(),
    };
    let (id, seed) = gw.next_request();
    let job = Job {
        gateway: gw,
        route,
        request: &request,
        meta: &meta,
        check: &check,
        id: &id,
        tokens,
        seed,
    };
    let ran = call::complete(&job).await;
    let cost_usd = ran.trace.cost_usd();
    let mut entry = Entry {
        request_id: Arc::clone(&id),
        tenant: Arc::from(local.tenant),
        route: Arc::clone(&route.name),
        endpoint: local.endpoint,
        stream: false,
        status: 200,
        result: "ok",
        error_code: None,
        stream_error: None,
        target: ran.reply.target.clone(),
        degraded: None,
        started_at_ms: started_ms,
        latency_ms: millis(gw.clock.now().saturating_duration_since(started)),
        input_tokens: 0,
        output_tokens: 0,
        cost_usd: 0.0,
        few_shot: few_shot.clone(),
        trace: ran.trace,
        spans: traced,
    };
    let answer = match ran.result {
        Ok(served) => Ok(Answered {
            response: served.response.response,
            cost_usd,
            target: ran.reply.target,
            request_id: Arc::clone(&id),
            few_shot,
        }),
        Err(error) => {
            entry.status = error.status().as_u16();
            entry.result = "error";
            entry.error_code = Some(error.code());
            Err(Refused { error, cost_usd })
        }
    };
    gw.ledger.insert(entry);
    answer
}
