//! The workflow API over HTTP: an in-process server with a temporary SQLite store, a
//! real engine, a mock LLM provider for `llm` steps and a small axum tool server for
//! `http` steps. Every endpoint, the bad inputs that must leave nothing stored, a
//! worker whose lease expired being refused, and the escalation inbox (approve, edit,
//! reject) driving a workflow of http + human + worker steps.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use holdfast_engine::egress::{Pattern, Rules};
use holdfast_engine::{Engine, Settings};
use holdfast_policy::SystemClock;
use holdfast_server::Gateway;
use serde_json::{Value, json};
use support::{Mock, config, openai_provider, target};
use tokio::sync::oneshot;

const KEY: &str = "test-client-key";

/// Idempotency keys the tool server saw, in order.
type Seen = Arc<Mutex<Vec<String>>>;

/// The tool server: `POST /tool` echoes its body and records its Idempotency-Key;
/// `POST /flaky` always answers 503.
async fn tool_server() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = Arc::clone(&seen);
    let app = axum::Router::new()
        .route(
            "/tool",
            post(move |headers: HeaderMap, Json(body): Json<Value>| {
                let record = Arc::clone(&record);
                async move {
                    let key = headers
                        .get("idempotency-key")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    record.lock().unwrap().push(key);
                    Json(json!({"fetched": body}))
                }
            }),
        )
        .route(
            "/flaky",
            post(|| async { (StatusCode::SERVICE_UNAVAILABLE, "try later") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, seen)
}

/// A server with an engine over a fresh SQLite file.
struct Server {
    base: String,
    client: reqwest::Client,
    tools: String,
    tool_keys: Seen,
    mock: Mock,
    _stop: oneshot::Sender<()>,
    _stop_engine: Option<oneshot::Sender<()>>,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir() -> TempDir {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("holdfast-engine-api-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

impl Server {
    async fn start() -> Server {
        Server::start_with(true, "").await
    }

    /// A server with an engine or not; `key_extra` adds lines to the client key.
    async fn start_with(engine: bool, key_extra: &str) -> Server {
        let mock = Mock::openai("").await;
        let toml = format!(
            "[server]\nbody_limit = \"64KiB\"\n[[client_keys]]\nname = \"ops\"\nkey_env = \"K\"\nrole = \"admin\"\n{key_extra}\n{}{}[routes.smart]\ntargets = [\"a\"]\n",
            openai_provider("p", &mock),
            target("a", "p", 100_000)
        );
        let config = config(&toml, &[("K", KEY)]);
        let clock = Arc::new(SystemClock::new());
        let mut gateway = Gateway::new(&config, clock.clone()).unwrap();
        let dir = temp_dir();
        let (stop, stopped) = oneshot::channel::<()>();
        let stopped = async move {
            let _ = stopped.await;
        };
        let (tools, tool_keys) = tool_server().await;
        let mut stop_engine = None;
        if engine {
            let url = format!("sqlite://{}/holdfast.db", dir.0.display());
            let store = holdfast_store::open(&url).await.unwrap();
            let settings = Settings {
                node_id: "test-node".into(),
                lease: Duration::from_secs(5),
                poll_interval: Duration::from_millis(20),
                // The tools listen on loopback, which only a pattern naming them opens.
                egress: Rules::new(vec![Pattern::parse(&format!("{tools}/*")).unwrap()], false),
                ..Settings::default()
            };
            let engine = Engine::new(
                store,
                clock,
                settings,
                Some(gateway.llm()),
                gateway.task_events(),
            );
            gateway = gateway.with_engine(engine.clone());
            let (engine_stop, engine_stopped) = oneshot::channel::<()>();
            tokio::spawn(async move {
                engine
                    .run(async move {
                        let _ = engine_stopped.await;
                    })
                    .await;
            });
            stop_engine = Some(engine_stop);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(holdfast_server::serve(listener, gateway, stopped));
        Server {
            base,
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            tools,
            tool_keys,
            mock,
            _stop: stop,
            _stop_engine: stop_engine,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let mut request = self
            .client
            .request(method.parse().unwrap(), self.url(path))
            .bearer_auth(KEY);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, None).await
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send("POST", path, Some(&body.to_string())).await
    }

    /// Polls `path` until `done` holds of its body, for at most 10 s.
    async fn wait_for(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..500 {
            let (status, body) = self.get(path).await;
            if status == 200 && done(&body) {
                return body;
            }
            pause(Duration::from_millis(20)).await;
        }
        panic!(
            "{path} never satisfied the condition; last: {:?}",
            self.get(path).await
        );
    }

    async fn wait_status(&self, task_id: &str, status: &str) -> Value {
        self.wait_for(&format!("/v1/tasks/{task_id}"), |t| t["status"] == status)
            .await
    }

    /// Claims one job of `queue`, waiting for one to appear.
    async fn claim(&self, queue: &str, worker: &str, lease_ms: u64) -> Value {
        for _ in 0..500 {
            let (status, body) = self
                .post(
                    "/v1/workers/claim",
                    &json!({"queue": queue, "worker_id": worker, "lease_ms": lease_ms}),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            if let Some(job) = body["jobs"].as_array().and_then(|j| j.first()) {
                return job.clone();
            }
            pause(Duration::from_millis(20)).await;
        }
        panic!("no job appeared on {queue}");
    }

    /// The open escalation of `task_id`, waiting for it.
    async fn escalation(&self, task_id: &str) -> Value {
        let list = self
            .wait_for(&format!("/v1/escalations?task_id={task_id}"), |b| {
                b["escalations"].as_array().is_some_and(|l| !l.is_empty())
            })
            .await;
        list["escalations"][0].clone()
    }

    /// The review workflow: fetch (http) → review (human) → publish (worker).
    fn review_workflow(&self, name: &str) -> Value {
        json!({
            "name": name,
            "version": 1,
            "input_schema": {"type": "object", "required": ["topic"],
                             "properties": {"topic": {"type": "string"}}},
            "steps": [
                {"name": "fetch", "kind": "http", "method": "POST", "url": format!("{}/tool", self.tools),
                 "body": {"topic": "{{ input.topic }}"}},
                {"name": "review", "kind": "human", "prompt": "Publish {{ input.topic }}?",
                 "payload": {"draft": "{{ steps.fetch.output.fetched.topic }}"}},
                {"name": "publish", "kind": "worker", "queue": "publisher",
                 "payload": {"draft": "{{ steps.review.output }}"}}
            ]
        })
    }

    async fn register(&self, definition: &Value) {
        let (status, body) = self.post("/v1/workflows", definition).await;
        assert!(status == 201 || status == 200, "{status} {body}");
    }

    async fn submit(&self, workflow: &str, input: Value) -> String {
        let (status, body) = self
            .post("/v1/tasks", &json!({"workflow": workflow, "input": input}))
            .await;
        assert_eq!(status, 201, "{body}");
        body["task_id"].as_str().unwrap().to_owned()
    }
}

#[allow(clippy::disallowed_methods)] // waits for a real server in real time
async fn pause(d: Duration) {
    tokio::time::sleep(d).await;
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_register_once_and_read_back() {
    let s = Server::start().await;
    let def = s.review_workflow("review");
    let (status, body) = s.post("/v1/workflows", &def).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["name"].as_str(), body["version"].as_u64()),
        (Some("review"), Some(1))
    );
    let (status, again) = s.post("/v1/workflows", &def).await;
    assert_eq!(status, 200, "the same definition again is a no-op");
    assert_eq!(again["created_at_ms"], body["created_at_ms"]);

    let mut changed = def.clone();
    changed["steps"][1]["prompt"] = json!("Ship it?");
    let (status, conflict) = s.post("/v1/workflows", &changed).await;
    assert_eq!((status, code(&conflict)), (409, "conflict"), "{conflict}");

    changed["version"] = json!(2);
    assert_eq!(s.post("/v1/workflows", &changed).await.0, 201);
    let (_, list) = s.get("/v1/workflows").await;
    assert_eq!(list["workflows"].as_array().unwrap().len(), 2);
    let (_, latest) = s.get("/v1/workflows/review").await;
    assert_eq!(latest["version"], 2);
    let (_, v1) = s.get("/v1/workflows/review/versions/1").await;
    assert_eq!(
        v1["definition"]["steps"][1]["prompt"],
        "Publish {{ input.topic }}?"
    );
    assert_eq!(s.get("/v1/workflows/review/versions/9").await.0, 404);
    assert_eq!(s.get("/v1/workflows/review/versions/x").await.0, 400);
    assert_eq!(s.get("/v1/workflows/nothing").await.0, 404);

    let toml =
        "name = \"from-toml\"\n[[steps]]\nname = \"nap\"\nkind = \"sleep\"\nduration = \"10ms\"\n";
    let response = s
        .client
        .post(s.url("/v1/workflows"))
        .bearer_auth(KEY)
        .header("content-type", "application/toml")
        .body(toml)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_definitions_and_bodies_are_refused_and_store_nothing() {
    let s = Server::start().await;
    let (status, body) = s.send("POST", "/v1/workflows", Some("{not json")).await;
    assert_eq!((status, code(&body)), (400, "invalid_json"), "{body}");

    let bad = json!({"name": "bad", "steps": [
        {"name": "a", "kind": "http", "url": "http://x/{{ steps.nope.output }}"},
        {"name": "b", "kind": "teleport"}
    ]});
    let (status, body) = s.post("/v1/workflows", &bad).await;
    assert_eq!((status, code(&body)), (400, "invalid_input"), "{body}");
    let problems = body["error"]["problems"].as_array().unwrap();
    assert!(!problems.is_empty(), "{body}");
    assert!(
        problems
            .iter()
            .all(|p| p["path"].as_str().unwrap().starts_with("steps[")),
        "{body}"
    );
    let (status, body) = s
        .post(
            "/v1/workflows",
            &json!({"name": "x", "steps": [], "colour": 1}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("colour"),
        "{body}"
    );
    let (_, list) = s.get("/v1/workflows").await;
    assert_eq!(list["workflows"], json!([]), "nothing was stored");

    s.register(&s.review_workflow("review")).await;
    let cases: &[(&str, &str)] = &[
        ("{", "invalid_json"),
        (r#"{"workflow": "review"}"#, "invalid_json"),
        (r#"{"workflow": 7, "input": {}}"#, "invalid_json"),
        (
            r#"{"workflow": "review", "input": {"topic": "x"}, "colour": 1}"#,
            "invalid_json",
        ),
        (
            r#"{"workflow": "review", "input": {"topic": 5}}"#,
            "invalid_input",
        ),
        (r#"{"workflow": "review", "input": {}}"#, "invalid_input"),
        (
            r#"{"workflow": "review", "version": "one", "input": {"topic": "x"}}"#,
            "invalid_json",
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) = s.send("POST", "/v1/tasks", Some(body)).await;
        assert_eq!(
            (status, code(&answer)),
            (400, *expected),
            "{body}: {answer}"
        );
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    }
    let (status, answer) = s
        .post(
            "/v1/tasks",
            &json!({"workflow": "review", "input": {"topic": 5}}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        answer["error"]["problems"][0]["path"], "input.topic",
        "{answer}"
    );
    let (status, answer) = s
        .post("/v1/tasks", &json!({"workflow": "nothing", "input": {}}))
        .await;
    assert_eq!((status, code(&answer)), (404, "not_found"), "{answer}");
    let big = json!({"workflow": "review", "input": {"topic": "x".repeat(70_000)}});
    let (status, answer) = s.post("/v1/tasks", &big).await;
    assert_eq!(
        (status, code(&answer)),
        (413, "request_too_large"),
        "{answer}"
    );
    let (_, tasks) = s.get("/v1/tasks").await;
    assert_eq!(tasks["tasks"], json!([]), "no task was stored");

    for path in [
        "/v1/tasks?status=bogus",
        "/v1/tasks?limit=0",
        "/v1/tasks?limit=many",
        "/v1/tasks?colour=red",
        "/v1/escalations?status=closed",
        "/v1/retry-queue?limit=100000",
    ] {
        let (status, answer) = s.get(path).await;
        assert_eq!(status, 400, "{path}: {answer}");
    }
    assert_eq!(s.get("/v1/tasks/t-none").await.0, 404);
    assert_eq!(s.get("/v1/tasks/t-none/steps").await.0, 404);
    assert_eq!(s.get("/v1/tasks/t-none/journal").await.0, 404);
    assert_eq!(s.post("/v1/tasks/t-none/cancel", &json!({})).await.0, 404);
    assert_eq!(s.get("/v1/escalations/e-none").await.0, 404);

    let (status, answer) = s.post("/v1/workers/claim", &json!({"queue": "q"})).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("worker_id"),
        "{answer}"
    );
    let (status, _) = s
        .post(
            "/v1/workers/claim",
            &json!({"queue": "q", "worker_id": "w", "lease_ms": 0}),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = s
        .post(
            "/v1/workers/jobs/j/complete",
            &json!({"token": 1, "output": 1, "error": "x"}),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = s
        .post("/v1/workers/jobs/j/complete", &json!({"token": 1}))
        .await;
    assert_eq!(status, 400);
    let (status, _) = s
        .post("/v1/workers/jobs/j/heartbeat", &json!({"token": "one"}))
        .await;
    assert_eq!(status, 400);
    let (status, _) = s
        .post("/v1/escalations/e/resolve", &json!({"action": "maybe"}))
        .await;
    assert_eq!(status, 400);
    let (status, _) = s
        .post("/v1/escalations/e/resolve", &json!({"action": "edit"}))
        .await;
    assert_eq!(status, 400);
    let (status, _) = s
        .post(
            "/v1/escalations/e/resolve",
            &json!({"action": "approve", "value": 1}),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_required_and_no_engine_is_a_503() {
    let s = Server::start_with(false, "").await;
    let response = s.client.get(s.url("/v1/tasks")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let response = s
        .client
        .get(s.url("/v1/tasks"))
        .header("x-api-key", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let (status, body) = s.get("/v1/tasks").await;
    assert_eq!((status, code(&body)), (503, "engine_unavailable"), "{body}");
    let (status, body) = s.post("/v1/workflows", &json!({"name": "x"})).await;
    assert_eq!((status, code(&body)), (503, "engine_unavailable"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_runs_the_workflow_to_the_end() {
    let s = Server::start().await;
    s.register(&s.review_workflow("review")).await;
    let task_id = s.submit("review", json!({"topic": "rust"})).await;

    let esc = s.escalation(&task_id).await;
    assert_eq!(esc["status"], "open");
    assert_eq!(esc["step"], "review");
    assert_eq!(esc["payload"]["draft"], "rust", "{esc}");
    let id = esc["escalation_id"].as_str().unwrap();
    let (status, single) = s.get(&format!("/v1/escalations/{id}")).await;
    assert_eq!(
        (status, &single["escalation_id"]),
        (200, &esc["escalation_id"])
    );

    let waiting = s.wait_status(&task_id, "waiting").await;
    assert_eq!(waiting["completed_steps"], json!(["fetch"]));
    // The last result committed: the human step, recorded as waiting.
    assert_eq!(waiting["last_checkpoint"]["step"], "review", "{waiting}");
    assert!(waiting["last_checkpoint"]["at_ms"].as_u64().unwrap() > 0);

    // Who decided is the key's name: a name in the body is refused, not recorded.
    let (status, named) = s
        .post(
            &format!("/v1/escalations/{id}/resolve"),
            &json!({"action": "approve", "by": "ana"}),
        )
        .await;
    assert_eq!((status, code(&named)), (400, "invalid_request"), "{named}");
    let (status, resolved) = s
        .post(
            &format!("/v1/escalations/{id}/resolve"),
            &json!({"action": "approve"}),
        )
        .await;
    assert_eq!(status, 200, "{resolved}");
    assert_eq!(
        (
            resolved["status"].as_str(),
            resolved["resolved_by"].as_str()
        ),
        (Some("approved"), Some("ops"))
    );
    let (status, again) = s
        .post(
            &format!("/v1/escalations/{id}/resolve"),
            &json!({"action": "reject"}),
        )
        .await;
    assert_eq!((status, code(&again)), (409, "conflict"), "{again}");

    let job = s.claim("publisher", "worker-1", 30_000).await;
    assert_eq!(job["task_id"], task_id.as_str());
    assert_eq!(job["step"], "publish");
    assert_eq!(job["idempotency_key"], format!("{task_id}/publish"));
    assert_eq!(
        job["payload"]["idempotency_key"],
        format!("{task_id}/publish")
    );
    let job_id = job["job_id"].as_str().unwrap();
    let token = job["token"].as_u64().unwrap();
    let (status, beat) = s
        .post(
            &format!("/v1/workers/jobs/{job_id}/heartbeat"),
            &json!({"token": token, "lease_ms": 20_000}),
        )
        .await;
    assert_eq!(status, 200, "{beat}");
    assert!(beat["lease_expires_at_ms"].as_u64().unwrap() > 0);
    let (status, done) = s
        .post(
            &format!("/v1/workers/jobs/{job_id}/complete"),
            &json!({"token": token, "output": {"url": "https://x/1"}}),
        )
        .await;
    assert_eq!(status, 200, "{done}");

    let task = s.wait_status(&task_id, "succeeded").await;
    for field in [
        "task_id",
        "workflow",
        "workflow_version",
        "status",
        "input",
        "output",
        "completed_steps",
        "pending_steps",
        "retry_count",
        "last_error",
        "last_checkpoint",
        "cost_usd",
        "created_at_ms",
        "updated_at_ms",
        "next_run_at_ms",
    ] {
        assert!(task.get(field).is_some(), "{field} missing from {task}");
    }
    assert_eq!(task["output"], json!({"url": "https://x/1"}));
    assert_eq!(
        task["completed_steps"],
        json!(["fetch", "review", "publish"])
    );
    assert_eq!(task["pending_steps"], json!([]));
    assert_eq!(task["last_checkpoint"]["step"], "publish");
    assert_eq!(
        *s.tool_keys.lock().unwrap(),
        [format!("{task_id}/fetch")],
        "the http step sent its key"
    );

    let (_, steps) = s.get(&format!("/v1/tasks/{task_id}/steps")).await;
    assert_eq!(steps["steps"].as_array().unwrap().len(), 3, "{steps}");
    let (_, journal) = s.get(&format!("/v1/tasks/{task_id}/journal")).await;
    let entries = journal["entries"].as_array().unwrap();
    assert!(entries.len() >= 4, "{journal}");
    assert_eq!(entries[0]["seq"], 1);
    let (_, later) = s
        .get(&format!("/v1/tasks/{task_id}/journal?after=2&limit=1"))
        .await;
    assert_eq!(later["entries"][0]["seq"], 3, "{later}");

    let (_, list) = s.get("/v1/tasks?status=succeeded&workflow=review").await;
    assert_eq!(list["tasks"][0]["task_id"], task_id.as_str());
    let (_, none) = s.get("/v1/tasks?status=failed").await;
    assert_eq!(none["tasks"], json!([]));
    let (_, all) = s.get("/v1/escalations?status=all").await;
    assert_eq!(all["escalations"].as_array().unwrap().len(), 1);
    let (_, open) = s.get("/v1/escalations").await;
    assert_eq!(open["escalations"], json!([]));

    let metrics = s
        .client
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "holdfast_tasks_total{workflow=\"review\",status=\"submitted\"} 1",
        "holdfast_tasks_total{workflow=\"review\",status=\"succeeded\"} 1",
        "holdfast_task_steps_total{workflow=\"review\",kind=\"http\",result=\"succeeded\"} 1",
        "holdfast_escalations_total{workflow=\"review\"} 1",
        "holdfast_task_step_duration_seconds_count{kind=\"http\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_replaces_the_output_and_reject_fails_the_task() {
    let s = Server::start().await;
    s.register(&s.review_workflow("review")).await;

    let edited = s.submit("review", json!({"topic": "a"})).await;
    let esc = s.escalation(&edited).await;
    let id = esc["escalation_id"].as_str().unwrap();
    let (status, body) = s
        .post(
            &format!("/v1/escalations/{id}/resolve"),
            &json!({"action": "edit", "value": {"draft": "better"}}),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("edited")),
        "{body}"
    );
    assert_eq!(
        body["resolution"],
        json!({"action": "edit", "value": {"draft": "better"}})
    );
    let job = s.claim("publisher", "w", 30_000).await;
    assert_eq!(job["task_id"], edited.as_str());
    let steps = s
        .wait_for(&format!("/v1/tasks/{edited}/steps"), |b| {
            b["steps"].as_array().is_some_and(|l| {
                l.iter()
                    .any(|st| st["name"] == "review" && st["status"] == "succeeded")
            })
        })
        .await;
    let review = steps["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["name"] == "review")
        .unwrap()
        .clone();
    assert_eq!(review["output"], json!({"draft": "better"}));
    assert!(job["payload"].to_string().contains("better"), "{job}");

    let rejected = s.submit("review", json!({"topic": "b"})).await;
    let esc = s.escalation(&rejected).await;
    let id = esc["escalation_id"].as_str().unwrap();
    let (status, body) = s
        .post(
            &format!("/v1/escalations/{id}/resolve"),
            &json!({"action": "reject", "reason": "off topic"}),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("rejected")),
        "{body}"
    );
    let task = s.wait_status(&rejected, "failed").await;
    assert!(
        task["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("off topic"),
        "{task}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_lease_expired_cannot_complete_its_step() {
    let s = Server::start().await;
    s.register(
        &json!({"name": "work", "steps": [{"name": "job", "kind": "worker", "queue": "slow"}]}),
    )
    .await;
    let task_id = s.submit("work", json!({})).await;
    let first = s.claim("slow", "worker-1", 150).await;
    pause(Duration::from_millis(400)).await;
    let second = s.claim("slow", "worker-2", 30_000).await;
    assert_eq!(
        first["job_id"], second["job_id"],
        "the expired job was claimed again"
    );
    let old = first["token"].as_u64().unwrap();
    let new = second["token"].as_u64().unwrap();
    assert!(new > old, "tokens only grow: {old} then {new}");
    let job_id = first["job_id"].as_str().unwrap();

    let (status, body) = s
        .post(
            &format!("/v1/workers/jobs/{job_id}/complete"),
            &json!({"token": old, "output": "late"}),
        )
        .await;
    assert_eq!((status, code(&body)), (409, "stale_lease"), "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("stale"),
        "{body}"
    );
    let (status, body) = s
        .post(
            &format!("/v1/workers/jobs/{job_id}/heartbeat"),
            &json!({"token": old}),
        )
        .await;
    assert_eq!((status, code(&body)), (409, "stale_lease"), "{body}");

    let (status, body) = s
        .post(
            &format!("/v1/workers/jobs/{job_id}/complete"),
            &json!({"token": new, "output": "on time"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let task = s.wait_status(&task_id, "succeeded").await;
    assert_eq!(task["output"], "on time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submissions_are_idempotent_and_tasks_can_be_cancelled() {
    let s = Server::start().await;
    s.register(&s.review_workflow("review")).await;
    let body = json!({"workflow": "review", "input": {"topic": "x"}, "idempotency_key": "order-1"});
    let (status, first) = s.post("/v1/tasks", &body).await;
    assert_eq!(status, 201, "{first}");
    let (status, second) = s.post("/v1/tasks", &body).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(first["task_id"], second["task_id"]);

    let header = |key: &'static str| {
        s.client
            .post(s.url("/v1/tasks"))
            .bearer_auth(KEY)
            .header("idempotency-key", key)
            .json(&json!({"workflow": "review", "input": {"topic": "y"}}))
            .send()
    };
    let a = header("order-2").await.unwrap();
    assert_eq!(a.status(), 201);
    let a: Value = a.json().await.unwrap();
    let b = header("order-2").await.unwrap();
    assert_eq!(b.status(), 200);
    let b: Value = b.json().await.unwrap();
    assert_eq!(a["task_id"], b["task_id"]);
    assert_eq!(a["idempotency_key"], "order-2");
    let (_, list) = s.get("/v1/tasks?workflow=review&limit=10").await;
    assert_eq!(
        list["tasks"].as_array().unwrap().len(),
        2,
        "two tasks, not four"
    );

    let task_id = first["task_id"].as_str().unwrap();
    s.escalation(task_id).await;
    let (status, cancelled) = s
        .post(
            &format!("/v1/tasks/{task_id}/cancel"),
            &json!({"reason": "changed my mind"}),
        )
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["cancelled"], true);
    assert_eq!(cancelled["task"]["status"], "cancelled");
    let (status, again) = s
        .send("POST", &format!("/v1/tasks/{task_id}/cancel"), None)
        .await;
    assert_eq!(
        (status, &again["cancelled"]),
        (200, &json!(false)),
        "{again}"
    );
    let (_, esc) = s
        .get(&format!("/v1/escalations?status=all&task_id={task_id}"))
        .await;
    assert_eq!(esc["escalations"][0]["status"], "cancelled", "{esc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_steps_wait_in_the_retry_queue() {
    let s = Server::start().await;
    s.register(&json!({"name": "flaky", "steps": [
        {"name": "call", "kind": "http", "url": format!("{}/flaky", s.tools),
         "retry": {"max_attempts": 5, "base": "10s", "cap": "10s", "jitter": "none"}}
    ]}))
    .await;
    let task_id = s.submit("flaky", json!({})).await;
    let queue = s
        .wait_for("/v1/retry-queue", |b| {
            b["steps"].as_array().is_some_and(|l| !l.is_empty())
        })
        .await;
    let step = &queue["steps"][0];
    assert_eq!(
        (step["task_id"].as_str(), step["name"].as_str()),
        (Some(task_id.as_str()), Some("call"))
    );
    assert_eq!(step["status"], "retrying");
    assert!(step["error"].as_str().unwrap().contains("503"), "{step}");
    let task = s
        .wait_for(&format!("/v1/tasks/{task_id}"), |t| t["retry_count"] == 1)
        .await;
    assert!(task["last_error"].as_str().is_some(), "{task}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_steps_run_through_the_gateway_pipeline() {
    let s = Server::start().await;
    s.register(&json!({"name": "ask", "steps": [
        {"name": "draft", "kind": "llm", "route": "smart", "system": "Be brief.",
         "prompt": "Write about {{ input.topic }}", "max_tokens": 32}
    ]}))
    .await;
    let task_id = s.submit("ask", json!({"topic": "rivers"})).await;
    let task = s.wait_status(&task_id, "succeeded").await;
    assert!(
        task["output"].as_str().is_some_and(|t| !t.is_empty()),
        "{task}"
    );
    assert!(
        task["cost_usd"].as_f64().unwrap() > 0.0,
        "the target has a price: {task}"
    );
    let calls = s.mock.provider.requests(10);
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].idempotency_key.as_deref(),
        Some(format!("{task_id}/draft").as_str())
    );

    s.register(&json!({"name": "lost", "steps": [
        {"name": "draft", "kind": "llm", "route": "no-such-route", "prompt": "hi"}
    ]}))
    .await;
    let task_id = s.submit("lost", json!({})).await;
    let task = s.wait_status(&task_id, "failed").await;
    assert!(
        task["last_error"]
            .as_str()
            .unwrap()
            .contains("no-such-route"),
        "{task}"
    );
    assert_eq!(task["retry_count"], 0, "an unknown route is not retried");
    assert_eq!(s.mock.calls(), 1);
}

#[tokio::test]
async fn reads_do_not_spend_the_keys_request_limit_and_writes_do() {
    let s = Server::start_with(true, "requests_per_minute = 2").await;
    // A dashboard polling its views: many reads, none refused.
    for _ in 0..10 {
        let (status, body) = s.get("/v1/tasks?limit=5").await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = s.get("/v1/escalations").await;
        assert_eq!(status, 200, "{body}");
    }
    // Writes spend it: a registration and a submission, then a 429.
    let definition = s.review_workflow("review");
    s.register(&definition).await;
    let (status, body) = s
        .post(
            "/v1/tasks",
            &json!({"workflow": "review", "input": {"topic": "x"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = s
        .post(
            "/v1/tasks",
            &json!({"workflow": "review", "input": {"topic": "y"}}),
        )
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(code(&body), "rate_limited");
}
