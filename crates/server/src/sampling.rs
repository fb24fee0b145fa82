//! Production scoring wired to the gateway: the finished exchange handed to the
//! quality crate's sampler, its scorer run beside the server, its counts on `/metrics`.
//!
//! The decision: the request path only asks [`Sampler::wants`] and, for a sampled
//! answer, queues it without waiting (`holdfast_quality::sampling`); a streamed
//! answer's is decided when it commits and queued once the stream is complete, with
//! the text the client got; a workflow's finished task is decided when the engine says
//! it succeeded, and read from the store off the engine's path. The scorer's judge
//! calls go through the state running when each is made, in process, like a suite's.
//! Sampling is set up once at start ([`Gateway::with_sampling`], needing the engine's
//! store) and a reload that changes `[quality.sampling]` is refused (`live.rs`).

use std::sync::{Arc, Mutex, Weak};

use holdfast_engine::{Scope, TaskEvent, TaskEventKind};
use holdfast_llm::openai::{ChatRequest, ChatResponse};
use holdfast_quality::sampling::{Exchange, Plan, QUEUE, Sampler, Scorer};
use holdfast_quality::{Answer, Chat, Subject, SubjectError, TaskCall};
use holdfast_store::Store;
use serde_json::{Value, json};

use crate::gateway::{Gateway, Inner};
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
        let routes: Vec<String> = self
            .live
            .running()
            .await
            .config
            .routes
            .keys()
            .cloned()
            .collect();
        let routes: Vec<&str> = routes.iter().map(String::as_str).collect();
        let defs = engine
            .workflows()
            .await
            .map_err(|e| format!("listing the workflows: {e}"))?;
        let workflows: Vec<&str> = defs.iter().map(|w| w.name.as_str()).collect();
        let mut plans = Vec::with_capacity(settings.len());
        for (name, s) in &settings {
            let plan = Plan::load(name, &s.suite, s.share, s.budget_per_hour, s.retention)
                .map_err(|e| format!("quality.sampling.{name}.suite: {e}"))?;
            plan.check_served(&routes, &workflows)
                .map_err(|e| format!("quality.sampling.{name}: {e}"))?;
            plans.push(plan);
        }
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

/// Starts the scorer on a thread of its own at the lowest CPU priority, when the
/// gateway samples; it stops when the last state holding the sampler is dropped.
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
        let store = Arc::clone(&sampling.store);
        if let Err(e) = scorer.spawn_background(store, subject, clock) {
            tracing::error!(error = %e, "the scorer could not start: sampled answers are not scored");
        }
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
    if let Some(pending) = Pending::of(door, route, request) {
        let answer = Answer::from_chat(response, cost_usd);
        pending.send(&door.gateway.inner, answer);
    }
}

/// A sampled exchange whose answer is not known yet (a stream's, until it ends).
pub(crate) struct Pending {
    sampling: Arc<Sampling>,
    tenant: String,
    route: String,
    request_id: String,
    input: Value,
    started: holdfast_policy::Instant,
}

impl Pending {
    /// The exchange of `door` on `route`, when the route samples it.
    pub(crate) fn of(door: &Door, route: &str, request: &ChatRequest) -> Option<Pending> {
        let sampling = door.gateway.inner.sampling.get()?;
        if !sampling.sampler.wants(route) {
            return None;
        }
        let input = Exchange::chat_input(request);
        Some(Pending {
            sampling: Arc::clone(sampling),
            tenant: door.principal.tenant.to_string(),
            route: route.to_owned(),
            request_id: door.id.to_string(),
            input,
            started: door.started,
        })
    }

    /// Offers the streamed answer the client got: `text`, costing `cost_usd`.
    pub(crate) fn offer(self, gw: &Inner, text: String, cost_usd: f64) {
        self.send(gw, Answer::streamed(text, cost_usd));
    }

    fn send(self, gw: &Inner, mut answer: Answer) {
        answer.request_id = Some(self.request_id.clone());
        self.sampling.sampler.offer(Exchange {
            tenant: self.tenant,
            task_type: self.route,
            request_id: self.request_id,
            input: self.input,
            answer,
            latency: gw.clock.now().saturating_duration_since(self.started),
            at_ms: gw.clock.unix_millis(),
        });
    }
}

/// Offers a task that succeeded to the sampler, when its workflow is sampled: its
/// input and output are read from the store on a task of their own, never on the
/// engine's. The suites' own tasks (a gate's, an evaluation's) are not production.
pub(crate) fn offer_task(live: &Weak<Live>, event: &TaskEvent) {
    let TaskEventKind::Succeeded { duration, .. } = event.kind else {
        return;
    };
    let Some(live) = live.upgrade() else {
        return;
    };
    let gw = live.current();
    let Some(sampling) = gw
        .sampling
        .get()
        .filter(|s| s.sampler.wants(&event.workflow))
    else {
        return;
    };
    let (Some(engine), Ok(runtime)) = (gw.engine.get(), tokio::runtime::Handle::try_current())
    else {
        return;
    };
    let (sampling, engine, task_id) = (Arc::clone(sampling), engine.clone(), event.task_id.clone());
    runtime.spawn(async move {
        let task = engine.task(&task_id, &Scope::All).await;
        match task.map(|t| Exchange::of_task(t, duration, gw.clock.unix_millis())) {
            Ok(Some(exchange)) => sampling.sampler.offer(exchange),
            Ok(None) => {}
            Err(e) => tracing::warn!(task_id, error = %e, "a sampled task could not be read"),
        }
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
