//! The web dashboard end to end: the real binary serving `/dashboard`, its API answering
//! bad input clearly, and a real browser (Debian's headless Chromium through
//! playwright-core, `tests/browser/dashboard.mjs`) that sees a breaker open after an
//! injected outage, approves an escalation in the inbox and sees its task succeed.
//!
//! Why a browser and not only HTTP checks: the page is the product here. Its script
//! runs under a strict Content-Security-Policy, keeps a client key, polls and redraws;
//! only a browser shows that those parts work together. The browser test needs
//! Chromium, node and playwright-core (`scripts/setup-test-deps` installs them) and
//! skips loudly without them (fails under `HOLDFAST_CI=1`); the HTTP checks always run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use support::{ConfigBuilder, Gateway, Mock, Stopwatch, TempDir, chat_body, pause, serial};

const KEY: &str = "dashboard-test-key";
const KEY_ENV: &str = "HF_DASHBOARD_KEY";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A workflow that waits for a person, then naps.
fn approval_workflow() -> Value {
    json!({
        "name": "approval",
        "version": 1,
        "input_schema": {"type": "object", "required": ["item"]},
        "steps": [
            {"name": "review", "kind": "human", "prompt": "Ship {{ input.item }}?",
             "payload": {"item": "{{ input.item }}"}},
            {"name": "nap", "kind": "sleep", "duration": "10ms"}
        ]
    })
}

/// A gateway with a client key and the engine (its outbox on, in `outbox`), over two
/// mock targets: `primary`, whose breaker opens after a few failures and stays open for
/// a minute (long enough for a browser to see it), and `backup`, which serves while it
/// is open.
fn start(primary: &Mock, backup: &Mock, outbox: &TempDir) -> Gateway {
    let price = "price = { input_per_mtok = 2.5, output_per_mtok = 10.0 }";
    let config = ConfigBuilder::new()
        .target("primary", primary, price)
        .target("backup", backup, price)
        .policy(
            "outage",
            r#"retry = { max_attempts = 1, base = "10ms", cap = "20ms" }
breaker = { failure_rate = 0.5, window = "30s", min_calls = 3, open_for = "60s", max_open_for = "60s", half_open_probes = 1 }"#,
        )
        .route("smart", &["primary", "backup"], "policy = \"outage\"")
        .client_key("ops", KEY_ENV)
        .store("outbox = true")
        .store(&format!(
            "outbox_path = \"{}\"",
            outbox.path().join("outbox.jsonl").display()
        ))
        .store("outbox_max = \"1MiB\"")
        .raw("[engine]\nnode_id = \"dashboard-node\"\npoll_interval = \"20ms\"\n");
    Gateway::start_with_env(&config, &[(KEY_ENV, KEY)])
}

/// `method path` with the client key; (status, body as JSON or as a string).
async fn call(gateway: &Gateway, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let url = gateway.url(path);
    let mut request = match method {
        "POST" => gateway.client.post(url),
        _ => gateway.client.get(url),
    };
    request = request.bearer_auth(KEY);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// Sends chats until `primary`'s breaker is open (the mock answers 503 to all).
async fn open_the_breaker(gateway: &Gateway, mock: &Mock) {
    for _ in 0..5 {
        let response = gateway
            .chat(&chat_body("smart", "healthy", false))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }
    mock.set_faults(json!({"error_rates": {"503": 1.0}})).await;
    let clock = Stopwatch::start();
    loop {
        let _ = gateway
            .chat(&chat_body("smart", "outage", false))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        let (_, targets) = call(gateway, "GET", "/v1/holdfast/targets", None).await;
        if support::breaker_state(&targets, "primary").as_deref() == Some("open") {
            return;
        }
        assert!(
            clock.elapsed() < Duration::from_secs(10),
            "the breaker did not open: {targets}"
        );
        pause(Duration::from_millis(20)).await;
    }
}

/// Chats on `smart` every 100 ms until `stop` (at most 1,500 of them).
async fn background_traffic(gateway: Arc<Gateway>, stop: Arc<AtomicBool>) {
    for i in 0..1500 {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let _ = gateway
            .chat(&chat_body("smart", &format!("background {i}"), false))
            .bearer_auth(KEY)
            .send()
            .await;
        pause(Duration::from_millis(100)).await;
    }
}

/// Registers the workflow, submits a task and waits for its escalation: (task, escalation).
async fn task_waiting_for_a_person(gateway: &Gateway) -> (String, String) {
    let (status, body) = call(gateway, "POST", "/v1/workflows", Some(&approval_workflow())).await;
    assert!(status == 200 || status == 201, "register: {status} {body}");
    let submit = json!({"workflow": "approval", "input": {"item": "release 1.0"}});
    let (status, task) = call(gateway, "POST", "/v1/tasks", Some(&submit)).await;
    assert_eq!(status, 201, "submit: {task}");
    let task_id = task["task_id"].as_str().unwrap().to_owned();
    let clock = Stopwatch::start();
    loop {
        let path = format!("/v1/escalations?task_id={task_id}");
        let (_, list) = call(gateway, "GET", &path, None).await;
        if let Some(id) = list["escalations"][0]["escalation_id"].as_str() {
            return (task_id, id.to_owned());
        }
        assert!(
            clock.elapsed() < Duration::from_secs(10),
            "no escalation for {task_id}: {list}"
        );
        pause(Duration::from_millis(50)).await;
    }
}

/// The browser test's tools, or why they are missing.
fn browser_tools() -> Result<PathBuf, String> {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if !Path::new(CHROMIUM).exists() {
        return Err(format!("{CHROMIUM} is missing"));
    }
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !node.is_ok_and(|s| s.success()) {
        return Err("node is not on PATH".to_owned());
    }
    if !browser_dir.join("node_modules/playwright-core").exists() {
        return Err(format!(
            "playwright-core is not installed in {}",
            browser_dir.display()
        ));
    }
    Ok(browser_dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_assets_and_summary_answer_bad_input_clearly() {
    let _serial = serial().await;
    let (primary, backup) = (Mock::start("openai", &[]), Mock::start("openai", &[]));
    let outbox = TempDir::new("dashboard-outbox");
    let gateway = start(&primary, &backup, &outbox);

    // The store's health, where the page reads it: up, and the outbox's fill.
    let ready = gateway.get_json("/ready").await;
    assert_eq!(ready["checks"]["store"]["state"], "up", "{ready}");
    assert_eq!(
        ready["checks"]["store"]["outbox"],
        json!({"bytes": 0, "max_bytes": 1 << 20}),
        "{ready}"
    );

    // The page and its files: public, typed, under a strict CSP.
    for (path, kind) in [
        ("/dashboard", "text/html"),
        ("/dashboard/", "text/html"),
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/style.css", "text/css"),
    ] {
        let response = gateway.client.get(gateway.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let header = |name: &str| support::header(response.headers(), name).unwrap_or_default();
        assert!(
            header("content-type").starts_with(kind),
            "{path}: {}",
            header("content-type")
        );
        assert!(
            header("content-security-policy").contains("default-src 'self'"),
            "{path}: {}",
            header("content-security-policy")
        );
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
    }

    // An unknown file: a JSON 404 that says what exists.
    let response = gateway
        .client
        .get(gateway.url("/dashboard/secrets.env"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body = support::assert_openai_error(&response.text().await.unwrap(), "unknown asset");
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    let text = body["error"]["message"].as_str().unwrap();
    assert!(text.contains("index.html, app.js and style.css"), "{text}");

    // The summary: behind the key, and no query parameters.
    let response = gateway
        .client
        .get(gateway.url("/v1/holdfast/summary"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body = support::assert_openai_error(&response.text().await.unwrap(), "no key");
    assert_eq!(body["error"]["code"], "missing_api_key", "{body}");
    let (status, body) = call(&gateway, "GET", "/v1/holdfast/summary?window=10m", None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_request");
    assert_eq!(body["error"]["param"], "window");

    // A chat shows up in the totals.
    let response = gateway
        .chat(&chat_body("smart", "count me", false))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let (status, summary) = call(&gateway, "GET", "/v1/holdfast/summary", None).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["requests"]["total"], 1, "{summary}");
    assert_eq!(summary["requests"]["succeeded"], 1, "{summary}");
    let primary = summary["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "primary")
        .unwrap_or_else(|| panic!("no primary in {summary}"));
    assert_eq!(primary["attempts"], 1, "{summary}");
    assert_eq!(primary["failures"], 0, "{summary}");
    assert!(summary["cost_usd"].as_f64().unwrap() > 0.0, "{summary}");
    assert_eq!(summary["escalations"]["open"], 0, "{summary}");

    // A second answer to an escalation is a 409 the page can show.
    let (_, escalation) = task_waiting_for_a_person(&gateway).await;
    let path = format!("/v1/escalations/{escalation}/resolve");
    let approve = json!({"action": "approve"});
    let (status, body) = call(&gateway, "POST", &path, Some(&approve)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(&gateway, "POST", &path, Some(&approve)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_sees_an_open_breaker_and_approves_an_escalation() {
    let browser_dir = match browser_tools() {
        Ok(dir) => dir,
        Err(why) => {
            support::needs::skip(
                &why,
                "scripts/setup-test-deps installs chromium (Debian) and playwright-core \
                 (npm ci in crates/cli/tests/browser)",
            );
            return;
        }
    };
    let _serial = serial().await;
    let (primary, backup) = (Mock::start("openai", &[]), Mock::start("openai", &[]));
    let outbox = TempDir::new("dashboard-outbox");
    let gateway = Arc::new(start(&primary, &backup, &outbox));
    open_the_breaker(&gateway, &primary).await;
    let (task_id, escalation_id) = task_waiting_for_a_person(&gateway).await;
    let (other_task_id, other_escalation_id) = task_waiting_for_a_person(&gateway).await;
    // Traffic while the browser watches, so that its charts have lines to draw (the
    // backup serves it); bounded in count, and stopped when the browser is done.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = tokio::spawn(background_traffic(Arc::clone(&gateway), Arc::clone(&stop)));

    let profile = TempDir::new("chromium-profile");
    // Kept after the test (overwritten by the next run), so a person can look at it.
    let screenshot = std::env::temp_dir().join("holdfast-dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let script = browser_dir.join("dashboard.mjs");
    let child = Command::new("node")
        .arg(&script)
        .current_dir(&browser_dir)
        .env("DASHBOARD_URL", gateway.url("/dashboard"))
        .env("CLIENT_KEY", KEY)
        .env("TARGET", "primary")
        .env("TASK_ID", &task_id)
        .env("ESCALATION_ID", &escalation_id)
        .env("OTHER_ESCALATION_ID", &other_escalation_id)
        .env("SCREENSHOT", &screenshot)
        .env("USER_DATA_DIR", profile.path())
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting node {}: {e}", script.display()));
    // The script bounds itself (120 s); wait_with_output blocks, so off the runtime.
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    stop.store(true, Ordering::Relaxed);
    let _ = traffic.await;
    eprintln!("dashboard.mjs stdout:\n{stdout}\ndashboard.mjs stderr:\n{stderr}");
    assert_eq!(
        output.status.code(),
        Some(0),
        "the browser test failed; server output:\n{}",
        gateway.process.output()
    );
    let png = std::fs::read(&screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
    eprintln!("screenshot saved to {}", screenshot.display());

    // The API agrees with what the browser saw.
    let (status, task) = call(&gateway, "GET", &format!("/v1/tasks/{task_id}"), None).await;
    assert_eq!(status, 200, "{task}");
    assert_eq!(task["status"], "succeeded", "{task}");
    let (_, escalation) = call(
        &gateway,
        "GET",
        &format!("/v1/escalations/{escalation_id}"),
        None,
    )
    .await;
    assert_eq!(escalation["status"], "approved", "{escalation}");
    assert_eq!(escalation["resolved_by"], "ops", "{escalation}");
    // The other one kept the first answer, given over the API (under the same key, so
    // the same name); the page's was refused with a conflict (dashboard.mjs saw it).
    let (_, other) = call(
        &gateway,
        "GET",
        &format!("/v1/escalations/{other_escalation_id}"),
        None,
    )
    .await;
    assert_eq!(
        (&other["status"], &other["resolved_by"]),
        (&json!("approved"), &json!("ops")),
        "{other}"
    );
    let (_, other_task) = call(&gateway, "GET", &format!("/v1/tasks/{other_task_id}"), None).await;
    assert_ne!(other_task["status"], "failed", "{other_task}");
}
