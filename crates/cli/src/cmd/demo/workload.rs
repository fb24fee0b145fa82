//! The demo's work: a multi-agent publishing workflow, the steady stream of tasks that
//! runs it, and the simulated editor who answers its approvals.
//!
//! The decision: the demo drives the engine only through the API a user has. Tasks
//! enter with `Engine::submit` (what `POST /v1/tasks` calls) and the editor answers with
//! `Engine::resolve` (what `POST /v1/escalations/{id}/resolve` and the dashboard's
//! inbox call), after a human-ish delay. Nothing is shortcut, so what the demo shows
//! is what a deployment does.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use holdfast_engine::{Engine, Scope, Submission};
use holdfast_policy::{Clock, Rng};
use holdfast_store::{EscalationFilter, Resolution};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The workflow's name.
pub(crate) const WORKFLOW: &str = "demo-article";

/// The route its `llm` steps ask for.
pub(crate) const ROUTE: &str = "writer";

/// Model calls each task makes (`research`, `draft`), when no step runs twice.
pub(crate) const LLM_CALLS_PER_TASK: u64 = 2;

/// Tool calls each task makes (`fact_check`, `publish`, `announce`), compensations
/// aside (they never fail).
pub(crate) const TOOL_CALLS_PER_TASK: u64 = 3;

/// Topics the tasks write about.
const TOPICS: &[&str] = &[
    "circuit breakers",
    "retry budgets",
    "durable workflows",
    "idempotency keys",
    "rate limits",
    "fallback models",
    "compensating transactions",
    "fencing tokens",
];

/// The workflow: research and draft (two model calls), a fact-check (a tool call), an
/// editor's approval (a person), publish and announce (tool calls). A failure after the
/// fact-check withdraws it, and a failed announcement unpublishes the article.
pub(crate) fn definition(tool: &str) -> Value {
    let http_retry = json!({"max_attempts": 4, "base": "100ms", "cap": "1s", "jitter": "full"});
    let llm_retry = json!({"max_attempts": 3, "base": "200ms", "cap": "2s", "jitter": "full"});
    json!({
        "name": WORKFLOW,
        "version": 1,
        "description": "Research a topic, draft an article, fact-check it, ask an editor, \
                        publish and announce it; undo what was done if it fails.",
        "input_schema": {"type": "object", "required": ["topic"]},
        "steps": [
            {"name": "research", "kind": "llm", "route": ROUTE,
             "system": "You are a research agent. List the key facts, briefly.",
             "prompt": "Research this topic: {{ input.topic }}",
             "max_tokens": 200, "timeout": "30s", "retry": llm_retry},
            {"name": "draft", "kind": "llm", "route": ROUTE,
             "system": "You are a writing agent. Write clearly and briefly.",
             "prompt": "Write a short article about {{ input.topic }} from these notes: \
                        {{ steps.research.output }}",
             "max_tokens": 400, "timeout": "30s", "retry": llm_retry},
            {"name": "fact_check", "kind": "http", "method": "POST",
             "url": format!("{tool}/fact-checks"),
             "body": {"task": "{{ task.id }}", "topic": "{{ input.topic }}"},
             "timeout": "5s", "retry": http_retry,
             "compensate": {"kind": "http", "method": "DELETE",
                            "url": format!("{tool}/fact-checks/{{{{ task.id }}}}")}},
            {"name": "approve", "kind": "human",
             "prompt": "Publish this article about {{ input.topic }}?",
             "payload": {"topic": "{{ input.topic }}", "draft": "{{ steps.draft.output }}"},
             "timeout": "1h"},
            {"name": "publish", "kind": "http", "method": "POST",
             "url": format!("{tool}/articles"),
             "body": {"task": "{{ task.id }}", "topic": "{{ input.topic }}"},
             "timeout": "5s", "retry": http_retry,
             "compensate": {"kind": "http", "method": "DELETE",
                            "url": format!("{tool}/articles/{{{{ task.id }}}}")}},
            {"name": "announce", "kind": "http", "method": "POST",
             "url": format!("{tool}/announcements"),
             "body": {"task": "{{ task.id }}"},
             "timeout": "5s", "retry": http_retry}
        ]
    })
}

/// Submits `rate` tasks a second until `until` (or `stop`), evenly spaced.
pub(crate) async fn submit(
    engine: Engine,
    clock: Arc<dyn Clock>,
    rate: f64,
    until: holdfast_policy::Instant,
    seed: u64,
    mut stop: watch::Receiver<bool>,
) {
    let start = clock.now();
    let mut rng = Rng::seeded(seed);
    for n in 0u64.. {
        let at = start + Duration::from_secs_f64(n as f64 / rate);
        if at >= until {
            break;
        }
        tokio::select! {
            () = clock.sleep_until(at) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let index = rng.range_inclusive(0, TOPICS.len() as u64 - 1) as usize;
        let topic = TOPICS.get(index).copied().unwrap_or("resilience");
        let submission = Submission {
            tenant: holdfast_server::OPEN_TENANT.to_owned(),
            workflow: WORKFLOW.to_owned(),
            version: None,
            input: json!({"topic": topic}),
            idempotency_key: Some(format!("demo-{seed}-{n}")),
            traceparent: None,
        };
        if let Err(e) = engine.submit(submission).await {
            tracing::warn!(error = %e, "the demo could not submit a task");
        }
    }
}

/// How the simulated editor answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Answers {
    pub(crate) approved: u64,
    pub(crate) edited: u64,
    pub(crate) rejected: u64,
}

impl Answers {
    pub(crate) fn total(&self) -> u64 {
        self.approved + self.edited + self.rejected
    }
}

/// The editor's tally, shared with the view.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    approved: AtomicU64,
    edited: AtomicU64,
    rejected: AtomicU64,
}

impl Tally {
    pub(crate) fn answers(&self) -> Answers {
        Answers {
            approved: self.approved.load(Ordering::Relaxed),
            edited: self.edited.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
        }
    }
}

/// The simulated editor: looks at the inbox every 100 ms and answers each new
/// escalation after 0.2–1.2 s: approves most, edits some, rejects a few. Runs until
/// `stop`; answers not given by then are dropped.
pub(crate) async fn review(
    (engine, gateway): (Engine, holdfast_server::Gateway),
    clock: Arc<dyn Clock>,
    tally: Arc<Tally>,
    seed: u64,
    mut stop: watch::Receiver<bool>,
) {
    let mut rng = Rng::seeded(seed);
    let mut seen = HashSet::new();
    let mut answering = JoinSet::new();
    let filter = EscalationFilter {
        open_only: true,
        limit: 1000,
        ..EscalationFilter::default()
    };
    loop {
        while answering.try_join_next().is_some() {}
        match engine.escalations(&filter, &Scope::All).await {
            Ok(open) => {
                for escalation in open {
                    if !seen.insert(escalation.escalation_id.clone()) {
                        continue;
                    }
                    let delay = Duration::from_millis(rng.range_inclusive(200, 1200));
                    let resolution = decide(&mut rng, &escalation.payload);
                    let (engine, clock, tally) = (engine.clone(), clock.clone(), tally.clone());
                    let gateway = gateway.clone();
                    let id = escalation.escalation_id;
                    answering.spawn(async move {
                        clock.sleep_until(clock.now() + delay).await;
                        answer((&engine, &gateway), &tally, &id, resolution).await;
                    });
                }
            }
            Err(e) => tracing::warn!(error = %e, "the demo's editor could not read the inbox"),
        }
        let next = clock.now() + Duration::from_millis(100);
        tokio::select! {
            () = clock.sleep_until(next) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    answering.abort_all();
}

/// 85% approve, 10% edit, 5% reject.
fn decide(rng: &mut Rng, payload: &Value) -> Resolution {
    let roll = rng.unit();
    if roll < 0.85 {
        Resolution::Approve
    } else if roll < 0.95 {
        // The editor rewrites the draft: a correction of the `draft` step, which the
        // article library learns from.
        let mut edited = payload.clone();
        if let Some(object) = edited.as_object_mut() {
            let draft = object
                .get("draft")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let rewritten = format!("{draft} (tightened by the editor)");
            object.insert("draft".to_owned(), json!(rewritten));
            object.insert("edited_by".to_owned(), json!("the demo's editor"));
        }
        Resolution::Edit(edited)
    } else {
        Resolution::Reject("off-message for this week".to_owned())
    }
}

async fn answer(
    (engine, gateway): (&Engine, &holdfast_server::Gateway),
    tally: &Tally,
    id: &str,
    resolution: Resolution,
) {
    let counter = match &resolution {
        Resolution::Approve => &tally.approved,
        Resolution::Edit(_) => &tally.edited,
        Resolution::Reject(_) => &tally.rejected,
    };
    match engine
        .resolve(id, &Scope::All, resolution, "demo-editor")
        .await
    {
        Ok(escalation) => {
            counter.fetch_add(1, Ordering::Relaxed);
            gateway.learn_from_escalation(&escalation).await;
        }
        // Already answered (someone used the inbox) or its task was cancelled.
        Err(e) => tracing::info!(escalation = id, error = %e, "the demo's editor was not needed"),
    }
}
