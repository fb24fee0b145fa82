//! The engine's `llm` steps, run through the gateway's own pipeline in process.
//!
//! The decision: a step's model call is a gateway call like a client's, without the
//! HTTP in between. It is built as the OpenAI-format request a client would send (a
//! system and a user message, `max_tokens`, `temperature`, and a `json_schema`
//! `response_format` when the step has an output schema) and made in process
//! (`inproc.rs`) through the same `call::complete` that `POST /v1/chat/completions`
//! uses: route lookup by alias, the output check, the policy driver with its retries,
//! fallback, breakers and budget, costs, metrics and the attempt ledger (endpoint
//! `workflow.llm`). The step's
//! idempotency key (`task_id/step`) is sent upstream as `Idempotency-Key` on every
//! attempt, so a step run again after a crash can be deduplicated by the provider.
//!
//! What a client call has and a step call does not: the client key's rate limits (the
//! engine is not a client), the in-memory idempotent replay (the engine commits a
//! step's result itself; a committed step never runs again) and degraded answers (a
//! canned answer must not become a committed step output). The step's timeout becomes
//! the call's deadline.
//!
//! The step reaches the gateway through the live configuration (`live.rs`), read once
//! per call: after a reload, the next step runs on the new routes and targets; a
//! quality gate's task runs on the state its gate judges (`rollout.rs`).

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use holdfast_engine::{Failure, FewShotMode, Llm, LlmAnswer, LlmRequest};
use holdfast_policy::{Outcome, TimeoutKind};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::gateway::Inner;
use crate::inproc::{self, Local, Refused};
use crate::live::Live;

/// The gateway as the engine's model caller. Holds the live configuration weakly: the
/// gateway holds the engine, which holds this.
pub(crate) struct GatewayLlm {
    gateway: Weak<Live>,
}

impl GatewayLlm {
    pub(crate) fn new(gateway: Weak<Live>) -> Self {
        GatewayLlm { gateway }
    }
}

#[async_trait]
impl Llm for GatewayLlm {
    async fn complete(&self, request: LlmRequest) -> Result<LlmAnswer, Failure> {
        let Some(live) = self.gateway.upgrade() else {
            return Err(Failure::new(
                Outcome::Cancelled,
                "the gateway is shutting down",
            ));
        };
        let Some(gateway) = live.state_for(&request.tenant) else {
            return Err(Failure::new(
                Outcome::BadRequest,
                "a quality gate's task, and no gate on this node runs it",
            ));
        };
        run(&gateway, request).await
    }
}

/// The OpenAI-format body of a step's call.
fn body(request: &LlmRequest) -> Value {
    let mut messages = Vec::with_capacity(2);
    if let Some(system) = &request.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    messages.push(json!({"role": "user", "content": request.prompt}));
    let mut body = json!({"model": request.route, "messages": messages, "stream": false});
    if let Some(max_tokens) = request.max_tokens {
        body["max_tokens"] = json!(max_tokens);
    }
    if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature);
    }
    if let Some(schema) = &request.output_schema {
        body["response_format"] = json!({
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": schema},
        });
    }
    body
}

async fn run(gw: &Inner, step: LlmRequest) -> Result<LlmAnswer, Failure> {
    let body = serde_json::to_vec(&body(&step))
        .map_err(|e| Failure::new(Outcome::BadRequest, format!("building the request: {e}")))?;
    let local = Local {
        body: &body,
        tenant: &step.tenant,
        // As the gateway's door does: a tenant's step trips only that tenant's breaker.
        agent: (!step.agent.is_empty())
            .then(|| Arc::from(format!("{}/{}", step.tenant, step.agent))),
        idempotency_key: Some(step.idempotency_key.clone()),
        timeout: step.timeout,
        endpoint: "workflow.llm",
        // The call's spans (a request span and one per attempt, as a client's call
        // has) go under the step's span.
        step_trace: Some((&step.traceparent, step.trace)),
        few_shot: step.few_shot.as_ref().map(|f| holdfast_config::FewShot {
            library: f.library.clone(),
            k: f.k,
            mode: match f.mode {
                FewShotMode::Similar => holdfast_config::FewShotMode::Similar,
                FewShotMode::Fixed => holdfast_config::FewShotMode::Fixed,
            },
            // Approval is the library's business, set on a route that names it.
            auto_approve: false,
        }),
    };
    match inproc::complete(gw, local).await {
        Ok(answered) => {
            let text = answered
                .response
                .choices
                .first()
                .and_then(|c| c.message.content.clone())
                .unwrap_or_default();
            Ok(LlmAnswer {
                text,
                cost_usd: answered.cost_usd,
                few_shot: answered.few_shot.map(|used| {
                    json!({"library": used.library, "examples": used.examples, "input": used.input})
                }),
            })
        }
        Err(Refused { error, cost_usd }) => Err(Failure {
            outcome: outcome(&error),
            message: error.to_string(),
            cost_usd,
        }),
    }
}

/// The outcome class the engine retries by, for the error a client would have got.
fn outcome(err: &ApiError) -> Outcome {
    match err {
        ApiError::UpstreamRateLimited { retry_after, .. } => Outcome::RateLimited {
            retry_after: *retry_after,
        },
        ApiError::UpstreamOverloaded { retry_after, .. }
        | ApiError::TargetsUnavailable { retry_after } => Outcome::Overloaded {
            retry_after: *retry_after,
        },
        ApiError::OverloadedShed { retry_after } => Outcome::Overloaded {
            retry_after: Some(*retry_after),
        },
        ApiError::RetryBudgetExhausted
        | ApiError::AgentBreakerOpen
        | ApiError::StoreUnavailable(_)
        | ApiError::OutboxFull(_) => Outcome::Overloaded { retry_after: None },
        ApiError::UpstreamError(_) | ApiError::ArtifactUnreadable(_) | ApiError::Internal(_) => {
            Outcome::ServerError
        }
        ApiError::UpstreamTimeout(_) | ApiError::DeadlineExceeded => {
            Outcome::Timeout(TimeoutKind::Total)
        }
        ApiError::UpstreamAuthFailed => Outcome::Auth,
        ApiError::UpstreamQuotaExhausted => Outcome::QuotaExhausted,
        ApiError::UpstreamModelNotFound => Outcome::NotFound,
        ApiError::ContextLengthExceeded(_) | ApiError::PromptTooLarge => Outcome::ContextOverflow,
        ApiError::ContentFilter(_) => Outcome::ContentFiltered,
        ApiError::InvalidOutput(_) => Outcome::InvalidOutput,
        ApiError::InvalidJson(_)
        | ApiError::InvalidRequest { .. }
        | ApiError::InvalidHeader { .. }
        | ApiError::InvalidResponseFormat(_)
        | ApiError::MissingApiKey
        | ApiError::InvalidApiKey
        | ApiError::Forbidden { .. }
        | ApiError::CrossOrigin(_)
        | ApiError::UnsupportedMediaType(_)
        | ApiError::ModelNotFound(_)
        | ApiError::NotFound(_)
        | ApiError::MethodNotAllowed { .. }
        | ApiError::BodyTooLarge { .. }
        | ApiError::BodyReadTimeout { .. }
        | ApiError::IdempotencyKeyReused
        | ApiError::RateLimited { .. }
        | ApiError::TooManyConcurrentRequests { .. }
        | ApiError::PromptExceedsKeyLimit
        | ApiError::UpstreamBadRequest(_)
        | ApiError::InvalidInput { .. }
        | ApiError::InvalidConfig { .. }
        | ApiError::HistoryUnavailable(_)
        | ApiError::GateFailed { .. }
        | ApiError::Conflict(_)
        | ApiError::StaleLease(_)
        | ApiError::EngineUnavailable => Outcome::BadRequest,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use holdfast_llm::openai::ChatRequest;

    use super::*;
    use crate::output::OutputCheck;

    #[test]
    fn a_step_becomes_an_openai_request_with_its_schema() {
        let request = LlmRequest {
            route: "smart".into(),
            system: Some("be brief".into()),
            prompt: "hello".into(),
            max_tokens: Some(50),
            temperature: Some(0.2),
            output_schema: Some(json!({"type": "object"})),
            idempotency_key: "t-1/draft".into(),
            tenant: "acme".into(),
            agent: "article/draft".into(),
            timeout: Duration::from_secs(5),
            few_shot: None,
            traceparent: String::new(),
            trace: holdfast_engine::trace::TaskTrace::of("t-1", None),
        };
        let body = body(&request);
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(body["messages"][1]["content"], "hello");
        assert_eq!(body["max_tokens"], 50);
        assert_eq!(body["response_format"]["json_schema"]["name"], "output");
        let parsed = ChatRequest::from_json(&serde_json::to_vec(&body).unwrap()).unwrap();
        assert!(OutputCheck::for_request(&parsed).is_ok());
    }

    /// A step calls as its own agent (`workflow/step`, of its task's tenant), so the
    /// gateway's per-agent breaker sees each step, and each tenant, apart.
    #[tokio::test]
    async fn a_step_calls_as_its_own_agent() {
        let clock = Arc::new(holdfast_policy::SystemClock::new());
        let faults = holdfast_mock::Faults::from_toml_str("").unwrap();
        let provider = holdfast_mock::MockProvider::new(
            holdfast_mock::Format::OpenAi,
            faults,
            7,
            clock.clone(),
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/v1", listener.local_addr().unwrap());
        tokio::spawn(holdfast_mock::serve(
            listener,
            provider,
            std::future::pending(),
        ));
        let text = format!(
            "[providers.p]\nformat = \"openai\"\nbase_url = \"{base}\"\n\n\
             [targets.a]\nprovider = \"p\"\nmodel = \"m\"\ncontext_window = 100000\n\n\
             [routes.smart]\ntargets = [\"a\"]\n"
        );
        let config = holdfast_config::Config::from_toml_str(&text, "test.toml", &|_| None).unwrap();
        let gateway = crate::Gateway::new(&config, clock).unwrap();
        let answer = gateway
            .llm()
            .complete(LlmRequest {
                route: "smart".into(),
                system: None,
                prompt: "hello".into(),
                max_tokens: Some(16),
                temperature: None,
                output_schema: None,
                idempotency_key: "t-1/draft".into(),
                tenant: "acme".into(),
                agent: "article/draft".into(),
                timeout: Duration::from_secs(5),
                few_shot: None,
                traceparent: String::new(),
                trace: holdfast_engine::trace::TaskTrace::of("t-1", None),
            })
            .await
            .unwrap();
        assert!(!answer.text.is_empty());
        let inner = gateway.live.current();
        let registry = inner.registry.lock().unwrap();
        let agents: Vec<&str> = registry.agents().map(|(agent, _)| &**agent).collect();
        assert_eq!(agents, ["acme/article/draft"]);
    }

    #[test]
    fn failures_keep_their_class() {
        let limited = ApiError::UpstreamRateLimited {
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(
            outcome(&limited),
            Outcome::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            }
        );
        assert_eq!(
            outcome(&ApiError::ModelNotFound("x".into())),
            Outcome::BadRequest
        );
        assert!(outcome(&ApiError::UpstreamError("boom".into())).is_retryable());
    }
}
