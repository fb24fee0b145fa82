//! The durability promise under fire: `holdfast serve` killed with SIGKILL at random
//! moments while it runs a load of workflows, and restarted on the same data directory.
//!
//! Each workflow calls a model on `holdfast mock-provider` (with faults), a tool (an HTTP
//! server in this test that records every call with its idempotency key and the time it
//! arrived), a worker step (claimed and completed by a worker loop in this test) and a
//! human step (approved by this test), then a second tool call. At the end every
//! accepted task must have succeeded (none lost), no tool call may have arrived after
//! its step's result was committed (no committed step ran again), and every call of a
//! step must carry that step's key (repeats can be deduplicated downstream).
//!
//! CI runs 20 kills on SQLite and 10 on PostgreSQL; `HOLDFAST_CRASH_KILLS=200 cargo test
//! -p holdfast --test engine_crash killed -- --nocapture` runs 200 on each.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};
use support::{Mock, Process, TempDir, client};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How far the server's commit stamps and this process's clock may disagree.
const CLOCK_SLACK_MS: u64 = 5;

/// One call the tool received: (idempotency key, task, step, arrival in Unix ms).
type Effect = (String, String, String, u64);

#[derive(Clone, Default)]
struct Tool {
    effects: Arc<Mutex<Vec<Effect>>>,
}

async fn effect(
    State(tool): State<Tool>,
    Path((task, step)): Path<(String, String)>,
    headers: HeaderMap,
) -> axum::Json<Value> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    tool.effects
        .lock()
        .unwrap()
        .push((key, task.clone(), step.clone(), now_ms()));
    if step == "slow" {
        // A tool that takes a while: a node killed now dies in the middle of the call.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    axum::Json(json!({"done": step}))
}

async fn start_tool() -> (Tool, String) {
    let tool = Tool::default();
    let app = axum::Router::new()
        .route("/effects/{task}/{step}", post(effect))
        .with_state(tool.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (tool, format!("http://{addr}"))
}

/// The server under test: restarted on the same config and data directory.
struct Server {
    config: String,
    /// The store URL (the harness gives each process a scratch store unless told).
    store: String,
    process: Option<Process>,
    base: Arc<Mutex<String>>,
}

impl Server {
    fn start(&mut self) {
        let args = ["serve", "--config", &self.config, "--listen", "127.0.0.1:0"].map(String::from);
        let envs = [("HOLDFAST_STORE_URL".to_string(), self.store.clone())];
        let process = Process::spawn("holdfast serve", &args, &envs);
        *self.base.lock().unwrap() = format!("http://{}", process.addr);
        self.process = Some(process);
    }

    fn kill(&mut self) {
        // Dropping the handle sends SIGKILL and reaps the process.
        self.process = None;
    }
}

fn current(b: &Arc<Mutex<String>>) -> String {
    b.lock().unwrap().clone()
}

/// A worker: claims jobs, records each one's idempotency key, completes it. It keeps
/// going while the server is down (its requests just fail).
async fn worker(
    base: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<(String, String)>>>,
) {
    let http = client();
    while !stop.load(Ordering::Relaxed) {
        let url = format!("{}/v1/workers/claim", current(&base));
        let body = json!({"queue": "render", "worker_id": "w1", "lease_ms": 2000, "limit": 16});
        let Ok(response) = http.post(url).json(&body).send().await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let Ok(claimed) = response.json::<Value>().await else {
            continue;
        };
        let jobs = claimed["jobs"].as_array().cloned().unwrap_or_default();
        if jobs.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for job in jobs {
            let key = job["payload"]["idempotency_key"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let task = job["task_id"].as_str().unwrap_or("").to_string();
            seen.lock().unwrap().push((key, task));
            let id = job["job_id"].as_str().unwrap_or("");
            let url = format!("{}/v1/workers/jobs/{id}/complete", current(&base));
            let _ = http
                .post(url)
                .json(&json!({"token": job["token"], "output": {"rendered": true}}))
                .send()
                .await;
        }
    }
}

/// A person: approves every open escalation.
async fn approver(base: Arc<Mutex<String>>, stop: Arc<AtomicBool>) {
    let http = client();
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let url = format!("{}/v1/escalations?status=open&limit=100", current(&base));
        let Ok(response) = http.get(url).send().await else {
            continue;
        };
        let Ok(listed) = response.json::<Value>().await else {
            continue;
        };
        let items = listed["escalations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for e in items {
            let id = e["escalation_id"].as_str().unwrap_or("");
            let url = format!("{}/v1/escalations/{id}/resolve", current(&base));
            let _ = http
                .post(url)
                .json(&json!({"action": "approve"}))
                .send()
                .await;
        }
    }
}

/// SplitMix64, so a failing run can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_at_random_moments_the_engine_loses_nothing_and_repeats_no_committed_step() {
    let dir = TempDir::new("engine-crash");
    let store = format!("sqlite://{}/holdfast.db", dir.path().display());
    crash_run(&dir, &store, kills_from_env(20)).await;
}

/// The same on PostgreSQL: every commit a server acknowledged survives its SIGKILL
/// (CI runs 10 kills here, each test in its own schema).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_at_random_moments_on_postgresql_the_engine_loses_nothing() {
    let Some(pg) = PgSchema::for_test("crash") else {
        return;
    };
    let dir = TempDir::new("engine-crash-pg");
    crash_run(&dir, &pg.url, kills_from_env(10)).await;
}

/// A schema of its own on the test PostgreSQL, dropped at the end.
struct PgSchema {
    server: String,
    schema: String,
    /// The server's URL with `schema=` set.
    url: String,
}

impl PgSchema {
    /// `None`, after a loud skip (a failure in CI), without `HOLDFAST_TEST_POSTGRES_URL`.
    fn for_test(prefix: &str) -> Option<PgSchema> {
        let server = support::needs::postgres_url()?;
        let schema = format!("{prefix}_{}_{}", std::process::id(), now_ms());
        let sep = if server.contains('?') { '&' } else { '?' };
        let url = format!("{server}{sep}schema={schema}");
        Some(PgSchema {
            server,
            schema,
            url,
        })
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        drop_schema(&self.server, &self.schema);
    }
}

/// `HOLDFAST_CRASH_KILLS`, or `default`.
fn kills_from_env(default: u32) -> u32 {
    std::env::var("HOLDFAST_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Submits workflows to a server on `store` while killing it `kills` times, then
/// checks that every accepted task succeeded and no committed step ran again.
async fn crash_run(dir: &TempDir, store: &str, kills: u32) {
    let seed: u64 = std::env::var("HOLDFAST_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let mut rng = Rng(seed);
    let mock = Mock::start("openai", &["--rate-503", "0.1", "--latency", "5ms..40ms"]);
    let (tool, tool_url) = start_tool().await;
    let config = format!(
        r#"[server]
listen = "127.0.0.1:0"

[store]
url = "{store}"

[engine]
node_id = "crash-node"
lease = "3s"
poll_interval = "20ms"
# The tool listens on loopback, which only a pattern naming it opens.
egress = {{ allow = ["{tool_url}/*"] }}

[providers.mock]
format = "openai"
base_url = "{mock}"

[targets.mock]
provider = "mock"
model = "mock-1"
context_window = 100000

[routes.smart]
targets = ["mock"]
"#,
        mock = mock.base_url(),
    );
    let config_path = dir.write("holdfast.toml", &config);
    let mut server = Server {
        config: config_path.display().to_string(),
        store: store.to_owned(),
        process: None,
        base: Arc::new(Mutex::new(String::new())),
    };
    server.start();
    let http = client();
    let workflow = json!({"name": "article", "steps": [
        {"name": "research", "kind": "llm", "route": "smart", "prompt": "research {{ input.topic }}",
         "retry": {"max_attempts": 10, "base": "20ms", "cap": "200ms"}},
        {"name": "fetch", "kind": "http", "url": format!("{tool_url}/effects/{{{{ task.id }}}}/fetch"),
         "body": {"notes": "{{ steps.research.output }}"}},
        {"name": "render", "kind": "worker", "queue": "render"},
        {"name": "approve", "kind": "human", "prompt": "publish {{ input.topic }}?"},
        {"name": "publish", "kind": "http", "url": format!("{tool_url}/effects/{{{{ task.id }}}}/publish")},
    ]});
    let response = http
        .post(format!("{}/v1/workflows", current(&server.base)))
        .json(&workflow)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let jobs_seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    tokio::spawn(worker(server.base.clone(), stop.clone(), jobs_seen.clone()));
    tokio::spawn(approver(server.base.clone(), stop.clone()));

    // Submit while killing: a submission counts as accepted only once it got a 2xx.
    let mut accepted: BTreeMap<String, String> = BTreeMap::new();
    let mut next_submission = 0u32;
    let per_round = 4;
    for round in 0..kills {
        let deadline = std::time::Instant::now() + Duration::from_millis(rng.between(50, 600));
        while std::time::Instant::now() < deadline {
            for _ in 0..per_round {
                let key = format!("sub-{next_submission}");
                let body = json!({"workflow": "article", "input": {"topic": format!("t{next_submission}")}, "idempotency_key": key});
                match http
                    .post(format!("{}/v1/tasks", current(&server.base)))
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {
                        let task: Value = r.json().await.unwrap();
                        accepted.insert(key, task["task_id"].as_str().unwrap().to_string());
                        next_submission += 1;
                    }
                    Ok(r) => {
                        let status = r.status();
                        eprintln!(
                            "submission refused: {status} {}",
                            r.text().await.unwrap_or_default()
                        );
                    }
                    // The server is down between a kill and its restart.
                    Err(_) => {}
                }
            }
            tokio::time::sleep(Duration::from_millis(rng.between(5, 60))).await;
        }
        server.kill();
        eprintln!(
            "kill {}/{kills}: {} tasks accepted",
            round + 1,
            accepted.len()
        );
        server.start();
    }

    let ids: Vec<String> = accepted.values().cloned().collect();
    assert!(
        ids.len() >= kills as usize,
        "too few tasks accepted: {}",
        ids.len()
    );
    let unfinished = wait_all(&current(&server.base), &ids, Duration::from_secs(120)).await;
    stop.store(true, Ordering::Relaxed);
    assert!(
        unfinished.is_empty(),
        "{} of {} tasks never finished: {:?}",
        unfinished.len(),
        ids.len(),
        &unfinished[..unfinished.len().min(5)]
    );
    let steps = ["research", "fetch", "render", "approve", "publish"];
    let committed = committed_once(&current(&server.base), &ids, &steps).await;
    let effects = tool.effects.lock().unwrap().clone();
    let repeats = check_effects(&effects, &committed);
    for (key, task) in jobs_seen.lock().unwrap().iter() {
        assert_eq!(
            key,
            &format!("{task}/render"),
            "a job of {task} carried another key"
        );
    }
    eprintln!(
        "{} tasks, {kills} kills: {} tool calls ({repeats} repeated, all with their step's key), {} jobs claimed",
        ids.len(),
        effects.len(),
        jobs_seen.lock().unwrap().len()
    );
}

/// Polls until every task in `ids` succeeded (a failed one fails the test); returns the
/// ones still unfinished at `limit`.
async fn wait_all(base: &str, ids: &[String], limit: Duration) -> Vec<String> {
    let http = client();
    let started = std::time::Instant::now();
    let mut unfinished = ids.to_vec();
    while !unfinished.is_empty() && started.elapsed() < limit {
        let mut still = Vec::new();
        for id in &unfinished {
            let task: Value = http
                .get(format!("{base}/v1/tasks/{id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            match task["status"].as_str() {
                Some("succeeded") => {}
                Some("failed" | "cancelled") => panic!("task {id} ended {task:#}"),
                _ => still.push(id.clone()),
            }
        }
        unfinished = still;
        if !unfinished.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    unfinished
}

/// A task's journal entries, through the API.
async fn journal(http: &reqwest::Client, base: &str, id: &str) -> Vec<Value> {
    let journal: Value = http
        .get(format!("{base}/v1/tasks/{id}/journal?limit=1000"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    journal["entries"].as_array().cloned().unwrap_or_default()
}

/// Reads every task's journal, asserts each of `steps` was committed exactly once, and
/// returns when: (task, step) → Unix ms.
async fn committed_once(
    base: &str,
    ids: &[String],
    steps: &[&str],
) -> HashMap<(String, String), u64> {
    let http = client();
    let mut committed = HashMap::new();
    for id in ids {
        let entries = journal(&http, base, id).await;
        let mut succeeded: HashMap<String, u32> = HashMap::new();
        for e in entries.iter().filter(|e| e["kind"] == "step_succeeded") {
            let step = e["data"]["step"].as_str().unwrap().to_string();
            *succeeded.entry(step.clone()).or_default() += 1;
            committed.insert((id.clone(), step), e["at_ms"].as_u64().unwrap());
        }
        for step in steps {
            assert_eq!(
                succeeded.get(*step),
                Some(&1),
                "task {id}: step {step} committed {succeeded:?} times"
            );
        }
    }
    committed
}

/// Asserts no tool call arrived after its step was committed and every call carried its
/// step's key; returns how many calls were repeats.
fn check_effects(effects: &[Effect], committed: &HashMap<(String, String), u64>) -> usize {
    let mut repeats = 0;
    let mut per_key: HashMap<String, u32> = HashMap::new();
    for (key, task, step, at) in effects {
        assert_eq!(
            key,
            &format!("{task}/{step}"),
            "a call of {task}/{step} carried another key"
        );
        let done = committed
            .get(&(task.clone(), step.clone()))
            .copied()
            .unwrap_or(u64::MAX);
        // The server stamps commits from a monotonic clock with a millisecond origin, so
        // its stamps and this process's wall clock may differ by a few milliseconds; a
        // step run again after its commit would come a restart or a poll later.
        assert!(
            *at <= done + CLOCK_SLACK_MS,
            "{task}/{step} ran at {at}, after its result was committed at {done}"
        );
        let n = per_key.entry(key.clone()).or_default();
        *n += 1;
        if *n > 1 {
            repeats += 1;
        }
    }
    repeats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_share_one_postgres_and_the_survivor_resumes_the_dead_nodes_work() {
    let Some(pg) = PgSchema::for_test("two_nodes") else {
        return;
    };
    let url = pg.url.clone();
    let (tool, tool_url) = start_tool().await;
    let dir = TempDir::new("two-nodes");
    let lease = Duration::from_secs(2);
    let node = |name: &str| {
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[store]\nurl = \"{url}\"\n\n[engine]\nnode_id = \"{name}\"\nlease = \"2s\"\npoll_interval = \"20ms\"\n\
             egress = {{ allow = [\"{tool_url}/*\"] }}\n"
        );
        let path = dir.write(&format!("{name}.toml"), &text);
        let args = [
            "serve",
            "--config",
            &path.display().to_string(),
            "--listen",
            "127.0.0.1:0",
        ]
        .map(String::from);
        let envs = [("HOLDFAST_STORE_URL".to_string(), url.clone())];
        Process::spawn(name, &args, &envs)
    };
    let a = node("node-a");
    let b = node("node-b");
    let (base_a, base_b) = (format!("http://{}", a.addr), format!("http://{}", b.addr));
    let http = client();
    let workflow = json!({"name": "shared", "steps": [
        {"name": "fetch", "kind": "http", "url": format!("{tool_url}/effects/{{{{ task.id }}}}/fetch")},
        {"name": "wait", "kind": "sleep", "duration": "400ms"},
        {"name": "slow", "kind": "http", "url": format!("{tool_url}/effects/{{{{ task.id }}}}/slow")},
        {"name": "publish", "kind": "http", "url": format!("{tool_url}/effects/{{{{ task.id }}}}/publish")},
    ]});
    let r = http
        .post(format!("{base_a}/v1/workflows"))
        .json(&workflow)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let mut ids = Vec::new();
    for i in 0..60 {
        let base = if i % 2 == 0 { &base_a } else { &base_b };
        let r = http
            .post(format!("{base}/v1/tasks"))
            .json(&json!({"workflow": "shared", "input": {"n": i}}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        let task: Value = r.json().await.unwrap();
        ids.push(task["task_id"].as_str().unwrap().to_string());
    }
    // Mid-load: node A dies while it holds leases (tasks in the middle of a step).
    let mut held = 0;
    for _ in 0..500 {
        let page: Value = http
            .get(format!("{base_b}/v1/tasks?status=running&limit=1000"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let tasks = page["tasks"].as_array().cloned().unwrap_or_default();
        held = tasks
            .iter()
            .filter(|t| t["lease"]["owner"] == "node-a")
            .count();
        if held >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(a);
    let killed = std::time::Instant::now();
    let unfinished = wait_all(&base_b, &ids, Duration::from_secs(30)).await;
    assert!(
        unfinished.is_empty(),
        "{} tasks never finished",
        unfinished.len()
    );
    let took = killed.elapsed();
    let committed = committed_once(&base_b, &ids, &["fetch", "wait", "slow", "publish"]).await;
    let effects = tool.effects.lock().unwrap().clone();
    let repeats = check_effects(&effects, &committed);
    let mut taken_over = 0;
    for id in &ids {
        let entries = journal(&http, &base_b, id).await;
        if entries
            .iter()
            .any(|e| e["kind"] == "taken_over" && e["data"]["from"] == "node-a")
        {
            taken_over += 1;
        }
    }
    eprintln!(
        "60 tasks on two nodes, node A killed holding {held} leases: {taken_over} taken over by node B, all done {took:?} after the kill; {} tool calls, {repeats} repeated",
        effects.len()
    );
    assert!(
        taken_over > 0,
        "node A held no task when it died; the test proved nothing"
    );
    // Node B takes the work over once A's leases expire, then needs only the rest of
    // the steps (a 400 ms sleep at most).
    assert!(
        took < lease + Duration::from_secs(3),
        "the survivor took {took:?}"
    );
    drop(b);
}

/// Three nodes on one PostgreSQL under load: node A is killed with SIGKILL, node B is
/// paused with SIGSTOP for longer than its leases and then let go. Every task
/// succeeds, every step of every task is committed exactly once, B's tasks were taken
/// over, and what B tried to write for them after it woke was refused by its stale
/// fencing token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_one_killed_one_paused_past_its_lease_every_step_committed_once() {
    let Some(pg) = PgSchema::for_test("three_nodes") else {
        return;
    };
    let url = pg.url.clone();
    let (_tool, tool_url) = start_tool().await;
    let dir = TempDir::new("three-nodes");
    let node = |name: &str| {
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[store]\nurl = \"{url}\"\n\n[engine]\nnode_id = \"{name}\"\nlease = \"1s\"\npoll_interval = \"20ms\"\n\
             egress = {{ allow = [\"{tool_url}/*\"] }}\n"
        );
        let path = dir.write(&format!("{name}.toml"), &text);
        let args = [
            "serve",
            "--config",
            &path.display().to_string(),
            "--listen",
            "127.0.0.1:0",
        ]
        .map(String::from);
        let envs = [("HOLDFAST_STORE_URL".to_string(), url.clone())];
        Process::spawn(name, &args, &envs)
    };
    let a = node("node-a");
    let b = node("node-b");
    let c = node("node-c");
    let bases: Vec<String> = [&a, &b, &c]
        .iter()
        .map(|p| format!("http://{}", p.addr))
        .collect();
    let base_c = bases[2].clone();
    let http = client();
    let workflow = json!({"name": "three", "steps": [
        {"name": "fetch", "kind": "http", "url": format!("{tool_url}/effects/{{{{ task.id }}}}/fetch")},
        {"name": "wait", "kind": "sleep", "duration": "300ms"},
        {"name": "slow", "kind": "http", "url": format!("{tool_url}/effects/{{{{ task.id }}}}/slow")},
        {"name": "publish", "kind": "http", "url": format!("{tool_url}/effects/{{{{ task.id }}}}/publish")},
    ]});
    let r = http
        .post(format!("{base_c}/v1/workflows"))
        .json(&workflow)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let mut ids = Vec::new();
    for i in 0..150 {
        let r = http
            .post(format!("{}/v1/tasks", bases[i % 3]))
            .json(&json!({"workflow": "three", "input": {"n": i}}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        let task: Value = r.json().await.unwrap();
        ids.push(task["task_id"].as_str().unwrap().to_string());
    }
    // Mid-load: A is killed while it holds a lease, then B is paused while it holds
    // one (read back after the SIGSTOP, so the pause surely catches it holding work).
    let held = |owner: &'static str| {
        let (http, base_c) = (http.clone(), base_c.clone());
        async move {
            let page: Value = http
                .get(format!("{base_c}/v1/tasks?status=running&limit=1000"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            page["tasks"].as_array().map_or(0, |t| {
                t.iter().filter(|t| t["lease"]["owner"] == owner).count()
            })
        }
    };
    let started = std::time::Instant::now();
    while held("node-a").await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "node A never held a task"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(a);
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &b.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {sig}");
    };
    loop {
        signal("-STOP");
        if held("node-b").await > 0 {
            break;
        }
        signal("-CONT");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "node B never held a task"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Past B's 1 s leases, with time for C to take its tasks over.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    signal("-CONT");
    let unfinished = wait_all(&base_c, &ids, Duration::from_secs(60)).await;
    assert!(
        unfinished.is_empty(),
        "{} tasks never finished",
        unfinished.len()
    );
    committed_once(&base_c, &ids, &["fetch", "wait", "slow", "publish"]).await;
    let mut from = HashMap::new();
    for id in &ids {
        for e in journal(&http, &base_c, id).await {
            if e["kind"] == "taken_over" {
                *from
                    .entry(e["data"]["from"].as_str().unwrap_or("").to_string())
                    .or_insert(0) += 1;
            }
        }
    }
    assert!(
        from.get("node-a").copied().unwrap_or(0) > 0,
        "nothing taken from A: {from:?}"
    );
    assert!(
        from.get("node-b").copied().unwrap_or(0) > 0,
        "nothing taken from B: {from:?}"
    );
    // B woke up still running tasks it no longer held: its writes were refused.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !b
        .output()
        .contains("lease lost; another node runs the task now")
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        b.output()
            .contains("lease lost; another node runs the task now"),
        "node B's late writes were not refused as stale:\n{}",
        b.output()
    );
    eprintln!("150 tasks on three nodes, A killed, B paused 2.5 s: taken over {from:?}");
    drop(b);
    drop(c);
}

/// Drops a test's schema with `psql`, when it is installed (the schema is harmless
/// otherwise: it is named after the test run).
fn drop_schema(url: &str, schema: &str) {
    let _ = std::process::Command::new("psql")
        .arg(url)
        .arg("-qc")
        .arg(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .output();
}
