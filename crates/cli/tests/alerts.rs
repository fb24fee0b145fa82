//! Alerts end to end: each default gateway rule driven to firing and then resolved by a
//! fault injected through `holdfast mock-provider`, with a webhook receiver (an axum
//! server in the test) seeing both notices; the Prometheus export checked by
//! `promtool`; and bad alert settings refused with their file, line and field.
//!
//! Every test shrinks the rule's window, `for` and the evaluation interval so that a
//! fire-and-resolve cycle takes a few seconds, and turns the other rules off so each
//! test hears only its own rule. The receiver answers its first POST with a 503: the
//! notice arriving anyway shows the webhook call went through the retry policy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use support::{ConfigBuilder, Gateway, Mock, Stopwatch, TempDir, chat_body, pause, serial};

/// Every rule name; a test enables one.
const RULES: [&str; 13] = [
    "retry_rate",
    "success_after_retry",
    "retry_delay",
    "breaker_open",
    "max_retries_exceeded",
    "retry_budget_exhaustion",
    "task_retrying_long",
    "escalation_rate",
    "cost_per_task",
    "completion_rate",
    "store_unreachable",
    "chaos_failed",
    "quality_score",
];

/// The webhook's bearer token; must never show in the server's output.
const TOKEN: &str = "hook-token-5f1e9c";

/// How long a rule may take to fire or resolve.
const PATIENCE: Duration = Duration::from_secs(8);

// ---------------------------------------------------------------------------------------
// The webhook receiver

#[derive(Clone, Default)]
struct Inbox {
    notices: Arc<Mutex<Vec<Value>>>,
    /// POSTs still to refuse with a 503.
    refuse: Arc<AtomicU32>,
    /// POSTs seen without the expected bearer token.
    unauthorised: Arc<AtomicU32>,
}

struct Receiver {
    url: String,
    inbox: Inbox,
}

async fn hook(State(inbox): State<Inbox>, headers: HeaderMap, body: String) -> StatusCode {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {TOKEN}")) {
        inbox.unauthorised.fetch_add(1, Ordering::Relaxed);
    }
    let refuse = inbox
        .refuse
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    if refuse.is_ok() {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let notice: Value = serde_json::from_str(&body).expect("a JSON notice");
    inbox.notices.lock().unwrap().push(notice);
    StatusCode::OK
}

impl Receiver {
    /// A receiver on a free port that refuses its first `refuse` POSTs with a 503.
    async fn start(refuse: u32) -> Receiver {
        let inbox = Inbox::default();
        inbox.refuse.store(refuse, Ordering::Relaxed);
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url: format!("http://{addr}/hook"),
            inbox,
        }
    }

    fn notices(&self) -> Vec<Value> {
        self.inbox.notices.lock().unwrap().clone()
    }

    /// The first notice of `alert` in `state`, waiting up to [`PATIENCE`].
    async fn wait_for(&self, alert: &str, state: &str) -> Value {
        let clock = Stopwatch::start();
        loop {
            if let Some(found) = self
                .notices()
                .into_iter()
                .find(|n| n["alert"] == alert && n["state"] == state)
            {
                eprintln!("{alert} {state} after {:?}: {found}", clock.elapsed());
                return found;
            }
            assert!(
                clock.elapsed() < PATIENCE,
                "no `{state}` notice for {alert} within {PATIENCE:?}; notices: {:?}",
                self.notices()
            );
            pause(Duration::from_millis(50)).await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Configuration and traffic

/// `[alerts]` evaluating every 100 ms, notifying `hook`, with only `rule` enabled
/// (its table gets `body`).
fn alerts_section(hook: &str, rule: &str, body: &str) -> String {
    let mut text = format!(
        "[alerts]\neval_interval = \"100ms\"\nwebhooks = [{{ url = \"{hook}\", secret_env = \"HOOK_TOKEN\" }}]\n\n"
    );
    for other in RULES.iter().filter(|r| **r != rule) {
        text.push_str(&format!("[alerts.rules.{other}]\nenabled = false\n\n"));
    }
    text.push_str(&format!("[alerts.rules.{rule}]\n{body}\n"));
    text
}

/// What a test sends while its fault is on.
#[derive(Clone, Copy)]
enum Load {
    /// Chat requests on route `smart` from `workers` workers, `gap` apart each.
    Chats(usize, Duration),
    /// Tasks of workflow `probe` (registered with this definition), one every `gap`.
    Tasks(Duration, &'static str),
}

/// Requests (chats or task submissions) from a few workers until stopped.
struct Traffic {
    stop: Arc<AtomicBool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Traffic {
    fn load(gateway: &Gateway, load: Load) -> Traffic {
        match load {
            Load::Chats(workers, gap) => Traffic::start(gateway, "smart", workers, gap),
            Load::Tasks(gap, _) => Traffic::posting(
                gateway,
                "/v1/tasks",
                json!({"workflow": "probe", "input": {}}),
                1,
                gap,
            ),
        }
    }

    fn start(gateway: &Gateway, route: &str, workers: usize, gap: Duration) -> Traffic {
        let body = chat_body(route, "hello", false);
        Traffic::posting(gateway, "/v1/chat/completions", body, workers, gap)
    }

    fn posting(
        gateway: &Gateway,
        path: &str,
        body: Value,
        workers: usize,
        gap: Duration,
    ) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let handles = (0..workers)
            .map(|_| {
                let (client, url) = (gateway.client.clone(), gateway.url(path));
                let (stop, body) = (Arc::clone(&stop), body.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok(response) = client.post(&url).json(&body).send().await {
                            let _ = response.bytes().await;
                        }
                        pause(gap).await;
                    }
                })
            })
            .collect();
        Traffic { stop, handles }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for handle in self.handles {
            handle.await.unwrap();
        }
    }
}

/// The faults a test sets on its mock: before the load starts (and for `settle`
/// after), then until the rule fires, then until it resolves.
struct Phases {
    baseline: Value,
    settle: Duration,
    fault: Value,
    heal: Value,
}

impl Phases {
    /// Healthy, then `fault` at once, then healthy again.
    fn fault(fault: Value) -> Phases {
        Phases::fault_then(fault, json!({}))
    }

    /// Healthy, then `fault` at once, then `heal`.
    fn fault_then(fault: Value, heal: Value) -> Phases {
        Phases {
            baseline: json!({}),
            settle: Duration::ZERO,
            fault,
            heal,
        }
    }
}

/// A gateway with `config` plus alerts on `rule`, under `load`, through the fault
/// `phases` on `mock`. Returns both notices.
async fn fire_then_resolve(
    rule: &str,
    body: &str,
    config: ConfigBuilder,
    mock: &Mock,
    phases: Phases,
    load: Load,
) -> (Value, Value, Gateway) {
    let receiver = Receiver::start(1).await;
    let config = config.raw(&alerts_section(&receiver.url, rule, body));
    let gateway = Gateway::start_with_env(&config, &[("HOOK_TOKEN", TOKEN)]);
    gateway.warm_up("smart").await;
    if let Load::Tasks(_, workflow) = load {
        register(&gateway, workflow).await;
    }
    mock.set_faults(phases.baseline).await;
    let traffic = Traffic::load(&gateway, load);
    pause(phases.settle).await;
    assert!(
        receiver.notices().is_empty(),
        "notices before the fault: {:?}",
        receiver.notices()
    );
    mock.set_faults(phases.fault).await;
    let firing = receiver.wait_for(rule, "firing").await;
    let board = dashboard(&gateway).await;
    let shown = board["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["alert"] == rule)
        .cloned()
        .unwrap();
    assert_eq!(shown["state"], "firing", "dashboard: {board}");
    mock.set_faults(phases.heal).await;
    let resolved = receiver.wait_for(rule, "resolved").await;
    traffic.stop().await;

    for notice in [&firing, &resolved] {
        for field in ["severity", "value", "threshold", "summary", "started_at"] {
            assert!(!notice[field].is_null(), "{field} missing from {notice}");
        }
    }
    assert!(firing.get("resolved_at").is_none(), "{firing}");
    assert!(resolved["resolved_at"].is_string(), "{resolved}");
    assert_eq!(firing["started_at"], resolved["started_at"]);
    let why = resolved["summary"].as_str().unwrap();
    assert!(
        !why.starts_with("no data"),
        "resolved for lack of data: {why}"
    );
    assert_eq!(receiver.inbox.unauthorised.load(Ordering::Relaxed), 0);
    // The first POST was refused: the notice came through a retry.
    assert_eq!(receiver.inbox.refuse.load(Ordering::Relaxed), 0);
    let board = dashboard(&gateway).await;
    let recent = board["recent"].as_array().unwrap();
    assert!(
        recent
            .iter()
            .any(|n| n["alert"] == rule && n["state"] == "resolved")
    );
    assert!(
        recent
            .iter()
            .any(|n| n["alert"] == rule && n["state"] == "firing")
    );
    let output = gateway.process.output();
    assert!(
        output.contains(&format!(
            "alert firing: {}",
            firing["summary"].as_str().unwrap()
        )),
        "{output}"
    );
    assert!(
        !output.contains(TOKEN),
        "the webhook token leaked: {output}"
    );
    (firing, resolved, gateway)
}

/// Registers a workflow from its JSON definition.
async fn register(gateway: &Gateway, workflow: &str) {
    let definition: Value = serde_json::from_str(workflow).unwrap();
    let response = gateway
        .client
        .post(gateway.url("/v1/workflows"))
        .json(&definition)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(
        status.is_success(),
        "registering {workflow}: {status} {text}"
    );
}

async fn dashboard(gateway: &Gateway) -> Value {
    let response = gateway
        .client
        .get(gateway.url("/v1/holdfast/alerts"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

/// A policy for the tests that need every retry to happen: fast backoff, a budget
/// that never runs out and no breaker, with `attempts` per target.
fn generous(attempts: u32) -> String {
    format!(
        "retry = {{ max_attempts = {attempts}, base = \"5ms\", cap = \"10ms\" }}\n\
         budget = {{ ratio = 1.0, min_per_second = 10000 }}\n\
         breaker = {{ enabled = false }}"
    )
}

const FAST: &str = "window = \"2s\"\nfor = \"300ms\"\nmin_volume = 5";

// ---------------------------------------------------------------------------------------
// One test per rule

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_rate_fires_on_503s_and_resolves_when_they_stop() {
    let _serial = serial().await;
    let mock = Mock::start("openai", &[]);
    // No breaker: an open one would end the retries by keeping traffic away, and the
    // alert would resolve for lack of data rather than because the 503s stopped.
    let config = ConfigBuilder::new()
        .policy("default", &generous(3))
        .target("primary", &mock, "")
        .route("smart", &["primary"], "");
    let (firing, resolved, _) = fire_then_resolve(
        "retry_rate",
        FAST,
        config,
        &mock,
        Phases::fault(json!({"error_rates": {"503": 0.5}})),
        Load::Chats(2, Duration::from_millis(5)),
    )
    .await;
    assert!(firing["value"].as_f64().unwrap() > 0.1, "{firing}");
    assert_eq!(firing["severity"], "warning");
    assert!(resolved["value"].as_f64().unwrap() <= 0.09, "{resolved}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_after_retry_fires_when_retries_stop_rescuing_calls() {
    let _serial = serial().await;
    let mock = Mock::start("openai", &[]);
    let config = ConfigBuilder::new()
        .policy("default", &generous(4))
        .target("primary", &mock, "")
        .route("smart", &["primary"], "");
    let (firing, resolved, _) = fire_then_resolve(
        "success_after_retry",
        FAST,
        config,
        &mock,
        // 90% failures: a call that failed once is rescued 27% of the time; at 20%,
        // 99% of the time.
        Phases::fault_then(
            json!({"error_rates": {"503": 0.9}}),
            json!({"error_rates": {"503": 0.2}}),
        ),
        Load::Chats(2, Duration::from_millis(5)),
    )
    .await;
    assert!(firing["value"].as_f64().unwrap() < 0.8, "{firing}");
    assert!(resolved["value"].as_f64().unwrap() >= 0.88, "{resolved}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_delay_fires_on_long_retry_after_and_resolves_on_short_backoff() {
    let _serial = serial().await;
    let mock = Mock::start("openai", &[]);
    let config = ConfigBuilder::new()
        .policy("default", &generous(2))
        .target("primary", &mock, "")
        .route("smart", &["primary"], "");
    let (firing, resolved, _) = fire_then_resolve(
        "retry_delay",
        "threshold = \"150ms\"\nwindow = \"2s\"\nfor = \"300ms\"\nmin_volume = 2",
        config,
        &mock,
        // 429s asking for 400 ms, then 503s retried after 5–10 ms of backoff.
        Phases::fault_then(
            json!({"error_rates": {"429": 0.5, "retry_after": "400ms"}}),
            json!({"error_rates": {"503": 0.3}}),
        ),
        Load::Chats(3, Duration::from_millis(5)),
    )
    .await;
    assert!(firing["value"].as_f64().unwrap() > 0.15, "{firing}");
    assert!((firing["threshold"].as_f64().unwrap() - 0.15).abs() < 1e-9);
    assert!(resolved["value"].as_f64().unwrap() <= 0.135, "{resolved}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_open_fires_during_an_outage_and_resolves_when_it_closes() {
    let _serial = serial().await;
    let primary = Mock::start("openai", &[]);
    let fallback = Mock::start("openai", &[]);
    let config = ConfigBuilder::new()
        .policy(
            "outage",
            r#"retry = { max_attempts = 2, base = "10ms", cap = "20ms" }
breaker = { failure_rate = 0.5, window = "5s", min_calls = 5, open_for = "300ms", max_open_for = "500ms", half_open_probes = 1 }"#,
        )
        .target("primary", &primary, "")
        .target("fallback", &fallback, "")
        .route("smart", &["primary", "fallback"], "policy = \"outage\"");
    let (firing, resolved, _) = fire_then_resolve(
        "breaker_open",
        "for = \"1s\"",
        config,
        &primary,
        Phases::fault(json!({"error_rates": {"503": 1.0}})),
        Load::Chats(2, Duration::from_millis(10)),
    )
    .await;
    assert_eq!(firing["value"], 1.0, "{firing}");
    assert_eq!(firing["severity"], "critical");
    assert_eq!(resolved["value"], 0.0, "{resolved}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_retries_exceeded_fires_when_calls_run_out_of_attempts() {
    let _serial = serial().await;
    let mock = Mock::start("openai", &[]);
    let config = ConfigBuilder::new()
        .policy("default", &generous(2))
        .target("primary", &mock, "")
        .route("smart", &["primary"], "");
    let (firing, resolved, _) = fire_then_resolve(
        "max_retries_exceeded",
        FAST,
        config,
        &mock,
        Phases::fault(json!({"error_rates": {"503": 1.0}})),
        Load::Chats(2, Duration::from_millis(5)),
    )
    .await;
    assert!(firing["value"].as_f64().unwrap() > 0.05, "{firing}");
    assert!(resolved["value"].as_f64().unwrap() <= 0.045, "{resolved}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_budget_exhaustion_warns_before_the_budget_is_empty() {
    let _serial = serial().await;
    let mock = Mock::start("openai", &[]);
    // A reserve of 20 retries per 10 s and nothing earned: at ~5 retries a second the
    // budget is empty in ~4 s, and the trend says so well before.
    let config = ConfigBuilder::new()
        .policy(
            "default",
            "retry = { max_attempts = 2, base = \"5ms\", cap = \"10ms\" }\n\
             budget = { ratio = 0.0, min_per_second = 2, window = \"10s\" }\n\
             breaker = { enabled = false }",
        )
        .target("primary", &mock, "")
        .route("smart", &["primary"], "");
    let (firing, resolved, gateway) = fire_then_resolve(
        "retry_budget_exhaustion",
        "window = \"1s\"\nhorizon = \"10s\"\nfor = \"0s\"",
        config,
        &mock,
        Phases::fault(json!({"error_rates": {"503": 1.0}})),
        Load::Chats(1, Duration::from_millis(200)),
    )
    .await;
    let summary = firing["summary"].as_str().unwrap();
    assert!(summary.contains("retry budget empty in ~"), "{summary}");
    // An eta of zero would mean it fired only once the budget was already empty.
    assert!(!summary.contains("empty in ~0ms"), "{summary}");
    assert!(firing["value"].as_f64().unwrap() < 1.0, "{firing}");
    assert!(resolved["value"].as_f64().unwrap() >= 1.1, "{resolved}");
    // The budget never ran dry: the warning came first, and the budget gauge is
    // served on /metrics.
    let scrape = gateway.metrics().await;
    let remaining: f64 = scrape
        .lines()
        .find_map(|l| l.strip_prefix("holdfast_retry_budget_remaining "))
        .expect("holdfast_retry_budget_remaining on /metrics")
        .parse()
        .unwrap();
    assert!(remaining >= 1.0, "budget at {remaining}");
}

/// A route whose calls make one attempt and never trip a breaker: a failure reaches
/// the workflow step as it is, for the engine's own retry policy to handle.
fn single_attempt(mock: &Mock, target_extra: &str) -> ConfigBuilder {
    ConfigBuilder::new()
        .policy("default", &generous(1))
        .target("primary", mock, target_extra)
        .route("smart", &["primary"], "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_retrying_long_fires_while_a_step_keeps_failing() {
    let _serial = serial().await;
    let mock = Mock::start("openai", &[]);
    let (firing, resolved, _) = fire_then_resolve(
        "task_retrying_long",
        "threshold = \"1s\"",
        single_attempt(&mock, ""),
        &mock,
        Phases::fault(json!({"error_rates": {"503": 1.0}})),
        Load::Tasks(
            Duration::from_millis(200),
            r#"{"name": "probe", "steps": [{"name": "ask", "kind": "llm", "route": "smart",
                "prompt": "hello", "retry": {"max_attempts": 100, "base": "50ms", "cap": "100ms"}}]}"#,
        ),
    )
    .await;
    assert!(firing["value"].as_f64().unwrap() > 1.0, "{firing}");
    assert!(firing["summary"].as_str().unwrap().contains("retrying for"));
    // A task whose attempt was in flight as the fault cleared may still be retrying,
    // briefly.
    assert!(resolved["value"].as_f64().unwrap() <= 0.9, "{resolved}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_rate_fires_above_its_baseline_and_resolves_back_at_it() {
    let _serial = serial().await;
    let mock = Mock::start("openai", &[]);
    let usual = json!({"error_rates": {"503": 0.2}});
    let (firing, resolved, _) = fire_then_resolve(
        "escalation_rate",
        "window = \"1s\"\nbaseline_window = \"2s\"\nfor = \"0s\"\nmin_volume = 10",
        single_attempt(&mock, ""),
        &mock,
        // One task in five escalates as usual; then all of them; then one in five.
        Phases {
            baseline: usual.clone(),
            // The baseline counts once the history covers both windows.
            settle: Duration::from_millis(3500),
            fault: json!({"error_rates": {"503": 1.0}}),
            heal: usual,
        },
        Load::Tasks(
            Duration::from_millis(30),
            r#"{"name": "probe", "steps": [{"name": "ask", "kind": "llm", "route": "smart",
                "prompt": "hello", "retry": {"max_attempts": 1}, "on_exhausted": "escalate"}]}"#,
        ),
    )
    .await;
    assert!(firing["value"].as_f64().unwrap() > 2.0, "{firing}");
    assert!(resolved["value"].as_f64().unwrap() <= 1.8, "{resolved}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_per_task_fires_when_the_model_turns_verbose() {
    let _serial = serial().await;
    let mock = Mock::start("openai", &[]);
    // A dollar a token, so that cost follows the answer's length.
    let price = "price = { input_per_mtok = 1000000, output_per_mtok = 1000000 }";
    let verbose = "This answer goes on and on. ".repeat(40);
    let (firing, resolved, _) = fire_then_resolve(
        "cost_per_task",
        "window = \"1s\"\nbaseline_window = \"2s\"\nfor = \"0s\"\nmin_volume = 10",
        single_attempt(&mock, price),
        &mock,
        Phases {
            baseline: json!({}),
            settle: Duration::from_millis(3500),
            fault: json!({"answer": verbose}),
            heal: json!({}),
        },
        Load::Tasks(
            Duration::from_millis(30),
            r#"{"name": "probe", "steps": [{"name": "ask", "kind": "llm", "route": "smart",
                "prompt": "hello"}]}"#,
        ),
    )
    .await;
    assert!(firing["value"].as_f64().unwrap() > 2.0, "{firing}");
    assert!(resolved["value"].as_f64().unwrap() <= 1.8, "{resolved}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_rate_fires_when_tasks_fail_and_resolves_when_they_succeed() {
    let _serial = serial().await;
    let mock = Mock::start("openai", &[]);
    let (firing, resolved, _) = fire_then_resolve(
        "completion_rate",
        "window = \"1s\"\nfor = \"0s\"\nmin_volume = 10",
        single_attempt(&mock, ""),
        &mock,
        // Tasks fail once their one model call fails.
        Phases {
            baseline: json!({}),
            settle: Duration::from_millis(500),
            fault: json!({"error_rates": {"503": 1.0}}),
            heal: json!({}),
        },
        Load::Tasks(
            Duration::from_millis(30),
            r#"{"name": "probe", "steps": [{"name": "ask", "kind": "llm", "route": "smart",
                "prompt": "hello", "retry": {"max_attempts": 1}}]}"#,
        ),
    )
    .await;
    assert!(firing["value"].as_f64().unwrap() < 0.9, "{firing}");
    assert!(resolved["value"].as_f64().unwrap() >= 0.9, "{resolved}");
    assert!(
        firing["summary"]
            .as_str()
            .unwrap()
            .contains("of the finished tasks of the lowest task type succeeded"),
        "{firing}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quality_score_fires_when_answers_degrade_and_resolves_when_they_recover() {
    let _serial = serial().await;
    let mock = Mock::start("openai", &[]);
    let dir = TempDir::new("quality-score");
    dir.write(
        "smart.jsonl",
        r#"{"id": "c1", "input": [{"role": "user", "content": "hello"}], "expected": "scripted", "assert": [{"type": "contains"}], "tags": ["labeled"]}"#,
    );
    // Every answer sampled, graded by whether it is the mock's scripted one.
    let suite = dir.write(
        "smart.toml",
        "name = \"smart\"\ndataset = \"smart.jsonl\"\n[task]\nroute = \"smart\"\n\
         [production]\nassert = [{ type = \"contains\", value = \"scripted answer\" }]\n",
    );
    let sampling = format!(
        "[quality.sampling.smart]\nsuite = \"{}\"\nshare = 1.0",
        suite.display()
    );
    let (firing, resolved, gateway) = fire_then_resolve(
        "quality_score",
        "for = \"0s\"",
        single_attempt(&mock, "").raw(&sampling),
        &mock,
        Phases::fault(json!({"answer": "I would rather not say."})),
        Load::Chats(2, Duration::from_millis(5)),
    )
    .await;
    assert!(firing["value"].as_f64().unwrap() < 0.7, "{firing}");
    assert!(resolved["value"].as_f64().unwrap() >= 0.7, "{resolved}");
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("holdfast_quality_samples_total{task_type=\"smart\",result=\"scored\"}"),
        "{metrics}"
    );
}

// ---------------------------------------------------------------------------------------
// Prometheus

/// `promtool`, or `None` after a loud skip (a failure in CI).
fn promtool() -> Option<&'static str> {
    support::needs::command(
        "promtool",
        &["--version"],
        "scripts/setup-test-deps installs it (Debian package prometheus)",
    )
    .then_some("promtool")
}

/// The harness itself (`test-support/needs.rs`): this test binary run again for the
/// promtool test alone, with a `PATH` that has no promtool. Under `HOLDFAST_CI=1` the
/// test fails and says what is missing and how to install it; without it, it passes
/// with one skip line on stderr that libtest's capture did not swallow.
#[test]
fn a_missing_promtool_fails_under_ci_and_skips_loudly_otherwise() {
    let no_tools = TempDir::new("no-tools");
    let rerun = |ci: Option<&str>| {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["exported_rules_pass_promtool_check_rules", "--exact"])
            .env("PATH", no_tools.path())
            .env_remove(support::needs::CI_VAR)
            .stdin(Stdio::null());
        if let Some(value) = ci {
            command.env(support::needs::CI_VAR, value);
        }
        let out = command.output().unwrap();
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    };

    let (passed, stdout, stderr) = rerun(Some("1"));
    assert!(!passed, "{stdout}{stderr}");
    assert!(stdout.contains("1 failed"), "{stdout}");
    assert!(
        stdout.contains("`promtool` is not installed")
            && stdout.contains("HOLDFAST_CI is set")
            && stdout.contains("scripts/setup-test-deps installs it (Debian package prometheus)"),
        "{stdout}"
    );
    assert!(!stderr.contains(support::needs::SKIP_PREFIX), "{stderr}");

    for ci in [None, Some(""), Some("0")] {
        let (passed, stdout, stderr) = rerun(ci);
        assert!(passed, "{ci:?}: {stdout}{stderr}");
        let skips: Vec<&str> = stderr
            .lines()
            .filter(|line| line.starts_with(support::needs::SKIP_PREFIX))
            .collect();
        assert_eq!(skips.len(), 1, "{ci:?}: {stderr}");
        assert!(
            skips[0]
                .contains("exported_rules_pass_promtool_check_rules: `promtool` is not installed"),
            "{}",
            skips[0]
        );
    }
}

#[test]
fn exported_rules_pass_promtool_check_rules() {
    let Some(promtool) = promtool() else {
        return;
    };
    let dir = TempDir::new("alerts-export");
    let config = dir.write(
        "holdfast.toml",
        "[alerts.rules.retry_rate]\nthreshold = 0.2\nwindow = \"90s\"\nseverity = \"critical\"\n\n\
         [alerts.rules.retry_budget_exhaustion]\nhorizon = \"250ms\"\n",
    );
    for (name, args) in [
        ("defaults.yml", vec![]),
        (
            "configured.yml",
            vec!["--config".to_owned(), config.display().to_string()],
        ),
    ] {
        let out = dir.path().join(name);
        let mut command = vec!["alerts", "export-prometheus", "--output"];
        let out_arg = out.display().to_string();
        command.push(&out_arg);
        command.extend(args.iter().map(String::as_str));
        let (code, stdout, stderr) = support::run(&command);
        assert_eq!(code, Some(0), "{stdout}{stderr}");
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.contains("holdfast_retries_total"), "{text}");
        let check = Command::new(promtool)
            .args(["check", "rules"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "promtool check rules {name}: {}{}\n{text}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        if name == "configured.yml" {
            assert!(text.contains("> 0.2 and"), "{text}");
            assert!(text.contains("[90s]"), "{text}");
            assert!(text.contains("predict_linear(holdfast_retry_budget_remaining[5m], 0.25)"));
        }
    }
    // To standard output without --output.
    let (code, stdout, _) = support::run(&["alerts", "export-prometheus"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("- alert: holdfast_breaker_open"));
}

/// A store down from 1m to 2m45s, scraped every 15 s.
const STORE_RULE_TEST: &str = r#"rule_files: [rules.yml]
evaluation_interval: 15s
tests:
  - interval: 15s
    input_series:
      - series: holdfast_store_up
        values: "1 1 1 1 0 0 0 0 0 0 0 0 1 1 1 1"
    alert_rule_test:
      - eval_time: 1m15s
        alertname: holdfast_store_unreachable
        exp_alerts: []
      - eval_time: 2m30s
        alertname: holdfast_store_unreachable
        exp_alerts:
          - exp_labels: {severity: critical}
            exp_annotations:
              summary: "holdfast store_unreachable: 0 is below 0.5 (critical)"
      - eval_time: 3m30s
        alertname: holdfast_store_unreachable
        exp_alerts: []
"#;

/// The exported `store_unreachable` rule, run by Prometheus' own evaluator over a
/// store that goes down for two minutes: pending at first, firing once down for its
/// minute, quiet again once the store is back.
#[test]
fn exported_store_unreachable_fires_in_promtool_after_a_minute_down() {
    let Some(promtool) = promtool() else {
        return;
    };
    let dir = TempDir::new("alerts-store");
    let rules = dir.path().join("rules.yml");
    let (code, stdout, stderr) = support::run(&[
        "alerts",
        "export-prometheus",
        "--output",
        &rules.display().to_string(),
    ]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let tests = dir.write("store.test.yml", STORE_RULE_TEST);
    let check = Command::new(promtool)
        .args(["test", "rules"])
        .arg(&tests)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "promtool test rules: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_under_load_passes_promtool_check_metrics() {
    let Some(promtool) = promtool() else {
        return;
    };
    let _serial = serial().await;
    let mock = Mock::start("openai", &["--rate-503", "0.3", "--rate-429", "0.1"]);
    let fallback = Mock::start("openai", &[]);
    let config = ConfigBuilder::new()
        .target("primary", &mock, "")
        .target("fallback", &fallback, "")
        .route("smart", &["primary", "fallback"], "")
        .raw("[alerts]\neval_interval = \"100ms\"\n");
    let gateway = Gateway::start(&config);
    let traffic = Traffic::start(&gateway, "smart", 4, Duration::from_millis(2));
    pause(Duration::from_millis(1500)).await;
    let scrape = gateway.metrics().await;
    traffic.stop().await;
    assert!(
        scrape.contains("holdfast_retry_budget_remaining"),
        "{scrape}"
    );
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(scrape.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{scrape}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------
// Bad input

#[test]
fn malformed_rules_and_webhook_urls_are_refused_with_their_line_and_field() {
    let dir = TempDir::new("alerts-bad");
    let text = "[alerts]\n\
        webhooks = [{ url = \"ftp://hooks.example/s3cret\" }, { url = \"https://\" }, { url = \"hooks.example/x\" }]\n\
        \n\
        [alerts.rules.retry_rat]\n\
        threshold = 0.2\n\
        \n\
        [alerts.rules.retry_rate]\n\
        threshold = 1.5\n\
        horizon = \"5m\"\n\
        \n\
        [alerts.rules.retry_delay]\n\
        threshold = 60\n";
    let path = dir.write("bad.toml", text);
    let file = path.display().to_string();
    let expected = [
        "2:21: alerts.webhooks[0].url: has scheme `ftp`",
        "alerts.webhooks[1].url:",
        "alerts.webhooks[2].url: is not a URL",
        "4:1: alerts.rules.retry_rat: unknown alert rule \"retry_rat\" (known: retry_rate,",
        "8:13: alerts.rules.retry_rate.threshold: 1.5 is not a share in (0, 1]",
        "9:11: alerts.rules.retry_rate.horizon: does not apply to `retry_rate`",
        "12:13: alerts.rules.retry_delay.threshold: 60 has no unit",
    ];
    for args in [
        vec!["config", "check", file.as_str()],
        vec!["serve", "--config", file.as_str()],
        vec!["alerts", "export-prometheus", "--config", file.as_str()],
    ] {
        let (code, stdout, stderr) = support::run(&args);
        assert_eq!(code, Some(2), "{args:?}: {stdout}{stderr}");
        for line in expected {
            assert!(
                stderr.contains(line),
                "{args:?}: want {line:?} in:\n{stderr}"
            );
        }
        assert!(
            stdout.is_empty() || !stdout.contains("listening on"),
            "{stdout}"
        );
        assert!(
            !stderr.contains("s3cret"),
            "a webhook URL was echoed: {stderr}"
        );
    }
}

#[test]
fn a_bad_severity_or_duration_is_refused_at_its_field() {
    let dir = TempDir::new("alerts-bad-values");
    let path = dir.write(
        "bad.toml",
        "[alerts]\neval_interval = \"1ms\"\n\n[alerts.rules.breaker_open]\nseverity = \"page\"\n",
    );
    let (code, _, stderr) = support::run(&["config", "check", &path.display().to_string()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("5:12: alerts.rules.breaker_open.severity: unknown variant `page`"),
        "{stderr}"
    );
    let path = dir.write("bad2.toml", "[alerts]\neval_interval = \"1ms\"\n");
    let (code, _, stderr) = support::run(&["config", "check", &path.display().to_string()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("2:17: alerts.eval_interval: must be \"10ms\" to \"5m\""),
        "{stderr}"
    );
    let path = dir.write(
        "bad3.toml",
        "[[alerts.webhooks]]\nurl = \"https://user:hunter2@hooks.example/x\"\n",
    );
    let (code, _, stderr) = support::run(&["config", "check", &path.display().to_string()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("alerts.webhooks[0].url: must not carry credentials"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2"),
        "a credential was echoed: {stderr}"
    );
}
