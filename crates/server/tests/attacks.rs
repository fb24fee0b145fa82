//! Attacks on the trust boundaries, each its own test, over real sockets against a
//! gateway with the engine and the configuration history: a low role reaching for
//! configuration and routing, a tenant reaching for another's work, an idempotency key
//! reused across tenants and across inputs, a posted configuration reaching for a
//! secret it should not read, and a web page reaching for a server without keys. Each
//! checks the refusal and that nothing changed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Gw, Mock, Scratch, openai_provider, target};

/// `(name, role, tenant)`; each key's value is its name.
const KEYS: [(&str, &str, &str); 5] = [
    ("acme-agent", "agent", "acme"),
    ("acme-reviewer", "reviewer", "acme"),
    ("globex-agent", "agent", "globex"),
    ("globex-reviewer", "reviewer", "globex"),
    ("root", "admin", "ops"),
];

fn var(name: &str) -> String {
    format!("KEY_{}", name.to_uppercase().replace('-', "_"))
}

async fn start(dir: &Scratch) -> (Gw, Mock) {
    let mock = Mock::openai("").await;
    let mut toml = format!(
        "{}{}[routes.smart]\ntargets = [\"a\"]\n",
        openai_provider("p", &mock),
        target("a", "p", 100_000)
    );
    for (name, role, tenant) in KEYS {
        toml.push_str(&format!(
            "[[client_keys]]\nname = \"{name}\"\nkey_env = \"{}\"\nrole = \"{role}\"\ntenant = \"{tenant}\"\n",
            var(name)
        ));
    }
    let env: Vec<(String, &str)> = KEYS.iter().map(|(n, _, _)| (var(n), *n)).collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    (Gw::start_with_engine(&toml, &env, dir).await, mock)
}

/// `(status, body)` of `method path` with `key` (none when empty) and a JSON `body`.
async fn call(gw: &Gw, key: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let builder = match method {
        "GET" => gw.client.get(gw.url(path)),
        _ => gw.client.post(gw.url(path)),
    };
    let builder = if key.is_empty() {
        builder
    } else {
        builder.bearer_auth(key)
    };
    let builder = match body {
        Some(body) => builder.json(&body),
        None => builder,
    };
    let response = builder.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A short wait while polling a real server in real time.
#[allow(clippy::disallowed_methods)]
async fn pause() {
    tokio::time::sleep(Duration::from_millis(20)).await;
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// Registers (as the admin) a workflow that asks a person, and one that needs a worker.
async fn register(gw: &Gw) {
    for definition in [
        json!({"name": "review", "steps": [{"name": "ask", "kind": "human", "prompt": "ok?"}]}),
        json!({"name": "job", "steps": [{"name": "work", "kind": "worker", "queue": "q"}]}),
    ] {
        let (status, body) = call(gw, "root", "POST", "/v1/workflows", Some(definition)).await;
        assert_eq!(status, 201, "{body}");
    }
}

/// Submits as `key`: the answer's status and body.
async fn submit(
    gw: &Gw,
    key: &str,
    workflow: &str,
    idempotency_key: &str,
    input: Value,
) -> (u16, Value) {
    let body = json!({"workflow": workflow, "input": input, "idempotency_key": idempotency_key});
    call(gw, key, "POST", "/v1/tasks", Some(body)).await
}

/// Waits until `key` sees `path` answer 200 with `field` non-empty.
async fn eventually(gw: &Gw, key: &str, path: &str, field: &str) -> Value {
    for _ in 0..200 {
        let (status, body) = call(gw, key, "GET", path, None).await;
        if status == 200 && body[field].as_array().is_some_and(|a| !a.is_empty()) {
            return body;
        }
        pause().await;
    }
    panic!("{path} never showed {field}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_key_cannot_touch_configuration_routing_workflows_or_the_inbox() {
    let dir = Scratch::new("attack-role");
    let (gw, _mock) = start(&dir).await;
    register(&gw).await;
    let (_, task) = submit(&gw, "acme-agent", "review", "r-1", json!({})).await;
    let task_id = task["task_id"].as_str().unwrap().to_owned();
    let open = eventually(&gw, "acme-reviewer", "/v1/escalations", "escalations").await;
    let escalation = open["escalations"][0]["escalation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = call(&gw, "root", "GET", "/admin/config/history", None)
        .await
        .1;

    let config = gw
        .client
        .post(gw.url("/admin/config"))
        .bearer_auth("acme-agent")
        .header("content-type", "application/toml")
        .body("[routes.stolen]\ntargets = [\"a\"]\n")
        .send()
        .await
        .unwrap();
    assert_eq!(config.status(), 403);
    let attempts = [
        ("/admin/config/reload", json!({})),
        ("/admin/config/rollback", json!({"version": 1})),
        ("/admin/targets/a/drain", json!({"for": "24h"})),
        (
            "/v1/workflows",
            json!({"name": "evil", "steps": [{"name": "s", "kind": "sleep", "duration": "1ms"}]}),
        ),
        (
            &format!("/v1/escalations/{escalation}/resolve"),
            json!({"action": "approve"}),
        ),
    ];
    for (path, body) in attempts {
        let (status, body) = call(&gw, "acme-agent", "POST", path, Some(body)).await;
        assert_eq!((status, code(&body)), (403, "forbidden"), "{path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("acme-agent")
        );
    }

    assert_eq!(
        call(&gw, "root", "GET", "/admin/config/history", None)
            .await
            .1,
        before
    );
    let targets = call(&gw, "root", "GET", "/v1/holdfast/targets", None)
        .await
        .1;
    assert!(
        !targets.to_string().contains("drained_until_ms\":1"),
        "{targets}"
    );
    let workflows = call(&gw, "root", "GET", "/v1/workflows", None).await.1;
    assert!(!workflows.to_string().contains("evil"), "{workflows}");
    let (_, esc) = call(
        &gw,
        "acme-reviewer",
        "GET",
        &format!("/v1/escalations/{escalation}"),
        None,
    )
    .await;
    assert_eq!(esc["status"], "open", "{esc}");
    let (_, task) = call(
        &gw,
        "acme-agent",
        "GET",
        &format!("/v1/tasks/{task_id}"),
        None,
    )
    .await;
    assert_eq!(task["status"], "waiting", "{task}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenant_reads_cancels_claims_and_answers_nothing_of_a_tenants_work() {
    let dir = Scratch::new("attack-tenant");
    let (gw, _mock) = start(&dir).await;
    register(&gw).await;
    let (_, review) = submit(&gw, "acme-agent", "review", "r-1", json!({})).await;
    let (_, job_task) = submit(&gw, "acme-agent", "job", "j-1", json!({})).await;
    let review_id = review["task_id"].as_str().unwrap().to_owned();
    let job_task_id = job_task["task_id"].as_str().unwrap().to_owned();
    let open = eventually(&gw, "acme-reviewer", "/v1/escalations", "escalations").await;
    let escalation = open["escalations"][0]["escalation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let chat = json!({"model": "smart", "messages": [{"role": "user", "content": "hi"}]});
    let answered = gw
        .client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("acme-agent")
        .json(&chat)
        .send()
        .await
        .unwrap();
    let request_id = answered.headers()["x-holdfast-request-id"]
        .to_str()
        .unwrap()
        .to_owned();

    // The job exists once its task waits on it (`job_id`: task, step, attempt).
    for _ in 0..200 {
        let path = format!("/v1/tasks/{job_task_id}");
        if call(&gw, "acme-agent", "GET", &path, None).await.1["status"] == "waiting" {
            break;
        }
        pause().await;
    }
    let job_id = holdfast_engine::job_id(&job_task_id, "work", 1);
    let absent = [
        ("GET", format!("/v1/tasks/{review_id}"), None),
        ("GET", format!("/v1/tasks/{review_id}/steps"), None),
        ("GET", format!("/v1/tasks/{review_id}/journal"), None),
        (
            "POST",
            format!("/v1/tasks/{review_id}/cancel"),
            Some(json!({})),
        ),
        ("GET", format!("/v1/holdfast/requests/{request_id}"), None),
        (
            "POST",
            format!("/v1/workers/jobs/{job_id}/heartbeat"),
            Some(json!({"token": 1})),
        ),
        (
            "POST",
            format!("/v1/workers/jobs/{job_id}/complete"),
            Some(json!({"token": 1, "output": "forged"})),
        ),
    ];
    for (method, path, body) in absent {
        let (status, body) = call(&gw, "globex-agent", method, &path, body).await;
        assert_eq!(
            (status, code(&body)),
            (404, "not_found"),
            "{method} {path}: {body}"
        );
    }
    for (method, path, body) in [
        ("GET", format!("/v1/escalations/{escalation}"), None),
        (
            "POST",
            format!("/v1/escalations/{escalation}/resolve"),
            Some(json!({"action": "reject"})),
        ),
    ] {
        let (status, body) = call(&gw, "globex-reviewer", method, &path, body).await;
        assert_eq!(
            (status, code(&body)),
            (404, "not_found"),
            "{method} {path}: {body}"
        );
    }
    let claim = json!({"queue": "q", "worker_id": "w"});
    let (status, claimed) = call(
        &gw,
        "globex-agent",
        "POST",
        "/v1/workers/claim",
        Some(claim.clone()),
    )
    .await;
    assert_eq!(
        (status, claimed["jobs"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{claimed}"
    );
    for (key, path, field) in [
        ("globex-agent", "/v1/tasks", "tasks"),
        ("globex-agent", "/v1/retry-queue", "steps"),
        (
            "globex-reviewer",
            "/v1/escalations?status=all",
            "escalations",
        ),
    ] {
        let (_, list) = call(&gw, key, "GET", path, None).await;
        assert_eq!(
            list[field].as_array().map(Vec::len),
            Some(0),
            "{path}: {list}"
        );
    }

    // Nothing changed for acme: its task still waits, its job is still there to claim.
    let (_, task) = call(
        &gw,
        "acme-agent",
        "GET",
        &format!("/v1/tasks/{review_id}"),
        None,
    )
    .await;
    assert_eq!(task["status"], "waiting", "{task}");
    let (status, _) = call(
        &gw,
        "acme-agent",
        "GET",
        &format!("/v1/holdfast/requests/{request_id}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (_, mine) = call(&gw, "acme-agent", "POST", "/v1/workers/claim", Some(claim)).await;
    assert_eq!(mine["jobs"][0]["job_id"], job_id.as_str(), "{mine}");
    // An operator reads every tenant's tasks.
    let (_, all) = call(&gw, "root", "GET", "/v1/tasks", None).await;
    assert_eq!(all["tasks"].as_array().map(Vec::len), Some(2), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_is_its_tenants_own_and_names_one_submission() {
    let dir = Scratch::new("attack-keys");
    let (gw, _mock) = start(&dir).await;
    register(&gw).await;
    let (status, acme) = submit(&gw, "acme-agent", "job", "order-1", json!({"n": 1})).await;
    assert_eq!(status, 201, "{acme}");
    let (status, globex) = submit(&gw, "globex-agent", "job", "order-1", json!({"n": 1})).await;
    assert_eq!(
        status, 201,
        "another tenant's key is another task: {globex}"
    );
    assert_ne!(acme["task_id"], globex["task_id"]);
    let (status, again) = submit(&gw, "acme-agent", "job", "order-1", json!({"n": 1})).await;
    assert_eq!((status, &again["task_id"]), (200, &acme["task_id"]));
    let (status, other) = submit(&gw, "globex-agent", "job", "order-1", json!({"n": 2})).await;
    assert_eq!((status, code(&other)), (409, "conflict"), "{other}");
    let message = other["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(globex["task_id"].as_str().unwrap()),
        "{message}"
    );
    assert!(
        !message.contains(acme["task_id"].as_str().unwrap()),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_posted_configuration_cannot_read_a_foreign_secret() {
    let dir = Scratch::new("attack-secret");
    let (gw, _mock) = start(&dir).await;
    let before = call(&gw, "root", "GET", "/admin/config/history", None)
        .await
        .1;
    let text = "[providers.stolen]\nformat = \"openai\"\nbase_url = \"https://collector.example/v1\"\nkey_env = \"AWS_SECRET_ACCESS_KEY\"\n";
    let response = gw
        .client
        .post(gw.url("/admin/config"))
        .bearer_auth("root")
        .header("content-type", "application/toml")
        .body(text)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), "invalid_config", "{body}");
    let problem = &body["error"]["problems"][0];
    assert_eq!(
        (problem["line"].as_u64(), problem["field"].as_str()),
        (Some(4), Some("providers.stolen.key_env")),
        "{body}"
    );
    assert_eq!(
        call(&gw, "root", "GET", "/admin/config/history", None)
            .await
            .1,
        before
    );
}

/// A server without keys, as `holdfast serve` runs one on loopback.
async fn open_server(dir: &Scratch) -> Gw {
    let mock = Mock::openai("").await;
    let toml = format!(
        "{}{}[routes.smart]\ntargets = [\"a\"]\n",
        openai_provider("p", &mock),
        target("a", "p", 100_000)
    );
    Gw::start_with_engine(&toml, &[], dir).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_keys_a_web_page_can_neither_write_nor_read() {
    let dir = Scratch::new("attack-open");
    let gw = open_server(&dir).await;
    let definition =
        r#"{"name": "evil", "steps": [{"name": "s", "kind": "sleep", "duration": "1ms"}]}"#;
    let post = |origin: Option<&str>, host: Option<&str>, content_type: &str| {
        let mut builder = gw
            .client
            .post(gw.url("/v1/workflows"))
            .header("content-type", content_type)
            .body(definition);
        if let Some(origin) = origin {
            builder = builder.header("origin", origin);
        }
        if let Some(host) = host {
            builder = builder.header("host", host);
        }
        builder
    };
    let own_host = gw.base.trim_start_matches("http://").to_owned();
    let cases = [
        (
            post(Some("http://evil.example"), None, "application/json"),
            403,
            "cross_origin_refused",
        ),
        (
            post(None, Some("evil.example"), "application/json"),
            403,
            "cross_origin_refused",
        ),
        (
            post(
                None,
                Some(&format!(
                    "rebound.example:{}",
                    own_host.rsplit(':').next().unwrap()
                )),
                "application/json",
            ),
            403,
            "cross_origin_refused",
        ),
        (
            post(None, None, "text/plain"),
            415,
            "unsupported_media_type",
        ),
        (
            post(
                Some(&format!("http://{own_host}")),
                None,
                "application/x-www-form-urlencoded",
            ),
            415,
            "unsupported_media_type",
        ),
    ];
    for (request, status, expected) in cases {
        let response = request.send().await.unwrap();
        let got = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_eq!((got, code(&body)), (status, expected), "{body}");
    }
    // Reads through a rebound name are refused too: the page would read the answers.
    let read = gw
        .client
        .get(gw.url("/v1/tasks"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 403);
    let (_, workflows) = call(&gw, "", "GET", "/v1/workflows", None).await;
    assert_eq!(
        workflows["workflows"],
        json!([]),
        "nothing was registered: {workflows}"
    );
    // holdfast's own page, and any client that is not a browser, still write.
    let own = post(
        Some(&format!("http://{own_host}")),
        None,
        "application/json",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(own.status(), 201);
}
