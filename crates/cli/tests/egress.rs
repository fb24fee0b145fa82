//! Egress rules end to end: `holdfast serve` runs workflows whose `http` step calls a URL
//! taken from the task's input (the server-side request forgery a client would try),
//! over real sockets. A recorder listens on loopback and counts every connection it
//! gets; a tool on loopback answers, redirects to itself, to the recorder, or in a loop.
//!
//! Each refused step must fail at once with the class `egress_denied`, after one
//! attempt, with a message naming the host and the rule; and the recorder must have
//! seen nothing. 10.0.0.1 and 169.254.169.254 cannot be reached from here anyway, so
//! for them the proof is the message and the time: refused by the rule, not timed out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::Query;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};
use support::{ConfigBuilder, Gateway, Stopwatch};

/// How long a step may take: far longer than a refusal ever should.
const STEP_TIMEOUT: &str = "30s";

/// A listener on loopback that accepts connections and counts them; it never answers.
struct Recorder {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl Recorder {
    async fn start() -> Recorder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                drop(socket);
            }
        });
        Recorder { addr, connections }
    }

    fn seen(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// A tool on loopback: `/ok` answers, `/to-ok` redirects there, `/to?url=U` redirects to
/// U, `/loop` redirects to itself. Counts the requests it gets.
struct Tool {
    base: String,
    requests: Arc<AtomicUsize>,
}

impl Tool {
    async fn start() -> Tool {
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&requests);
        let redirect = |to: String| (StatusCode::FOUND, [(header::LOCATION, to)]).into_response();
        let app = axum::Router::new()
            .route("/ok", get(|| async { axum::Json(json!({"tool": "ok"})) }))
            .route("/to-ok", get(move || async move { redirect("/ok".into()) }))
            .route(
                "/to",
                get(move |Query(q): Query<HashMap<String, String>>| async move {
                    redirect(q.get("url").cloned().unwrap_or_default())
                }),
            )
            .route(
                "/loop",
                get(move || async move { redirect("/loop".into()) }),
            )
            .layer(axum::middleware::from_fn(
                move |request: axum::extract::Request, next: axum::middleware::Next| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    next.run(request)
                },
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Tool {
            base: format!("http://{addr}"),
            requests,
        }
    }

    fn seen(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// `holdfast serve` with `egress` as its `[engine.egress]` body, and the workflow
/// `call`: one `http` step to `http://{{ input.target }}`, retried up to 3 times.
async fn server(egress: &str) -> Gateway {
    let config = ConfigBuilder::new().raw(&format!("[engine.egress]\n{egress}"));
    let gateway = Gateway::start(&config);
    let workflow = json!({"name": "call", "steps": [
        {"name": "fetch", "kind": "http", "method": "GET", "url": "http://{{ input.target }}",
         "timeout": STEP_TIMEOUT,
         "retry": {"max_attempts": 3, "base": "10ms", "cap": "10ms", "jitter": "none"}}
    ]});
    let (status, body) = gateway.post_json("/v1/workflows", &workflow).await;
    assert!((200..300).contains(&status), "{status} {body}");
    gateway
}

/// What became of one task.
struct Ended {
    task: Value,
    step: Value,
    /// The `class` of its `step_failed` journal entry, if it failed.
    class: Option<String>,
    took: Duration,
}

/// Runs `call` on `url` (an `http://` URL) to its end.
async fn call(gateway: &Gateway, url: &str) -> Ended {
    let target = url.strip_prefix("http://").unwrap();
    let clock = Stopwatch::start();
    let input = json!({"workflow": "call", "input": {"target": target}});
    let (status, task) = gateway.post_json("/v1/tasks", &input).await;
    assert_eq!(status, 201, "{task}");
    let id = task["task_id"].as_str().unwrap().to_owned();
    for _ in 0..400 {
        let task = gateway.get_json(&format!("/v1/tasks/{id}")).await;
        if task["status"] == "succeeded" || task["status"] == "failed" {
            let took = clock.elapsed();
            let steps = gateway.get_json(&format!("/v1/tasks/{id}/steps")).await;
            let journal = gateway.get_json(&format!("/v1/tasks/{id}/journal")).await;
            let class = journal["entries"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["kind"] == "step_failed")
                .map(|e| e["data"]["class"].as_str().unwrap().to_owned());
            return Ended {
                task,
                step: steps["steps"][0].clone(),
                class,
                took,
            };
        }
        support::pause(Duration::from_millis(25)).await;
    }
    panic!("the task for {url} did not end");
}

/// Asserts `url` was refused by the rules: failed, class `egress_denied`, one attempt,
/// quickly, with an error saying `says`.
async fn refused(gateway: &Gateway, url: &str, says: &str) -> Ended {
    let ended = call(gateway, url).await;
    let Ended {
        task, step, class, ..
    } = &ended;
    assert_eq!(task["status"], "failed", "{url}: {task}");
    assert_eq!(class.as_deref(), Some("egress_denied"), "{url}: {step}");
    assert_eq!(step["attempt"], 1, "{url}: never retried: {step}");
    let error = step["error"].as_str().unwrap();
    assert!(
        error.starts_with("egress denied: ") && error.contains(says),
        "{url}: {error:?} does not say {says:?}"
    );
    assert_eq!(
        task["last_error"].as_str(),
        Some(format!("step \"fetch\" failed: {error}").as_str()),
        "{task}"
    );
    assert!(
        ended.took < Duration::from_secs(5),
        "{url}: refused by the rule, not timed out ({:?})",
        ended.took
    );
    ended
}

#[tokio::test]
async fn by_default_loopback_private_and_metadata_addresses_are_refused_and_see_nothing() {
    let recorder = Recorder::start().await;
    let tool = Tool::start().await;
    let gateway = server("").await;
    let port = recorder.addr.port();
    let cases = [
        (
            format!("http://127.0.0.1:{port}/steal"),
            "127.0.0.1 is a loopback address (127.0.0.0/8); only an [engine.egress] \
             allow pattern naming 127.0.0.1 can open it",
        ),
        (
            format!("http://localhost:{port}/steal"),
            "localhost resolves to",
        ),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/steal"),
            "::ffff:127.0.0.1 is a loopback address",
        ),
        (
            format!("http://0x7f.1:{port}/steal"),
            "127.0.0.1 is a loopback address",
        ),
        (
            format!("http://0.0.0.0:{port}/steal"),
            "0.0.0.0 is the unspecified address (0.0.0.0); no rule opens it",
        ),
        (
            "http://10.0.0.1/internal".to_owned(),
            "10.0.0.1 is a private address (10.0.0.0/8)",
        ),
        (
            "http://169.254.169.254/latest/meta-data/iam/security-credentials/".to_owned(),
            "169.254.169.254 is a cloud metadata address",
        ),
        (format!("{}/ok", tool.base), "is a loopback address"),
    ];
    for (url, says) in &cases {
        refused(&gateway, url, says).await;
    }
    let ended = refused(&gateway, &format!("http://localhost:{port}/x"), "loopback").await;
    let error = ended.step["error"].as_str().unwrap();
    assert!(!error.contains("/x"), "no path in the message: {error}");
    assert_eq!(recorder.seen(), 0, "no connection reached the recorder");
    assert_eq!(tool.seen(), 0, "an unnamed loopback tool is not called");

    // A configuration posted to the running server cannot open anything: `[engine]`
    // changes only with a restart.
    let widened = format!(
        "{}allow = [\"http://127.0.0.1:{port}/*\"]\n",
        gateway.config
    );
    let response = gateway
        .client
        .post(gateway.url("/admin/config"))
        .header("content-type", "application/toml")
        .body(widened)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 400, "{body}");
    let fields: Vec<&str> = body["error"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["field"].as_str())
        .collect();
    assert!(fields.contains(&"engine"), "{body}");
    refused(
        &gateway,
        &format!("http://127.0.0.1:{port}/steal"),
        "loopback",
    )
    .await;
    assert_eq!(recorder.seen(), 0, "still nothing reached the recorder");
    assert!(
        !gateway.process.output().contains("panicked"),
        "{}",
        gateway.process.output()
    );
}

#[tokio::test]
async fn a_tool_named_in_the_allow_list_works_and_its_redirects_are_refused() {
    let recorder = Recorder::start().await;
    let tool = Tool::start().await;
    let base = &tool.base;
    // The tool, named; any other public host on any port.
    let gateway = server(&format!("allow = [\"{base}/*\", \"http://*:*\"]\n")).await;

    let ended = call(&gateway, &format!("{base}/ok")).await;
    assert_eq!(ended.task["status"], "succeeded", "{}", ended.task);
    assert_eq!(ended.task["output"], json!({"tool": "ok"}));

    // Redirects are off: even one to the tool itself.
    refused(
        &gateway,
        &format!("{base}/to-ok"),
        &format!("{base} redirected to {base}; redirects are not followed"),
    )
    .await;
    let to_recorder = format!(
        "{base}/to?url=http://127.0.0.1:{}/steal",
        recorder.addr.port()
    );
    refused(&gateway, &to_recorder, "redirects are not followed").await;

    // The tool's own port only: the recorder on the same address is another URL.
    refused(
        &gateway,
        &format!("http://127.0.0.1:{}/steal", recorder.addr.port()),
        "matches none of the [engine.egress] allow patterns naming its host",
    )
    .await;
    // `http://*:*` matches any host, but a wildcard opens public addresses only.
    refused(
        &gateway,
        &format!("http://localhost:{}/steal", recorder.addr.port()),
        "localhost resolves to",
    )
    .await;
    refused(&gateway, "http://10.0.0.1:8080/", "is a private address").await;
    assert_eq!(recorder.seen(), 0, "no connection reached the recorder");
}

#[tokio::test]
async fn with_follow_redirects_every_hop_is_checked_like_the_first() {
    let recorder = Recorder::start().await;
    let tool = Tool::start().await;
    let base = &tool.base;
    let port = recorder.addr.port();
    let gateway = server(&format!(
        "allow = [\"{base}/*\", \"http://*:*\"]\nfollow_redirects = true\n"
    ))
    .await;

    let ended = call(&gateway, &format!("{base}/to-ok")).await;
    assert_eq!(ended.task["status"], "succeeded", "{}", ended.task);
    assert_eq!(
        ended.task["output"],
        json!({"tool": "ok"}),
        "followed to /ok"
    );

    let before = tool.seen();
    for (to, says) in [
        (
            format!("http://127.0.0.1:{port}/steal"),
            "matches none of the [engine.egress] allow patterns naming its host".to_owned(),
        ),
        (
            format!("http://localhost:{port}/steal"),
            "localhost resolves to".to_owned(),
        ),
        (
            format!("http://[::ffff:7f00:1]:{port}/steal"),
            "is a loopback address".to_owned(),
        ),
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "169.254.169.254 is a cloud metadata address".to_owned(),
        ),
        (
            "file:///etc/passwd".to_owned(),
            "file: URLs are refused".to_owned(),
        ),
    ] {
        refused(&gateway, &format!("{base}/to?url={to}"), &says).await;
    }
    assert_eq!(
        tool.seen() - before,
        5,
        "one request each, to the tool only"
    );
    assert_eq!(recorder.seen(), 0, "no hop reached the recorder");

    let before = tool.seen();
    refused(&gateway, &format!("{base}/loop"), "more than 5 redirects").await;
    assert_eq!(tool.seen() - before, 6, "the first request and five hops");
}
