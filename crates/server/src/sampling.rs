//! Production scoring wired to the gateway: the finished exchange handed to the
//! quality crate's sampler, its scorer run beside the server, its counts on `/metrics`.
//!
//! The decision: the request path only asks [`Sampler::wants`] and, for a sampled
//! answer, queues it without waiting (`holdfast_quality::sampling`); the scorer's judge
//! calls go through the state running when each is made, in process, like a suite's.
//! Sampling is set up once at start ([`Gateway::with_sampling`], needing the engine's
//! store) and a reload that changes `[quality.sampling]` is refused (`live.rs`).

use std::sync::{Arc, Mutex, Weak};

use holdfast_llm::openai::{ChatRequest, ChatResponse};
use holdfast_quality::sampling::{Exchange, Plan, QUEUE, Sampler, Scorer};
use holdfast_quality::{Answer, Chat, Subject, SubjectError, TaskCall};
use holdfast_store::Store;
use serde_json::{Value, json};

use crate::gateway::Gateway;
use crate::intake::Door;
use crate::live::Live;
use crate::quality::GatewaySubject;

/// A gateway's sampling: the sampler, and its scorer until it is started.
pub(crate) struct Sampling {
    pub(crate) sampler: Sampler,
    scorer: Mutex<Option<Scorer>>,
    pub(crate) store: Arc<dyn Store>,
}

impl Gateway {
    /// This gateway sampling the routes `[quality.sampling]` names, keeping samples in
    /// the attached engine's store; a suite that does not load, targets another route
    /// or has no `[production]` graders is refused with its reason.
    pub async fn with_sampling(self) -> Result<Gateway, String> {
        let settings = self.live.running().await.config.quality.sampling.clone();
        if settings.is_empty() {
            return Ok(self);
        }
        let Some(engine) = self.inner.engine.get() else {
            return Err("[quality.sampling] needs the store: attach an engine first".into());
        };
        let plans = settings
            .iter()
            .map(|(route, s)| {
                Plan::load(route, &s.suite, s.share, s.budget_per_hour, s.retention)
                    .map_err(|e| format!("quality.sampling.{route}.suite: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let seed = self.inner.clock.unix_millis();
        let (sampler, scorer) = Sampler::new(plans, QUEUE, seed);
        let sampling = Sampling {
            sampler,
            scorer: Mutex::new(Some(scorer)),
            store: Arc::clone(engine.store()),
        };
        let _ = self.inner.sampling.set(Arc::new(sampling));
        Ok(self)
    }
}

/// Starts the scorer on the current runtime, when the gateway samples; it stops when
/// the last state holding the sampler is dropped.
pub(crate) fn start(gateway: &Gateway) {
    let Some(sampling) = gateway.inner.sampling.get() else {
        return;
    };
    let scorer = sampling
        .scorer
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(scorer) = scorer {
        let subject = Arc::new(LiveSubject(Arc::downgrade(&gateway.live)));
        let clock = Arc::clone(&gateway.inner.clock);
        tokio::spawn(scorer.run(Arc::clone(&sampling.store), subject, clock));
    }
}

/// Offers a whole answer the client got to the sampler, when its route is sampled.
pub(crate) fn offer(
    door: &Door,
    route: &str,
    request: &ChatRequest,
    response: &ChatResponse,
    cost_usd: f64,
) {
    let gw = &door.gateway.inner;
    let Some(sampling) = gw.sampling.get().filter(|s| s.sampler.wants(route)) else {
        return;
    };
    let mut input = serde_json::to_value(request).unwrap_or(Value::Null);
    if let Some(fields) = input.as_object_mut() {
        fields.remove("model");
        fields.remove("stream");
    }
    let mut answer = Answer::from_chat(response, cost_usd);
    answer.request_id = Some(door.id.to_string());
    sampling.sampler.offer(Exchange {
        tenant: door.principal.tenant.to_string(),
        task_type: route.to_owned(),
        request_id: door.id.to_string(),
        input,
        answer,
        latency: gw.clock.now().saturating_duration_since(door.started),
        at_ms: gw.clock.unix_millis(),
    });
}

/// The judge's subject: the state running when each call is made.
struct LiveSubject(Weak<Live>);

#[async_trait::async_trait]
impl Subject for LiveSubject {
    fn describe(&self) -> Value {
        json!({"via": "in-process", "for": "production scoring"})
    }

    async fn chat(&self, call: Chat) -> Result<Answer, SubjectError> {
        let live = self
            .0
            .upgrade()
            .ok_or_else(|| SubjectError::new("unavailable", "the server stopped"))?;
        let subject = GatewaySubject::new(live.current(), "default", self.describe());
        subject.chat(call).await
    }

    async fn task(&self, _call: TaskCall) -> Result<Answer, SubjectError> {
        Err(SubjectError::new(
            "invalid_input",
            "production scoring judges with routes only",
        ))
    }
}
