//! The engine end to end on an embedded SQLite store: real HTTP tools on 127.0.0.1,
//! workers claiming jobs with leases, people answering escalations, failures that
//! retry, escalate and compensate.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::any;
use holdfast_engine::egress::{Pattern, Rules};
use holdfast_engine::{
    Engine, EngineError, Failure, Llm, LlmAnswer, LlmRequest, Scope, Settings, Submission,
    TaskEvent,
};
use holdfast_policy::{Outcome, SystemClock};
use holdfast_store::{
    EscalationFilter, FencingToken, JobResult, Resolution, StoreError, Task, TaskFilter, TaskStatus,
};
use serde_json::{Value, json};

/// One call a tool received.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    path: String,
    key: Option<String>,
    fencing: Option<String>,
}

/// A tool server: answers each path with a script of statuses (then 200), records calls.
#[derive(Clone, Default)]
struct Tool {
    calls: Arc<Mutex<Vec<Call>>>,
    script: Arc<Mutex<HashMap<String, Vec<u16>>>>,
}

impl Tool {
    fn fail(&self, path: &str, statuses: &[u16]) {
        self.script
            .lock()
            .unwrap()
            .insert(path.to_string(), statuses.to_vec());
    }
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

async fn tool_handler(
    State(tool): State<Tool>,
    method: Method,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> (StatusCode, axum::Json<Value>) {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    tool.calls.lock().unwrap().push(Call {
        method: method.to_string(),
        path: path.clone(),
        key: header("idempotency-key"),
        fencing: header("x-holdfast-fencing-token"),
    });
    let status = {
        let mut script = tool.script.lock().unwrap();
        match script.get_mut(&path) {
            Some(list) if !list.is_empty() => list.remove(0),
            _ => 200,
        }
    };
    let code = StatusCode::from_u16(status).unwrap();
    (code, axum::Json(json!({"path": path, "ok": status == 200})))
}

async fn start_tool() -> (Tool, String) {
    let tool = Tool::default();
    let app = axum::Router::new()
        .route("/{*path}", any(tool_handler))
        .with_state(tool.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (tool, format!("http://{addr}"))
}

/// A model that answers with the prompt, upper-cased, for a cent.
struct EchoLlm;

#[async_trait]
impl Llm for EchoLlm {
    async fn complete(&self, request: LlmRequest) -> Result<LlmAnswer, Failure> {
        if request.route == "broken" {
            return Err(Failure::new(Outcome::Auth, "no key"));
        }
        if request.output_schema.is_some() {
            return Ok(LlmAnswer {
                text: r#"{"title": "T"}"#.into(),
                cost_usd: 0.01,
                few_shot: None,
            });
        }
        Ok(LlmAnswer {
            text: request.prompt.to_uppercase(),
            cost_usd: 0.01,
            few_shot: None,
        })
    }
}

struct Harness {
    engine: Engine,
    tool: Tool,
    url: String,
    events: Arc<Mutex<Vec<TaskEvent>>>,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn harness(name: &str) -> Harness {
    harness_with(name, "test-node", true).await
}

async fn harness_with(name: &str, node: &str, start: bool) -> Harness {
    let dir = std::env::temp_dir().join(format!("holdfast-engine-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let url = format!("sqlite://{}/h.db", dir.display());
    let store = holdfast_store::open(&url).await.unwrap();
    let events: Arc<Mutex<Vec<TaskEvent>>> = Arc::default();
    let sink = events.clone();
    let (tool, url) = start_tool().await;
    // The tool listens on loopback, which only an allow pattern naming it opens.
    let tool_pattern = Pattern::parse(&format!("{url}/*")).unwrap();
    let settings = Settings {
        node_id: node.into(),
        lease: Duration::from_millis(600),
        poll_interval: Duration::from_millis(20),
        egress: Rules::new(vec![tool_pattern], false),
        ..Settings::default()
    };
    let engine = Engine::new(
        store,
        Arc::new(SystemClock::new()),
        settings,
        Some(Arc::new(EchoLlm)),
        Arc::new(move |e: &TaskEvent| sink.lock().unwrap().push(e.clone())),
    );
    if start {
        let runner = engine.clone();
        tokio::spawn(async move { runner.run(std::future::pending()).await });
    }
    Harness {
        engine,
        tool,
        url,
        events,
        _dir: TempDir(dir),
    }
}

impl Harness {
    async fn submit(&self, workflow: &str, input: Value) -> Task {
        self.engine
            .submit(Submission {
                tenant: "acme".into(),
                workflow: workflow.into(),
                version: None,
                input,
                idempotency_key: None,
                traceparent: None,
            })
            .await
            .unwrap()
            .task()
            .clone()
    }

    async fn until(&self, id: &str, done: impl Fn(&Task) -> bool) -> Task {
        for _ in 0..500 {
            let task = self.engine.task(id, &Scope::All).await.unwrap();
            if done(&task) {
                return task;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let task = self.engine.task(id, &Scope::All).await.unwrap();
        let journal = self.engine.journal(id, &Scope::All, 0, 100).await.unwrap();
        panic!("task never got there: {task:#?}\n{journal:#?}");
    }

    async fn finished(&self, id: &str) -> Task {
        self.until(id, |t| t.status.is_terminal()).await
    }

    async fn journal_kinds(&self, id: &str) -> Vec<String> {
        self.engine
            .journal(id, &Scope::All, 0, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }
}

fn fast_retry() -> Value {
    json!({"max_attempts": 3, "base": "10ms", "cap": "20ms"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_runs_its_steps_in_order_with_one_idempotency_key_per_step() {
    let h = harness("order").await;
    h.engine
        .register(json!({"name": "pipeline", "steps": [
            {"name": "fetch", "kind": "http", "method": "GET", "url": format!("{}/fetch/{{{{ input.topic }}}}", h.url)},
            {"name": "summarise", "kind": "llm", "route": "smart", "prompt": "about {{ input.topic }}: {{ steps.fetch.output.path }}"},
            {"name": "pause", "kind": "sleep", "duration": "5ms"},
            {"name": "title", "kind": "llm", "route": "smart", "prompt": "title", "output_schema": {"type": "object", "required": ["title"]}},
        ]}))
        .await
        .unwrap();
    let task = h.submit("pipeline", json!({"topic": "rust"})).await;
    assert_eq!(task.pending_steps, ["fetch", "summarise", "pause", "title"]);
    let done = h.finished(&task.task_id).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{done:#?}");
    assert_eq!(done.output, Some(json!({"title": "T"})));
    assert_eq!(
        done.completed_steps,
        ["fetch", "summarise", "pause", "title"]
    );
    assert!(done.pending_steps.is_empty());
    assert!((done.cost_usd - 0.02).abs() < 1e-9, "{}", done.cost_usd);
    let steps = h.engine.steps(&task.task_id, &Scope::All).await.unwrap();
    let summary = steps.iter().find(|s| s.name == "summarise").unwrap();
    assert_eq!(summary.output, Some(json!("ABOUT RUST: FETCH/RUST")));
    let calls = h.tool.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].key.as_deref(),
        Some(format!("{}/fetch", task.task_id).as_str())
    );
    let kinds = h.journal_kinds(&task.task_id).await;
    assert_eq!(kinds.first().map(String::as_str), Some("submitted"));
    assert_eq!(kinds.last().map(String::as_str), Some("task_succeeded"));
    assert_eq!(kinds.iter().filter(|k| *k == "step_succeeded").count(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_tool_goes_through_the_retry_queue_with_the_same_key() {
    let h = harness("retry").await;
    h.engine
        .register(json!({"name": "flaky", "steps": [
            {"name": "call", "kind": "http", "url": format!("{}/flaky", h.url), "retry": {"max_attempts": 4, "base": "300ms", "cap": "300ms", "jitter": "none"}},
        ]}))
        .await
        .unwrap();
    h.tool.fail("flaky", &[503, 500]);
    let task = h.submit("flaky", json!({})).await;
    // The first failure puts the step in the retry queue, visible with its time.
    let waiting = h.until(&task.task_id, |t| t.retry_count >= 1).await;
    assert_eq!(waiting.status, TaskStatus::Queued);
    let queue = h.engine.retry_queue(&Scope::All, 10).await.unwrap();
    assert!(
        queue
            .iter()
            .any(|s| s.task_id == task.task_id && s.next_attempt_at_ms.is_some()),
        "{queue:#?}"
    );
    let done = h.finished(&task.task_id).await;
    assert_eq!(done.status, TaskStatus::Succeeded);
    assert_eq!(done.retry_count, 2);
    let keys: Vec<_> = h.tool.calls().into_iter().map(|c| c.key.unwrap()).collect();
    assert_eq!(keys, vec![format!("{}/call", task.task_id); 3]);
    let kinds = h.journal_kinds(&task.task_id).await;
    assert_eq!(kinds.iter().filter(|k| *k == "step_retrying").count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_failure_compensates_in_reverse_order_and_fails_the_task() {
    let h = harness("compensate").await;
    let step = |name: &str| {
        json!({"name": name, "kind": "http", "url": format!("{}/do/{name}", h.url),
        "compensate": {"kind": "http", "method": "DELETE", "url": format!("{}/undo/{name}", h.url)}})
    };
    h.engine
        .register(json!({"name": "saga", "steps": [step("a"), step("b"),
            {"name": "c", "kind": "http", "url": format!("{}/do/c", h.url), "retry": fast_retry()}]}))
        .await
        .unwrap();
    h.tool.fail("do/c", &[400]);
    let task = h.submit("saga", json!({})).await;
    let done = h.finished(&task.task_id).await;
    assert_eq!(done.status, TaskStatus::Failed);
    assert!(
        done.last_error
            .as_deref()
            .unwrap()
            .contains("step \"c\" failed: HTTP 400"),
        "{done:#?}"
    );
    let paths: Vec<_> = h
        .tool
        .calls()
        .into_iter()
        .map(|c| format!("{} {}", c.method, c.path))
        .collect();
    assert_eq!(
        paths,
        [
            "POST do/a",
            "POST do/b",
            "POST do/c",
            "DELETE undo/b",
            "DELETE undo/a"
        ]
    );
    let undo_key = h.tool.calls()[3].key.clone().unwrap();
    assert_eq!(undo_key, format!("{}/b/compensate", task.task_id));
    let kinds = h.journal_kinds(&task.task_id).await;
    assert_eq!(kinds.iter().filter(|k| *k == "compensated").count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_step_is_claimed_with_a_lease_and_a_stale_token_cannot_complete_it() {
    let h = harness("worker").await;
    h.engine
        .register(json!({"name": "render", "steps": [
            {"name": "draw", "kind": "worker", "queue": "gpu", "payload": {"size": "{{ input.size }}"}},
        ]}))
        .await
        .unwrap();
    let task = h.submit("render", json!({"size": 3})).await;
    let waiting = h
        .until(&task.task_id, |t| t.status == TaskStatus::Waiting)
        .await;
    assert_eq!(waiting.pending_steps, ["draw"]);
    let first = h
        .engine
        .claim_jobs("gpu", &Scope::All, "w1", Duration::from_millis(50), 1)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    let job = &first[0];
    assert_eq!(job.payload["input"], json!({"size": 3}));
    assert_eq!(
        job.payload["idempotency_key"],
        json!(format!("{}/draw", task.task_id))
    );
    tokio::time::sleep(Duration::from_millis(80)).await;
    // w1 stalled past its lease; w2 takes the job over with a larger token.
    let second = h
        .engine
        .claim_jobs("gpu", &Scope::All, "w2", Duration::from_secs(5), 1)
        .await
        .unwrap();
    assert_eq!(second.len(), 1);
    assert!(second[0].token > job.token);
    let stale = h
        .engine
        .complete_job(
            &job.job_id,
            &Scope::All,
            job.token,
            JobResult::Succeeded(json!("late")),
        )
        .await;
    assert!(
        matches!(
            stale,
            Err(EngineError::Store(StoreError::StaleLease { .. }))
        ),
        "{stale:?}"
    );
    h.engine
        .complete_job(
            &second[0].job_id,
            &Scope::All,
            second[0].token,
            JobResult::Succeeded(json!({"image": "ok"})),
        )
        .await
        .unwrap();
    let done = h.finished(&task.task_id).await;
    assert_eq!(done.status, TaskStatus::Succeeded);
    assert_eq!(done.output, Some(json!({"image": "ok"})));
    let bogus = h
        .engine
        .complete_job(
            &job.job_id,
            &Scope::All,
            FencingToken(999),
            JobResult::Failed("x".into()),
        )
        .await;
    assert!(bogus.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escalated_task_resumes_with_the_edited_output_and_a_rejected_one_compensates() {
    let h = harness("human").await;
    h.engine
        .register(json!({"name": "publish", "steps": [
            {"name": "draft", "kind": "llm", "route": "smart", "prompt": "draft on {{ input.topic }}",
             "compensate": {"kind": "http", "method": "DELETE", "url": format!("{}/drafts/{{{{ task.id }}}}", h.url)}},
            {"name": "review", "kind": "human", "prompt": "Publish this?", "payload": {"text": "{{ steps.draft.output }}"}},
            {"name": "post", "kind": "http", "url": format!("{}/post", h.url), "body": {"text": "{{ steps.review.output.text }}"}},
        ]}))
        .await
        .unwrap();

    let edited = h.submit("publish", json!({"topic": "tides"})).await;
    h.until(&edited.task_id, |t| t.status == TaskStatus::Waiting)
        .await;
    let open = h
        .engine
        .escalations(
            &EscalationFilter {
                task_id: Some(edited.task_id.clone()),
                ..Default::default()
            },
            &Scope::All,
        )
        .await
        .unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].payload, json!({"text": "DRAFT ON TIDES"}));
    h.engine
        .resolve(
            &open[0].escalation_id,
            &Scope::All,
            Resolution::Edit(json!({"text": "Tides, edited"})),
            "ana",
        )
        .await
        .unwrap();
    let done = h.finished(&edited.task_id).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{done:#?}");
    let steps = h.engine.steps(&edited.task_id, &Scope::All).await.unwrap();
    assert_eq!(
        steps.iter().find(|s| s.name == "review").unwrap().output,
        Some(json!({"text": "Tides, edited"}))
    );

    let rejected = h.submit("publish", json!({"topic": "storms"})).await;
    h.until(&rejected.task_id, |t| t.status == TaskStatus::Waiting)
        .await;
    let open = h
        .engine
        .escalations(
            &EscalationFilter {
                task_id: Some(rejected.task_id.clone()),
                ..Default::default()
            },
            &Scope::All,
        )
        .await
        .unwrap();
    h.engine
        .resolve(
            &open[0].escalation_id,
            &Scope::All,
            Resolution::Reject("off-topic".into()),
            "ana",
        )
        .await
        .unwrap();
    let done = h.finished(&rejected.task_id).await;
    assert_eq!(done.status, TaskStatus::Failed);
    assert!(
        done.last_error
            .as_deref()
            .unwrap()
            .contains("rejected by ana: off-topic"),
        "{done:#?}"
    );
    let undo: Vec<_> = h
        .tool
        .calls()
        .into_iter()
        .filter(|c| c.method == "DELETE")
        .map(|c| c.path)
        .collect();
    assert_eq!(undo, [format!("drafts/{}", rejected.task_id)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_step_escalates_and_approval_retries_it() {
    let h = harness("escalate").await;
    h.engine
        .register(json!({"name": "charge", "steps": [
            {"name": "pay", "kind": "http", "url": format!("{}/pay", h.url), "retry": fast_retry(), "on_exhausted": "escalate"},
        ]}))
        .await
        .unwrap();
    h.tool.fail("pay", &[500, 500, 500]);
    let task = h.submit("charge", json!({})).await;
    let waiting = h
        .until(&task.task_id, |t| t.status == TaskStatus::Waiting)
        .await;
    assert_eq!(waiting.retry_count, 2);
    let open = h
        .engine
        .escalations(&EscalationFilter::default(), &Scope::All)
        .await
        .unwrap();
    let mine: Vec<_> = open.iter().filter(|e| e.task_id == task.task_id).collect();
    assert_eq!(mine.len(), 1);
    assert!(
        mine[0].reason.contains("failed after 3 attempt(s)"),
        "{:?}",
        mine[0].reason
    );
    h.engine
        .resolve(
            &mine[0].escalation_id,
            &Scope::All,
            Resolution::Approve,
            "ops",
        )
        .await
        .unwrap();
    let done = h.finished(&task.task_id).await;
    assert_eq!(done.status, TaskStatus::Succeeded);
    assert_eq!(h.tool.calls().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_and_parallel_steps() {
    let h = harness("parallel").await;
    h.engine
        .register(json!({"name": "fan", "steps": [
            {"name": "a", "kind": "http", "url": format!("{}/a", h.url)},
            {"name": "b", "kind": "http", "url": format!("{}/b", h.url), "depends_on": [], "on_exhausted": "skip", "retry": fast_retry()},
            {"name": "c", "kind": "llm", "route": "smart", "prompt": "{{ steps.a.output.path }} {{ steps.b.output }}", "depends_on": ["a", "b"]},
        ]}))
        .await
        .unwrap();
    h.tool.fail("b", &[401]);
    let task = h.submit("fan", json!({})).await;
    let done = h.finished(&task.task_id).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{done:#?}");
    assert_eq!(done.output, Some(json!("A NONE")));
    let kinds = h.journal_kinds(&task.task_id).await;
    assert!(kinds.contains(&"step_skipped".to_string()), "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_its_path_and_nothing_is_stored() {
    let h = harness("input").await;
    h.engine
        .register(json!({"name": "typed", "input_schema": {"type": "object", "required": ["topic"],
            "properties": {"topic": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}}},
            "steps": [{"name": "a", "kind": "sleep", "duration": "1ms"}]}))
        .await
        .unwrap();
    let refused = h
        .engine
        .submit(Submission {
            tenant: "acme".into(),
            workflow: "typed".into(),
            version: None,
            input: json!({"topic": 3, "tags": ["x", 4]}),
            idempotency_key: None,
            traceparent: None,
        })
        .await;
    let Err(EngineError::Invalid { problems }) = refused else {
        panic!("{refused:?}")
    };
    let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
    assert!(
        paths.contains(&"input.topic") && paths.contains(&"input.tags[1]"),
        "{problems:?}"
    );
    let big = json!({"topic": "x".repeat(300 * 1024)});
    let refused = h
        .engine
        .submit(Submission {
            tenant: "acme".into(),
            workflow: "typed".into(),
            version: None,
            input: big,
            idempotency_key: None,
            traceparent: None,
        })
        .await;
    let Err(EngineError::Invalid { problems }) = refused else {
        panic!("{refused:?}")
    };
    assert_eq!(problems[0].path, "input");
    let missing = h
        .engine
        .submit(Submission {
            tenant: "acme".into(),
            workflow: "nope".into(),
            version: None,
            input: json!({}),
            idempotency_key: None,
            traceparent: None,
        })
        .await;
    assert!(
        matches!(missing, Err(EngineError::NotFound { .. })),
        "{missing:?}"
    );
    let bad_def = h
        .engine
        .register(json!({"name": "x", "steps": [{"name": "a", "kind": "warp"}]}))
        .await;
    assert!(matches!(bad_def, Err(EngineError::Invalid { .. })));
    assert!(
        h.engine
            .tasks(&TaskFilter::default(), &Scope::All)
            .await
            .unwrap()
            .tasks
            .is_empty()
    );
    assert_eq!(h.engine.workflows().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_submission_returns_the_same_task_and_versions_stick() {
    let h = harness("dup").await;
    let v1 = json!({"name": "v", "version": 1, "steps": [{"name": "a", "kind": "worker", "queue": "q"}]});
    h.engine.register(v1.clone()).await.unwrap();
    let sub = Submission {
        tenant: "acme".into(),
        workflow: "v".into(),
        version: None,
        input: json!({}),
        idempotency_key: Some("order-7".into()),
        traceparent: None,
    };
    let first = h.engine.submit(sub.clone()).await.unwrap();
    let again = h.engine.submit(sub).await.unwrap();
    assert!(matches!(again, holdfast_store::Submitted::Existing(_)));
    assert_eq!(first.task().task_id, again.task().task_id);
    h.engine
        .register(json!({"name": "v", "version": 2, "steps": [{"name": "b", "kind": "sleep", "duration": "1ms"}]}))
        .await
        .unwrap();
    // The first task keeps version 1 (a worker step) though version 2 is now the latest.
    let waiting = h
        .until(&first.task().task_id, |t| t.status == TaskStatus::Waiting)
        .await;
    assert_eq!(waiting.workflow_version, 1);
    let changed = h.engine.register(json!({"name": "v", "version": 1, "steps": [{"name": "z", "kind": "sleep", "duration": "1ms"}]})).await;
    assert!(
        matches!(
            changed,
            Err(EngineError::Store(StoreError::Conflict { .. }))
        ),
        "{changed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_is_its_tenants_own_and_cannot_name_another_submission() {
    let h = harness("tenant-keys").await;
    let wf = json!({"name": "v", "version": 1, "steps": [{"name": "a", "kind": "worker", "queue": "q"}]});
    h.engine.register(wf).await.unwrap();
    let sub = |tenant: &str, input: Value| Submission {
        tenant: tenant.into(),
        workflow: "v".into(),
        version: None,
        input,
        idempotency_key: Some("order-1".into()),
        traceparent: None,
    };
    let acme = h.engine.submit(sub("acme", json!({"n": 1}))).await.unwrap();
    let globex = h
        .engine
        .submit(sub("globex", json!({"n": 1})))
        .await
        .unwrap();
    assert!(
        matches!(globex, holdfast_store::Submitted::Created(_)),
        "{globex:?}"
    );
    assert_ne!(acme.task().task_id, globex.task().task_id);
    let other_input = h.engine.submit(sub("acme", json!({"n": 2}))).await;
    let Err(EngineError::Conflict { reason, .. }) = other_input else {
        panic!("expected a conflict, got {other_input:?}")
    };
    assert!(reason.contains(&acme.task().task_id), "{reason}");
    assert!(!reason.contains(&globex.task().task_id), "{reason}");

    // Another tenant's task is absent, whatever is asked of it.
    let acme_id = acme.task().task_id.clone();
    let globex_only = Scope::Tenant("globex".into());
    let absent = |r: Result<_, EngineError>| matches!(r, Err(EngineError::NotFound { .. }));
    assert!(absent(
        h.engine.task(&acme_id, &globex_only).await.map(|_| ())
    ));
    assert!(absent(
        h.engine.steps(&acme_id, &globex_only).await.map(|_| ())
    ));
    assert!(absent(
        h.engine
            .journal(&acme_id, &globex_only, 0, 10)
            .await
            .map(|_| ())
    ));
    assert!(absent(
        h.engine
            .cancel(&acme_id, &globex_only, "x")
            .await
            .map(|_| ())
    ));
    let acme_task = h
        .engine
        .task(&acme_id, &Scope::Tenant("acme".into()))
        .await
        .unwrap();
    assert_ne!(acme_task.status, TaskStatus::Cancelled);
    let listed = h
        .engine
        .tasks(&TaskFilter::default(), &globex_only)
        .await
        .unwrap();
    assert_eq!(listed.tasks.len(), 1);
    assert_eq!(listed.tasks[0].tenant, "globex");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_holding_a_lock_carry_its_growing_fencing_token() {
    let h = harness("lock").await;
    h.engine
        .register(
            json!({"name": "account", "lock": "account:{{ input.id }}", "steps": [
                {"name": "write", "kind": "http", "url": format!("{}/write", h.url)},
            ]}),
        )
        .await
        .unwrap();
    let a = h.submit("account", json!({"id": 7})).await;
    let b = h.submit("account", json!({"id": 7})).await;
    h.finished(&a.task_id).await;
    h.finished(&b.task_id).await;
    let tokens: Vec<u64> = h
        .tool
        .calls()
        .iter()
        .map(|c| c.fencing.as_deref().unwrap().parse().unwrap())
        .collect();
    assert_eq!(tokens.len(), 2);
    assert!(tokens[1] > tokens[0], "{tokens:?}");
    let events = h.events.lock().unwrap().clone();
    assert!(events.iter().any(|e| e.task_id == a.task_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_takes_its_own_tasks_back_at_once_and_others_after_the_lease() {
    let h = harness_with("restart", "node-a", false).await;
    h.engine
        .register(json!({"name": "one", "steps": [{"name": "a", "kind": "http", "url": format!("{}/a", h.url)}]}))
        .await
        .unwrap();
    let mine = h.submit("one", json!({})).await;
    let theirs = h.submit("one", json!({})).await;
    let store = h.engine.store().clone();
    let now = SystemClock::new();
    use holdfast_policy::Clock;
    // Two nodes claimed a task each, then died: leases of 60 s and 0.6 s.
    let a = store
        .claim_tasks("node-a", Duration::from_secs(60), 1, now.unix_millis())
        .await
        .unwrap();
    let b = store
        .claim_tasks("node-b", Duration::from_millis(600), 1, now.unix_millis())
        .await
        .unwrap();
    assert_eq!(a[0].task.task_id, mine.task_id);
    assert_eq!(b[0].task.task_id, theirs.task_id);
    let started = std::time::Instant::now();
    let runner = h.engine.clone();
    tokio::spawn(async move { runner.run(std::future::pending()).await });
    h.finished(&mine.task_id).await;
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    let done = h.finished(&theirs.task_id).await;
    assert_eq!(done.status, TaskStatus::Succeeded);
    let kinds = h.journal_kinds(&theirs.task_id).await;
    assert!(kinds.contains(&"taken_over".to_string()), "{kinds:?}");
    assert_eq!(h.tool.calls().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_sleeps_and_unanswered_escalations_fire_their_timers() {
    let h = harness("timers").await;
    h.engine
        .register(json!({"name": "timed", "steps": [
            {"name": "nap", "kind": "sleep", "duration": "300ms"},
            {"name": "ask", "kind": "human", "prompt": "ok?", "payload": {"go": true}, "timeout": "300ms", "on_timeout": "approve"},
            {"name": "ask2", "kind": "human", "prompt": "still ok?", "timeout": "300ms", "on_timeout": "skip"},
        ]}))
        .await
        .unwrap();
    let task = h.submit("timed", json!({})).await;
    let napping = h
        .until(&task.task_id, |t| t.status == TaskStatus::Waiting)
        .await;
    assert!(napping.next_run_at_ms.is_some(), "{napping:#?}");
    let done = h.finished(&task.task_id).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{done:#?}");
    let steps = h.engine.steps(&task.task_id, &Scope::All).await.unwrap();
    let ask = steps.iter().find(|s| s.name == "ask").unwrap();
    assert_eq!(ask.output, Some(json!({"go": true})));
    let ask2 = steps.iter().find(|s| s.name == "ask2").unwrap();
    assert_eq!(ask2.status, holdfast_store::StepStatus::Skipped);
    let escs = h
        .engine
        .escalations(
            &EscalationFilter {
                open_only: false,
                task_id: Some(task.task_id.clone()),
                limit: 10,
                ..EscalationFilter::default()
            },
            &Scope::All,
        )
        .await
        .unwrap();
    assert!(
        escs.iter()
            .all(|e| e.resolved_by.as_deref() == Some("holdfast:timeout")),
        "{escs:#?}"
    );
}
