//! A slowloris attack on `holdfast serve`: a normal client's latency with and without
//! 1,000 connections that each send one header byte a second, measured in one run.
//!
//! Why alternating phases: on a shared 2-core machine absolute latencies drift, so the
//! attack's cost is the ratio of the normal client's latency during the attack to its
//! latency just before and just after it, twice over. The attackers reconnect whenever
//! holdfast closes them, as a real attack would, so the attack phases include the
//! moment 1,000 connections reach the head timeout together.
//!
//! Measures: p50 and p99 of a normal client (concurrency 1, through holdfast to the
//! mock provider) without and with the attack, their ratio (target: p99 at most 2× the
//! no-attack p99), and how long holdfast let each attack connection live (target:
//! closed within `header_read_timeout` plus 2 s, never before it, never answered).
//! Loopback only, about 90 s.
//!
//! Run: `cargo build --release -p holdfast && cargo run --release -p holdfast-bench --bin slowloris`

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use holdfast_bench::load::{self, Endpoint, HttpClient};
use holdfast_bench::measure::{Stopwatch, human, pause, percentile};
use holdfast_bench::process::{Scratch, Server, holdfast_binary};
use holdfast_bench::slowloris::{Attack, Outcome};

const KEY_ENV: &str = "HOLDFAST_BENCH_CLIENT_KEY";
const KEY: &str = "sk-bench-not-a-secret";

/// Attack connections, and how long their first connections take to open.
const ATTACKERS: usize = 1000;
const RAMP: Duration = Duration::from_secs(1);
/// holdfast's head timeout: the default.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Phases: without the attack, then with it (longer than the head timeout, so that
/// every attack connection is closed and reopened at least once), four times, and a
/// last one without: short phases, so that the machine's drifting background load
/// weighs on both sides alike.
const QUIET: Duration = Duration::from_secs(6);
const ATTACKED: Duration = Duration::from_secs(12);
const CYCLES: usize = 4;

/// The targets.
const MAX_P99_RATIO: f64 = 2.0;
const CLOSE_SLACK: Duration = Duration::from_secs(2);

fn main() -> anyhow::Result<()> {
    let binary = holdfast_binary()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let clock = Stopwatch::start();
    let report = runtime.block_on(run(&binary))?;
    report.print(clock.elapsed());
    Ok(())
}

struct Report {
    quiet: Vec<Duration>,
    attacked: Vec<Duration>,
    /// Each phase's own p99, in order (no attack, attack, no attack…): how much of the
    /// pooled figure one noisy phase makes.
    phases: Vec<Duration>,
    /// holdfast's CPU time and the wall time of the measured phases, without and with
    /// the attack: what handling the attack costs holdfast itself.
    cpu_quiet: Cpu,
    cpu_attacked: Cpu,
    /// Attack connections open when each attack phase's measuring began.
    open_at_start: Vec<u64>,
    attack: Outcome,
}

fn config(mock: &Server, dir: &Path) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nheader_read_timeout = \"{}s\"\n\n\
         [store]\nurl = \"sqlite://{store}/holdfast.db\"\n\n\
         [[client_keys]]\nname = \"bench\"\nkey_env = \"{KEY_ENV}\"\n\n\
         [providers.mock]\nformat = \"openai\"\nbase_url = \"http://{mock}/v1\"\n\n\
         [targets.primary]\nprovider = \"mock\"\nmodel = \"mock-primary\"\ncontext_window = 128000\n\
         price = {{ input_per_mtok = 2.5, output_per_mtok = 10.0 }}\n\n\
         [routes.bench]\ntargets = [\"primary\"]\n",
        HEADER_TIMEOUT.as_secs(),
        store = dir.display(),
        mock = mock.addr(),
    )
}

async fn run(binary: &Path) -> anyhow::Result<Report> {
    let mock_args = [
        "mock-provider",
        "--listen",
        "127.0.0.1:0",
        "--format",
        "openai",
    ]
    .map(String::from);
    let mock = Server::start(binary, &mock_args, &[]).context("starting the mock provider")?;
    let scratch = Scratch::new("slowloris")?;
    let config_path = scratch.0.join("holdfast.toml");
    std::fs::write(&config_path, config(&mock, &scratch.0))?;
    let serve_args = ["serve", "--config", &config_path.display().to_string()].map(String::from);
    let gateway = Server::start(binary, &serve_args, &[(KEY_ENV.to_owned(), KEY.to_owned())])
        .context("starting holdfast serve")?;

    let client = load::client();
    let normal = Endpoint {
        uri: format!("http://{}/v1/chat/completions", gateway.addr()).parse()?,
        body: Bytes::from_static(
            br#"{"model":"bench","max_tokens":64,"messages":[{"role":"user","content":"Say something scripted."}]}"#,
        ),
        headers: vec![("authorization".into(), format!("Bearer {KEY}"))],
    };
    eprintln!("warming up…");
    load::latencies(&client, &normal, 300)
        .await
        .with_context(|| gateway.stderr_tail())?;

    let (mut quiet, mut attacked, mut open_at_start) = (Vec::new(), Vec::new(), Vec::new());
    let (mut cpu_quiet, mut cpu_attacked) = (Cpu::default(), Cpu::default());
    let mut phases = Vec::new();
    let mut outcome = Outcome::default();
    for cycle in 1..=CYCLES {
        eprintln!("cycle {cycle}/{CYCLES}: no attack…");
        let phase = measure(&client, &normal, QUIET, &gateway, &mut cpu_quiet).await?;
        phases.push(p99(&phase));
        quiet.extend(phase);
        eprintln!(
            "cycle {cycle}/{CYCLES}: {ATTACKERS} connections sending a header byte a second…"
        );
        let attack = Attack::start(gateway.addr(), ATTACKERS, RAMP)?;
        pause(RAMP + Duration::from_secs(1)).await;
        open_at_start.push(attack.open());
        let phase = measure(&client, &normal, ATTACKED, &gateway, &mut cpu_attacked)
            .await
            .with_context(|| gateway.stderr_tail())?;
        phases.push(p99(&phase));
        attacked.extend(phase);
        let seen = attack.stop().await;
        outcome.opened += seen.opened;
        outcome.answered += seen.answered;
        outcome.refused += seen.refused;
        outcome.lifetimes.extend(seen.lifetimes);
        // Let holdfast notice the dropped connections before measuring it quiet again.
        pause(Duration::from_secs(1)).await;
    }
    eprintln!("cycle {}: no attack…", CYCLES + 1);
    let phase = measure(&client, &normal, QUIET, &gateway, &mut cpu_quiet).await?;
    phases.push(p99(&phase));
    quiet.extend(phase);
    quiet.sort_unstable();
    attacked.sort_unstable();
    outcome.lifetimes.sort_unstable();
    Ok(Report {
        quiet,
        attacked,
        phases,
        cpu_quiet,
        cpu_attacked,
        open_at_start,
        attack: outcome,
    })
}

/// The p99 of unsorted samples.
fn p99(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    percentile(&sorted, 99.0)
}

/// holdfast's CPU time over some measured phases, and their wall time.
#[derive(Debug, Default, Clone, Copy)]
struct Cpu {
    used: Duration,
    wall: Duration,
}

impl Cpu {
    /// Percent of one core.
    fn share(self) -> f64 {
        100.0 * self.used.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Requests one after another for `span`; each one's latency. Adds holdfast's CPU
/// time and the span to `cpu`.
async fn measure(
    client: &HttpClient,
    endpoint: &Endpoint,
    span: Duration,
    gateway: &Server,
    cpu: &mut Cpu,
) -> anyhow::Result<Vec<Duration>> {
    let before = gateway.cpu_time()?;
    let clock = Stopwatch::start();
    let mut samples = Vec::new();
    while clock.elapsed() < span {
        samples.extend(load::latencies(client, endpoint, 50).await?);
    }
    cpu.used += gateway.cpu_time()?.saturating_sub(before);
    cpu.wall += clock.elapsed();
    Ok(samples)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

impl Report {
    fn print(&self, total: Duration) {
        let p = |samples: &[Duration], q: f64| percentile(samples, q);
        let (q50, a50) = (p(&self.quiet, 50.0), p(&self.attacked, 50.0));
        let (q99, a99) = (p(&self.quiet, 99.0), p(&self.attacked, 99.0));
        let ratio = |a: Duration, q: Duration| a.as_secs_f64() / q.as_secs_f64().max(1e-9);
        println!();
        println!(
            "a normal client through holdfast (concurrency 1), without and with {ATTACKERS} slowloris \
             connections ({} and {} samples)",
            self.quiet.len(),
            self.attacked.len()
        );
        println!(
            "{:<34} {:>12} {:>12} {:>10} {:>12}  verdict",
            "measure", "no attack", "attack", "ratio", "target"
        );
        println!(
            "{:<34} {:>12} {:>12} {:>9.2}× {:>12}  {}",
            "latency p50",
            human(q50),
            human(a50),
            ratio(a50, q50),
            "(reported)",
            verdict(true)
        );
        let p99_ratio = ratio(a99, q99);
        println!(
            "{:<34} {:>12} {:>12} {:>9.2}× {:>12}  {}",
            "latency p99",
            human(q99),
            human(a99),
            p99_ratio,
            format!("≤ {MAX_P99_RATIO:.1}×"),
            verdict(p99_ratio <= MAX_P99_RATIO)
        );
        let lifetimes = &self.attack.lifetimes;
        let (shortest, median, longest) = (
            lifetimes.first().copied().unwrap_or_default(),
            p(lifetimes, 50.0),
            lifetimes.last().copied().unwrap_or_default(),
        );
        let in_window = !lifetimes.is_empty()
            && shortest >= HEADER_TIMEOUT.saturating_sub(Duration::from_millis(100))
            && longest <= HEADER_TIMEOUT + CLOSE_SLACK;
        println!();
        println!(
            "attack connections: {} opened ({:?} open as each attack phase was measured), {} closed \
             by holdfast, {} answered, {} refused",
            self.attack.opened,
            self.open_at_start,
            lifetimes.len(),
            self.attack.answered,
            self.attack.refused
        );
        println!(
            "{:<34} {:>12} {:>12} {:>12} {:>12}  {}",
            "lifetime: shortest / median / longest",
            human(shortest),
            human(median),
            human(longest),
            format!(
                "{}s..{}s",
                HEADER_TIMEOUT.as_secs(),
                (HEADER_TIMEOUT + CLOSE_SLACK).as_secs()
            ),
            verdict(in_window && self.attack.answered == 0)
        );
        let per_request = |cpu: Cpu, requests: usize| {
            cpu.used / u32::try_from(requests.max(1)).unwrap_or(u32::MAX)
        };
        println!(
            "holdfast's CPU: {:.1}% of a core without the attack ({} per request), {:.1}% with it ({} per request)",
            self.cpu_quiet.share(),
            human(per_request(self.cpu_quiet, self.quiet.len())),
            self.cpu_attacked.share(),
            human(per_request(self.cpu_attacked, self.attacked.len())),
        );
        let phases: Vec<String> = self.phases.iter().map(|d| human(*d)).collect();
        println!(
            "p99 of each phase, no attack first and alternating: {}",
            phases.join(", ")
        );
        println!("(whole run {:.1} s)", total.as_secs_f64());
    }
}
