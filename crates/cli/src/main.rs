//! The `holdfast` binary: argument parsing and glue, nothing else.
//!
//! Each subcommand lives in its own module under `cmd/`. Errors travel up as
//! `anyhow::Error` and leave here as one readable message (the whole cause chain) and an
//! exit code: 1 for a failed run, 2 for bad usage or bad input.

mod cmd;
mod logging;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A resilient runtime for AI agents.
#[derive(Debug, Parser)]
#[command(name = "holdfast", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Drive the policy through seeded fault scenarios, check its invariants and compare
    /// it with a naive policy.
    Simulate(cmd::simulate::Args),
    /// Run a fault-injecting mock LLM provider (OpenAI or Anthropic wire format).
    MockProvider(Box<cmd::mock_provider::Args>),
    /// Run a fault-injecting proxy in front of a real provider: the mock provider's
    /// faults on a share of calls or a schedule, everything else forwarded byte for byte.
    FaultProxy(Box<cmd::fault_proxy::Args>),
    /// Run the gateway (OpenAI- and Anthropic-compatible endpoints in front of the
    /// configured providers, every call under its route's policy) and the workflow
    /// engine.
    Serve(cmd::serve::Args),
    /// Run the whole product on this machine under injected failures: mock providers,
    /// the gateway, the engine and a sample workflow, with a live view and a report.
    Demo(cmd::demo::Args),
    /// Check a configuration file.
    #[command(subcommand)]
    Config(cmd::config::Command),
    /// Work with the alert rules (export them for Prometheus).
    #[command(subcommand)]
    Alerts(cmd::alerts::Command),
    /// Register and list workflow definitions on a running server.
    #[command(subcommand)]
    Workflow(cmd::workflow::Command),
    /// Submit, inspect and cancel tasks on a running server.
    #[command(subcommand)]
    Task(cmd::task::Command),
    /// List and resolve human escalations on a running server.
    #[command(subcommand)]
    Escalations(cmd::escalations::Command),
    /// List, show, approve, retire, import and export few-shot examples on a running
    /// server.
    #[command(subcommand)]
    Examples(cmd::examples::Command),
    /// Show the targets' health on a running server; drain a target and restore it.
    #[command(subcommand)]
    Targets(cmd::targets::Command),
    /// Run a failover drill against a running server: drain one target of a route under
    /// a trickle of requests, check that the route keeps answering and that the target
    /// takes its traffic back once restored.
    Drill(cmd::drill::Args),
    /// Run chaos experiments (TOML files: a steady-state hypothesis, a method of faults,
    /// rollbacks) against a running server and report a verdict; list them.
    #[command(subcommand)]
    Chaos(cmd::chaos::Command),
    /// Evaluate quality: run a suite of cases through the gateway, grade the answers,
    /// compare with a baseline and gate (exit 0 pass, 1 fail, 2 bad suite, 130
    /// interrupted); list, show and compare stored runs.
    #[command(subcommand)]
    Eval(cmd::eval::Command),
    /// Check a running deployment against the production checklist: each item with
    /// its verdict and reason, then what a person must check (exit 0 ready, 1 not).
    Readiness(cmd::readiness::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo logs to a file in its data directory: on the terminal, log lines would
    // tear through its live view.
    if !matches!(cli.command, Command::Demo(_)) {
        logging::init();
    }
    let result = match cli.command {
        Command::Simulate(args) => cmd::simulate::run(args),
        Command::MockProvider(args) => cmd::mock_provider::run(*args),
        Command::FaultProxy(args) => cmd::fault_proxy::run(*args),
        Command::Serve(args) => cmd::serve::run(args),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Config(command) => cmd::config::run(command),
        Command::Alerts(command) => cmd::alerts::run(command),
        Command::Workflow(command) => cmd::workflow::run(command),
        Command::Task(command) => cmd::task::run(command),
        Command::Escalations(command) => cmd::escalations::run(command),
        Command::Examples(command) => cmd::examples::run(command),
        Command::Targets(command) => cmd::targets::run(command),
        Command::Drill(args) => cmd::drill::run(args),
        Command::Chaos(command) => cmd::chaos::run(command),
        Command::Eval(command) => cmd::eval::run(command),
        Command::Readiness(args) => cmd::readiness::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", chain(&err));
            ExitCode::from(cmd::exit_code(&err))
        }
    }
}

/// The error and its causes on one line: "loading faults: reading x.toml: not found".
fn chain(err: &anyhow::Error) -> String {
    err.chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}
