//! The experiment library in `chaos/`, run with `holdfast chaos run` against the real
//! binary and mock providers: each experiment passes on a configuration with its
//! safeguard on, and fails, naming the right probe, with the safeguard switched off.
//! The library is a table (`Case`: the file, the deployment with the safeguard on and
//! off, the probe the verdict must name); each case is its own test with its own
//! gateway and mocks, so the cases run concurrently. Also: the HTML report is
//! self-contained and holds its plots, and a bad experiment file is refused with its
//! line and field before anything is injected.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;

use serde_json::{Value, json};
use support::{ConfigBuilder, Gateway, Mock, TempDir, run};

fn library(name: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../chaos");
    dir.join(name).display().to_string()
}

fn mock_url(mock: &Mock) -> String {
    format!("http://{}", mock.process.addr)
}

/// Runs one experiment; (exit code, the JSON report, stderr).
async fn experiment(
    file: &str,
    server: &str,
    vars: Vec<(&str, String)>,
    extra: &[&str],
) -> (Option<i32>, Value, String) {
    let mut args: Vec<String> = ["chaos", "run", &library(file), "--server", server, "--json"]
        .map(String::from)
        .to_vec();
    for (name, value) in vars {
        args.push("--var".to_owned());
        args.push(format!("{name}={value}"));
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args)
    })
    .await
    .unwrap();
    let report = serde_json::from_str(&out).unwrap_or(Value::Null);
    (code, report, err)
}

fn verdict(report: &Value) -> &Value {
    &report["experiments"][0]["verdict"]
}

const FAST_RETRY: &str = r#"retry = { max_attempts = 3, base = "10ms", cap = "50ms" }"#;

/// Whether a case's deployment has its safeguard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Safeguard {
    On,
    Off,
}

/// What an experiment runs against: the gateway, the mocks behind it (kept alive), the
/// `--var`s that point the experiment at them, and a workflow to register first.
struct Deployment {
    gateway: Gateway,
    _mocks: Vec<Mock>,
    vars: Vec<(&'static str, String)>,
    workflow: Option<Value>,
}

impl Deployment {
    /// `config` with the first mock's URL as `primary`.
    fn new(config: &ConfigBuilder, mocks: Vec<Mock>) -> Deployment {
        let vars = vec![("primary", mock_url(&mocks[0]))];
        Deployment {
            gateway: Gateway::start(config),
            _mocks: mocks,
            vars,
            workflow: None,
        }
    }

    fn var(mut self, name: &'static str, value: impl Into<String>) -> Deployment {
        self.vars.push((name, value.into()));
        self
    }
}

/// One experiment of the library: the deployments with its safeguard on and off, and
/// what the verdict must name with it off.
struct Case {
    file: &'static str,
    deploy: fn(Safeguard) -> Deployment,
    /// The probes the verdict may name with the safeguard off.
    probes: &'static [&'static str],
    /// The phase it deviates in, when the experiment pins it.
    phase: Option<&'static str>,
}

/// Runs the case's experiment with its safeguard on (it passes) and off (it fails,
/// naming one of the case's probes), both at once.
async fn holds_only_with_its_safeguard(case: &Case) {
    // One case at a time: each runs two deployments and their traffic at once, and two
    // cases side by side starve a 2-core machine into timeouts no safeguard can help.
    let _serial = support::serial().await;
    let (on, off) = ((case.deploy)(Safeguard::On), (case.deploy)(Safeguard::Off));
    let run = |d: &Deployment| {
        let (base, vars, workflow) = (d.gateway.base.clone(), d.vars.clone(), d.workflow.clone());
        async move {
            if let Some(workflow) = workflow {
                register(&base, &workflow).await;
            }
            experiment(case.file, &base, vars, &[]).await
        }
    };
    let ((code, report, err), (off_code, off_report, off_err)) = tokio::join!(run(&on), run(&off));
    assert_eq!(code, Some(0), "{}: {report:#}\n{err}", case.file);
    assert_eq!(verdict(&report)["status"], "passed", "{report:#}");
    assert_eq!(
        off_code,
        Some(1),
        "{}: {off_report:#}\n{off_err}",
        case.file
    );
    let probe = verdict(&off_report)["probe"].as_str().unwrap_or_default();
    assert!(
        case.probes.contains(&probe),
        "{}: with its safeguard off, the verdict names {probe:?}, not one of {:?}: {off_report:#}",
        case.file,
        case.probes
    );
    if let Some(phase) = case.phase {
        assert_eq!(verdict(&off_report)["phase"], phase, "{off_report:#}");
    }
}

async fn register(base: &str, workflow: &Value) {
    let r = support::client()
        .post(format!("{base}/v1/workflows"))
        .json(workflow)
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert!(
        status.is_success() || status == reqwest::StatusCode::CONFLICT,
        "{}",
        r.text().await.unwrap()
    );
}

/// A mock per entry of `targets` and a gateway whose targets `primary`, `fallback`,
/// `tertiary` (as many as mocks) sit on them, each with its entry's extra lines, behind
/// the route `(name, chain, extra lines)`, under `policy`, with `extra` TOML.
fn deploy(policy: &str, targets: &[&str], route: (&str, &[&str], &str), extra: &str) -> Deployment {
    const NAMES: [&str; 3] = ["primary", "fallback", "tertiary"];
    let mocks: Vec<Mock> = targets.iter().map(|_| Mock::start("openai", &[])).collect();
    let mut config = ConfigBuilder::new().policy("default", policy);
    for (i, (mock, lines)) in mocks.iter().zip(targets).enumerate() {
        config = config.target(NAMES[i], mock, lines);
    }
    let config = config.route(route.0, route.1, route.2).raw(extra);
    Deployment::new(&config, mocks)
}

/// Two targets behind route `smart` with the given policy; the first's mock is the one
/// the experiment injects faults into.
fn two_targets(policy: &str) -> Deployment {
    deploy(
        policy,
        &["", ""],
        ("smart", &["primary", "fallback"], ""),
        "",
    )
}

/// One target behind route `single` with the given policy.
fn one_target(policy: &str) -> Deployment {
    deploy(policy, &[""], ("single", &["primary"], ""), "")
}

/// Two targets behind route `smart` with `extra` lines in the route's table, the
/// route over `chain`.
fn two_targets_route(extra: &str, chain: &[&str]) -> Deployment {
    deploy(FAST_RETRY, &["", ""], ("smart", chain, extra), "")
}

/// `FAST_RETRY` with `line` on the safeguard's side named by `when`.
fn with(line: &str, when: bool) -> String {
    if when {
        format!("{FAST_RETRY}\n{line}")
    } else {
        FAST_RETRY.to_owned()
    }
}

macro_rules! library_case {
    ($($name:ident: $case:expr;)*) => {$(
        #[tokio::test]
        async fn $name() {
            holds_only_with_its_safeguard(&$case).await;
        }
    )*};
}

library_case! {
    the_breaker_cuts_off_a_dead_target_and_without_breakers_it_does_not: Case {
        file: "breaker-outage.toml",
        deploy: |s| two_targets(&with("breaker = { enabled = false }", s == Safeguard::Off)),
        probes: &["calls to the dead target"],
        phase: Some("during"),
    };
    retries_absorb_transient_errors_and_without_retries_they_do_not: Case {
        file: "retry-by-class.toml",
        deploy: |s| match s {
            Safeguard::On => one_target(FAST_RETRY),
            Safeguard::Off => one_target("retry = { max_attempts = 1 }"),
        },
        probes: &["success rate"],
        phase: None,
    };
    a_long_retry_after_fails_over_and_waiting_instead_is_caught: Case {
        file: "retry-after.toml",
        deploy: |s| two_targets(&with(
            "fail_over_when_retry_after_exceeds = \"30s\"",
            s == Safeguard::Off,
        )),
        probes: &["p99 latency", "success rate"],
        phase: Some("during"),
    };
    // Breakers off on both sides: the budget alone is under test, with a small reserve
    // so that a short outage is past it.
    the_budget_keeps_an_outage_from_a_retry_storm_and_without_it_does_not: Case {
        file: "budget-total-outage.toml",
        deploy: |s| one_target(&format!(
            "{FAST_RETRY}\nbreaker = {{ enabled = false }}\nbudget = {}",
            match s {
                Safeguard::On => "{ min_per_second = 1 }",
                Safeguard::Off => "{ enabled = false }",
            }
        )),
        probes: &["calls upstream per request during the outage"],
        phase: None,
    };
    a_prompt_too_long_goes_to_a_larger_target_and_without_one_it_fails: Case {
        file: "context-overflow.toml",
        deploy: |s| {
            let (primary, secondary) = (Mock::start("openai", &[]), Mock::start("openai", &[]));
            let window = if s == Safeguard::On { 200_000 } else { 8000 };
            let config = ConfigBuilder::new()
                .policy("default", FAST_RETRY)
                .target_sized("primary", &primary, 8000, "")
                .target_sized("fallback", &secondary, window, "")
                .route("smart", &["primary", "fallback"], "");
            Deployment::new(&config, vec![primary, secondary])
        },
        probes: &["success rate"],
        phase: Some("during"),
    };
    streams_cut_mid_answer_are_finished_and_with_mid_stream_error_they_are_not: Case {
        file: "stream-after-first-byte.toml",
        deploy: |s| two_targets_route(
            if s == Safeguard::On { "" } else { "mid_stream = \"error\"" },
            &["primary", "fallback"],
        ),
        probes: &["whole streams"],
        phase: Some("during"),
    };
    streams_fail_over_before_their_first_byte_and_without_a_fallback_they_fail: Case {
        file: "stream-before-first-byte.toml",
        deploy: |s| match s {
            Safeguard::On => two_targets_route("", &["primary", "fallback"]),
            Safeguard::Off => two_targets_route("", &["primary"]),
        },
        probes: &["whole streams"],
        phase: None,
    };
    a_total_outage_is_answered_from_the_cache_and_without_degradation_it_fails: Case {
        file: "degradation-cache.toml",
        deploy: |s| {
            let degraded = if s == Safeguard::On { "degraded = { cache = true }" } else { "" };
            deploy(FAST_RETRY, &[""], ("single", &["primary"], degraded), "")
        },
        // Without a cache both deviate; whichever saw its first bad request first.
        probes: &["success rate", "share answered from the cache"],
        phase: None,
    };
    hedging_keeps_stalled_calls_fast_and_without_a_hedge_they_are_slow: Case {
        file: "hedging.toml",
        deploy: |s| two_targets(&with(
            r#"hedge = { after_percentile = 95, budget = 0.3, min_delay = "50ms" }"#,
            s == Safeguard::On,
        )),
        probes: &["p99 latency"],
        phase: None,
    };
    // Off: an open time longer than the recovery phase and no active probe, which would
    // otherwise close the breaker as soon as the target answers.
    a_recovered_target_gets_its_traffic_back_and_a_breaker_open_too_long_is_caught: Case {
        file: "breaker-half-open.toml",
        deploy: |s| {
            let open_for = if s == Safeguard::On { "1s" } else { "60s" };
            let policy = format!(
                "{FAST_RETRY}\nbreaker = {{ min_calls = 5, open_for = \"{open_for}\", max_open_for = \"{open_for}\", half_open_probes = 1 }}"
            );
            let probe = if s == Safeguard::On { "" } else { "probe = { enabled = false }" };
            deploy(&policy, &[probe, ""], ("smart", &["primary", "fallback"], ""), "")
                .var("recovery", "4s")
        },
        probes: &["share served by the recovered target"],
        phase: Some("after"),
    };
    a_runaway_agent_trips_its_own_breaker_and_without_agent_breakers_it_does_not: Case {
        file: "agent-breaker.toml",
        deploy: |s| {
            let breaker = match s {
                Safeguard::On => r#"{ min_calls = 5, consecutive_failures = 5, open_for = "1s", max_open_for = "2s", half_open_probes = 1 }"#,
                Safeguard::Off => "{ enabled = false }",
            };
            let agents = format!("[agents]\nbreaker = {breaker}\n");
            deploy(FAST_RETRY, &[""], ("single", &["primary"], ""), &agents)
        },
        probes: &["calls upstream per request of the runaway agent"],
        phase: Some("during"),
    };
    two_dead_targets_fall_back_to_the_third_and_without_it_the_route_fails: Case {
        file: "fallback-chain.toml",
        deploy: |s| {
            let chain: &[&str] = match s {
                Safeguard::On => &["primary", "fallback", "tertiary"],
                Safeguard::Off => &["primary", "fallback"],
            };
            let d = deploy(FAST_RETRY, &["", "", ""], ("smart", chain, ""), "");
            let secondary = mock_url(&d._mocks[1]);
            d.var("secondary", secondary)
        },
        // Without a third target both deviate from the first request of the outage;
        // which is named first is a matter of milliseconds.
        probes: &["success rate", "share served by the third target"],
        phase: Some("during"),
    };
    a_deadline_bounds_every_answer_and_without_one_a_stall_is_caught: Case {
        file: "deadline.toml",
        deploy: |s| {
            let d = one_target(FAST_RETRY);
            match s {
                Safeguard::On => d,
                Safeguard::Off => d.var("deadline_ms", "60000"),
            }
        },
        probes: &["p99 latency"],
        phase: Some("during"),
    };
    a_target_gets_no_more_than_its_limit_and_without_one_it_is_flooded: Case {
        file: "rate-limit.toml",
        deploy: |s| {
            let limit = if s == Safeguard::On { "requests_per_minute = 30" } else { "" };
            deploy(FAST_RETRY, &[limit, ""], ("smart", &["primary", "fallback"], ""), "")
        },
        probes: &["calls to the rate-limited target"],
        phase: Some("during"),
    };
    answers_that_are_not_json_objects_never_reach_the_client: Case {
        file: "output-validation.toml",
        deploy: |s| match s {
            Safeguard::On => two_targets_route("", &["primary", "fallback"]),
            Safeguard::Off => two_targets_route("", &["primary"]),
        },
        probes: &["success rate"],
        phase: Some("during"),
    };
    a_resent_request_is_answered_once_and_without_kept_answers_it_is_called_twice: Case {
        file: "idempotency.toml",
        deploy: |s| {
            let ttl = if s == Safeguard::On { "10m" } else { "1ms" };
            let extra = format!("[idempotency]\nttl = \"{ttl}\"\n");
            deploy(FAST_RETRY, &[""], ("single", &["primary"], ""), &extra)
        },
        probes: &["calls upstream per request"],
        phase: Some("during"),
    };
    a_step_that_keeps_failing_is_escalated_and_with_on_exhausted_fail_tasks_fail: Case {
        file: "escalation.toml",
        deploy: |s| {
            let on_exhausted = if s == Safeguard::On { "escalate" } else { "fail" };
            let step = json!({"name": "answer", "kind": "llm", "route": "single",
                "prompt": "holdfast chaos task {{ task.id }}", "max_tokens": 8,
                "retry": {"max_attempts": 2, "base": "50ms", "cap": "100ms"},
                "on_exhausted": on_exhausted});
            let mut d = one_target(FAST_RETRY);
            d.workflow = Some(json!({"name": "chaos-escalation", "steps": [step]}));
            d
        },
        // Tasks accepted just before the outage fail in it too: the phase is not pinned.
        probes: &["no task fails"],
        phase: None,
    };
}

#[tokio::test]
async fn the_html_report_is_self_contained_and_plots_the_run() {
    let deployment = two_targets(FAST_RETRY);
    let (gateway, vars) = (&deployment.gateway, deployment.vars.clone());
    let dir = TempDir::new("chaos-html");
    let html = dir.path().join("report.html");
    let html_arg = html.display().to_string();
    let (code, report, err) = experiment(
        "breaker-outage.toml",
        &gateway.base,
        vars,
        &["--html", &html_arg],
    )
    .await;
    assert_eq!(code, Some(0), "{report:#}\n{err}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(page.matches("<svg class=\"plot\"").count(), 3, "{page}");
    assert!(page.contains("class=\"fault\""), "no fault window shaded");
    assert!(
        page.contains("<polyline class=\"series\""),
        "no series drawn"
    );
    for external in ["<script", "src=", "href=", "@import", "url("] {
        assert!(!page.contains(external), "external reference {external}");
    }
    renders_in_chromium(&html, &dir);
}

/// Opens the report in headless Chromium (`tests/browser/chaos-report.mjs`): no
/// console or page error, nothing fetched, three plots drawn. Skips loudly without
/// Chromium, node or playwright-core (fails under `HOLDFAST_CI=1`).
fn renders_in_chromium(html: &std::path::Path, dir: &TempDir) {
    let browser_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let ready = std::path::Path::new("/usr/bin/chromium").exists()
        && browser_dir.join("node_modules/playwright-core").exists();
    if !ready || !support::needs::command("node", &["--version"], "install nodejs") {
        if !ready {
            support::needs::skip(
                "headless Chromium with playwright-core is not available",
                "scripts/setup-test-deps installs chromium (Debian) and playwright-core",
            );
        }
        return;
    }
    let profile = dir.path().join("profile");
    std::fs::create_dir_all(&profile).unwrap();
    let out = std::process::Command::new("node")
        .arg(browser_dir.join("chaos-report.mjs"))
        .env("REPORT", html)
        .env("USER_DATA_DIR", &profile)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    eprintln!("chaos-report.mjs:\n{stdout}{stderr}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("the report renders"), "{stdout}");
}

#[test]
fn a_bad_experiment_file_is_refused_with_its_line_and_field() {
    let dir = TempDir::new("chaos-bad");
    let file = dir.write(
        "bad.toml",
        "title = \"bad\"\n[traffic]\nroute = \"smart\"\n\n[[steady_state.probes]]\nname = \"share\"\nkind = \"traffic_share\"\nmin = 0.5\n",
    );
    let (code, out, err) = run(&[
        "chaos",
        "run",
        &file.display().to_string(),
        "--server",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(err.contains("bad.toml:5"), "{err}");
    assert!(err.contains("steady_state.probes[0].target"), "{err}");

    let typo = dir.write(
        "typo.toml",
        "title = \"typo\"\n[traffic]\nroute = \"smart\"\nrat = 5\n",
    );
    let (code, _, err) = run(&["chaos", "run", &typo.display().to_string()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("typo.toml:4"), "{err}");
    assert!(err.contains("rat"), "{err}");
}

#[test]
fn the_library_lists_and_every_file_is_valid() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../chaos");
    let (code, out, err) = run(&["chaos", "list", &dir.display().to_string()]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("breaker-outage.toml"), "{out}");
    assert!(!out.contains("INVALID"), "{out}");
}

/// Two `holdfast serve` nodes on one PostgreSQL schema, with `lease`, and the schema's
/// URL; `None` after a loud skip without `HOLDFAST_TEST_POSTGRES_URL`.
fn two_nodes(
    dir: &TempDir,
    name: &str,
    lease: &str,
    tool: &str,
) -> Option<(support::Process, support::Process, String)> {
    let server = support::needs::postgres_url()?;
    let schema = format!("chaos_{name}_{}", std::process::id());
    let sep = if server.contains('?') { '&' } else { '?' };
    let url = format!("{server}{sep}schema={schema}");
    let node = |node: &str| {
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[store]\nurl = \"{url}\"\n\n[engine]\nnode_id = \"{node}\"\nlease = \"{lease}\"\npoll_interval = \"20ms\"\negress = {{ allow = [\"{tool}/*\"] }}\n"
        );
        let path = dir.write(&format!("{name}-{node}.toml"), &text);
        let args = ["serve", "--config", &path.display().to_string()].map(String::from);
        // The store's URL also in the environment, where the harness puts its own.
        let envs = [("HOLDFAST_STORE_URL".to_owned(), url.clone())];
        support::Process::spawn(node, &args, &envs)
    };
    let a = node("node-a");
    let b = node("node-b");
    Some((a, b, schema))
}

/// A workflow of two slow tool calls (the tool: a mock provider answering after
/// 700 ms), so that a node killed at any moment holds leases on steps in progress.
async fn register_steps(base: &str, tool: &str) {
    let call = |name: &str| {
        serde_json::json!({"name": name, "kind": "http", "method": "POST",
            "url": format!("{tool}/v1/chat/completions"), "timeout": "10s",
            "body": {"model": "tool", "messages": [{"role": "user", "content": "{{ task.id }}"}]}})
    };
    let workflow =
        serde_json::json!({"name": "chaos-steps", "steps": [call("first"), call("second")]});
    let r = support::client()
        .post(format!("{base}/v1/workflows"))
        .json(&workflow)
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert!(
        status.is_success() || status == reqwest::StatusCode::CONFLICT,
        "{}",
        r.text().await.unwrap()
    );
}

async fn kill_node(
    a: &support::Process,
    b: &support::Process,
    tool: &str,
) -> (Option<i32>, Value, String) {
    let base_a = format!("http://{}", a.addr);
    // Each node learns of the workflow when it is registered through it.
    register_steps(&base_a, tool).await;
    register_steps(&format!("http://{}", b.addr), tool).await;
    let vars = vec![
        ("node_a", base_a.clone()),
        ("node_b", format!("http://{}", b.addr)),
        ("victim_pid", b.pid().to_string()),
        ("settle", "10s".to_owned()),
    ];
    experiment("kill-node.toml", &base_a, vars, &[]).await
}

#[tokio::test]
async fn a_node_killed_mid_workflow_loses_no_task_and_a_lease_too_long_is_caught() {
    let dir = TempDir::new("chaos-kill");
    let tool = Mock::start("openai", &["--latency", "700ms"]);
    let tool = mock_url(&tool);
    let Some((a, b, _schema)) = two_nodes(&dir, "on", "2s", &tool) else {
        return;
    };
    let Some((off_a, off_b, _off_schema)) = two_nodes(&dir, "off", "10m", &tool) else {
        return;
    };
    let ((code, report, err), (off_code, off_report, off_err)) =
        tokio::join!(kill_node(&a, &b, &tool), kill_node(&off_a, &off_b, &tool));
    assert_eq!(code, Some(0), "{report:#}\n{err}");
    assert_eq!(off_code, Some(1), "{off_report:#}\n{off_err}");
    assert_eq!(
        verdict(&off_report)["probe"],
        "every accepted task completes",
        "{off_report:#}"
    );
}

/// A node whose `[chaos] schedule` runs `retry-by-class.toml` every second against
/// itself, its one target on a mock; without retries when `retries` is false.
fn scheduled(retries: bool) -> (Mock, Gateway) {
    let primary = Mock::start("openai", &[]);
    let policy = if retries {
        FAST_RETRY
    } else {
        "retry = { max_attempts = 1 }"
    };
    let schedule = format!(
        "[chaos]\nschedule = [{{ experiment = {:?}, every = \"1s\", vars = {{ primary = \"{}\" }} }}]\n\n[alerts]\neval_interval = \"100ms\"\n",
        library("retry-by-class.toml"),
        mock_url(&primary)
    );
    let config = ConfigBuilder::new()
        .policy("default", policy)
        .target("primary", &primary, "")
        .route("single", &["primary"], "")
        .raw(&schedule);
    let gateway = Gateway::start(&config);
    (primary, gateway)
}

/// The newest game day on the node, once one has run (within 30 s).
async fn first_game_day(gateway: &Gateway) -> Value {
    let started = support::Stopwatch::start();
    loop {
        let runs = gateway.get_json("/v1/holdfast/game-days").await;
        if let Some(run) = runs["runs"].as_array().and_then(|r| r.first()) {
            return run.clone();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "no game day ran: {runs}\n{}",
            gateway.process.output()
        );
        support::pause(std::time::Duration::from_millis(200)).await;
    }
}

/// The state of the `chaos_failed` alert.
async fn chaos_alert(gateway: &Gateway) -> String {
    let board = gateway.get_json("/v1/holdfast/alerts").await;
    board["alerts"]
        .as_array()
        .and_then(|alerts| alerts.iter().find(|a| a["alert"] == "chaos_failed"))
        .and_then(|a| a["state"].as_str())
        .unwrap_or("absent")
        .to_owned()
}

#[tokio::test]
async fn a_scheduled_experiment_runs_by_itself_and_a_failed_one_fires_chaos_failed() {
    let ((_on_mock, on), (_off_mock, off)) = (scheduled(true), scheduled(false));
    let (passed, failed) = tokio::join!(first_game_day(&on), first_game_day(&off));
    assert_eq!(passed["passed"], true, "{passed:#}");
    assert!(
        passed["experiment"]
            .as_str()
            .unwrap_or_default()
            .ends_with("retry-by-class.toml"),
        "{passed:#}"
    );
    assert_eq!(failed["passed"], false, "{failed:#}");
    let verdict = failed["verdict"].as_str().unwrap_or_default();
    assert!(verdict.contains("\"success rate\""), "{failed:#}");

    let metrics = |text: String| {
        text.lines()
            .find(|l| l.starts_with("holdfast_chaos_failing "))
            .map(str::to_owned)
    };
    let on_metrics = on.client.get(on.url("/metrics")).send().await.unwrap();
    let on_metrics = metrics(on_metrics.text().await.unwrap());
    assert_eq!(on_metrics.as_deref(), Some("holdfast_chaos_failing 0"));
    let off_metrics = off.client.get(off.url("/metrics")).send().await.unwrap();
    let off_metrics = metrics(off_metrics.text().await.unwrap());
    assert_eq!(off_metrics.as_deref(), Some("holdfast_chaos_failing 1"));

    let started = support::Stopwatch::start();
    while chaos_alert(&off).await != "firing" {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "chaos_failed is {}",
            chaos_alert(&off).await
        );
        support::pause(std::time::Duration::from_millis(100)).await;
    }
    assert_ne!(chaos_alert(&on).await, "firing");
    let dir = TempDir::new("chaos-game-days");
    for (gateway, expect) in [(&on, "passed"), (&off, "failed")] {
        let base = gateway.base.clone();
        let dir = dir.path().join(expect);
        tokio::task::spawn_blocking(move || panel_shows(&base, expect, &dir))
            .await
            .unwrap();
    }
}

/// Opens the dashboard of the node at `base` in headless Chromium
/// (`tests/browser/game-days.mjs`): its game-day panel shows the newest run as
/// `expect`. Skips loudly without Chromium, node or playwright-core (fails under
/// `HOLDFAST_CI=1`).
fn panel_shows(base: &str, expect: &str, profile: &std::path::Path) {
    let browser_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let ready = std::path::Path::new("/usr/bin/chromium").exists()
        && browser_dir.join("node_modules/playwright-core").exists();
    if !ready || !support::needs::command("node", &["--version"], "install nodejs") {
        if !ready {
            support::needs::skip(
                "headless Chromium with playwright-core is not available",
                "scripts/setup-test-deps installs chromium (Debian) and playwright-core",
            );
        }
        return;
    }
    std::fs::create_dir_all(profile).unwrap();
    let out = std::process::Command::new("node")
        .arg(browser_dir.join("game-days.mjs"))
        .env("BASE", base)
        .env("EXPECT", expect)
        .env("USER_DATA_DIR", profile)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    eprintln!("game-days.mjs:\n{stdout}{stderr}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("the game-day panel shows"), "{stdout}");
}

#[test]
fn a_bad_scheduled_experiment_stops_the_start_with_its_line_and_field() {
    let dir = TempDir::new("chaos-schedule-bad");
    let bad = dir.write(
        "bad.toml",
        "title = \"bad\"\n[traffic]\nroute = \"single\"\nrat = 5\n",
    );
    let config = dir.write(
        "holdfast.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[store]\nurl = \"sqlite://{}/h.db\"\n\n[chaos]\nschedule = [{{ experiment = {:?}, every = \"1h\" }}]\n",
            dir.path().display(),
            bad.display().to_string()
        ),
    );
    let (code, out, err) = run(&["serve", "--config", &config.display().to_string()]);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(err.contains("bad.toml:4"), "{err}");
    assert!(err.contains("rat"), "{err}");

    let typo = dir.write(
        "typo.toml",
        "[chaos]\nschedule = [{ experiment = \"x.toml\", every = \"1h\", at = \"03:00\" }]\n",
    );
    let (code, _, err) = run(&["config", "check", &typo.display().to_string()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("chaos.schedule[0].every"), "{err}");
}

#[tokio::test]
async fn game_days_are_read_back_from_the_history_after_a_restart() {
    let primary = Mock::start("openai", &[]);
    let dir = TempDir::new("chaos-history");
    let history = dir.path().join("game-days.jsonl");
    // Without retries, so that the run fails and the alert's state must come back too.
    let node = |every: &str| {
        let schedule = format!(
            "[chaos]\nhistory = {:?}\nschedule = [{{ experiment = {:?}, every = \"{every}\", vars = {{ primary = \"{}\" }} }}]\n",
            history.display().to_string(),
            library("retry-by-class.toml"),
            mock_url(&primary)
        );
        let config = ConfigBuilder::new()
            .policy("default", "retry = { max_attempts = 1 }")
            .target("primary", &primary, "")
            .route("single", &["primary"], "")
            .raw(&schedule);
        Gateway::start(&config)
    };
    let first = node("1s");
    let run = first_game_day(&first).await;
    assert_eq!(run["passed"], false, "{run:#}");
    drop(first);
    let kept = std::fs::read_to_string(&history).unwrap();
    assert!(kept.lines().count() >= 1, "{kept}");

    // Restarted with a schedule that runs nothing for an hour: the run is read back.
    let second = node("1h");
    let runs = second.get_json("/v1/holdfast/game-days").await;
    assert_eq!(
        runs["runs"][0]["started_unix_ms"], run["started_unix_ms"],
        "{runs:#}"
    );
    assert_eq!(runs["runs"][0]["passed"], false, "{runs:#}");
    let metrics = second
        .client
        .get(second.url("/metrics"))
        .send()
        .await
        .unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("\nholdfast_chaos_failing 1\n"),
        "{metrics}"
    );
}
