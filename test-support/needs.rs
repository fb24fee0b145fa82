//! What a test needs beyond the Rust toolchain (a command, a Python package, a
//! service), and what happens when it is missing.
//!
//! Outside CI the test is skipped, loudly: one line, starting with [`SKIP_PREFIX`],
//! written straight to the process's stderr (libtest captures `eprintln!`, not a direct
//! write), which `scripts/test` counts in its closing line. Under `HOLDFAST_CI=1` (set
//! by `.ci/run`) the test fails instead, saying what is missing and how
//! `scripts/setup-test-deps` installs it: a CI run that cannot run a test must not
//! pass it. One file for every crate's tests (and the benchmarks), included with
//! `#[path]`, so that every skip reads and counts the same.

#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::process::{Command, Stdio};

/// The start of every skip line; `scripts/test` counts the lines that carry it.
pub const SKIP_PREFIX: &str = "SKIPPED: ";

/// Set (to anything but empty or `0`) by `.ci/run`: a missing need fails its test.
pub const CI_VAR: &str = "HOLDFAST_CI";

/// Whether a missing need fails the test (under CI) rather than skipping it.
pub fn in_ci() -> bool {
    std::env::var(CI_VAR).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Gives up on the running test because `missing` is missing: under CI the test
/// fails (panics) with `install`, how to get it; otherwise one skip line goes to
/// stderr and the caller returns.
pub fn skip(missing: &str, install: &str) {
    let test = current_test();
    if in_ci() {
        panic!(
            "{test}: {missing}, and {CI_VAR} is set, so this fails instead of skipping: \
             {install}"
        );
    }
    // One write, so that the line reaches the terminal whole among other tests' output.
    let line = format!("{SKIP_PREFIX}{test}: {missing} ({install})\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// True when `program ARGS` runs and succeeds; otherwise skips (or fails) the test,
/// saying that `program` is missing and how to install it.
pub fn command(program: &str, args: &[&str], install: &str) -> bool {
    let found = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        skip(&format!("`{program}` is not installed"), install);
    }
    found
}

/// True when `python3` can import `module`; otherwise skips (or fails) the test.
pub fn python_module(module: &str) -> bool {
    let imported = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|out| out.status.success());
    if !imported {
        skip(
            &format!("python3 with the `{module}` package is not available"),
            "scripts/setup-test-deps installs it with pip",
        );
    }
    imported
}

/// The PostgreSQL server the tests use (`HOLDFAST_TEST_POSTGRES_URL`); `None` after a
/// skip (or a failure under CI) when it is not set.
pub fn postgres_url() -> Option<String> {
    let url = env("HOLDFAST_TEST_POSTGRES_URL");
    if url.is_none() {
        skip(
            "HOLDFAST_TEST_POSTGRES_URL is not set (no PostgreSQL to test against)",
            "scripts/setup-test-deps starts the local PostgreSQL, and scripts/test sets the \
             variable when it answers on 127.0.0.1:5432",
        );
    }
    url
}

/// The CA that signed the test PostgreSQL's certificate (`HOLDFAST_TEST_POSTGRES_CA`,
/// a PEM file); `None` after a skip (or a failure under CI) when it is not set.
pub fn postgres_ca() -> Option<String> {
    let ca = env("HOLDFAST_TEST_POSTGRES_CA");
    if ca.is_none() {
        skip(
            "HOLDFAST_TEST_POSTGRES_CA is not set (no CA for the test PostgreSQL's certificate)",
            "scripts/setup-test-deps makes a CA and a certificate for 127.0.0.1 with openssl \
             and installs it in the local PostgreSQL; scripts/test sets the variable",
        );
    }
    ca
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The running test's name: libtest names each test's thread after it (a tokio test's
/// body runs on that thread too); on a program's main thread (a benchmark), the
/// program's name.
fn current_test() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_owned(),
        _ => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "a test".to_owned()),
    }
}
