//! The official Python SDKs against the gateway, across wire formats.
//!
//! holdfast's promise is that a user points the `openai` or `anthropic` package at it and
//! changes nothing else. These tests run the scripts in `tests/python/` (non-streaming,
//! streaming and tool calls) through routes whose primary fails and whose fallback
//! speaks the *other* wire format, so that translation both ways is held to what the
//! real clients parse. One more holds mid-stream recovery to what the `openai` client
//! reads: a stream cut after a few chunks and continued on an Anthropic target (which
//! takes an assistant prefill) must read as the one scripted answer. Without python3 or
//! the packages they skip loudly (`support::needs`), and fail under `HOLDFAST_CI=1`;
//! `scripts/setup-test-deps` installs the packages.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::process::Command;

use holdfast_mock::DEFAULT_ANSWER;
use support::{ConfigBuilder, Gateway, Mock, serial};

const KEY_ENV: &str = "HOLDFAST_E2E_PY_KEY";
const KEY: &str = "sk-test-SECRET-python-3c9e1a";

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

/// Two failing primaries and two healthy fallbacks, one of each format, crossed.
struct Crossed {
    gateway: Gateway,
    openai_down: Mock,
    anthropic_down: Mock,
    openai_up: Mock,
    anthropic_up: Mock,
}

impl Crossed {
    /// Both primaries were tried and each fallback served the `client`'s calls across
    /// formats at least `calls` times.
    async fn assert_served(&self, client: &str, calls: u64) {
        assert!(
            self.openai_down.total().await >= 1,
            "the OpenAI primary was tried"
        );
        assert!(
            self.anthropic_down.total().await >= 1,
            "the Anthropic primary was tried"
        );
        assert!(
            self.anthropic_up.total().await >= calls,
            "the Anthropic fallback served the {client} client"
        );
        assert!(
            self.openai_up.total().await >= calls,
            "the OpenAI fallback served the {client} client"
        );
    }
}

fn crossed() -> Crossed {
    let openai_down = Mock::start("openai", &["--rate-503", "1"]);
    let anthropic_down = Mock::start("anthropic", &["--rate-529", "1"]);
    let openai_up = Mock::start("openai", &[]);
    let anthropic_up = Mock::start("anthropic", &[]);
    let config = ConfigBuilder::new()
        .target("oa-down", &openai_down, "")
        .target("an-down", &anthropic_down, "")
        .target("oa-up", &openai_up, "")
        .target("an-up", &anthropic_up, "")
        .route("oa-to-an", &["oa-down", "an-up"], "")
        .route("an-to-oa", &["an-down", "oa-up"], "")
        .client_key("python", KEY_ENV);
    let gateway = Gateway::start_with_env(&config, &[(KEY_ENV, KEY)]);
    Crossed {
        gateway,
        openai_down,
        anthropic_down,
        openai_up,
        anthropic_up,
    }
}

fn run_script(name: &str, base: &str) {
    run_script_with(name, &[base, KEY, "oa-to-an=an-up", "an-to-oa=oa-up"]);
}

fn run_script_with(name: &str, args: &[&str]) {
    let output = Command::new("python3")
        .arg(script(name))
        .args(args)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("ANTHROPIC_BASE_URL")
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{name}:\n{stdout}{stderr}");
    assert!(
        output.status.success(),
        "{name} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(!stdout.contains("FAIL"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_works_through_cross_format_fallback() {
    if !support::needs::python_module("openai") {
        return;
    }
    let _serial = serial().await;
    let crossed = crossed();
    run_script("openai_client.py", &crossed.gateway.base);
    crossed.assert_served("OpenAI", 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_works_through_cross_format_fallback() {
    if !support::needs::python_module("anthropic") {
        return;
    }
    let _serial = serial().await;
    let crossed = crossed();
    run_script("anthropic_client.py", &crossed.gateway.base);
    crossed.assert_served("Anthropic", 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_reads_one_answer_from_a_stream_cut_and_continued() {
    if !support::needs::python_module("openai") {
        return;
    }
    let _serial = serial().await;
    let cutting = Mock::start("openai", &["--cut-stream", "1:3"]);
    // Anthropic targets take an assistant prefill: the cut is continued there.
    let continuing = Mock::start("anthropic", &[]);
    let config = ConfigBuilder::new()
        .target("oa-cut", &cutting, "")
        .target("an-cont", &continuing, "")
        .route("cut", &["oa-cut", "an-cont"], "mid_stream = \"continue\"")
        .client_key("python", KEY_ENV);
    let gateway = Gateway::start_with_env(&config, &[(KEY_ENV, KEY)]);
    run_script_with(
        "openai_client.py",
        &[&gateway.base, KEY, "--recovery", "cut", DEFAULT_ANSWER],
    );
    assert_eq!(cutting.total().await, 1, "the primary served the start");
    assert_eq!(
        continuing.stats().await["prefill_continuations"].as_u64(),
        Some(1),
        "the rest came from one continuation, not a restart"
    );
}
