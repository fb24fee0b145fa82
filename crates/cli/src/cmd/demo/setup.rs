//! Everything the demo needs before it serves: its data directory, its log file, three
//! mock providers with their faults, and its configuration.
//!
//! The decision: the demo builds a configuration as TOML text and loads it through the
//! same loader and validation as `holdfast serve --config`, so the demo runs exactly
//! the product a user configures; the text is also written to the data directory, for
//! the user to read. The faults are scaled to `--duration`: the primary's outage runs
//! from 25% to 45% of the run and the breaker's window and open time are a fraction of
//! it, so a 10-second run and a 10-minute run both show a breaker opening and closing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use holdfast_config::Config;
use holdfast_mock::{Faults, Format, MockProvider};
use holdfast_policy::Clock;
use tokio::sync::watch;

use super::usage;
use super::workload::ROUTE;

/// The first target of the route: the one provider a client without holdfast would
/// call.
pub(crate) const PRIMARY: &str = "primary";

/// The file that marks a directory as the demo's, so that it may be wiped.
const MARKER: &str = ".holdfast-demo";

/// Makes `dir` an empty demo directory and returns its absolute path. A directory that
/// exists is wiped only if it is empty or a previous demo's (it holds the marker), so
/// that a mistyped `--data-dir` cannot delete anything else.
pub(crate) fn data_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = std::path::absolute(dir)
        .with_context(|| format!("resolving --data-dir {}", dir.display()))?;
    if dir.exists() {
        let mut entries =
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?;
        let empty = entries.next().is_none();
        if !empty && !dir.join(MARKER).exists() {
            return Err(usage(format!(
                "--data-dir {} is not empty and is not a holdfast demo directory; \
                 the demo wipes its data directory, so give it a new or empty one",
                dir.display()
            )));
        }
        std::fs::remove_dir_all(&dir).with_context(|| format!("wiping {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(
        dir.join(MARKER),
        "holdfast demo data; `holdfast demo` wipes it\n",
    )
    .with_context(|| format!("writing {}", dir.join(MARKER).display()))?;
    Ok(dir)
}

/// Sends the process's logs to `holdfast.log` in the data directory: on the terminal
/// they would tear through the live view. `HOLDFAST_LOG` sets the filter (`info`).
pub(crate) fn log_to_file(dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("holdfast.log");
    let file = std::fs::File::create(&path)
        .with_context(|| format!("creating the log file {}", path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOLDFAST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(Mutex::new(file))
        .init();
    Ok(path)
}

/// When the primary's outage runs and how fast its breaker reacts, for one run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    pub(crate) outage_start: Duration,
    pub(crate) outage_end: Duration,
    breaker_window: Duration,
    breaker_open_for: Duration,
}

impl Schedule {
    pub(crate) fn for_run(duration: Duration) -> Schedule {
        let clamp = |d: Duration, lo: u64, hi: u64| {
            d.clamp(Duration::from_millis(lo), Duration::from_millis(hi))
        };
        Schedule {
            outage_start: duration.mul_f64(0.25),
            outage_end: duration.mul_f64(0.45),
            breaker_window: clamp(duration.mul_f64(0.1), 2_000, 10_000),
            breaker_open_for: clamp(duration.mul_f64(0.05), 1_000, 5_000),
        }
    }
}

/// The three mock providers, in the route's order.
pub(crate) struct Mocks {
    pub(crate) providers: Vec<(&'static str, MockProvider, SocketAddr)>,
}

impl Mocks {
    /// Restarts the providers' time origin (their outage windows) and counts: the run
    /// starts now.
    pub(crate) fn start_the_clock(&self) {
        for (_, provider, _) in &self.providers {
            provider.reset(None);
        }
    }
}

/// Starts the mock providers on `127.0.0.1:0` until `stop`: a flaky primary (OpenAI
/// format, 10% 503s and an outage), a rate-limited second (Anthropic format, 30% 429s
/// with `Retry-After: 1`) and a healthy fallback (OpenAI format).
pub(crate) async fn mocks(
    schedule: Schedule,
    seed: u64,
    clock: Arc<dyn Clock>,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<Mocks> {
    let primary = format!(
        "latency = {{ min = \"30ms\", max = \"150ms\" }}\n\
         error_rates = {{ \"503\" = 0.10 }}\n\
         outages = [{{ start = {}, end = {}, status = 503 }}]\n",
        schedule.outage_start.as_secs_f64(),
        schedule.outage_end.as_secs_f64()
    );
    let second = "latency = { min = \"60ms\", max = \"250ms\" }\n\
                  error_rates = { \"429\" = 0.30, retry_after = \"1s\" }\n";
    let fallback = "latency = { min = \"40ms\", max = \"160ms\" }\n";
    let specs = [
        (PRIMARY, Format::OpenAi, primary.as_str()),
        ("second", Format::Anthropic, second),
        ("fallback", Format::OpenAi, fallback),
    ];
    let mut providers = Vec::new();
    // Every model answers the quality gate's suite right (`gate.rs`).
    let answers = super::gate::replies(false);
    for (i, (name, format, faults)) in specs.into_iter().enumerate() {
        let faults = Faults::from_toml_str(&format!("{faults}{answers}"))
            .with_context(|| format!("the {name} mock provider's faults"))?;
        let provider = MockProvider::new(format, faults, seed + i as u64, clock.clone())
            .with_context(|| format!("the {name} mock provider"))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .with_context(|| format!("binding the {name} mock provider on 127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let serving = provider.clone();
        let stopped = until(stop.clone());
        tokio::spawn(async move {
            if let Err(e) = holdfast_mock::serve(listener, serving, stopped).await {
                tracing::warn!(error = %e, provider = name, "a demo mock provider stopped");
            }
        });
        providers.push((name, provider, addr));
    }
    Ok(Mocks { providers })
}

/// Completes once `stop` turns true (or its sender is gone).
pub(crate) async fn until(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The demo's configuration as TOML: the three providers as targets of one route with
/// the default policy, whose breaker reacts within the run, and the egress rule that
/// lets the workflow's steps reach the demo's own tool on loopback (and nothing else
/// that is not public).
pub(crate) fn config_text(
    listen: SocketAddr,
    data_dir: &Path,
    mocks: &Mocks,
    tool: SocketAddr,
    schedule: Schedule,
    gated: &Gated,
) -> anyhow::Result<String> {
    let db = data_dir.join("holdfast.db");
    let db = db
        .to_str()
        .ok_or_else(|| usage(format!("--data-dir {} is not UTF-8", data_dir.display())))?;
    // A JSON string is a valid TOML basic string (both escape `"` and `\`).
    let store_url = serde_json::to_string(&format!("sqlite://{db}"))?;
    let mut text = format!(
        "# Written by `holdfast demo`; its mock providers' ports change every run.\n\n\
         [server]\nlisten = \"{listen}\"\n\n\
         [store]\nurl = {store_url}\n\n\
         [engine]\nnode_id = \"demo\"\npoll_interval = \"20ms\"\nmax_concurrent_tasks = 1024\n\n\
         [engine.egress]\nallow = [\"http://{tool}/*\"]\n\n"
    );
    let models = [
        ("primary", "gpt-4o", "2.5", "10.0"),
        ("second", "claude-sonnet-4-5", "3.0", "15.0"),
        ("fallback", "gpt-4o-mini", "0.15", "0.6"),
    ];
    for ((name, provider, addr), (_, model, input, output)) in mocks.providers.iter().zip(models) {
        let format = match provider.format() {
            Format::OpenAi => "openai",
            Format::Anthropic => "anthropic",
        };
        text.push_str(&format!(
            "[providers.{name}]\nformat = \"{format}\"\nbase_url = \"http://{addr}/v1\"\n\n\
             [targets.{name}]\nprovider = \"{name}\"\nmodel = \"{model}\"\n\
             context_window = 128000\n\
             price = {{ input_per_mtok = {input}, output_per_mtok = {output} }}\n\
             timeouts = {{ connect = \"1s\", first_byte = \"5s\", idle = \"5s\", total = \"10s\" }}\n\n"
        ));
    }
    let names: Vec<String> = mocks
        .providers
        .iter()
        .map(|(name, _, _)| format!("\"{name}\""))
        .collect();
    text.push_str(&format!(
        "[routes.{ROUTE}]\ntargets = [{}]\npolicy = \"default\"\n\
         few_shot = {{ library = \"articles\", k = 2, auto_approve = true }}\n\n\
         [policies.default]\n\
         breaker = {{ failure_rate = 0.5, window = \"{}ms\", min_calls = 8, \
         open_for = \"{}ms\", max_open_for = \"{}ms\", half_open_probes = 3 }}\n",
        names.join(", "),
        schedule.breaker_window.as_millis(),
        schedule.breaker_open_for.as_millis(),
        schedule.breaker_open_for.as_millis() * 2,
    ));
    let suite = serde_json::to_string(&gated.suite.display().to_string())?;
    let cheap = super::gate::CHEAP;
    text.push_str(&format!(
        "\n# A cheaper model no route uses yet.\n\
         [providers.{cheap}]\nformat = \"openai\"\nbase_url = \"http://{}/v1\"\n\n\
         [targets.{cheap}]\nprovider = \"{cheap}\"\nmodel = \"gpt-4o-nano\"\n\
         context_window = 128000\n\
         price = {{ input_per_mtok = 0.05, output_per_mtok = 0.2 }}\n\n\
         # Every new configuration version is judged by the suite of the route it changes.\n\
         [quality]\ngate = {{ suites = [{suite}], on_fail = \"refuse\" }}\n",
        gated.cheap
    ));
    Ok(text)
}

/// What the configuration needs for the quality gate: the suite file and the cheaper
/// model's address.
pub(crate) struct Gated {
    pub(crate) suite: PathBuf,
    pub(crate) cheap: SocketAddr,
}

/// Loads `text` through the configuration loader (no environment: the demo must not
/// pick up `HOLDFAST_LISTEN` or `HOLDFAST_STORE_URL` from the shell) and keeps a copy
/// in the data directory.
pub(crate) fn load(text: &str, data_dir: &Path) -> anyhow::Result<Config> {
    let path = data_dir.join("holdfast.toml");
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    let no_env = |_: &str| None;
    Config::from_toml_str(text, &path.display().to_string(), &no_env)
        .map_err(|errors| anyhow::anyhow!("the demo's own configuration is invalid: {errors}"))
}
