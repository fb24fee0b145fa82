//! The experiment library in `chaos/`, run with `holdfast chaos run` against the real
//! binary and mock providers: each experiment passes on a configuration with its
//! safeguard on, and fails, naming the right probe, with the safeguard switched off.
//! Each test has its own gateway and mocks, so the tests run concurrently. Also: the
//! HTML report is self-contained and holds its plots, and a bad experiment file is
//! refused with its line and field before anything is injected.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;

use serde_json::Value;
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

/// Two targets behind route `smart` with the given policy; the first's mock is the one
/// the experiment injects faults into.
fn two_targets(policy: &str) -> (Mock, Mock, Gateway) {
    let (primary, fallback) = (Mock::start("openai", &[]), Mock::start("openai", &[]));
    let config = ConfigBuilder::new()
        .policy("default", policy)
        .target("primary", &primary, "")
        .target("fallback", &fallback, "")
        .route("smart", &["primary", "fallback"], "");
    let gateway = Gateway::start(&config);
    (primary, fallback, gateway)
}

/// One target behind route `single` with the given policy.
fn one_target(policy: &str) -> (Mock, Gateway) {
    let primary = Mock::start("openai", &[]);
    let config = ConfigBuilder::new()
        .policy("default", policy)
        .target("primary", &primary, "")
        .route("single", &["primary"], "");
    let gateway = Gateway::start(&config);
    (primary, gateway)
}

const FAST_RETRY: &str = r#"retry = { max_attempts = 3, base = "10ms", cap = "50ms" }"#;

#[tokio::test]
async fn the_breaker_cuts_off_a_dead_target_and_without_breakers_it_does_not() {
    let on = two_targets(FAST_RETRY);
    let off = two_targets(&format!("{FAST_RETRY}\nbreaker = {{ enabled = false }}"));
    let ((code, report, err), (off_code, off_report, off_err)) = tokio::join!(
        experiment(
            "breaker-outage.toml",
            &on.2.base,
            vec![("primary", mock_url(&on.0))],
            &[]
        ),
        experiment(
            "breaker-outage.toml",
            &off.2.base,
            vec![("primary", mock_url(&off.0))],
            &[]
        ),
    );
    assert_eq!(code, Some(0), "{report:#}\n{err}");
    assert_eq!(verdict(&report)["status"], "passed", "{report:#}");
    assert_eq!(off_code, Some(1), "{off_report:#}\n{off_err}");
    assert_eq!(
        verdict(&off_report)["probe"],
        "calls to the dead target",
        "{off_report:#}"
    );
    assert_eq!(verdict(&off_report)["phase"], "during", "{off_report:#}");
}

#[tokio::test]
async fn retries_absorb_transient_errors_and_without_retries_they_do_not() {
    let on = one_target(FAST_RETRY);
    let off = one_target(r#"retry = { max_attempts = 1 }"#);
    let ((code, report, err), (off_code, off_report, off_err)) = tokio::join!(
        experiment(
            "retry-by-class.toml",
            &on.1.base,
            vec![("primary", mock_url(&on.0))],
            &[]
        ),
        experiment(
            "retry-by-class.toml",
            &off.1.base,
            vec![("primary", mock_url(&off.0))],
            &[]
        ),
    );
    assert_eq!(code, Some(0), "{report:#}\n{err}");
    assert_eq!(off_code, Some(1), "{off_report:#}\n{off_err}");
    assert_eq!(
        verdict(&off_report)["probe"],
        "success rate",
        "{off_report:#}"
    );
}

#[tokio::test]
async fn a_long_retry_after_fails_over_and_waiting_instead_is_caught() {
    let on = two_targets(FAST_RETRY);
    let off = two_targets(&format!(
        "{FAST_RETRY}\nfail_over_when_retry_after_exceeds = \"30s\""
    ));
    let ((code, report, err), (off_code, off_report, off_err)) = tokio::join!(
        experiment(
            "retry-after.toml",
            &on.2.base,
            vec![("primary", mock_url(&on.0))],
            &[]
        ),
        experiment(
            "retry-after.toml",
            &off.2.base,
            vec![("primary", mock_url(&off.0))],
            &[]
        ),
    );
    assert_eq!(code, Some(0), "{report:#}\n{err}");
    assert_eq!(off_code, Some(1), "{off_report:#}\n{off_err}");
    let probe = verdict(&off_report)["probe"].as_str().unwrap_or_default();
    assert!(
        probe == "p99 latency" || probe == "success rate",
        "{off_report:#}"
    );
    assert_eq!(verdict(&off_report)["phase"], "during", "{off_report:#}");
}

#[tokio::test]
async fn the_budget_keeps_an_outage_from_a_retry_storm_and_without_it_does_not() {
    // Breakers off on both sides: the budget alone is under test, with a small reserve
    // so that a short outage is past it.
    let on = one_target(&format!(
        "{FAST_RETRY}\nbreaker = {{ enabled = false }}\nbudget = {{ min_per_second = 1 }}"
    ));
    let off = one_target(&format!(
        "{FAST_RETRY}\nbreaker = {{ enabled = false }}\nbudget = {{ enabled = false }}"
    ));
    let ((code, report, err), (off_code, off_report, off_err)) = tokio::join!(
        experiment(
            "budget-total-outage.toml",
            &on.1.base,
            vec![("primary", mock_url(&on.0))],
            &[]
        ),
        experiment(
            "budget-total-outage.toml",
            &off.1.base,
            vec![("primary", mock_url(&off.0))],
            &[]
        ),
    );
    assert_eq!(code, Some(0), "{report:#}\n{err}");
    assert_eq!(off_code, Some(1), "{off_report:#}\n{off_err}");
    assert_eq!(
        verdict(&off_report)["probe"],
        "calls upstream per request during the outage",
        "{off_report:#}"
    );
}

#[tokio::test]
async fn the_html_report_is_self_contained_and_plots_the_run() {
    let (primary, _fallback, gateway) = two_targets(FAST_RETRY);
    let dir = TempDir::new("chaos-html");
    let html = dir.path().join("report.html");
    let vars = vec![("primary", mock_url(&primary))];
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

#[tokio::test]
async fn a_prompt_too_long_goes_to_a_larger_target_and_without_one_it_fails() {
    let sized = |fallback_window: u64| {
        let (primary, fallback) = (Mock::start("openai", &[]), Mock::start("openai", &[]));
        let config = ConfigBuilder::new()
            .policy("default", FAST_RETRY)
            .target_sized("primary", &primary, 8000, "")
            .target_sized("fallback", &fallback, fallback_window, "")
            .route("smart", &["primary", "fallback"], "");
        let gateway = Gateway::start(&config);
        (primary, fallback, gateway)
    };
    let (on, off) = (sized(200_000), sized(8000));
    let ((code, report, err), (off_code, off_report, off_err)) = tokio::join!(
        experiment(
            "context-overflow.toml",
            &on.2.base,
            vec![("primary", mock_url(&on.0))],
            &[]
        ),
        experiment(
            "context-overflow.toml",
            &off.2.base,
            vec![("primary", mock_url(&off.0))],
            &[]
        ),
    );
    assert_eq!(code, Some(0), "{report:#}\n{err}");
    assert_eq!(off_code, Some(1), "{off_report:#}\n{off_err}");
    assert_eq!(
        verdict(&off_report)["probe"],
        "success rate",
        "{off_report:#}"
    );
    assert_eq!(verdict(&off_report)["phase"], "during", "{off_report:#}");
}

/// Two targets behind route `smart` with `extra` lines in the route's table.
fn two_targets_route(route_extra: &str, targets: &[&str]) -> (Mock, Mock, Gateway) {
    let (primary, fallback) = (Mock::start("openai", &[]), Mock::start("openai", &[]));
    let config = ConfigBuilder::new()
        .policy("default", FAST_RETRY)
        .target("primary", &primary, "")
        .target("fallback", &fallback, "")
        .route("smart", targets, route_extra);
    let gateway = Gateway::start(&config);
    (primary, fallback, gateway)
}

#[tokio::test]
async fn streams_cut_mid_answer_are_finished_and_with_mid_stream_error_they_are_not() {
    let both = ["primary", "fallback"];
    let on = two_targets_route("", &both);
    let off = two_targets_route("mid_stream = \"error\"", &both);
    let ((code, report, err), (off_code, off_report, off_err)) = tokio::join!(
        experiment(
            "stream-after-first-byte.toml",
            &on.2.base,
            vec![("primary", mock_url(&on.0))],
            &[]
        ),
        experiment(
            "stream-after-first-byte.toml",
            &off.2.base,
            vec![("primary", mock_url(&off.0))],
            &[]
        ),
    );
    assert_eq!(code, Some(0), "{report:#}\n{err}");
    assert_eq!(off_code, Some(1), "{off_report:#}\n{off_err}");
    assert_eq!(
        verdict(&off_report)["probe"],
        "whole streams",
        "{off_report:#}"
    );
    assert_eq!(verdict(&off_report)["phase"], "during", "{off_report:#}");
}

#[tokio::test]
async fn streams_fail_over_before_their_first_byte_and_without_a_fallback_they_fail() {
    let on = two_targets_route("", &["primary", "fallback"]);
    let off = two_targets_route("", &["primary"]);
    let ((code, report, err), (off_code, off_report, off_err)) = tokio::join!(
        experiment(
            "stream-before-first-byte.toml",
            &on.2.base,
            vec![("primary", mock_url(&on.0))],
            &[]
        ),
        experiment(
            "stream-before-first-byte.toml",
            &off.2.base,
            vec![("primary", mock_url(&off.0))],
            &[]
        ),
    );
    assert_eq!(code, Some(0), "{report:#}\n{err}");
    assert_eq!(off_code, Some(1), "{off_report:#}\n{off_err}");
    assert_eq!(
        verdict(&off_report)["probe"],
        "whole streams",
        "{off_report:#}"
    );
}

#[tokio::test]
async fn a_total_outage_is_answered_from_the_cache_and_without_degradation_it_fails() {
    let degraded = |extra: &str| {
        let primary = Mock::start("openai", &[]);
        let config = ConfigBuilder::new()
            .policy("default", FAST_RETRY)
            .target("primary", &primary, "")
            .route("single", &["primary"], extra);
        let gateway = Gateway::start(&config);
        (primary, gateway)
    };
    let (on, off) = (degraded("degraded = { cache = true }"), degraded(""));
    let ((code, report, err), (off_code, off_report, off_err)) = tokio::join!(
        experiment(
            "degradation-cache.toml",
            &on.1.base,
            vec![("primary", mock_url(&on.0))],
            &[]
        ),
        experiment(
            "degradation-cache.toml",
            &off.1.base,
            vec![("primary", mock_url(&off.0))],
            &[]
        ),
    );
    assert_eq!(code, Some(0), "{report:#}\n{err}");
    assert_eq!(off_code, Some(1), "{off_report:#}\n{off_err}");
    assert_eq!(
        verdict(&off_report)["probe"],
        "success rate",
        "{off_report:#}"
    );
}

#[tokio::test]
async fn hedging_keeps_stalled_calls_fast_and_without_a_hedge_they_are_slow() {
    let hedge = r#"hedge = { after_percentile = 95, budget = 0.3, min_delay = "50ms" }"#;
    let on = two_targets(&format!("{FAST_RETRY}\n{hedge}"));
    let off = two_targets(FAST_RETRY);
    let ((code, report, err), (off_code, off_report, off_err)) = tokio::join!(
        experiment(
            "hedging.toml",
            &on.2.base,
            vec![("primary", mock_url(&on.0))],
            &[]
        ),
        experiment(
            "hedging.toml",
            &off.2.base,
            vec![("primary", mock_url(&off.0))],
            &[]
        ),
    );
    assert_eq!(code, Some(0), "{report:#}\n{err}");
    assert_eq!(off_code, Some(1), "{off_report:#}\n{off_err}");
    assert_eq!(
        verdict(&off_report)["probe"],
        "p99 latency",
        "{off_report:#}"
    );
}

#[tokio::test]
async fn a_recovered_target_gets_its_traffic_back_and_a_breaker_open_too_long_is_caught() {
    let breaker = |open_for: &str| {
        format!(
            "{FAST_RETRY}\nbreaker = {{ min_calls = 5, open_for = \"{open_for}\", max_open_for = \"{open_for}\", half_open_probes = 1 }}"
        )
    };
    let on = two_targets(&breaker("1s"));
    // Off: an open time longer than the recovery phase and no active probe, which would
    // otherwise close the breaker as soon as the target answers.
    let off = {
        let (primary, fallback) = (Mock::start("openai", &[]), Mock::start("openai", &[]));
        let config = ConfigBuilder::new()
            .policy("default", &breaker("60s"))
            .target("primary", &primary, "probe = { enabled = false }")
            .target("fallback", &fallback, "")
            .route("smart", &["primary", "fallback"], "");
        let gateway = Gateway::start(&config);
        (primary, fallback, gateway)
    };
    let vars = |mock: &Mock| vec![("primary", mock_url(mock)), ("recovery", "4s".to_owned())];
    let ((code, report, err), (off_code, off_report, off_err)) = tokio::join!(
        experiment("breaker-half-open.toml", &on.2.base, vars(&on.0), &[]),
        experiment("breaker-half-open.toml", &off.2.base, vars(&off.0), &[]),
    );
    assert_eq!(code, Some(0), "{report:#}\n{err}");
    assert_eq!(off_code, Some(1), "{off_report:#}\n{off_err}");
    assert_eq!(
        verdict(&off_report)["probe"],
        "share served by the recovered target",
        "{off_report:#}"
    );
    assert_eq!(verdict(&off_report)["phase"], "after", "{off_report:#}");
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
